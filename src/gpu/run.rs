//! Running a [`Layout`] on a GPU: the upload into the work buffer, one nvCOMP batch per
//! codec, the unshuffle kernel for shuffled chunks, checksums, CPU repair of failed blocks,
//! then the scatter kernel; a result for the host is copied back.

use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, LaunchConfig, PushKernelArg};
use nvcomp_sys::Algo;

use super::context::{Gpu, gpu, gpu_error};
use super::device_array::DeviceArray;
use super::layout::{GpuCodec, Hashed, Layout, Move, Part, copy_in_parallel};
use super::rounds::in_rounds;
use super::transfer::Pinned;
use crate::engine::{Slot, read_slots, run_on_pool};
use crate::error::{Error, Result};
use crate::meta::DType;

/// Threads per block of the unshuffle and scatter kernels.
const THREADS: u32 = 256;
/// Elements an unshuffle thread moves (`unshuffle_by_fours` in `kernels.cu`).
const UNSHUFFLE_ELEMS: u64 = 4;
/// Units a scatter thread copies at least (`UNROLL` in `kernels.cu`).
const SCATTER_UNROLL: u64 = 4;
/// Most blocks along x per item (kernels loop over the rest); grid.y is capped at CUDA's
/// limit of 65535 and the kernels loop over items beyond it.
const MAX_BLOCKS_X: u32 = 1024;
const MAX_GRID_Y: u32 = 65535;
/// Most thread blocks of the hash kernel (one per chunk; it loops over the rest).
const MAX_GRID_X: u32 = 65535;
/// Threads per block of the hash kernel (`HASH_THREADS` in `kernels.cu`).
const HASH_THREADS: u32 = 128;
/// A read takes at most this share of the device memory it finds spare (1/2), in rounds
/// where it needs more: the rest stays for nvCOMP's scratch (about 3 bytes per byte a call
/// decodes, up to 3 GiB) and for other users of the device.
const BUDGET_SHARE: u64 = 2;

/// A GPU reads run on.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    gpu: Arc<Gpu>,
    /// Redo a read on the CPU when the GPU fails at run time (`Device::Auto`).
    fallback: bool,
}

