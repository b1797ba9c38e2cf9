//! Writes one fragment: header, blocks as they come, then index and footer at `finish`.

use std::path::{Path, PathBuf};

use super::entry::{BlockEntry, put_u64};
use super::layout::{
    BLOCK_ALIGN, FOOTER_ENTRY_COUNT_OFFSET, FOOTER_INDEX_CHECKSUM_OFFSET, FOOTER_INDEX_LEN_OFFSET,
    FOOTER_INDEX_OFFSET_OFFSET, FOOTER_LEN, FOOTER_MAGIC, FOOTER_MAGIC_OFFSET, FRAGMENT_VERSION, HEADER_LEN,
    HEADER_MAGIC, HEADER_VERSION_OFFSET,
};
use super::stats::ChunkStats;
use crate::codec::BlockEncoding;
use crate::error::Result;
use crate::io::checksum;
use crate::io::{self, AppendFile, FileReader};

/// A fragment being written. Nothing in it is durable or visible until [`finish`] and the
/// commit that names it. Everything past `blocks_end_bytes` is the tail (index and footer)
/// that each `finish` rewrites, so a failed finish can be retried and a finished fragment
/// can take more blocks before its commit.
///
/// The writer keeps no index of its own: `finish` indexes the entries its caller confirms.
/// The blocks of a change that failed halfway are given back ([`drop_unkept`]), so a
/// retry writes them again in their place rather than after them.
///
/// [`finish`]: FragmentWriter::finish
/// [`drop_unkept`]: FragmentWriter::drop_unkept
#[derive(Debug)]
pub(crate) struct FragmentWriter {
    file: AppendFile,
    blocks_end_bytes: u64,
    /// The end of the blocks whose entries the caller has recorded ([`keep_appended`]);
    /// those after it belong to a change still running, or to one that failed.
    ///
    /// [`keep_appended`]: FragmentWriter::keep_appended
    kept_end_bytes: u64,
}

/// A block handed to [`FragmentWriter::append_block`].
pub(crate) struct EncodedBlock<'a> {
    pub array_id: u64,
    pub coord: &'a [u64],
    /// The stored bytes, in parts written one after the other (rows of a chunk stored as it
    /// is, written without being gathered first; or one part).
    pub stored: &'a [&'a [u8]],
    pub raw_len_bytes: u64,
    pub checksum: u64,
    pub encoding: BlockEncoding,
    /// Every element is the fill value: no bytes are stored (`stored` must be empty).
    pub is_fill: bool,
    pub stats: ChunkStats,
}

impl<'a> EncodedBlock<'a> {
    /// The block `entry` describes, as stored (`stored`, its bytes), for array `array_id`:
    /// a copy that keeps its encoding, checksum and statistics.
    pub(crate) fn copy_of(entry: &'a BlockEntry, array_id: u64, stored: &'a [&'a [u8]]) -> Self {
        Self {
            array_id,
            coord: &entry.coord,
            stored,
            raw_len_bytes: entry.raw_len_bytes,
            checksum: entry.checksum,
            encoding: entry.encoding,
            is_fill: entry.is_fill,
            stats: entry.stats,
        }
    }
}

impl FragmentWriter {
    /// Creates the file and writes its header; a file it made is removed if that fails.
    pub(crate) fn create(path: PathBuf) -> Result<Self> {
        let header_end = HEADER_LEN as u64;
        let mut writer =
            Self { file: AppendFile::create_new(path)?, blocks_end_bytes: header_end, kept_end_bytes: header_end };
        let mut header = [0u8; HEADER_LEN];
        header[..HEADER_MAGIC.len()].copy_from_slice(HEADER_MAGIC);
        header[HEADER_VERSION_OFFSET..HEADER_VERSION_OFFSET + 4].copy_from_slice(&FRAGMENT_VERSION.to_le_bytes());
        match writer.file.append(&header) {
            Ok(_) => Ok(writer),
            Err(e) => {
                writer.remove();
                Err(e)
            }
        }
    }

    /// Removes the file (its writer was given up before any commit could name it). A file
    /// that cannot be removed is left as an orphan, which the next writer removes.
    pub(crate) fn remove(self) {
        if let Err(e) = io::remove_file(self.file.path()) {
            log::warn!("atlas: cannot remove a fragment given up: {e}");
        }
    }

