//! Data in, same data out: every codec, metadata encoding and dtype; partial, edge, N-d and
//! scalar selections; fill values; attributes; codec changes mid-life; datasets and arrays.

use std::fmt::Debug;

use atlas::{
    ArraySpec, Atlas, AttrValue, BlockCodec, Codec, DEFAULT_CHUNK_BYTES, DType, Dataset, Element, EntityKind, Error,
    ReadOptions, Scalar, Shuffle, StoreConfig,
};
use ndarray::{ArrayD, IxDyn, Slice, arr0, arr1, arr2};

use crate::util::{self, ENCODINGS, assert_err, iota, test_dir, u64s};

const CODECS: [Codec; 5] =
    [Codec::Zstd { level: 3 }, Codec::Zstd { level: 1 }, Codec::Zstd { level: -5 }, Codec::Lz4, Codec::None];

#[test]
fn create_with_every_codec_round_trips_data_and_keeps_the_codec_after_reopen() {
    let dir = test_dir!();
    for (i, codec) in CODECS.into_iter().enumerate() {
        let path = dir.join(&format!("s{i}"));
        let store = Atlas::create(&path, StoreConfig { codec, ..StoreConfig::default() }).unwrap();
        assert_eq!(store.codec(), codec);
        let ds = store.create_dataset("d").unwrap();
        ds.define_array("a", ArraySpec::new(DType::Float32, [6, 10]).chunk_shape([4, 4])).unwrap();
        let data = iota(&[6, 10], |i| i as f32 * 0.25 - 3.0);
        ds.write_array("a", &[0, 0], data.view()).unwrap();
        store.flush().unwrap();
        drop((ds, store));

        let store = Atlas::open(&path).unwrap();
        assert_eq!(store.codec(), codec, "codec {codec:?} not kept");
        let back = store.open_dataset("d").unwrap().read_array::<f32>("a", &[0, 0], &[6, 10]).unwrap();
        assert_eq!(back, data, "codec {codec:?}");
    }
}

#[test]
fn store_config_default_is_zstd_level_3_json_uncompressed() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    assert_eq!(store.codec(), Codec::Zstd { level: 3 });
    assert_eq!(store.meta_file_name(), "atlas.json");
    assert_eq!(util::meta_files(&dir.store()), ["atlas.json"]);
}

#[test]
fn every_meta_encoding_writes_its_own_file_name_and_opens_without_format_args() {
    let dir = test_dir!();
    for (format, compression, name) in ENCODINGS {
        let path = dir.join(name);
        let store = Atlas::create(&path, util::meta_config(format, compression)).unwrap();
        assert_eq!(store.meta_file_name(), name);
        assert_eq!(util::meta_files(&path), [name]);
        store.create_dataset("d").unwrap();
        store.flush().unwrap();
        drop(store);

        let bytes = std::fs::read(path.join(name)).unwrap();
        let magic_ok = match name.rsplit('.').next().unwrap() {
            "zst" => bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
            "lz4" => bytes.starts_with(&[0x04, 0x22, 0x4d, 0x18]),
            "json" => bytes.starts_with(b"{"),
            // A msgpack map: fixmap (0x80..=0x8f) or map16/map32.
            _ => matches!(bytes[0], 0x80..=0x8f | 0xde | 0xdf),
        };
        assert!(magic_ok, "{name} does not start like its encoding: {:02x?}", &bytes[..8]);

        let store = Atlas::open(&path).unwrap();
        assert_eq!(store.meta_file_name(), name);
        assert!(store.dataset_exists("d"), "{name}");
        assert_eq!(util::meta_files(&path), [name], "a commit changed the encoding");
    }
}

/// Values of an element type covering its extremes.
trait Sample: Element + PartialEq + Debug {
    fn sample(i: usize) -> Self;
}

macro_rules! sample_int {
    ($($t:ty),*) => {$(
        impl Sample for $t {
            fn sample(i: usize) -> Self {
                match i {
                    0 => <$t>::MIN,
                    1 => <$t>::MAX,
                    2 => 0,
                    // Wrapping on purpose: spreads bit patterns over the whole range.
                    _ => (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) as $t,
                }
            }
        }
    )*};
}
sample_int!(i8, i16, i32, i64, u8, u16, u32, u64);

macro_rules! sample_float {
    ($($t:ident),*) => {$(
        impl Sample for $t {
            fn sample(i: usize) -> Self {
                match i {
                    0 => $t::MIN,
                    1 => $t::MAX,
                    2 => $t::INFINITY,
                    3 => $t::NEG_INFINITY,
                    4 => $t::MIN_POSITIVE,
                    5 => -0.0,
                    _ => i as $t * 1.5 - 20.0,
                }
            }
        }
    )*};
}
sample_float!(f32, f64);

fn write_sample<T: Sample>(ds: &Dataset) {
    let name = T::DTYPE.name();
    ds.define_array(name, ArraySpec::new(T::DTYPE, [5, 7]).chunk_shape([2, 3])).unwrap();
    ds.write_array(name, &[0, 0], iota(&[5, 7], T::sample).view()).unwrap();
}

fn check_sample<T: Sample>(ds: &Dataset, label: &str) {
    let name = T::DTYPE.name();
    assert_eq!(ds.array_meta(name).unwrap().dtype, T::DTYPE);
    let back = ds.read_array::<T>(name, &[0, 0], &[5, 7]).unwrap();
    assert_eq!(back, iota(&[5, 7], T::sample), "{name} with {label}");
}

macro_rules! for_all_dtypes {
    ($f:ident($($arg:expr),*)) => {{
        $f::<i8>($($arg),*);
        $f::<i16>($($arg),*);
        $f::<i32>($($arg),*);
        $f::<i64>($($arg),*);
        $f::<u8>($($arg),*);
        $f::<u16>($($arg),*);
        $f::<u32>($($arg),*);
        $f::<u64>($($arg),*);
        $f::<f32>($($arg),*);
        $f::<f64>($($arg),*);
    }};
}

#[test]
fn all_ten_dtypes_round_trip_with_every_codec_and_shuffle_setting() {
    let dir = test_dir!();
    let mut seen = Vec::new();
    for codec in [Codec::Zstd { level: 3 }, Codec::Lz4, Codec::None] {
        for shuffle in [Shuffle::Auto, Shuffle::On, Shuffle::Off, Shuffle::ByteDelta, Shuffle::Delta] {
            let label = format!("{codec:?} {shuffle:?}");
            let path = dir.join(&format!("s{}", seen.len()));
            seen.push(label.clone());
            let store = Atlas::create(&path, StoreConfig { codec, shuffle, ..StoreConfig::default() }).unwrap();
            let ds = store.create_dataset("d").unwrap();
            for_all_dtypes!(write_sample(&ds));
            // Reads of the uncommitted blocks...
            for_all_dtypes!(check_sample(&ds, &label));
            store.flush().unwrap();
            drop((ds, store));
            // ... and of the committed ones.
            let ds = Atlas::open(&path).unwrap().open_dataset("d").unwrap();
            assert_eq!(ds.list_arrays().unwrap().len(), 10);
            for_all_dtypes!(check_sample(&ds, &label));
        }
    }
}

#[test]
fn partial_chunk_writes_keep_the_other_elements_of_the_chunk() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int32, [8, 10]).chunk_shape([3, 4]).fill_value(-1)).unwrap();
    let mut model = ArrayD::from_elem(IxDyn(&[8, 10]), -1i32);
    let mut next = 0;
    let mut write = |ds: &Dataset, model: &mut ArrayD<i32>, start: [usize; 2], shape: [usize; 2]| {
        let block = iota(&shape, |i| next + i as i32);
        next += 1000;
        ds.write_array("a", &u64s(&start), block.view()).unwrap();
        model
            .slice_each_axis_mut(|ax| {
                let d = ax.axis.index();
                Slice::from(start[d]..start[d] + shape[d])
            })
            .assign(&block);
    };
    let check = |ds: &Dataset, model: &ArrayD<i32>, when: &str| {
        assert_eq!(&ds.read_array::<i32>("a", &[0, 0], &[8, 10]).unwrap(), model, "{when}");
    };

    write(&ds, &mut model, [1, 2], [3, 3]); // inside four chunks, none whole
    check(&ds, &model, "after first write");
    write(&ds, &mut model, [0, 0], [1, 1]);
    write(&ds, &mut model, [5, 7], [3, 3]); // edge chunks in both dimensions
    write(&ds, &mut model, [2, 3], [2, 2]); // overwrites part of the first write
    check(&ds, &model, "before flush");
    store.flush().unwrap();
    check(&ds, &model, "after flush");
    drop((ds, store));

    let store = Atlas::open(dir.store()).unwrap();
    let ds = store.open_dataset("d").unwrap();
    check(&ds, &model, "after reopen");
    // Partial writes over committed blocks merge with them.
    write(&ds, &mut model, [2, 1], [4, 6]);
    write(&ds, &mut model, [7, 0], [1, 10]);
    check(&ds, &model, "after writes over committed blocks");
    store.flush().unwrap();
    drop((ds, store));
    check(&Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap(), &model, "after second reopen");
}

