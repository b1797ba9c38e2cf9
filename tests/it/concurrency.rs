//! One writer at a time, in this process and across processes; stale handles move to the
//! newest commit when they start a change; readers only ever see whole commits.
//!
//! Cross-process tests run this test binary again as a child (`spawn_child`), selecting
//! `child_role_runs_only_in_spawned_processes` and a role through environment variables.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atlas::{ArraySpec, Atlas, AttrValue, Codec, DType, Error, MetaCompression, OpenOptions, Shuffle, StoreConfig};
use ndarray::{Array1, arr1};

use crate::util::{self, TestDir, assert_err, test_dir};

const ENV_ROLE: &str = "ATLAS_IT_CHILD_ROLE";
const ENV_STORE: &str = "ATLAS_IT_CHILD_STORE";
const ENV_SYNC: &str = "ATLAS_IT_CHILD_SYNC";
/// Exit code of a child that stopped on purpose without dropping its store (a "crash").
pub(crate) const CRASH_EXIT_CODE: i32 = 42;
const WAIT: Duration = Duration::from_secs(60);

/// Runs `role` in a child process on the test's store (`dir.store()`); `dir.join("sync")` is
/// a folder for the `ready`/`release` marker files the two processes use to take turns. The
/// calling test must hold no writer lock (see `TestDir::while_alone`).
pub(crate) fn spawn_child(dir: &mut TestDir, role: &str) -> Child {
    let (store, sync) = (dir.store(), dir.join("sync"));
    std::fs::create_dir_all(&sync).unwrap();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "concurrency::child_role_runs_only_in_spawned_processes", "--nocapture", "--test-threads=1"])
        .env(ENV_ROLE, role)
        .env(ENV_STORE, &store)
        .env(ENV_SYNC, &sync)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    dir.while_alone(|| command.spawn().unwrap())
}

