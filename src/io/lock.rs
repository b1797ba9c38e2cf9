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
    /// The process that took the lock. A `flock` belongs to the open file, which a forked
    /// child shares: closing the parent's descriptor would leave the lock held by the
    /// child's copy for as long as the child lives (a multiprocessing pool forked while
    /// changes were pending kept the parent's own next change out).
    pid: u32,
}

impl Drop for WriterLock {
    /// Unlocks the file for every copy of its descriptor, in the process that took the
    /// lock; a forked child's copy only closes (the lock is the parent's).
    fn drop(&mut self) {
        if self.pid == std::process::id()
            && let Err(e) = self.file.unlock()
        {
            // Closing the descriptor below still releases it once no child holds a copy.
            log::warn!("atlas: cannot unlock {}: {e}", self.path.display());
        }
    }
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
                    Ok(()) => break Self { file, path: lock_path.to_path_buf(), pid: std::process::id() },
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
        Err(denied @ Error::Io { .. }) if is_permission_denied(&denied) => {
            match open_own(path, OpenOptions::new().read(true), "open") {
                // No file to open read-only: the directory refused its creation, which is
                // what the caller needs to hear (not "no such file").
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Err(denied),
                opened => opened,
            }
        }
        opened => opened,
    }
    .map(|(file, _)| file)
}

fn is_permission_denied(error: &Error) -> bool {
    matches!(error, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied)
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
    fn dropping_a_lock_unlocks_copies_of_its_descriptor_unless_another_process_took_it() {
        // A copy of the descriptor shares the open file and its lock, as a forked child's does.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("atlas.lock");
        let lock = WriterLock::try_acquire(&path, dir.path()).unwrap();
        let childs_copy = lock.file.try_clone().unwrap();
        drop(lock);
        let again = WriterLock::try_acquire(&path, dir.path()).expect("a copy kept the dropped lock");
        drop(childs_copy);
        // In a child (another process took the lock), dropping leaves the lock to the parent.
        let mut parents = again;
        let parents_copy = parents.file.try_clone().unwrap();
        parents.pid = 0;
        drop(parents);
        assert!(matches!(WriterLock::try_acquire(&path, dir.path()), Err(Error::Locked { .. })));
        drop(parents_copy);
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
    fn a_directory_that_refuses_the_lock_file_says_permission_denied() {
        // Root may write anywhere: nothing is refused, so this says nothing.
        if std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
        let taken = WriterLock::try_acquire(&dir.path().join("atlas.lock"), dir.path());
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        assert!(matches!(&taken, Err(e) if is_permission_denied(e)), "{taken:?}");
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
