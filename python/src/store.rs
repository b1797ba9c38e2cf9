//! `Store` and `Dataset`: thin native handles on `atlas::Atlas` and `atlas::Dataset`. Every
//! call that may touch disk or run a codec releases the GIL (`Python::detach`); the
//! pure-Python layer (`atlas/_core.py`, `_array.py`, `_html.py` and their helpers) adds
//! defaults, compatibility rules and notebook views.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use atlas::{ArraySpec, Atlas, DType, Limits, OpenOptions, StoreConfig};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::array::{Array, read_across_stacked};
use crate::attrs::{Attrs, Target};
use crate::convert::{
    parse_codec, parse_dtype, parse_meta_compression, parse_meta_format, parse_shuffle, scalar_from_py, stats_to_py,
};
use crate::device::{across_to_cuda, parse_device};
use crate::errors::{IntoPy, to_py};

/// The limits and memory budgets given, the others at their defaults.
fn open_options(
    max_meta_bytes: Option<u64>,
    max_chunk_bytes: Option<u64>,
    staging_bytes: Option<u64>,
    chunk_cache_bytes: Option<u64>,
) -> OpenOptions {
    let mut limits = Limits::default();
    limits.max_meta_bytes = max_meta_bytes.unwrap_or(limits.max_meta_bytes);
    limits.max_chunk_bytes = max_chunk_bytes.unwrap_or(limits.max_chunk_bytes);
    let mut options = OpenOptions::with_limits(limits);
    if let Some(bytes) = staging_bytes {
        options = options.staging_bytes(bytes);
    }
    if let Some(bytes) = chunk_cache_bytes {
        options = options.chunk_cache_bytes(bytes);
    }
    options
}

/// A store: one directory of metadata and fragment files (native half of `atlas.Atlas`).
#[pyclass(frozen, module = "atlas._atlas")]
pub struct Store {
    pub(crate) inner: Atlas,
}

