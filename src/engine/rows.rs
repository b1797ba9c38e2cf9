//! A block's raw bytes for a read that copies its chunk out row by row, in order, checked
//! against the block's checksum on the way ([`RowSource`]).
//!
//! An unshuffled block is at hand whole (mapped, read back, or decoded into a worker
//! buffer) and its rows are copied straight from it ([`WholeBlock`]). When verifying, one
//! decoded into at most `PLAIN_WHOLE_BYTES` is checked when opened, still in cache; any
//! other is hashed behind the copy, each piece of [`PLAIN_PIECE_BYTES`] once the copy has
//! passed it ([`WholeBlock::copied_to`]), so that it comes from memory once, for the copy,
//! and is hashed from cache (hashing blocks read from the map before copying them measured
//! up to 25% slower; fetching each row through a piece walker, as shuffled blocks must,
//! made the W1 64^3 uncompressed read take 1.6-1.9x as long: BENCHMARKS.md, thirty-first
//! round).
//!
//! A shuffled block is walked through piece by piece ([`Pieces`]), each piece unshuffled,
//! its element delta undone (if it has one), hashed and copied out while in cache. A large
//! shuffled zstd block is never decoded whole: its last plane is streamed piece by piece
//! (`ShuffledStream`).

use super::block::{
    ArrayCtx, BlockRef, Raw, Worker, check_checksum, codec_error, run_codec, shuffled_piece_len, stored_bytes,
};
use crate::codec::{CodecId, ShuffledStream, UndoElemDelta, unshuffle_part};
use crate::error::{Error, Result};
use crate::fragment::{Checksummer, checksum};

/// An unshuffled block just decoded into a buffer up to this size is still in cache: it is
/// hashed in one pass when opened. Any other unshuffled block (above all one read from the
/// map, first touched by the copy) is hashed behind the copy.
const PLAIN_WHOLE_BYTES: usize = 1 << 20;
/// The pieces an unshuffled block is hashed in behind the copy of its rows
/// ([`WholeBlock::copied_to`]), and the longest part of a row copied before hashing.
pub(crate) const PLAIN_PIECE_BYTES: usize = 64 << 10;

/// A (non-fill) block's raw bytes, opened for a read that copies its rows out in order.
#[allow(clippy::large_enum_variant)] // both hold a checksum state; one per chunk of a run
pub(crate) enum RowSource<'a> {
    Whole(WholeBlock<'a>),
    Pieces(Pieces<'a>),
}

impl<'a> RowSource<'a> {
    /// Runs the codec of `block` (`raw_len` raw bytes): a shuffled block stands before its
    /// first piece, an unshuffled one before its first byte. The raw bytes are checked
    /// against the block's checksum when `verify` is set.
    pub(crate) fn open(
        ctx: ArrayCtx<'_>,
        block: BlockRef<'a>,
        worker: &'a mut Worker,
        raw_len: usize,
        verify: bool,
    ) -> Result<Self> {
        let verify = verify && block.has_checksum();
        let Worker { stored, decoded, piece, scratch, .. } = worker;
        let stored = stored_bytes(block, stored)?;
        let encoding = block.entry().encoding;
        let (shuffled, elem_bytes) = match encoding.filter.shuffle_elem_bytes() {
            Some(elem_bytes) if ShuffledStream::applies(encoding, raw_len) => {
                let stream = ShuffledStream::open(stored, encoding.filter, raw_len, decoded, scratch)
                    .map_err(|e| codec_error(ctx, block, e))?;
                (Shuffled::Streamed(stream), elem_bytes)
            }
            _ => match run_codec(ctx, block, stored, decoded, raw_len, None)?.expect("no output to decode into") {
                Raw::Plain(raw) => {
                    let in_cache = encoding.codec != CodecId::None && raw_len <= PLAIN_WHOLE_BYTES;
                    if verify && in_cache {
                        check_checksum(ctx, block, Some(checksum(raw)))?;
                    }
                    let summer = (verify && !in_cache).then(Checksummer::new);
                    return Ok(Self::Whole(WholeBlock { raw, summer, hashed: 0 }));
                }
                Raw::Shuffled(planes, elem_bytes) => (Shuffled::Decoded(planes, elem_bytes), elem_bytes),
            },
        };
        let (piece_len, summer) = (shuffled_piece_len(elem_bytes), verify.then(Checksummer::new));
        let undo = encoding.filter.undo_elem_delta();
        Ok(Self::Pieces(Pieces { shuffled, raw_len, piece_len, start: 0, end: 0, piece, undo, summer, failed: None }))
    }

    /// Hashes what is not hashed yet and checks the checksum, if verifying; a streamed
    /// block read to its end is checked to end there.
    pub(crate) fn finish(self, ctx: ArrayCtx<'_>, block: BlockRef<'_>) -> Result<()> {
        match self {
            Self::Whole(whole) => whole.finish(ctx, block),
            Self::Pieces(pieces) => pieces.finish(ctx, block),
        }
    }
}

/// An unshuffled block's raw bytes, at hand whole: rows are copied straight from
/// [`WholeBlock::bytes`], each followed by [`WholeBlock::copied_to`].
pub(crate) struct WholeBlock<'a> {
    raw: &'a [u8],
    /// Hashes the bytes before `hashed` so far, if the block is checked behind the copy.
    summer: Option<Checksummer>,
    hashed: usize,
}

