//! Where a chunk's block lives, and decoding one block into a chunk-sized buffer.

use std::cell::RefCell;
use std::path::Path;

use super::cache::ChunkCache;
use crate::codec::{BlockEncoding, CodecId, Scratch, ZstdDict, decompress, unshuffle_in_place, unshuffle_part};
use crate::error::{Error, Result};
use crate::fragment::{BlockEntry, Checksummer, ChunkStats, FragmentReader, PendingReader, checksum, scan};
use crate::meta::{ArrayMeta, DType};

/// What the engine needs to know of the array a request is about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArrayCtx<'a> {
    pub meta: &'a ArrayMeta,
    /// `dataset/array`, for error messages.
    pub label: &'a str,
    /// The array's zstd dictionary, if it has one (`ArrayMeta::zstd_dictionary`).
    pub dict: Option<&'a ZstdDict>,
    /// Where reads of part of a chunk keep the decoded chunk (`None`: they do not).
    pub cache: Option<&'a ChunkCache>,
}

/// A chunk's current block: in a committed fragment (mapped), in the fragment being
/// written by this handle (read back with `pread`), or staged by this handle: raw bytes in
/// memory, bound for that fragment.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BlockRef<'a> {
    Committed { reader: &'a FragmentReader, entry: &'a BlockEntry },
    Pending { reader: &'a PendingReader, entry: &'a BlockEntry },
    Staged { reader: &'a PendingReader, entry: &'a BlockEntry, raw: &'a [u8] },
}

/// Gives a chunk's current block, or `None` for a chunk never written (read as the fill
/// value).
pub(crate) type Lookup<'l, 'a> = dyn Fn(&[u64]) -> Option<BlockRef<'a>> + Sync + 'l;

impl<'a> BlockRef<'a> {
    pub(crate) fn entry(&self) -> &'a BlockEntry {
        match self {
            Self::Committed { entry, .. } | Self::Pending { entry, .. } | Self::Staged { entry, .. } => entry,
        }
    }

    /// Whether the block has a checksum to verify: a staged chunk's raw bytes never left
    /// memory and are hashed only when they are sealed into a block.
    pub(crate) fn has_checksum(&self) -> bool {
        !matches!(self, Self::Staged { .. })
    }

    /// Whether the block is committed and stored as it is (no codec, no shuffle): its raw
    /// bytes are read with no buffer, from the map (or with `pread` straight into a chunk
    /// of the output, see `read_plain`).
    pub(crate) fn is_mapped_raw(&self) -> bool {
        matches!(self, Self::Committed { entry, .. } if entry.encoding == BlockEncoding::RAW && !entry.is_fill)
    }

    /// The stored bytes where they already are in memory (a committed block's map, a staged
    /// chunk); `None` for a pending block, which is read from its file.
    pub(crate) fn in_memory(self) -> Option<&'a [u8]> {
        match self {
            Self::Committed { reader, entry } => Some(reader.block_bytes(entry)),
            Self::Staged { raw, .. } => Some(raw),
            Self::Pending { .. } => None,
        }
    }

    pub(crate) fn path(&self) -> &'a Path {
        match self {
            Self::Committed { reader, .. } => reader.path(),
            Self::Pending { reader, .. } | Self::Staged { reader, .. } => reader.path(),
        }
    }

    /// The block's statistics: its index entry's, checked against the chunk they describe,
    /// or for a staged chunk (whose entry has none until it is sealed) made from its raw
    /// bytes.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the entry's statistics cannot describe the block (a damaged
    /// index whose checksum was made again): a min above the max, say, or any but all 0
    /// for a fill entry, whose chunk holds no valid value.
    pub(crate) fn stats(&self, meta: &ArrayMeta) -> Result<ChunkStats> {
        if let Self::Staged { raw, .. } = self {
            return Ok(scan(raw, meta.dtype, &meta.fill_bytes()).stats);
        }
        let entry = self.entry();
        let checked = if entry.is_fill && entry.stats != ChunkStats::default() {
            Err("a fill entry's are not all 0".to_string())
        } else {
            entry.stats.check(meta.dtype, meta.chunk_elems())
        };
        checked.map(|()| entry.stats).map_err(|detail| {
            Error::corrupt(self.path(), format!("the statistics of block {:?}: {detail}", entry.coord))
        })
    }
}

