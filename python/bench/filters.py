"""Compression ratio of the byte delta (shuffle "bytedelta") and the element delta (shuffle
"delta") against shuffle alone, on smooth and noisy fields, int64 timestamps and integer
series, through Atlas: where BENCHMARKS.md's "Byte delta" and "Element delta" ratios come from.

Run: .venv/bin/python python/bench/filters.py
"""

import os
import tempfile

import numpy as np

import atlas

SHUFFLES = ("on", "bytedelta", "delta")

rng = np.random.default_rng(1)
z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in (64, 128, 128)), indexing="ij")
fields = {"smooth f32": np.sin(x * 0.02) * np.cos(y * 0.015) * 10 + z * 0.05,
          "smooth f32 + noise 1e-3": np.sin(x * 0.02) * np.cos(y * 0.015) * 10 + z * 0.05 + rng.normal(0, 1e-3, x.shape),
          "random walk f64": np.cumsum(rng.normal(0, 1, x.size)).reshape(x.shape),
          "timestamps 1 s apart": 1_700_000_000 * 10**9 + np.arange(x.size, dtype=np.int64) * 10**9,
          "timestamps + jitter (< 1 us)": 1_700_000_000 * 10**9 + np.arange(x.size, dtype=np.int64) * 10**9
          + rng.integers(0, 1000, x.size),
          "int32 counter (steps of 3)": np.arange(x.size, dtype=np.int32) * 3,
          "uint16 random walk (steps -3..3)": (30000 + np.cumsum(rng.integers(-3, 4, x.size))).astype(np.uint16)}
print("| data | codec | " + " | ".join(SHUFFLES) + " |")
print("|---|---|" + "---|" * len(SHUFFLES))
with tempfile.TemporaryDirectory() as root:
    for name, data in fields.items():
        if data.dtype.kind == "f":
            data = data.astype(np.float64 if "f64" in name else np.float32)
        chunks = [64, 64, 64] if data.ndim == 3 else [1 << 17]
        for codec in ("zstd:1", "zstd:3", "lz4"):
            ratios = []
            for shuffle in SHUFFLES:
                path = os.path.join(root, f"{name}{codec}{shuffle}")
                store = atlas.Atlas.create(path, codec=codec, shuffle=shuffle)
                store.create_dataset("d").define_array("a", data.dtype, None, data.shape, chunks)[...] = data
                store.flush()
                ratios.append(data.nbytes / store["d"]["a"].storage["stored_bytes"])
            print(f"| {name} | {codec} | " + " | ".join(f"{r:.2f}x" for r in ratios) + " |")
