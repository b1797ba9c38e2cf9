//! Array statistics as persisted in the metadata and as returned to callers.

use serde::{Deserialize, Serialize};

use super::scalar::Scalar;

/// Statistics of an array's values, kept current on write without reading data back.
///
/// Null values are those bit-for-bit equal to the fill value, and NaN for float dtypes;
/// never-written chunks are all null. `min`, `max`, `sum` and `mean` cover the valid
/// (non-null) values only.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
    /// Sum of the valid values, as f64 (exact for integers up to 2^53).
    #[serde(with = "super::float")]
    pub sum: f64,
    /// `sum / count`, if `count > 0`.
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
    /// Stats of `count` valid values among `elems` elements.
    pub(crate) fn new(elems: u64, count: u64, min: Option<Scalar>, max: Option<Scalar>, sum: f64) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let mean = (count > 0).then(|| sum / count as f64);
        Self { count, null_count: elems.saturating_sub(count), min, max, sum, mean }
    }
}
