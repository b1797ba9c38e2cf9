//! Bit rot and torn files. For a small store holding every codec (a zstd dictionary
//! included), shuffle on and off, strings, bools, timestamps, a fill entry, superseded
//! blocks, attributes and statistics, under JSON metadata and again under zstd-compressed
//! `MessagePack`: every single byte of every file is flipped in turn (the metadata file
//! with two xor patterns per byte, fragments with the two alternating), and every file is
//! cut short at about ten points. After each change the store is opened and everything is read
//! (`observe::dump`, under `catch_unwind`). The outcome must be an error of any typed
//! variant or exactly the original content: never a panic, never different data.
//!
//! Every file is covered by a checksum (the metadata's, the fragments' index checksums, the
//! blocks'), so any change that opens must read back the original content, in the metadata
//! file as in the fragments; `every_metadata_byte_flip_is_refused_or_harmless` walks the
//! metadata file of each of the six encodings.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use atlas::{
    ArraySpec, Atlas, AttrValue, BlockCodec, Codec, DType, Error, MetaCompression, MetaFormat, Shuffle, StoreConfig,
};
use ndarray::{Array2, arr1, arr2};

use crate::observe::{dump, first_difference, open_and_dump_catching};
use crate::util::{self, test_dir};

/// The xor patterns each byte is flipped with: every bit, and the lowest bit alone (which
/// keeps most text characters printable, so it tests parsers rather than UTF-8 checks).
const MASKS: [u8; 2] = [0xff, 0x01];

