//! What a crashed writer leaves behind: orphan fragments, a half-written metadata temp file,
//! two metadata files after an interrupted format change. The last commit must stay readable,
//! and the next writer must clean up.

use std::path::Path;

use atlas::{ArraySpec, Atlas, DType, Limits, MetaCompression, MetaFormat, OpenOptions};
use ndarray::arr1;

use crate::concurrency::{CRASH_EXIT_CODE, finish_child, spawn_child};
use crate::util::{self, test_dir};

/// A store with dataset `d` holding int32 array `a` = [1, 2, 3, 4], committed.
fn committed_store(path: &Path) -> Atlas {
    let store = util::create(path);
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int32, [4]).chunk_shape([2])).unwrap();
    ds.write_array("a", &[0], arr1(&[1, 2, 3, 4]).view()).unwrap();
    store.flush().unwrap();
    store
}

fn read_a(store: &Atlas) -> Vec<i32> {
    store.open_dataset("d").unwrap().read_array::<i32>("a", &[0], &[4]).unwrap().into_raw_vec_and_offset().0
}

#[test]
fn orphan_fragment_and_meta_temp_file_are_ignored_by_open_and_removed_by_the_next_writer() {
    let dir = test_dir!();
    drop(committed_store(&dir.store()));
    let committed = util::fragments(&dir.store());
    assert_eq!(committed.len(), 1);
    // What a writer that died mid-commit leaves: a fragment no commit names (here a copy of a
    // real one under another name, and a torn one) and a half-written metadata temp file.
    let data = dir.store().join("data");
    std::fs::copy(&committed[0], data.join("00000000000000ff-0123456789abcdef.frag")).unwrap();
    std::fs::write(data.join("0000000000000100-fedcba9876543210.frag"), b"ATLFRAG\0torn").unwrap();
    std::fs::write(dir.store().join("atlas.meta.tmp"), b"{\"format_version\":1,\"generation\":99,").unwrap();

    let store = Atlas::open(dir.store()).unwrap();
    assert_eq!(read_a(&store), [1, 2, 3, 4]);
    assert_eq!(store.generation(), Atlas::open(dir.store()).unwrap().generation());
    // Opening and reading change nothing on disk.
    assert_eq!(util::fragments(&dir.store()).len(), 3);
    assert!(dir.store().join("atlas.meta.tmp").exists());

    // The next writer's first change removes what no commit names, and only that.
    store.create_dataset("next").unwrap();
    assert_eq!(util::fragments(&dir.store()), committed);
    assert!(!dir.store().join("atlas.meta.tmp").exists());
    store.flush().unwrap();
    drop(store);
    let store = Atlas::open(dir.store()).unwrap();
    assert_eq!(read_a(&store), [1, 2, 3, 4]);
    assert_eq!(store.list_datasets(), ["d", "next"]);
}

#[test]
fn writer_process_dying_before_flush_leaves_the_last_commit_and_its_lock_free() {
    let mut dir = test_dir!();
    let store = committed_store(&dir.store());
    let generation = store.generation();
    let sync = dir.join("sync");
    let child = spawn_child(&mut dir, "crash_before_flush");
    finish_child(child, CRASH_EXIT_CODE);
    assert!(sync.join("ready").exists(), "the child stopped before doing its work");
    // It left its uncommitted fragment and a temp file behind.
    assert_eq!(util::fragments(&dir.store()).len(), 2);
    assert!(dir.store().join("atlas.meta.tmp").exists());

    store.refresh().unwrap();
    for handle in [&store, &Atlas::open(dir.store()).unwrap()] {
        assert_eq!(handle.generation(), generation);
        assert_eq!(read_a(handle), [1, 2, 3, 4]);
        assert_eq!(handle.list_datasets(), ["d"]);
    }
    // The dead writer's lock went with its process; the next writer cleans up after it.
    store.open_dataset("d").unwrap().write_array("a", &[2], arr1(&[30, 40]).view()).unwrap();
    assert!(!dir.store().join("atlas.meta.tmp").exists());
    store.flush().unwrap();
    assert_eq!(util::fragments(&dir.store()).len(), 2, "the orphan fragment was kept");
    assert_eq!(read_a(&Atlas::open(dir.store()).unwrap()), [1, 2, 30, 40]);
}

/// The name and bytes of a metadata file of the given encoding, as a format change would
/// write it: made by committing one dataset per name of `commits` in a scratch store.
fn meta_file_of(
    scratch: &Path,
    format: MetaFormat,
    compression: MetaCompression,
    commits: &[&str],
) -> (String, Vec<u8>) {
    let store = Atlas::create(scratch, util::meta_config(format, compression)).unwrap();
    for name in commits {
        store.create_dataset(name).unwrap();
        store.flush().unwrap();
    }
    let name = store.meta_file_name().to_string();
    (name.clone(), std::fs::read(scratch.join(name)).unwrap())
}

