//! The write path: plan, then build and encode each touched chunk on the pool, in batches
//! that bound memory, handing encoded blocks to the caller in order.

use std::borrow::Cow;

use rayon::prelude::*;

use super::block::{ArrayCtx, BlockRef, Worker, decode_chunk, fill_with, with_worker};
use super::plan::{ChunkOp, plan};
use super::pool;
use super::region::{Place, copy_region, is_contiguous, offset_bytes, to_usize};
use crate::codec::{BlockEncoding, CodecId, ZstdDict, encode_block};
use crate::error::Result;
use crate::fragment::{ChunkStats, Scan, checksum, scan};
use crate::meta::{ArrayMeta, Codec};

/// How new blocks of an array are encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteSettings<'a> {
    pub codec: Codec,
    pub shuffle: bool,
    /// zstd blocks are written with this dictionary when set.
    pub dict: Option<&'a ZstdDict>,
}

/// One chunk, encoded and ready to append to a fragment. Uncompressed, unshuffled blocks
/// may borrow their bytes from the caller's input (`'a`) instead of copying them.
#[derive(Debug)]
pub(crate) struct EncodedChunk<'a> {
    pub coord: Vec<u64>,
    pub stored: Cow<'a, [u8]>,
    pub raw_len_bytes: u64,
    pub checksum: u64,
    pub encoding: BlockEncoding,
    /// Every element is the fill value; `stored` is empty.
    pub is_fill: bool,
    pub stats: ChunkStats,
}

/// Where encoded chunks go, in plan order: appended to the pending fragment. It runs on a
/// pool thread while the next batch encodes, hence `Send`.
pub(crate) type Sink<'a> = dyn FnMut(EncodedChunk<'_>) -> Result<()> + Send + 'a;

impl EncodedChunk<'_> {
    /// The same chunk owning its bytes (copied only if they were borrowed).
    pub(crate) fn into_owned(self) -> EncodedChunk<'static> {
        let Self { coord, stored, raw_len_bytes, checksum, encoding, is_fill, stats } = self;
        EncodedChunk {
            coord,
            stored: Cow::Owned(stored.into_owned()),
            raw_len_bytes,
            checksum,
            encoding,
            is_fill,
            stats,
        }
    }
}

/// Raw bytes encoded per batch. Two batches are in flight at a time (one encoding, the one
/// before it being appended), which bounds a write's extra memory, whatever its size.
const BATCH_RAW_BYTES: u64 = 4 << 20;

/// Writes `input` (a C-order buffer of `shape`) at `start`. Chunks only partly covered are
/// read first through `lookup` (or start as fill). Encoded chunks go to `sink` in plan order.
pub(crate) fn write_region<'a>(
    ctx: ArrayCtx<'_>,
    lookup: &(dyn Fn(&[u64]) -> Option<BlockRef<'a>> + Sync),
    start: &[u64],
    shape: &[u64],
    input: &[u8],
    settings: WriteSettings,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let ops = plan(&ctx.meta.chunk_shape, start, shape);
    encode_batched(
        &ops,
        ctx.meta.chunk_bytes(),
        |worker, op| encode_op(ctx, lookup, op, shape, input, settings, worker),
        sink,
    )
}

/// Runs `encode` over `items` on the engine's pool in batches of about `BATCH_RAW_BYTES` of
/// raw chunks, handing the results to `sink` in order: a batch goes to the sink while the
/// next one encodes, so appending overlaps encoding and memory stays bounded.
pub(crate) fn encode_batched<'i, I: Sync>(
    items: &[I],
    chunk_bytes: u64,
    encode: impl Fn(&mut Worker, &I) -> Result<EncodedChunk<'i>> + Sync,
    sink: &mut Sink<'_>,
) -> Result<()> {
    // At least one chunk per thread, so large chunks still encode in parallel.
    let threads = pool::threads() as u64;
    let batch_len = (BATCH_RAW_BYTES / chunk_bytes.max(1)).max(threads);
    let encode_batch = |batch: &[I]| -> Result<Vec<EncodedChunk<'i>>> {
        batch.par_iter().map(|item| with_worker(|worker| encode(worker, item))).collect()
    };
    pool::run(|| {
        let mut encoded = Vec::new();
        for batch in items.chunks(to_usize(batch_len)) {
            let done = std::mem::take(&mut encoded);
            let (next, appended) = rayon::join(|| encode_batch(batch), || done.into_iter().try_for_each(&mut *sink));
            appended?;
            encoded = next?;
        }
        encoded.into_iter().try_for_each(sink)
    })
}

