//! Property test: random sequences of define / write / read / delete / rename / copy / resize / append /
//! flush / reopen / discard / compact / recompress / codec and metadata format changes
//! against a plain in-memory model of dense arrays (int32, float32 and string; zero-size
//! axes included), of many tiny chunks and of chunks up to 64 KiB. Every read must match the model, after every commit a freshly opened
//! handle must see exactly the model, a discard must bring back the model of the last
//! commit, and a second, read-only handle sees the commit it last opened or refreshed to,
//! whatever the writer did since (compactions included).

use std::collections::BTreeMap;
use std::path::Path;

use atlas::{
    ArraySpec, Atlas, Codec, DType, Dataset, Error, MetaCompression, MetaFormat, OpenOptions, Scalar, Shuffle,
    StoreConfig,
};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;

use crate::util::{TestDir, test_name};

const SLOTS: [&str; 3] = ["a0", "a1", "a2"];
const CODECS: [Codec; 4] = [Codec::Zstd { level: 1 }, Codec::Lz4, Codec::None, Codec::Zstd { level: -1 }];
const SHUFFLES: [Shuffle; 5] = [Shuffle::Auto, Shuffle::On, Shuffle::Off, Shuffle::ByteDelta, Shuffle::Delta];
const META_FORMATS: [MetaFormat; 2] = [MetaFormat::Json, MetaFormat::MsgPack];
const META_COMPRESSIONS: [MetaCompression; 3] = [MetaCompression::None, MetaCompression::Zstd, MetaCompression::Lz4];

#[derive(Debug, Clone)]
enum Op {
    /// Defines array `slot` of `KINDS[kind]` with `dims` (extent, chunk extent) pairs; an
    /// extent may be 0.
    Define {
        slot: usize,
        kind: usize,
        dims: Vec<(u64, u64)>,
        nan_fill: bool,
    },
    /// Writes a box chosen by `pos`/`len` (reduced modulo the shape) of values from `seed`.
    Write {
        slot: usize,
        pos: [u64; 3],
        len: [u64; 3],
        seed: i32,
    },
    Read {
        slot: usize,
        pos: [u64; 3],
        len: [u64; 3],
    },
    /// Reads boxes of one extent (from `len`) at each of `starts` (reduced to fit) in one
    /// `read_boxes` call.
    ReadBoxes {
        slot: usize,
        len: [u64; 3],
        starts: Vec<[u64; 3]>,
    },
    ReadOutOfBounds {
        slot: usize,
    },
    Delete {
        slot: usize,
    },
    /// Renames array `from` to slot `to`'s name (`move_array` within the dataset).
    Move {
        from: usize,
        to: usize,
    },
    /// Copies array `from` to slot `to`'s name (`copy_array` within the dataset).
    Copy {
        from: usize,
        to: usize,
    },
    Flush,
    /// Drops every handle (which commits) and opens the store again.
    Reopen,
    SetCodec(usize),
    SetArrayCodec {
        slot: usize,
        codec: Option<usize>,
    },
    SetShuffle(usize),
    /// Resizes array `slot` to extents `raw % sizes.resize_below` (same number of dimensions).
    Resize {
        slot: usize,
        raw: [u64; 3],
    },
    /// Appends `1 + rows % 3` rows of values from `seed` along axis 0.
    Append {
        slot: usize,
        rows: u64,
        seed: i32,
    },
    /// Drops every change since the last commit.
    Discard,
    Compact,
    /// `shuffle` past `SHUFFLES`: none given, each array keeps its own.
    Recompress {
        codec: usize,
        shuffle: usize,
    },
    RecompressArray {
        slot: usize,
        codec: usize,
        shuffle: usize,
    },
    SetMetaFormat {
        format: usize,
        compression: usize,
    },
    /// Checks that the read-only handle still sees the commit it last saw, then refreshes
    /// it and checks it sees the last commit.
    Reader,
}

/// The dtypes of the model's arrays.
const KINDS: [DType; 3] = [DType::Int32, DType::Float32, DType::String];

