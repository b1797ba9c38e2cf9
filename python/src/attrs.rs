//! `Attrs`: the typed attributes of the store, a dataset or an array.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{attr_from_py, attr_to_py, attrs_to_py};
use crate::errors::{IntoPy, is_atlas_error};

/// Whose attributes a handle reaches (for `repr`).
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Store,
    Dataset,
    Array,
}

/// The attributes of a store, dataset or array; changes are durable at the next flush.
#[pyclass(frozen, module = "atlas._atlas")]
pub struct Attrs {
    inner: atlas::Attrs,
    target: Target,
}

impl Attrs {
    pub fn new(inner: atlas::Attrs, target: Target) -> Self {
        Self { inner, target }
    }
}

#[pymethods]
impl Attrs {
    /// All attributes as a dict, sorted by key.
    fn all<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let all = py.detach(|| self.inner.all()).py_err()?;
        attrs_to_py(py, &all)
    }

    /// One attribute, or `None` when the key is not set.
    fn get<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let value = py.detach(|| self.inner.get(key)).py_err()?;
        value.map(|v| attr_to_py(py, &v)).transpose()
    }

    /// Sets an attribute; `dtype` converts or narrows it (`"int8"`, `"float32"`,
    /// `"timestamp_nanoseconds"`...).
    #[pyo3(signature = (key, value, dtype=None))]
    fn set(&self, py: Python<'_>, key: &str, value: &Bound<'_, PyAny>, dtype: Option<&str>) -> PyResult<()> {
        // Atlas's own refusals say which attribute; any other error passes as it came.
        let named = |e: PyErr| {
            if is_atlas_error(py, &e) {
                PyErr::from_type(e.get_type(py), format!("attribute {key:?}: {}", e.value(py)))
            } else {
                e
            }
        };
        let value = attr_from_py(value, dtype).map_err(named)?;
        py.detach(|| self.inner.set(key, value)).py_err()
    }

    /// Removes an attribute; `NotFoundError` if it is not set.
    fn remove(&self, py: Python<'_>, key: &str) -> PyResult<()> {
        py.detach(|| self.inner.remove(key)).py_err()
    }

    fn __repr__(&self) -> String {
        format!("<atlas._atlas.Attrs of {:?}>", self.target).to_lowercase()
    }
}
