//! A committed state's block index: every committed fragment mapped, and for each array the
//! newest block of each chunk.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use crate::engine::BlockRef;
use crate::error::{Error, Result};
use crate::fragment::{BlockEntry, FragmentReader};
use crate::meta::FragmentMeta;

/// Chunk coordinate -> block, for one array.
pub(crate) type ChunkIndex<V> = HashMap<Box<[u64]>, V, foldhash::fast::RandomState>;

/// The blocks of one commit.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Shared with the snapshots of later commits that list the same fragments.
    fragments: Vec<Arc<FragmentReader>>,
    /// array id -> chunk -> (index into `fragments`, entry).
    blocks: HashMap<u64, ChunkIndex<(usize, BlockEntry)>>,
    /// Entries in all fragments, superseded ones and those of deleted arrays included.
    entry_count: u64,
}

impl Snapshot {
    /// Maps every fragment listed by a commit, oldest first, so newer blocks win. A fragment
    /// that `previous` already maps, under the same name and with the listed length, is
    /// shared rather than mapped again (its index is parsed again): a refresh maps only the
    /// new fragments, and the chunk cache, which knows blocks by their reader, keeps what it
    /// holds of the others. Every block must belong to an array id the commit allocated (below
    /// `next_array_id`): a block of a later id would become part of the next array defined.
    pub(crate) fn load(
        data_dir: &Path,
        fragments: &[FragmentMeta],
        next_array_id: u64,
        previous: &Snapshot,
    ) -> Result<Self> {
        let mapped: HashMap<&std::ffi::OsStr, &Arc<FragmentReader>> =
            previous.fragments.iter().filter_map(|reader| Some((reader.path().file_name()?, reader))).collect();
        let mut snapshot = Self::default();
        for fragment in fragments {
            let path = data_dir.join(&fragment.name);
            let reused =
                mapped.get(std::ffi::OsStr::new(&fragment.name)).filter(|r| r.len_bytes() == fragment.len_bytes);
            let (reader, entries) = match reused {
                Some(&reader) => (Arc::clone(reader), reader.entries(fragment.len_bytes)?),
                None => FragmentReader::open(&path, fragment.len_bytes)
                    .map(|(reader, entries)| (Arc::new(reader), entries))?,
            };
            if let Some(entry) = entries.iter().find(|e| e.array_id >= next_array_id) {
                let detail =
                    format!("a block of array id {}, never allocated (next id {next_array_id})", entry.array_id);
                return Err(Error::corrupt(&path, detail));
            }
            if let Some(repeated) = snapshot.insert_fragment(reader, entries) {
                let detail = format!("array id {} chunk {:?} is indexed twice", repeated.array_id, repeated.coord);
                return Err(Error::corrupt(&path, detail));
            }
        }
        Ok(snapshot)
    }

    /// Makes this the snapshot of a commit that lists this one's fragments (the same names
    /// and lengths, in order) and then more: only those are opened and indexed, where
    /// [`Snapshot::load`] parses every fragment's index again (a refresh after another
    /// writer's flush of one chunk, in a store of 100,000). Returns false, changing nothing,
    /// when the commit lists other fragments (a compaction), or a new one does not open or
    /// fails a check of [`Snapshot::load`]'s or `accept`: a full load then reports why.
    pub(crate) fn extend_to(
        &mut self,
        data_dir: &Path,
        fragments: &[FragmentMeta],
        next_array_id: u64,
        accept: impl Fn(&BlockEntry) -> bool,
    ) -> bool {
        let held = self.fragments.len();
        let lists_held = fragments.len() >= held
            && self.fragments.iter().zip(fragments).all(|(reader, fragment)| {
                reader.path().file_name() == Some(std::ffi::OsStr::new(&fragment.name))
                    && reader.len_bytes() == fragment.len_bytes
            });
        if !lists_held {
            return false;
        }
        let mut opened = Vec::with_capacity(fragments.len() - held);
        for fragment in &fragments[held..] {
            let Ok((reader, entries)) = FragmentReader::open(&data_dir.join(&fragment.name), fragment.len_bytes) else {
                return false;
            };
            let mut chunks = HashSet::with_capacity(entries.len());
            let sound = entries.iter().all(|entry| {
                entry.array_id < next_array_id && accept(entry) && chunks.insert((entry.array_id, &entry.coord[..]))
            });
            if !sound {
                return false;
            }
            opened.push((Arc::new(reader), entries));
        }
        for (reader, entries) in opened {
            let repeated = self.insert_fragment(reader, entries);
            debug_assert!(repeated.is_none(), "checked above");
        }
        true
    }

    /// Adds an opened fragment newer than all present ones. Returns an entry the fragment
    /// indexes the chunk of again, if any: writers index each chunk once (the newer of two
    /// entries would win unseen), so such a fragment is damaged or crafted.
    #[must_use]
    pub(crate) fn insert_fragment(
        &mut self,
        reader: Arc<FragmentReader>,
        entries: Vec<BlockEntry>,
    ) -> Option<BlockEntry> {
        let slot = self.fragments.len();
        self.fragments.push(reader);
        self.entry_count += entries.len() as u64;
        let mut repeated = None;
        for entry in entries {
            let replaced = self.blocks.entry(entry.array_id).or_default().insert(entry.coord.clone(), (slot, entry));
            if let Some((_, entry)) = replaced.filter(|(in_slot, _)| *in_slot == slot) {
                repeated.get_or_insert(entry);
            }
        }
        repeated
    }

    /// Every committed block of `array_id` (the newest per chunk) with the fragment holding it.
    pub(crate) fn blocks_of(&self, array_id: u64) -> impl Iterator<Item = (&FragmentReader, &BlockEntry)> {
        let chunks = self.blocks.get(&array_id).into_iter().flat_map(HashMap::values);
        chunks.map(|(slot, entry)| (&*self.fragments[*slot], entry))
    }

    /// Entries in all committed fragments, dead ones included.
    pub(crate) fn entry_count(&self) -> u64 {
        self.entry_count
    }

    /// The committed block of `array_id` at `coord`, if any.
    pub(crate) fn find(&self, array_id: u64, coord: &[u64]) -> Option<BlockRef<'_>> {
        let (slot, entry) = self.blocks.get(&array_id)?.get(coord)?;
        Some(BlockRef::Committed { reader: &self.fragments[*slot], entry })
    }
}