/// How large the arrays of a run are drawn.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// Largest extent of an axis when defined.
    extent: u64,
    /// Largest chunk extent.
    chunk: u64,
    /// Most axes.
    ndim: usize,
    /// A resize draws each extent below this.
    resize_below: u64,
}

/// Many small chunks (of 1 to 4 elements an axis): every edge case of the chunk grid.
const SMALL: Sizes = Sizes { extent: 10, chunk: 4, ndim: 3, resize_below: 13 };
/// Chunks of up to 64 KiB, over the engine's piece sizes (16 KiB shuffled, 64 KiB plain)
/// and its threshold for the pool (1 MiB of work), with partial edge chunks.
const LARGE: Sizes = Sizes { extent: 700, chunk: 128, ndim: 2, resize_below: 800 };

fn op(sizes: Sizes) -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS.len();
    let extent = prop_oneof![1 => Just(0u64), 9 => 1u64..=sizes.extent];
    let dims = proptest::collection::vec((extent, 1u64..=sizes.chunk), 1..=sizes.ndim);
    let pos = any::<[u64; 3]>();
    prop_oneof![
        2 => (slot.clone(), 0..KINDS.len(), dims, any::<bool>())
            .prop_map(|(slot, kind, dims, nan_fill)| Op::Define { slot, kind, dims, nan_fill }),
        5 => (slot.clone(), pos, any::<[u64; 3]>(), any::<i32>())
            .prop_map(|(slot, pos, len, seed)| Op::Write { slot, pos, len, seed }),
        3 => (slot.clone(), pos, any::<[u64; 3]>()).prop_map(|(slot, pos, len)| Op::Read { slot, pos, len }),
        2 => (slot.clone(), any::<[u64; 3]>(), proptest::collection::vec(pos, 0..6))
            .prop_map(|(slot, len, starts)| Op::ReadBoxes { slot, len, starts }),
        1 => slot.clone().prop_map(|slot| Op::ReadOutOfBounds { slot }),
        1 => slot.clone().prop_map(|slot| Op::Delete { slot }),
        1 => (slot.clone(), slot.clone()).prop_map(|(from, to)| Op::Move { from, to }),
        1 => (slot.clone(), slot.clone()).prop_map(|(from, to)| Op::Copy { from, to }),
        2 => Just(Op::Flush),
        2 => Just(Op::Reopen),
        1 => (0..CODECS.len()).prop_map(Op::SetCodec),
        1 => (slot.clone(), proptest::option::of(0..CODECS.len())).prop_map(|(slot, codec)| Op::SetArrayCodec { slot, codec }),
        1 => (0..SHUFFLES.len()).prop_map(Op::SetShuffle),
        2 => (slot.clone(), any::<[u64; 3]>()).prop_map(|(slot, raw)| Op::Resize { slot, raw }),
        2 => (slot.clone(), any::<u64>(), any::<i32>()).prop_map(|(slot, rows, seed)| Op::Append { slot, rows, seed }),
        1 => Just(Op::Discard),
        1 => Just(Op::Compact),
        1 => (0..CODECS.len(), 0..=SHUFFLES.len()).prop_map(|(codec, shuffle)| Op::Recompress { codec, shuffle }),
        1 => (slot, 0..CODECS.len(), 0..=SHUFFLES.len())
            .prop_map(|(slot, codec, shuffle)| Op::RecompressArray { slot, codec, shuffle }),
        1 => (0..META_FORMATS.len(), 0..META_COMPRESSIONS.len())
            .prop_map(|(format, compression)| Op::SetMetaFormat { format, compression }),
        1 => Just(Op::Reader),
    ]
}

/// One array of the model: dense C-order data.
#[derive(Debug, Clone)]
enum Data {
    F32(Vec<f32>),
    I32(Vec<i32>),
    /// Strings; the fill value (the only one strings have) is the empty string.
    Str(Vec<String>),
}

/// The int32 arrays' fill value.
const INT_FILL: i32 = -7;

/// The statistics an array's values give: count, null count, min, max, sum, mean.
type Stats = (u64, u64, Option<Scalar>, Option<Scalar>, f64, Option<f64>);

