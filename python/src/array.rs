//! `Array`: reads and writes of one array between numpy and Atlas, with no copy on either
//! side where the data allows it. A read allocates the numpy result and Atlas decodes
//! straight into it (`read_into`); a write hands Atlas a view of the numpy buffer (copied
//! only when it is not C-contiguous). The GIL is released for the whole of the I/O and codec
//! work, so other Python threads run meanwhile.

use atlas::{ArrayHandle, ArrayMeta, Atlas, BlockState, DType, Device, Element, ReadOptions};
use ndarray::{ArrayView, IxDyn};
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyMemoryError;
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyBytes, PyDict, PyFloat, PyList, PyString, PyTuple};

use crate::attrs::{Attrs, Target};
use crate::convert::{block_stats_to_py, parse_codec, parse_shuffle, scalar_to_py, stats_to_py};
use crate::device::{parse_device, read_to_cuda};
use crate::errors::{IntoPy, Kind, err, to_py};

/// Calls `$f::<T>($args)` with `T` the Rust element type of `$dtype`, or evaluates
/// `$strings` for string arrays.
macro_rules! by_element {
    ($dtype:expr, $f:ident ( $($arg:expr),* $(,)? ), strings => $strings:expr) => {
        match $dtype {
            DType::Int8 => $f::<i8>($($arg),*),
            DType::Int16 => $f::<i16>($($arg),*),
            DType::Int32 => $f::<i32>($($arg),*),
            DType::Int64 | DType::Timestamp => $f::<i64>($($arg),*),
            DType::UInt8 => $f::<u8>($($arg),*),
            DType::UInt16 => $f::<u16>($($arg),*),
            DType::UInt32 => $f::<u32>($($arg),*),
            DType::UInt64 => $f::<u64>($($arg),*),
            DType::Float32 => $f::<f32>($($arg),*),
            DType::Float64 => $f::<f64>($($arg),*),
            DType::Bool => $f::<bool>($($arg),*),
            DType::String => $strings,
            other => err(Kind::DTypeMismatch, format!("arrays of dtype {other} are not supported by this module")),
        }
    };
}
pub(crate) use by_element;

/// One array of a dataset (native half of `atlas.Array`).
#[pyclass(frozen, module = "atlas._atlas")]
pub struct Array {
    store: Atlas,
    inner: ArrayHandle,
}

impl Array {
    pub fn new(store: Atlas, inner: ArrayHandle) -> Self {
        Self { store, inner }
    }

    fn label(&self) -> String {
        label_of(&self.inner)
    }

    fn meta_now(&self, py: Python<'_>) -> PyResult<ArrayMeta> {
        py.detach(|| self.inner.meta()).py_err()
    }

    /// The dtype and shape, without copying the rest of the schema (its attributes, a
    /// dictionary) on every read.
    fn layout_now(&self, py: Python<'_>) -> PyResult<(DType, Vec<u64>)> {
        py.detach(|| Ok::<_, atlas::Error>((self.inner.dtype()?, self.inner.shape()?))).py_err()
    }

    fn dtype_now(&self, py: Python<'_>) -> PyResult<DType> {
        py.detach(|| self.inner.dtype()).py_err()
    }
}

#[pymethods]
impl Array {
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    #[getter]
    fn dataset(&self) -> &str {
        self.inner.dataset()
    }

