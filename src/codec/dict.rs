//! zstd dictionaries: trained from an array's first chunks and kept in its schema, they let
//! small chunks compress like large ones. A dictionary block is still one standard zstd
//! frame, but it decodes only with the same dictionary (and not on the GPU path).

use std::sync::atomic::{AtomicU64, Ordering};

/// A zstd dictionary, and an id that the per-thread zstd contexts use to skip
/// comparing its bytes: ids are never reused, so a context made for this dictionary (or a
/// clone of it) serves it without a check. No hash of the bytes can serve so: a store's
/// metadata may hold a dictionary crafted to collide with another store's.
#[derive(Debug, Clone)]
pub(crate) struct ZstdDict {
    id: u64,
    bytes: Vec<u8>,
}

/// The next dictionary id; 0 is never given out.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Fewest samples training needs to produce a useful dictionary.
pub(crate) const MIN_TRAINING_SAMPLES: usize = 16;

impl ZstdDict {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        Self { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), bytes }
    }

    /// This dictionary's id, unique to it and its clones.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Trains a dictionary of at most `max_bytes` from `samples` (concatenated, with their
    /// sizes); `None` when zstd cannot train one from them (too few or too uniform).
    pub(crate) fn train(samples: &[u8], sizes: &[usize], max_bytes: usize) -> Option<Self> {
        if sizes.len() < MIN_TRAINING_SAMPLES {
            return None;
        }
        ::zstd::dict::from_continuous(samples, sizes, max_bytes).ok().map(Self::new)
    }
}