fn read_box<T: Element>(ds: &Dataset, name: &str, start: &[usize], shape: &[usize]) -> ArrayD<T> {
    ds.read_array::<T>(name, &u64s(start), &u64s(shape)).unwrap()
}

fn expected_box<T: Clone>(full: &ArrayD<T>, start: &[usize], shape: &[usize]) -> ArrayD<T> {
    full.slice_each_axis(|ax| {
        let d = ax.axis.index();
        Slice::from(start[d]..start[d] + shape[d])
    })
    .to_owned()
}

#[test]
fn unaligned_hyperslab_reads_of_a_3d_array_match_the_written_data() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let shape = [7, 9, 5];
    ds.define_array("a", ArraySpec::new(DType::UInt16, u64s(&shape)).chunk_shape([3, 4, 2])).unwrap();
    let full = iota(&shape, |i| i as u16);
    ds.write_array("a", &[0, 0, 0], full.view()).unwrap();
    store.flush().unwrap();

    let mut reads = 0;
    for s0 in [0, 2, 3, 6] {
        for s1 in [0, 1, 4, 8] {
            for s2 in [0, 1, 3, 4] {
                let start = [s0, s1, s2];
                for e in [[1, 1, 1], [2, 3, 2], [4, 5, 1], [7, 9, 5]] {
                    let ext: Vec<usize> = (0..3).map(|d| e[d].min(shape[d] - start[d])).collect();
                    assert_eq!(
                        read_box::<u16>(&ds, "a", &start, &ext),
                        expected_box(&full, &start, &ext),
                        "start {start:?} shape {ext:?}"
                    );
                    reads += 1;
                }
            }
        }
    }
    assert_eq!(reads, 256);
}

#[test]
fn reads_of_chunks_larger_than_a_decode_piece_match_for_every_codec_and_shuffle() {
    // 40x40x41 f32 chunks are 256 KiB: many 16 KiB decode pieces, with 164-byte rows that
    // straddle piece ends. Whole reads, whole chunks out of place, and partial boxes.
    let dir = test_dir!();
    let shape = [50, 45, 41];
    let full = iota(&shape, |i| (i as f32).sqrt());
    let boxes =
        [([0, 0, 0], [50, 45, 41]), ([0, 0, 0], [40, 45, 41]), ([3, 5, 0], [30, 33, 41]), ([39, 1, 2], [11, 44, 7])];
    for (i, codec) in [Codec::Zstd { level: 1 }, Codec::Lz4, Codec::None].into_iter().enumerate() {
        for shuffle in [Shuffle::On, Shuffle::Off, Shuffle::ByteDelta, Shuffle::Delta] {
            let path = dir.join(&format!("s{i}{shuffle:?}"));
            let store = Atlas::create(&path, StoreConfig { codec, shuffle, ..StoreConfig::default() }).unwrap();
            let ds = store.create_dataset("d").unwrap();
            ds.define_array("a", ArraySpec::new(DType::Float32, u64s(&shape)).chunk_shape([40, 40, 41])).unwrap();
            ds.write_array("a", &[0, 0, 0], full.view()).unwrap();
            for flushed in [false, true] {
                if flushed {
                    store.flush().unwrap(); // pending blocks first, then committed ones
                }
                for (start, ext) in boxes {
                    let label = format!("{codec:?} {shuffle:?} flushed {flushed} at {start:?} of {ext:?}");
                    assert_eq!(read_box::<f32>(&ds, "a", &start, &ext), expected_box(&full, &start, &ext), "{label}");
                }
            }
        }
    }
}

#[test]
fn reads_and_writes_across_many_chunks_along_the_last_axis_match_with_gaps_and_every_codec() {
    // 40 chunks, 10 along the last axis: whole and partial reads and writes copy runs of
    // chunks next to each other along it row by row; some chunks are never written (fill).
    let dir = test_dir!();
    let shape = [4, 6, 40];
    let full = iota(&shape, |i| i as f32 * 0.5 - 7.0);
    for (i, codec) in [Codec::None, Codec::Zstd { level: 1 }].into_iter().enumerate() {
        for shuffle in [Shuffle::On, Shuffle::Off] {
            let path = dir.join(&format!("s{i}{shuffle:?}"));
            let store = Atlas::create(&path, StoreConfig { codec, shuffle, ..StoreConfig::default() }).unwrap();
            let ds = store.create_dataset("d").unwrap();
            let spec =
                ArraySpec::new(DType::Float32, u64s(&shape)).chunk_shape([2, 3, 4]).fill_value(Scalar::Float(9.0));
            ds.define_array("a", spec).unwrap();
            // Everything but the chunks [*, *, 5].
            let mut expected = full.clone();
            expected
                .slice_each_axis_mut(|ax| if ax.axis.index() == 2 { Slice::from(20..24) } else { Slice::from(..) })
                .fill(9.0);
            for (lo, hi) in [(0usize, 20), (24, 40)] {
                let part =
                    full.slice_each_axis(|ax| if ax.axis.index() == 2 { Slice::from(lo..hi) } else { Slice::from(..) });
                ds.write_array("a", &[0, 0, lo as u64], part).unwrap();
            }
            // A box over parts of many chunks (and the unwritten ones): each partly covered
            // chunk starts from its block or the fill value.
            let overlay = iota(&[3, 4, 35], |i| i as f32 + 1000.0);
            ds.write_array("a", &[1, 1, 2], overlay.view()).unwrap();
            expected
                .slice_each_axis_mut(|ax| Slice::from([1..4, 1..5, 2..37][ax.axis.index()].clone()))
                .assign(&overlay);
            store.flush().unwrap();
            for (start, ext) in [([0, 0, 0], [4, 6, 40]), ([1, 1, 3], [3, 4, 30]), ([0, 2, 17], [4, 1, 9])] {
                let label = format!("{codec:?} {shuffle:?} at {start:?} of {ext:?}");
                assert_eq!(read_box::<f32>(&ds, "a", &start, &ext), expected_box(&expected, &start, &ext), "{label}");
            }
        }
    }
}

#[test]
fn four_dimensional_unaligned_write_and_read_match_a_dense_model() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let shape = [3, 4, 5, 6];
    ds.define_array("a", ArraySpec::new(DType::Float64, u64s(&shape)).chunk_shape([2, 3, 2, 4]).fill_value(0.5))
        .unwrap();
    let mut model = ArrayD::from_elem(IxDyn(&shape), 0.5f64);
    let (start, ext) = ([1, 1, 1, 1], [2, 3, 3, 4]);
    let block = iota(&ext, |i| i as f64);
    ds.write_array("a", &u64s(&start), block.view()).unwrap();
    model
        .slice_each_axis_mut(|ax| Slice::from(start[ax.axis.index()]..start[ax.axis.index()] + ext[ax.axis.index()]))
        .assign(&block);
    store.flush().unwrap();
    let ds = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
    assert_eq!(read_box::<f64>(&ds, "a", &[0, 0, 0, 0], &shape), model);
    assert_eq!(
        read_box::<f64>(&ds, "a", &[1, 2, 0, 3], &[2, 2, 5, 2]),
        expected_box(&model, &[1, 2, 0, 3], &[2, 2, 5, 2])
    );
}