/// Per-worker buffers, reused across the chunks one worker handles (see [`with_worker`]).
#[derive(Debug, Default)]
pub(crate) struct Worker {
    pub scratch: Scratch,
    /// A whole chunk: gathered for a write, decoded before a write changes part of it, or
    /// decoded for a read that copies part of it out, a re-encode or a verification.
    pub chunk: Vec<u8>,
    /// Stored bytes read back from a pending fragment.
    pub stored: Vec<u8>,
    /// A block after its codec, when that is not yet its raw bytes (shuffled) or cannot go
    /// straight to the output; or the planes before the last that `unshuffle_in_place`
    /// copies out of a block decoded where its raw bytes go.
    pub decoded: Vec<u8>,
    /// One piece of a block's raw bytes, unshuffled; or, for `unshuffle_in_place`, one
    /// piece of the last plane.
    pub piece: Vec<u8>,
    /// Short rows of a chunk written from a caller's input, gathered to be scanned and hashed.
    pub rows: Vec<u8>,
    /// One worker per chunk of a run read or written together (`engine::read`,
    /// `engine::write`), as many as the longest run so far (see [`run_workers`]).
    pub run: Vec<Worker>,
}

thread_local! {
    /// This thread's worker buffers, kept across ops and calls, so that buffers sized for a
    /// chunk are not allocated, zeroed and page-faulted again for every job.
    static WORKER: RefCell<Worker> = RefCell::new(Worker::default());
}

/// A buffer grown past this capacity is freed after the op that grew it, not kept: what a
/// thread keeps is bounded.
const KEEP_BYTES: usize = 64 << 20;

/// Runs `op` with this thread's worker buffers; with fresh ones if they are in use (an op
/// waiting on the pool may run another op on the same thread).
pub(crate) fn with_worker<R>(op: impl FnOnce(&mut Worker) -> R) -> R {
    WORKER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut worker) => {
            let result = op(&mut worker);
            worker.free_above(KEEP_BYTES);
            result
        }
        Err(_) => op(&mut Worker::default()),
    })
}

/// The first `n` of a worker's per-chunk workers (see [`Worker::run`]), added as needed.
/// None is dropped for a shorter run: reads cut runs of up to 8 MiB of chunks and writes of
/// up to 1 MiB, so dropping workers after a write's short run would page-fault their
/// chunk-sized buffers again at the next read (BENCHMARKS, thirtieth round). What stays is
/// bounded: at most 256 workers (`plan::MAX_RUN_CHUNKS`), each keeping its largest buffers
/// up to [`KEEP_BYTES`]; a thread typically keeps a long read run's chunks, some 8 MiB.
pub(crate) fn run_workers(run: &mut Vec<Worker>, n: usize) -> &mut [Worker] {
    if run.len() < n {
        run.resize_with(n, Worker::default);
    }
    &mut run[..n]
}

impl Worker {
    /// Frees every buffer whose capacity is over `bytes`.
    fn free_above(&mut self, bytes: usize) {
        self.scratch.free_above(bytes);
        for buffer in [&mut self.chunk, &mut self.stored, &mut self.decoded, &mut self.piece, &mut self.rows] {
            if buffer.capacity() > bytes {
                *buffer = Vec::new();
            }
        }
        for worker in &mut self.run {
            worker.free_above(bytes);
        }
    }
}

/// Raw bytes are unshuffled and copied out (and hashed) this many at a time (a multiple of
/// every element size), so that each piece is still in L1 cache for the steps after the
/// first.
const PIECE_BYTES: usize = 16 << 10;

/// A shuffled block of at least this many raw bytes decoded into a buffer of its own size
/// is decoded there and unshuffled in place, which holds a copy of its leading planes
/// (`(K - 1) / K` of it) instead of a whole decoded copy (a whole read of a one-chunk
/// array of 32 MiB u16 peaked at twice its size); a smaller one is unshuffled from the
/// worker buffer, which saves the copy of its leading planes.
const UNSHUFFLE_IN_PLACE_BYTES: usize = 4 << 20;

