//! Progress bars for long operations, on stderr and only when stderr is a terminal: piped or
//! redirected output (scripts, tests) never sees them.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether bars may be drawn: not `--quiet`, and stderr is a terminal.
fn visible(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

fn bar(len: u64, template: &str, msg: &str, quiet: bool) -> ProgressBar {
    if !visible(quiet) {
        return ProgressBar::hidden();
    }
    // `ProgressDrawTarget::stderr` also hides itself when stderr is not a terminal.
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
    bar.set_message(msg.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A bar counting bytes, with rate and ETA.
pub fn bytes(len: u64, msg: &str, quiet: bool) -> ProgressBar {
    bar(len, "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}", msg, quiet)
}

/// A bar counting blocks, with rate and ETA.
pub fn blocks(len: u64, msg: &str, quiet: bool) -> ProgressBar {
    bar(len, "{msg} [{bar:30}] {pos}/{len} blocks {per_sec} ETA {eta}", msg, quiet)
}

/// A spinner with the elapsed time, for steps that report no progress of their own.
pub fn spinner(msg: &str, quiet: bool) -> ProgressBar {
    if !visible(quiet) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"));
    bar.set_message(msg.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}
