//! Serde for binary data in the metadata: a lowercase hex string in JSON, a byte string in
//! `MessagePack`.

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};
use std::fmt;

/// Serialises `bytes` as hex text (human-readable formats) or raw bytes.
#[allow(clippy::ref_option)] // the signature serde's `with` attribute calls
pub(crate) fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        None => s.serialize_none(),
        Some(bytes) if s.is_human_readable() => {
            let hex = bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut hex, b| {
                use std::fmt::Write;
                write!(hex, "{b:02x}").expect("writing to a String cannot fail");
                hex
            });
            s.serialize_some(&hex)
        }
        Some(bytes) => s.serialize_some(&BytesRef(bytes)),
    }
}

/// Accepts null, hex text or a byte string.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    d.deserialize_option(OptionVisitor)
}

/// Wraps a slice so serde writes it as bytes rather than a list of numbers.
struct BytesRef<'a>(&'a [u8]);

impl serde::Serialize for BytesRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

struct OptionVisitor;

impl<'de> Visitor<'de> for OptionVisitor {
    type Value = Option<Vec<u8>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null, a hex string or bytes")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(BytesVisitor).map(Some)
    }
}

struct BytesVisitor;

impl Visitor<'_> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a hex string or bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        if !v.len().is_multiple_of(2) {
            return Err(E::custom("hex text of odd length"));
        }
        v.as_bytes()
            .chunks_exact(2)
            .map(|pair| Some(lower_hex_digit(pair[0])? << 4 | lower_hex_digit(pair[1])?))
            .map(|byte| byte.ok_or_else(|| E::custom("not lowercase hex")))
            .collect()
    }
}

/// The value of one lowercase hex digit: the only text the format allows, which also keeps
/// out what `u8::from_str_radix` would take besides (a `+` sign, capitals).
fn lower_hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Holder {
        #[serde(with = "super", default)]
        bytes: Option<Vec<u8>>,
    }

    #[test]
    fn bytes_round_trip_as_hex_in_json_and_as_bytes_in_msgpack() {
        let holder = Holder { bytes: Some(vec![0, 1, 0xab, 0xff]) };
        let json = serde_json::to_string(&holder).unwrap();
        assert_eq!(json, r#"{"bytes":"0001abff"}"#);
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), holder);
        let packed = rmp_serde::to_vec_named(&holder).unwrap();
        assert_eq!(rmp_serde::from_slice::<Holder>(&packed).unwrap(), holder);
        assert_eq!(serde_json::from_str::<Holder>(r#"{"bytes":null}"#).unwrap(), Holder { bytes: None });
        for bad in ["abc", "+f00", "AB", "0g", "\u{e9}0"] {
            assert!(serde_json::from_str::<Holder>(&format!(r#"{{"bytes":"{bad}"}}"#)).is_err(), "{bad}");
        }
    }
}
