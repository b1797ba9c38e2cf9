//! Checksums: xxh3-64 (seed 0) over a chunk's raw (uncompressed, unfiltered) element
//! bytes, so a block keeps its checksum through any recompression. The crate's other xxh3
//! uses (a fragment's index, the metadata file's checksum) call [`checksum`] too.
//!
//! Bytes at hand whole are hashed by `twox-hash`, which picks its AVX2 loop at run time
//! when the CPU has it (about twice the speed of the SSE2 loop a plain x86-64 build
//! compiles in); bytes in pieces by [`Xxh3Stream`] (see there why). The values are
//! XXH3-64's, which the tests below check against `xxhash-rust` and `tests/it/compat.rs`
//! against fixtures.

use twox_hash::XxHash3_64;

use super::xxh3::Xxh3Stream;

/// The checksum of raw chunk bytes.
pub(crate) fn checksum(raw: &[u8]) -> u64 {
    XxHash3_64::oneshot(raw)
}

/// [`checksum`] of bytes that come in pieces: the same value as over their concatenation,
/// so each piece can be hashed while it is still in cache.
pub(crate) struct Checksummer(Xxh3Stream);

impl Checksummer {
    pub(crate) fn new() -> Self {
        Self(Xxh3Stream::new())
    }

    /// Adds the next piece.
    pub(crate) fn update(&mut self, piece: &[u8]) {
        self.0.update(piece);
    }

    /// Adds the next piece and copies it into `dst` in the same pass, if it can: see
    /// [`Streamer::copy_hashing`](super::Streamer::copy_hashing), its one caller, which
    /// fences the stores.
    #[inline]
    pub(super) fn update_streaming(&mut self, piece: &[u8], dst: &mut [u8], more_follows: bool) -> bool {
        self.0.update_streaming(piece, dst, more_follows)
    }

    /// The checksum of all pieces so far.
    pub(crate) fn finish(&self) -> u64 {
        self.0.finish()
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

    #[test]
    fn checksums_are_xxh3_64_with_seed_0() {
        // Every length class of XXH3 (0, 1-3, 4-8, 9-16, 17-128, 129-240, longer, and past
        // one block of stripes) against an independent implementation.
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in [0, 1, 3, 4, 8, 9, 16, 17, 128, 129, 240, 241, 1024, 1025, 65_536, 300_000] {
            let raw = &bytes[..len];
            assert_eq!(checksum(raw), xxhash_rust::xxh3::xxh3_64(raw), "length {len}");
        }
        // The reference value of the empty input (xxHash's own test vectors).
        assert_eq!(checksum(&[]), 0x2D06_8005_38D3_94C2);
    }
}
