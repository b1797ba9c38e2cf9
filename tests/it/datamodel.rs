//! The data model beyond plain numbers: bool and timestamp dtypes, persisted statistics,
//! resize and append.

use atlas::{ArraySpec, Atlas, Codec, DType, Error, Scalar, Shuffle, StoreConfig};
use ndarray::{Array1, Array2, arr1, s};

use crate::util::{self, assert_err, iota, test_dir, u64s};

fn reopen_ds(path: &std::path::Path) -> atlas::Dataset {
    Atlas::open(path).unwrap().open_dataset("d").unwrap()
}

#[test]
fn bool_and_timestamp_arrays_round_trip_through_a_commit() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("flag", ArraySpec::new(DType::Bool, [10]).chunk_shape([4]).fill_value(true)).unwrap();
    ds.define_array("time", ArraySpec::new(DType::Timestamp, [3]).fill_value(i64::MIN)).unwrap();
    ds.write_array("flag", &[2], arr1(&[false, true, false]).view()).unwrap();
    let times = arr1(&[1_700_000_000_000_000_000i64, -1, 0]);
    ds.write_array("time", &[0], times.view()).unwrap();
    store.flush().unwrap();

    let ds = reopen_ds(&dir.store());
    let flags = ds.read_array::<bool>("flag", &[0], &[10]).unwrap();
    assert_eq!(flags.into_raw_vec_and_offset().0, [true, true, false, true, false, true, true, true, true, true]);
    assert_eq!(ds.read_array::<i64>("time", &[0], &[3]).unwrap().into_raw_vec_and_offset().0, times.to_vec());
    assert_eq!(ds.array_meta("time").unwrap().dtype, DType::Timestamp);
    assert_err!(ds.read_array::<u8>("flag", &[0], &[1]), Error::DTypeMismatch { .. });
    // A bool fill must be 0 or 1.
    let bad = ArraySpec::new(DType::Bool, [1]).fill_value(2);
    assert_err!(ds.define_array("bad", bad), Error::InvalidArgument { .. });
}

#[test]
fn a_float32_fill_value_is_kept_as_the_float32_unwritten_elements_read() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    for (name, fill, stored) in
        [("third", Scalar::Float(1.0 / 3.0), 1.0f32 / 3.0), ("big", Scalar::Int(16_777_217), 16_777_216.0)]
    {
        let array = ds.define_array(name, ArraySpec::new(DType::Float32, [2]).fill_value(fill)).unwrap();
        assert_eq!(array.meta().unwrap().fill_value, Scalar::Float(f64::from(stored)), "{name}");
        assert_eq!(array.read::<f32>(&[0], &[2]).unwrap().into_raw_vec_and_offset().0, [stored; 2]);
    }
    let wide = ds.define_array("wide", ArraySpec::new(DType::Float64, [2]).fill_value(1.0 / 3.0)).unwrap();
    assert_eq!(wide.meta().unwrap().fill_value, Scalar::Float(1.0 / 3.0), "float64 keeps it as given");
}

#[test]
fn stats_ignore_nan_and_fill_and_count_unwritten_chunks_as_null() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let array =
        ds.define_array("t", ArraySpec::new(DType::Float32, [4, 4]).chunk_shape([2, 2]).fill_value(-1.0)).unwrap();
    // Chunk [0, 0]: 1, NaN, fill, 5. Chunk [0, 1]: all fill. Chunks of row 1: never written.
    array.write(&[0, 0], Array2::from_shape_vec((2, 2), vec![1.0f32, f32::NAN, -1.0, 5.0]).unwrap().view()).unwrap();
    array.write(&[0, 2], Array2::from_elem((2, 2), -1.0f32).view()).unwrap();
    let check = |stats: atlas::ArrayStats| {
        assert_eq!((stats.count, stats.null_count), (2, 14));
        assert_eq!((stats.min, stats.max), (Some(Scalar::Float(1.0)), Some(Scalar::Float(5.0))));
        assert_eq!((stats.sum, stats.mean), (6.0, Some(3.0)));
    };
    check(array.stats().unwrap()); // before the commit, from the pending index
    store.flush().unwrap();
    let ds = reopen_ds(&dir.store());
    check(ds.array_stats("t").unwrap());
    assert_eq!(ds.array_meta("t").unwrap().stats.map(|s| s.count), Some(2), "stats are persisted");

    let blocks = ds.block_stats("t").unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!((blocks[0].coord.clone(), blocks[0].count), (vec![0, 0], 2));
    assert_eq!((blocks[1].coord.clone(), blocks[1].count, blocks[1].min), (vec![0, 1], 0, None));
}

