//! A block's raw bytes for a read that copies its chunk out row by row, in order, checked
//! against the block's checksum on the way ([`RowSource`]).
//!
//! An unshuffled block is at hand whole (mapped, read back, or decoded into a worker
//! buffer) and its rows are copied straight from it ([`WholeBlock`]). A shuffled block is
//! walked through piece by piece ([`Pieces`]), each piece unshuffled, its element delta
//! undone (if it has one), and copied out while in cache. A large shuffled zstd block is
//! never decoded whole: its last plane is streamed piece by piece (`ShuffledStream`).
//!
//! When verifying, the rows that follow one another are hashed as they are copied, in one
//! pass ([`Streamer::copy_hashing`]): the copy out of the map or a piece costs what it
//! would unverified, where hashing behind the copy, from cache, made the W1 64^3
//! uncompressed read 8% slower and LZ4 blocks stored raw 20% (BENCHMARKS.md, forty-sixth
//! round). That takes an output of 8 MiB or more (copied with streaming stores), rows of
//! whole 64-byte stripes, and each row starting on the 16 bytes the stores need (64 when
//! a run's rows are parts of output rows). Any other row is hashed behind the copy: an
//! unshuffled block a [`PLAIN_PIECE_BYTES`] piece at a time once the copy has passed it,
//! so that it comes from memory once and is hashed from cache (hashing blocks read from
//! the map before copying them measured up to 25% slower: thirty-first round); a shuffled
//! one a piece at a time before the next is unshuffled.

use super::block::{
    ArrayCtx, BlockRef, Raw, Worker, check_checksum, codec_error, run_codec, shuffled_piece_len, stored_bytes,
};
use crate::codec::{ShuffledStream, UndoElemDelta, unshuffle_part};
use crate::error::{Error, Result};
use crate::fragment::Checksummer;
use crate::io::Streamer;

/// The pieces an unshuffled block is hashed in behind the copy of its rows
/// ([`WholeBlock::copied_to`]), and the longest part of a row copied before hashing.
const PLAIN_PIECE_BYTES: usize = 64 << 10;

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
                    let summer = verify.then(Checksummer::new);
                    return Ok(Self::Whole(WholeBlock { raw, summer, hashed: 0 }));
                }
                Raw::Shuffled(planes, elem_bytes) => (Shuffled::Decoded(planes, elem_bytes), elem_bytes),
            },
        };
        let (piece_len, summer) = (shuffled_piece_len(elem_bytes), verify.then(Checksummer::new));
        let undo = encoding.filter.undo_elem_delta();
        let (start, end, hashed, failed) = (0, 0, 0, None);
        Ok(Self::Pieces(Pieces { shuffled, raw_len, piece_len, start, end, hashed, piece, undo, summer, failed }))
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

/// An unshuffled block's raw bytes, at hand whole: rows are copied straight from them
/// ([`WholeBlock::copy_row`]).
pub(crate) struct WholeBlock<'a> {
    raw: &'a [u8],
    /// Has hashed the bytes before `hashed`, when verifying.
    summer: Option<Checksummer>,
    hashed: usize,
}

