//! Per-block statistics, computed from a chunk's raw bytes when it is written and kept in
//! its index entry: how many values are valid (not null), their min, max and sum.
//!
//! Null means: bit-for-bit equal to the fill value, NaN for float dtypes, or `NaT` (numpy's
//! "not a time", the smallest i64) for timestamps. A chunk's
//! elements outside the array (edge padding) always hold the fill value, so the whole chunk
//! can be scanned.

mod avx2;

use crate::codec::simd::{self, Kernel};
use crate::meta::{ArrayStats, DType, Scalar, check_min_max, check_sum};

/// Statistics of one block. `min`/`max` hold the value's bits as the dtype's family stores
/// them (i64 for signed and timestamp, u64 for unsigned and bool, f64 bits for floats) and
/// are 0 when `valid_count` is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ChunkStats {
    pub valid_count: u64,
    pub min_bits: u64,
    pub max_bits: u64,
    /// Sum of the valid values as f64 bits.
    pub sum_bits: u64,
}

/// What scanning a chunk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scan {
    pub stats: ChunkStats,
    /// Every element is bit-for-bit the fill value: the block needs no bytes at all.
    pub all_fill: bool,
}

/// Scans the raw bytes of one chunk of `dtype` whose fill value has the bytes `fill`.
pub(crate) fn scan(raw: &[u8], dtype: DType, fill: &[u8]) -> Scan {
    scan_pieces(dtype, fill, |visit| visit(raw))
}

/// [`scan`] of a chunk whose raw bytes `produce` hands, piece after piece (each of whole
/// elements), to the function it is given: for chunks that are never in one buffer.
pub(crate) fn scan_pieces(dtype: DType, fill: &[u8], produce: impl FnOnce(&mut dyn FnMut(&[u8]))) -> Scan {
    match dtype {
        DType::Int8 => scan_as::<i8>(produce, fill),
        DType::Int16 => scan_as::<i16>(produce, fill),
        DType::Int32 => scan_as::<i32>(produce, fill),
        DType::Int64 => scan_as::<i64>(produce, fill),
        DType::Timestamp => scan_as::<Nanos>(produce, fill),
        DType::UInt8 => scan_as::<u8>(produce, fill),
        DType::Bool => scan_as::<Flag>(produce, fill),
        DType::UInt16 => scan_as::<u16>(produce, fill),
        DType::UInt32 => scan_as::<u32>(produce, fill),
        DType::UInt64 => scan_as::<u64>(produce, fill),
        DType::Float32 => scan_as::<f32>(produce, fill),
        DType::Float64 => scan_as::<f64>(produce, fill),
        DType::String => unreachable!("string chunks are scanned by the engine's string path"),
    }
}

impl ChunkStats {
    /// The smallest and largest valid values as scalars of `dtype`'s family.
    pub(crate) fn min_max(&self, dtype: DType) -> (Option<Scalar>, Option<Scalar>) {
        if self.valid_count == 0 || dtype == DType::String {
            return (None, None);
        }
        (Some(to_scalar(dtype, self.min_bits)), Some(to_scalar(dtype, self.max_bits)))
    }

    pub(crate) fn sum(&self) -> f64 {
        f64::from_bits(self.sum_bits)
    }

    /// Checks stats read from an index entry against the block they describe, a chunk of
    /// `chunk_elems` elements of `dtype`: no more valid values than elements, min and max
    /// an ordered pair of the dtype's values, min, max and sum all 0 without valid values
    /// and for `string`, and a finite sum for integers (not below 0 for unsigned ones).
    /// Returns what is wrong.
    pub(crate) fn check(&self, dtype: DType, chunk_elems: u64) -> Result<(), String> {
        if self.valid_count > chunk_elems {
            return Err(format!("{} valid values in a chunk of {chunk_elems} elements", self.valid_count));
        }
        if dtype == DType::String && (self.min_bits, self.max_bits, self.sum_bits) != (0, 0, 0) {
            return Err("a string block's min, max and sum are not all 0".to_string());
        }
        if self.valid_count == 0 && (self.min_bits, self.max_bits) != (0, 0) {
            return Err("a block without valid values has a min or max other than 0".to_string());
        }
        check_sum(dtype, self.valid_count, self.sum())?;
        match self.min_max(dtype) {
            (Some(min), Some(max)) => check_min_max(dtype, min, max),
            _ => Ok(()),
        }
    }

