//! One writer, many readers: readers in two other processes, and reader threads in this
//! one, run while a writer commits in a loop (with compactions, which remove fragment
//! files readers may have mapped). Every commit writes one stamp (its number) into every
//! element of every array and into an attribute, through several write calls, so a reader
//! that sees a mix of commits sees two stamps. Each reader checks every snapshot it reads
//! is whole, that a handle's reads between two refreshes are identical, and that its
//! generation never goes back.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use atlas::{ArraySpec, Atlas, AttrValue, Codec, DType, Shuffle};
use ndarray::{Array1, Array2};

use crate::util::{self, test_dir};

const ENV_STORE: &str = "ATLAS_IT_READER_STORE";
const ENV_STOP: &str = "ATLAS_IT_READER_STOP";
const READY: &str = "atlas-reader-child-ready";
const SUMMARY: &str = "atlas-reader-child-summary";
/// A reader child that is never told to stop gives up after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(120);
/// Commits the writer makes in each test.
const COMMITS: i64 = 60;
/// Reader threads of the in-process test.
const READERS: usize = 6;

/// Defines the arrays (several datasets, dtypes, codecs and chunk shapes) and commits
/// stamp 0 everywhere.
fn set_up(path: &Path) -> Atlas {
    let store = util::create(path);
    let d0 = store.create_dataset("d0").unwrap();
    d0.define_array("a", ArraySpec::new(DType::Int64, [64]).chunk_shape([8])).unwrap();
    let spec = ArraySpec::new(DType::Int32, [8, 8]).chunk_shape([4, 4]).codec(Codec::Lz4);
    d0.define_array("b", spec).unwrap();
    let d1 = store.create_dataset("d1").unwrap();
    let spec = ArraySpec::new(DType::Float64, [33]).chunk_shape([5]).codec(Codec::None).shuffle(Shuffle::Off);
    d1.define_array("c", spec).unwrap();
    d1.define_array("s", ArraySpec::new(DType::String, [6]).chunk_shape([4])).unwrap();
    write_stamp(&store, 0);
    store.flush().unwrap();
    store
}

/// Writes `stamp` everywhere, in several calls (each array in two halves); not flushed.
fn write_stamp(store: &Atlas, stamp: i64) {
    let d0 = store.open_dataset("d0").unwrap();
    d0.write_array("a", &[0], Array1::from_elem(40, stamp).view()).unwrap();
    d0.write_array("a", &[40], Array1::from_elem(24, stamp).view()).unwrap();
    d0.write_array("b", &[0, 0], Array2::from_elem((3, 8), stamp as i32).view()).unwrap();
    d0.write_array("b", &[3, 0], Array2::from_elem((5, 8), stamp as i32).view()).unwrap();
    store.attrs().set("stamp", stamp).unwrap();
    let d1 = store.open_dataset("d1").unwrap();
    d1.write_array("c", &[0], Array1::from_elem(17, stamp as f64).view()).unwrap();
    d1.write_array("c", &[17], Array1::from_elem(16, stamp as f64).view()).unwrap();
    d1.write_strings("s", &[0], Array1::from_elem(6, format!("stamp {stamp}")).view()).unwrap();
    d1.attrs().set("stamp", stamp).unwrap();
}

/// Every stamp a handle shows, in a fixed order: the two attributes, then each element of
/// each array.
fn stamps(store: &Atlas) -> Vec<i64> {
    let attr = |value: Option<AttrValue>| match value {
        Some(AttrValue::Int(v)) => v,
        other => panic!("stamp attribute: {other:?}"),
    };
    let d0 = store.open_dataset("d0").unwrap();
    let d1 = store.open_dataset("d1").unwrap();
    let mut out = vec![attr(store.attrs().get("stamp").unwrap()), attr(d1.attrs().get("stamp").unwrap())];
    out.extend(d0.read_array::<i64>("a", &[0], &[64]).unwrap().iter().copied());
    out.extend(d0.read_array::<i32>("b", &[0, 0], &[8, 8]).unwrap().iter().map(|&v| i64::from(v)));
    out.extend(d1.read_array::<f64>("c", &[0], &[33]).unwrap().iter().map(|&v| v as i64));
    let strings = d1.read_strings("s", &[0], &[6]).unwrap();
    out.extend(strings.iter().map(|s| s.strip_prefix("stamp ").unwrap().parse::<i64>().unwrap()));
    out
}

/// Checks one snapshot of `store`: one stamp everywhere, equal to its generation's, and the
/// same on a second read. Returns the stamp.
fn check_snapshot(store: &Atlas, context: &str) -> i64 {
    let first = stamps(store);
    let stamp = first[0];
    assert!(first.iter().all(|&s| s == stamp), "{context}: a snapshot mixes commits: {first:?}");
    // Between refreshes a handle keeps its commit, however many commits land meanwhile.
    assert_eq!(stamps(store), first, "{context}: two reads of one snapshot differ");
    stamp
}

/// What a reader did.
#[derive(Debug, Default, Clone, Copy)]
struct ReaderTally {
    snapshots: u64,
    distinct: u64,
    last: i64,
}