    /// Appends a block at the next aligned offset and returns its entry.
    pub(crate) fn append_block(&mut self, block: &EncodedBlock<'_>) -> Result<BlockEntry> {
        self.file.truncate(self.blocks_end_bytes)?;
        let padding = self.file.len_bytes().next_multiple_of(BLOCK_ALIGN) - self.file.len_bytes();
        if padding > 0 {
            self.file.append(&[0u8; BLOCK_ALIGN as usize][..usize::try_from(padding).expect("< 8")])?;
        }
        let offset_bytes = self.file.append_parts(block.stored)?;
        self.blocks_end_bytes = self.file.len_bytes();
        Ok(BlockEntry {
            array_id: block.array_id,
            coord: block.coord.into(),
            offset_bytes,
            stored_len_bytes: block.stored.iter().map(|part| part.len() as u64).sum(),
            raw_len_bytes: block.raw_len_bytes,
            checksum: block.checksum,
            encoding: block.encoding,
            is_fill: block.is_fill,
            stats: block.stats,
        })
    }

    /// Marks every block appended so far as kept: the caller has recorded their entries.
    pub(crate) fn keep_appended(&mut self) {
        self.kept_end_bytes = self.blocks_end_bytes;
    }

    /// Gives back the blocks appended since the last [`keep_appended`] (their change
    /// failed, and no entry points to them): the next block goes where the first of them
    /// went. The file is cut back now, so that a full disk has their space again for the
    /// retry; if that fails, the next append or `finish` cuts it.
    ///
    /// [`keep_appended`]: FragmentWriter::keep_appended
    pub(crate) fn drop_unkept(&mut self) {
        // Cut even when no block was appended whole: a first one may have been written in
        // part.
        self.blocks_end_bytes = self.kept_end_bytes;
        if let Err(e) = self.file.truncate(self.blocks_end_bytes) {
            log::warn!("atlas: cannot cut back the blocks of a failed change: {e}");
        }
    }

    /// A handle that reads back blocks appended to this fragment, usable while the writer
    /// goes on appending.
    pub(crate) fn reader(&self) -> Result<PendingReader> {
        Ok(PendingReader { file: self.file.reader()? })
    }

    /// Writes an index of `entries` (blocks appended to this fragment) and the footer, and
    /// fsyncs; returns the file's final length.
    pub(crate) fn finish<'e>(&mut self, entries: impl IntoIterator<Item = &'e BlockEntry>) -> Result<u64> {
        self.file.truncate(self.blocks_end_bytes)?;
        let index_offset = self.blocks_end_bytes;
        let mut index = Vec::new();
        let mut entry_count = 0u64;
        for entry in entries {
            entry.encode(&mut index);
            entry_count += 1;
        }
        let mut footer = [0u8; FOOTER_LEN];
        put_u64(&mut footer, FOOTER_INDEX_OFFSET_OFFSET, index_offset);
        put_u64(&mut footer, FOOTER_INDEX_LEN_OFFSET, index.len() as u64);
        put_u64(&mut footer, FOOTER_ENTRY_COUNT_OFFSET, entry_count);
        put_u64(&mut footer, FOOTER_INDEX_CHECKSUM_OFFSET, checksum(&index));
        footer[FOOTER_MAGIC_OFFSET..].copy_from_slice(FOOTER_MAGIC);
        index.extend_from_slice(&footer);
        self.file.append(&index)?;
        self.file.sync()?;
        Ok(self.file.len_bytes())
    }
}

/// Whether a fragment of `len_bytes` whose index holds exactly `entries` also holds bytes
/// no entry points to (blocks a session wrote and then wrote again): a gap of
/// `BLOCK_ALIGN` bytes or more before a block or before the index, where padding is at
/// most `BLOCK_ALIGN - 1`.
pub(crate) fn holds_dead_bytes<'e>(len_bytes: u64, entries: impl IntoIterator<Item = &'e BlockEntry>) -> bool {
    let mut index_len = 0u64;
    let mut blocks: Vec<(u64, u64)> = Vec::new();
    for entry in entries {
        index_len += entry.encoded_len() as u64;
        if !entry.is_fill {
            blocks.push((entry.offset_bytes, entry.stored_len_bytes));
        }
    }
    blocks.sort_unstable();
    let index_offset = len_bytes.saturating_sub(FOOTER_LEN as u64 + index_len);
    let mut end = HEADER_LEN as u64;
    for (offset, stored_len) in blocks.into_iter().chain([(index_offset, 0)]) {
        if offset.saturating_sub(end) >= BLOCK_ALIGN {
            return true;
        }
        end = offset + stored_len;
    }
    false
}

/// Reads blocks of a fragment that is still being written (uncommitted changes).
#[derive(Debug)]
pub(crate) struct PendingReader {
    file: FileReader,
}

impl PendingReader {
    /// Reads the stored bytes of a block appended earlier into `buf`.
    pub(crate) fn read_block(&self, entry: &BlockEntry, buf: &mut Vec<u8>) -> Result<()> {
        buf.resize(usize::try_from(entry.stored_len_bytes).expect("block was written from memory"), 0);
        self.file.read_at(entry.offset_bytes, buf)
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }
}
