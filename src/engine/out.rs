//! [`SharedOut`]: one output buffer written by many worker threads at once, each chunk
//! operation to its own elements. The plan gives every output element to exactly one
//! operation, so the writes never overlap; the borrow checker cannot see that across
//! threads, hence the small `unsafe` here.

use std::marker::PhantomData;

use crate::io::Streamer;

/// An output of this many bytes or more is copied into with streaming stores (see
/// `io::Streamer`): it does not stay in the cache for its reader anyway. Smaller ones, which
/// do, were measured faster with ordinary stores (BENCHMARKS.md, seventh round).
const STREAM_BYTES: usize = 8 << 20;

/// A mutable byte buffer shared by the workers of one read.
pub(crate) struct SharedOut<'a> {
    ptr: *mut u8,
    len: usize,
    _buffer: PhantomData<&'a mut [u8]>,
}

// SAFETY: the buffer is only reached through the `unsafe` methods below, whose callers
// promise disjoint ranges; with that promise, sharing across threads is like splitting it.
unsafe impl Send for SharedOut<'_> {}
// SAFETY: as above.
unsafe impl Sync for SharedOut<'_> {}

impl<'a> SharedOut<'a> {
    /// Wraps `buffer` for the duration of the borrow.
    pub(crate) fn new(buffer: &'a mut [u8]) -> Self {
        Self { ptr: buffer.as_mut_ptr(), len: buffer.len(), _buffer: PhantomData }
    }

    /// A copier for rows of this output, streaming if the output is large.
    pub(crate) fn streamer(&self) -> Streamer {
        Streamer::new(self.len >= STREAM_BYTES)
    }

    /// The bytes `offset .. offset + len` as a mutable slice.
    ///
    /// # Safety
    /// While the slice lives, no other call may touch any byte of that range.
    ///
    /// # Panics
    /// If the range is outside the buffer.
    #[allow(clippy::mut_from_ref)] // the point of the type; disjointness is the caller's contract
    pub(crate) unsafe fn slice_mut(&self, offset: usize, len: usize) -> &mut [u8] {
        assert!(offset.checked_add(len).is_some_and(|end| end <= self.len), "range outside output");
        // SAFETY: in bounds (checked above) and not aliased (the caller's contract).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(offset), len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn disjoint_ranges_written_from_many_threads_all_land() {
        let mut buffer = vec![0u8; 1000];
        let out = SharedOut::new(&mut buffer);
        (0..100usize).into_par_iter().for_each(|i| {
            // SAFETY: range i*10 .. i*10+10 belongs to iteration i alone.
            let slice = unsafe { out.slice_mut(i * 10, 10) };
            slice.fill(u8::try_from(i).unwrap());
        });
        for (i, chunk) in buffer.chunks(10).enumerate() {
            assert!(chunk.iter().all(|&b| usize::from(b) == i));
        }
    }
}
