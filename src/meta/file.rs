//! The metadata file's six encodings: `atlas.{json,msgpack}[.zst|.lz4]`. The file name is
//! the source of truth for format and compression. Bytes in, bytes out; no I/O.

use std::io::Read;

use serde::Deserialize;

use super::schema::{FORMAT_VERSION, StoreMeta};

/// Deepest nesting accepted in a metadata file (attributes use 2 levels per list or map).
const MAX_NESTING: usize = 128;

/// Largest decoded metadata accepted, so a hostile file cannot exhaust memory.
pub(crate) const MAX_META_BYTES: u64 = 1 << 30;

/// How the metadata is serialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetaFormat {
    /// JSON text (readable with any tool).
    #[default]
    Json,
    /// `MessagePack`, with field names (smaller, faster).
    MsgPack,
}

/// How the serialised metadata is compressed. Each is the tool's standard file format, so
/// `zstd -d atlas.json.zst` or `lz4 -d atlas.json.lz4` gives the plain file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetaCompression {
    /// Not compressed.
    #[default]
    None,
    /// A zstd frame.
    Zstd,
    /// An LZ4 frame.
    Lz4,
}

/// Every (format, compression) pair, in a fixed order.
pub(crate) const ALL_ENCODINGS: [(MetaFormat, MetaCompression); 6] = [
    (MetaFormat::Json, MetaCompression::None),
    (MetaFormat::Json, MetaCompression::Zstd),
    (MetaFormat::Json, MetaCompression::Lz4),
    (MetaFormat::MsgPack, MetaCompression::None),
    (MetaFormat::MsgPack, MetaCompression::Zstd),
    (MetaFormat::MsgPack, MetaCompression::Lz4),
];

/// The metadata file name for an encoding, e.g. `atlas.msgpack.zst`.
pub(crate) fn meta_file_name(format: MetaFormat, compression: MetaCompression) -> &'static str {
    match (format, compression) {
        (MetaFormat::Json, MetaCompression::None) => "atlas.json",
        (MetaFormat::Json, MetaCompression::Zstd) => "atlas.json.zst",
        (MetaFormat::Json, MetaCompression::Lz4) => "atlas.json.lz4",
        (MetaFormat::MsgPack, MetaCompression::None) => "atlas.msgpack",
        (MetaFormat::MsgPack, MetaCompression::Zstd) => "atlas.msgpack.zst",
        (MetaFormat::MsgPack, MetaCompression::Lz4) => "atlas.msgpack.lz4",
    }
}

/// The encoding a file name stands for, if it is one of the six metadata names.
pub(crate) fn parse_meta_file_name(name: &str) -> Option<(MetaFormat, MetaCompression)> {
    ALL_ENCODINGS.into_iter().find(|(f, c)| meta_file_name(*f, *c) == name)
}

/// A commit serialised for its metadata file.
pub(crate) struct EncodedMeta {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Their length once decompressed (the serialised metadata's).
    pub plain_len: u64,
    /// The `checksum` field written, which a reader decodes back: with the generation, what
    /// tells this commit from another store's of the same generation.
    pub checksum: u64,
}

/// Serialises and compresses a commit.
pub(crate) fn encode_meta(meta: &StoreMeta, format: MetaFormat, compression: MetaCompression) -> EncodedMeta {
    let mut meta = meta.clone();
    meta.checksum = None;
    let unsealed = serialize(&meta, format);
    let checksum = crate::io::checksum(&unsealed);
    let plain = seal(unsealed, format, checksum);
    let plain_len = plain.len() as u64;
    let bytes = match compression {
        MetaCompression::None => plain,
        MetaCompression::Zstd => zstd::bulk::compress(&plain, 3).expect("zstd compresses to memory"),
        MetaCompression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            std::io::Write::write_all(&mut encoder, &plain).expect("lz4 writes to memory");
            encoder.finish().expect("lz4 finishes in memory")
        }
    };
    EncodedMeta { bytes, plain_len, checksum }
}

/// Why metadata bytes could not be decoded.
#[derive(Debug)]
pub(crate) enum MetaDecodeError {
    /// The bytes are not a metadata file of this encoding, or break an invariant.
    Corrupt(String),
    /// A newer format version than this build reads.
    Unsupported(u32),
    /// Decompresses to more than the limit (found at least `limit + 1` bytes).
    TooLarge { limit: u64, found: u64 },
}

/// The one field read before the rest, so a newer format is reported as such rather than
/// as corrupt. `expecting` words the error for a file that is no metadata at all.
#[derive(Deserialize)]
#[serde(expecting = "a map of store metadata")]
struct VersionProbe {
    format_version: u32,
}

