//! XXH3-64 (seed 0) over bytes that come in pieces, with its inner loop written for AVX2.
//!
//! `twox-hash` computes the same values, and [`super::checksum`](mod@super::checksum) uses
//! it for bytes at hand whole. Its streaming hasher, though, compiled into Atlas, kept the
//! eight accumulators in memory between stripes: a store-to-load round trip on every 32
//! bytes, 15-17 GB/s where its one-shot loop and this one run at 50-58 (BENCHMARKS.md,
//! sixteenth round). Verifying a read hashes every byte it returns, piece by piece while
//! each is in cache, so that loop is on every read's path. Here the accumulators are locals
//! of the loop over whole 1 KiB blocks, so they stay in registers.
//!
//! The algorithm (XXH3's "long" hash, for inputs over 240 bytes): eight 64-bit lanes
//! accumulate 64-byte stripes, each against the secret at 8 bytes further on; after every
//! 16 stripes (a block) the lanes are scrambled. At the end come the stripes of the last,
//! partial block, then the input's last 64 bytes (even if they overlap those), then a merge
//! of the lanes. Inputs of 1 KiB or less are hashed whole by `twox-hash`.
//!
//! The AVX2 loop holds one of the crate's few `unsafe` blocks (see docs/ARCHITECTURE.md):
//! unaligned loads and stores of 32 bytes from slices checked to hold them.

/// XXH3's default secret (`kSecret` in the reference `xxhash.h`).
const SECRET: [u8; 192] = [
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c, 0xde, 0xd4, 0x6d,
    0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f, 0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0,
    0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21, 0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0,
    0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c, 0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b,
    0x1b, 0x53, 0x2e, 0xa3, 0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac,
    0xd8, 0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d, 0x8a, 0x51,
    0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64, 0xea, 0xc5, 0xac, 0x83, 0x34,
    0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb, 0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49,
    0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e, 0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8,
    0xd1, 0x7a, 0xd0, 0x31, 0xce, 0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b,
    0x40, 0x7e,
];
const STRIPE_BYTES: usize = 64;
/// Stripes between scrambles: each stripe uses the secret 8 bytes further on.
const STRIPES_PER_BLOCK: usize = (SECRET.len() - STRIPE_BYTES) / 8;
const BLOCK_BYTES: usize = STRIPE_BYTES * STRIPES_PER_BLOCK;
/// Where in the secret the scramble key, the last stripe's key and the merge key start.
const SCRAMBLE_KEY_AT: usize = SECRET.len() - STRIPE_BYTES;
const LAST_STRIPE_KEY_AT: usize = SECRET.len() - STRIPE_BYTES - 7;
const MERGE_KEY_AT: usize = 11;

const PRIME32_1: u64 = 0x9E37_79B1;
const PRIME32_2: u64 = 0x85EB_CA77;
const PRIME32_3: u64 = 0xC2B2_AE3D;
const PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME64_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME64_3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME64_4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME64_5: u64 = 0x27D4_EB2F_1656_67C5;
const INITIAL_LANES: Lanes = [PRIME32_3, PRIME64_1, PRIME64_2, PRIME64_3, PRIME64_4, PRIME32_2, PRIME64_5, PRIME32_1];

type Lanes = [u64; 8];

/// The XXH3-64 of bytes fed in pieces: the same value as over their concatenation.
pub(crate) struct Xxh3Stream {
    blocks: Blocks,
    total_bytes: u64,
    /// Bytes not yet accumulated: a block is accumulated only once a byte follows it, since
    /// the last one (whole or not) is the end's to handle.
    held: [u8; BLOCK_BYTES],
    held_len: usize,
}

/// What the whole blocks accumulated so far left.
struct Blocks {
    lanes: Lanes,
    /// Their last 64 bytes, for a last stripe that reaches back.
    last_stripe: [u8; STRIPE_BYTES],
    any: bool,
}

impl Blocks {
    fn add(&mut self, blocks: &[u8]) {
        accumulate_blocks(&mut self.lanes, blocks);
        self.last_stripe.copy_from_slice(&blocks[blocks.len() - STRIPE_BYTES..]);
        self.any = true;
    }
}

impl Xxh3Stream {
    pub(crate) fn new() -> Self {
        let blocks = Blocks { lanes: INITIAL_LANES, last_stripe: [0; STRIPE_BYTES], any: false };
        Self { blocks, total_bytes: 0, held: [0; BLOCK_BYTES], held_len: 0 }
    }

