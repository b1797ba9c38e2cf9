//! [`Limits`]: how much a store's files may make Atlas allocate when they are read.

use super::file::MAX_META_BYTES;
use super::schema::MAX_CHUNK_BYTES;

/// Bounds on what reading a store may cost, checked before any allocation they bound. A
/// file asking for more is refused with `Error::LimitExceeded`, but for a zstd metadata
/// frame asking for a window larger than `max_meta_bytes` (or than 128 MiB), which is
/// `Error::Corrupt`: no metadata file Atlas writes does. The defaults are the format's
/// maxima; lower them to open untrusted stores cheaply. The struct may gain fields, so it
/// is built from the defaults:
///
/// ```no_run
/// use atlas::{Atlas, Limits, OpenOptions};
///
/// let mut limits = Limits::default();
/// limits.max_meta_bytes = 64 << 20;
/// limits.max_chunk_bytes = 16 << 20;
/// let store = Atlas::open_with("untrusted.atlas", &OpenOptions::with_limits(limits))?;
/// # Ok::<(), atlas::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest metadata file, on disk and decompressed (default 1 GiB).
    pub max_meta_bytes: u64,
    /// Largest raw chunk of any array (default 256 MiB, the format's maximum), checked
    /// whenever a commit is loaded (open, refresh, a writer's first change) against the
    /// schemas and the raw lengths of string blocks: a block read never allocates a block
    /// buffer over this per thread (a string read also makes its `String`s, 24 bytes each
    /// however short: see docs/GUARANTEES.md, section 5). `define_array` refuses a schema
    /// over it (and makes default chunk shapes within it), and a commit whose schemas are
    /// over it is refused too; string blocks are not checked on write: this handle may
    /// write string chunks up to the format's maximum, which a later load under the same
    /// limit refuses.
    pub max_chunk_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_meta_bytes: MAX_META_BYTES, max_chunk_bytes: MAX_CHUNK_BYTES }
    }
}
