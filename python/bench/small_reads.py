"""Small reads and writes in a loop, the notebook pattern: one element, one row, a 16x16
box, one element written, against h5py (its 1 MiB chunk cache on) and zarr-python, on a
1024x1024 float32 array in 128x128 chunks (Atlas zstd 3, h5py gzip 1, zarr's default
zstd). Prints microseconds per call, best of `--repeat` loops.

Run:     .venv/bin/python python/bench/small_reads.py [--repeat 3]
"""

import argparse
import os
import tempfile
import time

import h5py
import numpy as np
import zarr

import atlas


def per_call(fn, calls, repeat):
    """Best microseconds per call of `fn(i)` over `repeat` loops of `calls` calls."""
    fn(0)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for i in range(calls):
            fn(i)
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    values = np.arange(1024 * 1024, dtype=np.float32).reshape(1024, 1024)
    with tempfile.TemporaryDirectory() as d:
        store = atlas.Atlas.create(os.path.join(d, "s"))
        ds = store.create_dataset("d")
        arr = ds.define_array("a", "float32", ["y", "x"], [1024, 1024], chunk_shape=[128, 128])
        arr[:, :] = values
        written = ds.define_array("w", "float32", ["y", "x"], [1024, 1024], chunk_shape=[128, 128])
        store.flush()
        f = h5py.File(os.path.join(d, "h.h5"), "w")
        h5 = f.create_dataset("a", data=values, chunks=(128, 128), compression="gzip", compression_opts=1)
        h5w = f.create_dataset("w", shape=values.shape, dtype="float32", chunks=(128, 128), compression="gzip")
        z = zarr.create_array(os.path.join(d, "z.zarr"), shape=values.shape, chunks=(128, 128), dtype="float32")
        z[:, :] = values

        def assign(target):
            def run(i):
                target[i % 1024, 5] = 1.0

            return run

        cases = [
            ("element a[i, 5]", lambda a: (lambda i: a[i % 1024, 5]), 2000),
            ("row a[i, :]", lambda a: (lambda i: a[i % 1024, :]), 500),
            ("box a[16:32, 16:32]", lambda a: (lambda i: a[16:32, 16:32]), 2000),
        ]
        print("| us per call | Atlas | h5py | zarr-python | h5py/Atlas |")
        print("|---|--:|--:|--:|--:|")
        for name, make, calls in cases:
            t_atlas = per_call(make(arr), calls, args.repeat)
            t_h5 = per_call(make(h5), calls, args.repeat)
            t_zarr = per_call(make(z), max(calls // 10, 20), args.repeat)
            print(f"| {name} | {t_atlas:.1f} | {t_h5:.1f} | {t_zarr:.1f} | {t_h5 / t_atlas:.2f}x |")
        t_atlas = per_call(assign(written), 2000, args.repeat)
        t_h5 = per_call(assign(h5w), 2000, args.repeat)
        print(f"| element written a[i, 5] = 1 | {t_atlas:.1f} | {t_h5:.1f} | - | {t_h5 / t_atlas:.2f}x |")
        store.flush()  # before the directory goes: a handle collected later flushes nothing
        f.close()


if __name__ == "__main__":
    main()
