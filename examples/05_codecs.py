"""Writes a smooth float32 field with zstd, lz4 and none, shuffle on, bytedelta, delta and off, and prints
bytes on disk, compression ratio and write/read speed (the best of 3 reads). Then changes an array's codec
mid-life and shows old and new blocks both read back exactly. The Python twin of
05_codecs.rs.

Run: scripts/run-examples (or .venv/bin/python examples/05_codecs.py once the module is
built into .venv, see README.md)
"""

import os
import tempfile
import time

import numpy as np

import atlas

SHAPE = (64, 256, 256)
CHUNKS = [16, 128, 128]
READS = 3  # reads timed per case; the best is printed


def smooth_field():
    """A smooth field like ocean temperature: large-scale waves plus a vertical gradient."""
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in SHAPE), indexing="ij")
    field = 25.0 - 0.3 * z + 2.0 * np.sin(y / 40.0) * np.cos(x / 55.0) + 0.5 * np.sin((x + y) / 17.0)
    return field.astype(np.float32)


def data_bytes(store):
    """Bytes of all fragment files of a store."""
    data = os.path.join(store, "data")
    return sum(os.path.getsize(os.path.join(data, name)) for name in os.listdir(data))


def blocks_per_codec(array):
    """The array's blocks per codec they are stored with, e.g. `"8 lz4, 8 zstd"`: a chunk
    its codec does not make smaller is stored raw, as `none`."""
    return ", ".join(f"{n} {codec}" for codec, n in sorted(array.storage["codecs"].items()))


def main():
    field = smooth_field()
    raw_bytes = field.nbytes
    print(f"field: float32 {list(SHAPE)}, chunks {CHUNKS}, {raw_bytes / (1 << 20):.1f} MiB raw")
    print(f"(write: the assignment and its flush; read: the best of {READS}; blocks: as stored, per codec)")
    print(f"{'codec':<10} {'shuffle':<9} {'bytes':>12} {'ratio':>7} {'write MB/s':>12} {'read MB/s':>12}  blocks")
    with tempfile.TemporaryDirectory() as root:
        for label, codec in [("zstd-3", "zstd:3"), ("lz4", "lz4"), ("none", "none")]:
            for shuffle in ("on", "bytedelta", "delta", "off"):
                path = os.path.join(root, f"{label}-{shuffle}")
                store = atlas.Atlas.create(path, codec=codec, shuffle=shuffle)
                theta = store.create_dataset("ocean").define_array("theta", "float32", None, SHAPE, CHUNKS)

                t = time.perf_counter()
                theta[...] = field
                store.flush()
                write_s = time.perf_counter() - t

                # The best of a few reads: the first also starts the thread pool and maps the files.
                read_s = float("inf")
                for _ in range(READS):
                    t = time.perf_counter()
                    back = theta[...]
                    read_s = min(read_s, time.perf_counter() - t)
                    assert np.array_equal(back, field), f"{label} read back different values"

                size = data_bytes(path)
                print(
                    f"{label:<10} {shuffle:<9} {size:>12} {raw_bytes / size:>6.2f}x "
                    f"{raw_bytes / write_s / 1e6:>12.0f} {raw_bytes / read_s / 1e6:>12.0f}  {blocks_per_codec(theta)}"
                )
        codec_change_mid_life(root, field)


def codec_change_mid_life(root, field):
    """Half the array written with zstd, the other half after switching to lz4: each block
    keeps the codec that wrote it, and the whole array reads back exactly."""
    path = os.path.join(root, "mid-life")
    store = atlas.Atlas.create(path)
    theta = store.create_dataset("ocean").define_array("theta", "float32", None, SHAPE, CHUNKS)
    half = SHAPE[0] // 2
    theta[:half] = field[:half]
    store.flush()
    theta.set_codec("lz4")
    theta[half:] = field[half:]
    store.flush()

    reopened = atlas.Atlas.open(path)["ocean"]["theta"]
    codecs = blocks_per_codec(reopened)  # each block kept the codec that wrote it
    assert codecs == "8 lz4, 8 zstd", codecs
    assert np.array_equal(reopened[...], field)
    print(f"codec changed mid-life (zstd -> lz4): blocks {codecs}, all {field.size} values read back exactly")


if __name__ == "__main__":
    main()