#[test]
fn an_all_nan_fill_array_has_no_valid_values_and_overwrites_replace_block_stats() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let array =
        ds.define_array("t", ArraySpec::new(DType::Float64, [6]).chunk_shape([3]).fill_value(f64::NAN)).unwrap();
    assert_eq!(array.stats().unwrap().count, 0);
    array.write(&[0], arr1(&[f64::NAN; 6]).view()).unwrap();
    assert_eq!(array.stats().unwrap().null_count, 6);
    array.write(&[0], arr1(&[3.0, -2.0, 7.0, 1.0, 1.0, 1.0]).view()).unwrap();
    store.flush().unwrap();
    array.write(&[3], arr1(&[10.0, 10.0, 10.0]).view()).unwrap(); // supersedes chunk [1]
    let stats = array.stats().unwrap();
    assert_eq!((stats.count, stats.sum, stats.max), (6, 38.0, Some(Scalar::Float(10.0))));
}

#[test]
fn block_stats_count_the_unfinished_chunk_an_append_holds_in_memory() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let array = ds.define_array("a", ArraySpec::new(DType::Float32, [0, 4]).chunk_shape([8, 4])).unwrap();
    array.append(Array2::from_elem((3, 4), 1.5f32).view()).unwrap(); // 3 of the chunk's 8 rows: staged
    assert_eq!(array.stats().unwrap().count, 12);
    let blocks = array.block_stats().unwrap();
    assert_eq!(blocks.len(), 1);
    let block = &blocks[0];
    assert_eq!((block.coord.clone(), block.count, block.max), (vec![0, 0], 12, Some(Scalar::Float(1.5))));
    assert!((block.sum - 18.0).abs() < 1e-9);
    store.flush().unwrap();
    let sealed = &reopen_ds(&dir.store()).block_stats("a").unwrap()[0];
    assert_eq!((sealed.count, sealed.max), (block.count, block.max), "as sealed at the flush");
}

#[test]
fn integer_stats_keep_full_range_and_sign() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let a = ds.define_array("a", ArraySpec::new(DType::Int64, [3])).unwrap();
    a.write(&[0], arr1(&[i64::MIN, 5, 0]).view()).unwrap();
    let b = ds.define_array("b", ArraySpec::new(DType::UInt64, [2])).unwrap();
    b.write(&[0], arr1(&[u64::MAX, 7]).view()).unwrap();
    let stats = a.stats().unwrap();
    assert_eq!((stats.count, stats.min, stats.max), (2, Some(Scalar::Int(i64::MIN)), Some(Scalar::Int(5))));
    let stats = b.stats().unwrap();
    assert_eq!((stats.min, stats.max), (Some(Scalar::Int(7)), Some(Scalar::UInt(u64::MAX))));
}

#[test]
fn shrinking_one_axis_rewrites_only_the_chunks_that_reach_past_it() {
    // Chunks [4, 4] of a [10, 10] array: the last chunk row reaches past axis 0, which
    // does not change; only the chunks past column 6 hold values the shrink must drop.
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let array =
        ds.define_array("a", ArraySpec::new(DType::Int32, [10, 10]).chunk_shape([4, 4]).fill_value(-1)).unwrap();
    let data = Array2::from_shape_fn((10, 10), |(i, j)| (i * 10 + j) as i32);
    array.write(&[0, 0], data.view()).unwrap();
    store.flush().unwrap();

    array.resize(&[10, 6]).unwrap();
    let mut rewritten: Vec<Vec<u64>> = store
        .array_blocks("d", "a")
        .unwrap()
        .into_iter()
        .filter(|b| b.state.is_uncommitted())
        .map(|b| b.coord)
        .collect();
    rewritten.sort();
    // Chunks [_, 2] (wholly past the new shape) become fill entries, which no listing shows.
    assert_eq!(rewritten, [[0, 1], [1, 1], [2, 1]]);
    let grid = [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]];
    let coords: Vec<Vec<u64>> = array.block_stats().unwrap().into_iter().map(|b| b.coord).collect();
    assert_eq!(coords, grid, "the chunks of the shrunk grid");
    let listed: Vec<Vec<u64>> = store.array_blocks("d", "a").unwrap().into_iter().map(|b| b.coord).collect();
    assert_eq!(listed, grid, "array_blocks lists what block_stats does");
    store.flush().unwrap();
    assert_eq!(store.verify(&mut |_, _| ()).unwrap().blocks_checked, 6, "verify counts the same blocks");
    array.resize(&[12, 10]).unwrap();
    let back = array.read::<i32>(&[0, 0], &[12, 10]).unwrap();
    for ((i, j), v) in back.into_dimensionality::<ndarray::Ix2>().unwrap().indexed_iter() {
        let expected = if i < 10 && j < 6 { data[[i, j]] } else { -1 };
        assert_eq!(*v, expected, "[{i}, {j}]");
    }
}

