//! Looking inside a store: `array_blocks` describes every live block, `verify` checks every
//! block and lists each bad one.

use atlas::{ArraySpec, Atlas, BlockCodec, BlockState, Codec, DType, Error, Shuffle};
use ndarray::{Array1, arr1};

use crate::util::{self, test_dir};

#[test]
fn array_blocks_report_codec_shuffle_sizes_location_and_pending_state() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    // Chunks of 256 values in runs of 64: every codec makes them smaller.
    let a = ds.define_array("a", ArraySpec::new(DType::Float32, [768]).chunk_shape([256])).unwrap();
    a.write(&[0], Array1::from_shape_fn(512, |i| (i / 64) as f32 + 1.0).view()).unwrap();
    store.flush().unwrap();
    a.set_codec(Some(Codec::Lz4)).unwrap();
    a.set_shuffle(Some(Shuffle::Off)).unwrap();
    a.write(&[512], Array1::<f32>::zeros(256).view()).unwrap(); // all fill, and small: staged

    let blocks = store.array_blocks(a.dataset(), a.name()).unwrap();
    assert_eq!(blocks.iter().map(|b| b.coord[0]).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!((blocks[0].codec, blocks[0].shuffled, blocks[0].state), (BlockCodec::Zstd, true, BlockState::Committed));
    let staged = (blocks[2].codec, blocks[2].shuffled, blocks[2].state, blocks[2].stored_bytes, blocks[2].checksum);
    assert_eq!(staged, (BlockCodec::None, false, BlockState::Staged, 1024, 0), "raw in memory until sealed");
    // A change of codec seals it, with the settings it was written under: a fill entry.
    a.set_codec(Some(Codec::Lz4)).unwrap();
    let blocks = store.array_blocks("d", "a").unwrap();
    assert_eq!((blocks[2].codec, blocks[2].shuffled, blocks[2].state), (BlockCodec::Lz4, false, BlockState::Pending));
    assert!(blocks[2].is_fill && blocks[2].stored_bytes == 0);
    assert!(blocks.iter().all(|b| b.raw_bytes == 1024));
    let on_disk = std::fs::read(&blocks[0].path).unwrap();
    let start = blocks[0].offset_bytes as usize;
    assert_eq!(&on_disk[start..start + 4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame starts there");
    assert!(matches!(store.array_blocks("d", "nope"), Err(Error::NotFound { .. })));
}

#[test]
fn verify_passes_a_sound_store_and_lists_every_bad_block_with_its_file_and_offset() {
    let dir = test_dir!();
    let store = Atlas::create(dir.store(), atlas::StoreConfig { codec: Codec::None, ..Default::default() }).unwrap();
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int32, [8]).chunk_shape([2])).unwrap();
    ds.define_array("s", ArraySpec::new(DType::String, [3])).unwrap();
    ds.write_array("a", &[0], arr1(&[1, 2, 3, 4, 5, 6, 7, 8]).view()).unwrap();
    ds.write_strings("s", &[0], arr1(&["x", "", "yz"]).view()).unwrap();
    store.flush().unwrap();
    let mut calls = Vec::new();
    let report = store.verify(&mut |done, total| calls.push((done, total))).unwrap();
    assert_eq!((report.blocks_checked, report.bad_blocks.len()), (5, 0));
    assert_eq!(calls.last(), Some(&(5, 5)));

    // Damage chunks [1] and [3] of `a` (uncompressed: their raw bytes are on disk as is).
    let blocks = store.array_blocks("d", "a").unwrap();
    let mut bytes = std::fs::read(&blocks[1].path).unwrap();
    for b in [&blocks[1], &blocks[3]] {
        bytes[b.offset_bytes as usize] ^= 0xff;
    }
    std::fs::write(&blocks[1].path, &bytes).unwrap();
    let report = Atlas::open(dir.store()).unwrap().verify(&mut |_, _| {}).unwrap();
    assert_eq!(report.blocks_checked, 5);
    let bad: Vec<(String, Vec<u64>, u64)> =
        report.bad_blocks.iter().map(|b| (b.array.clone(), b.coord.clone(), b.offset_bytes)).collect();
    assert_eq!(
        bad,
        [("d/a".to_string(), vec![1], blocks[1].offset_bytes), ("d/a".to_string(), vec![3], blocks[3].offset_bytes)]
    );
    assert!(
        report.bad_blocks.iter().all(|b| matches!(b.error, Error::ChecksumMismatch { .. }) && b.path == blocks[1].path)
    );
}

