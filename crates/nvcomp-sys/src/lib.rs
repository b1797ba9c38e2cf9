//! Bindings to NVIDIA nvCOMP's batched C API (zstd, LZ4, deflate), written by hand and loaded
//! at run time: building needs neither CUDA nor nvCOMP, and no NVIDIA header or library is
//! part of this crate.
//!
//! - [`Nvcomp::load`] finds libnvcomp (`ATLAS_NVCOMP_LIB`, the system loader's
//!   `libnvcomp.so.6`/`.5`/`.4`, then pip-installed `nvidia-libnvcomp-cu12`/`-cu13` or
//!   `nvidia-nvcomp-cu12` wheels) and binds the calls of its ABI, chosen from
//!   `nvcompGetProperties().version` (4.x, 5.x and 6.x differ in arguments under the same
//!   names).
//! - [`Nvcomp::decompress_batch`] and [`Nvcomp::compress_batch`] are the safe layer: device
//!   buffers and byte ranges in, one result per chunk out. The raw `*_async` calls below them
//!   are `unsafe`.
//!
//! Loading the library and reading its version need no GPU and no driver; the batch calls
//! need both (through `cudarc`, which opens libcuda at run time).

mod batch;
mod error;
pub mod ffi;
mod library;
mod locate;
mod status;

pub use batch::{ChunkResult, MAX_CALL_RAW_BYTES, MAX_CHUNK_BYTES};
pub use error::{Error, Result};
pub use library::{Algo, CompressCall, DecompressCall, Nvcomp, Version};
pub use locate::ENV_VAR;
pub use status::Status;

/// Whether a CUDA driver library (libcuda) can be opened on this machine.
#[must_use]
pub fn cuda_driver_present() -> bool {
    // SAFETY: only tries to open libcuda; nothing is called.
    unsafe { cudarc::driver::sys::is_culib_present() }
}
