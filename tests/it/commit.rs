//! `flush` is the durability boundary: what other handles see before and after it, what a
//! dropped handle commits, and what a commit leaves in the directory.

use atlas::{ArraySpec, Atlas, DType, Error, MetaCompression, MetaFormat};
use ndarray::arr1;

use crate::util::{self, assert_err, test_dir};

#[test]
fn unflushed_changes_are_invisible_to_other_handles_until_flush_and_refresh() {
    let dir = test_dir!();
    let writer = util::create(&dir.store());
    let ds = writer.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int32, [4])).unwrap();
    ds.write_array("a", &[0], arr1(&[1, 2, 3, 4]).view()).unwrap();
    writer.attrs().set("k", 1).unwrap();
    // The writer sees its own uncommitted changes.
    assert_eq!(ds.read_array::<i32>("a", &[0], &[4]).unwrap(), arr1(&[1, 2, 3, 4]).into_dyn());
    assert!(writer.has_pending_changes());

    let reader = Atlas::open(dir.store()).unwrap();
    assert!(!reader.dataset_exists("d"));
    assert_eq!(reader.attrs().get("k").unwrap(), None);
    assert_eq!(reader.generation(), 0);

    writer.flush().unwrap();
    assert!(!writer.has_pending_changes());
    // An idle handle keeps its snapshot until it refreshes.
    assert!(!reader.dataset_exists("d"));
    reader.refresh().unwrap();
    assert_eq!(reader.generation(), writer.generation());
    let rds = reader.open_dataset("d").unwrap();
    assert_eq!(rds.read_array::<i32>("a", &[0], &[4]).unwrap(), arr1(&[1, 2, 3, 4]).into_dyn());
    assert_eq!(reader.attrs().get("k").unwrap(), Some(1.into()));

    // A later write is again invisible to the reader's snapshot, even through handles it
    // already holds, until the next refresh.
    ds.write_array("a", &[0], arr1(&[9, 9, 9, 9]).view()).unwrap();
    writer.flush().unwrap();
    assert_eq!(rds.read_array::<i32>("a", &[0], &[4]).unwrap(), arr1(&[1, 2, 3, 4]).into_dyn());
    reader.refresh().unwrap();
    assert_eq!(rds.read_array::<i32>("a", &[0], &[4]).unwrap(), arr1(&[9, 9, 9, 9]).into_dyn());
}

#[test]
fn a_refresh_sees_a_commit_that_left_the_metadata_file_its_length() {
    let dir = test_dir!();
    let writer = util::create(&dir.store());
    writer.attrs().set("v", "a").unwrap();
    writer.flush().unwrap();
    let reader = Atlas::open(dir.store()).unwrap();
    let meta_file = dir.store().join("atlas.json");
    let len = std::fs::metadata(&meta_file).unwrap().len();

    writer.attrs().set("v", "b").unwrap();
    writer.flush().unwrap();
    assert_eq!(std::fs::metadata(&meta_file).unwrap().len(), len, "the test needs a commit of the same length");
    reader.refresh().unwrap();
    assert_eq!(reader.attrs().get("v").unwrap(), Some("b".into()));
    // A change moves to the newest commit the same way.
    writer.attrs().set("v", "c").unwrap();
    writer.flush().unwrap();
    reader.attrs().set("w", 1).unwrap();
    reader.flush().unwrap();
    let after = Atlas::open(dir.store()).unwrap();
    assert_eq!(after.attrs().get("v").unwrap(), Some("c".into()));
    assert_eq!(after.attrs().get("w").unwrap(), Some(1.into()));
}

#[test]
fn each_flush_with_changes_bumps_the_generation_and_a_flush_without_changes_writes_nothing() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let first = store.generation();
    store.flush().unwrap();
    assert_eq!(store.generation(), first);

    let before = util::tree(&dir.store());
    store.flush().unwrap();
    assert_eq!(util::tree(&dir.store()), before, "an empty flush touched the directory");

    store.create_dataset("a").unwrap();
    store.flush().unwrap();
    assert_eq!(store.generation(), first + 1);
    store.create_dataset("b").unwrap();
    store.flush().unwrap();
    assert_eq!(store.generation(), first + 2);
    assert_eq!(Atlas::open(dir.store()).unwrap().generation(), first + 2);
}