#[pymethods]
impl Store {
    /// Creates a new store in `path` and opens it with the limits and memory budgets given
    /// (those left out keep their defaults).
    #[staticmethod]
    #[pyo3(signature = (
        path, codec="zstd", shuffle="auto", meta_format="json", meta_compression="none",
        max_meta_bytes=None, max_chunk_bytes=None, staging_bytes=None, chunk_cache_bytes=None,
    ))]
    #[allow(clippy::too_many_arguments)] // Python's keywords, one per option
    fn create(
        py: Python<'_>,
        path: PathBuf,
        codec: &str,
        shuffle: &str,
        meta_format: &str,
        meta_compression: &str,
        max_meta_bytes: Option<u64>,
        max_chunk_bytes: Option<u64>,
        staging_bytes: Option<u64>,
        chunk_cache_bytes: Option<u64>,
    ) -> PyResult<Self> {
        let config = StoreConfig {
            codec: parse_codec(codec)?,
            shuffle: parse_shuffle(shuffle)?,
            meta_format: parse_meta_format(meta_format)?,
            meta_compression: parse_meta_compression(meta_compression)?,
        };
        let options = open_options(max_meta_bytes, max_chunk_bytes, staging_bytes, chunk_cache_bytes);
        let inner = py.detach(|| Atlas::create_with(&path, config, &options)).py_err()?;
        Ok(Self { inner })
    }

    /// Opens the store in `path`; its metadata encoding is found from the file name. The
    /// limits and memory budgets left out keep their defaults.
    #[staticmethod]
    #[pyo3(signature = (path, max_meta_bytes=None, max_chunk_bytes=None, staging_bytes=None, chunk_cache_bytes=None, read_only=false))]
    fn open(
        py: Python<'_>,
        path: PathBuf,
        max_meta_bytes: Option<u64>,
        max_chunk_bytes: Option<u64>,
        staging_bytes: Option<u64>,
        chunk_cache_bytes: Option<u64>,
        read_only: bool,
    ) -> PyResult<Self> {
        let options =
            open_options(max_meta_bytes, max_chunk_bytes, staging_bytes, chunk_cache_bytes).read_only(read_only);
        let inner = py.detach(|| Atlas::open_with(&path, &options)).py_err()?;
        Ok(Self { inner })
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.path().to_path_buf()
    }

    #[getter]
    fn meta_file_name(&self, py: Python<'_>) -> &'static str {
        py.detach(|| self.inner.meta_file_name())
    }

    #[getter]
    fn generation(&self, py: Python<'_>) -> u64 {
        py.detach(|| self.inner.generation())
    }

    #[getter]
    fn codec(&self, py: Python<'_>) -> String {
        py.detach(|| self.inner.codec()).to_string()
    }

    #[getter]
    fn shuffle(&self, py: Python<'_>) -> &'static str {
        py.detach(|| self.inner.shuffle()).name()
    }

    #[getter]
    fn has_pending_changes(&self, py: Python<'_>) -> bool {
        py.detach(|| self.inner.has_pending_changes())
    }

    fn list_datasets(&self, py: Python<'_>) -> Vec<String> {
        py.detach(|| self.inner.list_datasets())
    }

    fn dataset_exists(&self, py: Python<'_>, name: &str) -> bool {
        py.detach(|| self.inner.dataset_exists(name))
    }

    fn create_dataset(&self, py: Python<'_>, name: &str) -> PyResult<Dataset> {
        let inner = py.detach(|| self.inner.create_dataset(name)).py_err()?;
        Ok(Dataset { store: self.inner.clone(), inner })
    }

    fn open_dataset(&self, py: Python<'_>, name: &str) -> PyResult<Dataset> {
        let inner = py.detach(|| self.inner.open_dataset(name)).py_err()?;
        Ok(Dataset { store: self.inner.clone(), inner })
    }

    fn delete_dataset(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        py.detach(|| self.inner.delete_dataset(name)).py_err()
    }

    fn rename_dataset(&self, py: Python<'_>, from: &str, to: &str) -> PyResult<()> {
        py.detach(|| self.inner.rename_dataset(from, to)).py_err()
    }

    fn move_array(&self, py: Python<'_>, from: (String, String), to: (String, String)) -> PyResult<()> {
        py.detach(|| self.inner.move_array((&from.0, &from.1), (&to.0, &to.1))).py_err()
    }

    fn copy_array(&self, py: Python<'_>, from: (String, String), to: (String, String)) -> PyResult<()> {
        py.detach(|| self.inner.copy_array((&from.0, &from.1), (&to.0, &to.1))).py_err()
    }

    /// Distinct array names over all datasets, sorted.
    fn list_arrays(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        py.detach(|| {
            let mut names = std::collections::BTreeSet::new();
            for dataset in self.inner.list_datasets() {
                match self.inner.open_dataset(&dataset).and_then(|d| d.list_arrays()) {
                    Ok(arrays) => names.extend(arrays),
                    // Deleted by another handle meanwhile.
                    Err(atlas::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(names.into_iter().collect())
        })
        .py_err()
    }

    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.flush()).py_err()
    }

    /// Takes the writer lock and moves to the newest commit; returns the hold to give
    /// `release_if_unchanged`.
    fn begin_change(&self, py: Python<'_>) -> PyResult<ChangeHold> {
        let hold = py.detach(|| self.inner.begin_change()).py_err()?;
        Ok(ChangeHold { store: self.inner.clone(), started: hold.started(), hold: Mutex::new(Some(hold)) })
    }

    /// Ends `hold` (taken on this store), discarding the session if its changes are all the
    /// hold's own (see `Atlas::abandon`); a hold already ended ends nothing. Returns whether
    /// it discarded.
    fn abandon(&self, py: Python<'_>, hold: &ChangeHold) -> bool {
        let taken = hold.hold.lock().unwrap_or_else(PoisonError::into_inner).take();
        taken.is_some_and(|taken| py.detach(|| self.inner.abandon(taken)))
    }

    /// Ends `hold` (taken on this store); a hold already ended ends nothing. Returns whether
    /// it gave the lock back.
    fn release_if_unchanged(&self, py: Python<'_>, hold: &ChangeHold) -> bool {
        let taken = hold.hold.lock().unwrap_or_else(PoisonError::into_inner).take();
        taken.is_some_and(|taken| py.detach(|| self.inner.release_if_unchanged(taken)))
    }

    fn discard(&self, py: Python<'_>) {
        py.detach(|| self.inner.discard());
    }

    fn refresh(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.refresh()).py_err()
    }

    /// Compacts the store; returns what it did as a dict.
    fn compact<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let report = py.detach(|| self.inner.compact()).py_err()?;
        let dict = PyDict::new(py);
        dict.set_item("fragments_before", report.fragments_before)?;
        dict.set_item("fragments_after", report.fragments_after)?;
        dict.set_item("before_bytes", report.before_bytes)?;
        dict.set_item("after_bytes", report.after_bytes)?;
        dict.set_item("blocks_kept", report.blocks_kept)?;
        dict.set_item("blocks_dropped", report.blocks_dropped)?;
        Ok(dict)
    }

    /// Sets the codec, and the shuffle when given; both are parsed before either changes.
    #[pyo3(signature = (codec, shuffle=None))]
    fn set_codec(&self, py: Python<'_>, codec: &str, shuffle: Option<&str>) -> PyResult<()> {
        let (codec, shuffle) = (parse_codec(codec)?, shuffle.map(parse_shuffle).transpose()?);
        py.detach(|| {
            self.inner.set_codec(codec)?;
            shuffle.map_or(Ok(()), |shuffle| self.inner.set_shuffle(shuffle))
        })
        .py_err()
    }

    #[pyo3(signature = (codec, shuffle=None))]
    fn recompress(&self, py: Python<'_>, codec: &str, shuffle: Option<&str>) -> PyResult<()> {
        let (codec, shuffle) = (parse_codec(codec)?, shuffle.map(parse_shuffle).transpose()?);
        py.detach(|| self.inner.recompress(codec, shuffle)).py_err()
    }

    /// The format or compression not given stays as it is.
    #[pyo3(signature = (meta_format=None, meta_compression=None))]
    fn set_meta_format(
        &self,
        py: Python<'_>,
        meta_format: Option<&str>,
        meta_compression: Option<&str>,
    ) -> PyResult<()> {
        let format = meta_format.map(parse_meta_format).transpose()?;
        let compression = meta_compression.map(parse_meta_compression).transpose()?;
        py.detach(|| self.inner.set_meta_format(format, compression)).py_err()
    }

    fn attrs(&self) -> Attrs {
        Attrs::new(self.inner.attrs(), Target::Store)
    }

    /// Decodes and checks every live block; returns `blocks_checked`, `bad_blocks` (each
    /// with array, coord, path, offset_bytes and error, the exception it would raise) and
    /// `bad_stats` (each with array, persisted, merged and unsound).
    fn verify<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let report = py.detach(|| self.inner.verify(&mut |_, _| {})).py_err()?;
        let bad = PyList::empty(py);
        for block in report.bad_blocks {
            let dict = PyDict::new(py);
            dict.set_item("array", &block.array)?;
            dict.set_item("coord", PyTuple::new(py, &block.coord)?)?;
            dict.set_item("path", &block.path)?;
            dict.set_item("offset_bytes", block.offset_bytes)?;
            dict.set_item("error", to_py(block.error).value(py))?;
            bad.append(dict)?;
        }
        let bad_stats = PyList::empty(py);
        for array in report.bad_stats {
            let dict = PyDict::new(py);
            dict.set_item("array", &array.array)?;
            dict.set_item("persisted", stats_to_py(py, &array.persisted, array.dtype)?)?;
            dict.set_item("merged", stats_to_py(py, &array.merged, array.dtype)?)?;
            dict.set_item("unsound", &array.unsound)?;
            bad_stats.append(dict)?;
        }
        let dict = PyDict::new(py);
        dict.set_item("blocks_checked", report.blocks_checked)?;
        dict.set_item("bad_blocks", bad)?;
        dict.set_item("bad_stats", bad_stats)?;
        Ok(dict)
    }

    /// `array` read from each of `datasets` into one new array of shape
    /// `(len(datasets), *shape)`; missing arrays and parts beyond an array's extent read as
    /// fill. Numeric, bool and timestamp arrays only. `device="cuda"` reads into GPU memory
    /// (a `CudaArray`).
    #[pyo3(signature = (array, datasets, start, shape, device=None))]
    fn read_across_stacked<'py>(
        &self,
        py: Python<'py>,
        array: &str,
        datasets: Vec<String>,
        start: Vec<u64>,
        shape: Vec<u64>,
        device: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(ordinal) = parse_device(device)? {
            let names: Vec<&str> = datasets.iter().map(String::as_str).collect();
            let array = across_to_cuda(py, &self.inner, array, &names, (&start, &shape), ordinal)?;
            return Ok(Bound::new(py, array)?.into_any());
        }
        read_across_stacked(py, &self.inner, array, &datasets, &start, &shape)
    }
}

