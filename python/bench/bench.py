"""Writes and reads the W1/W2 arrays of the speed issue from Python through Atlas, h5py
(+hdf5plugin zstd/lz4), zarr-python 3, TensorStore (zarr3 driver), Blosc2 (b2nd file) and
numpy.save/load, with the same chunks and codec settings, in one run; prints MB/s and ratios,
and what the Python layer adds over the Rust API.

W1: uint16 (x + y*y/32 + z*z*z) mod 65536 on 512^3 (x fastest), chunks 64^3 and 256^3,
    zstd level 3 with byte shuffle, and no compression without shuffle.
W2: a smooth float32 field on 256x512x512, chunks 64^3, zstd level 1 and lz4, shuffle on and
    off. (Same generators as crates/atlas-bench.)

Install: .venv/bin/pip install h5py hdf5plugin "zarr>=3" tensorstore blosc2   (not needed by the
         tests; a library not installed is left out of the table)
Run:     .venv/bin/python python/bench/bench.py [--scale 0.5] [--repeat 3] [--markdown] [--boxes]
                                               [--bytedelta] [--delta]

--bytedelta adds the W1 64^3 zstd3 and the W2 cases with byte delta after the shuffle (Atlas's
shuffle "bytedelta", Blosc2's BYTEDELTA filter), run through Atlas and Blosc2 only: h5py,
zarr-python and TensorStore have no such filter.
--delta adds the same cases with the element delta before the shuffle (Atlas's shuffle
"delta", zarr-python's numcodecs Delta filter), run through Atlas and, for the integer W1,
zarr-python (whose Delta subtracts floats as floats, which does not give them back; Blosc's
DELTA is another filter: each block against the chunk's first).

Each figure is the best of --repeat runs. Writes count until the data is durable in the
library's own sense (Atlas flush, h5py close, zarr write returns, TensorStore's write future,
Blosc2's asarray returns, np.save + fsync); only Atlas, TensorStore and the numpy baseline
fsync. Reads open the store and read the whole array into memory. MB/s is raw array bytes
(10^6) per second.

Shuffle: TensorStore's zarr3 driver and Blosc2 shuffle only inside Blosc, which also cuts each
chunk into blocks it compresses apart (its own choice of size), so their shuffled cases (and
TensorStore's unshuffled LZ4, which has no other container there) run the same codec and level
through Blosc; TensorStore's unshuffled zstd uses the zarr3 zstd codec. LZ4 through Blosc uses
clevel 9 (LZ4's default acceleration, as Atlas's). Both use all cores.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

import atlas
from atlas import _atlas


def _optional(*names: str) -> tuple:
    """The modules `names`, or None for each when any of them is not installed (the peers
    are for the bench only)."""
    try:
        return tuple(importlib.import_module(name) for name in names)
    except ImportError:
        return (None,) * len(names)


h5py, hdf5plugin = _optional("h5py", "hdf5plugin")
zarr, zcodecs = _optional("zarr", "zarr.codecs")
(tensorstore,) = _optional("tensorstore")
(blosc2,) = _optional("blosc2")


@dataclass
class Case:
    id: str
    shape: tuple[int, ...]
    chunk: tuple[int, ...]
    dtype: str
    codec: str  # "zstd", "lz4", "none"
    level: int
    shuffle: bool
    byte_delta: bool = False  # after the shuffle
    delta: bool = False  # the element delta, before the shuffle

    @property
    def atlas_shuffle(self) -> str:
        return "bytedelta" if self.byte_delta else "delta" if self.delta else "on" if self.shuffle else "off"

    @property
    def atlas_codec(self) -> str:
        return f"zstd:{self.level}" if self.codec == "zstd" else self.codec


def scaled(full: int, scale: float, step: int = 64) -> int:
    return max(int(full * scale) // step * step, step)


def w1_cases(scale: float) -> list[Case]:
    edge = scaled(512, scale)
    cases = []
    for chunk in (64, 256):
        if chunk > edge:
            continue
        cases.append(Case(f"w1-c{chunk}-zstd3+shuf", (edge,) * 3, (chunk,) * 3, "uint16", "zstd", 3, True))
        cases.append(Case(f"w1-c{chunk}-none", (edge,) * 3, (chunk,) * 3, "uint16", "none", 0, False))
    return cases


def byte_delta_cases(scale: float) -> list[Case]:
    """The shuffled compressed W1 64^3 and W2 cases, with byte delta after the shuffle."""
    return [Case(c.id.replace("+shuf", "+bd"), c.shape, c.chunk, c.dtype, c.codec, c.level, True, True)
            for c in _shuffled_cases(scale)]


def delta_cases(scale: float) -> list[Case]:
    """The same cases with the element delta before the shuffle."""
    return [Case(c.id.replace("+shuf", "+delta"), c.shape, c.chunk, c.dtype, c.codec, c.level, True, delta=True)
            for c in _shuffled_cases(scale)]


def _shuffled_cases(scale: float) -> list[Case]:
    return [c for c in w1_cases(scale) + w2_cases(scale) if c.shuffle and c.codec != "none" and c.chunk[0] == 64]


def w2_cases(scale: float) -> list[Case]:
    shape = (scaled(256, scale), scaled(512, scale), scaled(512, scale))
    cases = []
    for codec, level in (("zstd", 1), ("lz4", 0)):
        for shuffle in (True, False):
            label = f"{codec}{level if codec == 'zstd' else ''}{'+shuf' if shuffle else ''}"
            cases.append(Case(f"w2-{label}", shape, (64, 64, 64), "float32", codec, level, shuffle))
    return cases


def cubic(shape) -> np.ndarray:
    z, y, x = (np.arange(n, dtype=np.uint64) for n in shape)
    base = (y[None, :] * y[None, :] // 32 + (z * z * z)[:, None])[:, :, None]
    return ((x[None, None, :] + base) % 65536).astype(np.uint16)


def smooth(shape) -> np.ndarray:
    z, y, x = (np.arange(n, dtype=np.float32) for n in shape)
    return (np.sin(x * np.float32(0.02))[None, None, :] * np.cos(y * np.float32(0.015))[None, :, None]
            * np.float32(10.0) + (z * np.float32(0.05))[:, None, None]).astype(np.float32)


# --- one library each: write(path, data) -> None, read(path) -> ndarray -------------------

def atlas_write(case: Case, path: str, data: np.ndarray) -> None:
    store = atlas.Atlas.create(path, codec=case.atlas_codec, shuffle=case.atlas_shuffle)
    arr = store.create_dataset("d").define_array("a", case.dtype, None, case.shape, case.chunk)
    arr[...] = data
    store.flush()


def atlas_read(case: Case, path: str) -> np.ndarray:
    return atlas.Atlas.open(path)["d"]["a"][...]


def h5_write(case: Case, path: str, data: np.ndarray) -> None:
    if case.codec == "zstd":
        compression = hdf5plugin.Zstd(clevel=case.level)
    elif case.codec == "lz4":
        compression = hdf5plugin.LZ4()
    else:
        compression = {}
    with h5py.File(path, "w") as f:
        f.create_dataset("a", data=data, chunks=case.chunk, shuffle=case.shuffle, **compression)


def h5_read(case: Case, path: str) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["a"][...]


def zarr_write(case: Case, path: str, data: np.ndarray) -> None:
    filters = [zcodecs.numcodecs.Delta(dtype=str(data.dtype))] if case.delta else None
    compressors: list = []
    if case.shuffle:
        compressors.append(zcodecs.Shuffle(elementsize=data.dtype.itemsize))
    if case.codec == "zstd":
        compressors.append(zcodecs.ZstdCodec(level=case.level))
    elif case.codec == "lz4":
        compressors.append(zcodecs.LZ4())
    arr = zarr.create_array(path, shape=data.shape, dtype=data.dtype, chunks=case.chunk, filters=filters,
                            compressors=compressors or None, fill_value=0)
    arr[...] = data


def zarr_read(case: Case, path: str) -> np.ndarray:
    return zarr.open_array(path, mode="r")[...]


def blosc_settings(case: Case) -> tuple[str, int, bool]:
    """(cname, clevel, shuffle) that run `case`'s codec through Blosc; clevel 0 stores as is."""
    if case.codec == "none":
        return "zstd", 0, False
    return case.codec, case.level if case.codec == "zstd" else 9, case.shuffle


