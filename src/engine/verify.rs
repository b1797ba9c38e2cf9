//! Checking blocks: decode each one as a read would and compare its checksum, check its
//! entry's statistics as `stats` would, in parallel, collecting every failure instead of
//! stopping at the first.

use rayon::prelude::*;

use super::block::{ArrayCtx, BlockRef, Worker, check_raw_len, corrupt_chunk, decode_chunk, with_worker};
use super::pool;
use super::region::to_usize;
use super::strings::decode_strings;
use crate::error::{Error, Result};
use crate::fragment::{ChunkStats, scan};
use crate::meta::DType;

/// Decodes every block of one array and returns, in order, each block's error if any.
pub(crate) fn check_blocks(ctx: ArrayCtx<'_>, blocks: &[BlockRef<'_>]) -> Vec<Option<Error>> {
    pool::run(|| blocks.par_iter().map(|block| with_worker(|worker| check(ctx, *block, worker).err())).collect())
}

fn check(ctx: ArrayCtx<'_>, block: BlockRef<'_>, worker: &mut Worker) -> Result<()> {
    // A block of a chunk outside the array's grid: an honest shrink leaves only fill
    // entries there, and growing the array again would show its values.
    let coord = &block.entry().coord;
    if !block.entry().is_fill && !ctx.meta.holds_chunk(coord) {
        let detail =
            format!("a block outside the array's grid (shape {:?}, chunks {:?})", ctx.meta.shape, ctx.meta.chunk_shape);
        return Err(corrupt_chunk(ctx, block, &detail));
    }
    // The bytes first, whose error says more; then the statistics, which `stats` would
    // refuse as it would bytes that fail their checksum; then whether they are the
    // chunk's (queries skip blocks by them, and an index can be made again with a
    // checksum that matches).
    let found = check_bytes(ctx, block, worker)?;
    let stats = block.stats(ctx.meta)?;
    let Some((found, legacy)) = found else { return Ok(()) };
    let checked = stats.check_against(&found, ctx.meta.dtype);
    // Timestamp blocks written before `NaT` counted as null keep the statistics they were
    // written with (NaT a value) until their chunk is written again.
    if checked.is_err() && legacy.is_some_and(|legacy| stats.check_against(&legacy, DType::Int64).is_ok()) {
        return Ok(());
    }
    checked.map_err(|detail| corrupt_chunk(ctx, block, &detail))
}

/// The statistics of a decoded chunk, and for a timestamp chunk those that builds before
/// `NaT` was null gave it (as an int64 chunk's).
type Found = (ChunkStats, Option<ChunkStats>);

/// Decodes `block` and checks its checksum; returns the statistics of the numeric chunk it
/// decodes to (`None` for a fill entry or a string chunk, whose entry has none to compare).
fn check_bytes(ctx: ArrayCtx<'_>, block: BlockRef<'_>, worker: &mut Worker) -> Result<Option<Found>> {
    // A fill entry has no bytes: its length is checked (decoding it would only build a
    // chunk of fill, for strings a `String` per element). A string chunk of empty strings
    // is its offsets alone.
    if block.entry().is_fill {
        let raw_len = ctx.meta.raw_chunk_bytes().expect("a checked schema's chunk fits u64");
        return check_raw_len(ctx, block, to_usize(raw_len)).map(|()| None);
    }
    if ctx.meta.dtype == DType::String {
        return decode_strings(ctx, Some(block), worker, true).map(|_| None);
    }
    let mut chunk = std::mem::take(&mut worker.chunk);
    chunk.resize(to_usize(ctx.meta.chunk_bytes()), 0);
    let (dtype, fill) = (ctx.meta.dtype, ctx.meta.fill_bytes());
    let checked = decode_chunk(ctx, block, worker, &mut chunk, true).map(|()| {
        let found = scan(&chunk, dtype, &fill).stats;
        // Scanned again only where the entry differs (a chunk holding NaT).
        let differs = block.entry().stats != found;
        let legacy = (dtype == DType::Timestamp && differs).then(|| scan(&chunk, DType::Int64, &fill).stats);
        Some((found, legacy))
    });
    worker.chunk = chunk;
    checked
}
