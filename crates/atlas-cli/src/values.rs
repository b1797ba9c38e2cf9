//! Element values as the tool sees them: read from a store, printed as text or JSON, and
//! moved to and from little-endian bytes (.npy bodies). `dispatch!` turns a runtime
//! `DType` into a type parameter.

use atlas::{ArrayHandle, DType, Scalar};
use ndarray::ArrayD;
use serde_json::Value as Json;

/// Runs `$body` with `$t` bound to the Rust type of `$dtype`'s elements (`i64` for
/// timestamps); `string => $s` handles string arrays, which have no fixed-size element.
macro_rules! dispatch {
    ($dtype:expr, |$t:ident| $body:expr, string => $s:expr) => {
        match $dtype {
            atlas::DType::Int8 => {
                type $t = i8;
                $body
            }
            atlas::DType::Int16 => {
                type $t = i16;
                $body
            }
            atlas::DType::Int32 => {
                type $t = i32;
                $body
            }
            atlas::DType::Int64 | atlas::DType::Timestamp => {
                type $t = i64;
                $body
            }
            atlas::DType::UInt8 => {
                type $t = u8;
                $body
            }
            atlas::DType::UInt16 => {
                type $t = u16;
                $body
            }
            atlas::DType::UInt32 => {
                type $t = u32;
                $body
            }
            atlas::DType::UInt64 => {
                type $t = u64;
                $body
            }
            atlas::DType::Float32 => {
                type $t = f32;
                $body
            }
            atlas::DType::Float64 => {
                type $t = f64;
                $body
            }
            atlas::DType::Bool => {
                type $t = bool;
                $body
            }
            atlas::DType::String => $s,
            other => anyhow::bail!("dtype {other} is not supported by this version of the atlas tool"),
        }
    };
}
pub(crate) use dispatch;

/// A value the tool can read from an array and print.
pub trait Cell: Clone {
    /// Reads the box `start .. start + shape` of `array`.
    fn read(array: &ArrayHandle, start: &[u64], shape: &[u64]) -> atlas::Result<ArrayD<Self>>;
    /// The value as text; `dtype` tells timestamps (printed as ISO 8601) from integers.
    fn text(&self, dtype: DType) -> String;
    /// The value as JSON: numbers as numbers (non-finite floats as the strings `"NaN"`,
    /// `"Infinity"`, `"-Infinity"`, as in the metadata), timestamps as nanoseconds (`NaT` as
    /// `null`, as `stats --json` gives a missing value).
    fn json(&self, dtype: DType) -> Json;
}

/// A fixed-size element: a [`Cell`] with a little-endian byte form.
pub trait Fixed: Cell + atlas::Element + 'static {
    /// Bytes of one element.
    const SIZE: usize;
    /// Decodes one element from exactly `SIZE` little-endian bytes.
    fn from_le(bytes: &[u8]) -> Self;
    /// Appends the element's `SIZE` little-endian bytes.
    fn put_le(self, out: &mut Vec<u8>);
}

/// Decodes little-endian bytes (a whole number of elements) into values.
pub fn from_le_bytes<T: Fixed>(bytes: &[u8]) -> Vec<T> {
    bytes.chunks_exact(T::SIZE).map(T::from_le).collect()
}

