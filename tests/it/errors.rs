//! Every error path of the public API returns its typed error, and damaged files give typed
//! errors (never a panic, never wrong data).

use std::path::{Path, PathBuf};

use atlas::{
    ArraySpec, Atlas, AttrValue, BlockCodec, BlockState, Codec, DType, Dataset, EntityKind, Error, Limits, OpenOptions,
    ReadOptions, Shuffle, StoreConfig,
};
use ndarray::{arr1, arr2};

use crate::util::{self, ENCODINGS, assert_err, test_dir};

#[test]
fn create_refuses_a_directory_holding_a_store_and_touches_nothing() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    store.create_dataset("d").unwrap();
    store.flush().unwrap();
    drop(store);
    let before = util::tree(dir.path());
    for (format, compression, _) in ENCODINGS {
        assert_err!(
            Atlas::create(dir.store(), util::meta_config(format, compression)),
            Error::AlreadyExists { kind: EntityKind::Store, .. }
        );
    }
    assert_eq!(util::tree(dir.path()), before);
    assert!(Atlas::open(dir.store()).unwrap().dataset_exists("d"));
}

#[test]
fn create_refuses_a_directory_holding_other_files_and_touches_nothing() {
    let dir = test_dir!();
    std::fs::create_dir(dir.store()).unwrap();
    std::fs::write(dir.store().join("notes.txt"), b"mine").unwrap();
    let with_file = util::tree(dir.path());
    assert_err!(
        Atlas::create(dir.store(), StoreConfig::default()),
        Error::AlreadyExists { kind: EntityKind::Store, .. }
    );
    assert_eq!(util::tree(dir.path()), with_file);

    // An empty subfolder counts as content too.
    std::fs::remove_file(dir.store().join("notes.txt")).unwrap();
    std::fs::create_dir(dir.store().join("sub")).unwrap();
    let with_folder = util::tree(dir.path());
    assert_err!(Atlas::create(dir.store(), StoreConfig::default()), Error::AlreadyExists { .. });
    assert_eq!(util::tree(dir.path()), with_folder);

    // A path that is a file.
    let file = dir.join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = Atlas::create(&file, StoreConfig::default()).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { kind: EntityKind::Store, .. }), "{err:?}");
    let message = format!("cannot create a store at {}: a store, a file or other entries are there", file.display());
    assert_eq!(err.to_string(), message);
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn an_empty_store_path_is_refused_not_taken_as_the_current_directory() {
    let refused = |result: Result<Atlas, Error>| {
        assert!(matches!(&result, Err(Error::InvalidArgument { detail }) if detail.contains("empty")), "{result:?}");
    };
    refused(Atlas::create("", StoreConfig::default()));
    refused(Atlas::open(""));
    assert!(!Path::new("data").exists() && !Path::new("atlas.json").exists(), "nothing made in the current directory");
}

#[test]
fn a_relative_store_path_is_made_absolute_once_at_open() {
    let dir = test_dir!();
    util::create(&dir.store());
    // The same directory as a path relative to the working directory (tests cannot change
    // it: other tests run beside them; Python's tests move it and write after the move).
    let cwd = std::env::current_dir().unwrap();
    let up: PathBuf = cwd.components().skip(1).map(|_| "..").collect();
    let relative = up.join(dir.store().strip_prefix("/").unwrap());
    assert!(relative.is_relative());
    let store = Atlas::open(&relative).unwrap();
    assert!(store.path().is_absolute(), "{}", store.path().display());
    assert_eq!(store.path().canonicalize().unwrap(), dir.store().canonicalize().unwrap());
}

#[test]
fn create_accepts_an_empty_directory_and_makes_missing_parents() {
    let dir = test_dir!();
    std::fs::create_dir(dir.store()).unwrap();
    util::create(&dir.store());
    let nested = dir.join("a/b/c");
    util::create(&nested);
    assert_eq!(util::meta_files(&nested), ["atlas.json"]);
    assert!(Atlas::open(&nested).unwrap().list_datasets().is_empty());
}

#[test]
fn create_with_opens_with_the_options_and_leaves_nothing_when_their_limits_refuse_it() {
    let dir = test_dir!();
    let mut limits = Limits::default();
    limits.max_meta_bytes = 16; // under an empty store's metadata
    let refused = Atlas::create_with(dir.store(), StoreConfig::default(), &OpenOptions::with_limits(limits));
    assert_err!(refused, Error::LimitExceeded { .. });
    assert!(std::fs::read_dir(dir.store()).unwrap().next().is_none(), "an empty directory is left");

    let store = Atlas::create_with(dir.store(), StoreConfig::default(), &OpenOptions::default().staging_bytes(0))
        .expect("created in the directory the refused call left");
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::UInt8, [8]).chunk_shape([4])).unwrap();
    ds.write_array("a", &[0], arr1(&[1u8]).view()).unwrap();
    // With no staging budget a small write is encoded at once.
    let blocks = store.array_blocks("d", "a").unwrap();
    assert_eq!(blocks.iter().map(|b| b.state).collect::<Vec<_>>(), [BlockState::Pending]);
}

#[test]
fn open_of_a_missing_store_is_not_found_and_creates_nothing() {
    let dir = test_dir!();
    let before = util::tree(dir.path());
    assert_err!(Atlas::open(dir.join("missing")), Error::NotFound { kind: EntityKind::Store, .. });
    assert_err!(Atlas::open(dir.path()), Error::NotFound { kind: EntityKind::Store, .. });
    std::fs::write(dir.join("plain_file"), b"").unwrap();
    assert_err!(Atlas::open(dir.join("plain_file")), Error::NotFound { kind: EntityKind::Store, .. });
    // A store whose metadata file is gone is not silently an empty store.
    let store_dir = dir.store();
    drop(util::create(&store_dir));
    std::fs::remove_file(store_dir.join("atlas.json")).unwrap();
    assert_err!(Atlas::open(&store_dir), Error::NotFound { kind: EntityKind::Store, .. });
    assert!(!before.contains_key("missing/") && !dir.join("missing").exists());
}

const BAD_NAMES: [&str; 11] =
    ["", ".", "..", "../escape", "a/b", "/abs", "a\\b", "nul\0byte", ".hidden", "_private", "tab\t"];

#[test]
fn invalid_dataset_and_array_names_are_refused_and_nothing_appears_outside_the_store() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    store.flush().unwrap();
    let outside_before = util::names(dir.path());
    let long = "a".repeat(256);
    let long_unicode = "\u{e9}".repeat(128); // 128 characters, 256 bytes
    for name in BAD_NAMES.iter().copied().chain([long.as_str(), long_unicode.as_str()]) {
        assert_err!(store.create_dataset(name), Error::InvalidName { kind: EntityKind::Dataset, .. });
        assert_err!(
            ds.define_array(name, ArraySpec::new(DType::Int8, [1])),
            Error::InvalidName { kind: EntityKind::Array, .. }
        );
        assert!(!store.dataset_exists(name));
    }
    assert!(!store.has_pending_changes());
    store.flush().unwrap();
    assert_eq!(util::names(dir.path()), outside_before, "a file appeared outside the store");
    for name in util::names(&dir.store()) {
        assert!(["atlas.json", "atlas.lock", "data"].contains(&name.as_str()), "unexpected {name} in the store");
    }
    assert!(util::names(&dir.store().join("data")).is_empty());
    assert_eq!(store.list_datasets(), ["d"]);
    assert!(ds.list_arrays().unwrap().is_empty());
}