#[test]
fn setting_what_the_newest_commit_already_holds_takes_no_lock_and_commits_nothing() {
    // A notebook cell run again sets the same attribute and codecs: no writer lock is
    // taken (another writer can go on) and no empty generation is committed. Compared on
    // the newest commit too: a handle behind another writer's change still changes.
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let array = ds.define_array("a", ArraySpec::new(DType::Float32, [4])).unwrap();
    let set_all = |units: &str| -> atlas::Result<()> {
        store.attrs().set("units", units)?;
        ds.attrs().set("units", units)?;
        array.attrs().set("units", units)?;
        store.set_codec(atlas::Codec::Lz4)?;
        store.set_shuffle(atlas::Shuffle::Off)?;
        array.set_codec(Some(atlas::Codec::None))?;
        array.set_shuffle(None)
    };
    set_all("K").unwrap();
    store.flush().unwrap();
    let generation = store.generation();
    set_all("K").unwrap();
    assert!(!store.has_pending_changes(), "setting the same values began a change");
    store.flush().unwrap();
    assert_eq!(store.generation(), generation, "an empty generation was committed");
    // Floats compare as written: a NaN is the NaN set, -0.0 is not 0.0.
    store.attrs().set("missing", f64::NAN).unwrap();
    store.attrs().set("zero", 0.0).unwrap();
    store.flush().unwrap();
    store.attrs().set("missing", f64::NAN).unwrap();
    assert!(!store.has_pending_changes(), "a NaN set again began a change");
    store.attrs().set("zero", -0.0).unwrap();
    assert!(store.has_pending_changes(), "-0.0 over 0.0 is a change");
    store.flush().unwrap();
    let zero = Atlas::open(dir.store()).unwrap().attrs().get("zero").unwrap().and_then(|v| v.as_f64());
    assert!(zero.is_some_and(|z| z == 0.0 && z.is_sign_negative()), "{zero:?}");
    let generation = store.generation();
    let other = Atlas::open(dir.store()).unwrap();
    other.open_dataset("d").unwrap().array("a").unwrap().attrs().set("units", "C").unwrap();
    other.flush().unwrap();
    assert_eq!(store.generation(), generation, "this handle is still behind");
    // This handle's snapshot holds "K", the newest commit "C".
    array.attrs().set("units", "K").unwrap();
    assert!(store.has_pending_changes(), "a value the newest commit lacks is a change");
    store.flush().unwrap();
    assert_eq!(store.generation(), generation + 2);
    assert_eq!(Atlas::open(dir.store()).unwrap().generation(), generation + 2);
}

#[test]
fn commits_leave_one_meta_file_of_the_store_encoding_and_no_temp_file() {
    let dir = test_dir!();
    let config = util::meta_config(MetaFormat::MsgPack, MetaCompression::Zstd);
    let store = Atlas::create(dir.store(), config).unwrap();
    for i in 0..3u8 {
        let ds = store.create_dataset(&format!("d{i}")).unwrap();
        ds.define_array("a", ArraySpec::new(DType::UInt8, [2])).unwrap();
        ds.write_array("a", &[0], arr1(&[i, i]).view()).unwrap();
        store.flush().unwrap();
    }
    let names = util::names(&dir.store());
    assert!(!names.iter().any(|n| n.contains("tmp")), "{names:?}");
    assert_eq!(util::meta_files(&dir.store()), ["atlas.msgpack.zst"]);
    assert_eq!(util::fragments(&dir.store()).len(), 3);
    let store = Atlas::open(dir.store()).unwrap();
    for i in 0..3u8 {
        let got = store.open_dataset(&format!("d{i}")).unwrap().read_array::<u8>("a", &[0], &[2]).unwrap();
        assert_eq!(got, arr1(&[i, i]).into_dyn());
    }
}