    /// Elements per axis (the schema's alone: cheaper than `meta()`).
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, py.detach(|| self.inner.shape()).py_err()?)
    }

    /// Elements per axis of each chunk.
    #[getter]
    fn chunk_shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, py.detach(|| self.inner.chunk_shape()).py_err()?)
    }

    /// Atlas's name of the dtype.
    #[getter]
    fn dtype_name(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(py.detach(|| self.inner.dtype()).py_err()?.name())
    }

    /// The schema as a dict: `dtype` (Atlas's name), `shape`, `chunk_shape`, `dims`,
    /// `fill_value`, `codec` and `shuffle` (the array's own, or `None` to follow the store),
    /// `effective_codec` (what new blocks get).
    fn meta<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let meta = self.meta_now(py)?;
        let store_codec = py.detach(|| self.store.codec());
        let dict = PyDict::new(py);
        dict.set_item("dtype", meta.dtype.name())?;
        dict.set_item("shape", PyTuple::new(py, &meta.shape)?)?;
        dict.set_item("chunk_shape", PyTuple::new(py, &meta.chunk_shape)?)?;
        dict.set_item("dims", PyTuple::new(py, &meta.dims)?)?;
        dict.set_item("fill_value", scalar_to_py(py, meta.fill_value, meta.dtype)?)?;
        dict.set_item("codec", meta.codec.map(|codec| codec.to_string()))?;
        dict.set_item("shuffle", meta.shuffle.map(atlas::Shuffle::name))?;
        dict.set_item("effective_codec", meta.codec.unwrap_or(store_codec).to_string())?;
        Ok(dict)
    }

    /// `dtype`, `shape` and `chunk_shape` of `meta()`, without copying the rest of the
    /// schema (its attributes, a dictionary): what a key is resolved against, on every
    /// element read or write.
    fn layout<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (dtype, shape) = self.layout_now(py)?;
        let chunk_shape = py.detach(|| self.inner.chunk_shape()).py_err()?;
        let dict = PyDict::new(py);
        dict.set_item("dtype", dtype.name())?;
        dict.set_item("shape", PyTuple::new(py, &shape)?)?;
        dict.set_item("chunk_shape", PyTuple::new(py, &chunk_shape)?)?;
        Ok(dict)
    }

    /// Reads the box `start .. start + shape` (default: from the origin to the end) into a
    /// new numpy array, or with `device="cuda"` / `"cuda:N"` into GPU memory (a `CudaArray`);
    /// `verify_checksums=False` skips each block's checksum.
    #[pyo3(signature = (start=None, shape=None, device=None, verify_checksums=true))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        start: Option<Vec<u64>>,
        shape: Option<Vec<u64>>,
        device: Option<&str>,
        verify_checksums: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ordinal = parse_device(device)?;
        let (dtype, array_shape) = self.layout_now(py)?;
        let (start, shape) = selection(&array_shape, &|| self.label(), start, shape)?;
        let handle = &self.inner;
        let options = ReadOptions { verify_checksums, ..ReadOptions::default() };
        if let Some(ordinal) = ordinal {
            let options = ReadOptions { device: Device::Cuda(ordinal), ..options };
            return Ok(Bound::new(py, read_to_cuda(py, handle, &start, &shape, options)?)?.into_any());
        }
        by_element!(dtype, read_typed(py, handle, dtype, &start, &shape, options), strings => read_strings(py, handle, &start, &shape, options))
    }

    /// Reads the box `start .. start + shape` (default: from the origin to the end) into
    /// `out`, a C-contiguous writable numpy array of the array's element type (int64 for
    /// timestamps) and of the box's shape, with the GIL released.
    #[pyo3(signature = (out, start=None, shape=None, verify_checksums=true))]
    fn read_into(
        &self,
        py: Python<'_>,
        out: &Bound<'_, PyAny>,
        start: Option<Vec<u64>>,
        shape: Option<Vec<u64>>,
        verify_checksums: bool,
    ) -> PyResult<()> {
        let (dtype, array_shape) = self.layout_now(py)?;
        let (start, shape) = selection(&array_shape, &|| self.label(), start, shape)?;
        let options = ReadOptions { verify_checksums, ..ReadOptions::default() };
        let strings =
            || err(Kind::DTypeMismatch, format!("{}: a string array reads into new arrays only", self.label()));
        by_element!(dtype, read_into_typed(py, &self.inner, out, &start, &shape, options), strings => strings())
    }

    /// The boxes of extent `shape` starting at each of `starts`, read in one call into a new
    /// numpy array of shape `(len(starts), *shape)`; every chunk the boxes touch is decoded
    /// once (on the CPU). Numeric, bool and timestamp arrays.
    fn read_boxes<'py>(&self, py: Python<'py>, starts: Vec<Vec<u64>>, shape: Vec<u64>) -> PyResult<Bound<'py, PyAny>> {
        let (dtype, array_shape) = self.layout_now(py)?;
        // Every box is checked before the result is allocated (Atlas checks again).
        let origin = vec![0; array_shape.len()];
        for start in starts.iter().chain(starts.is_empty().then_some(&origin)) {
            selection(&array_shape, &|| self.label(), Some(start.clone()), Some(shape.clone()))?;
        }
        let handle = &self.inner;
        let no_strings = || {
            err(Kind::DTypeMismatch, format!("{}: read_boxes reads numeric, bool and timestamp arrays", self.label()))
        };
        by_element!(dtype, read_boxes_typed(py, handle, dtype, &starts, &shape), strings => no_strings())
    }

    /// Writes `data` (a numpy array of the array's dtype) with its first element at `start`.
    fn write(&self, py: Python<'_>, start: Vec<u64>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let dtype = self.dtype_now(py)?;
        let handle = &self.inner;
        let label = self.label();
        by_element!(dtype, write_typed(py, handle, &label, dtype, Some(&start), data), strings => write_strings(py, handle, Some(&start), data))
    }

    /// Appends `data` along axis 0.
    fn append(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let dtype = self.dtype_now(py)?;
        let handle = &self.inner;
        let label = self.label();
        by_element!(dtype, write_typed(py, handle, &label, dtype, None, data), strings => write_strings(py, handle, None, data))
    }

    fn resize(&self, py: Python<'_>, shape: Vec<u64>) -> PyResult<()> {
        py.detach(|| self.inner.resize(&shape)).py_err()
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (stats, dtype) =
            py.detach(|| Ok::<_, atlas::Error>((self.inner.stats()?, self.inner.dtype()?))).py_err()?;
        stats_to_py(py, &stats, dtype)
    }

    fn block_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let (blocks, dtype) =
            py.detach(|| Ok::<_, atlas::Error>((self.inner.block_stats()?, self.inner.dtype()?))).py_err()?;
        let list = PyList::empty(py);
        for block in &blocks {
            list.append(block_stats_to_py(py, block, dtype)?)?;
        }
        Ok(list)
    }

    /// Gives the array its own codec for new blocks (`None` follows the store's), and its
    /// own shuffle when one is given; with neither, both follow the store's (the Rust
    /// handle's `set_codec(None)` leaves the shuffle alone). Both are parsed before either
    /// changes.
    #[pyo3(signature = (codec, shuffle=None))]
    fn set_codec(&self, py: Python<'_>, codec: Option<&str>, shuffle: Option<&str>) -> PyResult<()> {
        let (codec, shuffle) = (codec.map(parse_codec).transpose()?, shuffle.map(parse_shuffle).transpose()?);
        py.detach(|| {
            self.inner.set_codec(codec)?;
            // `set_codec(None)`: back to the store's settings, the shuffle too unless given.
            match (codec, shuffle) {
                (_, Some(shuffle)) => self.inner.set_shuffle(Some(shuffle)),
                (None, None) => self.inner.set_shuffle(None),
                (Some(_), None) => Ok(()),
            }
        })
        .py_err()
    }

    /// Re-encodes every block of this array and makes `codec` (and `shuffle`, when given)
    /// its own settings.
    #[pyo3(signature = (codec, shuffle=None))]
    fn recompress(&self, py: Python<'_>, codec: &str, shuffle: Option<&str>) -> PyResult<()> {
        let (codec, shuffle) = (parse_codec(codec)?, shuffle.map(parse_shuffle).transpose()?);
        py.detach(|| self.store.recompress_array(self.inner.dataset(), self.inner.name(), codec, shuffle)).py_err()
    }

    fn attrs(&self) -> Attrs {
        Attrs::new(self.inner.attrs(), Target::Array)
    }

    /// Every live block (the newest per chunk) as its index entry describes it: coord,
    /// codec, shuffled, byte_delta, delta, is_fill, stored_bytes, raw_bytes, checksum, path,
    /// offset_bytes, pending, staged (a chunk of a small write or the unfinished last chunk of an append,
    /// kept raw in memory until the flush: not a block yet). Reads no data.
    fn blocks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let blocks = py.detach(|| self.store.array_blocks(self.inner.dataset(), self.inner.name())).py_err()?;
        let list = PyList::empty(py);
        for block in &blocks {
            let dict = PyDict::new(py);
            dict.set_item("coord", PyTuple::new(py, &block.coord)?)?;
            dict.set_item("codec", block.codec.name())?;
            dict.set_item("shuffled", block.shuffled)?;
            dict.set_item("byte_delta", block.byte_delta)?;
            dict.set_item("delta", block.delta)?;
            dict.set_item("is_fill", block.is_fill)?;
            dict.set_item("stored_bytes", block.stored_bytes)?;
            dict.set_item("raw_bytes", block.raw_bytes)?;
            dict.set_item("checksum", block.checksum)?;
            dict.set_item("path", &block.path)?;
            dict.set_item("offset_bytes", block.offset_bytes)?;
            dict.set_item("pending", block.state.is_uncommitted())?;
            dict.set_item("staged", block.state == BlockState::Staged)?;
            list.append(dict)?;
        }
        Ok(list)
    }

    /// A summary of `blocks`: blocks and fill entries, stored and raw bytes of the
    /// written blocks, blocks per codec, blocks (and fill entries) not yet flushed, and
    /// chunks an unfinished append or a small write holds in memory (staged: not blocks
    /// yet, so counted apart, in none of the other counts).
    fn storage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let blocks = py.detach(|| self.store.array_blocks(self.inner.dataset(), self.inner.name())).py_err()?;
        let mut codecs = std::collections::BTreeMap::<&str, u64>::new();
        let (mut written, mut fills, mut pending, mut stored, mut raw) = (0u64, 0u64, 0u64, 0u64, 0u64);
        let mut staged = 0u64;
        for block in &blocks {
            if block.state == BlockState::Staged {
                staged += 1;
                continue;
            }
            pending += u64::from(block.state.is_uncommitted());
            if block.is_fill {
                fills += 1;
                continue;
            }
            written += 1;
            stored = stored.saturating_add(block.stored_bytes);
            raw = raw.saturating_add(block.raw_bytes);
            *codecs.entry(block.codec.name()).or_default() += 1;
        }
        let dict = PyDict::new(py);
        dict.set_item("blocks", written)?;
        dict.set_item("fill_blocks", fills)?;
        dict.set_item("pending_blocks", pending)?;
        dict.set_item("staged_chunks", staged)?;
        dict.set_item("stored_bytes", stored)?;
        dict.set_item("raw_bytes", raw)?;
        dict.set_item("codecs", codecs.into_py_dict(py)?)?;
        Ok(dict)
    }
}

