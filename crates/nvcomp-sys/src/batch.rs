//! The safe layer: chunks in device memory in, one result per chunk out.
//!
//! Callers pack their chunks into one device buffer (one host-to-device transfer) and name
//! each chunk by a byte range; these calls check the ranges against the buffers and the
//! codec's alignment rules, build nvCOMP's pointer and size arrays on the device, run one
//! batched call and wait for it.

use std::ops::Range;
use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};

use crate::error::{Error, Result};
use crate::{Algo, Nvcomp, Status};

/// What nvCOMP reported for one chunk: its decoded length, or the failure status.
pub type ChunkResult = std::result::Result<usize, Status>;

/// nvCOMP's limit on one chunk, compressed or not.
pub const MAX_CHUNK_BYTES: usize = (1 << 31) - 1;

/// Raw bytes decoded per nvCOMP call at most (one chunk more if a single chunk is larger):
/// nvCOMP's zstd decoder asks for about 3 temp bytes per raw byte, so a large read in one
/// call could exhaust device memory. 1 GiB keeps the temp buffer near 3 GiB.
pub const MAX_CALL_RAW_BYTES: usize = 1 << 30;

/// Splits chunks of `lens` raw bytes into consecutive runs of at most `budget` bytes each
/// (a chunk over the budget runs alone).
fn runs(lens: impl Iterator<Item = usize>, budget: usize) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let (mut start, mut bytes, mut count) = (0, 0usize, 0);
    for (i, len) in lens.enumerate() {
        if i > start && bytes + len > budget {
            runs.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += len;
        count = i + 1;
    }
    if count > start {
        runs.push(start..count);
    }
    runs
}

impl Nvcomp {
    /// Decompresses `input[in_ranges[i]]` into `output[out_ranges[i]]` for every `i` on
    /// `stream`, in batched calls of at most [`MAX_CALL_RAW_BYTES`] output each, and waits
    /// for them. `input` and `output` are device buffers or views of them, such as the two
    /// halves of one buffer that `CudaSlice::split_at_mut` gives.
    ///
    /// nvCOMP does not validate its input: a corrupt chunk may report success with wrong
    /// bytes. Check what it wrote (Atlas compares checksums).
    ///
    /// # Errors
    /// [`Error::InvalidBatch`] for ranges of unequal count, outside their buffer, misaligned
    /// for `algo` or over [`MAX_CHUNK_BYTES`]; [`Error::Call`]; [`Error::Cuda`].
    pub fn decompress_batch(
        &self,
        stream: &Arc<CudaStream>,
        algo: Algo,
        input: &impl DevicePtr<u8>,
        in_ranges: &[Range<usize>],
        output: &mut impl DevicePtrMut<u8>,
        out_ranges: &[Range<usize>],
    ) -> Result<Vec<ChunkResult>> {
        let align = self.decompress_alignments(algo)?;
        // nvCOMP's alignment is of device addresses: a view's own start counts.
        let (in_base, out_base) = (input.device_ptr(stream).0, output.device_ptr_mut(stream).0);
        check_ranges("input", in_ranges, (in_base, input.len()), align.input)?;
        check_ranges("output", out_ranges, (out_base, output.len()), align.output)?;
        if in_ranges.len() != out_ranges.len() {
            return Err(Error::InvalidBatch(format!("{} inputs, {} outputs", in_ranges.len(), out_ranges.len())));
        }
        let mut results = Vec::with_capacity(in_ranges.len());
        let mut temp = None;
        for run in runs(out_ranges.iter().map(ExactSizeIterator::len), MAX_CALL_RAW_BYTES) {
            let call = (&in_ranges[run.clone()], &out_ranges[run]);
            results.extend(self.decompress_call(stream, algo, (input, output), call, &mut temp)?);
        }
        Ok(results)
    }

