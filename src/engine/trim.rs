//! Shrinking an array: every chunk that reaches past the new shape is rewritten with the
//! fill value outside it (a chunk wholly outside becomes a fill entry), so growing the
//! array again later reads fill there, never the old values.

use std::borrow::Cow;

use super::block::{ArrayCtx, Lookup, Worker, decode_chunk, fill_with};
use super::region::{Place, copy_region, to_usize};
use super::write::{Sink, WriteSettings, encode_in_order, encode_raw};
use crate::error::Result;

/// Whether chunk `coord` of `chunk_shape` reaches past `new_shape` along an axis that
/// shrinks from `old_shape`: only there may it hold values outside the new shape (its
/// padding past the old shape holds the fill value already).
pub(crate) fn reaches_past(coord: &[u64], chunk_shape: &[u64], old_shape: &[u64], new_shape: &[u64]) -> bool {
    // A chunk ending past u64::MAX (an extent near it, or a coordinate read from disk)
    // reaches past any shape.
    let end = |d: usize| coord[d].checked_add(1).and_then(|n| n.checked_mul(chunk_shape[d]));
    (0..new_shape.len()).any(|d| new_shape[d] < old_shape[d] && end(d).is_none_or(|end| end > new_shape[d]))
}

/// The extent of the part of chunk `coord` that stays inside `new_shape` (from the chunk's
/// origin; a zero extent when none of it does).
pub(crate) fn keep_extent(coord: &[u64], chunk_shape: &[u64], new_shape: &[u64]) -> Vec<u64> {
    let keep = |d: usize| new_shape[d].saturating_sub(coord[d].saturating_mul(chunk_shape[d])).min(chunk_shape[d]);
    (0..chunk_shape.len()).map(keep).collect()
}

/// Rewrites the chunks at `coords` keeping only their elements inside `new_shape`.
pub(crate) fn trim_chunks(
    ctx: ArrayCtx<'_>,
    lookup: &Lookup<'_, '_>,
    coords: &[Box<[u64]>],
    new_shape: &[u64],
    settings: WriteSettings,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let meta = ctx.meta;
    let chunk_shape = &meta.chunk_shape[..];
    let chunk_len = to_usize(meta.chunk_bytes());
    let trim = |worker: &mut Worker, coord: &[u64]| {
        let keep = keep_extent(coord, chunk_shape, new_shape);
        let mut chunk = vec![0u8; chunk_len];
        fill_with(&mut chunk, &meta.fill_bytes());
        if !keep.contains(&0)
            && let Some(block) = lookup(coord)
        {
            let mut old = vec![0u8; chunk_len];
            decode_chunk(ctx, block, worker, &mut old, true)?;
            let origin = vec![0; chunk_shape.len()];
            let at = Place { shape: chunk_shape, start: &origin };
            copy_region(&old, at, &mut chunk, at, &keep, meta.dtype.size_bytes());
        }
        encode_raw(meta, coord, Cow::Owned(chunk), settings, &mut worker.scratch).map(|chunk| [chunk])
    };
    encode_in_order(coords, meta.chunk_bytes(), |worker, coord| trim(worker, coord), sink)
}
