//! String arrays. A chunk of `n` strings is stored raw as `n + 1` little-endian u32 offsets
//! into the UTF-8 text that follows them (the first offset 0, the last the text's length),
//! then encoded with the block's codec like any chunk (never shuffled). Strings are moved
//! as owned values, so these paths plan like the numeric ones but copy element by element.

use rayon::prelude::*;

use super::block::{ArrayCtx, BlockRef, Lookup, Worker, corrupt_chunk, decode_stored, with_worker};
use super::plan::{ChunkOp, plan_batches};
use super::pool;
use super::region::{Place, for_each_row, to_usize};
use super::trim::keep_extent;
use super::write::{EncodedChunk, Sink, Stored, WriteSettings, encode_in_order, encoded_or_raw};
use crate::codec::{BlockEncoding, CodecId, Filter, encode_block};
use crate::error::{Error, Result};
use crate::fragment::{ChunkStats, checksum};
use crate::meta::MAX_CHUNK_BYTES;

/// Bytes of one offset in a string chunk's raw form.
const OFFSET_BYTES: usize = 4;
/// Chunks decoded per batch of a read, at most.
const READ_BATCH: usize = 256;
/// Bytes a batch of a read decodes into, about, past its first chunk: each written chunk
/// counts its raw bytes and a `String` per element; never-written chunks count nothing.
const READ_BATCH_BYTES: u64 = 64 << 20;

/// Reads the box `start .. start + shape` into `out` (C order, `shape` elements).
pub(crate) fn read_strings(
    ctx: ArrayCtx<'_>,
    lookup: &Lookup<'_, '_>,
    start: &[u64],
    shape: &[u64],
    out: &mut [String],
    verify: bool,
) -> Result<()> {
    // The block of a chunk that has strings; `None` for the fill (empty strings).
    let written = |op: &ChunkOp| lookup(&op.coord).filter(|block| !block.entry().is_fill);
    let strings_bytes = ctx.meta.chunk_elems().saturating_mul(size_of::<String>() as u64);
    let decoded_bytes = |op: &ChunkOp| written(op).map_or(0, |b| b.entry().raw_len_bytes.saturating_add(strings_bytes));
    for ops in plan_batches(&ctx.meta.chunk_shape, start, shape) {
        read_batches(ctx, &ops, shape, out, verify, &written, &decoded_bytes)?;
    }
    Ok(())
}

/// Decodes the string chunks of `ops` (a batch of a read's plan) a batch at a time (see
/// [`batch_len`]) and copies their strings into `out`.
fn read_batches<'b>(
    ctx: ArrayCtx<'_>,
    ops: &[ChunkOp],
    shape: &[u64],
    out: &mut [String],
    verify: bool,
    written: &(dyn Fn(&ChunkOp) -> Option<BlockRef<'b>> + Sync),
    decoded_bytes: &dyn Fn(&ChunkOp) -> u64,
) -> Result<()> {
    let mut rest = ops;
    while !rest.is_empty() {
        let batch;
        (batch, rest) = rest.split_at(batch_len(rest, decoded_bytes));
        let decoded: Vec<Option<Vec<String>>> = pool::run(|| {
            batch
                .par_iter()
                .map(|op| match written(op) {
                    Some(block) => with_worker(|worker| decode_strings(ctx, Some(block), worker, verify)).map(Some),
                    None => Ok(None),
                })
                .collect::<Result<_>>()
        })?;
        for (op, chunk) in batch.iter().zip(decoded) {
            let (src, dst) = (op.in_chunk_of(&ctx.meta.chunk_shape), op.in_selection_of(shape));
            for_each_row(src, dst, &op.region, 1, |s, d, n| match &chunk {
                Some(chunk) => out[d..d + n].clone_from_slice(&chunk[s..s + n]),
                None => out[d..d + n].iter_mut().for_each(String::clear),
            });
        }
    }
    Ok(())
}

/// How many of `ops` (at least one) the next batch of a read decodes: up to `READ_BATCH`,
/// while the bytes they decode into (`decoded_bytes`) stay within `READ_BATCH_BYTES` past
/// the first.
fn batch_len(ops: &[ChunkOp], decoded_bytes: impl Fn(&ChunkOp) -> u64) -> usize {
    let mut bytes = 0u64;
    let within = |op: &&ChunkOp| {
        let fits = bytes <= READ_BATCH_BYTES;
        bytes = bytes.saturating_add(decoded_bytes(op));
        fits
    };
    ops.iter().take(READ_BATCH).take_while(within).count()
}

