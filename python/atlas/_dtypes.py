"""Dtype names and the conversions of data on its way into Atlas."""

from __future__ import annotations

import datetime
import math
import re
import warnings
from typing import Any

import numpy as np

from ._atlas import DTypeMismatchError, InvalidArgumentError

#: Atlas's dtype names and the numpy dtype each reads as.
NUMPY_DTYPES = {
    "int8": np.dtype("int8"),
    "int16": np.dtype("int16"),
    "int32": np.dtype("int32"),
    "int64": np.dtype("int64"),
    "uint8": np.dtype("uint8"),
    "uint16": np.dtype("uint16"),
    "uint32": np.dtype("uint32"),
    "uint64": np.dtype("uint64"),
    "float32": np.dtype("float32"),
    "float64": np.dtype("float64"),
    "bool": np.dtype("bool"),
    "timestamp": np.dtype("datetime64[ns]"),
    "string": np.dtype("object"),
}

_NS = NUMPY_DTYPES["timestamp"]

#: How atlas-python 0.10 spelled a dtype in `array_meta`, where it differs from Atlas.
COMPAT_NAMES = {"timestamp": "timestamp_nanoseconds"}

_ALIASES = {
    "timestamp": "timestamp",
    "timestamp_ns": "timestamp",
    "timestamp_nanoseconds": "timestamp",
    "datetime64[ns]": "timestamp",
    "string": "string",
    "str": "string",
    "object": "string",
    "o": "string",
    "bool": "bool",
}


def dtype_name(dtype: Any) -> str:
    """Atlas's name for a dtype given as a name (Atlas's, atlas-python 0.10's or numpy's),
    a numpy dtype or a Python type."""
    if isinstance(dtype, str):
        # Lower case for Atlas's names only: numpy's "M8[ns]" (datetime) and "m8[ns]"
        # (timedelta, not supported) differ by case, so those go to numpy as given.
        key = dtype.strip().lower()
        if key in _ALIASES:
            return _ALIASES[key]
        if key in NUMPY_DTYPES:
            return key
    if dtype is str or dtype is bytes:
        return "string"
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        raise InvalidArgumentError(f"unsupported dtype {dtype!r}") from None
    return _from_numpy(np_dtype, dtype)


