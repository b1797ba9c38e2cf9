//! I/O faults (EIO, ENOSPC, short writes) injected at every mutating call of a write and its
//! flush: each surfaces as an error, the last commit stays readable and whole, and retrying
//! after the fault commits the change (after a failed fsync of the session's fragment, once
//! the session is discarded: its bytes may be lost).

use atlas::testing::{Fault, inject};
use atlas::{ArraySpec, Atlas, Error};
use ndarray::Array2;

use crate::util::{self, test_dir};

const SHAPE: [usize; 2] = [8, 8];

fn values(seed: i32) -> Array2<i32> {
    Array2::from_shape_fn(SHAPE, |(i, j)| seed * 1000 + (i * 8 + j) as i32)
}

/// What a fresh handle sees of array `d/a`.
fn read_fresh(path: &std::path::Path) -> Array2<i32> {
    let ds = Atlas::open(path).unwrap().open_dataset("d").unwrap();
    ds.read_array::<i32>("a", &[0, 0], &[8, 8]).unwrap().into_dimensionality().unwrap()
}

/// A new store at `path` (replacing any) whose array `d/a` (8x8 int32, chunks 4x4) holds
/// `values(1)`, committed.
fn fresh_store_with_values_1(path: &std::path::Path) -> (Atlas, atlas::Dataset) {
    let _ = std::fs::remove_dir_all(path);
    let store = util::create(path);
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(atlas::DType::Int32, [8, 8]).chunk_shape([4, 4])).unwrap();
    ds.write_array("a", &[0, 0], values(1).view()).unwrap();
    store.flush().unwrap();
    (store, ds)
}

/// Runs `op` with EIO injected at its first mutating call, then its second, and so on until
/// it succeeds; after each failure (an `Io` error) `check` gets the failed call's number.
/// Returns how many calls failed.
fn fail_each_call_in_turn(op: impl Fn() -> atlas::Result<()>, check: impl Fn(u64)) -> u64 {
    for fail_at in 0.. {
        let fault = inject(fail_at, Fault::Eio);
        let result = op();
        drop(fault);
        match result {
            Ok(()) => return fail_at,
            Err(Error::Io { .. }) => check(fail_at),
            Err(e) => panic!("call {fail_at}: {e:?}"),
        }
    }
    unreachable!("a u64 of calls")
}