/// Waits until `path` exists; panics after a minute.
pub(crate) fn wait_for(path: &Path) {
    let deadline = Instant::now() + WAIT;
    while !path.exists() {
        assert!(Instant::now() < deadline, "timed out waiting for {}", path.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for a child and returns its exit code, printing its output if it is not `expected`.
pub(crate) fn finish_child(child: Child, expected: i32) {
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(expected),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The body of every child process; in a normal test run (no role set) it does nothing.
#[test]
fn child_role_runs_only_in_spawned_processes() {
    let (Ok(role), Ok(store), Ok(sync)) = (std::env::var(ENV_ROLE), std::env::var(ENV_STORE), std::env::var(ENV_SYNC))
    else {
        return;
    };
    let (store, sync) = (PathBuf::from(store), PathBuf::from(sync));
    let touch = |name: &str| std::fs::write(sync.join(name), b"").unwrap();
    match role.as_str() {
        // Takes the writer lock with an uncommitted change, holds it until released, commits.
        "hold_lock" => {
            let atlas = Atlas::open(&store).unwrap();
            let ds = atlas.create_dataset("from_child").unwrap();
            ds.define_array("a", ArraySpec::new(DType::Int32, [3])).unwrap();
            ds.write_array("a", &[0], arr1(&[7, 8, 9]).view()).unwrap();
            touch("ready");
            wait_for(&sync.join("release"));
            atlas.flush().unwrap();
        }
        // Commits `COMMITS` states, each writing arrays `a` and `b` and attribute `k` to k.
        "commit_loop" => {
            let atlas = Atlas::open(&store).unwrap();
            let ds = atlas.open_dataset("d").unwrap();
            touch("ready");
            for k in 1..=COMMITS {
                ds.write_array("a", &[0], Array1::from_elem(LOOP_LEN, k).view()).unwrap();
                atlas.attrs().set("k", k).unwrap();
                ds.write_array("b", &[0], Array1::from_elem(LOOP_LEN, k).view()).unwrap();
                atlas.flush().unwrap();
            }
        }
        // Writes and starts a commit's temp file, then dies without flushing or dropping.
        "crash_before_flush" => {
            let atlas = Atlas::open(&store).unwrap();
            let ds = atlas.open_dataset("d").unwrap();
            ds.write_array("a", &[0], arr1(&[-1i32, -1, -1, -1]).view()).unwrap();
            atlas.create_dataset("ghost").unwrap();
            std::fs::write(store.join("atlas.meta.tmp"), b"{\"format_version\":1,\"gener").unwrap();
            touch("ready");
            std::process::exit(CRASH_EXIT_CODE);
        }
        // Appends RACE_COMMITS rows of its own, committing each, against the parent's threads.
        "append_race" => {
            touch("ready");
            race_appends(&store, CHILD_RACER);
        }
        other => panic!("unknown child role {other}"),
    }
}

const COMMITS: i32 = 15;
const LOOP_LEN: usize = 64;

#[test]
fn second_handle_gets_locked_while_first_has_pending_changes_then_writes_after_flush() {
    let dir = test_dir!();
    let first = util::create(&dir.store());
    let base = first.create_dataset("base").unwrap();
    base.define_array("a", ArraySpec::new(DType::Int32, [2])).unwrap();
    first.flush().unwrap();

    // Two idle handles hold nothing: either may start a change.
    let second = Atlas::open(dir.store()).unwrap();
    first.create_dataset("x").unwrap();
    let sds = second.open_dataset("base").unwrap();
    let sarr = sds.array("a").unwrap();
    let locked = |r: Result<(), Error>, what: &str| match r {
        Err(Error::Locked { path }) => assert_eq!(path, dir.store(), "{what}"),
        other => panic!("{what}: expected Locked, got {other:?}"),
    };
    locked(second.create_dataset("y").map(drop), "create_dataset");
    locked(second.delete_dataset("base"), "delete_dataset");
    locked(second.set_codec(Codec::Lz4), "set_codec");
    locked(second.set_shuffle(Shuffle::Off), "set_shuffle");
    locked(second.attrs().set("k", 1), "store attrs");
    locked(sds.attrs().set("k", 1), "dataset attrs");
    locked(sarr.attrs().set("k", 1), "array attrs");
    locked(sds.define_array("b", ArraySpec::new(DType::Int8, [1])).map(drop), "define_array");
    locked(sds.delete_array("a"), "delete_array");
    locked(sds.write_array("a", &[0], arr1(&[1, 2]).view()), "write_array");
    locked(sarr.set_codec(Some(Codec::None)), "array set_codec");
    locked(sarr.set_shuffle(Some(Shuffle::On)), "array set_shuffle");
    assert!(!second.has_pending_changes());
    // Reads and an empty flush need no lock.
    assert_eq!(sds.read_array::<i32>("a", &[0], &[2]).unwrap(), arr1(&[0, 0]).into_dyn());
    second.flush().unwrap();

    first.flush().unwrap();
    // The second handle's snapshot predates "x"; starting a change moves it to the newest commit.
    assert!(!second.dataset_exists("x"));
    second.create_dataset("y").unwrap();
    assert!(second.dataset_exists("x"), "a stale handle did not move to the newest commit");
    // Now the first is the one locked out.
    assert_err!(first.create_dataset("z"), Error::Locked { .. });
    second.flush().unwrap();
    first.refresh().unwrap();
    assert_eq!(first.list_datasets(), ["base", "x", "y"]);
    first.create_dataset("z").unwrap();
    first.flush().unwrap();
    assert_eq!(Atlas::open(dir.store()).unwrap().list_datasets(), ["base", "x", "y", "z"]);
}

#[test]
fn a_hold_of_a_session_a_flush_ended_cannot_end_the_next_session() {
    let dir = test_dir!();
    let mine = util::create(&dir.store());
    mine.create_dataset("d").unwrap();
    let stale = mine.begin_change().unwrap();
    mine.flush().unwrap(); // another thread's flush: the session and its holds end
    let current = mine.begin_change().unwrap();
    assert!(current.started() && current != stale);
    assert!(!mine.release_if_unchanged(stale), "the ended session's hold ends nothing");
    assert!(mine.has_pending_changes(), "the new session keeps its hold and the lock");
    let other = Atlas::open(dir.store()).unwrap();
    assert_err!(other.create_dataset("e"), Error::Locked { .. });
    assert!(mine.release_if_unchanged(current) && !mine.has_pending_changes());
}

#[test]
fn a_hold_dropped_without_being_ended_ends_as_release_if_unchanged() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    store.create_dataset("d").unwrap();
    store.flush().unwrap();
    // An early return by `?` drops the hold: nothing was changed, so the lock goes.
    let read_absent = || -> atlas::Result<()> {
        let _hold = store.begin_change()?;
        store.open_dataset("absent")?;
        Ok(())
    };
    assert_err!(read_absent(), Error::NotFound { .. });
    assert!(!store.has_pending_changes(), "the dropped hold kept the writer lock");
    let other = Atlas::open(dir.store()).unwrap();
    other.create_dataset("e").unwrap();
    other.flush().unwrap();
    // A change made under it stays pending for the flush.
    let create_f = || -> atlas::Result<()> {
        let _hold = store.begin_change()?;
        store.create_dataset("f")?;
        Ok(())
    };
    create_f().unwrap();
    assert!(store.has_pending_changes());
    store.flush().unwrap();
    assert_eq!(Atlas::open(dir.store()).unwrap().list_datasets(), ["d", "e", "f"]);
    // A hold handed to another store's release ends nothing there, and ends on its own.
    let elsewhere = util::create(&dir.join("elsewhere"));
    let hold = elsewhere.begin_change().unwrap();
    store.create_dataset("g").unwrap();
    assert!(!store.release_if_unchanged(hold));
    assert!(store.has_pending_changes(), "this store's changes stay pending");
    assert!(!elsewhere.has_pending_changes(), "the other store kept its writer lock");
}

#[test]
fn abandon_discards_only_a_session_whose_changes_are_all_its_holds_own() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let a = store.create_dataset("d").unwrap().define_array("a", ArraySpec::new(DType::Int32, [4])).unwrap();
    store.flush().unwrap();
    let values = || a.read::<i32>(&[0], &[4]).unwrap().into_raw_vec_and_offset().0;
    // Alone: the hold's writes go.
    let hold = store.begin_change().unwrap();
    a.write(&[0], arr1(&[1]).view()).unwrap();
    assert!(store.abandon(hold));
    assert!(!store.has_pending_changes());
    assert_eq!(values(), [0, 0, 0, 0]);
    // Another thread wrote meanwhile: its write is not the hold's to drop.
    let hold = store.begin_change().unwrap();
    a.write(&[0], arr1(&[1]).view()).unwrap();
    std::thread::scope(|s| s.spawn(|| a.write(&[1], arr1(&[2]).view()).unwrap()).join().unwrap());
    assert!(!store.abandon(hold));
    assert!(store.has_pending_changes());
    assert_eq!(values(), [1, 2, 0, 0]);
    // Changes pending before the hold are not its own either.
    let hold = store.begin_change().unwrap();
    a.write(&[2], arr1(&[3]).view()).unwrap();
    assert!(!hold.started() && !store.abandon(hold));
    // Nor a session with another hold under way; the hold ends either way.
    store.flush().unwrap();
    let (first, second) = (store.begin_change().unwrap(), store.begin_change().unwrap());
    a.write(&[3], arr1(&[4]).view()).unwrap();
    assert!(!store.abandon(first));
    assert!(!store.release_if_unchanged(second), "changed: kept for the flush");
    store.flush().unwrap();
    assert_eq!(values(), [1, 2, 3, 4]);
}

#[test]
fn release_if_unchanged_tells_a_dataset_changed_and_one_changed_back() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    for name in ["a", "b", "c"] {
        store.create_dataset(name).unwrap().attrs().set("v", f64::NAN).unwrap();
    }
    store.flush().unwrap();
    let b = store.open_dataset("b").unwrap();
    let hold = store.begin_change().unwrap();
    b.attrs().set("v", 1.0).unwrap();
    assert!(!store.release_if_unchanged(hold), "an attribute changed: kept for the flush");
    // Set back to what was committed (a NaN, which equals no float): nothing to commit.
    let hold = store.begin_change().unwrap();
    b.attrs().set("v", f64::NAN).unwrap();
    assert!(store.release_if_unchanged(hold) && !store.has_pending_changes());
    assert!(Atlas::open(dir.store()).unwrap().open_dataset("b").unwrap().attrs().get("v").unwrap().is_some());
}

#[test]
fn begin_change_moves_to_the_newest_commit_and_holds_the_lock_for_a_read_modify_write() {
    let dir = test_dir!();
    let mine = util::create(&dir.store());
    mine.create_dataset("d").unwrap().define_array("x", ArraySpec::new(DType::Int32, [4])).unwrap();
    mine.flush().unwrap();
    let other = Atlas::open(dir.store()).unwrap();
    other.open_dataset("d").unwrap().write_array("x", &[1], arr1(&[5i32]).view()).unwrap();
    other.flush().unwrap();
    // Read, change, write back: the read sees the other writer's commit, and no other
    // writer commits between the read and the write.
    let hold = mine.begin_change().unwrap();
    assert!(hold.started(), "it started the session");
    assert!(mine.has_pending_changes());
    let ds = mine.open_dataset("d").unwrap();
    let mut values = ds.read_array::<i32>("x", &[0], &[4]).unwrap();
    assert_eq!(values.as_slice().unwrap(), [0, 5, 0, 0]);
    assert_err!(other.open_dataset("d").unwrap().write_array("x", &[2], arr1(&[9i32]).view()), Error::Locked { .. });
    values[0] = 7;
    ds.write_array("x", &[0], values.view()).unwrap();
    let second = mine.begin_change().unwrap();
    assert!(!second.started(), "pending changes: nothing to do");
    assert!(!mine.release_if_unchanged(second), "a change is pending: the lock is kept");
    assert!(!mine.release_if_unchanged(hold), "a change is pending: the lock is kept");
    mine.flush().unwrap();
    // A session that changed nothing gives the lock back, on the commit it moved to, with
    // the last of its holds (another thread's read-modify-write may still be reading).
    let (first, second) = (mine.begin_change().unwrap(), mine.begin_change().unwrap());
    assert!(first.started() && !second.started());
    assert!(!mine.release_if_unchanged(first), "another hold is not ended");
    assert_err!(other.create_dataset("e"), Error::Locked { .. });
    assert!(mine.release_if_unchanged(second) && !mine.has_pending_changes());
    other.create_dataset("e").unwrap();
    other.flush().unwrap();
    other.refresh().unwrap();
    assert_eq!(
        other.open_dataset("d").unwrap().read_array::<i32>("x", &[0], &[2]).unwrap().as_slice().unwrap(),
        [7, 5]
    );
}

#[test]
fn a_writer_whose_lock_file_was_removed_discards_its_changes_rather_than_commit_over_another() {
    let dir = test_dir!();
    let first = util::create(&dir.store());
    first.create_dataset("d").unwrap().define_array("x", ArraySpec::new(DType::Int32, [4])).unwrap();
    let big = ArraySpec::new(DType::Int32, [3 << 20]).codec(Codec::None);
    first.open_dataset("d").unwrap().define_array("big", big).unwrap();
    first.flush().unwrap();
    first.open_dataset("d").unwrap().write_array("x", &[0], arr1(&[1, 1, 1, 1]).view()).unwrap();
    // 12 MiB: written to the session's fragment file at once, not held in memory.
    first.open_dataset("d").unwrap().write_array("big", &[0], Array1::from_elem(3 << 20, 7).view()).unwrap();
    assert_eq!(util::fragments(&dir.store()).len(), 1);
    // Someone removes the "stale" lock file while the first writer holds it: a second
    // writer locks a new one, and commits.
    std::fs::remove_file(dir.store().join("atlas.lock")).unwrap();
    let second = Atlas::open(dir.store()).unwrap();
    second.open_dataset("d").unwrap().write_array("x", &[2], arr1(&[2, 2]).view()).unwrap();
    second.flush().unwrap();
    assert_err!(first.flush(), Error::LockLost { .. });
    assert!(!first.has_pending_changes());
    let read = |store: &Atlas| store.open_dataset("d").unwrap().read_array::<i32>("x", &[0], &[4]).unwrap();
    assert_eq!(read(&Atlas::open(dir.store()).unwrap()), arr1(&[0, 0, 2, 2]).into_dyn());
    assert_eq!(util::fragments(&dir.store()).len(), 1, "the discarded changes' fragment is removed");
    assert!(Atlas::open(dir.store()).unwrap().array_blocks("d", "big").unwrap().is_empty());
    // The first handle writes again on top of the second's commit.
    first.open_dataset("d").unwrap().write_array("x", &[0], arr1(&[3]).view()).unwrap();
    first.flush().unwrap();
    assert_eq!(read(&Atlas::open(dir.store()).unwrap()), arr1(&[3, 0, 2, 2]).into_dyn());
}

#[test]
fn a_writer_whose_lock_file_was_removed_loses_its_changes_whoever_came_meanwhile() {
    let dir = test_dir!();
    let first = util::create(&dir.store());
    first.create_dataset("d").unwrap().define_array("x", ArraySpec::new(DType::Int32, [2])).unwrap();
    first.flush().unwrap();
    // No other writer came: the changes are still given up (the lock no longer excludes).
    first.open_dataset("d").unwrap().write_array("x", &[0], arr1(&[5, 6]).view()).unwrap();
    std::fs::remove_file(dir.store().join("atlas.lock")).unwrap();
    assert_err!(first.flush(), Error::LockLost { .. });
    // Another writer took the new lock, removed this one's fragment as an orphan, and gave
    // the lock back without committing: lost too, and the lock is free.
    let big = ArraySpec::new(DType::Int32, [3 << 20]).codec(Codec::None);
    first.open_dataset("d").unwrap().define_array("big", big).unwrap();
    first.open_dataset("d").unwrap().write_array("big", &[0], Array1::from_elem(3 << 20, 1).view()).unwrap();
    std::fs::remove_file(dir.store().join("atlas.lock")).unwrap();
    let second = Atlas::open(dir.store()).unwrap();
    second.create_dataset("e").unwrap();
    second.discard();
    assert_err!(first.flush(), Error::LockLost { .. });
    assert!(!first.has_pending_changes());
    // The first handle writes again, under the lock file now there.
    first.open_dataset("d").unwrap().write_array("x", &[0], arr1(&[7]).view()).unwrap();
    first.flush().unwrap();
    let read = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap().read_array::<i32>("x", &[0], &[2]);
    assert_eq!(read.unwrap(), arr1(&[7, 0]).into_dyn());
}

#[test]
fn dropping_a_writer_releases_the_lock_with_its_commit() {
    let dir = test_dir!();
    let first = util::create(&dir.store());
    let second = Atlas::open(dir.store()).unwrap();
    first.create_dataset("a").unwrap();
    assert_err!(second.create_dataset("b"), Error::Locked { .. });
    drop(first);
    second.create_dataset("b").unwrap();
    second.flush().unwrap();
    assert_eq!(second.list_datasets(), ["a", "b"]);
}

#[test]
fn rejected_changes_start_no_change_and_take_no_lock() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Float32, [4])).unwrap();
    store.flush().unwrap();

    assert_err!(store.create_dataset("d"), Error::AlreadyExists { .. });
    assert_err!(store.create_dataset("../d"), Error::InvalidName { .. });
    assert_err!(store.delete_dataset("nope"), Error::NotFound { .. });
    assert_err!(ds.define_array("a", ArraySpec::new(DType::Float32, [4])), Error::AlreadyExists { .. });
    assert_err!(
        ds.define_array("b", ArraySpec::new(DType::Float32, [4]).chunk_shape([0])),
        Error::InvalidArgument { .. }
    );
    assert_err!(ds.delete_array("nope"), Error::NotFound { .. });
    assert_err!(ds.write_array("a", &[3], arr1(&[1.0f32, 2.0]).view()), Error::OutOfBounds { .. });
    assert_err!(ds.write_array("a", &[0], arr1(&[1i32]).view()), Error::DTypeMismatch { .. });
    assert_err!(ds.write_array("nope", &[0], arr1(&[1.0f32]).view()), Error::NotFound { .. });
    assert_err!(store.attrs().remove("nope"), Error::NotFound { .. });
    assert_err!(store.attrs().set("", 1), Error::InvalidName { .. });
    assert!(!store.has_pending_changes(), "a rejected call left a pending change");

    // So another handle can write at once.
    let other = Atlas::open(dir.store()).unwrap();
    other.create_dataset("e").unwrap();
    other.flush().unwrap();
}

