//! Recompression: each block is decoded with the codec and filter that wrote it, checked
//! against its checksum, and encoded again with other settings. The raw bytes do not change,
//! so neither do the checksum and statistics the block's entry carries.

use super::block::{ArrayCtx, BlockRef, Worker, corrupt_chunk, decode_chunk};
use super::region::to_usize;
use super::write::{EncodedChunk, Sink, Stored, WriteSettings, encode_in_order, encoded_or_raw};
use crate::codec::{BlockEncoding, encode_block};
use crate::error::Result;
use crate::meta::MAX_CHUNK_BYTES;

/// Re-encodes `blocks` (blocks of one array) with `settings` on the pool, with a bounded
/// number in flight (`encode_in_order`); the re-encoded blocks go to `sink` in the order of
/// `blocks`. A fill entry stays a fill entry (it has no bytes to re-encode). A block
/// stored raw that comes out raw again (the new codec does not make it smaller either) is
/// left where it is: nothing goes to `sink` for it.
///
/// # Errors
/// [`Error::Corrupt`](crate::Error::Corrupt) or
/// [`Error::ChecksumMismatch`](crate::Error::ChecksumMismatch) for a block that does not
/// decode to the bytes it was written from; what `sink` returns. Blocks already given to
/// `sink` stay there.
pub(crate) fn recode_blocks(
    ctx: ArrayCtx<'_>,
    blocks: &[BlockRef<'_>],
    settings: WriteSettings,
    sink: &mut Sink<'_>,
) -> Result<()> {
    // The bytes in flight are counted by the largest raw chunk: string chunks have no fixed
    // size.
    let chunk_bytes = blocks.iter().map(|b| b.entry().raw_len_bytes).max().unwrap_or(0).max(ctx.meta.chunk_bytes());
    encode_in_order(blocks, chunk_bytes, |worker, block| recode(ctx, *block, settings, worker), sink)
}

/// Decodes one block (always verified) and encodes its raw bytes with `settings`; `None`
/// for a block stored raw that would be stored raw again.
fn recode(
    ctx: ArrayCtx<'_>,
    block: BlockRef<'_>,
    settings: WriteSettings,
    worker: &mut Worker,
) -> Result<Option<EncodedChunk<'static>>> {
    let entry = block.entry();
    // Carried over to the new entry, so checked first: a re-encode never seals damage.
    let stats = block.stats(ctx.meta)?;
    let mut encoding = settings.encoding();
    let mut stored = Stored::from(Vec::new());
    if !entry.is_fill {
        let len = raw_len(ctx, block)?;
        let mut raw = std::mem::take(&mut worker.chunk);
        raw.resize(len, 0);
        let mut encoded = worker.scratch.block_buffer();
        let recoded = decode_chunk(ctx, block, worker, &mut raw, true).and_then(|()| {
            encode_block(&raw, settings.codec, encoding.filter, settings.dict, &mut worker.scratch, &mut encoded)
        });
        let recoded = recoded.map(|codec_encoding| {
            // A raw block that comes out raw again is left in place: its bytes are not copied.
            let was_raw = entry.encoding == BlockEncoding::RAW;
            let raw_copy = || Stored::from(if was_raw { Vec::new() } else { raw.clone() });
            encoded_or_raw(settings.codec, codec_encoding, encoded, raw.len(), raw_copy, &mut worker.scratch)
        });
        worker.chunk = raw;
        (encoding, stored) = recoded?;
        if encoding == BlockEncoding::RAW && entry.encoding == BlockEncoding::RAW {
            return Ok(None);
        }
    }
    Ok(Some(EncodedChunk {
        coord: entry.coord.to_vec(),
        stored,
        raw_len_bytes: entry.raw_len_bytes,
        checksum: entry.checksum,
        encoding,
        is_fill: entry.is_fill,
        stats,
    }))
}

