//! Reads a committed fragment through mmap: validates header, footer and index, then serves
//! block bytes without copying, from the map (or from the file opened again for a `pread`,
//! [`FragmentReader::reopen`]: no descriptor is kept per fragment).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::entry::{BlockEntry, get_u64};
use super::layout::{
    ENTRY_FIXED_LEN, FOOTER_ENTRY_COUNT_OFFSET, FOOTER_INDEX_CHECKSUM_OFFSET, FOOTER_INDEX_LEN_OFFSET,
    FOOTER_INDEX_OFFSET_OFFSET, FOOTER_LEN, FOOTER_MAGIC, FOOTER_MAGIC_OFFSET, FRAGMENT_VERSION, HEADER_LEN,
    HEADER_MAGIC, HEADER_VERSION_OFFSET,
};
use crate::error::{Error, Result};
use crate::io::checksum;
use crate::io::{FileReader, MappedFile};

/// The id of the next reader opened ([`FragmentReader::id`]).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A committed fragment, mapped and indexed.
#[derive(Debug)]
pub(crate) struct FragmentReader {
    file: MappedFile,
    id: u64,
}

impl FragmentReader {
    /// Maps `path`, checks that it is `expected_len_bytes` long and well formed, and returns
    /// the reader and the fragment's entries.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for any byte that is not what Atlas writes: wrong length, magic,
    /// version, index checksum, or an entry pointing outside the block area.
    pub(crate) fn open(path: &Path, expected_len_bytes: u64) -> Result<(Self, Vec<BlockEntry>)> {
        let reader = Self { file: MappedFile::open(path)?, id: NEXT_ID.fetch_add(1, Ordering::Relaxed) };
        let entries = reader.entries(expected_len_bytes)?;
        Ok((reader, entries))
    }

    /// The mapped file's length.
    pub(crate) fn len_bytes(&self) -> u64 {
        self.file.bytes().len() as u64
    }

    /// The block index of the mapped fragment, parsed again (for a commit that lists it
    /// again: a refresh keeps the map).
    ///
    /// # Errors
    /// As [`FragmentReader::open`], for the bytes.
    pub(crate) fn entries(&self, expected_len_bytes: u64) -> Result<Vec<BlockEntry>> {
        parse(self.file.bytes(), expected_len_bytes).map_err(|detail| Error::corrupt(self.path(), detail))
    }

    /// A number no other reader opened in this process has: what the chunk cache knows
    /// this map's blocks by (a name could be reused, or hashed to a colliding value).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The stored bytes of a block; the entry was bounds-checked when the index was parsed.
    pub(crate) fn block_bytes(&self, entry: &BlockEntry) -> &[u8] {
        let start = usize::try_from(entry.offset_bytes).expect("checked against the file length");
        let len = usize::try_from(entry.stored_len_bytes).expect("checked against the file length");
        &self.file.bytes()[start..start + len]
    }

