//! One array read across many datasets: `Atlas::read_array_across` and the stacked forms.
//! Missing arrays read as the first listed dataset's fill value, shorter ones as their own
//! fill value beyond their extent; all datasets come from one snapshot.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use atlas::{ArraySpec, Atlas, DType, EntityKind, Error, ReadOptions};
use ndarray::{Array1, Array2, ArrayD, Axis, IxDyn, arr0, arr1};
use rayon::prelude::*;

use crate::util::{self, assert_err, test_dir};

/// A store with `n` datasets `p0000`.. each holding `temp` (float32, 8 elements in chunks
/// of 3) with element `j` of dataset `i` equal to `i * 100 + j`.
fn profiles(store: &Atlas, n: usize) -> Vec<String> {
    let names: Vec<String> = (0..n).map(|i| format!("p{i:04}")).collect();
    for (i, name) in names.iter().enumerate() {
        let ds = store.create_dataset(name).unwrap();
        ds.define_array("temp", ArraySpec::new(DType::Float32, [8]).chunk_shape([3])).unwrap();
        let data = Array1::from_shape_fn(8, |j| (i * 100 + j) as f32);
        ds.write_array("temp", &[0], data.view()).unwrap();
    }
    names
}

#[test]
fn each_dataset_reads_its_own_values_and_stacked_forms_agree() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let names = profiles(&store, 1000);
    store.flush().unwrap();
    let store = Atlas::open(dir.store()).unwrap();
    let datasets = names;

    let each = store.read_array_across::<f32>("temp", &datasets, &[2], &[5]).unwrap();
    assert_eq!(each.len(), 1000);
    for (i, (array, name)) in each.iter().zip(&datasets).enumerate() {
        let expected = Array1::from_shape_fn(5, |j| (i * 100 + 2 + j) as f32).into_dyn();
        assert_eq!(array, &expected, "dataset {name}");
        assert_eq!(array, &store.open_dataset(name).unwrap().read_array::<f32>("temp", &[2], &[5]).unwrap());
    }

    let stacked = store.read_array_across_stacked::<f32>("temp", &datasets, &[2], &[5]).unwrap();
    assert_eq!(stacked.shape(), &[1000, 5]);
    for (row, array) in stacked.axis_iter(Axis(0)).zip(&each) {
        assert_eq!(row, array.view());
    }
    let mut out = vec![0f32; 1000 * 5];
    store.read_array_across_stacked_into("temp", &datasets, &[2], &[5], &mut out, ReadOptions::default()).unwrap();
    assert_eq!(out, stacked.iter().copied().collect::<Vec<_>>());

    // A subset in another order, with a dataset named twice.
    let picked = ["p0007", "p0003", "p0007"];
    let some = store.read_array_across::<f32>("temp", &picked, &[0], &[8]).unwrap();
    assert_eq!(some[0][[1]], 701.0);
    assert_eq!(some[1][[1]], 301.0);
    assert_eq!(some[0], some[2]);
}

#[test]
fn missing_array_reads_as_the_fill_value_of_the_first_listed_dataset_that_has_it() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    for (name, fill) in [("a", None), ("b", Some(7.0f32)), ("c", Some(9.0f32)), ("d", None)] {
        let ds = store.create_dataset(name).unwrap();
        if let Some(fill) = fill {
            ds.define_array("temp", ArraySpec::new(DType::Float32, [4]).fill_value(fill)).unwrap();
        }
    }
    store.open_dataset("b").unwrap().write_array("temp", &[0], arr1(&[1.0f32, 2.0, 3.0, 4.0]).view()).unwrap();

    let read = store.read_array_across::<f32>("temp", &["a", "b", "c", "d"], &[1], &[2]).unwrap();
    assert_eq!(
        read,
        [arr1(&[7.0, 7.0]), arr1(&[2.0, 3.0]), arr1(&[9.0, 9.0]), arr1(&[7.0, 7.0])].map(ndarray::ArrayBase::into_dyn)
    );
    // The first dataset listed that has the array decides, not the first by name.
    let read = store.read_array_across::<f32>("temp", &["d", "c", "a", "b"], &[0], &[1]).unwrap();
    assert_eq!(read, [arr1(&[9.0]), arr1(&[9.0]), arr1(&[9.0]), arr1(&[1.0])].map(ndarray::ArrayBase::into_dyn));
}

