//! `CudaArray`: the result of `read(..., device="cuda")`, an array in GPU memory that torch,
//! CuPy and numba take without a copy (`__dlpack__`, `__cuda_array_interface__`).

use atlas::{ArrayHandle, Atlas, DType, Device, DeviceArray, ReadOptions};
use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::dlpack::{self, DataType};
use crate::errors::{IntoPy, Kind, err};

/// Parses `"cuda"` / `"cuda:N"` (`None` and `"cpu"` read to the host: `Ok(None)`).
pub fn parse_device(device: Option<&str>) -> PyResult<Option<usize>> {
    match device {
        None | Some("cpu") => Ok(None),
        Some("cuda") => Ok(Some(0)),
        Some(other) => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(ordinal)) => Ok(Some(ordinal)),
            _ => err(Kind::InvalidArgument, format!("device must be 'cpu', 'cuda' or 'cuda:N', not {other:?}")),
        },
    }
}

/// Reads a box into GPU memory (GIL released).
pub fn read_to_cuda(
    py: Python<'_>,
    handle: &ArrayHandle,
    start: &[u64],
    shape: &[u64],
    options: ReadOptions,
) -> PyResult<CudaArray> {
    let inner = py.detach(|| handle.read_to_device(start, shape, options)).py_err()?;
    Ok(CudaArray { inner })
}

/// Reads `array` across `datasets` into GPU memory, stacked (GIL released).
pub fn across_to_cuda(
    py: Python<'_>,
    store: &Atlas,
    array: &str,
    datasets: &[&str],
    (start, shape): (&[u64], &[u64]),
    ordinal: usize,
) -> PyResult<CudaArray> {
    let options = ReadOptions { device: Device::Cuda(ordinal), ..ReadOptions::default() };
    let inner =
        py.detach(|| store.read_array_across_stacked_to_device(array, datasets, start, shape, options)).py_err()?;
    Ok(CudaArray { inner })
}

/// The numpy array-interface type string of a dtype (timestamps as int64 nanoseconds, as in
/// DLPack: CuPy and torch have no datetime type).
fn typestr(dtype: DType) -> PyResult<&'static str> {
    Ok(match dtype {
        DType::Bool => "|b1",
        DType::Int8 => "|i1",
        DType::UInt8 => "|u1",
        DType::Int16 => "<i2",
        DType::UInt16 => "<u2",
        DType::Int32 => "<i4",
        DType::UInt32 => "<u4",
        DType::Float32 => "<f4",
        DType::Int64 | DType::Timestamp => "<i8",
        DType::UInt64 => "<u8",
        DType::Float64 => "<f8",
        other => return err(Kind::DTypeMismatch, format!("no GPU array of dtype {other}")),
    })
}

/// The DLPack type of a dtype (timestamps as int64 nanoseconds: DLPack has no datetime).
fn dl_type(dtype: DType) -> PyResult<DataType> {
    let (code, bits) = match dtype {
        DType::Bool => (6, 8),
        DType::Int8 | DType::Int16 | DType::Int32 | DType::Int64 | DType::Timestamp => (0, dtype.size_bytes() * 8),
        DType::UInt8 | DType::UInt16 | DType::UInt32 | DType::UInt64 => (1, dtype.size_bytes() * 8),
        DType::Float32 | DType::Float64 => (2, dtype.size_bytes() * 8),
        other => return err(Kind::DTypeMismatch, format!("no DLPack type for dtype {other}")),
    };
    Ok(DataType { code, bits: bits as u8, lanes: 1 })
}

/// An array in CUDA memory, read by `Array.read(..., device="cuda")`. The read has finished
/// when this object exists, so any stream may use the data.
#[pyclass(frozen, module = "atlas._atlas")]
pub struct CudaArray {
    inner: DeviceArray,
}

