//! Attributes: typed, tagged values on the store, a dataset or an array.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The attributes of one store, dataset or array, sorted by key.
pub type Attributes = BTreeMap<String, AttrValue>;

/// One attribute value. The tag is stored with the value, so a string that looks like a
/// date stays a string and a timestamp stays a timestamp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase", deny_unknown_fields)]
pub enum AttrValue {
    /// `true` or `false`.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float (NaN and the infinities included).
    Float(#[serde(with = "super::float")] f64),
    /// UTF-8 text.
    String(String),
    /// Nanoseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// An ordered list of values.
    List(Vec<AttrValue>),
    /// A map from string keys to values.
    Map(#[serde(deserialize_with = "super::unique::unique_keys")] BTreeMap<String, AttrValue>),
}

impl AttrValue {
    /// The bool, if this is one.
    #[must_use]
    pub fn as_bool(&self) -> Option<bool> {
        if let Self::Bool(v) = self { Some(*v) } else { None }
    }

    /// The integer, if this is one.
    #[must_use]
    pub fn as_i64(&self) -> Option<i64> {
        if let Self::Int(v) = self { Some(*v) } else { None }
    }

    /// The number, if this is a float or an integer (as `serde_json::Value::as_f64`; an
    /// integer past 2^53 rounds).
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // documented: the nearest float
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Float(v) => Some(*v),
            Self::Int(v) => Some(*v as f64),
            _ => None,
        }
    }

    /// The text, if this is a string.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        if let Self::String(v) = self { Some(v) } else { None }
    }

    /// Nanoseconds since the epoch, if this is a timestamp.
    #[must_use]
    pub fn as_timestamp(&self) -> Option<i64> {
        if let Self::Timestamp(v) = self { Some(*v) } else { None }
    }

    /// The instant, if this is a timestamp other than `NaT` (`i64::MIN`, numpy's "not a
    /// time").
    #[must_use]
    pub fn as_system_time(&self) -> Option<SystemTime> {
        match *self {
            Self::Timestamp(nanos) if nanos != i64::MIN => {
                let offset = Duration::from_nanos(nanos.unsigned_abs());
                if nanos < 0 { UNIX_EPOCH.checked_sub(offset) } else { UNIX_EPOCH.checked_add(offset) }
            }
            _ => None,
        }
    }

    /// The items, if this is a list.
    #[must_use]
    pub fn as_list(&self) -> Option<&[AttrValue]> {
        if let Self::List(v) = self { Some(v) } else { None }
    }

    /// The entries, if this is a map.
    #[must_use]
    pub fn as_map(&self) -> Option<&BTreeMap<String, AttrValue>> {
        if let Self::Map(v) = self { Some(v) } else { None }
    }

    /// How deeply lists and maps nest inside this value (a scalar is 0).
    #[must_use]
    pub fn depth(&self) -> usize {
        match self {
            Self::List(items) => 1 + items.iter().map(Self::depth).max().unwrap_or(0),
            Self::Map(items) => 1 + items.values().map(Self::depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// This value with every NaN in it (nested ones too) the standard NaN: the metadata
    /// writes any NaN as `"NaN"`, so a handle keeping another NaN's bits would read other
    /// bits than every later open.
    pub(crate) fn with_standard_nans(self) -> Self {
        match self {
            Self::Float(v) if v.is_nan() => Self::Float(f64::NAN),
            Self::List(items) => Self::List(items.into_iter().map(Self::with_standard_nans).collect()),
            Self::Map(items) => Self::Map(items.into_iter().map(|(k, v)| (k, v.with_standard_nans())).collect()),
            other => other,
        }
    }
}

macro_rules! attr_from {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for AttrValue {
            fn from(v: $t) -> Self {
                Self::$variant(v.into())
            }
        }
    )*};
}
attr_from!(
    bool => Bool, i8 => Int, i16 => Int, i32 => Int, i64 => Int, u8 => Int, u16 => Int, u32 => Int,
    f32 => Float, f64 => Float, &str => String, String => String,
);

/// Integers that `Int` (an `i64`) may not hold: refused past `i64::MAX`, never wrapped.
macro_rules! attr_try_from {
    ($($t:ty),*) => {$(
        impl TryFrom<$t> for AttrValue {
            type Error = std::num::TryFromIntError;

            fn try_from(v: $t) -> Result<Self, Self::Error> {
                i64::try_from(v).map(Self::Int)
            }
        }
    )*};
}
attr_try_from!(u64, usize);

/// An instant as a `Timestamp`: refused outside what nanoseconds from the epoch in an `i64`
/// reach (about 1677-09-21 to 2262-04-11 UTC), never wrapped.
impl TryFrom<SystemTime> for AttrValue {
    type Error = std::num::TryFromIntError;

    fn try_from(time: SystemTime) -> Result<Self, Self::Error> {
        let nanos = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_nanos())?,
            // Down to -(2^63 - 1): `i64::MIN` is NaT, and its magnitude fails the conversion.
            Err(before) => -i64::try_from(before.duration().as_nanos())?,
        };
        Ok(Self::Timestamp(nanos))
    }
}

