//! Decoded chunks kept for reads that use only part of a chunk, as h5py and `TensorStore`
//! keep them: a loop of small reads (elements, rows, boxes) then decodes each chunk once,
//! not once per read. Reads that cover whole chunks never come here, so a bulk read
//! neither pays for the cache nor fills it.
//!
//! Only committed blocks are cached, under what names their bytes for good: the mapped
//! fragment (committed files are never rewritten) and the block's index entry. A write
//! makes a new block, under a new key, so nothing is ever invalidated; entries of blocks
//! no longer read age out. Only chunks verified against their checksum go in, so a read that
//! verifies may take any entry.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;

use super::block::BlockRef;
use crate::codec::BlockEncoding;

/// A committed block, for good: its fragment's reader and its index entry's fields that
/// tell it from any other entry there, even in a hostile index (two entries may share an
/// offset where one of them is empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct BlockKey {
    /// [`crate::fragment::FragmentReader::id`].
    pub fragment: u64,
    pub array_id: u64,
    pub offset_bytes: u64,
    pub stored_len_bytes: u64,
    pub raw_len_bytes: u64,
    pub checksum: u64,
    pub encoding: BlockEncoding,
}

impl BlockKey {
    /// The key of `block` if it is committed: only committed blocks are cached.
    pub(crate) fn of(block: BlockRef<'_>) -> Option<Self> {
        let BlockRef::Committed { reader, entry } = block else { return None };
        Some(Self {
            fragment: reader.id(),
            array_id: entry.array_id,
            offset_bytes: entry.offset_bytes,
            stored_len_bytes: entry.stored_len_bytes,
            raw_len_bytes: entry.raw_len_bytes,
            checksum: entry.checksum,
            encoding: entry.encoding,
        })
    }
}

/// A chunk's raw bytes, shared by the cache and the reads copying out of it.
pub(crate) type CachedChunk = Arc<Vec<u8>>;

/// Raw chunks, least recently used out first, up to a capacity in bytes. Reads reach it
/// through [`ChunkCache::in_this_process`].
#[derive(Debug)]
pub(crate) struct ChunkCache {
    capacity_bytes: usize,
    lru: Mutex<Lru>,
    /// The process that made the cache. A child forked from it does not use it: the fork
    /// may have copied the lock held by a thread the child does not have.
    pid: u32,
}

#[derive(Debug)]
struct Lru {
    chunks: LruCache<BlockKey, CachedChunk>,
    bytes: usize,
    /// Buffers of chunks pushed out that no read still held, oldest first, for the next
    /// chunks decoded (see [`ChunkCache::buffer`]); their lengths add up to at most
    /// [`ChunkCache::spare_room`].
    spares: VecDeque<Vec<u8>>,
    spare_bytes: usize,
}

/// A chunk takes at most this share of the capacity (1/8): one chunk larger than that
/// would push out most of the others, for a read pattern that rarely comes back to it.
const MAX_SHARE: usize = 8;

/// Buffers shorter than this are not kept as spares: a new one costs little to zero, and
/// many would cost bookkeeping and a long search.
const MIN_SPARE_BYTES: usize = 64 << 10;

/// What a kept chunk costs beyond its bytes, about (its key, the list and hash table
/// entries, the shared buffer's header). A chunk counts against the capacity as its bytes
/// but never less than this, so that a cache of chunks of a few bytes cannot hold many
/// times the capacity in bookkeeping (it stays within about twice the capacity, as long as
/// this covers the bookkeeping), while a cache of `n` chunks' bytes holds `n` chunks, as
/// users of h5py's and zarrs's caches expect.
const ENTRY_BYTES: usize = 256;

/// What a kept chunk of `len` raw bytes counts against the capacity.
fn charge(len: usize) -> usize {
    len.max(ENTRY_BYTES)
}

impl ChunkCache {
    /// A cache of at most `capacity_bytes` of raw chunks; 0 keeps none.
    pub(crate) fn new(capacity_bytes: u64) -> Self {
        let capacity_bytes = usize::try_from(capacity_bytes).unwrap_or(usize::MAX);
        let lru = Lru { chunks: LruCache::unbounded(), bytes: 0, spares: VecDeque::new(), spare_bytes: 0 };
        Self { capacity_bytes, lru: Mutex::new(lru), pid: std::process::id() }
    }

    /// The cache, for a read in the process that made it; `None` in a forked child, which
    /// keeps nothing (see [`ChunkCache::pid`]). Asked once a read: the process id is a
    /// system call, which asked at each lookup took 6 of a 15 µs row read.
    pub(crate) fn in_this_process(&self) -> Option<&Self> {
        (self.pid == std::process::id()).then_some(self)
    }

    /// Whether a chunk of `len` raw bytes would be kept (none is when the capacity is 0).
    pub(crate) fn admits(&self, len: usize) -> bool {
        len > 0 && charge(len) <= self.capacity_bytes / MAX_SHARE
    }

