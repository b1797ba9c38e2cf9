//! The write session of a handle: the writer lock, and the fragment this session's blocks go
//! to until the next flush commits it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::snapshot::ChunkIndex;
use crate::codec::BlockEncoding;
use crate::engine::{BlockRef, EncodedChunk, to_usize};
use crate::error::Result;
use crate::fragment::{BlockEntry, ChunkStats, EncodedBlock, FragmentWriter, PendingReader};
use crate::io::WriterLock;
use crate::meta::{FragmentMeta, MetaCompression, MetaFormat, StoreMeta, fragment_name};

/// Held from a handle's first change until its flush completes.
#[derive(Debug)]
pub(crate) struct WriteSession {
    lock: WriterLock,
    /// The commit this session started from, and its metadata encoding: what the handle
    /// goes back to when the session is discarded.
    pub base: (StoreMeta, (MetaFormat, MetaCompression)),
    /// The process that started the session: a child forked from it inherits a copy,
    /// which is still the parent's to commit.
    pid: u32,
    /// The fragment of this session, created at the first block written.
    pub fragment: Option<PendingFragment>,
    /// Arrays whose shape this session changed (their stats are refreshed at flush).
    pub reshaped: HashSet<u64>,
    /// `Atlas::begin_change` calls not yet matched by `Atlas::release_if_unchanged`: a
    /// read-modify-write under way on some thread, which the lock must outlive.
    pub holds: usize,
    /// Unique in the process: a hold names the session it was taken on, so that a hold
    /// of a session that ended (flushed, discarded) cannot end a later one.
    pub id: u64,
    /// The thread that started the session, and whether a change (or a hold) has come from
    /// another since: the session's changes are then not all its starter's to abandon
    /// (`Inner::abandon`).
    began_on: std::thread::ThreadId,
    pub changed_elsewhere: bool,
}

/// The next [`WriteSession::id`].
static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(0);

impl WriteSession {
    pub(crate) fn new(lock: WriterLock, base: (StoreMeta, (MetaFormat, MetaCompression))) -> Self {
        let id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
        let (pid, began_on) = (std::process::id(), std::thread::current().id());
        let reshaped = HashSet::new();
        Self { lock, base, pid, fragment: None, reshaped, holds: 0, id, began_on, changed_elsewhere: false }
    }

    /// Notes a change (or a hold) made by the current thread.
    pub(crate) fn note_change(&mut self) {
        self.changed_elsewhere |= std::thread::current().id() != self.began_on;
    }

    /// Whether another process started this session: this one is a child forked with a
    /// copy of it, whose fragment and changes are the parent's.
    pub(crate) fn is_inherited(&self) -> bool {
        self.pid != std::process::id()
    }

