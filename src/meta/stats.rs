//! Array statistics as persisted in the metadata and as returned to callers.

use serde::{Deserialize, Serialize};

use super::dtype::DType;
use super::scalar::Scalar;

/// Statistics of an array's values, kept current on write without reading data back.
///
/// Null values are those bit-for-bit equal to the fill value, NaN for float dtypes and `NaT`
/// (`i64::MIN`, numpy's "not a time") for timestamps;
/// never-written chunks are all null. `min`, `max`, `sum` and `mean` cover the valid
/// (non-null) values only.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ArrayStats {
    /// Number of valid values.
    pub count: u64,
    /// Number of null values (elements of the array minus `count`).
    pub null_count: u64,
    /// Smallest valid value, if any.
    pub min: Option<Scalar>,
    /// Largest valid value, if any.
    pub max: Option<Scalar>,
    /// Sum of the valid values, as f64 (exact for integers up to 2^53); 0 for strings. It is
    /// the sum of the blocks' sums (as their index entries keep them), added exactly for
    /// integer dtypes and with compensation for floats, in the order of the chunks, so it
    /// does not depend on how or when the blocks were written or re-encoded.
    #[serde(with = "super::float")]
    pub sum: f64,
    /// `sum / count`, if `count > 0` and the dtype is not `String`.
    #[serde(with = "super::float::option")]
    pub mean: Option<f64>,
}

/// Statistics of one block (one chunk), as kept in its fragment's index.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BlockStats {
    /// The chunk's grid coordinate.
    pub coord: Vec<u64>,
    /// Number of valid values in the chunk.
    pub count: u64,
    /// Smallest valid value, if any.
    pub min: Option<Scalar>,
    /// Largest valid value, if any.
    pub max: Option<Scalar>,
    /// Sum of the valid values.
    pub sum: f64,
}

impl BlockStats {
    pub(crate) fn new(coord: Vec<u64>, count: u64, min: Option<Scalar>, max: Option<Scalar>, sum: f64) -> Self {
        Self { coord, count, min, max, sum }
    }
}

impl ArrayStats {
    /// Whether these (persisted) statistics are `merged`, those its blocks merge to: counts,
    /// min and max alike. Sums are not compared: builds before the exact merge added the
    /// blocks' sums in f64 one by one, rounding them otherwise once past 2^53 (any
    /// timestamp array of a few chunks).
    pub(crate) fn agrees_with(&self, merged: &Self) -> bool {
        (self.count, self.null_count, self.min, self.max) == (merged.count, merged.null_count, merged.min, merged.max)
    }

    /// Stats of `count` valid values among `elems` elements of `dtype`.
    pub(crate) fn new(
        dtype: DType,
        elems: u64,
        count: u64,
        min: Option<Scalar>,
        max: Option<Scalar>,
        sum: f64,
    ) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let mean = (count > 0 && dtype != DType::String).then(|| sum / count as f64);
        Self { count, null_count: elems.saturating_sub(count), min, max, sum, mean }
    }

    /// The mean of a timestamp array's instants in nanoseconds: `mean` rounded, kept off
    /// `i64::MIN` (`NaT`, a null), which a float mean of instants next to it rounds to, and
    /// within `min ..= max` (a float holds instants far from the epoch to 2^-52 of their
    /// value, 256 ns for today's, so the rounded mean of close instants can fall outside
    /// them); `None` where `mean` is (no valid values, strings).
    #[must_use]
    pub fn mean_instant(&self) -> Option<i64> {
        #[allow(clippy::cast_possible_truncation)] // a mean of i64 values is within their range
        let instant = (self.mean?.round() as i64).max(i64::MIN + 1);
        match (self.min, self.max) {
            (Some(Scalar::Int(min)), Some(Scalar::Int(max))) if min <= max => Some(instant.clamp(min, max)),
            _ => Some(instant),
        }
    }

    /// Checks persisted stats against the array they describe (`elems` elements of
    /// `dtype`): the counts add up, min and max are values of the dtype (none for strings
    /// or without valid values) in order, the sum can be one of such values
    /// ([`check_sum`]), and the mean is the one `sum` and `count` give.
    /// Returns what is wrong.
    pub(crate) fn check(&self, dtype: DType, elems: u64) -> Result<(), String> {
        if self.count.checked_add(self.null_count) != Some(elems) {
            return Err(format!(
                "stats count {} and null_count {} do not add up to the {elems} elements",
                self.count, self.null_count
            ));
        }
        let has_min_max = self.count > 0 && dtype != DType::String;
        match (self.min, self.max) {
            (None, None) if !has_min_max => {}
            (Some(min), Some(max)) if has_min_max => check_min_max(dtype, min, max)?,
            (min, max) => return Err(format!("stats min {min:?} and max {max:?} do not match count {}", self.count)),
        }
        check_sum(dtype, self.count, self.sum)?;
        let derived = Self::new(dtype, elems, self.count, self.min, self.max, self.sum);
        if self.mean.map(f64::to_bits) != derived.mean.map(f64::to_bits) {
            return Err(format!("stats mean {:?} is not sum / count ({:?})", self.mean, derived.mean));
        }
        Ok(())
    }
}

