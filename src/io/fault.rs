//! Fault injection for tests (feature `test-util`): the Nth mutating I/O call of the process
//! (create, write, truncate, fsync, rename, remove) fails with the chosen error, so a test can
//! walk a flush through every failure point. Without the feature every check is a no-op.

use std::path::Path;

use super::io_err;
use crate::error::Result;

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(not(feature = "test-util"), allow(dead_code))] // only constructed by tests
pub enum Fault {
    /// The call fails with EIO.
    Eio,
    /// The call fails with ENOSPC.
    NoSpace,
    /// A write stores only its first half, then fails with ENOSPC; other calls fail with
    /// ENOSPC.
    ShortWrite,
    /// The call panics, as a bug in Atlas would in the middle of a change.
    Panic,
}

impl Fault {
    fn error(self) -> std::io::Error {
        match self {
            Self::Eio => std::io::Error::from_raw_os_error(5),
            Self::NoSpace | Self::ShortWrite => std::io::Error::from_raw_os_error(28),
            Self::Panic => unreachable!("an injected panic never gets as far as an error"),
        }
    }
}

#[cfg(feature = "test-util")]
mod plan {
    use std::sync::Mutex;

    use super::Fault;

    /// Mutating calls seen since the plan was set, and the one to fail.
    pub(super) struct Plan {
        pub fail_at: u64,
        pub seen: u64,
        pub fault: Fault,
    }

    pub(super) static PLAN: Mutex<Option<Plan>> = Mutex::new(None);

    /// Counts one mutating call; returns the fault if it is the one to fail.
    pub(super) fn hit() -> Option<Fault> {
        let mut plan = PLAN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let plan = plan.as_mut()?;
        plan.seen += 1;
        (plan.seen - 1 == plan.fail_at).then_some(plan.fault)
    }
}

#[cfg(feature = "test-util")]
fn hit() -> Option<Fault> {
    let fault = plan::hit()?;
    assert!(fault != Fault::Panic, "atlas test-util: the injected panic at a mutating I/O call");
    Some(fault)
}

#[cfg(not(feature = "test-util"))]
#[inline]
fn hit() -> Option<Fault> {
    None
}

/// A fault point before a mutating call that is not a write.
pub(crate) fn check(path: &Path, op: &'static str) -> Result<()> {
    match hit() {
        Some(fault) => Err(io_err(path, op)(fault.error())),
        None => Ok(()),
    }
}

/// A fault point for a write of `bytes`: on a short-write fault, `write` is given the first
/// half before the error is returned.
pub(crate) fn check_write(path: &Path, bytes: &[u8], write: impl FnOnce(&[u8]) -> std::io::Result<()>) -> Result<()> {
    match hit() {
        Some(fault) => {
            if fault == Fault::ShortWrite {
                write(&bytes[..bytes.len() / 2]).map_err(io_err(path, "write"))?;
            }
            Err(io_err(path, "write")(fault.error()))
        }
        None => Ok(()),
    }
}

/// Test control of the fault plan (feature `test-util`).
#[cfg(feature = "test-util")]
pub mod control {
    use super::Fault;
    use super::plan::{PLAN, Plan};

    /// Makes the mutating I/O call number `fail_at` (from 0) after this call fail with
    /// `fault`, process-wide, until the returned guard is dropped. Tests that use it must not
    /// run alongside other tests that write.
    #[must_use = "the fault is cleared when the guard drops"]
    pub fn inject(fail_at: u64, fault: Fault) -> FaultGuard {
        *PLAN.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Plan { fail_at, seen: 0, fault });
        FaultGuard { _private: () }
    }

    /// Clears the plan when dropped.
    #[derive(Debug)]
    pub struct FaultGuard {
        _private: (),
    }

    impl FaultGuard {
        /// Mutating calls seen since the plan was set.
        pub fn calls_seen(&self) -> u64 {
            PLAN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().map_or(0, |p| p.seen)
        }
    }

    impl Drop for FaultGuard {
        fn drop(&mut self) {
            *PLAN.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
    }
}