    /// Whether the session still holds the writer lock: whether its lock file is still the
    /// one at the lock's path (see [`WriterLock::is_at_path`]).
    pub(crate) fn holds_lock(&self) -> Result<bool> {
        self.lock.is_at_path()
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

/// A chunk's coordinate and raw bytes.
pub(crate) type RawChunk<'a> = (&'a [u64], &'a [u8]);

/// The blocks this session wrote, readable while the writer goes on appending; and its
/// staged chunks: the chunks of small writes and the unfinished last chunk of an append,
/// kept raw in memory (`ArrayHandle::append`, `OpenOptions::staging_bytes`) instead of
/// being encoded again at every change, until a later write completes the chunk, the
/// staging budget is spent or the commit seals them ([`State::seal_staged`]).
///
/// [`State::seal_staged`]: super::state::State::seal_staged
#[derive(Debug)]
pub(crate) struct PendingBlocks {
    reader: PendingReader,
    /// array id -> chunk -> newest entry written by this session. A staged chunk's entry
    /// says uncompressed and unshuffled, with no place in the file.
    index: HashMap<u64, ChunkIndex<BlockEntry>>,
    /// array id -> chunk -> raw bytes of a staged chunk.
    staged: HashMap<u64, ChunkIndex<Vec<u8>>>,
    /// What the chunks in `staged` count for against the staging budget
    /// ([`staging_cost`] of each).
    staged_bytes: usize,
}

/// What a staged chunk of `raw_bytes` counts for against the staging budget: its bytes,
/// but never less than about its bookkeeping (its coordinate, its entry and their map
/// slots, 200-300 bytes), so that a budget of tiny chunks cannot hold a hundred times its
/// size in memory (64 MiB of one-byte chunks held about 20 GB).
pub(crate) fn staging_cost(raw_bytes: u64) -> u64 {
    raw_bytes.max(STAGED_CHUNK_MIN_BYTES)
}

/// The least a staged chunk counts for ([`staging_cost`]).
const STAGED_CHUNK_MIN_BYTES: u64 = 256;

/// [`staging_cost`] of a staged chunk's bytes.
fn cost(raw: &[u8]) -> usize {
    to_usize(staging_cost(raw.len() as u64))
}

impl PendingBlocks {
    /// The block this session wrote (or staged) for `array_id` at `coord`, if any.
    pub(crate) fn find(&self, array_id: u64, coord: &[u64]) -> Option<BlockRef<'_>> {
        let entry = self.index.get(&array_id)?.get(coord)?;
        Some(self.block_ref(entry))
    }

    /// Every block this session wrote or staged for `array_id` (the newest per chunk).
    pub(crate) fn blocks_of(&self, array_id: u64) -> impl Iterator<Item = BlockRef<'_>> {
        let entries = self.index.get(&array_id).into_iter().flat_map(|chunks| chunks.values());
        entries.map(|entry| self.block_ref(entry))
    }

    fn block_ref<'a>(&'a self, entry: &'a BlockEntry) -> BlockRef<'a> {
        let staged = self.staged.get(&entry.array_id).and_then(|chunks| chunks.get(&entry.coord));
        match staged {
            Some(raw) => BlockRef::Staged { reader: &self.reader, entry, raw },
            None => BlockRef::Pending { reader: &self.reader, entry },
        }
    }

    /// What the staged chunks count for against the staging budget ([`staging_cost`]).
    pub(crate) fn staged_bytes(&self) -> usize {
        self.staged_bytes
    }

    /// Whether the chunk of `array_id` at `coord` is staged.
    pub(crate) fn is_staged(&self, array_id: u64, coord: &[u64]) -> bool {
        self.staged.get(&array_id).is_some_and(|chunks| chunks.contains_key(coord))
    }

    /// What the chunks staged for `array_id` in chunk row `row` (of axis 0) count for.
    pub(crate) fn staged_bytes_in_row(&self, array_id: u64, row: u64) -> usize {
        let chunks = self.staged.get(&array_id).into_iter().flatten();
        chunks.filter(|(coord, _)| coord.first() == Some(&row)).map(|(_, raw)| cost(raw)).sum()
    }

    /// The staged chunks, per array: (coordinate, raw bytes).
    pub(crate) fn staged(&self) -> impl Iterator<Item = (u64, Vec<RawChunk<'_>>)> {
        self.staged.iter().map(|(id, chunks)| (*id, chunks.iter().map(|(coord, raw)| (&coord[..], &raw[..])).collect()))
    }

    /// Takes the raw bytes of a staged chunk out, to be written and staged again; its
    /// entry stays.
    pub(crate) fn take_staged(&mut self, array_id: u64, coord: &[u64]) -> Option<Vec<u8>> {
        let raw = self.staged.get_mut(&array_id)?.remove(coord)?;
        self.staged_bytes -= cost(&raw);
        Some(raw)
    }

    /// Keeps `raw` (a whole chunk's raw bytes) in memory as the newest block of its chunk.
    /// Its entry has no checksum and no statistics: they are made when it is sealed.
    pub(crate) fn stage(&mut self, array_id: u64, coord: &[u64], raw: Vec<u8>) {
        let len = raw.len() as u64;
        let entry = BlockEntry {
            array_id,
            coord: coord.into(),
            offset_bytes: 0,
            stored_len_bytes: len,
            raw_len_bytes: len,
            checksum: 0,
            encoding: BlockEncoding::RAW,
            is_fill: false,
            stats: ChunkStats::default(),
        };
        self.unstage(array_id, coord);
        self.staged_bytes += cost(&raw);
        self.staged.entry(array_id).or_default().insert(coord.into(), raw);
        self.index.entry(array_id).or_default().insert(coord.into(), entry);
    }