#[test]
fn names_at_the_limits_are_accepted_and_survive_reopen() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let long = "a".repeat(255);
    let unicode = "\u{e9}".repeat(127); // 254 bytes
    for name in [long.as_str(), unicode.as_str(), "a.b", "x-y z", "\u{65e5}\u{672c}"] {
        store.create_dataset(name).unwrap().define_array(name, ArraySpec::new(DType::Int8, [1])).unwrap();
    }
    store.flush().unwrap();
    drop(store);
    let store = Atlas::open(dir.store()).unwrap();
    assert_eq!(store.list_datasets().len(), 5);
    assert_eq!(store.open_dataset(&long).unwrap().list_arrays().unwrap(), [long.as_str()]);
}

fn dataset_with_2d_f32(dir: &Path) -> (Atlas, Dataset) {
    let store = util::create(dir);
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Float32, [4, 6]).chunk_shape([2, 4])).unwrap();
    store.flush().unwrap();
    (store, ds)
}

#[test]
fn selections_reaching_outside_the_array_are_out_of_bounds() {
    let dir = test_dir!();
    let (store, ds) = dataset_with_2d_f32(&dir.store());
    let block = arr2(&[[1.0f32, 2.0], [3.0, 4.0]]);
    for (start, shape) in
        [([3, 0], [2, 1]), ([0, 5], [1, 2]), ([4, 0], [1, 1]), ([0, 0], [5, 6]), ([u64::MAX, 0], [2, 1])]
    {
        match ds.read_array::<f32>("a", &start, &shape) {
            Err(Error::OutOfBounds { array, start: s, shape: sh, array_shape }) => {
                assert_eq!((array.as_str(), s, sh, array_shape), ("d/a", start.to_vec(), shape.to_vec(), vec![4, 6]));
            }
            other => panic!("read at {start:?} {shape:?}: {other:?}"),
        }
        let mut out = vec![0.0f32; (shape[0].min(10) * shape[1]) as usize];
        assert_err!(
            ds.read_array_into("a", &start, &shape, &mut out, ReadOptions::default()),
            Error::OutOfBounds { .. } | Error::ShapeMismatch { .. }
        );
    }
    for start in [[3, 0], [0, 5], [4, 4], [u64::MAX, 0]] {
        assert_err!(ds.write_array("a", &start, block.view()), Error::OutOfBounds { .. });
    }
    // The refused writes changed nothing.
    assert!(!store.has_pending_changes());
    assert!(ds.read_array::<f32>("a", &[0, 0], &[4, 6]).unwrap().iter().all(|&v| v == 0.0));
}

#[test]
fn reads_and_writes_of_the_wrong_dtype_are_dtype_mismatches() {
    let dir = test_dir!();
    let (_store, ds) = dataset_with_2d_f32(&dir.store());
    match ds.read_array::<f64>("a", &[0, 0], &[1, 1]) {
        Err(Error::DTypeMismatch { array, expected, found }) => {
            assert_eq!((array.as_str(), expected.as_str(), found.as_str()), ("d/a", "float32", "float64"));
        }
        other => panic!("{other:?}"),
    }
    assert_err!(ds.read_array::<i32>("a", &[0, 0], &[1, 1]), Error::DTypeMismatch { .. });
    assert_err!(ds.read_array::<u32>("a", &[0, 0], &[1, 1]), Error::DTypeMismatch { .. });
    let mut out = [0i32; 1];
    assert_err!(
        ds.read_array_into("a", &[0, 0], &[1, 1], &mut out, ReadOptions::default()),
        Error::DTypeMismatch { .. }
    );
    assert_err!(ds.write_array("a", &[0, 0], arr2(&[[1i32]]).view()), Error::DTypeMismatch { .. });
    assert_err!(ds.write_array("a", &[0, 0], arr2(&[[1.0f64]]).view()), Error::DTypeMismatch { .. });
}

#[test]
fn wrong_number_of_dimensions_or_buffer_length_is_a_shape_mismatch() {
    let dir = test_dir!();
    let (_store, ds) = dataset_with_2d_f32(&dir.store());
    // The message names the argument that is wrong and both numbers of dimensions.
    let says = |result: Result<ndarray::ArrayD<f32>, Error>, expected: &str| match result {
        Err(Error::ShapeMismatch { detail, .. }) => assert!(detail.contains(expected), "{detail}"),
        other => panic!("{expected}: {other:?}"),
    };
    says(ds.read_array::<f32>("a", &[0], &[1, 1]), "start [0] has 1 dimension; the array has 2 (shape [4, 6])");
    says(ds.read_array::<f32>("a", &[0, 0], &[1]), "shape [1] has 1 dimension; the array has 2");
    says(ds.read_array::<f32>("a", &[0, 0, 0], &[1, 1, 1]), "start [0, 0, 0] has 3 dimensions; the array has 2");
    assert_err!(ds.write_array("a", &[0], arr1(&[1.0f32]).view()), Error::ShapeMismatch { .. });
    assert_err!(
        ds.write_array("a", &[0, 0, 0], ndarray::Array3::<f32>::zeros((1, 1, 1)).view()),
        Error::ShapeMismatch { .. }
    );
    let zero_d = ds.define_array("z", ArraySpec::new(DType::Float32, Vec::<u64>::new())).unwrap();
    let appended = zero_d.append(arr1(&[1.0f32]).view());
    let expected = "a 0-d array cannot be appended to";
    assert!(matches!(&appended, Err(Error::ShapeMismatch { detail, .. }) if detail == expected), "{appended:?}");
    let mut short = vec![0.0f32; 7];
    let boxes = ds.array("a").unwrap().read_boxes_into(&[[0, 0], [1, 1]], &[2, 2], &mut short, ReadOptions::default());
    let expected = "the output holds 7 elements, not the 8 of 2 boxes of shape [2, 2]";
    assert!(matches!(&boxes, Err(Error::ShapeMismatch { detail, .. }) if detail == expected), "{boxes:?}");
    for len in [0, 5, 7, 24] {
        let mut out = vec![0.0f32; len];
        match ds.read_array_into("a", &[0, 0], &[2, 3], &mut out, ReadOptions::default()) {
            Err(Error::ShapeMismatch { array, expected, found, detail, .. }) => {
                assert_eq!((array.as_str(), expected, found), ("d/a", vec![2, 3], vec![len as u64]));
                assert_eq!(
                    detail,
                    format!("the output holds {len} elements, not the 6 of a selection of shape [2, 3]")
                );
            }
            other => panic!("buffer of {len}: {other:?}"),
        }
    }
}