fn encode_op<'a, 'i>(
    ctx: ArrayCtx<'_>,
    lookup: &(dyn Fn(&[u64]) -> Option<BlockRef<'a>> + Sync),
    op: &ChunkOp,
    shape: &[u64],
    input: &'i [u8],
    settings: WriteSettings,
    worker: &mut Worker,
) -> Result<EncodedChunk<'i>> {
    let meta = ctx.meta;
    let elem_bytes = meta.dtype.size_bytes();
    let chunk_shape = &meta.chunk_shape[..];
    let chunk_len = to_usize(meta.chunk_bytes());
    let covered = op.covers_chunk(chunk_shape);
    let src = Place { shape, start: &op.in_selection };
    let dst = Place { shape: chunk_shape, start: &op.in_chunk };
    // A whole chunk that is one contiguous run of the input is encoded from it directly
    // (and an uncompressed one stored from it without a copy).
    if covered && is_contiguous(shape, &op.region) {
        let offset = offset_bytes(shape, &op.in_selection, elem_bytes);
        return encode_raw(meta, &op.coord, Cow::Borrowed(&input[offset..offset + chunk_len]), settings, worker);
    }
    // A whole chunk stored as it is: gathered once, into the buffer that is stored.
    if covered && stores_raw(meta, settings) {
        let mut raw = vec![0; chunk_len];
        copy_region(input, src, &mut raw, dst, &op.region, elem_bytes);
        return encode_raw(meta, &op.coord, Cow::Owned(raw), settings, worker);
    }
    let mut chunk = std::mem::take(&mut worker.chunk);
    chunk.resize(chunk_len, 0);
    if !covered {
        match lookup(&op.coord) {
            Some(block) => decode_chunk(ctx, block, worker, &mut chunk, true)?,
            None => fill_with(&mut chunk, &meta.fill_bytes()),
        }
    }
    copy_region(input, src, &mut chunk, dst, &op.region, elem_bytes);
    let encoded = encode_raw(meta, &op.coord, Cow::Borrowed(&chunk), settings, worker).map(EncodedChunk::into_owned);
    worker.chunk = chunk;
    encoded
}

/// Whether blocks written with `settings` store their raw bytes as they are.
fn stores_raw(meta: &ArrayMeta, settings: WriteSettings) -> bool {
    matches!(settings.codec, Codec::None) && shuffle_elem_bytes(meta, settings).is_none()
}

/// The element size blocks are shuffled by, if they are.
fn shuffle_elem_bytes(meta: &ArrayMeta, settings: WriteSettings) -> Option<usize> {
    let elem_bytes = meta.dtype.size_bytes();
    (settings.shuffle && elem_bytes > 1).then_some(elem_bytes)
}

/// Scans and encodes one chunk's raw bytes; a chunk of nothing but the fill value is
/// recorded without bytes, and an uncompressed, unshuffled one with `raw` itself.
pub(crate) fn encode_raw<'r>(
    meta: &ArrayMeta,
    coord: &[u64],
    raw: Cow<'r, [u8]>,
    settings: WriteSettings,
    worker: &mut Worker,
) -> Result<EncodedChunk<'r>> {
    let shuffle_elem_bytes = shuffle_elem_bytes(meta, settings);
    let Scan { stats, all_fill } = scan(&raw, meta.dtype, &meta.fill_bytes());
    let (raw_len_bytes, checksum) = (raw.len() as u64, checksum(&raw));
    let mut encoding = BlockEncoding { codec: CodecId::of(settings.codec), shuffle_elem_bytes };
    let stored = if all_fill {
        Cow::Borrowed(&[][..])
    } else if stores_raw(meta, settings) {
        raw
    } else {
        let mut stored = Vec::new();
        encoding =
            encode_block(&raw, settings.codec, shuffle_elem_bytes, settings.dict, &mut worker.scratch, &mut stored)?;
        Cow::Owned(stored)
    };
    Ok(EncodedChunk { coord: coord.to_vec(), stored, raw_len_bytes, checksum, encoding, is_fill: all_fill, stats })
}