#[test]
fn shrinking_drops_data_and_growing_again_reads_fill() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let array = ds.define_array("a", ArraySpec::new(DType::Int32, [6, 5]).chunk_shape([4, 2]).fill_value(-9)).unwrap();
    let data = Array2::from_shape_fn((6, 5), |(i, j)| (i * 10 + j) as i32);
    array.write(&[0, 0], data.view()).unwrap();
    store.flush().unwrap();

    array.resize(&[3, 3]).unwrap();
    assert_eq!(array.read::<i32>(&[0, 0], &[3, 3]).unwrap(), data.slice(s![..3, ..3]).into_dyn());
    assert_err!(array.read::<i32>(&[0, 0], &[4, 3]), Error::OutOfBounds { .. });
    array.resize(&[7, 6]).unwrap();
    store.flush().unwrap();

    let array = reopen_ds(&dir.store()).array("a").unwrap();
    assert_eq!(array.meta().unwrap().shape, [7, 6]);
    let back = array.read::<i32>(&[0, 0], &[7, 6]).unwrap();
    for ((i, j), v) in back.into_dimensionality::<ndarray::Ix2>().unwrap().indexed_iter() {
        let expected = if i < 3 && j < 3 { data[[i, j]] } else { -9 };
        assert_eq!(*v, expected, "[{i}, {j}]");
    }
    let stats = array.stats().unwrap();
    assert_eq!((stats.count, stats.null_count), (9, 42 - 9));
}

#[test]
fn resize_refuses_another_number_of_dimensions_and_overflow() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let array = ds.define_array("a", ArraySpec::new(DType::Int8, [4])).unwrap();
    assert_err!(array.resize(&[4, 1]), Error::ShapeMismatch { .. });
    assert_err!(
        ds.define_array("b", ArraySpec::new(DType::Int64, [4, 4])).unwrap().resize(&[u64::MAX, 2]),
        Error::InvalidArgument { .. }
    );
    assert_err!(ds.resize_array("missing", &[1]), Error::NotFound { .. });
}

#[test]
fn resizing_to_the_shape_the_array_has_changes_nothing() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    store.create_dataset("d").unwrap().define_array("a", ArraySpec::new(DType::Int8, [4])).unwrap();
    store.flush().unwrap();
    let array = store.open_dataset("d").unwrap().array("a").unwrap();
    let other = Atlas::open(dir.store()).unwrap();
    let hold = other.begin_change().unwrap();
    assert!(hold.started(), "the other handle holds the writer lock");
    array.resize(&[4]).unwrap();
    assert!(!store.has_pending_changes(), "no session, no lock asked for");
    assert!(other.release_if_unchanged(hold));
    // The newest commit decides: on a stale handle, the same shape as its own is a change.
    other.open_dataset("d").unwrap().array("a").unwrap().resize(&[6]).unwrap();
    other.flush().unwrap();
    array.resize(&[4]).unwrap();
    assert!(store.has_pending_changes());
    store.flush().unwrap();
    assert_eq!(other.refresh().and_then(|()| other.open_dataset("d")?.array("a")?.meta()).unwrap().shape, [4]);
}

#[test]
fn a_thousand_small_appends_read_back_exactly() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("series", ArraySpec::new(DType::Float32, [0, 3]).chunk_shape([64, 3]).fill_value(f32::NAN))
        .unwrap();
    let row = |i: usize| Array2::from_shape_fn((1, 3), |(_, j)| (i * 3 + j) as f32);
    for i in 0..1000 {
        ds.append_array("series", row(i).view()).unwrap();
        if i % 250 == 249 {
            store.flush().unwrap();
        }
    }
    store.flush().unwrap();
    let ds = reopen_ds(&dir.store());
    let all = ds.read_array::<f32>("series", &[0, 0], &[1000, 3]).unwrap();
    let expected = Array1::from_shape_fn(3000, |k| k as f32);
    assert_eq!(all.into_raw_vec_and_offset().0, expected.to_vec());
    assert_eq!(ds.array_stats("series").unwrap().count, 3000);
    let wrong_width = ds.append_array("series", Array2::<f32>::zeros((1, 4)).view());
    let says = "the appended data's shape [1, 4] is not [n, 3] (the array's is [1000, 3])";
    assert!(matches!(&wrong_width, Err(Error::ShapeMismatch { detail, .. }) if detail == says), "{wrong_width:?}");
    assert_err!(ds.append_array("series", Array2::<f64>::zeros((1, 3)).view()), Error::DTypeMismatch { .. });
    assert_eq!(ds.array_meta("series").unwrap().shape, [1000, 3], "a refused append must not grow the array");
}