def _from_numpy(np_dtype: np.dtype, given: Any) -> str:
    kind = np_dtype.kind
    if kind == "b":
        return "bool"
    if kind in "iuf" and np_dtype.name in NUMPY_DTYPES:
        return np_dtype.name
    if kind == "M":
        return "timestamp"
    if kind in "OUST":
        return "string"
    raise InvalidArgumentError(
        f"unsupported dtype {given!r}: Atlas stores int8..int64, uint8..uint64, float32, float64, "
        "bool, datetime64[ns] and strings"
    )


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype arrays of Atlas dtype `name` read as."""
    return NUMPY_DTYPES[name]


def unmasked(value: Any, label: str) -> Any:
    """`value` without its mask if it is a numpy masked array with none set; one with masked
    elements is refused (Atlas keeps no mask: the values under it would be stored as data)."""
    if not isinstance(value, np.ma.MaskedArray):
        return value
    if np.ma.is_masked(value):
        raise InvalidArgumentError(
            f"masked values for array {label}: Atlas stores no mask, so the values under it would be stored as "
            "data (fill them first, e.g. value.filled(arr.fill_value), which counts as null in the statistics)"
        )
    return value.data


def for_write(data: Any, name: str, label: str, call: str = "write") -> Any:
    """`data` ready for a write to an array of dtype `name`, as strict as atlas-python 0.10:
    an ndarray must already have the array's dtype (byte order, and the unit of a datetime64,
    may differ); other values (lists, scalars) are converted as `for_assign` converts them."""
    data = unmasked(data, label)
    if name == "string":
        return data
    target = NUMPY_DTYPES[name]
    if not isinstance(data, np.ndarray):
        return for_assign(data, name, label)
    if data.dtype == target:
        return data
    if name == "timestamp" and data.dtype.newbyteorder("=") == np.int64:
        return data.astype(np.int64, copy=False)  # nanoseconds, in native byte order
    if name == "timestamp" and data.dtype.kind == "M":
        return _to_ns(data, label)
    if data.dtype.newbyteorder("=") == target:
        return data.astype(target)
    raise DTypeMismatchError(
        f"dtype mismatch on array {label}: it holds {target}, the data is {data.dtype} ({call}() takes the "
        f"array's dtype only: cast with data.astype({str(target)!r}), or assign with arr[...] = data, which casts "
        "as the README's \"Casts\" says)"
    )


def _to_ns(value: np.ndarray, label: str) -> np.ndarray:
    """A datetime64 array in nanoseconds: `_ns_of`, its refusals told for array `label`."""
    ns, lost = _ns_of(value)
    _refuse_lost(lost, label)
    return ns


# The instants a timestamp can be: int64 nanoseconds since the epoch.
_NS_RANGE = "what nanoseconds since 1970 hold (1677-09-21T00:12:43.145224193 to 2262-04-11T23:47:16.854775807)"


def _refuse_lost(lost: Any, label: str) -> None:
    """Refuses timestamps for array `label` of which `_ns_of` found something `lost`."""
    if lost == "range":
        raise InvalidArgumentError(
            f"timestamps for array {label} fall outside {_NS_RANGE}"
        )
    if lost:
        raise InvalidArgumentError(
            f"timestamps for array {label} have digits below a nanosecond ({lost}), which Atlas does not "
            "keep: round them first, e.g. value.astype('datetime64[ns]')"
        )


def checked_ns(value: Any) -> np.ndarray:
    """`value` (a datetime64 array of any unit, or anything `numpy.datetime64` takes) in
    nanoseconds, for the native module's attributes and fill values: `_ns_of`, its
    refusals told for the value."""
    if isinstance(value, (str, bytes)):
        try:
            natural, (ns, lost) = value, _ns_of_text(np.asarray(value))
        except ValueError as e:
            raise InvalidArgumentError(f"{value} is not an ISO 8601 instant ({e})") from None
    else:
        natural = value if isinstance(value, np.ndarray) else np.datetime64(value)
        ns, lost = _ns_of(natural)
    if lost:
        raise InvalidArgumentError(
            f"timestamp {natural} is outside {_NS_RANGE}"
            if lost == "range"
            else f"timestamp {natural} has digits below a nanosecond ({lost}), which Atlas does not keep"
        )
    return ns


# Nanoseconds in one of each datetime64 unit from weeks to nanoseconds.
_UNIT_NS = {"W": 604_800 * 10**9, "D": 86_400 * 10**9, "h": 3_600 * 10**9, "m": 60 * 10**9, "s": 10**9,
            "ms": 10**6, "us": 10**3, "ns": 1}


def _ns_of(value: Any) -> tuple[Any, Any]:
    """A datetime64 value or array of any unit in nanoseconds, and what numpy's conversion
    silently lost, if anything: `"range"` for an instant outside what int64 nanoseconds
    hold (numpy wraps it), or the unit of digits below a nanosecond (numpy drops them).

    Found by comparing ticks: an instant converts exactly when its nanoseconds divided by
    the nanoseconds of its unit give its ticks back. (numpy's own conversion back, from
    nanoseconds to days, misreads the first days of the range.)"""
    unit, count = np.datetime_data(value.dtype)
    if unit in ("Y", "M"):
        # To whole days first, which numpy wraps too for years past what days hold.
        days = value.astype("datetime64[D]")
        if not np.all((days.astype(value.dtype) == value) | np.isnat(value)):
            return days.astype("datetime64[ns]"), "range"
        value, unit, count = days, "D", 1
    ns = value.astype("datetime64[ns]")
    nat = np.isnat(value)
    if unit in _UNIT_NS:
        per_tick = _UNIT_NS[unit] * count
        ticks, ns_ticks = value.astype(np.int64), ns.astype(np.int64)  # in native byte order
        exact = (ns_ticks // per_tick == ticks) & (ns_ticks % per_tick == 0)
        return ns, None if np.all(exact | nat) else "range"
    # Below a nanosecond: the conversion divides, so only digits can be lost.
    exact = ns.astype(value.dtype) == value
    return ns, None if np.all(exact | nat) else unit


# Digits of a time's fraction in text (`.123456789123`), for those below a nanosecond.
_FRACTION = re.compile(r"[T ][0-9:]*[.,]([0-9]+)")


def _ns_of_text(array: np.ndarray) -> tuple[Any, Any]:
    """`_ns_of` for an array of ISO 8601 strings (or of objects numpy reads as instants).

    numpy reads text in the finest unit its digits need, for the whole array, and wraps
    instants that unit cannot hold: `2300-01-01T00:00:00.000000000` is read as 1715 in
    nanoseconds. So the text is read twice: in microseconds (which hold 290 000 years, and
    keep the digits down to them) and in nanoseconds; an instant converts exactly where
    the two agree to the microsecond. Digits below a nanosecond are found in the text."""
    with warnings.catch_warnings():
        # Aware `datetime`s and offsets in text are read as their UTC instant, as wanted.
        warnings.filterwarnings("ignore", "no explicit representation of timezones", UserWarning)
        us = np.asarray(array, dtype="datetime64[us]").astype(np.int64)
        ns = np.asarray(array, dtype="datetime64[ns]")
        finest = np.datetime_data(np.asarray(array, dtype="datetime64").dtype)[0]
    nat = us == np.iinfo(np.int64).min
    ns_ticks = ns.astype(np.int64)
    # Integer floor division: numpy's own ns-to-us cast misreads the first instants of the range.
    exact = (ns_ticks // 1000 == us) & (ns_ticks != np.iinfo(np.int64).min)
    if not np.all(exact | nat):
        return ns, "range"
    if finest in ("ps", "fs", "as"):
        for text in array.flat:
            match = isinstance(text, (str, bytes)) and _FRACTION.search(text if isinstance(text, str) else text.decode())
            if match and match.group(1)[9:].strip("0"):
                return ns, finest
    return ns, None


def timestamps(value: Any, label: str) -> np.ndarray:
    """`value` for a timestamp array as datetime64[ns]: datetime64 values of any unit,
    `datetime` and `date` objects and ISO 8601 strings (alone, in lists or in arrays) are
    read in their own unit first, so that instants nanoseconds cannot hold are refused
    rather than wrapped; integers are nanoseconds since 1970. Anything else (timedelta64,
    floats, bools) is refused."""
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    if array.dtype.kind == "O":
        array = _own_instants(array, label)
    if array.dtype.kind in "OUS":
        try:
            ns, lost = _ns_of_text(array)
        except (TypeError, ValueError) as e:
            raise DTypeMismatchError(f"values for timestamp array {label} are not dates or times: {e}") from None
        _refuse_lost(lost, label)
        return ns
    if array.dtype.kind == "M":
        # astype: in native byte order, the only one the extension takes.
        return array.astype(_NS, copy=False) if np.datetime_data(array.dtype) == ("ns", 1) else _to_ns(array, label)
    if array.dtype.kind in "iu":
        if array.dtype == np.uint64 and array.size and int(array.max()) > np.iinfo(np.int64).max:
            raise DTypeMismatchError(f"nanosecond counts for array {label} do not fit int64")
        return array.astype(np.int64, copy=False).view("datetime64[ns]")
    raise DTypeMismatchError(
        f"dtype mismatch on array {label}: it holds datetime64[ns], the data is {array.dtype} "
        "(give datetime64 values, datetime objects, ISO 8601 strings or nanoseconds since 1970)"
    )


def _own_instants(array: np.ndarray, label: str) -> np.ndarray:
    """`array` (of objects) with each value numpy would misread among others made an
    instant in nanoseconds: a pandas `Timestamp` or `NaT` (numpy reads a Timestamp as the
    `datetime` it also is, in microseconds, dropping its nanoseconds; an aware one's is its
    UTC instant, as for a `datetime`), a `datetime64` (numpy reads the array in one unit:
    each is taken in its own, refused where nanoseconds cannot hold it). A number or a
    duration among them is refused: it is no instant (nanoseconds since 1970 go as an
    integer array of their own)."""
    def plain(v: Any) -> bool:
        """What numpy reads as it is (a pandas Timestamp is a `datetime` too, but not read so)."""
        return v is None or (isinstance(v, (str, bytes, datetime.date)) and not hasattr(v, "to_datetime64"))

    if all(plain(v) for v in array.flat):
        return array
    own = np.empty(array.shape, dtype=object)
    for i, v in enumerate(array.flat):
        if hasattr(v, "to_datetime64"):
            v = v.to_datetime64()
        if isinstance(v, np.datetime64):
            ns, lost = _ns_of(np.asarray(v))
            _refuse_lost(lost, label)
            v = ns[()]
        elif not plain(v):
            raise DTypeMismatchError(
                f"values for timestamp array {label}: {v!r} is no instant (give dates, times or "
                "datetime64 values; nanoseconds since 1970 as an integer array of their own)"
            )
        own.flat[i] = v
    return own


def _check_range(low: int, high: int, target: np.dtype, label: str) -> None:
    info = np.iinfo(target)
    if low < info.min or high > info.max:
        raise DTypeMismatchError(
            f"values out of range for array {label}: it holds {target} ({info.min}..{info.max}), "
            f"the data spans {low}..{high}"
        )


#: Floats below this magnitude become float32 without overflowing (its largest is 3.4028e38).
_FLOAT32_SURE = 3.4e38
#: The values of each integer dtype, for the scalar fast path of `for_assign`.
_INT_BOUNDS = {
    name: (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)) for name, dtype in NUMPY_DTYPES.items() if dtype.kind in "iu"
}


def _whole_floats(value: np.ndarray, target: np.dtype, label: str) -> np.ndarray:
    """Floats for an integer array as `target`, when every one is a whole number that fits:
    no value changes; a fraction, NaN or infinity is refused, as numpy would cut it."""
    if not np.all(np.isfinite(value)) or np.any(np.trunc(value) != value):
        raise DTypeMismatchError(
            f"values with a fraction (or NaN, inf) for array {label}: it holds {target}; "
            "round them first (np.round) if that is meant"
        )
    _check_range(int(value.min()), int(value.max()), target, label)
    return value.astype(target)


def _is_int(value: Any) -> bool:
    """A Python int or numpy integer, alone or as a 0-d array; not a bool."""
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in "iu"
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_float(value: Any) -> bool:
    """A Python float or numpy floating-point scalar, alone or as a 0-d array."""
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind == "f"
    return isinstance(value, (float, np.floating))


def _python_ints(value: Any, converted: np.ndarray, target: np.dtype, label: str) -> np.ndarray:
    """Python numbers numpy could not put in one integer dtype exactly (ints beyond int64:
    object; uint64's upper half beside small ints, or any int beside a float: float64,
    rounded) as `target`, each taken as it was given, when every one is an int or a whole
    float and fits; anything else comes back as `converted`, for the usual refusal."""
    # Compared as a Python float: 2**53 cast to float16 would overflow (and warn).
    if converted.dtype.kind == "f" and converted.size and not float(np.abs(converted).max()) >= 2**53:
        return converted  # float64 holds every one exactly: `_whole_floats` checks them, fast
    exact = np.asarray(value, dtype=object)
    whole_float = lambda v: _is_float(v) and math.isfinite(v) and float(v).is_integer()  # noqa: E731
    if exact.size == 0 or not all(_is_int(v) or whole_float(v) for v in exact.flat):
        return converted
    ints = np.frompyfunc(int, 1, 1)(exact) if exact.ndim else np.asarray(int(exact[()]), dtype=object)
    _check_range(int(ints.min()), int(ints.max()), target, label)
    return ints.astype(target)


def _python_ints_as_floats(value: Any, converted: np.ndarray, target: np.dtype, label: str) -> np.ndarray:
    """Python ints beyond 64 bits (numpy: object), alone or beside floats, as floats of
    `target`, rounded, as numpy casts them; one past the float's range is refused. Anything
    else (bools among them) comes back as `converted`, for the usual refusal."""
    exact = np.asarray(value, dtype=object)
    if exact.size == 0 or not all(_is_int(v) or _is_float(v) for v in exact.flat):
        return converted
    was_finite = np.array([_is_int(v) or bool(np.isfinite(v)) for v in exact.flat])
    try:
        with np.errstate(over="ignore"):
            cast = exact.astype(target)
    except OverflowError:  # an int past float64 itself
        cast = None
    if cast is None or np.any(np.isinf(cast.ravel()) & was_finite):
        raise DTypeMismatchError(
            f"values out of range for array {label}: it holds {target}, whose largest finite value is "
            f"{np.finfo(target).max:g}"
        )
    return cast


def for_assign(value: Any, name: str, label: str) -> np.ndarray:
    """`value` for `arr[...] = value`, one rule for arrays, lists and scalars: a cast within
    the float kind or from integers to floats is made as numpy makes it, rounding to the
    array's precision, unless a finite value would become infinite; others where no value
    changes: between integer types when every value fits, floats to integers when every one
    is whole and fits (`np.zeros(n)` into an int array), integers and floats to bool when
    every one is 0 or 1. Others (fractions, NaN, ints out of range, other kinds to bool) are
    refused where numpy would cast silently. An empty value of any dtype is taken, as numpy takes
    `a[2:2] = []`; a masked array with masked elements is refused (`unmasked`)."""
    target = NUMPY_DTYPES[name]
    # The common scalar (`a[i, j] = 1.5`), cast as the rule below casts it, without the
    # cost of its checks (two thirds of a small assignment): a float that no cast can take
    # to infinity, an int that fits.
    if type(value) is float and target.kind == "f" and (target.itemsize == 8 or abs(value) < _FLOAT32_SURE):
        return np.array(value, target)
    if type(value) is int and name in _INT_BOUNDS and _INT_BOUNDS[name][0] <= value <= _INT_BOUNDS[name][1]:
        return np.array(value, target)
    value = unmasked(value, label)
    if name == "string":
        return np.asarray(value, dtype=object)
    if isinstance(value, np.ndarray) and type(value) is not np.ndarray:
        value = np.asarray(value)  # a subclass (np.matrix keeps 2 dimensions through reshape)
    if isinstance(value, np.ndarray) and value.dtype == object and name != "timestamp":
        value = value.tolist()  # Python objects (a pandas object column): as a list of them
    if not isinstance(value, np.ndarray):
        converted = np.asarray(value)
        if converted.dtype.kind in "Of" and target.kind in "iu":
            converted = _python_ints(value, converted, target, label)
        elif converted.dtype.kind == "O" and target.kind == "f":
            converted = _python_ints_as_floats(value, converted, target, label)
        value = converted
    if value.size == 0:
        return np.empty(value.shape, target)
    if name == "timestamp":
        return timestamps(value, label)
    if value.dtype == target:
        return value
    if value.dtype.kind in "iu" and target.kind in "iu":
        # As Python ints: numpy 1.x compares uint64 with int64 through float64.
        _check_range(int(value.min()), int(value.max()), target, label)
        return value.astype(target)
    if value.dtype.kind == "f" and target.kind in "iu":
        return _whole_floats(value, target, label)
    if value.dtype.kind in "iuf" and target.kind == "b":
        if not np.all((value == 0) | (value == 1)):  # NaN is neither
            raise DTypeMismatchError(
                f"values other than 0 and 1 for array {label}: it holds bool (give bools, or 0 and 1)"
            )
        return value.astype(bool)
    if np.can_cast(value.dtype, target, casting="same_kind"):
        with np.errstate(over="ignore"):
            cast = value.astype(target)
        overflow = target.kind == "f" and value.dtype.kind == "f" and np.isinf(cast).any()
        if overflow and np.any(np.isinf(cast) & np.isfinite(value)):
            raise DTypeMismatchError(
                f"values out of range for array {label}: it holds {target}, whose largest finite value is "
                f"{np.finfo(target).max:g}"
            )
        return cast
    found = next((v for v in value.flat if v is None or _is_pandas_na(v)), _NONE) if value.dtype == object else _NONE
    if found is not _NONE:
        takes = "NaN for a missing value" if target.kind == "f" else "no missing value: give the fill value"
        given = "None" if found is None else "pandas.NA"
        raise DTypeMismatchError(f"{given} for array {label}: it holds {target}, which takes {takes}")
    given = str(value.dtype)
    if value.dtype == object:  # which element numpy could not take as a number
        odd = next((v for v in value.flat if not isinstance(v, (int, float, np.number, np.bool_))), None)
        given += f" (holding {type(odd).__name__} {odd!r:.40})" if odd is not None else ""
    raise DTypeMismatchError(f"dtype mismatch on array {label}: it holds {target}, the data is {given}")


#: No element found (None is one).
_NONE = object()


def _is_pandas_na(value: Any) -> bool:
    """Whether `value` is `pandas.NA` (known by its type's name: pandas need not be there)."""
    return type(value).__name__ == "NAType"


def is_missing_text(value: Any) -> bool:
    """Whether `value` is a missing entry of pandas text: NaN (pandas 3's `str` dtype) or
    `pandas.NA` (its `string` dtype), which a string array stores as its null, the empty
    string, as it stores None."""
    return (isinstance(value, float) and value != value) or _is_pandas_na(value)