#[test]
fn a_fault_at_any_io_call_of_a_flush_keeps_the_last_commit_and_a_retry_commits() {
    let mut dir = test_dir!();
    let path = dir.store();
    // The fault plan is process-wide: run with no other test doing I/O.
    dir.while_alone(|| {
        let (mut refused_retries, mut past_commit_point) = (0, 0);
        for fault in [Fault::Eio, Fault::NoSpace, Fault::ShortWrite] {
            for fail_at in 0.. {
                let (store, ds) = fresh_store_with_values_1(&path);
                let guard = inject(fail_at, fault);
                let wrote = ds.write_array("a", &[0, 0], values(2).view());
                let flushed = if wrote.is_ok() { store.flush() } else { Ok(()) };
                let hit = guard.calls_seen() > fail_at;
                drop(guard);
                if !hit {
                    assert!(wrote.is_ok() && flushed.is_ok(), "{fault:?} at {fail_at}: an error without a fault");
                    assert_eq!(read_fresh(&path), values(2));
                    break;
                }
                for err in [wrote.as_ref().err(), flushed.as_ref().err()].into_iter().flatten() {
                    assert!(matches!(err, Error::Io { .. }), "{fault:?} at {fail_at}: {err:?}");
                }
                assert!(wrote.is_err() || flushed.is_err(), "{fault:?} at {fail_at}: the fault was swallowed");
                // A flush that failed after the commit point (making the rename durable,
                // removing what the commit superseded) committed; one that failed before it
                // left the last commit, and the changes pending under the writer lock.
                let committed = match &flushed {
                    Err(Error::Io { path: failed, op, .. }) => {
                        (*op == "fsync directory" && *failed == path) || *op == "remove"
                    }
                    _ => false,
                };
                let seen = read_fresh(&path);
                if flushed.is_err() && !committed {
                    assert_eq!(seen, values(1), "{fault:?} at {fail_at}: committed before the commit point");
                    assert!(store.has_pending_changes(), "{fault:?} at {fail_at}: the changes were dropped");
                    let other = Atlas::open(&path).unwrap();
                    assert!(
                        matches!(other.create_dataset("x"), Err(Error::Locked { .. })),
                        "{fault:?} at {fail_at}: the writer lock was released"
                    );
                } else if committed {
                    past_commit_point += 1;
                    assert_eq!(seen, values(2), "{fault:?} at {fail_at}: not committed after the commit point");
                    assert!(!store.has_pending_changes(), "{fault:?} at {fail_at}: the commit is still pending");
                    // The writer lock went with the commit: another writer starts at once.
                    let other = Atlas::open(&path).unwrap();
                    other.create_dataset("x").unwrap_or_else(|e| panic!("{fault:?} at {fail_at}: {e}"));
                    other.discard();
                    // The rename is not known durable: the next flush retries the directory's
                    // fsync (here failing again) rather than find nothing to do.
                    let unsynced = matches!(&flushed, Err(Error::Io { op, .. }) if *op == "fsync directory");
                    let again = inject(0, Fault::Eio);
                    assert_eq!(store.flush().is_err(), unsynced, "{fault:?} at {fail_at}: the retry's fsync");
                    drop(again);
                } else {
                    assert_eq!(seen, values(1), "{fault:?} at {fail_at}: a failed write committed");
                }
                // With the fault gone, the same handle finishes the change.
                if wrote.is_err() {
                    ds.write_array("a", &[0, 0], values(2).view()).unwrap();
                }
                match store.flush() {
                    Ok(()) => {}
                    // After a failed fsync of its fragment the session cannot be committed
                    // (its bytes may be lost): the retry says so, and the handle discards
                    // the session and redoes the change.
                    Err(Error::Io { op, .. }) if op.contains("earlier fsync") => {
                        assert_eq!(read_fresh(&path), values(1), "{fault:?} at {fail_at}: a half commit");
                        // And so does every later flush, until the session is discarded.
                        let again = store.flush();
                        assert!(
                            matches!(&again, Err(Error::Io { op, .. }) if op.contains("earlier fsync")),
                            "{again:?}"
                        );
                        refused_retries += 1;
                        store.discard();
                        assert_eq!(ds.read_array::<i32>("a", &[0, 0], &[8, 8]).unwrap(), values(1).into_dyn());
                        ds.write_array("a", &[0, 0], values(2).view()).unwrap();
                        store.flush().unwrap();
                    }
                    Err(e) => panic!("{fault:?} at {fail_at}: the retry failed: {e}"),
                }
                assert_eq!(read_fresh(&path), values(2), "{fault:?} at {fail_at}: retry lost the write");
            }
        }
        assert_eq!(refused_retries, 6, "the fragment's fsync and its directory's, per fault kind");
        assert_eq!(past_commit_point, 3, "the store directory's fsync, per fault kind");
    });
}

#[test]
fn an_append_whose_sealing_fails_changes_nothing_and_can_be_retried() {
    // One row appended to each of 32 arrays of 2 MiB chunks stages 64 MiB, the budget: the
    // next append seals them all before it stages its own row, and that sealing fails at
    // its first write. An append refused for its shape seals nothing.
    let mut dir = test_dir!();
    let path = dir.store();
    dir.while_alone(|| {
        let store = util::create(&path);
        let ds = store.create_dataset("d").unwrap();
        let row = |i: usize| Array2::from_shape_fn((1, 1024), |(_, j)| (i * 1024 + j) as f64);
        let spec = ArraySpec::new(atlas::DType::Float64, [0, 1024]).chunk_shape([256, 1024]);
        let arrays: Vec<_> = (0..36).map(|i| ds.define_array(&format!("a{i}"), spec.clone()).unwrap()).collect();
        for (i, array) in arrays.iter().enumerate().take(32) {
            array.append(row(i).view()).unwrap();
        }
        let fault = inject(0, Fault::Eio);
        let wrong = Array2::<f64>::zeros((1, 3));
        assert!(matches!(arrays[32].append(wrong.view()), Err(Error::ShapeMismatch { .. })));
        assert!(matches!(arrays[32].append(row(32).view()), Err(Error::Io { .. })), "the sealing fails");
        drop(fault);
        assert_eq!(arrays[32].meta().unwrap().shape, [0, 1024], "the failed append changed nothing");
        for (i, array) in arrays.iter().enumerate().skip(32) {
            array.append(row(i).view()).unwrap();
        }
        store.flush().unwrap();
        let ds = Atlas::open(&path).unwrap().open_dataset("d").unwrap();
        for i in 0..36 {
            let name = format!("a{i}");
            assert_eq!(ds.array(&name).unwrap().meta().unwrap().shape, [1, 1024], "{name} holds its row once");
            assert_eq!(ds.read_array::<f64>(&name, &[0, 0], &[1, 1024]).unwrap(), row(i).into_dyn());
        }
    });
}

