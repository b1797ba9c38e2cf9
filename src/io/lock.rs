//! The cross-process writer lock: an OS advisory lock (`flock`) on `atlas.lock`.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::io_err;
use crate::error::{Error, Result};

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
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path)
            .map_err(io_err(lock_path, "open lock file"))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(Error::Locked { path: PathBuf::from(store_dir) }),
            Err(TryLockError::Error(e)) => Err(io_err(lock_path, "lock")(e)),
        }
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