/// The selection of a read: `start` defaults to the origin, `shape` to the rest of the array.
/// Checked here so a bad selection fails before its output is allocated.
fn selection(
    array_shape: &[u64],
    label: &dyn Fn() -> String,
    start: Option<Vec<u64>>,
    shape: Option<Vec<u64>>,
) -> PyResult<(Vec<u64>, Vec<u64>)> {
    let ndim = array_shape.len();
    let start = start.unwrap_or_else(|| vec![0; ndim]);
    let wrong_ndim = |what: &str, found: &[u64]| {
        err::<()>(
            Kind::Shape,
            format!("{what} {found:?} has {} dimensions, array {} {array_shape:?} has {ndim}", found.len(), label()),
        )
    };
    if start.len() != ndim {
        wrong_ndim("start", &start)?;
    }
    let shape = shape.unwrap_or_else(|| array_shape.iter().zip(&start).map(|(n, s)| n.saturating_sub(*s)).collect());
    if shape.len() != ndim {
        wrong_ndim("shape", &shape)?;
    }
    let inside = (0..ndim).all(|d| start[d].checked_add(shape[d]).is_some_and(|end| end <= array_shape[d]));
    if !inside {
        return Err(to_py(atlas::Error::OutOfBounds {
            array: label(),
            start,
            shape,
            array_shape: array_shape.to_vec(),
        }));
    }
    Ok((start, shape))
}