    /// Forgets every staged chunk still held, entry and bytes (those of arrays deleted
    /// since they were staged; the others are sealed first).
    pub(crate) fn drop_staged(&mut self) {
        for (array_id, chunks) in std::mem::take(&mut self.staged) {
            let index = self.index.get_mut(&array_id).expect("a staged chunk has an entry");
            for coord in chunks.keys() {
                index.remove(coord);
            }
        }
        self.staged_bytes = 0;
    }

    /// Drops the staged bytes of a chunk, if any.
    fn unstage(&mut self, array_id: u64, coord: &[u64]) {
        if let Some(raw) = self.staged.get_mut(&array_id).and_then(|chunks| chunks.remove(coord)) {
            self.staged_bytes -= cost(&raw);
        }
    }

    /// Whether this session wrote or staged no block at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.index.values().all(HashMap::is_empty)
    }

    /// Whether this session wrote any block of `array_id`.
    pub(crate) fn has_array(&self, array_id: u64) -> bool {
        self.index.get(&array_id).is_some_and(|chunks| !chunks.is_empty())
    }

    /// Indexes newly appended blocks; each replaces an older (or staged) one of the same
    /// chunk.
    fn insert(&mut self, entries: Vec<BlockEntry>) {
        for entry in entries {
            self.unstage(entry.array_id, &entry.coord);
            self.index.entry(entry.array_id).or_default().insert(entry.coord.clone(), entry);
        }
    }
}

impl PendingFragment {
    fn create(data_dir: &Path, generation: u64) -> Result<Self> {
        let name = fragment_name(generation, nonce());
        let writer = FragmentWriter::create(data_dir.join(&name))?;
        let reader = match writer.reader() {
            Ok(reader) => reader,
            Err(e) => {
                writer.remove();
                return Err(e);
            }
        };
        let blocks = PendingBlocks { reader, index: HashMap::new(), staged: HashMap::new(), staged_bytes: 0 };
        Ok(Self { name, writer, blocks })
    }
}

/// Appends an encoded chunk of `array_id`; the caller records the returned entry.
pub(crate) fn append_chunk(writer: &mut FragmentWriter, array_id: u64, chunk: &EncodedChunk) -> Result<BlockEntry> {
    chunk.stored.with_parts(|stored| {
        writer.append_block(&EncodedBlock {
            array_id,
            coord: &chunk.coord,
            stored,
            raw_len_bytes: chunk.raw_len_bytes,
            checksum: chunk.checksum,
            encoding: chunk.encoding,
            is_fill: chunk.is_fill,
            stats: chunk.stats,
        })
    })
}

impl PendingFragment {
    /// Records newly appended blocks (each replaces an older or staged one of the same
    /// chunk); the writer keeps every block appended so far.
    pub(crate) fn record(&mut self, entries: Vec<BlockEntry>) {
        self.blocks.insert(entries);
        self.writer.keep_appended();
    }

    /// Writes index and footer, fsyncs, and returns what the commit records.
    pub(crate) fn finish(&mut self) -> Result<FragmentMeta> {
        assert!(self.blocks.staged.is_empty(), "staged chunks are sealed before the fragment is finished");
        // Indexed in file order, and fill entries (which share the offset of what follows
        // them) by array and chunk: the same writes always give the same bytes.
        let mut entries: Vec<&BlockEntry> = self.blocks.index.values().flat_map(|chunks| chunks.values()).collect();
        entries.sort_unstable_by(|a, b| {
            (a.offset_bytes, a.array_id, &a.coord).cmp(&(b.offset_bytes, b.array_id, &b.coord))
        });
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
