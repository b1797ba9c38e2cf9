"""Atlas: an embedded store for chunked N-dimensional arrays, numpy in and numpy out.

    import atlas, numpy as np
    with atlas.Atlas.create("ocean.atlas") as store:      # flushes at the end of the block
        run = store.create_dataset("run42")
        temp = run.define_array("temp", "float32", ["time", "depth"], [1000, 512], fill_value=np.nan)
        temp[:100] = np.random.rand(100, 512).astype("float32")
    store = atlas.Atlas.open("ocean.atlas")
    part = store["run42"]["temp"][90:110, ::2]

The API is a superset of atlas-python 0.10's (same names, arguments and defaults); see
docs/ARCHITECTURE.md, section Python, for where it differs. Every error is an
`atlas.AtlasError`; the GIL is released during all I/O and codec work.
"""

from ._atlas import (
    AlreadyExistsError,
    AtlasError,
    ChecksumMismatchError,
    CodecError,
    CorruptError,
    CudaArray,
    DTypeMismatchError,
    GpuError,
    GpuUnavailableError,
    InvalidArgumentError,
    InvalidNameError,
    LockedError,
    NotFoundError,
    OutOfBoundsError,
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
    "LockedError",
    "NotFoundError",
    "OutOfBoundsError",
    "ShapeError",
    "StorageError",
    "UnsupportedVersionError",
    "__version__",
]