    /// Checks stats read from an index entry against `found`, those of the chunk the block
    /// decodes to (a scan of it, as the writer made them), for a chunk of `dtype`: the same
    /// count, min and max (as values: floats' 0 and -0 agree, and bools' nonzero bytes), and a sum within the
    /// rounding that another order of adding (another kernel) could give. Returns what
    /// differs.
    #[allow(clippy::float_cmp)] // min and max are values both scans picked; equal sums include infinities
    pub(crate) fn check_against(&self, found: &ChunkStats, dtype: DType) -> Result<(), String> {
        // Compared as the values they stand for: floats (0 and -0 agree), and bools, whose
        // any nonzero byte is true.
        let same = |a: u64, b: u64| match dtype {
            DType::Float32 | DType::Float64 => f64::from_bits(a) == f64::from_bits(b),
            DType::Bool => (a != 0) == (b != 0),
            _ => a == b,
        };
        let (sum, found_sum) = (self.sum(), found.sum());
        // Each of the n - 1 additions rounds by at most eps times the running sum, itself at
        // most n times the largest magnitude.
        let n = found.valid_count as f64;
        let largest = match found.min_max(dtype) {
            (Some(min), Some(max)) => min.as_f64().abs().max(max.as_f64().abs()),
            _ => 0.0,
        };
        // Where the values can add past f64's range, one order may overflow (to an infinity,
        // or NaN once both signs have) and another not (a writer adds a large chunk's pieces
        // on their own).
        let may_overflow = n * largest >= f64::MAX || largest.is_nan();
        let sums_agree = sum == found_sum
            || (sum.is_nan() && found_sum.is_nan()) // +inf and -inf among the values
            || (may_overflow && !(sum.is_finite() && found_sum.is_finite()))
            || (sum - found_sum).abs() <= n * n * f64::EPSILON * largest;
        if self.valid_count == found.valid_count
            && same(self.min_bits, found.min_bits)
            && same(self.max_bits, found.max_bits)
            && sums_agree
        {
            return Ok(());
        }
        let shown = |stats: &ChunkStats| {
            let (min, max) = stats.min_max(dtype);
            let show = |v: Option<Scalar>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
            format!("count {}, min {}, max {}, sum {}", stats.valid_count, show(min), show(max), stats.sum())
        };
        Err(format!("the index entry says {} but the chunk holds {}", shown(self), shown(found)))
    }
}

#[allow(clippy::cast_possible_wrap)] // the bits of a signed value, stored as u64
fn to_scalar(dtype: DType, bits: u64) -> Scalar {
    match dtype {
        DType::Float32 | DType::Float64 => Scalar::Float(f64::from_bits(bits)),
        DType::Int8 | DType::Int16 | DType::Int32 | DType::Int64 | DType::Timestamp => Scalar::Int(bits as i64),
        // Any byte but 0 reads as true: a bool block written from bytes other than 0 and 1
        // (by builds before the Python module made them 0 and 1) has such a max.
        DType::Bool => Scalar::from(u64::from(bits != 0)),
        DType::UInt8 | DType::UInt16 | DType::UInt32 | DType::UInt64 | DType::String => Scalar::from(bits),
    }
}

/// Merges the stats of an array's live blocks, given in the order of their chunks'
/// coordinates (so that the result does not depend on where each block was found), into
/// the array's stats; `elems` is the array's element count. The block sums are added
/// exactly for integer dtypes (each block's sum is a whole number) and with compensation
/// for floats, so that the array's sum does not drift with the number of blocks.
pub(crate) fn merge<'a>(dtype: DType, elems: u64, blocks: impl IntoIterator<Item = &'a ChunkStats>) -> ArrayStats {
    let mut count = 0u64;
    let mut sum = Sum::new();
    let (mut min, mut max) = (None::<Scalar>, None::<Scalar>);
    for block in blocks {
        if block.valid_count == 0 {
            continue;
        }
        // Saturating: counts come from index entries, which a damaged store could inflate.
        count = count.saturating_add(block.valid_count);
        sum.add(block.sum());
        let (lo, hi) = block.min_max(dtype);
        min = pick(min, lo, std::cmp::Ordering::Less);
        max = pick(max, hi, std::cmp::Ordering::Greater);
    }
    let float = matches!(dtype, DType::Float32 | DType::Float64);
    ArrayStats::new(dtype, elems, count.min(elems), min, max, sum.total(float))
}

/// A sum of block sums: exactly (`whole`, while every one is a whole number), and in
/// floating point with Neumaier's compensation (`float` + `compensation`).
struct Sum {
    whole: Option<i128>,
    float: f64,
    compensation: f64,
}

impl Sum {
    fn new() -> Self {
        Self { whole: Some(0), float: 0.0, compensation: 0.0 }
    }

    #[allow(clippy::cast_possible_truncation)] // a whole number, saturating past i128
    fn add(&mut self, v: f64) {
        let whole = v.is_finite() && v.fract() == 0.0;
        self.whole = self.whole.filter(|_| whole).map(|w| w.saturating_add(v as i128));
        let t = self.float + v;
        // The low bits the addition lost (none to keep once the sum is not finite).
        if t.is_finite() {
            self.compensation += if self.float.abs() >= v.abs() { (self.float - t) + v } else { (v - t) + self.float };
        }
        self.float = t;
    }