#[test]
fn dropping_the_last_handle_flushes_pending_changes() {
    let dir = test_dir!();
    {
        let store = util::create(&dir.store());
        let ds = store.create_dataset("d").unwrap();
        ds.define_array("a", ArraySpec::new(DType::Float64, [3])).unwrap();
        ds.write_array("a", &[0], arr1(&[0.5, 1.5, 2.5]).view()).unwrap();
        store.attrs().set("dropped", true).unwrap();
    }
    let store = Atlas::open(dir.store()).unwrap();
    assert_eq!(store.attrs().get("dropped").unwrap(), Some(true.into()));
    let got = store.open_dataset("d").unwrap().read_array::<f64>("a", &[0], &[3]).unwrap();
    assert_eq!(got, arr1(&[0.5, 1.5, 2.5]).into_dyn());
}

#[test]
fn a_handle_dropped_by_a_panic_discards_its_changes_as_a_crash_would() {
    let dir = test_dir!();
    util::create(&dir.store()).create_dataset("d").unwrap();
    let path = dir.store();
    let panicked = std::thread::spawn(move || {
        let store = Atlas::open(&path).unwrap();
        store.attrs().set("first_half", true).unwrap();
        panic!("the second half of the changes never comes");
    })
    .join();
    assert!(panicked.is_err());
    let store = Atlas::open(dir.store()).unwrap();
    assert_eq!(store.attrs().get("first_half").unwrap(), None);
    assert!(util::fragments(&dir.store()).is_empty());
    store.attrs().set("after", true).unwrap(); // the lock was released
    store.flush().unwrap();
}

#[test]
fn dropping_the_store_handle_flushes_only_when_the_last_dataset_or_array_handle_goes() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let array = ds.define_array("a", ArraySpec::new(DType::Int8, [2])).unwrap();
    drop(ds);
    drop(store);
    // The array handle still shares the store's state, so nothing is committed yet...
    assert!(!Atlas::open(dir.store()).unwrap().dataset_exists("d"));
    array.write(&[0], arr1(&[5i8, 6]).view()).unwrap();
    drop(array);
    // ... and dropping the last handle commits everything, the later write included.
    let ds = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
    assert_eq!(ds.read_array::<i8>("a", &[0], &[2]).unwrap(), arr1(&[5i8, 6]).into_dyn());
}

#[test]
fn commit_keeps_old_snapshot_if_metadata_write_fails() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int32, [3])).unwrap();
    ds.write_array("a", &[0], arr1(&[1, 2, 3]).view()).unwrap();
    store.flush().unwrap();
    let committed = util::tree(&dir.store());

    ds.write_array("a", &[0], arr1(&[7, 8, 9]).view()).unwrap();
    // A directory where the commit's temp file goes makes the metadata write fail.
    let obstacle = dir.store().join("atlas.meta.tmp");
    std::fs::create_dir(&obstacle).unwrap();
    assert_err!(store.flush(), Error::Io { .. });
    assert!(store.has_pending_changes(), "a failed flush dropped the pending changes");
    // The metadata file is the old one, and other handles see the old commit.
    assert_eq!(std::fs::read(dir.store().join("atlas.json")).unwrap(), committed["atlas.json"]);
    let other = Atlas::open(dir.store()).unwrap();
    assert_eq!(other.generation(), store.generation());
    let old = other.open_dataset("d").unwrap().read_array::<i32>("a", &[0], &[3]).unwrap();
    assert_eq!(old, arr1(&[1, 2, 3]).into_dyn());
    // The writer still reads its own pending data.
    assert_eq!(ds.read_array::<i32>("a", &[0], &[3]).unwrap(), arr1(&[7, 8, 9]).into_dyn());

    // With the obstacle gone the same changes commit.
    std::fs::remove_dir(&obstacle).unwrap();
    store.flush().unwrap();
    assert!(!store.has_pending_changes());
    other.refresh().unwrap();
    let new = other.open_dataset("d").unwrap().read_array::<i32>("a", &[0], &[3]).unwrap();
    assert_eq!(new, arr1(&[7, 8, 9]).into_dyn());
    drop((ds, store, other));
    let reopened = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
    assert_eq!(reopened.read_array::<i32>("a", &[0], &[3]).unwrap(), arr1(&[7, 8, 9]).into_dyn());
}

