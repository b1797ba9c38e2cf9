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
    let checksum = content_checksum(&mut meta, format);
    meta.checksum = Some(checksum);
    let plain = serialize(&meta, format);
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
    let computed = content_checksum(&mut meta, format);
    if let Some(recorded) = meta.checksum
        && computed != recorded
    {
        return Err(MetaDecodeError::Corrupt(format!(
            "metadata checksum mismatch: recorded {recorded:#018x}, computed {computed:#018x}"
        )));
    }
    meta.check().map_err(MetaDecodeError::Corrupt)?;
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

/// The checksum of a commit: xxh3-64 of its plain encoding without the `checksum` field.
/// Serialisation is deterministic (fixed field order, sorted maps, shortest round-trip
/// floats), so a reader re-encoding what it parsed gets the writer's bytes back exactly;
/// any flipped bit that still parses changes a value and so the checksum.
fn content_checksum(meta: &mut StoreMeta, format: MetaFormat) -> u64 {
    let recorded = meta.checksum.take();
    let sum = crate::io::checksum(&serialize(meta, format));
    meta.checksum = recorded;
    sum
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
        MetaCompression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(bytes)),
    };
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
        let cases = [
            (damaged_key, "checksun"),
            (unknown_in_attr, "note"),
            (unknown_in_codec, "window"),
            (unknown_in_lz4, "levle"),
            (level_of_lz4, "lz4 takes no level"),
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
        for format in [MetaFormat::Json, MetaFormat::MsgPack] {
            let mut bytes = encode_meta(&meta, format, MetaCompression::None).bytes;
            bytes.push(0);
            let err = decode_meta(&bytes, format, MetaCompression::None, MAX_META_BYTES);
            assert!(matches!(err, Err(MetaDecodeError::Corrupt(_))), "{format:?}");
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