#[test]
fn a_change_refused_against_a_newer_commit_leaves_no_lock_and_nothing_pending() {
    let dir = test_dir!();
    let first = util::create(&dir.store());
    let ds = first.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int32, [8]).chunk_shape([4])).unwrap();
    ds.define_array("b", ArraySpec::new(DType::Int32, [8])).unwrap();
    first.flush().unwrap();

    let second = Atlas::open(dir.store()).unwrap();
    ds.array("a").unwrap().resize(&[4]).unwrap();
    ds.delete_array("b").unwrap();
    first.flush().unwrap();

    // Each passes the second handle's own (stale) view, then fails on the newest commit.
    let sds = second.open_dataset("d").unwrap();
    let b = sds.array("b").unwrap();
    assert_err!(b.set_codec(Some(Codec::None)), Error::NotFound { .. });
    assert_err!(sds.write_array("a", &[6], arr1(&[1, 2]).view()), Error::OutOfBounds { .. });
    assert!(!second.has_pending_changes(), "a refused change kept the writer lock");
    let third = Atlas::open(dir.store()).unwrap();
    third.create_dataset("e").unwrap();
    third.flush().unwrap();
    assert_eq!(Atlas::open(dir.store()).unwrap().list_datasets(), ["d", "e"]);
}

#[test]
fn a_stale_handle_appends_after_the_rows_another_writer_appended() {
    let dir = test_dir!();
    let first = util::create(&dir.store());
    let ds = first.create_dataset("d").unwrap();
    ds.define_array("x", ArraySpec::new(DType::Int32, [0]).chunk_shape([4])).unwrap();
    first.flush().unwrap();

    let second = Atlas::open(dir.store()).unwrap();
    ds.array("x").unwrap().append(arr1(&[1, 2, 3, 4, 5, 6, 7, 8]).view()).unwrap();
    first.flush().unwrap();
    second.open_dataset("d").unwrap().array("x").unwrap().append(arr1(&[9, 10]).view()).unwrap();
    second.flush().unwrap();

    let fresh = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
    let expected = arr1(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).into_dyn();
    assert_eq!(fresh.read_array::<i32>("x", &[0], &[10]).unwrap(), expected);
}

