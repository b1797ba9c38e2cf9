//! The exception hierarchy under `atlas.AtlasError` and the one mapping from `atlas::Error`.
//!
//! The classes are made at module init with Python's `type()`, because several of them also
//! derive from a builtin a caller may already catch (`KeyError`, `TypeError`, `ValueError`,
//! `IndexError`, `FileExistsError`, `OSError`, `MemoryError`), which `create_exception!`
//! cannot express.

use pyo3::exceptions::{
    PyException, PyFileExistsError, PyFileNotFoundError, PyIndexError, PyKeyError, PyMemoryError, PyOSError,
    PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// One Python exception class per kind of failure a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `AtlasError`: the base; also anything without a better class.
    Base,
    /// `NotFoundError` (also `KeyError`).
    NotFound,
    /// `StoreNotFoundError`: no store at a path (a `NotFoundError`, also `FileNotFoundError`).
    StoreNotFound,
    /// `AlreadyExistsError` (also `FileExistsError`).
    AlreadyExists,
    /// `InvalidArgumentError` (also `ValueError`).
    InvalidArgument,
    /// `InvalidNameError` (an `InvalidArgumentError`).
    InvalidName,
    /// `ShapeError`: a shape or number of dimensions that does not fit (an `InvalidArgumentError`).
    Shape,
    /// `OutOfBoundsError`: a selection outside the array (a `ShapeError`, also `IndexError`).
    OutOfBounds,
    /// `DTypeMismatchError`, also a `TypeError` and a `ValueError`: it refuses values that do
    /// not fit, for some of which numpy raises `ValueError` (NaN into int16).
    DTypeMismatch,
    /// `OutOfMemoryError`: a result larger than memory can hold (also `MemoryError`).
    OutOfMemory,
    /// `LockedError`: another writer holds the store (or a forked child holds its parent's
    /// changes).
    Locked,
    /// `ReadOnlyError`: a change through a handle opened read-only.
    ReadOnly,
    /// `ChangesDiscardedError`: the uncommitted changes were discarded (a panic inside Atlas,
    /// or a lost lock: `LockLostError`).
    ChangesDiscarded,
    /// `LockLostError`: the lock file was removed while held; the changes were discarded (a
    /// `ChangesDiscardedError`).
    LockLost,
    /// `CorruptError`: bytes on disk that Atlas did not write.
    Corrupt,
    /// `ChecksumMismatchError` (a `CorruptError`).
    ChecksumMismatch,
    /// `UnsupportedVersionError`: a store written by a newer Atlas.
    UnsupportedVersion,
    /// `CodecError`: a codec failed.
    Codec,
    /// `StorageError`: an operating-system I/O failure (also `OSError`).
    Storage,
    /// `GpuUnavailableError`: a read on a GPU that cannot run here.
    GpuUnavailable,
    /// `GpuError`: a CUDA or nvCOMP call failed during a read.
    Gpu,
    /// `LimitExceededError`: a file asks for more memory than the open's limits allow.
    LimitExceeded,
}