/// A block after its codec: where its raw bytes are read from.
#[derive(Clone, Copy)]
pub(super) enum Raw<'a> {
    /// The raw bytes themselves.
    Plain(&'a [u8]),
    /// The raw bytes shuffled by this element size.
    Shuffled(&'a [u8], usize),
}

impl Raw<'_> {
    /// Writes raw bytes `start .. start + out.len()` into `out`.
    fn write(self, start: usize, out: &mut [u8]) {
        match self {
            Raw::Plain(raw) => out.copy_from_slice(&raw[start..start + out.len()]),
            Raw::Shuffled(planes, elem_bytes) => unshuffle_part(planes, elem_bytes, start, out),
        }
    }

    /// Bytes per piece: whole elements of a shuffled block.
    fn piece_len(self) -> usize {
        match self {
            Raw::Plain(_) => PIECE_BYTES,
            Raw::Shuffled(_, elem_bytes) => shuffled_piece_len(elem_bytes),
        }
    }
}

/// Bytes per piece of a block shuffled by `elem_bytes`: whole elements.
pub(super) fn shuffled_piece_len(elem_bytes: usize) -> usize {
    PIECE_BYTES - PIECE_BYTES % elem_bytes.max(1)
}

/// Decodes `block` into `out` (exactly one chunk of raw bytes) and, when `verify` is set,
/// checks it against the block's checksum.
///
/// # Errors
/// [`Error::Corrupt`] if the block's raw length or codec stream is wrong,
/// [`Error::ChecksumMismatch`] if it decodes to other bytes than were written.
pub(crate) fn decode_chunk(
    ctx: ArrayCtx<'_>,
    block: BlockRef<'_>,
    worker: &mut Worker,
    out: &mut [u8],
    verify: bool,
) -> Result<()> {
    check_raw_len(ctx, block, out.len())?;
    if block.entry().is_fill {
        fill_with(out, &ctx.meta.fill_bytes());
        return Ok(());
    }
    decode_stored(ctx, block, worker, out, verify)
}

/// Checks that `block` decodes to `len` raw bytes, the length of its chunk.
pub(crate) fn check_raw_len(ctx: ArrayCtx<'_>, block: BlockRef<'_>, len: usize) -> Result<()> {
    let raw_len_bytes = block.entry().raw_len_bytes;
    if raw_len_bytes == len as u64 {
        return Ok(());
    }
    Err(corrupt_chunk(ctx, block, &format!("block holds {raw_len_bytes} raw bytes, the chunk has {len}")))
}

/// Checks what a copy that does not decode `block` (compact) would carry over: its raw
/// length against its chunk's (for fixed-size dtypes) and its statistics.
pub(crate) fn check_entry(ctx: ArrayCtx<'_>, block: BlockRef<'_>) -> Result<()> {
    if ctx.meta.dtype != DType::String {
        check_raw_len(ctx, block, super::to_usize(ctx.meta.chunk_bytes()))?;
    }
    block.stats(ctx.meta).map(drop)
}

/// `Error::Corrupt` naming the block's file, array and chunk.
pub(crate) fn corrupt_chunk(ctx: ArrayCtx<'_>, block: BlockRef<'_>, detail: &str) -> Error {
    Error::corrupt(block.path(), format!("array {} chunk {:?}: {detail}", ctx.label, block.entry().coord))
}

