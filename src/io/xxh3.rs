//! XXH3-64 (seed 0) over bytes that come in pieces, with its inner loops written for AVX2.
//!
//! `twox-hash` computes the same values, and [`super::checksum`](mod@super::checksum) uses
//! it for bytes at hand whole. Its streaming hasher, though, compiled into Atlas, kept the
//! eight accumulators in memory between stripes: a store-to-load round trip on every 32
//! bytes, 15-17 GB/s where its one-shot loop and this one run at 50-58 (BENCHMARKS.md,
//! sixteenth round). Verifying a read hashes every byte it returns, so that loop is on
//! every read's path. Here the accumulators are locals of the loop over stripes, so they
//! stay in registers. A second loop also copies each stripe out with streaming stores as
//! it hashes it ([`Xxh3Stream::update_streaming`]): the rows of a chunk copied into a
//! caller's array are hashed on the way, with no second pass over them.
//!
//! The algorithm (XXH3's "long" hash, for inputs over 240 bytes): eight 64-bit lanes
//! accumulate 64-byte stripes, each against the secret at 8 bytes further on; after every
//! 16 stripes (a block) the lanes are scrambled. At the end come the stripes of the last,
//! partial block, then the input's last 64 bytes (even if they overlap those), then a merge
//! of the lanes. Inputs of 1 KiB or less are hashed whole by `twox-hash`.
//!
//! The AVX2 loops hold some of the crate's few `unsafe` blocks (see docs/ARCHITECTURE.md):
//! unaligned loads and stores of 32 bytes from slices checked to hold them, and streaming
//! stores of 16 bytes to slices checked to hold them and to start on 16 bytes.

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
    acc: Accumulator,
    total_bytes: u64,
    /// Bytes not yet accumulated: a stripe is accumulated only once a byte follows it, since
    /// the last one (whole or not) is the end's to handle, and the first block is held whole
    /// until a byte follows it (an input that short is hashed whole).
    held: [u8; BLOCK_BYTES],
    held_len: usize,
}

/// What the stripes accumulated so far left.
struct Accumulator {
    lanes: Lanes,
    /// Stripes accumulated into the current block: once it has all of them, it is scrambled
    /// before the next stripe, or the last, is accumulated.
    stripes: usize,
    /// The last 64 bytes accumulated, for a last stripe that reaches back.
    last_stripe: [u8; STRIPE_BYTES],
    any: bool,
}

impl Accumulator {
    /// Accumulates whole stripes, each followed by more input.
    fn add(&mut self, stripes: &[u8]) {
        if stripes.is_empty() {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { avx2::accumulate_stripes(self, stripes) };
        }
        accumulate_stripes_plainly(&mut self.lanes, &mut self.stripes, stripes);
        self.last_stripe.copy_from_slice(&stripes[stripes.len() - STRIPE_BYTES..]);
        self.any = true;
    }
}

