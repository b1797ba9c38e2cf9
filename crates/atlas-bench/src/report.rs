//! One row per (workload, operation), printed as one Markdown table.

use std::fmt::Write as _;
use std::time::Duration;

use crate::measure::{ChildMemory, mb_per_s};

/// The measurements of one operation of one workload. Times are the best of the repeats.
#[derive(Debug, Default)]
pub struct Row {
    pub workload: String,
    pub op: String,
    /// Raw (uncompressed) array bytes the operation moves: the MB of MB/s.
    pub bytes: u64,
    pub atlas: Option<Duration>,
    /// Atlas with the allocating `read` call, compared against zarrs (which allocates too).
    pub atlas_alloc: Option<Duration>,
    pub raw: Option<Duration>,
    pub zarrs: Option<Duration>,
    pub atlas_disk: Option<u64>,
    /// Sum of the baseline's encoded chunks: what the codec alone would store.
    pub raw_disk: Option<u64>,
    pub zarrs_disk: Option<u64>,
    /// The bytes peak memory is compared with (the whole array's raw bytes).
    pub array_bytes: u64,
    pub atlas_mem: Option<ChildMemory>,
    pub zarrs_mem: Option<ChildMemory>,
    /// Measurement rounds run (each time is the best of these).
    pub rounds: usize,
    pub note: String,
}

impl Row {
    pub fn new(workload: impl Into<String>, op: impl Into<String>, bytes: u64, array_bytes: u64) -> Self {
        Self { workload: workload.into(), op: op.into(), bytes, array_bytes, ..Self::default() }
    }

    /// Atlas speed over the raw codec's on the same chunks (1.0 = at the codec limit).
    pub fn atlas_over_raw(&self) -> Option<f64> {
        Some(self.raw?.as_secs_f64() / self.atlas?.as_secs_f64())
    }

    /// Atlas speed over zarrs's, like for like (allocating reads on both sides).
    pub fn atlas_over_zarrs(&self) -> Option<f64> {
        Some(self.zarrs?.as_secs_f64() / self.atlas_alloc.or(self.atlas)?.as_secs_f64())
    }

    /// Atlas's peak memory above the child's starting RSS, over the array's bytes.
    pub fn atlas_mem_ratio(&self) -> Option<f64> {
        Some(self.atlas_mem?.peak_bytes as f64 / self.array_bytes as f64)
    }
}

fn mbps(bytes: u64, time: Option<Duration>) -> String {
    time.filter(|_| bytes > 0).map_or_else(|| "-".into(), |t| format!("{:.0}", mb_per_s(bytes, t)))
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.2}x"))
}

fn mb(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "-".into(), |b| format!("{:.1}", b as f64 / 1e6))
}

fn mem(m: Option<ChildMemory>, array_bytes: u64) -> String {
    m.map_or_else(
        || "-".into(),
        |m| {
            let of = |b: u64| b as f64 / array_bytes as f64;
            if m.file_bytes > 0 {
                format!("{:.2}x ({:.2}x file)", of(m.peak_bytes), of(m.file_bytes))
            } else {
                format!("{:.2}x", of(m.peak_bytes))
            }
        },
    )
}

/// The table, Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| workload | op | MB | rounds | Atlas MB/s | raw MB/s | Atlas/raw | zarrs MB/s | Atlas/zarrs \
         | Atlas disk MB | raw codec MB | zarrs disk MB | Atlas peak/array | zarrs peak/array | note |\n",
    );
    out.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.workload,
            r.op,
            r.bytes as f64 / 1e6,
            r.rounds,
            mbps(r.bytes, r.atlas),
            mbps(r.bytes, r.raw),
            ratio(r.atlas_over_raw()),
            mbps(r.bytes, r.zarrs),
            ratio(r.atlas_over_zarrs()),
            mb(r.atlas_disk),
            mb(r.raw_disk),
            mb(r.zarrs_disk),
            mem(r.atlas_mem, r.array_bytes),
            mem(r.zarrs_mem, r.array_bytes),
            r.note
        );
    }
    out
}

/// The targets, checked against each row they apply to.
pub fn targets(rows: &[Row]) -> String {
    let mut out = String::from("| workload | op | target | measured | met |\n|---|---|---|--:|---|\n");
    let mut check = |r: &Row, target: &str, value: Option<f64>, ok: fn(f64) -> bool| {
        if let Some(v) = value {
            let _ = writeln!(
                out,
                "| {} | {} | {target} | {v:.2} | {} |",
                r.workload,
                r.op,
                if ok(v) { "yes" } else { "**no**" }
            );
        }
    };
    for r in rows {
        let bulk = r.workload.starts_with("W1") || r.workload.starts_with("W2");
        if bulk && r.op == "read all" {
            check(r, "Atlas/raw decode >= 0.85", r.atlas_over_raw(), |v| v >= 0.85);
            check(r, "Atlas/zarrs >= 2", r.atlas_over_zarrs(), |v| v >= 2.0);
        }
        if bulk && r.op == "write all" {
            check(r, "Atlas/raw encode >= 0.8", r.atlas_over_raw(), |v| v >= 0.8);
            check(r, "Atlas/zarrs >= 2", r.atlas_over_zarrs(), |v| v >= 2.0);
        }
        if r.workload.starts_with("W4") && r.op.starts_with("box reads") && !r.op.contains("read_boxes") {
            check(r, "Atlas/zarrs >= 2", r.atlas_over_zarrs(), |v| v >= 2.0);
        }
        if r.array_bytes > 0 {
            check(r, "peak RSS / array bytes <= 1.25", r.atlas_mem_ratio(), |v| v <= 1.25);
        }
    }
    out
}
