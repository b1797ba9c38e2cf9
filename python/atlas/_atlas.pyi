"""Types of the native module (`atlas._atlas`): its exception classes, checked against the
module by `tests/test_errors.py`. The classes the Python layer wraps (`Store`, `Dataset`,
`Array`, ...) are typed through the wrappers in `atlas`, so here they are `Any`."""

from typing import Any

class AtlasError(Exception):
    """Base class of every error Atlas raises."""

class AlreadyExistsError(AtlasError, FileExistsError):
    """A store, dataset or array of that name already exists."""

class ChangesDiscardedError(AtlasError):
    """The uncommitted changes were discarded: after a panic inside Atlas (raised once, by
    the next change or flush, which did nothing else) or a lost lock (LockLostError).
    Redo them."""

class CorruptError(AtlasError):
    """Bytes on disk that are not what Atlas wrote."""

class ChecksumMismatchError(CorruptError):
    """A block whose decoded bytes fail their checksum."""

class CodecError(AtlasError):
    """A codec failed to encode or decode a block."""

class DTypeMismatchError(AtlasError, TypeError, ValueError):
    """Data whose dtype does not match the array's."""

class GpuError(AtlasError):
    """A CUDA or nvCOMP call failed during a GPU read."""

class GpuUnavailableError(AtlasError):
    """A GPU read cannot run here: no driver, no device, no libnvcomp, or an unsupported
    array."""

class InvalidArgumentError(AtlasError, ValueError):
    """An argument Atlas refuses."""

class InvalidNameError(InvalidArgumentError):
    """A dataset, array or attribute name Atlas refuses."""

class LimitExceededError(AtlasError):
    """A file asking for more than the limits the store was opened with (`max_meta_bytes`,
    `max_chunk_bytes`)."""

class LockLostError(ChangesDiscardedError):
    """The lock file atlas.lock was removed or replaced while this handle held the writer
    lock, so another writer may have committed meanwhile; the uncommitted changes were
    discarded rather than committed over that writer's."""

class LockedError(AtlasError):
    """Another writer (in this or another process) holds the store; in a forked child, the
    changes the parent had begun (the parent's to commit; refresh() drops them in the
    child)."""

class ReadOnlyError(AtlasError):
    """A change (a write, an attribute, a define, a maintenance call) through a handle opened
    with read_only=True; open the store again without it to change it."""

class NotFoundError(AtlasError, KeyError):
    """A store, dataset, array or attribute does not exist."""

class ShapeError(InvalidArgumentError):
    """A shape or number of dimensions that does not fit the array."""

class OutOfBoundsError(ShapeError, IndexError):
    """A selection reaching outside the array."""

class OutOfMemoryError(AtlasError, MemoryError):
    """A result larger than memory can hold, refused before anything is read."""

class StorageError(AtlasError, OSError):
    """An operating-system I/O call failed."""

class StoreNotFoundError(NotFoundError, FileNotFoundError):
    """No store at the path given (no directory, or no metadata file in it)."""

class UnsupportedVersionError(AtlasError):
    """A store written by a newer format version."""

def __getattr__(name: str) -> Any: ...
