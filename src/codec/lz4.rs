//! LZ4 blocks: the raw LZ4 block format (no frame, no size prefix), as nvCOMP's batched LZ4
//! reads it. The raw length lives in the block's index entry.

use crate::error::{Error, Result};

/// Appends the raw LZ4 block of `input` to `out`.
pub(super) fn compress(input: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + lz4_flex::block::get_maximum_output_size(input.len()), 0);
    let written = lz4_flex::block::compress_into(input, &mut out[start..])
        .expect("output was sized with get_maximum_output_size");
    out.truncate(start + written);
}

/// Decodes a raw LZ4 block into `out`, which must be exactly its decoded size.
pub(super) fn decompress(stored: &[u8], out: &mut [u8]) -> Result<()> {
    let written = lz4_flex::block::decompress_into(stored, out)
        .map_err(|e| Error::Codec { codec: "lz4", detail: e.to_string() })?;
    super::check_len(super::CodecId::Lz4, written, out.len())
}