#[test]
fn edge_chunks_hold_only_the_part_inside_the_array() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int64, [10]).chunk_shape([4]).fill_value(7)).unwrap();
    assert_eq!(ds.array_meta("a").unwrap().chunk_grid(), [3]);
    ds.write_array("a", &[8], arr1(&[80i64, 90]).view()).unwrap();
    ds.write_array("a", &[3], arr1(&[30i64, 40]).view()).unwrap();
    store.flush().unwrap();
    let ds = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
    assert_eq!(
        ds.read_array::<i64>("a", &[0], &[10]).unwrap().into_raw_vec_and_offset().0,
        [7, 7, 7, 30, 40, 7, 7, 7, 80, 90]
    );
    assert_eq!(ds.read_array::<i64>("a", &[9], &[1]).unwrap().into_raw_vec_and_offset().0, [90]);
}

#[test]
fn scalar_array_of_shape_empty_reads_fill_then_the_written_value() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let a = ds.define_array("s", ArraySpec::new(DType::Float64, [0u64; 0]).fill_value(-2.0)).unwrap();
    assert_eq!(a.meta().unwrap().shape, Vec::<u64>::new());
    assert_eq!(a.read::<f64>(&[], &[]).unwrap(), arr0(-2.0).into_dyn());
    a.write(&[], arr0(3.25f64).view()).unwrap();
    assert_eq!(a.read::<f64>(&[], &[]).unwrap(), arr0(3.25).into_dyn());
    store.flush().unwrap();
    drop((a, ds, store));
    let ds = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
    assert_eq!(ds.read_array::<f64>("s", &[], &[]).unwrap(), arr0(3.25).into_dyn());
    let mut out = [0.0];
    ds.read_array_into("s", &[], &[], &mut out, ReadOptions::default()).unwrap();
    assert_eq!(out, [3.25]);
}

#[test]
fn empty_selections_read_as_empty_arrays_and_write_nothing() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int16, [4, 4]).chunk_shape([2, 2])).unwrap();
    store.flush().unwrap();
    let empty = ds.read_array::<i16>("a", &[4, 1], &[0, 3]).unwrap();
    assert_eq!(empty.shape(), [0, 3]);
    ds.write_array("a", &[2, 2], ndarray::Array2::<i16>::zeros((2, 0)).view()).unwrap();
    assert!(!store.has_pending_changes(), "an empty write started a change");
    store.flush().unwrap();
    assert!(util::fragments(&dir.store()).is_empty(), "an empty write produced a fragment");
}

#[test]
fn read_array_into_fills_the_callers_buffer_in_c_order() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::UInt8, [3, 5]).chunk_shape([2, 2])).unwrap();
    ds.write_array("a", &[0, 0], iota(&[3, 5], |i| i as u8).view()).unwrap();
    let mut out = [0u8; 6];
    ds.read_array_into("a", &[1, 1], &[2, 3], &mut out, ReadOptions::default()).unwrap();
    assert_eq!(out, [6, 7, 8, 11, 12, 13]);
    ds.read_array_into(
        "a",
        &[1, 1],
        &[2, 3],
        &mut out,
        ReadOptions { verify_checksums: false, ..ReadOptions::default() },
    )
    .unwrap();
    assert_eq!(out, [6, 7, 8, 11, 12, 13]);
    // The unverified read writes the buffer too (it is not what the first read left).
    out.fill(0);
    ds.read_array_into(
        "a",
        &[0, 2],
        &[2, 3],
        &mut out,
        ReadOptions { verify_checksums: false, ..ReadOptions::default() },
    )
    .unwrap();
    assert_eq!(out, [2, 3, 4, 7, 8, 9]);
}

#[test]
fn writes_from_non_contiguous_views_store_the_logical_elements() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int32, [3, 2]).chunk_shape([2, 2])).unwrap();
    let source = arr2(&[[1, 2, 3], [4, 5, 6]]);
    ds.write_array("a", &[0, 0], source.t()).unwrap();
    assert_eq!(ds.read_array::<i32>("a", &[0, 0], &[3, 2]).unwrap(), arr2(&[[1, 4], [2, 5], [3, 6]]).into_dyn());
    let every_other = arr1(&[10, 0, 20, 0, 30, 0]);
    ds.define_array("b", ArraySpec::new(DType::Int32, [3])).unwrap();
    ds.write_array("b", &[0], every_other.slice(ndarray::s![..;2])).unwrap();
    assert_eq!(ds.read_array::<i32>("b", &[0], &[3]).unwrap(), arr1(&[10, 20, 30]).into_dyn());
}

#[test]
fn newest_write_of_a_chunk_wins_within_a_session_and_across_commits() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::UInt32, [4]).chunk_shape([4])).unwrap();
    ds.write_array("a", &[0], arr1(&[1u32, 1, 1, 1]).view()).unwrap();
    ds.write_array("a", &[0], arr1(&[2u32, 2, 2, 2]).view()).unwrap();
    store.flush().unwrap();
    ds.write_array("a", &[0], arr1(&[3u32, 3, 3, 3]).view()).unwrap();
    store.flush().unwrap();
    ds.write_array("a", &[1], arr1(&[4u32]).view()).unwrap();
    store.flush().unwrap();
    let ds = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
    assert_eq!(ds.read_array::<u32>("a", &[0], &[4]).unwrap(), arr1(&[3, 4, 3, 3]).into_dyn());
}

#[test]
fn define_array_records_dims_shape_chunks_and_fill_and_they_survive_reopen() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let spec = ArraySpec::new(DType::Float32, [365, 18, 36])
        .dims(["time", "lat", "lon"])
        .chunk_shape([30, 18, 36])
        .fill_value(f32::NAN);
    ds.define_array("temp", spec).unwrap();
    ds.define_array("plain", ArraySpec::new(DType::Int8, [3, 4])).unwrap();
    store.flush().unwrap();
    drop((ds, store));

    let ds = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
    let meta = ds.array_meta("temp").unwrap();
    assert_eq!(meta.dtype, DType::Float32);
    assert_eq!(meta.shape, [365, 18, 36]);
    assert_eq!(meta.chunk_shape, [30, 18, 36]);
    assert_eq!(meta.dims, ["time", "lat", "lon"]);
    assert!(matches!(meta.fill_value, Scalar::Float(v) if v.is_nan()), "{:?}", meta.fill_value);
    assert_eq!(meta.codec, None);
    assert_eq!(meta.chunk_grid(), [13, 1, 1]);
    let plain = ds.array_meta("plain").unwrap();
    assert_eq!(plain.dims, ["dim_0", "dim_1"]);
    assert_eq!(plain.chunk_shape, [3, 4], "a small array is one chunk by default");
    assert_eq!(plain.fill_value, Scalar::Int(0));
    // Through the array handle too (compared via Debug: the NaN fill is not `==` itself).
    assert_eq!(format!("{:?}", ds.array("temp").unwrap().meta().unwrap()), format!("{meta:?}"));
}

#[test]
fn default_chunking_splits_a_large_array_into_chunks_of_at_most_default_chunk_bytes() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("big", ArraySpec::new(DType::Float64, [4096, 4096, 3])).unwrap();
    let meta = ds.array_meta("big").unwrap();
    assert_ne!(meta.chunk_shape, meta.shape);
    assert!(meta.chunk_bytes() <= DEFAULT_CHUNK_BYTES, "{:?}", meta.chunk_shape);
    assert!(meta.chunk_bytes() >= DEFAULT_CHUNK_BYTES / 4, "chunks {:?} are needlessly small", meta.chunk_shape);
    assert!(meta.chunk_grid().iter().product::<u64>() > 1);
    assert_eq!(meta.chunk_shape, atlas::default_chunk_shape(&meta.shape, DType::Float64));
}