impl<T: Into<AttrValue>> From<Vec<T>> for AttrValue {
    fn from(v: Vec<T>) -> Self {
        Self::List(v.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<AttrValue>> From<BTreeMap<String, T>> for AttrValue {
    fn from(v: BTreeMap<String, T>) -> Self {
        Self::Map(v.into_iter().map(|(k, v)| (k, v.into())).collect())
    }
}

impl<T: Into<AttrValue>, S: std::hash::BuildHasher> From<std::collections::HashMap<String, T, S>> for AttrValue {
    fn from(v: std::collections::HashMap<String, T, S>) -> Self {
        Self::Map(v.into_iter().map(|(k, v)| (k, v.into())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_give_the_value_of_their_kind_only() {
        let list = AttrValue::List(vec![1.into()]);
        let map = AttrValue::Map([("k".into(), true.into())].into());
        assert_eq!((AttrValue::from(true).as_bool(), AttrValue::from(3).as_bool()), (Some(true), None));
        assert_eq!((AttrValue::from(3).as_i64(), AttrValue::from(3.5).as_i64()), (Some(3), None));
        assert_eq!((AttrValue::from(3.5).as_f64(), AttrValue::from(-2).as_f64()), (Some(3.5), Some(-2.0)));
        assert_eq!((AttrValue::from("x").as_str(), AttrValue::Timestamp(1).as_str()), (Some("x"), None));
        assert_eq!((AttrValue::Timestamp(7).as_timestamp(), AttrValue::from(7).as_timestamp()), (Some(7), None));
        assert_eq!(list.as_list(), Some(&[AttrValue::Int(1)][..]));
        assert_eq!(map.as_map().map(|m| m["k"].as_bool()), Some(Some(true)));
        assert_eq!((list.as_map(), map.as_list(), list.as_f64()), (None, None, None));
    }

    #[test]
    fn system_times_convert_to_timestamps_and_back_within_the_i64_range_of_nanoseconds() {
        let ns = |n: u64| Duration::from_nanos(n);
        for (time, nanos) in [
            (UNIX_EPOCH, 0),
            (UNIX_EPOCH + ns(1_700_000_000_123_456_789), 1_700_000_000_123_456_789),
            (UNIX_EPOCH - ns(1), -1),
            (UNIX_EPOCH + ns(i64::MAX as u64), i64::MAX),
            (UNIX_EPOCH - ns(i64::MAX as u64), -i64::MAX),
        ] {
            let value = AttrValue::try_from(time).unwrap();
            assert_eq!(value, AttrValue::Timestamp(nanos));
            assert_eq!(value.as_system_time(), Some(time));
        }
        // One nanosecond past either end is refused: -2^63 would be NaT.
        assert!(AttrValue::try_from(UNIX_EPOCH + ns(i64::MAX as u64 + 1)).is_err());
        assert!(AttrValue::try_from(UNIX_EPOCH - ns(i64::MAX as u64 + 1)).is_err());
        assert_eq!(AttrValue::Timestamp(i64::MIN).as_system_time(), None, "NaT is no instant");
        assert_eq!(AttrValue::from(5).as_system_time(), None);
    }

    #[test]
    fn every_nan_becomes_the_standard_one_nested_ones_too() {
        let odd = f64::from_bits(0xfff8_0000_0000_0001);
        let value = AttrValue::List(vec![odd.into(), AttrValue::Map([("n".into(), odd.into())].into())]);
        let AttrValue::List(items) = value.with_standard_nans() else { panic!("a list stays a list") };
        let standard = |v: &AttrValue| matches!(v, AttrValue::Float(f) if f.to_bits() == f64::NAN.to_bits());
        assert!(standard(&items[0]));
        assert!(matches!(&items[1], AttrValue::Map(map) if standard(&map["n"])));
    }

    #[test]
    fn tags_keep_date_like_strings_as_strings() {
        let v = AttrValue::from("2024-01-01T00:00:00Z");
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(text, r#"{"type":"string","value":"2024-01-01T00:00:00Z"}"#);
        assert_eq!(serde_json::from_str::<AttrValue>(&text).unwrap(), v);
    }

    #[test]
    fn maps_convert_with_their_values() {
        let want = AttrValue::Map([("a".into(), AttrValue::Int(1)), ("b".into(), AttrValue::Int(2))].into());
        assert_eq!(AttrValue::from(BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 2)])), want);
        let hashed: std::collections::HashMap<String, u8> = [("b".to_string(), 2), ("a".to_string(), 1)].into();
        assert_eq!(AttrValue::from(hashed), want);
    }

    #[test]
    fn integers_convert_unless_past_i64() {
        assert_eq!(AttrValue::from(-3i8), AttrValue::Int(-3));
        assert_eq!(AttrValue::from(65_535u16), AttrValue::Int(65_535));
        assert_eq!(AttrValue::try_from(7usize), Ok(AttrValue::Int(7)));
        assert_eq!(AttrValue::try_from(i64::MAX as u64), Ok(AttrValue::Int(i64::MAX)));
        assert!(AttrValue::try_from(u64::MAX).is_err());
    }

    #[test]
    fn nested_values_round_trip_through_json_and_msgpack() {
        let mut map = BTreeMap::new();
        map.insert("nan".to_string(), AttrValue::Float(f64::INFINITY));
        map.insert("when".to_string(), AttrValue::Timestamp(-5));
        let v = AttrValue::List(vec![AttrValue::Map(map), true.into(), 3.into()]);
        assert_eq!(v.depth(), 2);
        let json = serde_json::to_vec(&v).unwrap();
        assert_eq!(serde_json::from_slice::<AttrValue>(&json).unwrap(), v);
        let packed = rmp_serde::to_vec_named(&v).unwrap();
        assert_eq!(rmp_serde::from_slice::<AttrValue>(&packed).unwrap(), v);
    }
}
