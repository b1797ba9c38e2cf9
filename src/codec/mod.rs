//! Room `codec`: bytes in, bytes out. Block codecs (zstd, with or without an array's
//! dictionary, lz4, none) and the filters (element delta, byte shuffle, byte delta), with
//! per-thread compressor contexts. No files, no threads of its own.
//!
//! A block is encoded as: raw element bytes -> [element delta ->] [shuffle [-> byte delta]]
//! -> codec. Decoding runs the chain backwards into a caller's buffer of exactly the raw
//! length.

mod delta;
mod dict;
mod elem_delta;
mod filter;
mod lz4;
mod shuffle;
pub(crate) mod simd;
mod stream;
mod zstd;

use crate::error::{Error, Result};
use crate::meta::Codec;

/// The codec that wrote a block, as its index entry records it (docs/FORMAT.md, "Codec ids").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub(crate) enum CodecId {
    None = 0,
    Zstd = 1,
    Lz4 = 2,
    /// A zstd frame written with the array's dictionary.
    ZstdDict = 3,
}

impl CodecId {
    pub(crate) fn from_u8(id: u8) -> Option<Self> {
        match id {
            0 => Some(Self::None),
            1 => Some(Self::Zstd),
            2 => Some(Self::Lz4),
            3 => Some(Self::ZstdDict),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Zstd => "zstd",
            Self::Lz4 => "lz4",
            Self::ZstdDict => "zstd+dict",
        }
    }

    pub(crate) fn of(codec: Codec) -> Self {
        match codec {
            Codec::None => Self::None,
            Codec::Zstd { .. } => Self::Zstd,
            Codec::Lz4 => Self::Lz4,
        }
    }
}

pub(crate) use dict::{MIN_TRAINING_SAMPLES, ZstdDict};
pub(crate) use elem_delta::Undo as UndoElemDelta;
use filter::apply_filter;
pub(crate) use filter::{BlockEncoding, Filter};
pub(crate) use shuffle::{unshuffle_in_place, unshuffle_part};
pub(crate) use stream::ShuffledStream;

/// Concatenates training samples for a dictionary, filtered by `filter` as blocks are before
/// zstd sees them; returns the data and each sample's size.
pub(crate) fn training_samples(samples: &[&[u8]], filter: Filter) -> (Vec<u8>, Vec<usize>) {
    let mut data = Vec::with_capacity(samples.iter().map(|s| s.len()).sum());
    for sample in samples {
        if filter == Filter::None {
            data.extend_from_slice(sample);
        } else {
            let start = data.len();
            data.resize(start + sample.len(), 0);
            apply_filter(sample, filter, &mut data[start..]);
        }
    }
    (data, samples.iter().map(|s| s.len()).collect())
}

/// Reusable per-thread buffers for encoding and decoding.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    shuffled: Vec<u8>,
    /// One piece of a block shuffled in pieces, and the short parts it is cut from, gathered.
    piece: Vec<u8>,
    staging: Vec<u8>,
    /// The decoder of a [`ShuffledStream`], and the piece of its last plane.
    stream: zstd::StreamContext,
    last: Vec<u8>,
    /// Block buffers this thread is done with (appended blocks, encoder outputs dropped for
    /// the raw bytes), kept for the next blocks it encodes: a fresh buffer of a chunk's
    /// size costs a page fault per 4 KiB written.
    spare: Vec<Vec<u8>>,
    /// Capacity of the buffers in `spare`.
    spare_bytes: usize,
}

/// Bytes of spare block buffers a thread keeps, at most. A buffer goes back to the thread
/// that appended its block, not always the one that encoded it, so every thread's spares
/// fill up over a long write: at 8 MiB a thread, a writer of 1 MiB chunks held about 10 MB
/// more than at 2 MiB, for no measured speed (BENCHMARKS.md, "Thirty-third round").
const SPARE_BYTES: usize = 2 << 20;

/// Buffers smaller than this are not kept: the allocator serves them without page faults.
const MIN_SPARE_BYTES: usize = 64 << 10;

impl Scratch {
    /// Frees the buffers whose capacity is over `bytes`; the piece, staging and spare
    /// buffers stay, bounded as they are (64 KiB, 512 KiB, `SPARE_BYTES`).
    pub(crate) fn free_above(&mut self, bytes: usize) {
        for buffer in [&mut self.shuffled, &mut self.last] {
            if buffer.capacity() > bytes {
                *buffer = Vec::new();
            }
        }
        self.stream.free_above(bytes);
    }

