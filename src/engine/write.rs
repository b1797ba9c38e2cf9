//! The write path: plan, then build and encode each touched chunk on the pool, handing
//! encoded blocks to the caller in order with a bounded number in flight.

use std::borrow::Cow;
use std::convert::Infallible;

use super::block::{ArrayCtx, Lookup, Worker, run_workers, start_chunk, with_worker};
use super::ordered::run_ordered;
use super::plan::{ChunkOp, max_run_len, plan_batches, runs};
use super::pool;
use super::region::{Place, copy_region, for_each_row, for_each_run_row, is_contiguous, offset_bytes, to_usize};
use crate::codec::{
    BlockEncoding, CodecId, Filter, Scratch, ZstdDict, encode_block, encode_shuffled_in_pieces, shuffles_in_pieces,
};
use crate::error::Result;
use crate::fragment::{Checksummer, ChunkStats, Scan, checksum, scan, scan_pieces};
use crate::io::in_runs;
use crate::meta::{ArrayMeta, Codec, DType, Shuffle};

/// How new blocks of an array are encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteSettings<'a> {
    pub codec: Codec,
    /// What the raw bytes go through before the codec.
    pub filter: Filter,
    /// zstd blocks are written with this dictionary when set.
    pub dict: Option<&'a ZstdDict>,
}

impl<'a> WriteSettings<'a> {
    /// The settings for blocks of `dtype` written with `codec` and `shuffle` (which applies
    /// only where it can, see [`Shuffle::applies`]).
    pub(crate) fn new(codec: Codec, shuffle: Shuffle, dtype: DType, dict: Option<&'a ZstdDict>) -> Self {
        let elem_bytes = dtype.size_bytes();
        let filter = match shuffle {
            _ if !shuffle.applies(elem_bytes, codec) => Filter::None,
            Shuffle::ByteDelta => Filter::ShuffleDelta(elem_bytes),
            Shuffle::Delta => Filter::DeltaShuffle(elem_bytes),
            _ => Filter::Shuffle(elem_bytes),
        };
        Self { codec, filter, dict }
    }

    /// Whether blocks are stored as the raw bytes they hold.
    fn stores_raw(self) -> bool {
        matches!(self.codec, Codec::None) && self.filter == Filter::None
    }

    /// The encoding blocks are written with (unless stored raw, when their codec does not
    /// make them smaller, or with the dictionary, when the codec id is `ZstdDict`).
    pub(crate) fn encoding(self) -> BlockEncoding {
        BlockEncoding { codec: CodecId::of(self.codec), filter: self.filter }
    }
}

/// One chunk, encoded and ready to append to a fragment. Uncompressed, unshuffled blocks
/// may borrow their bytes from the caller's input (`'a`) instead of copying them.
#[derive(Debug)]
pub(crate) struct EncodedChunk<'a> {
    pub coord: Vec<u64>,
    pub stored: Stored<'a>,
    pub raw_len_bytes: u64,
    pub checksum: u64,
    pub encoding: BlockEncoding,
    /// Every element is the fill value; `stored` is empty.
    pub is_fill: bool,
    pub stats: ChunkStats,
}

/// A block's stored bytes: one buffer, or the rows of a caller's input that a whole chunk
/// stored as it is consists of (written to the fragment without being gathered first).
#[derive(Debug)]
pub(crate) enum Stored<'a> {
    Bytes(Cow<'a, [u8]>),
    Rows(Vec<&'a [u8]>),
}

impl Stored<'_> {
    /// Runs `f` with the stored bytes as parts to be written one after the other.
    pub(crate) fn with_parts<R>(&self, f: impl FnOnce(&[&[u8]]) -> R) -> R {
        match self {
            Self::Bytes(bytes) => f(&[bytes]),
            Self::Rows(rows) => f(rows),
        }
    }

    /// The same bytes, owned (copied only if they were borrowed).
    fn into_owned(self) -> Stored<'static> {
        match self {
            Self::Bytes(bytes) => Stored::from(bytes.into_owned()),
            Self::Rows(rows) => Stored::from(rows.concat()),
        }
    }
}

