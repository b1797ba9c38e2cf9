//! The read path: plan, then decode every touched block on the pool straight into the
//! caller's buffer. A request fills one or more equal "slots" of the output, each with an
//! array's box placed somewhere inside it and the fill value around it, or with the fill
//! value alone ([`read_slots`]); reading one box into a buffer of its own shape is the
//! one-slot case. All slots' chunk and fill operations run as one parallel loop.

use std::borrow::Cow;
use std::sync::Arc;

use rayon::prelude::*;

use super::block::{
    ArrayCtx, BlockRef, Lookup, Worker, check_raw_len, decode_chunk, fill_with, run_workers, with_worker,
};
use super::cache::{BlockKey, CachedChunk};
use super::out::SharedOut;
use super::plan::{ChunkOp, PLAN_BATCH, max_run_len, plan_batches, runs};
use super::pool::{run, threads, worth_parallel};
use super::region::{Place, for_each_row, for_each_run_row, is_contiguous, offset_bytes, to_usize};
use super::rows::RowSource;
use crate::error::Result;

/// What one slot of a [`read_slots`] output holds.
#[derive(Clone, Copy)]
pub(crate) enum Slot<'r, 'a> {
    /// Every element is this one (its bytes).
    Fill(&'r [u8]),
    /// A box of an array; the slot's elements outside it are the array's fill value.
    Read(SlotRead<'r, 'a>),
}

/// The box `start .. start + shape` of an array, placed in its slot at `at`. The caller has
/// checked the box lies inside the array (elements beyond the array's extent are never
/// read), and it must lie inside the slot.
#[derive(Clone, Copy)]
pub(crate) struct SlotRead<'r, 'a> {
    pub ctx: ArrayCtx<'r>,
    pub lookup: &'r Lookup<'r, 'a>,
    pub start: &'r [u64],
    pub shape: &'r [u64],
    pub at: &'r [u64],
}

/// One unit of work on the pool, inside the slot starting at byte `base` of the output.
struct Op<'s, 'a> {
    base: usize,
    /// The element written where no block gives one.
    fill: &'s [u8],
    kind: OpKind<'s, 'a>,
}

enum OpKind<'s, 'a> {
    /// A run of chunks of a slot's box, next to each other along the last axis (usually
    /// one); their `in_selection` is relative to the slot, not the box.
    Chunks(&'s SlotRead<'s, 'a>, Vec<ChunkOp>),
    /// A box of the slot (start, extent) that no array box covers.
    Fill(Vec<u64>, Vec<u64>),
}

/// Reads into `out`, which holds `slots.len()` C-order buffers ("slots") of `slot_shape`
/// elements of `elem_bytes` bytes, one after the other: slot `i` as `slots[i]` says.
///
/// Every output element belongs to exactly one op: the slots are disjoint ranges of `out`;
/// inside a slot the plan partitions the box and [`outside`] partitions the rest. That is
/// what makes the writes through [`SharedOut`] sound.
///
/// # Panics
/// If `out` has the wrong length, or a box does not fit its slot or has the wrong number of
/// dimensions or element size (caller bugs).
pub(crate) fn read_slots(
    slots: &[Slot<'_, '_>],
    slot_shape: &[u64],
    elem_bytes: usize,
    out: &mut [u8],
    verify: bool,
) -> Result<()> {
    let ndim = slot_shape.len();
    // An empty slot holds nothing, however large its other axes (whose product may overflow).
    if slot_shape.contains(&0) {
        assert!(out.is_empty(), "the output holds every slot");
        return Ok(());
    }
    let slot_bytes = slot_shape.iter().map(|&n| to_usize(n)).product::<usize>() * elem_bytes;
    assert_eq!(Some(out.len()), slot_bytes.checked_mul(slots.len()), "the output holds every slot");
    let fills: Vec<Cow<'_, [u8]>> = slots
        .iter()
        .map(|slot| match slot {
            Slot::Fill(fill) => Cow::Borrowed(*fill),
            Slot::Read(read) => Cow::Owned(read.ctx.meta.fill_bytes()),
        })
        .collect();
    let out = SharedOut::new(out);
    let read_op = |op: &Op<'_, '_>| match &op.kind {
        OpKind::Chunks(read, run) => with_worker(|worker| read_run(read, run, op, slot_shape, &out, worker, verify)),
        OpKind::Fill(start, region) => {
            let dst = Place { shape: slot_shape, start };
            for_each_row(dst, dst, region, elem_bytes, |_, d, n| {
                // SAFETY: this box of this slot belongs to this op alone (see above).
                fill_with(unsafe { out.slice_mut(op.base + d, n) }, op.fill);
            });
            Ok(())
        }
    };
    let run_ops = |ops: &[Op<'_, '_>]| {
        if worth_parallel(ops.len(), ops.iter().map(Op::work_bytes).sum()) {
            run(|| ops.par_iter().try_for_each(read_op))
        } else {
            ops.iter().try_for_each(read_op)
        }
    };
    // Run whenever a batch of chunks is planned, so that a request of millions of tiny
    // chunks holds a bounded plan (`plan_batches`).
    let (mut ops, mut planned) = (Vec::new(), 0);
    for (index, (slot, fill)) in slots.iter().zip(&fills).enumerate() {
        let (base, fill) = (index * slot_bytes, &fill[..]);
        assert_eq!(fill.len(), elem_bytes, "a slot's fill value is one element");
        let read = match slot {
            Slot::Fill(_) => {
                ops.push(Op { base, fill, kind: OpKind::Fill(vec![0; ndim], slot_shape.to_vec()) });
                continue;
            }
            Slot::Read(read) => read,
        };
        assert!(
            [read.start.len(), read.shape.len(), read.at.len(), read.ctx.meta.shape.len()].iter().all(|&n| n == ndim)
                && (0..ndim).all(|d| read.at[d] + read.shape[d] <= slot_shape[d]),
            "box {:?} at {:?} must fit a slot of {slot_shape:?}",
            read.shape,
            read.at
        );
        for (chunks, batch) in chunk_ops(read, base, fill) {
            planned += chunks;
            ops.extend(batch);
            if planned >= PLAN_BATCH {
                run_ops(&ops)?;
                (ops, planned) = (Vec::new(), 0);
            }
        }
        let around = outside(slot_shape, read.at, read.shape);
        ops.extend(around.into_iter().map(|(start, region)| Op { base, fill, kind: OpKind::Fill(start, region) }));
    }
    run_ops(&ops)
}

/// The ops reading `read`'s box into its slot (at byte `base` of the output), a batch of
/// its chunks at a time (`plan_batches`): each batch's number of chunks and its runs.
fn chunk_ops<'s, 'a>(
    read: &'s SlotRead<'s, 'a>,
    base: usize,
    fill: &'s [u8],
) -> impl Iterator<Item = (usize, Vec<Op<'s, 'a>>)> + 's {
    let meta = read.ctx.meta;
    plan_batches(&meta.chunk_shape, read.start, read.shape).map(move |mut batch| {
        for op in &mut batch {
            op.in_selection.iter_mut().zip(read.at).for_each(|(i, a)| *i += a);
        }
        // Chunks read straight from the map need no buffer, so a run of them is as long as
        // the box's rows allow: an output row written whole is written much faster than in
        // parts (1.6x for 32 MiB chunks, rows of two).
        let from_map = batch.iter().all(|op| (read.lookup)(&op.coord).is_some_and(|b| b.is_mapped_raw()));
        let run_bytes = if from_map { u64::MAX } else { READ_RUN_BYTES };
        let (chunks, max_run) = (batch.len(), max_run_len(meta.chunk_bytes(), run_bytes, batch.len(), threads()));
        let ops = runs(batch, max_run).into_iter().map(|run| Op { base, fill, kind: OpKind::Chunks(read, run) });
        (chunks, ops.collect())
    })
}

impl Op<'_, '_> {
    /// Bytes this op decodes, copies or fills, about: its chunks whole (a block decodes
    /// whole) or, for one whose raw bytes the chunk cache holds, its part; or its box of
    /// fill. A loop of small reads from cached chunks stays on the caller's thread.
    fn work_bytes(&self) -> u64 {
        let box_bytes = |region: &[u64]| region.iter().product::<u64>() * self.fill.len() as u64;
        match &self.kind {
            OpKind::Chunks(read, run) => {
                let chunk_bytes = read.ctx.meta.chunk_bytes();
                let in_cache = |op: &ChunkOp| {
                    let cache = read.ctx.cache.filter(|_| !op.covers_chunk(&read.ctx.meta.chunk_shape));
                    cache.is_some_and(|cache| {
                        (read.lookup)(&op.coord).and_then(BlockKey::of).is_some_and(|key| cache.contains(&key))
                    })
                };
                run.iter().map(|op| if in_cache(op) { box_bytes(&op.region) } else { chunk_bytes }).sum()
            }
            OpKind::Fill(_, region) => box_bytes(region),
        }
    }
}

/// Chunk bytes decoded together as one run along the last axis, at most.
const READ_RUN_BYTES: u64 = 8 << 20;

/// Reads a run of chunk ops of a slot's box into their place in the slot.
fn read_run(
    read: &SlotRead<'_, '_>,
    run: &[ChunkOp],
    op: &Op<'_, '_>,
    slot_shape: &[u64],
    out: &SharedOut<'_>,
    worker: &mut Worker,
    verify: bool,
) -> Result<()> {
    let meta = read.ctx.meta;
    let elem_bytes = meta.dtype.size_bytes();
    let chunk_shape = &meta.chunk_shape[..];
    let chunk_len = to_usize(meta.chunk_bytes());
    // A whole chunk landing on one contiguous range of the slot decodes in place.
    if let [chunk_op] = run
        && let Some(block) = (read.lookup)(&chunk_op.coord)
        && chunk_op.covers_chunk(chunk_shape)
        && is_contiguous(slot_shape, &chunk_op.region)
    {
        let offset = op.base + offset_bytes(slot_shape, &chunk_op.in_selection, elem_bytes);
        // SAFETY: each output element belongs to one op (see `read_slots`); this range is op's box.
        let target = unsafe { out.slice_mut(offset, chunk_len) };
        return decode_chunk(read.ctx, block, worker, target, verify);
    }
    let (mut sources, cached) = open_sources(read, run, run_workers(&mut worker.run, run.len()), verify)?;
    // Each output row from each chunk of the run in turn, so the output is written row
    // after row; each chunk's rows come in its own order. A chunk whose raw bytes are at
    // hand whole (cached, or unshuffled) is copied from them directly; a shuffled one
    // through its pieces. A block being verified is hashed as its rows are copied, where
    // they follow one another (`copy_row`).
    let src: Vec<Place<'_>> = run.iter().map(|op| op.in_chunk_of(chunk_shape)).collect();
    let dst: Vec<Place<'_>> = run.iter().map(|op| op.in_selection_of(slot_shape)).collect();
    let regions: Vec<&[u64]> = run.iter().map(|op| &op.region[..]).collect();
    // Rows that are whole rows of the slot follow one another, so their partial lines are
    // completed at once; parts of rows (the slot's row spans more chunks than a run holds,
    // or the box is narrower than the slot) leave theirs to another op.
    let row_len = |shape: &[u64]| shape.last().copied().unwrap_or(1);
    let whole_rows = run.iter().map(|op| row_len(&op.region)).sum::<u64>() == row_len(slot_shape);
    let streamer = out.streamer().whole_lines(!whole_rows);
    for_each_run_row(&src, &dst, &regions, elem_bytes, |j, s, d, n| {
        // SAFETY: each row of op's box in the output belongs to op alone.
        let target = unsafe { out.slice_mut(op.base + d, n) };
        match (&mut sources[j], &cached[j]) {
            (Some((RowSource::Whole(whole), _)), _) => whole.copy_row(&streamer, target, s),
            (Some((RowSource::Pieces(pieces), _)), _) => pieces.copy_row(&streamer, target, s),
            (None, Some(hit)) => streamer.copy(target, &hit[s..s + n]),
            // Never written.
            (None, None) => fill_with(target, op.fill),
        }
    });
    sources.into_iter().flatten().try_for_each(|(source, block)| source.finish(read.ctx, block))
}

/// A chunk's block opened to copy its rows out, or `None` for the fill value (never written,
/// a fill entry, or kept whole in the chunk cache).
type Source<'w> = Option<(RowSource<'w>, BlockRef<'w>)>;

/// Each chunk of `run`'s raw bytes: from the chunk cache (second list), or mapped or decoded
/// into a worker of its own (first list), or `None` in both for the fill value.
fn open_sources<'w, 'a: 'w>(
    read: &SlotRead<'_, 'a>,
    run: &[ChunkOp],
    workers: &'w mut [Worker],
    verify: bool,
) -> Result<(Vec<Source<'w>>, Vec<Option<CachedChunk>>)> {
    let meta = read.ctx.meta;
    let chunk_len = to_usize(meta.chunk_bytes());
    let mut sources = Vec::with_capacity(run.len());
    let mut cached = Vec::with_capacity(run.len());
    for (chunk_op, chunk_worker) in run.iter().zip(workers) {
        let block = (read.lookup)(&chunk_op.coord);
        if let Some(block) = block {
            check_raw_len(read.ctx, block, chunk_len)?;
        }
        let block = block.filter(|block| !block.entry().is_fill);
        let in_part = !chunk_op.covers_chunk(&meta.chunk_shape);
        let hit = match block {
            Some(block) if in_part => cached_chunk(read.ctx, block, chunk_worker, chunk_len, verify)?,
            _ => None,
        };
        sources.push(match block.filter(|_| hit.is_none()) {
            Some(block) => Some((RowSource::open(read.ctx, block, chunk_worker, chunk_len, verify)?, block)),
            None => None,
        });
        cached.push(hit);
    }
    Ok((sources, cached))
}

