//! Byte delta, Blosc2's "bytedelta" filter: after the shuffle, each plane is stored as the
//! differences between its neighbouring bytes (wrapping), so a plane that rises or falls
//! steadily (the middle bytes of a smooth field) becomes runs of small equal values that the
//! codec packs tighter. Bytes past the last whole element are left as they are, as the
//! shuffle leaves them.
//!
//! Decoding is a running sum, which no compiler vectorises: on x86-64 it runs on AVX2 where
//! the CPU has it, else on SSE2 (part of every x86-64 CPU), in two of the crate's few
//! `unsafe` calls, at about 20 and 13 GB/s against 3.6 GB/s for the plain loop
//! (docs/ARCHITECTURE.md, decision ff).

/// Replaces `bytes` (part of one plane) by the differences between each byte and the one
/// before it, the first one's taken from `prev`, the plane's byte before `bytes` (0 at the
/// plane's start). Returns the last byte as it was: the `prev` of the plane's next part.
pub(super) fn encode(bytes: &mut [u8], mut prev: u8) -> u8 {
    // Whole blocks copied out first, so that each difference reads original bytes and the
    // loop vectorises.
    let mut blocks = bytes.chunks_exact_mut(32);
    for block in &mut blocks {
        let original: [u8; 32] = (*block).try_into().expect("blocks of 32 bytes");
        block[0] = original[0].wrapping_sub(prev);
        for i in 1..32 {
            block[i] = original[i].wrapping_sub(original[i - 1]);
        }
        prev = original[31];
    }
    for byte in blocks.into_remainder() {
        (*byte, prev) = (byte.wrapping_sub(prev), *byte);
    }
    prev
}

/// Reverses [`encode`]: replaces `bytes` by their running sum from `prev` (the plane's
/// decoded byte before them, 0 at its start). Returns the last decoded byte.
pub(super) fn decode(bytes: &mut [u8], prev: u8) -> u8 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: `decode_avx2` needs AVX2, which the CPU was just found to have.
            return unsafe { decode_avx2(bytes, prev) };
        }
        // SAFETY: `decode_sse2` needs SSE2, which every x86-64 CPU has (it is part of the
        // architecture's baseline, always enabled by rustc for x86_64 targets).
        unsafe { decode_sse2(bytes, prev) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    decode_plain(bytes, prev)
}

/// [`decode`], a byte at a time.
fn decode_plain(bytes: &mut [u8], mut prev: u8) -> u8 {
    for byte in bytes {
        prev = prev.wrapping_add(*byte);
        *byte = prev;
    }
    prev
}

/// [`decode`] 16 bytes at a time: each block's running sum takes four shifted adds, and
/// the sum carried from earlier blocks is added last, so that the carry's chain from block
/// to block is one add.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn decode_sse2(bytes: &mut [u8], prev: u8) -> u8 {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_cvtsi128_si32, _mm_set1_epi8, _mm_shuffle_epi32, _mm_shufflehi_epi16,
        _mm_slli_si128, _mm_unpackhi_epi8,
    };
    let mut carry = _mm_set1_epi8(prev.cast_signed());
    let mut blocks = bytes.chunks_exact_mut(16);
    for block in &mut blocks {
        let loaded: [u8; 16] = (*block).try_into().expect("blocks of 16 bytes");
        let mut sums: __m128i = bytemuck::cast(loaded);
        sums = _mm_add_epi8(sums, _mm_slli_si128::<1>(sums));
        sums = _mm_add_epi8(sums, _mm_slli_si128::<2>(sums));
        sums = _mm_add_epi8(sums, _mm_slli_si128::<4>(sums));
        sums = _mm_add_epi8(sums, _mm_slli_si128::<8>(sums));
        // The block's total (its last sum) in every byte: byte 15 doubled into word 7,
        // word 7 into dword 3, dword 3 everywhere.
        let total = _mm_shuffle_epi32::<0xFF>(_mm_shufflehi_epi16::<0xFF>(_mm_unpackhi_epi8(sums, sums)));
        let decoded: [u8; 16] = bytemuck::cast(_mm_add_epi8(sums, carry));
        block.copy_from_slice(&decoded);
        carry = _mm_add_epi8(carry, total);
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // the low byte of a broadcast byte
    let prev = _mm_cvtsi128_si32(carry) as u8;
    decode_plain(blocks.into_remainder(), prev)
}

