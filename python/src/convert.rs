//! Conversions between Python values and Atlas's settings and values: codec, shuffle and
//! metadata names, dtypes, fill values, attribute values and statistics.

use atlas::{
    ArrayStats, AttrValue, Attributes, BlockStats, Codec, DType, MetaCompression, MetaFormat, Scalar, Shuffle,
};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::errors::{Kind, err};

/// `"zstd"` (level 3), `"zstd:N"`, `"lz4"`, `"none"` (or `"uncompressed"`), any case.
pub fn parse_codec(name: &str) -> PyResult<Codec> {
    let lower = name.trim().to_ascii_lowercase();
    let (base, level) = match lower.split_once([':', '-']) {
        Some((base, level)) => (base, Some(level)),
        None => (lower.as_str(), None),
    };
    match (base, level) {
        ("zstd" | "zst", None) => Ok(Codec::Zstd { level: Codec::DEFAULT_ZSTD_LEVEL }),
        ("zstd" | "zst", Some(level)) => match level.parse::<i32>() {
            Ok(level) => Ok(Codec::Zstd { level }),
            Err(_) => err(Kind::InvalidArgument, format!("invalid zstd level in codec {name:?}")),
        },
        ("lz4", None) => Ok(Codec::Lz4),
        ("none" | "uncompressed", None) => Ok(Codec::None),
        _ => err(
            Kind::InvalidArgument,
            format!("unknown codec {name:?} (expected 'zstd', 'zstd:<level>', 'lz4' or 'none')"),
        ),
    }
}

/// `"auto"`, `"on"`, `"off"`, `"bytedelta"`, `"delta"`.
pub fn parse_shuffle(name: &str) -> PyResult<Shuffle> {
    match name.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(Shuffle::Auto),
        "on" | "true" | "shuffle" => Ok(Shuffle::On),
        "off" | "false" | "none" => Ok(Shuffle::Off),
        "bytedelta" => Ok(Shuffle::ByteDelta),
        "delta" => Ok(Shuffle::Delta),
        _ => err(
            Kind::InvalidArgument,
            format!("unknown shuffle {name:?} (expected 'auto', 'on', 'off', 'bytedelta' or 'delta')"),
        ),
    }
}

/// `"json"` or `"msgpack"` (`"mp"`).
pub fn parse_meta_format(name: &str) -> PyResult<MetaFormat> {
    match name.trim().to_ascii_lowercase().as_str() {
        "json" => Ok(MetaFormat::Json),
        "msgpack" | "mp" => Ok(MetaFormat::MsgPack),
        _ => err(Kind::InvalidArgument, format!("unknown meta_format {name:?} (expected 'json' or 'msgpack')")),
    }
}

/// `"none"` (`"uncompressed"`), `"zstd"` (`"zst"`) or `"lz4"`.
pub fn parse_meta_compression(name: &str) -> PyResult<MetaCompression> {
    match name.trim().to_ascii_lowercase().as_str() {
        "none" | "uncompressed" => Ok(MetaCompression::None),
        "zstd" | "zst" => Ok(MetaCompression::Zstd),
        "lz4" => Ok(MetaCompression::Lz4),
        _ => {
            err(Kind::InvalidArgument, format!("unknown meta_compression {name:?} (expected 'none', 'zstd' or 'lz4')"))
        }
    }
}

/// A dtype from its Atlas name (`"float32"`, `"timestamp"`, `"string"`...), into which the
/// Python layer turns every spelling it takes (`_dtypes.dtype_name`).
pub fn parse_dtype(name: &str) -> PyResult<DType> {
    DType::from_name(name).map_or_else(|| err(Kind::InvalidArgument, format!("unsupported dtype {name:?}")), Ok)
}

/// The dtype's numpy spelling: what arrays of it read as.
pub fn numpy_dtype(dtype: DType) -> &'static str {
    match dtype {
        DType::Timestamp => "datetime64[ns]",
        DType::String => "object",
        other => other.name(),
    }
}