/// Checks that `sum` can be the sum of `count` valid values of `dtype`: 0 without any and
/// for strings, finite for integers, bools and timestamps, not below 0 for unsigned ones
/// and bools.
pub(crate) fn check_sum(dtype: DType, count: u64, sum: f64) -> Result<(), String> {
    let integers = !matches!(dtype, DType::Float32 | DType::Float64);
    let unsigned = matches!(dtype, DType::UInt8 | DType::UInt16 | DType::UInt32 | DType::UInt64 | DType::Bool);
    let nothing = count == 0 || dtype == DType::String;
    if (nothing && sum != 0.0) || (integers && !sum.is_finite()) || (unsigned && sum < 0.0) {
        return Err(format!("a sum of {sum} over {count} valid {dtype} values"));
    }
    Ok(())
}

/// Checks that `min` and `max` are values of `dtype` with `min <= max` (neither NaN).
pub(crate) fn check_min_max(dtype: DType, min: Scalar, max: Scalar) -> Result<(), String> {
    let fits = |v: Scalar| v.to_le_bytes(dtype).is_some();
    if fits(min) && fits(max) && in_order(min, max) {
        Ok(())
    } else {
        Err(format!("stats min {min} and max {max} are not an ordered pair of {dtype} values"))
    }
}

/// Whether `min <= max` (false where either is NaN).
fn in_order(min: Scalar, max: Scalar) -> bool {
    match (min, max) {
        (Scalar::Float(_), _) | (_, Scalar::Float(_)) => min.as_f64() <= max.as_f64(),
        _ => min.as_i128() <= max.as_i128(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sound() -> ArrayStats {
        ArrayStats::new(DType::Int16, 10, 4, Some(Scalar::Int(-3)), Some(Scalar::Int(7)), 9.0)
    }

    #[test]
    fn stats_made_by_new_pass_and_each_broken_invariant_is_named() {
        sound().check(DType::Int16, 10).unwrap();
        ArrayStats::new(DType::Float32, 5, 0, None, None, 0.0).check(DType::Float32, 5).unwrap();
        ArrayStats::new(DType::String, 5, 2, None, None, 0.0).check(DType::String, 5).unwrap();
        let broken = |change: fn(&mut ArrayStats)| {
            let mut stats = sound();
            change(&mut stats);
            stats.check(DType::Int16, 10).unwrap_err()
        };
        assert!(broken(|s| s.null_count = 7).contains("add up"));
        assert!(broken(|s| s.count = u64::MAX).contains("add up"));
        assert!(broken(|s| s.max = None).contains("do not match"));
        assert!(broken(|s| (s.min, s.max) = (s.max, s.min)).contains("ordered"));
        assert!(broken(|s| s.max = Some(Scalar::Int(40_000))).contains("ordered"));
        assert!(broken(|s| s.max = Some(Scalar::Float(f64::NAN))).contains("ordered"));
        assert!(broken(|s| s.mean = Some(1.0)).contains("mean"));
        assert!(broken(|s| s.mean = None).contains("mean"));
        assert!(sound().check(DType::Int16, 11).unwrap_err().contains("add up"));
        assert!(sound().check(DType::String, 10).unwrap_err().contains("do not match"));
    }

    #[test]
    fn the_mean_instant_of_the_earliest_instants_is_not_nat() {
        let earliest = Some(Scalar::Int(i64::MIN + 1));
        #[allow(clippy::cast_precision_loss)] // what the stats keep: rounds to -2^63
        let stats = ArrayStats::new(DType::Timestamp, 2, 2, earliest, earliest, 2.0 * (i64::MIN + 1) as f64);
        assert_eq!(stats.mean_instant(), Some(i64::MIN + 1));
        let stats = ArrayStats::new(DType::Timestamp, 2, 2, Some(Scalar::Int(1)), Some(Scalar::Int(4)), 5.0);
        assert_eq!(stats.mean_instant(), Some(3), "2.5 rounds away from zero");
    }

    #[test]
    fn the_mean_instant_is_within_the_instants() {
        // Four instants 2 ns apart in 2262: their float sum rounds to a multiple of 4096 ns.
        let first = 9_214_646_400_000_000_001_i64;
        let instants = [first, first + 2, first + 4, first + 6];
        #[allow(clippy::cast_precision_loss)] // what the stats keep
        let sum = instants.iter().map(|&v| v as f64).sum::<f64>();
        let (min, max) = (Some(Scalar::Int(first)), Some(Scalar::Int(first + 6)));
        let stats = ArrayStats::new(DType::Timestamp, 4, 4, min, max, sum);
        #[allow(clippy::cast_possible_truncation)]
        let unclamped = stats.mean.unwrap().round() as i64;
        assert!(unclamped < first, "the float mean {unclamped} is below the first instant");
        assert_eq!(stats.mean_instant(), Some(first));
    }

    #[test]
    fn strings_have_no_mean() {
        let stats = ArrayStats::new(DType::String, 5, 2, None, None, 0.0);
        assert_eq!((stats.count, stats.null_count, stats.mean), (2, 3, None));
    }
}
