//! Copies into memory that is not read again soon, with non-temporal ("streaming") stores.
//!
//! A read of a large array writes its output once and leaves it to the caller. Ordinary
//! stores first bring every output cache line in from memory (a read for ownership), then
//! write it back: twice the traffic of the copy itself. A chunk of 64^3 copied out in rows
//! of 128-256 bytes pays that for every line, where a `memcpy` of a long contiguous range
//! avoids it; on this project's machine the row copies ran at 5-7 GB/s with ordinary stores
//! and 13-18 GB/s with streaming ones (BENCHMARKS.md, seventh round). The stores bypass the
//! cache, so they only pay for outputs larger than it: the caller decides.
//!
//! Streaming stores are weakly ordered: [`Streamer`] fences them when it is dropped,
//! before the thread that wrote them hands the output on. It holds one of the crate's few
//! `unsafe` blocks (see docs/ARCHITECTURE.md); off x86-64 it copies with ordinary stores.

use super::Checksummer;

/// Copies with streaming stores when asked to, and makes them visible when dropped. Keep
/// one for all the copies of one task on one thread.
pub(crate) struct Streamer {
    streaming: bool,
    /// Stream only the whole cache lines of each copy (see [`Streamer::whole_lines`]).
    whole_lines: bool,
    /// Copies made by [`Streamer::copy_hashing`], added to [`ROWS_HASHED_AS_COPIED`] when
    /// dropped (feature `test-util`).
    #[cfg(feature = "test-util")]
    hashed_as_copied: std::cell::Cell<u64>,
}

impl Streamer {
    /// A copier that streams when `streaming` is set and copies as usual otherwise.
    pub(crate) fn new(streaming: bool) -> Self {
        #[cfg(feature = "test-util")]
        let hashed_as_copied = std::cell::Cell::new(0);
        Self {
            streaming,
            whole_lines: false,
            #[cfg(feature = "test-util")]
            hashed_as_copied,
        }
    }

    /// This copier, streaming only the whole cache lines of each copy and writing the
    /// partial lines at its ends with ordinary stores: for copies whose partial lines are
    /// completed by another task's copies, later. Streamed, such a line leaves the
    /// processor's write-combining buffer half full and goes to memory in parts; rows of
    /// 512 bytes, half of each output row, read 10% slower into an output that does not
    /// start on a line, and a `read_boxes` call copying box rows cut between chunks (parts
    /// of 4-124 bytes) ran at 0.5 GB/s per core.
    pub(crate) fn whole_lines(mut self, whole_lines: bool) -> Self {
        self.whole_lines = whole_lines;
        self
    }

    /// Copies `src` into `dst` (the same length).
    ///
    /// # Panics
    /// If the lengths differ.
    #[inline]
    pub(crate) fn copy(&self, dst: &mut [u8], src: &[u8]) {
        if self.streaming {
            stream_copy(dst, src, self.whole_lines);
        } else {
            dst.copy_from_slice(src);
        }
    }

