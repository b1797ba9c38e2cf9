//! Ctrl-C (and SIGTERM or SIGHUP) during an import or export: the command stops at its next
//! slab and cleans up as after any other error (an export's temporary file removed, an
//! import's changes discarded and a store it made removed) and exits with 130, where the
//! signal's default action would have left them behind. A second signal ends the process
//! at once. Other commands keep the default action: they have nothing to clean up.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the handler on the first signal.
static REQUESTED: AtomicBool = AtomicBool::new(false);

/// The exit status of a command stopped by a signal, as shells give one killed by SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Why a command stopped early: a signal asked it to.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Catches the signals from here on. Failing to install the handler leaves the default
/// action, which is still safe for the store (a commit is atomic), so it is only warned of.
pub fn catch() {
    let installed = ctrlc::set_handler(|| {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    });
    if let Err(e) = installed {
        eprintln!("atlas: warning: Ctrl-C will not clean up: {e}");
    }
}

/// Fails with [`Interrupted`] once a signal has come.
pub fn check() -> Result<(), Interrupted> {
    if REQUESTED.load(Ordering::SeqCst) { Err(Interrupted) } else { Ok(()) }
}

/// Whether `e` is, or was caused by, an interruption.
pub fn caused(e: &anyhow::Error) -> bool {
    e.chain().any(<dyn std::error::Error>::is::<Interrupted>)
}
