//! Renaming datasets and moving arrays: the metadata alone changes (no block is written),
//! every value, attribute and statistic goes along, and wrong names are refused with
//! nothing changed. Renames within one dataset against a model are in `model.rs`.

use atlas::{ArraySpec, Atlas, DType, EntityKind, Error, Scalar};
use ndarray::arr1;

use crate::util::{self, assert_err, test_dir};

/// A store with datasets `a` (arrays `x`: committed 0..8 in chunks of 4, and `y`) and `b`.
fn sample(path: &std::path::Path) -> Atlas {
    let store = util::create(path);
    let a = store.create_dataset("a").unwrap();
    let x = a.define_array("x", ArraySpec::new(DType::Int32, [8]).chunk_shape([4]).fill_value(-1)).unwrap();
    x.write(&[0], arr1(&[0, 1, 2, 3, 4, 5, 6, 7]).view()).unwrap();
    x.attrs().set("units", "m").unwrap();
    a.define_array("y", ArraySpec::new(DType::Float64, [2])).unwrap();
    a.attrs().set("site", "north").unwrap();
    store.create_dataset("b").unwrap();
    store.flush().unwrap();
    store
}

fn ints(store: &Atlas, dataset: &str, array: &str) -> Vec<i32> {
    let handle = store.open_dataset(dataset).unwrap().array(array).unwrap();
    let shape = handle.shape().unwrap();
    handle.read::<i32>(&[0], &shape).unwrap().into_raw_vec_and_offset().0
}