#[test]
fn unwritten_chunks_read_as_the_fill_value_including_nan() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("nan", ArraySpec::new(DType::Float32, [6, 6]).chunk_shape([3, 3]).fill_value(f32::NAN)).unwrap();
    ds.define_array("neg", ArraySpec::new(DType::Int16, [6]).chunk_shape([4]).fill_value(-300)).unwrap();
    ds.define_array("max", ArraySpec::new(DType::UInt64, [2]).fill_value(u64::MAX)).unwrap();
    ds.define_array("zero", ArraySpec::new(DType::Float64, [2])).unwrap();
    // One chunk of "nan" written in part: its other elements are fill too.
    ds.write_array("nan", &[0, 0], arr2(&[[1.0f32, 2.0]]).view()).unwrap();
    store.flush().unwrap();
    let ds = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();

    let nan = ds.read_array::<f32>("nan", &[0, 0], &[6, 6]).unwrap();
    for ((i, j), v) in nan.into_dimensionality::<ndarray::Ix2>().unwrap().indexed_iter() {
        match (i, j) {
            (0, 0) => assert_eq!(*v, 1.0),
            (0, 1) => assert_eq!(*v, 2.0),
            _ => assert!(v.is_nan(), "[{i}, {j}] = {v}"),
        }
    }
    assert_eq!(ds.read_array::<i16>("neg", &[2], &[4]).unwrap(), arr1(&[-300i16; 4]).into_dyn());
    assert_eq!(ds.read_array::<u64>("max", &[0], &[2]).unwrap(), arr1(&[u64::MAX; 2]).into_dyn());
    assert_eq!(ds.read_array::<f64>("zero", &[0], &[2]).unwrap(), arr1(&[0.0; 2]).into_dyn());
}

#[test]
fn defining_a_huge_array_takes_no_space_and_one_written_chunk_takes_one_block() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    // 8 TiB of float64 if it were dense.
    let spec = ArraySpec::new(DType::Float64, [1 << 20, 1 << 20]).chunk_shape([64, 64]).fill_value(1.5);
    ds.define_array("huge", spec).unwrap();
    store.flush().unwrap();
    assert_eq!(util::data_bytes(&dir.store()), 0);
    let far = [(1 << 19) + 3, 999_999];
    assert_eq!(ds.read_array::<f64>("huge", &far, &[2, 2]).unwrap(), ArrayD::from_elem(IxDyn(&[2, 2]), 1.5));

    ds.write_array("huge", &[1_000_000, 5], arr2(&[[9.0f64]]).view()).unwrap();
    store.flush().unwrap();
    assert_eq!(util::fragments(&dir.store()).len(), 1);
    let bytes = util::data_bytes(&dir.store());
    assert!(bytes > 0 && bytes < 64 * 64 * 8, "one mostly-fill chunk took {bytes} bytes");
    let ds = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
    assert_eq!(
        ds.read_array::<f64>("huge", &[999_999, 4], &[2, 3]).unwrap(),
        arr2(&[[1.5, 1.5, 1.5], [1.5, 9.0, 1.5]]).into_dyn()
    );
}

/// One attribute of every kind, including the awkward ones.
fn every_attr() -> Vec<(&'static str, AttrValue)> {
    let mut inner = std::collections::BTreeMap::new();
    inner.insert("nan".to_string(), AttrValue::Float(f64::NAN));
    inner.insert("deep".to_string(), AttrValue::List(vec![AttrValue::List(vec![AttrValue::Bool(false)])]));
    let mut map = std::collections::BTreeMap::new();
    map.insert("inner".to_string(), AttrValue::Map(inner));
    map.insert("n".to_string(), AttrValue::Int(-1));
    vec![
        ("true", AttrValue::Bool(true)),
        ("false", AttrValue::Bool(false)),
        ("int", AttrValue::Int(42)),
        ("int_min", AttrValue::Int(i64::MIN)),
        ("int_max", AttrValue::Int(i64::MAX)),
        ("float", AttrValue::Float(1.5)),
        ("float_integral", AttrValue::Float(1.0)),
        ("float_neg_zero", AttrValue::Float(-0.0)),
        ("float_nan", AttrValue::Float(f64::NAN)),
        ("float_inf", AttrValue::Float(f64::INFINITY)),
        ("float_neg_inf", AttrValue::Float(f64::NEG_INFINITY)),
        ("float_tiny", AttrValue::Float(5e-324)),
        ("float_max", AttrValue::Float(f64::MAX)),
        ("string", AttrValue::from("ocean \"profiles\"\n\t\u{fc} \u{2713}")),
        ("string_empty", AttrValue::from("")),
        ("string_date", AttrValue::from("2024-01-01T00:00:00Z")),
        ("string_number", AttrValue::from("123")),
        ("string_nan", AttrValue::from("NaN")),
        ("timestamp", AttrValue::Timestamp(1_700_000_000_123_456_789)),
        ("timestamp_before_epoch", AttrValue::Timestamp(-1)),
        ("list", AttrValue::List(vec![1.into(), "a".into(), 2.5.into(), AttrValue::Timestamp(0)])),
        ("list_empty", AttrValue::List(vec![])),
        ("map", AttrValue::Map(map)),
        ("map_empty", AttrValue::Map(Default::default())),
        ("key.with odd-chars \u{43a}\u{43b}\u{44e}\u{447}", AttrValue::Int(1)),
    ]
}

/// Attribute maps compared through Debug, so NaN equals NaN and -0.0 differs from 0.0.
fn same_attrs(a: &atlas::Attributes, b: &atlas::Attributes) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

#[test]
fn attributes_of_every_kind_survive_reopen_in_all_six_meta_encodings() {
    let dir = test_dir!();
    let expected: atlas::Attributes = every_attr().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    for (format, compression, name) in ENCODINGS {
        let path = dir.join(name);
        let store = Atlas::create(&path, util::meta_config(format, compression)).unwrap();
        let ds = store.create_dataset("d").unwrap();
        let array = ds.define_array("a", ArraySpec::new(DType::UInt64, [2]).fill_value(u64::MAX)).unwrap();
        ds.define_array("f", ArraySpec::new(DType::Float32, [2]).fill_value(f32::NEG_INFINITY)).unwrap();
        for attrs in [store.attrs(), ds.attrs(), array.attrs()] {
            for (key, value) in every_attr() {
                attrs.set(key, value).unwrap();
            }
            assert!(same_attrs(&attrs.all().unwrap(), &expected), "{name} before flush");
        }
        store.flush().unwrap();
        drop((array, ds, store));

        let store = Atlas::open(&path).unwrap();
        let ds = store.open_dataset("d").unwrap();
        let array = ds.array("a").unwrap();
        for (whose, attrs) in [("store", store.attrs()), ("dataset", ds.attrs()), ("array", array.attrs())] {
            let back = attrs.all().unwrap();
            assert!(same_attrs(&back, &expected), "{whose} attributes in {name}:\n{back:?}\n!=\n{expected:?}");
        }
        assert_eq!(ds.array_meta("a").unwrap().fill_value, Scalar::UInt(u64::MAX), "{name}");
        assert_eq!(ds.array_meta("f").unwrap().fill_value, Scalar::Float(f64::NEG_INFINITY), "{name}");
    }
}

#[test]
fn a_date_looking_string_attribute_stays_a_string_and_a_timestamp_stays_a_timestamp() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    store.attrs().set("date_text", "2024-01-01T00:00:00Z").unwrap();
    store.attrs().set("date", AttrValue::Timestamp(1_704_067_200_000_000_000)).unwrap();
    store.attrs().set("count", AttrValue::Int(1_704_067_200_000_000_000)).unwrap();
    store.flush().unwrap();
    let attrs = Atlas::open(dir.store()).unwrap().attrs();
    assert_eq!(attrs.get("date_text").unwrap(), Some(AttrValue::String("2024-01-01T00:00:00Z".into())));
    assert_eq!(attrs.get("date").unwrap(), Some(AttrValue::Timestamp(1_704_067_200_000_000_000)));
    assert_eq!(attrs.get("count").unwrap(), Some(AttrValue::Int(1_704_067_200_000_000_000)));
}

#[test]
fn attributes_can_be_replaced_and_removed_and_missing_keys_read_as_none() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let attrs = store.create_dataset("d").unwrap().attrs();
    assert_eq!(attrs.get("units").unwrap(), None);
    attrs.set("units", "K").unwrap();
    attrs.set("units", "degC").unwrap();
    attrs.set("b", 1).unwrap();
    attrs.set("a", 2).unwrap();
    assert_eq!(attrs.all().unwrap().keys().collect::<Vec<_>>(), ["a", "b", "units"]);
    attrs.remove("b").unwrap();
    assert_err!(attrs.remove("b"), Error::NotFound { kind: EntityKind::Attribute, .. });
    store.flush().unwrap();
    let attrs = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap().attrs();
    assert_eq!(attrs.get("units").unwrap(), Some(AttrValue::from("degC")));
    assert_eq!(attrs.all().unwrap().len(), 2);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

