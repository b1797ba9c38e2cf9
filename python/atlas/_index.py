"""numpy-style keys (`arr[2:10, ::2, 5]`) turned into the boxes Atlas reads or writes.

Per axis, the selected indices are split into runs wherever two consecutive ones lie more
than a chunk apart, so that no chunk without a selected element is read or written
(`a[::1000]` with chunks of 100 reads one chunk in ten). The boxes are the product of the
axes' runs. Laid back to back, each axis's runs in order, they make the packed array, and
`post` is the key with each index moved to its place there: `packed[post]` equals
`full_array[key]`. With one run per axis the packed array is the one box read.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ._atlas import OutOfBoundsError

Runs = tuple[tuple[int, int], ...]


class Box(NamedTuple):
    start: list[int]
    count: list[int]
    #: Where the box lies in the packed array.
    at: tuple[slice, ...]


class Plan(NamedTuple):
    #: Per axis of the array, the (start, stop) runs of elements to read, in order.
    runs: list[Runs]
    post: tuple[Any, ...]
    #: Only integers and whole unit-step slices: the box is exactly the selection, so a
    #: write needs no read first.
    direct: bool

    @property
    def shape(self) -> tuple[int, ...]:
        """The packed array's shape."""
        return tuple(sum(stop - start for start, stop in axis) for axis in self.runs)

    @property
    def selects_nothing(self) -> bool:
        """No element is selected: an empty run or a scalar `False` in the key."""
        return 0 in self.shape or any(_is_bool_scalar(k) and not k for k in self.post)

    def box_count(self) -> int:
        return math.prod(len(axis) for axis in self.runs)

    def boxes(self) -> list[Box]:
        """Every box: one run of each axis."""
        per_axis = []
        for axis in self.runs:
            at, placed = 0, []
            for start, stop in axis:
                placed.append((start, stop - start, slice(at, at + stop - start)))
                at += stop - start
            per_axis.append(placed)
        return [
            Box([b[0] for b in combo], [b[1] for b in combo], tuple(b[2] for b in combo))
            for combo in itertools.product(*per_axis)
        ]


def _is_int(k: Any) -> bool:
    if isinstance(k, (bool, np.bool_)):
        return False
    try:
        operator.index(k)
    except TypeError:
        return False
    return not isinstance(k, np.ndarray) or k.ndim == 0


#: Most boxes one key becomes; past it, runs closer than 4, 16, ... chunks are merged
#: (reading some chunks without selected elements) until the boxes are few enough. When
#: one axis alone has several runs, merging stops before the boxes hold over
#: `MAX_MERGED_GROWTH` times the elements they did.
MAX_BOXES = 4096
MAX_MERGED_GROWTH = 4


def plan(key: Any, shape: tuple[int, ...], chunks: tuple[int, ...]) -> Plan:
    """The boxes to read for `key` on an array of `shape` and `chunks` (module doc)."""
    gaps = tuple(chunks)
    p = _plan(key, shape, gaps)
    # Index arrays on several axes select points, but their runs multiply as if they
    # selected every combination: `a[i, i]` with 364 points made 132 496 boxes, merged
    # however much that reads. One axis's runs are never more than its selected elements:
    # `a[::3]` in chunks of 2 is merged (it reads 3 times the selection), `a[::1000]` over
    # 10**8 elements in chunks of 100 stays 10**5 boxes (merged, it read every chunk).
    most = MAX_MERGED_GROWTH * max(math.prod(p.shape), 1)
    while p.box_count() > MAX_BOXES:
        wider = tuple(4 * g for g in gaps)
        merged = _plan(key, shape, wider)
        if sum(len(axis) > 1 for axis in p.runs) <= 1 and math.prod(merged.shape) > most:
            break
        gaps, p = wider, merged
    return p


