//! Read-only memory maps of committed fragment files; the file is closed once mapped and
//! opened again only for a `pread` ([`MappedFile::reopen`]).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::{FileReader, io_err, open_regular};
use crate::error::Result;

/// A whole file mapped read-only. An empty file maps to an empty slice. No descriptor is
/// kept open: the map holds the file (removed, too), and a store flushed thousands of
/// times without a compaction would otherwise need a descriptor per fragment and handle,
/// past the process's limit, where it could no longer be opened or compacted.
#[derive(Debug)]
pub(crate) struct MappedFile {
    map: Option<Mmap>,
    path: PathBuf,
    /// The mapped file's device and inode, which tell it from another file put at `path`.
    identity: (u64, u64),
}

impl MappedFile {
    /// Maps `path` read-only.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let (file, len) = open_regular(path, OpenOptions::new().read(true))?;
        let identity = identity(&file).map_err(io_err(path, "stat"))?;
        let map = if len == 0 {
            None // mmap of length 0 is an error on Linux
        } else {
            // SAFETY: the mapped bytes must not change while mapped. Atlas never modifies a
            // fragment once committed (fragments are immutable, replaced only by new files,
            // and a removed file stays readable through its map). Another program changing
            // the file would be undefined behaviour and truncating it raises SIGBUS on the
            // pages cut: both are excluded by the store's contract (FORMAT.md section 5). The
            // bounds checks of every read through the map guard against damaged offsets only.
            Some(unsafe { Mmap::map(&file) }.map_err(io_err(path, "mmap"))?)
        };
        Ok(Self { map, path: path.to_path_buf(), identity })
    }

    /// The file's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// The file opened again for `pread` (bytes copied from the page cache, not mapped, so
    /// they count once in the process's memory), if it is still the file mapped (the same
    /// device, inode and length): `None` where a compaction has removed it since, something
    /// else was put in its place, or no descriptor is left; then read from
    /// [`MappedFile::bytes`].
    pub(crate) fn reopen(&self) -> Option<FileReader> {
        let (file, len) = open_regular(&self.path, OpenOptions::new().read(true)).ok()?;
        let same = len == self.bytes().len() as u64 && identity(&file).is_ok_and(|id| id == self.identity);
        same.then(|| FileReader { file, path: self.path.clone() })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// A file's device and inode.
fn identity(file: &std::fs::File) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    file.metadata().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_file_contents_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let full = dir.path().join("a");
        std::fs::write(&full, b"hello").unwrap();
        let mapped = MappedFile::open(&full).unwrap();
        assert_eq!(mapped.bytes(), b"hello");
        let mut buf = [0; 3];
        mapped.reopen().unwrap().read_at(1, &mut buf).unwrap();
        assert_eq!(&buf, b"ell");
        // Removed, or replaced by a file of another length: the map still reads it.
        std::fs::remove_file(&full).unwrap();
        assert!(mapped.reopen().is_none() && mapped.bytes() == b"hello");
        std::fs::write(&full, b"other bytes").unwrap();
        assert!(mapped.reopen().is_none());
        // Or by another file of the same length.
        std::fs::write(&full, b"HELLO").unwrap();
        assert!(mapped.reopen().is_none() && mapped.bytes() == b"hello");
        let empty = dir.path().join("b");
        std::fs::write(&empty, b"").unwrap();
        assert!(MappedFile::open(&empty).unwrap().bytes().is_empty());
    }
}