#[test]
fn of_two_meta_files_left_by_an_interrupted_format_change_the_higher_generation_wins() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    store.create_dataset("json1").unwrap();
    store.flush().unwrap();
    store.create_dataset("json2").unwrap();
    store.flush().unwrap();
    assert_eq!(store.generation(), 2);
    drop(store);

    // An older msgpack file (generation 1) next to the JSON one (generation 2): JSON wins.
    let (old_name, old_bytes) = meta_file_of(&dir.join("old"), MetaFormat::MsgPack, MetaCompression::None, &["mp1"]);
    std::fs::write(dir.store().join(&old_name), &old_bytes).unwrap();
    let store = Atlas::open(dir.store()).unwrap();
    assert_eq!((store.generation(), store.list_datasets()), (2, vec!["json1".into(), "json2".into()]));
    assert_eq!(store.meta_file_name(), "atlas.json");
    drop(store);

    // A newer zstd-compressed msgpack file (generation 3): it wins, and commits continue in
    // its encoding.
    let (new_name, new_bytes) =
        meta_file_of(&dir.join("new"), MetaFormat::MsgPack, MetaCompression::Zstd, &["mp1", "mp2", "mp3"]);
    std::fs::remove_file(dir.store().join(&old_name)).unwrap();
    std::fs::write(dir.store().join(&new_name), &new_bytes).unwrap();
    let store = Atlas::open(dir.store()).unwrap();
    assert_eq!(store.generation(), 3);
    assert_eq!(store.list_datasets(), ["mp1", "mp2", "mp3"]);
    assert_eq!(store.meta_file_name(), "atlas.msgpack.zst");
    assert_eq!(util::meta_files(&dir.store()).len(), 2, "open must not delete anything");
    // The next writer removes the superseded file.
    store.create_dataset("after").unwrap();
    store.flush().unwrap();
    assert_eq!(util::meta_files(&dir.store()), ["atlas.msgpack.zst"]);
    drop(store);
    let store = Atlas::open(dir.store()).unwrap();
    assert_eq!((store.generation(), store.list_datasets().len()), (4, 4));
}

#[test]
fn a_superseded_meta_file_over_the_handles_chunk_limit_does_not_stop_open() {
    // The older file names an array of 4 MiB chunks that the newer commit deleted; a handle
    // limited to 1 MiB chunks opens the newer commit, and is held to its limit there.
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("big", ArraySpec::new(DType::UInt8, [4 << 20]).chunk_shape([4 << 20])).unwrap();
    store.flush().unwrap();
    let superseded = std::fs::read(dir.store().join("atlas.json")).unwrap();
    ds.delete_array("big").unwrap();
    store.set_meta_format(Some(MetaFormat::MsgPack), Some(MetaCompression::Zstd)).unwrap();
    store.flush().unwrap();
    drop((ds, store));
    // As if the writer had died before removing the old file.
    std::fs::write(dir.store().join("atlas.json"), &superseded).unwrap();
    let mut limits = Limits::default();
    limits.max_chunk_bytes = 1 << 20;
    let store = Atlas::open_with(dir.store(), &OpenOptions::with_limits(limits)).unwrap();
    assert_eq!(store.meta_file_name(), "atlas.msgpack.zst");
    assert!(store.open_dataset("d").unwrap().list_arrays().unwrap().is_empty());
    drop(store);
    // The newest commit itself over the limit is refused, naming its file.
    std::fs::remove_file(dir.store().join("atlas.msgpack.zst")).unwrap();
    match Atlas::open_with(dir.store(), &OpenOptions::with_limits(limits)) {
        Err(atlas::Error::LimitExceeded { path, .. }) => assert_eq!(path, dir.store().join("atlas.json")),
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
}

#[test]
fn a_hand_edited_json_meta_file_with_a_higher_generation_wins_over_a_lower_one() {
    let dir = test_dir!();
    let (name, bytes) = meta_file_of(&dir.store(), MetaFormat::MsgPack, MetaCompression::Lz4, &["packed"]);
    assert_eq!(name, "atlas.msgpack.lz4");
    // The same commit as JSON, with a dataset added and the generation raised by hand.
    let mut json: serde_json::Value = serde_json::from_slice(&json_meta_of(&dir.join("scratch"), &["packed"])).unwrap();
    json.as_object_mut().unwrap().remove("checksum"); // hand-edited: no longer sealed
    json["generation"] = 7.into();
    json["datasets"]["edited"] = json["datasets"]["packed"].clone();
    std::fs::write(dir.store().join("atlas.json"), serde_json::to_vec(&json).unwrap()).unwrap();
    let store = Atlas::open(dir.store()).unwrap();
    assert_eq!(store.generation(), 7);
    assert_eq!(store.list_datasets(), ["edited", "packed"]);
    drop(store);

    // Lowered below the msgpack file's generation, it loses.
    json["generation"] = 0.into();
    std::fs::write(dir.store().join("atlas.json"), serde_json::to_vec(&json).unwrap()).unwrap();
    let store = Atlas::open(dir.store()).unwrap();
    assert_eq!(store.generation(), 1);
    assert_eq!(store.list_datasets(), ["packed"]);
    assert_eq!(std::fs::read(dir.store().join(&name)).unwrap(), bytes);
    drop(store);

    // Of the same generation, neither can be told the newer: corrupt, and nothing removed.
    json["generation"] = 1.into();
    std::fs::write(dir.store().join("atlas.json"), serde_json::to_vec(&json).unwrap()).unwrap();
    util::assert_err!(Atlas::open(dir.store()), atlas::Error::Corrupt { .. });
    assert_eq!(util::meta_files(&dir.store()).len(), 2, "open must not delete anything");
}

/// The plain JSON metadata of a scratch store after committing `commits` datasets.
fn json_meta_of(scratch: &Path, commits: &[&str]) -> Vec<u8> {
    meta_file_of(scratch, MetaFormat::Json, MetaCompression::None, commits).1
}

#[test]
fn a_newer_meta_file_that_does_not_decode_stops_open_instead_of_rolling_back() {
    let dir = test_dir!();
    drop(committed_store(&dir.store()));
    // A damaged second metadata file next to the good one: it could be the newer commit.
    std::fs::write(dir.store().join("atlas.msgpack"), b"\x81\xa3bad").unwrap();
    util::assert_err!(Atlas::open(dir.store()), atlas::Error::Corrupt { .. });
    assert!(dir.store().join("atlas.msgpack").exists(), "open must not delete anything");
}