/// Decompresses and parses metadata, checks its version first, then its invariants.
pub(crate) fn decode_meta(
    bytes: &[u8],
    format: MetaFormat,
    compression: MetaCompression,
    max_bytes: u64,
) -> Result<StoreMeta, MetaDecodeError> {
    let plain = decompress(bytes, compression, max_bytes)?;
    let probe: VersionProbe = parse(&plain, format).map_err(MetaDecodeError::Corrupt)?;
    if probe.format_version > FORMAT_VERSION || probe.format_version == 0 {
        return Err(MetaDecodeError::Unsupported(probe.format_version));
    }
    let mut meta: StoreMeta = parse(&plain, format).map_err(MetaDecodeError::Corrupt)?;
    // A plain JSON file without a checksum was written by hand (Atlas always writes one) and
    // is taken as it is: one damaged byte of JSON cannot both drop the field and change a
    // value (a damaged key is a field no reader knows, refused by the parse above). In
    // MessagePack it can (a damaged map length leaves the last field unread), and so can
    // one damaged bit of a compressed stream (a match offset rewrites a whole span); nobody
    // writes those by hand, so there the checksum is required.
    if meta.checksum.is_none() && (format == MetaFormat::MsgPack || compression != MetaCompression::None) {
        return Err(MetaDecodeError::Corrupt("metadata without a checksum is plain JSON only".into()));
    }
    if let Some(recorded) = meta.checksum
        && !is_sealed(&plain, format, recorded)
    {
        // Not the bytes Atlas writes (a file re-spelled by hand, pretty-printed say): the
        // values parsed are encoded again and hashed.
        let computed = content_checksum(&mut meta, format);
        if computed != recorded {
            return Err(MetaDecodeError::Corrupt(format!(
                "metadata checksum mismatch: recorded {recorded:#018x}, computed {computed:#018x}"
            )));
        }
    }
    meta.check(None).map_err(MetaDecodeError::Corrupt)?;
    meta.forget_unsound_stats();
    Ok(meta)
}

/// `bytes` (a metadata file of this encoding) parsed and encoded again with its checksum
/// recomputed, so that a fuzzer's changes to values reach the checks past the checksum;
/// `None` when they do not parse. For tests and fuzzing (`atlas::testing`).
#[cfg(feature = "test-util")]
pub(crate) fn reseal(bytes: &[u8], format: MetaFormat, compression: MetaCompression) -> Option<Vec<u8>> {
    let plain = decompress(bytes, compression, MAX_META_BYTES).ok()?;
    let meta: StoreMeta = parse(&plain, format).ok()?;
    Some(encode_meta(&meta, format, compression).bytes)
}

/// xxh3-64 of the commit's values encoded as this build writes them, without `checksum`
/// (FORMAT.md "Metadata checksum", check 2): for a file not in [`seal`]'s form, re-spelled
/// by hand. Serialisation is deterministic (fixed field order, sorted maps, shortest
/// round-trip floats); a file whose floats another `serde_json` spelled differently fails
/// this and passes [`is_sealed`].
fn content_checksum(meta: &mut StoreMeta, format: MetaFormat) -> u64 {
    let recorded = meta.checksum.take();
    let sum = crate::io::checksum(&serialize(meta, format));
    meta.checksum = recorded;
    sum
}

/// The file's plain bytes: `unsealed` (the encoding of a commit without `checksum`) with the
/// field added as its last, as the serialiser writes it (a test checks the two agree).
fn seal(mut unsealed: Vec<u8>, format: MetaFormat, checksum: u64) -> Vec<u8> {
    match format {
        MetaFormat::Json => {
            let close = unsealed.pop();
            debug_assert_eq!(close, Some(b'}'));
            unsealed.extend_from_slice(format!(",\"checksum\":{checksum}}}").as_bytes());
        }
        MetaFormat::MsgPack => {
            // A map of StoreMeta's fields without `checksum`: a fixmap of at most 14 entries
            // (its count in the low bits of its first byte), so one more keeps it a fixmap.
            assert!((0x80..0x8f).contains(&unsealed[0]), "StoreMeta is a fixmap");
            unsealed[0] += 1;
            unsealed.extend(msgpack_checksum_entry(checksum));
        }
    }
    unsealed
}