    /// Adds the next piece.
    pub(crate) fn update(&mut self, mut piece: &[u8]) {
        self.total_bytes += piece.len() as u64;
        if self.held_len > 0 || piece.len() <= BLOCK_BYTES {
            let taken = (BLOCK_BYTES - self.held_len).min(piece.len());
            self.held[self.held_len..self.held_len + taken].copy_from_slice(&piece[..taken]);
            self.held_len += taken;
            piece = &piece[taken..];
            if piece.is_empty() {
                return;
            }
            self.blocks.add(&self.held);
        }
        // Whole blocks straight from the piece, holding back its last 1 to 1024 bytes.
        let blocks_bytes = (piece.len() - 1) / BLOCK_BYTES * BLOCK_BYTES;
        if blocks_bytes > 0 {
            self.blocks.add(&piece[..blocks_bytes]);
        }
        let rest = &piece[blocks_bytes..];
        self.held[..rest.len()].copy_from_slice(rest);
        self.held_len = rest.len();
    }

    /// The hash of all pieces so far.
    pub(crate) fn finish(&self) -> u64 {
        let tail = &self.held[..self.held_len];
        if !self.blocks.any {
            return twox_hash::XxHash3_64::oneshot(tail);
        }
        let mut lanes = self.blocks.lanes;
        let stripes = tail[..tail.len() - 1].chunks_exact(STRIPE_BYTES);
        for (stripe, key) in stripes.zip(SECRET.windows(STRIPE_BYTES).step_by(8)) {
            accumulate_stripe(&mut lanes, stripe, key);
        }
        let mut last = [0u8; STRIPE_BYTES];
        let reach_back = STRIPE_BYTES.saturating_sub(tail.len());
        last[..reach_back].copy_from_slice(&self.blocks.last_stripe[STRIPE_BYTES - reach_back..]);
        last[reach_back..].copy_from_slice(&tail[tail.len() - (STRIPE_BYTES - reach_back)..]);
        accumulate_stripe(&mut lanes, &last, &SECRET[LAST_STRIPE_KEY_AT..]);
        merge(&lanes, self.total_bytes)
    }
}

/// Accumulates whole blocks into `lanes`, scrambling after each.
fn accumulate_blocks(lanes: &mut Lanes, blocks: &[u8]) {
    debug_assert_eq!(blocks.len() % BLOCK_BYTES, 0);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { avx2::accumulate_blocks(lanes, blocks) };
    }
    accumulate_blocks_plainly(lanes, blocks);
}

fn accumulate_blocks_plainly(lanes: &mut Lanes, blocks: &[u8]) {
    for block in blocks.chunks_exact(BLOCK_BYTES) {
        for (stripe, key) in block.chunks_exact(STRIPE_BYTES).zip(SECRET.windows(STRIPE_BYTES).step_by(8)) {
            accumulate_stripe(lanes, stripe, key);
        }
        for (lane, key) in lanes.iter_mut().zip(SECRET[SCRAMBLE_KEY_AT..].chunks_exact(8)) {
            *lane = (*lane ^ (*lane >> 47) ^ word(key)).wrapping_mul(PRIME32_1);
        }
    }
}

/// Each lane gains its neighbour's input word and the product of the halves of its own
/// input word xor the key.
fn accumulate_stripe(lanes: &mut Lanes, stripe: &[u8], key: &[u8]) {
    for (i, (data, key)) in stripe.chunks_exact(8).zip(key.chunks_exact(8)).enumerate() {
        let data = word(data);
        let mixed = data ^ word(key);
        lanes[i ^ 1] = lanes[i ^ 1].wrapping_add(data);
        lanes[i] = lanes[i].wrapping_add((mixed & 0xFFFF_FFFF) * (mixed >> 32));
    }
}

/// The final hash of the lanes of `total_bytes` of input.
fn merge(lanes: &Lanes, total_bytes: u64) -> u64 {
    let key = &SECRET[MERGE_KEY_AT..];
    let mut hash = total_bytes.wrapping_mul(PRIME64_1);
    for (pair, key) in lanes.chunks_exact(2).zip(key.chunks_exact(16)) {
        let product = u128::from(pair[0] ^ word(&key[..8])) * u128::from(pair[1] ^ word(&key[8..]));
        hash = hash.wrapping_add(product as u64 ^ (product >> 64) as u64);
    }
    hash ^= hash >> 37;
    hash = hash.wrapping_mul(0x1656_6791_9E37_79F9);
    hash ^ (hash >> 32)
}