/// A `Store.begin_change`, ended (once) by `Store.release_if_unchanged`, or when collected:
/// a `KeyboardInterrupt` raised as `begin_change` returns, before the caller has the hold,
/// would otherwise keep the session (and the writer lock) for good.
#[pyclass(frozen, module = "atlas._atlas")]
pub struct ChangeHold {
    store: atlas::Atlas,
    hold: Mutex<Option<atlas::ChangeHold>>,
    started: bool,
}

#[pymethods]
impl ChangeHold {
    /// Whether this hold started the session: no change was pending before it.
    #[getter]
    fn started(&self) -> bool {
        self.started
    }
}

impl Drop for ChangeHold {
    fn drop(&mut self) {
        let mut hold = self.hold.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        let store = &self.store;
        // Released without the GIL, as every call that takes the store's state is (another
        // thread may hold the state while it waits for the GIL).
        let _ = Python::try_attach(|py| py.detach(|| hold.take().map(|hold| store.release_if_unchanged(hold))));
        // Not attached (the interpreter finalizing, its thread holding the GIL), the hold is
        // left, not dropped (its drop takes the state): the handle's own drop commits.
        std::mem::forget(hold);
    }
}

/// A dataset of a store (native half of `atlas.DatasetView`).
#[pyclass(frozen, module = "atlas._atlas")]
pub struct Dataset {
    pub(crate) store: Atlas,
    pub(crate) inner: atlas::Dataset,
}

