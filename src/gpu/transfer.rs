//! Copies between host memory and the device through pinned buffers, two per direction,
//! kept by the [`super::context::Gpu`] for every read: while the device copies one buffer,
//! the host fills (or empties) the other on the engine pool. A copy from pageable memory
//! would go through a staging copy in the driver, at a fraction of the link's speed.

use std::ops::Range;
use std::sync::Arc;

use cudarc::driver::{CudaEvent, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, PinnedHostSlice, result, sys};

use super::context::gpu_error;
use crate::error::Result;

/// Bytes per piece of a transfer: large enough to keep the link busy, small enough that
/// filling one piece overlaps copying the other.
const PIECE: usize = 32 << 20;

/// A pinned buffer and the copy last queued on it.
struct Buffer {
    host: PinnedHostSlice<u8>,
    busy: Option<CudaEvent>,
}

impl Buffer {
    /// Marks the buffer busy until the work queued on `stream` so far (its copy) is done. If
    /// no event can be recorded, waits for the stream instead, so that the next user never
    /// finds the buffer idle with a copy still in flight.
    fn queued_on(&mut self, stream: &CudaStream) -> Result<()> {
        match stream.record_event(None) {
            Ok(event) => {
                self.busy = Some(event);
                Ok(())
            }
            Err(e) => {
                let _ = stream.synchronize();
                Err(gpu_error(e))
            }
        }
    }

    /// Waits for the copy last queued on the buffer. A failed wait leaves the buffer busy:
    /// its copy may still be running.
    fn wait(&mut self) -> Result<()> {
        if let Some(event) = &self.busy {
            event.synchronize().map_err(gpu_error)?;
            self.busy = None;
        }
        Ok(())
    }
}

impl Drop for Buffer {
    /// The copies are queued on the raw slice, so the pinned slice's own drop does not know
    /// of them: a read that failed after queuing one must not free the memory under it.
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

/// The two pinned buffers of one direction, [`PIECE`] bytes each, allocated on first use.
pub(crate) struct Pinned {
    /// `cuMemHostAlloc` flags: write-combined for uploads (the host only writes them).
    flags: u32,
    buffers: [Option<Buffer>; 2],
}

impl Pinned {
    /// Buffers the host fills and the device reads.
    pub(crate) fn for_upload() -> Self {
        Self { flags: sys::CU_MEMHOSTALLOC_WRITECOMBINED, buffers: [None, None] }
    }

    /// Buffers the device fills and the host reads (cached: write-combined memory reads slowly).
    pub(crate) fn for_download() -> Self {
        Self { flags: 0, buffers: [None, None] }
    }

    /// Buffer `k % 2`, idle.
    fn idle(&mut self, stream: &Arc<CudaStream>, k: usize) -> Result<&mut Buffer> {
        let slot = &mut self.buffers[k % 2];
        if let Some(buffer) = slot {
            buffer.wait()?;
        } else {
            // SAFETY: pinned bytes; every byte a transfer uses is written before it is read.
            let host =
                unsafe { stream.context().alloc_pinned_with_flags::<u8>(PIECE, self.flags) }.map_err(gpu_error)?;
            *slot = Some(Buffer { host, busy: None });
        }
        Ok(slot.as_mut().expect("made above"))
    }

    /// Copies `len` bytes to the start of `dst` on `stream`, piece by piece: `fill(window,
    /// bytes)` writes the bytes at `window` into the piece's buffer. Returns once the last
    /// piece is queued; later work on `stream` sees the bytes.
    pub(crate) fn upload(
        &mut self,
        stream: &Arc<CudaStream>,
        dst: &mut CudaSlice<u8>,
        len: usize,
        fill: impl Fn(Range<usize>, &mut [u8]),
    ) -> Result<()> {
        assert!(len <= dst.len(), "an upload past its device buffer");
        let (base, _sync) = dst.device_ptr_mut(stream);
        for (k, start) in (0..len).step_by(PIECE).enumerate() {
            let window = start..(start + PIECE).min(len);
            let buffer = self.idle(stream, k)?;
            let host = &mut buffer.host.as_mut_slice().map_err(gpu_error)?[..window.len()];
            fill(window.clone(), host);
            // SAFETY: `host` is pinned and stays untouched until `busy` has passed (`idle`
            // waits for it); the destination lies inside `dst` (asserted above).
            unsafe { result::memcpy_htod_async(base + start as u64, &*host, stream.cu_stream()) }.map_err(gpu_error)?;
            buffer.queued_on(stream)?;
        }
        Ok(())
    }

    /// Copies the first `len` bytes of `src` to the host on `stream`, piece by piece: the
    /// next piece comes while `drain(window, bytes)` reads the bytes at `window`. Returns
    /// when every piece is drained.
    pub(crate) fn download(
        &mut self,
        stream: &Arc<CudaStream>,
        src: &CudaSlice<u8>,
        len: usize,
        mut drain: impl FnMut(Range<usize>, &[u8]),
    ) -> Result<()> {
        assert!(len <= src.len(), "a download past its device buffer");
        let (base, _sync) = src.device_ptr(stream);
        let windows = pieces(len);
        let queue = |pinned: &mut Self, k: usize| -> Result<()> {
            let window = &windows[k];
            let buffer = pinned.idle(stream, k)?;
            let host = &mut buffer.host.as_mut_slice().map_err(gpu_error)?[..window.len()];
            // SAFETY: `host` is pinned and read only after `busy` has passed; the source
            // lies inside `src` (asserted above).
            unsafe { result::memcpy_dtoh_async(host, base + window.start as u64, stream.cu_stream()) }
                .map_err(gpu_error)?;
            buffer.queued_on(stream)
        };
        for k in 0..windows.len().min(2) {
            queue(self, k)?;
        }
        for (k, window) in windows.iter().enumerate() {
            let buffer = self.buffers[k % 2].as_mut().expect("queued above");
            buffer.wait()?;
            drain(window.clone(), &buffer.host.as_slice().map_err(gpu_error)?[..window.len()]);
            if k + 2 < windows.len() {
                queue(self, k + 2)?;
            }
        }
        Ok(())
    }
}

/// Windows of at most [`PIECE`] bytes covering `0..len`.
fn pieces(len: usize) -> Vec<Range<usize>> {
    (0..len).step_by(PIECE).map(|start| start..(start + PIECE).min(len)).collect()
}