/// `dataset/array`, as errors name an array.
fn label_of(handle: &ArrayHandle) -> String {
    format!("{}/{}", handle.dataset(), handle.name())
}

/// `(n, ...)` as `usize`s, refusing results of `array` that cannot be allocated.
fn dims_of(array: &str, shape: &[u64], elem_bytes: usize) -> PyResult<Vec<usize>> {
    let dims: Option<Vec<usize>> = shape.iter().map(|&n| usize::try_from(n).ok()).collect();
    let fits = dims.as_ref().and_then(|d| {
        d.iter().try_fold(elem_bytes.max(1), |acc, &n| acc.checked_mul(n)).filter(|&b| isize::try_from(b).is_ok())
    });
    match (dims, fits) {
        (Some(dims), Some(_)) => Ok(dims),
        _ => out_of_memory(array, shape),
    }
}

fn out_of_memory<T>(array: &str, shape: &[u64]) -> PyResult<T> {
    err(Kind::OutOfMemory, format!("out of memory: {array}: a result of shape {shape:?}"))
}

/// A new zeroed numpy array of `T` for a result of `array` of `shape` (calloc'd by numpy);
/// `OutOfMemoryError` when it cannot be held, numpy's allocation failing included.
fn zeros<'py, T: numpy::Element>(py: Python<'py>, array: &str, shape: &[u64]) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let dims = dims_of(array, shape, size_of::<T>())?;
    let np = py.import("numpy")?;
    match np.getattr("zeros")?.call1((PyTuple::new(py, dims)?, numpy::dtype::<T>(py))) {
        Ok(out) => Ok(out.cast_into::<PyArrayDyn<T>>()?),
        Err(e) if e.is_instance_of::<PyMemoryError>(py) => out_of_memory(array, shape),
        Err(e) => Err(e),
    }
}