    /// The total: the exact one for integer dtypes, else the compensated one.
    #[allow(clippy::cast_precision_loss)] // the total as the f64 the stats keep
    fn total(&self, float: bool) -> f64 {
        match self.whole {
            Some(whole) if !float => whole as f64,
            _ if self.float.is_finite() => self.float + self.compensation,
            _ => self.float,
        }
    }
}

/// `candidate` if it compares `wanted` to `current`, else `current`.
fn pick(current: Option<Scalar>, candidate: Option<Scalar>, wanted: std::cmp::Ordering) -> Option<Scalar> {
    match (current, candidate) {
        (Some(c), Some(n)) if compare(n, c) == Some(wanted) => Some(n),
        (None, n) => n,
        (c, _) => c,
    }
}

/// Orders two scalars of one dtype family.
fn compare(a: Scalar, b: Scalar) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Scalar::Float(a), Scalar::Float(b)) => a.partial_cmp(&b),
        (a, b) => a.as_i128()?.partial_cmp(&b.as_i128()?),
    }
}

/// Elements per partial sum: small enough that an integer block's sum fits the narrow
/// type it is kept in (`u32` for 16-bit values), so integer sums stay exact.
const BLOCK: usize = 1 << 12;
/// Float elements scanned side by side: each lane keeps its own bounds and f64 partial sum,
/// which lets the float loop (whose additions must not be reordered) run as vector code.
const LANES: usize = 16;

/// What a scan adds up.
#[derive(Clone, Copy)]
struct Totals<T: Stat> {
    /// Elements that are not bit-for-bit the fill value.
    not_fill: u64,
    valid: u64,
    /// Meaningful only when `valid > 0`.
    min: T,
    max: T,
    sum: T::Sum,
}

impl<T: Stat> Totals<T> {
    /// These totals, their min and max made values of `U` by `f`.
    fn map<U: Stat<Sum = T::Sum>>(self, f: impl Fn(T) -> U) -> Totals<U> {
        let Self { not_fill, valid, min, max, sum } = self;
        Totals { not_fill, valid, min: f(min), max: f(max), sum }
    }

    /// The totals of two runs of values together.
    fn and(self, other: Self) -> Self {
        Self {
            not_fill: self.not_fill + other.not_fill,
            valid: self.valid + other.valid,
            min: if other.min < self.min { other.min } else { self.min },
            max: if other.max > self.max { other.max } else { self.max },
            sum: self.sum + other.sum,
        }
    }
}

/// A numeric element type the scan understands.
trait Stat: bytemuck::Pod + PartialOrd {
    /// What valid values are summed in: exact for integers, f64 for floats.
    type Sum: Copy + Default + std::ops::Add<Output = Self::Sum>;
    /// Scans `values`: null means bit-for-bit `fill` or NaN. Branch-free, so it compiles to
    /// vector code; `#[inline(always)]` so that [`simd::dispatch`] compiles it for AVX2.
    fn scan(values: &[Self], fill: Self) -> Totals<Self>;
    /// [`Stat::scan`] with the fastest kernel this CPU runs.
    fn scan_fastest(values: &[Self], fill: Self) -> Totals<Self> {
        simd::dispatch(ScanKernel { values, fill })
    }
    fn sum_to_f64(sum: Self::Sum) -> f64;
    /// The value widened to 64 bits in its family's representation.
    fn to_bits64(self) -> u64;
}

macro_rules! int_stat {
    ($wide:ty, $part:ty: $($t:ty $(=> $fastest:path)?),*) => {$(
        impl Stat for $t {
            type Sum = i128;
            #[inline(always)]
            fn scan(values: &[Self], fill: Self) -> Totals<Self> {
                let mut totals = Totals { not_fill: 0, valid: 0, min: <$t>::MAX, max: <$t>::MIN, sum: 0 };
                for block in values.chunks(BLOCK) {
                    let (mut valid, mut part) = (0u32, <$part>::default());
                    for &v in block {
                        let ok = v != fill;
                        valid += u32::from(ok);
                        totals.min = totals.min.min(if ok { v } else { <$t>::MAX });
                        totals.max = totals.max.max(if ok { v } else { <$t>::MIN });
                        part += if ok { <$part>::from(v) } else { 0 };
                    }
                    totals.valid += u64::from(valid);
                    totals.sum += i128::from(part);
                }
                totals.not_fill = totals.valid;
                totals
            }
            $(fn scan_fastest(values: &[Self], fill: Self) -> Totals<Self> {
                $fastest(values, fill)
            })?
            #[allow(clippy::cast_precision_loss)]
            fn sum_to_f64(sum: i128) -> f64 {
                sum as f64
            }
            #[allow(clippy::cast_sign_loss, clippy::cast_lossless)]
            fn to_bits64(self) -> u64 {
                <$wide>::from(self) as u64
            }
        }
    )*};
}
int_stat!(i64, i32: i8 => avx2::i8, i16 => avx2::i16);
int_stat!(i64, i64: i32 => avx2::i32);
int_stat!(i64, i128: i64 => avx2::i64);
int_stat!(u64, u32: u8 => avx2::u8, u16 => avx2::u16);
int_stat!(u64, i64: u32 => avx2::u32);
int_stat!(u64, i128: u64 => avx2::u64);

