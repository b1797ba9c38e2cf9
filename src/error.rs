//! Room `error`: the public [`Error`] enum and the [`Result`] alias, and the wording of
//! the messages the enum's constructors build. No other logic.

use std::fmt;
use std::path::PathBuf;

/// The result type of every fallible Atlas call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of named thing an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntityKind {
    /// A store directory.
    Store,
    /// A dataset in a store's registry.
    Dataset,
    /// An array in a dataset.
    Array,
    /// An attribute key.
    Attribute,
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Store => "store",
            Self::Dataset => "dataset",
            Self::Array => "array",
            Self::Attribute => "attribute",
        })
    }
}

/// Every error an Atlas call can return. Variants follow what a caller can do about them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The named store, dataset, array or attribute does not exist.
    #[error("{kind} not found: {name}")]
    NotFound {
        /// What was looked up.
        kind: EntityKind,
        /// Its name (a path for a store).
        name: String,
    },
    /// The named thing already exists (or, for a store, the path is a file or a directory
    /// that is not empty).
    #[error("{}", already_exists(*kind, name))]
    AlreadyExists {
        /// What was to be created.
        kind: EntityKind,
        /// Its name (a path for a store).
        name: String,
    },
    /// A dataset, array or attribute name that Atlas refuses.
    #[error("invalid {kind} name {}: {reason}", quoted_start(name))]
    InvalidName {
        /// What the name was for.
        kind: EntityKind,
        /// The refused name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The element type of a caller's buffer does not match the array's dtype.
    #[error("dtype mismatch on array {array}: it holds {expected}, the call used {found}")]
    DTypeMismatch {
        /// The array.
        array: String,
        /// The array's dtype's name (`DType::name`; this room is below `meta`'s).
        expected: String,
        /// The name of the dtype of the caller's data.
        found: String,
    },
    /// A selection reaches outside the array.
    #[error("out of bounds on array {array}: start {start:?} + shape {shape:?} exceeds {array_shape:?}")]
    OutOfBounds {
        /// The array.
        array: String,
        /// The selection's start.
        start: Vec<u64>,
        /// The selection's shape.
        shape: Vec<u64>,
        /// The array's shape.
        array_shape: Vec<u64>,
    },
    /// A buffer or selection has the wrong shape or number of dimensions. More fields may
    /// come: match it with `..`.
    #[error("shape mismatch on array {array}: {detail}")]
    #[non_exhaustive]
    ShapeMismatch {
        /// The array.
        array: String,
        /// The shape the call needed: the array's shape when a start, a shape or the data
        /// has another number of dimensions (an append's data: the array's shape, whose
        /// axes but the first it must match; an across read: the first dataset's array's
        /// shape); the selection's extent when an output buffer has the wrong length.
        expected: Vec<u64>,
        /// What it got: that start, shape or data shape (an across read: the shape of the
        /// array whose number of dimensions differs); for an output buffer, its length as
        /// `[len]`.
        found: Vec<u64>,
        /// What does not match, in words.
        detail: String,
    },
    /// Any other argument Atlas refuses (a zero chunk length, a fill value out of range...).
    #[error("invalid argument: {detail}")]
    InvalidArgument {
        /// What is wrong with it.
        detail: String,
    },
    /// A read's result (or a decoded batch) larger than memory can hold: over `isize::MAX`
    /// bytes, or more than the allocator gives. Refused before anything is read.
    #[error("out of memory: {detail}")]
    OutOfMemory {
        /// What could not be held, e.g. `ocean/temp: a result of shape [4611686018427387904]`.
        detail: String,
    },
    /// Another handle (in this or another process) is writing to the store; or, in a process
    /// forked from one with uncommitted changes, this handle's copy of those changes, which
    /// are the parent's to commit (a refresh drops them from the child's handle).
    #[error(
        "store {path} is locked by another writer: a handle with unflushed changes, in this or another process (flushing it, or closing or dropping it and the handles made from it, releases the lock)"
    )]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// The handle was opened read-only ([`OpenOptions::read_only`](crate::OpenOptions)):
    /// it changes nothing (a write, an attribute, a define, a maintenance call).
    #[error("store {path} was opened read-only: open it again without read_only to change it")]
    ReadOnly {
        /// The store directory.
        path: PathBuf,
    },
    /// This handle's uncommitted changes were discarded because a change panicked (an Atlas
    /// bug) while it held the store's state; reported once, by the next call that changes
    /// or commits, which did nothing else. Changes made after that call are kept as usual.
    #[error(
        "store {path}: the uncommitted changes were discarded after a panic during a change; this call did nothing, redo the lost changes"
    )]
    ChangesDiscarded {
        /// The store directory.
        path: PathBuf,
    },
    /// The writer lock file (`atlas.lock`) was removed or replaced while this handle held the
    /// lock on it, so another writer may have locked the new file and committed since. This
    /// handle's uncommitted changes were discarded, not committed over that writer's; the
    /// call did nothing else. (Atlas never removes the lock file; something else did.)
    #[error(
        "store {path}: the lock file atlas.lock was removed or replaced while this handle held the writer lock, so another writer may have locked the new file, committed or removed this handle's fragment since; the uncommitted changes were discarded, redo them"
    )]
    LockLost {
        /// The store directory.
        path: PathBuf,
    },
    /// The store was written by a newer format version than this build reads.
    #[error("{path}: unsupported format version {found} (this build reads up to {max})")]
    UnsupportedVersion {
        /// The metadata file.
        path: PathBuf,
        /// The version found on disk.
        found: u32,
        /// The newest version this build reads.
        max: u32,
    },
    /// Bytes on disk that are not what Atlas wrote.
    #[error("corrupt file {path}: {detail}")]
    Corrupt {
        /// The file holding the bad bytes.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A block decoded to bytes whose checksum differs from the one recorded when it was written.
    #[error(
        "checksum mismatch in array {array} chunk {coord:?} (file {path}): stored {expected:#018x}, computed {found:#018x}"
    )]
    ChecksumMismatch {
        /// `dataset/array`.
        array: String,
        /// The chunk's grid coordinate (named as in `BadBlock` and `BlockInfo`).
        coord: Vec<u64>,
        /// The fragment file holding the block.
        path: PathBuf,
        /// The checksum recorded at write time.
        expected: u64,
        /// The checksum of the decoded bytes.
        found: u64,
    },
    /// A file asks for more than a configured limit allows (`OpenOptions::limits`).
    #[error("{path}: {what} is {found}, over the limit of {limit}")]
    LimitExceeded {
        /// The file.
        path: PathBuf,
        /// What was measured.
        what: String,
        /// The configured limit.
        limit: u64,
        /// The value found.
        found: u64,
    },
    /// A codec failed to encode or decode a block.
    #[error("{codec} codec failed: {detail}")]
    Codec {
        /// The codec's name.
        codec: &'static str,
        /// The codec's message.
        detail: String,
    },
    /// A read on a GPU was asked for ([`crate::Device::Cuda`]) but cannot run here.
    #[error("GPU unavailable: {0}")]
    GpuUnavailable(GpuUnavailable),
    /// A CUDA or nvCOMP call failed during a GPU read.
    #[error("GPU read failed: {0}")]
    Gpu(String),
    /// An operating-system I/O call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operation, e.g. "open" or "fsync".
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Why a GPU read cannot run on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GpuUnavailable {
    /// Atlas was built without its `gpu` feature.
    NotBuilt,
    /// No CUDA driver (libcuda) could be loaded.
    NoDriver,
    /// The driver is there but the asked-for device is not.
    NoDevice {
        /// The device asked for.
        ordinal: usize,
        /// The devices present.
        count: usize,
    },
    /// libnvcomp could not be found or loaded (the message says where Atlas looked).
    NoNvcomp(String),
    /// The request has a shape GPU reads do not take (the message says which).
    Unsupported(String),
}

