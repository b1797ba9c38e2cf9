//! Raw declarations of the parts of nvCOMP's C API that Atlas uses, written by hand from the
//! public documentation of nvCOMP 4.2, 5.x and 6.0 (no NVIDIA header is copied here).
//!
//! The same symbol names take different arguments across major versions, so each call has
//! one function-pointer type per ABI; [`crate::Nvcomp`] picks by the version the library
//! reports. All pointer arrays, size arrays and status arrays live in device memory.

use std::ffi::{c_char, c_void};

/// `nvcompStatus_t`: a C enum, 32 bits.
pub type RawStatus = i32;
/// `cudaStream_t` / `CUstream`: an opaque pointer; null is the legacy default stream.
pub type Stream = *mut c_void;

/// `nvcompProperties_t`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Properties {
    /// Library version as `major * 1000 + minor * 100 + patch`.
    pub version: u32,
    /// CUDA runtime version the library was built with.
    pub cudart_version: u32,
}

/// `nvcompAlignmentRequirements_t`: minimum alignment of each input, output and temp buffer.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Alignments {
    /// Of each compressed (decompress input) or uncompressed (compress input) buffer.
    pub input: usize,
    /// Of each output buffer.
    pub output: usize,
    /// Of the temp buffer.
    pub temp: usize,
}

/// The 64-byte options struct of 5.x and 6.x (`nvcompBatched*CompressOpts_t` and
/// `*DecompressOpts_t`), passed by value. All zero is the default for every codec
/// (decompress backend `DEFAULT`, LZ4 data type `CHAR`, deflate algorithm 0, zstd reserved).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Opts64 {
    /// The first field of every options struct (backend, data type or algorithm).
    pub head: i32,
    /// Reserved, zero.
    pub reserved: [c_char; 60],
}

impl Default for Opts64 {
    fn default() -> Self {
        Self { head: 0, reserved: [0; 60] }
    }
}

/// The 4-byte per-codec options struct of 4.x (`nvcompBatched{Zstd,LZ4,Deflate}Opts_t`):
/// zstd's `reserved`, LZ4's data type, deflate's algorithm; zero is the default.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Opts4 {
    /// The one field.
    pub head: i32,
}

/// `nvcompGetProperties`.
pub type GetProperties = unsafe extern "C" fn(*mut Properties) -> RawStatus;
/// `nvcompGetStatusString`.
pub type GetStatusString = unsafe extern "C" fn(RawStatus) -> *const c_char;

/// `nvcompBatched*DecompressGetTempSizeEx` (4.x): `(n, max_chunk, *temp, max_total)`.
pub type DecompressTempSizeV4 = unsafe extern "C" fn(usize, usize, *mut usize, usize) -> RawStatus;
/// `nvcompBatched*DecompressGetTempSizeAsync` (5.x): `(n, max_chunk, opts, *temp, max_total)`.
pub type DecompressTempSizeV5 = unsafe extern "C" fn(usize, usize, Opts64, *mut usize, usize) -> RawStatus;
/// `nvcompBatched*DecompressGetTempSize` (6.x): `(n, max_chunk, opts, *temp, max_total, stream)`.
pub type DecompressTempSizeV6 = unsafe extern "C" fn(usize, usize, Opts64, *mut usize, usize, Stream) -> RawStatus;

/// `nvcompBatched*DecompressGetRequiredAlignments` (5.x, 6.x). 4.x has constants instead.
pub type DecompressAlignments = unsafe extern "C" fn(Opts64, *mut Alignments) -> RawStatus;

/// `nvcompBatched*DecompressAsync` (4.x): comp ptrs, comp bytes, out capacities, out actual
/// bytes, n, temp, temp bytes, out ptrs, statuses, stream.
pub type DecompressV4 = unsafe extern "C" fn(
    *const *const c_void,
    *const usize,
    *const usize,
    *mut usize,
    usize,
    *mut c_void,
    usize,
    *const *mut c_void,
    *mut RawStatus,
    Stream,
) -> RawStatus;
/// `nvcompBatched*DecompressAsync` (5.x, 6.x): as 4.x with the options before the statuses.
pub type DecompressV5 = unsafe extern "C" fn(
    *const *const c_void,
    *const usize,
    *const usize,
    *mut usize,
    usize,
    *mut c_void,
    usize,
    *const *mut c_void,
    Opts64,
    *mut RawStatus,
    Stream,
) -> RawStatus;

/// `nvcompBatched*CompressGetRequiredAlignments`: `(opts, *alignments)`; 4-byte options in 4.x.
pub type CompressAlignmentsV4 = unsafe extern "C" fn(Opts4, *mut Alignments) -> RawStatus;
/// As [`CompressAlignmentsV4`] with the 64-byte options of 5.x and 6.x.
pub type CompressAlignmentsV5 = unsafe extern "C" fn(Opts64, *mut Alignments) -> RawStatus;

/// `nvcompBatched*CompressGetTempSize` (4.x): `(n, max_chunk, opts, *temp)`.
pub type CompressTempSizeV4 = unsafe extern "C" fn(usize, usize, Opts4, *mut usize) -> RawStatus;
/// `nvcompBatched*CompressGetTempSizeAsync` (5.x): `(n, max_chunk, opts, *temp, max_total)`.
pub type CompressTempSizeV5 = unsafe extern "C" fn(usize, usize, Opts64, *mut usize, usize) -> RawStatus;
/// `nvcompBatched*CompressGetTempSize` (6.x): `(n, max_chunk, opts, *temp, max_total, stream)`.
pub type CompressTempSizeV6 = unsafe extern "C" fn(usize, usize, Opts64, *mut usize, usize, Stream) -> RawStatus;

/// `nvcompBatched*CompressGetMaxOutputChunkSize`: `(max_chunk, opts, *max_out)`.
pub type CompressMaxOutputV4 = unsafe extern "C" fn(usize, Opts4, *mut usize) -> RawStatus;
/// As [`CompressMaxOutputV4`] with the 64-byte options.
pub type CompressMaxOutputV5 = unsafe extern "C" fn(usize, Opts64, *mut usize) -> RawStatus;

/// `nvcompBatched*CompressAsync` (4.x): in ptrs, in bytes, max chunk, n, temp, temp bytes,
/// out ptrs, out bytes, opts, stream (no statuses).
pub type CompressV4 = unsafe extern "C" fn(
    *const *const c_void,
    *const usize,
    usize,
    usize,
    *mut c_void,
    usize,
    *const *mut c_void,
    *mut usize,
    Opts4,
    Stream,
) -> RawStatus;
/// `nvcompBatched*CompressAsync` (5.x, 6.x): as 4.x with statuses after the options.
pub type CompressV5 = unsafe extern "C" fn(
    *const *const c_void,
    *const usize,
    usize,
    usize,
    *mut c_void,
    usize,
    *const *mut c_void,
    *mut usize,
    Opts64,
    *mut RawStatus,
    Stream,
) -> RawStatus;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_structs_have_the_c_sizes() {
        assert_eq!(size_of::<Opts64>(), 64);
        assert_eq!(size_of::<Opts4>(), 4);
        assert_eq!(size_of::<Properties>(), 8);
        assert_eq!(size_of::<Alignments>(), 24);
    }
}