    /// The fragment's file opened again for `pread`, if it is still there (see
    /// [`MappedFile::reopen`](crate::io::MappedFile::reopen)); else read [`Self::block_bytes`].
    pub(crate) fn reopen(&self) -> Option<FileReader> {
        self.file.reopen()
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Validates a whole fragment image and decodes its index.
pub(crate) fn parse(bytes: &[u8], expected_len_bytes: u64) -> Result<Vec<BlockEntry>, String> {
    if bytes.len() as u64 != expected_len_bytes {
        return Err(format!("file is {} bytes, the commit recorded {expected_len_bytes}", bytes.len()));
    }
    if bytes.len() < HEADER_LEN + FOOTER_LEN {
        return Err("file is shorter than a header and footer".into());
    }
    if &bytes[..HEADER_MAGIC.len()] != HEADER_MAGIC {
        return Err("bad header magic".into());
    }
    let version = u32::from_le_bytes(bytes[HEADER_VERSION_OFFSET..HEADER_VERSION_OFFSET + 4].try_into().expect("4"));
    if version != FRAGMENT_VERSION {
        return Err(format!("fragment version {version} is not {FRAGMENT_VERSION}"));
    }
    let footer = &bytes[bytes.len() - FOOTER_LEN..];
    if &footer[FOOTER_MAGIC_OFFSET..] != FOOTER_MAGIC {
        return Err("bad footer magic (incomplete fragment?)".into());
    }
    let index_offset = get_u64(footer, FOOTER_INDEX_OFFSET_OFFSET);
    let index_len = get_u64(footer, FOOTER_INDEX_LEN_OFFSET);
    let entry_count = get_u64(footer, FOOTER_ENTRY_COUNT_OFFSET);
    let index_end = (bytes.len() - FOOTER_LEN) as u64;
    if index_offset < HEADER_LEN as u64 || index_offset.checked_add(index_len) != Some(index_end) {
        return Err("index does not sit between the blocks and the footer".into());
    }
    let index = &bytes[usize::try_from(index_offset).expect("< file length")..bytes.len() - FOOTER_LEN];
    if checksum(index) != get_u64(footer, FOOTER_INDEX_CHECKSUM_OFFSET) {
        return Err("index checksum mismatch".into());
    }
    // Bound the allocation by what the index bytes can hold, not by the count it claims.
    if entry_count > index_len / ENTRY_FIXED_LEN as u64 {
        return Err(format!("index claims {entry_count} entries in {index_len} bytes"));
    }
    // Grown as entries decode: an index of zeros (whose checksum anyone can compute) is
    // refused at its first entry, before it reserves room for all it claims.
    let mut entries = Vec::with_capacity(usize::try_from(entry_count.min(4096)).expect("small"));
    let mut rest = index;
    for i in 0..entry_count {
        let (entry, len) = BlockEntry::decode(rest).map_err(|e| format!("index entry {i}: {e}"))?;
        let end = entry.offset_bytes.checked_add(entry.stored_len_bytes);
        if entry.offset_bytes < HEADER_LEN as u64 || end.is_none_or(|end| end > index_offset) {
            return Err(format!(
                "block of array {} at {:?} points outside the block area",
                entry.array_id, entry.coord
            ));
        }
        entries.push(entry);
        rest = &rest[len..];
    }
    if !rest.is_empty() {
        return Err("index has trailing bytes".into());
    }
    refuse_overlaps(&entries)?;
    Ok(entries)
}

/// Writers give every block its own bytes; entries sharing bytes would make a compaction
/// copy one block once per entry (a million entries naming one large block: terabytes).
fn refuse_overlaps(entries: &[BlockEntry]) -> Result<(), String> {
    let mut ranges: Vec<(u64, u64)> = entries
        .iter()
        .filter(|e| e.stored_len_bytes > 0)
        .map(|e| (e.offset_bytes, e.offset_bytes + e.stored_len_bytes))
        .collect();
    ranges.sort_unstable();
    match ranges.windows(2).find(|pair| pair[1].0 < pair[0].1) {
        Some(pair) => Err(format!("blocks at offsets {} and {} overlap", pair[0].0, pair[1].0)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::writer::{EncodedBlock, FragmentWriter};
    use super::*;
    use crate::codec::BlockEncoding;

    fn write_sample(path: &Path) -> u64 {
        write_sample_indexing(path, 3)
    }

    /// Appends three blocks and indexes the first `indexed` of them.
    fn write_sample_indexing(path: &Path, indexed: usize) -> u64 {
        let mut writer = FragmentWriter::create(path.to_path_buf()).unwrap();
        let mut entries = Vec::new();
        for i in 0..3u64 {
            let stored = vec![u8::try_from(i).unwrap(); 5 + usize::try_from(i).unwrap()];
            let entry = writer
                .append_block(&EncodedBlock {
                    array_id: i,
                    coord: &[i, 0],
                    stored: &[&stored],
                    raw_len_bytes: stored.len() as u64,
                    checksum: checksum(&stored),
                    encoding: BlockEncoding::RAW,
                    is_fill: false,
                    stats: crate::fragment::ChunkStats::default(),
                })
                .unwrap();
            entries.push(entry);
        }
        writer.finish(&entries[..indexed]).unwrap()
    }

    #[test]
    fn written_blocks_read_back_through_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.frag");
        let len = write_sample(&path);
        let (reader, entries) = FragmentReader::open(&path, len).unwrap();
        assert_eq!(entries.len(), 3);
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(entry.offset_bytes % 8, 0);
            assert_eq!(reader.block_bytes(entry), vec![u8::try_from(i).unwrap(); 5 + i]);
        }
    }

    #[test]
    fn blocks_not_handed_to_finish_stay_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.frag");
        let len = write_sample_indexing(&path, 2);
        let (_, entries) = FragmentReader::open(&path, len).unwrap();
        assert_eq!(entries.iter().map(|e| e.array_id).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn every_flipped_byte_and_truncation_is_an_error_or_harmless() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.frag");
        let len = write_sample(&path);
        let good = std::fs::read(&path).unwrap();
        let good_entries = parse(&good, len).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x55;
            // Block bytes are covered by block checksums, checked on decode; the rest must fail here.
            if let Ok(entries) = parse(&bad, len) {
                assert_eq!(entries, good_entries, "byte {i} changed the index silently");
            }
        }
        for cut in 0..good.len() {
            assert!(parse(&good[..cut], cut as u64).is_err(), "truncation at {cut} parsed");
        }
    }
}