/// Launch shape for `items` (grid.y) of which the largest needs `max_threads` threads (in a
/// grid-stride loop past `MAX_BLOCKS_X` blocks).
fn grid(items: usize, max_threads: u64) -> LaunchConfig {
    let x = max_threads.div_ceil(u64::from(THREADS)).clamp(1, u64::from(MAX_BLOCKS_X)) as u32;
    let y = u32::try_from(items).unwrap_or(u32::MAX).clamp(1, MAX_GRID_Y);
    LaunchConfig { grid_dim: (x, y, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 }
}

fn ptr(buf: &CudaSlice<u8>, stream: &CudaStream) -> u64 {
    let (p, _sync) = buf.device_ptr(stream);
    p
}

impl Target {
    /// The GPU of device `ordinal`.
    ///
    /// # Errors
    /// As `context::gpu`.
    pub(crate) fn open(ordinal: usize, fallback: bool) -> Result<Self> {
        Ok(Self { gpu: gpu(ordinal)?, fallback })
    }

    /// Reads `slots` (as `engine::read_slots` takes them) into `out` (host memory), decoding
    /// on the GPU; on the CPU instead when the GPU fails at run time and this target falls
    /// back.
    pub(crate) fn read_to_host(
        &self,
        slots: &[Slot<'_, '_>],
        slot_shape: &[u64],
        elem_bytes: usize,
        out: &mut [u8],
        verify: bool,
    ) -> Result<()> {
        match self.try_read_to_host(slots, slot_shape, elem_bytes, out, verify) {
            Err(Error::Gpu(why)) if self.fallback => {
                log::warn!("atlas: GPU read failed ({why}); reading on the CPU");
                read_slots(slots, slot_shape, elem_bytes, out, verify)
            }
            done => done,
        }
    }

    fn try_read_to_host(
        &self,
        slots: &[Slot<'_, '_>],
        slot_shape: &[u64],
        elem_bytes: usize,
        out: &mut [u8],
        verify: bool,
    ) -> Result<()> {
        let budget = self.gpu.spare_bytes()? / BUDGET_SHARE;
        self.read_to_host_within(budget, slots, slot_shape, (elem_bytes, verify), out).map(drop)
    }

    /// Reads `slots` into `out` (host memory) on the GPU, in rounds that take at most
    /// `budget` bytes of device memory each where the read can be cut so
    /// (`rounds::in_rounds`). Returns the number of rounds.
    pub(crate) fn read_to_host_within(
        &self,
        budget: u64,
        slots: &[Slot<'_, '_>],
        slot_shape: &[u64],
        (elem_bytes, verify): (usize, bool),
        out: &mut [u8],
    ) -> Result<usize> {
        let stream = self.gpu.ctx.new_stream().map_err(gpu_error)?;
        let fits = |layout: &Layout<'_, '_>| (layout.work_len + layout.out_len()) as u64 <= budget;
        in_rounds(slots, slot_shape, (elem_bytes, verify), &fits, &mut |layout, bytes| {
            let result = alloc(&stream, layout.out_len())?;
            self.read_on_device(&stream, layout, verify, ptr(&result, &stream))?;
            // Finished before the download buffers are taken, so that concurrent reads to
            // host wait for each other's copies back only, not for each other's kernels.
            stream.synchronize().map_err(gpu_error)?;
            let out = &mut out[bytes];
            lock(&self.gpu.download).download(&stream, &result, layout.out_len(), |window, part| {
                copy_in_parallel(vec![(&mut out[window], part)]);
            })
        })
    }

    /// Reads `slots` into a new [`DeviceArray`] of `shape` (the slots one after the other)
    /// and `dtype` on this GPU.
    pub(crate) fn read_to_device(
        &self,
        slots: &[Slot<'_, '_>],
        slot_shape: &[u64],
        (shape, dtype): (Vec<u64>, DType),
        verify: bool,
    ) -> Result<DeviceArray> {
        let spare = self.gpu.spare_bytes()?;
        self.read_to_device_within(spare, slots, slot_shape, (shape, dtype), verify).map(|(array, _)| array)
    }

    /// [`Target::read_to_device`] with `spare` bytes of device memory found spare: the
    /// result is allocated first, then the read runs in rounds whose buffers take at most
    /// half of what is left where it can be cut so. Returns the array and the number of
    /// rounds.
    pub(crate) fn read_to_device_within(
        &self,
        spare: u64,
        slots: &[Slot<'_, '_>],
        slot_shape: &[u64],
        (shape, dtype): (Vec<u64>, DType),
        verify: bool,
    ) -> Result<(DeviceArray, usize)> {
        let stream = self.gpu.ctx.new_stream().map_err(gpu_error)?;
        let elems = slot_shape.iter().product::<u64>() * slots.len() as u64;
        let len = usize::try_from(elems).expect("checked by the caller") * dtype.size_bytes();
        let out = alloc(&stream, len)?;
        let base = ptr(&out, &stream);
        let room = spare.saturating_sub(len as u64) / BUDGET_SHARE;
        let fits = |layout: &Layout<'_, '_>| layout.work_len as u64 <= room;
        let rounds = in_rounds(slots, slot_shape, (dtype.size_bytes(), verify), &fits, &mut |layout, bytes| {
            self.read_on_device(&stream, layout, verify, base + bytes.start as u64)
        })?;
        stream.synchronize().map_err(gpu_error)?;
        Ok((DeviceArray { data: out, shape, dtype, stream }, rounds))
    }

    /// Runs `layout` on the device: uploaded, decoded, unshuffled, checked, and scattered
    /// into `layout.out_len()` bytes of device memory at `out` (queued on `stream`, not
    /// waited for).
    fn read_on_device(&self, stream: &Arc<CudaStream>, layout: &Layout<'_, '_>, verify: bool, out: u64) -> Result<()> {
        let mut work = alloc(stream, layout.work_len)?;
        lock(&self.gpu.upload)
            .upload(stream, &mut work, layout.input_len, |window, bytes| layout.gather(window, bytes))?;
        // The host lays out the scatter while it waits for nvCOMP.
        let work_base = ptr(&work, stream);
        let (failed, parts) = run_on_pool(|| {
            rayon::join(|| self.decode(stream, layout, &mut work), || layout.scatter_parts(work_base, out))
        });
        let failed = failed?;
        self.unshuffle(stream, layout, work_base)?;
        self.check(stream, layout, &mut work, &failed, verify)?;
        if !parts.is_empty() {
            let table = stream.clone_htod(bytemuck::cast_slice::<_, u8>(&parts)).map_err(gpu_error)?;
            let count = parts.len() as u32;
            let units = |p: &Part| p.shape[..p.ndim as usize].iter().product::<u64>();
            let longest = parts.iter().map(units).max().unwrap_or(1).div_ceil(SCATTER_UNROLL);
            let mut launch = stream.launch_builder(&self.gpu.scatter);
            launch.arg(&table).arg(&count);
            // SAFETY: each part reads inside `work` and writes inside the `out_len()` bytes
            // at `out` (Layout::scatter_parts builds them from the read's plan), which the
            // caller keeps until the stream is done; cudarc keeps `work`'s free ordered
            // after the kernel on `stream`.
            unsafe { launch.launch(grid(parts.len(), longest)) }.map_err(gpu_error)?;
        }
        Ok(())
    }

    /// Decodes the uploaded blocks with nvCOMP, one batch per codec, into their targets in
    /// `work`, and waits. Returns which jobs failed.
    fn decode(&self, stream: &Arc<CudaStream>, layout: &Layout<'_, '_>, work: &mut CudaSlice<u8>) -> Result<Vec<bool>> {
        let mut failed = vec![false; layout.jobs.len()];
        let placed = layout.placed_start().min(work.len());
        let (input, mut targets) = work.split_at_mut(placed);
        for codec in [GpuCodec::Zstd, GpuCodec::Lz4] {
            let (jobs, ins, outs) = layout.decode_batch(codec);
            if jobs.is_empty() {
                continue;
            }
            let outs: Vec<_> = outs.iter().map(|out| out.start - placed..out.end - placed).collect();
            let algo = if codec == GpuCodec::Zstd { Algo::Zstd } else { Algo::Lz4 };
            let results =
                self.gpu.nvcomp.decompress_batch(stream, algo, &input, &ins, &mut targets, &outs).map_err(gpu_error)?;
            for ((job, result), out) in jobs.iter().zip(results).zip(&outs) {
                failed[*job] = result != Ok(out.len());
            }
        }
        Ok(failed)
    }

    /// Unshuffles the shuffled chunks into their staging slots in the work buffer at `base`.
    fn unshuffle(&self, stream: &Arc<CudaStream>, layout: &Layout<'_, '_>, base: u64) -> Result<()> {
        let moves = layout.moves(base);
        if !moves.is_empty() {
            let table = stream.clone_htod(bytemuck::cast_slice::<Move, u8>(&moves)).map_err(gpu_error)?;
            let count = moves.len() as u32;
            let longest = moves.iter().map(|m| m.len / m.elem / UNSHUFFLE_ELEMS).max().unwrap_or(1);
            let mut launch = stream.launch_builder(&self.gpu.unshuffle);
            launch.arg(&table).arg(&count);
            // SAFETY: every move reads a chunk's decoded or uploaded bytes inside the work
            // buffer and writes its own staging slot there, apart from every source
            // (Layout::place); cudarc keeps the buffer's free ordered after the kernel on
            // `stream`.
            unsafe { launch.launch(grid(moves.len(), longest)) }.map_err(gpu_error)?;
        }
        Ok(())
    }

    /// Compares the staged chunks' checksums (when `verify`): hashed on the device, or on
    /// the host for chunks of 240 bytes or less or over 64 MiB, copied back a run of
    /// neighbours at a time. Then puts the CPU's decode of every chunk that failed on the GPU
    /// or does not match where it is staged in `work`.
    fn check(
        &self,
        stream: &Arc<CudaStream>,
        layout: &Layout<'_, '_>,
        work: &mut CudaSlice<u8>,
        failed: &[bool],
        verify: bool,
    ) -> Result<()> {
        let mut mismatched = Vec::new();
        if verify {
            let (on_device, on_host) = layout.checks();
            let hashes = self.hash(stream, &layout.hashed(&on_device, ptr(work, stream)))?;
            mismatched.extend(
                on_device
                    .into_iter()
                    .zip(hashes)
                    .filter(|&(job, hash)| layout.mismatches(job, hash))
                    .map(|(job, _)| job),
            );
            for (jobs, span) in on_host {
                let staged = stream.clone_dtoh(&work.slice(span.clone())).map_err(gpu_error)?;
                mismatched.extend(layout.mismatched_on_host(&jobs, &staged, span.start));
            }
        }
        layout.repair(failed, mismatched, |job, raw| {
            let range = layout.jobs[job].staging.clone();
            stream.memcpy_htod(&raw, &mut work.slice_mut(range)).map_err(gpu_error)
        })?;
        Ok(())
    }

    /// The XXH3-64 of each chunk of `chunks` (each over 240 bytes), computed on the device.
    fn hash(&self, stream: &Arc<CudaStream>, chunks: &[Hashed]) -> Result<Vec<u64>> {
        if chunks.is_empty() {
            return Ok(Vec::new());
        }
        let table = stream.clone_htod(bytemuck::cast_slice::<Hashed, u8>(chunks)).map_err(gpu_error)?;
        let mut hashes = stream.alloc_zeros::<u64>(chunks.len()).map_err(gpu_error)?;
        let count = chunks.len() as u32;
        let blocks = count.min(MAX_GRID_X);
        let config = LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (HASH_THREADS, 1, 1), shared_mem_bytes: 0 };
        let mut launch = stream.launch_builder(&self.gpu.xxh3);
        launch.arg(&table).arg(&count).arg(&mut hashes);
        // SAFETY: every chunk lies inside a live buffer of this stream (the staged chunks
        // `Layout::hashed` names) and is over 240 bytes, as the kernel requires; `hashes`
        // holds one word per chunk.
        unsafe { launch.launch(config) }.map_err(gpu_error)?;
        stream.clone_dtoh(&hashes).map_err(gpu_error)
    }
}

