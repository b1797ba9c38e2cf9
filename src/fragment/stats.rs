//! Per-block statistics, computed from a chunk's raw bytes when it is written and kept in
//! its index entry: how many values are valid (not null), their min, max and sum.
//!
//! Null means: bit-for-bit equal to the fill value, or NaN for float dtypes. A chunk's
//! elements outside the array (edge padding) always hold the fill value, so the whole chunk
//! can be scanned.

use crate::meta::{ArrayStats, DType, Scalar};

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
    match dtype {
        DType::Int8 => scan_as::<i8>(raw, fill),
        DType::Int16 => scan_as::<i16>(raw, fill),
        DType::Int32 => scan_as::<i32>(raw, fill),
        DType::Int64 | DType::Timestamp => scan_as::<i64>(raw, fill),
        DType::UInt8 | DType::Bool => scan_as::<u8>(raw, fill),
        DType::UInt16 => scan_as::<u16>(raw, fill),
        DType::UInt32 => scan_as::<u32>(raw, fill),
        DType::UInt64 => scan_as::<u64>(raw, fill),
        DType::Float32 => scan_as::<f32>(raw, fill),
        DType::Float64 => scan_as::<f64>(raw, fill),
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
}

#[allow(clippy::cast_possible_wrap)] // the bits of a signed value, stored as u64
fn to_scalar(dtype: DType, bits: u64) -> Scalar {
    match dtype {
        DType::Float32 | DType::Float64 => Scalar::Float(f64::from_bits(bits)),
        DType::Int8 | DType::Int16 | DType::Int32 | DType::Int64 | DType::Timestamp => Scalar::Int(bits as i64),
        DType::UInt8 | DType::UInt16 | DType::UInt32 | DType::UInt64 | DType::Bool | DType::String => {
            Scalar::from(bits)
        }
    }
}

/// Merges the stats of an array's live blocks into the array's stats; `elems` is the
/// array's element count.
pub(crate) fn merge<'a>(dtype: DType, elems: u64, blocks: impl IntoIterator<Item = &'a ChunkStats>) -> ArrayStats {
    let (mut count, mut sum) = (0u64, 0.0f64);
    let (mut min, mut max) = (None::<Scalar>, None::<Scalar>);
    for block in blocks {
        if block.valid_count == 0 {
            continue;
        }
        // Saturating: counts come from index entries, which a damaged store could inflate.
        count = count.saturating_add(block.valid_count);
        sum += block.sum();
        let (lo, hi) = block.min_max(dtype);
        min = pick(min, lo, std::cmp::Ordering::Less);
        max = pick(max, hi, std::cmp::Ordering::Greater);
    }
    ArrayStats::new(elems, count.min(elems), min, max, sum)
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
        (a, b) => scalar_as_i128(a)?.partial_cmp(&scalar_as_i128(b)?),
    }
}

fn scalar_as_i128(v: Scalar) -> Option<i128> {
    match v {
        Scalar::Int(i) => Some(i128::from(i)),
        Scalar::UInt(u) => Some(i128::from(u)),
        Scalar::Float(_) => None,
    }
}

/// A numeric element type the scan understands.
trait Stat: bytemuck::Pod + PartialOrd {
    /// What valid values are summed in: exact for integers, f64 for floats.
    type Sum: Copy + Default;
    fn is_nan(self) -> bool;
    /// Bit-for-bit equality (so a NaN fill matches a NaN of the same bits).
    fn same_bits(self, other: Self) -> bool;
    fn add(sum: Self::Sum, v: Self) -> Self::Sum;
    fn sum_to_f64(sum: Self::Sum) -> f64;
    /// The value widened to 64 bits in its family's representation.
    fn to_bits64(self) -> u64;
}

macro_rules! int_stat {
    ($wide:ty: $($t:ty),*) => {$(
        impl Stat for $t {
            type Sum = i128;
            fn is_nan(self) -> bool {
                false
            }
            fn same_bits(self, other: Self) -> bool {
                self == other
            }
            fn add(sum: i128, v: Self) -> i128 {
                sum + i128::from(v)
            }
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
int_stat!(i64: i8, i16, i32, i64);
int_stat!(u64: u8, u16, u32, u64);

macro_rules! float_stat {
    ($($t:ty),*) => {$(
        impl Stat for $t {
            type Sum = f64;
            fn is_nan(self) -> bool {
                self.is_nan()
            }
            fn same_bits(self, other: Self) -> bool {
                self.to_bits() == other.to_bits()
            }
            fn add(sum: f64, v: Self) -> f64 {
                sum + f64::from(v)
            }
            fn sum_to_f64(sum: f64) -> f64 {
                sum
            }
            fn to_bits64(self) -> u64 {
                f64::from(self).to_bits()
            }
        }
    )*};
}
float_stat!(f32, f64);

fn scan_as<T: Stat>(raw: &[u8], fill: &[u8]) -> Scan {
    let fill: T = bytemuck::pod_read_unaligned(fill);
    let mut valid_count = 0u64;
    let mut all_fill = true;
    let (mut min, mut max) = (fill, fill);
    let mut sum = T::Sum::default();
    for v in raw.chunks_exact(size_of::<T>()).map(bytemuck::pod_read_unaligned::<T>) {
        if v.same_bits(fill) {
            continue;
        }
        all_fill = false;
        if v.is_nan() {
            continue;
        }
        if valid_count == 0 {
            (min, max) = (v, v);
        } else if v < min {
            min = v;
        } else if v > max {
            max = v;
        }
        valid_count += 1;
        sum = T::add(sum, v);
    }
    let bits = |v: T| if valid_count == 0 { 0 } else { v.to_bits64() };
    let stats =
        ChunkStats { valid_count, min_bits: bits(min), max_bits: bits(max), sum_bits: T::sum_to_f64(sum).to_bits() };
    Scan { stats, all_fill }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
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

    #[test]
    fn signed_minimum_keeps_its_sign() {
        let raw: Vec<u8> = [-5i16, 7, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
        let scan = scan(&raw, DType::Int16, &0i16.to_le_bytes());
        assert_eq!(scan.stats.min_bits, (-5i64).cast_unsigned());
        assert_eq!(scan.stats.max_bits, 7);
    }
}
