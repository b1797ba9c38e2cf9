//! Block checksums: xxh3-64 over a chunk's raw (uncompressed, unfiltered) element bytes, so
//! a block keeps its checksum through any recompression.

/// The checksum of raw chunk bytes.
pub(crate) fn checksum(raw: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(raw)
}