    /// The chunk of block `key`, if kept (it becomes the most recently used).
    pub(crate) fn get(&self, key: &BlockKey) -> Option<CachedChunk> {
        self.lock().chunks.get(key).cloned()
    }

    /// Whether the chunk of block `key` is kept (it does not become the most recently used).
    pub(crate) fn contains(&self, key: &BlockKey) -> bool {
        self.lock().chunks.contains(key)
    }

    /// Keeps `raw` as the chunk of block `key`, verified, if the cache admits its size,
    /// pushing out the least recently used chunks past the capacity.
    pub(crate) fn insert(&self, key: BlockKey, raw: CachedChunk) {
        if !self.admits(raw.len()) {
            return;
        }
        let mut lru = self.lock();
        lru.bytes += charge(raw.len());
        if let Some(old) = lru.chunks.put(key, raw) {
            lru.bytes -= charge(old.len());
        }
        while lru.bytes > self.capacity_bytes {
            let (_, out) = lru.chunks.pop_lru().expect("bytes are counted for kept chunks only");
            lru.bytes -= charge(out.len());
            if let Ok(buffer) = Arc::try_unwrap(out) {
                self.keep_spare(&mut lru, buffer);
            }
        }
    }

    /// Keeps `buffer` for a later chunk of its length if it is worth it and fits, pushing
    /// out the oldest spares (of a length no longer asked for, maybe) to make room.
    fn keep_spare(&self, lru: &mut Lru, buffer: Vec<u8>) {
        if buffer.len() < MIN_SPARE_BYTES || buffer.len() > self.spare_room() {
            return;
        }
        while lru.spare_bytes + buffer.len() > self.spare_room() {
            let oldest = lru.spares.pop_front().expect("spare bytes are counted for kept spares only");
            lru.spare_bytes -= oldest.len();
        }
        lru.spare_bytes += buffer.len();
        lru.spares.push_back(buffer);
    }

    /// A buffer of `len` bytes for a chunk to be decoded and kept: the buffer of one pushed
    /// out, of the same length and holding its old bytes, or a new one of zeros. The
    /// caller overwrites every byte. Once the cache is full, each chunk kept pushes one
    /// out, so a loop of reads that mostly miss it reuses the same few buffers: a new one
    /// for every chunk cost such a loop (W4 at scale 1) 16-20% of its time, in zeroing
    /// and page faults.
    pub(crate) fn buffer(&self, len: usize) -> Vec<u8> {
        let mut lru = self.lock();
        let at = lru.spares.iter().position(|spare| spare.len() == len);
        let spare = at.and_then(|at| lru.spares.remove(at));
        lru.spare_bytes -= spare.as_ref().map_or(0, Vec::len);
        drop(lru);
        spare.unwrap_or_else(|| vec![0; len])
    }

    /// Bytes of spare buffers kept at most: as many as the largest chunk kept takes, so
    /// that the memory held stays within an eighth more than the capacity (spares are at
    /// least [`MIN_SPARE_BYTES`] each, so their bookkeeping is negligible).
    fn spare_room(&self) -> usize {
        self.capacity_bytes / MAX_SHARE
    }

    /// Bytes the kept chunks count for now ([`charge`] each).
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Bytes of the spare buffers kept now.
    #[cfg(test)]
    fn spare_bytes(&self) -> usize {
        let lru = self.lock();
        assert_eq!(lru.spare_bytes, lru.spares.iter().map(Vec::len).sum::<usize>());
        lru.spare_bytes
    }

    /// The cache, whoever held it last: a panic elsewhere leaves it consistent (each
    /// change is done before the lock is let go).
    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> BlockKey {
        BlockKey {
            fragment: 1,
            array_id: 2,
            offset_bytes: n * 100,
            stored_len_bytes: 10,
            raw_len_bytes: LEN as u64,
            checksum: n,
            encoding: BlockEncoding::RAW,
        }
    }

    /// The length of the test chunks: over `ENTRY_BYTES`, so each counts as its bytes.
    const LEN: usize = 300;

    /// Room for `n` chunks of `LEN` bytes.
    fn room(n: usize) -> u64 {
        (n * LEN) as u64
    }

    fn chunk(len: usize, byte: u8) -> CachedChunk {
        Arc::new(vec![byte; len])
    }

    #[test]
    fn the_least_recently_used_chunks_go_first_past_the_capacity() {
        let cache = ChunkCache::new(room(8));
        for n in 0..8 {
            cache.insert(key(n), chunk(LEN, n as u8));
        }
        assert_eq!(cache.bytes() as u64, room(8));
        assert!(cache.get(&key(0)).is_some(), "0 is now the most recently used");
        cache.insert(key(8), chunk(LEN, 8));
        assert!(cache.get(&key(1)).is_none(), "1 was the least recently used");
        assert_eq!(cache.get(&key(0)).unwrap()[0], 0);
        assert_eq!(cache.get(&key(8)).unwrap()[0], 8);
        assert_eq!(cache.bytes() as u64, room(8));
        // Asking whether a chunk is kept does not make it recently used.
        assert!(cache.contains(&key(2)) && !cache.contains(&key(1)));
        cache.insert(key(9), chunk(LEN, 9));
        assert!(!cache.contains(&key(2)), "2 was still the least recently used");
    }