#[test]
fn a_shrink_that_fails_at_any_call_changes_nothing_and_can_be_retried() {
    // Shrinking [10, 10] (chunks [4, 4]) to [10, 6] rewrites the chunks past column 6: each
    // mutating call of that in turn fails, until one gets through.
    let mut dir = test_dir!();
    let path = dir.store();
    let data = Array2::from_shape_fn((10, 10), |(i, j)| (i * 10 + j) as i32 + 1);
    dir.while_alone(|| {
        let store = util::create(&path);
        let ds = store.create_dataset("d").unwrap();
        let array = ds.define_array("a", ArraySpec::new(atlas::DType::Int32, [10, 10]).chunk_shape([4, 4])).unwrap();
        array.write(&[0, 0], data.view()).unwrap();
        store.flush().unwrap();
        let stats = array.stats().unwrap();
        let failed = fail_each_call_in_turn(
            || array.resize(&[10, 6]),
            |fail_at| {
                assert_eq!(array.meta().unwrap().shape, [10, 10], "call {fail_at}: the shape changed");
                assert_eq!(array.read::<i32>(&[0, 0], &[10, 10]).unwrap(), data.clone().into_dyn(), "call {fail_at}");
                assert_eq!(array.stats().unwrap(), stats, "call {fail_at}: the statistics changed");
                assert!(!store.has_pending_changes(), "call {fail_at}: the failed first change stayed pending");
            },
        );
        assert!(failed >= 3, "the shrink made only {failed} mutating calls");
        store.flush().unwrap();
    });
    let array = Atlas::open(&path).unwrap().open_dataset("d").unwrap().array("a").unwrap();
    assert_eq!(array.read::<i32>(&[0, 0], &[10, 6]).unwrap(), data.slice(ndarray::s![.., ..6]).into_dyn());
    assert_eq!(array.stats().unwrap().count, 60);
}

#[test]
fn a_copy_that_fails_at_any_call_changes_nothing_and_can_be_retried() {
    // The copy seals the source's staged chunk, then appends its blocks as stored: each
    // mutating call of that in turn fails, until one gets through. The session's fragment
    // is the store's only one, so any bytes it holds beyond its live blocks are a failure's.
    let mut dir = test_dir!();
    let path = dir.store();
    dir.while_alone(|| {
        let store = util::create(&path);
        let ds = store.create_dataset("d").unwrap();
        ds.define_array("c", ArraySpec::new(atlas::DType::Int32, [8, 8]).chunk_shape([4, 4])).unwrap();
        store.flush().unwrap(); // no block: no fragment yet
        ds.write_array("c", &[4, 4], ndarray::arr2(&[[-2]]).view()).unwrap(); // staged
        let failed = fail_each_call_in_turn(
            || store.copy_array(("d", "c"), ("d", "b")),
            |fail_at| {
                assert!(!ds.array_exists("b"), "call {fail_at}: a failed copy left its array");
                assert_eq!(ds.array("c").unwrap().read::<i32>(&[4, 4], &[1, 1]).unwrap()[[0, 0]], -2, "call {fail_at}");
            },
        );
        assert!(failed >= 2, "the copy made only {failed} mutating calls");
        store.flush().unwrap();
        assert!(!holds_dead_bytes(&store), "the failed copies' blocks stayed");
    });
    let ds = Atlas::open(&path).unwrap().open_dataset("d").unwrap();
    let mut expected = Array2::<i32>::zeros((8, 8));
    expected[[4, 4]] = -2;
    for array in ["c", "b"] {
        assert_eq!(ds.read_array::<i32>(array, &[0, 0], &[8, 8]).unwrap(), expected.clone().into_dyn(), "{array}");
    }
}