/// Timestamps are stored and read as i64: shown to Python as `datetime64[ns]`.
fn as_numpy_dtype<'py>(out: Bound<'py, PyAny>, dtype: DType) -> PyResult<Bound<'py, PyAny>> {
    if dtype == DType::Timestamp { out.call_method1("view", ("datetime64[ns]",)) } else { Ok(out) }
}

fn read_typed<'py, T: Element + numpy::Element>(
    py: Python<'py>,
    handle: &ArrayHandle,
    dtype: DType,
    start: &[u64],
    shape: &[u64],
    options: ReadOptions,
) -> PyResult<Bound<'py, PyAny>> {
    read_new(py, handle, dtype, shape, |out: &mut [T]| handle.read_into(start, shape, out, options))
}

fn read_into_typed<T: Element + numpy::Element>(
    py: Python<'_>,
    handle: &ArrayHandle,
    out: &Bound<'_, PyAny>,
    start: &[u64],
    shape: &[u64],
    options: ReadOptions,
) -> PyResult<()> {
    let label = label_of(handle);
    let Ok(out) = out.cast::<PyArrayDyn<T>>() else {
        return err(
            Kind::DTypeMismatch,
            format!("{label}: out must be a numpy array of dtype {}", numpy::dtype::<T>(py)),
        );
    };
    if out.shape().iter().map(|&n| n as u64).ne(shape.iter().copied()) {
        return err(Kind::Shape, format!("{label}: out has shape {:?}, the box read has {shape:?}", out.shape()));
    }
    // `as_slice_mut` takes a Fortran-ordered array too, where C order would land transposed.
    if !out.is_c_contiguous() {
        return err(Kind::InvalidArgument, format!("{label}: out is not C-contiguous"));
    }
    let mut guard = match out.try_readwrite() {
        Ok(guard) => guard,
        Err(e) => return err(Kind::InvalidArgument, format!("{label}: out cannot be written: {e}")),
    };
    let slice = guard.as_slice_mut().expect("C-contiguous, checked above");
    py.detach(|| handle.read_into(start, shape, slice, options)).py_err()
}

fn read_boxes_typed<'py, T: Element + numpy::Element>(
    py: Python<'py>,
    handle: &ArrayHandle,
    dtype: DType,
    starts: &[Vec<u64>],
    shape: &[u64],
) -> PyResult<Bound<'py, PyAny>> {
    let extent: Vec<u64> = std::iter::once(starts.len() as u64).chain(shape.iter().copied()).collect();
    read_new(py, handle, dtype, &extent, |out: &mut [T]| {
        handle.read_boxes_into(starts, shape, out, ReadOptions::default())
    })
}