    #[test]
    fn a_forked_child_is_not_given_the_parents_cache() {
        let mut cache = ChunkCache::new(room(8));
        cache.insert(key(1), chunk(LEN, 1));
        assert!(cache.in_this_process().is_some_and(|cache| cache.contains(&key(1))));
        cache.pid = 0; // as a child sees it: another process made it
        // The lock held, as a parent thread may have held it at the fork: nothing asks for it.
        let _held = cache.lru.lock().unwrap();
        assert!(cache.in_this_process().is_none());
    }

    #[test]
    fn chunks_over_an_eighth_of_the_capacity_and_empty_caches_keep_nothing() {
        let cache = ChunkCache::new(room(8));
        cache.insert(key(0), chunk(LEN + 1, 0));
        assert!(cache.get(&key(0)).is_none());
        cache.insert(key(1), chunk(LEN, 1));
        assert!(cache.get(&key(1)).is_some());
        let none = ChunkCache::new(0);
        none.insert(key(2), chunk(1, 2));
        assert!(none.get(&key(2)).is_none());
        assert_eq!(none.bytes(), 0);
    }

    #[test]
    fn a_chunk_kept_again_under_its_key_is_counted_once() {
        let cache = ChunkCache::new(room(8));
        cache.insert(key(0), chunk(LEN, 0));
        cache.insert(key(0), chunk(50, 9));
        assert_eq!(cache.bytes(), ENTRY_BYTES, "a short chunk counts as ENTRY_BYTES");
        assert_eq!(cache.get(&key(0)).unwrap()[0], 9);
    }

    #[test]
    fn chunks_of_a_few_bytes_each_count_as_entry_bytes_so_their_number_is_bounded() {
        let cache = ChunkCache::new((8 * ENTRY_BYTES) as u64);
        for n in 0..100 {
            cache.insert(key(n), chunk(4, n as u8));
        }
        assert_eq!(cache.bytes(), 8 * ENTRY_BYTES);
        assert_eq!((0..100).filter(|&n| cache.contains(&key(n))).count(), 8, "the last 8 are kept");
        assert!(cache.contains(&key(99)) && !cache.contains(&key(91)));
    }

    #[test]
    fn buffers_of_chunks_pushed_out_are_reused_up_to_an_eighth_of_the_capacity() {
        const BIG: usize = MIN_SPARE_BYTES;
        let big_key = |n: u64| BlockKey { raw_len_bytes: BIG as u64, ..key(n) };
        let cache = ChunkCache::new((16 * BIG) as u64);
        let held = chunk(BIG, 100);
        cache.insert(big_key(0), Arc::clone(&held));
        for n in 1..16 {
            cache.insert(big_key(n), chunk(BIG, n as u8));
        }
        assert_eq!(cache.spare_bytes(), 0, "nothing pushed out yet");
        for n in 16..20 {
            cache.insert(big_key(n), chunk(BIG, n as u8));
        }
        assert!((0..4).all(|n| !cache.contains(&big_key(n))), "0-3 pushed out");
        // Room for two (16 * BIG / 8): 0 is still held by a read, so 1 and 2 were kept,
        // then 3 pushed out the oldest, 1.
        assert_eq!(cache.spare_bytes(), 2 * BIG);
        let firsts: Vec<u8> = [cache.buffer(BIG), cache.buffer(BIG)].iter().map(|b| b[0]).collect();
        assert_eq!(firsts, [2, 3], "old buffers, oldest first, with their old bytes");
        assert_eq!(cache.spare_bytes(), 0);
        assert_eq!(cache.buffer(BIG), vec![0; BIG], "none left: a new one");
        assert_eq!(held[0], 100);
    }

    #[test]
    fn short_buffers_are_not_kept_and_a_new_length_pushes_out_old_spares() {
        let cache = ChunkCache::new(room(8));
        for n in 0..16 {
            cache.insert(key(n), chunk(LEN, n as u8));
        }
        assert_eq!(cache.spare_bytes(), 0, "chunks under MIN_SPARE_BYTES leave no spare");
        let cache = ChunkCache::new((16 * MIN_SPARE_BYTES) as u64);
        let mut lru = cache.lock();
        for len in [MIN_SPARE_BYTES, MIN_SPARE_BYTES, 2 * MIN_SPARE_BYTES] {
            cache.keep_spare(&mut lru, vec![1; len]);
        }
        let lens: Vec<usize> = lru.spares.iter().map(Vec::len).collect();
        assert_eq!(lens, [2 * MIN_SPARE_BYTES], "the new length took the room of the old ones");
        drop(lru);
        assert_eq!(cache.buffer(MIN_SPARE_BYTES), vec![0; MIN_SPARE_BYTES]);
        assert_eq!(cache.spare_bytes(), 2 * MIN_SPARE_BYTES);
    }
}
