//! Read-only memory maps of committed fragment files.

use std::fs::OpenOptions;
use std::path::Path;

use memmap2::Mmap;

use super::{FileReader, io_err, open_regular};
use crate::error::Result;

/// A whole file mapped read-only, and open for `pread` too. An empty file maps to an empty
/// slice.
#[derive(Debug)]
pub(crate) struct MappedFile {
    map: Option<Mmap>,
    reader: FileReader,
}

impl MappedFile {
    /// Maps `path` read-only.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        super::raise_open_files_limit(); // one descriptor per fragment stays open
        let (file, len) = open_regular(path, OpenOptions::new().read(true))?;
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
        Ok(Self { map, reader: FileReader { file, path: path.to_path_buf() } })
    }

    /// The file's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Reads `buf.len()` bytes at `offset` with `pread`: copied from the page cache, not
    /// mapped, so they count once in the process's memory, in `buf`.
    pub(crate) fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.reader.read_at(offset, buf)
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        self.reader.path()
    }
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
        mapped.read_at(1, &mut buf).unwrap();
        assert_eq!(&buf, b"ell");
        let empty = dir.path().join("b");
        std::fs::write(&empty, b"").unwrap();
        assert!(MappedFile::open(&empty).unwrap().bytes().is_empty());
    }
}