/// Writes the store: two commits, so there are two fragments and superseded blocks.
fn build(path: &Path, meta_format: MetaFormat, meta_compression: MetaCompression) {
    let config = StoreConfig { codec: Codec::Zstd { level: 3 }, meta_format, meta_compression, ..Default::default() };
    let store = Atlas::create(path, config).unwrap();
    store.attrs().set("title", "corruption suite").unwrap();
    store.attrs().set("when", AttrValue::Timestamp(1_700_000_000_123_456_789)).unwrap();
    store.attrs().set("list", AttrValue::List(vec![1.5.into(), AttrValue::Float(f64::INFINITY), "x".into()])).unwrap();

    let a = store.create_dataset("a").unwrap();
    a.attrs().set("units", "K").unwrap();
    let spec = ArraySpec::new(DType::Float32, [6, 10]).chunk_shape([4, 4]).fill_value(f32::NAN);
    let f32z = a.define_array("f32z", spec.shuffle(Shuffle::On)).unwrap();
    f32z.write(&[0, 0], Array2::from_shape_fn((5, 7), |(i, j)| i as f32 * 1.5 - j as f32).view()).unwrap();
    f32z.attrs().set("scale", 0.25).unwrap();
    // Chunk 1 is mostly fill (-1): LZ4 makes it smaller, so it is an LZ4 block; chunk 0 is
    // not, and is stored raw (codec none).
    let spec = ArraySpec::new(DType::Int16, [9]).chunk_shape([8]).fill_value(-1).codec(Codec::Lz4);
    let i16l = a.define_array("i16l", spec.shuffle(Shuffle::Off)).unwrap();
    i16l.write(&[0], arr1(&[3i16, -7, 300, 0, 12, -1, 5, 9, 11]).view()).unwrap();
    let spec = ArraySpec::new(DType::UInt64, [5]).codec(Codec::None).shuffle(Shuffle::On);
    a.define_array("u64n", spec).unwrap().write(&[0], arr1(&[1u64, u64::MAX, 1 << 40, 0, 77]).view()).unwrap();
    let spec = ArraySpec::new(DType::Float64, [4]).chunk_shape([2]).codec(Codec::None).shuffle(Shuffle::Off);
    a.define_array("f64n", spec).unwrap().write(&[0], arr1(&[0.1, -2.5e300, f64::NAN, 4.0]).view()).unwrap();
    // Byte delta after the shuffle (filter id 2), under zstd and stored as is.
    for (name, codec) in [("f64d", Codec::Zstd { level: 3 }), ("f64dn", Codec::None)] {
        let spec = ArraySpec::new(DType::Float64, [12]).chunk_shape([6]).codec(codec).shuffle(Shuffle::ByteDelta);
        let values = ndarray::Array1::from_shape_fn(12, |i| 1000.0 + i as f64 * 0.25);
        a.define_array(name, spec).unwrap().write(&[0], values.view()).unwrap();
    }
    // Element delta before the shuffle (filter id 3): steady int64 steps, under zstd.
    let spec = ArraySpec::new(DType::Int64, [12]).chunk_shape([6]).shuffle(Shuffle::Delta);
    let steps = ndarray::Array1::from_shape_fn(12, |i| 1_700_000_000_000_000_000 + i as i64 * 1_000_000_000);
    a.define_array("i64e", spec).unwrap().write(&[0], steps.view()).unwrap();
    // Chunk 0 holds only the fill value: a fill entry with no bytes.
    let fill = a.define_array("fill", ArraySpec::new(DType::Int32, [8]).chunk_shape([4]).fill_value(7)).unwrap();
    fill.write(&[0], arr1(&[7, 7, 7, 7, 1, 2, 3, 4]).view()).unwrap();

    let b = store.create_dataset("b").unwrap();
    b.attrs().set("nested", AttrValue::List(vec![AttrValue::Map([("k".into(), 1.into())].into())])).unwrap();
    let names = b.define_array("names", ArraySpec::new(DType::String, [5]).chunk_shape([3])).unwrap();
    names.write_strings(&[0], arr1(&["", "\u{e9}t\u{e9}", "x", "a longer string", "y"]).view()).unwrap();
    let spec = ArraySpec::new(DType::Bool, [7]).chunk_shape([4]).codec(Codec::Lz4);
    b.define_array("flags", spec)
        .unwrap()
        .write(&[0], arr1(&[true, false, true, true, false, false, true]).view())
        .unwrap();
    let spec = ArraySpec::new(DType::Int8, [3, 3]).chunk_shape([2, 2]).shuffle(Shuffle::Off);
    b.define_array("i8", spec).unwrap().write(&[0, 0], arr2(&[[1i8, -2, 3], [-4, 5, -6], [7, -8, 9]]).view()).unwrap();
    let times = b.define_array("times", ArraySpec::new(DType::Timestamp, [2]).codec(Codec::Lz4)).unwrap();
    times.write(&[0], arr1(&[1_700_000_000_000_000_000i64, -1]).view()).unwrap();
    // A zstd dictionary, trained from the first write of 16 chunks: codec id 3 blocks.
    let spec = ArraySpec::new(DType::UInt16, [2048]).chunk_shape([128]).zstd_dictionary(true);
    let dict = b.define_array("dict", spec).unwrap();
    let values = ndarray::Array1::from_shape_fn(2048, |i| (i % 128 * 3 + i / 128 % 3) as u16);
    dict.write(&[0], values.view()).unwrap();
    assert!(dict.meta().unwrap().zstd_dictionary.is_some(), "no dictionary was trained");
    store.flush().unwrap();

    // The second commit supersedes some blocks and changes an attribute.
    f32z.write(&[2, 4], Array2::from_elem((2, 4), 9.5f32).view()).unwrap();
    names.write_strings(&[4], arr1(&["z"]).view()).unwrap();
    i16l.write(&[8], arr1(&[-30_000i16]).view()).unwrap();
    store.attrs().set("title", "second commit").unwrap();
    store.flush().unwrap();
    // Every codec id is on disk.
    let mut codecs: Vec<BlockCodec> = ["a", "b"]
        .iter()
        .flat_map(|ds| store.open_dataset(ds).unwrap().list_arrays().unwrap().into_iter().map(move |a| (*ds, a)))
        .flat_map(|(ds, a)| store.array_blocks(ds, &a).unwrap())
        .filter(|b| !b.is_fill)
        .map(|b| b.codec)
        .collect();
    codecs.sort_by_key(|c| format!("{c:?}"));
    codecs.dedup();
    assert_eq!(codecs, [BlockCodec::Lz4, BlockCodec::None, BlockCodec::Zstd, BlockCodec::ZstdDict]);
    let delta_blocks =
        store.array_blocks("a", "f64d").unwrap().into_iter().chain(store.array_blocks("a", "f64dn").unwrap());
    assert!(delta_blocks.map(|b| (b.codec, b.byte_delta)).eq([
        (BlockCodec::Zstd, true),
        (BlockCodec::Zstd, true),
        (BlockCodec::None, true),
        (BlockCodec::None, true)
    ]));
    let elem_delta = store.array_blocks("a", "i64e").unwrap();
    assert!(
        elem_delta.iter().all(|b| (b.codec, b.shuffled, b.delta) == (BlockCodec::Zstd, true, true)),
        "{elem_delta:?}"
    );
}

