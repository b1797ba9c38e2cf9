//! Starting the writeback of a file range early: Linux `sync_file_range` with
//! `SYNC_FILE_RANGE_WRITE` queues the range's dirty pages for writing and returns at once,
//! so the disk works while the writer goes on encoding, and the fsync at the end finds
//! most of the file already written. A hint: it makes nothing durable, and its errors are
//! ignored (the fsync reports real ones).
//!
//! This module holds one of the crate's few `unsafe` blocks: the system call.

use std::fs::File;

/// Starts writing back bytes `offset .. offset + len` of `file`.
#[cfg(target_os = "linux")]
pub(crate) fn start(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else { return };
    // SAFETY: a plain system call on a file descriptor that `file` keeps open; no memory
    // is passed or returned.
    let _ignored = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
}

/// Elsewhere the fsync does all the work.
#[cfg(not(target_os = "linux"))]
pub(crate) fn start(_file: &File, _offset: u64, _len: u64) {}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, Write};

    use super::start;

    #[test]
    fn a_writeback_hint_over_any_range_changes_no_byte() {
        let mut file = tempfile::tempfile().unwrap();
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&bytes).unwrap();
        // Inside, across the end, past it, empty, one whose end overflows i64 (the kernel
        // checks it) and one whose length does not fit (never sent).
        for (offset, len) in [(0, 4096), (90_000, 20_000), (200_000, 10), (5, 0), (1, i64::MAX as u64), (1, u64::MAX)] {
            start(&file, offset, len);
        }
        file.sync_all().unwrap();
        let mut back = Vec::new();
        file.rewind().unwrap();
        file.read_to_end(&mut back).unwrap();
        assert_eq!(back, bytes);
    }
}