    /// Copies `src` into `dst` as [`Streamer::copy`] does and adds it to `summer`, in one
    /// pass over it, where it can: a streaming copier, `dst` starting on the boundary its
    /// stores need, `src` whole 64-byte stripes continuing whole stripes, and AVX2.
    /// `more_follows` promises that more bytes will be added to `summer` before it
    /// finishes. A copy out of a block being verified then costs about what the copy alone
    /// does, where hashing the block behind the copy, from cache, took up to a quarter longer
    /// (BENCHMARKS.md, forty-sixth round). Returns false, having done neither, where it
    /// cannot.
    #[inline]
    pub(crate) fn copy_hashing(
        &self,
        dst: &mut [u8],
        src: &[u8],
        summer: &mut Checksummer,
        more_follows: bool,
    ) -> bool {
        let boundary = if self.whole_lines { LINE } else { LANE };
        let done = self.streaming
            && dst.as_ptr().addr().is_multiple_of(boundary)
            && summer.update_streaming(src, dst, more_follows);
        #[cfg(feature = "test-util")]
        self.hashed_as_copied.set(self.hashed_as_copied.get() + u64::from(done));
        done
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        if self.streaming {
            fence();
        }
        #[cfg(feature = "test-util")]
        ROWS_HASHED_AS_COPIED.fetch_add(self.hashed_as_copied.get(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// How many rows (or parts of rows) [`Streamer::copy_hashing`] has copied and hashed, in
/// every thread, counted as each copier is dropped (feature `test-util`): a test reads it
/// to see that a read took that way.
#[cfg(feature = "test-util")]
pub(crate) static ROWS_HASHED_AS_COPIED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes per streaming store. The copy loop makes four per turn: a cache line.
const LANE: usize = 16;

/// Bytes of a cache line.
const LINE: usize = 4 * LANE;

/// Copies `src` into `dst`: every 16-byte-aligned 16 bytes of `dst` (with `whole_lines`,
/// every aligned 64: whole cache lines) with a streaming store, the few bytes before the
/// first and after the last with ordinary ones. Without `whole_lines`, a row's partial
/// lines are completed by the rows around it, copied right after, so the processor's
/// write-combining buffers still send whole lines.
///
/// Measured (a 64^3 chunk copied out in 128-byte rows): a line per turn of the loop ran at
/// 14-18 GB/s, one lane per turn at 8-15; a `memcpy` call for the empty head or tail of
/// every row, even of no bytes, brought it down to 8.
#[cfg(target_arch = "x86_64")]
#[inline]
fn stream_copy(dst: &mut [u8], src: &[u8], whole_lines: bool) {
    assert_eq!(dst.len(), src.len(), "a copy between slices of one length");
    let head = dst.as_ptr().align_offset(if whole_lines { LINE } else { LANE }).min(dst.len());
    let (dst_head, dst_rest) = dst.split_at_mut(head);
    let (src_head, src_rest) = src.split_at(head);
    copy_short(dst_head, src_head);
    let (dst_rest, src_rest) = stream_groups::<4>(dst_rest, src_rest);
    let (dst_tail, src_tail) = if whole_lines { (dst_rest, src_rest) } else { stream_groups::<1>(dst_rest, src_rest) };
    copy_short(dst_tail, src_tail);
}

/// Streams the whole groups of `N` lanes at the start of `src` into `dst`, which starts on
/// a lane boundary; returns the rest of both.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::cast_ptr_alignment)] // `dst` is aligned to a lane; `src` is read unaligned
fn stream_groups<'d, 's, const N: usize>(dst: &'d mut [u8], src: &'s [u8]) -> (&'d mut [u8], &'s [u8]) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};

    let mut dst_groups = dst.chunks_exact_mut(N * LANE);
    let mut src_groups = src.chunks_exact(N * LANE);
    for (d, s) in (&mut dst_groups).zip(&mut src_groups) {
        let (d, s) = (d.as_mut_ptr().cast::<__m128i>(), s.as_ptr().cast::<__m128i>());
        // SAFETY: `d` is `N` writable lanes of 16 bytes, aligned to 16 (the caller's
        // promise, kept by every whole group before it), and `s` `N` readable ones (read
        // unaligned). SSE2, which both instructions need, is part of x86-64. The stores are
        // fenced by `Streamer`'s drop (`fence`).
        unsafe {
            let lanes: [__m128i; N] = std::array::from_fn(|i| _mm_loadu_si128(s.add(i)));
            for (i, lane) in lanes.into_iter().enumerate() {
                _mm_stream_si128(d.add(i), lane);
            }
        }
    }
    (dst_groups.into_remainder(), src_groups.remainder())
}

/// Copies the few bytes around a streamed range, calling nothing when there are none.
#[cfg(target_arch = "x86_64")]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    if !dst.is_empty() {
        dst.copy_from_slice(src);
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn stream_copy(dst: &mut [u8], src: &[u8], _whole_lines: bool) {
    dst.copy_from_slice(src);
}

/// Orders this thread's streaming stores before its later stores, as Rust's memory model
/// requires before anything else reads the bytes they wrote.
fn fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `sfence` needs SSE, part of x86-64; it only orders stores.
    unsafe {
        std::arch::x86_64::_mm_sfence();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_copies_of_any_length_and_alignment_land_whole() {
        let src: Vec<u8> = (0..600u32).map(|i| (i * 7 % 251) as u8).collect();
        for (streaming, whole_lines) in [(false, false), (true, false), (true, true)] {
            for offset in 0..=LINE {
                for len in [0, 1, 15, 16, 17, 63, 64, 65, 128, 129, 300, 511] {
                    let mut dst = vec![0u8; 600];
                    {
                        let streamer = Streamer::new(streaming).whole_lines(whole_lines);
                        streamer.copy(&mut dst[offset..offset + len], &src[3..3 + len]);
                    }
                    assert_eq!(&dst[offset..offset + len], &src[3..3 + len], "offset {offset} len {len}");
                    assert!(dst[..offset].iter().chain(&dst[offset + len..]).all(|&b| b == 0));
                }
            }
        }
    }
}
