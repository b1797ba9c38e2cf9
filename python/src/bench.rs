//! Timings of the Rust API alone, for `python/bench/`: the same read or write the Python
//! layer does, called from Rust with no Python in between, so the bench can report what
//! the binding adds.

use std::time::Instant;

use atlas::{DType, Element};
use ndarray::{ArrayView, IxDyn};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::array::by_element;
use crate::errors::{IntoPy, Kind, err};
use crate::store::Store;

/// Seconds `ArrayHandle::read` (allocating, like `read_array`) takes for the whole array.
#[pyfunction]
#[pyo3(name = "_bench_rust_read")]
pub fn bench_rust_read(py: Python<'_>, store: &Store, dataset: &str, array: &str) -> PyResult<f64> {
    let handle = py.detach(|| store.inner.open_dataset(dataset).and_then(|d| d.array(array))).py_err()?;
    let meta = py.detach(|| handle.meta()).py_err()?;
    by_element!(meta.dtype, time_read(py, &handle, &meta.shape), strings => err(Kind::DTypeMismatch, "numeric arrays only"))
}

fn time_read<T: Element>(py: Python<'_>, handle: &atlas::ArrayHandle, shape: &[u64]) -> PyResult<f64> {
    py.detach(|| {
        let origin = vec![0; shape.len()];
        let start = Instant::now();
        let out = handle.read::<T>(&origin, shape)?;
        let seconds = start.elapsed().as_secs_f64();
        drop(out);
        Ok(seconds)
    })
    .py_err()
}

/// Seconds `ArrayHandle::write` of `data` at the origin plus `Atlas::flush` take.
#[pyfunction]
#[pyo3(name = "_bench_rust_write")]
pub fn bench_rust_write(
    py: Python<'_>,
    store: &Store,
    dataset: &str,
    array: &str,
    data: &Bound<'_, PyAny>,
) -> PyResult<f64> {
    let handle = py.detach(|| store.inner.open_dataset(dataset).and_then(|d| d.array(array))).py_err()?;
    let dtype = py.detach(|| handle.meta()).py_err()?.dtype;
    let atlas = &store.inner;
    by_element!(dtype, time_write(py, atlas, &handle, dtype, data), strings => err(Kind::DTypeMismatch, "numeric arrays only"))
}

fn time_write<T: Element + numpy::Element>(
    py: Python<'_>,
    atlas: &atlas::Atlas,
    handle: &atlas::ArrayHandle,
    dtype: DType,
    data: &Bound<'_, PyAny>,
) -> PyResult<f64> {
    let Ok(typed) = data.cast::<PyArrayDyn<T>>() else {
        return err(Kind::DTypeMismatch, format!("the bench writes {dtype} arrays from matching numpy arrays"));
    };
    let guard = typed.readonly();
    let Ok(slice) = guard.as_slice() else {
        return err(Kind::InvalidArgument, "the bench writes C-contiguous, aligned arrays");
    };
    let view = ArrayView::from_shape(IxDyn(guard.shape()), slice).expect("the slice holds the array's elements");
    py.detach(|| {
        let origin = vec![0; view.ndim()];
        let start = Instant::now();
        handle.write(&origin, view)?;
        atlas.flush()?;
        Ok(start.elapsed().as_secs_f64())
    })
    .py_err()
}
