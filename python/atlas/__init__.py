"""Atlas: an embedded store for chunked N-dimensional arrays, numpy in and numpy out.

    import atlas, numpy as np
    with atlas.Atlas.create("ocean.atlas") as store:      # flushes at the end of the block
        run = store.create_dataset("run42")
        temp = run.define_array("temp", "float32", ["time", "depth"], [1000, 512], fill_value=np.nan)
        temp[:100] = np.random.rand(100, 512).astype("float32")
    store = atlas.Atlas.open("ocean.atlas")
    part = store["run42"]["temp"][90:110, ::2]

The API keeps atlas-python 0.10's names and arguments and adds to them; a few defaults
and behaviours differ (`create` on an existing store raises, for one): see
docs/ARCHITECTURE.md, section Python. Every error from the store
is an `atlas.AtlasError`; a malformed index or argument caught before any call into it
raises numpy's usual `IndexError`, `TypeError` or `ValueError`. The GIL is released during
all I/O and codec work.
"""

import glob as _glob
import os as _os
import sys as _sys


def _find_nvcomp() -> None:
    """Points Atlas at a pip-installed libnvcomp on this interpreter's path (for GPU reads),
    unless ATLAS_NVCOMP_LIB is set: the native search asks `python3`, which may be another
    interpreter than this one (a virtual environment used without activating it)."""
    if _os.environ.get("ATLAS_NVCOMP_LIB"):
        return
    for base in _sys.path:
        for pattern in ("nvidia/libnvcomp/lib64/libnvcomp.so.*", "nvidia/nvcomp/libnvcomp.so.*"):
            hits = sorted(_glob.glob(_os.path.join(base, pattern)), reverse=True)
            if hits:
                _os.environ["ATLAS_NVCOMP_LIB"] = hits[0]
                return


_find_nvcomp()

from ._atlas import (  # noqa: E402
    AlreadyExistsError,
    AtlasError,
    ChangesDiscardedError,
    ChecksumMismatchError,
    CodecError,
    CorruptError,
    CudaArray,
    DTypeMismatchError,
    GpuError,
    GpuUnavailableError,
    InvalidArgumentError,
    InvalidNameError,
    LimitExceededError,
    LockedError,
    LockLostError,
    NotFoundError,
    StoreNotFoundError,
    OutOfBoundsError,
    OutOfMemoryError,
    ReadOnlyError,
    ShapeError,
    StorageError,
    UnsupportedVersionError,
    __version__,
)
from ._array import Array, Attributes
from ._core import Atlas, DatasetView
from ._xarray import register_accessor as _register_accessor

#: The Rust name of a dataset handle.
Dataset = DatasetView

_register_accessor()

__all__ = [
    "AlreadyExistsError",
    "Array",
    "Atlas",
    "AtlasError",
    "Attributes",
    "ChangesDiscardedError",
    "ChecksumMismatchError",
    "CodecError",
    "CorruptError",
    "CudaArray",
    "DTypeMismatchError",
    "Dataset",
    "DatasetView",
    "GpuError",
    "GpuUnavailableError",
    "InvalidArgumentError",
    "InvalidNameError",
    "LimitExceededError",
    "LockedError",
    "LockLostError",
    "NotFoundError",
    "StoreNotFoundError",
    "OutOfBoundsError",
    "OutOfMemoryError",
    "ReadOnlyError",
    "ShapeError",
    "StorageError",
    "UnsupportedVersionError",
    "__version__",
]
