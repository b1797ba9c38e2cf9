//! The write session of a handle: the writer lock, and the fragment this session's blocks go
//! to until the next flush commits it.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::snapshot::ChunkIndex;
use crate::engine::{BlockRef, EncodedChunk};
use crate::error::Result;
use crate::fragment::{BlockEntry, EncodedBlock, FragmentWriter, PendingReader};
use crate::io::WriterLock;
use crate::meta::{FragmentMeta, fragment_name};

/// Held from a handle's first change until its flush completes.
#[derive(Debug)]
pub(crate) struct WriteSession {
    _lock: WriterLock,
    /// The fragment of this session, created at the first block written.
    pub fragment: Option<PendingFragment>,
    /// Arrays whose shape this session changed (their stats are refreshed at flush).
    pub reshaped: HashSet<u64>,
}

impl WriteSession {
    pub(crate) fn new(lock: WriterLock) -> Self {
        Self { _lock: lock, fragment: None, reshaped: HashSet::new() }
    }

    /// Whether this session wrote blocks of the array or changed its shape.
    pub(crate) fn changed_array(&self, array_id: u64) -> bool {
        self.fragment.as_ref().is_some_and(|f| f.blocks.has_array(array_id)) || self.reshaped.contains(&array_id)
    }

    /// The session's fragment, created in `data_dir` on first use.
    pub(crate) fn fragment(&mut self, data_dir: &Path, generation: u64) -> Result<&mut PendingFragment> {
        if self.fragment.is_none() {
            self.fragment = Some(PendingFragment::create(data_dir, generation)?);
        }
        Ok(self.fragment.as_mut().expect("created above"))
    }
}

/// A fragment being filled by this session; its blocks are visible to this handle's reads.
#[derive(Debug)]
pub(crate) struct PendingFragment {
    pub name: String,
    pub writer: FragmentWriter,
    pub blocks: PendingBlocks,
}

/// The blocks this session wrote, readable while the writer goes on appending.
#[derive(Debug)]
pub(crate) struct PendingBlocks {
    reader: PendingReader,
    /// array id -> chunk -> newest entry written by this session.
    index: HashMap<u64, ChunkIndex<BlockEntry>>,
}

impl PendingBlocks {
    /// The block this session wrote for `array_id` at `coord`, if any.
    pub(crate) fn find(&self, array_id: u64, coord: &[u64]) -> Option<BlockRef<'_>> {
        let entry = self.index.get(&array_id)?.get(coord)?;
        Some(BlockRef::Pending { reader: &self.reader, entry })
    }

    /// Every block this session wrote for `array_id` (the newest per chunk).
    pub(crate) fn blocks_of(&self, array_id: u64) -> impl Iterator<Item = BlockRef<'_>> {
        let entries = self.index.get(&array_id).into_iter().flat_map(|chunks| chunks.values());
        entries.map(|entry| BlockRef::Pending { reader: &self.reader, entry })
    }

    /// Whether this session wrote any block of `array_id`.
    pub(crate) fn has_array(&self, array_id: u64) -> bool {
        self.index.contains_key(&array_id)
    }

    /// Records newly appended blocks; each replaces an older one of the same chunk.
    pub(crate) fn insert(&mut self, entries: Vec<BlockEntry>) {
        for entry in entries {
            self.index.entry(entry.array_id).or_default().insert(entry.coord.clone(), entry);
        }
    }
}

impl PendingFragment {
    fn create(data_dir: &Path, generation: u64) -> Result<Self> {
        let name = fragment_name(generation, nonce());
        let writer = FragmentWriter::create(data_dir.join(&name))?;
        let blocks = PendingBlocks { reader: writer.reader()?, index: HashMap::new() };
        Ok(Self { name, writer, blocks })
    }
}

/// Appends an encoded chunk of `array_id`; the caller records the returned entry.
pub(crate) fn append_chunk(writer: &mut FragmentWriter, array_id: u64, chunk: &EncodedChunk) -> Result<BlockEntry> {
    writer.append_block(&EncodedBlock {
        array_id,
        coord: &chunk.coord,
        stored: &chunk.stored,
        raw_len_bytes: chunk.raw_len_bytes,
        checksum: chunk.checksum,
        encoding: chunk.encoding,
        is_fill: chunk.is_fill,
        stats: chunk.stats,
    })
}

impl PendingFragment {
    /// Writes index and footer, fsyncs, and returns what the commit records.
    pub(crate) fn finish(&mut self) -> Result<FragmentMeta> {
        // Indexed in file order, so the same writes always give the same bytes.
        let mut entries: Vec<&BlockEntry> = self.blocks.index.values().flat_map(|chunks| chunks.values()).collect();
        entries.sort_unstable_by_key(|e| e.offset_bytes);
        let len_bytes = self.writer.finish(entries)?;
        Ok(FragmentMeta { name: self.name.clone(), len_bytes })
    }
}

/// A number unlikely to repeat across processes and calls, so two writers that crashed in
/// turn never pick the same fragment name.
fn nonce() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one((now, std::process::id()))
}