#[test]
fn codec_changes_apply_to_new_blocks_while_old_blocks_keep_theirs() {
    let dir = test_dir!();
    let config = StoreConfig { codec: Codec::Zstd { level: 3 }, shuffle: Shuffle::Off, ..StoreConfig::default() };
    let store = Atlas::create(dir.store(), config).unwrap();
    let ds = store.create_dataset("d").unwrap();
    let cols = 16 * 1024; // one 64 KiB chunk per row
    let array = ds.define_array("a", ArraySpec::new(DType::Float32, [5, cols]).chunk_shape([1, cols])).unwrap();
    let row = |r: usize| ndarray::Array2::from_elem((1, cols as usize), r as f32 + 0.5);
    let row_bytes = |r: usize| (r as f32 + 0.5).to_le_bytes().repeat(cols as usize);
    let mut seen = 0;
    let mut newest_fragment = || {
        let all = util::fragments(&dir.store());
        assert_eq!(all.len(), seen + 1, "each flush with writes adds one fragment");
        seen += 1;
        std::fs::read(all.iter().max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap()).unwrap()).unwrap()
    };

    array.write(&[0, 0], row(0).view()).unwrap();
    store.flush().unwrap();
    let zstd = newest_fragment();
    assert!(contains(&zstd, &ZSTD_MAGIC) && zstd.len() < 4096, "zstd fragment: {} bytes", zstd.len());

    store.set_codec(Codec::Lz4).unwrap();
    array.write(&[1, 0], row(1).view()).unwrap();
    store.flush().unwrap();
    let lz4 = newest_fragment();
    assert!(!contains(&lz4, &ZSTD_MAGIC) && lz4.len() < 4096, "lz4 fragment: {} bytes", lz4.len());

    array.set_codec(Some(Codec::None)).unwrap();
    array.write(&[2, 0], row(2).view()).unwrap();
    // A partial write into the zstd block of row 0: decoded with zstd, re-encoded with none.
    array.write(&[0, 10], ndarray::Array2::from_elem((1, 2), -1.0f32).view()).unwrap();
    store.flush().unwrap();
    let none = newest_fragment();
    assert!(contains(&none, &row_bytes(2)), "none fragment does not hold row 2 raw");

    array.set_codec(None).unwrap(); // back to the store's lz4
    array.write(&[3, 0], row(3).view()).unwrap();
    store.flush().unwrap();
    let back_to_lz4 = newest_fragment();
    assert!(back_to_lz4.len() < 4096, "array override was not cleared: {} bytes", back_to_lz4.len());
    drop((array, ds, store));

    let store = Atlas::open(dir.store()).unwrap();
    assert_eq!(store.codec(), Codec::Lz4);
    let ds = store.open_dataset("d").unwrap();
    assert_eq!(ds.array_meta("a").unwrap().codec, None);
    let back = ds.read_array::<f32>("a", &[0, 0], &[5, cols]).unwrap();
    let mut expected = ndarray::Array2::<f32>::zeros((5, cols as usize));
    for r in 0..4 {
        expected.row_mut(r).fill(r as f32 + 0.5);
    }
    expected[[0, 10]] = -1.0;
    expected[[0, 11]] = -1.0;
    assert_eq!(back, expected.into_dyn());
}

#[test]
fn array_codec_given_at_definition_overrides_the_store_codec() {
    let dir = test_dir!();
    let config = StoreConfig { shuffle: Shuffle::Off, ..StoreConfig::default() };
    let store = Atlas::create(dir.store(), config).unwrap();
    let ds = store.create_dataset("d").unwrap();
    let spec = ArraySpec::new(DType::UInt8, [4096]).codec(Codec::None);
    ds.define_array("raw", spec).unwrap();
    let data = iota(&[4096], |i| (i % 7) as u8);
    ds.write_array("raw", &[0], data.view()).unwrap();
    store.flush().unwrap();
    let fragment = std::fs::read(&util::fragments(&dir.store())[0]).unwrap();
    assert!(contains(&fragment, data.as_slice().unwrap()), "override codec none did not store raw bytes");
    assert_eq!(ds.array_meta("raw").unwrap().codec, Some(Codec::None));
    let ds = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
    assert_eq!(ds.read_array::<u8>("raw", &[0], &[4096]).unwrap(), data);
}

#[test]
fn shuffle_on_and_off_both_round_trip_and_shuffle_shrinks_smooth_floats() {
    let dir = test_dir!();
    let smooth = iota(&[64, 256], |i| 1000.0f32 + (i as f32 * 0.001).sin() * 10.0);
    let mut sizes = Vec::new();
    for shuffle in [Shuffle::On, Shuffle::Off] {
        let path = dir.join(&format!("{shuffle:?}"));
        let store = Atlas::create(&path, StoreConfig { shuffle, ..StoreConfig::default() }).unwrap();
        let ds = store.create_dataset("d").unwrap();
        ds.define_array("a", ArraySpec::new(DType::Float32, [64, 256]).chunk_shape([16, 256])).unwrap();
        ds.write_array("a", &[0, 0], smooth.view()).unwrap();
        store.flush().unwrap();
        sizes.push(util::data_bytes(&path));
        let ds = Atlas::open(&path).unwrap().open_dataset("d").unwrap();
        assert_eq!(ds.read_array::<f32>("a", &[0, 0], &[64, 256]).unwrap(), smooth);
    }
    assert!(sizes[0] * 10 < sizes[1] * 9, "shuffle on {} bytes, off {} bytes", sizes[0], sizes[1]);

    // Per-array and store-wide switches mid-life: every block keeps its own filter.
    let path = dir.join("switch");
    let store = Atlas::create(&path, StoreConfig::default()).unwrap();
    let ds = store.create_dataset("d").unwrap();
    let a = ds.define_array("a", ArraySpec::new(DType::Float32, [64, 256]).chunk_shape([16, 256])).unwrap();
    a.write(&[0, 0], smooth.slice(ndarray::s![0..16, ..])).unwrap();
    a.set_shuffle(Some(Shuffle::Off)).unwrap();
    a.write(&[16, 0], smooth.slice(ndarray::s![16..32, ..])).unwrap();
    a.set_shuffle(None).unwrap();
    store.set_shuffle(Shuffle::Off).unwrap();
    a.write(&[32, 0], smooth.slice(ndarray::s![32..48, ..])).unwrap();
    store.set_shuffle(Shuffle::On).unwrap();
    a.write(&[48, 0], smooth.slice(ndarray::s![48..64, ..])).unwrap();
    store.flush().unwrap();
    drop((a, ds, store));
    let store = Atlas::open(&path).unwrap();
    let ds = store.open_dataset("d").unwrap();
    assert_eq!(ds.read_array::<f32>("a", &[0, 0], &[64, 256]).unwrap(), smooth);
    assert_eq!(ds.array_meta("a").unwrap().shuffle, None);
    let shuffled: Vec<bool> = store.array_blocks("d", "a").unwrap().iter().map(|b| b.shuffled).collect();
    assert_eq!(shuffled, [true, false, false, true]);
}

#[test]
fn datasets_can_be_created_opened_listed_and_deleted_and_that_persists() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    assert!(store.list_datasets().is_empty());
    for name in ["zeta", "alpha", "mid"] {
        store.create_dataset(name).unwrap();
    }
    assert_eq!(store.list_datasets(), ["alpha", "mid", "zeta"]);
    assert!(store.dataset_exists("mid"));
    assert!(!store.dataset_exists("nope"));
    assert_eq!(store.open_dataset("mid").unwrap().name(), "mid");
    assert_err!(store.create_dataset("mid"), Error::AlreadyExists { kind: EntityKind::Dataset, .. });
    assert_err!(store.open_dataset("nope"), Error::NotFound { kind: EntityKind::Dataset, .. });
    assert_err!(store.delete_dataset("nope"), Error::NotFound { kind: EntityKind::Dataset, .. });

    let doomed = store.open_dataset("zeta").unwrap();
    doomed.define_array("a", ArraySpec::new(DType::Int8, [2])).unwrap();
    store.delete_dataset("zeta").unwrap();
    assert!(!store.dataset_exists("zeta"));
    assert_err!(doomed.list_arrays(), Error::NotFound { kind: EntityKind::Dataset, .. });
    assert_err!(doomed.read_array::<i8>("a", &[0], &[2]), Error::NotFound { .. });
    store.flush().unwrap();
    drop((doomed, store));

    let store = Atlas::open(dir.store()).unwrap();
    assert_eq!(store.list_datasets(), ["alpha", "mid"]);
    // A deleted name can be used again, and starts empty.
    let again = store.create_dataset("zeta").unwrap();
    assert!(again.list_arrays().unwrap().is_empty());
}

