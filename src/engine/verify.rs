//! Checking blocks: decode each one as a read would and compare its checksum, check its
//! entry's statistics as `stats` would, in parallel, collecting every failure instead of
//! stopping at the first.

use rayon::prelude::*;

use super::block::{ArrayCtx, BlockRef, Worker, check_raw_len, corrupt_chunk, decode_chunk, fill_with, with_worker};
use super::pool;
use super::region::to_usize;
use super::strings::decode_strings;
use super::trim::keep_extent;
use crate::error::{Error, Result};
use crate::fragment::{ChunkStats, scan};
use crate::io::checksum;
use crate::meta::{ArrayMeta, DType};

/// Decodes every block of one array and returns, in order, each block's error if any.
/// `fill_checksum` is what a fill entry's checksum must be ([`fill_chunk_checksum`]; `None`:
/// not checked).
pub(crate) fn check_blocks(
    ctx: ArrayCtx<'_>,
    blocks: &[BlockRef<'_>],
    fill_checksum: Option<u64>,
) -> Vec<Option<Error>> {
    pool::run(|| {
        blocks.par_iter().map(|block| with_worker(|worker| check(ctx, *block, fill_checksum, worker).err())).collect()
    })
}

/// The checksum of a chunk of `meta` holding only the fill value, as its writer gives a
/// fill entry: the fill value's bytes repeated, or for strings the offsets of empty ones
/// (all 0). `None` for a NaN fill: builds before NaN fills were made the standard NaN
/// wrote theirs with their own bits (R's NA, the negative NaN of 0.0 / 0.0), which the
/// metadata does not keep.
pub(crate) fn fill_chunk_checksum(meta: &ArrayMeta) -> Option<u64> {
    if is_nan(meta.dtype, &meta.fill_bytes()) {
        return None;
    }
    let raw_len = meta.raw_chunk_bytes().expect("a checked schema's chunk fits u64");
    let mut raw = vec![0u8; to_usize(raw_len)];
    if meta.dtype != DType::String {
        fill_with(&mut raw, &meta.fill_bytes());
    }
    Some(checksum(&raw))
}

/// Whether `element` (little-endian bytes of one element of `dtype`) is a float NaN.
fn is_nan(dtype: DType, element: &[u8]) -> bool {
    match (dtype, element.len()) {
        (DType::Float32, 4) => f32::from_le_bytes(element.try_into().expect("4 bytes")).is_nan(),
        (DType::Float64, 8) => f64::from_le_bytes(element.try_into().expect("8 bytes")).is_nan(),
        _ => false,
    }
}

fn check(ctx: ArrayCtx<'_>, block: BlockRef<'_>, fill_checksum: Option<u64>, worker: &mut Worker) -> Result<()> {
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
    let found = check_bytes(ctx, block, fill_checksum, worker)?;
    let stats = block.stats(ctx.meta)?;
    let Some((found, legacy)) = found else { return Ok(()) };
    let checked = stats.check_against(&found, ctx.meta.dtype);
    if checked.is_err() && legacy.is_some_and(|(legacy, as_dtype)| stats.check_against(&legacy, as_dtype).is_ok()) {
        return Ok(());
    }
    checked.map_err(|detail| corrupt_chunk(ctx, block, &detail))
}

/// The statistics of a decoded chunk, and those an earlier build gave it where they differ
/// (with the dtype it scanned the chunk as: [`legacy_scan_dtype`]).
type Found = (ChunkStats, Option<(ChunkStats, DType)>);

/// The dtype whose scan gave a chunk's index statistics in builds before they took values
/// as reads do: `NaT` as a timestamp value (int64), bool bytes other than 0 and 1 as
/// themselves (uint8). Blocks written so keep those statistics until their chunk is
/// written again, and stay sound.
fn legacy_scan_dtype(dtype: DType) -> Option<DType> {
    match dtype {
        DType::Timestamp => Some(DType::Int64),
        DType::Bool => Some(DType::UInt8),
        _ => None,
    }
}

/// Decodes `block` and checks its checksum; returns the statistics of the numeric chunk it
/// decodes to (`None` for a fill entry or a string chunk, whose entry has none to compare).
/// A numeric chunk reaching past the array's shape must hold the fill value there.
fn check_bytes(
    ctx: ArrayCtx<'_>,
    block: BlockRef<'_>,
    fill_checksum: Option<u64>,
    worker: &mut Worker,
) -> Result<Option<Found>> {
    // A fill entry has no bytes: its length and checksum are checked (decoding it would
    // only build a chunk of fill, for strings a `String` per element). A string chunk of
    // empty strings is its offsets alone.
    let entry = block.entry();
    if entry.is_fill {
        let raw_len = ctx.meta.raw_chunk_bytes().expect("a checked schema's chunk fits u64");
        check_raw_len(ctx, block, to_usize(raw_len))?;
        if let Some(expected) = fill_checksum
            && entry.checksum != expected
        {
            let detail = format!(
                "a fill entry whose checksum {:#018x} is not that of a chunk of the fill value ({expected:#018x})",
                entry.checksum
            );
            return Err(corrupt_chunk(ctx, block, &detail));
        }
        return Ok(None);
    }
    if ctx.meta.dtype == DType::String {
        return decode_strings(ctx, Some(block), worker, true).map(|_| None);
    }
    let mut chunk = std::mem::take(&mut worker.chunk);
    chunk.resize(to_usize(ctx.meta.chunk_bytes()), 0);
    let (dtype, fill) = (ctx.meta.dtype, ctx.meta.fill_bytes());
    let checked = decode_chunk(ctx, block, worker, &mut chunk, true).and_then(|()| {
        let meta = ctx.meta;
        let keep = keep_extent(&entry.coord, &meta.chunk_shape, &meta.shape);
        // A NaN fill's padding may hold a NaN of other bits (see `fill_chunk_checksum`).
        let nan_fill = is_nan(dtype, &fill);
        let is_fill = |element: &[u8]| element == fill || (nan_fill && is_nan(dtype, element));
        if !padding_is_fill(&chunk, &meta.chunk_shape, &keep, fill.len(), is_fill) {
            let detail = "values past the array's shape (its padding must hold the fill value, which a read \
                          of the array grown again would show)";
            return Err(corrupt_chunk(ctx, block, detail));
        }
        let found = scan(&chunk, dtype, &fill).stats;
        // Scanned again only where the entry differs (a chunk holding NaT, or bool bytes
        // other than 0 and 1).
        let differs = block.entry().stats != found;
        let legacy = legacy_scan_dtype(dtype)
            .filter(|_| differs)
            .map(|as_dtype| (scan(&chunk, as_dtype, &fill).stats, as_dtype));
        Ok(Some((found, legacy)))
    });
    worker.chunk = chunk;
    checked
}

/// Whether every element (of `elem_bytes`) of `chunk` (C order, of `chunk_shape`) outside
/// the box `keep` from its origin is the fill value, as `is_fill` tells.
fn padding_is_fill(
    chunk: &[u8],
    chunk_shape: &[u64],
    keep: &[u64],
    elem_bytes: usize,
    is_fill: impl Fn(&[u8]) -> bool,
) -> bool {
    let (Some((&row_len, outer)), Some(&kept_in_row)) = (chunk_shape.split_last(), keep.last()) else {
        return true; // 0-d: one element, no padding
    };
    if keep == chunk_shape {
        return true;
    }
    let (row_bytes, kept_bytes) = (to_usize(row_len) * elem_bytes, to_usize(kept_in_row) * elem_bytes);
    let all_fill = |bytes: &[u8]| bytes.chunks_exact(elem_bytes).all(&is_fill);
    // The row's index along the outer axes, counted up as the rows go by.
    let mut at = vec![0u64; outer.len()];
    for row in chunk.chunks_exact(row_bytes) {
        let inside = at.iter().zip(keep).all(|(i, k)| i < k);
        if !all_fill(if inside { &row[kept_bytes..] } else { row }) {
            return false;
        }
        for (i, &len) in at.iter_mut().zip(outer).rev() {
            *i += 1;
            if *i < len {
                break;
            }
            *i = 0;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_fill_looks_only_past_the_kept_box() {
        // A 3x4 chunk of u16 whose kept box is 2x3: the last column and the last row are
        // padding.
        let fill = 7u16.to_le_bytes();
        let is_fill = |element: &[u8]| element == fill;
        let mut chunk: Vec<u8> =
            (0..12).flat_map(|i: u16| if i % 4 == 3 || i >= 8 { 7 } else { i }.to_le_bytes()).collect();
        assert!(padding_is_fill(&chunk, &[3, 4], &[2, 3], 2, is_fill));
        assert!(padding_is_fill(&chunk, &[3, 4], &[3, 4], 2, is_fill), "no padding");
        chunk[2 * 9] = 9; // the last row, inside the kept columns
        assert!(!padding_is_fill(&chunk, &[3, 4], &[2, 3], 2, is_fill));
        chunk[2 * 9] = 7;
        chunk[2 * 7] = 9; // the last column of a kept row
        assert!(!padding_is_fill(&chunk, &[3, 4], &[2, 3], 2, is_fill));
        assert!(padding_is_fill(&[1, 2], &[], &[], 2, |_| false), "0-d: no padding to look at");
    }

    #[test]
    fn any_nan_is_a_nan_fill_and_a_nan_fill_chunk_has_no_checksum_to_check() {
        assert!(is_nan(DType::Float64, &(-f64::NAN).to_le_bytes()) && is_nan(DType::Float32, &f32::NAN.to_le_bytes()));
        assert!(!is_nan(DType::Int64, &f64::NAN.to_le_bytes()), "an integer is never NaN");
        assert!(!is_nan(DType::Float64, &1.5f64.to_le_bytes()));
        let spec = |fill: f64| ArrayMeta {
            id: 0,
            dtype: DType::Float64,
            shape: vec![4],
            chunk_shape: vec![2],
            dims: vec![String::new()],
            fill_value: fill.into(),
            codec: None,
            shuffle: None,
            attributes: crate::meta::Attributes::new(),
            stats: None,
            train_dictionary: false,
            zstd_dictionary: None,
        };
        assert_eq!(fill_chunk_checksum(&spec(f64::NAN)), None);
        assert_eq!(
            fill_chunk_checksum(&spec(0.5)),
            Some(checksum(&[0.5f64.to_le_bytes(), 0.5f64.to_le_bytes()].concat()))
        );
    }
}