impl<'a> WholeBlock<'a> {
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Tells the block that its rows before `offset` are out: when verifying, hashes the
    /// whole pieces the copy has passed (rows come in order, so they are in cache; what no
    /// row reached is hashed by `finish`).
    #[inline]
    pub(crate) fn copied_to(&mut self, offset: usize) {
        if offset >= self.hashed + PLAIN_PIECE_BYTES
            && let Some(summer) = &mut self.summer
        {
            let passed = offset - offset % PLAIN_PIECE_BYTES;
            summer.update(&self.raw[self.hashed..passed]);
            self.hashed = passed;
        }
    }

    fn finish(mut self, ctx: ArrayCtx<'_>, block: BlockRef<'_>) -> Result<()> {
        let found = self.summer.take().map(|mut summer| {
            summer.update(&self.raw[self.hashed..]);
            summer.finish()
        });
        check_checksum(ctx, block, found)
    }
}

/// A shuffled block walked through piece by piece, each unshuffled and hashed as it is
/// reached ([`Pieces::at`]).
pub(crate) struct Pieces<'a> {
    shuffled: Shuffled<'a>,
    raw_len: usize,
    piece_len: usize,
    /// The current piece covers `start .. end` of the raw bytes.
    start: usize,
    end: usize,
    piece: &'a mut Vec<u8>,
    /// Undoes the block's element delta, if it has one, piece after piece.
    undo: Option<UndoElemDelta>,
    summer: Option<Checksummer>,
    /// The first error streaming the block, reported by `finish` (the rows copied after it
    /// are garbage, as the output of any failed read is).
    failed: Option<Error>,
}

/// Where a shuffled block's pieces come from.
enum Shuffled<'a> {
    /// Its planes (shuffled by this element size), decoded whole.
    Decoded(&'a [u8], usize),
    /// Its frame, the last plane streamed a piece at a time.
    Streamed(ShuffledStream<'a>),
}

impl Pieces<'_> {
    /// The raw bytes from `offset` to the end of the piece that holds it. Offsets asked for
    /// never go back to an earlier piece.
    pub(crate) fn at(&mut self, offset: usize) -> &[u8] {
        while offset >= self.end {
            self.advance();
        }
        &self.piece[offset - self.start..]
    }

    /// Moves to the next piece, unshuffles it and hashes it.
    fn advance(&mut self) {
        assert!(self.end < self.raw_len, "offset past the block's raw bytes");
        (self.start, self.end) = (self.end, self.raw_len.min(self.end + self.piece_len));
        self.piece.resize(self.end - self.start, 0);
        match &mut self.shuffled {
            Shuffled::Decoded(planes, elem_bytes) => unshuffle_part(planes, *elem_bytes, self.start, self.piece),
            Shuffled::Streamed(stream) => {
                if self.failed.is_none()
                    && let Err(e) = stream.read(self.piece)
                {
                    self.failed = Some(e);
                }
            }
        }
        if let Some(undo) = &mut self.undo {
            undo.apply(self.piece);
        }
        if let Some(s) = &mut self.summer {
            s.update(self.piece);
        }
    }

    fn finish(mut self, ctx: ArrayCtx<'_>, block: BlockRef<'_>) -> Result<()> {
        if self.summer.is_some() {
            while self.end < self.raw_len {
                self.advance();
            }
        }
        if let Shuffled::Streamed(stream) = self.shuffled
            && self.failed.is_none()
            && self.end == self.raw_len
            && let Err(e) = stream.finish()
        {
            self.failed = Some(e);
        }
        if let Some(e) = self.failed {
            return Err(codec_error(ctx, block, e));
        }
        check_checksum(ctx, block, self.summer.map(|s| s.finish()))
    }
}
