//! Room `io`: every syscall Atlas makes. Files, directories, the writer lock, mmap and
//! memory advice; streaming copies into memory that bypass the cache (`stream.rs`); and
//! the xxh3 checksums that guard the bytes of files (`checksum.rs`, `xxh3.rs`).
//!
//! Nothing else in the crate touches `std::fs`. Each function turns an OS error into
//! [`Error::Io`] naming the path and the operation, so callers above never see bare
//! `std::io::Error`s.

mod checksum;
pub(crate) mod fault;
mod lock;
mod memory;
mod mmap;
mod runs;
mod stream;
mod writeback;
mod xxh3;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub(crate) use checksum::{Checksummer, checksum};
pub(crate) use lock::WriterLock;
pub(crate) use memory::zeroed_buffer;
pub(crate) use mmap::MappedFile;
pub(crate) use runs::in_runs;
#[cfg(feature = "test-util")]
pub(crate) use stream::ROWS_HASHED_AS_COPIED;
pub(crate) use stream::Streamer;

/// Wraps an OS error with the path and operation it came from.
pub(crate) fn io_err<'p>(path: &'p Path, op: &'static str) -> impl FnOnce(std::io::Error) -> Error + 'p {
    move |source| Error::Io { path: path.to_path_buf(), op, source }
}

/// Names of the entries of `dir` (files and folders), in no particular order.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir, "list"))? {
        let entry = entry.map_err(io_err(dir, "list"))?;
        // A name that is not UTF-8 was not written by Atlas; it is simply not ours.
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// Whether `path` exists, a dangling link included (links are not followed). A path that
/// cannot be looked up (a parent without search permission) reads as missing: the create
/// that then follows fails with the OS's error, so nothing is overwritten.
pub(crate) fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Whether `path` is a directory (through links).
pub(crate) fn is_dir(path: &Path) -> bool {
    path.is_dir()
}

/// Whether `path` is a symbolic link.
pub(crate) fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// `path` with every link and `..` resolved.
pub(crate) fn canonicalize(path: &Path) -> Result<PathBuf> {
    fs::canonicalize(path).map_err(io_err(path, "resolve"))
}

/// Whether `a` and `b` are the same file or directory (device and inode, through links);
/// false when either cannot be looked up.
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// The directory holding `path`'s entry: its parent, or `.` for a bare name.
fn parent_dir(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Creates `dir` and its missing parents, durably: the directory holding each one made is
/// fsynced, so none of their entries is lost in a crash (a relative path's first directory
/// is held by the working directory).
pub(crate) fn create_dir_all(dir: &Path) -> Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !exists(d)).collect();
    fault::check(dir, "create directory")?;
    fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))?;
    for made in missing.iter().rev() {
        sync_dir(parent_dir(made))?;
    }
    Ok(())
}

/// Creates the directory `dir`, failing if it exists (an `Io` error of kind
/// `AlreadyExists`): a claim on the name that two callers cannot both win.
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    fault::check(dir, "create directory")?;
    fs::create_dir(dir).map_err(io_err(dir, "create directory"))
}

/// Reads a whole file, refusing one longer than `max_bytes` before allocating.
///
/// # Errors
/// [`Error::LimitExceeded`] for a longer file; [`Error::Io`].
pub(crate) fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let (file, len) = open_regular(path, OpenOptions::new().read(true))?;
    if len > max_bytes {
        let what = "file length".to_string();
        return Err(Error::LimitExceeded { path: path.to_path_buf(), what, limit: max_bytes, found: len });
    }
    let mut bytes = vec![0; usize::try_from(len).expect("len <= max_bytes fits in memory")];
    file.read_exact_at(&mut bytes, 0).map_err(io_err(path, "read"))?;
    Ok(bytes)
}

/// Opens `path` with `options` and returns it with its length, refusing anything but a
/// regular file as `Corrupt`. Opened non-blocking, so that a fifo put in a store's place
/// does not hang the open (a write-only open of one without a reader fails at once).
pub(crate) fn open_regular(path: &Path, options: &mut OpenOptions) -> Result<(File, u64)> {
    open_checked(path, options.custom_flags(libc::O_NONBLOCK), "open")
}

/// As [`open_regular`], for a file Atlas writes at a name of its own (the lock file, the
/// metadata's temp file): a symlink in its place is refused (`ELOOP`), not followed to
/// create or truncate a file outside the store.
pub(crate) fn open_own(path: &Path, options: &mut OpenOptions, op: &'static str) -> Result<(File, u64)> {
    open_checked(path, options.custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW), op)
}