#[derive(Debug, Clone)]
struct ModelArray {
    shape: Vec<u64>,
    data: Data,
    /// The float fill value's bits (unused for other arrays).
    fill: u32,
}

impl ModelArray {
    /// The array reshaped: values inside both shapes kept, the rest the fill value.
    fn resized(&self, shape: Vec<u64>) -> Self {
        let n = shape.iter().product::<u64>() as usize;
        let common: Vec<u64> = self.shape.iter().zip(&shape).map(|(a, b)| *a.min(b)).collect();
        let origin = vec![0; shape.len()];
        let pairs: Vec<(usize, usize)> = if common.contains(&0) {
            Vec::new()
        } else {
            box_indices(&self.shape, &origin, &common).into_iter().zip(box_indices(&shape, &origin, &common)).collect()
        };
        let data = match &self.data {
            Data::F32(old) => Data::F32(moved(old, &pairs, n, self.fill_f32())),
            Data::I32(old) => Data::I32(moved(old, &pairs, n, INT_FILL)),
            Data::Str(old) => Data::Str(moved(old, &pairs, n, String::new())),
        };
        Self { shape, data, fill: self.fill }
    }

    fn fill_f32(&self) -> f32 {
        f32::from_bits(self.fill)
    }

    /// What `array_stats` must give. Every value is a whole or half number far below 2^53:
    /// sums are exact in any order.
    fn stats(&self) -> Stats {
        let elems = self.shape.iter().product::<u64>();
        let numeric = |valid: Vec<f64>, scalar: fn(f64) -> Scalar| {
            let count = valid.len() as u64;
            let sum = valid.iter().sum::<f64>();
            let min = valid.iter().copied().reduce(f64::min).map(scalar);
            let max = valid.iter().copied().reduce(f64::max).map(scalar);
            (count, elems - count, min, max, sum, (count > 0).then(|| sum / count as f64))
        };
        match &self.data {
            Data::F32(all) => numeric(
                all.iter().filter(|v| v.to_bits() != self.fill && !v.is_nan()).map(|&v| f64::from(v)).collect(),
                Scalar::Float,
            ),
            #[allow(clippy::cast_possible_truncation)] // an i32, widened just before
            Data::I32(all) => numeric(all.iter().filter(|v| **v != INT_FILL).map(|&v| f64::from(v)).collect(), |v| {
                Scalar::Int(v as i64)
            }),
            Data::Str(all) => {
                let count = all.iter().filter(|v| !v.is_empty()).count() as u64;
                (count, elems - count, None, None, 0.0, None)
            }
        }
    }
}

/// `n` fill values with `old[from]` at `to` for each of `pairs`.
fn moved<T: Clone>(old: &[T], pairs: &[(usize, usize)], n: usize, fill: T) -> Vec<T> {
    let mut new = vec![fill; n];
    for &(from, to) in pairs {
        new[to] = old[from].clone();
    }
    new
}

/// Makes some of a write's `values` null, as `seed` picks: all of them the fill value (so
/// whole chunks may be), every fourth the fill value, every fourth NaN, or none.
fn with_nulls<T: Clone>(mut values: Vec<T>, seed: i32, fill: T, nan: Option<T>) -> Vec<T> {
    let null = match (seed.rem_euclid(7), seed.rem_euclid(3), nan) {
        (0, _, _) => return vec![fill; values.len()],
        (_, 0, _) => fill,
        (_, 1, Some(nan)) => nan,
        _ => return values,
    };
    values.iter_mut().step_by(4).for_each(|v| *v = null.clone());
    values
}

/// `n` strings from `seed`, of 3 to 19 bytes, none ASCII only.
fn strings(n: usize, seed: i32) -> Vec<String> {
    (0..n).map(|k| format!("{seed}\u{e9}{}", "x".repeat(k % 7))).collect()
}

