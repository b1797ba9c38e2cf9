//! Helpers shared by the fuzz targets. The targets drive Atlas through its public API only:
//! they write the fuzz input into a store directory (as its metadata file, a fragment, or
//! a block inside a hand-built fragment), then open the store and read everything. Any
//! panic is a bug (STYLE.md, "Errors"); so is a file appearing outside the store.
//!
//! Stores live under /dev/shm when it exists (no disk I/O per input), one directory per
//! target and process ([`scratch`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use atlas::{ArraySpec, Atlas, AttrValue, Codec, DType, Dataset, ReadOptions, Shuffle, StoreConfig};
use ndarray::{Array2, arr1, arr2};

/// A fresh, empty scratch directory for `target` in this process: under
/// `$ATLAS_FUZZ_SCRATCH` when set (scripts/fuzz sets it and removes it afterwards), else
/// under /dev/shm or the temp dir.
pub fn scratch(target: &str) -> PathBuf {
    let base = match std::env::var_os("ATLAS_FUZZ_SCRATCH") {
        Some(dir) => PathBuf::from(dir),
        None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => std::env::temp_dir(),
    };
    let dir = base.join(format!("atlas-fuzz-{target}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Copies the files of `from` (one level of subfolders) into `to`.
pub fn copy_store(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to.join("data")).expect("create store copy");
    for dir in ["", "data"] {
        for entry in std::fs::read_dir(from.join(dir)).expect("list store") {
            let entry = entry.expect("dir entry");
            if entry.file_type().expect("file type").is_file() {
                std::fs::copy(entry.path(), to.join(dir).join(entry.file_name())).expect("copy");
            }
        }
    }
}

/// Writes `bytes` as a seed file into `$ATLAS_FUZZ_SEED_DIR` when that is set (scripts/fuzz
/// points it at the target's corpus before libFuzzer reads the corpus).
pub fn seed(name: &str, bytes: &[u8]) {
    if let Some(dir) = std::env::var_os("ATLAS_FUZZ_SEED_DIR") {
        std::fs::create_dir_all(&dir).expect("create seed dir");
        std::fs::write(Path::new(&dir).join(format!("seed-{name}")), bytes).expect("write seed");
    }
}

/// A small valid store: every codec (a zstd dictionary included), shuffle on and off, byte delta, strings, bools, timestamps, a fill
/// entry, attributes; one commit, so one fragment. JSON metadata.
pub fn build_template(path: &Path) {
    let config = StoreConfig { codec: Codec::Zstd { level: 3 }, ..StoreConfig::default() };
    let store = Atlas::create(path, config).expect("create template");
    store.attrs().set("title", "fuzz template").expect("attr");
    store.attrs().set("list", AttrValue::List(vec![1.5.into(), AttrValue::Float(f64::NAN), "x".into()])).expect("attr");
    let d = store.create_dataset("d").expect("dataset");
    d.attrs().set("when", AttrValue::Timestamp(1_700_000_000_000_000_000)).expect("attr");
    let spec = ArraySpec::new(DType::Float32, [6, 10]).chunk_shape([4, 4]).fill_value(f32::NAN).shuffle(Shuffle::On);
    let f = d.define_array("f32", spec).expect("define");
    f.write(&[0, 0], Array2::from_shape_fn((5, 7), |(i, j)| i as f32 - j as f32 * 0.5).view()).expect("write");
    f.attrs().set("units", "K").expect("attr");
    // Chunk 1 is mostly fill: LZ4 makes it smaller (an LZ4 block); chunk 0 is stored raw.
    let spec = ArraySpec::new(DType::Int16, [9]).chunk_shape([8]).fill_value(-1).codec(Codec::Lz4);
    d.define_array("i16", spec.shuffle(Shuffle::Off)).expect("define");
    d.write_array("i16", &[0], arr1(&[3i16, -7, 300, 0, 12, -1, 5, 9, 11]).view()).expect("write");
    let spec = ArraySpec::new(DType::UInt64, [5]).codec(Codec::None).shuffle(Shuffle::On);
    d.define_array("u64", spec).expect("define");
    d.write_array("u64", &[0], arr1(&[1u64, u64::MAX, 1 << 40, 0, 77]).view()).expect("write");
    let spec = ArraySpec::new(DType::Float64, [12]).chunk_shape([6]).shuffle(Shuffle::ByteDelta);
    d.define_array("f64d", spec).expect("define");
    d.write_array("f64d", &[0], ndarray::Array1::from_shape_fn(12, |i| 1000.0 + i as f64 * 0.25).view())
        .expect("write");
    let spec = ArraySpec::new(DType::Int64, [12]).chunk_shape([6]).shuffle(Shuffle::Delta);
    d.define_array("i64e", spec).expect("define");
    d.write_array("i64e", &[0], ndarray::Array1::from_shape_fn(12, |i| (1 << 40) + i as i64 * 60).view())
        .expect("write");
    d.define_array("b", ArraySpec::new(DType::Bool, [7]).chunk_shape([4]).codec(Codec::Lz4)).expect("define");
    d.write_array("b", &[0], arr1(&[true, false, true, true, false, false, true]).view()).expect("write");
    d.define_array("s", ArraySpec::new(DType::String, [5]).chunk_shape([3])).expect("define");
    d.write_strings("s", &[0], arr1(&["", "\u{e9}t\u{e9}", "x", "longer text", "y"]).view()).expect("write");
    d.define_array("t", ArraySpec::new(DType::Timestamp, [2])).expect("define");
    d.write_array("t", &[0], arr1(&[1_700_000_000_000_000_000i64, -1]).view()).expect("write");
    d.define_array("fill", ArraySpec::new(DType::Int32, [8]).chunk_shape([4]).fill_value(7)).expect("define");
    d.write_array("fill", &[0], arr1(&[7, 7, 7, 7, 1, 2, 3, 4]).view()).expect("write");
    let spec = ArraySpec::new(DType::Int8, [3, 3]).chunk_shape([2, 2]).codec(Codec::None);
    d.define_array("i8", spec).expect("define");
    d.write_array("i8", &[0, 0], arr2(&[[1i8, -2, 3], [-4, 5, -6], [7, -8, 9]]).view()).expect("write");
    // A zstd dictionary, trained from a first write of 16 chunks: codec id 3 blocks.
    let spec = ArraySpec::new(DType::UInt16, [2048]).chunk_shape([128]).zstd_dictionary(true);
    d.define_array("dict", spec).expect("define");
    let values = ndarray::Array1::from_shape_fn(2048, |i| (i % 128 * 3 + i / 128 % 3) as u16);
    d.write_array("dict", &[0], values.view()).expect("write");
    assert!(d.array_meta("dict").expect("meta").zstd_dictionary.is_some(), "no dictionary was trained");
    store.flush().expect("flush template");
}

/// A box at the origin of at most `max_elems` elements inside `shape`.
fn small_box(shape: &[u64], max_elems: u64) -> Vec<u64> {
    let mut left = max_elems;
    let mut extent = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        extent[d] = shape[d].min(16).min(left);
        left /= extent[d].max(1);
    }
    extent
}

/// Reads everything an opened store shows (attributes, schemas, stats, blocks, a box of
/// every array with checksums verified and not, verify): errors are fine, panics are not.
/// Returns a text summary of what read, for targets that compare.
pub fn read_everything(store: &Atlas) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:?}", store.attrs().all());
    for name in store.list_datasets() {
        let Ok(ds) = store.open_dataset(&name) else { continue };
        let _ = writeln!(out, "{name} {:?}", ds.attrs().all());
        for array in ds.list_arrays().unwrap_or_default() {
            let Ok(meta) = ds.array_meta(&array) else { continue };
            let _ = writeln!(out, "{array} {meta:?} {:?}", ds.array_stats(&array));
            let _ = writeln!(out, "{:?}", ds.block_stats(&array));
            let _ = writeln!(out, "{:?}", store.array_blocks(&name, &array).map(|b| b.len()));
            let extent = small_box(&meta.shape, 4096);
            for verify in [true, false] {
                let _ = writeln!(out, "{}", read_box(&ds, &array, meta.dtype, &extent, verify));
            }
            let _ = ds.attrs().all();
        }
    }
    let _ = writeln!(out, "{:?}", store.verify(&mut |_, _| {}).map(|r| (r.blocks_checked, r.bad_blocks.len())));
    out
}

