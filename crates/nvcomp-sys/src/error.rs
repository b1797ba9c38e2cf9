//! The crate's [`Error`] enum.

use std::path::PathBuf;

use crate::Status;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong finding, loading or calling nvCOMP.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No libnvcomp was found in any of the places searched.
    #[error("libnvcomp not found; tried: {}", tried.join(", "))]
    NotFound {
        /// Every path or soname tried, in order, with why it failed.
        tried: Vec<String>,
    },
    /// A library was found at an explicit path but could not be loaded.
    #[error("cannot load {path}: {source}")]
    Load {
        /// The path given.
        path: PathBuf,
        /// The loader's error.
        source: libloading::Error,
    },
    /// The library lacks a function this crate needs for its version.
    #[error("libnvcomp {version} lacks {symbol}: {source}")]
    MissingSymbol {
        /// The library's version.
        version: crate::Version,
        /// The symbol looked up.
        symbol: String,
        /// The loader's error.
        source: libloading::Error,
    },
    /// The library's major version has an ABI this crate does not know (4, 5 and 6 are known).
    #[error("libnvcomp {0} has an unsupported ABI (supported: 4.x, 5.x, 6.x)")]
    UnsupportedVersion(crate::Version),
    /// The codec has no such call (deflate compression is not bound).
    #[error("{algo:?} has no {call} in these bindings")]
    Unsupported {
        /// The codec.
        algo: crate::Algo,
        /// The missing call.
        call: &'static str,
    },
    /// An nvCOMP call returned a failure status.
    #[error("{call} failed: {status}")]
    Call {
        /// The C function.
        call: &'static str,
        /// Its status.
        status: Status,
    },
    /// A batch argument is inconsistent (ranges outside a buffer, misaligned, too large).
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// The CUDA driver reported an error (or there is no driver).
    #[error("CUDA driver: {0}")]
    Cuda(#[from] cudarc::driver::DriverError),
}