#[test]
fn schemas_that_do_not_hold_together_are_invalid_arguments() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let f32_4x4 = || ArraySpec::new(DType::Float32, [4, 4]);
    let bad = [
        ("dims of the wrong length", f32_4x4().dims(["only_one"])),
        ("chunk shape of the wrong length", f32_4x4().chunk_shape([2])),
        ("zero chunk extent", f32_4x4().chunk_shape([0, 2])),
        ("dimension name used twice", f32_4x4().dims(["x", "x"])),
        ("a terminal escape in a dimension name", f32_4x4().dims(["x", "\u{1b}]0;pwned\u{7}"])),
        ("a dimension name over 255 bytes", f32_4x4().dims(["x".to_string(), "y".repeat(256)])),
        ("chunk over 256 MiB", ArraySpec::new(DType::Float64, [1 << 20, 1 << 20]).chunk_shape([8192, 8192])),
        ("shape overflowing 64-bit bytes", ArraySpec::new(DType::Int16, [u64::MAX, 2]).chunk_shape([1, 1])),
        ("over 32 dimensions", ArraySpec::new(DType::Int8, vec![1; 33])),
        ("a million dimensions, refused at once", ArraySpec::new(DType::Bool, vec![2; 1_000_000])),
        ("fill 300 in uint8", ArraySpec::new(DType::UInt8, [4]).fill_value(300)),
        ("fill -1 in uint16", ArraySpec::new(DType::UInt16, [4]).fill_value(-1)),
        ("fill 2.5 in int32", ArraySpec::new(DType::Int32, [4]).fill_value(2.5)),
        ("fill NaN in int64", ArraySpec::new(DType::Int64, [4]).fill_value(f64::NAN)),
        ("fill 1e300 in float32", ArraySpec::new(DType::Float32, [4]).fill_value(1e300)),
        ("fill 1e-50 in float32, stored as 0", ArraySpec::new(DType::Float32, [4]).fill_value(1e-50)),
        ("fill u64::MAX in int64", ArraySpec::new(DType::Int64, [4]).fill_value(u64::MAX)),
        ("a zstd dictionary for strings", ArraySpec::new(DType::String, [4]).zstd_dictionary(true)),
    ];
    for (why, spec) in bad {
        match ds.define_array("a", spec) {
            Err(Error::InvalidArgument { detail }) => assert!(detail.starts_with("cannot define d/a: "), "{detail}"),
            other => panic!("{why}: expected InvalidArgument, got {other:?}"),
        }
        assert!(ds.list_arrays().unwrap().is_empty(), "{why} was defined");
    }
    // A float fill keeps its point in the message: "0" would read as the one string arrays take.
    match ds.define_array("a", ArraySpec::new(DType::String, [4]).fill_value(0.0)) {
        Err(Error::InvalidArgument { detail }) => assert!(detail.contains("fill value 0.0 "), "{detail}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    // The edges of what is allowed.
    ds.define_array("ok1", ArraySpec::new(DType::Int8, vec![1; 32])).unwrap();
    ds.define_array("ok2", ArraySpec::new(DType::UInt8, [4]).fill_value(255)).unwrap();
    ds.define_array("ok3", ArraySpec::new(DType::Int32, [4]).fill_value(2.0)).unwrap();
    ds.define_array("ok4", ArraySpec::new(DType::Float32, [4]).fill_value(0.1)).unwrap();
    ds.define_array("ok5", ArraySpec::new(DType::UInt64, [4]).fill_value(u64::MAX)).unwrap();
    ds.define_array("ok6", ArraySpec::new(DType::Float32, [0, 4]).dims(["", ""])).unwrap();
    // The smallest subnormal float32 and -0.0 are stored as they are.
    ds.define_array("ok8", ArraySpec::new(DType::Float32, [4]).fill_value(1e-45)).unwrap();
    ds.define_array("ok9", ArraySpec::new(DType::Float32, [4]).fill_value(-0.0)).unwrap();
    // The default chunks of 2^20 end past u64::MAX: the last one is partial like any other.
    let unbounded = ds.define_array("ok7", ArraySpec::new(DType::UInt8, [u64::MAX]).fill_value(3)).unwrap();
    unbounded.write(&[u64::MAX - 2], arr1(&[7u8, 8]).view()).unwrap();
    assert_eq!(unbounded.read::<u8>(&[u64::MAX - 3], &[3]).unwrap().into_raw_vec_and_offset().0, [3, 7, 8]);
    unbounded.resize(&[u64::MAX - 1]).unwrap();
    unbounded.resize(&[u64::MAX]).unwrap();
    // A result no memory can hold is refused before anything is allocated, naming the array.
    assert_err!(
        unbounded.read::<u8>(&[0], &[u64::MAX]),
        Error::OutOfMemory { detail } if detail.starts_with("d/ok7: a result of shape [18446744073709551615]")
    );
    assert_eq!(unbounded.read::<u8>(&[u64::MAX - 3], &[3]).unwrap().into_raw_vec_and_offset().0, [3, 7, 3]);
    assert_eq!(ds.read_array::<f32>("ok4", &[0], &[1]).unwrap()[[0]], 0.1f32);
}

#[test]
fn bad_attribute_keys_and_too_deep_values_are_refused() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let attrs = store.attrs();
    let long = "k".repeat(256);
    for key in ["", "line\nbreak", "nul\0", long.as_str()] {
        assert_err!(attrs.set(key, 1), Error::InvalidName { kind: EntityKind::Attribute, .. });
    }
    assert_err!(attrs.set("deep", nest(33)), Error::InvalidArgument { .. });
    assert!(!store.has_pending_changes());
    attrs.set(&"k".repeat(255), 1).unwrap();
}

/// `depth` levels of alternating lists and maps around an integer.
fn nest(depth: usize) -> AttrValue {
    (0..depth).fold(AttrValue::Int(0), |v, level| {
        if level % 2 == 0 { AttrValue::List(vec![v]) } else { AttrValue::Map([("m".to_string(), v)].into()) }
    })
}

#[test]
fn the_deepest_accepted_attribute_value_survives_reopen_in_every_encoding() {
    let dir = test_dir!();
    let deepest = nest(32);
    assert_eq!(deepest.depth(), 32);
    for (format, compression, name) in ENCODINGS {
        let path = dir.join(name);
        let store = Atlas::create(&path, util::meta_config(format, compression)).unwrap();
        let ds = store.create_dataset("d").unwrap();
        let array = ds.define_array("a", ArraySpec::new(DType::Int8, [1])).unwrap();
        for attrs in [store.attrs(), ds.attrs(), array.attrs()] {
            attrs.set("deep", deepest.clone()).unwrap();
        }
        store.flush().unwrap();
        drop((array, ds, store));
        let store = Atlas::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ds = store.open_dataset("d").unwrap();
        for attrs in [store.attrs(), ds.attrs(), ds.array("a").unwrap().attrs()] {
            assert_eq!(attrs.get("deep").unwrap().as_ref(), Some(&deepest), "{name}");
        }
    }
}

#[test]
fn operations_on_missing_things_are_not_found_naming_them() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    match store.open_dataset("nope") {
        Err(Error::NotFound { kind: EntityKind::Dataset, name }) => assert_eq!(name, "nope"),
        other => panic!("{other:?}"),
    }
    match ds.read_array::<f32>("nope", &[0], &[1]) {
        Err(Error::NotFound { kind: EntityKind::Array, name }) => assert_eq!(name, "d/nope"),
        other => panic!("{other:?}"),
    }
    assert_err!(ds.array_meta("nope"), Error::NotFound { kind: EntityKind::Array, .. });
    assert_err!(ds.write_array("nope", &[0], arr1(&[1.0f32]).view()), Error::NotFound { kind: EntityKind::Array, .. });
    let a = ds.define_array("a", ArraySpec::new(DType::Int8, [1])).unwrap();
    store.delete_dataset("d").unwrap();
    assert_err!(a.meta(), Error::NotFound { kind: EntityKind::Dataset, .. });
    assert_err!(a.attrs().all(), Error::NotFound { .. });
    assert_err!(a.set_codec(None), Error::NotFound { .. });
    assert_err!(ds.attrs().set("k", 1), Error::NotFound { kind: EntityKind::Dataset, .. });
    assert_err!(
        ds.define_array("b", ArraySpec::new(DType::Int8, [1])),
        Error::NotFound { kind: EntityKind::Dataset, .. }
    );
}