def _plan(key: Any, shape: tuple[int, ...], gaps: tuple[int, ...]) -> Plan:
    """`plan` splitting an axis's runs where selected indices lie over `gaps` apart."""
    key = _expanded(key, len(shape))
    runs: list[Runs] = []
    post: list[Any] = []
    direct = True
    axis = 0
    for k in key:
        if k is Ellipsis:
            # Kept by `_expanded`: on the packed array too it fills no axis and parts the
            # index arrays.
            post.append(k)
            direct = False
            continue
        if k is None or _is_bool_scalar(k):
            # No axis of the array: numpy adds one of length 1 (None, True) or 0 (False),
            # and does the same on the packed array.
            post.append(k)
            direct = False
            continue
        n = shape[axis]
        if _is_int(k):
            i = _int_index(k, n, axis)
            runs.append(((i, i + 1),))
            post.append(0)
        elif isinstance(k, slice):
            r = range(*k.indices(n))
            lo, hi = (min(r[0], r[-1]), max(r[0], r[-1]) + 1) if r else (0, 0)
            if len(r) <= 1 or abs(r.step) <= gaps[axis]:
                # One run, ending on the first and last selected elements, so a plain step
                # (either sign) walks exactly the selection.
                runs.append(((lo, hi),))
                post.append(slice(None, None, None if r.step == 1 else r.step))
            else:
                runs.append(tuple((i, i + 1) for i in range(lo, hi, abs(r.step))))
                post.append(slice(None, None, None if r.step > 0 else -1))
            direct = direct and r.step == 1
        elif _axes_used(k) > 1:
            # A mask over several axes selects what the index arrays of its true elements do.
            found = _mask_indices(k, shape, axis)
            for d, idx in enumerate(found):
                _add_index_array(runs, post, idx, gaps[axis + d])
            direct = False
            axis += len(found)
            continue
        else:
            _add_index_array(runs, post, _index_array(k, n, axis), gaps[axis])
            direct = False
        axis += 1
    return Plan(runs, tuple(post), direct)


class SimpleBox(NamedTuple):
    """The one box a key of plain integers and unit-step slices selects."""

    start: list[int]
    count: list[int]
    #: Picks the selection from the box: 0 on the integers' axes (dropped), `:` elsewhere.
    post: tuple[Any, ...]


def simple_box(key: Any, shape: Sequence[int]) -> SimpleBox | None:
    """The box of `key` when it is the most common kind (`a[3]`, `a[2:10, 5]`): integers in
    range and non-empty unit-step slices, one per axis from the first; `None` for any
    other key, which `points` and `plan` take (and report when it is wrong). The same
    selection as theirs, without their general steps: a loop of small reads pays for the
    key's parsing on every call."""
    if type(key) is not tuple:
        key = (key,)
    if len(key) > len(shape):
        return None
    start, count, post = [], [], []
    for k, n in zip(key, shape):
        if type(k) is int or (isinstance(k, np.integer) and not isinstance(k, np.timedelta64)):
            if not -n <= k < n:
                return None
            start.append(int(k) % n)
            count.append(1)
            post.append(0)
        elif type(k) is slice and (k.step is None or k.step == 1):
            try:
                lo, hi, _ = k.indices(n)
            except (TypeError, ValueError):
                return None
            if hi <= lo:
                return None
            start.append(lo)
            count.append(hi - lo)
            post.append(slice(None))
        else:
            return None
    for n in shape[len(key) :]:
        if n == 0:
            return None
        start.append(0)
        count.append(n)
        post.append(slice(None))
    return SimpleBox(start, count, tuple(post))


def _expanded(key: Any, ndim: int) -> tuple[Any, ...]:
    """`key` as a tuple with its `...` (or the end) filled with whole slices, so that its
    entries take the array's axes in order. A `...` that fills no axis stays where it parts
    index arrays (or scalar bools, or integers and either): numpy then puts their axes
    first, as if they were apart."""
    if not isinstance(key, tuple):
        key = (key,)
    ellipses = sum(1 for k in key if k is Ellipsis)
    if ellipses > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = sum(_axes_used(k) for k in key)
    if used > ndim:
        raise IndexError(f"too many indices: the array has {ndim} dimensions, {used} were indexed")
    filler = (slice(None),) * (ndim - used)
    if ellipses:
        at = next(i for i, k in enumerate(key) if k is Ellipsis)
        before, after = key[:at], key[at + 1 :]
        # A scalar bool is an index array to numpy (of 0 dimensions).
        advanced = [k for k in key if _is_index_array(k) or _is_bool_scalar(k)]
        parts = bool(advanced) and all(
            any(_is_int(k) or _is_index_array(k) or _is_bool_scalar(k) for k in side) for side in (before, after)
        )
        return key if not filler and parts else before + filler + after
    return key + filler


def _is_index_array(k: Any) -> bool:
    """An index array or mask (not an integer, a slice, `None`, `...` or a scalar bool)."""
    if isinstance(k, (list, tuple, range)):
        return True
    return isinstance(k, np.ndarray) and k.ndim > 0