#[test]
fn arrays_can_be_defined_listed_and_deleted_and_that_persists() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    for name in ["b", "a", "c"] {
        ds.define_array(name, ArraySpec::new(DType::Int32, [3])).unwrap();
    }
    assert_eq!(ds.list_arrays().unwrap(), ["a", "b", "c"]);
    assert_err!(
        ds.define_array("a", ArraySpec::new(DType::Int32, [3])),
        Error::AlreadyExists { kind: EntityKind::Array, .. }
    );
    let b = ds.array("b").unwrap();
    b.write(&[0], arr1(&[1, 2, 3]).view()).unwrap();
    ds.delete_array("b").unwrap();
    assert_err!(b.read::<i32>(&[0], &[3]), Error::NotFound { kind: EntityKind::Array, .. });
    assert_err!(ds.array_meta("b"), Error::NotFound { kind: EntityKind::Array, .. });
    assert_err!(ds.delete_array("b"), Error::NotFound { kind: EntityKind::Array, .. });
    assert_err!(ds.array("nope"), Error::NotFound { kind: EntityKind::Array, .. });
    store.flush().unwrap();

    // Redefined under the same name, it is a new array: the old blocks do not show through.
    ds.define_array("b", ArraySpec::new(DType::Int32, [3]).fill_value(9)).unwrap();
    store.flush().unwrap();
    drop((b, ds, store));
    let ds = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
    assert_eq!(ds.list_arrays().unwrap(), ["a", "b", "c"]);
    assert_eq!(ds.read_array::<i32>("b", &[0], &[3]).unwrap(), arr1(&[9, 9, 9]).into_dyn());
}

#[test]
fn requests_big_enough_for_the_pool_read_and_write_as_small_ones_do() {
    // 6.3 MB of f32 with partial edge chunks: whole-array requests run on the engine's
    // threads, single-chunk ones on the caller's; both must give the model's elements.
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let shape = [70usize, 150, 150];
    ds.define_array("a", ArraySpec::new(DType::Float32, u64s(&shape)).chunk_shape([16, 64, 64])).unwrap();
    let mut model = iota(&shape, |i| i as f32 * 0.5);
    ds.write_array("a", &[0, 0, 0], model.view()).unwrap();
    let boxed = |start: [usize; 3], extent: [usize; 3]| {
        move |ax: ndarray::AxisDescription| {
            let d = ax.axis.index();
            Slice::from(start[d]..start[d] + extent[d])
        }
    };
    // A small write inside one chunk, then a big one across many, over the first.
    for (start, extent, base) in [([17, 65, 70], [3, 5, 7], -1000.0), ([20, 30, 10], [40, 100, 120], 0.25)] {
        let part = iota(&extent, |i| i as f32 + base);
        ds.write_array("a", &u64s(&start), part.view()).unwrap();
        model.slice_each_axis_mut(boxed(start, extent)).assign(&part);
    }
    store.flush().unwrap();

    let whole = ds.read_array::<f32>("a", &[0, 0, 0], &u64s(&shape)).unwrap();
    assert_eq!(whole, model);
    for (start, extent) in [([17, 65, 70], [3, 5, 7]), ([0, 0, 0], [1, 1, 1]), ([5, 100, 20], [60, 50, 130])] {
        let part = ds.read_array::<f32>("a", &u64s(&start), &u64s(&extent)).unwrap();
        assert_eq!(part, model.slice_each_axis(boxed(start, extent)), "box at {start:?} of {extent:?}");
    }
}

#[test]
fn blocks_lz4_cannot_shrink_are_stored_raw_and_read_back_after_writes_in_a_row() {
    // Chunks assembled in a worker's buffer (narrower than the array) that lz4 does not
    // shrink are stored from that buffer itself; the next chunk the worker assembles must
    // not see or change them. Whole-array writes run on the pool, the small one on the
    // caller's thread.
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let shape = [4usize, 256, 512];
    let spec = ArraySpec::new(DType::UInt32, u64s(&shape)).chunk_shape([2, 64, 128]).codec(Codec::Lz4);
    ds.define_array("a", spec.shuffle(Shuffle::Off)).unwrap();
    let noise = |seed: u64| {
        iota(&shape, move |i| {
            let x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
            (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) as u32
        })
    };
    let mut model = noise(1);
    ds.write_array("a", &[0, 0, 0], model.view()).unwrap();
    model = noise(2);
    ds.write_array("a", &[0, 0, 0], model.view()).unwrap();
    let part = noise(3).slice_move(ndarray::s![..1, ..3, ..200]).into_dyn();
    ds.write_array("a", &[1, 10, 100], part.view()).unwrap();
    model.slice_mut(ndarray::s![1..2, 10..13, 100..300]).assign(&part);
    store.flush().unwrap();
    assert_eq!(ds.read_array::<u32>("a", &[0, 0, 0], &u64s(&shape)).unwrap(), model);
    let blocks = store.array_blocks("d", "a").unwrap();
    assert_eq!(blocks.len(), 2 * 4 * 4);
    assert!(blocks.iter().all(|b| b.codec == BlockCodec::None && b.stored_bytes == b.raw_bytes), "{blocks:?}");
}

#[test]
fn appends_into_a_partly_filled_chunk_are_staged_and_leave_one_block_per_chunk() {
    // 8 appends of 16 rows into chunks of 64 rows, and the same rows in one write: the
    // appended rows of an unfinished chunk wait in memory (read back, with statistics,
    // before the flush) and each chunk is encoded once, so both fragments are the same size.
    let dir = test_dir!();
    let rows = iota(&[128, 40], |i| (i % 97) as f32 * 0.5 + 1.0);
    let mut sizes = Vec::new();
    for appended in [true, false] {
        let path = dir.join(if appended { "appended" } else { "written" });
        let store = util::create(&path);
        let ds = store.create_dataset("d").unwrap();
        let spec = ArraySpec::new(DType::Float32, [if appended { 0 } else { 128 }, 40]).chunk_shape([64, 40]);
        ds.define_array("a", spec).unwrap();
        if appended {
            let first_rows = |n: usize| {
                rows.slice_each_axis(|ax| if ax.axis.index() == 0 { Slice::from(..n) } else { Slice::from(..) })
            };
            for k in 1..=8usize {
                let block = rows.slice_each_axis(|ax| {
                    if ax.axis.index() == 0 { Slice::from((k - 1) * 16..k * 16) } else { Slice::from(..) }
                });
                ds.append_array("a", block).unwrap();
                let so_far = ds.read_array::<f32>("a", &[0, 0], &[k as u64 * 16, 40]).unwrap();
                assert_eq!(so_far, first_rows(k * 16));
                assert_eq!(ds.array_stats("a").unwrap().count, k as u64 * 16 * 40);
            }
        } else {
            ds.write_array("a", &[0, 0], rows.view()).unwrap();
        }
        let blocks = store.array_blocks("d", "a").unwrap();
        assert_eq!(blocks.len(), 2);
        store.flush().unwrap();
        assert!(store.array_blocks("d", "a").unwrap().iter().all(|b| b.codec == atlas::BlockCodec::Zstd));
        drop((ds, store));
        let store = Atlas::open(&path).unwrap();
        assert_eq!(store.open_dataset("d").unwrap().read_array::<f32>("a", &[0, 0], &[128, 40]).unwrap(), rows);
        sizes.push(util::fragments(&path).iter().map(|f| std::fs::metadata(f).unwrap().len()).sum::<u64>());
    }
    assert_eq!(sizes[0], sizes[1], "appended and written fragments");
}