/// Where each file is cut short: both ends, inside the header and footer, and between.
fn cut_points(len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = [0, 1, 8, len / 8, len / 4, len / 2, 3 * len / 4, len.saturating_sub(41)]
        .into_iter()
        .chain([len.saturating_sub(40), len.saturating_sub(8), len.saturating_sub(1)])
        .filter(|&c| c < len)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

#[derive(Debug, Default)]
struct Tally {
    /// Bytes flipped (each flip of each mask counts once) and files cut short.
    flips: u64,
    truncations: u64,
    /// Outcomes: the original content read back, or a typed error (by variant).
    harmless: u64,
    refused: BTreeMap<&'static str, u64>,
    /// Problems: a panic, or different data.
    panics: Vec<String>,
    wrong: Vec<String>,
}

fn variant(e: &Error) -> &'static str {
    match e {
        Error::Corrupt { .. } => "Corrupt",
        Error::ChecksumMismatch { .. } => "ChecksumMismatch",
        Error::UnsupportedVersion { .. } => "UnsupportedVersion",
        Error::NotFound { .. } => "NotFound",
        Error::Io { .. } => "Io",
        Error::InvalidArgument { .. } => "InvalidArgument",
        _ => "other",
    }
}

impl Tally {
    fn record(&mut self, what: &str, expected: &str, outcome: Result<Result<String, Error>, String>) {
        match outcome {
            Err(panic) => self.panics.push(format!("{what}: panic: {panic}")),
            Ok(Ok(found)) if found == expected => self.harmless += 1,
            Ok(Ok(found)) => self.wrong.push(format!("{what}: {}", first_difference(expected, &found))),
            Ok(Err(e)) => *self.refused.entry(variant(&e)).or_default() += 1,
        }
    }
}

/// Flips every `stride`-th byte of `file` and cuts it at every cut point, opening and
/// reading the store at `store` after each change; restores the file.
fn walk_file(store: &Path, file: &Path, stride: usize, expected: &str, tally: &mut Tally) {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let is_meta = util::is_meta_name(&name);
    let good = std::fs::read(file).unwrap();
    // Flipped in place: rewriting whole files (truncate + write) makes ext4 flush each one.
    let handle = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    for (k, at) in (0..good.len()).step_by(stride).enumerate() {
        // The metadata gets both masks at every byte; fragments (larger, and covered by
        // checksums) one mask per byte, alternating.
        let masks = if is_meta { &MASKS[..] } else { &MASKS[k % 2..=k % 2] };
        for &mask in masks {
            handle.write_all_at(&[good[at] ^ mask], at as u64).unwrap();
            tally.flips += 1;
            tally.record(&format!("{name} byte {at} ^ {mask:#04x}"), expected, open_and_dump_catching(store));
        }
        handle.write_all_at(&good[at..=at], at as u64).unwrap();
    }
    drop(handle);
    for cut in cut_points(good.len()) {
        std::fs::write(file, &good[..cut]).unwrap();
        tally.truncations += 1;
        let outcome = open_and_dump_catching(store);
        if matches!(outcome, Ok(Ok(_))) {
            // A shorter file must never open: every file's length is recorded or framed.
            tally.wrong.push(format!("{name} cut to {cut} of {} bytes opened", good.len()));
        } else {
            tally.record(&format!("{name} cut to {cut}"), expected, outcome);
        }
    }
    std::fs::write(file, &good).unwrap();
}