    /// An empty buffer for a block's bytes: a spare one when this thread has one.
    pub(crate) fn block_buffer(&mut self) -> Vec<u8> {
        let buffer = self.spare.pop().unwrap_or_default();
        self.spare_bytes -= buffer.capacity();
        buffer
    }

    /// Keeps a block buffer the caller is done with for a later [`Self::block_buffer`] if
    /// it is large enough to be worth it and the spare buffers stay under `SPARE_BYTES`.
    pub(crate) fn spare_block_buffer(&mut self, mut buffer: Vec<u8>) {
        let capacity = buffer.capacity();
        if capacity >= MIN_SPARE_BYTES && self.spare_bytes + capacity <= SPARE_BYTES {
            buffer.clear();
            self.spare_bytes += capacity;
            self.spare.push(buffer);
        }
    }
}

/// The decoded size a zstd frame declares, if it declares one (and it fits `usize`).
pub(crate) fn zstd_content_size(frame: &[u8]) -> Option<usize> {
    ::zstd::zstd_safe::get_frame_content_size(frame).ok().flatten().and_then(|n| usize::try_from(n).ok())
}

/// Whether `stored` is exactly one whole zstd frame declaring `raw_len` decoded bytes, as
/// every zstd block is (docs/FORMAT.md): zstd alone would also decode several frames in a
/// row, or a frame of unknown size, which the streamed decode of a large shuffled block
/// refuses. Reads only the frame and block headers.
pub(crate) fn is_one_zstd_frame_of(stored: &[u8], raw_len: usize) -> bool {
    zstd_content_size(stored) == Some(raw_len)
        && ::zstd::zstd_safe::find_frame_compressed_size(stored).is_ok_and(|n| n == stored.len())
}

/// [`is_one_zstd_frame_of`], naming no dictionary: what a block must be before a decoder
/// that does not validate its input (nvCOMP, which takes no dictionary) sees it.
#[cfg(feature = "gpu")]
pub(crate) fn is_one_plain_zstd_frame_of(stored: &[u8], raw_len: usize) -> bool {
    is_one_zstd_frame_of(stored, raw_len) && ::zstd::zstd_safe::get_dict_id_from_frame(stored).is_none()
}

/// Shuffled blocks from this size on go to zstd piece by piece as they are shuffled, without
/// a shuffled copy of the whole block (docs/ARCHITECTURE.md, decision k).
const SHUFFLE_IN_PIECES_BYTES: usize = 4 << 20;

/// The pieces those blocks are shuffled in: small enough to stay in cache until zstd has
/// read them.
const SHUFFLE_PIECE_BYTES: usize = 64 << 10;

