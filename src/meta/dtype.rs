//! Element types an array can hold.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The element type of an array. Names follow numpy (`"float32"`, `"uint16"`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DType {
    /// Signed 8-bit integer.
    Int8,
    /// Signed 16-bit integer.
    Int16,
    /// Signed 32-bit integer.
    Int32,
    /// Signed 64-bit integer.
    Int64,
    /// Unsigned 8-bit integer.
    UInt8,
    /// Unsigned 16-bit integer.
    UInt16,
    /// Unsigned 32-bit integer.
    UInt32,
    /// Unsigned 64-bit integer.
    UInt64,
    /// IEEE 754 binary32.
    Float32,
    /// IEEE 754 binary64.
    Float64,
    /// `true` or `false`, one byte (0 or 1) each.
    Bool,
    /// Nanoseconds since the Unix epoch, UTC, as a signed 64-bit integer (numpy's
    /// `datetime64[ns]`). Read and written as `i64`.
    Timestamp,
    /// Variable-length UTF-8 text. The fill value is the empty string. Read and written with
    /// `read_strings` / `write_strings`.
    String,
}

/// The families of dtype (signed, unsigned, float, bool, text), which decide how a fill
/// value converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Signed,
    Unsigned,
    Float,
    Bool,
    Text,
}

impl DType {
    /// Every dtype, for tests and tools that iterate them (a slice: the enum may grow).
    pub const ALL: &'static [DType] = &[
        Self::Int8,
        Self::Int16,
        Self::Int32,
        Self::Int64,
        Self::UInt8,
        Self::UInt16,
        Self::UInt32,
        Self::UInt64,
        Self::Float32,
        Self::Float64,
        Self::Bool,
        Self::Timestamp,
        Self::String,
    ];

    /// Bytes of one element; 0 for `String`, whose elements have no fixed size.
    #[must_use]
    pub fn size_bytes(self) -> usize {
        match self {
            Self::String => 0,
            Self::Int8 | Self::UInt8 | Self::Bool => 1,
            Self::Int16 | Self::UInt16 => 2,
            Self::Int32 | Self::UInt32 | Self::Float32 => 4,
            Self::Int64 | Self::UInt64 | Self::Float64 | Self::Timestamp => 8,
        }
    }

    /// The numpy-style name, e.g. `"float32"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Int8 => "int8",
            Self::Int16 => "int16",
            Self::Int32 => "int32",
            Self::Int64 => "int64",
            Self::UInt8 => "uint8",
            Self::UInt16 => "uint16",
            Self::UInt32 => "uint32",
            Self::UInt64 => "uint64",
            Self::Float32 => "float32",
            Self::Float64 => "float64",
            Self::Bool => "bool",
            Self::Timestamp => "timestamp",
            Self::String => "string",
        }
    }

    /// Parses a numpy-style name (`"float32"`, `"f4"`, `"<f4"`, `"uint16"`, `"bool"`,
    /// `"datetime64[ns]"`...). Short codes count bytes as numpy's do, unlike Rust's type
    /// names: `"i8"` is `Int64` and `"u1"` is `UInt8`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.strip_prefix('<').or_else(|| name.strip_prefix('|')).unwrap_or(name);
        match name {
            "datetime64[ns]" | "M8[ns]" => Some(Self::Timestamp),
            "?" => Some(Self::Bool),
            "str" | "O" | "T" => Some(Self::String),
            _ => Self::ALL.iter().copied().find(|d| d.name() == name || d.short_name() == name),
        }
    }

    fn short_name(self) -> &'static str {
        match self {
            Self::Int8 => "i1",
            Self::Int16 => "i2",
            Self::Int32 => "i4",
            Self::Int64 => "i8",
            Self::UInt8 => "u1",
            Self::UInt16 => "u2",
            Self::UInt32 => "u4",
            Self::UInt64 => "u8",
            Self::Float32 => "f4",
            Self::Float64 => "f8",
            Self::Bool => "b1",
            Self::Timestamp => "M8[ns]",
            Self::String => "U",
        }
    }

    pub(crate) fn kind(self) -> Kind {
        match self {
            Self::Int8 | Self::Int16 | Self::Int32 | Self::Int64 | Self::Timestamp => Kind::Signed,
            Self::UInt8 | Self::UInt16 | Self::UInt32 | Self::UInt64 => Kind::Unsigned,
            Self::Float32 | Self::Float64 => Kind::Float,
            Self::Bool => Kind::Bool,
            Self::String => Kind::Text,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_short_names_parse() {
        for &d in DType::ALL {
            assert_eq!(DType::from_name(d.name()), Some(d));
            assert_eq!(DType::from_name(d.short_name()), Some(d));
        }
        assert_eq!(DType::from_name("<f8"), Some(DType::Float64));
        assert_eq!(DType::from_name("complex64"), None);
    }
}