macro_rules! float_stat {
    ($($t:ty $(=> $fastest:path)?),*) => {$(
        impl Stat for $t {
            type Sum = f64;
            #[inline(always)]
            fn scan(values: &[Self], fill: Self) -> Totals<Self> {
                let fill_bits = fill.to_bits();
                let (mut not_fill, mut valid) = (0u64, 0u64);
                let mut min = [<$t>::INFINITY; LANES];
                let mut max = [<$t>::NEG_INFINITY; LANES];
                let mut sum = [0.0f64; LANES];
                for block in values.chunks(BLOCK) {
                    // Narrow per-block counts keep the lanes as wide as the values.
                    let mut block_not_fill = [0u32; LANES];
                    let mut block_valid = [0u32; LANES];
                    let mut take = |group: &[Self; LANES]| {
                        for l in 0..LANES {
                            let v = group[l];
                            let is_value = v.to_bits() != fill_bits;
                            // Nulls become NaN, which no comparison picks and the sum skips.
                            let x = if is_value { v } else { <$t>::NAN };
                            block_not_fill[l] += u32::from(is_value);
                            block_valid[l] += u32::from(!x.is_nan());
                            min[l] = if x < min[l] { x } else { min[l] };
                            max[l] = if x > max[l] { x } else { max[l] };
                            sum[l] += if x.is_nan() { 0.0 } else { f64::from(x) };
                        }
                    };
                    let (groups, rest) = block.as_chunks::<LANES>();
                    groups.iter().for_each(&mut take);
                    // A fill element counts nowhere, so padding the last group with it is harmless.
                    let mut last = [fill; LANES];
                    last[..rest.len()].copy_from_slice(rest);
                    take(&last);
                    not_fill += block_not_fill.iter().map(|&n| u64::from(n)).sum::<u64>();
                    valid += block_valid.iter().map(|&n| u64::from(n)).sum::<u64>();
                }
                lanes_totals(not_fill, valid, min, max, &sum)
            }
            $(fn scan_fastest(values: &[Self], fill: Self) -> Totals<Self> {
                $fastest(values, fill)
            })?
            fn sum_to_f64(sum: f64) -> f64 {
                sum
            }
            fn to_bits64(self) -> u64 {
                f64::from(self).to_bits()
            }
        }
    )*};
}
float_stat!(f32 => avx2::f32, f64);

/// [`Stat`] for a newtype over an integer: the integer's kernel scans the values, then
/// `$correct` makes the totals the newtype's (rescanning where the integer reading differs).
macro_rules! stat_over_int {
    ($t:ident over $int:ident by $correct:ident, bits |$v:ident| $bits:expr) => {
        impl Stat for $t {
            type Sum = i128;
            fn scan(values: &[Self], fill: Self) -> Totals<Self> {
                Self::$correct(<$int>::scan(bytemuck::cast_slice(values), fill.0), values, fill)
            }
            fn scan_fastest(values: &[Self], fill: Self) -> Totals<Self> {
                Self::$correct(<$int>::scan_fastest(bytemuck::cast_slice(values), fill.0), values, fill)
            }
            #[allow(clippy::cast_precision_loss)]
            fn sum_to_f64(sum: i128) -> f64 {
                sum as f64
            }
            fn to_bits64(self) -> u64 {
                let $v = self.0;
                $bits
            }
        }
    };
}

/// A timestamp (i64 nanoseconds) to the scan: `NaT`, the smallest i64, is null as NaN is for
/// floats.
#[derive(Clone, Copy, PartialEq, PartialOrd, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
struct Nanos(i64);

/// numpy's "not a time".
const NAT: i64 = i64::MIN;

