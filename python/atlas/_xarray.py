"""xarray round trips (xarray is an optional dependency, imported only here).

How an `xarray.Dataset` maps onto an Atlas dataset:

| xarray | Atlas |
| --- | --- |
| each coordinate and data variable | an array of the same name, dims, dtype |
| a dimension `<array>_dim_<axis>` | an unnamed axis (`""`), when read |
| a variable's attrs | that array's attributes (typed; `_FillValue` kept too) |
| the dataset's attrs | the dataset's attributes |
| which variables are coordinates | the dataset attribute `_xarray_coords` (a list) |
| `_FillValue` (attr or encoding), or the `fill_value` argument | the array's fill value |
| `encoding["_FillValue"]`, when read | an integer or float array's fill value other than 0 or NaN |

Missing values: unless told otherwise, float variables get a NaN fill, datetime64 ones NaT
and strings "" (masked cells read as the fill, and count as nulls in the statistics, as NaN
and NaT always do); integers and bools keep
Atlas's default of 0. Missing strings (None/NaN in an object array) are written as "" with a
warning.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import sys
import warnings
from typing import Any, Optional, Sequence

import numpy as np

from ._array import _names
from ._atlas import AtlasError, InvalidArgumentError
from ._dtypes import dtype_name

COORDS_KEY = "_xarray_coords"
_UNSET = object()
_NAT = np.iinfo(np.int64).min


def _xarray():
    try:
        import xarray
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("this needs xarray: pip install xarray") from e
    register_accessor()
    return xarray


def _dask_array_module():
    if "dask" not in sys.modules:
        try:
            import dask.array  # noqa: F401
        except ImportError:
            return None
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover
        return None
    return da


def _is_dask(data: Any) -> bool:
    da = _dask_array_module()
    return da is not None and isinstance(data, da.Array)


def _plain_fill(value: Any, np_dtype: np.dtype) -> Any:
    """A `_FillValue` (often a numpy scalar or 0-d array) as a value `define_array` takes."""
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if np_dtype.kind in "OUST":
        return value
    if isinstance(value, np.datetime64):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def _fill_for(name: str, np_dtype: np.dtype, declared: Any, fill_value: Any) -> Any:
    """The fill value of variable `name`: the `fill_value` argument (a scalar for float
    variables, and for integer ones when it is a whole number; or `{name: value}` where
    `None` means Atlas's default), else the declared `_FillValue`, else NaN / NaT / "" /
    Atlas's default (0, NaT for timestamps)."""
    override = _UNSET
    if isinstance(fill_value, dict):
        override = fill_value.get(name, _UNSET)
    elif fill_value is not None and (np_dtype.kind == "f" or (np_dtype.kind in "iu" and _is_whole(fill_value))):
        override = fill_value
    if override is not _UNSET:
        return None if override is None else _plain_fill(override, np_dtype)
    if declared is not None:
        return _plain_fill(declared, np_dtype)
    if np_dtype.kind == "f":
        return float("nan")
    if np_dtype.kind == "M":
        return _NAT
    return None


def _is_whole(value: Any) -> bool:
    """Whether a scalar fill value is a whole number (NaN and 1.5 are not: a NaN given for
    the float variables leaves the integer ones at their default)."""
    try:
        return float(value).is_integer()
    except (TypeError, ValueError, OverflowError):
        return False


def _missing_strings_to_empty(block: np.ndarray, name: str) -> np.ndarray:
    if block.dtype.kind != "O":
        return block
    flat = block.reshape(-1)
    missing = np.fromiter(
        (x is None or (isinstance(x, float) and math.isnan(x)) for x in flat), dtype=bool, count=flat.size
    )
    if not missing.any():
        return block
    warnings.warn(
        f"{name!r}: {int(missing.sum())} missing strings (None/NaN) written as '' (the string fill value)",
        stacklevel=_caller_level(),
    )
    out = flat.copy()
    out[missing] = ""
    return out.reshape(block.shape)


def _caller_level() -> int:
    """The `stacklevel` that points a warning at the first caller outside this package (the
    line that called into Atlas, through whichever entry point)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _blocks(data: Any) -> Any:
    """(start, numpy block) pairs: one for numpy data, one per chunk for dask data (a 0-d
    dask array's one block is its value computed: its `blocks[()]` is a graph key)."""
    if _is_dask(data) and data.ndim == 0:
        yield [], np.asarray(data.compute())
        return
    if not _is_dask(data):
        arr = np.asarray(data)
        yield [0] * arr.ndim, arr
        return
    offsets = [list(itertools.accumulate((0, *c[:-1]))) for c in data.chunks]
    for index in itertools.product(*(range(len(c)) for c in data.chunks)):
        start = [offsets[d][i] for d, i in enumerate(index)]
        yield start, np.asarray(data.blocks[index].compute())


def add_xarray_dataset(store: Any, ds: Any, name: str, chunks: Optional[dict] = None, fill_value: Any = None) -> None:
    xr = _xarray()
    if not isinstance(ds, xr.Dataset):
        hint = " (a DataArray: write da.to_dataset())" if isinstance(ds, xr.DataArray) else ""
        raise TypeError(f"add_xarray_dataset takes an xarray.Dataset, not {type(ds).__name__}{hint}")
    attribute_keys = [key for var in ds.variables.values() for key in var.attrs]
    for key in [*ds.variables, *ds.attrs, *attribute_keys]:
        if not isinstance(key, str):
            raise InvalidArgumentError(f"variable and attribute names must be strings, got {key!r}")
    if COORDS_KEY in ds.attrs:
        raise InvalidArgumentError(f"dataset attribute {COORDS_KEY!r} is Atlas's own (the list of coordinates)")
    _check_per_variable(ds, chunks, "chunks", "a chunk shape: one length per dimension")
    if isinstance(fill_value, dict):
        _check_per_variable(ds, fill_value, "fill_value", None)
    pending_before = store.has_pending_changes
    view = store.create_dataset(name)
    try:
        _add_variables(view, ds, chunks, fill_value)
    except BaseException:
        # A variable Atlas cannot store (float16, an attribute of None...) leaves no half
        # dataset behind for the next flush to commit: with nothing else pending, the whole
        # session goes (its blocks too), else the dataset is deleted.
        if pending_before:
            store.delete_dataset(name)
        else:
            store.discard()
        raise


def _ndim(value: Any) -> int:
    """numpy's number of dimensions of `value`; -1 for a ragged one numpy refuses."""
    try:
        return np.ndim(value)
    except ValueError:
        return -1

def _check_per_variable(ds: Any, given: Optional[dict], argument: str, shape_of: Optional[str]) -> None:
    """Refuses keys of `given` (the `argument` keyed by variable) that name no variable of
    `ds`, rather than leave them unused: `chunks={"time": 100}` keys a dimension as xarray's
    own `chunks=` does. With `shape_of`, each value must be that: a sequence of ints."""
    for key, value in (given or {}).items():
        if key not in ds.variables:
            kind = "a dimension, not a variable" if key in ds.dims else "no variable"
            raise InvalidArgumentError(
                f"{argument}={{{key!r}: ...}}: {key!r} is {kind} of the dataset; {argument} is keyed by variable "
                f"(variables: {', '.join(map(repr, ds.variables))})"
            )
        if shape_of is not None and (isinstance(value, (str, bytes)) or _ndim(value) != 1):
            dims = tuple(ds.variables[key].dims)
            raise InvalidArgumentError(f"{argument}[{key!r}] must be {shape_of} of {key!r} {dims}, not {value!r}")


def _add_variables(view: Any, ds: Any, chunks: Optional[dict], fill_value: Any) -> None:
    coord_names = list(ds.coords)
    for var_name in coord_names + list(ds.data_vars):
        if type(ds.indexes.get(var_name)).__name__ == "MultiIndex":
            raise InvalidArgumentError(
                f"variable {var_name!r} is a pandas MultiIndex, which Atlas does not store: "
                "call ds.reset_index() first"
            )
        try:
            _add_variable(view, var_name, ds.variables[var_name], chunks, fill_value)
        except AtlasError as e:  # whichever step failed, named by its variable
            raise type(e)(f"variable {var_name!r}: {e}") from e
    for key, value in ds.attrs.items():
        try:
            view.set_attribute(str(key), value)
        except AtlasError as e:  # the error names the attribute
            raise type(e)(f"dataset {e}") from e
    view.attrs[COORDS_KEY] = coord_names


def _add_variable(view: Any, var_name: str, var: Any, chunks: Optional[dict], fill_value: Any) -> None:
    np_dtype = _numpy_dtype(var.dtype)
    attrs = dict(var.attrs)
    declared = attrs.get("_FillValue", var.encoding.get("_FillValue"))
    if chunks is not None and var_name in chunks:
        chunk_shape = [int(n) for n in chunks[var_name]]
    elif _is_dask(var.data) and var.ndim:
        chunk_shape = [max(int(c[0]), 1) for c in var.data.chunks]
    else:
        chunk_shape = None
    array = view.define_array(
        var_name,
        dtype_name(np_dtype),
        [str(d) for d in var.dims],
        [int(n) for n in var.shape],
        chunk_shape=chunk_shape,
        fill_value=_fill_for(var_name, np_dtype, declared, fill_value),
    )
    for start, block in _blocks(var.data):
        if block.size == 0:
            continue
        if np_dtype.kind in "OUS":
            block = _missing_strings_to_empty(block, var_name)
        array.write(start, block)
    for key, value in attrs.items():
        array.attrs[str(key)] = value  # an error names the attribute, and the caller the variable


def _numpy_dtype(dtype: Any) -> np.dtype:
    """A variable's dtype as numpy's; one numpy has none for (a pandas extension dtype: a
    time zone's datetimes, say) is refused by name, as a dtype Atlas lacks is (the caller
    names the variable)."""
    try:
        return np.dtype(dtype)
    except TypeError:
        raise InvalidArgumentError(f"dtype {dtype} is not one Atlas stores") from None


def _variable(xr: Any, array: Any, dims: list, lazy: bool) -> Any:
    data: Any
    more_than_one_chunk = any(c < n for c, n in zip(array.chunks, array.shape))
    if lazy and more_than_one_chunk and _dask_array_module() is not None:
        da = _dask_array_module()
        data = da.from_array(array, chunks=tuple(array.chunks), lock=False, asarray=True, name=False)
    else:
        data = array.read()
    attrs = array.attrs.to_dict()
    return xr.Variable(dims, data, attrs=attrs, encoding=_fill_encoding(array.fill_value, attrs))


def _fill_encoding(fill: Any, attrs: dict) -> dict:
    """`{"_FillValue": fill}` for a number a writer chose as the fill of an integer or float
    array (not 0 or NaN, which are defaults or null anyway: a default 0 there would make
    netCDF readers mask real zeros), so that the cells holding it can be told from data and
    `to_netcdf` or `to_zarr` keep it; nothing when the attributes carry `_FillValue` already.
    Nothing for strings, bools (a `True` fill would mask every true) and timestamps, which
    xarray encodes against a reference date while keeping `_FillValue` raw."""
    numeric = isinstance(fill, (int, float, np.integer, np.floating)) and not isinstance(fill, (bool, np.bool_))
    if "_FillValue" in attrs or not numeric or fill == 0 or (isinstance(fill, float) and math.isnan(fill)):
        return {}
    return {"_FillValue": fill}


_DEFAULT_DIM = re.compile(r"dim_[0-9]+")


def _xarray_dims(arrays: dict[str, Any]) -> dict[str, list]:
    """The dimension names of each array as xarray takes them, by array name. xarray needs
    a name per axis: an unnamed one (`""`) is `<array>_dim_<axis>`, a dimension of its own
    (unless another axis is given that very name). So is a default name (`dim_0`, given to
    arrays defined without dims) that arrays use with different lengths: xarray refuses one
    dimension of two lengths, and such arrays never meant to share it."""
    dims = {n: [d or f"{n}_dim_{axis}" for axis, d in enumerate(a.dims)] for n, a in arrays.items()}
    lengths: dict[str, set] = {}
    for n, a in arrays.items():
        for d, length in zip(dims[n], a.shape):
            lengths.setdefault(d, set()).add(length)
    clashing = {d for d, seen in lengths.items() if len(seen) > 1 and _DEFAULT_DIM.fullmatch(d)}
    return {n: [f"{n}_{d}" if d in clashing else d for d in names] for n, names in dims.items()}


class _Contents:
    """What an Atlas dataset holds as xarray sees it, before any data is read: its view,
    attributes (without Atlas's own), arrays by name, each array's xarray dims, and which
    arrays are coordinates."""

    def __init__(self, store: Any, name: str):
        self.view = store.open_dataset(name)
        self.attrs = self.view.attributes()
        coord_list = self.attrs.pop(COORDS_KEY, None)
        self.arrays = {n: self.view[n] for n in self.view.list_arrays()}
        if not isinstance(coord_list, list):
            coord_list = [n for n, a in self.arrays.items() if tuple(a.dims) == (n,)]
        self.coord_names = [n for n in self.arrays if n in coord_list]
        self.data_names = [n for n in self.arrays if n not in coord_list]
        self.dims = _xarray_dims(self.arrays)

    def variables(self, xr: Any, names: list, lazy: bool) -> dict:
        return {n: _variable(xr, self.arrays[n], self.dims[n], lazy) for n in names}


def open_as_xarray_dataset(store: Any, name: str, lazy: bool = True) -> Any:
    xr = _xarray()
    found = _Contents(store, name)
    coords = found.variables(xr, found.coord_names, lazy)
    data_vars = found.variables(xr, found.data_names, lazy)
    return xr.Dataset(data_vars=data_vars, coords=coords, attrs=found.attrs)


def open_as_many_xarray_dataset(store: Any, names: Sequence[str], concat_dim: str = "dataset") -> Any:
    xr = _xarray()
    names = _names(names, "names")
    if not names:
        raise InvalidArgumentError("names is empty")
    # The first dataset's coordinates are read; its data only in the stack.
    first = _Contents(store, names[0])
    coords = first.variables(xr, first.coord_names, lazy=False)
    for name in names[1:]:
        _check_stacks_on(store.open_dataset(name), name, first, coords)
    data_vars = {}
    for var_name in first.data_names:
        array = first.arrays[var_name]
        stacked = store.read_array_across_stacked(var_name, names, [0] * array.ndim, list(array.shape))
        attrs = array.attrs.to_dict()
        encoding = _fill_encoding(array.fill_value, attrs)  # the first dataset's, which fills gaps
        data_vars[var_name] = xr.Variable([concat_dim, *first.dims[var_name]], stacked, attrs=attrs, encoding=encoding)
    coords[concat_dim] = xr.Variable([concat_dim], np.asarray(names, dtype=object))
    return xr.Dataset(data_vars=data_vars, coords=coords, attrs=first.attrs)


def _check_stacks_on(view: Any, name: str, first: _Contents, coords: dict) -> None:
    """Refuses dataset `name` for stacking on the `first` one (whose coordinates read as
    `coords`) unless it holds every variable with the same shape, dimension names and
    coordinate values: a stack takes the first's shapes and coordinates, which would cut or
    mislabel another's data. Names are compared as stored: the names xarray is given
    depend on the other arrays of each dataset (`_xarray_dims`)."""
    first_name = first.view.name
    for var_name, want in first.arrays.items():
        if var_name not in view:
            raise InvalidArgumentError(
                f"dataset {name} has no {var_name!r}, which {first_name} has: they do not stack"
            )
        array = view[var_name]
        shape, dims = tuple(array.shape), tuple(array.dims)
        if (shape, dims) != (tuple(want.shape), tuple(want.dims)):
            raise InvalidArgumentError(
                f"{var_name!r} has shape {shape} over {dims} in dataset {name}, {tuple(want.shape)} over "
                f"{tuple(want.dims)} in {first_name}: they do not stack"
            )
    for coord_name, coord in coords.items():
        values = view[coord_name].read()
        same = np.array_equal(values, coord.values, equal_nan=values.dtype.kind in "fcmM")
        if not same:
            raise InvalidArgumentError(
                f"coordinate {coord_name!r} of dataset {name} differs from {first_name}'s: they do not stack"
            )


_registered = False


def register_accessor() -> None:
    """`ds.atlas.write(store, name)` on every `xarray.Dataset`, as atlas-python 0.10 had.
    Registered when atlas is imported after xarray, or at the first xarray call."""
    global _registered
    if _registered or "xarray" not in sys.modules:
        return
    import xarray as xr

    _registered = True

    @xr.register_dataset_accessor("atlas")
    class AtlasAccessor:
        def __init__(self, ds: Any) -> None:
            self._ds = ds

        def write(self, store: Any, name: str, chunks: Optional[dict] = None, fill_value: Any = None) -> None:
            """Same as `store.add_xarray_dataset(ds, name, chunks, fill_value)`."""
            store.add_xarray_dataset(self._ds, name, chunks, fill_value)