#[test]
fn an_append_whose_write_fails_is_taken_back_whole_and_can_be_retried() {
    let mut dir = test_dir!();
    let path = dir.store();
    dir.while_alone(|| {
        let store = util::create(&path);
        let ds = store.create_dataset("d").unwrap();
        let spec = ArraySpec::new(atlas::DType::Float64, [0, 1024]).chunk_shape([1, 1024]);
        let array = ds.define_array("a", spec).unwrap();
        store.flush().unwrap();
        let row = Array2::from_shape_fn((1, 1024), |(_, j)| j as f64);
        // Each mutating call of the append in turn fails (taking the lock, creating the
        // fragment, writing the block), until one gets through.
        let failed = fail_each_call_in_turn(
            || array.append(row.view()),
            |fail_at| {
                assert_eq!(array.meta().unwrap().shape, [0, 1024], "call {fail_at}: the failed append grew the array");
                assert!(!store.has_pending_changes(), "call {fail_at}: the failed first change kept the writer lock");
            },
        );
        assert!(failed >= 3, "the append made only {failed} mutating calls");
        store.flush().unwrap();
        let ds = Atlas::open(&path).unwrap().open_dataset("d").unwrap();
        assert_eq!(ds.read_array::<f64>("a", &[0, 0], &[1, 1024]).unwrap(), row.into_dyn());
    });
}

#[test]
fn a_short_write_of_a_block_leaves_the_next_flush_able_to_commit_the_blocks_before_it() {
    // Uncompressed 256 KiB chunks end on an aligned offset. The second write covers 33
    // chunks (over the 8 MiB a write may stage), so it encodes and appends them itself:
    // half of its first block is stored before the fault, past the bytes the fragment
    // counts. The flush appends the first write's staged chunk after them and must cut them
    // first, or the file would be longer than the commit records.
    let mut dir = test_dir!();
    let path = dir.store();
    dir.while_alone(|| {
        let store = util::create(&path);
        let ds = store.create_dataset("d").unwrap();
        let spec =
            ArraySpec::new(atlas::DType::Int32, [34 * 64, 1024]).chunk_shape([64, 1024]).codec(atlas::Codec::None);
        ds.define_array("a", spec).unwrap();
        let first = Array2::from_shape_fn((64, 1024), |(i, j)| (i * 1024 + j) as i32);
        ds.write_array("a", &[0, 0], first.view()).unwrap();
        let rest = Array2::from_shape_fn((33 * 64, 1024), |(i, j)| (i + j) as i32 + 1);
        let fault = inject(0, Fault::ShortWrite);
        assert!(matches!(ds.write_array("a", &[64, 0], rest.view()), Err(Error::Io { .. })));
        drop(fault);
        store.flush().unwrap();
        let ds = Atlas::open(&path).unwrap().open_dataset("d").unwrap();
        assert_eq!(ds.read_array::<i32>("a", &[0, 0], &[64, 1024]).unwrap(), first.into_dyn());
        let unwritten = ds.read_array::<i32>("a", &[64, 0], &[33 * 64, 1024]).unwrap();
        assert!(unwritten.iter().all(|&v| v == 0), "the failed write left nothing");
    });
}

/// Whether the store's committed fragments hold bytes no block of theirs uses: a compaction
/// finds something to reclaim.
fn holds_dead_bytes(store: &Atlas) -> bool {
    let report = store.compact().unwrap();
    report.after_bytes != report.before_bytes
}

