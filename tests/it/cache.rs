//! The chunk cache (`OpenOptions::chunk_cache_bytes`): reads of part of a chunk keep the
//! decoded chunk and take it from there later. A block damaged on disk after its chunk was
//! kept shows which reads were served from the cache: those still read it right, the others
//! report the damage.

use atlas::{ArraySpec, Atlas, Codec, DType, Error, OpenOptions, ReadOptions, Shuffle};
use ndarray::Array2;

use crate::util::{self, test_dir};

/// A 64x64 float32 array of four 32x32 chunks, flushed.
fn store_with_four_chunks(path: &std::path::Path) -> (Atlas, Array2<f32>) {
    let store = util::create(path);
    let values = Array2::from_shape_fn((64, 64), |(i, j)| (i * 64 + j) as f32 * 0.5);
    let spec = ArraySpec::new(DType::Float32, [64, 64]).chunk_shape([32, 32]);
    store.create_dataset("d").unwrap().define_array("a", spec).unwrap().write(&[0, 0], values.view()).unwrap();
    store.flush().unwrap();
    (store, values)
}

fn damage(store: &Atlas, coord: &[u64]) {
    util::damage_block(store, "d/a", coord);
}

fn element(store: &Atlas, at: [u64; 2]) -> atlas::Result<f32> {
    let a = store.open_dataset("d").unwrap().array("a").unwrap();
    a.read::<f32>(&at, &[1, 1]).map(|v| v[[0, 0]])
}

fn is_damage(result: &atlas::Result<impl std::fmt::Debug>) -> bool {
    matches!(result, Err(Error::ChecksumMismatch { .. } | Error::Corrupt { .. }))
}

#[test]
fn a_chunk_read_in_part_is_kept_and_later_reads_of_it_take_it_from_the_cache() {
    let dir = test_dir!();
    let (store, values) = store_with_four_chunks(&dir.store());
    assert_eq!(element(&store, [3, 40]).unwrap(), values[[3, 40]]);
    damage(&store, &[0, 1]);
    // Any part of the kept chunk reads right: it is not decoded again.
    let a = store.open_dataset("d").unwrap().array("a").unwrap();
    let part = a.read::<f32>(&[0, 33], &[20, 31]).unwrap();
    assert_eq!(part, values.slice(ndarray::s![0..20, 33..64]).into_dyn());
    // A read of the whole chunk decodes it, and finds the damage; so does a handle of its own.
    assert!(is_damage(&a.read::<f32>(&[0, 32], &[32, 32])), "a whole chunk is not read from the cache");
    let other = Atlas::open(dir.store()).unwrap();
    assert!(is_damage(&element(&other, [3, 40])));
    // With no cache, every read decodes.
    let uncached = Atlas::open_with(dir.store(), &OpenOptions::default().chunk_cache_bytes(0)).unwrap();
    assert!(is_damage(&element(&uncached, [3, 40])));
}

#[test]
fn a_chunk_written_again_is_read_anew_not_from_the_cache() {
    let dir = test_dir!();
    let (store, mut values) = store_with_four_chunks(&dir.store());
    let a = store.open_dataset("d").unwrap().array("a").unwrap();
    assert_eq!(element(&store, [40, 40]).unwrap(), values[[40, 40]]);
    // Staged, then flushed: each state of the chunk is read as it is.
    values[[40, 40]] = -1.0;
    a.write(&[40, 40], Array2::from_elem((1, 1), -1.0f32).view()).unwrap();
    assert_eq!(element(&store, [40, 40]).unwrap(), -1.0);
    store.flush().unwrap();
    assert_eq!(element(&store, [40, 40]).unwrap(), -1.0);
    // Encoded at once (a write too large to stage) and flushed.
    let big = Atlas::open_with(dir.store(), &OpenOptions::default().staging_bytes(0)).unwrap();
    drop(store);
    let a = big.open_dataset("d").unwrap().array("a").unwrap();
    assert_eq!(element(&big, [40, 41]).unwrap(), values[[40, 41]]);
    values[[40, 41]] = -2.0;
    a.write(&[40, 41], Array2::from_elem((1, 1), -2.0f32).view()).unwrap();
    assert_eq!(element(&big, [40, 41]).unwrap(), -2.0);
    big.flush().unwrap();
    assert_eq!(a.read::<f32>(&[0, 0], &[64, 64]).unwrap(), values.into_dyn());
}