#[test]
fn tiny_chunks_count_for_their_bookkeeping_against_the_staging_budget() {
    // One-byte chunks count 256 bytes each: with a budget of 1 MiB, a write is staged when
    // its chunks count at most 128 KiB (512 chunks), and at most 4096 chunks are held.
    let dir = test_dir!();
    util::create(&dir.store());
    let store = Atlas::open_with(dir.store(), &atlas::OpenOptions::default().staging_bytes(1 << 20)).unwrap();
    let ds = store.create_dataset("d").unwrap();
    let a = ds.define_array("a", ArraySpec::new(DType::UInt8, [20_000]).chunk_shape([1])).unwrap();
    let states = |store: &Atlas| store.array_blocks("d", "a").unwrap().iter().map(|b| b.state).collect::<Vec<_>>();
    let values = iota(&[20_000], |i| (i % 251) as u8);
    a.write(&[0], values.slice(ndarray::s![..600])).unwrap();
    assert!(states(&store).iter().all(|s| *s == atlas::BlockState::Pending), "600 chunks are over an eighth");
    for first in (600..5_000_usize).step_by(400) {
        a.write(&[first as u64], values.slice(ndarray::s![first..first + 400])).unwrap();
        let staged = states(&store).iter().filter(|s| **s == atlas::BlockState::Staged).count();
        assert!(staged <= 4096, "{staged} chunks staged past the budget");
    }
    assert!(states(&store).contains(&atlas::BlockState::Staged));
    store.flush().unwrap();
    let back = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap().read_array::<u8>("a", &[0], &[5_000]);
    assert_eq!(back.unwrap(), values.slice(ndarray::s![..5_000]).into_dyn());
}

#[test]
fn writes_into_chunks_already_staged_take_no_room_in_the_staging_budget() {
    // A budget of 16 chunks of 4 KiB, all staged by element writes; writing again into
    // them adds nothing staged, so nothing is sealed (encoded and stored) before the flush.
    let dir = test_dir!();
    util::create(&dir.store());
    let store = Atlas::open_with(dir.store(), &atlas::OpenOptions::default().staging_bytes(16 << 12)).unwrap();
    let ds = store.create_dataset("d").unwrap();
    let a = ds.define_array("a", ArraySpec::new(DType::UInt32, [16 * 1024]).chunk_shape([1024])).unwrap();
    let mut values = iota(&[16 * 1024], |_| 0u32);
    // Two and a half rounds over the 16 chunks: a budget counting rewritten chunks again
    // would have sealed all of them at the 17th and 33rd writes.
    for k in 0..40u32 {
        let at = (k % 16) as usize * 1024 + (k / 16) as usize;
        values[at] = k + 100;
        a.write(&[at as u64], arr1(&[k + 100]).view()).unwrap();
    }
    let states: Vec<_> = store.array_blocks("d", "a").unwrap().iter().map(|b| b.state).collect();
    assert_eq!(states, [atlas::BlockState::Staged; 16]);
    assert_eq!(a.read::<u32>(&[0], &[16 * 1024]).unwrap(), values);
    // One chunk more than the budget holds seals the others first.
    let b = ds.define_array("b", ArraySpec::new(DType::UInt32, [1024]).chunk_shape([1024])).unwrap();
    b.write(&[0], arr1(&[1u32]).view()).unwrap();
    let states: Vec<_> = store.array_blocks("d", "a").unwrap().iter().map(|b| b.state).collect();
    assert_eq!(states, [atlas::BlockState::Pending; 16]);
    assert_eq!(store.array_blocks("d", "b").unwrap()[0].state, atlas::BlockState::Staged);
    store.flush().unwrap();
    assert_eq!(
        Atlas::open(dir.store())
            .unwrap()
            .open_dataset("d")
            .unwrap()
            .read_array::<u32>("a", &[0], &[16 * 1024])
            .unwrap(),
        values
    );
}

#[test]
fn element_at_a_time_writes_are_staged_and_store_each_chunk_once() {
    // A chunk of random-looking values written element by element, then flushed, in one
    // session, after a first commit of the whole chunk: each write changes the chunk in
    // memory (read back, with statistics, at once) instead of storing an encoded copy of it,
    // so the session's fragment holds one block, as the first commit's does.
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let a = ds.define_array("a", ArraySpec::new(DType::UInt32, [4096]).chunk_shape([4096])).unwrap();
    let mut values = iota(&[4096], |i| (i as u32).wrapping_mul(2_654_435_761));
    a.write(&[0], values.view()).unwrap();
    store.flush().unwrap();
    let first = util::fragments(&dir.store());
    for i in 0..100usize {
        values[i] = i as u32;
        a.write(&[i as u64], arr1(&[i as u32]).view()).unwrap();
        assert_eq!(a.read::<u32>(&[0], &[4096]).unwrap(), values, "after {i}");
        assert_eq!(a.stats().unwrap().max, values.iter().max().map(|&m| m.into()));
    }
    assert_eq!(store.array_blocks("d", "a").unwrap()[0].state, atlas::BlockState::Staged);
    store.flush().unwrap();
    let second: Vec<_> = util::fragments(&dir.store()).into_iter().filter(|f| !first.contains(f)).collect();
    let len = |f: &std::path::PathBuf| std::fs::metadata(f).unwrap().len();
    assert_eq!(second.len(), 1);
    assert!(len(&second[0]) <= len(&first[0]) + 4096, "{} bytes against {}", len(&second[0]), len(&first[0]));
    // A handle opened with no staging budget encodes each write at once.
    let unstaged = Atlas::open_with(dir.store(), &atlas::OpenOptions::default().staging_bytes(0)).unwrap();
    let a = unstaged.open_dataset("d").unwrap().array("a").unwrap();
    a.write(&[7], arr1(&[7u32]).view()).unwrap();
    assert_eq!(unstaged.array_blocks("d", "a").unwrap()[0].state, atlas::BlockState::Pending);
    values[7] = 7;
    assert_eq!(a.read::<u32>(&[0], &[4096]).unwrap(), values);
}

#[test]
fn staged_chunks_past_64_mib_are_sealed_before_the_flush() {
    // One row appended to each of 34 arrays of 2 MiB chunks would stage 68 MiB: the append
    // that would pass 64 MiB encodes the staged chunks first, and every row still reads back.
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let names: Vec<String> = (0..34).map(|i| format!("a{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        ds.define_array(name, ArraySpec::new(DType::Float64, [0, 1024]).chunk_shape([256, 1024])).unwrap();
        ds.append_array(name, iota(&[1, 1024], |j| (i * 1024 + j) as f64).view()).unwrap();
    }
    let codecs = |name: &str| store.array_blocks("d", name).unwrap().iter().map(|b| b.codec).collect::<Vec<_>>();
    assert_eq!(codecs("a0"), [atlas::BlockCodec::Zstd], "sealed when the budget was passed");
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            ds.read_array::<f64>(name, &[0, 0], &[1, 1024]).unwrap(),
            iota(&[1, 1024], |j| (i * 1024 + j) as f64)
        );
    }
}

#[test]
fn an_append_never_leaves_more_than_64_mib_staged() {
    // A last chunk row of 1100 chunks of 64 KiB (69 MiB) is over the budget by itself, so an
    // append that leaves it partly filled encodes it instead of staging it; one of 600 such
    // chunks (38 MiB) is staged, until staging a second array's row would pass 64 MiB.
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let staged = |name: &str| {
        let blocks = store.array_blocks("d", name).unwrap();
        blocks.iter().filter(|b| b.state == atlas::BlockState::Staged).map(|b| b.raw_bytes).sum::<u64>()
    };
    let row = |width: usize, k: usize| iota(&[1, width], |j| (k * width + j) as f64);
    let mut most_staged = 0;
    for (name, width) in [("wide", 1100 * 16), ("a", 600 * 16), ("b", 600 * 16)] {
        ds.define_array(name, ArraySpec::new(DType::Float64, [0, width as u64]).chunk_shape([512, 16])).unwrap();
        for k in 0..2 {
            ds.append_array(name, row(width, k).view()).unwrap();
            most_staged = most_staged.max(ds.list_arrays().unwrap().iter().map(|a| staged(a)).sum::<u64>());
        }
    }
    assert!(most_staged <= 64 << 20, "{most_staged} bytes staged at once");
    assert_eq!(staged("wide"), 0, "a chunk row over the budget is encoded");
    assert_eq!((staged("a"), staged("b")), (0, 600 * 512 * 16 * 8), "a's row sealed to stage b's");
    store.flush().unwrap();
    for (name, width) in [("wide", 1100 * 16), ("a", 600 * 16), ("b", 600 * 16)] {
        let read = ds.read_array::<f64>(name, &[0, 0], &[2, width as u64]).unwrap();
        let expected = ndarray::concatenate(ndarray::Axis(0), &[row(width, 0).view(), row(width, 1).view()]).unwrap();
        assert_eq!(read, expected, "{name}");
    }
}