fn numpy<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyModule>> {
    py.import("numpy")
}

/// Nanoseconds since the epoch of a `numpy.datetime64` (`NaT` is `i64::MIN`, as numpy has it).
fn datetime64_ns(value: &Bound<'_, PyAny>) -> PyResult<i64> {
    checked_ns(value)?.call_method1("astype", ("int64",))?.call_method0("item")?.extract()
}

/// `value` (a datetime64 array of any unit, or anything `numpy.datetime64` takes) in
/// nanoseconds; instants numpy would wrap or cut refused (`atlas._dtypes.checked_ns`, the
/// check the Python layer makes of arrays).
fn checked_ns<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    value.py().import("atlas._dtypes")?.getattr("checked_ns")?.call1((value,))
}

fn is_instance_of_numpy(value: &Bound<'_, PyAny>, class: &str) -> PyResult<bool> {
    let np = numpy(value.py())?;
    value.is_instance(&np.getattr(class)?)
}

/// Whether `value` is a Python or numpy number or bool.
fn is_number(value: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(value.is_instance_of::<PyInt>()
        || value.is_instance_of::<PyFloat>()
        || is_instance_of_numpy(value, "number")?
        || is_instance_of_numpy(value, "bool_")?)
}

/// Whether `value` is one `numpy.datetime64`, alone or as a 0-d array.
fn is_datetime64(value: &Bound<'_, PyAny>) -> PyResult<bool> {
    if is_instance_of_numpy(value, "ndarray")? {
        return Ok(value.getattr("ndim")?.extract::<usize>()? == 0
            && value.getattr("dtype")?.getattr("kind")?.extract::<String>()? == "M");
    }
    is_instance_of_numpy(value, "datetime64")
}