#[test]
fn shorter_arrays_read_their_own_fill_value_beyond_their_extent() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    // (name, shape, fill): the box [1..5, 1..6] is inside "long", half outside "short",
    // entirely outside "flat" (one row), and inside "wide" along columns only.
    let arrays = [("long", [6u64, 8], 0i32), ("short", [3, 4], -1), ("flat", [1, 8], -2), ("wide", [4, 20], -3)];
    for (name, shape, fill) in arrays {
        let ds = store.create_dataset(name).unwrap();
        ds.define_array("v", ArraySpec::new(DType::Int32, shape).chunk_shape([2, 3]).fill_value(fill)).unwrap();
        let (rows, cols) = (shape[0] as usize, shape[1] as usize);
        ds.write_array("v", &[0, 0], Array2::from_shape_fn((rows, cols), |(i, j)| (i * 100 + j) as i32).view())
            .unwrap();
    }
    store.flush().unwrap();
    let (start, shape) = ([1u64, 1], [4u64, 5]);
    let names = ["long", "short", "flat", "wide"];
    let read = store.read_array_across_stacked::<i32>("v", &names, &start, &shape).unwrap();
    assert_eq!(read.shape(), &[4, 4, 5]);
    for (k, (_, extent, fill)) in arrays.iter().enumerate() {
        let expected = Array2::from_shape_fn((4, 5), |(i, j)| {
            let (r, c) = (start[0] as usize + i, start[1] as usize + j);
            if (r as u64) < extent[0] && (c as u64) < extent[1] { (r * 100 + c) as i32 } else { *fill }
        });
        assert_eq!(read.index_axis(Axis(0), k), expected.into_dyn().view(), "dataset {}", names[k]);
    }
    // A box starting past every extent is all fill, each dataset its own.
    let far = store.read_array_across::<i32>("v", &names, &[100, 100], &[1, 2]).unwrap();
    for (array, (_, _, fill)) in far.iter().zip(&arrays) {
        assert!(array.iter().all(|v| v == fill));
    }
}

#[test]
fn zero_dimensional_and_empty_selections_read_across() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    for (i, name) in ["x", "y", "z"].into_iter().enumerate() {
        let ds = store.create_dataset(name).unwrap();
        if name != "y" {
            ds.define_array("s", ArraySpec::new(DType::Float64, Vec::<u64>::new()).fill_value(-1.0)).unwrap();
            if name == "x" {
                ds.write_array("s", &[], arr0(i as f64 + 0.5).view()).unwrap();
            }
        }
        ds.define_array("e", ArraySpec::new(DType::UInt8, [3])).unwrap();
    }
    let scalars = store.read_array_across_stacked::<f64>("s", &["x", "y", "z"], &[], &[]).unwrap();
    assert_eq!(scalars, arr1(&[0.5, -1.0, -1.0]).into_dyn());
    let each = store.read_array_across::<f64>("s", &["z", "x"], &[], &[]).unwrap();
    assert_eq!(each, vec![arr0(-1.0).into_dyn(), arr0(0.5).into_dyn()]);
    let empty = store.read_array_across::<u8>("e", &["x", "y"], &[1], &[0]).unwrap();
    assert_eq!(empty, vec![ArrayD::<u8>::zeros(IxDyn(&[0])); 2]);
    // An empty box whose other axes multiply past u64: nothing to read, not "too large".
    // ("z" lacks the array: its slot is all fill.)
    let huge_but_empty = [1 << 33, 1 << 33, 0];
    for name in ["x", "y"] {
        store.open_dataset(name).unwrap().define_array("c", ArraySpec::new(DType::UInt8, [2, 2, 2])).unwrap();
    }
    let opts = atlas::ReadOptions::default();
    let names = ["x", "y", "z"];
    store.read_array_across_stacked_into::<u8>("c", &names, &[0, 0, 0], &huge_but_empty, &mut [], opts).unwrap();
}

