//! [`Nvcomp`]: a loaded libnvcomp, its version, and its batched calls dispatched by ABI.

use std::ffi::{CStr, c_void};
use std::fmt;
use std::path::Path;

use libloading::Library;

use crate::error::{Error, Result};
use crate::ffi::{self, Alignments, Opts4, Opts64, RawStatus, Stream};
use crate::{Status, locate};

/// A codec of nvCOMP's batched API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algo {
    /// Standard zstd frames, one per chunk.
    Zstd,
    /// Raw LZ4 blocks (no frame, no size prefix).
    Lz4,
    /// Raw deflate (RFC 1951); decompression only.
    Deflate,
}

impl Algo {
    /// The infix of its C symbols (`nvcompBatched<infix>DecompressAsync`).
    fn infix(self) -> &'static str {
        match self {
            Self::Zstd => "Zstd",
            Self::Lz4 => "LZ4",
            Self::Deflate => "Deflate",
        }
    }
}

/// An nvCOMP version, from `nvcompGetProperties().version` (`major*1000 + minor*100 + patch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major version: picks the ABI.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch level.
    pub patch: u32,
}

impl Version {
    /// Splits nvCOMP's packed version number.
    #[must_use]
    pub fn from_packed(v: u32) -> Self {
        Self { major: v / 1000, minor: v % 1000 / 100, patch: v % 100 }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The calling conventions this crate knows, one per major version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abi {
    V4,
    V5,
    V6,
}

impl Abi {
    fn of(version: Version) -> Result<Self> {
        match version.major {
            4 => Ok(Self::V4),
            5 => Ok(Self::V5),
            6 => Ok(Self::V6),
            _ => Err(Error::UnsupportedVersion(version)),
        }
    }
}

enum DecompressTemp {
    V4(ffi::DecompressTempSizeV4),
    V5(ffi::DecompressTempSizeV5),
    V6(ffi::DecompressTempSizeV6),
}

enum DecompressRun {
    V4(ffi::DecompressV4),
    V5(ffi::DecompressV5),
}

struct DecompressFns {
    /// `None` on 4.x, whose alignments are documented constants.
    alignments: Option<ffi::DecompressAlignments>,
    temp: DecompressTemp,
    run: DecompressRun,
}

enum CompressAlignments {
    V4(ffi::CompressAlignmentsV4),
    V5(ffi::CompressAlignmentsV5),
}

enum CompressTemp {
    V4(ffi::CompressTempSizeV4),
    V5(ffi::CompressTempSizeV5),
    V6(ffi::CompressTempSizeV6),
}

enum CompressMaxOutput {
    V4(ffi::CompressMaxOutputV4),
    V5(ffi::CompressMaxOutputV5),
}

enum CompressRun {
    V4(ffi::CompressV4),
    V5(ffi::CompressV5),
}

struct CompressFns {
    alignments: CompressAlignments,
    temp: CompressTemp,
    max_output: CompressMaxOutput,
    run: CompressRun,
}

struct CodecFns {
    decompress: DecompressFns,
    /// Bound for zstd and LZ4 only.
    compress: Option<CompressFns>,
}

/// The device buffers of one batched decompression, as raw device addresses. Every array
/// holds `count` elements.
#[derive(Debug, Clone, Copy)]
pub struct DecompressCall {
    /// `const void* const*`: where each compressed chunk starts.
    pub comp_ptrs: u64,
    /// `const size_t*`: each compressed chunk's length.
    pub comp_bytes: u64,
    /// `const size_t*`: each output buffer's capacity.
    pub out_capacity: u64,
    /// `size_t*`: filled with each chunk's decoded length.
    pub out_actual: u64,
    /// `void* const*`: where each chunk decodes to.
    pub out_ptrs: u64,
    /// `nvcompStatus_t*`: filled with each chunk's status.
    pub statuses: u64,
    /// Number of chunks.
    pub count: usize,
    /// Temp buffer and its length (from [`Nvcomp::decompress_temp_bytes`]).
    pub temp: u64,
    /// Length of `temp`.
    pub temp_bytes: usize,
}

/// The device buffers of one batched compression, as raw device addresses.
#[derive(Debug, Clone, Copy)]
pub struct CompressCall {
    /// `const void* const*`: each uncompressed chunk.
    pub in_ptrs: u64,
    /// `const size_t*`: each uncompressed chunk's length.
    pub in_bytes: u64,
    /// The longest uncompressed chunk.
    pub max_in_bytes: usize,
    /// Number of chunks.
    pub count: usize,
    /// Temp buffer (from [`Nvcomp::compress_temp_bytes`]).
    pub temp: u64,
    /// Length of `temp`.
    pub temp_bytes: usize,
    /// `void* const*`: each output buffer, [`Nvcomp::compress_max_output_bytes`] long.
    pub out_ptrs: u64,
    /// `size_t*`: filled with each compressed length.
    pub out_bytes: u64,
    /// `nvcompStatus_t*` (5.x and later; ignored on 4.x, which reports no per-chunk status).
    pub statuses: u64,
}

/// A loaded libnvcomp. Its functions stay valid as long as this value lives.
pub struct Nvcomp {
    origin: String,
    version: Version,
    cudart_version: u32,
    /// Absent before 5.x.
    status_string: Option<ffi::GetStatusString>,
    zstd: CodecFns,
    lz4: CodecFns,
    deflate: CodecFns,
    // Last: dropped after the function pointers above are gone.
    _lib: Library,
}

impl fmt::Debug for Nvcomp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nvcomp").field("origin", &self.origin).field("version", &self.version).finish_non_exhaustive()
    }
}

