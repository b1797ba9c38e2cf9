//! One block of any bytes, decoded by every codec and filter, for every dtype: the harness
//! builds a one-block fragment (docs/FORMAT.md) from an 8-byte header and the block bytes,
//! and checks Atlas against a decoder written from the format doc (`reference_decode`):
//! when the reference decodes the block (and the checksum is the one of its bytes), Atlas
//! must read exactly those values; when it does not, Atlas must return an error.
//!
//! Header bytes: codec id, filter (mod 5: none, shuffle, shuffle + byte delta, element
//! delta + shuffle, or the byte itself as the id), filter parameter, dtype, element count, flags (1: raw
//! length from bytes 6-7, 2: wrong checksum, 4: fill entry, 8: keep stored bytes on a fill
//! entry, 16: no zstd dictionary in the schema), raw length (u16 LE). The schema's
//! dictionary is [`DICTIONARY`], raw content (zstd takes any bytes as one).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use atlas::{Atlas, Error, ReadOptions};
use atlas_fuzz::{FRAGMENT_NAME, OneBlock, one_array_meta, one_block_fragment, reference_decode, scratch, seed};
use libfuzzer_sys::fuzz_target;

/// Dtype names and element sizes (0: string).
const DTYPES: [(&str, usize); 8] = [
    ("uint8", 1),
    ("int16", 2),
    ("int32", 4),
    ("float32", 4),
    ("float64", 8),
    ("bool", 1),
    ("timestamp", 8),
    ("string", 0),
];

/// The array's zstd dictionary unless flag 16 is set.
const DICTIONARY: &[u8] = b"0123456789abcdef stamp station temperature salinity depth 0.5 1.5 2.5 3.5";

static STORE: OnceLock<PathBuf> = OnceLock::new();

fn store() -> &'static PathBuf {
    STORE.get_or_init(|| {
        let store = scratch("block_decode").join("store");
        std::fs::create_dir_all(store.join("data")).expect("create store");
        // Seeds: 16 float32 values under each codec, shuffled and not, and a string chunk.
        let raw: Vec<u8> = (0..16).flat_map(|i| (i as f32 * 0.5).to_le_bytes()).collect();
        let shuffled: Vec<u8> =
            (0..4).flat_map(|j| raw.iter().skip(j).step_by(4).copied().collect::<Vec<_>>()).collect();
        // The byte delta of each 16-byte plane of the shuffled values.
        let delta: Vec<u8> = shuffled
            .chunks(16)
            .flat_map(|plane| plane.iter().scan(0u8, |prev, &b| Some(b.wrapping_sub(std::mem::replace(prev, b)))))
            .collect();
        // The element delta of the values (as u32 bits), shuffled.
        let bits: Vec<u32> = raw.chunks(4).map(|e| u32::from_le_bytes(e.try_into().expect("4 bytes"))).collect();
        let steps: Vec<u8> = bits
            .iter()
            .scan(0u32, |prev, &v| Some(v.wrapping_sub(std::mem::replace(prev, v))))
            .flat_map(u32::to_le_bytes)
            .collect();
        let steps: Vec<u8> =
            (0..4).flat_map(|j| steps.iter().skip(j).step_by(4).copied().collect::<Vec<_>>()).collect();
        for (codec, filter, bytes) in [(0u8, 0u8, &raw), (0, 1, &shuffled), (0, 2, &delta), (0, 3, &steps)] {
            // Parameter byte 3: element size 1 + 3 % 8 = 4.
            seed(&format!("none-{filter}"), &[&[codec, filter, 3, 3, 15, 0, 0, 0][..], bytes].concat());
        }
        for (filter, bytes) in [(0u8, &raw), (1, &shuffled), (2, &delta), (3, &steps)] {
            let zstd = zstd::bulk::compress(bytes, 3).expect("zstd");
            seed(&format!("zstd-{filter}"), &[&[1, filter, 3, 3, 15, 0, 0, 0][..], &zstd].concat());
            let lz4 = lz4_flex::block::compress(bytes);
            seed(&format!("lz4-{filter}"), &[&[2, filter, 3, 3, 15, 0, 0, 0][..], &lz4].concat());
            let mut compressor = zstd::bulk::Compressor::with_dictionary(3, DICTIONARY).expect("dictionary");
            let dict = compressor.compress(bytes).expect("zstd with dictionary");
            seed(&format!("dict-{filter}"), &[&[3, filter, 3, 3, 15, 0, 0, 0][..], &dict].concat());
        }
        let strings: Vec<u8> = [0u32, 1, 3, 3].iter().flat_map(|o| o.to_le_bytes()).chain(*b"abc").collect();
        let len = strings.len() as u16;
        seed("string", &[&[0, 0, 0, 7, 2, 1, len as u8, (len >> 8) as u8][..], &strings].concat());
        store
    })
}

