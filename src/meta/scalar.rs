//! [`Scalar`]: a single numeric value given by a caller (a fill value), and its
//! conversion to the bytes of one element of a given dtype.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::dtype::{DType, Kind};

/// A number as a caller writes it: `Scalar::from(0)`, `Scalar::from(f64::NAN)`.
/// It is checked against an array's dtype when the array is defined.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    /// A signed integer.
    Int(i64),
    /// An unsigned integer too large for `i64`.
    UInt(u64),
    /// A floating-point number.
    Float(f64),
}

macro_rules! scalar_from {
    ($variant:ident as $wide:ty: $($t:ty),*) => {$(
        impl From<$t> for Scalar {
            fn from(v: $t) -> Self {
                Self::$variant(<$wide>::from(v))
            }
        }
    )*};
}
scalar_from!(Int as i64: i8, i16, i32, i64, u8, u16, u32);
scalar_from!(Float as f64: f32, f64);

impl From<bool> for Scalar {
    fn from(v: bool) -> Self {
        Self::Int(i64::from(v))
    }
}

impl From<u64> for Scalar {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(Self::UInt(v), Self::Int)
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            Self::UInt(v) => write!(f, "{v}"),
            // Debug keeps the point (`0.0`, `1e300`), so a float never reads as an integer.
            Self::Float(v) => write!(f, "{v:?}"),
        }
    }
}

impl Scalar {
    /// The value as a float (an integer past 2^53 rounds to the nearest): for comparing
    /// block statistics with a threshold.
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // documented: the nearest float
    pub fn as_f64(self) -> f64 {
        match self {
            Self::Int(v) => v as f64,
            Self::UInt(v) => v as f64,
            Self::Float(v) => v,
        }
    }

    /// The value as an `i128` (exact for every integer), or `None` for a float.
    #[must_use]
    pub(crate) fn as_i128(self) -> Option<i128> {
        match self {
            Self::Int(v) => Some(i128::from(v)),
            Self::UInt(v) => Some(i128::from(v)),
            Self::Float(_) => None,
        }
    }

    /// The little-endian bytes of this value as one element of `dtype`, or `None` when it
    /// does not fit (out of range, or a fraction for an integer dtype).
    #[must_use]
    pub fn to_le_bytes(self, dtype: DType) -> Option<Vec<u8>> {
        let bytes = match dtype.kind() {
            Kind::Float => {
                let v = match self {
                    Self::Float(v) => v,
                    Self::Int(v) => exact_int_to_f64(i128::from(v))?,
                    Self::UInt(v) => exact_int_to_f64(i128::from(v))?,
                };
                if dtype == DType::Float32 {
                    #[allow(clippy::cast_possible_truncation)] // narrowing is the intent
                    let narrowed = v as f32;
                    // 0.1 stores the nearest float32, as numpy does; overflow is refused.
                    if v.is_finite() && !narrowed.is_finite() {
                        return None;
                    }
                    narrowed.to_le_bytes().to_vec()
                } else {
                    v.to_le_bytes().to_vec()
                }
            }
            // Strings have one fill value, the empty string, with no element bytes.
            Kind::Text => return (self == Self::Int(0)).then(Vec::new),
            Kind::Bool => match self {
                Self::Int(v @ 0..=1) => vec![u8::from(v == 1)],
                Self::UInt(_) | Self::Int(_) => return None,
                Self::Float(v) => vec![u8::from(float_to_exact_int(v).filter(|i| (0..=1).contains(i))? == 1)],
            },
            Kind::Signed | Kind::Unsigned => {
                let v: i128 = match self {
                    Self::Int(v) => i128::from(v),
                    Self::UInt(v) => i128::from(v),
                    Self::Float(v) => float_to_exact_int(v)?,
                };
                int_le_bytes(v, dtype)?
            }
        };
        Some(bytes)
    }
}

fn exact_int_to_f64(v: i128) -> Option<f64> {
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let f = v as f64;
    (f as i128 == v).then_some(f)
}

