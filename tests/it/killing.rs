//! SIGKILL at random moments. A child process (this test binary again, selected by an
//! environment variable as in `concurrency.rs`) writes and flushes generation after
//! generation, appending each generation to a log file (fsynced) once its flush returned.
//! The parent kills it after a random delay, then checks that the store:
//!
//! - opens, at the last logged generation g, or g + 1 when the kill fell between the
//!   commit and the log write;
//! - holds exactly the content of that generation (every value of every array, shapes,
//!   attributes, statistics), replayed by an in-memory model of the same steps;
//! - lets a new writer (this process) commit the next generation, and that writer's first
//!   change removes the orphan fragment and temp file the dead child left.
//!
//! One store serves every kill; each child continues from the store's generation. The
//! parent compacts now and then so the fragment list stays short.
//!
//! `ATLAS_CRASH_KILLS` sets the number of kills (default 200; `scripts/crash-nightly` runs
//! 5000), `ATLAS_CRASH_SEED` the RNG seed and `ATLAS_CRASH_MAX_DELAY_MS` the longest delay
//! between the child's start of work and the kill.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atlas::{ArraySpec, Atlas, AttrValue, Codec, DType, Scalar, Shuffle, StoreConfig};
use ndarray::{Array1, Array2, arr1};

use crate::util::test_dir;

const ENV_STORE: &str = "ATLAS_IT_KILL_STORE";
const ENV_LOG: &str = "ATLAS_IT_KILL_LOG";
/// The line a child prints once it opened the store and is about to write.
const READY: &str = "atlas-kill-child-ready";
/// A child that was never killed stops on its own after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);
/// A child compacts the store after each data generation divisible by this, so kills land
/// in compactions too.
const CHILD_COMPACTS_EVERY: u64 = 7;

const FULL_SHAPE: (usize, usize) = (8, 12);
const PART_SHAPE: (usize, usize) = (12, 12);
const PART_BOX: (usize, usize) = (3, 5);
const LOG_COLS: usize = 6;
const NAMES_LEN: usize = 8;
const FLAGS_LEN: usize = 20;

/// A tiny deterministic RNG (xorshift64*), so a failing run can be replayed from its seed.
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0), near enough for test schedules.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// An environment variable as a number (decimal, or hex with `0x`); `default` if unset.
fn env_u64(name: &str, default: u64) -> u64 {
    let Ok(text) = std::env::var(name) else { return default };
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("{name}={text:?} is not a number"))
}

// The content a generation writes. Every function depends on `g` alone, so the child and
// the parent's model agree.

fn full_values(g: u64) -> Array2<f32> {
    Array2::from_shape_fn(FULL_SHAPE, |(i, j)| ((g * 31 + (i * 12 + j) as u64) % 1000) as f32 * 0.5)
}

fn part_origin(g: u64) -> [u64; 2] {
    [g % 10, (g * 7) % 8]
}

fn log_row(g: u64) -> Array2<u16> {
    Array2::from_shape_fn((1, LOG_COLS), |(_, j)| 1 + ((g * 7 + j as u64) % 60_000) as u16)
}

fn name_slot(g: u64) -> usize {
    (g % NAMES_LEN as u64) as usize
}

fn flags(g: u64) -> Array1<bool> {
    Array1::from_shape_fn(FLAGS_LEN, |i| (g + i as u64).is_multiple_of(3))
}

fn part_value(g: u64) -> i32 {
    i32::try_from(g % 1_000_000).unwrap()
}

/// Writes generation `g`'s changes through `store` (not flushed): a whole-array overwrite
/// (zstd + shuffle), a box that covers chunks in part (lz4), an append (none), one string
/// (zstd), a bool array (lz4, no shuffle), and two attributes, over two datasets.
fn write_generation(store: &Atlas, g: u64) {
    let d0 = store.open_dataset("d0").unwrap();
    d0.write_array("full", &[0, 0], full_values(g).view()).unwrap();
    d0.write_array("part", &part_origin(g), Array2::from_elem(PART_BOX, part_value(g)).view()).unwrap();
    let d1 = store.open_dataset("d1").unwrap();
    d1.append_array("log", log_row(g).view()).unwrap();
    d1.write_strings("names", &[name_slot(g) as u64], arr1(&[format!("g{g}")]).view()).unwrap();
    d1.write_array("flags", &[0], flags(g).view()).unwrap();
    store.attrs().set("gen", g as i64).unwrap();
    d1.attrs().set("label", format!("gen-{g}")).unwrap();
}

