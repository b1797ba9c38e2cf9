//! Codec and filter settings as the metadata records them. The `codec` room implements them.

use serde::{Deserialize, Serialize};

/// The compressor that encodes new blocks. Each block records the codec that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase", try_from = "CodecFields")]
#[non_exhaustive]
pub enum Codec {
    /// Stored as is.
    None,
    /// One standard zstd frame per block, at the given level: any in
    /// `zstd::compression_level_range()` (up to 22; 0 is zstd's default, 3; negative levels
    /// are the fast modes).
    Zstd {
        /// Compression level.
        level: i32,
    },
    /// One raw LZ4 block (no frame) per block.
    Lz4,
}

/// `zstd:3`, `lz4`, `none`: the spelling Python's `codec=` takes, and the CLI prints.
impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Zstd { level } => write!(f, "zstd:{level}"),
            other => f.write_str(other.name()),
        }
    }
}

impl Codec {
    /// The zstd level used where none is given: [`Codec::default`], `--codec zstd` in the
    /// CLI, `"zstd"` in Python.
    pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

    /// The codec's name without its level: `zstd`, `lz4` or `none`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Zstd { .. } => "zstd",
            Self::Lz4 => "lz4",
            Self::None => "none",
        }
    }

    /// The zstd levels `Codec::Zstd` takes: those of the zstd library Atlas is built with
    /// (`-131072..=22` for zstd 1.5).
    #[must_use]
    pub fn zstd_levels() -> std::ops::RangeInclusive<i32> {
        zstd::compression_level_range()
    }

    /// Checks the codec's parameters; returns what is wrong.
    pub(crate) fn check(self) -> Result<(), String> {
        match self {
            Self::Zstd { level } if !Self::zstd_levels().contains(&level) => {
                let levels = Self::zstd_levels();
                Err(format!("zstd level {level} is outside {} to {}", levels.start(), levels.end()))
            }
            _ => Ok(()),
        }
    }
}

/// A codec as the metadata spells it, read field by field: serde's internally tagged
/// enums skip unknown fields of unit variants (`{"name":"lz4","levle":3}`), which a
/// metadata file must not have (FORMAT: an unknown field is Corrupt).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodecFields {
    name: String,
    /// Told apart from a level left out when written as null, which is refused where no
    /// level may be.
    #[serde(default, deserialize_with = "written")]
    level: Written<i32>,
}

/// A field as a file holds it: left out, null, or a value.
#[derive(Default)]
enum Written<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

fn written<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Written<T>, D::Error> {
    Ok(Option::<T>::deserialize(deserializer)?.map_or(Written::Null, Written::Value))
}

impl TryFrom<CodecFields> for Codec {
    type Error = String;

    fn try_from(fields: CodecFields) -> Result<Self, String> {
        match (fields.name.as_str(), fields.level) {
            ("zstd", Written::Value(level)) => Ok(Self::Zstd { level }),
            ("zstd", _) => Err("codec zstd without a level".to_string()),
            ("lz4", Written::Absent) => Ok(Self::Lz4),
            ("none", Written::Absent) => Ok(Self::None),
            ("lz4" | "none", _) => Err(format!("codec {} takes no level", fields.name)),
            (name, _) => Err(format!("unknown codec {name:?} (zstd, lz4 or none)")),
        }
    }
}

impl Default for Codec {
    fn default() -> Self {
        Self::Zstd { level: Self::DEFAULT_ZSTD_LEVEL }
    }
}

/// Whether the byte-shuffle filter runs before the codec, and the byte delta after it or
/// the element delta before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Shuffle {
    /// On for dtypes wider than one byte that are compressed, off for one-byte dtypes and
    /// for codec `None` (shuffling bytes that are not compressed gains nothing).
    #[default]
    Auto,
    /// Always on (a no-op for one-byte dtypes).
    On,
    /// Always off.
    Off,
    /// Shuffle, then store each byte plane as the differences between its neighbouring
    /// bytes (Blosc2's "bytedelta"), for dtypes wider than one byte. Smooth data then
    /// compresses further (BENCHMARKS.md, "Byte delta"); decoding costs one more pass, and
    /// under codec `None` that pass is all it brings.
    ByteDelta,
    /// Store each element as its difference from the one before it (as an unsigned integer
    /// of its size, wrapping; floats by their bits), then shuffle: numcodecs' and Blosc's
    /// "delta", for series that rise or fall steadily (timestamps, counters, coordinates),
    /// for every dtype but strings.
    Delta,
}

impl Shuffle {
    /// The setting's name as the metadata spells it: `auto`, `on`, `off`, `bytedelta` or
    /// `delta`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::On => "on",
            Self::Off => "off",
            Self::ByteDelta => "bytedelta",
            Self::Delta => "delta",
        }
    }
}

/// [`Shuffle::name`].
impl std::fmt::Display for Shuffle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Shuffle {
    /// Whether shuffle applies to elements of `elem_bytes` bytes encoded with `codec`.
    pub(crate) fn applies(self, elem_bytes: usize, codec: Codec) -> bool {
        match self {
            Self::Auto => elem_bytes > 1 && codec != Codec::None,
            Self::On | Self::ByteDelta => elem_bytes > 1,
            Self::Delta => elem_bytes > 0,
            Self::Off => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_and_shuffles_display_as_python_and_the_cli_spell_them() {
        let shown =
            [Codec::Zstd { level: 3 }, Codec::Zstd { level: -5 }, Codec::Lz4, Codec::None].map(|c| c.to_string());
        assert_eq!(shown, ["zstd:3", "zstd:-5", "lz4", "none"]);
        assert_eq!(Shuffle::ByteDelta.to_string(), "bytedelta");
    }

    #[test]
    fn shuffle_settings_are_spelled_as_the_format_says() {
        let spelled = [
            (Shuffle::Auto, "auto"),
            (Shuffle::On, "on"),
            (Shuffle::Off, "off"),
            (Shuffle::ByteDelta, "bytedelta"),
            (Shuffle::Delta, "delta"),
        ];
        for (shuffle, name) in spelled {
            let json = serde_json::to_string(&shuffle).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Shuffle>(&json).unwrap(), shuffle);
            assert_eq!(shuffle.name(), name);
        }
    }
}