#[test]
fn a_stale_handles_first_change_is_checked_on_the_newest_commit_not_its_own() {
    let dir = test_dir!();
    let first = util::create(&dir.store());
    first.create_dataset("d").unwrap().define_array("x", ArraySpec::new(DType::Int32, [4])).unwrap();
    first.create_dataset("gone").unwrap();
    first.flush().unwrap();
    let stale = Atlas::open(dir.store()).unwrap();
    let stale_ds = stale.open_dataset("d").unwrap();
    // Another writer grows x, deletes array and dataset names and adds an attribute.
    let ds = first.open_dataset("d").unwrap();
    ds.resize_array("x", &[8]).unwrap();
    ds.delete_array("x").unwrap();
    ds.define_array("x", ArraySpec::new(DType::Int32, [8])).unwrap();
    first.delete_dataset("gone").unwrap();
    first.flush().unwrap();
    // On the stale snapshot each of these is refused; on the newest commit each is fine.
    stale_ds.write_array("x", &[6], arr1(&[7i32, 8]).view()).unwrap();
    stale.create_dataset("gone").unwrap();
    stale.flush().unwrap();
    let fresh = Atlas::open(dir.store()).unwrap();
    assert_eq!(fresh.open_dataset("d").unwrap().read_array::<i32>("x", &[6], &[2]).unwrap(), arr1(&[7, 8]).into_dyn());
    assert_eq!(fresh.list_datasets(), ["d", "gone"]);
    // A refusal that holds on the newest commit is still made, and leaves no lock.
    assert_err!(stale_ds.write_array("x", &[8], arr1(&[1i32]).view()), Error::OutOfBounds { .. });
    assert!(!stale.has_pending_changes());
    // Checked on the newest commit without moving to it or taking the lock: refused as
    // there, even while another writer holds the lock, and an empty write too.
    let other = Atlas::open(dir.store()).unwrap();
    first.refresh().unwrap();
    first.open_dataset("d").unwrap().delete_array("x").unwrap(); // holds the lock
    first.flush().unwrap();
    first.create_dataset("held").unwrap();
    let generation = other.generation();
    let other_ds = other.open_dataset("d").unwrap();
    assert_err!(other.create_dataset("d"), Error::AlreadyExists { .. });
    assert_err!(other_ds.write_array("y", &[0], ndarray::Array1::<i32>::zeros(0).view()), Error::NotFound { .. });
    assert_eq!(other.generation(), generation, "not moved");
    first.discard();
}