/// Reads the box at the origin of `extent`; returns the values (floats as bits) or the error.
pub fn read_box(ds: &Dataset, array: &str, dtype: DType, extent: &[u64], verify: bool) -> String {
    let start = vec![0; extent.len()];
    let len = extent.iter().product::<u64>() as usize;
    let options = ReadOptions { verify_checksums: verify, ..ReadOptions::default() };
    macro_rules! read {
        ($t:ty, $show:expr) => {{
            let mut out = vec![<$t>::default(); len];
            match ds.read_array_into(array, &start, extent, &mut out, options) {
                Ok(()) => format!("{:?}", out.iter().map($show).collect::<Vec<_>>()),
                Err(e) => format!("error {e}"),
            }
        }};
    }
    match dtype {
        DType::Int8 => read!(i8, |v: &i8| i64::from(*v)),
        DType::Int16 => read!(i16, |v: &i16| i64::from(*v)),
        DType::Int32 => read!(i32, |v: &i32| i64::from(*v)),
        DType::Int64 | DType::Timestamp => read!(i64, |v: &i64| *v),
        DType::UInt8 => read!(u8, |v: &u8| u64::from(*v)),
        DType::UInt16 => read!(u16, |v: &u16| u64::from(*v)),
        DType::UInt32 => read!(u32, |v: &u32| u64::from(*v)),
        DType::UInt64 => read!(u64, |v: &u64| *v),
        DType::Float32 => read!(f32, |v: &f32| u64::from(v.to_bits())),
        DType::Float64 => read!(f64, |v: &f64| v.to_bits()),
        DType::Bool => read!(bool, |v: &bool| u64::from(*v)),
        DType::String => match ds.read_strings(array, &start, extent) {
            Ok(values) => format!("{:?}", values.iter().collect::<Vec<_>>()),
            Err(e) => format!("error {e}"),
        },
        _ => String::from("unknown dtype"),
    }
}