#[test]
fn a_change_failing_halfway_gives_its_blocks_back_so_the_retry_leaves_no_dead_bytes() {
    // A write of 36 uncompressed 256 KiB chunks (over what a write may stage, so it appends
    // its blocks itself) fails partway, in a session an earlier change began (so the
    // session stays): the retry writes its blocks where those of the failed write went,
    // and the one committed fragment holds only live blocks. (Before, each failed attempt
    // left its blocks in the file: on a full disk the retry needed their space again.)
    let mut dir = test_dir!();
    let path = dir.store();
    let data = Array2::from_shape_fn((36 * 64, 1024), |(i, j)| (i * 1024 + j) as i32);
    let spec = ArraySpec::new(atlas::DType::Int32, [36 * 64, 1024]).chunk_shape([64, 1024]).codec(atlas::Codec::None);
    dir.while_alone(|| {
        for fault in [Fault::Eio, Fault::NoSpace, Fault::ShortWrite] {
            for fail_at in [5, 9, 20] {
                let _ = std::fs::remove_dir_all(&path);
                let store = util::create(&path);
                let ds = store.create_dataset("d").unwrap();
                ds.define_array("a", spec.clone()).unwrap();
                store.flush().unwrap();
                ds.define_array("b", spec.clone()).unwrap();
                let guard = inject(fail_at, fault);
                let failed = ds.write_array("a", &[0, 0], data.view());
                drop(guard);
                assert!(matches!(failed, Err(Error::Io { .. })), "{fault:?} at {fail_at}: {failed:?}");
                assert!(store.has_pending_changes(), "{fault:?} at {fail_at}: the earlier change was dropped");
                ds.write_array("a", &[0, 0], data.view()).unwrap();
                store.flush().unwrap();
                assert!(!holds_dead_bytes(&store), "{fault:?} at {fail_at}: the failed write's blocks stayed");
                let ds = Atlas::open(&path).unwrap().open_dataset("d").unwrap();
                assert_eq!(ds.read_array::<i32>("a", &[0, 0], &[36 * 64, 1024]).unwrap(), data.clone().into_dyn());
            }
        }
    });
}

#[test]
fn a_failure_sealing_staged_chunks_keeps_them_for_the_next_flush() {
    // Small writes are staged and encoded at the flush: a write failing there fails the
    // flush, which leaves the chunks staged and the changes pending, so the next flush
    // commits them whole.
    let mut dir = test_dir!();
    let path = dir.store();
    dir.while_alone(|| {
        let store = util::create(&path);
        let ds = store.create_dataset("d").unwrap();
        let spec = ArraySpec::new(atlas::DType::Int32, [64, 64]).chunk_shape([16, 64]).codec(atlas::Codec::None);
        let a = ds.define_array("a", spec).unwrap();
        let values = Array2::from_shape_fn((64, 64), |(i, j)| (i * 64 + j) as i32);
        for row in 0..64u64 {
            a.write(&[row, 0], values.slice(ndarray::s![row as usize..=row as usize, ..])).unwrap();
        }
        let staged = store.array_blocks("d", "a").unwrap();
        assert!(staged.iter().all(|b| b.state == atlas::BlockState::Staged) && staged.len() == 4);
        for fault in [Fault::ShortWrite, Fault::Eio] {
            let guard = inject(1, fault);
            assert!(matches!(store.flush(), Err(Error::Io { .. })), "{fault:?}");
            drop(guard);
            assert!(store.has_pending_changes());
            assert_eq!(a.read::<i32>(&[0, 0], &[64, 64]).unwrap(), values.clone().into_dyn(), "{fault:?}");
        }
        store.flush().unwrap();
        assert!(!holds_dead_bytes(&store), "the failed sealings' blocks stayed in the fragment");
        let reopened = Atlas::open(&path).unwrap();
        let blocks = reopened.array_blocks("d", "a").unwrap();
        assert!(blocks.iter().all(|b| b.state == atlas::BlockState::Committed) && blocks.len() == 4);
        let a = reopened.open_dataset("d").unwrap().array("a").unwrap();
        assert_eq!(a.read::<i32>(&[0, 0], &[64, 64]).unwrap(), values.into_dyn());
    });
}