/// Writes `input` (C order, `shape` elements) at `start`; encoded chunks go to `sink`.
pub(crate) fn write_strings<S: AsRef<str> + Sync>(
    ctx: ArrayCtx<'_>,
    lookup: &Lookup<'_, '_>,
    start: &[u64],
    shape: &[u64],
    input: &[S],
    settings: WriteSettings,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let chunk_shape = &ctx.meta.chunk_shape[..];
    let encode = |worker: &mut Worker, op: &ChunkOp| {
        let mut chunk = if op.covers_chunk(chunk_shape) {
            vec![String::new(); to_usize(ctx.meta.chunk_elems())]
        } else {
            decode_strings(ctx, lookup(&op.coord), worker, true)?
        };
        let (src, dst) = (op.in_selection_of(shape), op.in_chunk_of(chunk_shape));
        for_each_row(src, dst, &op.region, 1, |s, d, n| {
            for (slot, value) in chunk[d..d + n].iter_mut().zip(&input[s..s + n]) {
                value.as_ref().clone_into(slot);
            }
        });
        encode_strings(&op.coord, &chunk, settings, worker).map(|chunk| [chunk])
    };
    // A batch of chunks planned at a time (`plan_batches`), each encoded in order.
    for ops in plan_batches(chunk_shape, start, shape) {
        encode_in_order(&ops, estimated_chunk_bytes(ctx), encode, sink)?;
    }
    Ok(())
}

/// Rewrites string chunks at `coords` keeping only their elements inside `new_shape`.
pub(crate) fn trim_string_chunks(
    ctx: ArrayCtx<'_>,
    lookup: &Lookup<'_, '_>,
    coords: &[Box<[u64]>],
    new_shape: &[u64],
    settings: WriteSettings,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let chunk_shape = &ctx.meta.chunk_shape[..];
    let trim = |worker: &mut Worker, coord: &[u64]| {
        let keep = keep_extent(coord, chunk_shape, new_shape);
        let mut chunk = vec![String::new(); to_usize(ctx.meta.chunk_elems())];
        // A chunk wholly outside the new shape keeps nothing: not decoded (nor refused
        // when damaged), as numeric chunks are not.
        if !keep.contains(&0) {
            let old = decode_strings(ctx, lookup(coord), worker, true)?;
            let origin = vec![0; chunk_shape.len()];
            let at = Place { shape: chunk_shape, start: &origin };
            for_each_row(at, at, &keep, 1, |s, d, n| chunk[d..d + n].clone_from_slice(&old[s..s + n]));
        }
        encode_strings(coord, &chunk, settings, worker).map(|chunk| [chunk])
    };
    encode_in_order(coords, estimated_chunk_bytes(ctx), |worker, coord| trim(worker, coord), sink)
}

/// For the bound on chunks in flight only (`encode_in_order`): string chunks are counted at
/// 16 bytes per element.
fn estimated_chunk_bytes(ctx: ArrayCtx<'_>) -> u64 {
    ctx.meta.chunk_elems().saturating_mul(16)
}

/// The strings of a chunk's block, or empty strings (the fill) for none or a fill entry.
pub(crate) fn decode_strings(
    ctx: ArrayCtx<'_>,
    block: Option<BlockRef<'_>>,
    worker: &mut Worker,
    verify: bool,
) -> Result<Vec<String>> {
    let elems = to_usize(ctx.meta.chunk_elems());
    let Some(block) = block.filter(|b| !b.entry().is_fill) else { return Ok(vec![String::new(); elems]) };
    let raw_len = block.entry().raw_len_bytes;
    let min_len = (elems as u64 + 1) * OFFSET_BYTES as u64;
    if raw_len < min_len || raw_len > MAX_CHUNK_BYTES {
        return Err(corrupt_chunk(ctx, block, &format!("string block of {raw_len} raw bytes for {elems} strings")));
    }
    let mut raw = vec![0u8; to_usize(raw_len)];
    decode_stored(ctx, block, worker, &mut raw, verify)?;
    parse(&raw, elems).map_err(|detail| corrupt_chunk(ctx, block, &detail))
}

