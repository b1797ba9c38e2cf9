//! Timing (best of N), bytes on disk, and peak memory of a child process.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Times one call of `run`.
pub fn time<R>(run: impl FnOnce() -> R) -> Duration {
    let start = Instant::now();
    std::hint::black_box(run());
    start.elapsed()
}

/// How many measurement rounds a case runs: at least `reps`, and more (up to 10x `reps`)
/// until `min_secs` have passed, so short cases get more chances at a quiet moment.
#[derive(Debug)]
pub struct Rounds {
    done: usize,
    reps: usize,
    min: Duration,
    start: Instant,
}

impl Rounds {
    pub fn new(reps: usize, min_secs: f64) -> Self {
        Self { done: 0, reps: reps.max(1), min: Duration::from_secs_f64(min_secs), start: Instant::now() }
    }

    /// Whether to run another round.
    pub fn next(&mut self) -> bool {
        let more = self.done < self.reps || (self.start.elapsed() < self.min && self.done < 10 * self.reps);
        self.done += usize::from(more);
        more
    }

    pub fn done(&self) -> usize {
        self.done
    }
}

/// The best (shortest) of the times added so far. The workloads run their measurements in
/// rounds, each round timing every side once, so that load from other processes on the
/// machine hits all sides alike and the ratios stay meaningful.
#[derive(Debug, Clone, Copy, Default)]
pub struct Best(Option<Duration>);

impl Best {
    pub fn add(&mut self, time: Duration) {
        self.0 = Some(self.0.map_or(time, |best| best.min(time)));
    }

    pub fn get(self) -> Option<Duration> {
        self.0
    }
}

/// MB/s (10^6 bytes per second) of `bytes` in `time`.
pub fn mb_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64()
}

/// Bytes of all files under `path`.
pub fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// A field of /proc/self/status in bytes (`VmHWM`, `RssFile`...), 0 if absent.
pub fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// What a child reports on its last line of output.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChildMemory {
    /// Peak resident set (`VmHWM`), anonymous and file-backed pages together.
    pub peak_bytes: u64,
    /// File-backed resident pages at the end (mapped fragments), part of the peak.
    pub file_bytes: u64,
}

impl ChildMemory {
    /// This process's RSS now (as `peak_bytes`) and its file-backed part.
    pub fn now() -> Self {
        Self { peak_bytes: status_bytes("VmRSS"), file_bytes: status_bytes("RssFile") }
    }

    /// Prints the line the parent parses; called by a child at its end. `base` is the child's
    /// memory before it did anything (the binary and its libraries), left out of both numbers.
    pub fn report(base: Self) {
        let peak = status_bytes("VmHWM").saturating_sub(base.peak_bytes);
        let file = status_bytes("RssFile").saturating_sub(base.file_bytes);
        println!("child-memory {peak} {file}");
    }
}

/// Resets this process's peak RSS to its current RSS (Linux 4.0+), so the peak that follows
/// leaves out what came before (e.g. garbage from generating the input).
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Runs this binary again with `args` and returns the memory it reports.
pub fn run_child(args: &[String]) -> ChildMemory {
    let exe = std::env::current_exe().expect("own executable");
    let output = Command::new(exe).args(args).output().expect("child starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child {args:?} failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    let line = stdout.lines().rev().find_map(|l| l.strip_prefix("child-memory ")).expect("child reports memory");
    let mut fields = line.split_whitespace().map(|f| f.parse::<u64>().expect("number"));
    ChildMemory { peak_bytes: fields.next().unwrap_or(0), file_bytes: fields.next().unwrap_or(0) }
}

/// Writes every dirty page on the machine back to disk (`sync(1)`), so that a timed write
/// does not queue its `fsync` behind the writeback of the write timed before it.
pub fn settle_disk() {
    let _ = Command::new("sync").status();
}

/// A fresh, empty directory `name` under `root` (removed first if present).
pub fn fresh_dir(root: &Path, name: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(root).expect("bench directory");
    dir
}