impl WholeBlock<'_> {
    /// Copies the row of `target.len()` bytes at `offset` into `target`. When verifying, a
    /// row that follows the bytes hashed so far is hashed as it is copied, where `streamer`
    /// can ([`Streamer::copy_hashing`]); any other is hashed behind the copy
    /// ([`WholeBlock::copied_to`]).
    #[inline]
    pub(crate) fn copy_row(&mut self, streamer: &Streamer, target: &mut [u8], offset: usize) {
        if target.len() > PLAIN_PIECE_BYTES {
            return self.copy_long_row(streamer, target, offset);
        }
        let (row, end) = (&self.raw[offset..offset + target.len()], offset + target.len());
        if let Some(summer) = &mut self.summer
            && offset == self.hashed
            && streamer.copy_hashing(target, row, summer, end < self.raw.len())
        {
            self.hashed = end;
            return;
        }
        streamer.copy(target, row);
        self.copied_to(end);
    }

    /// [`WholeBlock::copy_row`] of a row longer than a piece, a piece at a time, so that
    /// what is hashed behind the copy is hashed while in cache. Kept out of the loop over
    /// short rows, whose copies it slowed by about 10% there.
    #[cold]
    fn copy_long_row(&mut self, streamer: &Streamer, target: &mut [u8], offset: usize) {
        for (k, part) in target.chunks_mut(PLAIN_PIECE_BYTES).enumerate() {
            self.copy_row(streamer, part, offset + k * PLAIN_PIECE_BYTES);
        }
    }

    /// Tells the block that its rows before `offset` are out: when verifying, hashes the
    /// whole pieces the copy has passed (rows come in order, so they are in cache; what no
    /// row reached is hashed by `finish`).
    #[inline]
    fn copied_to(&mut self, offset: usize) {
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

/// A shuffled block walked through piece by piece, each unshuffled as it is reached
/// ([`Pieces::copy_row`]) and hashed as its rows are copied, or else before the next.
pub(crate) struct Pieces<'a> {
    shuffled: Shuffled<'a>,
    raw_len: usize,
    piece_len: usize,
    /// The current piece covers `start .. end` of the raw bytes.
    start: usize,
    end: usize,
    /// The raw bytes before this are hashed (when verifying).
    hashed: usize,
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
    /// Copies the row of `target.len()` bytes at `offset` into `target`, a piece at a time
    /// (a row may span pieces). Offsets asked for never go back to an earlier piece. A part
    /// that follows the bytes hashed so far is hashed as it is copied, where `streamer` can
    /// ([`Streamer::copy_hashing`]); the rest of a piece is hashed before the next.
    #[inline]
    pub(crate) fn copy_row(&mut self, streamer: &Streamer, target: &mut [u8], offset: usize) {
        if offset + target.len() <= self.end {
            self.copy_part(streamer, target, offset);
        } else {
            self.copy_row_across(streamer, target, offset);
        }
    }

    /// [`Pieces::copy_row`] of a row that reaches past the current piece.
    #[inline(never)]
    fn copy_row_across(&mut self, streamer: &Streamer, target: &mut [u8], offset: usize) {
        let mut done = 0;
        while done < target.len() {
            let at = offset + done;
            while at >= self.end {
                self.advance();
            }
            let len = (target.len() - done).min(self.end - at);
            self.copy_part(streamer, &mut target[done..done + len], at);
            done += len;
        }
    }

    /// Copies the raw bytes at `at` of the current piece into `part`.
    #[inline]
    fn copy_part(&mut self, streamer: &Streamer, part: &mut [u8], at: usize) {
        let bytes = &self.piece[at - self.start..at - self.start + part.len()];
        let more_follows = at + part.len() < self.raw_len;
        if let Some(summer) = &mut self.summer
            && at == self.hashed
            && streamer.copy_hashing(part, bytes, summer, more_follows)
        {
            self.hashed = at + part.len();
        } else {
            streamer.copy(part, bytes);
        }
    }

    /// Hashes what is left of the current piece, then moves to the next and unshuffles it.
    fn advance(&mut self) {
        assert!(self.end < self.raw_len, "offset past the block's raw bytes");
        if let Some(summer) = &mut self.summer {
            summer.update(&self.piece[self.hashed - self.start..self.end - self.start]);
        }
        (self.start, self.end) = (self.end, self.raw_len.min(self.end + self.piece_len));
        self.hashed = self.start;
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
    }

    fn finish(mut self, ctx: ArrayCtx<'_>, block: BlockRef<'_>) -> Result<()> {
        if self.summer.is_some() {
            while self.end < self.raw_len {
                self.advance();
            }
            let rest = &self.piece[self.hashed - self.start..self.end - self.start];
            self.summer.as_mut().expect("checked above").update(rest);
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