impl From<Vec<u8>> for Stored<'_> {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Bytes(Cow::Owned(bytes))
    }
}

/// Where encoded chunks go, in plan order: appended to the pending fragment. It runs on
/// whichever pool thread completes the oldest chunk in flight while the others encode
/// (`encode_in_order`), hence `Send`. The chunk is lent: its buffer is kept for later
/// blocks once the sink is done with it.
pub(crate) type Sink<'a> = dyn FnMut(&EncodedChunk<'_>) -> Result<()> + Send + 'a;

impl<'a> EncodedChunk<'a> {
    /// A chunk whose raw bytes `scan` found as it did; `stored` is empty when they are all
    /// the fill value.
    fn new(
        coord: &[u64],
        stored: Stored<'a>,
        raw_len_bytes: u64,
        checksum: u64,
        encoding: BlockEncoding,
        scan: Scan,
    ) -> Self {
        let Scan { stats, all_fill } = scan;
        Self { coord: coord.to_vec(), stored, raw_len_bytes, checksum, encoding, is_fill: all_fill, stats }
    }
}

/// Raw bytes of the chunks in flight at a time (taken by a thread but not yet appended),
/// which bounds a write's extra memory whatever its size.
const IN_FLIGHT_RAW_BYTES: u64 = 4 << 20;

/// Chunk bytes gathered together as one run along the last axis, at most: few enough that
/// they are still in cache when encoded one after the other (more measured slower), and
/// few enough to keep the bytes in flight near `IN_FLIGHT_RAW_BYTES` (above).
const WRITE_RUN_BYTES: u64 = 1 << 20;

/// Writes `input` (a C-order buffer of `shape`) at `start`. Chunks only partly covered are
/// read first through `lookup` (or start as fill). Encoded chunks go to `sink` in plan order.
pub(crate) fn write_region(
    ctx: ArrayCtx<'_>,
    lookup: &Lookup<'_, '_>,
    start: &[u64],
    shape: &[u64],
    input: &[u8],
    settings: WriteSettings,
    sink: &mut Sink<'_>,
) -> Result<()> {
    // A batch of chunks planned at a time (`plan_batches`), each encoded in order.
    for ops in plan_batches(&ctx.meta.chunk_shape, start, shape) {
        let max_run = max_run_len(ctx.meta.chunk_bytes(), WRITE_RUN_BYTES, ops.len(), pool::threads());
        encode_in_order(
            &runs(ops, max_run),
            ctx.meta.chunk_bytes() * max_run as u64,
            |worker, run| encode_run(ctx, lookup, run, shape, input, settings, worker),
            sink,
        )?;
    }
    Ok(())
}

/// A whole chunk's raw bytes to encode, with its array and how it is encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawChunkOf<'a> {
    pub meta: &'a ArrayMeta,
    pub settings: WriteSettings<'a>,
    pub coord: &'a [u64],
    pub raw: &'a [u8],
}

