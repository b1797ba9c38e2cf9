//! The cross-process writer lock: an OS advisory lock (`flock`) on `atlas.lock`.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{io_err, open_regular};
use crate::error::{Error, Result};

/// Attempts to take a busy lock, and the pause between them (about 100 ms in all).
const RETRIES: u32 = 20;
const RETRY_PAUSE: Duration = Duration::from_millis(5);

/// Held while a handle has uncommitted changes; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the lock on `lock_path` without waiting.
    ///
    /// # Errors
    /// [`Error::Locked`] naming `store_dir` when another handle holds it.
    pub(crate) fn try_acquire(lock_path: &Path, store_dir: &Path) -> Result<Self> {
        let (file, _) = open_regular(lock_path, OpenOptions::new().create(true).truncate(false).write(true))?;
        // A lock that is busy is tried again for a moment before giving up: between a fork
        // and its exec, a child process briefly holds a copy of every open file, lock files
        // of this process's handles included, and so their locks.
        for attempt in 1..=RETRIES {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(TryLockError::WouldBlock) if attempt < RETRIES => std::thread::sleep(RETRY_PAUSE),
                Err(TryLockError::WouldBlock) => break,
                Err(TryLockError::Error(e)) => return Err(io_err(lock_path, "lock")(e)),
            }
        }
        Err(Error::Locked { path: PathBuf::from(store_dir) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_same_file_is_refused_until_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("atlas.lock");
        let first = WriterLock::try_acquire(&path, dir.path()).unwrap();
        let second = WriterLock::try_acquire(&path, dir.path());
        assert!(matches!(second, Err(Error::Locked { .. })));
        drop(first);
        WriterLock::try_acquire(&path, dir.path()).unwrap();
    }
}