/// Decodes the stored bytes of a (non-fill) block into `out`, sized to its raw length, and
/// verifies the checksum when asked. An unshuffled block decodes straight into `out`; a
/// shuffled one is unshuffled into it piece by piece, each piece hashed right after (a
/// large one decoded into `out` and unshuffled there, never held twice). A committed
/// uncompressed one of at least [`PREAD_BYTES`] is read with `pread` (`read_plain`).
///
/// # Errors
/// As [`decode_chunk`]; [`Error::Io`] if a pending block or a `pread` fails.
pub(crate) fn decode_stored(
    ctx: ArrayCtx<'_>,
    block: BlockRef<'_>,
    worker: &mut Worker,
    out: &mut [u8],
    verify: bool,
) -> Result<()> {
    if let BlockRef::Committed { reader, entry } = block
        && block.is_mapped_raw()
        && entry.stored_len_bytes == out.len() as u64
        && out.len() >= PREAD_BYTES
    {
        return read_plain(ctx, block, reader, out, verify);
    }
    let verify = verify && block.has_checksum();
    let mut summer = verify.then(Checksummer::new);
    let mut hash = |piece: &[u8]| {
        if let Some(s) = &mut summer {
            s.update(piece);
        }
    };
    // Each raw piece as it comes out of the unshuffle: its element delta undone, hashed.
    let mut undo = block.entry().encoding.filter.undo_elem_delta();
    let mut finish_piece = |piece: &mut [u8]| {
        if let Some(undo) = &mut undo {
            undo.apply(piece);
        }
        hash(piece);
    };
    let stored = stored_bytes(block, &mut worker.stored)?;
    match run_codec(ctx, block, stored, &mut worker.decoded, out.len(), Some(&mut *out))? {
        Some(raw) => {
            let piece_len = raw.piece_len();
            for (i, piece) in out.chunks_mut(piece_len).enumerate() {
                raw.write(i * piece_len, piece);
                finish_piece(piece);
            }
        }
        None => match block.entry().encoding.filter.shuffle_elem_bytes() {
            Some(elem_bytes) => {
                let buffers = (&mut worker.decoded, &mut worker.piece);
                unshuffle_in_place(out, elem_bytes, shuffled_piece_len(elem_bytes), buffers, finish_piece);
            }
            None => return check_checksum(ctx, block, verify.then(|| checksum(out))),
        },
    }
    check_checksum(ctx, block, summer.map(|s| s.finish()))
}

/// Reads a committed block stored as it is (no codec, no shuffle) straight into `out` with
/// `pread`, hashing each piece while it is in cache: one copy, as from the map, but the
/// file's pages do not count in the process's memory (through the map, a read of an
/// uncompressed array peaks at twice its size). The file is opened for the block (no
/// descriptor is kept per fragment), so only blocks of at least [`PREAD_BYTES`] come here:
/// for smaller ones the `open` would cost more than the copy. A fragment a compaction has
/// removed since (or one that cannot be opened again) is copied from the map.
fn read_plain(
    ctx: ArrayCtx<'_>,
    block: BlockRef<'_>,
    reader: &FragmentReader,
    out: &mut [u8],
    verify: bool,
) -> Result<()> {
    let mut summer = verify.then(Checksummer::new);
    let file = reader.reopen();
    let entry = block.entry();
    for (i, piece) in out.chunks_mut(PREAD_BYTES).enumerate() {
        let at = i * PREAD_BYTES;
        match &file {
            // Within the block, which the index check placed inside the file.
            Some(file) => file.read_at(entry.offset_bytes + at as u64, piece)?,
            None => piece.copy_from_slice(&reader.block_bytes(entry)[at..at + piece.len()]),
        }
        if let Some(s) = &mut summer {
            s.update(piece);
        }
    }
    check_checksum(ctx, block, summer.map(|s| s.finish()))
}

/// Bytes read with one `pread` by [`read_plain`], few enough to be hashed from cache; also
/// the least an uncompressed block must hold to be read that way (the file is opened for
/// it).
const PREAD_BYTES: usize = 256 << 10;

/// A codec's error on a block's bytes, as the corruption of that chunk.
pub(super) fn codec_error(ctx: ArrayCtx<'_>, block: BlockRef<'_>, e: Error) -> Error {
    match e {
        Error::Codec { codec, detail } => {
            corrupt_chunk(ctx, block, &format!("{codec} block does not decode: {detail}"))
        }
        other => other,
    }
}

/// A block's stored bytes: from the map or memory, or read back from the pending fragment
/// into `buf`.
pub(crate) fn stored_bytes<'a>(block: BlockRef<'a>, buf: &'a mut Vec<u8>) -> Result<&'a [u8]> {
    match block {
        BlockRef::Pending { reader, entry } => {
            reader.read_block(entry, buf)?;
            Ok(buf)
        }
        _ => Ok(block.in_memory().expect("only pending blocks are read from a file")),
    }
}