/// Looks up one symbol as a function pointer of type `F`.
///
/// # Safety
/// `F` must be the symbol's true C signature for this library version.
unsafe fn symbol<F: Copy>(lib: &Library, version: Version, name: &str) -> Result<F> {
    // SAFETY: the caller vouches for the signature; the pointer is used only while `lib` lives.
    unsafe { lib.get::<F>(name.as_bytes()) }.map(|s| *s).map_err(|source| Error::MissingSymbol {
        version,
        symbol: name.to_string(),
        source,
    })
}

impl Nvcomp {
    /// Loads libnvcomp from the search order: `ATLAS_NVCOMP_LIB`, the system loader
    /// (`libnvcomp.so.6`, `.5`, `.4`), then pip-installed nvCOMP wheels.
    ///
    /// # Errors
    /// [`Error::NotFound`] listing every place tried, or as [`Nvcomp::load_from`].
    pub fn load() -> Result<Self> {
        let (lib, origin) = locate::open(None)?;
        Self::bind(lib, origin)
    }

    /// Loads the library at `path`, with no fallback.
    ///
    /// # Errors
    /// [`Error::Load`]; [`Error::UnsupportedVersion`] for an ABI other than 4.x-6.x;
    /// [`Error::MissingSymbol`].
    pub fn load_from(path: &Path) -> Result<Self> {
        let (lib, origin) = locate::open(Some(path))?;
        Self::bind(lib, origin)
    }

    fn bind(lib: Library, origin: String) -> Result<Self> {
        let unknown = Version::from_packed(0);
        // SAFETY: these signatures are the same in every version.
        let get_properties: ffi::GetProperties = unsafe { symbol(&lib, unknown, "nvcompGetProperties")? };
        let status_string: Option<ffi::GetStatusString> =
            unsafe { symbol(&lib, unknown, "nvcompGetStatusString").ok() };
        let mut props = ffi::Properties::default();
        // SAFETY: writes one Properties; needs no GPU or driver.
        check("nvcompGetProperties", unsafe { get_properties(&raw mut props) })?;
        let version = Version::from_packed(props.version);
        let abi = Abi::of(version)?;
        let codec = |algo: Algo, with_compress: bool| -> Result<CodecFns> {
            // SAFETY: each signature below is the one documented for `abi`.
            unsafe { bind_codec(&lib, version, abi, algo, with_compress) }
        };
        Ok(Self {
            zstd: codec(Algo::Zstd, true)?,
            lz4: codec(Algo::Lz4, true)?,
            deflate: codec(Algo::Deflate, false)?,
            origin,
            version,
            cudart_version: props.cudart_version,
            status_string,
            _lib: lib,
        })
    }