/// A fill value given by a caller for an array of `dtype`. `None` is 0 (the empty string
/// for strings). A string array takes only the empty string (or `None`), and other arrays
/// take no string. A `datetime64` is refused for any but a timestamp array (it would be its
/// nanoseconds), and an array of other than one element for any.
pub fn scalar_from_py(value: Option<&Bound<'_, PyAny>>, dtype: DType) -> PyResult<Scalar> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(Scalar::Int(0));
    };
    let text = value.cast::<PyString>().ok();
    if dtype == DType::String || text.is_some() {
        if dtype == DType::String && text.is_some_and(|s| s.to_cow().is_ok_and(|s| s.is_empty())) {
            return Ok(Scalar::Int(0));
        }
        let given = shortened(value.repr()?.as_any());
        let takes = if dtype == DType::String {
            "a string array's fill value is the empty string"
        } else {
            "it takes a number (float('nan'), not 'nan')"
        };
        return err(Kind::InvalidArgument, format!("fill value {given} is refused for {dtype} arrays: {takes}"));
    }
    if let Ok(b) = value.cast::<PyBool>() {
        return Ok(Scalar::from(b.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        // A float array takes it rounded, as numpy casts it (one past float64 is refused).
        if matches!(dtype, DType::Float32 | DType::Float64) {
            return match value.extract::<f64>() {
                Ok(v) => Ok(Scalar::Float(v)),
                Err(_) => {
                    err(Kind::InvalidArgument, format!("fill value {} is past float64's range", shortened(value)))
                }
            };
        }
        if let Ok(v) = value.extract::<i64>() {
            return Ok(Scalar::Int(v));
        }
        if let Ok(v) = value.extract::<u64>() {
            return Ok(Scalar::UInt(v));
        }
        return err(Kind::InvalidArgument, format!("fill value {} does not fit in 64 bits", shortened(value)));
    }
    if let Ok(f) = value.cast::<PyFloat>() {
        return Ok(Scalar::Float(f.value()));
    }
    if is_instance_of_numpy(value, "datetime64")? {
        if dtype != DType::Timestamp {
            return err(
                Kind::DTypeMismatch,
                format!("fill value {value} is an instant; a {dtype} array takes a number"),
            );
        }
        return Ok(Scalar::Int(datetime64_ns(value)?));
    }
    if is_instance_of_numpy(value, "ndarray")? {
        if value.getattr("size")?.extract::<usize>()? != 1 {
            let shape = value.getattr("shape")?;
            return err(Kind::InvalidArgument, format!("a fill value is one value, not an array of shape {shape}"));
        }
        // Its element as a numpy scalar, taken as one: a datetime64 keeps its unit and is
        // refused as the scalar is.
        let empty = PyTuple::empty(value.py());
        let element = value.call_method1("reshape", (&empty,))?.get_item(&empty)?;
        return scalar_from_py(Some(&element), dtype);
    }
    if is_instance_of_numpy(value, "generic")? {
        let item = value.call_method0("item")?;
        if !is_instance_of_numpy(&item, "generic")? {
            return scalar_from_py(Some(&item), dtype);
        }
        if let Some(v) = long_double(&item)? {
            return Ok(Scalar::Float(v));
        }
    }
    err(Kind::DTypeMismatch, format!("unsupported fill value {value:?}"))
}

/// A numpy scalar that `item()` and `tolist()` give back as a numpy scalar (`longdouble`,
/// `clongdouble`): a real one as the float64 numpy casts it to (a finite one past float64's
/// range refused, as other floats are), `None` for the others.
fn long_double(value: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
    if !is_instance_of_numpy(value, "floating")? {
        return Ok(None);
    }
    let v = value.extract::<f64>()?;
    if v.is_infinite() && numpy(value.py())?.call_method1("isfinite", (value,))?.is_truthy()? {
        return err(Kind::DTypeMismatch, format!("{value} is past float64's range"));
    }
    Ok(Some(v))
}

/// `value` as `str()` gives it (a `repr()` for a string), cut to its first 32 characters when
/// longer and followed by its length: an error message quotes a refused value without
/// repeating a 400-digit int whole.
fn shortened(value: &Bound<'_, PyAny>) -> String {
    const SHOWN: usize = 32;
    let text = value.to_string();
    let chars = text.chars().count();
    if chars <= SHOWN {
        return text;
    }
    let head: String = text.chars().take(SHOWN).collect();
    format!("{head}... ({chars} characters)")
}

/// A value of an array's dtype as Python has it (`bool`, `int`, `float`,
/// `numpy.datetime64`), converted to the dtype as reads convert a fill value: `1.0` for a
/// bool array is `True`, `9.25e18` for a uint64 array the integer 9250000000000000000.
#[allow(clippy::cast_precision_loss)] // a float array's integral fill value, shown as a float
pub fn scalar_to_py<'py>(py: Python<'py>, value: Scalar, dtype: DType) -> PyResult<Bound<'py, PyAny>> {
    let float_dtype = matches!(dtype, DType::Float32 | DType::Float64);
    // Err: a float as it is, for a float dtype or where it fits no integer (a damaged store).
    let integral = match value {
        Scalar::Int(v) => Ok(i128::from(v)),
        Scalar::UInt(v) => Ok(i128::from(v)),
        Scalar::Float(v) if float_dtype => Err(v),
        #[allow(clippy::cast_possible_truncation)] // to_le_bytes checked it integral and in range
        Scalar::Float(v) => value.to_le_bytes(dtype).map(|_| v as i128).ok_or(v),
    };
    Ok(match (dtype, integral) {
        (DType::String, _) => PyString::new(py, "").into_any(),
        (_, Err(v)) => PyFloat::new(py, v).into_any(),
        (_, Ok(v)) if float_dtype => PyFloat::new(py, v as f64).into_any(),
        (DType::Bool, Ok(v)) => PyBool::new(py, v != 0).to_owned().into_any(),
        (DType::Timestamp, Ok(v)) => match i64::try_from(v) {
            Ok(ns) => timestamp_to_py(py, ns)?,
            Err(_) => v.into_pyobject(py)?.into_any(),
        },
        (_, Ok(v)) => v.into_pyobject(py)?.into_any(),
    })
}

