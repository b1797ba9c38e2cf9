//! Many boxes of one shape from one array in one request ([`read_boxes`]): the random
//! patches a training loop or a notebook samples. The boxes are planned together, so every
//! chunk they touch is decoded once, however many boxes it feeds (as `TensorStore`'s batches
//! coalesce reads of one chunk), and the chunks are spread over the pool.

use std::collections::BTreeMap;

use rayon::prelude::*;

use super::block::{ArrayCtx, Lookup, check_raw_len, decode_chunk, fill_with, with_worker};
use super::out::SharedOut;
use super::plan::{ChunkOp, PLAN_BATCH, plan_batches};
use super::pool::{run, worth_parallel};
use super::region::{for_each_row, to_usize};
use crate::error::Result;

/// The parts of boxes one chunk feeds: (byte offset of the box in the output, its op).
type Parts = Vec<(usize, ChunkOp)>;

/// Reads the boxes of extent `shape` starting at each of `starts` into `out`, box `i` in C
/// order from byte `i * box_bytes` on; the caller has checked every box lies inside the
/// array. Each output element belongs to one (box, chunk) part, so the parts are written
/// from many threads without overlapping.
///
/// # Panics
/// If `out` does not hold every box (a caller bug).
pub(crate) fn read_boxes(
    ctx: ArrayCtx<'_>,
    lookup: &Lookup<'_, '_>,
    starts: &[&[u64]],
    shape: &[u64],
    out: &mut [u8],
    verify: bool,
) -> Result<()> {
    let meta = ctx.meta;
    let elem_bytes = meta.dtype.size_bytes();
    let box_bytes = shape.iter().map(|&n| to_usize(n)).product::<usize>() * elem_bytes;
    assert_eq!(Some(out.len()), box_bytes.checked_mul(starts.len()), "the output holds every box");
    let (chunk_len, fill) = (to_usize(meta.chunk_bytes()), meta.fill_bytes());
    let out = SharedOut::new(out);
    let read_chunk = |(coord, parts): &(Vec<u64>, Parts)| {
        with_worker(|worker| {
            // The chunk's raw bytes, decoded and checked once; `None` reads as the fill value.
            let mut raw = std::mem::take(&mut worker.chunk);
            let decoded = match lookup(coord) {
                Some(block) if !block.entry().is_fill => {
                    raw.resize(chunk_len, 0);
                    decode_chunk(ctx, block, worker, &mut raw, verify).map(|()| Some(&raw[..]))
                }
                Some(fill_entry) => check_raw_len(ctx, fill_entry, chunk_len).map(|()| None),
                None => Ok(None),
            };
            if let Ok(source) = &decoded {
                for (base, op) in parts {
                    // The rows of a part of whole box rows follow one another in the output;
                    // a part of each row (the box straddles chunks along the last axis)
                    // shares lines with another chunk's part, better written with ordinary
                    // stores: streamed, W4 in one call ran 3.8x slower.
                    let streamer = out.streamer().whole_lines(op.region.last() != shape.last());
                    let (dst, src) = (op.in_selection_of(shape), op.in_chunk_of(&meta.chunk_shape));
                    for_each_row(src, dst, &op.region, elem_bytes, |s, d, n| {
                        // SAFETY: this part of this box belongs to this chunk alone (above).
                        let target = unsafe { out.slice_mut(base + d, n) };
                        match source {
                            Some(raw) => streamer.copy(target, &raw[s..s + n]),
                            None => fill_with(target, &fill),
                        }
                    });
                }
            }
            let result = decoded.map(|_| ());
            worker.chunk = raw;
            result
        })
    };
    let read_chunks = |feeds: BTreeMap<Vec<u64>, Parts>| {
        let chunks: Vec<(Vec<u64>, Parts)> = feeds.into_iter().collect();
        let work_bytes = meta.chunk_bytes().saturating_mul(chunks.len() as u64);
        if worth_parallel(chunks.len(), work_bytes) {
            run(|| chunks.par_iter().try_for_each(read_chunk))
        } else {
            chunks.iter().try_for_each(read_chunk)
        }
    };
    // Read whenever a batch of parts is planned, so that boxes of millions of tiny chunks
    // hold a bounded plan (`plan_batches`); a chunk feeding boxes of two batches is then
    // decoded twice.
    let (mut feeds, mut planned) = (BTreeMap::new(), 0);
    for (i, start) in starts.iter().enumerate() {
        for ops in plan_batches(&meta.chunk_shape, start, shape) {
            planned += ops.len();
            for op in ops {
                feeds.entry(op.coord.clone()).or_insert_with(Parts::new).push((i * box_bytes, op));
            }
            if planned >= PLAN_BATCH {
                read_chunks(std::mem::take(&mut feeds))?;
                planned = 0;
            }
        }
    }
    read_chunks(feeds)
}
