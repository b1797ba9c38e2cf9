//! Child processes: this binary run again with `--child TASK [ARG]`, doing one operation
//! and printing its peak memory (see `measure::ChildMemory`).

use crate::Opts;
use crate::case;
use crate::measure::{ChildMemory, run_child};
use crate::workload::{append, boxes, bulk, many};

/// Runs `task` in a child process with the parent's scale and directory.
pub fn spawn(opts: &Opts, task: &[&str]) -> ChildMemory {
    let mut args = vec!["--child".to_string()];
    args.extend(task.iter().map(ToString::to_string));
    args.extend(["--scale".into(), opts.scale.to_string(), "--dir".into(), opts.root.display().to_string()]);
    run_child(&args)
}

/// The child's side: runs one task.
pub fn run(task: &str, arg: Option<&str>, opts: &Opts) {
    match task {
        "w3-write" | "w3-read" | "w3-read-loop" => many::child(task, opts),
        "w4-read" | "w4-read-uncached" | "w4-read-boxes" | "w4-read-zarrs" => boxes::child(task, opts),
        "w5-write" | "w5-read" => append::child(task, arg.expect("W5 variant"), opts),
        _ => {
            let id = arg.expect("case id");
            let case = case::find(id, opts.scale).unwrap_or_else(|| panic!("unknown case {id}"));
            bulk::child(task, &case, opts);
        }
    }
}
