//! Format compatibility: stores written by format v1 (fixtures/v1/) must be read by every
//! later build. The fixtures are written once by `write_v1_fixtures` (ignored; run it by
//! hand only when adding a new format version's folder) and never regenerated.

use std::path::{Path, PathBuf};

use atlas::{ArraySpec, Atlas, AttrValue, Codec, DType, MetaCompression, MetaFormat, Shuffle, StoreConfig};
use ndarray::{Array1, Array2, ArrayD, IxDyn};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/v1");

/// The two v1 stores: plain JSON metadata, and zstd-compressed msgpack.
fn encodings() -> [(&'static str, MetaFormat, MetaCompression); 2] {
    [("json", MetaFormat::Json, MetaCompression::None), ("msgpack-zst", MetaFormat::MsgPack, MetaCompression::Zstd)]
}

fn temp_values() -> Array2<f32> {
    Array2::from_shape_fn((6, 10), |(i, j)| 10.0 + i as f32 * 0.5 - j as f32 * 0.25)
}

fn count_values() -> Array1<i64> {
    Array1::from_shape_fn(9, |i| i as i64 * -3)
}

fn flag_values() -> Array1<bool> {
    ndarray::arr1(&[true, false, false, true, true])
}

fn name_values() -> [&'static str; 4] {
    ["", "\u{00e9}t\u{00e9}", "station 7", "x"]
}

#[test]
#[ignore = "writes the v1 fixtures; run by hand once, never to regenerate"]
fn write_v1_fixtures() {
    for (folder, meta_format, meta_compression) in encodings() {
        let path = Path::new(FIXTURES).join(folder);
        assert!(!path.exists(), "{} exists: fixtures are never regenerated", path.display());
        let config =
            StoreConfig { codec: Codec::Zstd { level: 3 }, meta_format, meta_compression, ..Default::default() };
        let store = Atlas::create(&path, config).unwrap();
        store.attrs().set("title", "v1 fixture").unwrap();
        store.attrs().set("when", AttrValue::Timestamp(1_700_000_000_123_456_789)).unwrap();
        store.attrs().set("date_like", "2024-01-01").unwrap();
        let ds = store.create_dataset("run42").unwrap();
        ds.attrs().set("nested", AttrValue::List(vec![AttrValue::Float(f64::NAN), true.into(), 7.into()])).unwrap();
        let temp = ds
            .define_array(
                "temp",
                ArraySpec::new(DType::Float32, [8, 10]).dims(["y", "x"]).chunk_shape([4, 4]).fill_value(f32::NAN),
            )
            .unwrap();
        temp.attrs().set("units", "degC").unwrap();
        // Rows 0..3 with zstd+shuffle, rows 3..6 with lz4, rows 6..8 never written.
        temp.write(&[0, 0], temp_values().slice(ndarray::s![..3, ..])).unwrap();
        store.flush().unwrap();
        temp.set_codec(Some(Codec::Lz4)).unwrap();
        temp.write(&[3, 0], temp_values().slice(ndarray::s![3.., ..])).unwrap();
        let counts = ds
            .define_array(
                "counts",
                ArraySpec::new(DType::Int64, [9]).chunk_shape([4]).codec(Codec::None).shuffle(Shuffle::Off),
            )
            .unwrap();
        counts.write(&[0], count_values().view()).unwrap();
        let flags = ds.define_array("flags", ArraySpec::new(DType::Bool, [5]).chunk_shape([2])).unwrap();
        flags.write(&[0], flag_values().view()).unwrap();
        let times = ds.define_array("times", ArraySpec::new(DType::Timestamp, [2])).unwrap();
        times.write(&[0], ndarray::arr1(&[1_700_000_000_000_000_000i64, -1]).view()).unwrap();
        let names = ds.define_array("names", ArraySpec::new(DType::String, [4]).chunk_shape([3])).unwrap();
        names.write_strings(&[0], ndarray::arr1(&name_values()).view()).unwrap();
        // A chunk of nothing but the fill value: a fill entry with no bytes.
        let zeros = ds.define_array("zeros", ArraySpec::new(DType::UInt16, [6]).chunk_shape([3])).unwrap();
        zeros.write(&[0], ndarray::arr1(&[0u16, 0, 0, 1, 2, 3]).view()).unwrap();
        store.flush().unwrap();
        drop(store);
        std::fs::remove_file(path.join("atlas.lock")).unwrap();
    }
}

/// Copies a fixture to a scratch folder so opening it can never change the repository.
fn copy_fixture(folder: &str, scratch: &Path) -> PathBuf {
    let from = Path::new(FIXTURES).join(folder);
    let to = scratch.join(folder);
    for entry in walk(&from) {
        let target = to.join(entry.strip_prefix(&from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &target).unwrap();
    }
    to
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

#[test]
fn v1_fixtures_open_and_read_back_exactly() {
    let scratch = tempfile::tempdir().unwrap();
    for (folder, meta_format, meta_compression) in encodings() {
        let store = Atlas::open(copy_fixture(folder, scratch.path())).unwrap();
        let expected_name = match (meta_format, meta_compression) {
            (MetaFormat::Json, MetaCompression::None) => "atlas.json",
            _ => "atlas.msgpack.zst",
        };
        assert_eq!(store.meta_file_name(), expected_name);
        assert_eq!(store.list_datasets(), vec!["run42".to_string()]);
        assert_eq!(store.attrs().get("date_like").unwrap(), Some(AttrValue::from("2024-01-01")));
        assert_eq!(store.attrs().get("when").unwrap(), Some(AttrValue::Timestamp(1_700_000_000_123_456_789)));

        let ds = store.open_dataset("run42").unwrap();
        assert_eq!(ds.list_arrays().unwrap(), ["counts", "flags", "names", "temp", "times", "zeros"]);
        let Some(AttrValue::List(nested)) = ds.attrs().get("nested").unwrap() else { panic!("nested list lost") };
        assert!(matches!(nested[0], AttrValue::Float(v) if v.is_nan()));

        let meta = ds.array_meta("temp").unwrap();
        assert_eq!(
            (meta.dtype, meta.shape.clone(), meta.chunk_shape.clone()),
            (DType::Float32, vec![8, 10], vec![4, 4])
        );
        assert_eq!(meta.dims, vec!["y".to_string(), "x".to_string()]);
        assert_eq!(meta.codec, Some(Codec::Lz4));
        let temp = ds.read_array::<f32>("temp", &[0, 0], &[8, 10]).unwrap();
        let written = temp_values();
        for ((i, j), v) in temp.view().into_dimensionality::<ndarray::Ix2>().unwrap().indexed_iter() {
            if i < 6 {
                assert_eq!(*v, written[[i, j]], "temp[{i}, {j}] in {folder}");
            } else {
                assert!(v.is_nan(), "unwritten temp[{i}, {j}] is not the NaN fill in {folder}");
            }
        }
        let counts = ds.read_array::<i64>("counts", &[0], &[9]).unwrap();
        assert_eq!(counts, ArrayD::from_shape_vec(IxDyn(&[9]), count_values().to_vec()).unwrap());
        assert_eq!(ds.read_array::<bool>("flags", &[0], &[5]).unwrap(), flag_values().into_dyn());
        let times = ds.read_array::<i64>("times", &[0], &[2]).unwrap();
        assert_eq!(times.into_raw_vec_and_offset().0, [1_700_000_000_000_000_000i64, -1]);
        let names = ds.read_strings("names", &[0], &[4]).unwrap().into_raw_vec_and_offset().0;
        assert_eq!(names, name_values());
        assert_eq!(ds.read_array::<u16>("zeros", &[0], &[6]).unwrap().into_raw_vec_and_offset().0, [0, 0, 0, 1, 2, 3]);
        let stats = ds.array_stats("temp").unwrap();
        assert_eq!((stats.count, stats.null_count), (60, 20));
        assert_eq!(ds.array_meta("temp").unwrap().stats, Some(stats), "persisted stats");
        // v1 wrote a mean of 0 for strings; it is forgotten at open and merged again.
        let names = ds.array_stats("names").unwrap();
        assert_eq!((names.count, names.null_count, names.mean), (3, 1, None));
        assert_eq!(ds.array_meta("names").unwrap().stats, None);
        let blocks = ds.block_stats("zeros").unwrap();
        assert_eq!((blocks[0].count, blocks[1].count), (0, 3));
    }
}
