//! `atlas-bench`: Atlas against the raw codec (same chunk bytes, same codec, in memory, on all
//! cores) and against zarrs, in one run, for the workloads of the "Speed" issue. Prints one
//! Markdown table of MB/s, ratios, bytes on disk and peak memory, then the targets.
//!
//! ```text
//! cargo run --release -- [--scale F] [--reps N] [--dir PATH] [--only w1,w2,w3,w4,w5] [--min-secs S] [--no-rss] [--keep]
//! ```
//! To profile one operation on the stores a `--keep` run left:
//! `atlas-bench --child atlas-read w1-c64-zstd3+shuf --dir PATH --repeat 200` (tasks: see
//! `child.rs`).
//! `--scale` (or `ATLAS_BENCH_SCALE`) is a linear factor on W1's 512^3 and W2's 256x512x512
//! (default 0.5: 256^3 and 128x256x256). W3 and W5 keep their sizes. Each timed measurement
//! is repeated at least `--reps` times (default 5), and more until `--min-secs` (default 3)
//! have passed for the case (at most 10x `--reps`); the best time is reported. Every round
//! times all sides once (raw codec, Atlas, zarrs), so load from other processes hits them
//! alike.

mod atlas_side;
mod baseline;
mod case;
mod child;
mod measure;
mod report;
mod workload;
mod zarrs_side;

use std::path::PathBuf;
use std::time::Instant;

use workload::{append, boxes, bulk, many};

/// A workload with fixed cases: runs and returns its rows.
type Workload = fn(&Opts) -> Vec<report::Row>;

/// What the whole run (and each child) is told.
#[derive(Debug, Clone)]
pub struct Opts {
    pub scale: f64,
    pub reps: usize,
    /// Where the stores go (removed at the end of a parent run).
    pub root: PathBuf,
    pub only: Vec<String>,
    /// Measure peak memory in child processes.
    pub rss: bool,
    /// Each case runs more rounds than `reps` until this many seconds have passed.
    pub min_secs: f64,
    /// Keep the stores at the end (to profile a child task on them).
    pub keep: bool,
    /// How often a child task repeats its operation (for profiling; 1 for memory).
    pub repeat: usize,
}

impl Opts {
    /// The measurement rounds of one case.
    #[must_use]
    pub fn rounds(&self) -> measure::Rounds {
        measure::Rounds::new(self.reps, self.min_secs)
    }
}

fn main() {
    let (opts, child_task) = parse_args();
    match child_task {
        Some((task, arg)) => child::run(&task, arg.as_deref(), &opts),
        None => run(&opts),
    }
}

const USAGE: &str = "atlas-bench [--scale F] [--reps N] [--min-secs S] [--dir PATH] [--only w1,w2,w3,w4,w5] \
                     [--no-rss] [--keep]\n\
                     atlas-bench --child TASK [ARG] [--scale F] [--dir PATH] [--repeat N]";

/// The options, and the child task (with its argument) when this is a child process.
fn parse_args() -> (Opts, Option<(String, Option<String>)>) {
    let mut args = std::env::args().skip(1).peekable();
    let mut opts = Opts {
        scale: std::env::var("ATLAS_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(0.5),
        reps: 5,
        root: std::env::temp_dir().join(format!("atlas-bench-{}", std::process::id())),
        only: vec!["w1".into(), "w2".into(), "w3".into(), "w4".into(), "w5".into()],
        rss: true,
        min_secs: 3.0,
        keep: false,
        repeat: 1,
    };
    let mut child_task = None;
    while let Some(arg) = args.next() {
        if arg == "--child" {
            let task = args.next().expect("--child needs a task");
            // The task's argument, unless the next word is already an option.
            let task_arg = args.next_if(|a| !a.starts_with("--"));
            child_task = Some((task, task_arg));
            continue;
        }
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--scale" => opts.scale = value().parse().expect("--scale takes a number"),
            "--reps" => opts.reps = value().parse().expect("--reps takes a count"),
            "--min-secs" => opts.min_secs = value().parse().expect("--min-secs takes seconds"),
            "--dir" => opts.root = PathBuf::from(value()),
            "--only" => opts.only = value().split(',').map(str::to_lowercase).collect(),
            "--repeat" => opts.repeat = value().parse().expect("--repeat takes a count"),
            "--no-rss" => opts.rss = false,
            "--keep" => opts.keep = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}\n{USAGE}"),
        }
    }
    (opts, child_task)
}

fn run(opts: &Opts) {
    let started = Instant::now();
    println!("# atlas-bench");
    println!();
    println!("- machine: {} cores, CPU {}", cores(), cpu_model());
    println!(
        "- scale {} (W1 {:?}, W2 {:?}), best of at least {} rounds per case (more until {} s), stores in {}",
        opts.scale,
        case::w1_cases(opts.scale)[0].shape,
        case::w2_cases(opts.scale)[0].shape,
        opts.reps,
        opts.min_secs,
        opts.root.display()
    );
    println!("- RAYON_NUM_THREADS={}", std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "(unset)".into()));
    println!();
    let wants = |w: &str| opts.only.iter().any(|o| o == w);
    let mut rows = Vec::new();
    if wants("w1") {
        for case in case::w1_cases(opts.scale) {
            eprintln!("[{:>6.1}s] {}", started.elapsed().as_secs_f64(), case.id);
            rows.extend(bulk::run(&case, opts));
        }
    }
    if wants("w2") {
        for case in case::w2_cases(opts.scale) {
            eprintln!("[{:>6.1}s] {}", started.elapsed().as_secs_f64(), case.id);
            rows.extend(bulk::run(&case, opts));
        }
    }
    let staged: [(&str, Workload); 3] = [("w3", many::run), ("w4", boxes::run), ("w5", append::run)];
    for (name, run) in staged {
        if wants(name) {
            eprintln!("[{:>6.1}s] {name}", started.elapsed().as_secs_f64());
            rows.extend(run(opts));
        }
    }
    println!("{}", report::table(&rows));
    println!("## Targets\n");
    println!("{}", report::targets(&rows));
    println!("total run time {:.0} s", started.elapsed().as_secs_f64());
    if !opts.keep {
        let _ = std::fs::remove_dir_all(&opts.root);
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        .unwrap_or_else(|| "unknown".into())
}