#[test]
fn a_chunk_written_with_only_the_fill_value_takes_no_space() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Float64, [1 << 16]).chunk_shape([1 << 14])).unwrap();
    ds.write_array("a", &[0], Array1::<f64>::zeros(1 << 16).view()).unwrap();
    store.flush().unwrap();
    assert!(util::data_bytes(&dir.store()) < 4096, "{} bytes for an all-fill array", util::data_bytes(&dir.store()));
    let blocks = store.array_blocks("d", "a").unwrap();
    assert_eq!(blocks.len(), 4);
    assert!(blocks.iter().all(|b| b.is_fill && b.stored_bytes == 0), "{blocks:?}");
    assert_eq!(
        reopen_ds(&dir.store()).read_array::<f64>("a", &[100], &[2]).unwrap().into_raw_vec_and_offset().0,
        [0.0, 0.0]
    );
}

#[test]
fn a_nan_fill_of_other_bits_reads_the_same_before_and_after_reopening() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    // R's NA: a NaN whose payload is 1954, and the negative NaN that 0.0 / 0.0 gives on x86.
    let nans = [f64::from_bits(0x7ff0_0000_0000_07a2), f64::from_bits(0xfff8_0000_0000_0000)];
    for (i, nan) in nans.into_iter().enumerate() {
        let spec = ArraySpec::new(DType::Float64, [8]).chunk_shape([4]).fill_value(nan);
        ds.define_array(&format!("a{i}"), spec).unwrap().write(&[0], arr1(&[nan; 4]).view()).unwrap();
    }
    store.flush().unwrap();
    let bits = |ds: &atlas::Dataset, name: &str| -> Vec<u64> {
        ds.read_array::<f64>(name, &[0], &[8]).unwrap().iter().map(|v| v.to_bits()).collect()
    };
    let reopened = reopen_ds(&dir.store());
    for (i, nan) in nans.into_iter().enumerate() {
        let name = format!("a{i}");
        let expected = [[nan.to_bits(); 4], [f64::NAN.to_bits(); 4]].concat();
        assert_eq!(bits(&ds, &name), expected, "{name}: the written NaNs kept, the fill the standard NaN");
        assert_eq!(bits(&reopened, &name), expected, "{name}, reopened");
    }
}

#[test]
fn string_arrays_hold_empty_and_multibyte_values_across_chunks_and_commits() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let names = ds.define_array("names", ArraySpec::new(DType::String, [3, 4]).chunk_shape([2, 3])).unwrap();
    let values = ndarray::Array2::from_shape_fn((3, 4), |(i, j)| match (i + j) % 4 {
        0 => String::new(),
        1 => "\u{00e9}t\u{00e9} \u{1f30a}".to_string(),
        2 => format!("station {i}-{j}"),
        _ => "x".repeat(i * 100 + j),
    });
    names.write_strings(&[0, 0], values.view()).unwrap();
    store.flush().unwrap();
    // A partial overwrite inside one chunk keeps the chunk's other strings.
    names.write_strings(&[1, 1], ndarray::arr2(&[["mid"]]).view()).unwrap();
    let mut expected = values.clone();
    expected[[1, 1]] = "mid".to_string();
    assert_eq!(names.read_strings(&[0, 0], &[3, 4]).unwrap(), expected.clone().into_dyn());
    store.flush().unwrap();

    let names = reopen_ds(&dir.store()).array("names").unwrap();
    assert_eq!(names.read_strings(&[1, 1], &[2, 2]).unwrap(), expected.slice(s![1..3, 1..3]).into_dyn());
    let empties = expected.iter().filter(|s| s.is_empty()).count() as u64;
    let stats = names.stats().unwrap();
    assert_eq!((stats.count, stats.null_count, stats.min), (12 - empties, empties, None));
    assert_err!(names.read::<u8>(&[0, 0], &[1, 1]), Error::DTypeMismatch { .. });
    let numbers = reopen_ds(&dir.store()).define_array("n", ArraySpec::new(DType::Int8, [1]));
    assert_err!(numbers.unwrap().read_strings(&[0], &[1]), Error::DTypeMismatch { .. });
}

