//! [`Status`]: nvCOMP's `nvcompStatus_t` as a Rust value.

use std::fmt;

use crate::ffi::RawStatus;

/// A status code returned by an nvCOMP call or reported for one chunk of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub RawStatus);

impl Status {
    /// `nvcompSuccess`.
    pub const SUCCESS: Self = Self(0);

    /// Whether this is `nvcompSuccess`.
    #[must_use]
    pub fn is_success(self) -> bool {
        self == Self::SUCCESS
    }

    /// nvCOMP's name for the code (as in its documentation), or `unknown`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "success",
            10 => "invalid value",
            11 => "not supported",
            12 => "cannot decompress",
            13 => "bad checksum",
            14 => "cannot verify checksums",
            15 => "output buffer too small",
            16 => "wrong header length",
            17 => "alignment",
            18 => "chunk size too large",
            19 => "cannot compress",
            20 => "wrong input length",
            21 => "batch size too large",
            22 => "sub-chunk count too large",
            23 => "sub-chunk count too small",
            24 => "output buffer alignment too small",
            1000 => "CUDA error",
            10000 => "internal error",
            _ => "unknown",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_codes() {
        assert!(Status(0).is_success());
        assert_eq!(Status(12).to_string(), "cannot decompress (12)");
        assert_eq!(Status(7).name(), "unknown");
    }
}
