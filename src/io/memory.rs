//! New large buffers, with advice to the kernel on how to back them.
//!
//! A new buffer of tens of MiB is untouched memory: whatever fills it takes one page
//! fault (and a zeroed 4 KiB page) per 4 KiB, which costs more than decoding into it. Asking
//! for transparent huge pages makes that one fault per 2 MiB, as numpy does for its own
//! arrays of 4 MiB or more. Where the kernel has huge pages off, the advice does nothing.

/// Buffers smaller than this are left alone (numpy's threshold).
const MIN_BYTES: usize = 4 << 20;

/// The huge page size the advice aligns to (x86-64 and aarch64 with 4 KiB pages).
const HUGE_PAGE_BYTES: usize = 2 << 20;

/// A buffer of `len` copies of `T::default()` (zeroed memory for the numeric types),
/// backed by huge pages where it is large: for a read's output, or a block's bytes.
pub(crate) fn zeroed_buffer<T: Clone + Default>(len: usize) -> Vec<T> {
    let mut buf = vec![T::default(); len];
    advise_huge_pages(&mut buf);
    buf
}

/// Asks for huge pages behind the whole 2 MiB pages inside `buf`, if it is large. Call it
/// on a new buffer before writing to it; it never changes the contents.
fn advise_huge_pages<T>(buf: &mut [T]) {
    let len = size_of_val(buf);
    if len < MIN_BYTES {
        return;
    }
    let start = buf.as_mut_ptr().cast::<u8>();
    let offset = start.align_offset(HUGE_PAGE_BYTES);
    let aligned_len = (len.saturating_sub(offset) / HUGE_PAGE_BYTES) * HUGE_PAGE_BYTES;
    if offset == usize::MAX || aligned_len == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: the range lies inside `buf`, which this call borrows mutably, starts on a
    // page boundary (a 2 MiB one) and is a whole number of pages. MADV_HUGEPAGE only changes
    // how the kernel backs the range, never its contents. Its result is advice: a kernel
    // without transparent huge pages answers EINVAL, and the buffer works the same.
    unsafe {
        libc::madvise(start.add(offset).cast(), aligned_len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_keeps_contents_of_small_large_and_unaligned_buffers() {
        for len in [0u32, 1000, (8 << 20) + 12_345] {
            let mut buf: Vec<u32> = (0..len).collect();
            let expected = buf.clone();
            advise_huge_pages(&mut buf);
            advise_huge_pages(&mut buf[len.min(3) as usize..]);
            assert_eq!(buf, expected);
        }
        let mut zeroed: Vec<u8> = zeroed_buffer(16 << 20);
        zeroed[5 << 20] = 7;
        assert_eq!(zeroed.iter().map(|&b| u64::from(b)).sum::<u64>(), 7);
    }
}
