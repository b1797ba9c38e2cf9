//! The caller-facing settings: [`StoreConfig`] for `create`, [`ArraySpec`] for
//! `define_array`, [`ReadOptions`] for reads, and the [`Element`] types arrays hold.

use crate::error::Result;
use crate::gpu::Device;
use crate::meta::{Codec, DType, Limits, MetaCompression, MetaFormat, Scalar, Shuffle};

/// How a new store encodes its blocks and its metadata file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreConfig {
    /// Default codec for new blocks (zstd level 3 unless set).
    pub codec: Codec,
    /// Default shuffle setting for new blocks (`Auto`: on for multi-byte dtypes under a
    /// compressing codec).
    pub shuffle: Shuffle,
    /// Metadata serialisation (JSON unless set).
    pub meta_format: MetaFormat,
    /// Metadata compression (none unless set).
    pub meta_compression: MetaCompression,
}

/// Options of [`Atlas::open_with`](crate::Atlas::open_with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenOptions {
    /// What reading the store's files may cost.
    pub limits: Limits,
    /// Raw bytes of chunks the handle may hold in memory between flushes (default 64 MiB):
    /// the chunks of small writes (those whose chunks hold at most an eighth of this) and
    /// the unfinished last chunk of appends, encoded at the flush instead of at each write.
    /// A chunk counts for at least 256 bytes (about its bookkeeping). 0 holds none: every
    /// write and append encodes its chunks at once.
    pub staging_bytes: u64,
    /// Raw bytes of decoded chunks the handle keeps for reads that use only part of a
    /// chunk (default 32 MiB), least recently used out first: a loop of small reads
    /// decodes each chunk once. Chunks over an eighth of this are not kept; reads of whole
    /// chunks neither use nor fill it. Up to an eighth more is kept in buffers of chunks
    /// pushed out, for the next ones of their length decoded. 0 keeps none.
    pub chunk_cache_bytes: u64,
    /// Refuse every change ([`Error::ReadOnly`](crate::Error::ReadOnly)), as h5py's and
    /// zarr's mode `"r"` do: a handle for looking that a stray write cannot change (default
    /// false). It never takes the writer lock, so it needs no write permission.
    pub read_only: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            staging_bytes: STAGING_BYTES,
            chunk_cache_bytes: CHUNK_CACHE_BYTES,
            read_only: false,
        }
    }
}

/// The default [`OpenOptions::staging_bytes`].
const STAGING_BYTES: u64 = 64 << 20;

/// The default [`OpenOptions::chunk_cache_bytes`].
const CHUNK_CACHE_BYTES: u64 = 32 << 20;

impl OpenOptions {
    /// Default options with these limits.
    #[must_use]
    pub fn with_limits(limits: Limits) -> Self {
        Self { limits, ..Self::default() }
    }

    /// These options with `staging_bytes` (see the field).
    #[must_use]
    pub fn staging_bytes(self, staging_bytes: u64) -> Self {
        Self { staging_bytes, ..self }
    }

    /// These options with `chunk_cache_bytes` (see the field).
    #[must_use]
    pub fn chunk_cache_bytes(self, chunk_cache_bytes: u64) -> Self {
        Self { chunk_cache_bytes, ..self }
    }

    /// These options with `read_only` (see the field).
    #[must_use]
    pub fn read_only(self, read_only: bool) -> Self {
        Self { read_only, ..self }
    }
}

/// Options of one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Check every decoded block against its checksum (on by default).
    pub verify_checksums: bool,
    /// Where blocks are decoded ([`Device::Cpu`] by default).
    pub device: Device,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self { verify_checksums: true, device: Device::Cpu }
    }
}

/// The schema of an array to define: dtype and shape, with optional dimension names, chunk
/// shape, fill value and codec.
///
/// ```
/// use atlas::{ArraySpec, DType};
/// let spec = ArraySpec::new(DType::Float32, [365, 180, 360])
///     .dims(["time", "lat", "lon"])
///     .chunk_shape([30, 180, 360])
///     .fill_value(f32::NAN);
/// # let _ = spec;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ArraySpec {
    pub(crate) dtype: DType,
    pub(crate) shape: Vec<u64>,
    pub(crate) dims: Option<Vec<String>>,
    pub(crate) chunk_shape: Option<Vec<u64>>,
    pub(crate) fill_value: Scalar,
    pub(crate) codec: Option<Codec>,
    pub(crate) shuffle: Option<Shuffle>,
    pub(crate) train_dictionary: bool,
}

