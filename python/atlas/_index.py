"""numpy-style keys (`arr[2:10, ::2, 5]`) turned into the box Atlas reads or writes.

A key becomes the smallest box holding every selected element (`start`, `count`) and the
key to apply to that box (`post`): the same key with each axis shifted to the box's origin,
so `box[post]` equals `full_array[key]`. Only the box is read.
"""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

import numpy as np

from ._atlas import OutOfBoundsError


class Plan(NamedTuple):
    start: list[int]
    count: list[int]
    post: tuple[Any, ...]
    #: Only integers and whole unit-step slices: the box is exactly the selection, so a
    #: write needs no read first.
    direct: bool


def _is_int(k: Any) -> bool:
    if isinstance(k, (bool, np.bool_)):
        return False
    try:
        operator.index(k)
    except TypeError:
        return False
    return not isinstance(k, np.ndarray) or k.ndim == 0


def plan(key: Any, shape: tuple[int, ...]) -> Plan:
    if not isinstance(key, tuple):
        key = (key,)
    ndim = len(shape)
    ellipses = sum(1 for k in key if k is Ellipsis)
    if ellipses > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = sum(_axes_used(k) for k in key)
    if used > ndim:
        raise IndexError(f"too many indices: the array has {ndim} dimensions, {used} were indexed")
    filler = (slice(None),) * (ndim - used)
    if ellipses:
        at = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:at] + filler + key[at + 1 :]
    else:
        key = key + filler

    start: list[int] = []
    count: list[int] = []
    post: list[Any] = []
    direct = True
    axis = 0
    for k in key:
        if k is None or _is_bool_scalar(k):
            # No axis of the array: numpy adds one of length 1 (None, True) or 0 (False),
            # and does the same on the box.
            post.append(k)
            direct = False
            continue
        n = shape[axis]
        if _is_int(k):
            i = operator.index(k)
            if i < 0:
                i += n
            if not 0 <= i < n:
                raise OutOfBoundsError(f"index {operator.index(k)} is out of bounds for axis {axis} with size {n}")
            start.append(i)
            count.append(1)
            post.append(0)
        elif isinstance(k, slice):
            r = range(*k.indices(n))
            if len(r) == 0:
                start.append(0)
                count.append(0)
                post.append(slice(None))
            else:
                lo, hi = min(r[0], r[-1]), max(r[0], r[-1]) + 1
                start.append(lo)
                count.append(hi - lo)
                if r.step == 1:
                    post.append(slice(None))
                else:
                    # The box ends on the first and last selected elements, so a plain
                    # step (either sign) walks exactly the selection.
                    post.append(slice(None, None, r.step))
                    direct = False
        elif _axes_used(k) > 1:
            # A mask over several axes: the box from its first to its last true element
            # on each, and the mask cut to that box.
            mask = np.asarray(k)
            covered = shape[axis : axis + mask.ndim]
            if mask.shape != covered:
                raise IndexError(f"boolean index of shape {mask.shape} does not match axes of sizes {covered}")
            true_at = np.nonzero(mask)
            if true_at[0].size == 0:
                start.extend([0] * mask.ndim)
                count.extend([0] * mask.ndim)
                post.append(np.zeros((0,) * mask.ndim, dtype=bool))
            else:
                box = tuple(slice(int(at.min()), int(at.max()) + 1) for at in true_at)
                start.extend(b.start for b in box)
                count.extend(b.stop - b.start for b in box)
                post.append(mask[box])
            direct = False
            axis += mask.ndim
            continue
        else:
            # `a[[]]`: numpy reads no element (an empty list is not taken as floats).
            idx = np.asarray(k, dtype=np.intp) if isinstance(k, list) and not k else np.asarray(k)
            if idx.dtype == bool:
                if idx.ndim != 1 or idx.shape[0] != n:
                    raise IndexError(f"boolean index of shape {idx.shape} does not match axis {axis} of size {n}")
                idx = np.flatnonzero(idx)
            elif idx.dtype.kind not in "iu":
                raise IndexError(f"unsupported index {k!r}: use integers, slices, ..., None, or integer/bool arrays")
            if idx.dtype.kind == "u" and idx.size and idx.max() >= n:
                raise OutOfBoundsError(f"index array reaches outside axis {axis} of size {n}")
            # In intp: `idx + n` must not overflow a small index dtype (uint8 and n = 300).
            idx = idx.astype(np.intp, copy=False)
            idx = np.where(idx < 0, idx + n, idx)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise OutOfBoundsError(f"index array reaches outside axis {axis} of size {n}")
            if idx.size == 0:
                start.append(0)
                count.append(0)
                post.append(idx.astype(np.intp))
            else:
                lo = int(idx.min())
                start.append(lo)
                count.append(int(idx.max()) + 1 - lo)
                post.append((idx - lo).astype(np.intp))
            direct = False
        axis += 1
    return Plan(start, count, tuple(post), direct)


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
    return tuple(c for c, k in zip(p.count, p.post) if not isinstance(k, int))


def is_whole_box(p: Plan) -> bool:
    return all(isinstance(k, slice) and k == slice(None) for k in p.post)