/// Bytes of the block's raw chunk: the array's chunk bytes for fixed-size dtypes (the decode
/// checks the entry agrees), else the entry's own length, bounded before it sizes a buffer.
fn raw_len(ctx: ArrayCtx<'_>, block: BlockRef<'_>) -> Result<usize> {
    if ctx.meta.dtype.size_bytes() > 0 {
        return Ok(to_usize(ctx.meta.chunk_bytes()));
    }
    let raw_len_bytes = block.entry().raw_len_bytes;
    if raw_len_bytes > MAX_CHUNK_BYTES {
        let detail = format!("block holds {raw_len_bytes} raw bytes, over the limit of {MAX_CHUNK_BYTES}");
        return Err(corrupt_chunk(ctx, block, &detail));
    }
    Ok(to_usize(raw_len_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{CodecId, Filter, Scratch, decode_block};
    use crate::fragment::{ChunkStats, EncodedBlock, FragmentReader, FragmentWriter, checksum};
    use crate::meta::{ArrayMeta, Attributes, Codec, DType, Scalar};

    #[test]
    fn recoded_blocks_decode_to_the_same_bytes_and_keep_checksum_and_stats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.frag");
        let meta = ArrayMeta {
            id: 4,
            dtype: DType::Float32,
            shape: vec![1024],
            chunk_shape: vec![256],
            dims: vec![String::new()],
            fill_value: Scalar::Int(0),
            codec: None,
            shuffle: None,
            attributes: Attributes::new(),
            stats: None,
            train_dictionary: false,
            zstd_dictionary: None,
        };
        // Compressible: runs of 32 equal values.
        let raw: Vec<u8> = (0..256).flat_map(|i| ((i / 32) as f32 * 1.5).to_le_bytes()).collect();
        let stats = ChunkStats { valid_count: 15, min_bits: 1, max_bits: 2, sum_bits: 3 };
        let mut writer = FragmentWriter::create(path.clone()).unwrap();
        let mut entries = Vec::new();
        let encodings = [(Codec::Zstd { level: 3 }, Filter::Shuffle(4)), (Codec::Lz4, Filter::ShuffleDelta(4))];
        for (c, (codec, filter)) in encodings.into_iter().chain([(Codec::None, Filter::Shuffle(4))]).enumerate() {
            let mut stored = Vec::new();
            let encoding = encode_block(&raw, codec, filter, None, &mut Scratch::default(), &mut stored).unwrap();
            entries.push(
                writer
                    .append_block(&EncodedBlock {
                        array_id: 4,
                        coord: &[c as u64],
                        stored: &[&stored],
                        raw_len_bytes: raw.len() as u64,
                        checksum: checksum(&raw),
                        encoding,
                        is_fill: false,
                        stats,
                    })
                    .unwrap(),
            );
        }
        let len = writer.finish(&entries).unwrap();
        let (reader, entries) = FragmentReader::open(&path, len).unwrap();
        let blocks: Vec<BlockRef<'_>> =
            entries.iter().map(|entry| BlockRef::Committed { reader: &reader, entry }).collect();
        let mut out = Vec::new();
        let settings = WriteSettings { codec: Codec::Lz4, filter: Filter::None, dict: None };
        recode_blocks(
            ArrayCtx { meta: &meta, label: "d/a", dict: None, cache: None },
            &blocks,
            settings,
            &mut |chunk| {
                let stored = chunk.stored.with_parts(|parts| parts.concat());
                out.push((chunk.coord.clone(), (chunk.checksum, chunk.stats, chunk.is_fill), chunk.encoding, stored));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(out.len(), 3);
        for (c, (coord, identity, encoding, stored)) in out.iter().enumerate() {
            assert_eq!(coord, &[c as u64]);
            assert_eq!(identity, &(checksum(&raw), stats, false));
            assert_eq!(encoding, &BlockEncoding { codec: CodecId::Lz4, filter: Filter::None });
            let mut back = vec![0; raw.len()];
            decode_block(stored, *encoding, None, &mut Scratch::default(), &mut back).unwrap();
            assert_eq!(back, raw);
        }
    }
}