#[test]
fn different_dtypes_or_dimensions_across_datasets_are_refused() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let specs = [
        ("f", ArraySpec::new(DType::Float32, [4])),
        ("i", ArraySpec::new(DType::Int32, [4])),
        ("n", ArraySpec::new(DType::Int64, [4])),
        ("t", ArraySpec::new(DType::Timestamp, [4])),
        ("m", ArraySpec::new(DType::Float32, [4, 2])),
    ];
    for (name, spec) in specs {
        store.create_dataset(name).unwrap().define_array("v", spec).unwrap();
    }
    assert_err!(
        store.read_array_across::<f32>("v", &["f", "i"], &[0], &[4]),
        Error::DTypeMismatch { array, .. } if array == "i/v"
    );
    assert_err!(
        store.read_array_across::<i32>("v", &["f", "i"], &[0], &[4]),
        Error::DTypeMismatch { array, .. } if array == "f/v"
    );
    assert_err!(
        store.read_array_across::<f32>("v", &["f", "f", "i"], &[0], &[4]),
        Error::DTypeMismatch { array, expected, found } if array == "i/v" && expected == "int32" && found == "float32"
    );
    // i64 reads both int64 and timestamp arrays, but not the two mixed.
    assert_eq!(store.read_array_across::<i64>("v", &["t", "t"], &[0], &[4]).unwrap().len(), 2);
    assert_err!(
        store.read_array_across::<i64>("v", &["n", "t"], &[0], &[4]),
        Error::InvalidArgument { detail } if detail.contains("t/v holds timestamp where n/v holds int64")
    );
    assert_err!(
        store.read_array_across::<f32>("v", &["f", "m"], &[0], &[4]),
        Error::ShapeMismatch { array, .. } if array == "m/v"
    );
    // start and shape must have the array's number of dimensions; out must fit exactly.
    assert_err!(store.read_array_across::<f32>("v", &["f"], &[0, 0], &[4, 1]), Error::ShapeMismatch { .. });
    assert_err!(store.read_array_across::<f32>("v", &["f"], &[0], &[4, 1]), Error::ShapeMismatch { .. });
    let mut out = vec![0f32; 7];
    assert_err!(
        store.read_array_across_stacked_into("v", &["f", "f"], &[0], &[4], &mut out, ReadOptions::default()),
        Error::ShapeMismatch { expected, .. } if expected == [2, 4]
    );
    assert_err!(store.read_array_across::<f32>("v", &["f"], &[u64::MAX], &[2]), Error::InvalidArgument { .. });
    // Inside (sparse) arrays, but more than any memory holds: refused before reading.
    for name in ["big1", "big2"] {
        let spec = ArraySpec::new(DType::Float64, [1 << 60]).chunk_shape([1024]);
        store.create_dataset(name).unwrap().define_array("v", spec).unwrap();
    }
    assert_err!(
        store.read_array_across::<f64>("v", &["big1", "big2"], &[0], &[1 << 60]),
        Error::OutOfMemory { detail } if detail.starts_with("big1/v: 2 selections")
    );
}

#[test]
fn unknown_dataset_or_array_in_no_dataset_is_not_found_and_no_dataset_is_invalid() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let names = profiles(&store, 3);
    assert_err!(
        store.read_array_across::<f32>("temp", &[names[0].as_str(), "nope"], &[0], &[1]),
        Error::NotFound { kind: EntityKind::Dataset, name } if name == "nope"
    );
    assert_err!(
        store.read_array_across::<f32>("salt", &names, &[0], &[1]),
        Error::NotFound { kind: EntityKind::Array, name } if name == "salt"
    );
    // As Python says: an empty list names no dataset to find the array in.
    assert_err!(
        store.read_array_across::<f32>("temp", &[] as &[&str], &[0], &[1]),
        Error::InvalidArgument { detail } if detail.contains("no datasets")
    );
}

