//! The process's limit on open files.
//!
//! Every committed fragment stays open (mapped, and open for `pread`) while a handle uses
//! its commit, so a store flushed a thousand times without a compaction needs a thousand
//! descriptors per handle. Many systems start processes with a soft limit of 1024 and a
//! far higher hard one (kept low only for programs that still use `select`); the soft
//! limit is raised to the hard one once, as the Go runtime does for its programs.

use std::sync::Once;

/// Raises the soft limit on open files to the hard limit, once per process. Failing is not
/// an error: opening files then fails with `EMFILE` only where it would have anyway.
pub(crate) fn raise_open_files_limit() {
    static RAISED: Once = Once::new();
    RAISED.call_once(raise_soft_to_hard);
}

fn raise_soft_to_hard() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed, which lives
    // on this stack frame for both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) != 0 {
                log::debug!("atlas: cannot raise the open files limit: {}", std::io::Error::last_os_error());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit() -> (libc::rlim_t, libc::rlim_t) {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) }, 0);
        (limit.rlim_cur, limit.rlim_max)
    }

    #[test]
    fn the_soft_limit_on_open_files_becomes_the_hard_one() {
        // Lowered first (as a shell's `ulimit -Sn` would), so the raise is seen; to half the
        // hard limit at most, and not under 2048 (what the tests running beside this one
        // may hold open meanwhile).
        let (_, hard) = limit();
        if hard == libc::RLIM_INFINITY || hard < 4096 {
            return; // Linux refuses a soft limit above its nr_open, which this would ask
        }
        let low = libc::rlimit { rlim_cur: (hard / 2).min(1 << 14), rlim_max: hard };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const low) }, 0);
        raise_soft_to_hard();
        assert_eq!(limit(), (hard, hard));
    }
}