#[test]
fn string_arrays_append_and_shrink_like_numeric_ones() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let log = ds.define_array("log", ArraySpec::new(DType::String, [0]).chunk_shape([4])).unwrap();
    for i in 0..10 {
        log.append_strings(arr1(&[format!("line {i}")]).view()).unwrap();
    }
    log.resize(&[5]).unwrap();
    log.resize(&[7]).unwrap();
    store.flush().unwrap();
    let back = reopen_ds(&dir.store()).array("log").unwrap().read_strings(&[0], &[7]).unwrap();
    let expected: Vec<String> = (0..7).map(|i| if i < 5 { format!("line {i}") } else { String::new() }).collect();
    assert_eq!(back.into_raw_vec_and_offset().0, expected);
}

#[test]
fn a_shrink_drops_a_damaged_chunk_it_keeps_nothing_of_without_reading_it() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let spec = |dtype| ArraySpec::new(dtype, [5]).chunk_shape([2]).codec(Codec::None);
    let names = ds.define_array("s", spec(DType::String)).unwrap();
    names.write_strings(&[0], arr1(&["a", "b", "c", "d", "e"]).view()).unwrap();
    let numbers = ds.define_array("n", spec(DType::UInt8)).unwrap();
    numbers.write(&[0], arr1(&[1u8, 2, 3, 4, 5]).view()).unwrap();
    store.flush().unwrap();
    for array in ["d/s", "d/n"] {
        util::damage_block(&store, array, &[2]);
    }
    names.resize(&[2]).unwrap();
    numbers.resize(&[2]).unwrap();
    names.resize(&[5]).unwrap();
    numbers.resize(&[5]).unwrap();
    store.flush().unwrap();
    assert_eq!(names.read_strings(&[0], &[5]).unwrap().into_raw_vec_and_offset().0, ["a", "b", "", "", ""]);
    assert_eq!(numbers.read::<u8>(&[0], &[5]).unwrap().into_raw_vec_and_offset().0, [1, 2, 0, 0, 0]);
}

#[test]
fn a_trained_zstd_dictionary_shrinks_small_chunks_and_reads_back_after_reopen() {
    let dir = test_dir!();
    let field = Array2::from_shape_fn((256, 512), |(i, j)| 15.0 + ((i as f32) * 0.05).sin() + (j as f32 * 0.01).cos());
    let mut sizes = Vec::new();
    for train in [false, true] {
        let path = dir.join(if train { "dict" } else { "plain" });
        let store = util::create(&path);
        let ds = store.create_dataset("d").unwrap();
        let spec = ArraySpec::new(DType::Float32, [256, 512]).chunk_shape([2, 512]).zstd_dictionary(train);
        ds.define_array("t", spec).unwrap();
        ds.write_array("t", &[0, 0], field.view()).unwrap();
        store.flush().unwrap();
        sizes.push(util::data_bytes(&path));
        let reopened = Atlas::open(&path).unwrap();
        let back = reopened.open_dataset("d").unwrap().read_array::<f32>("t", &[0, 0], &[256, 512]).unwrap();
        assert_eq!(back, field.clone().into_dyn());
        let codecs: Vec<atlas::BlockCodec> = reopened.array_blocks("d", "t").unwrap().iter().map(|b| b.codec).collect();
        let expected = if train { atlas::BlockCodec::ZstdDict } else { atlas::BlockCodec::Zstd };
        assert!(codecs.iter().all(|c| *c == expected), "{codecs:?}");
        assert_eq!(reopened.open_dataset("d").unwrap().array_meta("t").unwrap().zstd_dictionary.is_some(), train);
        assert_eq!(reopened.verify(&mut |_, _| {}).unwrap().bad_blocks.len(), 0);
    }
    assert!(sizes[1] * 10 < sizes[0] * 9, "dictionary {} bytes vs plain {} bytes", sizes[1], sizes[0]);
}

#[test]
fn appends_to_an_array_with_a_trained_dictionary_are_staged_and_sealed_with_it() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let spec = ArraySpec::new(DType::Float32, [64, 512]).chunk_shape([2, 512]).zstd_dictionary(true);
    let a = ds.define_array("t", spec).unwrap();
    let row = |i: usize| Array2::from_shape_fn((1, 512), |(_, j)| 15.0 + (i as f32 * 0.05).sin() + j as f32 * 0.01);
    let mut model = Array2::from_shape_fn((64, 512), |(i, j)| row(i)[[0, j]]);
    a.write(&[0, 0], model.view()).unwrap(); // 32 whole chunks: the dictionary is trained
    assert!(a.meta().unwrap().zstd_dictionary.is_some());
    for i in 64..67 {
        a.append(row(i).view()).unwrap();
        model.push_row(row(i).row(0)).unwrap();
    }
    let last = |store: &Atlas| store.array_blocks("d", "t").unwrap().pop().unwrap();
    assert_eq!(last(&store).state, atlas::BlockState::Staged, "the unfinished chunk is held raw");
    store.flush().unwrap();
    assert_eq!(last(&store).codec, atlas::BlockCodec::ZstdDict);
    let reopened = Atlas::open(dir.store()).unwrap();
    assert_eq!(
        reopened.open_dataset("d").unwrap().read_array::<f32>("t", &[0, 0], &[67, 512]).unwrap(),
        model.into_dyn()
    );
}