#[test]
fn uncommitted_writes_are_read() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let names = profiles(&store, 4);
    store.flush().unwrap();
    // Pending: a new value in one dataset, a new dataset and array.
    store.open_dataset("p0002").unwrap().write_array("temp", &[7], arr1(&[-5.0f32]).view()).unwrap();
    let ds = store.create_dataset("new").unwrap();
    ds.define_array("temp", ArraySpec::new(DType::Float32, [9])).unwrap();
    ds.write_array("temp", &[6], arr1(&[1.0f32, 2.0, 3.0]).view()).unwrap();
    assert!(store.has_pending_changes());

    let mut datasets = names;
    datasets.push("new".into());
    let read = store.read_array_across_stacked::<f32>("temp", &datasets, &[6], &[3]).unwrap();
    assert_eq!(read.index_axis(Axis(0), 2), arr1(&[206.0, -5.0, 0.0]).into_dyn().view());
    assert_eq!(read.index_axis(Axis(0), 3), arr1(&[306.0, 307.0, 0.0]).into_dyn().view());
    assert_eq!(read.index_axis(Axis(0), 4), arr1(&[1.0, 2.0, 3.0]).into_dyn().view());
}

#[test]
fn reads_from_callers_rayon_tasks_see_one_snapshot_while_another_thread_writes() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let names = profiles(&store, 16);
    for name in &names {
        store.open_dataset(name).unwrap().write_array("temp", &[0], Array1::<f32>::zeros(8).view()).unwrap();
    }
    store.flush().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let worker_store = store.clone();
    let worker = std::thread::spawn(move || {
        let store = worker_store;
        let datasets = names;
        let stop = AtomicBool::new(false);
        let reads = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            // Round g writes g into every dataset in order, so any single snapshot sees
            // values that only step down, by at most one, along the datasets. It starts
            // once the readers have, so that reads meet writes.
            scope.spawn(|| {
                while reads.load(Ordering::SeqCst) == 0 {
                    std::thread::yield_now();
                }
                for g in 1..=40u16 {
                    for name in &datasets {
                        let ds = store.open_dataset(name).unwrap();
                        ds.write_array("temp", &[0], Array1::from_elem(8, f32::from(g)).view()).unwrap();
                    }
                    if g % 10 == 0 {
                        store.flush().unwrap();
                    }
                }
                stop.store(true, Ordering::SeqCst);
            });
            // The caller's own rayon tasks, on the global pool, all reading across.
            (0..64).into_par_iter().for_each(|_| {
                while !stop.load(Ordering::SeqCst) {
                    let read = store.read_array_across_stacked::<f32>("temp", &datasets, &[0], &[8]).unwrap();
                    let firsts: Vec<f32> = read.axis_iter(Axis(0)).map(|row| row[[0]]).collect();
                    for row in read.axis_iter(Axis(0)) {
                        assert!(row.iter().all(|v| *v == row[[0]]), "a dataset's write is whole");
                    }
                    assert!(firsts.windows(2).all(|w| w[1] <= w[0]), "not one snapshot: {firsts:?}");
                    assert!(firsts[0] - firsts[firsts.len() - 1] <= 1.0, "not one snapshot: {firsts:?}");
                    reads.fetch_add(1, Ordering::SeqCst);
                }
            });
        });
        assert!(reads.load(Ordering::SeqCst) > 1, "the readers ran beside the writer");
        done_tx.send(()).unwrap();
    });
    // A deadlock shows as a timeout rather than a hung test run.
    done_rx.recv_timeout(Duration::from_secs(120)).expect("readers and writer finish");
    worker.join().unwrap();
    store.flush().unwrap();
    let last = store.read_array_across::<f32>("temp", &["p0000", "p0015"], &[0], &[1]).unwrap();
    assert_eq!(last, vec![arr1(&[40.0f32]).into_dyn(); 2]);
}
