//! [`compress_batch`] and [`decompress_batch`]: the block codecs on many buffers at once,
//! without a store.

use std::ops::Range;

use crate::codec::{CodecId, zstd_content_size};
use crate::engine::{compress_many, decompress_many};
use crate::error::{Error, Result};
use crate::meta::Codec;

/// Many encoded or decoded buffers in one allocation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    /// Every segment, back to back.
    pub data: Vec<u8>,
    /// Segment `i` is `data[segments[i].clone()]`.
    pub segments: Vec<Range<usize>>,
}

impl Batch {
    /// Segment `i`.
    ///
    /// # Panics
    /// If `i` is out of range.
    #[must_use]
    pub fn segment(&self, i: usize) -> &[u8] {
        &self.data[self.segments[i].clone()]
    }

    /// Number of segments.
    #[must_use]
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Whether there are no segments.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }
}

/// Encodes every input with `codec` (one zstd frame with its content size, one raw LZ4
/// block, or a copy), on all cores when the batch is large.
///
/// # Errors
/// [`Error::InvalidArgument`] for an unsupported zstd level; [`Error::Codec`].
pub fn compress_batch(inputs: &[&[u8]], codec: Codec) -> Result<Batch> {
    codec.check().map_err(Error::invalid)?;
    let (data, segments) = compress_many(inputs, codec)?;
    Ok(Batch { data, segments })
}

/// The most bytes `stored` bytes of any codec decode to: a zstd block of 4 bytes (an RLE
/// block) can hold 128 KiB, a ratio of 2^15, past which no zstd or LZ4 input expands;
/// `none` does not expand at all. The slack covers a frame of one such block.
fn max_decoded_len(stored: usize) -> usize {
    stored.saturating_mul(1 << 15).saturating_add(128 << 10)
}

/// Decodes every input, each written by `codec`, into one buffer. `raw_lens` gives each
/// input's decoded length; it may be `None` for zstd, whose frames carry it (a frame that
/// does not is an error).
///
/// # Errors
/// [`Error::InvalidArgument`] if `raw_lens` is missing (lz4, none) or of the wrong length,
/// a zstd frame lacks its size, a raw length (given or claimed) is more than any input of
/// its size can decode to (2^15 x its length + 128 KiB); [`Error::OutOfMemory`] if the
/// total cannot be held in memory; [`Error::Codec`] for input that does not decode to
/// exactly its length.
pub fn decompress_batch(inputs: &[&[u8]], codec: Codec, raw_lens: Option<&[usize]>) -> Result<Batch> {
    let codec = CodecId::of(codec);
    let lens: Vec<usize> = match (raw_lens, codec) {
        (Some(lens), _) if lens.len() == inputs.len() => lens.to_vec(),
        (Some(lens), _) => {
            return Err(Error::invalid(format!("{} raw lengths for {} inputs", lens.len(), inputs.len())));
        }
        (None, CodecId::Zstd) => inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                zstd_content_size(input)
                    .ok_or_else(|| Error::invalid(format!("zstd input {i} has no content size in its frame")))
            })
            .collect::<Result<_>>()?,
        (None, _) => return Err(Error::invalid(format!("{} inputs need their raw lengths", codec.name()))),
    };
    // A length no input of its size can decode to is refused before the output is sized
    // by it (a frame header may claim anything).
    if let Some(i) = (0..lens.len()).find(|&i| lens[i] > max_decoded_len(inputs[i].len())) {
        let (len, stored) = (lens[i], inputs[i].len());
        return Err(Error::invalid(format!("input {i} of {stored} bytes cannot decode to {len} bytes")));
    }
    let (data, segments) = decompress_many(inputs, codec, &lens)?;
    Ok(Batch { data, segments })
}