/// Encodes whole chunks, of one array or several, on the pool; hands them to `sink` in
/// the order given.
pub(crate) fn encode_chunks(chunks: &[RawChunkOf<'_>], sink: &mut Sink<'_>) -> Result<()> {
    // The largest, so that the chunks in flight stay within the engine's bound.
    let item_bytes = chunks.iter().map(|chunk| chunk.raw.len()).max().unwrap_or(0) as u64;
    encode_in_order(
        chunks,
        item_bytes,
        |worker, chunk| {
            let RawChunkOf { meta, settings, coord, raw } = *chunk;
            encode_raw(meta, coord, Cow::Borrowed(raw), settings, &mut worker.scratch).map(|chunk| [chunk])
        },
        sink,
    )
}

/// Writes `input` (a C-order buffer of `shape`) into raw chunk buffers instead of blocks,
/// as `ops` (its box's [`plan`](super::plan::plan)) say: `chunks[i]` is the buffer of the chunk of `ops[i]`,
/// or `None` to start one from the chunk's current block (decoded and verified) or the fill
/// value. On an error no buffer given has been changed.
pub(crate) fn write_raw(
    ctx: ArrayCtx<'_>,
    lookup: &Lookup<'_, '_>,
    ops: &[ChunkOp],
    shape: &[u64],
    input: &[u8],
    chunks: &mut [Option<Vec<u8>>],
) -> Result<()> {
    let meta = ctx.meta;
    assert_eq!(ops.len(), chunks.len(), "one buffer per chunk touched");
    let chunk_len = to_usize(meta.chunk_bytes());
    with_worker(|worker| {
        for (op, chunk) in ops.iter().zip(chunks.iter_mut()).filter(|(_, chunk)| chunk.is_none()) {
            let mut raw = vec![0; chunk_len];
            // A chunk the input covers whole needs no start: the input replaces all of it.
            if !op.covers_chunk(&meta.chunk_shape) {
                start_chunk(ctx, lookup, &op.coord, worker, &mut raw, true)?;
            }
            *chunk = Some(raw);
        }
        Ok::<_, crate::error::Error>(())
    })?;
    for (op, chunk) in ops.iter().zip(chunks) {
        let (src, dst) = (op.in_selection_of(shape), op.in_chunk_of(&meta.chunk_shape));
        let raw = chunk.as_mut().expect("made above");
        copy_region(input, src, raw, dst, &op.region, meta.dtype.size_bytes());
    }
    Ok(())
}

/// Runs `encode` over `items` (each of about `item_bytes` raw bytes, encoding to one or
/// more chunks) on the engine's pool, handing the chunks to `sink` in order as soon as they
/// are due, so appending overlaps encoding and memory stays bounded
/// (`IN_FLIGHT_RAW_BYTES`). Too little work for the pool is encoded and handed over item by
/// item on the caller's thread.
pub(crate) fn encode_in_order<'i, I: Sync, C: IntoIterator<Item = EncodedChunk<'i>> + Send>(
    items: &[I],
    item_bytes: u64,
    encode: impl Fn(&mut Worker, &I) -> Result<C> + Sync,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let mut hand_over_all = |chunks: C| chunks.into_iter().try_for_each(|chunk| hand_over(sink, chunk));
    if !pool::worth_parallel(items.len(), item_bytes.saturating_mul(items.len() as u64)) {
        return items.iter().try_for_each(|item| hand_over_all(with_worker(|worker| encode(worker, item))?));
    }
    // At least two items per thread, so large chunks still encode in parallel and a thread
    // finds the next one while the oldest is appended.
    let window = (IN_FLIGHT_RAW_BYTES / item_bytes.max(1)).max(2 * pool::threads() as u64);
    pool::run(|| {
        run_ordered(items, to_usize(window), |item| with_worker(|worker| encode(worker, item)), &mut hand_over_all)
    })
}

/// Gives `chunk` to `sink`, then keeps its buffer, if it owns one, for the next block this
/// thread encodes.
fn hand_over(sink: &mut Sink<'_>, chunk: EncodedChunk<'_>) -> Result<()> {
    sink(&chunk)?;
    if let Stored::Bytes(Cow::Owned(buffer)) = chunk.stored {
        with_worker(|worker| worker.scratch.spare_block_buffer(buffer));
    }
    Ok(())
}

/// Encodes a run of chunk ops (chunks side by side along the last axis, usually one).
fn encode_run<'i>(
    ctx: ArrayCtx<'_>,
    lookup: &Lookup<'_, '_>,
    run: &[ChunkOp],
    shape: &[u64],
    input: &'i [u8],
    settings: WriteSettings,
    worker: &mut Worker,
) -> Result<Vec<EncodedChunk<'i>>> {
    let meta = ctx.meta;
    let chunk_len = to_usize(meta.chunk_bytes());
    // Whole chunks that need no chunk buffer skip it: one that is a contiguous run of the
    // input is encoded from it directly, one stored as it is or shuffled in pieces from the
    // input's rows (decision k).
    let from_rows = settings.stores_raw() || shuffles_in_pieces(settings.codec, settings.filter, chunk_len);
    if run.iter().all(|op| op.covers_chunk(&meta.chunk_shape) && (from_rows || is_contiguous(shape, &op.region))) {
        run.iter().map(|op| encode_from_input(meta, op, shape, input, settings, worker)).collect()
    } else {
        encode_assembled(ctx, lookup, run, shape, input, settings, worker)
    }
}