impl Nanos {
    /// The totals of an i64 scan (which takes only `fill` for null): those of a chunk
    /// without `NaT`, whose min would be `NaT`. A chunk with `NaT` is scanned again, value by
    /// value (missing times are rare enough not to need a kernel of their own).
    fn unless_nat(totals: Totals<i64>, values: &[Self], fill: Self) -> Totals<Self> {
        if totals.valid == 0 || totals.min != NAT {
            return totals.map(Self);
        }
        let mut totals = Totals { not_fill: 0, valid: 0, min: Self(i64::MAX), max: Self(NAT), sum: 0 };
        for &Self(v) in values.iter().filter(|&&v| v != fill) {
            totals.not_fill += 1;
            if v != NAT {
                totals.valid += 1;
                totals.min.0 = totals.min.0.min(v);
                totals.max.0 = totals.max.0.max(v);
                totals.sum += i128::from(v);
            }
        }
        totals
    }
}

stat_over_int!(Nanos over i64 by unless_nat, bits |v| v.cast_unsigned());

/// A `bool` element to the scan: any byte but 0 is true, 1, as reads give it (builds
/// before the Python module made bools 0 and 1 could store other bytes). Null is still
/// bit-equal to the fill value's byte.
#[derive(Clone, Copy, PartialEq, PartialOrd, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
struct Flag(u8);

impl Flag {
    /// The totals of a u8 scan, where every valid byte is 0 or 1; else the chunk is scanned
    /// again, value by value, each byte as 0 or 1.
    fn as_truth(totals: Totals<u8>, values: &[Self], fill: Self) -> Totals<Self> {
        if totals.valid == 0 || totals.max <= 1 {
            return totals.map(Self);
        }
        let mut totals = Totals { not_fill: 0, valid: 0, min: Self(1), max: Self(0), sum: 0 };
        for &Self(v) in values.iter().filter(|&&v| v != fill) {
            let truth = u8::from(v != 0);
            totals.not_fill += 1;
            totals.valid += 1;
            totals.min.0 = totals.min.0.min(truth);
            totals.max.0 = totals.max.0.max(truth);
            totals.sum += i128::from(truth);
        }
        totals
    }
}

stat_over_int!(Flag over u8 by as_truth, bits |v| u64::from(v));

/// The totals of a float scan whose lanes hold `min`, `max` and `sum`, merged in lane
/// order: any kernel that keeps the same lanes gets the same bits.
fn lanes_totals<T: Stat<Sum = f64>>(
    not_fill: u64,
    valid: u64,
    min: [T; LANES],
    max: [T; LANES],
    sum: &[f64; LANES],
) -> Totals<T> {
    let pick = |wanted: std::cmp::Ordering| move |a: T, b: T| if b.partial_cmp(&a) == Some(wanted) { b } else { a };
    Totals {
        not_fill,
        valid,
        min: min.into_iter().reduce(pick(std::cmp::Ordering::Less)).expect("LANES > 0"),
        max: max.into_iter().reduce(pick(std::cmp::Ordering::Greater)).expect("LANES > 0"),
        sum: sum.iter().sum(),
    }
}

/// One scan, as a kernel for [`simd::dispatch`].
struct ScanKernel<'a, T> {
    values: &'a [T],
    fill: T,
}

impl<T: Stat> Kernel for ScanKernel<'_, T> {
    type Output = Totals<T>;
    #[allow(clippy::inline_always)] // to be compiled again inside the AVX2 entry point
    #[inline(always)]
    fn run(self) -> Totals<T> {
        T::scan(self.values, self.fill)
    }
}

