//! The shape of the public API: thread-safety of handles and errors, shared state between
//! clones, and errors usable as ordinary `std::error::Error`s.

use std::sync::{Arc, Barrier};

use atlas::{ArrayHandle, ArraySpec, Atlas, Attrs, DType, Dataset, EntityKind, Error};
use ndarray::{Array2, s};

use crate::util::{self, assert_err, test_dir};

fn send_sync_static<T: Send + Sync + 'static>() {}

#[test]
fn handles_and_error_are_send_sync_and_static() {
    send_sync_static::<Atlas>();
    send_sync_static::<Dataset>();
    send_sync_static::<ArrayHandle>();
    send_sync_static::<Attrs>();
    send_sync_static::<Error>();
    // So an error converts into the boxed error type threads and `?` pass around.
    let boxed: Box<dyn std::error::Error + Send + Sync + 'static> =
        Error::NotFound { kind: EntityKind::Dataset, name: "x".into() }.into();
    assert_eq!(boxed.to_string(), "dataset not found: x");
}

#[test]
fn shape_chunk_shape_and_dtype_follow_the_schema_and_fail_once_it_is_gone() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let array = ds.define_array("a", ArraySpec::new(DType::UInt16, [10, 4]).chunk_shape([3, 4])).unwrap();
    assert_eq!(
        (array.shape().unwrap(), array.chunk_shape().unwrap(), array.dtype().unwrap()),
        (vec![10, 4], vec![3, 4], DType::UInt16)
    );
    array.resize(&[12, 4]).unwrap();
    assert_eq!(array.shape().unwrap(), array.meta().unwrap().shape);
    assert!(ds.array_exists("a") && !ds.array_exists("b"));
    ds.delete_array("a").unwrap();
    assert!(!ds.array_exists("a"));
    assert!(matches!(array.shape(), Err(Error::NotFound { .. })));
    assert!(matches!(array.dtype(), Err(Error::NotFound { .. })));
}

#[test]
fn read_all_reads_the_array_at_its_shape_of_the_moment_even_while_another_thread_resizes_it() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let array = store.create_dataset("d").unwrap().define_array("a", ArraySpec::new(DType::Int32, [6, 5])).unwrap();
    let rows = |n: usize| Array2::from_shape_fn((n, 5), |(i, j)| i32::try_from(i * 5 + j).unwrap());
    array.write(&[0, 0], rows(6).view()).unwrap();
    assert_eq!(array.read_all::<i32>().unwrap(), rows(6).into_dyn());
    assert!(matches!(array.read_all::<f32>(), Err(Error::DTypeMismatch { .. })));

    // Shrinking and growing back while reading: every read is whole at one shape (the
    // rows past a shrink are gone, and read back as the fill value when grown again). So
    // many reads meet a resize between the shape and the read: without the retry this
    // failed within a second.
    array.resize(&[2, 5]).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let resizer = std::thread::spawn({
        let (array, stop) = (array.clone(), Arc::clone(&stop));
        move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                array.resize(&[6, 5]).unwrap();
                array.resize(&[2, 5]).unwrap();
            }
        }
    });
    for _ in 0..20000 {
        let all = array.read_all::<i32>().unwrap();
        let n = all.shape()[0];
        assert!(n == 2 || n == 6, "shape {:?}", all.shape());
        assert_eq!(all.slice(s![..2, ..]), rows(2));
        assert!(all.slice(s![2.., ..]).iter().all(|&v| v == 0));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    resizer.join().unwrap();

    store.open_dataset("d").unwrap().delete_array("a").unwrap();
    assert!(matches!(array.read_all::<i32>(), Err(Error::NotFound { .. })));
}

#[test]
fn a_handle_debugs_as_its_store_and_name_not_its_whole_index() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let array = ds.define_array("a", ArraySpec::new(DType::Int64, [4096]).chunk_shape([1])).unwrap();
    array.write(&[0], ndarray::Array1::from_elem(4096, 7i64).view()).unwrap();
    store.flush().unwrap();
    let shown = format!("{array:?}");
    let dir_shown = format!("Store {{ dir: {:?}, .. }}", store.path());
    assert_eq!(shown, format!("ArrayHandle {{ inner: {dir_shown}, dataset: \"d\", name: \"a\", label: \"d/a\" }}"));
    for shown in [format!("{store:?}"), format!("{ds:?}"), format!("{:?}", ds.attrs())] {
        assert!(shown.len() < 400, "{} bytes: {shown}", shown.len());
    }
}