/// A new numpy array of `extent` filled by `read` of `handle` with the GIL released, as
/// numpy's dtype for `dtype`.
fn read_new<'py, T: Element + numpy::Element>(
    py: Python<'py>,
    handle: &ArrayHandle,
    dtype: DType,
    extent: &[u64],
    read: impl FnOnce(&mut [T]) -> atlas::Result<()> + Send,
) -> PyResult<Bound<'py, PyAny>> {
    let out = zeros::<T>(py, &label_of(handle), extent)?;
    {
        let mut guard = out.readwrite();
        let slice = guard.as_slice_mut().expect("a new numpy array is contiguous");
        py.detach(|| read(slice)).py_err()?;
    }
    as_numpy_dtype(out.into_any(), dtype)
}

fn read_strings<'py>(
    py: Python<'py>,
    handle: &ArrayHandle,
    start: &[u64],
    shape: &[u64],
    options: ReadOptions,
) -> PyResult<Bound<'py, PyAny>> {
    let dims = dims_of(&label_of(handle), shape, size_of::<usize>())?;
    let strings = py.detach(|| handle.read_strings_with(start, shape, options)).py_err()?;
    let objects: Vec<Py<PyAny>> = strings.iter().map(|s| PyString::new(py, s).into_any().unbind()).collect();
    PyArray1::from_vec(py, objects).call_method1("reshape", (PyTuple::new(py, dims)?,))
}

/// `data` as a C-contiguous, aligned numpy array of `T`, or `DTypeMismatchError`.
/// Timestamp arrays take `datetime64[ns]` (viewed as i64, no copy) as well as int64.
fn typed_input<'py, T: numpy::Element>(
    data: &Bound<'py, PyAny>,
    label: &str,
    dtype: DType,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let py = data.py();
    let np = py.import("numpy")?;
    let mut data = data.clone();
    if !data.is_instance(&np.getattr("ndarray")?)? {
        data = np.getattr("asarray")?.call1((data,))?;
    }
    if dtype == DType::Timestamp && data.getattr("dtype")?.getattr("str")?.extract::<String>()? == "<M8[ns]" {
        data = data.call_method1("view", ("int64",))?;
    }
    if dtype == DType::Bool && data.getattr("dtype")?.getattr("kind")?.extract::<String>()? == "b" {
        // numpy takes any byte but 0 as True (a mask made with `.view(bool)` may hold 255);
        // a Rust bool must be 0 or 1, so such bytes are made 1 first.
        let bytes = data.call_method1("view", ("uint8",))?;
        let kwargs = [("initial", 0)].into_py_dict(py)?;
        if bytes.call_method("max", (), Some(&kwargs))?.extract::<u8>()? > 1 {
            // `astype`, not `not_equal`, which gives a 0-d array back as a numpy scalar.
            data = bytes.call_method1("astype", ("bool",))?;
        }
    }
    let Ok(typed) = data.cast::<PyArrayDyn<T>>().cloned() else {
        let found = data.getattr("dtype")?.str()?.to_cow()?.into_owned();
        let expected = crate::convert::numpy_dtype(dtype);
        return err(
            Kind::DTypeMismatch,
            format!("dtype mismatch on array {label}: it holds {expected}, the data is {found}"),
        );
    };
    // A Rust slice needs both; numpy makes a copy only when one is missing.
    if typed.is_c_contiguous() && typed.getattr("flags")?.getattr("aligned")?.extract::<bool>()? {
        Ok(typed)
    } else {
        let required = np.getattr("require")?.call1((typed, py.None(), ["C", "A"]))?;
        Ok(required.cast_into::<PyArrayDyn<T>>()?)
    }
}

/// Writes at `start`, or appends along axis 0 when `start` is `None`.
fn write_typed<T: Element + numpy::Element>(
    py: Python<'_>,
    handle: &ArrayHandle,
    label: &str,
    dtype: DType,
    start: Option<&[u64]>,
    data: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let typed = typed_input::<T>(data, label, dtype)?;
    let guard = typed.readonly();
    let slice = guard.as_slice().expect("made C-contiguous above");
    let view = ArrayView::from_shape(IxDyn(guard.shape()), slice).expect("the slice holds the array's elements");
    match start {
        Some(start) => py.detach(|| handle.write(start, view)),
        None => py.detach(|| handle.append(view)),
    }
    .py_err()
}