fn scan_as<T: Stat>(produce: impl FnOnce(&mut dyn FnMut(&[u8])), fill: &[u8]) -> Scan {
    let fill: T = bytemuck::pod_read_unaligned(fill);
    let mut all: Option<Totals<T>> = None;
    produce(&mut |raw| {
        debug_assert_eq!(raw.len() % size_of::<T>(), 0, "a piece holds whole elements");
        let copy: Vec<T>;
        let values: &[T] = if let Ok(values) = bytemuck::try_cast_slice(raw) {
            values
        } else {
            // Bytes not aligned for T (never from Atlas's own buffers): scan a copy.
            copy = raw.chunks_exact(size_of::<T>()).map(bytemuck::pod_read_unaligned).collect();
            &copy
        };
        let totals = T::scan_fastest(values, fill);
        all = Some(match all.take() {
            Some(before) => before.and(totals),
            None => totals,
        });
    });
    let totals = all.unwrap_or_else(|| T::scan(&[], fill));
    let bits = |v: T| if totals.valid == 0 { 0 } else { v.to_bits64() };
    let stats = ChunkStats {
        valid_count: totals.valid,
        min_bits: bits(totals.min),
        max_bits: bits(totals.max),
        sum_bits: T::sum_to_f64(totals.sum).to_bits(),
    };
    Scan { stats, all_fill: totals.not_fill == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn f64_bytes(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn entry_statistics_agree_with_a_scan_of_their_chunk_and_only_with_it() {
        let cases: [(&[f32], f32); 3] =
            [(&[1.0, 2.5, -0.0, 0.0], 0.0), (&[f32::INFINITY, f32::NEG_INFINITY, 1.0], 0.0), (&[0.1; 1000], 0.0)];
        // Adding in two orders: 1e308 - 1e308 (0) or, in lanes, inf - inf (NaN).
        let big = scan(&f64_bytes(&[1e308, -1e308, 1e308, -1e308]), DType::Float64, &[0; 8]).stats;
        let in_order = ChunkStats { sum_bits: 0f64.to_bits(), ..big };
        in_order.check_against(&big, DType::Float64).unwrap();
        ChunkStats { sum_bits: f64::NAN.to_bits(), ..big }.check_against(&in_order, DType::Float64).unwrap();
        for (values, fill) in cases {
            let found = scan(&f32_bytes(values), DType::Float32, &fill.to_le_bytes()).stats;
            found.check_against(&found, DType::Float32).unwrap();
            // Another order of adding rounds differently; a sum off by more is a lie.
            let rounded = ChunkStats { sum_bits: (found.sum() * (1.0 + 1e-15)).to_bits(), ..found };
            rounded.check_against(&found, DType::Float32).unwrap();
            let lies = [
                ChunkStats { valid_count: found.valid_count - 1, ..found },
                ChunkStats { max_bits: 1000f64.to_bits(), ..found },
                ChunkStats { sum_bits: (found.sum() + 1.0).to_bits(), ..found },
            ];
            for lie in lies.iter().take(if found.sum().is_finite() { 3 } else { 2 }) {
                assert!(lie.check_against(&found, DType::Float32).is_err(), "{lie:?} for {values:?}");
            }
        }
        let ints = scan(&[1, 0, 255], DType::UInt8, &[0]).stats;
        assert_eq!(ints.valid_count, 2);
        let err = ChunkStats { min_bits: 2, ..ints }.check_against(&ints, DType::UInt8).unwrap_err();
        assert_eq!(
            err,
            "the index entry says count 2, min 2, max 255, sum 256 but the chunk holds count 2, min 1, max 255, sum 256"
        );
    }

    #[test]
    #[allow(clippy::float_cmp)] // exact sums are the point
    fn block_sums_add_exactly_for_integers_and_with_compensation_for_floats() {
        let block = |sum: f64| ChunkStats { valid_count: 1, min_bits: 0, max_bits: 0, sum_bits: sum.to_bits() };
        let sum_of = |dtype, sums: &[f64]| merge(dtype, 10, &sums.iter().map(|&s| block(s)).collect::<Vec<_>>()).sum;
        // Added one by one in f64, 2^60 + 1 is 2^60 and the total 0.
        assert_eq!(sum_of(DType::Int64, &[2f64.powi(60), 1.0, -(2f64.powi(60))]), 1.0);
        assert_eq!(sum_of(DType::Float64, &[1e16, 1.0, -1e16]), 1.0);
        assert_eq!(sum_of(DType::Float64, &[f64::INFINITY, 1.0]), f64::INFINITY);
        assert!(sum_of(DType::Float64, &[f64::INFINITY, f64::NEG_INFINITY]).is_nan());
        assert_eq!(sum_of(DType::Float32, &[0.5, 2.0]), 2.5);
    }

    #[test]
    fn nan_and_fill_are_null_and_the_rest_counts() {
        let raw = f32_bytes(&[1.5, f32::NAN, -2.0, 0.0, 4.0]);
        let scan = scan(&raw, DType::Float32, &0.0f32.to_le_bytes());
        assert!(!scan.all_fill);
        assert_eq!(scan.stats.valid_count, 3);
        assert_eq!(scan.stats.min_bits, (-2.0f64).to_bits());
        assert_eq!(scan.stats.max_bits, 4.0f64.to_bits());
        assert_eq!(scan.stats.sum_bits, 3.5f64.to_bits());
    }

    #[test]
    fn a_nan_fill_matches_by_bits_and_an_all_fill_chunk_is_recognised() {
        let raw = f32_bytes(&[f32::NAN; 4]);
        let scan = scan(&raw, DType::Float32, &f32::NAN.to_le_bytes());
        assert!(scan.all_fill);
        assert_eq!(scan.stats, ChunkStats { sum_bits: 0.0f64.to_bits(), ..ChunkStats::default() });
    }

    proptest::proptest! {
        /// The lane-wise scan agrees with a plain one-element-at-a-time reference, across
        /// blocks and lane remainders (integer-valued floats keep the float sums exact).
        #[test]
        fn the_lane_wise_scan_matches_a_plain_loop(
            values in proptest::collection::vec(-3i32..60, 0..10_000),
            fill in -3i32..3,
        ) {
            let as_f64 = |v: i32| if v == 59 { f64::NAN } else { f64::from(v) };
            let plain = |valid: Vec<f64>, not_fill: usize| {
                let count = valid.len() as u64;
                let bits = |v: Option<f64>| v.map_or(0, f64::to_bits);
                let min = valid.iter().copied().reduce(f64::min);
                let max = valid.iter().copied().reduce(f64::max);
                // Folded from +0.0, the sum of nothing in the stats (`Sum for f64` starts at -0.0).
                (count, bits(min), bits(max), valid.iter().fold(0.0, |a, b| a + b).to_bits(), not_fill == 0)
            };
            let got = |scan: Scan| {
                let s = scan.stats;
                (s.valid_count, s.min_bits, s.max_bits, s.sum_bits, scan.all_fill)
            };
            let raw: Vec<u8> = values.iter().flat_map(|&v| (as_f64(v) as f32).to_le_bytes()).collect();
            let not_fill = values.iter().filter(|&&v| v != fill).count();
            let valid: Vec<f64> = values.iter().filter(|&&v| v != fill && v != 59).map(|&v| as_f64(v)).collect();
            let fill_bytes = (fill as f32).to_le_bytes();
            proptest::prop_assert_eq!(got(scan(&raw, DType::Float32, &fill_bytes)), plain(valid, not_fill));
            let shifted = [&[0u8][..], &raw].concat(); // the same bytes, not aligned for f32
            proptest::prop_assert_eq!(scan(&shifted[1..], DType::Float32, &fill_bytes), scan(&raw, DType::Float32, &fill_bytes));
            // The same bytes in pieces (the first may be empty).
            let cut = values.len() / 3 * 4;
            let in_pieces = scan_pieces(DType::Float32, &fill_bytes, |visit| {
                visit(&raw[..cut]);
                visit(&raw[cut..]);
            });
            proptest::prop_assert_eq!(in_pieces, scan(&raw, DType::Float32, &fill_bytes));
            let raw: Vec<u8> = values.iter().flat_map(|&v| i16::try_from(v).unwrap().to_le_bytes()).collect();
            let valid: Vec<i64> = values.iter().filter(|&&v| v != fill).map(|&v| i64::from(v)).collect();
            let fill_bytes = i16::try_from(fill).unwrap().to_le_bytes();
            let cut = values.len() / 2 * 2;
            let in_pieces = scan_pieces(DType::Int16, &fill_bytes, |visit| {
                visit(&raw[..cut]);
                visit(&raw[cut..]);
            });
            let scan = scan(&raw, DType::Int16, &fill_bytes);
            proptest::prop_assert_eq!(in_pieces, scan);
            proptest::prop_assert_eq!(scan.stats.valid_count, valid.len() as u64);
            proptest::prop_assert_eq!(scan.stats.sum_bits, (valid.iter().sum::<i64>() as f64).to_bits());
            let bits = |v: Option<&i64>| v.map_or(0, |v| v.cast_unsigned());
            proptest::prop_assert_eq!(scan.stats.min_bits, bits(valid.iter().min()));
            proptest::prop_assert_eq!(scan.stats.max_bits, bits(valid.iter().max()));
            proptest::prop_assert_eq!(scan.all_fill, valid.is_empty());
        }
    }

    /// The model of an integer dtype's scan, one element at a time: valid count, min and
    /// max bits, sum bits (summed exactly, rounded once), all fill. `nat_is_null` for
    /// timestamps.
    fn plain_integer_scan(raw: &[u8], dtype: DType, fill: &[u8]) -> (u64, u64, u64, u64, bool) {
        let elem_bytes = dtype.size_bytes();
        let signed = matches!(dtype, DType::Int8 | DType::Int16 | DType::Int32 | DType::Int64 | DType::Timestamp);
        let nat_is_null = dtype == DType::Timestamp;
        let value = |bytes: &[u8]| {
            if dtype == DType::Bool {
                return i128::from(bytes[0] != 0);
            }
            let mut wide = [0u8; 16];
            wide[..elem_bytes].copy_from_slice(bytes);
            let negative = signed && bytes[elem_bytes - 1] & 0x80 != 0;
            if negative {
                wide[elem_bytes..].fill(0xff);
            }
            i128::from_le_bytes(wide)
        };
        let not_fill: Vec<i128> = raw.chunks_exact(elem_bytes).filter(|e| *e != fill).map(value).collect();
        let all_fill = not_fill.is_empty();
        let valid: Vec<i128> = not_fill.into_iter().filter(|&v| !nat_is_null || v != i128::from(i64::MIN)).collect();
        // Signed values keep their i64 bits, unsigned ones their u64 value: the low 64 bits.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let bits = |v: Option<&i128>| v.map_or(0, |&v| v as u64);
        let sum = valid.iter().sum::<i128>() as f64;
        (valid.len() as u64, bits(valid.iter().min()), bits(valid.iter().max()), sum.to_bits(), all_fill)
    }

    proptest::proptest! {
        /// Every integer dtype's scan agrees with the plain model, values drawn from a small
        /// palette so that the fill value and the extremes come up often.
        #[test]
        fn every_integer_dtype_scans_as_a_plain_loop(
            dtype in proptest::sample::select(vec![
                DType::Int8, DType::Int16, DType::Int32, DType::Int64,
                DType::UInt8, DType::UInt16, DType::UInt32, DType::UInt64, DType::Bool, DType::Timestamp,
            ]),
            palette in proptest::collection::vec(proptest::prop_oneof![
                proptest::prelude::any::<u64>(), proptest::prelude::Just(0u64), proptest::prelude::Just(u64::MAX),
                proptest::prelude::Just(1u64 << 63), proptest::prelude::Just(i64::MAX.cast_unsigned()),
            ], 6),
            picks in proptest::collection::vec(0usize..6, 0..3000),
            fill_pick in 0usize..7,
        ) {
            let element = |v: u64| v.to_le_bytes()[..dtype.size_bytes()].to_vec();
            let raw: Vec<u8> = picks.iter().flat_map(|&i| element(palette[i])).collect();
            let fill = element(palette.get(fill_pick).copied().unwrap_or(7));
            let scan = scan(&raw, dtype, &fill);
            let got = (scan.stats.valid_count, scan.stats.min_bits, scan.stats.max_bits, scan.stats.sum_bits, scan.all_fill);
            let model = plain_integer_scan(&raw, dtype, &fill);
            proptest::prop_assert_eq!(got, model, "{:?}", dtype);
        }
    }

    #[test]
    fn wide_integer_sums_stay_exact() {
        let raw: Vec<u8> = [u64::MAX, u64::MAX, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
        let scan = scan(&raw, DType::UInt64, &0u64.to_le_bytes());
        assert_eq!(scan.stats.sum_bits, ((2 * u128::from(u64::MAX) + 1) as f64).to_bits());
        assert_eq!(scan.stats.max_bits, u64::MAX);
    }

    #[test]
    fn bool_bytes_other_than_0_and_1_scan_as_true_and_check_as_values() {
        // As reads give them: 2 and 255 are true. The fill byte alone is null.
        let scan = scan(&[1, 2, 0, 255, 0], DType::Bool, &[0]);
        let truth = ChunkStats { valid_count: 3, min_bits: 1, max_bits: 1, sum_bits: 3f64.to_bits() };
        assert_eq!(scan.stats, truth);
        assert_eq!(super::scan(&[0, 7, 1], DType::Bool, &[1]).stats.valid_count, 2);
        // An entry that recorded other nonzero bytes for true states the same values.
        let entry = ChunkStats { min_bits: 2, max_bits: 7, ..truth };
        assert_eq!(entry.check_against(&scan.stats, DType::Bool), Ok(()));
        let wrong = ChunkStats { min_bits: 0, ..truth };
        assert!(wrong.check_against(&scan.stats, DType::Bool).is_err());
    }

    #[test]
    #[allow(clippy::float_cmp)] // exact results: compensation leaves no error here
    fn merged_float_sums_are_compensated_while_finite_and_plain_once_not() {
        let merged = |sums: &[f64]| {
            let blocks: Vec<ChunkStats> = sums
                .iter()
                .map(|s| ChunkStats { valid_count: 1, min_bits: 0, max_bits: 0, sum_bits: s.to_bits() })
                .collect();
            merge(DType::Float64, sums.len() as u64, &blocks).sum
        };
        // The 1s a plain sum loses beside 1e16 are kept (docs/FORMAT.md, "ArrayStats").
        assert_eq!(merged(&[1e16, 1.0, -1e16, 1.0]), 2.0);
        // Textbook Neumaier gives NaN for these three (its correction becomes inf - inf).
        assert_eq!(merged(&[1e308, 1e308]), f64::INFINITY);
        assert_eq!(merged(&[f64::INFINITY, 1.0]), f64::INFINITY);
        assert_eq!(merged(&[-1.7e308, -1.7e308, 1.0]), f64::NEG_INFINITY);
        assert!(merged(&[f64::INFINITY, f64::NEG_INFINITY]).is_nan());
    }

    #[test]
    fn signed_minimum_keeps_its_sign() {
        let raw: Vec<u8> = [-5i16, 7, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
        let scan = scan(&raw, DType::Int16, &0i16.to_le_bytes());
        assert_eq!(scan.stats.min_bits, (-5i64).cast_unsigned());
        assert_eq!(scan.stats.max_bits, 7);
    }
}