/// The flat C-order indices of the box `pos .. pos + len` in an array of `shape`.
fn box_indices(shape: &[u64], pos: &[u64], len: &[u64]) -> Vec<usize> {
    let mut out = Vec::new();
    if len.contains(&0) {
        return out;
    }
    let mut idx = vec![0u64; shape.len()];
    loop {
        out.push(shape.iter().zip(pos).zip(&idx).fold(0, |flat, ((s, p), i)| flat * s + p + i) as usize);
        let Some(d) = (0..shape.len()).rev().find(|&d| idx[d] + 1 < len[d]) else { return out };
        idx[d] += 1;
        idx[d + 1..].fill(0);
    }
}

/// A box inside `shape` from raw random numbers: the empty box at the origin when `shape`
/// holds no element.
fn pick_box(shape: &[u64], pos: &[u64; 3], len: &[u64; 3]) -> (Vec<u64>, Vec<u64>) {
    if shape.contains(&0) {
        return (vec![0; shape.len()], shape.to_vec());
    }
    let start: Vec<u64> = shape.iter().zip(pos).map(|(s, p)| p % s).collect();
    let extent = shape.iter().zip(&start).zip(len).map(|((s, p), l)| 1 + l % (s - p)).collect();
    (start, extent)
}

fn to_usize(v: &[u64]) -> Vec<usize> {
    v.iter().map(|&n| n as usize).collect()
}

/// Reads the box from the store and compares it with the model, bit for bit.
fn check_box(ds: &Dataset, name: &str, model: &ModelArray, start: &[u64], extent: &[u64]) -> Result<(), TestCaseError> {
    let indices = box_indices(&model.shape, start, extent);
    match &model.data {
        Data::F32(all) => {
            let got = ds.read_array::<f32>(name, start, extent).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
            let want: Vec<u32> = indices.iter().map(|&i| all[i].to_bits()).collect();
            prop_assert_eq!(got, want, "{} at {:?} {:?}", name, start, extent);
        }
        Data::I32(all) => {
            let got = ds.read_array::<i32>(name, start, extent).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let want: Vec<i32> = indices.iter().map(|&i| all[i]).collect();
            prop_assert_eq!(got.into_raw_vec_and_offset().0, want, "{} at {:?} {:?}", name, start, extent);
        }
        Data::Str(all) => {
            let got = ds.read_strings(name, start, extent).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let want: Vec<&String> = indices.iter().map(|&i| &all[i]).collect();
            prop_assert_eq!(got.iter().collect::<Vec<_>>(), want, "{} at {:?} {:?}", name, start, extent);
        }
    }
    Ok(())
}

/// Reads boxes of one extent in one `read_boxes` call and compares them with the model, bit
/// for bit: the extent is `1 + len % extent` per dimension, each start reduced so its box fits.
fn check_boxes(
    ds: &Dataset,
    name: &str,
    model: &ModelArray,
    len: &[u64; 3],
    starts: &[[u64; 3]],
) -> Result<(), TestCaseError> {
    let extent: Vec<u64> = model.shape.iter().zip(len).map(|(s, l)| 1 + l % s).collect();
    let starts: Vec<Vec<u64>> = starts
        .iter()
        .map(|pos| model.shape.iter().zip(&extent).zip(pos).map(|((s, e), p)| p % (s - e + 1)).collect())
        .collect();
    let indices: Vec<usize> = starts.iter().flat_map(|start| box_indices(&model.shape, start, &extent)).collect();
    let array = ds.array(name).unwrap();
    let fail = |e: Error| TestCaseError::fail(e.to_string());
    let (got, want): (Vec<u32>, Vec<u32>) = match &model.data {
        Data::F32(all) => {
            let got = array.read_boxes::<f32, _>(&starts, &extent).map_err(fail)?;
            (got.iter().map(|v| v.to_bits()).collect(), indices.iter().map(|&i| all[i].to_bits()).collect())
        }
        Data::I32(all) => {
            let got = array.read_boxes::<i32, _>(&starts, &extent).map_err(fail)?;
            (
                got.iter().map(|&v| v.cast_unsigned()).collect(),
                indices.iter().map(|&i| all[i].cast_unsigned()).collect(),
            )
        }
        Data::Str(_) => return Ok(()), // `read_boxes` is for fixed-size elements
    };
    prop_assert_eq!(got, want, "{} boxes of {:?} at {:?}", name, extent, starts);
    Ok(())
}