#[test]
fn reads_of_8_mib_or_more_copied_out_row_by_row_land_whole_at_any_alignment() {
    // Outputs this large are copied into with streaming stores (`io::Streamer`). 520-byte
    // chunk rows lie apart in the output, so each chunk is copied out row by row, into a
    // buffer that starts off any 16-byte boundary; one chunk is never written (fill).
    let dir = test_dir!();
    let (rows, cols) = (2048u64, 4160u64);
    let data = iota(&[rows as usize, cols as usize], |i| (i % 251) as u8);
    for (i, (codec, shuffle)) in
        [(Codec::None, Shuffle::Off), (Codec::Zstd { level: 1 }, Shuffle::On), (Codec::Lz4, Shuffle::Off)]
            .into_iter()
            .enumerate()
    {
        let store = Atlas::create(dir.join(&format!("s{i}")), StoreConfig { codec, shuffle, ..StoreConfig::default() })
            .unwrap();
        let ds = store.create_dataset("d").unwrap();
        let spec = ArraySpec::new(DType::UInt16, [rows, cols / 2]).chunk_shape([256, 260]).fill_value(7);
        ds.define_array("a", spec).unwrap();
        let words = data.mapv(u16::from).slice_move(ndarray::s![.., ..cols as usize / 2]).into_dyn();
        let mut expected = words.clone();
        ds.write_array("a", &[256, 0], words.slice(ndarray::s![256.., ..]).into_dyn().view()).unwrap();
        ds.write_array("a", &[0, 260], words.slice(ndarray::s![..256, 260..]).into_dyn().view()).unwrap();
        expected.slice_mut(ndarray::s![..256, ..260]).fill(7);
        store.flush().unwrap();
        let array = ds.array("a").unwrap();
        let mut buf = vec![0u16; (rows * cols / 2) as usize + 8];
        for offset in [0, 1, 3] {
            let out = &mut buf[offset..offset + (rows * cols / 2) as usize];
            array.read_into(&[0, 0], &[rows, cols / 2], out, ReadOptions::default()).unwrap();
            assert!(out.iter().eq(expected.iter()), "{codec:?} at offset {offset}");
        }
    }
}

/// A store whose blocks are zstd level 1 (shuffled where the dtype allows), with dataset `d`.
fn zstd1_store(path: &std::path::Path) -> (Atlas, Dataset) {
    let store = Atlas::create(path, StoreConfig { codec: Codec::Zstd { level: 1 }, ..StoreConfig::default() }).unwrap();
    let ds = store.create_dataset("d").unwrap();
    (store, ds)
}

#[test]
fn a_large_shuffled_chunk_decoded_into_place_is_unshuffled_there_and_damage_is_an_error() {
    // One 4 MiB chunk: a whole read decodes it straight into the output, a partial write
    // into the chunk buffer first, and verify into a buffer of its own; each unshuffles it
    // where it was decoded (`codec::unshuffle_in_place`), not from a second copy.
    let dir = test_dir!();
    let path = dir.store();
    let (store, ds) = zstd1_store(&path);
    let (rows, cols) = (1024usize, 2048usize);
    let mut words = iota(&[rows, cols], |i| ((i / 1000) * 3 + i % 11) as u16);
    ds.define_array("u", ArraySpec::new(DType::UInt16, u64s(&[rows, cols])).chunk_shape(u64s(&[rows, cols]))).unwrap();
    ds.write_array("u", &[0, 0], words.view()).unwrap();
    store.flush().unwrap();
    let edit = iota(&[3, 5], |i| 60_000 + i as u16);
    ds.write_array("u", &[500, 1000], edit.view()).unwrap();
    words.slice_mut(ndarray::s![500..503, 1000..1005]).assign(&edit);
    store.flush().unwrap();
    assert_eq!(ds.read_array::<u16>("u", &[0, 0], &u64s(&[rows, cols])).unwrap(), words);
    assert_eq!(store.verify(&mut |_, _| {}).unwrap().bad_blocks.len(), 0);
    drop((ds, store));

    let block = &Atlas::open(&path).unwrap().array_blocks("d", "u").unwrap()[0];
    let mut bytes = std::fs::read(&block.path).unwrap();
    bytes[(block.offset_bytes + block.stored_bytes * 3 / 4) as usize] ^= 0x5a;
    std::fs::write(&block.path, &bytes).unwrap();
    let store = Atlas::open(&path).unwrap();
    match store.open_dataset("d").unwrap().read_array::<u16>("u", &[0, 0], &u64s(&[rows, cols])) {
        Err(Error::Corrupt { .. } | Error::ChecksumMismatch { .. }) => {}
        other => panic!("expected a corrupt block, got {:?}", other.map(|a| a.len())),
    }
    assert_eq!(store.verify(&mut |_, _| {}).unwrap().bad_blocks.len(), 1);
}

#[test]
fn large_shuffled_zstd_chunks_copied_out_row_by_row_stream_back_and_damage_is_an_error() {
    // 4 MiB chunks, two side by side: a whole read copies each out in half rows, streaming
    // its last byte plane from the frame (`codec::ShuffledStream`). Partial boxes stop
    // streaming early unless verifying, which reads every block to its end.
    let dir = test_dir!();
    let path = dir.store();
    let (store, ds) = zstd1_store(&path);
    let (rows, cols) = (2048usize, 2048usize);
    let words = iota(&[rows, cols], |i| ((i / 4096) * 7 + i % 13) as u16);
    let floats = iota(&[rows / 2, cols], |i| (i % 5000) as f32 * 0.5 - 7.0);
    ds.define_array("u", ArraySpec::new(DType::UInt16, u64s(&[rows, cols])).chunk_shape([2048, 1024])).unwrap();
    ds.define_array("f", ArraySpec::new(DType::Float32, u64s(&[rows / 2, cols])).chunk_shape([1024, 1024])).unwrap();
    ds.write_array("u", &[0, 0], words.view()).unwrap();
    ds.write_array("f", &[0, 0], floats.view()).unwrap();
    store.flush().unwrap();
    drop((ds, store));

    let ds = Atlas::open(&path).unwrap().open_dataset("d").unwrap();
    assert_eq!(ds.read_array::<u16>("u", &[0, 0], &u64s(&[rows, cols])).unwrap(), words);
    assert_eq!(ds.read_array::<f32>("f", &[0, 0], &u64s(&[rows / 2, cols])).unwrap(), floats);
    let part = |v: bool| {
        let mut out = vec![0u16; 200 * 1100];
        let options = ReadOptions { verify_checksums: v, ..ReadOptions::default() };
        ds.array("u").unwrap().read_into(&[100, 500], &[200, 1100], &mut out, options).map(|()| out)
    };
    let expected: Vec<u16> = words.slice(ndarray::s![100..300, 500..1600]).iter().copied().collect();
    assert_eq!(part(true).unwrap(), expected);
    assert_eq!(part(false).unwrap(), expected);

    // A byte flipped inside the second chunk's frame: an error, never a panic or silence.
    let block = &Atlas::open(&path).unwrap().array_blocks("d", "u").unwrap()[1];
    let mut bytes = std::fs::read(&block.path).unwrap();
    bytes[(block.offset_bytes + block.stored_bytes / 2) as usize] ^= 0x5a;
    std::fs::write(&block.path, &bytes).unwrap();
    let ds = Atlas::open(&path).unwrap().open_dataset("d").unwrap();
    match ds.read_array::<u16>("u", &[0, 0], &u64s(&[rows, cols])) {
        Err(Error::Corrupt { .. } | Error::ChecksumMismatch { .. }) => {}
        other => panic!("expected a corrupt block, got {:?}", other.map(|a| a.len())),
    }
}