/// Encodes the whole chunk of `op` from the caller's `input` without a chunk buffer: a
/// contiguous run of it as it is, else from its rows (gathered first if small and stored
/// as they are).
fn encode_from_input<'i>(
    meta: &ArrayMeta,
    op: &ChunkOp,
    shape: &[u64],
    input: &'i [u8],
    settings: WriteSettings,
    worker: &mut Worker,
) -> Result<EncodedChunk<'i>> {
    let elem_bytes = meta.dtype.size_bytes();
    let chunk_len = to_usize(meta.chunk_bytes());
    if is_contiguous(shape, &op.region) {
        let offset = offset_bytes(shape, &op.in_selection, elem_bytes);
        let raw = Cow::Borrowed(&input[offset..offset + chunk_len]);
        return encode_raw(meta, &op.coord, raw, settings, &mut worker.scratch);
    }
    let (src, dst) = (op.in_selection_of(shape), op.in_chunk_of(&meta.chunk_shape));
    if settings.stores_raw() && chunk_len <= GATHER_RAW_BYTES {
        let mut raw = worker.scratch.block_buffer();
        raw.reserve_exact(chunk_len);
        for_each_row(src, dst, &op.region, elem_bytes, |s, _, n| raw.extend_from_slice(&input[s..s + n]));
        return encode_raw(meta, &op.coord, Cow::Owned(raw), settings, &mut worker.scratch);
    }
    let mut rows = Vec::new();
    for_each_row(src, dst, &op.region, elem_bytes, |s, _, n| rows.push(&input[s..s + n]));
    encode_rows(meta, &op.coord, rows, settings, worker)
}

/// Encodes the chunks of `run` after assembling each in its worker's chunk buffer, starting,
/// when partly covered, from its current block (decoded and verified) or the fill value.
fn encode_assembled(
    ctx: ArrayCtx<'_>,
    lookup: &Lookup<'_, '_>,
    run: &[ChunkOp],
    shape: &[u64],
    input: &[u8],
    settings: WriteSettings,
    worker: &mut Worker,
) -> Result<Vec<EncodedChunk<'static>>> {
    let meta = ctx.meta;
    let elem_bytes = meta.dtype.size_bytes();
    let chunk_shape = &meta.chunk_shape[..];
    let chunk_len = to_usize(meta.chunk_bytes());
    let Worker { scratch, run: workers, .. } = worker;
    let workers = run_workers(workers, run.len());
    let mut buffers = Vec::with_capacity(run.len());
    for (op, chunk_worker) in run.iter().zip(workers.iter_mut()) {
        let mut chunk = std::mem::take(&mut chunk_worker.chunk);
        chunk.resize(chunk_len, 0);
        if !op.covers_chunk(chunk_shape) {
            start_chunk(ctx, lookup, &op.coord, chunk_worker, &mut chunk, false)?;
        }
        buffers.push(chunk);
    }
    // The input's rows in order, each into the chunks of the run in turn.
    let src: Vec<Place<'_>> = run.iter().map(|op| op.in_selection_of(shape)).collect();
    let dst: Vec<Place<'_>> = run.iter().map(|op| op.in_chunk_of(chunk_shape)).collect();
    let regions: Vec<&[u64]> = run.iter().map(|op| &op.region[..]).collect();
    for_each_run_row(&src, &dst, &regions, elem_bytes, |j, s, d, n| {
        buffers[j][d..d + n].copy_from_slice(&input[s..s + n]);
    });
    let chunks = run.iter().zip(buffers).zip(workers.iter_mut());
    chunks
        .map(|((op, mut chunk), chunk_worker)| {
            let encoded = encode_chunk_buffer(meta, &op.coord, &mut chunk, settings, scratch);
            chunk_worker.chunk = chunk;
            encoded
        })
        .collect()
}

