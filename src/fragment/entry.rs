//! One block's index entry: where its bytes are, how they are encoded, its checksum.

use crate::codec::{BlockEncoding, CodecId, Filter};
use crate::meta;

use super::layout::{
    ENTRY_ARRAY_ID_OFFSET, ENTRY_BLOCK_OFFSET_OFFSET, ENTRY_CHECKSUM_OFFSET, ENTRY_CODEC_OFFSET, ENTRY_COORDS_OFFSET,
    ENTRY_FILTER_OFFSET, ENTRY_FILTER_PARAM_OFFSET, ENTRY_FIXED_LEN, ENTRY_FLAGS_OFFSET, ENTRY_MAX_OFFSET,
    ENTRY_MIN_OFFSET, ENTRY_NDIM_OFFSET, ENTRY_RAW_LEN_OFFSET, ENTRY_STORED_LEN_OFFSET, ENTRY_SUM_OFFSET,
    ENTRY_VALID_COUNT_OFFSET, FLAG_FILL, KNOWN_FLAGS,
};
use super::stats::ChunkStats;

/// A block of one array at one chunk coordinate inside a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockEntry {
    pub array_id: u64,
    pub coord: Box<[u64]>,
    pub offset_bytes: u64,
    pub stored_len_bytes: u64,
    pub raw_len_bytes: u64,
    pub checksum: u64,
    pub encoding: BlockEncoding,
    /// The chunk holds only the fill value and has no stored bytes.
    pub is_fill: bool,
    pub stats: ChunkStats,
}

impl BlockEntry {
    /// Bytes this entry takes in the index.
    pub(crate) fn encoded_len(&self) -> usize {
        ENTRY_FIXED_LEN + 8 * self.coord.len()
    }

    /// Appends the entry's bytes (docs/FORMAT.md, "Index entry").
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + self.encoded_len(), 0);
        let e = &mut out[start..];
        put_u64(e, ENTRY_ARRAY_ID_OFFSET, self.array_id);
        put_u64(e, ENTRY_BLOCK_OFFSET_OFFSET, self.offset_bytes);
        put_u64(e, ENTRY_STORED_LEN_OFFSET, self.stored_len_bytes);
        put_u64(e, ENTRY_RAW_LEN_OFFSET, self.raw_len_bytes);
        put_u64(e, ENTRY_CHECKSUM_OFFSET, self.checksum);
        e[ENTRY_CODEC_OFFSET] = self.encoding.codec as u8;
        let (filter, param) = self.encoding.filter.to_id();
        e[ENTRY_FILTER_OFFSET] = filter;
        e[ENTRY_FILTER_PARAM_OFFSET] = param;
        e[ENTRY_NDIM_OFFSET] = u8::try_from(self.coord.len()).expect("ndim is at most 32");
        e[ENTRY_FLAGS_OFFSET] = if self.is_fill { FLAG_FILL } else { 0 };
        put_u64(e, ENTRY_VALID_COUNT_OFFSET, self.stats.valid_count);
        put_u64(e, ENTRY_MIN_OFFSET, self.stats.min_bits);
        put_u64(e, ENTRY_MAX_OFFSET, self.stats.max_bits);
        put_u64(e, ENTRY_SUM_OFFSET, self.stats.sum_bits);
        for (i, c) in self.coord.iter().enumerate() {
            put_u64(e, ENTRY_COORDS_OFFSET + 8 * i, *c);
        }
    }

    /// Parses one entry from the front of `bytes`; returns it and its length, or what is
    /// wrong. Never panics, whatever the bytes.
    pub(crate) fn decode(bytes: &[u8]) -> Result<(Self, usize), String> {
        if bytes.len() < ENTRY_FIXED_LEN {
            return Err("index entry is truncated".into());
        }
        let ndim = usize::from(bytes[ENTRY_NDIM_OFFSET]);
        if ndim > meta::MAX_NDIM {
            return Err(format!("index entry has {ndim} dimensions"));
        }
        let len = ENTRY_FIXED_LEN + 8 * ndim;
        if bytes.len() < len {
            return Err("index entry coordinates are truncated".into());
        }
        let codec = CodecId::from_u8(bytes[ENTRY_CODEC_OFFSET])
            .ok_or_else(|| format!("unknown codec id {}", bytes[ENTRY_CODEC_OFFSET]))?;
        let (filter, param) = (bytes[ENTRY_FILTER_OFFSET], bytes[ENTRY_FILTER_PARAM_OFFSET]);
        let filter =
            Filter::from_id(filter, param).ok_or_else(|| format!("unknown filter {filter} with parameter {param}"))?;
        let flags = bytes[ENTRY_FLAGS_OFFSET];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(format!("unknown entry flags {flags:#04x}"));
        }
        let is_fill = flags & FLAG_FILL != 0;
        if is_fill && get_u64(bytes, ENTRY_STORED_LEN_OFFSET) != 0 {
            return Err("a fill entry has stored bytes".into());
        }
        let coord = (0..ndim).map(|i| get_u64(bytes, ENTRY_COORDS_OFFSET + 8 * i)).collect();
        let entry = Self {
            array_id: get_u64(bytes, ENTRY_ARRAY_ID_OFFSET),
            coord,
            offset_bytes: get_u64(bytes, ENTRY_BLOCK_OFFSET_OFFSET),
            stored_len_bytes: get_u64(bytes, ENTRY_STORED_LEN_OFFSET),
            raw_len_bytes: get_u64(bytes, ENTRY_RAW_LEN_OFFSET),
            checksum: get_u64(bytes, ENTRY_CHECKSUM_OFFSET),
            encoding: BlockEncoding { codec, filter },
            is_fill,
            stats: ChunkStats {
                valid_count: get_u64(bytes, ENTRY_VALID_COUNT_OFFSET),
                min_bits: get_u64(bytes, ENTRY_MIN_OFFSET),
                max_bits: get_u64(bytes, ENTRY_MAX_OFFSET),
                sum_bits: get_u64(bytes, ENTRY_SUM_OFFSET),
            },
        };
        Ok((entry, len))
    }
}