/// A device buffer of `len` bytes (at least one), not zeroed: the read writes every byte
/// of its buffers that it reads (the upload is gathered whole, nvCOMP and the unshuffle
/// kernel fill each chunk's range, the scatter covers every output element once), and a
/// chunk nvCOMP failed is redone on the CPU before the scatter reads it.
fn alloc(stream: &Arc<CudaStream>, len: usize) -> Result<CudaSlice<u8>> {
    // SAFETY: plain bytes, written before they are read (above).
    unsafe { stream.alloc::<u8>(len.max(1)) }.map_err(gpu_error)
}

/// The pinned buffers, whoever held them last.
fn lock(pinned: &Mutex<Pinned>) -> std::sync::MutexGuard<'_, Pinned> {
    pinned.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::checksum;

    /// `atlas_xxh3` gives XXH3-64 as the host computes it, for lengths on either side of
    /// its stripe (64 bytes) and block (1 KiB) edges, and for more chunks than one grid
    /// has blocks. Skips without a GPU, unless
    /// `ATLAS_REQUIRE_GPU` is set (scripts/gpu-check.sh).
    #[test]
    fn the_device_hashes_chunks_as_the_host_does() {
        let target = match Target::open(0, false) {
            Ok(target) => target,
            Err(Error::GpuUnavailable(why)) => {
                assert!(std::env::var_os("ATLAS_REQUIRE_GPU").is_none(), "ATLAS_REQUIRE_GPU is set but: {why}");
                return eprintln!("SKIP (no GPU here): {why}");
            }
            Err(other) => panic!("{other}"),
        };
        let lengths = [241, 255, 256, 1000, 1023, 1024, 1025, 1087, 2048, 2049, 4103, 65_536, 100_003, 1 << 20];
        let (mut bytes, mut ranges) = (Vec::new(), Vec::new());
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in lengths {
            let start = bytes.len().next_multiple_of(16);
            bytes.resize(start, 0);
            bytes.extend((0..len).map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }));
            ranges.push(start..bytes.len());
        }
        let stream = target.gpu.ctx.new_stream().unwrap();
        let device = stream.clone_htod(&bytes).unwrap();
        let base = ptr(&device, &stream);
        let chunks: Vec<Hashed> =
            ranges.iter().map(|r| Hashed { src: base + r.start as u64, len: r.len() as u64 }).collect();
        let hashes = target.hash(&stream, &chunks).unwrap();
        let expected: Vec<u64> = ranges.iter().map(|r| checksum(&bytes[r.clone()])).collect();
        assert_eq!(hashes, expected);
        // More chunks than a grid has blocks (65 535): the blocks loop over the rest.
        let count = MAX_GRID_X as usize + 4465;
        let chunks: Vec<Hashed> = (0..count)
            .map(|i| {
                let r = &ranges[i % 4];
                Hashed { src: base + r.start as u64, len: r.len() as u64 }
            })
            .collect();
        let hashes = target.hash(&stream, &chunks).unwrap();
        assert!(hashes.iter().enumerate().all(|(i, &h)| h == expected[i % 4]), "a chunk past the grid hashed wrong");
    }
}
