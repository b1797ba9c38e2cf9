"""Writes the same store (30 differing datasets x 4 arrays, with attributes) under each of
the six metadata encodings, prints the metadata file's size against plain JSON, and
reopens each store with no format argument. The Python twin of 04_meta_formats.rs.

Run: scripts/run-examples (or .venv/bin/python examples/04_meta_formats.py once the module
is built into .venv, see README.md)
"""

import os
import tempfile

import numpy as np

import atlas

DATASETS = 30
UNITS = {"temp": "degC", "salinity": "psu", "depth": "m"}


def write_store(path, meta_format, meta_compression):
    """30 ocean-profile-like datasets, each with four arrays and a few attributes."""
    with atlas.Atlas.create(path, meta_format=meta_format, meta_compression=meta_compression) as store:
        store.set_attribute("title", "example profiles")
        store.set_attribute("created", np.datetime64(1_700_000_000_000_000_000, "ns"))
        for d in range(DATASETS):
            ds = store.create_dataset(f"profile_{d:03}")
            # Profiles that differ (position, date, length, values), so that the compressed
            # sizes are not those of 30 copies of one dataset.
            offset = float(d)
            ds.set_attribute("station", f"ST{d:04}")
            ds.set_attribute("lat", -60.0 + offset * 1.37)
            ds.set_attribute("lon", offset * 47.3 % 360.0 - 180.0)
            ds.set_attribute("date_string", f"2024-03-{d % 28 + 1:02}")  # stays a string
            ds.set_attribute("flags", [1, 2, 3])
            n = 150 + (d * 37) % 100
            for name, dtype in [("temp", "float32"), ("salinity", "float32"), ("depth", "float64"), ("qc", "uint8")]:
                array = ds.define_array(name, dtype, ["level"], [n])
                array.attrs["units"] = UNITS.get(name, "1")
            level = np.arange(n, dtype=np.float64)
            ds.write_array("depth", [0], level * 5.0)
            ds.write_array("temp", [0], (20.0 - level * 0.05 + offset * 0.1).astype(np.float32))
            ds.write_array("salinity", [0], (34.0 + level * 0.002 + offset * 0.01).astype(np.float32))
            ds.write_array("qc", [0], np.ones(n, dtype=np.uint8))


def main():
    with tempfile.TemporaryDirectory() as root:
        print(f"{'metadata file':<20} {'bytes':>10} {'vs json':>12}")
        json_bytes = None
        encodings = [(f, c) for f in ("json", "msgpack") for c in ("none", "zstd", "lz4")]
        for i, (meta_format, meta_compression) in enumerate(encodings):
            path = os.path.join(root, f"store{i}")
            write_store(path, meta_format, meta_compression)

            store = atlas.Atlas.open(path)  # the file name says format and compression
            assert len(store.list_datasets()) == DATASETS, "reopened store lost datasets"
            name = store.meta_file_name
            suffix = {"none": "", "zstd": ".zst", "lz4": ".lz4"}[meta_compression]
            assert name == f"atlas.{meta_format}{suffix}", name
            assert store["profile_007"].attrs["flags"] == [1, 2, 3], "attributes did not round-trip"
            assert store.attrs["created"] == np.datetime64(1_700_000_000_000_000_000, "ns")
            size = os.path.getsize(os.path.join(path, name))
            json_bytes = json_bytes or size
            print(f"{name:<20} {size:>10} {size / json_bytes:>11.3f}x")
        print(f"all six stores reopened by file name with {DATASETS} datasets and their attributes each")
        print("(the datasets share their layout, which compression finds: a registry of less alike ones shrinks less)")


if __name__ == "__main__":
    main()