/// Fragment layout constants (docs/FORMAT.md, "Fragment file").
pub mod layout {
    /// Header bytes.
    pub const HEADER_LEN: usize = 16;
    /// Footer bytes.
    pub const FOOTER_LEN: usize = 40;
    /// Index entry bytes before the coordinates.
    pub const ENTRY_FIXED_LEN: usize = 80;
}

/// Recomputes the index checksum of a fragment image if its footer points at an index
/// inside the file; returns whether it did.
pub fn fix_index_checksum(bytes: &mut [u8]) -> bool {
    if bytes.len() < layout::HEADER_LEN + layout::FOOTER_LEN {
        return false;
    }
    let footer = bytes.len() - layout::FOOTER_LEN;
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let (offset, len) = (u64_at(footer), u64_at(footer + 8));
    let Some(end) = offset.checked_add(len).filter(|&end| end <= footer as u64) else { return false };
    let sum = xxhash_rust::xxh3::xxh3_64(&bytes[offset as usize..end as usize]);
    bytes[footer + 24..footer + 32].copy_from_slice(&sum.to_le_bytes());
    true
}

/// A JSON metadata text (compact, as Atlas writes it) without its `checksum` field, the
/// last one: hand-written metadata, which a reader takes unchecked.
pub fn strip_checksum(text: &str) -> String {
    match text.rfind(",\"checksum\":") {
        Some(at) => format!("{}}}", &text[..at]),
        None => text.to_string(),
    }
}

/// The parts of a one-block fragment.
#[derive(Debug, Clone)]
pub struct OneBlock<'a> {
    /// The block's stored bytes.
    pub stored: &'a [u8],
    /// Raw length the entry claims.
    pub raw_len: u64,
    /// Checksum the entry records.
    pub checksum: u64,
    /// Codec id, filter id and filter parameter bytes.
    pub codec: u8,
    /// Filter id.
    pub filter: u8,
    /// Filter parameter.
    pub filter_param: u8,
    /// Whether the entry is a fill entry (then `stored` should be empty).
    pub is_fill: bool,
}