class Points(NamedTuple):
    """A key with index arrays on two or more axes. numpy selects the points they give
    together (broadcast, with any integers), not every combination of their indices: one
    box per point is read, 1 long on the indexed axes and spanning each slice's range on
    the others."""

    #: Per point, the start of its box (points x axes).
    starts: np.ndarray
    #: The boxes' extent.
    count: tuple[int, ...]
    #: Per axis of a box, what picks the selection from it: 0 on indexed axes (dropped),
    #: a step on the others.
    post: tuple[Any, ...]
    #: The shape the index arrays broadcast to.
    points_shape: tuple[int, ...]
    #: Where those axes go in the result: in place of the indexed axes when these are next
    #: to each other in the key, else first (numpy's rule).
    at: int

    @property
    def indexed_axes(self) -> list[int]:
        """The array's axes the index arrays (and integers) take."""
        return [axis for axis, k in enumerate(self.post) if not isinstance(k, slice)]

    def selection_shape(self) -> tuple[int, ...]:
        """The shape of `full_array[key]`."""
        rest = self.kept_shape()
        return rest[: self.at] + self.points_shape + rest[self.at :]

    def kept_shape(self) -> tuple[int, ...]:
        """The shape of one box's selected elements (its slices' ranges, stepped)."""
        return tuple(len(range(n)[k]) for n, k in zip(self.count, self.post) if isinstance(k, slice))

    def bounds(self) -> tuple[list[int], list[int]]:
        """The start and extent of the one box that holds every point's box."""
        low = self.starts.min(axis=0)
        return low.tolist(), (self.starts.max(axis=0) + np.asarray(self.count) - low).tolist()

    def boxes_in(self, box: np.ndarray, start: Sequence[int]) -> np.ndarray:
        """Every point's box (points x `count`, as `read_boxes` of `starts` gives them), cut
        from `box`, read at `start` and holding them all (see `bounds`)."""
        index = []
        for axis, extent in enumerate(self.count):
            shape = [1] * (1 + len(self.count))
            if isinstance(self.post[axis], slice):
                # A slice's range, the same for every point.
                shape[1 + axis] = extent
                index.append(np.arange(extent).reshape(shape) + (int(self.starts[0, axis]) - start[axis]))
            else:
                shape[0] = self.starts.shape[0]
                index.append((self.starts[:, axis] - start[axis]).reshape(shape))
        return box[tuple(index)]

    def kept(self, boxes: np.ndarray) -> np.ndarray:
        """The selected elements of boxes read at some of `starts` (points x `count`):
        points x `kept_shape()`, never a view that keeps more than the selection alive."""
        picked = boxes[(slice(None),) + self.post]
        # A step leaves a view of all that was read: keep only the selection's elements.
        return picked.copy() if picked.size < boxes.size else picked

    def select(self, kept: np.ndarray) -> np.ndarray:
        """The selection, from the kept elements of every point's box (`kept`)."""
        picked = kept.reshape(self.points_shape + kept.shape[1:])
        ndim = len(self.points_shape)
        return np.moveaxis(picked, list(range(ndim)), list(range(self.at, self.at + ndim)))