/// The raw bytes of a committed `block` read in part, from the context's chunk cache: kept
/// there, or decoded (and verified) into a buffer the cache gives (new, or one it pushed
/// out) and kept. `None` without a cache,
/// for a block not committed (its bytes may still change place) or stored as it is, for a
/// chunk too large for the cache, and for one not kept when read without verification
/// (only verified chunks are kept, so that a verifying read can take any).
fn cached_chunk(
    ctx: ArrayCtx<'_>,
    block: BlockRef<'_>,
    worker: &mut Worker,
    chunk_len: usize,
    verify: bool,
) -> Result<Option<CachedChunk>> {
    let (Some(cache), Some(key)) = (ctx.cache, BlockKey::of(block)) else { return Ok(None) };
    // Blocks stored as they are are copied from the map, as fast as from the cache.
    if block.is_mapped_raw() || !cache.admits(chunk_len) {
        return Ok(None);
    }
    // Its raw length was checked against the chunk's (`check_raw_len`) before it was kept.
    if let Some(raw) = cache.get(&key) {
        return Ok(Some(raw));
    }
    if !verify {
        return Ok(None);
    }
    // A successful decode writes every byte, so a reused buffer's old bytes never show.
    let mut raw = cache.buffer(chunk_len);
    decode_chunk(ctx, block, worker, &mut raw, true)?;
    let raw = Arc::new(raw);
    cache.insert(key, Arc::clone(&raw));
    Ok(Some(raw))
}