#[test]
fn a_handle_on_a_store_removed_and_made_again_moves_to_the_new_one_of_the_same_generation() {
    // A notebook that removes a store and makes it again while a handle on the old one is
    // still open: both are at generation 1, but they are other commits.
    let dir = test_dir!();
    let old = util::create(&dir.store());
    old.create_dataset("old").unwrap();
    old.flush().unwrap();
    std::fs::remove_dir_all(dir.store()).unwrap();
    let new = util::create(&dir.store());
    let ds = new.create_dataset("new").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int32, [4])).unwrap();
    ds.write_array("a", &[0], arr1(&[1i32, 2, 3, 4]).view()).unwrap();
    new.flush().unwrap();
    drop((ds, new));
    assert_eq!(old.generation(), Atlas::open(dir.store()).unwrap().generation());
    // The old handle's change moves to the new store's commit: its fragment is no orphan.
    old.create_dataset("later").unwrap();
    old.flush().unwrap();
    let fresh = Atlas::open(dir.store()).unwrap();
    assert_eq!(fresh.list_datasets(), ["later", "new"]);
    let values = fresh.open_dataset("new").unwrap().read_array::<i32>("a", &[0], &[4]).unwrap();
    assert_eq!(values, arr1(&[1, 2, 3, 4]).into_dyn());
}