pub(crate) fn put_u64(bytes: &mut [u8], offset: usize, value: u64) {
    bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

/// Reads a little-endian u64; the caller has checked `offset + 8 <= bytes.len()`.
pub(crate) fn get_u64(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().expect("8-byte slice"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let entry = BlockEntry {
            array_id: 3,
            coord: vec![1, 2, 3].into(),
            offset_bytes: 16,
            stored_len_bytes: 100,
            raw_len_bytes: 400,
            checksum: 0xdead_beef,
            encoding: BlockEncoding { codec: CodecId::Zstd, filter: Filter::Shuffle(4) },
            is_fill: false,
            stats: ChunkStats { valid_count: 9, min_bits: 1, max_bits: 2, sum_bits: 3 },
        };
        let mut bytes = Vec::new();
        entry.encode(&mut bytes);
        assert_eq!(bytes.len(), 80 + 24);
        assert_eq!(BlockEntry::decode(&bytes).unwrap(), (entry.clone(), 104));
        assert!(BlockEntry::decode(&bytes[..90]).is_err());

        for filter in [Filter::None, Filter::Shuffle(1), Filter::ShuffleDelta(8), Filter::DeltaShuffle(3)] {
            let entry = BlockEntry { encoding: BlockEncoding { codec: CodecId::Lz4, filter }, ..entry.clone() };
            let mut bytes = Vec::new();
            entry.encode(&mut bytes);
            assert_eq!(BlockEntry::decode(&bytes).unwrap().0, entry);
        }
        for (filter, param) in [(0, 1), (1, 0), (1, 9), (2, 0), (2, 9), (3, 0), (3, 9), (4, 4)] {
            (bytes[ENTRY_FILTER_OFFSET], bytes[ENTRY_FILTER_PARAM_OFFSET]) = (filter, param);
            assert!(BlockEntry::decode(&bytes).is_err(), "filter {filter} with parameter {param}");
        }
    }
}