fn timestamp_to_py(py: Python<'_>, ns: i64) -> PyResult<Bound<'_, PyAny>> {
    numpy(py)?.getattr("datetime64")?.call1((ns, "ns"))
}

/// A Python value as an attribute. `dtype` narrows or converts it as atlas-python 0.10's
/// `set_attribute(key, value, dtype)` did; on disk integers are i64 and floats f64.
pub fn attr_from_py(value: &Bound<'_, PyAny>, dtype: Option<&str>) -> PyResult<AttrValue> {
    if let Some(dtype) = dtype {
        return attr_with_dtype(value, dtype);
    }
    attr_inferred(value, &mut Vec::new())
}

fn attr_with_dtype(value: &Bound<'_, PyAny>, dtype: &str) -> PyResult<AttrValue> {
    let lower = dtype.trim().to_ascii_lowercase();
    let int_range: Option<(i128, i128)> = match lower.as_str() {
        "int8" | "i1" => Some((i8::MIN.into(), i8::MAX.into())),
        "int16" | "i2" => Some((i16::MIN.into(), i16::MAX.into())),
        "int32" | "i4" => Some((i32::MIN.into(), i32::MAX.into())),
        "int64" | "i8" | "int" => Some((i64::MIN.into(), i64::MAX.into())),
        "uint8" | "u1" => Some((0, u8::MAX.into())),
        "uint16" | "u2" => Some((0, u16::MAX.into())),
        "uint32" | "u4" => Some((0, u32::MAX.into())),
        "uint64" | "u8" => Some((0, i64::MAX.into())),
        _ => None,
    };
    if let Some((lo, hi)) = int_range {
        let v: i128 = match value.extract::<i128>() {
            Ok(v) => v,
            Err(_) if value.is_instance_of::<PyInt>() => return out_of_range(value, dtype),
            Err(_) => {
                return err(Kind::DTypeMismatch, format!("dtype {dtype} needs an int, got {value:?}"));
            }
        };
        if (lo..=hi).contains(&v) {
            return Ok(AttrValue::Int(v as i64));
        }
        if matches!(lower.as_str(), "uint64" | "u8") && v > hi && v <= u64::MAX.into() {
            // In range for the dtype named; attributes keep integers as int64.
            let detail = format!("value {value} is past what attributes hold: integers are int64 (up to 2**63-1)");
            return err(Kind::InvalidArgument, detail);
        }
        return out_of_range(value, dtype);
    }
    let float = || match value.extract::<f64>() {
        Ok(v) => Ok(v),
        // An int past the largest float is a number out of range, not the wrong type.
        Err(_) if value.is_instance_of::<PyInt>() => out_of_range(value, dtype),
        Err(_) => err(Kind::DTypeMismatch, format!("dtype {dtype} needs a number, got {value:?}")),
    };
    match lower.as_str() {
        "float32" | "f4" => {
            let wide = float()?;
            #[allow(clippy::cast_possible_truncation)] // narrowing is the intent; overflow is refused
            let narrow = wide as f32;
            if wide.is_finite() && !narrow.is_finite() {
                return out_of_range(value, dtype);
            }
            Ok(AttrValue::Float(f64::from(narrow)))
        }
        "float64" | "f8" | "float" => Ok(AttrValue::Float(float()?)),
        // A string is refused rather than judged by truthiness ("false" would be True).
        "bool" if value.is_instance_of::<PyString>() => {
            err(Kind::InvalidArgument, format!("dtype bool takes True, False, 0 or 1, not the string {value}"))
        }
        // Ints 0 and 1 only, as int dtypes refuse what they cannot hold (2 is not True).
        "bool" => match (value.extract::<bool>(), value.extract::<i64>()) {
            (Ok(b), _) => Ok(AttrValue::Bool(b)),
            (_, Ok(i @ (0 | 1))) => Ok(AttrValue::Bool(i == 1)),
            (_, Ok(_)) => out_of_range(value, dtype),
            _ if value.is_instance_of::<PyInt>() => out_of_range(value, dtype),
            _ => err(Kind::DTypeMismatch, format!("dtype bool takes True, False, 0 or 1, got {value:?}")),
        },
        // Bytes as the UTF-8 text they hold, as without a dtype; not their repr.
        "string" | "str" if value.is_instance_of::<PyBytes>() => attr_inferred(value, &mut Vec::new()),
        // A number (or bool) is converted ("12"); not the repr of anything else (`None`,
        // `[1, 2]`).
        "string" | "str" if value.is_instance_of::<PyString>() || is_number(value)? => {
            Ok(AttrValue::String(value.str()?.to_cow()?.into_owned()))
        }
        "string" | "str" => err(Kind::DTypeMismatch, format!("dtype string takes a str or a number, got {value:?}")),
        "timestamp" | "timestamp_ns" | "timestamp_nanoseconds" | "datetime64[ns]" => {
            let is_bool = value.is_instance_of::<PyBool>() || is_instance_of_numpy(value, "bool_")?;
            if (value.is_instance_of::<PyInt>() || is_instance_of_numpy(value, "integer")?) && !is_bool {
                let ns = value.extract().or_else(|_| {
                    err(Kind::InvalidArgument, format!("timestamp {value} (nanoseconds since 1970) does not fit int64"))
                })?;
                Ok(AttrValue::Timestamp(ns))
            } else if let Some(ns) = python_datetime_ns(value)? {
                Ok(AttrValue::Timestamp(ns))
            } else if value.is_instance_of::<PyString>() || is_datetime64(value)? {
                Ok(AttrValue::Timestamp(datetime64_ns(value)?))
            } else {
                err(
                    Kind::DTypeMismatch,
                    format!("dtype timestamp takes a datetime, datetime64, ISO 8601 string or int, got {value:?}"),
                )
            }
        }
        _ => err(Kind::InvalidArgument, format!("unknown dtype {dtype:?}")),
    }
}

fn out_of_range<T>(value: &Bound<'_, PyAny>, dtype: &str) -> PyResult<T> {
    err(Kind::InvalidArgument, format!("value {value} is out of range for {dtype}"))
}

/// Deepest nesting accepted here; Atlas itself refuses values deeper than 32 levels.
const MAX_DEPTH: usize = 64;

/// One step into an attribute's value, kept to say where a part of it was refused.
enum Step<'py> {
    Index(usize),
    Key(Bound<'py, PyString>),
}

/// ` at ["a"][3]` for the steps of `path`; nothing for the value itself.
fn at(path: &[Step<'_>]) -> String {
    let steps: String = path
        .iter()
        .map(|step| match step {
            Step::Index(i) => format!("[{i}]"),
            Step::Key(key) => format!("[{:?}]", key.to_string_lossy()),
        })
        .collect();
    if steps.is_empty() { steps } else { format!(" at {steps}") }
}

/// `value` as an attribute, its type telling which kind. `path` holds where `value` is in
/// the attribute's value, for errors.
fn attr_inferred<'py>(value: &Bound<'py, PyAny>, path: &mut Vec<Step<'py>>) -> PyResult<AttrValue> {
    if path.len() > MAX_DEPTH {
        return err(Kind::InvalidArgument, "the value nests too deeply");
    }
    if let Ok(b) = value.cast::<PyBool>() {
        return Ok(AttrValue::Bool(b.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        return match value.extract::<i64>() {
            Ok(v) => Ok(AttrValue::Int(v)),
            Err(_) => err(Kind::InvalidArgument, format!("int {value}{} does not fit in i64", at(path))),
        };
    }
    if let Ok(f) = value.cast::<PyFloat>() {
        return Ok(AttrValue::Float(f.value()));
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(AttrValue::String(s.to_cow()?.into_owned()));
    }
    if let Ok(b) = value.cast::<PyBytes>() {
        return match std::str::from_utf8(b.as_bytes()) {
            Ok(s) => Ok(AttrValue::String(s.to_string())),
            Err(_) => err(Kind::InvalidArgument, format!("bytes{} are not UTF-8", at(path))),
        };
    }
    let mut nested = |place: Step<'py>, value: &Bound<'py, PyAny>| {
        path.push(place);
        let converted = attr_inferred(value, path);
        path.pop();
        converted
    };
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        return value
            .try_iter()?
            .enumerate()
            .map(|(i, v)| nested(Step::Index(i), &v?))
            .collect::<PyResult<_>>()
            .map(AttrValue::List);
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        let mut map = std::collections::BTreeMap::new();
        for (k, v) in dict.iter() {
            let Ok(key) = k.cast::<PyString>() else {
                return err(Kind::DTypeMismatch, format!("map keys must be str, got {k:?}{}", at(path)));
            };
            let converted = nested(Step::Key(key.clone()), &v)?;
            map.insert(key.to_cow()?.into_owned(), converted);
        }
        return Ok(AttrValue::Map(map));
    }
    if is_instance_of_numpy(value, "datetime64")? {
        return Ok(AttrValue::Timestamp(datetime64_ns(value)?));
    }
    if let Some(ns) = python_datetime_ns(value)? {
        return Ok(AttrValue::Timestamp(ns));
    }
    if is_instance_of_numpy(value, "ndarray")? && value.getattr("dtype")?.getattr("kind")?.extract::<String>()? == "M" {
        // `tolist()` gives ints for nanosecond units and `datetime`s for coarser ones:
        // nanoseconds since the epoch for all, then one timestamp per element.
        let ns = checked_ns(value)?.call_method1("view", ("int64",))?;
        return timestamps_from_ints(&ns.call_method0("tolist")?, path.len() + 1);
    }
    if is_instance_of_numpy(value, "ndarray")? || is_instance_of_numpy(value, "generic")? {
        // numpy scalars become Python scalars, arrays nested lists.
        let plain = value.call_method0("tolist")?;
        if is_instance_of_numpy(&plain, "generic")? {
            if let Some(v) = long_double(&plain)? {
                return Ok(AttrValue::Float(v));
            }
        } else if !plain.is(value) {
            return attr_inferred(&plain, path);
        }
    }
    err(Kind::DTypeMismatch, format!("unsupported type {}{}", value.get_type().name()?, at(path)))
}

/// A `datetime.datetime` or `datetime.date` as nanoseconds since the epoch (a naive one
/// taken as UTC, an aware one converted to UTC); `None` for any other value.
fn python_datetime_ns(value: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
    let py = value.py();
    let datetime = py.import("datetime")?;
    if !value.is_instance(&datetime.getattr("date")?)? {
        return Ok(None);
    }
    // A pandas Timestamp (or NaT) is a datetime whose nanoseconds numpy's conversion of a
    // datetime (to microseconds) would drop: its own datetime64 keeps them, and is the UTC
    // instant for an aware one.
    if let Ok(own) = value.getattr("to_datetime64") {
        return datetime64_ns(&own.call0()?).map(Some);
    }
    let utc = if value.is_instance(&datetime.getattr("datetime")?)? && !value.getattr("tzinfo")?.is_none() {
        let utc_zone = datetime.getattr("timezone")?.getattr("utc")?;
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("tzinfo", py.None())?;
        value.call_method1("astimezone", (utc_zone,))?.call_method("replace", (), Some(&kwargs))?
    } else {
        value.clone()
    };
    datetime64_ns(&utc).map(Some)
}

/// Nested lists of nanosecond counts (a datetime64 array's) as timestamps.
fn timestamps_from_ints(value: &Bound<'_, PyAny>, depth: usize) -> PyResult<AttrValue> {
    if depth > MAX_DEPTH {
        return err(Kind::InvalidArgument, "the value nests too deeply");
    }
    match value.cast::<PyList>() {
        Ok(list) => {
            list.iter().map(|v| timestamps_from_ints(&v, depth + 1)).collect::<PyResult<_>>().map(AttrValue::List)
        }
        Err(_) => Ok(AttrValue::Timestamp(value.extract()?)),
    }
}

/// An attribute as a Python value: timestamps as `numpy.datetime64`, lists and maps as
/// `list` and `dict`.
pub fn attr_to_py<'py>(py: Python<'py>, value: &AttrValue) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        AttrValue::Bool(v) => PyBool::new(py, *v).to_owned().into_any(),
        AttrValue::Int(v) => v.into_pyobject(py)?.into_any(),
        AttrValue::Float(v) => PyFloat::new(py, *v).into_any(),
        AttrValue::String(v) => PyString::new(py, v).into_any(),
        AttrValue::Timestamp(v) => timestamp_to_py(py, *v)?,
        AttrValue::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(attr_to_py(py, item)?)?;
            }
            list.into_any()
        }
        AttrValue::Map(items) => {
            let dict = PyDict::new(py);
            for (k, v) in items {
                dict.set_item(k, attr_to_py(py, v)?)?;
            }
            dict.into_any()
        }
        // A variant added later: its debug text rather than nothing.
        #[allow(unreachable_patterns)]
        other => PyString::new(py, &format!("{other:?}")).into_any(),
    })
}