/// Reads snapshots until `stop()`: every other round from a fresh `Atlas::open`, otherwise
/// by refreshing one long-lived handle; the stamps seen must never go back. `seen_midway`
/// is called once, at the first stamp of a commit the writer made before its last.
fn reader_loop(path: &Path, context: &str, stop: &dyn Fn() -> bool, seen_midway: &dyn Fn()) -> ReaderTally {
    let long_lived = Atlas::open(path).unwrap();
    let mut tally = ReaderTally { last: -1, ..ReaderTally::default() };
    let mut round = 0u64;
    while !stop() {
        round += 1;
        let stamp = if round.is_multiple_of(2) {
            check_snapshot(&Atlas::open(path).unwrap(), context)
        } else {
            long_lived.refresh().unwrap();
            check_snapshot(&long_lived, context)
        };
        // Each snapshot is the newest commit at some moment after the previous one.
        assert!(stamp >= tally.last, "{context}: went back from commit {} to {stamp}", tally.last);
        tally.snapshots += 1;
        tally.distinct += u64::from(stamp != tally.last);
        if (1..COMMITS).contains(&stamp) && !(1..COMMITS).contains(&tally.last) {
            seen_midway();
        }
        tally.last = stamp;
    }
    tally
}

/// The body of a reader child: reads until the stop file appears, then prints its tally.
#[test]
fn reader_child_runs_only_in_spawned_processes() {
    let (Ok(store), Ok(stop)) = (std::env::var(ENV_STORE), std::env::var(ENV_STOP)) else { return };
    let (store, stop) = (PathBuf::from(store), PathBuf::from(stop));
    println!("{READY}");
    let started = Instant::now();
    let midway = stop.with_file_name(format!("midway-{}", std::process::id()));
    let seen_midway = || std::fs::write(&midway, b"").unwrap();
    let tally =
        reader_loop(&store, "reader child", &|| stop.exists() || started.elapsed() > CHILD_LIFETIME, &seen_midway);
    println!("{SUMMARY} {} {} {}", tally.snapshots, tally.distinct, tally.last);
}

fn spawn_reader(store: &Path, stop: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "concurrency2::reader_child_runs_only_in_spawned_processes", "--nocapture"])
        .args(["--test-threads=1"])
        .env(ENV_STORE, store)
        .env(ENV_STOP, stop)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads a child's stdout up to the line holding `marker`; returns the rest of that line.
fn read_until(child: &mut Child, marker: &str) -> String {
    let mut reader = BufReader::new(child.stdout.as_mut().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            drop(reader);
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("reader child ended without {marker:?}: {:?}\n{err}", child.wait().unwrap());
        }
        if let Some(at) = line.find(marker) {
            return line[at + marker.len()..].trim().to_string();
        }
    }
}

/// Commits stamps 1..=COMMITS through `store`, compacting every 16th commit. Halfway it
/// waits until `readers_midway()`: every reader has seen a commit the writer made before
/// its last, so that reading and committing did overlap however the threads were run.
fn writer_loop(store: &Atlas, readers_midway: &dyn Fn() -> bool) {
    for stamp in 1..=COMMITS {
        write_stamp(store, stamp);
        store.flush().unwrap();
        if stamp % 16 == 0 {
            store.compact().unwrap();
        }
        if stamp == COMMITS / 2 {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !readers_midway() {
                assert!(Instant::now() < deadline, "a reader saw no commit made during the loop");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

#[test]
fn readers_in_two_other_processes_see_only_whole_commits_during_a_flush_loop() {
    let mut dir = test_dir!();
    let store = set_up(&dir.store());
    let stop = dir.join("stop");
    // This process holds no writer lock while it spawns (everything is flushed).
    let (store_path, stop_path) = (dir.store(), stop.clone());
    let mut children =
        dir.while_alone(|| [spawn_reader(&store_path, &stop_path), spawn_reader(&store_path, &stop_path)]);
    for child in &mut children {
        read_until(child, READY);
    }
    let midway = |entry: &std::fs::DirEntry| entry.file_name().to_string_lossy().starts_with("midway-");
    let readers_midway =
        || std::fs::read_dir(dir.join("")).unwrap().filter(|e| midway(e.as_ref().unwrap())).count() == 2;
    writer_loop(&store, &readers_midway);
    std::fs::write(&stop, b"").unwrap();
    for (i, mut child) in children.into_iter().enumerate() {
        let summary = read_until(&mut child, SUMMARY);
        let status = child.wait().unwrap();
        assert!(status.success(), "reader {i}: {status:?}");
        let numbers: Vec<u64> = summary.split(' ').map(|n| n.parse().unwrap()).collect();
        println!("concurrency2: reader process {i}: {} snapshots, {} distinct commits", numbers[0], numbers[1]);
        assert!(numbers[0] > 0);
    }
    // The last commit is what everyone sees now.
    assert_eq!(check_snapshot(&Atlas::open(dir.store()).unwrap(), "after"), COMMITS);
}

#[test]
fn many_reader_threads_and_a_writer_thread_see_only_whole_stable_commits() {
    let dir = test_dir!();
    let path = dir.store();
    let store = set_up(&path);
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(READERS + 1));
    let midway = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..READERS)
        .map(|i| {
            let (path, done, start) = (path.clone(), done.clone(), start.clone());
            let midway = midway.clone();
            std::thread::spawn(move || {
                start.wait();
                let seen_midway = || _ = midway.fetch_add(1, Ordering::AcqRel);
                reader_loop(&path, &format!("reader thread {i}"), &|| done.load(Ordering::Acquire), &seen_midway)
            })
        })
        .collect();
    let writer = std::thread::spawn(move || {
        start.wait();
        writer_loop(&store, &|| midway.load(Ordering::Acquire) == READERS);
        store
    });
    let store = writer.join().unwrap();
    done.store(true, Ordering::Release);
    let mut snapshots = 0;
    for reader in readers {
        let tally = reader.join().unwrap();
        snapshots += tally.snapshots;
    }
    println!("concurrency2: {READERS} reader threads read {snapshots} whole snapshots during {COMMITS} commits");
    assert!(snapshots >= READERS as u64);
    assert_eq!(check_snapshot(&store, "writer after"), COMMITS);
    assert_eq!(stamps(&store)[0], COMMITS);
}