/// [`encode_raw`] of a worker's whole-chunk buffer, owning its bytes. A block stored as
/// the raw bytes (codec `none`, or a compressor that did not make them smaller) takes the
/// buffer itself rather than a copy, and `chunk` gets a spare buffer in its place (after a
/// compressor, the output buffer it just gave back; else any spare, or a new one).
fn encode_chunk_buffer(
    meta: &ArrayMeta,
    coord: &[u64],
    chunk: &mut Vec<u8>,
    settings: WriteSettings,
    scratch: &mut Scratch,
) -> Result<EncodedChunk<'static>> {
    let EncodedChunk { coord, stored, raw_len_bytes, checksum, encoding, is_fill, stats } =
        encode_raw(meta, coord, Cow::Borrowed(chunk), settings, scratch)?;
    let stored = match stored {
        // Borrowed bytes are the chunk's (a fill chunk's are none).
        Stored::Bytes(Cow::Borrowed(raw)) if !raw.is_empty() => {
            debug_assert_eq!(raw.len(), chunk.len(), "borrowed bytes are the whole chunk");
            Stored::from(std::mem::replace(chunk, scratch.block_buffer()))
        }
        other => other.into_owned(),
    };
    Ok(EncodedChunk { coord, stored, raw_len_bytes, checksum, encoding, is_fill, stats })
}

/// A whole chunk stored as it is, up to this size, is gathered from its rows in the input
/// into a block buffer of its own (a spare one, see `Scratch::block_buffer`): it is then
/// scanned and hashed from cache and written as one part. A larger one is written from its
/// rows (`encode_rows`), so that no buffer of its size is held per chunk in flight.
const GATHER_RAW_BYTES: usize = 4 << 20;

/// Short rows of a chunk are scanned and hashed in runs of up to this many bytes.
const ROWS_RUN_BYTES: usize = 256 << 10;

/// [`encode_raw`] of a whole chunk given as its `rows` in the caller's input (in chunk
/// order), for a block stored as it is or one that `codec::shuffles_in_pieces`: its raw
/// bytes never sit in one buffer. The block stored as it is is those rows, written to the
/// fragment from the input; the shuffled one is scanned and hashed as the codec reads its
/// first plane (and stored as its rows too if zstd did not make it smaller).
fn encode_rows<'i>(
    meta: &ArrayMeta,
    coord: &[u64],
    rows: Vec<&'i [u8]>,
    settings: WriteSettings,
    worker: &mut Worker,
) -> Result<EncodedChunk<'i>> {
    let raw_len_bytes = rows.iter().map(|row| row.len() as u64).sum();
    let mut summer = Checksummer::new();
    let mut encoding = settings.encoding();
    let (scan, mut stored) = if settings.stores_raw() {
        let scan = scan_pieces(meta.dtype, &meta.fill_bytes(), |visit| {
            let Ok(()) = in_runs(rows.iter().copied(), &mut worker.rows, ROWS_RUN_BYTES, |run| {
                summer.update(run);
                visit(run);
                Ok::<_, Infallible>(())
            });
        });
        (scan, Stored::Rows(rows))
    } else {
        let (mut bytes, mut encoded) = (worker.scratch.block_buffer(), None);
        let scan = scan_pieces(meta.dtype, &meta.fill_bytes(), |visit| {
            let first_read = |raw: &[u8]| {
                summer.update(raw);
                visit(raw);
            };
            let (codec, dict, scratch) = (settings.codec, settings.dict, &mut worker.scratch);
            encoded =
                Some(encode_shuffled_in_pieces(&rows, codec, settings.filter, dict, scratch, &mut bytes, first_read));
        });
        let codec_encoding = encoded.expect("scan_pieces runs its producer")?;
        let raw_len = to_usize(raw_len_bytes);
        let (block_encoding, stored) =
            encoded_or_raw(settings.codec, codec_encoding, bytes, raw_len, || Stored::Rows(rows), &mut worker.scratch);
        encoding = block_encoding;
        (scan, stored)
    };
    if scan.all_fill {
        // Stored without bytes (a shuffled chunk was encoded for nothing: its scan came
        // with the encode); the encoded bytes' buffer is kept for the next block.
        if let Stored::Bytes(Cow::Owned(buffer)) = std::mem::replace(&mut stored, Stored::from(Vec::new())) {
            worker.scratch.spare_block_buffer(buffer);
        }
        encoding = settings.encoding();
    }
    Ok(EncodedChunk::new(coord, stored, raw_len_bytes, summer.finish(), encoding, scan))
}

