//! `ArrayHandle::read_boxes`: many boxes of one extent in one call read exactly as one
//! `read` each (the property test in `model.rs` checks it against the model too), and bad
//! requests and damaged blocks fail as a `read` does.

use atlas::{ArraySpec, Codec, DType, Error, ReadOptions};
use ndarray::{Array3, Axis};

use crate::util::{self, assert_err, iota, test_dir};

#[test]
fn boxes_read_as_one_read_each_across_chunks_edges_fill_and_pending_writes() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    // Edge chunks are partial (10 = 4 + 4 + 2), and the fill value is not zero.
    let spec = ArraySpec::new(DType::UInt16, [10, 10, 10]).chunk_shape([4, 4, 4]).fill_value(7u16);
    let array = ds.define_array("a", spec).unwrap();
    let values = Array3::from_shape_fn((10, 10, 6), |(z, y, x)| (z * 100 + y * 10 + x) as u16);
    array.write(&[0, 0, 0], values.view()).unwrap();
    store.flush().unwrap();
    // Chunks with x >= 8 are never written; one pending write changes a committed chunk.
    array.write(&[1, 1, 1], Array3::from_elem((2, 2, 2), 999u16).view()).unwrap();

    let starts = [[0, 0, 0], [3, 3, 3], [3, 3, 3], [7, 7, 7], [2, 5, 4], [0, 0, 7], [1, 0, 0]];
    let extent = [3, 3, 3];
    let boxes = array.read_boxes::<u16, _>(&starts, &extent).unwrap();
    assert_eq!(boxes.shape(), [starts.len(), 3, 3, 3]);
    for (start, got) in starts.iter().zip(boxes.axis_iter(Axis(0))) {
        assert_eq!(got, array.read::<u16>(start, &extent).unwrap(), "box at {start:?}");
    }
    assert_eq!(boxes[[5, 0, 0, 2]], 7, "never written: the fill value");
    assert_eq!(boxes[[6, 1, 1, 1]], 999, "the pending write");

    // Into a caller's buffer, without verification, and as starts of any slice type.
    let starts: Vec<Vec<u64>> = starts.iter().map(|s| s.to_vec()).collect();
    let mut out = vec![0u16; starts.len() * 27];
    let options = ReadOptions { verify_checksums: false, ..ReadOptions::default() };
    array.read_boxes_into(&starts, &extent, &mut out, options).unwrap();
    assert_eq!(out, boxes.into_raw_vec_and_offset().0);

    // No boxes: an empty stack.
    let none: [[u64; 3]; 0] = [];
    assert_eq!(array.read_boxes::<u16, _>(&none, &extent).unwrap().shape(), [0, 3, 3, 3]);
}

#[test]
fn bad_box_requests_fail_as_a_read_does_and_damaged_blocks_are_caught() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let spec = ArraySpec::new(DType::UInt8, [64]).chunk_shape([16]).codec(Codec::None);
    let array = ds.define_array("a", spec).unwrap();
    array.write(&[0], iota(&[64], |i| i as u8).view()).unwrap();
    store.flush().unwrap();

    assert_err!(array.read_boxes::<u16, _>(&[[0]], &[4]), Error::DTypeMismatch { .. });
    assert_err!(array.read_boxes::<u8, _>(&[[0, 0]], &[4]), Error::ShapeMismatch { .. });
    assert_err!(array.read_boxes::<u8, _>(&[[0]], &[4, 4]), Error::ShapeMismatch { .. });
    // The model test's old failure: boxes of another rank, an empty extent, starts near 2^64.
    let far = [u64::MAX - 1, 1 << 63, 12_722_292_787_141_755_881];
    assert_err!(array.read_boxes::<u8, _>(&[far, far], &[0, 2_115_926, 1 << 62]), Error::ShapeMismatch { .. });
    let second_outside = array.read_boxes::<u8, _>(&[[0], [61], [70]], &[4]);
    assert!(matches!(&second_outside, Err(Error::OutOfBounds { start, .. }) if start == &[61]), "{second_outside:?}");
    let none: [[u64; 1]; 0] = [];
    assert_err!(array.read_boxes::<u8, _>(&none, &[65]), Error::OutOfBounds { .. });
    // Far too large: refused as outside the array before anything is allocated.
    assert_err!(array.read_boxes::<u8, _>(&[[0]], &[1 << 62]), Error::OutOfBounds { .. });
    assert_err!(array.read::<u8>(&[0], &[1 << 62]), Error::OutOfBounds { .. });
    let none_2d: [[u64; 2]; 0] = [];
    let wrong_ndim = array.read_boxes::<u8, _>(&none_2d, &[4, 4]);
    assert!(matches!(&wrong_ndim, Err(Error::ShapeMismatch { found, .. }) if found == &[4, 4]), "{wrong_ndim:?}");
    // Inside a (sparse) array, but no result that large can be held in memory.
    let huge = ds.define_array("huge", ArraySpec::new(DType::UInt8, [1 << 61, 4]).chunk_shape([16, 4])).unwrap();
    assert_err!(huge.read::<u8>(&[0, 0], &[1 << 61, 4]), Error::OutOfMemory { .. });
    assert_err!(huge.read_boxes::<u8, _>(&[[0, 0], [0, 2]], &[1 << 61, 2]), Error::OutOfMemory { .. });
    let empty = huge.read_boxes::<u8, _>(&none_2d, &[1 << 61, 4]);
    assert!(matches!(&empty, Err(Error::OutOfMemory { .. })), "ndarray refuses such a shape even empty: {empty:?}");
    let mut short = vec![0u8; 7];
    let wrong_len = array.read_boxes_into(&[[0], [8]], &[4], &mut short, ReadOptions::default());
    assert!(matches!(&wrong_len, Err(Error::ShapeMismatch { expected, .. }) if expected == &[2, 4]), "{wrong_len:?}");

    // Flip a stored byte of chunk 2 (codec none: the bytes are the values 32..48).
    let fragment = &util::fragments(&dir.store())[0];
    let mut bytes = std::fs::read(fragment).unwrap();
    let at = bytes.windows(16).position(|w| w == (32u8..48).collect::<Vec<_>>()).unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(fragment, bytes).unwrap();
    let damaged = atlas::Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap().array("a").unwrap();
    assert_err!(damaged.read_boxes::<u8, _>(&[[0], [30]], &[4]), Error::ChecksumMismatch { .. });
    assert_eq!(
        damaged.read_boxes::<u8, _>(&[[0], [20]], &[4]).unwrap().into_raw_vec_and_offset().0,
        [0, 1, 2, 3, 20, 21, 22, 23]
    );
    let mut out = vec![0u8; 8];
    let unverified = ReadOptions { verify_checksums: false, ..ReadOptions::default() };
    damaged.read_boxes_into(&[[0], [31]], &[4], &mut out, unverified).unwrap();
    assert_eq!(out, [0, 1, 2, 3, 31, 32 ^ 0xff, 33, 34], "unverified, the damaged byte is read as it is");
    // The allocating reads take the same options.
    let boxes = damaged.read_boxes_with::<u8, _>(&[[0], [31]], &[4], unverified).unwrap();
    assert_eq!(boxes.into_raw_vec_and_offset().0, out);
    assert_eq!(damaged.read_with::<u8>(&[31], &[4], unverified).unwrap().into_raw_vec_and_offset().0, out[4..]);
    assert_err!(damaged.read_with::<u8>(&[31], &[4], ReadOptions::default()), Error::ChecksumMismatch { .. });
}