def ts_codecs(case: Case, itemsize: int) -> list[dict]:
    codecs: list[dict] = [{"name": "bytes", "configuration": {"endian": "little"}}]
    if case.codec == "zstd" and not case.shuffle:
        codecs.append({"name": "zstd", "configuration": {"level": case.level}})
    elif case.codec != "none":
        cname, clevel, shuffle = blosc_settings(case)
        codecs.append({"name": "blosc", "configuration": {
            "cname": cname, "clevel": clevel, "shuffle": "shuffle" if shuffle else "noshuffle",
            "typesize": itemsize, "blocksize": 0}})
    return codecs


def ts_write(case: Case, path: str, data: np.ndarray) -> None:
    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": path},
        "metadata": {
            "shape": list(data.shape),
            "data_type": str(data.dtype),
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(case.chunk)}},
            "codecs": ts_codecs(case, data.dtype.itemsize),
        },
    }
    tensorstore.open(spec, create=True, delete_existing=True).result().write(data).result()


def ts_read(case: Case, path: str) -> np.ndarray:
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": path}}
    return tensorstore.open(spec).result().read().result()


def b2_write(case: Case, path: str, data: np.ndarray) -> None:
    cname, clevel, shuffle = blosc_settings(case)
    cparams = blosc2.CParams(
        codec=blosc2.Codec[cname.upper()], clevel=clevel, nthreads=os.cpu_count(),
        filters=[blosc2.Filter.SHUFFLE if shuffle else blosc2.Filter.NOFILTER]
        + ([blosc2.Filter.BYTEDELTA] if case.byte_delta else []))
    blosc2.asarray(data, urlpath=path, mode="w", chunks=case.chunk, cparams=cparams)


