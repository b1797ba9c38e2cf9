//! Block checksums: xxh3-64 over a chunk's raw (uncompressed, unfiltered) element bytes, so
//! a block keeps its checksum through any recompression.

/// The checksum of raw chunk bytes.
pub(crate) fn checksum(raw: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(raw)
}

/// [`checksum`] of bytes that come in pieces: the same value as over their concatenation,
/// so each piece can be hashed while it is still in cache.
pub(crate) struct Checksummer(xxhash_rust::xxh3::Xxh3Default);

impl Checksummer {
    pub(crate) fn new() -> Self {
        Self(xxhash_rust::xxh3::Xxh3Default::new())
    }

    /// Adds the next piece.
    pub(crate) fn update(&mut self, piece: &[u8]) {
        self.0.update(piece);
    }

    /// The checksum of all pieces so far.
    pub(crate) fn finish(&self) -> u64 {
        self.0.digest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checksum_in_pieces_is_the_checksum_of_the_whole() {
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for piece in [1, 100, 4096, 16 << 10, 100_000] {
            let mut summer = Checksummer::new();
            bytes.chunks(piece).for_each(|p| summer.update(p));
            assert_eq!(summer.finish(), checksum(&bytes), "pieces of {piece}");
        }
        assert_eq!(Checksummer::new().finish(), checksum(&[]));
    }
}