fn float_to_exact_int(v: f64) -> Option<i128> {
    if !v.is_finite() || v.fract() != 0.0 || v.abs() > 2f64.powi(64) {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)] // checked integral and within range above
    Some(v as i128)
}

fn int_le_bytes(v: i128, dtype: DType) -> Option<Vec<u8>> {
    Some(match dtype {
        DType::Int8 => i8::try_from(v).ok()?.to_le_bytes().to_vec(),
        DType::Int16 => i16::try_from(v).ok()?.to_le_bytes().to_vec(),
        DType::Int32 => i32::try_from(v).ok()?.to_le_bytes().to_vec(),
        DType::Int64 | DType::Timestamp => i64::try_from(v).ok()?.to_le_bytes().to_vec(),
        DType::UInt8 => u8::try_from(v).ok()?.to_le_bytes().to_vec(),
        DType::UInt16 => u16::try_from(v).ok()?.to_le_bytes().to_vec(),
        DType::UInt32 => u32::try_from(v).ok()?.to_le_bytes().to_vec(),
        DType::UInt64 => u64::try_from(v).ok()?.to_le_bytes().to_vec(),
        DType::Float32 | DType::Float64 | DType::Bool | DType::String => unreachable!("converted by the caller"),
    })
}

impl Serialize for Scalar {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Self::Int(v) => s.serialize_i64(v),
            Self::UInt(v) => s.serialize_u64(v),
            Self::Float(v) => super::float::serialize(&v, s),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }

    fn visit_f32<E: de::Error>(self, v: f32) -> Result<Scalar, E> {
        Ok(Scalar::Float(f64::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        super::float::FloatVisitor.visit_str(v).map(Scalar::Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_f64_gives_every_kind_as_a_float() {
        assert_eq!(
            (Scalar::Int(-3).as_f64(), Scalar::UInt(u64::MAX).as_f64(), Scalar::Float(0.5).as_f64()),
            (-3.0, 2f64.powi(64), 0.5)
        );
    }

    #[test]
    fn as_i128_gives_every_integer_exactly_and_no_float() {
        assert_eq!(Scalar::Int(i64::MIN).as_i128(), Some(i128::from(i64::MIN)));
        assert_eq!(Scalar::UInt(u64::MAX).as_i128(), Some(i128::from(u64::MAX)));
        assert_eq!(Scalar::Float(1.0).as_i128(), None);
    }

    #[test]
    fn converts_in_range_values_and_refuses_the_rest() {
        assert_eq!(Scalar::from(-1).to_le_bytes(DType::Int8), Some(vec![0xff]));
        assert_eq!(Scalar::from(-1).to_le_bytes(DType::UInt8), None);
        assert_eq!(Scalar::from(256).to_le_bytes(DType::UInt8), None);
        assert_eq!(Scalar::from(2.0).to_le_bytes(DType::UInt16), Some(vec![2, 0]));
        assert_eq!(Scalar::from(2.5).to_le_bytes(DType::Int32), None);
        assert_eq!(Scalar::from(u64::MAX).to_le_bytes(DType::UInt64), Some(vec![0xff; 8]));
        assert_eq!(Scalar::from(f64::NAN).to_le_bytes(DType::Float32), Some(f32::NAN.to_le_bytes().to_vec()));
        assert_eq!(Scalar::from(1e300).to_le_bytes(DType::Float32), None);
        assert_eq!(Scalar::from(3).to_le_bytes(DType::Float64), Some(3.0f64.to_le_bytes().to_vec()));
    }

    #[test]
    fn non_finite_values_survive_json() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.5] {
            let text = serde_json::to_string(&Scalar::Float(v)).unwrap();
            let Scalar::Float(back) = serde_json::from_str(&text).unwrap() else { panic!("{text}") };
            assert!(back.to_bits() == v.to_bits() || (v.is_nan() && back.is_nan()), "{text}");
        }
    }
}