fn open_checked(path: &Path, options: &OpenOptions, op: &'static str) -> Result<(File, u64)> {
    let file = options.open(path).map_err(io_err(path, op))?;
    let meta = file.metadata().map_err(io_err(path, "stat"))?;
    if !meta.is_file() {
        return Err(Error::corrupt(path, "not a regular file"));
    }
    Ok((file, meta.len()))
}

/// Removes a file; one that is already gone is not an error.
pub(crate) fn remove_file(path: &Path) -> Result<()> {
    fault::check(path, "remove")?;
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(path, "remove")(e)),
        _ => Ok(()),
    }
}

/// Removes the directory `dir` if it is empty.
pub(crate) fn remove_empty_dir(dir: &Path) -> Result<()> {
    fault::check(dir, "remove directory")?;
    fs::remove_dir(dir).map_err(io_err(dir, "remove directory"))
}

/// Makes the directory entries of `dir` durable (new, renamed and removed names).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fault::check(dir, "fsync directory")?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir, "fsync directory"))
}

/// Replaces `dir/name` with `bytes` atomically: a temp file is written and fsynced, then
/// renamed over `name`. A crash at any step leaves either the old file or the new one, never
/// a torn one. The rename is durable once the caller fsyncs `dir` ([`sync_dir`]). A temp
/// file whose write, fsync or rename failed is removed (if it can be), so that a full disk
/// gets its space back.
pub(crate) fn replace_file(dir: &Path, name: &str, tmp_name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(tmp_name);
    fault::check(&tmp, "create")?;
    let (mut file, _) = open_own(&tmp, OpenOptions::new().write(true).create(true).truncate(true), "create")?;
    let target = dir.join(name);
    let write_then_rename = || {
        fault::check_write(&tmp, bytes, |part| file.write_all(part))?;
        file.write_all(bytes).map_err(io_err(&tmp, "write"))?;
        fault::check(&tmp, "fsync")?;
        file.sync_all().map_err(io_err(&tmp, "fsync"))?;
        drop(file);
        fault::check(&target, "rename")?;
        fs::rename(&tmp, &target).map_err(io_err(&target, "rename"))
    };
    let replaced = write_then_rename();
    if replaced.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    replaced
}

/// A file being appended to: a fragment while it is written. Reads of what was already
/// appended go through `pread`, so the writer and readers share it without a cursor.
#[derive(Debug)]
pub(crate) struct AppendFile {
    file: File,
    path: PathBuf,
    len_bytes: u64,
    /// Bytes before this were handed to [`writeback::start`].
    written_back_bytes: u64,
    /// Short parts of an [`AppendFile::append_parts`], gathered.
    staging: Vec<u8>,
    /// A write failed, and may have stored part of its bytes past `len_bytes`: the next
    /// [`AppendFile::truncate`] cuts the file even to its current length.
    unknown_tail: bool,
    /// An fsync failed: every later one fails too (see [`AppendFile::sync`]).
    sync_failed: bool,
}

/// The operation named by the error of an fsync refused because an earlier one failed.
const SYNC_FAILED_BEFORE: &str = "fsync (an earlier fsync of this file failed: its bytes may not be on disk)";

/// Short parts of one append are written in runs of at most this many bytes.
const APPEND_RUN_BYTES: usize = 1 << 20;

/// Appended bytes are handed to [`writeback::start`] in runs of at least this many.
const WRITEBACK_BYTES: u64 = 4 << 20;

impl AppendFile {
    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Creates `path`, failing if it exists.
    pub(crate) fn create_new(path: PathBuf) -> Result<Self> {
        fault::check(&path, "create")?;
        let file =
            OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(io_err(&path, "create"))?;
        Ok(Self {
            file,
            path,
            len_bytes: 0,
            written_back_bytes: 0,
            staging: Vec::new(),
            unknown_tail: false,
            sync_failed: false,
        })
    }

