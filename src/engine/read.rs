//! The read path: plan, then decode every touched block on the pool straight into the
//! caller's buffer.

use rayon::prelude::*;

use super::block::{ArrayCtx, BlockRef, Worker, decode_chunk, fill_with};
use super::out::SharedOut;
use super::plan::plan;
use super::pool::pool;
use super::region::{Place, for_each_row, is_contiguous, offset_bytes, to_usize};
use crate::error::Result;

/// Reads the box `start .. start + shape` of an array into `out`, a C-order buffer of
/// `shape` elements. `lookup` gives a chunk's current block, or `None` for a chunk never
/// written (read as the fill value). The caller has checked bounds and `out`'s length.
pub(crate) fn read_region<'a>(
    ctx: ArrayCtx<'_>,
    lookup: &(dyn Fn(&[u64]) -> Option<BlockRef<'a>> + Sync),
    start: &[u64],
    shape: &[u64],
    out: &mut [u8],
    verify: bool,
) -> Result<()> {
    let meta = ctx.meta;
    let elem_bytes = meta.dtype.size_bytes();
    let chunk_shape = &meta.chunk_shape[..];
    let chunk_len = to_usize(meta.chunk_bytes());
    let fill = meta.fill_bytes();
    let ops = plan(chunk_shape, start, shape);
    let out = SharedOut::new(out);
    pool().install(|| {
        ops.par_iter().try_for_each_init(Worker::default, |worker, op| {
            let dst = Place { shape, start: &op.in_selection };
            let block = lookup(&op.coord);
            // A whole chunk landing on one contiguous range of the output decodes in place.
            if let Some(block) = block
                && op.covers_chunk(chunk_shape)
                && is_contiguous(shape, &op.region)
            {
                let offset = offset_bytes(shape, &op.in_selection, elem_bytes);
                // SAFETY: the plan gives each output element to one op; this range is op's box.
                let target = unsafe { out.slice_mut(offset, chunk_len) };
                return decode_chunk(ctx, block, worker, target, verify);
            }
            let src = Place { shape: chunk_shape, start: &op.in_chunk };
            if let Some(block) = block {
                let mut chunk = std::mem::take(&mut worker.chunk);
                chunk.resize(chunk_len, 0);
                let decoded = decode_chunk(ctx, block, worker, &mut chunk, verify);
                if decoded.is_ok() {
                    for_each_row(src, dst, &op.region, elem_bytes, |s, d, n| {
                        // SAFETY: each row of op's box in the output belongs to op alone.
                        unsafe { out.slice_mut(d, n) }.copy_from_slice(&chunk[s..s + n]);
                    });
                }
                worker.chunk = chunk;
                decoded
            } else {
                for_each_row(src, dst, &op.region, elem_bytes, |_, d, n| {
                    // SAFETY: as above.
                    fill_with(unsafe { out.slice_mut(d, n) }, &fill);
                });
                Ok(())
            }
        })
    })
}