    /// What the library was opened as: a path or a soname.
    #[must_use]
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The library's version.
    #[must_use]
    pub fn version(&self) -> Version {
        self.version
    }

    /// The CUDA runtime version it was built with (`major*1000 + minor*10`).
    #[must_use]
    pub fn cudart_version(&self) -> u32 {
        self.cudart_version
    }

    /// nvCOMP's own description of a status (this crate's, before 5.x).
    #[must_use]
    pub fn status_string(&self, status: Status) -> String {
        let Some(describe) = self.status_string else { return status.to_string() };
        // SAFETY: returns a static NUL-terminated string (or null) for any code.
        let ptr = unsafe { describe(status.0) };
        if ptr.is_null() {
            return status.to_string();
        }
        // SAFETY: non-null, NUL-terminated, static.
        unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned()
    }

    fn codec(&self, algo: Algo) -> &CodecFns {
        match algo {
            Algo::Zstd => &self.zstd,
            Algo::Lz4 => &self.lz4,
            Algo::Deflate => &self.deflate,
        }
    }

    fn compress_fns(&self, algo: Algo, call: &'static str) -> Result<&CompressFns> {
        self.codec(algo).compress.as_ref().ok_or(Error::Unsupported { algo, call })
    }

    /// Alignment each compressed input, output and the temp buffer need for decompression.
    ///
    /// # Errors
    /// [`Error::Call`].
    pub fn decompress_alignments(&self, algo: Algo) -> Result<Alignments> {
        let Some(get) = self.codec(algo).decompress.alignments else {
            // 4.x documents these as constants.
            let input = match algo {
                Algo::Zstd | Algo::Lz4 => 1,
                Algo::Deflate => 4,
            };
            let temp = if algo == Algo::Zstd { 8 } else { 1 };
            return Ok(Alignments { input, output: 1, temp });
        };
        let mut out = Alignments::default();
        // SAFETY: writes one Alignments.
        check("DecompressGetRequiredAlignments", unsafe { get(Opts64::default(), &raw mut out) })?;
        Ok(out)
    }

    /// Temp bytes a decompression of `count` chunks needs.
    ///
    /// # Errors
    /// [`Error::Call`].
    pub fn decompress_temp_bytes(&self, algo: Algo, count: usize, max_chunk: usize, max_total: usize) -> Result<usize> {
        let mut temp = 0usize;
        let t = &raw mut temp;
        // SAFETY: host-side size queries; the 6.x stream argument is unused for sizing, null.
        let status = unsafe {
            match self.codec(algo).decompress.temp {
                DecompressTemp::V4(f) => f(count, max_chunk, t, max_total),
                DecompressTemp::V5(f) => f(count, max_chunk, Opts64::default(), t, max_total),
                DecompressTemp::V6(f) => f(count, max_chunk, Opts64::default(), t, max_total, std::ptr::null_mut()),
            }
        };
        check("DecompressGetTempSize", status)?;
        Ok(temp)
    }