/// Whether `plain` is what [`seal`] makes of a commit for the `recorded` checksum and that
/// commit's bytes hash to it: the check of a file Atlas wrote, made on its own bytes. (Encoding
/// what was parsed again, as [`content_checksum`] does, would take as long as the parse, and
/// fail where another `serde_json` version spells a float differently, `1e16` for `1e+16`.)
fn is_sealed(plain: &[u8], format: MetaFormat, recorded: u64) -> bool {
    let mut hasher = crate::io::Checksummer::new();
    match format {
        MetaFormat::Json => {
            let Some(body) = plain.strip_suffix(format!(",\"checksum\":{recorded}}}").as_bytes()) else {
                return false;
            };
            hasher.update(body);
            hasher.update(b"}");
        }
        MetaFormat::MsgPack => {
            let Some(body) = plain.strip_suffix(msgpack_checksum_entry(recorded).as_slice()) else { return false };
            let Some((&header, fields)) = body.split_first().filter(|(header, _)| (0x81..=0x8f).contains(*header))
            else {
                return false;
            };
            hasher.update(&[header - 1]);
            hasher.update(fields);
        }
    }
    hasher.finish() == recorded
}

/// The `checksum` key and value as the last entry of a `MessagePack` map.
fn msgpack_checksum_entry(checksum: u64) -> Vec<u8> {
    let mut entry = rmp_serde::to_vec("checksum").expect("a string serialises to msgpack");
    entry.extend(rmp_serde::to_vec(&checksum).expect("a u64 serialises to msgpack"));
    entry
}