/// `data` (any array-like of str; `None` is the empty string, bytes are UTF-8) as strings
/// in C order, with its shape.
fn strings_input(data: &Bound<'_, PyAny>) -> PyResult<(Vec<String>, Vec<usize>)> {
    let py = data.py();
    let np = py.import("numpy")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", "object")?;
    kwargs.set_item("order", "C")?;
    let objects = np.getattr("asarray")?.call((data,), Some(&kwargs))?.cast_into::<PyArrayDyn<Py<PyAny>>>()?;
    let guard = objects.readonly();
    let shape = guard.shape().to_vec();
    let mut strings = Vec::with_capacity(guard.len());
    for item in guard.as_slice().expect("made C-contiguous above") {
        let item = item.bind(py);
        if item.is_none() {
            strings.push(String::new());
        } else if let Ok(s) = item.cast::<PyString>() {
            strings.push(s.to_cow()?.into_owned());
        } else if let Ok(b) = item.cast::<PyBytes>() {
            match std::str::from_utf8(b.as_bytes()) {
                Ok(s) => strings.push(s.to_string()),
                Err(_) => return err(Kind::InvalidArgument, "bytes written to a string array must be UTF-8"),
            }
        } else if is_missing_text(item)? {
            strings.push(String::new());
        } else {
            let found = item.get_type().name()?;
            return err(Kind::DTypeMismatch, format!("a string array takes str (or None), got {found}"));
        }
    }
    Ok((strings, shape))
}

/// Whether `item` is a missing entry of pandas text: NaN (pandas 3's `str` dtype) or
/// `pandas.NA` (its `string` dtype), stored as None is, as the empty string.
fn is_missing_text(item: &Bound<'_, PyAny>) -> PyResult<bool> {
    if let Ok(float) = item.cast::<PyFloat>() {
        return Ok(float.value().is_nan());
    }
    Ok(item.get_type().name()?.to_cow()? == "NAType")
}

fn write_strings(py: Python<'_>, handle: &ArrayHandle, start: Option<&[u64]>, data: &Bound<'_, PyAny>) -> PyResult<()> {
    let (strings, shape) = strings_input(data)?;
    let view = ArrayView::from_shape(IxDyn(&shape), &strings[..]).expect("one string per element");
    match start {
        Some(start) => py.detach(|| handle.write_strings(start, view)),
        None => py.detach(|| handle.append_strings(view)),
    }
    .py_err()
}

/// See `Store.read_across_stacked`.
pub fn read_across_stacked<'py>(
    py: Python<'py>,
    store: &Atlas,
    array: &str,
    datasets: &[String],
    start: &[u64],
    shape: &[u64],
) -> PyResult<Bound<'py, PyAny>> {
    // With no dataset that has the array, any type gives Atlas's own error (a missing
    // dataset or array).
    let dtype = py.detach(|| first_dtype(store, array, datasets)).unwrap_or(DType::UInt8);
    by_element!(
        dtype,
        across_typed(py, store, dtype, array, datasets, start, shape),
        strings => err(Kind::DTypeMismatch, format!("array {array} holds strings: read them per dataset"))
    )
}

/// The dtype of `array` in the first of `datasets` that has it; missing datasets are
/// skipped.
pub(crate) fn first_dtype(store: &Atlas, array: &str, datasets: &[String]) -> Option<DType> {
    datasets.iter().find_map(|d| store.open_dataset(d).and_then(|d| d.array(array)).and_then(|a| a.dtype()).ok())
}

fn across_typed<'py, T: Element + numpy::Element>(
    py: Python<'py>,
    store: &Atlas,
    dtype: DType,
    array: &str,
    datasets: &[String],
    start: &[u64],
    shape: &[u64],
) -> PyResult<Bound<'py, PyAny>> {
    let mut dims = vec![datasets.len() as u64];
    dims.extend_from_slice(shape);
    let out = zeros::<T>(py, array, &dims)?;
    {
        let mut guard = out.readwrite();
        let slice = guard.as_slice_mut().expect("a new numpy array is contiguous");
        let names: Vec<&str> = datasets.iter().map(String::as_str).collect();
        let options = ReadOptions::default();
        py.detach(|| store.read_array_across_stacked_into::<T>(array, &names, start, shape, slice, options))
            .py_err()?;
    }
    as_numpy_dtype(out.into_any(), dtype)
}