/// The part of a buffer of `shape` outside the box `at .. at + region`, as disjoint
/// non-empty boxes (start, extent). Box `d` holds the elements inside the box along every
/// dimension before `d` and before or after it along `d`, so an element outside falls in
/// the box of the first dimension where it is outside.
pub(crate) fn outside(shape: &[u64], at: &[u64], region: &[u64]) -> Vec<(Vec<u64>, Vec<u64>)> {
    let ndim = shape.len();
    let mut boxes = Vec::new();
    for d in 0..ndim {
        for (lo, hi) in [(0, at[d]), (at[d] + region[d], shape[d])] {
            let start: Vec<u64> = at[..d].iter().copied().chain([lo]).chain(vec![0; ndim - d - 1]).collect();
            let extent: Vec<u64> =
                region[..d].iter().copied().chain([hi - lo]).chain(shape[d + 1..].to_vec()).collect();
            if !extent.contains(&0) {
                boxes.push((start, extent));
            }
        }
    }
    boxes
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn box_and_outside_cover_every_element_once(
            dims in proptest::collection::vec((0u64..5, 0u64..5, 0u64..5), 0..4)
        ) {
            // Buffer extent shape[d] = at[d] + region[d] + tail[d].
            let at: Vec<u64> = dims.iter().map(|d| d.0).collect();
            let region: Vec<u64> = dims.iter().map(|d| d.1).collect();
            let shape: Vec<u64> = dims.iter().map(|d| d.0 + d.1 + d.2).collect();
            let mut boxes = outside(&shape, &at, &region);
            boxes.push((at.clone(), region.clone()));
            let total: u64 = shape.iter().product();
            for flat in 0..total {
                let mut idx = vec![0; shape.len()];
                let mut rem = flat;
                for d in (0..shape.len()).rev() {
                    idx[d] = rem % shape[d];
                    rem /= shape[d];
                }
                let holders = boxes
                    .iter()
                    .filter(|(s, e)| (0..shape.len()).all(|d| s[d] <= idx[d] && idx[d] < s[d] + e[d]))
                    .count();
                prop_assert_eq!(holders, 1, "element {:?}", idx);
            }
        }
    }
}