macro_rules! numeric {
    ($($t:ty: |$v:ident, $dtype:ident| $text:expr, |$jv:ident, $jdtype:ident| $json:expr;)*) => {$(
        impl Cell for $t {
            fn read(array: &ArrayHandle, start: &[u64], shape: &[u64]) -> atlas::Result<ArrayD<Self>> {
                array.read::<$t>(start, shape)
            }

            fn text(&self, dtype: DType) -> String {
                let ($v, $dtype) = (*self, dtype);
                $text
            }

            fn json(&self, dtype: DType) -> Json {
                let ($jv, $jdtype) = (*self, dtype);
                $json
            }
        }

        impl Fixed for $t {
            const SIZE: usize = size_of::<$t>();

            fn from_le(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("callers pass SIZE bytes"))
            }

            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
numeric! {
    i8: |v, _d| v.to_string(), |v, _d| Json::from(v);
    i16: |v, _d| v.to_string(), |v, _d| Json::from(v);
    i32: |v, _d| v.to_string(), |v, _d| Json::from(v);
    i64: |v, d| if d == DType::Timestamp { iso8601(v) } else { v.to_string() },
        |v, d| if d == DType::Timestamp && v == NAT { Json::Null } else { Json::from(v) };
    u8: |v, _d| v.to_string(), |v, _d| Json::from(v);
    u16: |v, _d| v.to_string(), |v, _d| Json::from(v);
    u32: |v, _d| v.to_string(), |v, _d| Json::from(v);
    u64: |v, _d| v.to_string(), |v, _d| Json::from(v);
    f32: |v, _d| float_text(v), |v, _d| f32_json(v);
    f64: |v, _d| float_text(v), |v, _d| float_json(v);
}

impl Cell for bool {
    fn read(array: &ArrayHandle, start: &[u64], shape: &[u64]) -> atlas::Result<ArrayD<Self>> {
        array.read::<bool>(start, shape)
    }

    fn text(&self, _: DType) -> String {
        self.to_string()
    }

    fn json(&self, _: DType) -> Json {
        Json::Bool(*self)
    }
}

impl Fixed for bool {
    const SIZE: usize = 1;

    /// Any nonzero byte is `true`, as Atlas reads bool elements.
    fn from_le(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }

    fn put_le(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
}

impl Cell for String {
    fn read(array: &ArrayHandle, start: &[u64], shape: &[u64]) -> atlas::Result<ArrayD<Self>> {
        array.read_strings(start, shape)
    }

    /// Quoted and escaped as JSON, so spaces and empty strings stay visible.
    fn text(&self, _: DType) -> String {
        Json::String(self.clone()).to_string()
    }

    fn json(&self, _: DType) -> Json {
        Json::String(self.clone())
    }
}

/// A float as text: the shortest digits that read back as it, in exponent form (`1e308`,
/// `2.5e-7`) where the plain form would run long (309 digits for `1e308`), as numpy
/// switches to it.
pub fn float_text<F: std::fmt::Display + std::fmt::LowerExp>(v: F) -> String {
    let text = v.to_string();
    // The magnitude of the value as written: a float32's `0.0001` widens to 9.99999975e-5.
    let magnitude = text.parse::<f64>().map_or(f64::NAN, f64::abs);
    if magnitude.is_finite() && magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        format!("{v:e}")
    } else {
        text
    }
}

/// A float32 value as JSON: the shortest decimal that reads back as it, as its text gives
/// (`0.1`), not the digits of the float64 it widens to (`0.10000000149011612`).
pub fn f32_json(v: f32) -> Json {
    float_json(v.to_string().parse().expect("a float32's text parses as a float64"))
}

/// A float as JSON: a number, or one of the strings the metadata uses for non-finite values.
pub fn float_json(v: f64) -> Json {
    if v.is_nan() {
        Json::from("NaN")
    } else if v.is_infinite() {
        Json::from(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        Json::from(v)
    }
}

/// Nanoseconds since the Unix epoch as ISO 8601 UTC, e.g. `2024-01-31T12:00:00.000000001`;
/// whole seconds print without a fraction. `i64::MIN` is numpy's "not a time" and prints
/// as numpy prints it, `NaT`.
pub fn iso8601(ns: i64) -> String {
    if ns == NAT {
        return "NaT".to_string();
    }
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if frac == 0 {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{frac:09}")
    }
}

/// numpy's `NaT` as a `datetime64[ns]` value.
const NAT: i64 = i64::MIN;

/// Nanoseconds since the Unix epoch of an instant written as [`iso8601`] writes one, in
/// UTC: `2024-01-31`, `2024-01-31T12:00`, `2024-01-31T12:00:00`, with up to nine digits of
/// a second after a `.`; a space may stand for the `T`, and a `Z` may end it. `NaT` is
/// numpy's not-a-time. `None` for anything else, a date that does not exist (`02-30`), or
/// an instant past int64 nanoseconds (before 1677-09-21 or after 2262-04-11).
pub fn parse_iso8601(text: &str) -> Option<i64> {
    if text.eq_ignore_ascii_case("nat") {
        return Some(NAT);
    }
    let digits = |part: &str, len: usize| {
        (part.len() == len && part.bytes().all(|b| b.is_ascii_digit())).then(|| part.parse::<i64>().ok()).flatten()
    };
    let text = text.strip_suffix(['Z', 'z']).unwrap_or(text);
    let (date, time) = match text.split_once(['T', 't', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let [year, month, day] = date.split('-').collect::<Vec<_>>()[..] else { return None };
    let (year, month, day) = (digits(year, 4)?, digits(month, 2)?, digits(day, 2)?);
    // A date that does not exist (month 13, February 30) does not come back from the day count.
    let days = days_from_civil(year, month, day);
    if !(1..=12).contains(&month) || civil_from_days(days) != (year, month, day) {
        return None;
    }
    let (clock, fraction) = time.map_or(("", None), |time| match time.split_once('.') {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (time, None),
    });
    let fields: Vec<&str> = clock.split(':').collect();
    let seconds = match (time, &fields[..]) {
        (None, _) => 0,
        (Some(_), &[h, m]) if fraction.is_none() && digits(h, 2)? < 24 && digits(m, 2)? < 60 => {
            digits(h, 2)? * 3600 + digits(m, 2)? * 60
        }
        (Some(_), &[h, m, s]) if digits(h, 2)? < 24 && digits(m, 2)? < 60 && digits(s, 2)? < 60 => {
            digits(h, 2)? * 3600 + digits(m, 2)? * 60 + digits(s, 2)?
        }
        _ => return None,
    };
    let nanos = match fraction {
        None => 0,
        Some(f) if (1..=9).contains(&f.len()) => digits(f, f.len())? * 10_i64.pow(9 - f.len() as u32),
        Some(_) => return None,
    };
    // In i128: the earliest instants' whole seconds are past i64 nanoseconds alone.
    let ns = (i128::from(days) * 86_400 + i128::from(seconds)) * 1_000_000_000 + i128::from(nanos);
    i64::try_from(ns).ok().filter(|&ns| ns != NAT)
}

/// The day count from 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm,
/// the inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A `--fill-value` as given: a number, or words whose meaning is one dtype's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FillArg {
    Number(Scalar),
    /// `true` or `false`: a bool array's.
    Bool(bool),
    /// An ISO 8601 instant or `NaT`: a timestamp array's, in nanoseconds.
    Instant(i64),
}

impl FillArg {
    /// The fill value for an array of `dtype`; words are refused where they mean nothing
    /// (whether a number fits is the schema's check).
    pub fn for_dtype(self, dtype: DType) -> Result<Scalar, String> {
        match (self, dtype) {
            // `2020` would be 2020 ns after the epoch, not the year.
            (Self::Number(_), DType::Timestamp) => {
                Err("a timestamp array's fill value is an ISO 8601 instant (2020-01-01T00:00) or NaT".into())
            }
            (Self::Number(value), _) => Ok(value),
            (Self::Bool(value), DType::Bool) => Ok(Scalar::from(value)),
            (Self::Instant(ns), DType::Timestamp) => Ok(Scalar::Int(ns)),
            (Self::Bool(_), _) => Err(format!("true and false are fill values of bool arrays, not of {dtype} ones")),
            (Self::Instant(_), _) => {
                Err(format!("a date or NaT is the fill value of a timestamp array, not of a {dtype} one"))
            }
        }
    }
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_iso8601_on_both_sides_of_the_epoch() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00");
        assert_eq!(iso8601(1_700_000_000_000_000_000), "2023-11-14T22:13:20");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59.999999999");
        assert_eq!(iso8601(951_782_400_000_000_005), "2000-02-29T00:00:00.000000005");
        assert_eq!(iso8601(i64::MIN), "NaT");
        assert_eq!(iso8601(i64::MIN + 1), "1677-09-21T00:12:43.145224193");
    }

    #[test]
    fn iso8601_instants_parse_back_to_what_printed_them() {
        for ns in
            [0, 1_700_000_000_000_000_000, -1, 951_782_400_000_000_005, i64::MIN + 1, i64::MAX, -86_400_000_000_000]
        {
            assert_eq!(parse_iso8601(&iso8601(ns)), Some(ns), "{}", iso8601(ns));
        }
        // Instants spread over the whole range, from a fixed pseudo-random sequence.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..100_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let ns = x.cast_signed();
            if ns != NAT {
                assert_eq!(parse_iso8601(&iso8601(ns)), Some(ns), "{}", iso8601(ns));
            }
        }
        assert_eq!((parse_iso8601("NaT"), parse_iso8601("nat")), (Some(NAT), Some(NAT)));
        assert_eq!(parse_iso8601("2020-01-01t00:00z"), parse_iso8601("2020-01-01"));
        assert_eq!(parse_iso8601("2020-01-01"), Some(1_577_836_800_000_000_000));
        assert_eq!(parse_iso8601("2020-01-01 00:01Z"), Some(1_577_836_860_000_000_000));
        assert_eq!(parse_iso8601("2020-01-01T00:00:00.5"), Some(1_577_836_800_500_000_000));
        for bad in [
            "",
            "2020",
            "2020-1-01",
            "2020-13-01",
            "2019-02-29",
            "2020-01-01T",
            "2020-01-01T24:00",
            "2020-01-01T12",
            "2020-01-01T12:00.5",
            "2020-01-01T12:00:60",
            "2020-01-01T12:75",
            "2020-01-01T00:00:00.",
            "2020-01-01T00:00:00.1234567890",
            "1600-01-01",
            "2300-01-01",
            "+2020-01-01",
            "2020-01-01T00:00:0a",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }

    #[test]
    fn fill_words_are_refused_for_dtypes_they_mean_nothing_for() {
        assert_eq!(FillArg::Bool(true).for_dtype(DType::Bool), Ok(Scalar::from(true)));
        assert!(FillArg::Bool(true).for_dtype(DType::Int8).unwrap_err().contains("bool arrays"));
        assert_eq!(FillArg::Instant(5).for_dtype(DType::Timestamp), Ok(Scalar::Int(5)));
        assert!(FillArg::Instant(5).for_dtype(DType::Int64).unwrap_err().contains("timestamp array"));
        assert_eq!(FillArg::Number(Scalar::Int(3)).for_dtype(DType::Float32), Ok(Scalar::Int(3)));
        assert!(FillArg::Number(Scalar::Int(2020)).for_dtype(DType::Timestamp).unwrap_err().contains("ISO 8601"));
    }

    #[test]
    fn non_finite_floats_become_the_metadata_strings() {
        assert_eq!(float_json(f64::NAN), Json::from("NaN"));
        assert_eq!(float_json(f64::NEG_INFINITY), Json::from("-Infinity"));
        assert_eq!(float_json(1.5), Json::from(1.5));
        assert_eq!(f32_json(f32::INFINITY), Json::from("Infinity"));
        assert_eq!(f32_json(f32::NAN), Json::from("NaN"));
    }

    #[test]
    fn long_floats_are_written_in_exponent_form() {
        assert_eq!(float_text(1e308), "1e308");
        assert_eq!(float_text(-2.5e-7), "-2.5e-7");
        assert_eq!(float_text(3.4e38f32), "3.4e38");
        assert_eq!(float_text(1e-45f32), "1e-45");
        assert_eq!(float_text(0.0001f32), "0.0001", "the float32 as written, not as widened");
        for (v, text) in
            [(0.0, "0"), (-0.5, "-0.5"), (0.0001, "0.0001"), (123_456.75, "123456.75"), (1e15, "1000000000000000")]
        {
            assert_eq!(float_text(v), text);
        }
        assert_eq!((float_text(f64::NAN), float_text(f32::NEG_INFINITY)), ("NaN".into(), "-inf".into()));
    }

    #[test]
    fn float32_values_are_written_with_their_own_shortest_digits() {
        for (v, json) in [(0.1f32, "0.1"), (20.001, "20.001"), (-3.4e38, "-3.4e+38"), (1e-45, "1e-45"), (7.0, "7.0")] {
            assert_eq!(f32_json(v).to_string(), json);
            assert_eq!(json.parse::<f32>().unwrap().to_bits(), v.to_bits(), "{json} reads back as the value");
        }
    }

    #[test]
    fn little_endian_bytes_round_trip() {
        let mut out = Vec::new();
        for v in [-2i16, 300] {
            v.put_le(&mut out);
        }
        assert_eq!(from_le_bytes::<i16>(&out), vec![-2, 300]);
        assert_eq!(from_le_bytes::<bool>(&[0, 1, 7]), vec![false, true, true]);
    }
}