#[test]
fn refresh_of_a_handle_with_pending_changes_keeps_them() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    store.create_dataset("pending").unwrap();
    store.refresh().unwrap();
    assert!(store.dataset_exists("pending"));
    assert!(store.has_pending_changes());
    store.flush().unwrap();
    assert!(Atlas::open(dir.store()).unwrap().dataset_exists("pending"));
}

#[test]
fn dropping_a_handle_whose_flush_fails_keeps_the_last_commit_without_panicking() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int32, [2])).unwrap();
    store.flush().unwrap();
    ds.write_array("a", &[0], arr1(&[5, 6]).view()).unwrap();
    let obstacle = dir.store().join("atlas.meta.tmp");
    std::fs::create_dir(&obstacle).unwrap();
    drop((ds, store)); // the flush on drop fails; it is logged, not raised

    std::fs::remove_dir(&obstacle).unwrap();
    let store = Atlas::open(dir.store()).unwrap();
    let got = store.open_dataset("d").unwrap().read_array::<i32>("a", &[0], &[2]).unwrap();
    assert_eq!(got, arr1(&[0, 0]).into_dyn(), "a failed commit is visible");
    // Its fragment is an orphan, removed by the next writer.
    assert_eq!(util::fragments(&dir.store()).len(), 1);
    store.create_dataset("next").unwrap();
    assert!(util::fragments(&dir.store()).is_empty());
}

/// A store with one commit: array `d/a` = [1, 2, 3, 4] in chunks of 2, attribute `k` = 1.
fn one_commit(path: &std::path::Path) -> (Atlas, atlas::Dataset) {
    let store = util::create(path);
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int32, [4]).chunk_shape([2])).unwrap();
    ds.write_array("a", &[0], arr1(&[1, 2, 3, 4]).view()).unwrap();
    store.attrs().set("k", 1).unwrap();
    store.flush().unwrap();
    (store, ds)
}

#[test]
fn discard_drops_every_pending_change_releases_the_lock_and_removes_the_fragment() {
    let dir = test_dir!();
    let (store, ds) = one_commit(&dir.store());
    let committed = util::tree(&dir.store());

    // Data, a new dataset, an attribute, a resize and a pending append's staged chunk.
    ds.write_array("a", &[1], arr1(&[9, 9]).view()).unwrap();
    store.create_dataset("new").unwrap();
    store.attrs().set("k", 2).unwrap();
    ds.define_array("b", ArraySpec::new(DType::Int32, [0]).chunk_shape([8])).unwrap();
    ds.array("b").unwrap().append(arr1(&[7]).view()).unwrap();
    ds.resize_array("a", &[6]).unwrap();
    assert!(store.has_pending_changes());
    assert_eq!(util::fragments(&dir.store()).len(), 2, "the pending fragment is on disk");

    store.discard();
    assert!(!store.has_pending_changes());
    assert_eq!(store.generation(), 1);
    assert!(!store.dataset_exists("new"));
    assert_eq!(ds.list_arrays().unwrap(), ["a"]);
    assert_eq!(ds.array_meta("a").unwrap().shape, [4]);
    assert_eq!(store.attrs().get("k").unwrap(), Some(1.into()));
    assert_eq!(ds.read_array::<i32>("a", &[0], &[4]).unwrap(), arr1(&[1, 2, 3, 4]).into_dyn());
    assert_eq!(util::tree(&dir.store()), committed, "the store is byte for byte the last commit");
    store.discard(); // a no-op without changes

    // The lock is free for another writer, and this handle can write again afterwards.
    let other = Atlas::open(dir.store()).unwrap();
    other.create_dataset("other").unwrap();
    other.flush().unwrap();
    ds.write_array("a", &[3], arr1(&[8]).view()).unwrap();
    store.flush().unwrap();
    let reopened = Atlas::open(dir.store()).unwrap();
    assert!(reopened.dataset_exists("other"));
    let got = reopened.open_dataset("d").unwrap().read_array::<i32>("a", &[0], &[4]).unwrap();
    assert_eq!(got, arr1(&[1, 2, 3, 8]).into_dyn());
}