/// Splits a string chunk's raw form as docs/FORMAT.md says.
fn reference_strings(raw: &[u8], elems: usize) -> Option<Vec<String>> {
    let table = raw.get(..(elems + 1) * 4)?;
    let text = &raw[(elems + 1) * 4..];
    let offsets: Vec<usize> =
        table.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize).collect();
    if offsets[0] != 0 || offsets[elems] != text.len() || offsets.windows(2).any(|w| w[0] > w[1]) {
        return None;
    }
    offsets.windows(2).map(|w| std::str::from_utf8(&text[w[0]..w[1]]).ok().map(str::to_owned)).collect()
}

/// What Atlas reads: the values' little-endian bytes (bools as 0/1), or strings.
#[derive(Debug, PartialEq)]
enum Values {
    Bytes(Vec<u8>),
    Strings(Vec<String>),
}

fn atlas_read(store: &PathBuf, dtype: &str, elems: u64) -> Result<Values, Error> {
    let ds = Atlas::open(store)?.open_dataset("d")?;
    let n = elems as usize;
    let options = ReadOptions::default();
    macro_rules! bytes {
        ($t:ty) => {{
            let mut out = vec![<$t>::default(); n];
            ds.read_array_into("a", &[0], &[elems], &mut out, options)?;
            Values::Bytes(out.iter().flat_map(|v| v.to_le_bytes()).collect())
        }};
    }
    Ok(match dtype {
        "uint8" => bytes!(u8),
        "int16" => bytes!(i16),
        "int32" => bytes!(i32),
        "float32" => bytes!(f32),
        "float64" => bytes!(f64),
        "timestamp" => bytes!(i64),
        "bool" => {
            let mut out = vec![false; n];
            ds.read_array_into("a", &[0], &[elems], &mut out, options)?;
            Values::Bytes(out.iter().map(|&b| u8::from(b)).collect())
        }
        _ => Values::Strings(ds.read_strings("a", &[0], &[elems])?.iter().cloned().collect()),
    })
}

fuzz_target!(init: { store(); }, |data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (header, stored) = data.split_at(8);
    let store = store();
    let codec = if header[0] >= 0xf0 { header[0] } else { header[0] % 4 };
    let (filter, filter_param) = match header[1] % 5 {
        0 => (0, 0),
        id @ 1..=3 => (id, 1 + header[2] % 8),
        _ => (header[1], header[2]),
    };
    let (dtype, size) = DTYPES[usize::from(header[3] % 8)];
    let elems = 1 + u64::from(header[4] % 64);
    let flags = header[5];
    let claimed = u64::from(u16::from_le_bytes([header[6], header[7]]));
    let natural = if size == 0 { claimed } else { elems * size as u64 };
    let raw_len = if flags & 1 != 0 { claimed } else { natural };
    let is_fill = flags & 4 != 0;
    let stored = if is_fill && flags & 8 == 0 { &[][..] } else { stored };
    let shuffle = matches!(filter, 1..=3) && (1..=8).contains(&filter_param);
    let shuffle = shuffle.then_some(usize::from(filter_param));
    let known_ids = codec <= 3 && (filter == 0 && filter_param == 0 || shuffle.is_some());
    let dict = (flags & 16 == 0).then_some(DICTIONARY);
    let reference = if known_ids && !is_fill && raw_len <= 1 << 20 {
        reference_decode(stored, codec, (shuffle, filter), raw_len as usize, dict)
    } else {
        None
    };
    let checksum = match (&reference, flags & 2) {
        (Some(raw), 0) => xxhash_rust::xxh3::xxh3_64(raw),
        _ => 0x00c0_ffee,
    };
    let fragment = one_block_fragment(&OneBlock { stored, raw_len, checksum, codec, filter, filter_param, is_fill });
    std::fs::write(store.join("data").join(FRAGMENT_NAME), &fragment).expect("write fragment");
    std::fs::write(store.join("atlas.json"), one_array_meta(dtype, elems, fragment.len() as u64, dict)).expect("write meta");
    let read = atlas_read(store, dtype, elems);

    // The oracle, for a well-formed non-fill entry whose raw length fits the chunk.
    let chunk_fits = size != 0 && raw_len == natural || size == 0 && raw_len <= 256 << 20;
    if !known_ids || is_fill || !chunk_fits || flags & 2 != 0 {
        return;
    }
    let expected = reference.and_then(|raw| {
        if size == 0 {
            reference_strings(&raw, elems as usize).map(Values::Strings)
        } else if dtype == "bool" {
            Some(Values::Bytes(raw.iter().map(|&b| u8::from(b != 0)).collect()))
        } else {
            Some(Values::Bytes(raw))
        }
    });
    match (expected, read) {
        (Some(want), Ok(got)) => assert_eq!(got, want, "Atlas read other values than the format doc gives"),
        (Some(want), Err(e)) => panic!("the format doc decodes this block to {want:?}, Atlas refused it: {e}"),
        (None, Ok(got)) => panic!("the format doc refuses this block, Atlas read {got:?}"),
        (None, Err(_)) => {}
    }
});
