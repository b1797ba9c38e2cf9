//! Byte offsets of a fragment file. The picture and the meaning of every field live in
//! docs/FORMAT.md, "Fragment file"; this file only names the offsets. All integers are
//! little-endian.

/// Magic at the start of a fragment.
pub(crate) const HEADER_MAGIC: &[u8; 8] = b"ATLFRAG\0";
/// Fragment layout version this build writes and reads.
pub(crate) const FRAGMENT_VERSION: u32 = 1;

pub(crate) const HEADER_MAGIC_OFFSET: usize = 0;
pub(crate) const HEADER_VERSION_OFFSET: usize = HEADER_MAGIC_OFFSET + HEADER_MAGIC.len();
pub(crate) const HEADER_RESERVED_OFFSET: usize = HEADER_VERSION_OFFSET + 4;
/// Bytes of the header; the first block starts here.
pub(crate) const HEADER_LEN: usize = HEADER_RESERVED_OFFSET + 4;

/// Every block starts at a multiple of this (GPU decoders want 8-byte-aligned zstd input).
pub(crate) const BLOCK_ALIGN: u64 = 8;

pub(crate) const ENTRY_ARRAY_ID_OFFSET: usize = 0;
pub(crate) const ENTRY_BLOCK_OFFSET_OFFSET: usize = ENTRY_ARRAY_ID_OFFSET + 8;
pub(crate) const ENTRY_STORED_LEN_OFFSET: usize = ENTRY_BLOCK_OFFSET_OFFSET + 8;
pub(crate) const ENTRY_RAW_LEN_OFFSET: usize = ENTRY_STORED_LEN_OFFSET + 8;
pub(crate) const ENTRY_CHECKSUM_OFFSET: usize = ENTRY_RAW_LEN_OFFSET + 8;
pub(crate) const ENTRY_CODEC_OFFSET: usize = ENTRY_CHECKSUM_OFFSET + 8;
pub(crate) const ENTRY_FILTER_OFFSET: usize = ENTRY_CODEC_OFFSET + 1;
pub(crate) const ENTRY_FILTER_PARAM_OFFSET: usize = ENTRY_FILTER_OFFSET + 1;
pub(crate) const ENTRY_NDIM_OFFSET: usize = ENTRY_FILTER_PARAM_OFFSET + 1;
pub(crate) const ENTRY_FLAGS_OFFSET: usize = ENTRY_NDIM_OFFSET + 1;
pub(crate) const ENTRY_RESERVED_OFFSET: usize = ENTRY_FLAGS_OFFSET + 1;
pub(crate) const ENTRY_VALID_COUNT_OFFSET: usize = ENTRY_RESERVED_OFFSET + 3;
pub(crate) const ENTRY_MIN_OFFSET: usize = ENTRY_VALID_COUNT_OFFSET + 8;
pub(crate) const ENTRY_MAX_OFFSET: usize = ENTRY_MIN_OFFSET + 8;
pub(crate) const ENTRY_SUM_OFFSET: usize = ENTRY_MAX_OFFSET + 8;
pub(crate) const ENTRY_COORDS_OFFSET: usize = ENTRY_SUM_OFFSET + 8;
/// Bytes of an index entry before its `ndim` coordinates of 8 bytes each.
pub(crate) const ENTRY_FIXED_LEN: usize = ENTRY_COORDS_OFFSET;

/// Entry flag: every element of the chunk is the fill value; the block stores no bytes.
pub(crate) const FLAG_FILL: u8 = 1;
/// Every flag this build knows; an entry with another bit set is corrupt.
pub(crate) const KNOWN_FLAGS: u8 = FLAG_FILL;

pub(crate) const FOOTER_INDEX_OFFSET_OFFSET: usize = 0;
pub(crate) const FOOTER_INDEX_LEN_OFFSET: usize = FOOTER_INDEX_OFFSET_OFFSET + 8;
pub(crate) const FOOTER_ENTRY_COUNT_OFFSET: usize = FOOTER_INDEX_LEN_OFFSET + 8;
pub(crate) const FOOTER_INDEX_CHECKSUM_OFFSET: usize = FOOTER_ENTRY_COUNT_OFFSET + 8;
pub(crate) const FOOTER_MAGIC_OFFSET: usize = FOOTER_INDEX_CHECKSUM_OFFSET + 8;
/// Magic at the very end of a complete fragment.
pub(crate) const FOOTER_MAGIC: &[u8; 8] = b"ATLFEND\0";
/// Bytes of the footer, the last bytes of the file.
pub(crate) const FOOTER_LEN: usize = FOOTER_MAGIC_OFFSET + FOOTER_MAGIC.len();

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/FORMAT.md is the one copy of the layout; these are the sizes it states.
    #[test]
    fn sizes_match_format_doc() {
        let doc = include_str!("../../docs/FORMAT.md");
        for (needle, value) in [
            ("Fragment header: 16 bytes", HEADER_LEN),
            ("Index entry: 80 bytes + 8 per dimension", ENTRY_FIXED_LEN),
            ("Fragment footer: 40 bytes", FOOTER_LEN),
        ] {
            assert!(doc.contains(needle), "FORMAT.md lacks {needle:?}");
            let stated: usize = needle.split(": ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
            assert_eq!(stated, value, "{needle}");
        }
    }
}