#[test]
fn readers_change_nothing_in_the_store() {
    let dir = test_dir!();
    drop(one_commit(&dir.store()));
    let before = util::tree(&dir.store());
    let reader = Atlas::open(dir.store()).unwrap();
    let rds = reader.open_dataset("d").unwrap();
    assert_eq!(rds.read_array::<i32>("a", &[0], &[4]).unwrap(), arr1(&[1, 2, 3, 4]).into_dyn());
    rds.array_stats("a").unwrap();
    rds.block_stats("a").unwrap();
    reader.attrs().all().unwrap();
    reader.refresh().unwrap();
    assert!(reader.verify(&mut |_, _| {}).unwrap().bad_blocks.is_empty());
    drop((rds, reader));
    assert_eq!(util::tree(&dir.store()), before, "a reader changed the store's files");
}

#[test]
fn a_store_without_its_empty_data_directory_opens_and_takes_writes() {
    // A store whose commits name no fragment, copied by a tool that keeps no empty
    // directory (git): it must stay a store that takes changes.
    let dir = test_dir!();
    let store = util::create(&dir.store());
    store.create_dataset("d").unwrap().define_array("a", ArraySpec::new(DType::Int32, [4])).unwrap();
    store.flush().unwrap();
    drop(store);
    std::fs::remove_dir(dir.store().join("data")).unwrap();

    let store = Atlas::open(dir.store()).unwrap();
    let ds = store.open_dataset("d").unwrap();
    assert_eq!(ds.read_array::<i32>("a", &[0], &[4]).unwrap(), arr1(&[0, 0, 0, 0]).into_dyn());
    ds.write_array("a", &[0], arr1(&[1, 2, 3, 4]).view()).unwrap();
    store.flush().unwrap();
    drop((ds, store));
    let reopened = Atlas::open(dir.store()).unwrap();
    let rds = reopened.open_dataset("d").unwrap();
    assert_eq!(rds.read_array::<i32>("a", &[0], &[4]).unwrap(), arr1(&[1, 2, 3, 4]).into_dyn());
    assert_eq!(util::fragments(&dir.store()).len(), 1);
}

#[test]
fn the_same_writes_give_the_same_fragment_bytes() {
    // Chunks of fill values get index entries at the offset of the block appended after
    // them: 40 such entries tie, in two arrays. Each store's block index is its own hash
    // map, so an order left to the map differs between the stores.
    let dir = test_dir!();
    let fragment_of = |name: &str| {
        let store = util::create(&dir.join(name));
        let ds = store.create_dataset("d").unwrap();
        for array in ["a", "b"] {
            ds.define_array(array, ArraySpec::new(DType::Int32, [100]).chunk_shape([4])).unwrap();
            let mut values = vec![0; 100];
            values[96..].copy_from_slice(&[1, 2, 3, 4]);
            ds.write_array(array, &[0], arr1(&values).view()).unwrap();
        }
        store.flush().unwrap();
        let fragments = util::fragments(&dir.join(name));
        assert_eq!(fragments.len(), 1);
        std::fs::read(&fragments[0]).unwrap()
    };
    let first = fragment_of("s1");
    for name in ["s2", "s3"] {
        assert!(fragment_of(name) == first, "{name}'s fragment differs from s1's");
    }
}