#[test]
fn a_handle_on_a_store_made_again_with_compressed_metadata_keeps_its_metadata_file() {
    // The same commit (generation 0, the same plain bytes) in another file: the change
    // must keep the file it moved to, not the one its old store had.
    let dir = test_dir!();
    let old = util::create(&dir.store());
    std::fs::remove_dir_all(dir.store()).unwrap();
    let config = StoreConfig { meta_compression: MetaCompression::Zstd, ..StoreConfig::default() };
    drop(Atlas::create(dir.store(), config).unwrap());
    old.attrs().set("x", 1).unwrap();
    let reader = Atlas::open(dir.store()).unwrap();
    assert_eq!(reader.attrs().get("x").unwrap(), None);
    old.flush().unwrap();
    assert!(dir.store().join("atlas.json.zst").exists());
    assert!(!dir.store().join("atlas.json").exists());
    assert_eq!(Atlas::open(dir.store()).unwrap().attrs().get("x").unwrap(), Some(1.into()));
}

#[test]
fn appends_through_one_handle_from_many_threads_each_land_once() {
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    let array = ds.define_array("x", ArraySpec::new(DType::Int64, [0, 3]).chunk_shape([8, 3])).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..4i64 {
            let array = array.clone();
            scope.spawn(move || {
                for i in 0..50 {
                    let id = thread * 1000 + i;
                    // Rows of one or two, so that the appends grow by different amounts.
                    let rows = if i % 2 == 0 { 1 } else { 2 };
                    array.append(ndarray::Array2::from_elem((rows, 3), id).view()).unwrap();
                }
            });
        }
    });
    store.flush().unwrap();
    let fresh = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
    let rows = 4 * (25 + 25 * 2);
    let all = fresh.read_array::<i64>("x", &[0, 0], &[rows, 3]).unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for row in all.outer_iter() {
        assert!(row.iter().all(|&v| v == row[0]), "a row mixes appends: {row}");
        *counts.entry(row[0]).or_insert(0) += 1;
    }
    let expected: std::collections::BTreeMap<i64, i32> =
        (0..4).flat_map(|t| (0..50).map(move |i| (t * 1000 + i, if i % 2 == 0 { 1 } else { 2 }))).collect();
    assert_eq!(counts, expected);
}

/// Commits of each racing writer in `writers_racing_for_the_lock_from_threads_and_a_process_lose_no_commit`.
const RACE_COMMITS: i64 = 20;
/// The racer id of that test's child process (its threads are 0, 1, 2).
const CHILD_RACER: i64 = 9;

/// Through a handle of its own, appends the values `racer * 1000 + k` for k in
/// `0..RACE_COMMITS` to `d/x`, one row per commit, retrying while another writer holds the
/// lock.
fn race_appends(store: &Path, racer: i64) {
    let atlas = Atlas::open(store).unwrap();
    let array = atlas.open_dataset("d").unwrap().array("x").unwrap();
    for k in 0..RACE_COMMITS {
        loop {
            match array.append(arr1(&[racer * 1000 + k]).view()) {
                Ok(()) => break,
                Err(Error::Locked { .. }) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => panic!("racer {racer}: {e}"),
            }
        }
        atlas.flush().unwrap();
    }
}

#[test]
fn writers_racing_for_the_lock_from_threads_and_a_process_lose_no_commit() {
    let mut dir = test_dir!();
    let store = util::create(&dir.store());
    store.create_dataset("d").unwrap().define_array("x", ArraySpec::new(DType::Int64, [0]).chunk_shape([8])).unwrap();
    store.flush().unwrap();
    let first_generation = store.generation();
    let child = spawn_child(&mut dir, "append_race");
    wait_for(&dir.join("sync").join("ready"));
    std::thread::scope(|scope| {
        for racer in 0..3 {
            let path = dir.store();
            scope.spawn(move || race_appends(&path, racer));
        }
    });
    finish_child(child, 0);

    // Every commit on top of the one before: each value once, and a generation each.
    store.refresh().unwrap();
    let racers = [0, 1, 2, CHILD_RACER];
    let rows = racers.len() as u64 * RACE_COMMITS as u64;
    assert_eq!(store.generation(), first_generation + rows);
    let ds = store.open_dataset("d").unwrap();
    assert_eq!(ds.array_meta("x").unwrap().shape, [rows]);
    let mut values = ds.read_array::<i64>("x", &[0], &[rows]).unwrap().into_raw_vec_and_offset().0;
    values.sort_unstable();
    let mut expected: Vec<i64> = racers.iter().flat_map(|r| (0..RACE_COMMITS).map(move |k| r * 1000 + k)).collect();
    expected.sort_unstable();
    assert_eq!(values, expected);
}

#[test]
fn of_two_creates_racing_for_one_path_exactly_one_succeeds() {
    let dir = test_dir!();
    for round in 0..20 {
        let path = dir.join(&format!("s{round}"));
        let barrier = std::sync::Barrier::new(2);
        let outcomes: Vec<Result<Atlas, Error>> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        Atlas::create(&path, atlas::StoreConfig::default())
                    })
                })
                .collect();
            racers.into_iter().map(|racer| racer.join().unwrap()).collect()
        });
        let won = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {outcomes:?}");
        let lost = outcomes.into_iter().find_map(Result::err).unwrap();
        assert!(matches!(lost, Error::AlreadyExists { .. }), "round {round}: {lost}");
        assert_eq!(Atlas::open(&path).unwrap().generation(), 0);
    }
}

