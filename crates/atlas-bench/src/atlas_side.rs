//! The Atlas side of the bulk workloads: one store per case holding dataset `d`, array `a`.

use std::path::Path;
use std::time::{Duration, Instant};

use atlas::{ArrayHandle, ArraySpec, Atlas, OpenOptions, ReadOptions, StoreConfig};

use crate::case::{Case, Sample};

/// A store with the case's empty array, ready for a timed write.
pub fn create(dir: &Path, case: &Case, dtype: atlas::DType) -> (Atlas, ArrayHandle) {
    let config = StoreConfig { codec: case.codec, shuffle: case.shuffle_setting(), ..StoreConfig::default() };
    let store = Atlas::create(dir, config).expect("create store");
    let dataset = store.create_dataset("d").expect("create dataset");
    let array = dataset
        .define_array("a", ArraySpec::new(dtype, case.shape.clone()).chunk_shape(case.chunk.clone()))
        .expect("define array");
    (store, array)
}

/// Writes the whole array and flushes; returns (write, flush) times.
pub fn write<T: Sample>(store: &Atlas, array: &ArrayHandle, case: &Case, data: &[T]) -> (Duration, Duration) {
    let shape: Vec<usize> = case.shape.iter().map(|&n| n as usize).collect();
    let view = ndarray::ArrayView::from_shape(shape, data).expect("data has the case's shape");
    let start = Instant::now();
    array.write(&vec![0; case.shape.len()], view).expect("write");
    let written = start.elapsed();
    let flush_start = Instant::now();
    store.flush().expect("flush");
    (written, flush_start.elapsed())
}

/// Opens the case's array in an existing store.
pub fn open(dir: &Path) -> ArrayHandle {
    open_with(dir, &OpenOptions::default())
}

/// [`open`] with these options.
pub fn open_with(dir: &Path, options: &OpenOptions) -> ArrayHandle {
    let store = Atlas::open_with(dir, options).expect("open store");
    store.open_dataset("d").and_then(|d| d.array("a")).expect("open array")
}

/// Reads the whole array into `out`, checksums verified (the default) or not.
pub fn read_into<T: Sample>(array: &ArrayHandle, shape: &[u64], out: &mut [T], verify: bool) {
    let options = ReadOptions { verify_checksums: verify, ..ReadOptions::default() };
    array.read_into(&vec![0; shape.len()], shape, out, options).expect("read");
}

/// Reads the whole array into a new buffer (the allocating call most callers use).
pub fn read<T: Sample>(array: &ArrayHandle, shape: &[u64]) -> Vec<T> {
    let out = array.read::<T>(&vec![0; shape.len()], shape).expect("read");
    out.into_raw_vec_and_offset().0
}