impl fmt::Display for GpuUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotBuilt => f.write_str("Atlas was built without the `gpu` feature"),
            Self::NoDriver => f.write_str("no CUDA driver (libcuda.so) could be loaded"),
            Self::NoDevice { ordinal, count } => write!(f, "no CUDA device {ordinal} ({count} present)"),
            Self::NoNvcomp(why) => write!(f, "libnvcomp not loaded: {why}"),
            Self::Unsupported(why) => write!(f, "not supported on the GPU: {why}"),
        }
    }
}

impl Error {
    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Self::InvalidArgument { detail: detail.into() }
    }

    pub(crate) fn out_of_memory(detail: impl Into<String>) -> Self {
        Self::OutOfMemory { detail: detail.into() }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Self::Corrupt { path: path.into(), detail: detail.into() }
    }

    pub(crate) fn not_found(kind: EntityKind, name: impl Into<String>) -> Self {
        Self::NotFound { kind, name: name.into() }
    }

    pub(crate) fn already_exists(kind: EntityKind, name: impl Into<String>) -> Self {
        Self::AlreadyExists { kind, name: name.into() }
    }

    /// An output buffer of `len` elements for `what` (e.g. "a selection of shape [2, 3]"),
    /// whose extent `shape` needs another number.
    pub(crate) fn buffer_len(array: impl Into<String>, what: &str, shape: &[u64], len: usize) -> Self {
        let elems = shape.iter().try_fold(1u64, |n, &e| n.checked_mul(e));
        let needs = elems.map_or_else(|| "2^64 or more".to_string(), |n| n.to_string());
        Self::ShapeMismatch {
            array: array.into(),
            expected: shape.to_vec(),
            found: vec![len as u64],
            detail: format!("the output holds {len} elements, not the {needs} of {what}"),
        }
    }

    /// [`Error::DTypeMismatch`]: `array` holds `expected` (a dtype), the call used `found`.
    pub(crate) fn dtype_mismatch(
        array: impl Into<String>,
        expected: impl fmt::Display,
        found: impl fmt::Display,
    ) -> Self {
        Self::DTypeMismatch { array: array.into(), expected: expected.to_string(), found: found.to_string() }
    }

    /// `given` (a start or shape, named `what`) with another number of dimensions than the
    /// array's `shape`.
    pub(crate) fn dims(array: impl Into<String>, what: &str, given: &[u64], shape: &[u64]) -> Self {
        Self::ShapeMismatch {
            array: array.into(),
            expected: shape.to_vec(),
            found: given.to_vec(),
            detail: format!(
                "{what} {given:?} has {}; the array has {} (shape {shape:?})",
                counted(given.len(), "dimension", "dimensions"),
                shape.len()
            ),
        }
    }
}

/// Characters of a refused name a message quotes: enough to recognise it, without
/// repeating a name of any length in full (the error's field keeps it whole).
const QUOTED_NAME_CHARS: usize = 64;

/// `name` quoted, cut after [`QUOTED_NAME_CHARS`] characters with its length in bytes.
fn quoted_start(name: &str) -> String {
    match name.char_indices().nth(QUOTED_NAME_CHARS) {
        Some((cut, _)) => format!("{:?}... ({} bytes)", &name[..cut], name.len()),
        None => format!("{name:?}"),
    }
}

/// [`Error::AlreadyExists`]'s message: a new store's path may hold a store, a file or
/// other entries.
fn already_exists(kind: EntityKind, name: &str) -> String {
    match kind {
        EntityKind::Store => format!("cannot create a store at {name}: a store, a file or other entries are there"),
        _ => format!("{kind} already exists: {name}"),
    }
}

/// `n` with the noun that goes with it: "1 box", "2 boxes".
pub(crate) fn counted(n: usize, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
}