impl Xxh3Stream {
    pub(crate) fn new() -> Self {
        let acc = Accumulator { lanes: INITIAL_LANES, stripes: 0, last_stripe: [0; STRIPE_BYTES], any: false };
        Self { acc, total_bytes: 0, held: [0; BLOCK_BYTES], held_len: 0 }
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
            self.acc.add(&self.held);
        }
        // Runs of 1 KiB straight from the piece, holding back its last 1 to 1024 bytes.
        let blocks_bytes = (piece.len() - 1) / BLOCK_BYTES * BLOCK_BYTES;
        self.acc.add(&piece[..blocks_bytes]);
        let rest = &piece[blocks_bytes..];
        self.held[..rest.len()].copy_from_slice(rest);
        self.held_len = rest.len();
    }

    /// Adds `src` and copies it into `dst` with streaming stores, in one pass over it: the
    /// caller fences the stores ([`Streamer`](super::Streamer) does). `more_follows`
    /// promises a later piece (of a byte at least), so that `src` need hold back nothing.
    /// Returns false, having done neither, unless the CPU has AVX2, `dst` (as long as
    /// `src`) starts on 16 bytes, and `src` is whole stripes, as are the bytes before it.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    pub(super) fn update_streaming(&mut self, src: &[u8], dst: &mut [u8], more_follows: bool) -> bool {
        let len = src.len();
        let fits = dst.len() == len && dst.as_ptr().addr().is_multiple_of(16);
        if !(fits && len > 0 && len.is_multiple_of(STRIPE_BYTES) && has_avx2()) {
            return false;
        }
        // Called for every row of a chunk copied out: the rows between its first and last
        // take the shortest way.
        if self.held_len == 0 && self.acc.any && more_follows {
            self.total_bytes += len as u64;
            // SAFETY: the CPU has AVX2, checked above.
            unsafe { avx2::accumulate_stripes_streaming(&mut self.acc, src, dst) };
            return true;
        }
        // SAFETY: the CPU has AVX2, checked above.
        self.held_len.is_multiple_of(STRIPE_BYTES) && unsafe { self.update_streaming_at_ends(src, dst, more_follows) }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn update_streaming(&mut self, _src: &[u8], _dst: &mut [u8], _more_follows: bool) -> bool {
        false
    }

    /// [`Xxh3Stream::update_streaming`] of the first bytes, held, or of the first bytes after
    /// held ones, or of the last.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline(never)]
    fn update_streaming_at_ends(&mut self, src: &[u8], dst: &mut [u8], more_follows: bool) -> bool {
        let len = src.len();
        self.total_bytes += len as u64;
        if !self.acc.any && self.held_len + len <= BLOCK_BYTES {
            self.held[self.held_len..self.held_len + len].copy_from_slice(src);
            self.held_len += len;
            avx2::stream_stripes(src, dst);
            return true;
        }
        // Bytes follow the held ones now. A stripe is accumulated once a byte follows it:
        // all of `src` if more input does, else all but its last stripe, held.
        let held_len = std::mem::take(&mut self.held_len);
        self.acc.add(&self.held[..held_len]);
        let (body, last) = src.split_at(if more_follows { len } else { len - STRIPE_BYTES });
        let (body_dst, last_dst) = dst.split_at_mut(body.len());
        if !body.is_empty() {
            avx2::accumulate_stripes_streaming(&mut self.acc, body, body_dst);
        }
        avx2::stream_stripes(last, last_dst);
        self.held[..last.len()].copy_from_slice(last);
        self.held_len = last.len();
        true
    }

    /// The hash of all pieces so far.
    pub(crate) fn finish(&self) -> u64 {
        let tail = &self.held[..self.held_len];
        if !self.acc.any {
            return twox_hash::XxHash3_64::oneshot(tail);
        }
        assert!(!tail.is_empty(), "more bytes were promised to `update_streaming`");
        let (mut lanes, mut stripes) = (self.acc.lanes, self.acc.stripes);
        accumulate_stripes_plainly(&mut lanes, &mut stripes, &tail[..(tail.len() - 1) / STRIPE_BYTES * STRIPE_BYTES]);
        if stripes == STRIPES_PER_BLOCK {
            scramble(&mut lanes);
        }
        let mut last = [0u8; STRIPE_BYTES];
        let reach_back = STRIPE_BYTES.saturating_sub(tail.len());
        last[..reach_back].copy_from_slice(&self.acc.last_stripe[STRIPE_BYTES - reach_back..]);
        last[reach_back..].copy_from_slice(&tail[tail.len() - (STRIPE_BYTES - reach_back)..]);
        accumulate_stripe(&mut lanes, &last, &SECRET[LAST_STRIPE_KEY_AT..]);
        merge(&lanes, self.total_bytes)
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// Accumulates whole stripes into `lanes`, `stripes` of the current block accumulated
/// before them; a block that has all its stripes is scrambled before the next one.
fn accumulate_stripes_plainly(lanes: &mut Lanes, stripes: &mut usize, bytes: &[u8]) {
    for stripe in bytes.chunks_exact(STRIPE_BYTES) {
        if *stripes == STRIPES_PER_BLOCK {
            scramble(lanes);
            *stripes = 0;
        }
        accumulate_stripe(lanes, stripe, &SECRET[8 * *stripes..]);
        *stripes += 1;
    }
}

fn scramble(lanes: &mut Lanes) {
    for (lane, key) in lanes.iter_mut().zip(SECRET[SCRAMBLE_KEY_AT..].chunks_exact(8)) {
        *lane = (*lane ^ (*lane >> 47) ^ word(key)).wrapping_mul(PRIME32_1);
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
        __m128i, __m256i, _mm_stream_si128, _mm256_add_epi64, _mm256_castsi256_si128, _mm256_extracti128_si256,
        _mm256_loadu_si256, _mm256_mul_epu32, _mm256_set1_epi64x, _mm256_shuffle_epi32, _mm256_slli_epi64,
        _mm256_srli_epi64, _mm256_storeu_si256, _mm256_xor_si256,
    };

    use super::{Accumulator, BLOCK_BYTES, PRIME32_1, SCRAMBLE_KEY_AT, SECRET, STRIPE_BYTES, STRIPES_PER_BLOCK};

    /// `Accumulator::add` of whole stripes (at least one), four lanes to a register, the
    /// lanes in registers throughout.
    ///
    /// # Panics
    /// If `bytes` is empty.
    #[target_feature(enable = "avx2")]
    pub(super) fn accumulate_stripes(acc: &mut Accumulator, bytes: &[u8]) {
        assert!(!bytes.is_empty(), "stripes to accumulate");
        let (mut halves, mut s, mut rest) = (load_lanes(acc), acc.stripes, bytes);
        let mut data = [halves[0]; 2];
        while !rest.is_empty() {
            if s == STRIPES_PER_BLOCK {
                scramble(&mut halves);
                s = 0;
            }
            if s == 0 && rest.len() >= BLOCK_BYTES {
                // A whole block, its keys fixed in the unrolled loop: 10% faster than
                // stripe by stripe.
                for (k, stripe) in rest[..BLOCK_BYTES].chunks_exact(STRIPE_BYTES).enumerate() {
                    data = load_stripe(stripe);
                    mix(&mut halves, data, k);
                }
                (s, rest) = (STRIPES_PER_BLOCK, &rest[BLOCK_BYTES..]);
            } else {
                data = load_stripe(&rest[..STRIPE_BYTES]);
                mix(&mut halves, data, s);
                (s, rest) = (s + 1, &rest[STRIPE_BYTES..]);
            }
        }
        store_lanes(acc, halves, data, s);
    }

    /// [`accumulate_stripes`], each stripe also copied into `dst` with streaming stores as
    /// it goes by. Stripe by stripe: for the rows of a chunk, a stripe or two, the loop of
    /// whole blocks made the copy 5% slower (and so did a `zip` of the stripes with `dst`'s,
    /// which compiled to loading each stripe twice).
    ///
    /// # Panics
    /// If `bytes` is empty, or `dst` is not as long or does not start on 16 bytes.
    #[target_feature(enable = "avx2")]
    pub(super) fn accumulate_stripes_streaming(acc: &mut Accumulator, bytes: &[u8], dst: &mut [u8]) {
        assert!(!bytes.is_empty(), "stripes to accumulate");
        let (mut halves, mut s) = (load_lanes(acc), acc.stripes);
        let (mut data, mut dst) = ([halves[0]; 2], stream_target(dst, bytes.len()));
        for stripe in bytes.chunks_exact(STRIPE_BYTES) {
            if s == STRIPES_PER_BLOCK {
                scramble(&mut halves);
                s = 0;
            }
            data = load_stripe(stripe);
            if let Some(out) = dst.next() {
                stream(out, data);
            }
            mix(&mut halves, data, s);
            s += 1;
        }
        store_lanes(acc, halves, data, s);
    }

    #[target_feature(enable = "avx2")]
    #[allow(clippy::cast_ptr_alignment)] // the loads take any alignment
    fn load_lanes(acc: &Accumulator) -> [__m256i; 2] {
        assert_eq!(acc.lanes.len(), 8, "two registers of lanes");
        let lanes = acc.lanes.as_ptr().cast::<__m256i>();
        // SAFETY: `lanes` is 8 u64, the two 32-byte loads; they take any alignment.
        unsafe { [_mm256_loadu_si256(lanes), _mm256_loadu_si256(lanes.add(1))] }
    }

    /// Leaves in `acc` the lanes, `last` (the stripe accumulated last) and the stripes of
    /// the current block.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::cast_ptr_alignment)] // the stores take any alignment
    fn store_lanes(acc: &mut Accumulator, halves: [__m256i; 2], last: [__m256i; 2], stripes: usize) {
        let (lanes, last_stripe) = (acc.lanes.as_mut_ptr().cast::<__m256i>(), acc.last_stripe.as_mut_ptr().cast());
        // SAFETY: `lanes` is 8 u64 and `last_stripe` 64 bytes: two 32-byte stores each,
        // unaligned.
        unsafe {
            _mm256_storeu_si256(lanes, halves[0]);
            _mm256_storeu_si256(lanes.add(1), halves[1]);
            _mm256_storeu_si256(last_stripe, last[0]);
            _mm256_storeu_si256(last_stripe.add(1), last[1]);
        }
        (acc.stripes, acc.any) = (stripes, true);
    }

    #[target_feature(enable = "avx2")]
    fn load_stripe(stripe: &[u8]) -> [__m256i; 2] {
        [load(stripe), load(&stripe[32..])]
    }

    /// Accumulates a stripe's two registers, the stripe `s` of its block.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn mix(halves: &mut [__m256i; 2], data: [__m256i; 2], s: usize) {
        for (h, half) in halves.iter_mut().enumerate() {
            let mixed = _mm256_xor_si256(data[h], load(&SECRET[8 * s + 32 * h..]));
            let product = _mm256_mul_epu32(mixed, _mm256_srli_epi64::<32>(mixed));
            // Each 64-bit word swapped with its neighbour.
            let swapped = _mm256_shuffle_epi32::<0b0100_1110>(data[h]);
            *half = _mm256_add_epi64(*half, _mm256_add_epi64(product, swapped));
        }
    }

    #[target_feature(enable = "avx2")]
    fn scramble(halves: &mut [__m256i; 2]) {
        let prime = _mm256_set1_epi64x(PRIME32_1.cast_signed());
        for (h, half) in halves.iter_mut().enumerate() {
            let mixed = _mm256_xor_si256(*half, _mm256_srli_epi64::<47>(*half));
            let mixed = _mm256_xor_si256(mixed, load(&SECRET[SCRAMBLE_KEY_AT + 32 * h..]));
            let low = _mm256_mul_epu32(mixed, prime);
            let high = _mm256_mul_epu32(_mm256_srli_epi64::<32>(mixed), prime);
            *half = _mm256_add_epi64(low, _mm256_slli_epi64::<32>(high));
        }
    }

    /// Copies whole stripes into `dst` with streaming stores.
    ///
    /// # Panics
    /// If `dst` is not as long as `bytes` or does not start on 16 bytes.
    #[target_feature(enable = "avx2")]
    pub(super) fn stream_stripes(bytes: &[u8], dst: &mut [u8]) {
        for (stripe, out) in bytes.chunks_exact(STRIPE_BYTES).zip(stream_target(dst, bytes.len())) {
            stream(out, load_stripe(stripe));
        }
    }

    /// `dst` in stripes, checked to be `len` bytes from a 16-byte boundary.
    fn stream_target(dst: &mut [u8], len: usize) -> std::slice::ChunksExactMut<'_, u8> {
        assert!(dst.len() == len && dst.as_ptr().addr().is_multiple_of(16), "stripes to store on 16 bytes");
        dst.chunks_exact_mut(STRIPE_BYTES)
    }

    /// Writes a stripe's two registers into `out` with four streaming stores.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::cast_ptr_alignment)] // `out` starts on 16 bytes: its caller's check
    fn stream(out: &mut [u8], data: [__m256i; 2]) {
        assert_eq!(out.len(), STRIPE_BYTES, "a stripe to store");
        assert!(out.as_ptr().addr().is_multiple_of(16), "a stripe to store on 16 bytes");
        let out = out.as_mut_ptr().cast::<__m128i>();
        // SAFETY: `out` is 64 writable bytes, the four 16-byte stores, on 16 bytes (both
        // checked above); the caller fences the stores.
        unsafe {
            _mm_stream_si128(out, _mm256_castsi256_si128(data[0]));
            _mm_stream_si128(out.add(1), _mm256_extracti128_si256::<1>(data[0]));
            _mm_stream_si128(out.add(2), _mm256_castsi256_si128(data[1]));
            _mm_stream_si128(out.add(3), _mm256_extracti128_si256::<1>(data[1]));
        }
    }

    #[target_feature(enable = "avx2")]
    fn load(bytes: &[u8]) -> __m256i {
        assert!(bytes.len() >= 32, "32 bytes to load");
        // SAFETY: 32 bytes are readable (checked above); the load takes any alignment.
        unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
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
        let bytes = sample(8 * BLOCK_BYTES + 5 * STRIPE_BYTES);
        for first_stripes in [0, 5, STRIPES_PER_BLOCK] {
            let (mut plain, mut plain_stripes) = (INITIAL_LANES, first_stripes);
            accumulate_stripes_plainly(&mut plain, &mut plain_stripes, &bytes);
            let mut acc =
                Accumulator { lanes: INITIAL_LANES, stripes: first_stripes, last_stripe: [0; 64], any: false };
            acc.add(&bytes);
            assert_eq!((plain, plain_stripes), (acc.lanes, acc.stripes), "{first_stripes} stripes before");
            assert_eq!(acc.last_stripe, bytes[bytes.len() - STRIPE_BYTES..]);
            assert_ne!(plain, INITIAL_LANES);
        }
    }

    /// `update_streaming` where it applies, `update` (and a plain copy) where it does not:
    /// the hash and the copy are those of the whole.
    fn hash_and_copy_in_rows(bytes: &[u8], rows: &[usize], dst_offset: usize) -> (u64, Vec<u8>, usize) {
        let mut out = vec![0u8; bytes.len() + 64];
        let start = out.as_ptr().align_offset(16) + dst_offset;
        let mut stream = Xxh3Stream::new();
        let (mut at, mut streamed) = (0, 0);
        for &len in rows.iter().chain([&(bytes.len() - rows.iter().sum::<usize>())]) {
            let (src, dst) = (&bytes[at..at + len], &mut out[start + at..start + at + len]);
            if stream.update_streaming(src, dst, at + len < bytes.len()) {
                streamed += 1;
            } else {
                dst.copy_from_slice(src);
                stream.update(src);
            }
            at += len;
        }
        drop(crate::io::Streamer::new(true)); // fences the stores above
        (stream.finish(), out[start..start + bytes.len()].to_vec(), streamed)
    }

    #[test]
    fn rows_copied_while_hashed_hash_and_land_as_the_whole() {
        let bytes = sample(40_000);
        for row in [64, 128, 256, 960, 1024, 1088, 4096, 100] {
            for len in [0, 64, 1024, 1088, 5000, 40_000] {
                let rows = vec![row; len / row];
                let (hash, copy, streamed) = hash_and_copy_in_rows(&bytes[..len], &rows, 0);
                assert_eq!(hash, xxhash_rust::xxh3::xxh3_64(&bytes[..len]), "rows of {row}, {len} bytes");
                assert_eq!(copy, &bytes[..len]);
                #[cfg(target_arch = "x86_64")]
                let fused = has_avx2();
                #[cfg(not(target_arch = "x86_64"))]
                let fused = false;
                if fused && row % STRIPE_BYTES == 0 {
                    assert!(streamed >= rows.len(), "rows of {row}, {len} bytes: {streamed} streamed");
                }
            }
        }
        // A destination off 16 bytes is refused, and the caller copies and hashes instead.
        let (hash, copy, streamed) = hash_and_copy_in_rows(&bytes[..4096], &[1024; 4], 8);
        assert_eq!((hash, copy.as_slice(), streamed), (xxhash_rust::xxh3::xxh3_64(&bytes[..4096]), &bytes[..4096], 0));
    }

    proptest::proptest! {
        #[test]
        fn any_mix_of_streamed_and_added_rows_hashes_to_xxh3_64_of_the_whole(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..6000),
            rows in proptest::collection::vec(prop_oneof_rows(), 0..12),
        ) {
            let mut rows: Vec<usize> = rows;
            while rows.iter().sum::<usize>() > bytes.len() {
                rows.pop();
            }
            let (hash, copy, _) = hash_and_copy_in_rows(&bytes, &rows, 0);
            proptest::prop_assert_eq!(hash, xxhash_rust::xxh3::xxh3_64(&bytes));
            proptest::prop_assert_eq!(copy, bytes);
        }
    }

    /// Rows of whole stripes mostly, and now and then not.
    fn prop_oneof_rows() -> impl proptest::strategy::Strategy<Value = usize> {
        use proptest::strategy::Strategy;
        proptest::prop_oneof![4 => (1usize..40).prop_map(|n| n * STRIPE_BYTES), 1 => 0usize..2000]
    }
}