impl ArraySpec {
    /// An array of `dtype` and `shape`, fill value 0 (for timestamps `NaT`, `i64::MIN`:
    /// a time never written reads as "not a time", as in numpy and xarray, and 1970-01-01
    /// stays a time), default chunks and codec.
    pub fn new(dtype: DType, shape: impl Into<Vec<u64>>) -> Self {
        let fill_value = if dtype == DType::Timestamp { Scalar::Int(i64::MIN) } else { Scalar::Int(0) };
        Self {
            dtype,
            shape: shape.into(),
            dims: None,
            chunk_shape: None,
            fill_value,
            codec: None,
            shuffle: None,
            train_dictionary: false,
        }
    }

    /// Names the dimensions (default `dim_0`, `dim_1`, ...).
    #[must_use]
    pub fn dims<S: Into<String>>(mut self, dims: impl IntoIterator<Item = S>) -> Self {
        self.dims = Some(dims.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the chunk shape (default: about 1 MiB per chunk, see [`default_chunk_shape`],
    /// or less under a handle's smaller [`Limits::max_chunk_bytes`](crate::Limits)).
    #[must_use]
    pub fn chunk_shape(mut self, chunk_shape: impl Into<Vec<u64>>) -> Self {
        self.chunk_shape = Some(chunk_shape.into());
        self
    }

    /// Sets the value read where nothing was written (default 0, `NaT` for timestamps). Any NaN is kept as the
    /// standard NaN (`f64::NAN`): the metadata file does not keep a NaN's other bits.
    #[must_use]
    pub fn fill_value(mut self, fill_value: impl Into<Scalar>) -> Self {
        self.fill_value = fill_value.into();
        self
    }

    /// Gives the array its own codec instead of following the store's.
    #[must_use]
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = Some(codec);
        self
    }

    /// Trains a zstd dictionary from the first write whose input holds at least 16 chunks'
    /// worth of bytes (retried at each such write until zstd trains one, which it cannot
    /// from very uniform data) and uses it for every later zstd block: a better ratio for
    /// arrays of small chunks (a few KiB). Blocks written with a dictionary decode only on
    /// the CPU. Numeric arrays only: `define_array` refuses it for strings. Arrays whose
    /// chunks are over 1 MiB, or whose codec is not zstd, train none.
    #[must_use]
    pub fn zstd_dictionary(mut self, train: bool) -> Self {
        self.train_dictionary = train;
        self
    }

    /// Gives the array its own shuffle setting instead of following the store's.
    #[must_use]
    pub fn shuffle(mut self, shuffle: Shuffle) -> Self {
        self.shuffle = Some(shuffle);
        self
    }
}

/// Raw bytes a default chunk aims at: large enough for codecs to work well, small enough
/// that a small read decodes little.
pub const DEFAULT_CHUNK_BYTES: u64 = 1 << 20;

/// The chunk shape used when none is given: start from the whole shape (a dimension of
/// extent 0, which will grow, counts as 2^20) and halve the longest dimension until a chunk
/// holds at most [`DEFAULT_CHUNK_BYTES`].
#[must_use]
pub fn default_chunk_shape(shape: &[u64], dtype: DType) -> Vec<u64> {
    chunk_shape_within(shape, dtype, DEFAULT_CHUNK_BYTES)
}

/// [`default_chunk_shape`] for chunks of at most `max_bytes` (or of one element, if one is
/// over it).
pub(crate) fn chunk_shape_within(shape: &[u64], dtype: DType, max_bytes: u64) -> Vec<u64> {
    // Strings are counted at 16 bytes each (offset plus a short text).
    let elem_bytes = if dtype == DType::String { 16 } else { dtype.size_bytes() as u64 };
    let mut chunk: Vec<u64> = shape.iter().map(|&n| if n == 0 { 1 << 20 } else { n }).collect();
    let over =
        |chunk: &[u64]| chunk.iter().try_fold(elem_bytes, |acc, &n| acc.checked_mul(n)).is_none_or(|b| b > max_bytes);
    while over(&chunk) && chunk.iter().any(|&n| n > 1) {
        let (longest, _) =
            chunk.iter().enumerate().max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i))).expect("ndim > 0");
        chunk[longest] = chunk[longest].div_ceil(2);
    }
    chunk
}

