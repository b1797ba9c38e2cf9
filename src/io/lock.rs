//! The cross-process writer lock: an OS advisory lock (`flock`) on `atlas.lock`.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{io_err, open_own};
use crate::error::{Error, Result};

/// Attempts to take a busy lock, and the pause between them (about 100 ms in all).
const RETRIES: u32 = 20;
const RETRY_PAUSE: Duration = Duration::from_millis(5);

/// Held while a handle has uncommitted changes; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct WriterLock {
    file: File,
    path: PathBuf,
}

impl WriterLock {
    /// Takes the lock on `lock_path` without waiting.
    ///
    /// # Errors
    /// [`Error::Locked`] naming `store_dir` when another handle holds it.
    pub(crate) fn try_acquire(lock_path: &Path, store_dir: &Path) -> Result<Self> {
        let mut attempt = 0;
        loop {
            let file = open_lock_file(lock_path)?;
            // A lock that is busy is tried again for a moment before giving up: between a
            // fork and its exec, a child process briefly holds a copy of every open file,
            // lock files of this process's handles included, and so their locks.
            let lock = loop {
                attempt += 1;
                match file.try_lock() {
                    Ok(()) => break Self { file, path: lock_path.to_path_buf() },
                    Err(TryLockError::WouldBlock) if attempt < RETRIES => std::thread::sleep(RETRY_PAUSE),
                    Err(TryLockError::WouldBlock) => return Err(Error::Locked { path: PathBuf::from(store_dir) }),
                    Err(TryLockError::Error(e)) => return Err(io_err(lock_path, "lock")(e)),
                }
            };
            // A file removed or replaced between its open and its lock excludes no one:
            // locked again, on the file at the path.
            if lock.is_at_path()? {
                return Ok(lock);
            }
            if attempt >= RETRIES {
                return Err(Error::Locked { path: PathBuf::from(store_dir) });
            }
        }
    }

    /// Whether the locked file is still the one at its path: a lock on a file that was
    /// removed (or replaced) excludes no one, since another writer locks the file there.
    ///
    /// # Errors
    /// [`Error::Io`] if the path or the file cannot be examined.
    pub(crate) fn is_at_path(&self) -> Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let held = self.file.metadata().map_err(io_err(&self.path, "stat"))?;
        match std::fs::symlink_metadata(&self.path) {
            Ok(there) => Ok((there.dev(), there.ino()) == (held.dev(), held.ino())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&self.path, "stat")(e)),
        }
    }
}

/// Opens (or creates) `path` for writing, never through a symlink; read-only where this
/// user may not write it (a store shared by a group, the file made by another member):
/// `flock` takes a read-only descriptor, though NFS's emulation of it wants a writable one.
fn open_lock_file(path: &Path) -> Result<File> {
    let writable = open_own(path, OpenOptions::new().create(true).truncate(false).write(true), "open");
    match writable {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::PermissionDenied => {
            open_own(path, OpenOptions::new().read(true), "open")
        }
        opened => opened,
    }
    .map(|(file, _)| file)
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

    #[test]
    fn a_lock_knows_when_its_file_is_removed_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("atlas.lock");
        let first = WriterLock::try_acquire(&path, dir.path()).unwrap();
        assert!(first.is_at_path().unwrap());
        std::fs::remove_file(&path).unwrap();
        assert!(!first.is_at_path().unwrap());
        // Another writer now locks a new file at the path, which the first lock does not hold.
        let second = WriterLock::try_acquire(&path, dir.path()).unwrap();
        assert!(second.is_at_path().unwrap() && !first.is_at_path().unwrap());
        drop(second);
        std::fs::rename(dir.path().join("atlas.lock"), dir.path().join("moved")).unwrap();
        std::fs::write(&path, b"").unwrap();
        assert!(!first.is_at_path().unwrap());
    }

    #[test]
    fn a_symlink_in_place_of_the_lock_file_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        let path = dir.path().join("atlas.lock");
        std::os::unix::fs::symlink(&outside, &path).unwrap();
        let taken = WriterLock::try_acquire(&path, dir.path());
        assert!(
            matches!(&taken, Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ELOOP)),
            "{taken:?}"
        );
        assert!(!outside.exists(), "nothing made through the link");
    }

    #[test]
    fn a_lock_file_without_write_permission_still_locks() {
        // Root may write any file: the read-only open is not reached, so this says nothing.
        if std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("atlas.lock");
        drop(WriterLock::try_acquire(&path, dir.path()).unwrap());
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
        let first = WriterLock::try_acquire(&path, dir.path()).unwrap();
        assert!(matches!(WriterLock::try_acquire(&path, dir.path()), Err(Error::Locked { .. })));
        drop(first);
    }
}