    /// One batched decompression call (checked ranges), reusing `temp` when it is large
    /// enough.
    fn decompress_call(
        &self,
        stream: &Arc<CudaStream>,
        algo: Algo,
        (input, output): (&impl DevicePtr<u8>, &mut impl DevicePtrMut<u8>),
        (in_ranges, out_ranges): (&[Range<usize>], &[Range<usize>]),
        temp: &mut Option<CudaSlice<u8>>,
    ) -> Result<Vec<ChunkResult>> {
        let n = in_ranges.len();
        let max_chunk = out_ranges.iter().map(ExactSizeIterator::len).max().unwrap_or(0);
        let total = out_ranges.iter().map(ExactSizeIterator::len).sum();
        let temp_bytes = self.decompress_temp_bytes(algo, n, max_chunk, total)?;
        if temp.as_ref().is_none_or(|t| t.len() < temp_bytes.max(1)) {
            *temp = None; // free the smaller one first
            // SAFETY: nvCOMP's scratch space: written before it is read.
            *temp = Some(unsafe { stream.alloc::<u8>(temp_bytes.max(1)) }?);
        }
        let temp = temp.as_mut().expect("allocated above");

        let (in_base, in_guard) = input.device_ptr(stream);
        let (out_base, out_guard) = output.device_ptr_mut(stream);
        // One upload: compressed pointers, compressed lengths, capacities, output pointers.
        let mut table = Vec::with_capacity(4 * n);
        table.extend(in_ranges.iter().map(|r| in_base + r.start as u64));
        table.extend(in_ranges.iter().map(|r| r.len() as u64));
        table.extend(out_ranges.iter().map(|r| r.len() as u64));
        table.extend(out_ranges.iter().map(|r| out_base + r.start as u64));
        let table = stream.clone_htod(&table)?;
        let mut actual = stream.alloc_zeros::<u64>(n)?;
        let mut statuses = stream.alloc_zeros::<i32>(n)?;
        {
            let (table_ptr, _t) = table.device_ptr(stream);
            let (actual_ptr, _a) = actual.device_ptr_mut(stream);
            let (status_ptr, _s) = statuses.device_ptr_mut(stream);
            let (temp_ptr, _m) = temp.device_ptr_mut(stream);
            let word = size_of::<u64>() as u64 * n as u64;
            let call = crate::DecompressCall {
                comp_ptrs: table_ptr,
                comp_bytes: table_ptr + word,
                out_capacity: table_ptr + 2 * word,
                out_ptrs: table_ptr + 3 * word,
                out_actual: actual_ptr,
                statuses: status_ptr,
                count: n,
                temp: temp_ptr,
                temp_bytes,
            };
            // SAFETY: every address is inside a live allocation of this stream's context,
            // checked against the ranges above; the guards keep them ordered on `stream`.
            unsafe { self.decompress_async(algo, &call, stream.cu_stream().cast())? };
        }
        drop((in_guard, out_guard));
        stream.synchronize()?;
        let actual = stream.clone_dtoh(&actual)?;
        let statuses = stream.clone_dtoh(&statuses)?;
        Ok(actual
            .into_iter()
            .zip(statuses)
            .map(|(len, status)| if status == 0 { Ok(len as usize) } else { Err(Status(status)) })
            .collect())
    }

