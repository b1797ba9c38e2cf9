//! The statistics scan of integers and of `f32`, written with AVX2 intrinsics.
//!
//! The portable loops in `super` compile to vector code, but the integer loop widens every
//! element's count and sum to 32 bits, so a register of 16-bit values holds half the
//! elements and one of bytes a quarter (9-11 GB/s for `u16`, BENCHMARKS.md, twenty-ninth
//! round), and sums 64-bit values in `i128` (6 GB/s). Here each lane's null count stays as
//! wide as the values, and the sums use the instructions made for them: `vpsadbw` for
//! bytes, `vpmaddwd` for 16-bit values, 32-bit values widened to 64, and 64-bit values
//! summed as their 32-bit halves. Signed values are scanned with their sign bit flipped,
//! which maps them in order onto the unsigned ones, so one unsigned min and max serve both
//! (64-bit bounds go the other way, through signed compares: AVX2 has no 64-bit min or
//! max). A null element (bit-for-bit the fill value) counts nowhere and adds 0 to the sum.
//!
//! The `f32` kernel keeps the portable loop's sixteen lanes and the order of each lane's
//! additions: 20 GB/s where the compiled portable loop runs at 11 (BENCHMARKS.md,
//! thirtieth round).
//!
//! Every kernel returns the portable loop's results bit for bit (integer sums are exact in
//! both; the float lanes add the same values in the same order), which the tests below
//! check. Vectors are loaded by `bytemuck` casts of `[T; N]`, so the kernels need no
//! `unsafe`; the `unsafe` block (see docs/ARCHITECTURE.md), written once in
//! `checked_entry!` and expanded per type, is the call of a kernel compiled for AVX2, made
//! only after checking that the CPU has it.

use super::{ScanKernel, Totals};
use crate::codec::simd;

macro_rules! checked_entry {
    ($($t:ident),*) => {$(
        /// Scans `values` with the AVX2 kernel where the CPU has it, else the portable loop.
        pub(super) fn $t(values: &[$t], fill: $t) -> Totals<$t> {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the kernel's one requirement is a CPU with AVX2, checked just above.
                return unsafe { kernels::$t(values, fill) };
            }
            simd::dispatch(ScanKernel { values, fill })
        }
    )*};
}
checked_entry!(i8, u8, i16, u16, i32, u32, i64, u64, f32);

#[cfg(target_arch = "x86_64")]
mod kernels {
    use std::arch::x86_64::{
        __m256, __m256i, _CMP_UNORD_Q, _mm256_add_epi32, _mm256_add_epi64, _mm256_add_pd, _mm256_and_si256,
        _mm256_andnot_ps, _mm256_andnot_si256, _mm256_blendv_epi8, _mm256_castps_si256, _mm256_castps256_ps128,
        _mm256_castsi256_ps, _mm256_castsi256_si128, _mm256_cmp_ps, _mm256_cmpeq_epi8, _mm256_cmpeq_epi16,
        _mm256_cmpeq_epi32, _mm256_cmpeq_epi64, _mm256_cmpgt_epi64, _mm256_cvtepu32_epi64, _mm256_cvtps_pd,
        _mm256_extractf128_ps, _mm256_extracti128_si256, _mm256_madd_epi16, _mm256_max_epu8, _mm256_max_epu16,
        _mm256_max_epu32, _mm256_max_ps, _mm256_min_epu8, _mm256_min_epu16, _mm256_min_epu32, _mm256_min_ps,
        _mm256_or_ps, _mm256_or_si256, _mm256_sad_epu8, _mm256_set1_epi8, _mm256_set1_epi16, _mm256_set1_epi32,
        _mm256_set1_epi64x, _mm256_set1_ps, _mm256_setzero_pd, _mm256_setzero_si256, _mm256_srli_epi64,
        _mm256_sub_epi8, _mm256_sub_epi16, _mm256_sub_epi32, _mm256_sub_epi64, _mm256_xor_si256,
    };