#[test]
fn create_fsyncs_the_directory_holding_each_directory_it_makes() {
    let mut dir = test_dir!();
    let root = dir.path().to_path_buf();
    let store = root.join("a/b/store");
    let synced = dir.while_alone(|| {
        // Failing each mutating call in turn names every directory fsynced, in order.
        let mut synced = Vec::new();
        for fail_at in 0.. {
            let _ = std::fs::remove_dir_all(root.join("a"));
            let guard = inject(fail_at, Fault::Eio);
            let created = Atlas::create(&store, atlas::StoreConfig::default());
            drop(guard);
            match created {
                Ok(_) => break,
                Err(Error::Io { path, op: "fsync directory", .. }) => synced.push(path),
                Err(Error::Io { .. }) => {}
                Err(e) => panic!("at {fail_at}: {e}"),
            }
        }
        synced
    });
    let made_in = [root.clone(), root.join("a"), root.join("a/b"), store.clone()];
    assert_eq!(synced[..4], made_in, "each new directory's entry, outermost first");
    assert!(synced.contains(&store), "the metadata's rename");
}

#[test]
fn a_create_that_fails_before_its_metadata_is_in_place_leaves_the_directory_empty() {
    let mut dir = test_dir!();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let failures = dir.while_alone(|| {
        let mut failures = 0;
        for fail_at in 0.. {
            let guard = inject(fail_at, Fault::NoSpace);
            let created = Atlas::create(&store, atlas::StoreConfig::default());
            drop(guard);
            match created {
                Ok(_) => break,
                // After the rename the store exists; only its durability is in doubt.
                Err(Error::Io { op: "fsync directory", .. }) if Atlas::open(&store).is_ok() => {}
                Err(Error::Io { .. }) => {
                    let left: Vec<_> = std::fs::read_dir(&store).unwrap().map(|e| e.unwrap().file_name()).collect();
                    assert!(left.is_empty(), "at {fail_at}: left {left:?}");
                    failures += 1;
                }
                Err(e) => panic!("at {fail_at}: {e}"),
            }
            std::fs::remove_dir_all(&store).unwrap();
            std::fs::create_dir(&store).unwrap();
        }
        failures
    });
    assert!(failures >= 4, "the data directory and the metadata's create, write, fsync and rename: {failures}");
}

#[test]
fn a_write_that_fails_after_training_a_dictionary_leaves_none() {
    let mut dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let spec = ArraySpec::new(atlas::DType::UInt16, [2048]).chunk_shape([64]).zstd_dictionary(true);
    let a = ds.define_array("a", spec).unwrap();
    let data = ndarray::Array1::from_shape_fn(2048, |i| (i % 97 * 31) as u16);
    // The session is under way, so the failed write takes back only what it did itself.
    let failed = dir.while_alone(|| {
        let guard = inject(0, Fault::Eio);
        let failed = a.write(&[0], data.view());
        drop(guard);
        failed
    });
    assert!(matches!(failed, Err(Error::Io { .. })), "{failed:?}");
    assert!(a.meta().unwrap().zstd_dictionary.is_none(), "a dictionary kept for blocks never written");
    a.write(&[0], data.view()).unwrap();
    store.flush().unwrap();
    assert!(a.meta().unwrap().zstd_dictionary.is_some());
}

#[test]
fn a_first_write_failing_at_any_call_leaves_no_fragment_file() {
    let mut dir = test_dir!();
    let path = dir.store();
    let store = util::create(&path);
    store.create_dataset("d").unwrap().define_array("a", ArraySpec::new(atlas::DType::Int32, [8, 8])).unwrap();
    store.flush().unwrap();
    let ds = store.open_dataset("d").unwrap();
    dir.while_alone(|| {
        for fail_at in 0.. {
            let guard = inject(fail_at, Fault::Eio);
            let wrote = ds.write_array("a", &[0, 0], values(3).view());
            drop(guard);
            if wrote.is_ok() {
                assert!(fail_at >= 2, "the write made only {fail_at} I/O calls");
                break;
            }
            // The change was the session's first: nothing of it may stay behind.
            assert!(util::fragments(&path).is_empty(), "at {fail_at}: {wrote:?}");
            assert!(!store.has_pending_changes());
        }
    });
    store.flush().unwrap();
    assert_eq!(read_fresh(&path), values(3));
}