#[pymethods]
impl Dataset {
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// Defines an array. `dims` and `chunk_shape` default as in Rust (`dim_0`..., about
    /// 1 MiB per chunk); `codec`/`shuffle` `None` follow the store's.
    #[pyo3(signature = (name, dtype, shape, dims=None, chunk_shape=None, fill_value=None, codec=None, shuffle=None))]
    #[allow(clippy::too_many_arguments)] // one per field of the schema, as Python callers name them
    fn define_array(
        &self,
        py: Python<'_>,
        name: &str,
        dtype: &str,
        shape: Vec<u64>,
        dims: Option<Vec<String>>,
        chunk_shape: Option<Vec<u64>>,
        fill_value: Option<Bound<'_, PyAny>>,
        codec: Option<&str>,
        shuffle: Option<&str>,
    ) -> PyResult<Array> {
        let dtype: DType = parse_dtype(dtype)?;
        let mut spec = ArraySpec::new(dtype, shape);
        // None keeps the dtype's default (NaT for timestamps, 0 for the others).
        if let Some(fill_value) = fill_value.filter(|v| !v.is_none()) {
            spec = spec.fill_value(scalar_from_py(Some(&fill_value), dtype)?);
        }
        if let Some(dims) = dims {
            spec = spec.dims(dims);
        }
        if let Some(chunk_shape) = chunk_shape {
            spec = spec.chunk_shape(chunk_shape);
        }
        if let Some(codec) = codec {
            spec = spec.codec(parse_codec(codec)?);
        }
        if let Some(shuffle) = shuffle {
            spec = spec.shuffle(parse_shuffle(shuffle)?);
        }
        let handle = py.detach(|| self.inner.define_array(name, spec)).py_err()?;
        Ok(Array::new(self.store.clone(), handle))
    }

    fn array(&self, py: Python<'_>, name: &str) -> PyResult<Array> {
        let handle = py.detach(|| self.inner.array(name)).py_err()?;
        Ok(Array::new(self.store.clone(), handle))
    }

    fn has_array(&self, py: Python<'_>, name: &str) -> bool {
        py.detach(|| self.inner.array_exists(name))
    }

    fn delete_array(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        py.detach(|| self.inner.delete_array(name)).py_err()
    }

    fn dim_lengths(&self, py: Python<'_>, dim: &str) -> PyResult<Vec<u64>> {
        py.detach(|| self.inner.dim_lengths(dim)).py_err()
    }

    fn list_arrays(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        py.detach(|| self.inner.list_arrays()).py_err()
    }

    fn attrs(&self) -> Attrs {
        Attrs::new(self.inner.attrs(), Target::Dataset)
    }
}