/// Splits a string chunk's raw form into its strings, reading the offset table in place.
fn parse(raw: &[u8], elems: usize) -> Result<Vec<String>, String> {
    let (table, text) = raw.split_at((elems + 1) * OFFSET_BYTES);
    let offset = |i: usize| {
        let bytes = &table[i * OFFSET_BYTES..(i + 1) * OFFSET_BYTES];
        u32::from_le_bytes(bytes.try_into().expect("4 bytes")) as usize
    };
    let bad_offsets = || "string offsets are not increasing from 0 to the text length".to_string();
    if offset(0) != 0 || offset(elems) != text.len() {
        return Err(bad_offsets());
    }
    (0..elems)
        .map(|i| {
            let (start, end) = (offset(i), offset(i + 1));
            let bytes = text.get(start..end).ok_or_else(bad_offsets)?;
            std::str::from_utf8(bytes).map(str::to_owned).map_err(|e| format!("string is not UTF-8: {e}"))
        })
        .collect()
}

/// Serialises and encodes one chunk of strings; empty strings are null.
fn encode_strings(
    coord: &[u64],
    chunk: &[String],
    settings: WriteSettings,
    worker: &mut Worker,
) -> Result<EncodedChunk<'static>> {
    let text_len: usize = chunk.iter().map(String::len).sum();
    let raw_len = (chunk.len() + 1) * OFFSET_BYTES + text_len;
    if raw_len as u64 > MAX_CHUNK_BYTES {
        return Err(Error::invalid(format!(
            "chunk {coord:?} holds {raw_len} bytes of strings, over {MAX_CHUNK_BYTES}"
        )));
    }
    let mut raw = Vec::with_capacity(raw_len);
    let mut offset = 0u32;
    raw.extend_from_slice(&offset.to_le_bytes());
    for s in chunk {
        offset += u32::try_from(s.len()).expect("bounded by MAX_CHUNK_BYTES");
        raw.extend_from_slice(&offset.to_le_bytes());
    }
    for s in chunk {
        raw.extend_from_slice(s.as_bytes());
    }
    let valid_count = chunk.iter().filter(|s| !s.is_empty()).count() as u64;
    let (raw_len_bytes, checksum) = (raw.len() as u64, checksum(&raw));
    let mut stored = Stored::from(Vec::new());
    let mut encoding = BlockEncoding { codec: CodecId::of(settings.codec), filter: Filter::None };
    if valid_count > 0 {
        let scratch = &mut worker.scratch;
        let mut encoded = scratch.block_buffer();
        let codec_encoding = encode_block(&raw, settings.codec, Filter::None, settings.dict, scratch, &mut encoded)?;
        (encoding, stored) =
            encoded_or_raw(settings.codec, codec_encoding, encoded, raw_len, || Stored::from(raw), scratch);
    }
    Ok(EncodedChunk {
        coord: coord.to_vec(),
        stored,
        raw_len_bytes,
        checksum,
        encoding,
        is_fill: valid_count == 0,
        stats: ChunkStats { valid_count, ..ChunkStats::default() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_refuses_bad_offsets_and_bad_utf8() {
        let good = [0u32, 1, 3].iter().flat_map(|o| o.to_le_bytes()).chain(*b"abc").collect::<Vec<u8>>();
        assert_eq!(parse(&good, 2).unwrap(), ["a", "bc"]);
        let backwards = [0u32, 2, 1].iter().flat_map(|o| o.to_le_bytes()).chain(*b"x").collect::<Vec<u8>>();
        assert!(parse(&backwards, 2).is_err());
        // An offset past the text before a later one comes back down: an error, not a panic.
        let past_the_end = [0u32, 100, 5].iter().flat_map(|o| o.to_le_bytes()).chain(*b"hello").collect::<Vec<u8>>();
        assert!(parse(&past_the_end, 2).is_err());
        let bad_utf8 = [0u32, 1].iter().flat_map(|o| o.to_le_bytes()).chain([0xff]).collect::<Vec<u8>>();
        assert!(parse(&bad_utf8, 1).is_err());
    }
}