/// Defines the schema and commits it; returns the generation of that commit.
fn set_up(path: &Path) -> u64 {
    let store = Atlas::create(path, StoreConfig::default()).unwrap();
    let d0 = store.create_dataset("d0").unwrap();
    let spec = ArraySpec::new(DType::Float32, [FULL_SHAPE.0 as u64, FULL_SHAPE.1 as u64]);
    d0.define_array("full", spec.chunk_shape([4, 4]).fill_value(f32::NAN).shuffle(Shuffle::On)).unwrap();
    let spec = ArraySpec::new(DType::Int32, [PART_SHAPE.0 as u64, PART_SHAPE.1 as u64]);
    d0.define_array("part", spec.chunk_shape([4, 4]).fill_value(-1).codec(Codec::Lz4)).unwrap();
    let d1 = store.create_dataset("d1").unwrap();
    let spec = ArraySpec::new(DType::UInt16, [0, LOG_COLS as u64]).chunk_shape([4, LOG_COLS as u64]);
    d1.define_array("log", spec.codec(Codec::None)).unwrap();
    d1.define_array("names", ArraySpec::new(DType::String, [NAMES_LEN as u64]).chunk_shape([3])).unwrap();
    let spec = ArraySpec::new(DType::Bool, [FLAGS_LEN as u64]).chunk_shape([8]).codec(Codec::Lz4);
    d1.define_array("flags", spec.shuffle(Shuffle::Off)).unwrap();
    store.flush().unwrap();
    store.generation()
}

/// What the store must hold at a generation: the schema's commit, then every data
/// generation's changes replayed; compactions change nothing.
struct Model {
    generation: u64,
    full: Array2<f32>,
    part: Array2<i32>,
    log: Vec<Array2<u16>>,
    names: Vec<String>,
    flags: Array1<bool>,
    last_data_generation: Option<u64>,
    /// Generations committed by a compaction (no content change).
    compactions: std::collections::HashSet<u64>,
}

impl Model {
    fn new(generation: u64) -> Self {
        Self {
            generation,
            full: Array2::from_elem(FULL_SHAPE, f32::NAN),
            part: Array2::from_elem(PART_SHAPE, -1),
            log: Vec::new(),
            names: vec![String::new(); NAMES_LEN],
            flags: Array1::from_elem(FLAGS_LEN, false),
            last_data_generation: None,
            compactions: std::collections::HashSet::new(),
        }
    }

    fn advance_to(&mut self, generation: u64) {
        assert!(generation >= self.generation, "the store went back from {} to {generation}", self.generation);
        for g in self.generation + 1..=generation {
            if self.compactions.contains(&g) {
                continue;
            }
            self.full = full_values(g);
            let [r, c] = part_origin(g).map(|v| v as usize);
            self.part.slice_mut(ndarray::s![r..r + PART_BOX.0, c..c + PART_BOX.1]).fill(part_value(g));
            self.log.push(log_row(g));
            self.names[name_slot(g)] = format!("g{g}");
            self.flags = flags(g);
            self.last_data_generation = Some(g);
        }
        self.generation = generation;
    }

