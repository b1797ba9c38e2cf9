//! Large shuffled zstd blocks read a piece at a time (`ShuffledStream`).

use super::{
    BlockEncoding, CodecId, Filter, SHUFFLE_IN_PIECES_BYTES, Scratch, delta, is_one_zstd_frame_of, shuffle, zstd,
};
use crate::error::Result;

/// A large shuffled zstd block read piece by piece in order without its whole shuffled
/// bytes in memory (decision m in docs/ARCHITECTURE.md): every plane but the last is
/// decoded up front, the last one streamed from the frame a piece at a time as the pieces
/// are asked for. Its buffers take `(K - 1) / K` of the block instead of all of it.
pub(crate) struct ShuffledStream<'a> {
    frame: zstd::FrameStream<'a>,
    /// Planes `0 .. K - 1`, `n` bytes each.
    lead: &'a [u8],
    last: &'a mut Vec<u8>,
    n: usize,
    elem_bytes: usize,
    /// The last plane's decoded byte before the next piece, when the planes are byte-delta
    /// coded.
    delta_prev: Option<u8>,
    /// Raw bytes handed out so far.
    done: usize,
}

impl<'a> ShuffledStream<'a> {
    /// Whether a block of `encoding` and `raw_len` raw bytes is read this way: the blocks
    /// that [`super::shuffles_in_pieces`] writes, without a dictionary, of whole elements (an
    /// element delta is undone by the reader of the pieces).
    pub(crate) fn applies(encoding: BlockEncoding, raw_len: usize) -> bool {
        encoding.codec == CodecId::Zstd
            && encoding.filter.shuffle_elem_bytes().is_some_and(|k| k > 1 && raw_len.is_multiple_of(k))
            && raw_len >= SHUFFLE_IN_PIECES_BYTES
    }

    /// Decodes the leading planes of `stored` (a block that [`Self::applies`] to, filtered
    /// by `filter`) into `lead`.
    ///
    /// # Errors
    /// [`Error::Codec`] when the frame does not declare `raw_len` bytes or does not decode.
    pub(crate) fn open(
        stored: &'a [u8],
        filter: Filter,
        raw_len: usize,
        lead: &'a mut Vec<u8>,
        scratch: &'a mut Scratch,
    ) -> Result<Self> {
        let elem_bytes = filter.shuffle_elem_bytes().expect("a shuffled block");
        if !is_one_zstd_frame_of(stored, raw_len) {
            return Err(zstd::not_one_frame_of(raw_len));
        }
        let n = raw_len / elem_bytes;
        let mut frame = zstd::FrameStream::open(&mut scratch.stream, stored)?;
        lead.resize(n * (elem_bytes - 1), 0);
        frame.read(lead)?;
        let mut delta_prev = None;
        if filter.byte_delta() {
            for plane in lead.chunks_exact_mut(n) {
                delta::decode(plane, 0);
            }
            delta_prev = Some(0);
        }
        Ok(Self { frame, lead, last: &mut scratch.last, n, elem_bytes, delta_prev, done: 0 })
    }

    /// Writes the next `out.len()` raw bytes (whole elements) into `out`.
    ///
    /// # Errors
    /// [`Error::Codec`] when the frame does not decode.
    pub(crate) fn read(&mut self, out: &mut [u8]) -> Result<()> {
        let (first, m) = (self.done / self.elem_bytes, out.len() / self.elem_bytes);
        assert!(m * self.elem_bytes == out.len() && first + m <= self.n, "whole elements of the block, in order");
        self.last.resize(m, 0);
        self.frame.read(self.last)?;
        if let Some(prev) = &mut self.delta_prev {
            *prev = delta::decode(self.last, *prev);
        }
        let (k, lead, last) = (self.elem_bytes, self.lead, &self.last[..]);
        let plane = |j: usize| if j + 1 < k { &lead[j * self.n + first..][..m] } else { last };
        shuffle::unshuffle_with(k, plane, out);
        self.done += out.len();
        Ok(())
    }

    /// Checks that the frame ends where the block does.
    ///
    /// # Errors
    /// [`Error::Codec`] when it holds more, or bytes follow it.
    pub(crate) fn finish(self) -> Result<()> {
        self.frame.finish()
    }
}