fn word(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi64, _mm256_loadu_si256, _mm256_mul_epu32, _mm256_set1_epi64x, _mm256_shuffle_epi32,
        _mm256_slli_epi64, _mm256_srli_epi64, _mm256_storeu_si256, _mm256_xor_si256,
    };

    use super::{BLOCK_BYTES, Lanes, PRIME32_1, SCRAMBLE_KEY_AT, SECRET, STRIPE_BYTES};

    /// `accumulate_blocks_plainly`, four lanes to a register, the lanes in registers
    /// throughout.
    #[target_feature(enable = "avx2")]
    pub(super) fn accumulate_blocks(lanes: &mut Lanes, blocks: &[u8]) {
        let mut halves = [load(&lanes_bytes(lanes)[..32]), load(&lanes_bytes(lanes)[32..])];
        let prime = _mm256_set1_epi64x(PRIME32_1.cast_signed());
        for block in blocks.chunks_exact(BLOCK_BYTES) {
            for (s, stripe) in block.chunks_exact(STRIPE_BYTES).enumerate() {
                for (h, half) in halves.iter_mut().enumerate() {
                    let data = load(&stripe[32 * h..]);
                    let mixed = _mm256_xor_si256(data, load(&SECRET[8 * s + 32 * h..]));
                    let product = _mm256_mul_epu32(mixed, _mm256_srli_epi64::<32>(mixed));
                    // Each 64-bit word swapped with its neighbour.
                    let swapped = _mm256_shuffle_epi32::<0b0100_1110>(data);
                    *half = _mm256_add_epi64(*half, _mm256_add_epi64(product, swapped));
                }
            }
            for (h, half) in halves.iter_mut().enumerate() {
                let mixed = _mm256_xor_si256(*half, _mm256_srli_epi64::<47>(*half));
                let mixed = _mm256_xor_si256(mixed, load(&SECRET[SCRAMBLE_KEY_AT + 32 * h..]));
                let low = _mm256_mul_epu32(mixed, prime);
                let high = _mm256_mul_epu32(_mm256_srli_epi64::<32>(mixed), prime);
                *half = _mm256_add_epi64(low, _mm256_slli_epi64::<32>(high));
            }
        }
        for (h, half) in halves.into_iter().enumerate() {
            let out: &mut [u64] = &mut lanes[4 * h..4 * h + 4];
            // SAFETY: `out` holds 4 u64, the 32 bytes stored; the store takes any alignment.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), half) };
        }
    }

    #[target_feature(enable = "avx2")]
    fn load(bytes: &[u8]) -> __m256i {
        assert!(bytes.len() >= 32, "32 bytes to load");
        // SAFETY: 32 bytes are readable (checked above); the load takes any alignment.
        unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
    }

    fn lanes_bytes(lanes: &Lanes) -> [u8; 64] {
        let mut bytes = [0u8; 64];
        for (out, lane) in bytes.chunks_exact_mut(8).zip(lanes) {
            out.copy_from_slice(&lane.to_le_bytes());
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| ((i as u64).wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    #[test]
    fn pieces_of_any_size_hash_to_xxh3_64_of_the_whole() {
        let bytes = sample(40_000);
        let lens = (0..2200).step_by(7).chain([1023, 1024, 1025, 1087, 1088, 1089, 2048, 2049, 16_384, 40_000]);
        for len in lens {
            let want = xxhash_rust::xxh3::xxh3_64(&bytes[..len]);
            for piece in [1, 63, 64, 65, 1000, 1024, 1025, 4096, 16_384] {
                let mut stream = Xxh3Stream::new();
                bytes[..len].chunks(piece).for_each(|p| stream.update(p));
                assert_eq!(stream.finish(), want, "length {len} in pieces of {piece}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_split_of_any_bytes_hashes_to_xxh3_64_of_the_whole(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..5000),
            cuts in proptest::collection::vec(0usize..5000, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut stream = Xxh3Stream::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                stream.update(&bytes[start..cut]);
                start = cut;
            }
            proptest::prop_assert_eq!(stream.finish(), xxhash_rust::xxh3::xxh3_64(&bytes));
        }
    }

    #[test]
    fn the_avx2_loop_computes_what_the_plain_one_does() {
        let bytes = sample(8 * BLOCK_BYTES);
        let mut plain = INITIAL_LANES;
        accumulate_blocks_plainly(&mut plain, &bytes);
        let mut dispatched = INITIAL_LANES;
        accumulate_blocks(&mut dispatched, &bytes);
        assert_eq!(plain, dispatched);
        assert_ne!(plain, INITIAL_LANES);
    }
}