    /// Appends `bytes`, returning the offset they start at.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<u64> {
        let offset = self.len_bytes;
        let written = self.write_at_end(bytes);
        self.unknown_tail |= written.is_err();
        written.map(|()| offset)
    }

    /// Writes `bytes` at `len_bytes`, in pieces, so that a large append's first bytes go to
    /// disk while it writes the rest.
    fn write_at_end(&mut self, bytes: &[u8]) -> Result<()> {
        let offset = self.len_bytes;
        fault::check_write(&self.path, bytes, |part| self.file.write_all_at(part, offset))?;
        for piece in bytes.chunks(WRITEBACK_BYTES as usize) {
            self.file.write_all_at(piece, self.len_bytes).map_err(io_err(&self.path, "write"))?;
            self.len_bytes += piece.len() as u64;
            if self.len_bytes >= self.written_back_bytes + WRITEBACK_BYTES {
                writeback::start(&self.file, self.written_back_bytes, self.len_bytes - self.written_back_bytes);
                self.written_back_bytes = self.len_bytes;
            }
        }
        Ok(())
    }

    /// Appends the concatenated `parts` (the rows of a block, say), returning the offset they
    /// start at. One part is written as it is; short ones are gathered into longer runs.
    pub(crate) fn append_parts(&mut self, parts: &[&[u8]]) -> Result<u64> {
        if let [part] = parts {
            return self.append(part);
        }
        let offset = self.len_bytes;
        let mut staging = std::mem::take(&mut self.staging);
        let appended = in_runs(parts.iter().copied(), &mut staging, APPEND_RUN_BYTES, |run| self.append(run).map(drop));
        self.staging = staging;
        appended.map(|()| offset)
    }

    /// Cuts the file back to `len_bytes` (dropping a tail written earlier, and whatever a
    /// failed write left past the bytes appended).
    pub(crate) fn truncate(&mut self, len_bytes: u64) -> Result<()> {
        if len_bytes < self.len_bytes || self.unknown_tail {
            let len_bytes = len_bytes.min(self.len_bytes);
            fault::check(&self.path, "truncate")?;
            self.file.set_len(len_bytes).map_err(io_err(&self.path, "truncate"))?;
            self.len_bytes = len_bytes;
            self.written_back_bytes = self.written_back_bytes.min(len_bytes);
            self.unknown_tail = false;
        }
        Ok(())
    }

    /// Bytes appended so far.
    pub(crate) fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    /// A second handle on the same file for reading what was appended, independent of
    /// this writer's borrow.
    pub(crate) fn reader(&self) -> Result<FileReader> {
        let file = self.file.try_clone().map_err(io_err(&self.path, "reopen"))?;
        Ok(FileReader { file, path: self.path.clone() })
    }

    /// Makes the contents durable, and the file's entry in its directory (the file is new).
    /// Once either fsync failed, every later call fails too, with EIO: the kernel may have
    /// dropped the pages it could not write, marked clean, and it reports that once, so a
    /// later fsync that succeeds would not mean the bytes are on disk.
    pub(crate) fn sync(&mut self) -> Result<()> {
        if self.sync_failed {
            let source = std::io::Error::from_raw_os_error(5);
            return Err(Error::Io { path: self.path.clone(), op: SYNC_FAILED_BEFORE, source });
        }
        let dir = parent_dir(&self.path);
        let synced = fault::check(&self.path, "fsync")
            .and_then(|()| self.file.sync_all().map_err(io_err(&self.path, "fsync")))
            .and_then(|()| sync_dir(dir));
        self.sync_failed = synced.is_err();
        synced
    }
}

/// A read-only handle on a file, read with `pread`.
#[derive(Debug)]
pub(crate) struct FileReader {
    file: File,
    path: PathBuf,
}

impl FileReader {
    /// Reads `buf.len()` bytes at `offset`.
    pub(crate) fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file.read_exact_at(buf, offset).map_err(io_err(&self.path, "read"))
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_at_the_temp_name_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, b"keep").unwrap();
        std::os::unix::fs::symlink(&outside, dir.path().join("f.tmp")).unwrap();
        let replaced = replace_file(dir.path(), "f", "f.tmp", b"new");
        assert!(matches!(&replaced, Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ELOOP)));
        assert_eq!(fs::read(&outside).unwrap(), b"keep", "not truncated through the link");
        assert!(!dir.path().join("f").exists());
    }

    #[test]
    fn a_temp_file_whose_rename_fails_is_removed() {
        // A directory at the target's name makes the rename fail after the temp file was
        // written and fsynced.
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("f")).unwrap();
        fs::write(dir.path().join("f/inside"), b"x").unwrap();
        let replaced = replace_file(dir.path(), "f", "f.tmp", b"new");
        assert!(matches!(&replaced, Err(Error::Io { op: "rename", .. })), "{replaced:?}");
        assert!(!dir.path().join("f.tmp").exists(), "the temp file was left");
        assert_eq!(fs::read(dir.path().join("f/inside")).unwrap(), b"x");
    }
}