#[test]
fn a_dictionary_array_changes_codec_mid_life_and_every_block_reads_with_its_own() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let spec = ArraySpec::new(DType::Float32, [64, 512]).chunk_shape([2, 512]).zstd_dictionary(true);
    let a = store.create_dataset("d").unwrap().define_array("t", spec).unwrap();
    let value = |i: usize, j: usize, k: f32| 15.0 + (i as f32 * 0.05).sin() + j as f32 * 0.01 + k;
    let mut model = Array2::from_shape_fn((64, 512), |(i, j)| value(i, j, 0.0));
    a.write(&[0, 0], model.view()).unwrap(); // 32 whole chunks: the dictionary is trained
    store.flush().unwrap();
    // The first half again with lz4: dictionary blocks and lz4 blocks side by side.
    a.set_codec(Some(Codec::Lz4)).unwrap();
    let half = Array2::from_shape_fn((32, 512), |(i, j)| value(i, j, 1.0));
    a.write(&[0, 0], half.view()).unwrap();
    model.slice_mut(ndarray::s![..32, ..]).assign(&half);
    store.flush().unwrap();
    let codecs = |store: &Atlas| store.array_blocks("d", "t").unwrap().iter().map(|b| b.codec).collect::<Vec<_>>();
    let mixed = codecs(&store);
    assert_eq!(mixed[..16], [atlas::BlockCodec::Lz4; 16]);
    assert_eq!(mixed[16..], [atlas::BlockCodec::ZstdDict; 16]);
    let read = |store: &Atlas| store.open_dataset("d").unwrap().read_array::<f32>("t", &[0, 0], &[64, 512]).unwrap();
    assert_eq!(read(&store), model.clone().into_dyn());
    // Recompressed with zstd, the array's dictionary is used again; then compacted.
    store.recompress_array("d", "t", Codec::Zstd { level: 1 }, None).unwrap();
    store.flush().unwrap();
    assert_eq!(codecs(&store), [atlas::BlockCodec::ZstdDict; 32]);
    store.compact().unwrap();
    let reopened = Atlas::open(dir.store()).unwrap();
    assert_eq!(read(&reopened), model.into_dyn());
    let report = reopened.verify(&mut |_, _| {}).unwrap();
    assert_eq!((report.blocks_checked, report.bad_blocks.len()), (32, 0));
}

#[test]
fn dictionary_arrays_with_large_chunks_or_lz4_train_none_and_stage_their_last_chunk() {
    // Asked for a dictionary, but with chunks over 1 MiB (a dictionary pays only on small
    // ones; training on them would copy up to 64 GiB) or another codec than zstd: an
    // append of 16 chunks and a half trains nothing and, as any append, holds its
    // unfinished last chunk in memory.
    let dir = test_dir!();
    for (name, codec, chunk) in [("large", Codec::Zstd { level: 1 }, 1_100_000_usize), ("lz4", Codec::Lz4, 256)] {
        let store = util::create(&dir.join(name));
        let spec = ArraySpec::new(DType::UInt8, [0]).chunk_shape([chunk as u64]).codec(codec).zstd_dictionary(true);
        let a = store.create_dataset("d").unwrap().define_array("a", spec).unwrap();
        let data = Array1::from_shape_fn(16 * chunk + chunk / 2, |i| (i % 251) as u8);
        a.append(data.view()).unwrap();
        assert!(a.meta().unwrap().zstd_dictionary.is_none(), "{name}: a dictionary was trained");
        let last = store.array_blocks("d", "a").unwrap().pop().unwrap();
        assert_eq!(last.state, atlas::BlockState::Staged, "{name}: the unfinished chunk was encoded");
        store.flush().unwrap();
        assert_eq!(a.read::<u8>(&[0], &[data.len() as u64]).unwrap(), data.into_dyn(), "{name}");
    }
}