#[test]
fn stale_handle_write_merges_with_blocks_another_writer_committed() {
    let dir = test_dir!();
    let first = util::create(&dir.store());
    let ds = first.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int32, [8]).chunk_shape([8])).unwrap();
    ds.write_array("a", &[0], arr1(&[1, 2, 3, 4, 5, 6, 7, 8]).view()).unwrap();
    first.flush().unwrap();

    let second = Atlas::open(dir.store()).unwrap();
    ds.write_array("a", &[0], arr1(&[10, 10, 10, 10]).view()).unwrap();
    first.flush().unwrap();

    let sds = second.open_dataset("d").unwrap();
    assert_eq!(sds.read_array::<i32>("a", &[0], &[8]).unwrap(), arr1(&[1, 2, 3, 4, 5, 6, 7, 8]).into_dyn());
    sds.write_array("a", &[6], arr1(&[70, 80]).view()).unwrap();
    second.flush().unwrap();
    let expected = arr1(&[10, 10, 10, 10, 5, 6, 70, 80]).into_dyn();
    assert_eq!(sds.read_array::<i32>("a", &[0], &[8]).unwrap(), expected);
    let fresh = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
    assert_eq!(fresh.read_array::<i32>("a", &[0], &[8]).unwrap(), expected);
}

#[test]
fn stale_handle_attribute_change_keeps_attributes_another_writer_committed() {
    let dir = test_dir!();
    let first = util::create(&dir.store());
    let ds = first.create_dataset("d").unwrap();
    first.attrs().set("a", 1).unwrap();
    ds.attrs().set("a", 1).unwrap();
    first.flush().unwrap();

    let second = Atlas::open(dir.store()).unwrap();
    first.attrs().set("b", 2).unwrap();
    ds.attrs().set("b", 2).unwrap();
    first.flush().unwrap();

    // The second handle's snapshot has only "a"; its change must apply to the newest commit.
    second.attrs().set("c", 3).unwrap();
    second.open_dataset("d").unwrap().attrs().remove("a").unwrap();
    second.flush().unwrap();
    let fresh = Atlas::open(dir.store()).unwrap();
    let keys = |attrs: atlas::Attributes| attrs.into_keys().collect::<Vec<_>>();
    assert_eq!(keys(fresh.attrs().all().unwrap()), ["a", "b", "c"]);
    assert_eq!(keys(fresh.open_dataset("d").unwrap().attrs().all().unwrap()), ["b"]);
}

#[test]
fn stale_handle_write_is_checked_against_and_encoded_by_the_newest_schema() {
    let dir = test_dir!();
    let first = util::create(&dir.store());
    let ds = first.create_dataset("d").unwrap();
    ds.define_array("x", ArraySpec::new(DType::Float32, [4])).unwrap();
    ds.define_array("y", ArraySpec::new(DType::UInt8, [4096]).shuffle(Shuffle::Off)).unwrap();
    first.flush().unwrap();

    let second = Atlas::open(dir.store()).unwrap();
    // Another writer redefines x with another dtype and shape, and sets y's codec to none.
    ds.delete_array("x").unwrap();
    ds.define_array("x", ArraySpec::new(DType::Int32, [8]).fill_value(5)).unwrap();
    ds.array("y").unwrap().set_codec(Some(Codec::None)).unwrap();
    first.flush().unwrap();

    let sds = second.open_dataset("d").unwrap();
    assert_err!(sds.write_array("x", &[0], arr1(&[1.0f32, 2.0, 3.0, 4.0]).view()), Error::DTypeMismatch { .. });
    sds.write_array("y", &[0], Array1::from_elem(4096, 3u8).view()).unwrap();
    second.flush().unwrap();

    let fresh = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
    assert_eq!(fresh.read_array::<i32>("x", &[0], &[8]).unwrap(), Array1::from_elem(8, 5).into_dyn());
    assert_eq!(fresh.read_array::<u8>("y", &[0], &[4096]).unwrap(), Array1::from_elem(4096, 3u8).into_dyn());
    assert!(util::data_bytes(&dir.store()) >= 4096, "y's block was not written with the newest codec (none)");
}

#[test]
fn writer_lock_is_exclusive_across_processes() {
    let mut dir = test_dir!();
    let store = util::create(&dir.store());
    let sync = dir.join("sync");
    let child = spawn_child(&mut dir, "hold_lock");
    wait_for(&sync.join("ready"));

    assert_err!(store.create_dataset("parent"), Error::Locked { .. });
    assert_err!(store.attrs().set("k", 1), Error::Locked { .. });
    assert!(!store.has_pending_changes());
    // The child's uncommitted work is invisible here.
    store.refresh().unwrap();
    assert!(!store.dataset_exists("from_child"));

    std::fs::write(sync.join("release"), b"").unwrap();
    finish_child(child, 0);
    // The child's commit released the lock: this process can write, on top of it.
    store.create_dataset("parent").unwrap();
    assert!(store.dataset_exists("from_child"));
    store.flush().unwrap();
    let fresh = Atlas::open(dir.store()).unwrap();
    assert_eq!(fresh.list_datasets(), ["from_child", "parent"]);
    let got = fresh.open_dataset("from_child").unwrap().read_array::<i32>("a", &[0], &[3]).unwrap();
    assert_eq!(got, arr1(&[7, 8, 9]).into_dyn());
}