/// Encodes `raw` with `codec` (zstd with `dict` when one is given), through `filter` first,
/// into `out` (cleared first). Returns how the block is encoded.
pub(crate) fn encode_block(
    raw: &[u8],
    codec: Codec,
    filter: Filter,
    dict: Option<&ZstdDict>,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Result<BlockEncoding> {
    out.clear();
    let id = match codec {
        Codec::Zstd { .. } if dict.is_some() => CodecId::ZstdDict,
        _ => CodecId::of(codec),
    };
    let encoding = BlockEncoding { codec: id, filter };
    let input = match (filter, codec) {
        (Filter::None, _) => raw,
        (_, Codec::None) => {
            out.resize(raw.len(), 0);
            apply_filter(raw, filter, out);
            return Ok(encoding);
        }
        _ if shuffles_in_pieces(codec, filter, raw.len()) => {
            return encode_shuffled_in_pieces(&[raw], codec, filter, dict, scratch, out, |_| {});
        }
        _ => {
            scratch.shuffled.resize(raw.len(), 0);
            apply_filter(raw, filter, &mut scratch.shuffled);
            &scratch.shuffled
        }
    };
    match codec {
        Codec::None => out.extend_from_slice(input),
        Codec::Zstd { level } => zstd::compress(input, level, dict, out)?,
        Codec::Lz4 => lz4::compress(input, out),
    }
    Ok(encoding)
}

/// Whether [`encode_block`] shuffles a block of `len` raw bytes in pieces straight into its
/// codec (and [`encode_shuffled_in_pieces`] may encode it from parts).
pub(crate) fn shuffles_in_pieces(codec: Codec, filter: Filter, len: usize) -> bool {
    matches!(codec, Codec::Zstd { .. })
        && filter.shuffle_elem_bytes().is_some_and(|k| k > 1 || filter.elem_delta())
        && len >= SHUFFLE_IN_PIECES_BYTES
}

/// [`encode_block`] of the concatenated `parts` (every one but the last of whole elements),
/// for a block that [`shuffles_in_pieces`]: its raw bytes need not be in one buffer. They
/// are read once per shuffle plane; the first time, every byte is also handed to
/// `first_read`, in order (to scan and hash them on the way).
pub(crate) fn encode_shuffled_in_pieces(
    parts: &[&[u8]],
    codec: Codec,
    filter: Filter,
    dict: Option<&ZstdDict>,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
    first_read: impl FnMut(&[u8]),
) -> Result<BlockEncoding> {
    let len = parts.iter().map(|part| part.len()).sum();
    let (Codec::Zstd { level }, Some(_)) = (codec, filter.shuffle_elem_bytes()) else {
        panic!("only shuffled zstd blocks are encoded in pieces")
    };
    out.clear();
    scratch.piece.resize(SHUFFLE_PIECE_BYTES, 0);
    let buffers = (&mut scratch.piece[..], &mut scratch.staging);
    zstd::compress_pieces(len, level, dict, out, |feed| {
        shuffle::shuffle_in_pieces(parts, filter, buffers, first_read, feed)
    })?;
    let codec = if dict.is_some() { CodecId::ZstdDict } else { CodecId::Zstd };
    Ok(BlockEncoding { codec, filter })
}

/// Decodes a stored block into `out`, whose length is the block's raw length. `dict` is the
/// array's zstd dictionary, needed by `ZstdDict` blocks.
///
/// # Errors
/// [`Error::Codec`] when the bytes are not a valid stream of `encoding.codec` or do not
/// decode to exactly `out.len()` bytes, or a dictionary block comes without its dictionary.
pub(crate) fn decode_block(
    stored: &[u8],
    encoding: BlockEncoding,
    dict: Option<&ZstdDict>,
    scratch: &mut Scratch,
    out: &mut [u8],
) -> Result<()> {
    let Some(elem_bytes) = encoding.filter.shuffle_elem_bytes() else {
        return decompress(stored, encoding.codec, dict, out);
    };
    let planes = if encoding.codec == CodecId::None && !encoding.filter.byte_delta() {
        check_len(encoding.codec, stored.len(), out.len())?;
        stored
    } else {
        scratch.shuffled.resize(out.len(), 0);
        decompress(stored, encoding.codec, dict, &mut scratch.shuffled)?;
        encoding.filter.undo_byte_delta(&mut scratch.shuffled);
        &scratch.shuffled
    };
    shuffle::unshuffle(planes, elem_bytes, out);
    if let Some(mut undo) = encoding.filter.undo_elem_delta() {
        undo.apply(out);
    }
    Ok(())
}

/// Runs the codec step of [`decode_block`] alone: decodes `stored` into `out`, exactly its
/// decoded length, leaving any shuffle to the caller.
///
/// # Errors
/// As [`decode_block`].
pub(crate) fn decompress(stored: &[u8], codec: CodecId, dict: Option<&ZstdDict>, out: &mut [u8]) -> Result<()> {
    match codec {
        CodecId::None => {
            check_len(codec, stored.len(), out.len())?;
            out.copy_from_slice(stored);
            Ok(())
        }
        CodecId::Zstd => zstd::decompress(stored, None, out),
        CodecId::ZstdDict => match dict {
            Some(dict) => zstd::decompress(stored, Some(dict), out),
            None => Err(Error::Codec { codec: codec.name(), detail: "the array has no zstd dictionary".into() }),
        },
        CodecId::Lz4 => lz4::decompress(stored, out),
    }
}

fn check_len(codec: CodecId, found: usize, expected: usize) -> Result<()> {
    if found == expected {
        Ok(())
    } else {
        Err(Error::Codec { codec: codec.name(), detail: format!("decoded {found} bytes, expected {expected}") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spare_block_buffers_come_back_empty_and_stay_under_the_bound() {
        let mut scratch = Scratch::default();
        assert_eq!(scratch.block_buffer().capacity(), 0, "none spare yet");
        let chunk = SPARE_BYTES / 4;
        for _ in 0..6 {
            scratch.spare_block_buffer(vec![9u8; chunk]);
        }
        assert_eq!(scratch.spare.len(), 4, "kept up to SPARE_BYTES");
        let buffer = scratch.block_buffer();
        assert!(buffer.is_empty() && buffer.capacity() >= chunk);
        scratch.spare_block_buffer(vec![1u8; SPARE_BYTES + 1]);
        for _ in 0..1000 {
            scratch.spare_block_buffer(Vec::new());
        }
        scratch.spare_block_buffer(vec![1u8; MIN_SPARE_BYTES - 1]);
        assert_eq!(scratch.spare.len(), 3, "buffers over the bound or too small to matter are dropped");
        assert_eq!(scratch.spare_bytes, scratch.spare.iter().map(Vec::capacity).sum::<usize>());
    }

    #[cfg(feature = "gpu")]
    #[test]
    fn only_a_whole_frame_of_the_right_size_passes_the_gpu_check() {
        let raw = vec![7u8; 1000];
        let frame = ::zstd::bulk::compress(&raw, 3).unwrap();
        assert!(super::is_one_zstd_frame_of(&frame, 1000));
        assert!(!super::is_one_zstd_frame_of(&frame, 999), "wrong declared size");
        assert!(!super::is_one_zstd_frame_of(&frame[..frame.len() - 1], 1000), "cut short");
        let mut two = frame.clone();
        two.extend_from_slice(&frame);
        assert!(!super::is_one_zstd_frame_of(&two, 1000), "trailing bytes");
        assert!(!super::is_one_zstd_frame_of(b"not zstd", 1000));
        // A frame that names a dictionary (a plain zstd block must not) stays off the GPU.
        let samples: Vec<Vec<u8>> = (0..200u32).map(|i| format!("record {i} of {}", i % 7).into_bytes()).collect();
        let dict = ::zstd::dict::from_samples(&samples, 1024).unwrap();
        let with_dict = ::zstd::bulk::Compressor::with_dictionary(3, &dict).unwrap().compress(&raw).unwrap();
        assert!(super::is_one_zstd_frame_of(&with_dict, 1000), "a dictionary block is one frame");
        assert!(!super::is_one_plain_zstd_frame_of(&with_dict, 1000), "names a dictionary");
        assert!(super::is_one_plain_zstd_frame_of(&frame, 1000));
    }

    const CODECS: [Codec; 4] = [Codec::None, Codec::Lz4, Codec::Zstd { level: 1 }, Codec::Zstd { level: -3 }];

    proptest! {
        #[test]
        fn every_codec_and_filter_round_trips(raw in proptest::collection::vec(any::<u8>(), 0..4096),
                                             elem in prop::sample::select(vec![1usize, 2, 4, 8])) {
            let raw = &raw[..raw.len() / elem * elem];
            let mut scratch = Scratch::default();
            for codec in CODECS {
                let filters = [Filter::Shuffle(elem), Filter::ShuffleDelta(elem), Filter::DeltaShuffle(elem)];
                for filter in [Filter::None].into_iter().chain(filters) {
                    let mut stored = Vec::new();
                    let encoding = encode_block(raw, codec, filter, None, &mut scratch, &mut stored).unwrap();
                    prop_assert_eq!(encoding, BlockEncoding { codec: CodecId::of(codec), filter });
                    let mut back = vec![0; raw.len()];
                    decode_block(&stored, encoding, None, &mut scratch, &mut back).unwrap();
                    prop_assert_eq!(&back[..], raw);
                }
            }
        }

        #[test]
        fn garbage_never_panics_and_raw_blocks_of_another_length_are_errors(
            stored in proptest::collection::vec(any::<u8>(), 0..512),
            len in 0usize..2048,
        ) {
            let mut scratch = Scratch::default();
            let dict = ZstdDict::new(b"not really a dictionary".to_vec());
            for codec in [CodecId::None, CodecId::Zstd, CodecId::Lz4, CodecId::ZstdDict] {
                for filter in [Filter::None, Filter::Shuffle(4), Filter::ShuffleDelta(4), Filter::DeltaShuffle(4)] {
                    let mut out = vec![0; len / 4 * 4];
                    let encoding = BlockEncoding { codec, filter };
                    let decoded = decode_block(&stored, encoding, Some(&dict), &mut scratch, &mut out);
                    // Stored as it is, a block is its raw bytes: any other length is an error.
                    if codec == CodecId::None && stored.len() != out.len() {
                        prop_assert!(decoded.is_err(), "{} stored bytes decoded to {}", stored.len(), out.len());
                    }
                    // Decoded without error, a block whose raw form is the stored bytes is them.
                    if codec == CodecId::None && filter == Filter::None && decoded.is_ok() {
                        prop_assert_eq!(&out, &stored);
                    }
                }
            }
        }
    }

    #[test]
    fn a_valid_block_decoded_to_another_length_is_a_codec_error() {
        let raw: Vec<u8> = (0..4096u32).map(|i| (i / 7 % 251) as u8).collect();
        let dict = ZstdDict::new(raw[..1024].to_vec());
        let mut scratch = Scratch::default();
        for (codec, dict) in
            [(Codec::Zstd { level: 3 }, None), (Codec::Zstd { level: 3 }, Some(&dict)), (Codec::Lz4, None)]
        {
            for filter in [Filter::None, Filter::Shuffle(4), Filter::ShuffleDelta(4), Filter::DeltaShuffle(4)] {
                let mut stored = Vec::new();
                let encoding = encode_block(&raw, codec, filter, dict, &mut scratch, &mut stored).unwrap();
                for len in [raw.len() - 4, raw.len() + 4, 0] {
                    let mut out = vec![0; len];
                    let decoded = decode_block(&stored, encoding, dict, &mut scratch, &mut out);
                    assert!(matches!(decoded, Err(Error::Codec { .. })), "{encoding:?} into {len}: {decoded:?}");
                }
                let mut out = vec![0; raw.len()];
                decode_block(&stored, encoding, dict, &mut scratch, &mut out).unwrap();
                assert!(out == raw, "{encoding:?} round trip");
            }
        }
    }

    #[test]
    fn large_shuffled_blocks_compressed_in_pieces_are_one_sized_frame_of_the_shuffled_bytes() {
        // Past the size where the shuffle goes to zstd piece by piece, with a partial last
        // element (bytes past the last whole element are kept as they are).
        let len = SHUFFLE_IN_PIECES_BYTES + 3;
        let raw: Vec<u8> = (0..len as u32).map(|i| (i / 4096 + i % 3) as u8).collect();
        let mut scratch = Scratch::default();
        let filters =
            [2, 4, 8].into_iter().flat_map(|k| [Filter::Shuffle(k), Filter::ShuffleDelta(k), Filter::DeltaShuffle(k)]);
        for filter in filters.chain([Filter::DeltaShuffle(1)]) {
            let mut stored = Vec::new();
            let codec = Codec::Zstd { level: 1 };
            let encoding = encode_block(&raw, codec, filter, None, &mut scratch, &mut stored).unwrap();
            assert_eq!(encoding, BlockEncoding { codec: CodecId::Zstd, filter });
            assert_eq!(zstd_content_size(&stored), Some(len), "the frame declares its size");
            let mut filtered = vec![0; len];
            apply_filter(&raw, filter, &mut filtered);
            assert_eq!(::zstd::bulk::decompress(&stored, len).unwrap(), filtered, "{filter:?}");
            let mut back = vec![0; len];
            decode_block(&stored, encoding, None, &mut scratch, &mut back).unwrap();
            assert!(back == raw, "{filter:?} round trip");
        }
    }

    /// A 4 MiB block of 4-byte values, shuffled and zstd-compressed: what decision k
    /// writes and `ShuffledStream` reads.
    fn streamed_block() -> &'static (Vec<u8>, Vec<u8>) {
        static BLOCK: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
        BLOCK.get_or_init(|| {
            let raw: Vec<u8> = (0..SHUFFLE_IN_PIECES_BYTES as u32).map(|i| (i / 512 + i % 11) as u8).collect();
            let mut stored = Vec::new();
            let filter = Filter::Shuffle(4);
            encode_block(&raw, Codec::Zstd { level: 1 }, filter, None, &mut Scratch::default(), &mut stored).unwrap();
            (raw, stored)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn a_damaged_streamed_block_never_panics_nor_streams_other_bytes_than_a_one_shot_decode(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        ) {
            let (raw, stored) = streamed_block();
            let mut bad = stored.clone();
            for (at, mask) in &flips {
                let i = at.index(bad.len());
                bad[i] ^= mask;
            }
            // The same bytes read as either filter.
            for filter in [Filter::Shuffle(4), Filter::ShuffleDelta(4)] {
                let streamed = (|| -> Result<Vec<u8>> {
                    let (mut lead, mut scratch) = (Vec::new(), Scratch::default());
                    let mut stream = ShuffledStream::open(&bad, filter, raw.len(), &mut lead, &mut scratch)?;
                    let mut out = vec![0; raw.len()];
                    for piece in out.chunks_mut(16 << 10) {
                        stream.read(piece)?;
                    }
                    stream.finish()?;
                    Ok(out)
                })();
                let mut whole = vec![0; raw.len()];
                let encoding = BlockEncoding { codec: CodecId::Zstd, filter };
                let one_shot = decode_block(&bad, encoding, None, &mut Scratch::default(), &mut whole).map(|()| whole);
                // The streaming decoder may refuse more (a window it will not allocate), never
                // accept what the one-shot decoder refuses, nor decode other bytes.
                match (streamed, one_shot) {
                    (Ok(a), Ok(b)) => prop_assert!(a == b, "the same bytes either way"),
                    (Err(Error::Codec { .. }), _) => {}
                    (a, b) => {
                        prop_assert!(false, "streamed {:?} vs one-shot {:?}", a.map(|v| v.len()), b.map(|v| v.len()));
                    }
                }
            }
        }
    }

    #[test]
    fn large_shuffled_blocks_stream_back_piece_by_piece_and_bad_frames_are_codec_errors() {
        let len = SHUFFLE_IN_PIECES_BYTES;
        let raw: Vec<u8> = (0..len as u32).map(|i| (i / 4096 + i % 7) as u8).collect();
        let mut scratch = Scratch::default();
        for filter in [2, 4, 8].into_iter().flat_map(|k| [Filter::Shuffle(k), Filter::ShuffleDelta(k)]) {
            let elem_bytes = filter.shuffle_elem_bytes().unwrap();
            let (mut stored, mut lead) = (Vec::new(), Vec::new());
            let encoding =
                encode_block(&raw, Codec::Zstd { level: 1 }, filter, None, &mut scratch, &mut stored).unwrap();
            assert!(ShuffledStream::applies(encoding, len));
            let mut stream = ShuffledStream::open(&stored, filter, len, &mut lead, &mut scratch).unwrap();
            let mut back = Vec::new();
            for piece in [8, 4096, 40_000, 1 << 20].iter().cycle() {
                let piece = (*piece).min(len - back.len());
                let mut out = vec![0; piece];
                stream.read(&mut out).unwrap();
                back.extend_from_slice(&out);
                if back.len() == len {
                    break;
                }
            }
            stream.finish().unwrap();
            assert!(back == raw, "{filter:?}");
            assert!(lead.len() == len / elem_bytes * (elem_bytes - 1), "all planes but the last held");

            // A frame declaring another size, cut short, or followed by bytes.
            let read_all = |stored: &[u8], raw_len: usize| -> Result<()> {
                let (mut lead, mut scratch) = (Vec::new(), Scratch::default());
                let mut stream = ShuffledStream::open(stored, filter, raw_len, &mut lead, &mut scratch)?;
                stream.read(&mut vec![0; raw_len])?;
                stream.finish()
            };
            read_all(&stored, len).unwrap();
            assert!(matches!(read_all(&stored, len - elem_bytes), Err(Error::Codec { .. })));
            assert!(matches!(read_all(&stored[..stored.len() - 9], len), Err(Error::Codec { .. })));
            let mut longer = stored.clone();
            longer.extend_from_slice(&[0; 5]);
            assert!(matches!(read_all(&longer, len), Err(Error::Codec { .. })));
        }
    }

    /// zstd alone decodes these to the right length; a block must be one sized frame.
    fn not_one_sized_frame(plain: &[u8]) -> [(&'static str, Vec<u8>); 3] {
        let half = plain.len() / 2;
        let mut two = ::zstd::bulk::compress(&plain[..half], 1).unwrap();
        two.extend(::zstd::bulk::compress(&plain[half..], 1).unwrap());
        let mut no_size = ::zstd::bulk::Compressor::new(1).unwrap();
        no_size.set_parameter(::zstd::zstd_safe::CParameter::ContentSizeFlag(false)).unwrap();
        let no_size = no_size.compress(plain).unwrap();
        let mut skippable = vec![0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4];
        skippable.extend(::zstd::bulk::compress(plain, 1).unwrap());
        [("two frames", two), ("no content size", no_size), ("a skippable frame first", skippable)]
    }

    #[test]
    fn a_zstd_block_that_is_not_one_sized_frame_is_refused_however_it_is_read() {
        let mut scratch = Scratch::default();
        let plain = vec![5u8; 64];
        for (what, stored) in not_one_sized_frame(&plain) {
            let decoded = decode_block(
                &stored,
                BlockEncoding { codec: CodecId::Zstd, filter: Filter::None },
                None,
                &mut scratch,
                &mut [0; 64],
            );
            assert!(matches!(decoded, Err(Error::Codec { .. })), "{what}: {decoded:?}");
        }
        // A large shuffled block, read whole at once or streamed in pieces.
        let (raw, stored) = streamed_block();
        let shuffled = ::zstd::bulk::decompress(stored, raw.len()).unwrap();
        for (what, stored) in not_one_sized_frame(&shuffled) {
            let encoding = BlockEncoding { codec: CodecId::Zstd, filter: Filter::Shuffle(4) };
            let decoded = decode_block(&stored, encoding, None, &mut scratch, &mut vec![0; raw.len()]);
            assert!(matches!(decoded, Err(Error::Codec { .. })), "{what}, whole: {decoded:?}");
            let (mut lead, mut stream_scratch) = (Vec::new(), Scratch::default());
            let opened = ShuffledStream::open(&stored, encoding.filter, raw.len(), &mut lead, &mut stream_scratch);
            assert!(matches!(opened, Err(Error::Codec { .. })), "{what}, streamed");
        }
    }

    #[test]
    fn decode_to_a_wrong_length_is_a_codec_error() {
        let mut scratch = Scratch::default();
        for codec in CODECS {
            let mut stored = Vec::new();
            let encoding = encode_block(&[7; 64], codec, Filter::None, None, &mut scratch, &mut stored).unwrap();
            let mut out = vec![0; 63];
            assert!(matches!(decode_block(&stored, encoding, None, &mut scratch, &mut out), Err(Error::Codec { .. })));
        }
    }

    #[test]
    fn dictionary_blocks_need_their_dictionary_and_compress_small_chunks_better() {
        // Small, similar chunks: the case dictionaries are for.
        let chunks: Vec<Vec<u8>> = (0..64u32)
            .map(|i| {
                (0..256u32).flat_map(|j| (1000.0f32 + (j as f32 * 0.1).sin() + i as f32 * 0.01).to_le_bytes()).collect()
            })
            .collect();
        let samples: Vec<u8> = chunks.concat();
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        let dict = ZstdDict::train(&samples, &sizes, 4096).expect("enough samples to train");
        let mut scratch = Scratch::default();
        let (mut plain_bytes, mut dict_bytes) = (0, 0);
        for chunk in &chunks {
            let mut stored = Vec::new();
            plain_bytes += {
                encode_block(chunk, Codec::Zstd { level: 3 }, Filter::None, None, &mut scratch, &mut stored).unwrap();
                stored.len()
            };
            let encoding =
                encode_block(chunk, Codec::Zstd { level: 3 }, Filter::None, Some(&dict), &mut scratch, &mut stored)
                    .unwrap();
            assert_eq!(encoding.codec, CodecId::ZstdDict);
            dict_bytes += stored.len();
            let mut back = vec![0; chunk.len()];
            decode_block(&stored, encoding, Some(&dict), &mut scratch, &mut back).unwrap();
            assert_eq!(&back, chunk);
            assert!(matches!(decode_block(&stored, encoding, None, &mut scratch, &mut back), Err(Error::Codec { .. })));
        }
        assert!(dict_bytes * 10 < plain_bytes * 9, "dictionary {dict_bytes} vs plain {plain_bytes} bytes");
        assert!(ZstdDict::train(&samples[..1024], &[1024], 4096).is_none(), "one sample is too few");
    }
}