/// Compares a whole store with the model: the array list and every element.
fn check_all(ds: &Dataset, model: &BTreeMap<String, ModelArray>) -> Result<(), TestCaseError> {
    prop_assert_eq!(ds.list_arrays().unwrap(), model.keys().cloned().collect::<Vec<_>>());
    for (name, array) in model {
        prop_assert_eq!(&ds.array_meta(name).unwrap().shape, &array.shape);
        check_box(ds, name, array, &vec![0; array.shape.len()], &array.shape)?;
        let s = ds.array_stats(name).unwrap();
        prop_assert_eq!((s.count, s.null_count, s.min, s.max, s.sum, s.mean), array.stats(), "stats of {}", name);
    }
    Ok(())
}

/// The metadata file's name for `format` and `compression`.
fn meta_file_name(format: MetaFormat, compression: MetaCompression) -> String {
    let format = match format {
        MetaFormat::Json => "json",
        MetaFormat::MsgPack => "msgpack",
    };
    let compression = match compression {
        MetaCompression::None => "",
        MetaCompression::Zstd => ".zst",
        MetaCompression::Lz4 => ".lz4",
    };
    format!("atlas.{format}{compression}")
}

/// After a commit: the pending metadata file name (if any) became the store's, and it is
/// the only metadata file in the store's directory.
fn check_committed(path: &Path, (name, pending): &mut (String, Option<String>)) -> Result<(), TestCaseError> {
    if let Some(new) = pending.take() {
        *name = new;
    }
    let mut files: Vec<String> = std::fs::read_dir(path)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|file| file.starts_with("atlas.") && file != "atlas.lock")
        .collect();
    files.sort();
    prop_assert_eq!(files, vec![name.clone()]);
    let store = Atlas::open(path).unwrap();
    prop_assert_eq!(store.meta_file_name(), name.as_str());
    let report = store.verify(&mut |_, _| {}).unwrap();
    prop_assert!(report.bad_blocks.is_empty(), "{:?}", report.bad_blocks);
    Ok(())
}

/// How the writer is opened: whether small writes and appends may stage chunks, and the
/// chunk cache's size.
#[derive(Debug, Clone, Copy)]
struct Memory {
    staging: bool,
    cache_bytes: u64,
}

/// The memory settings a writer is drawn with: the chunk cache off, small enough that
/// chunks are pushed out (chunks of at most 512 bytes kept), or the default.
fn memory() -> impl Strategy<Value = Memory> {
    (any::<bool>(), prop_oneof![Just(0), Just(4096), Just(OpenOptions::default().chunk_cache_bytes)])
        .prop_map(|(staging, cache_bytes)| Memory { staging, cache_bytes })
}

/// Opens the store with `memory`'s settings.
fn open_with(path: &Path, memory: Memory) -> (Atlas, Dataset) {
    let options = OpenOptions::default().chunk_cache_bytes(memory.cache_bytes);
    let options = if memory.staging { options } else { options.staging_bytes(0) };
    let store = Atlas::open_with(path, &options).unwrap();
    let ds = store.open_dataset("d").unwrap();
    (store, ds)
}

fn open(path: &Path) -> (Atlas, Dataset) {
    open_with(path, Memory { staging: true, cache_bytes: OpenOptions::default().chunk_cache_bytes })
}