    use super::super::{LANES, Stat, Totals, lanes_totals};

    /// The kernels of the element types of one width. `$run` is how many vectors go by
    /// before the per-lane null counts and sums are added into 64-bit totals, before either
    /// could overflow.
    macro_rules! kernel {
        ($($t:ident),*; $signed:ty, $unsigned:ty, $lanes:literal, $run:literal, $sign_bit:literal;
         $splat:ident, $eq:ident, $sub:ident, $min:ident, $max:ident; $add_sums:ident, $sums_total:ident) => {$(
            #[target_feature(enable = "avx2")]
            pub(super) fn $t(values: &[$t], fill: $t) -> Totals<$t> {
                // Signed values flip their sign bit (adding `$sign_bit` to each); unsigned ones do not.
                let flip: $unsigned = if <$t>::MIN == 0 { 0 } else { $sign_bit };
                let fill_lanes = $splat(bytemuck::cast::<$t, $signed>(fill));
                let flip_lanes = $splat(bytemuck::cast::<$unsigned, $signed>(flip));
                let (mut low, mut high) = (_mm256_set1_epi8(-1), _mm256_setzero_si256());
                let (mut valid, mut sum) = (0u64, 0i128);
                let (vectors, rest) = values.as_chunks::<$lanes>();
                for run in vectors.chunks($run) {
                    let (mut nulls, mut sums) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                    for vector in run {
                        let v: __m256i = bytemuck::cast(*vector);
                        let null = $eq(v, fill_lanes);
                        let flipped = _mm256_xor_si256(v, flip_lanes);
                        let kept = _mm256_andnot_si256(null, flipped);
                        // A null lane is all ones, so subtracting it counts one.
                        nulls = $sub(nulls, null);
                        low = $min(low, _mm256_or_si256(flipped, null));
                        high = $max(high, kept);
                        sums = $add_sums(sums, kept);
                    }
                    let elements = run.len() * $lanes;
                    let run_valid = elements as u64 - lanes_total::<$unsigned>(nulls);
                    valid += run_valid;
                    sum += $sums_total(sums, elements) - i128::from(flip) * i128::from(run_valid);
                }
                let unflip = |lanes: __m256i, pick: fn($unsigned, $unsigned) -> $unsigned| {
                    let lanes: [$unsigned; $lanes] = bytemuck::cast(lanes);
                    bytemuck::cast::<$unsigned, $t>(lanes.into_iter().reduce(pick).unwrap_or_default() ^ flip)
                };
                let min = unflip(low, Ord::min);
                let max = unflip(high, Ord::max);
                let vectors_totals = Totals { not_fill: valid, valid, min, max, sum };
                vectors_totals.and(<$t as Stat>::scan(rest, fill))
            }
        )*};
    }
    kernel!(i8, u8; i8, u8, 32, 255, 0x80; _mm256_set1_epi8, _mm256_cmpeq_epi8, _mm256_sub_epi8, _mm256_min_epu8,
        _mm256_max_epu8; add_byte_sums, u64_lanes_total);
    kernel!(i16, u16; i16, u16, 16, 16384, 0x8000; _mm256_set1_epi16, _mm256_cmpeq_epi16, _mm256_sub_epi16,
        _mm256_min_epu16, _mm256_max_epu16; add_pair_sums, pair_sums_total);
    kernel!(i32, u32; i32, u32, 8, 16384, 0x8000_0000; _mm256_set1_epi32, _mm256_cmpeq_epi32, _mm256_sub_epi32,
        _mm256_min_epu32, _mm256_max_epu32; add_widened_sums, u64_lanes_total);