fn serialize(meta: &StoreMeta, format: MetaFormat) -> Vec<u8> {
    match format {
        MetaFormat::Json => serde_json::to_vec(meta).expect("metadata serialises to JSON"),
        MetaFormat::MsgPack => rmp_serde::to_vec_named(meta).expect("metadata serialises to msgpack"),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(plain: &[u8], format: MetaFormat) -> Result<T, String> {
    match format {
        MetaFormat::Json => serde_json::from_slice(plain).map_err(|e| format!("invalid JSON metadata: {e}")),
        MetaFormat::MsgPack => {
            // Nesting bounded like JSON's (serde_json stops at 128), so hostile input cannot
            // recurse deep enough to overflow the stack, even inside an ignored field.
            let mut deserializer = rmp_serde::Deserializer::new(std::io::Cursor::new(plain));
            deserializer.set_max_depth(MAX_NESTING);
            let value = T::deserialize(&mut deserializer).map_err(|e| format!("invalid msgpack metadata: {e}"))?;
            // As serde_json refuses trailing characters: bytes no checksum covers.
            match plain.len() as u64 - deserializer.position() {
                0 => Ok(value),
                extra => Err(format!("invalid msgpack metadata: {extra} bytes after the value")),
            }
        }
    }
}

fn decompress(bytes: &[u8], compression: MetaCompression, max_bytes: u64) -> Result<Vec<u8>, MetaDecodeError> {
    let reader: Box<dyn Read + '_> = match compression {
        MetaCompression::None => return Ok(bytes.to_vec()),
        MetaCompression::Zstd => {
            // A frame that says its size (Atlas's always do) is refused by it before any
            // decoding; then no frame may ask for a window larger than the limit, nor than
            // zstd's own default bound of 128 MiB (a frame that does not say its size is
            // decoded through a window buffer besides the output: a 1 GiB window would
            // double what the limit allows).
            if let Ok(Some(found)) = zstd::zstd_safe::get_frame_content_size(bytes)
                && found > max_bytes
            {
                return Err(MetaDecodeError::TooLarge { limit: max_bytes, found });
            }
            let corrupt = |e: std::io::Error| MetaDecodeError::Corrupt(format!("zstd: {e}"));
            let mut decoder = zstd::stream::Decoder::new(bytes).map_err(corrupt)?;
            let window_log = (u64::BITS - max_bytes.saturating_sub(1).leading_zeros()).clamp(10, 27);
            decoder.window_log_max(window_log).map_err(corrupt)?;
            Box::new(decoder)
        }
        MetaCompression::Lz4 => {
            // The decoder stops at the end of the first frame: bytes after it, which no
            // checksum covers, are refused as zstd's decoder refuses them.
            let mut rest = bytes;
            let plain = read_bounded(lz4_flex::frame::FrameDecoder::new(&mut rest), max_bytes)?;
            if !rest.is_empty() {
                return Err(MetaDecodeError::Corrupt(format!("{} bytes after the LZ4 frame", rest.len())));
            }
            return Ok(plain);
        }
    };
    read_bounded(reader, max_bytes)
}

/// Reads `reader` to its end, refusing more than `max_bytes`.
fn read_bounded(reader: impl Read, max_bytes: u64) -> Result<Vec<u8>, MetaDecodeError> {
    let mut plain = Vec::new();
    reader
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut plain)
        .map_err(|e| MetaDecodeError::Corrupt(format!("cannot decompress metadata: {e}")))?;
    if plain.len() as u64 > max_bytes {
        return Err(MetaDecodeError::TooLarge { limit: max_bytes, found: plain.len() as u64 });
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Codec, Shuffle};

    #[test]
    fn every_encoding_round_trips_and_names_parse_back() {
        let mut meta = StoreMeta::new(Codec::Lz4, Shuffle::Off);
        meta.generation = 9;
        meta.datasets.insert("run42".into(), std::sync::Arc::default());
        for (format, compression) in ALL_ENCODINGS {
            let bytes = encode_meta(&meta, format, compression).bytes;
            let mut back = decode_meta(&bytes, format, compression, MAX_META_BYTES).unwrap();
            assert!(back.checksum.is_some());
            back.checksum = None;
            assert_eq!(back, meta);
            assert_eq!(parse_meta_file_name(meta_file_name(format, compression)), Some((format, compression)));
        }
        assert_eq!(parse_meta_file_name("atlas.json.tmp"), None);
    }

    #[test]
    fn newer_version_is_unsupported_not_corrupt() {
        let mut meta = StoreMeta::new(Codec::default(), Shuffle::Auto);
        meta.format_version = 99;
        let bytes = encode_meta(&meta, MetaFormat::Json, MetaCompression::None).bytes;
        assert!(matches!(
            decode_meta(&bytes, MetaFormat::Json, MetaCompression::None, MAX_META_BYTES),
            Err(MetaDecodeError::Unsupported(99))
        ));
    }

    #[test]
    fn a_changed_value_that_still_parses_fails_the_checksum() {
        let mut meta = StoreMeta::new(Codec::default(), Shuffle::Auto);
        meta.generation = 12;
        let text = String::from_utf8(encode_meta(&meta, MetaFormat::Json, MetaCompression::None).bytes).unwrap();
        let edited = text.replace("\"generation\":12", "\"generation\":13");
        assert_ne!(edited, text);
        let err = decode_meta(edited.as_bytes(), MetaFormat::Json, MetaCompression::None, MAX_META_BYTES);
        assert!(matches!(err, Err(MetaDecodeError::Corrupt(detail)) if detail.contains("checksum")));
        // Without the field (hand-written metadata) the file is taken as it is.
        let unsealed = edited.split(",\"checksum\"").next().unwrap().to_string() + "}";
        let meta = decode_meta(unsealed.as_bytes(), MetaFormat::Json, MetaCompression::None, MAX_META_BYTES).unwrap();
        assert_eq!((meta.generation, meta.checksum), (13, None));
        // Compressed, a file without it is refused: a damaged bit can rewrite a span.
        let compressed = zstd::bulk::compress(unsealed.as_bytes(), 3).unwrap();
        let err = decode_meta(&compressed, MetaFormat::Json, MetaCompression::Zstd, MAX_META_BYTES);
        assert!(matches!(err, Err(MetaDecodeError::Corrupt(detail)) if detail.contains("plain JSON only")));
    }

    fn sample_meta() -> StoreMeta {
        let mut meta = StoreMeta::new(Codec::default(), Shuffle::Auto);
        meta.generation = 7;
        meta.attributes.insert("scale".into(), crate::meta::AttrValue::Float(1.7e18));
        meta.datasets.insert("run42".into(), std::sync::Arc::default());
        meta
    }

    #[test]
    fn the_sealed_file_is_what_the_serialiser_writes_with_the_checksum_field() {
        let mut meta = sample_meta();
        let unsealed = |format| serialize(&meta, format);
        let widths = [0, 1, 127, 128, 255, 256, 65_535, 65_536, u64::from(u32::MAX), 1 << 32, u64::MAX];
        for format in [MetaFormat::Json, MetaFormat::MsgPack] {
            for checksum in widths {
                let sealed = seal(unsealed(format), format, checksum);
                let mut with_field = meta.clone();
                with_field.checksum = Some(checksum);
                assert_eq!(sealed, serialize(&with_field, format), "{format:?} {checksum}");
            }
        }
        meta.checksum = Some(1);
        let stale = serialize(&meta, MetaFormat::Json);
        assert!(!is_sealed(&stale, MetaFormat::Json, 1), "a checksum that is not the bytes' own");
    }

    #[test]
    fn a_sealed_file_is_checked_on_its_own_bytes_and_a_respelled_one_by_its_values() {
        let meta = sample_meta();
        let text = String::from_utf8(encode_meta(&meta, MetaFormat::Json, MetaCompression::None).bytes).unwrap();
        let decode = |text: &str| decode_meta(text.as_bytes(), MetaFormat::Json, MetaCompression::None, MAX_META_BYTES);
        assert!(text.contains("1.7e+18"), "{text}");
        // Another serde_json spelled the float `1.7e18`, and hashed those bytes.
        let unsealed = text.split(",\"checksum\"").next().unwrap().replace("1.7e+18", "1.7e18") + "}";
        let older = seal(unsealed.clone().into_bytes(), MetaFormat::Json, crate::io::checksum(unsealed.as_bytes()));
        let older = String::from_utf8(older).unwrap();
        assert_eq!(decode(&older).unwrap().attributes, meta.attributes);
        // Spaces after the separators: not the bytes hashed, but the same values.
        let spaced = text.replace("\":", "\": ");
        assert_eq!(decode(&spaced).unwrap().attributes, meta.attributes);
        // A changed value fails both ways.
        for file in [older, spaced] {
            let damaged =
                file.replace("\"generation\":7", "\"generation\":8").replace("\"generation\": 7", "\"generation\": 8");
            assert_ne!(damaged, file);
            assert!(matches!(decode(&damaged), Err(MetaDecodeError::Corrupt(d)) if d.contains("checksum")));
        }
    }

    #[test]
    fn a_field_no_reader_knows_is_corrupt_at_every_level() {
        let mut meta = StoreMeta::new(Codec::default(), Shuffle::Auto);
        meta.attributes.insert("units".into(), crate::meta::AttrValue::Int(1));
        let text = String::from_utf8(encode_meta(&meta, MetaFormat::Json, MetaCompression::None).bytes).unwrap();
        let unsealed = text.split(",\"checksum\"").next().unwrap().to_string() + "}";
        let decode = |text: &str| decode_meta(text.as_bytes(), MetaFormat::Json, MetaCompression::None, MAX_META_BYTES);
        assert!(decode(&unsealed).is_ok());
        // One damaged byte in the `checksum` key must not leave the file read unchecked.
        let damaged_key = text.replace("\"checksum\"", "\"checksun\"");
        let unknown_in_attr = unsealed.replace("\"value\":1}", "\"value\":1,\"note\":0}");
        let unknown_in_codec = unsealed.replace("\"level\":3", "\"level\":3,\"window\":0");
        // A codec without fields of its own (a unit variant) too.
        let unknown_in_lz4 = unsealed.replace("{\"name\":\"zstd\",\"level\":3}", "{\"name\":\"lz4\",\"levle\":3}");
        let level_of_lz4 = unsealed.replace("{\"name\":\"zstd\",\"level\":3}", "{\"name\":\"lz4\",\"level\":3}");
        // A level written as null is still a field the codec does not have.
        let null_level_of_none =
            unsealed.replace("{\"name\":\"zstd\",\"level\":3}", "{\"name\":\"none\",\"level\":null}");
        let null_level_of_zstd = unsealed.replace("\"level\":3", "\"level\":null");
        let cases = [
            (damaged_key, "checksun"),
            (unknown_in_attr, "note"),
            (unknown_in_codec, "window"),
            (unknown_in_lz4, "levle"),
            (level_of_lz4, "lz4 takes no level"),
            (null_level_of_none, "none takes no level"),
            (null_level_of_zstd, "zstd without a level"),
        ];
        for (edited, field) in cases {
            assert_ne!(edited, unsealed);
            let err = decode(&edited);
            assert!(matches!(&err, Err(MetaDecodeError::Corrupt(detail)) if detail.contains(field)), "{err:?}");
        }
    }

    #[test]
    fn bytes_after_the_metadata_are_corrupt() {
        let meta = StoreMeta::new(Codec::default(), Shuffle::Auto);
        // After the text, and after a compressed file's frame (where no checksum covers them).
        for (format, compression) in ALL_ENCODINGS {
            let mut bytes = encode_meta(&meta, format, compression).bytes;
            bytes.extend_from_slice(b"\0junk");
            let err = decode_meta(&bytes, format, compression, MAX_META_BYTES);
            assert!(matches!(err, Err(MetaDecodeError::Corrupt(_))), "{format:?} {compression:?}: {err:?}");
        }
    }

    #[test]
    fn garbage_is_corrupt_in_every_encoding() {
        for (format, compression) in ALL_ENCODINGS {
            for bytes in [&b""[..], b"\xff\x00garbage", b"{\"format_version\":1}"] {
                assert!(matches!(
                    decode_meta(bytes, format, compression, MAX_META_BYTES),
                    Err(MetaDecodeError::Corrupt(_))
                ));
            }
        }
    }
}