/// Builds the store in `path` and walks every file; fragments with a stride of
/// `fragment_stride` (1: every byte), the metadata file always byte by byte.
fn walk_store(path: &Path, encoding: (MetaFormat, MetaCompression), fragment_stride: usize) -> (Tally, u64) {
    build(path, encoding.0, encoding.1);
    let expected = dump(&Atlas::open(path).unwrap()).unwrap();
    let meta: PathBuf = path.join(Atlas::open(path).unwrap().meta_file_name());
    let fragments = util::fragments(path);
    assert_eq!(fragments.len(), 2);
    let mut tally = Tally::default();
    walk_file(path, &meta, 1, &expected, &mut tally);
    for fragment in &fragments {
        walk_file(path, fragment, fragment_stride, &expected, &mut tally);
    }
    // Everything was restored: the store reads as before.
    assert_eq!(dump(&Atlas::open(path).unwrap()).unwrap(), expected);
    let bytes =
        std::fs::metadata(&meta).unwrap().len() + fragments.iter().map(|f| f.metadata().unwrap().len()).sum::<u64>();
    (tally, bytes)
}

fn report(label: &str, tally: &Tally, bytes: u64, started: Instant) {
    println!(
        "corruption {label}: {bytes} bytes in 3 files, {} flips + {} truncations in {:.1} s: {} harmless, \
         refused {:?}, {} wrong, {} panics",
        tally.flips,
        tally.truncations,
        started.elapsed().as_secs_f64(),
        tally.harmless,
        tally.refused,
        tally.wrong.len(),
        tally.panics.len()
    );
}

fn assert_no_panic_and_no_wrong_data(label: &str, tally: &Tally) {
    assert!(tally.panics.is_empty(), "{label}: {} panics, first: {}", tally.panics.len(), tally.panics[0]);
    assert!(tally.wrong.is_empty(), "{label}: {} wrong reads, first: {}", tally.wrong.len(), tally.wrong[0]);
    assert!(tally.harmless + tally.refused.values().sum::<u64>() > 0);
    // Damage is refused as damage: never as a missing entity, a bad argument or an I/O error.
    let damage = ["Corrupt", "ChecksumMismatch", "UnsupportedVersion"];
    let other: Vec<_> = tally.refused.iter().filter(|(variant, _)| !damage.contains(variant)).collect();
    assert!(other.is_empty(), "{label}: refused as {other:?}");
}

#[test]
fn every_byte_flip_and_truncation_of_a_json_store_is_refused_or_reads_the_original() {
    let dir = test_dir!();
    let started = Instant::now();
    let (tally, bytes) = walk_store(&dir.store(), (MetaFormat::Json, MetaCompression::None), 1);
    report("json", &tally, bytes, started);
    assert_no_panic_and_no_wrong_data("json", &tally);
}

#[test]
fn every_byte_flip_and_truncation_of_a_msgpack_zst_store_is_refused_or_reads_the_original() {
    let dir = test_dir!();
    let started = Instant::now();
    // The fragments hold the same bytes as the JSON store's (walked byte by byte there):
    // every third byte here, the metadata file byte by byte.
    let (tally, bytes) = walk_store(&dir.store(), (MetaFormat::MsgPack, MetaCompression::Zstd), 3);
    report("msgpack.zst", &tally, bytes, started);
    assert_no_panic_and_no_wrong_data("msgpack.zst", &tally);
}

#[test]
fn every_metadata_byte_flip_is_refused_or_harmless() {
    let dir = test_dir!();
    for (i, (format, compression, name)) in util::ENCODINGS.into_iter().enumerate() {
        let path = dir.join(&format!("s{i}"));
        build(&path, format, compression);
        let expected = dump(&Atlas::open(&path).unwrap()).unwrap();
        let mut tally = Tally::default();
        let meta = path.join(name);
        let good = std::fs::read(&meta).unwrap();
        let handle = std::fs::OpenOptions::new().write(true).open(&meta).unwrap();
        for at in 0..good.len() {
            handle.write_all_at(&[good[at] ^ 0x01], at as u64).unwrap();
            tally.record(&format!("{name} byte {at}"), &expected, open_and_dump_catching(&path));
            handle.write_all_at(&good[at..=at], at as u64).unwrap();
        }
        assert_no_panic_and_no_wrong_data(name, &tally);
    }
}
