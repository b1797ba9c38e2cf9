//! The zarrs side: a Zarr v3 array on the local filesystem, chunks of the case's shape,
//! codecs `bytes` -> (`numcodecs.shuffle`) -> `zstd` (no zstd checksum), or `bytes` alone
//! for codec none. zarrs has no raw LZ4 codec (only LZ4 inside blosc), so LZ4 cases have
//! no zarrs side.

use std::path::Path;
use std::sync::Arc;

use atlas::Codec;
use zarrs::array::chunk_cache::{ChunkCache, ChunkCacheDecodedLruSizeLimit};
use zarrs::array::codec::{ShuffleCodec, ZstdCodec};
use zarrs::array::{Array, ArrayBuilder, ArraySubset, BytesToBytesCodecTraits, CodecOptions, FillValue};
use zarrs::filesystem::FilesystemStore;
use zarrs::storage::ReadableStorageTraits;

use crate::case::{Case, Sample};

pub type ZarrsArray = Array<FilesystemStore>;

/// Whether zarrs can store this case with the same codec chain.
pub fn supports(case: &Case) -> bool {
    !matches!(case.codec, Codec::Lz4)
}

/// Creates the array (metadata only) in a new directory.
pub fn create<T: Sample>(dir: &Path, case: &Case) -> ZarrsArray {
    std::fs::create_dir_all(dir).expect("zarrs directory");
    let store = Arc::new(FilesystemStore::new(dir).expect("zarrs store"));
    let mut codecs: Vec<Arc<dyn BytesToBytesCodecTraits>> = Vec::new();
    if case.shuffle {
        codecs.push(Arc::new(ShuffleCodec::new(case.elem_bytes())));
    }
    match case.codec {
        Codec::Zstd { level } => codecs.push(Arc::new(ZstdCodec::new(level, false))),
        Codec::None => {}
        other => panic!("zarrs has no raw {} codec", other.name()),
    }
    let array = ArrayBuilder::new(
        case.shape.clone(),
        case.chunk.clone(),
        T::zarrs_type(),
        FillValue::new(vec![0u8; case.elem_bytes()]),
    )
    .bytes_to_bytes_codecs(codecs)
    .build(store, "/a")
    .expect("zarrs array");
    array.store_metadata().expect("zarrs metadata");
    array
}

/// Opens the array written by [`create`] and [`write`].
pub fn open(dir: &Path) -> ZarrsArray {
    let store = Arc::new(FilesystemStore::new(dir).expect("zarrs store"));
    Array::open(store, "/a").expect("open zarrs array")
}

/// Writes the whole array (every chunk, encoded in parallel by zarrs).
pub fn write<T: Sample>(array: &ZarrsArray, data: &[T]) {
    array.store_array_subset(&array.subset_all(), data).expect("zarrs write");
}

/// Reads the whole array into a new buffer.
pub fn read<T: Sample>(array: &ZarrsArray) -> Vec<T> {
    array.retrieve_array_subset::<Vec<T>>(&array.subset_all()).expect("zarrs read")
}

/// Reads the box `start .. start + shape`.
pub fn read_box<T: Sample>(array: &ZarrsArray, start: &[u64], shape: &[u64]) -> Vec<T> {
    array.retrieve_array_subset::<Vec<T>>(&subset(start, shape)).expect("zarrs box read")
}

/// The array written by [`create`] and [`write`] behind zarrs's LRU cache of decoded chunks
/// holding up to `bytes`.
pub fn open_cached(dir: &Path, bytes: u64) -> ChunkCacheDecodedLruSizeLimit {
    let store: Arc<dyn ReadableStorageTraits> = Arc::new(FilesystemStore::new(dir).expect("zarrs store"));
    let array = Array::open(store, "/a").expect("open zarrs array");
    ChunkCacheDecodedLruSizeLimit::new(Arc::new(array), bytes)
}

/// [`read_box`] through a chunk cache.
pub fn read_box_cached<T: Sample>(cache: &ChunkCacheDecodedLruSizeLimit, start: &[u64], shape: &[u64]) -> Vec<T> {
    cache.retrieve_array_subset::<Vec<T>>(&subset(start, shape), &CodecOptions::default()).expect("zarrs box read")
}

fn subset(start: &[u64], shape: &[u64]) -> ArraySubset {
    let ranges: Vec<_> = start.iter().zip(shape).map(|(&s, &n)| s..s + n).collect();
    ArraySubset::new_with_ranges(&ranges)
}
