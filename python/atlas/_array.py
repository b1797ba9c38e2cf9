"""`Array`: a handle on one array, with numpy-style reads and writes, and `Attributes`."""

from __future__ import annotations

import datetime
import math
import numbers
import operator
from collections.abc import Callable, Iterator, MutableMapping
from html import escape
from typing import Any, Optional, Sequence, TypeVar

import numpy as np

from . import _atlas, _html
from ._atlas import DTypeMismatchError, InvalidArgumentError, NotFoundError, OutOfBoundsError
from ._dtypes import COMPAT_NAMES, for_assign, for_write, numpy_dtype
from ._index import Box, Plan, Points, Strided, is_whole_box, plan, points, selection_shape, simple_box, strided

T = TypeVar("T")


def _nothing_of(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An array of `shape` in one element's memory (every element is that one), to index
    with a selection of nothing as numpy would an array of that shape (`a[False]`)."""
    return np.lib.stride_tricks.as_strided(np.empty(1, dtype), shape, (0,) * len(shape))


def shuffle_arg(shuffle: Any) -> Optional[str]:
    """`True`/`False`/`None` or `"on"`/`"off"`/`"auto"`/`"bytedelta"`/`"delta"` as the native layer
    spells it."""
    if shuffle is None:
        return None
    if shuffle is True:
        return "on"
    if shuffle is False:
        return "off"
    return str(shuffle)


def _attribute_name(key: Any) -> str:
    """`key`, which names an attribute: a str (as in h5py and zarr), else `TypeError`."""
    if not isinstance(key, str):
        raise TypeError(f"attribute names are str, not {type(key).__name__} ({key!r})")
    return key


class Attributes(MutableMapping):
    """The typed attributes of a store, dataset or array, as a dict-like view that reads
    and writes through (durable at the next flush).

    Values: bool, int (64-bit), float, str, timestamps (`numpy.datetime64` of any unit,
    `datetime.datetime` and `datetime.date`, aware ones converted to UTC; read back as
    `numpy.datetime64[ns]`), and lists and dicts of these; numpy scalars and arrays are
    stored as Python values and lists.
    """

    __slots__ = ("_native",)

    def __init__(self, native: _atlas.Attrs) -> None:
        self._native = native

    def __reduce__(self) -> Any:
        refuse_pickle(self)

    def __getitem__(self, key: str) -> Any:
        value = self._native.get(_attribute_name(key))
        if value is None:
            raise NotFoundError(f"attribute not found: {key}")
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """The attribute `key`, or `default` if it is not set."""
        value = self._native.get(key) if isinstance(key, str) else None
        return default if value is None else value

    def pop(self, key: str, *default: Any) -> Any:
        """Removes `key` and gives its value, else `default` if given (also for a name that
        is not a str, as `get` gives it)."""
        if default and not isinstance(key, str):
            return default[0]
        return super().pop(key, *default)

    def __setitem__(self, key: str, value: Any) -> None:
        self._native.set(_attribute_name(key), value)

    def set(self, key: str, value: Any, dtype: Optional[str] = None) -> None:
        """Sets `key`; `dtype` (e.g. `"int8"`, `"float32"`, `"timestamp_nanoseconds"`)
        checks or converts the value as atlas-python 0.10's `set_attribute` did."""
        self._native.set(_attribute_name(key), value, dtype)

    def __delitem__(self, key: str) -> None:
        self._native.remove(_attribute_name(key))

    def __iter__(self) -> Iterator[str]:
        return iter(self._native.all())

    def __len__(self) -> int:
        return len(self._native.all())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._native.get(key) is not None

    def to_dict(self) -> dict[str, Any]:
        """All attributes as a plain dict, read at once (another thread's changes land
        wholly before or after it, as they do for `items()` and `values()`)."""
        return self._native.all()

    def items(self) -> Any:  # one read, not one per key
        return self._native.all().items()

    def values(self) -> Any:
        return self._native.all().values()

    def __repr__(self) -> str:
        return shown(lambda: f"Attributes({self._native.all()!r})", "<atlas.Attributes of a deleted dataset or array>")


class AttributeMethods:
    """atlas-python 0.10's attribute methods, for the handles with `attrs` (store, dataset)."""

    __slots__ = ()

    attrs: Attributes

    def attributes(self) -> dict[str, Any]:
        """The attributes as a plain dict."""
        return self.attrs.to_dict()

    def set_attribute(self, key: str, value: Any, dtype: Optional[str] = None) -> None:
        """Sets a typed attribute; `dtype` (`"int8"`, `"float32"`, `"timestamp_nanoseconds"`...)
        checks or converts the value."""
        self.attrs.set(key, value, dtype)

    def get_attribute(self, key: str) -> Any:
        """The attribute, or None if it is not set."""
        return self.attrs.get(key)

    def delete_attribute(self, key: str) -> None:
        """Removes the attribute."""
        del self.attrs[key]


#: What `arr == x` is refused against: values an element could be, and data (a pandas or
#: xarray object on either side compares through its own `==`, reading the data).
_COMPARED_DATA = (
    numbers.Number,
    str,
    bytes,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    np.generic,
    np.ndarray,
    list,
    tuple,
    range,
)


class Array:
    """One array of a dataset: `ds["temp"]`.

    Reads: `arr[...]`, `arr[2:10, ::2, 5]`, `np.asarray(arr)`, `arr.read(start, shape)`;
    only chunks holding selected elements are read and decoded. Writes: `arr[...] = x` (numpy's
    broadcasting; casts within a kind or to a wider one, and between integer types when the
    values fit), `arr.write(start, data)`, `arr.append(data)`. Strings read as object
    arrays, timestamps as `datetime64[ns]`.
    """

    __slots__ = ("_native", "_store")

    def __reduce__(self) -> Any:
        refuse_pickle(self)

    def __init__(self, native: _atlas.Array, store: Any) -> None:
        self._native = native
        self._store = store

    # --- schema -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The array's name."""
        return self._native.name

    @property
    def dataset(self) -> str:
        """The name of the dataset holding the array."""
        return self._native.dataset

    @property
    def meta(self) -> dict[str, Any]:
        """The schema: dtype, shape, chunk_shape, dims, fill_value, codec, shuffle,
        effective_codec."""
        return self._native.meta()

    @property
    def shape(self) -> tuple[int, ...]:
        """Elements per axis."""
        return self._native.shape

    @property
    def ndim(self) -> int:
        """The number of axes."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """The number of elements."""
        return math.prod(self.shape)

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype reads return (`object` for strings, `datetime64[ns]` for timestamps)."""
        return numpy_dtype(self._native.dtype_name)

    @property
    def atlas_dtype(self) -> str:
        """Atlas's name of the dtype (`"float32"`, `"timestamp"`, `"string"`...)."""
        return self._native.dtype_name

    @property
    def nbytes(self) -> Optional[int]:
        """Bytes of the raw elements (None for strings, which have no fixed size)."""
        name = self.atlas_dtype
        return None if name == "string" else self.size * numpy_dtype(name).itemsize

    @property
    def chunks(self) -> tuple[int, ...]:
        """Elements per axis of each chunk (the unit of storage and of decoding)."""
        return self._native.chunk_shape

    @property
    def dims(self) -> tuple[str, ...]:
        """The axes' names."""
        return self._native.meta()["dims"]

    @property
    def fill_value(self) -> Any:
        """What reads return where nothing was written."""
        return self._native.meta()["fill_value"]

    @property
    def codec(self) -> str:
        """The codec new blocks get: the array's own, else the store's (`"zstd:3"`, `"lz4"`,
        `"none"`). Blocks already written keep the codec that wrote them."""
        return self._native.meta()["effective_codec"]

    @property
    def attrs(self) -> Attributes:
        """The array's attributes (dict-like, writes through)."""
        return Attributes(self._native.attrs())

    @property
    def stats(self) -> dict[str, Any]:
        """count, null_count, min, max, sum, mean of the valid values (and `row_count`, every
        element, as atlas-python 0.10 named it); current with unflushed writes. A value is
        null (not valid) when it equals the fill value bit for bit, or is NaN or NaT: with the
        default fill of 0, zeros are left out of count, min, sum and mean."""
        return self._native.stats()

    @property
    def storage(self) -> dict[str, Any]:
        """What the array takes on disk: written blocks and fill entries, their stored and
        raw bytes, blocks per codec (`{"zstd": 3, "lz4": 1}`: each block keeps the codec
        that wrote it), blocks not yet flushed."""
        return self._native.storage()

    def blocks(self) -> list[dict[str, Any]]:
        """Every live block: coord, codec, shuffled, byte_delta, delta, is_fill, stored_bytes,
        raw_bytes, checksum, path, offset_bytes, pending, staged."""
        return self._native.blocks()

    def block_stats(self) -> list[dict[str, Any]]:
        """Per written block: coord, count, min, max, sum."""
        return self._native.block_stats()

    def compat_meta(self) -> dict[str, Any]:
        """`array_meta`'s dict, atlas-python 0.10's keys: `codec` is the codec new blocks get
        (the array's own, else the store's), `shuffle` the array's own setting (None: the
        store's)."""
        meta = self._native.meta()
        return {
            "dtype": COMPAT_NAMES.get(meta["dtype"], meta["dtype"]),
            "shape": list(meta["shape"]),
            "chunk_shape": list(meta["chunk_shape"]),
            "dimension_names": list(meta["dims"]),
            "fill_value": meta["fill_value"],
            "codec": meta["effective_codec"],
            "shuffle": meta["shuffle"],
        }

    # --- reads and writes ---------------------------------------------------------------
    def read(
        self,
        start: Optional[Sequence[int]] = None,
        shape: Optional[Sequence[int]] = None,
        device: Optional[str] = None,
        verify_checksums: bool = True,
        out: Optional[np.ndarray] = None,
    ) -> Any:
        """The box `start .. start + shape` (default: from the origin to the end) as a new
        numpy array; with `device="cuda"` (or `"cuda:N"`) decoded on the GPU into a
        `CudaArray` that stays there (`torch.from_dlpack`, `cupy.asarray` take it without a
        copy). Raises `GpuUnavailableError` when no GPU read can run here. Each block is
        checked against its checksum unless `verify_checksums=False` (faster where the data
        is known sound; a damaged block then reads as its damaged bytes decode).

        With `out` (as h5py's `read_direct`), reads into that numpy array and returns it: it
        must be C-contiguous and writable, of the array's numpy dtype and the box's shape.
        Reading again into the same array skips a new array's allocation and page faults,
        which can cost as much as the read. After an error `out` holds what the read wrote
        before it stopped. Numeric, bool and timestamp arrays, on the CPU."""
        start, shape = _ints(start), _ints(shape)
        if out is not None:
            return self._read_into(out, start, shape, bool(verify_checksums), device)
        return self._on_one_shape(lambda _: self._native.read(start, shape, device, bool(verify_checksums)))

    def _read_into(self, out: Any, start: Any, shape: Any, verify: bool, device: Optional[str]) -> np.ndarray:
        if device not in (None, "cpu"):
            raise InvalidArgumentError(f"{self._label()}: out= is host memory: give device or out, not both")
        if not isinstance(out, np.ndarray):
            raise TypeError(f"{self._label()}: out must be a numpy array, not {type(out).__name__}")
        want = numpy_dtype(self.atlas_dtype)
        if out.dtype != want or not out.dtype.isnative:
            raise DTypeMismatchError(f"{self._label()}: out has dtype {out.dtype}; this array reads as {want}")
        target = out.view(np.int64) if want.kind == "M" else out
        self._on_one_shape(lambda _: self._native.read_into(target, start, shape, verify))
        return out

    def read_boxes(self, starts: Sequence[Sequence[int]], shape: Sequence[int]) -> np.ndarray:
        """The boxes of extent `shape` starting at each of `starts` as one new numpy array of
        shape `(len(starts), *shape)`: entry `i` is `read(starts[i], shape)`. Every chunk the
        boxes touch is decoded once for the whole call (on the CPU; once per 65,536 chunk
        parts), so many small boxes (random patches for training) read much faster than with
        a call each. Numeric, bool and timestamp arrays."""
        return self._native.read_boxes([_ints(start) for start in starts], _ints(shape))

    def write(self, start: Sequence[int], data: Any) -> None:
        """Writes `data` with its first element at `start`: an ndarray of the array's dtype
        (any byte order; timestamps also int64 or datetime64 of any unit), or a (nested)
        list, converted as `arr[...] = value` converts it. Its shape is the box written, so
        it has the array's number of dimensions (a scalar only for a 0-d array); to fill a
        box with one value, assign it (`arr[2:5, :] = 0.0`)."""
        if start is None:
            raise TypeError("write needs a start: one integer per axis (e.g. [0] * arr.ndim)")
        data = for_write(data, self.atlas_dtype, self._label())
        with self._write_lock():
            self._native.write(_ints(start), data)

    def append(self, data: Any) -> None:
        """Grows axis 0 by `len(data)` and writes `data` there (taken as `write` takes it)."""
        data = for_write(data, self.atlas_dtype, self._label(), "append")
        with self._write_lock():
            self._native.append(data)

    def resize(self, shape: Sequence[int]) -> None:
        """Changes the shape; new parts read as the fill value, cut parts are dropped."""
        with self._write_lock():  # not between an assignment's read and its write-back
            self._native.resize(_ints(shape))

    def __getitem__(self, key: Any) -> Any:
        return self._on_one_shape(lambda layout: self._getitem(key, layout))

    def _on_one_shape(self, read: Callable[[dict], Any]) -> Any:
        """`read(layout)`, which resolves its key on the array's `layout()` (dtype, shape,
        chunk shape); again on the new one when another thread (or writer) resized the array
        meanwhile and the read fell outside it: a key valid on both shapes (`a[:]` is) is not
        refused for the race."""
        for _ in range(_RESIZE_RETRIES):
            layout = self._native.layout()
            try:
                return read(layout)
            except OutOfBoundsError:
                if self._native.shape == layout["shape"]:
                    raise
        return read(self._native.layout())

    def _getitem(self, key: Any, layout: dict) -> Any:
        box = simple_box(key, layout["shape"])
        if box is not None:
            read = self._native.read(box.start, box.count)
            return read[box.post] if 0 in box.post or not box.post else read
        # Index arrays on several axes: one box a point (strings go by `plan`: read_boxes
        # does not read them).
        pts = points(key, tuple(layout["shape"]), tuple(layout["chunk_shape"])) if layout["dtype"] != "string" else None
        if pts is not None:
            return pts.select(self._read_points(pts))
        p = plan(key, layout["shape"], layout["chunk_shape"])
        if p.selects_nothing:
            return _nothing_of(p.shape, self.dtype)[p.post]
        stepped = self._stepped(p, layout["dtype"])
        packed, post = self._read_stepped_as_one(stepped, p) if stepped else (self._read_packed_as_one(p), p.post)
        if is_whole_box(p) and not (isinstance(key, tuple) and len(key) == 0):
            return packed
        out = packed[post]
        if not isinstance(out, np.ndarray):
            # An element: numpy gives a 0-d array instead where the key holds `...`.
            return np.array(out, self.dtype) if _has_ellipsis(key) else out
        # A step leaves a view of all that was read: keep only the selection's elements.
        if out.size < packed.size and np.may_share_memory(out, packed):
            out = out.copy()
        return out

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._write_lock():
            self._assign(key, value)

    def _read_points(self, pts: Points) -> np.ndarray:
        """The kept elements of every point's box (points x `pts.kept_shape()`), read in one
        call or, where a step leaves part of each box behind and the boxes hold over
        `_SLAB_BYTES` together, in calls of as many points as fit in it (one at least)."""
        count = pts.starts.shape[0]
        if count == 0 or 0 in pts.count:
            return np.empty((count,) + pts.kept_shape(), self.dtype)
        per_call = max(_SLAB_BYTES // (math.prod(pts.count) * self.dtype.itemsize), 1)
        if per_call >= count or math.prod(pts.kept_shape()) == math.prod(pts.count):
            return pts.kept(self._boxes_of(pts))

        def in_calls() -> np.ndarray:
            out = np.empty((count,) + pts.kept_shape(), self.dtype)
            for first in range(0, count, per_call):
                starts = pts.starts[first : first + per_call]
                out[first : first + len(starts)] = pts.kept(self._native.read_boxes(starts.tolist(), list(pts.count)))
            return out

        return self._as_one_state(in_calls, in_calls)

    def _boxes_of(self, pts: Points) -> np.ndarray:
        """Every point's box (points x `pts.count`) in one native call: where the box that
        holds them all has at most `_DENSE_POINTS` times their elements (and at most
        `_ITER_BYTES`), that box read whole and cut (a mask as large as the array read as
        one read, where a box a point cost 60x the array's memory and 150x its time), else
        the points' boxes read by `read_boxes`."""
        start, extent = pts.bounds()
        held = math.prod(extent)
        points = pts.starts.shape[0] * math.prod(pts.count)
        if held <= _DENSE_POINTS * points and held * self.dtype.itemsize <= _ITER_BYTES:
            return pts.boxes_in(self._native.read(start, extent), start)
        return self._native.read_boxes(pts.starts.tolist(), list(pts.count))

    def _element_bytes(self, atlas_dtype: str) -> int:
        """What one element counts for against `_SLAB_BYTES`."""
        return _STRING_BYTES if atlas_dtype == "string" else self.dtype.itemsize

    def _stepped(self, p: Plan, atlas_dtype: str) -> Optional[Strided]:
        """`p` taken apart by its steps (`_index.strided`) when its boxes are over
        `_SLAB_BYTES`: read or assigned a slab at a time. A string counts as
        `_STRING_BYTES`, about what a short one takes as a Python object."""
        if math.prod(p.shape) * self._element_bytes(atlas_dtype) <= _SLAB_BYTES:
            return None
        return strided(p)

    def _stepped_slabs(self, st: Strided) -> Iterator[tuple[list[int], list[int], tuple[slice, ...]]]:
        """The slabs of a stepped plan's boxes, each as the part of a box from its first kept
        element to its last along every axis (start, count) and where its kept elements lie
        among all of them (a key). A box over `_SLAB_BYTES` is cut into groups of whole
        chunk rows of an axis it spans several chunks of (the stepped ones first: a group
        without a kept row is skipped), each cut again along the next such axis while over
        `_SLAB_BYTES`."""
        chunks = self.chunks
        for box in st.boxes:
            axes = sorted((a for a, n in enumerate(box.count) if n > chunks[a]), key=lambda a: (st.steps[a] == 1, a))
            kept = [range((n - 1) // step + 1) for n, step in zip(box.count, st.steps)]
            for ranges in self._slab_cuts(box, st.steps, kept, axes):
                start = [b + r.start * step for b, r, step in zip(box.start, ranges, st.steps)]
                count = [(len(r) - 1) * step + 1 for r, step in zip(ranges, st.steps)]
                at = tuple(slice(k.start + r.start, k.start + r.stop) for k, r in zip(st.kept_at(box), ranges))
                yield start, count, at

    def _slab_cuts(
        self, box: Box, steps: tuple[int, ...], ranges: list[range], axes: list[int]
    ) -> Iterator[list[range]]:
        """`ranges` (the kept elements of part of `box`, per axis) cut as `_stepped_slabs`
        says, along `axes` in turn."""
        counts = [(len(r) - 1) * step + 1 for r, step in zip(ranges, steps)]
        element_bytes = self._element_bytes(self.atlas_dtype)
        if not axes or math.prod(counts) * element_bytes <= _SLAB_BYTES:
            yield ranges
            return
        d, step, first, kept = axes[0], steps[axes[0]], box.start[axes[0]], ranges[axes[0]]
        chunk_rows = self.chunks[d]
        row_bytes = element_bytes * math.prod(c for axis, c in enumerate(counts) if axis != d)
        rows = chunk_rows * max(1, _SLAB_BYTES // max(1, chunk_rows * row_bytes))
        group = (first + kept.start * step) // rows * rows
        while group <= first + (kept.stop - 1) * step:
            # The kept rows j of this group: group <= first + j * step < group + rows.
            lo = max(kept.start, -(-(group - first) // step))
            hi = min(kept.stop, -(-(group + rows - first) // step))
            if lo < hi:
                yield from self._slab_cuts(box, steps, ranges[:d] + [range(lo, hi)] + ranges[d + 1 :], axes[1:])
            group += rows

    def _read_stepped(self, st: Strided) -> np.ndarray:
        """The kept elements of a stepped plan's boxes, read a slab at a time."""
        kept = np.empty(st.shape, self.dtype)
        pick = tuple(slice(None, None, step) for step in st.steps)
        for start, count, at in self._stepped_slabs(st):
            kept[at] = self._native.read(start, count)[pick]
        return kept

    def _as_one_state(self, read: Callable[[], T], fallback: Callable[[], T]) -> T:
        """`read()`, native calls of one array, as of one state of it, as a single call is:
        under the array's write lock (no write of this handle's threads between its calls),
        and again if a commit, refresh, discard, or an array deleted or defined changed the
        handle meanwhile (`Atlas._state`); after `_AS_ONE_TRIES` such, `fallback()` with
        those changes held off."""
        store = self._store
        with self._write_lock():
            for _ in range(_AS_ONE_TRIES):
                state = store._state()
                if state is None:  # a change under way: its end would send the read again
                    with store._changes_held_off():
                        state = store._state()
                if state is None:
                    continue
                out = read()
                if store._state() == state:
                    return out
            # Changes keep coming: hold them off for one more read.
            with store._changes_held_off():
                return fallback()

    def _read_stepped_as_one(self, st: Strided, p: Plan) -> tuple[np.ndarray, tuple[Any, ...]]:
        """`_read_stepped` as of one state of the array, with the post key to take the
        selection from it; failing that, the boxes as `_read_packed` reads them."""
        return self._as_one_state(lambda: (self._read_stepped(st), st.post), lambda: (self._read_packed(p), p.post))

    def _assign_stepped(self, st: Strided, value: np.ndarray) -> None:
        """`arr[key] = value` for stepped boxes: the kept elements are changed in memory
        (read first only where the key does not select them all), then each slab is read,
        changed and written back, each its own write (as `_assign` writes its boxes)."""
        kept = np.empty(st.shape, self.dtype) if st.covers_kept else self._read_stepped(st)
        kept[st.post] = value
        pick = tuple(slice(None, None, step) for step in st.steps)
        for start, count, at in self._stepped_slabs(st):
            slab = self._native.read(start, count)
            slab[pick] = kept[at]
            self._native.write(start, slab)

    def _read_packed_as_one(self, p: Plan) -> np.ndarray:
        """`_read_packed` for a read: boxes of several extents (or several string boxes) take a
        native call each, read as of one state (`_as_one_state`); one call needs no lock, so
        that threads reading one array need not wait on it."""
        boxes = math.prod(len(axis) for axis in p.runs)
        extents = math.prod(len({stop - start for start, stop in axis}) for axis in p.runs)
        if (boxes if self.atlas_dtype == "string" else extents) == 1:
            return self._read_packed(p)
        return self._as_one_state(lambda: self._read_packed(p), lambda: self._read_packed(p))

    def _read_packed(self, p: Plan) -> np.ndarray:
        """The plan's boxes, read and laid back to back (see `_index`)."""
        boxes = p.boxes()
        if len(boxes) == 1:
            return self._native.read(boxes[0].start, boxes[0].count)
        name = self.atlas_dtype
        packed = np.empty(p.shape, numpy_dtype(name))
        by_extent: dict[tuple[int, ...], list[Box]] = {}
        for box in boxes:
            by_extent.setdefault(tuple(box.count), []).append(box)
        for count, same in by_extent.items():
            starts = [box.start for box in same]
            if name == "string":  # which read_boxes does not read
                parts = [self._native.read(start, list(count)) for start in starts]
            else:
                parts = self._native.read_boxes(starts, list(count))
            for box, part in zip(same, parts):
                packed[box.at] = part
        return packed

    def _assign(self, key: Any, value: Any) -> None:
        # Keys are resolved against the array as this handle sees it (`refresh()` shows
        # other writers' changes); the key is checked before the value, as numpy checks it.
        layout = self._native.layout()
        # numpy refuses a value with more axes than the selection where it is one element
        # (a key of integers alone) or where the value comes as a list or tuple.
        strict = (_selects_one_element(key), isinstance(value, (list, tuple)))
        box = simple_box(key, layout["shape"])
        if box is not None:
            selected = tuple(n for n, k in zip(box.count, box.post) if k != 0)
            value = for_assign(value, layout["dtype"], self._label())
            self._write_box(box.start, box.count, selected, value, strict)
            return
        pts = points(key, tuple(layout["shape"]), tuple(layout["chunk_shape"])) if layout["dtype"] != "string" else None
        if pts is not None:
            value = for_assign(value, layout["dtype"], self._label())
            self._read_modify_write(lambda: self._assign_points(pts, value, layout["chunk_shape"], strict))
            return
        p = plan(key, layout["shape"], layout["chunk_shape"])
        value = for_assign(value, layout["dtype"], self._label())
        if p.selects_nothing:
            # Nothing to write, but the value is checked against the selection as numpy would.
            _nothing_of(p.shape, self.dtype)[p.post] = value
            return
        stepped = self._stepped(p, layout["dtype"])
        if p.direct:
            (box,) = p.boxes()
            self._write_box(box.start, box.count, selection_shape(p), value, strict)
        elif stepped:
            self._read_modify_write(lambda: self._assign_stepped(stepped, value))
        else:
            self._read_modify_write(lambda: self._assign_packed(p, value))

    def _assign_packed(self, p: Plan, value: np.ndarray) -> None:
        """Steps, index arrays or new axes: changes the boxes in memory and writes them back,
        each its own write (a flush from another thread meanwhile may commit some)."""
        packed = self._read_packed(p)
        packed[p.post] = value
        for box in p.boxes():
            # `np.require`, not `ascontiguousarray`, which makes a 0-d box 1-d.
            self._native.write(box.start, np.require(packed[box.at + (Ellipsis,)], requirements="C"))

    def _read_modify_write(self, assign: Callable[[], None]) -> None:
        """Runs `assign`, an assignment of several writes (which may read what it writes
        back), holding the writer lock from before its first read: read on an older commit,
        the values of the boxes the key does not select would write over what another writer
        committed since. The lock goes back if nothing was changed (a value that does not
        broadcast, a damaged block) and no other thread's read-modify-write on this handle is
        under way, as after a change that fails first. Interrupted (Ctrl-C) in an assignment
        that began the changes, they are discarded if they are all its own (no other thread
        changed anything meanwhile: `Store.abandon`), not left half written for the next
        flush (or a `with` block's end) to commit; so are they when a signal handler's
        `sys.exit` (SIGTERM in a batch job) interrupts it."""
        native = self._store._native
        hold = native.begin_change()
        try:
            assign()
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or a signal handler's `sys.exit`
            with self._store._changing():  # a discard, when it is one
                native.abandon(hold)
            raise
        finally:
            native.release_if_unchanged(hold)

    def _write_box(
        self, start: list[int], count: list[int], selected: tuple[int, ...], value: np.ndarray, strict: tuple[bool, bool]
    ) -> None:
        """Writes `value`, broadcast to the `selected` shape (the box of `count` at `start`
        without the axes of integer indices), into that box; `strict` as `_broadcast` takes it."""
        if value.shape == selected:
            data = value.reshape(count)  # broadcasting itself costs more than a small write
        else:
            data = _broadcast(value, selected, strict).reshape(count)
        if data.flags.c_contiguous or data.nbytes <= _SLAB_BYTES:
            self._native.write(start, np.asarray(data, order="C"))
        else:
            self._read_modify_write(lambda: self._write_broadcast(start, data))

    def _assign_points(self, pts: Points, value: np.ndarray, chunks: Sequence[int], strict: tuple[bool, bool]) -> None:
        """`arr[key] = value` for a key of points: per chunk cell its points fall in (on the
        indexed axes), the box spanning them there and each slice's range is read, changed
        and written back, each its own write (a flush from another thread meanwhile may
        commit some, and a failed write leaves the ones before it written). Where points
        repeat, the last one's value stays, as in numpy."""
        shape = pts.selection_shape()
        ndim = len(pts.points_shape)
        # Raises as numpy does on a mismatch; leading axes of 1 beyond the selection's go.
        per_point = _broadcast(value, shape, strict)
        per_point = np.moveaxis(per_point, list(range(pts.at, pts.at + ndim)), list(range(ndim)))
        per_point = per_point.reshape((pts.starts.shape[0],) + per_point.shape[ndim:])
        if per_point.size == 0:
            return
        indexed = pts.indexed_axes
        cells = pts.starts[:, indexed] // np.asarray(chunks)[indexed]
        cell_of = _cell_numbers(cells)
        order = np.argsort(cell_of, kind="stable")  # by cell, in key order within one
        groups = np.split(order, np.flatnonzero(np.diff(cell_of[order])) + 1)
        for members in groups:
            start = pts.starts[members[0]].tolist()
            count = list(pts.count)
            for axis in indexed:
                start[axis] = int(pts.starts[members, axis].min())
                count[axis] = int(pts.starts[members, axis].max()) - start[axis] + 1
            box = self._native.read(start, count)
            # The indexed axes first: their index arrays then stand together at the front,
            # and numpy lays the points' values out first, as `per_point` has them.
            local = tuple(pts.starts[members, axis] - start[axis] for axis in indexed)
            rest = tuple(k for k in pts.post if isinstance(k, slice))
            np.moveaxis(box, indexed, list(range(len(indexed))))[local + rest] = per_point[members]
            self._native.write(start, box)

    def _write_broadcast(self, start: list[int], data: np.ndarray) -> None:
        """Writes `data`, a large broadcast value (`a[:] = 0`), in slabs of whole chunk rows
        of its first axis longer than a chunk, each cut again the same way along a later
        axis while over `_SLAB_BYTES`, so memory holds a slab, never the whole selection
        (an array of shape (64, 4000000) in chunks of (64, 3907) is cut along its second
        axis). Each slab is its own write: a flush from another thread meanwhile may
        commit some."""
        axis = next((d for d, n in enumerate(data.shape) if n > self.chunks[d]), None)
        if axis is None or data.nbytes <= _SLAB_BYTES:
            self._native.write(start, np.require(data, requirements="C"))
            return
        rows, first, end_of_data = self.chunks[axis], start[axis], start[axis] + data.shape[axis]
        while first < end_of_data:
            end = min((first // rows + 1) * rows, end_of_data)
            cut = (slice(None),) * axis + (slice(first - start[axis], end - start[axis]),)
            at = list(start)
            at[axis] = first
            self._write_broadcast(at, data[cut])
            first = end

    def _write_lock(self) -> Any:
        return self._store._write_lock(self.dataset, self.name)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if copy is False:
            raise ValueError("an Atlas array is read into a new numpy array: copy=False is not possible")
        out = self.read()
        return out if dtype is None else out.astype(dtype, copy=False)

    def __len__(self) -> int:
        shape = self.shape
        if not shape:
            raise TypeError("len() of a 0-d array")
        return shape[0]

    def __bool__(self) -> bool:
        """A handle is always true, as an h5py dataset is, whatever its shape (Python would
        otherwise ask `len()`, which a 0-d array has not); test `size` for emptiness."""
        return True

    def __eq__(self, other: Any) -> Any:
        """Refused against a number or data: `arr == 5` is no element-wise comparison (it
        would be `False`, and `arr[arr == 5]` an empty selection); compare the data,
        `arr[...] == 5`. Against anything else, the same handle only."""
        if isinstance(other, _COMPARED_DATA):
            raise TypeError(
                f"{self._label()}: an Atlas array is not compared element by element; "
                "compare its data, arr[...] == value"
            )
        return NotImplemented

    def __ne__(self, other: Any) -> Any:
        """As `==`: refused against a number or data."""
        return self.__eq__(other)

    __hash__ = object.__hash__

    def __contains__(self, value: Any) -> bool:
        """`value in arr`, as numpy answers it: whether any element equals `value` (the
        whole array is read)."""
        return bool((self[...] == value).any())

    def __iter__(self) -> Iterator[Any]:
        if not self.shape:
            raise TypeError("iteration over a 0-d array")
        # A chunk row of axis 0 at a time, not an element (and its chunk decode) at a time.
        # Where a chunk row is over `_ITER_BYTES`, a part of it that divides it (one row at
        # least): memory stays bounded, and each chunk is decoded once per part.
        row_bytes = math.prod(self.shape[1:]) * self._element_bytes(self.atlas_dtype)
        fits = max(1, _ITER_BYTES // max(row_bytes, 1))
        rows = next(d for d in range(min(self.chunks[0], fits), 0, -1) if self.chunks[0] % d == 0)
        for first in range(0, len(self), rows):
            yield from self[first : first + rows]

    # --- settings -----------------------------------------------------------------------
    def set_codec(self, codec: Optional[str], shuffle: Any = None) -> None:
        """Gives the array its own codec for new blocks, and its own `shuffle` (`"on"`,
        `"off"`, `"auto"`, `"bytedelta"`, `"delta"` or a bool) when given; existing blocks
        keep theirs. `set_codec(None)` makes the array follow the store's codec, and its
        shuffle too unless `shuffle` is given."""
        self._native.set_codec(codec, shuffle_arg(shuffle))

    def recompress(self, codec: str, shuffle: Any = None) -> None:
        """Re-encodes every block with `codec` and makes it the array's own codec; `shuffle`
        likewise when given (else the array keeps the shuffle it has)."""
        self._native.recompress(codec, shuffle_arg(shuffle))

    # --- views --------------------------------------------------------------------------
    def _label(self) -> str:
        return f"{self.dataset}/{self.name}"

    def __repr__(self) -> str:
        return shown(self._repr, self._gone())

    def _repr(self) -> str:
        meta = self._native.meta()
        return (
            f"<atlas.Array {self._label()!r} {numpy_dtype(meta['dtype'])} shape={meta['shape']} "
            f"chunks={meta['chunk_shape']} dims={meta['dims']} codec={meta['effective_codec']}>"
        )

    def _gone(self) -> str:
        return f"<atlas.Array {self._label()!r} (deleted)>"

    def _repr_html_(self) -> str:
        return shown(lambda: _html.array_html(self), escape(self._gone()))


# Most bytes a broadcast value (`a[:] = 0`) or a box read through steps (`a[::10]`) takes
# in memory at once: larger ones are written or read in slabs of chunk rows.
_SLAB_BYTES = 64 << 20

# Reads whose key fell outside an array resized meanwhile are tried again this many times.
_RESIZE_RETRIES = 3

# Most bytes iteration reads at once: a chunk row of axis 0 up to this size is read whole,
# so that each chunk is decoded once (larger ones in parts, each decoding its chunks again);
# the CLI's `cat` bounds one index of its first axis the same way.
_ITER_BYTES = 16 * _SLAB_BYTES
#: Points (of index arrays on several axes, or a mask over several) are read through the
#: box that holds them all where it has at most this many elements per selected one: a
#: read of it costs about a nanosecond an element, a box a point about a microsecond.
_DENSE_POINTS = 16

# What one element of a string array counts for against `_SLAB_BYTES`: a short `str`.
_STRING_BYTES = 64

# Reads of several native calls that a change interrupts before one runs whole.
_AS_ONE_TRIES = 3


def shown(show: Callable[[], str], gone: str) -> str:
    """A handle's view (its repr, its HTML): `show()`, or `gone` once its dataset or array
    was deleted. A handle outlives them, and a notebook still shows it."""
    try:
        return show()
    except NotFoundError:
        return gone


def _has_ellipsis(key: Any) -> bool:
    return key is Ellipsis or (type(key) is tuple and any(k is Ellipsis for k in key))


def refuse_pickle(handle: object) -> None:
    """`__reduce__` of the handles, which hold open files, maps and a writer's session that
    no other process can share."""
    raise TypeError(
        f"atlas.{type(handle).__name__} handles cannot be pickled: pass the store's path to the other "
        "process and open it there with atlas.Atlas.open(path), or use threads (every call releases the GIL)"
    )


def _names(names: Any, what: str) -> list[str]:
    """A list of dataset or array names; one string is refused rather than taken as a
    list of its letters."""
    if isinstance(names, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of names, not one name (write [{names!r}])")
    return list(names)


def _ints(values: Any) -> Optional[list[int]]:
    """Starts and shapes: integers from 0 to 2^64 - 1 (numpy's counting from the end is for
    `[]` indexing only); one integer stands for a sequence of one, as in numpy."""
    if values is None:
        return None
    if isinstance(values, (int, np.integer)):
        values = [values]
    out = []
    for v in values:
        try:
            i = operator.index(v)
        except TypeError:
            raise TypeError(f"starts and shapes must be integers, got {v!r}") from None
        if not 0 <= i < 2**64:
            raise OutOfBoundsError(f"starts and shapes run from 0 to 2**64 - 1, got {list(values)!r}")
        out.append(i)
    return out


def _cell_numbers(cells: np.ndarray) -> np.ndarray:
    """One number per row of `cells` (chunk coordinates), equal for equal rows: their place
    in C order in the grid they span (sorting the rows as such took 6 s for 8 million), or
    where that grid has more cells than int64 counts, their rank among the distinct rows."""
    try:
        return np.ravel_multi_index(tuple(cells.T), tuple(cells.max(axis=0) + 1))
    except ValueError:
        return np.unique(cells, axis=0, return_inverse=True)[1].ravel()


def _selects_one_element(key: Any) -> bool:
    """Whether `key` is integers alone (Python's, numpy's or 0-d integer arrays): numpy then
    assigns one element, where a key of `...`, slices or new axes assigns a view, even of
    no axes (`a[..., 1]`)."""
    parts = key if isinstance(key, tuple) else (key,)

    def integer(k: Any) -> bool:
        if isinstance(k, np.ndarray):
            return k.ndim == 0 and k.dtype.kind in "iu"
        return isinstance(k, (int, np.integer)) and not isinstance(k, bool)

    return all(integer(k) for k in parts)


def _broadcast(value: np.ndarray, shape: tuple[int, ...], strict: tuple[bool, bool]) -> np.ndarray:
    """`value` broadcast to the selection's `shape` for an assignment, refused in numpy's
    words (`np.broadcast_to` speaks of "axis remapping"). `strict` is (the key is integers
    alone, the value came as a list or tuple): numpy drops a value's leading axes of length
    1 but for one element (an integer key selecting no axes), which takes no sequence, not
    even of one value, as numpy 2 has it, and for a list, which may have no more axes than
    the selection; a view of no axes (`a[..., 1]`) takes an array of one value."""
    element, listed = strict
    if value.ndim > len(shape) and (listed or (element and not shape)):
        raise ValueError("setting an array element with a sequence.")
    try:
        return np.broadcast_to(_leading_ones_dropped(value, len(shape)), shape)
    except ValueError:
        raise ValueError(f"could not broadcast input array from shape {value.shape} into shape {shape}") from None


def _leading_ones_dropped(value: np.ndarray, ndim: int) -> np.ndarray:
    """`value` without the leading axes of length 1 it has beyond `ndim`, as numpy's
    assignment ignores them (`a[0] = b[None]`)."""
    extra = 0
    while value.ndim - extra > ndim and value.shape[extra] == 1:
        extra += 1
    return value.reshape(value.shape[extra:])