    /// Compresses each `input[ranges[i]]` (zstd or LZ4) in one batched call on `stream` and
    /// returns the compressed chunks on the host.
    ///
    /// # Errors
    /// As [`Nvcomp::decompress_batch`]; [`Error::Unsupported`] for deflate; a chunk nvCOMP
    /// could not compress is an [`Error::Call`] naming its status.
    pub fn compress_batch(
        &self,
        stream: &Arc<CudaStream>,
        algo: Algo,
        input: &CudaSlice<u8>,
        ranges: &[Range<usize>],
    ) -> Result<Vec<Vec<u8>>> {
        let align = self.compress_alignments(algo)?;
        check_ranges("input", ranges, (input.device_ptr(stream).0, input.len()), align.input)?;
        let n = ranges.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let max_chunk = ranges.iter().map(ExactSizeIterator::len).max().unwrap_or(0);
        let total = ranges.iter().map(ExactSizeIterator::len).sum();
        let temp_bytes = self.compress_temp_bytes(algo, n, max_chunk, total)?;
        let slot = self.compress_max_output_bytes(algo, max_chunk)?.next_multiple_of(align.output.max(1));
        let mut output = stream.alloc_zeros::<u8>(slot * n)?;
        let (in_base, in_guard) = input.device_ptr(stream);
        let (out_base, out_guard) = output.device_ptr_mut(stream);
        let mut table = Vec::with_capacity(3 * n);
        table.extend(ranges.iter().map(|r| in_base + r.start as u64));
        table.extend(ranges.iter().map(|r| r.len() as u64));
        table.extend((0..n as u64).map(|i| out_base + i * slot as u64));
        let table = stream.clone_htod(&table)?;
        let mut out_bytes = stream.alloc_zeros::<u64>(n)?;
        let mut statuses = stream.alloc_zeros::<i32>(n)?;
        let mut temp = stream.alloc_zeros::<u8>(temp_bytes.max(1))?;
        {
            let (table_ptr, _t) = table.device_ptr(stream);
            let (out_bytes_ptr, _o) = out_bytes.device_ptr_mut(stream);
            let (status_ptr, _s) = statuses.device_ptr_mut(stream);
            let (temp_ptr, _m) = temp.device_ptr_mut(stream);
            let word = size_of::<u64>() as u64 * n as u64;
            let call = crate::CompressCall {
                in_ptrs: table_ptr,
                in_bytes: table_ptr + word,
                max_in_bytes: max_chunk,
                count: n,
                temp: temp_ptr,
                temp_bytes,
                out_ptrs: table_ptr + 2 * word,
                out_bytes: out_bytes_ptr,
                statuses: status_ptr,
            };
            // SAFETY: as in `decompress_batch`; each output slot is `slot` bytes, at least
            // nvCOMP's maximum for `max_chunk`.
            unsafe { self.compress_async(algo, &call, stream.cu_stream().cast())? };
        }
        drop((in_guard, out_guard));
        stream.synchronize()?;
        let lens = stream.clone_dtoh(&out_bytes)?;
        let statuses = stream.clone_dtoh(&statuses)?;
        if let Some(&bad) = statuses.iter().find(|&&s| s != 0) {
            return Err(Error::Call { call: "CompressAsync", status: Status(bad) });
        }
        let host = stream.clone_dtoh(&output)?;
        Ok(lens.iter().enumerate().map(|(i, &len)| host[i * slot..i * slot + len as usize].to_vec()).collect())
    }
}

/// Checks that every range lies in a buffer of `len` bytes at device address `base`,
/// starts at an address that is a multiple of `align` and is no longer than nvCOMP accepts.
fn check_ranges(what: &str, ranges: &[Range<usize>], (base, len): (u64, usize), align: usize) -> Result<()> {
    for (i, r) in ranges.iter().enumerate() {
        if r.start > r.end || r.end > len {
            return Err(Error::InvalidBatch(format!("{what} chunk {i} spans {r:?}, outside a buffer of {len} bytes")));
        }
        let address = base.wrapping_add(r.start as u64);
        if align > 1 && address % align as u64 != 0 {
            return Err(Error::InvalidBatch(format!(
                "{what} chunk {i} starts at address {address:#x}, not a multiple of {align}"
            )));
        }
        if r.len() > MAX_CHUNK_BYTES {
            return Err(Error::InvalidBatch(format!("{what} chunk {i} is {} bytes, over nvCOMP's limit", r.len())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_cut_at_the_raw_byte_budget() {
        assert_eq!(runs([4, 4, 4, 4].into_iter(), 8), vec![0..2, 2..4]);
        assert_eq!(runs([3, 9, 1].into_iter(), 8), vec![0..1, 1..2, 2..3], "an oversized chunk runs alone");
        assert_eq!(runs([1, 1, 1].into_iter(), 8), vec![0..3]);
        assert!(runs(std::iter::empty(), 8).is_empty());
    }

    #[test]
    fn ranges_are_checked_for_bounds_and_alignment() {
        assert!(check_ranges("input", &[0..8, 8..20], (0x1000, 20), 4).is_ok());
        let outside = check_ranges("input", &[0..8, 8..21], (0x1000, 20), 1).unwrap_err();
        assert!(outside.to_string().contains("chunk 1 spans 8..21"), "{outside}");
        let misaligned = check_ranges("output", &[0..3, 3..9], (0x1000, 20), 8).unwrap_err();
        assert!(misaligned.to_string().contains("not a multiple of 8"), "{misaligned}");
        // A view starting off the alignment: its offsets are aligned, its addresses not.
        assert!(check_ranges("input", &[0..8, 8..12], (0x1002, 20), 4).is_err());
        assert!(check_ranges("input", &[2..6, 6..10], (0x1002, 20), 4).is_ok());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = check_ranges("input", &[0..4, 5..2], (0, 20), 1);
        assert!(reversed.is_err());
    }
}