#[test]
fn readers_in_another_process_see_only_whole_commits() {
    let mut dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    for name in ["a", "b"] {
        ds.define_array(name, ArraySpec::new(DType::Int32, [LOOP_LEN as u64]).chunk_shape([8])).unwrap();
    }
    store.attrs().set("k", 0).unwrap();
    store.flush().unwrap();

    let sync = dir.join("sync");
    let mut child = spawn_child(&mut dir, "commit_loop");
    wait_for(&sync.join("ready"));
    let mut last = 0;
    let mut states = std::collections::BTreeSet::new();
    let check = |store: &Atlas, last: &mut i64| {
        store.refresh().unwrap();
        let Some(AttrValue::Int(k)) = store.attrs().get("k").unwrap() else { panic!("attribute k is missing") };
        let ds = store.open_dataset("d").unwrap();
        for name in ["a", "b"] {
            let got = ds.read_array::<i32>(name, &[0], &[LOOP_LEN as u64]).unwrap();
            assert!(got.iter().all(|&v| i64::from(v) == k), "commit {k} mixed with another in {name}: {got}");
        }
        assert!(k >= *last, "went back from commit {last} to {k}");
        *last = k;
        k
    };
    while child.try_wait().unwrap().is_none() {
        states.insert(check(&store, &mut last));
    }
    finish_child(child, 0);
    assert_eq!(check(&store, &mut last), i64::from(COMMITS));
    assert!(!states.is_empty());
}

#[test]
fn writes_and_reads_from_callers_rayon_tasks_do_not_deadlock() {
    use rayon::prelude::*;
    let dir = test_dir!();
    let store = util::create(&dir.store());
    let ds = store.create_dataset("d").unwrap();
    ds.define_array("a", ArraySpec::new(DType::Int32, [64, 64]).chunk_shape([8, 8])).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        // Rayon tasks of the caller's (global) pool, half writing rows, half reading.
        (0..64u32).into_par_iter().for_each(|i| {
            let row = ndarray::Array2::from_elem((1, 64), i as i32);
            if i % 2 == 0 {
                ds.write_array("a", &[u64::from(i), 0], row.view()).unwrap();
            } else {
                ds.read_array::<i32>("a", &[0, 0], &[64, 64]).unwrap();
            }
        });
        ds.write_array("a", &[1, 0], ndarray::Array2::from_elem((1, 64), 1).view()).unwrap();
        done_tx.send(ds).unwrap();
    });
    let ds = done_rx.recv_timeout(std::time::Duration::from_secs(120)).expect("no deadlock");
    worker.join().unwrap();
    // Even rows hold their index, odd ones the fill value (0), but row 1, written last.
    let back = ds.read_array::<i32>("a", &[0, 0], &[64, 64]).unwrap();
    let expected = ndarray::Array2::from_shape_fn((64, 64), |(i, _)| match i {
        1 => 1,
        i if i % 2 == 0 => i as i32,
        _ => 0,
    });
    assert_eq!(back, expected.into_dyn());
}

#[test]
fn partial_writes_to_one_chunk_from_many_threads_all_land() {
    // Writes staged in memory (the default), and encoded at once around the chunk's block
    // (no staging), with flushes landing between the writes.
    for staging_bytes in [OpenOptions::default().staging_bytes, 0] {
        let dir = test_dir!();
        let options = OpenOptions::default().staging_bytes(staging_bytes);
        let store = Atlas::create_with(dir.store(), StoreConfig::default(), &options).unwrap();
        let (rows, cols, width, threads) = (64usize, 64usize, 8usize, 4usize);
        let spec = ArraySpec::new(DType::Int64, [rows as u64, cols as u64]).chunk_shape([rows as u64, cols as u64]);
        let array = store.create_dataset("d").unwrap().define_array("x", spec).unwrap();
        let value = |r: usize, c: usize| (r * cols + c) as i64 + 1;
        std::thread::scope(|scope| {
            for thread in 0..threads {
                let (array, store) = (array.clone(), store.clone());
                scope.spawn(move || {
                    // Thread t writes every `threads`-th row, `width` columns at a time.
                    for (n, r) in (thread..rows).step_by(threads).enumerate() {
                        for c0 in (0..cols).step_by(width) {
                            let piece = ndarray::Array2::from_shape_fn((1, width), |(_, j)| value(r, c0 + j));
                            array.write(&[r as u64, c0 as u64], piece.view()).unwrap();
                        }
                        if thread == 0 && n % 4 == 3 {
                            store.flush().unwrap();
                        }
                    }
                });
            }
        });
        store.flush().unwrap();
        let fresh = Atlas::open(dir.store()).unwrap().open_dataset("d").unwrap();
        let read = fresh.read_array::<i64>("x", &[0, 0], &[rows as u64, cols as u64]).unwrap();
        let lost: Vec<_> = read.indexed_iter().filter(|(ix, v)| **v != value(ix[0], ix[1])).take(5).collect();
        assert!(lost.is_empty(), "staging {staging_bytes}: writes lost at {lost:?}");
    }
}