mod sealed {
    use crate::error::Result;

    /// The byte views the engine needs; private, so only Atlas implements [`Element`].
    ///
    /// [`Element`]: super::Element
    pub trait Sealed: Sized {
        /// The values as their little-endian bytes.
        fn as_bytes(values: &[Self]) -> &[u8];
        /// Fills `out` through `read`, which writes raw element bytes.
        fn read_via_bytes(out: &mut [Self], read: impl FnOnce(&mut [u8]) -> Result<()>) -> Result<()>;
    }
}

/// A Rust type an array can hold: `i8`..`i64`, `u8`..`u64`, `f32`, `f64`, `bool`. Timestamp
/// arrays read and write as `i64` nanoseconds since the Unix epoch.
pub trait Element: Copy + Default + Send + Sync + sealed::Sealed {
    /// The dtype of arrays of this type.
    const DTYPE: DType;

    /// Whether arrays of `dtype` read and write as this type.
    fn matches(dtype: DType) -> bool {
        dtype == Self::DTYPE
    }
}

macro_rules! pod_element {
    ($($t:ty => $d:ident),*) => {$(
        impl sealed::Sealed for $t {
            fn as_bytes(values: &[Self]) -> &[u8] {
                bytemuck::cast_slice(values)
            }

            fn read_via_bytes(out: &mut [Self], read: impl FnOnce(&mut [u8]) -> Result<()>) -> Result<()> {
                read(bytemuck::cast_slice_mut(out))
            }
        }
        impl Element for $t {
            const DTYPE: DType = DType::$d;
        }
    )*};
}
pod_element!(i8 => Int8, i16 => Int16, i32 => Int32, u8 => UInt8, u16 => UInt16,
             u32 => UInt32, u64 => UInt64, f32 => Float32, f64 => Float64);

impl sealed::Sealed for i64 {
    fn as_bytes(values: &[Self]) -> &[u8] {
        bytemuck::cast_slice(values)
    }

    fn read_via_bytes(out: &mut [Self], read: impl FnOnce(&mut [u8]) -> Result<()>) -> Result<()> {
        read(bytemuck::cast_slice_mut(out))
    }
}

impl Element for i64 {
    const DTYPE: DType = DType::Int64;

    fn matches(dtype: DType) -> bool {
        matches!(dtype, DType::Int64 | DType::Timestamp)
    }
}

impl sealed::Sealed for bool {
    fn as_bytes(values: &[Self]) -> &[u8] {
        bytemuck::cast_slice(values)
    }

    /// Bytes from disk may be any value, which a `bool` must never hold: read them as bytes,
    /// then map (nonzero is `true`).
    fn read_via_bytes(out: &mut [Self], read: impl FnOnce(&mut [u8]) -> Result<()>) -> Result<()> {
        let mut bytes = vec![0u8; out.len()];
        read(&mut bytes)?;
        for (value, byte) in out.iter_mut().zip(bytes) {
            *value = byte != 0;
        }
        Ok(())
    }
}

impl Element for bool {
    const DTYPE: DType = DType::Bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_chunks_stay_near_one_mebibyte_and_cover_small_arrays_whole() {
        assert_eq!(default_chunk_shape(&[100, 100], DType::Float64), vec![100, 100]);
        let big = default_chunk_shape(&[512, 512, 512], DType::UInt16);
        assert_eq!(big, vec![64, 64, 128]);
        let growing = default_chunk_shape(&[0, 512], DType::Float32);
        assert!(growing[0] >= 256 && growing.iter().product::<u64>() * 4 <= DEFAULT_CHUNK_BYTES, "{growing:?}");
        assert_eq!(default_chunk_shape(&[], DType::Int8), Vec::<u64>::new());
    }
}