#[test]
fn reads_without_verification_keep_nothing() {
    let dir = test_dir!();
    let (store, values) = store_with_four_chunks(&dir.store());
    let a = store.open_dataset("d").unwrap().array("a").unwrap();
    let unverified = ReadOptions { verify_checksums: false, ..ReadOptions::default() };
    let mut out = [0f32; 1];
    a.read_into(&[50, 2], &[1, 1], &mut out, unverified).unwrap();
    assert_eq!(out[0], values[[50, 2]]);
    damage(&store, &[1, 0]);
    assert!(is_damage(&element(&store, [50, 2])), "an unverified decode was kept");
}

#[test]
fn chunks_are_pushed_out_past_the_cache_size() {
    // Sixteen chunks of 4 KiB; a cache of eight chunks' bytes keeps eight of them (each
    // at most an eighth of it): reading parts of nine pushes out the first.
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let values = ndarray::Array1::from_shape_fn(16 * 1024, |i| i as f32);
    let spec = ArraySpec::new(DType::Float32, [16 * 1024]).chunk_shape([1024]);
    store.create_dataset("d").unwrap().define_array("a", spec).unwrap().write(&[0], values.view()).unwrap();
    store.flush().unwrap();
    drop(store);
    let store = Atlas::open_with(dir.store(), &OpenOptions::default().chunk_cache_bytes(8 * 4096)).unwrap();
    let a = store.open_dataset("d").unwrap().array("a").unwrap();
    let element = |i: u64| a.read::<f32>(&[i], &[1]).map(|v| v[0]);
    for chunk in 0..9 {
        assert_eq!(element(chunk * 1024 + 1).unwrap(), values[chunk as usize * 1024 + 1]);
    }
    damage(&store, &[0]);
    damage(&store, &[8]);
    assert!(is_damage(&element(2)), "the least recently used chunk was kept");
    assert_eq!(element(8 * 1024 + 2).unwrap(), values[8 * 1024 + 2], "the most recent one was pushed out");
}

#[test]
fn chunks_decoded_into_buffers_other_chunks_left_read_right() {
    // Arrays of eight 64 KiB chunks each, of three encodings; a cache of eight such chunks
    // keeps one chunk's buffer spare once full, so each chunk decoded after the first
    // eight goes into a buffer that held another chunk, often of another array.
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let dataset = store.create_dataset("d").unwrap();
    let len = 8 * 16 * 1024;
    let encodings =
        [(Codec::Zstd { level: 1 }, Shuffle::On), (Codec::Lz4, Shuffle::Off), (Codec::Zstd { level: 3 }, Shuffle::Off)];
    let mut arrays = Vec::new();
    for (n, (codec, shuffle)) in encodings.into_iter().enumerate() {
        let values = ndarray::Array1::from_shape_fn(len, |i| (i * (n + 2)) as f32 + 0.25);
        let spec = ArraySpec::new(DType::Float32, [len as u64]).chunk_shape([16 * 1024]).codec(codec).shuffle(shuffle);
        dataset.define_array(&format!("a{n}"), spec).unwrap().write(&[0], values.view()).unwrap();
        arrays.push(values);
    }
    store.flush().unwrap();
    drop(store);
    let store = Atlas::open_with(dir.store(), &OpenOptions::default().chunk_cache_bytes(8 * 65536)).unwrap();
    let dataset = store.open_dataset("d").unwrap();
    for round in 0..2 {
        for (n, values) in arrays.iter().enumerate() {
            let array = dataset.array(&format!("a{n}")).unwrap();
            for chunk in 0..8usize {
                let start = chunk * 16 * 1024 + 1;
                let part = array.read::<f32>(&[start as u64], &[16 * 1024 - 2]).unwrap();
                assert_eq!(
                    part,
                    values.slice(ndarray::s![start..start + 16 * 1024 - 2]).into_dyn(),
                    "round {round} a{n}"
                );
            }
        }
    }
}