    /// The portable float loop's lanes, sixteen values side by side, in two registers of
    /// eight `f32` (bounds, counts) and four of four `f64` (sums): the same lanes take the
    /// same values in the same order, so the results are the same bits.
    #[target_feature(enable = "avx2")]
    pub(super) fn f32(values: &[f32], fill: f32) -> Totals<f32> {
        let fill_lanes = _mm256_set1_epi32(fill.to_bits().cast_signed());
        let (mut low, mut high) = ([_mm256_set1_ps(f32::INFINITY); 2], [_mm256_set1_ps(f32::NEG_INFINITY); 2]);
        let mut sums = [_mm256_setzero_pd(); 4];
        let (mut fills, mut nulls) = ([_mm256_setzero_si256(); 2], [_mm256_setzero_si256(); 2]);
        let (groups, rest) = values.as_chunks::<LANES>();
        // The slice's last group is padded with the fill value. The portable loop pads the
        // last group of every 4096-element block, but its blocks are whole groups, so each
        // element lands in the same lane (its index mod 16), and the groups of padding it
        // adds are no-ops: fill counts nowhere, becomes NaN (which no bound takes) and adds
        // +0.0 to the sums, whose bits that never changes (they start at +0.0, which no
        // addition turns into -0.0).
        let mut last = [fill; LANES];
        last[..rest.len()].copy_from_slice(rest);
        let mut take = |group: &[f32; LANES]| {
            let halves: [__m256; 2] = bytemuck::cast(*group);
            for (h, v) in halves.into_iter().enumerate() {
                let is_fill = _mm256_cmpeq_epi32(_mm256_castps_si256(v), fill_lanes);
                let null = _mm256_or_ps(_mm256_castsi256_ps(is_fill), _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
                // A counting lane is all ones, so subtracting it counts one.
                fills[h] = _mm256_sub_epi32(fills[h], is_fill);
                nulls[h] = _mm256_sub_epi32(nulls[h], _mm256_castps_si256(null));
                // Nulls become NaN (all ones), which `min`/`max` pass over as the portable
                // loop's comparisons do, and +0.0 in the sums.
                let x = _mm256_or_ps(v, null);
                low[h] = _mm256_min_ps(x, low[h]);
                high[h] = _mm256_max_ps(x, high[h]);
                let kept = _mm256_andnot_ps(null, v);
                sums[2 * h] = _mm256_add_pd(sums[2 * h], _mm256_cvtps_pd(_mm256_castps256_ps128(kept)));
                sums[2 * h + 1] = _mm256_add_pd(sums[2 * h + 1], _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(kept)));
            }
        };
        groups.iter().for_each(&mut take);
        take(&last);
        // Each count lane gained at most one per group, and a piece is one chunk's bytes (at
        // most 256 MiB, `MAX_CHUNK_BYTES`), so u32 lanes do not overflow.
        let elements = (groups.len() as u64 + 1) * LANES as u64;
        let count = |lanes: [__m256i; 2]| lanes.iter().map(|&v| lanes_total::<u32>(v)).sum::<u64>();
        let (not_fill, valid) = (elements - count(fills), elements - count(nulls));
        lanes_totals(not_fill, valid, bytemuck::cast(low), bytemuck::cast(high), &bytemuck::cast(sums))
    }