def points(key: Any, shape: tuple[int, ...], chunks: tuple[int, ...]) -> Points | None:
    """The points `key` selects on an array of `shape` and `chunks` when it has index
    arrays on two or more axes (a mask over several axes counts as one per axis); `None`
    for any other key, for keys with `None` or a scalar bool, and for keys with a slice
    stepping over more than a chunk (a point's box would span the chunks between its
    elements), and for index arrays shaped as `np.ix_` makes them whose runs make at most
    `MAX_BOXES` boxes (every combination, read without merging runs): `plan` takes those."""
    given, key = key, _expanded(key, len(shape))
    if any(k is None or _is_bool_scalar(k) for k in key):
        return None
    indexed: list[tuple[int, np.ndarray]] = []  # (axis, indices)
    places: list[int] = []  # where in the key each indexed axis's entry is
    ranges: dict[int, range] = {}
    axis = 0
    for place, k in enumerate(key):
        if k is Ellipsis:
            continue  # an empty `...` kept by `_expanded`: the indexed axes are apart
        if isinstance(k, slice):
            ranges[axis] = range(*k.indices(shape[axis]))
            if len(ranges[axis]) > 1 and abs(ranges[axis].step) > chunks[axis]:
                return None
            axis += 1
            continue
        if _is_int(k):
            found = [np.intp(_int_index(k, shape[axis], axis))]
        elif _axes_used(k) > 1:
            found = list(_mask_indices(k, shape, axis))
        else:
            found = [_index_array(k, shape[axis], axis)]
        for idx in found:
            indexed.append((axis, idx))
            places.append(place)
            axis += 1
    if sum(np.ndim(idx) > 0 for _, idx in indexed) < 2:
        return None
    try:
        arrays = np.broadcast_arrays(*(idx for _, idx in indexed))
    except ValueError:
        shapes = " ".join(str(np.shape(idx)) for _, idx in indexed)
        raise IndexError(f"shape mismatch: indexing arrays could not be broadcast together with shapes {shapes}") from None
    if _outer(idx for _, idx in indexed) and _plan(given, shape, chunks).box_count() <= MAX_BOXES:
        return None
    # By column: each axis's indices are stored, and their bounds found, in one contiguous run.
    starts = np.empty((arrays[0].size, len(shape)), np.intp, order="F")
    count, post = [1] * len(shape), [0] * len(shape)
    for (axis, _), idx in zip(indexed, arrays):
        starts[:, axis] = idx.ravel()
    for axis, r in ranges.items():
        # One run from the first to the last selected element: a plain step (either sign)
        # walks exactly the selection, as in `_plan`.
        lo, hi = (min(r[0], r[-1]), max(r[0], r[-1]) + 1) if r else (0, 0)
        starts[:, axis] = lo
        count[axis] = hi - lo
        post[axis] = slice(None, None, None if r.step == 1 else r.step)
    first = min(places)
    adjacent = max(places) - first + 1 == len(set(places))
    at = sum(1 for place, k in enumerate(key) if isinstance(k, slice) and place < first) if adjacent else 0
    return Points(starts, tuple(count), tuple(post), arrays[0].shape, at)


def _outer(indices: Any) -> bool:
    """Whether index arrays select every combination of their indices by their shapes
    alone, as `np.ix_` makes them (each longer than 1 along one axis at most, a different
    one for each): then the product of the axes' runs (`plan`), unless merged, holds just
    the selection, in far fewer boxes than one per point (a 1000 x 1000 `np.ix_` made a
    million)."""
    long_axes = []
    for idx in indices:
        long = [axis for axis, n in enumerate(reversed(np.shape(idx))) if n > 1]
        if len(long) > 1:
            return False
        long_axes += long
    return len(long_axes) == len(set(long_axes))


def _int_index(k: Any, n: int, axis: int) -> int:
    """Integer `k` as an index from 0 to `n - 1` on `axis`."""
    i = operator.index(k)
    if not -n <= i < n:
        raise OutOfBoundsError(f"index {i} is out of bounds for axis {axis} with size {n}")
    return i % n


def _mask_indices(k: Any, shape: tuple[int, ...], axis: int) -> tuple[np.ndarray, ...]:
    """A mask over the axes of `shape` from `axis` on, as the index arrays of its true
    elements (one per axis it covers)."""
    mask = np.asarray(k)
    covered = tuple(shape[axis : axis + mask.ndim])
    if not _mask_fits(mask.shape, covered):
        raise IndexError(f"boolean index of shape {mask.shape} does not match axes of sizes {covered}")
    return np.nonzero(mask)


def _mask_fits(mask_shape: tuple[int, ...], covered: tuple[int, ...]) -> bool:
    """Whether a mask of `mask_shape` indexes axes of sizes `covered`: as in numpy, each of
    its axes is as long as the one it covers, or empty (selecting nothing)."""
    return len(mask_shape) == len(covered) and all(m in (n, 0) for m, n in zip(mask_shape, covered))


def _index_array(k: Any, n: int, axis: int) -> np.ndarray:
    """Index array or one-axis mask `k` as indices from 0 to `n - 1` (intp)."""
    # `a[[]]`, `a[range(0)]`: numpy takes an empty sequence as indices, not as floats.
    idx = np.asarray(k)
    if idx.size == 0 and not isinstance(k, np.ndarray):
        idx = idx.astype(np.intp)
    if idx.dtype == bool:
        if not _mask_fits(idx.shape, (n,)):
            raise IndexError(f"boolean index of shape {idx.shape} does not match axis {axis} of size {n}")
        return np.flatnonzero(idx)
    if idx.dtype.kind not in "iu":
        raise IndexError(f"unsupported index {k!r}: use integers, slices, ..., None, or integer/bool arrays")
    if idx.dtype.kind == "u" and idx.size and idx.max() >= n:
        raise OutOfBoundsError(f"index array reaches outside axis {axis} of size {n}")
    # In intp: `idx + n` must not overflow a small index dtype (uint8 and n = 300).
    idx = idx.astype(np.intp, copy=False)
    idx = np.where(idx < 0, idx + n, idx)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise OutOfBoundsError(f"index array reaches outside axis {axis} of size {n}")
    return idx