/// Runs `ops` (drawn with `sizes`) through a writer opened with `memory`'s settings.
fn run(dir: &TestDir, ops: &[Op], memory: Memory, sizes: Sizes) -> Result<(), TestCaseError> {
    let path = dir.store();
    let store = Atlas::create(&path, StoreConfig { codec: CODECS[0], ..StoreConfig::default() }).unwrap();
    store.create_dataset("d").unwrap();
    drop(store);
    let (mut store, mut ds) = open_with(&path, memory);
    let mut model: BTreeMap<String, ModelArray> = BTreeMap::new();
    // The model as of the last commit, and the metadata file's name then and as pending.
    let mut committed = model.clone();
    // A handle that only reads, and the model of the commit it last saw.
    let (reader, reader_ds) = open(&path);
    let mut reader_model = model.clone();
    let mut meta_file = ("atlas.json".to_string(), None::<String>);

    for op in ops {
        match op {
            Op::Define { slot, kind, dims, nan_fill } => {
                let name = SLOTS[*slot];
                let shape: Vec<u64> = dims.iter().map(|d| d.0).collect();
                let chunks: Vec<u64> = dims.iter().map(|d| d.1).collect();
                let n = shape.iter().product::<u64>() as usize;
                let fill = if *nan_fill { f32::NAN } else { 0.25 };
                let spec = ArraySpec::new(KINDS[*kind], shape.clone());
                let (spec, data) = match KINDS[*kind] {
                    DType::Int32 => (spec.fill_value(INT_FILL), Data::I32(vec![INT_FILL; n])),
                    DType::Float32 => (spec.fill_value(fill), Data::F32(vec![fill; n])),
                    _ => (spec, Data::Str(vec![String::new(); n])),
                };
                let result = ds.define_array(name, spec.chunk_shape(chunks));
                if model.contains_key(name) {
                    prop_assert!(matches!(result, Err(Error::AlreadyExists { .. })), "{:?}", result);
                } else {
                    result.unwrap();
                    model.insert(name.to_string(), ModelArray { shape, data, fill: fill.to_bits() });
                }
            }
            Op::Write { slot, pos, len, seed } => {
                let name = SLOTS[*slot];
                let Some(array) = model.get_mut(name) else {
                    let result = ds.write_array(name, &[0], ndarray::arr1(&[0i32]).view());
                    prop_assert!(matches!(result, Err(Error::NotFound { .. })), "{:?}", result);
                    continue;
                };
                let (start, extent) = pick_box(&array.shape, pos, len);
                let indices = box_indices(&array.shape, &start, &extent);
                let dims = IxDyn(&to_usize(&extent));
                match &mut array.data {
                    Data::F32(all) => {
                        let values: Vec<f32> = (0..indices.len()).map(|k| (*seed as f32) * 0.5 + k as f32).collect();
                        let values = with_nulls(values, *seed, f32::from_bits(array.fill), Some(f32::NAN));
                        ds.write_array(name, &start, ArrayD::from_shape_vec(dims, values.clone()).unwrap().view())
                            .unwrap();
                        indices.iter().zip(values).for_each(|(&i, v)| all[i] = v);
                    }
                    Data::I32(all) => {
                        let values: Vec<i32> =
                            (0..indices.len()).map(|k| seed.wrapping_mul(31).wrapping_add(k as i32)).collect();
                        let values = with_nulls(values, *seed, INT_FILL, None);
                        ds.write_array(name, &start, ArrayD::from_shape_vec(dims, values.clone()).unwrap().view())
                            .unwrap();
                        indices.iter().zip(values).for_each(|(&i, v)| all[i] = v);
                    }
                    Data::Str(all) => {
                        let values = with_nulls(strings(indices.len(), *seed), *seed, String::new(), None);
                        ds.write_strings(name, &start, ArrayD::from_shape_vec(dims, values.clone()).unwrap().view())
                            .unwrap();
                        indices.iter().zip(values).for_each(|(&i, v)| all[i] = v);
                    }
                }
            }
            Op::ReadBoxes { slot, len, starts } => {
                if let Some(array) = model.get(SLOTS[*slot]).filter(|a| !a.shape.contains(&0)) {
                    check_boxes(&ds, SLOTS[*slot], array, len, starts)?;
                }
            }
            Op::Read { slot, pos, len } => {
                let name = SLOTS[*slot];
                match model.get(name) {
                    Some(array) => {
                        let (start, extent) = pick_box(&array.shape, pos, len);
                        check_box(&ds, name, array, &start, &extent)?;
                    }
                    None => {
                        let result = ds.read_array::<i32>(name, &[0], &[1]);
                        prop_assert!(matches!(result, Err(Error::NotFound { .. })), "{:?}", result);
                    }
                }
            }
            Op::ReadOutOfBounds { slot } => {
                let name = SLOTS[*slot];
                if let Some(array) = model.get(name) {
                    let mut start = vec![0; array.shape.len()];
                    start[0] = array.shape[0];
                    let extent = vec![1; array.shape.len()];
                    let result = match array.data {
                        Data::F32(_) => ds.read_array::<f32>(name, &start, &extent).map(drop),
                        Data::I32(_) => ds.read_array::<i32>(name, &start, &extent).map(drop),
                        Data::Str(_) => ds.read_strings(name, &start, &extent).map(drop),
                    };
                    prop_assert!(matches!(result, Err(Error::OutOfBounds { .. })), "{:?}", result);
                }
            }
            Op::Delete { slot } => {
                let name = SLOTS[*slot];
                let result = ds.delete_array(name);
                if model.remove(name).is_some() {
                    result.unwrap();
                } else {
                    prop_assert!(matches!(result, Err(Error::NotFound { .. })), "{:?}", result);
                }
            }
            Op::Move { from, to } => {
                let (from, to) = (SLOTS[*from], SLOTS[*to]);
                let result = store.move_array(("d", from), ("d", to));
                if !model.contains_key(from) {
                    prop_assert!(matches!(result, Err(Error::NotFound { .. })), "{:?}", result);
                } else if from != to && model.contains_key(to) {
                    prop_assert!(matches!(result, Err(Error::AlreadyExists { .. })), "{:?}", result);
                } else {
                    result.unwrap();
                    let array = model.remove(from).expect("checked above");
                    model.insert(to.to_string(), array);
                }
            }
            Op::Copy { from, to } => {
                let (from, to) = (SLOTS[*from], SLOTS[*to]);
                let result = store.copy_array(("d", from), ("d", to));
                if !model.contains_key(from) {
                    prop_assert!(matches!(result, Err(Error::NotFound { .. })), "{:?}", result);
                } else if model.contains_key(to) {
                    prop_assert!(matches!(result, Err(Error::AlreadyExists { .. })), "{:?}", result);
                } else {
                    result.unwrap();
                    let array = model[from].clone();
                    model.insert(to.to_string(), array);
                }
            }
            Op::Flush => {
                store.flush().unwrap();
                prop_assert!(!store.has_pending_changes());
                committed.clone_from(&model);
                check_committed(&path, &mut meta_file)?;
                // What a fresh handle sees is exactly the model.
                check_all(&open(&path).1, &model)?;
            }
            Op::Reopen => {
                drop((ds, store));
                committed.clone_from(&model);
                check_committed(&path, &mut meta_file)?;
                (store, ds) = open_with(&path, memory);
                check_all(&ds, &model)?;
            }
            Op::Discard => {
                store.discard();
                prop_assert!(!store.has_pending_changes());
                model.clone_from(&committed);
                meta_file.1 = None;
                check_all(&ds, &model)?;
            }
            Op::Compact => {
                store.compact().unwrap();
                committed.clone_from(&model);
                check_committed(&path, &mut meta_file)?;
                check_all(&ds, &model)?;
            }
            Op::Recompress { codec, shuffle } => {
                let before = store.shuffle();
                store.recompress(CODECS[*codec], SHUFFLES.get(*shuffle).copied()).unwrap();
                prop_assert_eq!(
                    (store.codec(), store.shuffle()),
                    (CODECS[*codec], *SHUFFLES.get(*shuffle).unwrap_or(&before))
                );
            }
            Op::RecompressArray { slot, codec, shuffle } => {
                let name = SLOTS[*slot];
                let result = store.recompress_array("d", name, CODECS[*codec], SHUFFLES.get(*shuffle).copied());
                prop_assert_eq!(result.is_ok(), model.contains_key(name), "{:?}", result);
            }
            Op::SetMetaFormat { format, compression } => {
                let (format, compression) = (META_FORMATS[*format], META_COMPRESSIONS[*compression]);
                store.set_meta_format(Some(format), Some(compression)).unwrap();
                meta_file.1 = Some(meta_file_name(format, compression));
            }
            Op::SetCodec(i) => {
                store.set_codec(CODECS[*i]).unwrap();
                prop_assert_eq!(store.codec(), CODECS[*i]);
            }
            Op::SetArrayCodec { slot, codec } => {
                let name = SLOTS[*slot];
                let result = ds.array(name).and_then(|a| a.set_codec(codec.map(|i| CODECS[i])));
                prop_assert_eq!(result.is_ok(), model.contains_key(name), "{:?}", result);
            }
            Op::SetShuffle(i) => {
                store.set_shuffle(SHUFFLES[*i]).unwrap();
                prop_assert_eq!(store.shuffle(), SHUFFLES[*i]);
            }
            Op::Reader => {
                check_all(&reader_ds, &reader_model)?;
                reader.refresh().unwrap();
                reader_model.clone_from(&committed);
                check_all(&reader_ds, &reader_model)?;
            }
            Op::Resize { slot, raw } => {
                let name = SLOTS[*slot];
                let Some(array) = model.get_mut(name) else {
                    let result = ds.resize_array(name, &[1]);
                    prop_assert!(matches!(result, Err(Error::NotFound { .. })), "{:?}", result);
                    continue;
                };
                let shape: Vec<u64> = array.shape.iter().zip(raw).map(|(_, r)| r % sizes.resize_below).collect();
                ds.resize_array(name, &shape).unwrap();
                *array = array.resized(shape);
            }
            Op::Append { slot, rows, seed } => {
                let name = SLOTS[*slot];
                let Some(array) = model.get_mut(name) else { continue };
                let mut extent = array.shape.clone();
                extent[0] = 1 + rows % 3;
                let mut grown = array.shape.clone();
                grown[0] += extent[0];
                let mut start = vec![0; extent.len()];
                start[0] = array.shape[0];
                *array = array.resized(grown);
                let indices = box_indices(&array.shape, &start, &extent);
                let dims = IxDyn(&to_usize(&extent));
                match &mut array.data {
                    Data::F32(all) => {
                        let values: Vec<f32> = (0..indices.len()).map(|k| *seed as f32 - k as f32).collect();
                        let values = with_nulls(values, *seed, f32::from_bits(array.fill), Some(f32::NAN));
                        ds.append_array(name, ArrayD::from_shape_vec(dims, values.clone()).unwrap().view()).unwrap();
                        indices.iter().zip(values).for_each(|(&i, v)| all[i] = v);
                    }
                    Data::I32(all) => {
                        let values: Vec<i32> = (0..indices.len()).map(|k| seed.wrapping_sub(k as i32)).collect();
                        let values = with_nulls(values, *seed, INT_FILL, None);
                        ds.append_array(name, ArrayD::from_shape_vec(dims, values.clone()).unwrap().view()).unwrap();
                        indices.iter().zip(values).for_each(|(&i, v)| all[i] = v);
                    }
                    Data::Str(all) => {
                        let values =
                            with_nulls(strings(indices.len(), seed.wrapping_add(1)), *seed, String::new(), None);
                        let view = ArrayD::from_shape_vec(dims, values.clone()).unwrap();
                        ds.array(name).unwrap().append_strings(view.view()).unwrap();
                        indices.iter().zip(values).for_each(|(&i, v)| all[i] = v);
                    }
                }
            }
        }
    }
    check_all(&ds, &model)?;
    drop((ds, store));
    check_committed(&path, &mut meta_file)?;
    check_all(&open(&path).1, &model)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn random_operation_sequences_match_an_in_memory_model(
        ops in proptest::collection::vec(op(SMALL), 1..24),
        memory in memory(),
    ) {
        let dir = TestDir::new(&test_name!());
        run(&dir, &ops, memory, SMALL)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_operation_sequences_on_large_chunks_match_an_in_memory_model(
        ops in proptest::collection::vec(op(LARGE), 4..24),
        memory in memory(),
    ) {
        let dir = TestDir::new(&test_name!());
        run(&dir, &ops, memory, LARGE)?;
    }
}