    /// Asserts that `store` holds exactly this model's content.
    fn check(&self, store: &Atlas, context: &str) {
        assert_eq!(store.generation(), self.generation, "{context}");
        let gen_attr = store.attrs().get("gen").unwrap();
        assert_eq!(gen_attr, self.last_data_generation.map(|g| AttrValue::Int(g as i64)), "{context}: store attribute");
        let d0 = store.open_dataset("d0").unwrap();
        let full = d0.read_array::<f32>("full", &[0, 0], &[FULL_SHAPE.0 as u64, FULL_SHAPE.1 as u64]).unwrap();
        let bits = |a: &ndarray::ArrayD<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&full), bits(&self.full.clone().into_dyn()), "{context}: d0/full");
        let part = d0.read_array::<i32>("part", &[0, 0], &[PART_SHAPE.0 as u64, PART_SHAPE.1 as u64]).unwrap();
        assert_eq!(part, self.part.clone().into_dyn(), "{context}: d0/part");

        let d1 = store.open_dataset("d1").unwrap();
        let rows = self.log.len() as u64;
        assert_eq!(d1.array_meta("log").unwrap().shape, [rows, LOG_COLS as u64], "{context}: d1/log shape");
        let log = d1.read_array::<u16>("log", &[0, 0], &[rows, LOG_COLS as u64]).unwrap();
        let want: Vec<u16> = self.log.iter().flat_map(|r| r.iter().copied()).collect();
        assert_eq!(log.iter().copied().collect::<Vec<_>>(), want, "{context}: d1/log");
        let names = d1.read_strings("names", &[0], &[NAMES_LEN as u64]).unwrap();
        assert_eq!(names.iter().cloned().collect::<Vec<_>>(), self.names, "{context}: d1/names");
        let flags = d1.read_array::<bool>("flags", &[0], &[FLAGS_LEN as u64]).unwrap();
        assert_eq!(flags, self.flags.clone().into_dyn(), "{context}: d1/flags");
        let label = d1.attrs().get("label").unwrap();
        assert_eq!(label, self.last_data_generation.map(|g| AttrValue::from(format!("gen-{g}"))), "{context}");

        // Statistics as persisted by the commit must count the valid values of the data.
        let counts = [
            (&d0, "full", self.full.iter().filter(|v| !v.is_nan()).count(), FULL_SHAPE.0 * FULL_SHAPE.1),
            (&d0, "part", self.part.iter().filter(|&&v| v != -1).count(), PART_SHAPE.0 * PART_SHAPE.1),
            (&d1, "log", want.iter().filter(|&&v| v != 0).count(), want.len()),
            (&d1, "names", self.names.iter().filter(|s| !s.is_empty()).count(), NAMES_LEN),
            (&d1, "flags", self.flags.iter().filter(|&&f| f).count(), FLAGS_LEN),
        ];
        for (ds, name, valid, elems) in counts {
            let stats = ds.array_stats(name).unwrap();
            assert_eq!((stats.count, stats.null_count), (valid as u64, (elems - valid) as u64), "{context}: {name}");
        }
        // And the values' statistics: min, max and sum of what is not null.
        let ints = |values: Vec<i64>, name: &str, ds: &atlas::Dataset| {
            let stats = ds.array_stats(name).unwrap();
            let (min, max) = (values.iter().min().copied(), values.iter().max().copied());
            assert_eq!((stats.min, stats.max), (min.map(Scalar::Int), max.map(Scalar::Int)), "{context}: {name}");
            assert_eq!(stats.sum, values.iter().sum::<i64>() as f64, "{context}: {name} sum");
        };
        ints(self.part.iter().filter(|&&v| v != -1).map(|&v| i64::from(v)).collect(), "part", &d0);
        ints(want.iter().filter(|&&v| v != 0).map(|&v| i64::from(v)).collect(), "log", &d1);
        let full: Vec<f32> = self.full.iter().copied().filter(|v| !v.is_nan()).collect();
        let stats = d0.array_stats("full").unwrap();
        let (min, max) = full.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let expected = (!full.is_empty()).then(|| (Scalar::Float(min.into()), Scalar::Float(max.into())));
        assert_eq!(stats.min.zip(stats.max), expected, "{context}: full");
    }
}

/// The body of a killed child: writes and flushes generations until killed, logging each.
#[test]
fn killed_writer_child_runs_only_in_spawned_processes() {
    let (Ok(store), Ok(log)) = (std::env::var(ENV_STORE), std::env::var(ENV_LOG)) else { return };
    let store = Atlas::open(store).unwrap();
    let mut log = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    println!("{READY}");
    std::io::stdout().flush().unwrap();
    let started = Instant::now();
    while started.elapsed() < CHILD_LIFETIME {
        let g = store.generation() + 1;
        write_generation(&store, g);
        store.flush().unwrap();
        assert_eq!(store.generation(), g);
        // Logged only once the flush returned: the log never runs ahead of the store. One
        // write call per line (`writeln!` may split it), so a kill cuts no line in two
        // pieces that a later line could join.
        log.write_all(format!("{g}\n").as_bytes()).unwrap();
        log.sync_data().unwrap();
        if g.is_multiple_of(CHILD_COMPACTS_EVERY) {
            store.compact().unwrap();
            assert_eq!(store.generation(), g + 1, "a data generation leaves two fragments or more");
            log.write_all(format!("{}\n", g + 1).as_bytes()).unwrap();
            log.sync_data().unwrap();
        }
    }
}