/// Runs a block's codec on its `stored` bytes, `raw_len` bytes decoded: into `direct` when
/// given, but for a shuffled block under `UNSHUFFLE_IN_PLACE_BYTES` (and returns `None`:
/// the bytes are there, still shuffled if the block is), else into `decoded`; a byte delta
/// is undone either way. An uncompressed block without one needs no step at all.
pub(super) fn run_codec<'a>(
    ctx: ArrayCtx<'_>,
    block: BlockRef<'_>,
    stored: &'a [u8],
    decoded: &'a mut Vec<u8>,
    raw_len: usize,
    direct: Option<&mut [u8]>,
) -> Result<Option<Raw<'a>>> {
    let encoding = block.entry().encoding;
    let codec_err = |e| codec_error(ctx, block, e);
    if encoding.codec == CodecId::None && stored.len() != raw_len {
        let detail = format!("none block does not decode: {} stored bytes, expected {raw_len}", stored.len());
        return Err(corrupt_chunk(ctx, block, &detail));
    }
    let shuffle_elem_bytes = encoding.filter.shuffle_elem_bytes();
    let bytes: &'a [u8] = match (encoding.codec, direct) {
        (CodecId::None, _) if !encoding.filter.byte_delta() => stored,
        (codec, Some(out)) if shuffle_elem_bytes.is_none() || raw_len >= UNSHUFFLE_IN_PLACE_BYTES => {
            decompress(stored, codec, ctx.dict, out).map_err(codec_err)?;
            encoding.filter.undo_byte_delta(out);
            return Ok(None);
        }
        (codec, _) => {
            decoded.resize(raw_len, 0);
            decompress(stored, codec, ctx.dict, decoded).map_err(codec_err)?;
            encoding.filter.undo_byte_delta(decoded);
            decoded
        }
    };
    Ok(Some(match shuffle_elem_bytes {
        None => Raw::Plain(bytes),
        Some(elem_bytes) => Raw::Shuffled(bytes, elem_bytes),
    }))
}

/// Compares the checksum of a block's decoded bytes (if they were hashed) with the one
/// recorded for it.
pub(super) fn check_checksum(ctx: ArrayCtx<'_>, block: BlockRef<'_>, found: Option<u64>) -> Result<()> {
    let Some(found) = found else { return Ok(()) };
    let expected = block.entry().checksum;
    if found == expected {
        return Ok(());
    }
    Err(Error::ChecksumMismatch {
        array: ctx.label.to_string(),
        coord: block.entry().coord.to_vec(),
        path: block.path().to_path_buf(),
        expected,
        found,
    })
}

/// Starts `chunk` (one chunk of raw bytes) as the chunk at `coord` is now, before a write
/// changes part of it: its block decoded and verified, or else the fill value. A `zeroed`
/// chunk (a new buffer) is left as it is under a fill value of zeros.
///
/// # Errors
/// As [`decode_chunk`].
pub(crate) fn start_chunk(
    ctx: ArrayCtx<'_>,
    lookup: &Lookup<'_, '_>,
    coord: &[u64],
    worker: &mut Worker,
    chunk: &mut [u8],
    zeroed: bool,
) -> Result<()> {
    if let Some(block) = lookup(coord) {
        return decode_chunk(ctx, block, worker, chunk, true);
    }
    let fill = ctx.meta.fill_bytes();
    if !zeroed || fill.iter().any(|&b| b != 0) {
        fill_with(chunk, &fill);
    }
    Ok(())
}

/// Fills `out` with repeated copies of one element's bytes.
pub(crate) fn fill_with(out: &mut [u8], element: &[u8]) {
    if let Some(&first) = element.first()
        && element.iter().all(|&b| b == first)
    {
        out.fill(first);
    } else if element.is_empty() {
        out.fill(0);
    } else {
        for dst in out.chunks_exact_mut(element.len()) {
            dst.copy_from_slice(element);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_keeps_the_workers_and_buffers_of_a_longer_one() {
        let mut run = Vec::new();
        assert_eq!(run_workers(&mut run, 4).len(), 4);
        run[3].decoded = vec![7; 1 << 20];
        assert_eq!(run_workers(&mut run, 1).len(), 1);
        assert_eq!(run.len(), 4);
        assert_eq!(run_workers(&mut run, 4)[3].decoded.capacity(), 1 << 20, "the long run finds its buffer again");
    }
}