    /// The kernels of 64-bit integers. AVX2 has no 64-bit min or max, so the bounds are
    /// kept as signed values (unsigned ones with their sign bit flipped) through signed
    /// compares and blends; the sum adds each value's low and high 32 bits in 64-bit lanes
    /// apart. A piece is one chunk's bytes (at most 256 MiB, `MAX_CHUNK_BYTES`), so no
    /// lane overflows: each gains less than 2^32 per vector.
    macro_rules! wide_kernel {
        ($($t:ident),*) => {$(
            #[target_feature(enable = "avx2")]
            pub(super) fn $t(values: &[$t], fill: $t) -> Totals<$t> {
                const SIGN_BIT: u64 = 1 << 63;
                // Values as unsigned ones (for the sum) and as signed ones (for the bounds).
                let to_unsigned = if <$t>::MIN == 0 { 0 } else { SIGN_BIT };
                let splat = |bits: u64| _mm256_set1_epi64x(bits.cast_signed());
                let fill_lanes = splat(bytemuck::cast::<$t, u64>(fill));
                let (unsigned_lanes, sign_lanes) = (splat(to_unsigned), splat(SIGN_BIT));
                let (signed_max, signed_min) = (splat(i64::MAX.cast_unsigned()), splat(SIGN_BIT));
                let (mut low, mut high) = (signed_max, signed_min);
                let (mut nulls, mut low_halves, mut high_halves) =
                    (_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256());
                let low_half = splat(u64::from(u32::MAX));
                let (vectors, rest) = values.as_chunks::<4>();
                for vector in vectors {
                    let v: __m256i = bytemuck::cast(*vector);
                    let null = _mm256_cmpeq_epi64(v, fill_lanes);
                    let unsigned = _mm256_xor_si256(v, unsigned_lanes);
                    let signed = _mm256_xor_si256(unsigned, sign_lanes);
                    // A null lane is all ones, so subtracting it counts one.
                    nulls = _mm256_sub_epi64(nulls, null);
                    let for_low = _mm256_blendv_epi8(signed, signed_max, null);
                    low = _mm256_blendv_epi8(low, for_low, _mm256_cmpgt_epi64(low, for_low));
                    let for_high = _mm256_blendv_epi8(signed, signed_min, null);
                    high = _mm256_blendv_epi8(high, for_high, _mm256_cmpgt_epi64(for_high, high));
                    let kept = _mm256_andnot_si256(null, unsigned);
                    low_halves = _mm256_add_epi64(low_halves, _mm256_and_si256(kept, low_half));
                    high_halves = _mm256_add_epi64(high_halves, _mm256_srli_epi64::<32>(kept));
                }
                let valid = (vectors.len() * 4) as u64 - lanes_total::<u64>(nulls);
                let halves = |lanes: __m256i| i128::from(lanes_total::<u64>(lanes));
                let unsigned_sum = halves(low_halves) + (halves(high_halves) << 32);
                let sum = unsigned_sum - i128::from(to_unsigned) * i128::from(valid);
                let unflip = |lanes: __m256i, pick: fn(i64, i64) -> i64| {
                    let lanes: [i64; 4] = bytemuck::cast(lanes);
                    let signed = lanes.into_iter().reduce(pick).unwrap_or_default();
                    bytemuck::cast::<u64, $t>(signed.cast_unsigned() ^ SIGN_BIT ^ to_unsigned)
                };
                let (min, max) = (unflip(low, Ord::min), unflip(high, Ord::max));
                let vectors_totals = Totals { not_fill: valid, valid, min, max, sum };
                vectors_totals.and(<$t as Stat>::scan(rest, fill))
            }
        )*};
    }
    wide_kernel!(i64, u64);

    /// The sum of a vector's lanes of type `U`.
    fn lanes_total<U: Into<u64> + bytemuck::Pod>(lanes: __m256i) -> u64 {
        bytemuck::cast_slice::<__m256i, U>(&[lanes]).iter().map(|&lane| lane.into()).sum()
    }

    /// Bytes summed in groups of eight into four 64-bit lanes.
    #[target_feature(enable = "avx2")]
    fn add_byte_sums(sums: __m256i, kept: __m256i) -> __m256i {
        _mm256_add_epi64(sums, _mm256_sad_epu8(kept, _mm256_setzero_si256()))
    }

    /// 32-bit values widened into four 64-bit lanes.
    #[target_feature(enable = "avx2")]
    fn add_widened_sums(sums: __m256i, kept: __m256i) -> __m256i {
        let low = _mm256_cvtepu32_epi64(_mm256_castsi256_si128(kept));
        let high = _mm256_cvtepu32_epi64(_mm256_extracti128_si256::<1>(kept));
        _mm256_add_epi64(sums, _mm256_add_epi64(low, high))
    }