/// The compactions among the generations `first..=last` a child committed (`first` is
/// always its first data generation): each data generation divisible by
/// [`CHILD_COMPACTS_EVERY`] is followed by one.
fn child_compactions(first: u64, last: u64) -> Vec<u64> {
    let mut compactions = Vec::new();
    let mut g = first;
    while g < last {
        if g.is_multiple_of(CHILD_COMPACTS_EVERY) {
            compactions.push(g + 1);
            g += 2;
        } else {
            g += 1;
        }
    }
    compactions
}

fn spawn_writer(store: &Path, log: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "killing::killed_writer_child_runs_only_in_spawned_processes", "--nocapture"])
        .args(["--test-threads=1"])
        .env(ENV_STORE, store)
        .env(ENV_LOG, log)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads the child's stdout until its ready line; panics with its output if it ended first.
fn wait_until_ready(child: &mut Child) {
    let mut line = String::new();
    // Borrowed, so the pipe stays open (in `child`) after this reader is gone.
    let mut stdout = BufReader::new(child.stdout.as_mut().unwrap());
    loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            drop(stdout);
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("the child ended before it was ready: {:?}\n{err}", child.wait().unwrap());
        }
        // libtest may print "test <name> ... " before it on the same line.
        if line.trim_end().ends_with(READY) {
            return;
        }
    }
}

/// The last complete line of the log (a kill may cut a line short).
fn last_logged(log: &Path) -> u64 {
    let text = std::fs::read_to_string(log).unwrap();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete.lines().last().unwrap().parse().unwrap()
}

/// Appends `g` to the log, first dropping a line a killed child left unfinished.
fn append_log(log: &Path, g: u64) {
    let text = std::fs::read(log).unwrap();
    let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |end| end + 1);
    let file = std::fs::OpenOptions::new().write(true).open(log).unwrap();
    file.set_len(complete as u64).unwrap();
    file.write_all_at(format!("{g}\n").as_bytes(), complete as u64).unwrap();
    file.sync_data().unwrap();
}

/// Fragment names the current JSON metadata file lists.
fn listed_fragments(store: &Path) -> Vec<String> {
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(store.join("atlas.json")).unwrap()).unwrap();
    let mut names: Vec<String> =
        meta["fragments"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_string()).collect();
    names.sort();
    names
}

fn fragment_files(store: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".frag"))
        .collect();
    names.sort();
    names
}

#[derive(Debug, Default)]
struct Tally {
    kills: u64,
    /// Kills that found the store one generation past the log (killed after the commit,
    /// before the log write).
    past_log: u64,
    /// Kills after which the store held no generation the child committed.
    no_commit: u64,
    /// Kills that left an orphan fragment or temp file for the next writer.
    left_orphans: u64,
    child_commits: u64,
    child_compactions: u64,
    compactions: u64,
}