def _add_index_array(runs: list[Runs], post: list[Any], idx: np.ndarray, gap: int) -> None:
    """Appends the runs of index array `idx` and `idx` moved into them."""
    at = np.unique(idx)
    if at.size == 0:
        runs.append(((0, 0),))
        post.append(idx)
        return
    breaks = np.flatnonzero(np.diff(at) > gap) + 1
    starts = at[np.r_[0, breaks]]
    stops = at[np.r_[breaks - 1, at.size - 1]] + 1
    runs.append(tuple(zip(starts.tolist(), stops.tolist())))
    offsets = np.cumsum(stops - starts) - (stops - starts)
    which = np.searchsorted(starts, idx, side="right") - 1
    post.append((idx - starts[which] + offsets[which]).astype(np.intp))


def _is_bool_scalar(k: Any) -> bool:
    return isinstance(k, (bool, np.bool_)) or (isinstance(k, np.ndarray) and k.dtype == bool and k.ndim == 0)


def _axes_used(k: Any) -> int:
    """How many of the array's axes key `k` takes: none for `None`, `...` and a scalar
    bool, all of a boolean mask's, one for anything else."""
    if k is None or k is Ellipsis or _is_bool_scalar(k):
        return 0
    if isinstance(k, (np.ndarray, list, tuple)):
        arr = k if isinstance(k, np.ndarray) else np.asarray(k)
        if arr.dtype == bool and arr.ndim > 1:
            return arr.ndim
    return 1


def selection_shape(p: Plan) -> tuple[int, ...]:
    """Shape of `full[key]` for a direct plan: the box without its integer-indexed axes."""
    return tuple(c for c, k in zip(p.shape, p.post) if not isinstance(k, int))


def is_whole_box(p: Plan) -> bool:
    return all(isinstance(k, slice) and k == slice(None) for k in p.post)


class Strided(NamedTuple):
    """A plan with steps, taken apart: `steps[d]` keeps every so many elements of the boxes
    along axis `d` (1: all of them; a stepped axis has one run, which every box spans), and
    `post` picks the selection from the kept elements, laid out as the packed array is, as
    `Plan.post` does from the packed array. `Array` reads such boxes in slabs, keeping the
    stepped elements of each, so memory holds a slab and the kept elements, never the boxes
    (`a[::100, ::100]` of a 20000^2 array keeps 200^2 elements of the 1.6 GB it spans)."""

    boxes: list[Box]
    steps: tuple[int, ...]
    post: tuple[Any, ...]
    #: `post` selects every kept element (no index arrays): an assignment needs no read.
    covers_kept: bool
    #: The kept elements' shape.
    shape: tuple[int, ...]

    def kept_at(self, box: Box) -> tuple[slice, ...]:
        """Where `box`'s kept elements lie among all of them."""
        return tuple(
            at if step == 1 else slice(0, n) for at, step, n in zip(box.at, self.steps, self.shape)
        )


def strided(p: Plan) -> Strided | None:
    """`p` as a `Strided` plan, or `None` where it has no step."""
    steps: list[int] = []
    post: list[Any] = []
    covers = True
    for k in p.post:
        if k is None or k is Ellipsis or _is_bool_scalar(k):
            post.append(k)  # no axis of the boxes
            continue
        if isinstance(k, slice) and k.step is not None and abs(k.step) > 1:
            steps.append(abs(k.step))
            post.append(slice(None, None, -1 if k.step < 0 else None))
            continue
        steps.append(1)
        post.append(k)
        covers = covers and (isinstance(k, slice) or _is_int(k))
    if all(s == 1 for s in steps):
        return None
    shape = tuple((n - 1) // s + 1 for n, s in zip(p.shape, steps))
    return Strided(p.boxes(), tuple(steps), tuple(post), covers, shape)