/// A class as (kind, Python name, parent kind or none for the base, builtin bases, doc).
type Class = (Kind, &'static str, Option<Kind>, &'static [Builtin], &'static str);

/// Every class.
const CLASSES: [Class; 22] = [
    (Kind::Base, "AtlasError", None, &[Builtin::Exception], "Base class of every error Atlas raises."),
    (
        Kind::NotFound,
        "NotFoundError",
        Some(Kind::Base),
        &[Builtin::Key],
        "A store, dataset, array or attribute does not exist.",
    ),
    (
        Kind::StoreNotFound,
        "StoreNotFoundError",
        Some(Kind::NotFound),
        &[Builtin::FileNotFound],
        "No store at the path given (no directory, or no metadata file in it).",
    ),
    (
        Kind::AlreadyExists,
        "AlreadyExistsError",
        Some(Kind::Base),
        &[Builtin::FileExists],
        "A store, dataset or array of that name already exists.",
    ),
    (Kind::InvalidArgument, "InvalidArgumentError", Some(Kind::Base), &[Builtin::Value], "An argument Atlas refuses."),
    (
        Kind::InvalidName,
        "InvalidNameError",
        Some(Kind::InvalidArgument),
        &[],
        "A dataset, array or attribute name Atlas refuses.",
    ),
    (
        Kind::Shape,
        "ShapeError",
        Some(Kind::InvalidArgument),
        &[],
        "A shape or number of dimensions that does not fit the array.",
    ),
    (
        Kind::OutOfBounds,
        "OutOfBoundsError",
        Some(Kind::Shape),
        &[Builtin::Index],
        "A selection reaching outside the array.",
    ),
    (
        Kind::DTypeMismatch,
        "DTypeMismatchError",
        Some(Kind::Base),
        &[Builtin::Type, Builtin::Value],
        "Data whose dtype does not match the array's.",
    ),
    (
        Kind::Locked,
        "LockedError",
        Some(Kind::Base),
        &[],
        "Another writer (in this or another process) holds the store; in a forked child, the changes the parent had begun (the parent's to commit; refresh() drops them in the child).",
    ),
    (
        Kind::ReadOnly,
        "ReadOnlyError",
        Some(Kind::Base),
        &[],
        "A change (a write, an attribute, a define, a maintenance call) through a handle opened with read_only=True; open the store again without it to change it.",
    ),
    (
        Kind::ChangesDiscarded,
        "ChangesDiscardedError",
        Some(Kind::Base),
        &[],
        "The uncommitted changes were discarded: after a panic inside Atlas (raised once, by the next change or flush, which did nothing else) or a lost lock (LockLostError). Redo them.",
    ),
    (
        Kind::LockLost,
        "LockLostError",
        Some(Kind::ChangesDiscarded),
        &[],
        "The lock file atlas.lock was removed or replaced while this handle held the writer lock, so another writer may have committed meanwhile; the uncommitted changes were discarded rather than committed over that writer's.",
    ),
    (
        Kind::OutOfMemory,
        "OutOfMemoryError",
        Some(Kind::Base),
        &[Builtin::Memory],
        "A result larger than memory can hold, refused before anything is read.",
    ),
    (Kind::Corrupt, "CorruptError", Some(Kind::Base), &[], "Bytes on disk that are not what Atlas wrote."),
    (
        Kind::ChecksumMismatch,
        "ChecksumMismatchError",
        Some(Kind::Corrupt),
        &[],
        "A block whose decoded bytes fail their checksum.",
    ),
    (
        Kind::UnsupportedVersion,
        "UnsupportedVersionError",
        Some(Kind::Base),
        &[],
        "A store written by a newer format version.",
    ),
    (Kind::Codec, "CodecError", Some(Kind::Base), &[], "A codec failed to encode or decode a block."),
    (Kind::Storage, "StorageError", Some(Kind::Base), &[Builtin::OS], "An operating-system I/O call failed."),
    (
        Kind::GpuUnavailable,
        "GpuUnavailableError",
        Some(Kind::Base),
        &[],
        "A GPU read cannot run here: no driver, no device, no libnvcomp, or an unsupported array.",
    ),
    (Kind::Gpu, "GpuError", Some(Kind::Base), &[], "A CUDA or nvCOMP call failed during a GPU read."),
    (
        Kind::LimitExceeded,
        "LimitExceededError",
        Some(Kind::Base),
        &[],
        "A file asking for more than the limits the store was opened with (`max_meta_bytes`, `max_chunk_bytes`).",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Builtin {
    Exception,
    Key,
    FileNotFound,
    FileExists,
    Value,
    Index,
    Type,
    OS,
    Memory,
}

static TYPES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn index(kind: Kind) -> usize {
    CLASSES.iter().position(|c| c.0 == kind).expect("every kind has a class")
}

/// Creates the classes (once) and adds them to `module`.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let types = TYPES.get_or_try_init(py, || make_types(py))?;
    for ((_, name, ..), class) in CLASSES.iter().zip(types) {
        module.add(*name, class.bind(py))?;
    }
    Ok(())
}

fn make_types(py: Python<'_>) -> PyResult<Vec<Py<PyType>>> {
    let type_of_types = py.get_type::<PyType>();
    let mut made: Vec<Py<PyType>> = Vec::with_capacity(CLASSES.len());
    for (_, name, parent, builtins, doc) in CLASSES {
        let mut bases: Vec<Bound<'_, PyType>> = Vec::new();
        if let Some(parent) = parent {
            bases.push(made[index(parent)].bind(py).clone());
        }
        for builtin in builtins {
            bases.push(match builtin {
                Builtin::Exception => py.get_type::<PyException>(),
                Builtin::Key => py.get_type::<PyKeyError>(),
                Builtin::FileNotFound => py.get_type::<PyFileNotFoundError>(),
                Builtin::FileExists => py.get_type::<PyFileExistsError>(),
                Builtin::Value => py.get_type::<PyValueError>(),
                Builtin::Index => py.get_type::<PyIndexError>(),
                Builtin::Type => py.get_type::<PyTypeError>(),
                Builtin::OS => py.get_type::<PyOSError>(),
                Builtin::Memory => py.get_type::<PyMemoryError>(),
            });
        }
        let namespace = PyDict::new(py);
        namespace.set_item("__module__", "atlas")?;
        namespace.set_item("__doc__", doc)?;
        if builtins.contains(&Builtin::Key) {
            // KeyError quotes its message; an error message reads better as written.
            namespace.set_item("__str__", py.get_type::<PyException>().getattr("__str__")?)?;
        }
        let class = type_of_types.call1((name, PyTuple::new(py, bases)?, namespace))?;
        made.push(class.cast_into::<PyType>()?.unbind());
    }
    Ok(made)
}

/// A new exception of `kind` with `message`.
pub fn new_err(py: Python<'_>, kind: Kind, message: impl Into<String>) -> PyErr {
    let message = message.into();
    match TYPES.get(py) {
        Some(types) => PyErr::from_type(types[index(kind)].bind(py).clone(), message),
        // Only before module init, which registers the classes first.
        None => PyException::new_err(message),
    }
}

/// Whether `error` is one of Atlas's own (an `AtlasError`), whose message Atlas wrote.
pub fn is_atlas_error(py: Python<'_>, error: &PyErr) -> bool {
    TYPES.get(py).is_some_and(|types| error.is_instance(py, types[index(Kind::Base)].bind(py)))
}

/// Raises `kind` with `message` (for checks done on the Python side of a call).
pub fn err<T>(kind: Kind, message: impl Into<String>) -> PyResult<T> {
    Python::attach(|py| Err(new_err(py, kind, message)))
}

/// Maps an Atlas error to its Python exception: the one place that knows every variant.
pub fn to_py(error: atlas::Error) -> PyErr {
    use atlas::Error as E;
    let kind = match &error {
        E::NotFound { kind: atlas::EntityKind::Store, .. } => Kind::StoreNotFound,
        E::NotFound { .. } => Kind::NotFound,
        E::AlreadyExists { .. } => Kind::AlreadyExists,
        E::InvalidName { .. } => Kind::InvalidName,
        E::InvalidArgument { .. } => Kind::InvalidArgument,
        E::OutOfMemory { .. } => Kind::OutOfMemory,
        E::DTypeMismatch { .. } => Kind::DTypeMismatch,
        E::OutOfBounds { .. } => Kind::OutOfBounds,
        E::ShapeMismatch { .. } => Kind::Shape,
        E::Locked { .. } => Kind::Locked,
        E::ReadOnly { .. } => Kind::ReadOnly,
        E::ChangesDiscarded { .. } => Kind::ChangesDiscarded,
        E::LockLost { .. } => Kind::LockLost,
        E::UnsupportedVersion { .. } => Kind::UnsupportedVersion,
        E::Corrupt { .. } => Kind::Corrupt,
        E::ChecksumMismatch { .. } => Kind::ChecksumMismatch,
        E::Codec { .. } => Kind::Codec,
        E::Io { .. } => Kind::Storage,
        E::GpuUnavailable(_) => Kind::GpuUnavailable,
        E::Gpu(_) => Kind::Gpu,
        E::LimitExceeded { .. } => Kind::LimitExceeded,
        // Variants added after this module was written land on the base class.
        _ => Kind::Base,
    };
    Python::attach(|py| match &error {
        // As OSError(errno, strerror, filename): `.errno` and `.filename` set, so that a
        // caller can tell ENOSPC from EIO.
        E::Io { path, op, source } if source.raw_os_error().is_some() => match TYPES.get(py) {
            Some(types) => {
                // str() gives "[Errno 28] write: No space left on device: '<path>'", the
                // path a str as the OS's own errors have it (not Rust's "(os error 28)").
                let errno = source.raw_os_error();
                let text = source.to_string();
                let strerror = errno.and_then(|n| text.strip_suffix(&format!(" (os error {n})"))).unwrap_or(&text);
                let args = (errno, format!("{op}: {strerror}"), path.as_os_str().to_os_string());
                PyErr::from_type(types[index(Kind::Storage)].bind(py).clone(), args)
            }
            None => new_err(py, kind, error.to_string()),
        },
        // A `FileNotFoundError` as the OS raises it: `.errno` ENOENT, `.filename` the path.
        E::NotFound { kind: atlas::EntityKind::Store, name } => {
            let raised = new_err(py, kind, error.to_string());
            let value = raised.value(py);
            let enoent = py.import("errno").and_then(|errno| errno.getattr("ENOENT"));
            let set =
                enoent.and_then(|enoent| value.setattr("errno", enoent)).and_then(|()| value.setattr("filename", name));
            set.err().unwrap_or(raised)
        }
        _ => new_err(py, kind, error.to_string()),
    })
}

/// `Result<T, atlas::Error>` into `PyResult<T>`.
pub trait IntoPy<T> {
    /// Converts the error with [`to_py`].
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for atlas::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