#[test]
fn a_writer_killed_at_random_moments_leaves_exactly_its_last_completed_flush() {
    let mut dir = test_dir!();
    let (path, log) = (dir.store(), dir.join("kill.log"));
    let kills = env_u64("ATLAS_CRASH_KILLS", 200);
    let seed = env_u64("ATLAS_CRASH_SEED", 0x5eed_0fc0_ffee);
    let max_delay_us = env_u64("ATLAS_CRASH_MAX_DELAY_MS", 60) * 1000 + 1;
    let mut rng = XorShift::new(seed);
    let start = set_up(&path);
    std::fs::write(&log, format!("{start}\n")).unwrap();
    let mut model = Model::new(start);
    let mut tally = Tally::default();
    let began = Instant::now();

    // Every spawn must happen while no other test holds a writer lock (util.rs,
    // `SPAWN_GUARD`): the whole loop runs alone, rather than handing the guard back and
    // forth hundreds of times. This process holds no writer lock at any spawn: each of its
    // changes is flushed (which releases the lock) before the next child starts.
    dir.while_alone(|| {
        for kill in 0..kills {
            let logged_before = last_logged(&log);
            let mut child = spawn_writer(&path, &log);
            // One kill in eight lands while the child starts up and opens the store.
            if rng.below(8) != 0 {
                wait_until_ready(&mut child);
                std::thread::sleep(Duration::from_micros(rng.below(max_delay_us)));
            }
            child.kill().unwrap(); // SIGKILL
            let status = child.wait().unwrap();
            if status.signal() != Some(9) {
                let mut err = String::new();
                child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                panic!("kill {kill}: the child was not killed but ended with {status:?}\n{err}");
            }
            tally.kills += 1;

            let logged = last_logged(&log);
            let store = Atlas::open(&path).unwrap_or_else(|e| panic!("kill {kill}: open failed: {e}"));
            let found = store.generation();
            let context = format!("kill {kill} (seed {seed:#x}): log says {logged}, store has {found}");
            assert!(found == logged || found == logged + 1, "{context}");
            tally.past_log += u64::from(found == logged + 1);
            tally.no_commit += u64::from(found == logged_before);
            tally.child_commits += found - logged_before;
            for g in child_compactions(logged_before + 1, found) {
                model.compactions.insert(g);
                tally.child_compactions += 1;
            }
            model.advance_to(found);
            model.check(&store, &context);

            // The next writer: its first change removes what the dead child left.
            let orphans = fragment_files(&path) != listed_fragments(&path) || path.join("atlas.meta.tmp").exists();
            tally.left_orphans += u64::from(orphans);
            write_generation(&store, found + 1);
            assert!(!path.join("atlas.meta.tmp").exists(), "{context}: the temp file survived the next writer");
            store.flush().unwrap();
            append_log(&log, found + 1);
            model.advance_to(found + 1);
            assert_eq!(fragment_files(&path), listed_fragments(&path), "{context}: orphan fragments survived");
            if kill % 25 == 24 {
                store.compact().unwrap();
                if store.generation() == found + 2 {
                    model.compactions.insert(found + 2);
                    append_log(&log, found + 2);
                    model.advance_to(found + 2);
                    tally.compactions += 1;
                }
            }
            drop(store);
            model.check(&Atlas::open(&path).unwrap(), &format!("{context}, after this process's commit"));
        }
    });
    println!(
        "killing: {} kills in {:.1} s (seed {seed:#x}): {} child commits, {} kills after a commit but \
         before its log line, {} kills with no commit, {} kills left orphans, {} compactions by children \
         and {} by this process",
        tally.kills,
        began.elapsed().as_secs_f64(),
        tally.child_commits,
        tally.past_log,
        tally.no_commit,
        tally.left_orphans,
        tally.child_compactions,
        tally.compactions
    );
    assert!(tally.child_commits > 0, "no child ever committed: the kills came too early to test anything");
    if kills >= 100 {
        // Dozens of each in a run of 200 kills: none would mean the kills miss those steps.
        assert!(tally.past_log > 0, "no kill landed between a commit and its log line");
        assert!(tally.left_orphans > 0, "no kill left orphans for the next writer");
        assert!(tally.child_compactions > 0, "no child compacted");
    }
}

#[test]
fn the_generation_model_matches_a_store_written_without_kills() {
    // The model and the writer agree when nothing is killed, so a failure of the kill test
    // is the store's and not the model's.
    let dir = test_dir!();
    let path: PathBuf = dir.store();
    let start = set_up(&path);
    let store = Atlas::open(&path).unwrap();
    let mut model = Model::new(start);
    model.check(&store, "fresh");
    for g in start + 1..start + 12 {
        write_generation(&store, g);
        store.flush().unwrap();
        model.advance_to(g);
        model.check(&store, &format!("generation {g}"));
    }
    store.compact().unwrap();
    model.compactions.insert(start + 12);
    model.advance_to(start + 12);
    model.check(&Atlas::open(&path).unwrap(), "after compaction");
}