def b2_read(case: Case, path: str) -> np.ndarray:
    return blosc2.open(path, dparams=blosc2.DParams(nthreads=os.cpu_count()))[...]


def npy_write(case: Case, path: str, data: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, data)
        f.flush()
        os.fsync(f.fileno())


def npy_read(case: Case, path: str) -> np.ndarray:
    return np.load(path)


LIBRARIES = {"atlas": (atlas_write, atlas_read)}
if h5py is not None:
    LIBRARIES["h5py"] = (h5_write, h5_read)
if zarr is not None:
    LIBRARIES["zarr"] = (zarr_write, zarr_read)
if tensorstore is not None:
    LIBRARIES["tensorstore"] = (ts_write, ts_read)
if blosc2 is not None:
    LIBRARIES["blosc2"] = (b2_write, b2_read)
LIBRARIES["numpy"] = (npy_write, npy_read)


def disk_bytes(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def best(fn, repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def run_case(case: Case, data: np.ndarray, root: str, repeat: int) -> dict:
    raw = data.nbytes
    out = {}
    for lib, (write, read) in LIBRARIES.items():
        if lib == "numpy" and case.codec != "none":
            continue  # numpy.save has no codec: it is the uncompressed baseline
        if case.byte_delta and lib not in ("atlas", "blosc2"):
            continue  # no byte delta filter there
        if case.delta and not (lib == "atlas" or lib == "zarr" and np.dtype(case.dtype).kind in "iu"):
            continue  # no element delta filter there (zarr-python's subtracts floats: not lossless)
        path = os.path.join(root, f"{case.id}-{lib}")

        def timed_write():
            shutil.rmtree(path, ignore_errors=True)
            if os.path.isfile(path):
                os.remove(path)
            t = time.perf_counter()
            write(case, path, data)
            return time.perf_counter() - t

        def timed_read():
            t = time.perf_counter()
            back = read(case, path)
            seconds = time.perf_counter() - t
            assert np.array_equal(back, data), f"{lib} {case.id} read back different values"
            return seconds

        if lib != "atlas":
            write_s = best(timed_write, repeat)
            read_s = best(timed_read, repeat)
            out[lib] = {"write": raw / write_s / 1e6, "read": raw / read_s / 1e6, "ratio": raw / disk_bytes(path)}
            continue
        # What the Python layer adds: the same write (+flush) and read through the Rust API
        # alone (timed inside the native module), alternated with the Python calls so both
        # see the same machine. Both sides' times include making the store and the array
        # (an fsync) or opening the store, made the same way.
        rust_path = os.path.join(root, f"{case.id}-rust")

        def rust_write():
            shutil.rmtree(rust_path, ignore_errors=True)
            t = time.perf_counter()
            store = atlas.Atlas.create(rust_path, codec=case.atlas_codec, shuffle=case.atlas_shuffle)
            store.create_dataset("d").define_array("a", case.dtype, None, case.shape, case.chunk)
            made = time.perf_counter() - t
            return made + _atlas._bench_rust_write(store._native, "d", "a", data)

        def rust_read():
            t = time.perf_counter()
            store = atlas.Atlas.open(rust_path)
            opened = time.perf_counter() - t
            return opened + _atlas._bench_rust_read(store._native, "d", "a")

        times = {"w": [], "r": [], "rw": [], "rr": []}
        for _ in range(repeat):
            times["w"].append(timed_write())
            times["rw"].append(rust_write())
        for _ in range(repeat):
            times["r"].append(timed_read())
            times["rr"].append(rust_read())
        ratio = raw / disk_bytes(path)
        out["atlas"] = {"write": raw / min(times["w"]) / 1e6, "read": raw / min(times["r"]) / 1e6, "ratio": ratio}
        out["rust"] = {"write": raw / min(times["rw"]) / 1e6, "read": raw / min(times["rr"]) / 1e6, "ratio": ratio}
    return out


BOXES, EDGE = 1000, 32


def run_boxes(scale: float, root: str, repeat: int) -> list[tuple[str, float]]:
    """W4 from Python: 1000 random 32^3 boxes (fixed seed) of W2's zstd1+shuffle array, read
    one call per box through each library, and through Atlas's `read_boxes` in one call.
    Returns (how, MB/s of box bytes) rows, every way checked against numpy's slicing."""
    case = next(c for c in w2_cases(scale) if c.id == "w2-zstd1+shuf")
    data = smooth(case.shape)
    rng = np.random.default_rng(4)
    starts = [tuple(int(rng.integers(0, n - EDGE + 1)) for n in case.shape) for _ in range(BOXES)]
    want = np.stack([data[z:z + EDGE, y:y + EDGE, x:x + EDGE] for z, y, x in starts])
    box_bytes = want.nbytes
    ways = {}
    atlas_path = os.path.join(root, "boxes-atlas")
    atlas_write(case, atlas_path, data)
    arr = atlas.Atlas.open(atlas_path)["d"]["a"]
    ways["atlas: a read per box"] = lambda: np.stack([arr.read(s, (EDGE,) * 3) for s in starts])
    ways["atlas: one read_boxes call"] = lambda: arr.read_boxes(starts, (EDGE,) * 3)
    if h5py is not None:
        h5_path = os.path.join(root, "boxes.h5")
        h5_write(case, h5_path, data)
        h5 = h5py.File(h5_path, "r")["a"]
        ways["h5py: a read per box"] = lambda: np.stack([h5[z:z + EDGE, y:y + EDGE, x:x + EDGE] for z, y, x in starts])
    if zarr is not None:
        zarr_path = os.path.join(root, "boxes-zarr")
        zarr_write(case, zarr_path, data)
        za = zarr.open_array(zarr_path, mode="r")
        ways["zarr: a read per box"] = lambda: np.stack([za[z:z + EDGE, y:y + EDGE, x:x + EDGE] for z, y, x in starts])
    if tensorstore is not None:
        ts_path = os.path.join(root, "boxes-ts")
        ts_write(case, ts_path, data)
        tsa = tensorstore.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": ts_path}}).result()
        ways["tensorstore: a read per box"] = lambda: np.stack(
            [tsa[z:z + EDGE, y:y + EDGE, x:x + EDGE].read().result() for z, y, x in starts])
    if blosc2 is not None:
        b2_path = os.path.join(root, "boxes.b2nd")
        b2_write(case, b2_path, data)
        b2a = blosc2.open(b2_path)
        ways["blosc2: a read per box"] = lambda: np.stack([b2a[z:z + EDGE, y:y + EDGE, x:x + EDGE] for z, y, x in starts])
    rows = []
    for how, read in ways.items():
        assert np.array_equal(read(), want), f"{how} read other values"
        rows.append((how, box_bytes / best(lambda: timed(read), repeat) / 1e6))
    return rows


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="linear factor on the W1/W2 shapes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="", help="run cases whose id contains this")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--boxes", action="store_true", help="also run W4: 1000 random 32^3 box reads")
    parser.add_argument("--bytedelta", action="store_true", help="also run the cases with byte delta")
    parser.add_argument("--delta", action="store_true", help="also run the cases with the element delta")
    args = parser.parse_args()

    cases = (w1_cases(args.scale) + w2_cases(args.scale) + (byte_delta_cases(args.scale) if args.bytedelta else [])
             + (delta_cases(args.scale) if args.delta else []))
    cases = [c for c in cases if args.only in c.id]
    libs = [lib for lib in LIBRARIES if lib != "numpy"]
    optional = (("h5py+hdf5plugin", h5py), ("zarr", zarr), ("tensorstore", tensorstore), ("blosc2", blosc2))
    missing = [name for name, mod in optional if mod is None]
    print(f"atlas {atlas.__version__}, numpy {np.__version__}"
          + (f", h5py {h5py.__version__}, hdf5plugin {hdf5plugin.version}" if h5py else "")
          + (f", zarr {zarr.__version__}" if zarr else "")
          + (f", tensorstore {importlib.metadata.version('tensorstore')}" if tensorstore else "")
          + (f", blosc2 {blosc2.__version__}" if blosc2 else "")
          + (f"; not installed: {', '.join(missing)}" if missing else "")
          + f"; {os.cpu_count()} CPUs; scale {args.scale}, best of {args.repeat}")
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for case in cases:
            data = cubic(case.shape) if case.dtype == "uint16" else smooth(case.shape)
            results = run_case(case, data, root, args.repeat)
            others = [results[lib] for lib in libs if lib in results and lib != "atlas"] or [results["atlas"]]
            best_write = max(r["write"] for r in others)
            best_read = max(r["read"] for r in others)
            a, r = results["atlas"], results["rust"]
            rows.append((case, data.nbytes, results, a["write"] / best_write, a["read"] / best_read,
                         r["write"] / a["write"] - 1, r["read"] / a["read"] - 1))
            print(f"  done {case.id}", file=sys.stderr)

    head = ["case", "MiB", *(f"{lib} w/r MB/s" for lib in libs), "numpy w/r", "atlas ratio",
            "atlas/best w", "atlas/best r", "py over rust w", "py over rust r"]
    lines = []
    for case, raw, res, wx, rx, ow, orr in rows:
        cells = [case.id, f"{raw / 2**20:.0f}"]
        cells += [f"{res[lib]['write']:.0f} / {res[lib]['read']:.0f}" if lib in res else "-" for lib in libs]
        cells.append(f"{res['numpy']['write']:.0f} / {res['numpy']['read']:.0f}" if "numpy" in res else "-")
        cells += [f"{res['atlas']['ratio']:.2f}x", f"{wx:.2f}x", f"{rx:.2f}x", f"{ow * 100:+.0f}%", f"{orr * 100:+.0f}%"]
        lines.append(cells)
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for cells in lines:
            print("| " + " | ".join(cells) + " |")
    else:
        widths = [max([len(h), *(len(c[i]) for c in lines)]) for i, h in enumerate(head)]
        print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
        for cells in lines:
            print("  ".join(c.ljust(w) for c, w in zip(cells, widths)))
    print("atlas/best: Atlas's MB/s over the fastest of the other libraries (compressed cases target >= 1.5x);")
    print("py over rust: how much faster the same work is through the Rust API alone (target < 10%).")
    if args.boxes:
        with tempfile.TemporaryDirectory() as root:
            rows = run_boxes(args.scale, root, args.repeat)
        print(f"\nW4: {BOXES} random {EDGE}^3 boxes of w2-zstd1+shuf (MB/s of box bytes)")
        for how, mbps in rows:
            print(f"  {how:30} {mbps:8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