#[test]
fn shuffled_chunks_encoded_from_the_callers_rows_keep_their_codec_stats_and_fallbacks() {
    // Whole chunks of 25 600 bytes (more than one 16 KiB shuffle piece), each from 64 rows of
    // the input that are not one contiguous run: smooth, noise (no compressor makes it
    // smaller, so it is stored as it is), all fill, smooth.
    let noise = |i: u64| {
        let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ((x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 32) as u32
    };
    let shape = [64, 400];
    let model = iota(&shape, |i| match (i % 400) / 100 {
        1 => noise(i as u64),
        2 => 0,
        _ => (i / 7 % 1000) as u32 + 1,
    });
    let dir = test_dir!();
    let codecs = [
        (Codec::Zstd { level: 3 }, atlas::BlockCodec::Zstd),
        (Codec::Lz4, atlas::BlockCodec::Lz4),
        (Codec::None, atlas::BlockCodec::None),
    ];
    for (codec, name) in codecs {
        let path = dir.join(&format!("{codec:?}"));
        let store =
            Atlas::create(&path, StoreConfig { codec, shuffle: Shuffle::On, ..StoreConfig::default() }).unwrap();
        let ds = store.create_dataset("d").unwrap();
        ds.define_array("a", ArraySpec::new(DType::UInt32, u64s(&shape)).chunk_shape([64, 100])).unwrap();
        ds.write_array("a", &[0, 0], model.view()).unwrap();
        store.flush().unwrap();

        let ds = reopen_ds(&path);
        assert!(ds.read_array::<u32>("a", &[0, 0], &u64s(&shape)).unwrap() == model, "{codec:?} read back");
        let blocks = store.array_blocks("d", "a").unwrap();
        let encodings: Vec<_> = blocks.iter().map(|b| (b.codec, b.shuffled, b.is_fill)).collect();
        let written = (name, true, false);
        let raw = if codec == Codec::None { written } else { (atlas::BlockCodec::None, false, false) };
        assert_eq!(encodings, [written, raw, (written.0, true, true), written], "{codec:?}");
        for (column, stats) in ds.block_stats("a").unwrap().iter().enumerate() {
            let values: Vec<u64> = model
                .slice(s![.., column * 100..(column + 1) * 100])
                .iter()
                .map(|&v| u64::from(v))
                .filter(|&v| v != 0)
                .collect();
            assert_eq!((stats.count, stats.sum), (values.len() as u64, values.iter().sum::<u64>() as f64), "{codec:?}");
            let extreme = |v: Option<&u64>| v.map(|&v| Scalar::from(v));
            assert_eq!((stats.min, stats.max), (extreme(values.iter().min()), extreme(values.iter().max())));
        }
    }
}

#[test]
fn large_shuffled_chunks_encoded_from_the_callers_rows_read_back_with_their_stats() {
    // Chunks of 4 MiB, zstd with shuffle: a chunk whose rows are not one contiguous run of
    // the input is encoded from those rows, never gathered into one buffer. Two bytes and
    // eight bytes per element; one chunk of each array is all fill (stored without bytes).
    // With and without the byte delta (carried from piece to piece of a plane); with the
    // element delta (such chunks are gathered and filtered whole, and read back streamed,
    // the delta undone piece after piece).
    let dir = test_dir!();
    for shuffle in [Shuffle::On, Shuffle::ByteDelta, Shuffle::Delta] {
        large_shuffled_chunks_round_trip(&dir.join(&format!("{shuffle:?}")), shuffle);
    }
}

fn large_shuffled_chunks_round_trip(path: &std::path::Path, shuffle: Shuffle) {
    let config = StoreConfig { codec: Codec::Zstd { level: 1 }, shuffle, ..StoreConfig::default() };
    let store = Atlas::create(path, config).unwrap();
    let ds = store.create_dataset("d").unwrap();
    let model = |shape: &[usize], fill_from: usize| {
        iota(shape, |i| if i % shape[2] >= fill_from { 0 } else { (i * 7 % 60_000 + 1) as u64 })
    };
    let shape = [2, 512, 4096];
    let narrow = model(&shape, 2048);
    ds.define_array("u16", ArraySpec::new(DType::UInt16, u64s(&shape)).chunk_shape([2, 512, 2048])).unwrap();
    ds.write_array("u16", &[0, 0, 0], narrow.mapv(|v| v as u16).view()).unwrap();
    let shape = [1, 512, 2048];
    let wide = model(&shape, 1024);
    ds.define_array("f64", ArraySpec::new(DType::Float64, u64s(&shape)).chunk_shape([1, 512, 1024])).unwrap();
    ds.write_array("f64", &[0, 0, 0], wide.mapv(|v| v as f64 * 0.5).view()).unwrap();
    store.flush().unwrap();

    let ds = reopen_ds(path);
    let back = ds.read_array::<u16>("u16", &[0, 0, 0], &[2, 512, 4096]).unwrap();
    assert!(back == narrow.mapv(|v| v as u16), "u16 read back");
    let back = ds.read_array::<f64>("f64", &[0, 0, 0], &[1, 512, 2048]).unwrap();
    assert!(back == wide.mapv(|v| v as f64 * 0.5), "f64 read back");
    for (name, model, scale) in [("u16", &narrow, 1.0), ("f64", &wide, 0.5)] {
        let blocks = ds.block_stats(name).unwrap();
        let values: Vec<u64> = model.iter().copied().filter(|&v| v != 0).collect();
        let sum = values.iter().sum::<u64>() as f64 * scale;
        assert_eq!(blocks.len(), 2, "{shuffle:?} {name}");
        assert_eq!((blocks[0].count, blocks[0].sum), (values.len() as u64, sum), "{shuffle:?} {name}");
        let (min, max) = (values.iter().min().copied().unwrap(), values.iter().max().copied().unwrap());
        let scalar = |v: u64| if name == "u16" { Scalar::from(v) } else { Scalar::Float(v as f64 * scale) };
        assert_eq!((blocks[0].min, blocks[0].max), (Some(scalar(min)), Some(scalar(max))), "{shuffle:?} {name}");
        assert_eq!((blocks[1].coord.clone(), blocks[1].count), (vec![0, 0, 1], 0), "{shuffle:?} {name}: all fill");
    }
}

#[test]
fn the_element_delta_shrinks_steady_series_far_below_the_shuffle_and_reads_them_back() {
    // One second apart, 64 Ki timestamps; a smooth field along its last axis; both with the
    // shuffle alone, the byte delta and the element delta, under zstd and lz4.
    let dir = test_dir!();
    let times = Array1::from_shape_fn(1 << 16, |i| 1_700_000_000_000_000_000 + i as i64 * 1_000_000_000);
    let field = Array2::from_shape_fn((64, 1024), |(r, c)| ((c as f32) * 0.01).sin() * 10.0 + r as f32);
    for codec in [Codec::Zstd { level: 3 }, Codec::Lz4] {
        let mut stored = Vec::new();
        for shuffle in [Shuffle::On, Shuffle::ByteDelta, Shuffle::Delta] {
            let path = dir.join(&format!("{codec:?}-{shuffle:?}"));
            let store = Atlas::create(&path, StoreConfig { codec, shuffle, ..StoreConfig::default() }).unwrap();
            let ds = store.create_dataset("d").unwrap();
            ds.define_array("t", ArraySpec::new(DType::Timestamp, [1 << 16]).chunk_shape([1 << 14])).unwrap();
            ds.write_array("t", &[0], times.view()).unwrap();
            ds.define_array("f", ArraySpec::new(DType::Float32, [64, 1024]).chunk_shape([16, 1024])).unwrap();
            ds.write_array("f", &[0, 0], field.view()).unwrap();
            store.flush().unwrap();
            let ds = reopen_ds(&path);
            assert!(ds.read_array::<i64>("t", &[0], &[1 << 16]).unwrap() == times.view().into_dyn(), "{shuffle:?}");
            assert!(ds.read_array::<f32>("f", &[0, 0], &[64, 1024]).unwrap() == field.view().into_dyn(), "{shuffle:?}");
            let bytes = |a: &str| store.array_blocks("d", a).unwrap().iter().map(|b| b.stored_bytes).sum::<u64>();
            stored.push((bytes("t"), bytes("f")));
        }
        let [(t_on, f_on), (t_bytes, f_bytes), (t_elems, f_elems)] = stored[..] else { unreachable!() };
        assert!(t_elems * 10 < t_on && t_elems < t_bytes, "{codec:?} timestamps: {stored:?}");
        assert!(f_elems * 3 < f_on * 2 && f_elems < f_bytes, "{codec:?} field: {stored:?}");
    }
}

#[test]
fn a_timestamp_array_reads_nat_where_nothing_was_written_and_counts_the_epoch_as_a_time() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let t = ds.define_array("t", ArraySpec::new(DType::Timestamp, [3])).unwrap();
    assert_eq!(t.meta().unwrap().fill_value, Scalar::Int(i64::MIN));
    t.write(&[0], ndarray::arr1(&[0i64]).view()).unwrap();
    assert_eq!(t.read::<i64>(&[0], &[3]).unwrap(), ndarray::arr1(&[0, i64::MIN, i64::MIN]).into_dyn());
    let stats = ds.array_stats("t").unwrap();
    assert_eq!((stats.count, stats.null_count), (1, 2));
}