#[pymethods]
impl CudaArray {
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.shape())
    }

    /// Atlas's dtype name.
    #[getter]
    fn atlas_dtype(&self) -> &'static str {
        self.inner.dtype().name()
    }

    /// The CUDA device ordinal.
    #[getter]
    fn device_id(&self) -> usize {
        self.inner.ordinal()
    }

    #[getter]
    fn nbytes(&self) -> usize {
        self.inner.len_bytes()
    }

    /// The device address of the first element.
    #[getter]
    fn ptr(&self) -> u64 {
        self.inner.device_ptr()
    }

    /// The CUDA Array Interface, version 3 (CuPy, numba, torch.as_tensor).
    #[getter]
    fn __cuda_array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("shape", PyTuple::new(py, self.inner.shape())?)?;
        dict.set_item("typestr", typestr(self.inner.dtype())?)?;
        let ptr = if self.inner.len_bytes() == 0 { 0 } else { self.inner.device_ptr() };
        dict.set_item("data", (ptr, false))?;
        dict.set_item("strides", py.None())?;
        dict.set_item("version", 3)?;
        Ok(dict)
    }

    /// A DLPack capsule of the data (torch.from_dlpack, cupy.from_dlpack). The data is
    /// ready on every stream, so `stream` needs no wait; no copy is made.
    #[pyo3(signature = (stream=None, max_version=None, dl_device=None, copy=None))]
    fn __dlpack__<'py>(
        slf: &Bound<'py, Self>,
        stream: Option<&Bound<'py, PyAny>>,
        max_version: Option<&Bound<'py, PyAny>>,
        dl_device: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = (stream, max_version);
        let me = slf.get();
        let here = (dlpack::CUDA, me.inner.ordinal());
        if let Some(wanted) = dl_device
            && wanted.extract::<(i32, usize)>()? != here
        {
            return Err(PyBufferError::new_err(format!("CudaArray lives on {here:?}, not {wanted}: copy it first")));
        }
        if copy == Some(true) {
            return Err(PyBufferError::new_err("CudaArray exports without a copy only (copy=True)"));
        }
        let device = dlpack::Device {
            device_type: dlpack::CUDA,
            device_id: i32::try_from(me.inner.ordinal()).unwrap_or(i32::MAX),
        };
        let data = me.inner.device_ptr();
        let dtype = dl_type(me.inner.dtype())?;
        dlpack::capsule(slf.py(), slf.clone().into_any().unbind(), data, device, dtype, me.inner.shape())
    }

    fn __dlpack_device__(&self) -> (i32, usize) {
        (dlpack::CUDA, self.inner.ordinal())
    }

    /// The data copied to the host as a numpy array.
    fn to_numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let bytes = py.detach(|| self.inner.to_host_bytes()).py_err()?;
        // Timestamps as a CPU read gives them (the exports, DLPack and the CUDA Array
        // Interface, carry them as int64: neither has a datetime type).
        let dtype = match self.inner.dtype() {
            DType::Timestamp => "<M8[ns]",
            other => typestr(other)?,
        };
        let flat = py.import("numpy")?.call_method1("frombuffer", (PyBytes::new(py, &bytes), dtype))?;
        flat.call_method1("reshape", (PyTuple::new(py, self.inner.shape())?,))?.call_method0("copy")
    }

    fn __repr__(&self) -> String {
        format!(
            "CudaArray(shape={:?}, dtype={}, device=cuda:{})",
            self.inner.shape(),
            self.inner.dtype(),
            self.inner.ordinal()
        )
    }
}

/// A host buffer exported through the same DLPack code as [`CudaArray`], so the tests can
/// check that code on machines without a GPU. Holds `0, 1, ..., len - 1` as uint16.
#[pyclass(frozen, module = "atlas._atlas")]
pub struct _DlpackProbe {
    values: Vec<u16>,
}

#[pymethods]
impl _DlpackProbe {
    #[new]
    fn new(len: u16) -> Self {
        Self { values: (0..len).collect() }
    }

    #[pyo3(signature = (stream=None, max_version=None, dl_device=None, copy=None))]
    fn __dlpack__<'py>(
        slf: &Bound<'py, Self>,
        stream: Option<&Bound<'py, PyAny>>,
        max_version: Option<&Bound<'py, PyAny>>,
        dl_device: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = (stream, max_version, dl_device, copy);
        let values = &slf.get().values;
        let device = dlpack::Device { device_type: dlpack::CPU, device_id: 0 };
        let data = values.as_ptr() as u64;
        let shape = [values.len() as u64];
        dlpack::capsule(slf.py(), slf.clone().into_any().unbind(), data, device, dl_type(DType::UInt16)?, &shape)
    }

    #[staticmethod]
    fn __dlpack_device__() -> (i32, usize) {
        (dlpack::CPU, 0)
    }
}
