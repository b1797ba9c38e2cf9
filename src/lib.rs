//! Atlas: an embedded store for chunked N-dimensional arrays.
//!
//! A store is one directory: a metadata file (`atlas.{json,msgpack}[.zst|.lz4]`, found by
//! name on open) holding the dataset registry, array schemas and attributes, and immutable
//! fragment files holding encoded chunks ("blocks"). Each block records the codec (zstd,
//! lz4, none) and filter (byte shuffle, optionally with byte delta; or element delta, then
//! shuffle) that wrote it and a checksum of its raw bytes, so an array's codec can change
//! mid-life and every read is verified. [`Atlas::flush`] commits
//! atomically: a crash at any point leaves the previous commit intact.
//!
//! ```
//! use atlas::{ArraySpec, Atlas, Codec, DType, StoreConfig};
//! use ndarray::Array2;
//!
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("ocean");
//! let store = Atlas::create(&path, StoreConfig { codec: Codec::Lz4, ..StoreConfig::default() })?;
//! let run = store.create_dataset("run42")?;
//! run.define_array("temp", ArraySpec::new(DType::Float32, [100, 200]).dims(["depth", "x"]))?;
//! let data = Array2::from_shape_fn((100, 200), |(i, j)| (i * 200 + j) as f32);
//! run.write_array("temp", &[0, 0], data.view())?;
//! store.flush()?;
//!
//! let reopened = Atlas::open(&path)?; // format found from the file name
//! let part = reopened.open_dataset("run42")?.read_array::<f32>("temp", &[10, 20], &[2, 3])?;
//! assert_eq!(part[[1, 2]], (11 * 200 + 22) as f32);
//! # Ok::<(), atlas::Error>(())
//! ```
//!
//! # Features
//! - `test-util`: I/O fault injection for tests (the `testing` module). Off by default.
//! - `gpu`: reads decoded on an NVIDIA GPU through nvCOMP ([`Device::Cuda`],
//!   `ArrayHandle::read_to_device`, which exists with the feature); CUDA and libnvcomp are
//!   loaded at run time, so it builds anywhere. Off by default.
//!
//! The crate builds with no system libraries beyond a C compiler (for zstd).
//!
//! # Design
//! docs/ARCHITECTURE.md (rooms, read and write paths, threads, invariants),
//! docs/FORMAT.md (every byte on disk and the commit protocol) and docs/GUARANTEES.md
//! (durability, crash, concurrency and limits, and how each is tested).
//! Atlas runs on little-endian hosts only; the on-disk format is little-endian.

#[cfg(target_endian = "big")]
compile_error!("Atlas supports little-endian hosts only");

mod codec;
mod engine;
mod error;
mod fragment;
mod gpu;
mod io;
mod meta;
mod store;

/// Test support (feature `test-util`): I/O fault injection, metadata files resealed with a
/// fresh checksum for fuzzing, and a count of the read path a test means to take.
#[cfg(feature = "test-util")]
pub mod testing {
    pub use crate::io::fault::Fault;
    pub use crate::io::fault::control::{FaultGuard, inject};

    /// `bytes`, a metadata file of `format` and `compression`, parsed and encoded again
    /// with its checksum recomputed (values kept, layout made canonical); `None` when it
    /// does not parse.
    #[must_use]
    pub fn reseal_metadata(
        bytes: &[u8],
        format: crate::MetaFormat,
        compression: crate::MetaCompression,
    ) -> Option<Vec<u8>> {
        crate::meta::reseal(bytes, format, compression)
    }

    /// How many rows (or parts of rows) verified reads have hashed as they copied them out,
    /// in one pass, since the process started: a read into an output of 8 MiB or more
    /// does so for rows of whole 64-byte stripes where the CPU has AVX2.
    #[must_use]
    pub fn rows_hashed_as_copied() -> u64 {
        crate::io::ROWS_HASHED_AS_COPIED.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The CUDA driver crate Atlas's GPU types come from (feature `gpu`), re-exported so callers
/// use the same version.
#[cfg(feature = "gpu")]
pub use cudarc;
pub use error::{EntityKind, Error, GpuUnavailable, Result};
pub use gpu::Device;
#[cfg(feature = "gpu")]
pub use gpu::DeviceArray;
pub use meta::{
    ArrayMeta, ArrayStats, AttrValue, Attributes, BlockStats, Codec, DType, Limits, MAX_NDIM, MetaCompression,
    MetaFormat, Scalar, Shuffle,
};
pub use store::{
    ArrayHandle, ArraySpec, Atlas, Attrs, BadBlock, BadStats, Batch, BlockCodec, BlockInfo, BlockState, ChangeHold,
    CompactReport, DEFAULT_CHUNK_BYTES, Dataset, Element, OpenOptions, ReadOptions, StoreConfig, VerifyReport,
    compress_batch, decompress_batch, default_chunk_shape,
};

/// The README's Rust code, compiled and run as doctests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