/// Scans and encodes one chunk's raw bytes; a chunk of nothing but the fill value is
/// recorded without bytes, and an uncompressed, unshuffled one (or one its codec did not
/// make smaller) with `raw` itself.
pub(crate) fn encode_raw<'r>(
    meta: &ArrayMeta,
    coord: &[u64],
    raw: Cow<'r, [u8]>,
    settings: WriteSettings,
    scratch: &mut Scratch,
) -> Result<EncodedChunk<'r>> {
    let scan = scan(&raw, meta.dtype, &meta.fill_bytes());
    let (raw_len_bytes, checksum) = (raw.len() as u64, checksum(&raw));
    let mut encoding = settings.encoding();
    let stored = if scan.all_fill {
        if let Cow::Owned(buffer) = raw {
            scratch.spare_block_buffer(buffer);
        }
        Stored::Bytes(Cow::Borrowed(&[][..]))
    } else if settings.stores_raw() {
        Stored::Bytes(raw)
    } else {
        let mut encoded = scratch.block_buffer();
        let codec_encoding = encode_block(&raw, settings.codec, encoding.filter, settings.dict, scratch, &mut encoded)?;
        let (block_encoding, stored) = encoded_or_raw(
            settings.codec,
            codec_encoding,
            encoded,
            to_usize(raw_len_bytes),
            || Stored::Bytes(raw),
            scratch,
        );
        encoding = block_encoding;
        stored
    };
    Ok(EncodedChunk::new(coord, stored, raw_len_bytes, checksum, encoding, scan))
}

/// What to store for a block of `raw_len` raw bytes that `codec` encoded into `encoded`:
/// those bytes, or, when a compressor did not make them smaller, the raw bytes as they are
/// (`raw()`, `BlockEncoding::RAW`), which take no more room and are read straight from the
/// map with no decode (docs/ARCHITECTURE.md, decision o); `encoded`'s buffer then goes back
/// to `scratch`'s spares. The codec `none` is kept as asked (shuffled or not): no
/// compressor ran.
pub(crate) fn encoded_or_raw<'a>(
    codec: Codec,
    encoding: BlockEncoding,
    encoded: Vec<u8>,
    raw_len: usize,
    raw: impl FnOnce() -> Stored<'a>,
    scratch: &mut Scratch,
) -> (BlockEncoding, Stored<'a>) {
    if matches!(codec, Codec::None) || encoded.len() < raw_len {
        (encoding, Stored::from(encoded))
    } else {
        scratch.spare_block_buffer(encoded);
        (BlockEncoding::RAW, raw())
    }
}