    /// Starts a batched decompression on `stream`.
    ///
    /// # Safety
    /// Every address in `call` must be device memory of the current context holding what its
    /// field says, alive and not written by others until the stream has run the call; `stream`
    /// must be a stream of that context (or null).
    ///
    /// # Errors
    /// [`Error::Call`] when the launch itself fails; per-chunk failures land in `statuses`.
    pub unsafe fn decompress_async(&self, algo: Algo, call: &DecompressCall, stream: Stream) -> Result<()> {
        let c = call;
        let (comp, comp_bytes, cap) =
            (c.comp_ptrs as *const *const c_void, c.comp_bytes as *const usize, c.out_capacity as *const usize);
        let (actual, temp, outs, statuses) = (
            c.out_actual as *mut usize,
            c.temp as *mut c_void,
            c.out_ptrs as *const *mut c_void,
            c.statuses as *mut RawStatus,
        );
        // SAFETY: the caller upholds the contract above.
        let status = unsafe {
            match self.codec(algo).decompress.run {
                DecompressRun::V4(f) => {
                    f(comp, comp_bytes, cap, actual, c.count, temp, c.temp_bytes, outs, statuses, stream)
                }
                DecompressRun::V5(f) => f(
                    comp,
                    comp_bytes,
                    cap,
                    actual,
                    c.count,
                    temp,
                    c.temp_bytes,
                    outs,
                    Opts64::default(),
                    statuses,
                    stream,
                ),
            }
        };
        check("DecompressAsync", status)
    }

    /// Alignments compression needs (zstd, LZ4).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for deflate; [`Error::Call`].
    pub fn compress_alignments(&self, algo: Algo) -> Result<Alignments> {
        let mut out = Alignments::default();
        let o = &raw mut out;
        // SAFETY: writes one Alignments.
        let status = unsafe {
            match self.compress_fns(algo, "compression")?.alignments {
                CompressAlignments::V4(f) => f(Opts4::default(), o),
                CompressAlignments::V5(f) => f(Opts64::default(), o),
            }
        };
        check("CompressGetRequiredAlignments", status)?;
        Ok(out)
    }

    /// Temp bytes a compression of `count` chunks needs.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for deflate; [`Error::Call`].
    pub fn compress_temp_bytes(&self, algo: Algo, count: usize, max_chunk: usize, max_total: usize) -> Result<usize> {
        let mut temp = 0usize;
        let t = &raw mut temp;
        let o = Opts64::default();
        // SAFETY: host-side size queries.
        let status = unsafe {
            match self.compress_fns(algo, "compression")?.temp {
                CompressTemp::V4(f) => f(count, max_chunk, Opts4::default(), t),
                CompressTemp::V5(f) => f(count, max_chunk, o, t, max_total),
                CompressTemp::V6(f) => f(count, max_chunk, o, t, max_total, std::ptr::null_mut()),
            }
        };
        check("CompressGetTempSize", status)?;
        Ok(temp)
    }

    /// The longest a compressed chunk of `max_chunk` input bytes can be.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for deflate; [`Error::Call`].
    pub fn compress_max_output_bytes(&self, algo: Algo, max_chunk: usize) -> Result<usize> {
        let mut out = 0usize;
        let p = &raw mut out;
        // SAFETY: host-side size query.
        let status = unsafe {
            match self.compress_fns(algo, "compression")?.max_output {
                CompressMaxOutput::V4(f) => f(max_chunk, Opts4::default(), p),
                CompressMaxOutput::V5(f) => f(max_chunk, Opts64::default(), p),
            }
        };
        check("CompressGetMaxOutputChunkSize", status)?;
        Ok(out)
    }

    /// Starts a batched compression on `stream`.
    ///
    /// # Safety
    /// As [`Nvcomp::decompress_async`], for the buffers of `call`.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for deflate; [`Error::Call`].
    pub unsafe fn compress_async(&self, algo: Algo, call: &CompressCall, stream: Stream) -> Result<()> {
        let c = call;
        let (ins, in_bytes) = (c.in_ptrs as *const *const c_void, c.in_bytes as *const usize);
        let (temp, outs, out_bytes) =
            (c.temp as *mut c_void, c.out_ptrs as *const *mut c_void, c.out_bytes as *mut usize);
        let (n, max) = (c.count, c.max_in_bytes);
        // SAFETY: the caller upholds the contract.
        let status = unsafe {
            match self.compress_fns(algo, "compression")?.run {
                CompressRun::V4(f) => {
                    f(ins, in_bytes, max, n, temp, c.temp_bytes, outs, out_bytes, Opts4::default(), stream)
                }
                CompressRun::V5(f) => {
                    let statuses = c.statuses as *mut RawStatus;
                    f(ins, in_bytes, max, n, temp, c.temp_bytes, outs, out_bytes, Opts64::default(), statuses, stream)
                }
            }
        };
        check("CompressAsync", status)
    }
}