pub fn attrs_to_py<'py>(py: Python<'py>, attrs: &Attributes) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in attrs {
        dict.set_item(k, attr_to_py(py, v)?)?;
    }
    Ok(dict)
}

fn opt_scalar<'py>(py: Python<'py>, value: Option<Scalar>, dtype: DType) -> PyResult<Bound<'py, PyAny>> {
    match value {
        Some(v) => scalar_to_py(py, v, dtype),
        None => Ok(py.None().into_bound(py)),
    }
}

/// A sum of values, `None` where it means nothing: for strings (not numbers) and timestamps
/// (a sum of instants is no instant).
fn sum_of(sum: f64, dtype: DType) -> Option<f64> {
    (!matches!(dtype, DType::String | DType::Timestamp)).then_some(sum)
}

/// A mean of values; for timestamps an instant (`datetime64[ns]`), as numpy's mean of them
/// is (the mean is a float: for today's dates it is within a few hundred nanoseconds).
fn mean_of<'py>(py: Python<'py>, stats: &ArrayStats, dtype: DType) -> PyResult<Bound<'py, PyAny>> {
    match stats.mean_instant() {
        Some(instant) if dtype == DType::Timestamp => scalar_to_py(py, Scalar::Int(instant), dtype),
        _ => Ok(stats.mean.into_pyobject(py)?.into_any()),
    }
}

/// Array statistics as a dict: atlas-python 0.10's keys (`row_count` counts every
/// element, `null_count`, `min`, `max`) and Atlas's (`count` of valid values, `sum`, `mean`).
pub fn stats_to_py<'py>(py: Python<'py>, stats: &ArrayStats, dtype: DType) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("row_count", stats.count.saturating_add(stats.null_count))?;
    dict.set_item("null_count", stats.null_count)?;
    dict.set_item("min", opt_scalar(py, stats.min, dtype)?)?;
    dict.set_item("max", opt_scalar(py, stats.max, dtype)?)?;
    dict.set_item("count", stats.count)?;
    dict.set_item("sum", sum_of(stats.sum, dtype))?;
    dict.set_item("mean", mean_of(py, stats, dtype)?)?;
    Ok(dict)
}

pub fn block_stats_to_py<'py>(py: Python<'py>, block: &BlockStats, dtype: DType) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("coord", PyTuple::new(py, &block.coord)?)?;
    dict.set_item("count", block.count)?;
    dict.set_item("min", opt_scalar(py, block.min, dtype)?)?;
    dict.set_item("max", opt_scalar(py, block.max, dtype)?)?;
    dict.set_item("sum", sum_of(block.sum, dtype))?;
    Ok(dict)
}
