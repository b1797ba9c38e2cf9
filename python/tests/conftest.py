import os
import tempfile

import numpy as np
import pytest
from hypothesis import configuration, settings

import atlas

# Hypothesis keeps its files out of the working tree; no example database, no deadline.
configuration.set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "atlas-hypothesis"))
settings.register_profile("atlas", database=None, deadline=None)
settings.load_profile("atlas")

#: Every dtype an array can hold: Atlas's name, the numpy dtype reads return, sample values.
DTYPES = {
    "int8": (np.int8, [-128, 0, 127]),
    "int16": (np.int16, [-32768, 1, 32767]),
    "int32": (np.int32, [-(2**31), 2, 2**31 - 1]),
    "int64": (np.int64, [-(2**63), 3, 2**63 - 1]),
    "uint8": (np.uint8, [0, 1, 255]),
    "uint16": (np.uint16, [0, 2, 65535]),
    "uint32": (np.uint32, [0, 3, 2**32 - 1]),
    "uint64": (np.uint64, [0, 4, 2**64 - 1]),
    "float32": (np.float32, [-1.5, 0.0, 3.25]),
    "float64": (np.float64, [-1e300, 0.5, np.inf]),
    "bool": (np.bool_, [True, False, True]),
    "timestamp": ("datetime64[ns]", ["1970-01-01", "2024-03-01T12:00:00.000000001", "2262-01-01"]),
    "string": (object, ["", "h\u00e9llo w\u00f6rld", "\u65e5\u672c\u8a9e \U0001f30a"]),
}


def sample(name, n=3):
    np_dtype, values = DTYPES[name]
    return np.array([values[i % len(values)] for i in range(n)], dtype=np_dtype)


@pytest.fixture
def store(tmp_path):
    s = atlas.Atlas.create(tmp_path / "store")
    yield s


@pytest.fixture
def ds(store):
    return store.create_dataset("d")