#[test]
fn a_writer_makes_the_newest_commit_durable_before_removing_what_it_supersedes() {
    let mut dir = test_dir!();
    let path = dir.store();
    util::create(&path).flush().unwrap();
    // What a writer that crashed after its rename, before its directory fsync, left.
    let orphan = path.join("data").join(format!("{:016x}-{:016x}.frag", 7, 9));
    std::fs::write(&orphan, b"left by a crashed writer").unwrap();
    let store = Atlas::open(&path).unwrap();
    let first_call = dir.while_alone(|| {
        let guard = inject(0, Fault::Eio);
        let started = store.create_dataset("d");
        drop(guard);
        started
    });
    match first_call {
        Err(Error::Io { path: synced, op: "fsync directory", .. }) => assert_eq!(synced, path),
        other => panic!("the first mutating call was not the store directory's fsync: {other:?}"),
    }
    assert!(orphan.exists(), "removed before the commit was made durable");
    store.create_dataset("d").unwrap();
    assert!(!orphan.exists());
}

/// A store-wide rewrite, run by [`a_fault_at_any_io_call_of_a_rewrite_loses_nothing_and_a_retry_finishes_it`].
#[derive(Debug, Clone, Copy)]
enum Rewrite {
    Compact,
    Recompress,
    MetaFormat,
}

impl Rewrite {
    /// Runs the rewrite and commits it.
    fn run(self, store: &Atlas) -> atlas::Result<()> {
        match self {
            Self::Compact => store.compact().map(drop),
            Self::Recompress => {
                store.recompress(atlas::Codec::Lz4, Some(atlas::Shuffle::Off)).and_then(|()| store.flush())
            }
            Self::MetaFormat => store
                .set_meta_format(Some(atlas::MetaFormat::MsgPack), Some(atlas::MetaCompression::Zstd))
                .and_then(|()| store.flush()),
        }
    }

    /// Whether a fresh handle sees the rewrite done.
    fn is_done(self, path: &std::path::Path) -> bool {
        let store = Atlas::open(path).unwrap();
        match self {
            Self::Compact => util::fragments(path).len() == 1,
            Self::Recompress => store.codec() == atlas::Codec::Lz4,
            Self::MetaFormat => store.meta_file_name() == "atlas.msgpack.zst",
        }
    }
}

#[test]
fn a_fault_at_any_io_call_of_a_rewrite_loses_nothing_and_a_retry_finishes_it() {
    let mut dir = test_dir!();
    let path = dir.store();
    // Two commits, the second overwriting half of the first: two fragments, one dead block.
    let expected = {
        let mut both = values(1);
        both.slice_mut(ndarray::s![..4, ..]).assign(&values(2).slice(ndarray::s![..4, ..]));
        both
    };
    dir.while_alone(|| {
        for rewrite in [Rewrite::Compact, Rewrite::Recompress, Rewrite::MetaFormat] {
            for fault in [Fault::Eio, Fault::NoSpace, Fault::ShortWrite] {
                for fail_at in 0.. {
                    let (store, ds) = fresh_store_with_values_1(&path);
                    ds.write_array("a", &[0, 0], values(2).slice(ndarray::s![..4, ..])).unwrap();
                    store.flush().unwrap();

                    let guard = inject(fail_at, fault);
                    let result = rewrite.run(&store);
                    let hit = guard.calls_seen() > fail_at;
                    drop(guard);
                    let at = format!("{rewrite:?}, {fault:?} at {fail_at}");
                    if !hit {
                        assert!(fail_at >= 5, "{at}: the rewrite made only {fail_at} I/O calls");
                        assert!(result.is_ok(), "{at}: an error without a fault: {result:?}");
                        assert!(rewrite.is_done(&path), "{at}: not done");
                        assert_eq!(read_fresh(&path), expected, "{at}");
                        break;
                    }
                    assert!(matches!(result, Err(Error::Io { .. })), "{at}: {result:?}");
                    // The data is whole whether or not the rewrite's commit was made.
                    assert_eq!(read_fresh(&path), expected, "{at}: data lost");
                    assert_eq!(ds.read_array::<i32>("a", &[0, 0], &[8, 8]).unwrap(), expected.clone().into_dyn());
                    // With the fault gone, the same handle finishes it (after dropping a
                    // session whose fragment could not be made durable).
                    if let Err(e) = rewrite.run(&store) {
                        assert!(matches!(&e, Error::Io { op, .. } if op.contains("earlier fsync")), "{at}: {e}");
                        store.discard();
                        rewrite.run(&store).unwrap();
                    }
                    assert!(rewrite.is_done(&path), "{at}: the retry did not finish it");
                    assert_eq!(read_fresh(&path), expected, "{at}: the retry lost data");
                    drop(store);
                    let verified = Atlas::open(&path).unwrap().verify(&mut |_, _| {}).unwrap();
                    assert!(verified.bad_blocks.is_empty(), "{at}: {verified:?}");
                }
            }
        }
    });
}