fn check(call: &'static str, status: RawStatus) -> Result<()> {
    let status = Status(status);
    if status.is_success() { Ok(()) } else { Err(Error::Call { call, status }) }
}

/// Binds one codec's functions for `abi`.
///
/// # Safety
/// The function-pointer types chosen per ABI must match the library (they follow nvCOMP's
/// documentation for each major version).
unsafe fn bind_codec(lib: &Library, version: Version, abi: Abi, algo: Algo, with_compress: bool) -> Result<CodecFns> {
    let name = |suffix: &str| format!("nvcompBatched{}{suffix}", algo.infix());
    // SAFETY (every `symbol` call): the type chosen per ABI is the documented signature.
    let decompress = unsafe {
        DecompressFns {
            alignments: match abi {
                Abi::V4 => None,
                Abi::V5 | Abi::V6 => Some(symbol(lib, version, &name("DecompressGetRequiredAlignments"))?),
            },
            temp: match abi {
                Abi::V4 => DecompressTemp::V4(symbol(lib, version, &name("DecompressGetTempSizeEx"))?),
                Abi::V5 => DecompressTemp::V5(symbol(lib, version, &name("DecompressGetTempSizeAsync"))?),
                Abi::V6 => DecompressTemp::V6(symbol(lib, version, &name("DecompressGetTempSize"))?),
            },
            run: match abi {
                Abi::V4 => DecompressRun::V4(symbol(lib, version, &name("DecompressAsync"))?),
                Abi::V5 | Abi::V6 => DecompressRun::V5(symbol(lib, version, &name("DecompressAsync"))?),
            },
        }
    };
    if !with_compress {
        return Ok(CodecFns { decompress, compress: None });
    }
    let alignments = name("CompressGetRequiredAlignments");
    let max_output = name("CompressGetMaxOutputChunkSize");
    let run = name("CompressAsync");
    let compress = unsafe {
        match abi {
            Abi::V4 => CompressFns {
                alignments: CompressAlignments::V4(symbol(lib, version, &alignments)?),
                temp: CompressTemp::V4(symbol(lib, version, &name("CompressGetTempSize"))?),
                max_output: CompressMaxOutput::V4(symbol(lib, version, &max_output)?),
                run: CompressRun::V4(symbol(lib, version, &run)?),
            },
            Abi::V5 | Abi::V6 => CompressFns {
                alignments: CompressAlignments::V5(symbol(lib, version, &alignments)?),
                temp: if abi == Abi::V5 {
                    CompressTemp::V5(symbol(lib, version, &name("CompressGetTempSizeAsync"))?)
                } else {
                    CompressTemp::V6(symbol(lib, version, &name("CompressGetTempSize"))?)
                },
                max_output: CompressMaxOutput::V5(symbol(lib, version, &max_output)?),
                run: CompressRun::V5(symbol(lib, version, &run)?),
            },
        }
    };
    Ok(CodecFns { decompress, compress: Some(compress) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_unpack_and_pick_the_abi() {
        assert_eq!(Version::from_packed(6000).to_string(), "6.0.0");
        assert_eq!(Version::from_packed(5300), Version { major: 5, minor: 3, patch: 0 });
        assert_eq!(Version::from_packed(4200).to_string(), "4.2.0");
        assert_eq!(Abi::of(Version::from_packed(4200)).unwrap(), Abi::V4);
        assert_eq!(Abi::of(Version::from_packed(5000)).unwrap(), Abi::V5);
        assert_eq!(Abi::of(Version::from_packed(6000)).unwrap(), Abi::V6);
        assert!(matches!(Abi::of(Version::from_packed(3000)), Err(Error::UnsupportedVersion(_))));
    }
}