#[test]
fn a_chunk_staged_by_an_unfinished_append_is_listed_as_staged_until_sealed() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let a = ds.define_array("a", ArraySpec::new(DType::Float32, [0, 4]).chunk_shape([8, 4])).unwrap();
    a.append(ndarray::Array2::from_elem((3, 4), 1.5f32).view()).unwrap();

    let blocks = store.array_blocks("d", "a").unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].state, BlockState::Staged, "held in memory, not a block yet");
    assert!(blocks[0].state.is_uncommitted());
    store.flush().unwrap();
    let blocks = store.array_blocks("d", "a").unwrap();
    assert_eq!(blocks[0].state, BlockState::Committed);
    assert_eq!((blocks[0].codec, blocks[0].raw_bytes), (BlockCodec::Zstd, 8 * 4 * 4));
}

/// `n` values of a xorshift sequence: bytes no codec makes smaller.
fn noise(n: usize) -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect()
}

#[test]
fn a_block_its_codec_would_not_make_smaller_is_stored_as_its_raw_bytes() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    // Chunk 0 compresses, chunk 1 is noise.
    let mut values = vec![7u64; 1024];
    values.extend(noise(1024));
    for (name, codec) in [("z", Codec::Zstd { level: 3 }), ("l", Codec::Lz4)] {
        let spec = ArraySpec::new(DType::UInt64, [2048]).chunk_shape([1024]).codec(codec);
        ds.define_array(name, spec).unwrap().write(&[0], arr1(&values).view()).unwrap();
    }
    // 4 MiB chunks of noise take the path that shuffles large chunks in pieces: one
    // contiguous in the input, and two cut from its rows.
    let zstd_shuffled = |shape: &[u64], chunk: &[u64]| {
        ArraySpec::new(DType::UInt64, shape.to_vec()).chunk_shape(chunk.to_vec()).codec(Codec::Zstd { level: 1 })
    };
    let big = noise(1 << 20);
    let spec = zstd_shuffled(&[1 << 19], &[1 << 19]).shuffle(Shuffle::On);
    ds.define_array("big", spec).unwrap().write(&[0], arr1(&big[..1 << 19]).view()).unwrap();
    let big2 = ndarray::Array2::from_shape_vec((512, 2048), big.clone()).unwrap();
    let spec = zstd_shuffled(&[512, 2048], &[512, 1024]).shuffle(Shuffle::On);
    ds.define_array("big2", spec).unwrap().write(&[0, 0], big2.view()).unwrap();
    // Strings: one chunk too short for a zstd frame to be smaller, one that compresses.
    let spec = ArraySpec::new(DType::String, [4]).chunk_shape([2]).codec(Codec::Zstd { level: 3 });
    let text = "abc".repeat(100);
    ds.define_array("s", spec).unwrap().write_strings(&[0], arr1(&["x", "", &text, &text]).view()).unwrap();
    store.flush().unwrap();

    let codecs = |name: &str| -> Vec<(BlockCodec, bool, bool)> {
        let blocks = store.array_blocks("d", name).unwrap();
        blocks.iter().map(|b| (b.codec, b.shuffled, b.stored_bytes == b.raw_bytes)).collect()
    };
    let raw = (BlockCodec::None, false, true);
    assert_eq!(codecs("z"), [(BlockCodec::Zstd, true, false), raw]);
    assert_eq!(codecs("l"), [(BlockCodec::Lz4, true, false), raw]);
    assert_eq!((codecs("big"), codecs("big2")), (vec![raw], vec![raw, raw]));
    assert_eq!(codecs("s"), [raw, (BlockCodec::Zstd, false, false)]);
    // Recompressing keeps to the same rule; a block stored raw that would be stored raw
    // again is left where it is.
    let where_is = |name: &str| {
        store.array_blocks("d", name).unwrap().into_iter().map(|b| (b.path, b.offset_bytes)).collect::<Vec<_>>()
    };
    let before = where_is("z");
    store.recompress_array("d", "z", Codec::Lz4, Some(Shuffle::Off)).unwrap();
    assert_eq!(codecs("z"), [(BlockCodec::Lz4, false, false), raw]);
    let after = where_is("z");
    assert!(after[0] != before[0] && after[1] == before[1], "{before:?} -> {after:?}");
    store.flush().unwrap();

    let reopened = Atlas::open(dir.store()).unwrap();
    let ds = reopened.open_dataset("d").unwrap();
    let read =
        |name: &str, len: usize| ds.read_array::<u64>(name, &[0], &[len as u64]).unwrap().into_raw_vec_and_offset().0;
    assert_eq!((read("z", 2048), read("l", 2048)), (values.clone(), values));
    assert!(read("big", 1 << 19) == big[..1 << 19]);
    assert!(ds.read_array::<u64>("big2", &[0, 0], &[512, 2048]).unwrap() == big2.into_dyn());
    assert_eq!(ds.read_strings("s", &[0], &[4]).unwrap().into_raw_vec_and_offset().0, ["x", "", &text, &text]);
    let report = reopened.verify(&mut |_, _| {}).unwrap();
    assert_eq!((report.blocks_checked, report.bad_blocks.len()), (9, 0));
}