/// [`decode_sse2`] 32 bytes at a time: the running sum of each 16-byte lane as there, then
/// the low lane's total added to the high lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn decode_avx2(bytes: &mut [u8], prev: u8) -> u8 {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi8, _mm256_extract_epi8, _mm256_permute2x128_si256, _mm256_permute4x64_epi64,
        _mm256_set1_epi8, _mm256_shuffle_epi8, _mm256_slli_si256,
    };
    let mut carry = _mm256_set1_epi8(prev.cast_signed());
    // Picks byte 15 of each lane: its last running sum.
    let last_of_lane = _mm256_set1_epi8(15);
    let mut blocks = bytes.chunks_exact_mut(32);
    for block in &mut blocks {
        let loaded: [u8; 32] = (*block).try_into().expect("blocks of 32 bytes");
        let mut sums: __m256i = bytemuck::cast(loaded);
        sums = _mm256_add_epi8(sums, _mm256_slli_si256::<1>(sums));
        sums = _mm256_add_epi8(sums, _mm256_slli_si256::<2>(sums));
        sums = _mm256_add_epi8(sums, _mm256_slli_si256::<4>(sums));
        sums = _mm256_add_epi8(sums, _mm256_slli_si256::<8>(sums));
        // The low lane's total in every byte of the high lane, zeros in the low one.
        let lane_totals = _mm256_shuffle_epi8(sums, last_of_lane);
        sums = _mm256_add_epi8(sums, _mm256_permute2x128_si256::<0x08>(lane_totals, lane_totals));
        // The block's total (the high lane's last sum) in every byte.
        let total = _mm256_permute4x64_epi64::<0xFF>(_mm256_shuffle_epi8(sums, last_of_lane));
        let decoded: [u8; 32] = bytemuck::cast(_mm256_add_epi8(sums, carry));
        block.copy_from_slice(&decoded);
        carry = _mm256_add_epi8(carry, total);
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a byte, as extracted
    let prev = _mm256_extract_epi8::<0>(carry) as u8;
    decode_plain(blocks.into_remainder(), prev)
}

/// [`encode`] of each plane of a whole shuffled block of `elem_bytes`-byte elements.
pub(super) fn encode_planes(shuffled: &mut [u8], elem_bytes: usize) {
    for_each_plane(shuffled, elem_bytes, |plane| {
        encode(plane, 0);
    });
}

/// [`decode`] of each plane of a whole shuffled block of `elem_bytes`-byte elements.
pub(super) fn decode_planes(shuffled: &mut [u8], elem_bytes: usize) {
    for_each_plane(shuffled, elem_bytes, |plane| {
        decode(plane, 0);
    });
}

/// Runs `f` on each of the `elem_bytes` planes of a shuffled block (not on the bytes past
/// its last whole element).
fn for_each_plane(shuffled: &mut [u8], elem_bytes: usize, mut f: impl FnMut(&mut [u8])) {
    let n = shuffled.len() / elem_bytes.max(1);
    if n > 0 {
        shuffled[..n * elem_bytes].chunks_exact_mut(n).for_each(&mut f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decode_reverses_encode_in_any_split_and_matches_the_plain_running_sum(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            cut in any::<prop::sample::Index>(),
            prev in any::<u8>(),
        ) {
            // Encoded in two parts, the carry handed from one to the next.
            let mut coded = bytes.clone();
            let cut = cut.index(bytes.len() + 1);
            let (head, tail) = coded.split_at_mut(cut);
            let carry = encode(head, prev);
            encode(tail, carry);
            let expected: Vec<u8> = bytes.iter().scan(prev, |p, &b| { let d = b.wrapping_sub(*p); *p = b; Some(d) }).collect();
            prop_assert_eq!(&coded, &expected);

            // Decoded in two other parts, against the plain loop and the original bytes; each
            // vector kernel the CPU has, alone, gives the plain loop's bytes.
            let mut plain = coded.clone();
            let last = decode_plain(&mut plain, prev);
            #[cfg(target_arch = "x86_64")]
            {
                let mut sse2 = coded.clone();
                // SAFETY: SSE2 is part of x86-64.
                prop_assert_eq!(unsafe { decode_sse2(&mut sse2, prev) }, last);
                prop_assert_eq!(&sse2, &plain);
                if std::arch::is_x86_feature_detected!("avx2") {
                    let mut avx2 = coded.clone();
                    // SAFETY: the CPU has AVX2, checked just above.
                    prop_assert_eq!(unsafe { decode_avx2(&mut avx2, prev) }, last);
                    prop_assert_eq!(&avx2, &plain);
                }
            }
            let (head, tail) = coded.split_at_mut(bytes.len() - cut);
            let carry = decode(head, prev);
            prop_assert_eq!(decode(tail, carry), last);
            prop_assert_eq!(&coded, &bytes);
            prop_assert_eq!(&plain, &bytes);
        }

        #[test]
        fn planes_are_coded_apart_and_a_partial_last_element_is_left_alone(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            elem_bytes in 1usize..=8,
        ) {
            let mut coded = bytes.clone();
            encode_planes(&mut coded, elem_bytes);
            let n = bytes.len() / elem_bytes;
            for (plane, original) in coded[..n * elem_bytes].chunks(n.max(1)).zip(bytes.chunks(n.max(1))) {
                prop_assert_eq!(plane[0], original[0], "each plane starts from 0");
            }
            prop_assert_eq!(&coded[n * elem_bytes..], &bytes[n * elem_bytes..]);
            decode_planes(&mut coded, elem_bytes);
            prop_assert_eq!(coded, bytes);
        }
    }
}