/// A committed store with array `d/a` (float32, 2 x 32, one chunk per row) written with
/// `codec`; returns the data and the path of its one fragment.
fn committed_2x32(path: &Path, codec: Codec, shuffle: Shuffle) -> (Vec<f32>, std::path::PathBuf) {
    let store = Atlas::create(path, StoreConfig { codec, shuffle, ..StoreConfig::default() }).unwrap();
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Float32, [2, 32]).chunk_shape([1, 32])).unwrap();
    // Runs of four equal values: every codec makes a chunk smaller (else it is stored raw).
    let data: Vec<f32> = (0..64).map(|i| (i / 4) as f32 * 1.25 + 0.5).collect();
    ds.write_array("a", &[0, 0], ndarray::Array2::from_shape_vec((2, 32), data.clone()).unwrap().view()).unwrap();
    store.flush().unwrap();
    let fragments = util::fragments(path);
    assert_eq!(fragments.len(), 1);
    (data, fragments[0].clone())
}

fn read_all(path: &Path, options: ReadOptions) -> Result<Vec<f32>, Error> {
    let mut out = vec![0.0f32; 64];
    Atlas::open(path)?.open_dataset("d")?.read_array_into("a", &[0, 0], &[2, 32], &mut out, options)?;
    Ok(out)
}

