//! Renaming datasets and moving arrays: the metadata alone changes (no block is written),
//! every value, attribute and statistic goes along, and wrong names are refused with
//! nothing changed. Copies: blocks copied as stored. Renames and copies within one dataset
//! against a model are in `model.rs`.

use atlas::{ArraySpec, Atlas, BlockInfo, Codec, DType, EntityKind, Error, Scalar};
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

/// What a copy keeps of each block: chunk, codec, filters, sizes, checksum.
fn block_kinds(store: &Atlas, dataset: &str, array: &str) -> Vec<(Vec<u64>, String, bool, u64, u64, u64)> {
    let kind =
        |b: BlockInfo| (b.coord, b.codec.name().to_string(), b.shuffled, b.stored_bytes, b.raw_bytes, b.checksum);
    store.array_blocks(dataset, array).unwrap().into_iter().filter(|b| !b.is_fill).map(kind).collect()
}

#[test]
fn a_copy_has_the_schema_attributes_and_blocks_as_stored_uncommitted_writes_too() {
    let dir = test_dir!();
    let store = sample(&dir.store());
    let x = store.open_dataset("a").unwrap().array("x").unwrap();
    x.set_codec(Some(Codec::Lz4)).unwrap();
    x.write(&[4], arr1(&[40, 50, 60, 70]).view()).unwrap(); // a whole chunk: a pending lz4 block
    store.flush().unwrap();
    x.write(&[0], arr1(&[10]).view()).unwrap(); // part of a chunk: staged in memory
    store.copy_array(("a", "x"), ("b", "x2")).unwrap();
    store.copy_array(("a", "y"), ("a", "y2")).unwrap(); // never written: no block
    let copy = store.open_dataset("b").unwrap().array("x2").unwrap();
    assert_eq!(ints(&store, "b", "x2"), [10, 1, 2, 3, 40, 50, 60, 70]);
    assert_eq!(block_kinds(&store, "b", "x2"), block_kinds(&store, "a", "x"), "the blocks as stored");
    // The copy is an array of its own: writes to either leave the other alone.
    copy.write(&[1], arr1(&[-5]).view()).unwrap();
    x.write(&[2], arr1(&[-6]).view()).unwrap();
    store.flush().unwrap();
    drop((x, copy, store));

    let store = Atlas::open(dir.store()).unwrap();
    assert_eq!(ints(&store, "a", "x"), [10, 1, -6, 3, 40, 50, 60, 70]);
    assert_eq!(ints(&store, "b", "x2"), [10, -5, 2, 3, 40, 50, 60, 70]);
    let copy = store.open_dataset("b").unwrap().array("x2").unwrap();
    let meta = copy.meta().unwrap();
    assert_eq!((meta.fill_value, meta.codec, meta.chunk_shape), (Scalar::Int(-1), Some(Codec::Lz4), vec![4]));
    assert_eq!(copy.attrs().get("units").unwrap(), Some("m".into()));
    assert_eq!(copy.stats().unwrap().min, Some(Scalar::Int(-5)));
    assert!(store.open_dataset("a").unwrap().array("y2").unwrap().stats().unwrap().count == 0);
    let report = store.verify(&mut |_, _| ()).unwrap();
    assert_eq!((report.bad_blocks.len(), report.bad_stats.len()), (0, 0));
}

#[test]
fn a_copy_is_refused_on_wrong_names_and_carries_damage_it_cannot_see() {
    let dir = test_dir!();
    let store = sample(&dir.store());
    assert_err!(store.copy_array(("a", "x"), ("a", "y")), Error::AlreadyExists { kind: EntityKind::Array, .. });
    assert_err!(store.copy_array(("a", "x"), ("a", "x")), Error::AlreadyExists { kind: EntityKind::Array, .. });
    assert_err!(store.copy_array(("a", "nope"), ("b", "x")), Error::NotFound { kind: EntityKind::Array, .. });
    assert_err!(store.copy_array(("a", "x"), ("nope", "x")), Error::NotFound { kind: EntityKind::Dataset, .. });
    assert_err!(store.copy_array(("a", "x"), ("b", "a/b")), Error::InvalidName { kind: EntityKind::Array, .. });
    assert!(!store.has_pending_changes());
    // A block damaged on disk is copied as it is: its checksum fails reads of the copy too.
    util::damage_block(&store, "a/x", &[1]);
    store.copy_array(("a", "x"), ("b", "x")).unwrap();
    let copy = store.open_dataset("b").unwrap().array("x").unwrap();
    assert_eq!(copy.read::<i32>(&[0], &[4]).unwrap().into_raw_vec_and_offset().0, [0, 1, 2, 3]);
    assert_err!(copy.read::<i32>(&[4], &[4]), Error::ChecksumMismatch { .. });
    let options = atlas::OpenOptions::default().read_only(true);
    let reader = Atlas::open_with(dir.store(), &options).unwrap();
    assert_err!(reader.copy_array(("a", "x"), ("b", "z")), Error::ReadOnly { .. });
}
