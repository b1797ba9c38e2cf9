//! zstd dictionaries: trained from an array's first chunks and kept in its schema, they let
//! small chunks compress like large ones. A dictionary block is still one standard zstd
//! frame, but it decodes only with the same dictionary (and not on the GPU path).

/// A zstd dictionary and a key that tells dictionaries apart in per-thread caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ZstdDict {
    key: u64,
    bytes: Vec<u8>,
}

/// Fewest samples training needs to produce a useful dictionary.
pub(crate) const MIN_TRAINING_SAMPLES: usize = 16;

impl ZstdDict {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        // Never 0: key 0 stands for "no dictionary" in the codec's caches.
        let key = crate::io::checksum(&bytes) | 1;
        Self { key, bytes }
    }

    /// A dictionary under a chosen key, to test what a key collision does.
    #[cfg(test)]
    pub(crate) fn with_key(key: u64, bytes: Vec<u8>) -> Self {
        Self { key, bytes }
    }

    pub(crate) fn key(&self) -> u64 {
        self.key
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
