//! The native half of the `atlas` Python module (`atlas._atlas`): `PyO3` classes over the
//! public `atlas::` API. The Python package in `python/atlas/` wraps them with
//! atlas-python 0.10's API, numpy-style indexing, xarray helpers and notebook views.
//!
//! Rules kept throughout: only public `atlas::` paths; every call that may do I/O or codec
//! work runs with the GIL released (`Python::detach`); numpy buffers are read into and
//! written from in place; every `atlas::Error` becomes an `atlas.AtlasError` subclass in
//! `errors::to_py`.

mod array;
mod attrs;
mod bench;
mod convert;
mod device;
#[allow(unsafe_code)] // FFI: DLPack capsules (the module says why and how).
mod dlpack;
mod errors;
mod store;

use pyo3::prelude::*;

#[pymodule]
fn _atlas(module: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(module)?;
    module.add_class::<store::Store>()?;
    module.add_class::<store::Dataset>()?;
    module.add_class::<store::ChangeHold>()?;
    module.add_class::<array::Array>()?;
    module.add_class::<attrs::Attrs>()?;
    module.add_class::<device::CudaArray>()?;
    module.add_class::<device::_DlpackProbe>()?;
    module.add_function(wrap_pyfunction!(bench::bench_rust_read, module)?)?;
    module.add_function(wrap_pyfunction!(bench::bench_rust_write, module)?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