#[test]
fn a_corrupt_byte_in_a_block_is_a_checksum_mismatch_naming_array_chunk_and_file() {
    let dir = test_dir!();
    let (data, fragment) = committed_2x32(&dir.store(), Codec::None, Shuffle::Off);
    let good = std::fs::read(&fragment).unwrap();
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let at = good.windows(raw.len()).position(|w| w == raw).expect("an uncompressed block holds the raw bytes");
    // Element 37 lies in row 1, i.e. chunk [1, 0].
    let mut bad = good.clone();
    bad[at + 37 * 4 + 1] ^= 0x10;
    std::fs::write(&fragment, &bad).unwrap();

    let err = read_all(&dir.store(), ReadOptions::default()).unwrap_err();
    let message = err.to_string();
    match err {
        Error::ChecksumMismatch { array, coord, path, expected, found } => {
            assert_eq!(array, "d/a");
            assert_eq!(coord, [1, 0]);
            assert_eq!(path.file_name(), fragment.file_name());
            assert_ne!(expected, found);
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    let file_name = fragment.file_name().unwrap().to_str().unwrap();
    assert!(message.contains("d/a") && message.contains("[1, 0]") && message.contains(file_name), "{message}");

    // The undamaged chunk still reads.
    let ds = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
    assert_eq!(ds.read_array::<f32>("a", &[0, 0], &[1, 32]).unwrap().into_raw_vec_and_offset().0, data[..32]);
    // Without verification the damaged bytes come through as they are on disk.
    let unchecked = read_all(&dir.store(), ReadOptions { verify_checksums: false, ..ReadOptions::default() }).unwrap();
    for (i, (got, want)) in unchecked.iter().zip(&data).enumerate() {
        assert_eq!(got == want, i != 37, "element {i}: {got} vs {want}");
    }
}

#[test]
fn a_damaged_string_block_fails_its_checksum_unless_the_read_skips_it() {
    let dir = test_dir!();
    let store = Atlas::create(dir.store(), StoreConfig { codec: Codec::None, ..StoreConfig::default() }).unwrap();
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("s", ArraySpec::new(DType::String, [2])).unwrap();
    ds.write_strings("s", &[0], arr1(&["alpha", "omega"]).view()).unwrap();
    store.flush().unwrap();
    drop((ds, store));
    let fragment = util::fragments(&dir.store()).remove(0);
    let mut bytes = std::fs::read(&fragment).unwrap();
    let at = bytes.windows(5).position(|w| w == b"omega").expect("a block stored as it is holds the text");
    bytes[at] = b'O';
    std::fs::write(&fragment, &bytes).unwrap();
    let array = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap().array("s").unwrap();
    assert_err!(array.read_strings(&[0], &[2]), Error::ChecksumMismatch { .. });
    let unverified = ReadOptions { verify_checksums: false, ..ReadOptions::default() };
    let read = array.read_strings_with(&[0], &[2], unverified).unwrap();
    assert_eq!(read.iter().map(String::as_str).collect::<Vec<_>>(), ["alpha", "Omega"]);
    let on_a_gpu = ReadOptions { device: atlas::Device::Cuda(0), ..ReadOptions::default() };
    let refused = array.read_strings_with(&[0], &[2], on_a_gpu).unwrap_err();
    assert!(matches!(&refused, Error::GpuUnavailable(atlas::GpuUnavailable::Unsupported(why)) if why.contains("d/s")));
}

/// A new store at `path` writing blocks as they are (no codec, no shuffle), and its
/// dataset `d`.
fn uncompressed_store(path: &std::path::Path) -> (Atlas, atlas::Dataset) {
    let config = StoreConfig { codec: Codec::None, shuffle: Shuffle::Off, ..StoreConfig::default() };
    let store = Atlas::create(path, config).unwrap();
    let ds = store.create_dataset("d").unwrap();
    (store, ds)
}

#[test]
fn a_large_uncompressed_chunk_read_in_place_reads_back_and_a_corrupt_byte_anywhere_is_caught() {
    // One 1.2 MB chunk, read whole: its block is read from the file straight into the
    // output, in several pieces, each hashed as it comes.
    let dir = test_dir!();
    let path = dir.store();
    let (store, ds) = uncompressed_store(&path);
    let n = 300_000;
    ds.define_array("a", ArraySpec::new(DType::Float32, [n]).chunk_shape([n])).unwrap();
    let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    ds.write_array("a", &[0], ndarray::Array1::from(data.clone()).view()).unwrap();
    store.flush().unwrap();
    drop((ds, store));
    let read = || Atlas::open(&path).unwrap().open_dataset("d").unwrap().read_array::<f32>("a", &[0], &[n]);
    assert_eq!(read().unwrap().into_raw_vec_and_offset().0, data);

    let fragment = util::fragments(&path)[0].clone();
    let good = std::fs::read(&fragment).unwrap();
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let at = good.windows(64).position(|w| w == &raw[..64]).expect("the block holds the raw bytes");
    for element in [0, 100_000, n as usize - 1] {
        let mut bad = good.clone();
        bad[at + element * 4 + 2] ^= 0x01;
        std::fs::write(&fragment, &bad).unwrap();
        assert!(matches!(read(), Err(Error::ChecksumMismatch { .. })), "element {element}");
    }
}

#[test]
fn large_uncompressed_chunks_copied_out_row_by_row_read_back_and_a_corrupt_byte_anywhere_is_caught() {
    // 1.28 MB chunks, two along each axis: too large to hash in one pass before the copy,
    // so each block is hashed piece by piece as its rows are copied out, and a read that
    // touches only a block's first rows still hashes the rest of it.
    let dir = test_dir!();
    let path = dir.store();
    let (store, ds) = uncompressed_store(&path);
    let (rows, cols) = (800usize, 1600usize);
    ds.define_array("a", ArraySpec::new(DType::Float32, [rows as u64, cols as u64]).chunk_shape([400, 800])).unwrap();
    let data = ndarray::Array2::from_shape_fn((rows, cols), |(r, c)| (r * cols + c) as f32 * 0.25);
    ds.write_array("a", &[0, 0], data.view()).unwrap();
    store.flush().unwrap();
    drop((ds, store));
    let ds = || Atlas::open(&path).unwrap().open_dataset("d").unwrap();
    let read = |start: [u64; 2], shape: [u64; 2]| ds().read_array::<f32>("a", &start, &shape);
    assert_eq!(read([0, 0], [800, 1600]).unwrap(), data.clone().into_dyn());
    let part = read([100, 300], [600, 1000]).unwrap();
    assert_eq!(part, data.slice(ndarray::s![100..700, 300..1300]).to_owned().into_dyn());

    // Corrupt the last element of chunk [1, 1], then read only its first element.
    let fragment = util::fragments(&path)[0].clone();
    let good = std::fs::read(&fragment).unwrap();
    let chunk_end: Vec<u8> = data.slice(ndarray::s![799, 1584..1600]).iter().flat_map(|v| v.to_le_bytes()).collect();
    let at = good.windows(chunk_end.len()).position(|w| w == chunk_end).expect("the chunk's last row");
    let mut bad = good.clone();
    bad[at + chunk_end.len() - 1] ^= 0x01;
    std::fs::write(&fragment, &bad).unwrap();
    match read([400, 800], [1, 1]) {
        Err(Error::ChecksumMismatch { coord, .. }) => assert_eq!(coord, [1, 1]),
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    assert!(matches!(read([0, 0], [800, 1600]), Err(Error::ChecksumMismatch { .. })));
    assert_eq!(read([0, 0], [400, 1600]).unwrap(), data.slice(ndarray::s![0..400, ..]).to_owned().into_dyn());
}

#[test]
fn a_corrupt_block_copied_out_row_by_row_is_a_checksum_mismatch_shuffled_or_not() {
    // 2x2 chunks of a 4x4 array: a chunk's rows lie apart in a whole read, so its block is
    // copied out row by row (not decoded in place as in the test above).
    let dir = test_dir!();
    for shuffle in [Shuffle::Off, Shuffle::On] {
        let path = dir.join(&format!("{shuffle:?}"));
        let store =
            Atlas::create(&path, StoreConfig { codec: Codec::None, shuffle, ..StoreConfig::default() }).unwrap();
        let ds = store.create_dataset("d").unwrap();
        ds.define_array("a", ArraySpec::new(DType::Float32, [4, 4]).chunk_shape([2, 2])).unwrap();
        let data: Vec<f32> = (0..16).map(|i| i as f32 * 1.25 + 0.5).collect();
        ds.write_array("a", &[0, 0], ndarray::Array2::from_shape_vec((4, 4), data.clone()).unwrap().view()).unwrap();
        store.flush().unwrap();
        drop((ds, store));
        // Chunk [1, 1] holds elements 10, 11, 14, 15; shuffled, byte j of each element
        // makes plane j.
        let elems: Vec<[u8; 4]> = [10, 11, 14, 15].iter().map(|&i| data[i].to_le_bytes()).collect();
        let stored: Vec<u8> = match shuffle {
            Shuffle::On => (0..4).flat_map(|j| elems.iter().map(move |e| e[j])).collect(),
            _ => elems.concat(),
        };
        let fragment = util::fragments(&path)[0].clone();
        let mut bytes = std::fs::read(&fragment).unwrap();
        let at = bytes.windows(stored.len()).position(|w| w == stored).expect("the block's bytes");
        bytes[at + 5] ^= 0x10;
        std::fs::write(&fragment, &bytes).unwrap();

        let ds = Atlas::open(&path).unwrap().open_dataset("d").unwrap();
        match ds.read_array::<f32>("a", &[0, 0], &[4, 4]) {
            Err(Error::ChecksumMismatch { coord, .. }) => assert_eq!(coord, [1, 1], "{shuffle:?}"),
            other => panic!("{shuffle:?}: expected a checksum mismatch, got {other:?}"),
        }
        let mut out = vec![0.0f32; 16];
        ds.read_array_into(
            "a",
            &[0, 0],
            &[4, 4],
            &mut out,
            ReadOptions { verify_checksums: false, ..ReadOptions::default() },
        )
        .unwrap();
        let changed: Vec<usize> = (0..16).filter(|&i| out[i] != data[i]).collect();
        assert_eq!(changed.len(), 1, "{shuffle:?}: {changed:?}");
    }
}

#[test]
fn a_corrupt_byte_in_any_piece_of_an_uncompressed_block_copied_out_by_rows_is_caught() {
    // Square f32 chunks of 256 KiB (hashed in several pieces as their rows are copied out),
    // of 156 KiB (rows of 800 bytes, which pieces of 64 KiB end inside) and of 16 KiB (one
    // piece); two chunks side by side, so reads copy them out row by row.
    let dir = test_dir!();
    for n in [256usize, 200, 64] {
        let path = dir.join(&format!("c{n}"));
        let store = Atlas::create(&path, StoreConfig { codec: Codec::None, ..StoreConfig::default() }).unwrap();
        let ds = store.create_dataset("d").unwrap();
        let (side, chunk) = (2 * n as u64, n as u64);
        ds.define_array("a", ArraySpec::new(DType::Float32, [side, side]).chunk_shape([chunk, chunk])).unwrap();
        let data = ndarray::Array2::from_shape_fn((2 * n, 2 * n), |(i, j)| (i * 2 * n + j) as f32);
        ds.write_array("a", &[0, 0], data.view()).unwrap();
        store.flush().unwrap();
        let block = store.array_blocks("d", "a").unwrap().into_iter().find(|b| b.coord == [1, 1]).unwrap();
        assert_eq!((block.codec, block.stored_bytes), (BlockCodec::None, chunk * chunk * 4));
        drop((ds, store));
        // The whole array; rows at the start of chunk [1, 1]; rows from its middle (past
        // its first pieces). A read checks the whole block whatever rows it copies.
        let boxes = [([0, 0], [side, side]), ([chunk, chunk], [8, chunk]), ([chunk + chunk / 2, chunk], [8, chunk])];
        let ds = Atlas::open(&path).unwrap().open_dataset("d").unwrap();
        for (start, shape) in boxes {
            let [r, c] = [start[0] as usize, start[1] as usize];
            let expected = data.slice(ndarray::s![r..r + shape[0] as usize, c..c + shape[1] as usize]);
            assert_eq!(ds.read_array::<f32>("a", &start, &shape).unwrap(), expected.into_dyn(), "sound, at {start:?}");
        }
        let good = std::fs::read(&block.path).unwrap();
        // A byte in the first piece, one in the middle of the block, and one in the last.
        let len = block.stored_bytes as usize;
        for at in [100, len / 2 + 3, len - 7] {
            let mut bad = good.clone();
            bad[block.offset_bytes as usize + at] ^= 0x10;
            std::fs::write(&block.path, &bad).unwrap();
            let ds = Atlas::open(&path).unwrap().open_dataset("d").unwrap();
            for (start, shape) in boxes {
                match ds.read_array::<f32>("a", &start, &shape) {
                    Err(Error::ChecksumMismatch { coord, .. }) => assert_eq!(coord, [1, 1], "byte {at}"),
                    other => panic!("chunk {n}, byte {at}, box at {start:?}: expected a mismatch, got {other:?}"),
                }
            }
            let unverified = ReadOptions { verify_checksums: false, ..ReadOptions::default() };
            let mut out = vec![0.0f32; 4 * n * n];
            ds.read_array_into("a", &[0, 0], &[side, side], &mut out, unverified).unwrap();
            let changed = out.iter().zip(&data).filter(|(a, b)| a != b).count();
            assert_eq!(changed, 1, "chunk {n}, byte {at}");
        }
        std::fs::write(&block.path, &good).unwrap();
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `atlas::testing::rows_hashed_as_copied`, with the feature that has it.
#[allow(clippy::unnecessary_wraps)] // `None` without the feature
fn rows_hashed_as_copied() -> Option<u64> {
    #[cfg(feature = "test-util")]
    return Some(atlas::testing::rows_hashed_as_copied());
    #[cfg(not(feature = "test-util"))]
    None
}

#[test]
fn rows_hashed_as_they_are_copied_into_a_large_output_read_back_and_a_flip_anywhere_is_caught() {
    // An output of 8 MiB or more is written with streaming stores, and a block's rows that
    // follow one another are hashed as they are copied (from the map, or from a shuffled
    // block's pieces). Rows of 1 KiB (whole stripes of the hash) go that way into an
    // output on a 64-byte boundary; rows of 800 bytes, an output 4 bytes off it, and a box
    // that cuts rows are hashed behind the copy. A flip in a block's first KiB (held by
    // the hash until more comes), its middle, or its last 64 bytes (the last stripe,
    // hashed apart) is caught whichever way.
    let dir = test_dir!();
    let unverified = ReadOptions { verify_checksums: false, ..ReadOptions::default() };
    let uncached = OpenOptions::default().chunk_cache_bytes(0);
    for (shuffle, chunk_cols) in [(Shuffle::Off, 256usize), (Shuffle::On, 256), (Shuffle::Off, 200), (Shuffle::On, 200)]
    {
        let path = dir.join(&format!("{shuffle:?}-{chunk_cols}"));
        let store =
            Atlas::create(&path, StoreConfig { codec: Codec::None, shuffle, ..StoreConfig::default() }).unwrap();
        let ds = store.create_dataset("d").unwrap();
        let (rows, cols) = (1024usize, 2304usize);
        let spec = ArraySpec::new(DType::Float32, [rows as u64, cols as u64]).chunk_shape([256, chunk_cols as u64]);
        ds.define_array("a", spec).unwrap();
        let data = ndarray::Array2::from_shape_fn((rows, cols), |(r, c)| (r * cols + c) as f32);
        ds.write_array("a", &[0, 0], data.view()).unwrap();
        store.flush().unwrap();
        let block = store.array_blocks("d", "a").unwrap().into_iter().find(|b| b.coord == [1, 0]).unwrap();
        drop((ds, store));
        let open = || Atlas::open_with(&path, &uncached).unwrap().open_dataset("d").unwrap();
        let whole =
            |out: &mut [f32], options| open().read_array_into("a", &[0, 0], &[rows as u64, cols as u64], out, options);
        let mut buffer = vec![0.0f32; rows * cols + 16];
        let address = buffer.as_ptr().addr();
        let lead = (address.next_multiple_of(64) - address) / 4;
        for skip in [lead, lead + 1] {
            let before = rows_hashed_as_copied();
            let out = &mut buffer[skip..skip + rows * cols];
            whole(out, ReadOptions::default()).unwrap();
            assert!(out.iter().eq(data.iter()), "{shuffle:?}, chunks of {chunk_cols}, output at {skip}");
            // Each of the 1024 rows of each of the 9 chunks along a row, at least (other
            // tests may count theirs meanwhile).
            let counted = rows_hashed_as_copied().zip(before).map(|(after, before)| after - before);
            if let Some(counted) = counted.filter(|_| chunk_cols == 256 && skip == lead && has_avx2()) {
                assert!(counted >= 9 * 1024, "{shuffle:?}: rows of whole stripes hashed as copied: {counted}");
            }
        }
        let good = std::fs::read(&block.path).unwrap();
        let len = block.stored_bytes as usize;
        for at in [5, 700, len / 2 + 3, len - 1] {
            let mut bad = good.clone();
            bad[block.offset_bytes as usize + at] ^= 0x10;
            std::fs::write(&block.path, &bad).unwrap();
            for skip in [lead, lead + 1] {
                let out = &mut buffer[skip..skip + rows * cols];
                match whole(out, ReadOptions::default()) {
                    Err(Error::ChecksumMismatch { coord, .. }) => assert_eq!(coord, [1, 0]),
                    other => {
                        panic!("{shuffle:?}, chunks of {chunk_cols}, byte {at}: expected a mismatch, got {other:?}")
                    }
                }
            }
            // A box 8 columns in from each side: the block's rows skip their first 8
            // elements, so they no longer follow one another.
            let cut = open().read_array::<f32>("a", &[0, 8], &[rows as u64, cols as u64 - 16]);
            assert_err!(cut, Error::ChecksumMismatch { .. });
            let out = &mut buffer[lead..lead + rows * cols];
            whole(out, unverified).unwrap();
            assert_eq!(out.iter().zip(&data).filter(|(a, b)| a != b).count(), 1, "byte {at}");
        }
        std::fs::write(&block.path, &good).unwrap();
    }
}

#[test]
fn rows_longer_than_a_hashing_piece_are_checked_whole_and_a_flip_anywhere_is_caught() {
    // Two uncompressed 1-D chunks of 256 KiB; the read skips 10 elements at each end, so
    // each chunk is copied out as one row of about four 64 KiB pieces.
    let dir = test_dir!();
    let store = Atlas::create(dir.store(), StoreConfig { codec: Codec::None, ..StoreConfig::default() }).unwrap();
    let ds = store.create_dataset("d").unwrap();
    let (len, chunk) = (1u64 << 17, 1u64 << 16);
    ds.define_array("a", ArraySpec::new(DType::Float32, [len]).chunk_shape([chunk])).unwrap();
    let data: Vec<f32> = (0..len).map(|i| i as f32 * 0.5).collect();
    ds.write_array("a", &[0], ndarray::ArrayView1::from(&data[..])).unwrap();
    store.flush().unwrap();
    let block = store.array_blocks("d", "a").unwrap().into_iter().find(|b| b.coord == [0]).unwrap();
    drop((ds, store));
    let read = |ds: &Dataset| ds.read_array::<f32>("a", &[10], &[len - 20]);
    let ds = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
    assert_eq!(read(&ds).unwrap().as_slice().unwrap(), &data[10..(len - 10) as usize]);
    let good = std::fs::read(&block.path).unwrap();
    // In the skipped head, inside the row, and in its last, partial piece.
    for at in [20, 150_001, (chunk * 4 - 3) as usize] {
        let mut bad = good.clone();
        bad[block.offset_bytes as usize + at] ^= 0x01;
        std::fs::write(&block.path, &bad).unwrap();
        let ds = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
        match read(&ds) {
            Err(Error::ChecksumMismatch { coord, .. }) => assert_eq!(coord, [0], "byte {at}"),
            other => panic!("byte {at}: expected a checksum mismatch, got {other:?}"),
        }
    }
    std::fs::write(&block.path, &good).unwrap();
}

#[test]
fn large_decoded_and_pending_uncompressed_blocks_copied_out_by_rows_read_back() {
    // Rows hashed behind the copy from blocks not mapped: lz4 chunks of 1.44 MB (decoded
    // into a worker's buffer), and uncompressed chunks of a session
    // that stages nothing, read before the flush (read back from the pending fragment).
    let dir = test_dir!();
    let n = 600usize;
    let data = ndarray::Array2::from_shape_fn((2 * n, 2 * n), |(i, j)| ((i * 7 + j) % 1000) as f32);
    let boxes = [([0u64, 0u64], [2 * n as u64, 2 * n as u64]), ([n as u64 + 5, 3], [40, n as u64 + 50])];
    let check = |ds: &Dataset, what: &str| {
        for (start, shape) in boxes {
            let [r, c] = start.map(|v| v as usize);
            let expected = data.slice(ndarray::s![r..r + shape[0] as usize, c..c + shape[1] as usize]);
            assert_eq!(ds.read_array::<f32>("a", &start, &shape).unwrap(), expected.into_dyn(), "{what} {start:?}");
        }
    };
    for (codec, stored) in [(Codec::Lz4, BlockCodec::Lz4), (Codec::None, BlockCodec::None)] {
        let path = dir.join(&format!("{stored:?}"));
        let config = StoreConfig { codec, ..StoreConfig::default() };
        let store = Atlas::create_with(&path, config, &OpenOptions::default().staging_bytes(0)).unwrap();
        let ds = store.create_dataset("d").unwrap();
        ds.define_array(
            "a",
            ArraySpec::new(DType::Float32, [2 * n as u64, 2 * n as u64]).chunk_shape([n as u64, n as u64]),
        )
        .unwrap();
        ds.write_array("a", &[0, 0], data.view()).unwrap();
        check(&ds, "pending");
        store.flush().unwrap();
        let blocks = store.array_blocks("d", "a").unwrap();
        assert!(blocks.iter().all(|b| b.codec == stored && b.stored_bytes <= b.raw_bytes), "{blocks:?}");
        check(&Atlas::open(&path).unwrap().open_dataset("d").unwrap(), "committed");
    }
}

#[test]
fn every_single_byte_flip_in_a_fragment_is_caught_or_harmless_for_every_codec() {
    let dir = test_dir!();
    let setups = [
        (Codec::None, Shuffle::Off),
        (Codec::None, Shuffle::On),
        (Codec::Zstd { level: 3 }, Shuffle::On),
        (Codec::Lz4, Shuffle::Off),
        (Codec::Lz4, Shuffle::ByteDelta),
        (Codec::Zstd { level: 1 }, Shuffle::Delta),
    ];
    let codecs =
        [BlockCodec::None, BlockCodec::None, BlockCodec::Zstd, BlockCodec::Lz4, BlockCodec::Lz4, BlockCodec::Zstd];
    for (i, ((codec, shuffle), block_codec)) in setups.into_iter().zip(codecs).enumerate() {
        let path = dir.join(&format!("s{i}"));
        let (data, fragment) = committed_2x32(&path, codec, shuffle);
        let blocks = Atlas::open(&path).unwrap().array_blocks("d", "a").unwrap();
        let filter = (shuffle != Shuffle::Off, shuffle == Shuffle::ByteDelta, shuffle == Shuffle::Delta);
        let block_filter = |b: &atlas::BlockInfo| (b.shuffled, b.byte_delta, b.delta);
        assert!(blocks.iter().all(|b| (b.codec, block_filter(b)) == (block_codec, filter)), "{codec:?}: {blocks:?}");
        let good = std::fs::read(&fragment).unwrap();
        let (mut caught, mut harmless) = (0, 0);
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0xa5;
            std::fs::write(&fragment, &bad).unwrap();
            match read_all(&path, ReadOptions::default()) {
                Ok(values) => {
                    assert_eq!(values, data, "{codec:?}: flip at {at} read back wrong data");
                    harmless += 1;
                }
                Err(Error::ChecksumMismatch { .. } | Error::Corrupt { .. }) => caught += 1,
                Err(other) => panic!("{codec:?}: flip at {at} gave {other:?}"),
            }
        }
        std::fs::write(&fragment, &good).unwrap();
        assert_eq!(read_all(&path, ReadOptions::default()).unwrap(), data);
        // Only padding and reserved bytes may be harmless.
        assert!(caught > 0 && harmless < 16, "{codec:?}: {caught} caught, {harmless} harmless");
    }
}

#[test]
fn a_truncated_or_missing_fragment_is_a_typed_error_naming_the_file() {
    let dir = test_dir!();
    let (_, fragment) = committed_2x32(&dir.store(), Codec::Zstd { level: 3 }, Shuffle::Auto);
    let good = std::fs::read(&fragment).unwrap();
    for len in [good.len() - 1, good.len() / 2, 8, 0] {
        std::fs::write(&fragment, &good[..len]).unwrap();
        match Atlas::open(dir.store()) {
            Err(Error::Corrupt { path, .. }) => assert_eq!(path, fragment),
            other => panic!("truncated to {len}: {other:?}"),
        }
    }
    let mut longer = good.clone();
    longer.extend_from_slice(b"trailing");
    std::fs::write(&fragment, &longer).unwrap();
    assert_err!(Atlas::open(dir.store()), Error::Corrupt { .. });
    std::fs::remove_file(&fragment).unwrap();
    match Atlas::open(dir.store()) {
        Err(Error::Io { path, .. } | Error::Corrupt { path, .. }) => assert_eq!(path, fragment),
        other => panic!("missing fragment: {other:?}"),
    }
}

/// A store in `path` with the given metadata encoding holding a dataset, an array with some
/// data and attributes, committed; returns the metadata file's path.
fn committed_meta(path: &Path, encoding: (atlas::MetaFormat, atlas::MetaCompression)) -> std::path::PathBuf {
    let store = Atlas::create(path, util::meta_config(encoding.0, encoding.1)).unwrap();
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int16, [4, 4]).chunk_shape([2, 2]).fill_value(-1)).unwrap();
    ds.write_array("a", &[1, 1], arr2(&[[1i16, 2], [3, 4]]).view()).unwrap();
    ds.attrs().set("units", "K").unwrap();
    store.attrs().set("list", vec![1.5, f64::NAN]).unwrap();
    store.flush().unwrap();
    path.join(store.meta_file_name())
}

#[test]
fn a_corrupt_metadata_byte_makes_open_return_corrupt_in_every_encoding() {
    let dir = test_dir!();
    for (format, compression, name) in ENCODINGS {
        let store = dir.join(name);
        let meta = committed_meta(&store, (format, compression));
        let good = std::fs::read(&meta).unwrap();
        let mut bad = good.clone();
        bad[0] ^= 0xff; // breaks the JSON brace, the msgpack map marker, or the frame magic
        std::fs::write(&meta, &bad).unwrap();
        match Atlas::open(&store) {
            Err(Error::Corrupt { path, detail }) => {
                assert_eq!(path, meta, "{name}");
                assert!(!detail.is_empty());
            }
            other => panic!("{name}: {other:?}"),
        }
        std::fs::write(&meta, b"").unwrap();
        assert_err!(Atlas::open(&store), Error::Corrupt { .. });
        std::fs::write(&meta, &good[..good.len() / 2]).unwrap();
        assert_err!(Atlas::open(&store), Error::Corrupt { .. });
    }
}

/// Reads everything an opened store holds, whatever the dtypes; returns the first error.
fn read_everything(store: &Atlas) -> Result<(), Error> {
    store.attrs().all()?;
    for name in store.list_datasets() {
        let ds = store.open_dataset(&name)?;
        ds.attrs().all()?;
        for array in ds.list_arrays()? {
            let meta = ds.array_meta(&array)?;
            if meta.shape.iter().product::<u64>() > 1 << 16 {
                continue;
            }
            let start = vec![0; meta.shape.len()];
            macro_rules! read {
                ($($d:ident => $t:ty),*) => {
                    match meta.dtype {
                        $(DType::$d => drop(ds.read_array::<$t>(&array, &start, &meta.shape)?),)*
                        other => panic!("unknown dtype {other:?}"),
                    }
                };
            }
            read!(Int8 => i8, Int16 => i16, Int32 => i32, Int64 => i64, UInt8 => u8, UInt16 => u16,
                  UInt32 => u32, UInt64 => u64, Float32 => f32, Float64 => f64);
        }
    }
    Ok(())
}

#[test]
fn every_single_byte_flip_in_the_metadata_opens_or_fails_with_a_typed_error_never_panics() {
    let dir = test_dir!();
    for (format, compression, name) in ENCODINGS {
        let store = dir.join(name);
        let meta = committed_meta(&store, (format, compression));
        let good = std::fs::read(&meta).unwrap();
        let original = crate::observe::dump(&Atlas::open(&store).unwrap()).unwrap();
        let mut refused = 0;
        for at in 0..good.len() {
            for mask in [0x01, 0xff] {
                let mut bad = good.clone();
                bad[at] ^= mask;
                std::fs::write(&meta, &bad).unwrap();
                match Atlas::open(&store) {
                    // The checksum covers what the file says, so a flip that still opens
                    // (in JSON whitespace, say) must read as the original.
                    Ok(opened) => {
                        let read = crate::observe::dump(&opened);
                        assert_eq!(read.as_ref().ok(), Some(&original), "{name}: flip {mask:#x} at {at}: {read:?}");
                    }
                    Err(Error::Corrupt { .. } | Error::UnsupportedVersion { .. } | Error::Io { .. }) => refused += 1,
                    Err(other) => panic!("{name}: flip {mask:#x} at {at}: {other:?}"),
                }
            }
        }
        assert!(refused > good.len() / 2, "{name}: only {refused} of {} flips refused", 2 * good.len());
        std::fs::write(&meta, &good).unwrap();
        read_everything(&Atlas::open(&store).unwrap()).unwrap();
    }
}

#[test]
fn a_newer_format_version_is_unsupported_version_not_corrupt() {
    let dir = test_dir!();
    drop(util::create(&dir.store()));
    let meta = dir.store().join("atlas.json");
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    json["format_version"] = 99.into();
    // Fields a newer version might add must not turn it into a corrupt store either.
    json["a_field_from_the_future"] = "x".into();
    std::fs::write(&meta, serde_json::to_vec(&json).unwrap()).unwrap();
    match Atlas::open(dir.store()) {
        Err(Error::UnsupportedVersion { path, found, max }) => {
            assert!(found == 99 && (1..99).contains(&max));
            assert_eq!(path, meta);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_write_that_fails_halfway_leaves_no_block_behind_after_flush() {
    let dir = test_dir!();
    let (data, fragment) = committed_2x32(&dir.store(), Codec::None, Shuffle::Off);
    // Damage row 1's block, so a write that must read it back (a partial chunk) fails there.
    let mut bytes = std::fs::read(&fragment).unwrap();
    let raw: Vec<u8> = data[32..].iter().flat_map(|v| v.to_le_bytes()).collect();
    let at = bytes.windows(raw.len()).position(|w| w == raw).unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(&fragment, &bytes).unwrap();

    let store = Atlas::open(dir.store()).unwrap();
    let ds = store.open_dataset("d").unwrap();
    // Row 0 is covered whole (encoded first), row 1 only in part: the write fails on row 1.
    let update = ndarray::Array2::from_elem((2, 16), 9.0f32);
    assert_err!(ds.write_array("a", &[0, 0], update.view()), Error::ChecksumMismatch { .. });
    store.flush().unwrap();
    drop((ds, store));
    let back = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap().read_array::<f32>("a", &[0, 0], &[1, 32]);
    assert_eq!(back.unwrap().into_raw_vec_and_offset().0, data[..32], "the failed write leaked into row 0");
}

#[test]
fn zstd_levels_outside_the_supported_range_are_invalid_arguments() {
    let dir = test_dir!();
    let bad = Codec::Zstd { level: 1000 };
    assert_err!(
        Atlas::create(dir.store(), StoreConfig { codec: bad, ..StoreConfig::default() }),
        Error::InvalidArgument { .. }
    );
    assert!(!dir.store().exists(), "a refused create must not touch the disk");
    let store = util::create(&dir.store());
    assert_err!(store.set_codec(bad), Error::InvalidArgument { .. });
    let ds = store.create_dataset("d").unwrap();
    let spec = ArraySpec::new(DType::Int8, [4]).codec(bad);
    assert_err!(ds.define_array("a", spec), Error::InvalidArgument { .. });
    let array = ds.define_array("b", ArraySpec::new(DType::Int8, [4])).unwrap();
    assert_err!(array.set_codec(Some(bad)), Error::InvalidArgument { .. });
    store.set_codec(Codec::Zstd { level: 19 }).unwrap();
}

#[test]
fn an_append_that_fails_leaves_the_array_as_it_was_and_can_be_retried() {
    // The last chunk row is half full and its block is corrupt: an append that completes it
    // reads that block and fails. It takes back its growth and records none of its blocks
    // (the rows past that chunk row, staged, included), so the array is as it was.
    let dir = test_dir!();
    let path = dir.store();
    let (store, ds) = uncompressed_store(&path);
    let array = ds.define_array("a", ArraySpec::new(DType::Float32, [2, 8]).chunk_shape([4, 8])).unwrap();
    let first = ndarray::Array2::from_shape_fn((2, 8), |(r, c)| (r * 8 + c) as f32 + 0.5);
    array.write(&[0, 0], first.view()).unwrap();
    store.flush().unwrap();
    drop((array, ds, store));
    let fragment = util::fragments(&path)[0].clone();
    let good = std::fs::read(&fragment).unwrap();
    let row: Vec<u8> = first.row(1).iter().flat_map(|v| v.to_le_bytes()).collect();
    let at = good.windows(row.len()).position(|w| w == row).expect("the block holds row 1");
    let mut bad = good.clone();
    bad[at] ^= 0x01;
    std::fs::write(&fragment, &bad).unwrap();

    let store = Atlas::open(&path).unwrap();
    let array = store.open_dataset("d").unwrap().array("a").unwrap();
    let more = ndarray::Array2::from_elem((5, 8), 7.0f32);
    // Inside a change begun beforehand, which the failed append must leave unchanged.
    let hold = store.begin_change().unwrap();
    assert_err!(array.append(more.view()), Error::ChecksumMismatch { .. });
    assert_eq!(array.meta().unwrap().shape, [2, 8], "the failed append's growth is taken back");
    assert!(store.release_if_unchanged(hold), "the failed append left a change behind");
    assert!(!store.has_pending_changes());
    assert_eq!(array.stats().unwrap().count, 16, "none of its values were recorded");
    // Repaired, the same append goes through, and only once.
    std::fs::write(&fragment, &good).unwrap();
    array.append(more.view()).unwrap();
    store.flush().unwrap();
    let back = Atlas::open(&path).unwrap().open_dataset("d").unwrap().read_array::<f32>("a", &[0, 0], &[7, 8]).unwrap();
    let expected = ndarray::concatenate(ndarray::Axis(0), &[first.view(), more.view()]).unwrap();
    assert_eq!(back, expected.into_dyn());
}
