//! Validation of dataset, array and attribute names. A name that passes can be used as a
//! path component without ever leaving the store directory.

use crate::error::{EntityKind, Error, Result};

/// Longest name accepted, in bytes.
pub(crate) const MAX_NAME_BYTES: usize = 255;

/// Checks a dataset or array name: non-empty, at most 255 bytes, no `/`, `\`, NUL or other
/// control character, no leading `.` or `_` (which also rules out `.` and `..`).
///
/// # Errors
/// [`Error::InvalidName`] saying which rule the name breaks.
pub(crate) fn validate_name(kind: EntityKind, name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_BYTES {
        Some("it is longer than 255 bytes")
    } else if name.contains(['/', '\\']) {
        Some("it contains a path separator")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if name.starts_with(['.', '_']) {
        Some("it starts with '.' or '_'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName { kind, name: name.to_string(), reason }),
        None => Ok(()),
    }
}

/// Checks an attribute key: non-empty, at most 255 bytes, no control characters, no `/` or
/// `\\`, not `.` or `..`. Keys never become paths, but refusing path-like keys keeps every
/// name in a store to one rule a tool can trust. Leading `_` and `.` are allowed (netCDF's
/// `_FillValue`).
///
/// # Errors
/// [`Error::InvalidName`] saying which rule the key breaks.
pub(crate) fn validate_attribute_key(key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        Some("it is empty")
    } else if key.len() > MAX_NAME_BYTES {
        Some("it is longer than 255 bytes")
    } else if key.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if key.contains(['/', '\\']) {
        Some("it contains a path separator")
    } else if key == "." || key == ".." {
        Some("it is a relative path")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName { kind: EntityKind::Attribute, name: key.to_string(), reason }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_every_name_that_could_leave_the_store() {
        let long = "a".repeat(256);
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", "/abs", "nul\0", "tab\t", ".hidden", "_private", &long] {
            assert!(
                matches!(validate_name(EntityKind::Dataset, bad), Err(Error::InvalidName { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn accepts_ordinary_and_unicode_names() {
        for good in ["run42", "temp", "a.b", "x-y", "\u{00e9}t\u{00e9}", &"a".repeat(255)] {
            validate_name(EntityKind::Array, good).unwrap();
        }
        validate_attribute_key("units.long_name").unwrap();
        validate_attribute_key("_FillValue").unwrap();
        for bad in ["", "..", "a/b", "/abs", "C:\\x", "nul\0"] {
            assert!(validate_attribute_key(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_long_refused_name_is_quoted_in_part_and_kept_whole() {
        let long = "\u{e9}".repeat(2500); // 5000 bytes
        let err = validate_name(EntityKind::Dataset, &long).unwrap_err();
        let message = err.to_string();
        let start = "\u{e9}".repeat(64);
        assert_eq!(message, format!("invalid dataset name \"{start}\"... (5000 bytes): it is longer than 255 bytes"));
        assert!(matches!(err, Error::InvalidName { name, .. } if name == long));
        let short = validate_name(EntityKind::Array, "a/b").unwrap_err().to_string();
        assert_eq!(short, "invalid array name \"a/b\": it contains a path separator");
    }
}