#[test]
fn one_handle_shared_by_many_threads_reads_the_same_data_in_parallel() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int64, [64, 64]).chunk_shape([8, 8])).unwrap();
    let data = Array2::from_shape_fn((64, 64), |(i, j)| (i * 64 + j) as i64);
    ds.write_array("a", &[0, 0], data.view()).unwrap();
    store.flush().unwrap();

    let array = Arc::new(ds.array("a").unwrap());
    let data = Arc::new(data);
    // All threads start reading together, so that the reads overlap.
    let start_line = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (array, data, start_line) = (Arc::clone(&array), Arc::clone(&data), Arc::clone(&start_line));
            std::thread::spawn(move || {
                start_line.wait();
                for i in 0..16u64 {
                    let start = [(t * 16 + i) % 60, (i * 7) % 60];
                    let got = array.read::<i64>(&start, &[4, 4]).unwrap();
                    let (y, x) = (start[0] as usize, start[1] as usize);
                    let expected = data.slice(s![y..y + 4, x..x + 4]).into_dyn();
                    assert_eq!(got, expected, "thread {t}, box at {start:?}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn a_handle_moved_into_another_thread_writes_for_the_store_it_came_from() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let array = store.create_dataset("d").unwrap().define_array("a", ArraySpec::new(DType::UInt8, [4])).unwrap();
    std::thread::spawn(move || array.write(&[0], ndarray::arr1(&[1u8, 2, 3, 4]).view()).unwrap()).join().unwrap();
    assert!(store.has_pending_changes());
    store.flush().unwrap();
    let ds = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
    assert_eq!(ds.read_array::<u8>("a", &[0], &[4]).unwrap(), ndarray::arr1(&[1u8, 2, 3, 4]).into_dyn());
}

#[test]
fn clones_of_a_store_handle_share_one_state_and_one_commit() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let clone = store.clone();
    clone.create_dataset("via_clone").unwrap();
    assert!(store.dataset_exists("via_clone"));
    assert!(store.has_pending_changes());
    // The clone's change is this handle's change: committing either commits it, no lock fight.
    store.create_dataset("via_original").unwrap();
    clone.flush().unwrap();
    assert!(!store.has_pending_changes());
    assert_eq!(store.generation(), clone.generation());
    assert_eq!(store.path(), dir.store());
    assert_eq!(Atlas::open(dir.store()).unwrap().list_datasets(), ["via_clone", "via_original"]);
}

#[test]
fn handle_names_report_what_they_point_at() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("run42").unwrap();
    let array = ds.define_array("temp", ArraySpec::new(DType::Float32, [1])).unwrap();
    assert_eq!(ds.name(), "run42");
    assert_eq!(array.name(), "temp");
    assert_eq!(store.open_dataset("run42").unwrap().array("temp").unwrap().name(), "temp");
}

#[test]
fn errors_propagate_with_question_mark_into_boxed_errors_and_keep_their_variant() {
    fn open_missing(path: &std::path::Path) -> Result<Atlas, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Atlas::open(path)?)
    }
    let dir = test_dir!();
    let err = open_missing(&dir.join("missing")).unwrap_err();
    let typed = err.downcast_ref::<Error>().expect("the atlas error survives boxing");
    assert!(matches!(typed, Error::NotFound { kind: EntityKind::Store, .. }), "{typed:?}");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn dim_lengths_lists_every_axis_of_that_name_in_the_dataset() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("t", ArraySpec::new(DType::Float64, [5]).dims(["time"])).unwrap();
    ds.define_array("x", ArraySpec::new(DType::Float32, [5, 3]).dims(["time", "depth"])).unwrap();
    ds.define_array("y", ArraySpec::new(DType::Int8, [7, 3]).dims(["time", "depth"])).unwrap();
    let mut time = ds.dim_lengths("time").unwrap();
    time.sort_unstable();
    assert_eq!(time, [5, 5, 7]);
    assert_eq!(ds.dim_lengths("depth").unwrap(), [3, 3]);
    assert!(ds.dim_lengths("lat").unwrap().is_empty());
    store.delete_dataset("d").unwrap();
    assert_err!(ds.dim_lengths("time"), Error::NotFound { .. });
}

#[test]
fn a_read_only_handle_reads_and_refuses_every_change_without_taking_the_lock() {
    let dir = test_dir!();
    let writer = util::create(&dir.store());
    let ds = writer.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int32, [4])).unwrap();
    ds.write_array("a", &[0], ndarray::arr1(&[1, 2, 3, 4]).view()).unwrap();
    writer.flush().unwrap();
    let options = atlas::OpenOptions::default().read_only(true);
    let reader = Atlas::open_with(dir.store(), &options).unwrap();
    let rds = reader.open_dataset("d").unwrap();
    let array = rds.array("a").unwrap();
    assert_eq!(array.read::<i32>(&[0], &[4]).unwrap(), ndarray::arr1(&[1, 2, 3, 4]).into_dyn());
    let read_only = |e: &Error| matches!(e, Error::ReadOnly { .. });
    let refusals = [
        reader.create_dataset("e").map(drop),
        reader.delete_dataset("d"),
        reader.attrs().set("k", 1),
        rds.attrs().set("k", 1),
        array.attrs().set("k", 1),
        rds.define_array("b", ArraySpec::new(DType::Int8, [2])).map(drop),
        array.write(&[0], ndarray::arr1(&[9]).view()),
        array.resize(&[8]),
        rds.delete_array("a"),
        reader.rename_dataset("d", "e"),
        reader.move_array(("d", "a"), ("d", "b")),
        reader.set_codec(atlas::Codec::Lz4),
        // What the store holds already is refused too: a read-only handle changes nothing.
        array.resize(&[4]),
        reader.set_codec(writer.codec()),
        array.set_shuffle(None),
        reader.rename_dataset("d", "d"),
        reader.move_array(("d", "a"), ("d", "a")),
        reader.compact().map(drop),
        reader.begin_change().map(drop),
    ];
    for (i, refused) in refusals.into_iter().enumerate() {
        assert!(refused.as_ref().is_err_and(read_only), "change {i}: {refused:?}");
    }
    assert!(!reader.has_pending_changes());
    let other = dir.join("other");
    assert_err!(Atlas::create_with(&other, atlas::StoreConfig::default(), &options), Error::InvalidArgument { .. });
    assert!(!other.exists());
    // The writer was never kept out: a read-only handle takes no lock.
    writer.attrs().set("k", 2).unwrap();
    writer.flush().unwrap();
    reader.refresh().unwrap();
    assert_eq!(reader.attrs().get("k").unwrap(), Some(2.into()));
}