/// A fragment holding one block of array id 0 at chunk [0], as docs/FORMAT.md describes.
pub fn one_block_fragment(block: &OneBlock<'_>) -> Vec<u8> {
    let mut file = Vec::new();
    file.extend_from_slice(b"ATLFRAG\0");
    file.extend_from_slice(&1u32.to_le_bytes());
    file.extend_from_slice(&0u32.to_le_bytes());
    file.extend_from_slice(block.stored);
    while file.len() % 8 != 0 {
        file.push(0);
    }
    let index_offset = file.len() as u64;
    let mut entry = vec![0u8; layout::ENTRY_FIXED_LEN + 8];
    let put = |e: &mut [u8], at: usize, v: u64| e[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put(&mut entry, 0, 0); // array id
    put(&mut entry, 8, layout::HEADER_LEN as u64);
    put(&mut entry, 16, block.stored.len() as u64);
    put(&mut entry, 24, block.raw_len);
    put(&mut entry, 32, block.checksum);
    entry[40] = block.codec;
    entry[41] = block.filter;
    entry[42] = block.filter_param;
    entry[43] = 1; // ndim
    entry[44] = u8::from(block.is_fill);
    put(&mut entry, 80, 0); // coord [0]
    let checksum = xxhash_rust::xxh3::xxh3_64(&entry);
    file.extend_from_slice(&entry);
    file.extend_from_slice(&index_offset.to_le_bytes());
    file.extend_from_slice(&(entry.len() as u64).to_le_bytes());
    file.extend_from_slice(&1u64.to_le_bytes());
    file.extend_from_slice(&checksum.to_le_bytes());
    file.extend_from_slice(b"ATLFEND\0");
    file
}

/// The fragment name every hand-built store uses.
pub const FRAGMENT_NAME: &str = "0000000000000001-0000000000000001.frag";

/// Metadata (JSON) of a store with dataset `d` holding array `a` of `dtype` with `elems`
/// elements in one chunk (and zstd dictionary `dict`, if any), and one fragment of
/// `len_bytes`.
pub fn one_array_meta(dtype: &str, elems: u64, len_bytes: u64, dict: Option<&[u8]>) -> String {
    let dict = dict
        .map_or(String::from("null"), |d| format!("\"{}\"", d.iter().map(|b| format!("{b:02x}")).collect::<String>()));
    format!(
        concat!(
            r#"{{"format_version":1,"generation":1,"codec":{{"name":"zstd","level":3}},"shuffle":"auto","#,
            r#""next_array_id":1,"attributes":{{}},"datasets":{{"d":{{"attributes":{{}},"arrays":{{"a":"#,
            r#"{{"id":0,"dtype":"{dtype}","shape":[{elems}],"chunk_shape":[{elems}],"dims":["x"],"#,
            r#""fill_value":0,"codec":null,"shuffle":null,"attributes":{{}},"zstd_dictionary":{dict}}}}}}}}},"#,
            r#""fragments":[{{"name":"{name}","len_bytes":{len}}}]}}"#
        ),
        dtype = dtype,
        elems = elems,
        name = FRAGMENT_NAME,
        len = len_bytes,
        dict = dict
    )
}

/// Whether `stored` is one whole zstd frame that declares `raw_len` bytes, as FORMAT.md
/// says a zstd block is.
fn is_one_zstd_frame_of(stored: &[u8], raw_len: usize) -> bool {
    zstd::zstd_safe::get_frame_content_size(stored).ok().flatten() == Some(raw_len as u64)
        && zstd::zstd_safe::find_frame_compressed_size(stored).is_ok_and(|n| n == stored.len())
}

/// Decodes a block as docs/FORMAT.md says (codec, then the running sum of each plane when
/// the filter id is 2, then unshuffle, then the running sum of the elements when it is 3),
/// independently of Atlas: the oracle of `block_decode`. `None` when the stream does not
/// decode to `raw_len` bytes (or is a dictionary block without a dictionary).
pub fn reference_decode(
    stored: &[u8],
    codec: u8,
    (shuffle, filter): (Option<usize>, u8),
    raw_len: usize,
    dict: Option<&[u8]>,
) -> Option<Vec<u8>> {
    let mut raw = vec![0u8; raw_len];
    match codec {
        0 => {
            if stored.len() != raw_len {
                return None;
            }
            raw.copy_from_slice(stored);
        }
        1 if !is_one_zstd_frame_of(stored, raw_len) => return None,
        1 => {
            let mut decompressor = zstd::bulk::Decompressor::new().ok()?;
            if decompressor.decompress_to_buffer(stored, &mut raw[..]).ok()? != raw_len {
                return None;
            }
        }
        2 => {
            if lz4_flex::block::decompress_into(stored, &mut raw).ok()? != raw_len {
                return None;
            }
        }
        3 if !is_one_zstd_frame_of(stored, raw_len) => return None,
        3 => {
            let mut decompressor = zstd::bulk::Decompressor::with_dictionary(dict?).ok()?;
            if decompressor.decompress_to_buffer(stored, &mut raw[..]).ok()? != raw_len {
                return None;
            }
        }
        _ => return None,
    }
    if let Some(k) = shuffle.filter(|_| filter == 2) {
        let n = raw_len / k;
        for plane in 0..k {
            for i in 1..n {
                raw[plane * n + i] = raw[plane * n + i].wrapping_add(raw[plane * n + i - 1]);
            }
        }
    }
    if let Some(k) = shuffle.filter(|&k| k > 1) {
        let n = raw_len / k;
        let mut out = raw.clone();
        for i in 0..n {
            for j in 0..k {
                out[i * k + j] = raw[j * n + i];
            }
        }
        raw = out;
    }
    if let Some(k) = shuffle.filter(|_| filter == 3) {
        // Each whole element plus the one before it, as k-byte little-endian integers.
        for i in 1..raw_len / k {
            let mut carry = 0u16;
            for j in 0..k {
                let sum = u16::from(raw[i * k + j]) + u16::from(raw[(i - 1) * k + j]) + carry;
                raw[i * k + j] = sum as u8;
                carry = sum >> 8;
            }
        }
    }
    Some(raw)
}
