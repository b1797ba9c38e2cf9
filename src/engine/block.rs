//! Where a chunk's block lives, and decoding one block into a chunk-sized buffer.

use std::path::Path;

use crate::codec::{BlockEncoding, CodecId, Scratch, ZstdDict, decode_block};
use crate::error::{Error, Result};
use crate::fragment::{BlockEntry, FragmentReader, PendingReader, checksum};
use crate::meta::ArrayMeta;

/// What the engine needs to know of the array a request is about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArrayCtx<'a> {
    pub meta: &'a ArrayMeta,
    /// `dataset/array`, for error messages.
    pub label: &'a str,
    /// The array's zstd dictionary, if it has one (`ArrayMeta::zstd_dictionary`).
    pub dict: Option<&'a ZstdDict>,
}

/// A chunk's current block: in a committed fragment (mapped) or in the fragment being
/// written by this handle (read back with `pread`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum BlockRef<'a> {
    Committed { reader: &'a FragmentReader, entry: &'a BlockEntry },
    Pending { reader: &'a PendingReader, entry: &'a BlockEntry },
}

impl<'a> BlockRef<'a> {
    pub(crate) fn entry(&self) -> &'a BlockEntry {
        match self {
            Self::Committed { entry, .. } | Self::Pending { entry, .. } => entry,
        }
    }

    /// Whether the block is in the fragment this handle is still writing.
    pub(crate) fn is_pending(&self) -> bool {
        matches!(self, Self::Pending { .. })
    }

    pub(crate) fn path(&self) -> &'a Path {
        match self {
            Self::Committed { reader, .. } => reader.path(),
            Self::Pending { reader, .. } => reader.path(),
        }
    }
}

/// Per-worker buffers, reused across the chunks one worker handles.
#[derive(Debug, Default)]
pub(crate) struct Worker {
    pub scratch: Scratch,
    /// A whole decoded chunk, when it cannot be decoded in place.
    pub chunk: Vec<u8>,
    /// Stored bytes read back from a pending fragment.
    pub stored: Vec<u8>,
}

/// Decodes `block` into `out` (exactly one chunk of raw bytes) and, when `verify` is set,
/// checks it against the block's checksum.
///
/// # Errors
/// [`Error::Corrupt`] if the block's raw length or codec stream is wrong,
/// [`Error::ChecksumMismatch`] if it decodes to other bytes than were written.
pub(crate) fn decode_chunk(
    ctx: ArrayCtx<'_>,
    block: BlockRef<'_>,
    worker: &mut Worker,
    out: &mut [u8],
    verify: bool,
) -> Result<()> {
    let entry = block.entry();
    if entry.raw_len_bytes != out.len() as u64 {
        let detail = format!("block holds {} raw bytes, the chunk has {}", entry.raw_len_bytes, out.len());
        return Err(corrupt_chunk(ctx, block, &detail));
    }
    if entry.is_fill {
        fill_with(out, &ctx.meta.fill_bytes());
        return Ok(());
    }
    decode_stored(ctx, block, worker, out, verify)
}

/// `Error::Corrupt` naming the block's file, array and chunk.
pub(crate) fn corrupt_chunk(ctx: ArrayCtx<'_>, block: BlockRef<'_>, detail: &str) -> Error {
    Error::corrupt(block.path(), format!("array {} chunk {:?}: {detail}", ctx.label, block.entry().coord))
}

/// Decodes the stored bytes of a (non-fill) block into `out`, sized to its raw length, and
/// verifies the checksum when asked.
pub(crate) fn decode_stored(
    ctx: ArrayCtx<'_>,
    block: BlockRef<'_>,
    worker: &mut Worker,
    out: &mut [u8],
    verify: bool,
) -> Result<()> {
    let entry = block.entry();
    let stored = match block {
        BlockRef::Committed { reader, entry } => reader.block_bytes(entry),
        BlockRef::Pending { reader, entry } => {
            reader.read_block(entry, &mut worker.stored)?;
            &worker.stored
        }
    };
    decode_block(stored, entry.encoding, ctx.dict, &mut worker.scratch, out).map_err(|e| match e {
        Error::Codec { codec, detail } => {
            corrupt_chunk(ctx, block, &format!("{codec} block does not decode: {detail}"))
        }
        other => other,
    })?;
    if verify {
        check_checksum(ctx, block, out)?;
    }
    Ok(())
}

/// Compares the checksum of a block's decoded bytes with the one recorded for it.
fn check_checksum(ctx: ArrayCtx<'_>, block: BlockRef<'_>, raw: &[u8]) -> Result<()> {
    let (expected, found) = (block.entry().checksum, checksum(raw));
    if found == expected {
        return Ok(());
    }
    Err(Error::ChecksumMismatch {
        array: ctx.label.to_string(),
        chunk: block.entry().coord.to_vec(),
        path: block.path().to_path_buf(),
        expected,
        found,
    })
}

/// The raw bytes of a committed block stored without codec or filter, straight from the
/// map (checked when `verify`), so a read copies them once; `None` for any other block.
pub(crate) fn mapped_raw<'a>(ctx: ArrayCtx<'_>, block: BlockRef<'a>, verify: bool) -> Option<Result<&'a [u8]>> {
    let BlockRef::Committed { reader, entry } = block else { return None };
    let plain = BlockEncoding { codec: CodecId::None, shuffle_elem_bytes: None };
    if entry.is_fill || entry.encoding != plain || entry.raw_len_bytes != ctx.meta.chunk_bytes() {
        return None;
    }
    let raw = reader.block_bytes(entry);
    if raw.len() as u64 != entry.raw_len_bytes {
        return None; // a damaged entry: the ordinary decode reports it
    }
    Some(if verify { check_checksum(ctx, block, raw).map(|()| raw) } else { Ok(raw) })
}

/// Fills `out` with repeated copies of one element's bytes.
pub(crate) fn fill_with(out: &mut [u8], element: &[u8]) {
    if let Some(&first) = element.first()
        && element.iter().all(|&b| b == first)
    {
        out.fill(first);
    } else if element.is_empty() {
        out.fill(0);
    } else {
        for dst in out.chunks_exact_mut(element.len()) {
            dst.copy_from_slice(element);
        }
    }
}