#[test]
fn an_array_moves_to_another_dataset_with_everything_and_no_block_written() {
    let dir = test_dir!();
    let store = sample(&dir.store());
    let stats = store.open_dataset("a").unwrap().array("x").unwrap().stats().unwrap();
    let old = store.open_dataset("a").unwrap().array("x").unwrap();
    let data_before = util::data_bytes(&dir.store());

    store.move_array(("a", "x"), ("b", "depth")).unwrap();
    assert_err!(old.shape(), Error::NotFound { kind: EntityKind::Array, .. });
    assert_eq!(ints(&store, "b", "depth"), [0, 1, 2, 3, 4, 5, 6, 7], "read before the flush");
    store.flush().unwrap();
    assert_eq!(util::data_bytes(&dir.store()), data_before, "no block is written");
    drop((old, store));

    let store = Atlas::open(dir.store()).unwrap();
    assert_eq!(store.open_dataset("a").unwrap().list_arrays().unwrap(), ["y"]);
    let moved = store.open_dataset("b").unwrap().array("depth").unwrap();
    assert_eq!(ints(&store, "b", "depth"), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(moved.attrs().get("units").unwrap(), Some("m".into()));
    assert_eq!(moved.meta().unwrap().fill_value, Scalar::Int(-1));
    assert_eq!(moved.stats().unwrap(), stats);
    let report = store.verify(&mut |_, _| ()).unwrap();
    assert_eq!((report.blocks_checked, report.bad_blocks.len(), report.bad_stats.len()), (2, 0, 0));
}

#[test]
fn uncommitted_writes_move_with_their_array() {
    let dir = test_dir!();
    let store = sample(&dir.store());
    let x = store.open_dataset("a").unwrap().array("x").unwrap();
    x.write(&[0], arr1(&[10, 11, 12, 13]).view()).unwrap(); // a whole chunk: a pending block
    x.write(&[6], arr1(&[60]).view()).unwrap(); // part of one: staged in memory
    store.move_array(("a", "x"), ("a", "z")).unwrap();
    assert_eq!(ints(&store, "a", "z"), [10, 11, 12, 13, 4, 5, 60, 7]);
    store.flush().unwrap();
    drop((x, store));
    let store = Atlas::open(dir.store()).unwrap();
    assert_eq!(ints(&store, "a", "z"), [10, 11, 12, 13, 4, 5, 60, 7]);
    assert_eq!(store.open_dataset("a").unwrap().array("z").unwrap().stats().unwrap().max, Some(Scalar::Int(60)));
}

#[test]
fn a_dataset_is_renamed_with_its_arrays_and_attributes() {
    let dir = test_dir!();
    let store = sample(&dir.store());
    let old = store.open_dataset("a").unwrap();
    store.rename_dataset("a", "run1").unwrap();
    assert_err!(old.list_arrays(), Error::NotFound { kind: EntityKind::Dataset, .. });
    store.flush().unwrap();
    drop((old, store));

    let store = Atlas::open(dir.store()).unwrap();
    assert_eq!(store.list_datasets(), ["b", "run1"]);
    let run1 = store.open_dataset("run1").unwrap();
    assert_eq!(run1.list_arrays().unwrap(), ["x", "y"]);
    assert_eq!(run1.attrs().get("site").unwrap(), Some("north".into()));
    assert_eq!(ints(&store, "run1", "x"), [0, 1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn wrong_names_are_refused_and_change_nothing() {
    let dir = test_dir!();
    let store = sample(&dir.store());
    let tree = util::tree(&dir.store());
    assert_err!(store.rename_dataset("nope", "c"), Error::NotFound { kind: EntityKind::Dataset, .. });
    assert_err!(store.rename_dataset("a", "b"), Error::AlreadyExists { kind: EntityKind::Dataset, .. });
    assert_err!(store.rename_dataset("a", "c/d"), Error::InvalidName { kind: EntityKind::Dataset, .. });
    assert_err!(store.move_array(("a", "nope"), ("a", "z")), Error::NotFound { kind: EntityKind::Array, .. });
    assert_err!(store.move_array(("nope", "x"), ("a", "z")), Error::NotFound { kind: EntityKind::Dataset, .. });
    assert_err!(store.move_array(("a", "x"), ("nope", "x")), Error::NotFound { kind: EntityKind::Dataset, .. });
    assert_err!(store.move_array(("a", "x"), ("a", "y")), Error::AlreadyExists { kind: EntityKind::Array, .. });
    assert_err!(store.move_array(("a", "x"), ("b", "")), Error::InvalidName { kind: EntityKind::Array, .. });
    // To its own name: nothing to do, and no change begun (no writer lock taken).
    store.rename_dataset("a", "a").unwrap();
    store.move_array(("a", "x"), ("a", "x")).unwrap();
    assert_err!(store.move_array(("a", "nope"), ("a", "nope")), Error::NotFound { .. });
    assert!(!store.has_pending_changes());
    store.flush().unwrap();
    assert_eq!(util::tree(&dir.store()), tree, "nothing was written");
    // Answered on the newest commit: another writer deleted the array meanwhile.
    let other = Atlas::open(dir.store()).unwrap();
    other.open_dataset("a").unwrap().delete_array("y").unwrap();
    other.flush().unwrap();
    assert_err!(store.move_array(("a", "y"), ("a", "y")), Error::NotFound { .. });
    assert!(!store.has_pending_changes());
}

#[test]
fn a_rename_another_writer_made_is_seen_after_a_refresh() {
    let dir = test_dir!();
    let writer = sample(&dir.store());
    let reader = Atlas::open(dir.store()).unwrap();
    writer.move_array(("a", "x"), ("a", "x2")).unwrap();
    writer.rename_dataset("b", "c").unwrap();
    writer.flush().unwrap();
    assert_eq!(reader.list_datasets(), ["a", "b"], "the commit it opened, until a refresh");
    reader.refresh().unwrap();
    assert_eq!(reader.list_datasets(), ["a", "c"]);
    assert_eq!(ints(&reader, "a", "x2"), [0, 1, 2, 3, 4, 5, 6, 7]);
    // A stale handle's move is checked on the newest commit: the array has gone.
    let stale = Atlas::open(dir.store()).unwrap();
    writer.move_array(("a", "x2"), ("c", "x")).unwrap();
    writer.flush().unwrap();
    assert_err!(stale.move_array(("a", "x2"), ("a", "x3")), Error::NotFound { .. });
    assert!(!stale.has_pending_changes());
}