#[test]
fn a_loss_by_panic_is_reported_by_the_next_flush_once_and_forgotten_by_discard() {
    let mut dir = test_dir!();
    let path = dir.store();
    dir.while_alone(|| {
        let panicking_flush = |store: &Atlas| {
            let fault = inject(0, Fault::Panic);
            let flushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.flush()));
            drop(fault);
            assert!(flushed.is_err(), "the injected panic");
        };
        let (store, ds) = fresh_store_with_values_1(&path);
        ds.write_array("a", &[0, 0], values(2).view()).unwrap();
        panicking_flush(&store);
        assert!(matches!(store.flush(), Err(Error::ChangesDiscarded { .. })));
        store.flush().unwrap(); // reported once; nothing left to commit
        assert_eq!(read_fresh(&path), values(1));

        ds.write_array("a", &[0, 0], values(2).view()).unwrap();
        panicking_flush(&store);
        store.discard();
        ds.write_array("a", &[0, 0], values(3).view()).unwrap();
        store.flush().unwrap();
        assert_eq!(read_fresh(&path), values(3));
    });
}

#[test]
fn a_panic_at_any_io_call_of_a_flush_discards_the_session_reports_it_once_and_the_handle_goes_on() {
    let mut dir = test_dir!();
    let path = dir.store();
    dir.while_alone(|| {
        for fail_at in 0.. {
            let (store, ds) = fresh_store_with_values_1(&path);
            ds.write_array("a", &[0, 0], values(2).view()).unwrap(); // staged until the flush
            let fault = inject(fail_at, Fault::Panic);
            let flushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.flush()));
            drop(fault);
            let panicked = match flushed {
                Ok(result) => {
                    result.unwrap();
                    assert!(fail_at > 3, "a flush makes several mutating calls, not {fail_at}");
                    break;
                }
                Err(payload) => payload.downcast_ref::<&str>().map_or_else(String::new, ToString::to_string),
            };
            assert!(panicked.contains("the injected panic"), "call {fail_at}: {panicked}");
            // The half-made session is gone, its lock too; the commit in flight landed whole
            // or not at all.
            assert!(!store.has_pending_changes(), "call {fail_at}");
            let on_disk = read_fresh(&path);
            assert!(on_disk == values(1) || on_disk == values(2), "call {fail_at}");
            store.refresh().unwrap();
            // Changes lost before the commit point are reported, once, by the next change,
            // which does nothing else.
            let written = ds.write_array("a", &[0, 0], values(3).view());
            if on_disk == values(1) {
                assert!(matches!(written, Err(Error::ChangesDiscarded { .. })), "call {fail_at}: {written:?}");
                assert!(!store.has_pending_changes(), "call {fail_at}");
                ds.write_array("a", &[0, 0], values(3).view()).unwrap();
            } else {
                written.unwrap_or_else(|e| panic!("call {fail_at}: {e}"));
            }
            store.flush().unwrap_or_else(|e| panic!("call {fail_at}: {e}"));
            assert_eq!(read_fresh(&path), values(3), "call {fail_at}");
        }
    });
}