    /// 16-bit values summed in pairs into eight 32-bit lanes. `vpmaddwd` multiplies signed
    /// values, so each is taken less 32768 (its top bit flipped) and [`pair_sums_total`]
    /// adds 32768 back for every element.
    #[target_feature(enable = "avx2")]
    fn add_pair_sums(sums: __m256i, kept: __m256i) -> __m256i {
        let shifted = _mm256_xor_si256(kept, _mm256_set1_epi16(i16::MIN));
        _mm256_add_epi32(sums, _mm256_madd_epi16(shifted, _mm256_set1_epi16(1)))
    }

    fn pair_sums_total(sums: __m256i, elements: usize) -> i128 {
        let lanes: [i32; 8] = bytemuck::cast(sums);
        lanes.into_iter().map(i128::from).sum::<i128>() + 32768 * elements as i128
    }

    fn u64_lanes_total(sums: __m256i, _elements: usize) -> i128 {
        let lanes: [u64; 4] = bytemuck::cast(sums);
        lanes.into_iter().map(i128::from).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Stat;

    /// Values long enough to cross every kernel's runs (255 vectors of bytes, 16384 of the
    /// wider ones), drawn so that the fill, the extremes and the sign bit come up often.
    fn values<T: Stat + bytemuck::Pod>(extremes: [T; 3]) -> Vec<T> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        (0..300_007)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let pick = (state >> 60) as usize;
                extremes
                    .get(pick)
                    .copied()
                    .unwrap_or_else(|| bytemuck::pod_read_unaligned(&state.to_le_bytes()[..size_of::<T>()]))
            })
            .collect()
    }

    macro_rules! agrees {
        ($($t:ident),*) => {$({
            let drawn = values::<$t>([$t::MIN, $t::MAX, 3]);
            for fill in [3, $t::MIN, $t::MAX] {
                // Mostly nulls, so the per-lane null counts fill up.
                let mostly_fill: Vec<$t> =
                    drawn.iter().enumerate().map(|(i, &v)| if i % 997 == 0 { v } else { fill }).collect();
                let all = drawn.len();
                for (values, from, to) in [(&drawn, 0, all), (&drawn, 5, 9000), (&drawn, 1, 0), (&mostly_fill, 0, all)] {
                    let part = &values[from.min(to)..to];
                    let (fastest, plain) = (<$t as Stat>::scan_fastest(part, fill), <$t as Stat>::scan(part, fill));
                    assert_eq!(
                        (fastest.not_fill, fastest.valid, fastest.min, fastest.max, fastest.sum),
                        (plain.not_fill, plain.valid, plain.min, plain.max, plain.sum),
                        "{} fill {fill} {from}..{to}", stringify!($t),
                    );
                }
            }
        })*};
    }

    #[test]
    fn the_fastest_integer_scan_computes_what_the_plain_loop_does() {
        agrees!(i8, u8, i16, u16, i32, u32, i64, u64);
    }

    #[test]
    fn the_fastest_float_scan_computes_the_plain_loops_bits() {
        let mut drawn = values::<f32>([f32::NAN, -0.0, f32::INFINITY]);
        // Infinities of both signs in one lane make its sum NaN.
        (drawn[0], drawn[16]) = (f32::INFINITY, f32::NEG_INFINITY);
        for fill in [0.0, -0.0, f32::NAN, drawn[7]] {
            for (from, to) in [(0, drawn.len()), (3, 4100), (0, 8192), (2, 17), (1, 0)] {
                let part = &drawn[from.min(to)..to];
                let (fastest, plain) = (f32::scan_fastest(part, fill), f32::scan(part, fill));
                assert_eq!(
                    (
                        fastest.not_fill,
                        fastest.valid,
                        fastest.min.to_bits(),
                        fastest.max.to_bits(),
                        fastest.sum.to_bits()
                    ),
                    (plain.not_fill, plain.valid, plain.min.to_bits(), plain.max.to_bits(), plain.sum.to_bits()),
                    "fill {fill} {from}..{to}",
                );
            }
        }
    }
}
