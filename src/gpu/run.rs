//! Running a [`Layout`] on a GPU: one upload, one nvCOMP batch per codec, the unshuffle
//! kernel into staging, checksums, CPU repair of failed blocks, then the scatter (kernel for
//! a result on the device, CPU for a result on the host).

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, LaunchConfig, PushKernelArg};
use nvcomp_sys::Algo;

use super::context::{Gpu, gpu, gpu_error};
use super::device_array::DeviceArray;
use super::layout::{Bases, GpuCodec, Layout, Move};
use crate::engine::{ArrayCtx, Lookup, Place, for_each_row};
use crate::error::Result;

/// Threads per block of both kernels.
const THREADS: u32 = 256;
/// Most blocks along x per item (kernels loop over the rest); grid.y is capped at CUDA's
/// limit of 65535 and the kernels loop over items beyond it.
const MAX_BLOCKS_X: u32 = 1024;
const MAX_GRID_Y: u32 = 65535;

/// A GPU reads run on.
#[derive(Debug, Clone)]
pub(crate) struct Target(Arc<Gpu>);

/// The staging buffer after decoding: every chunk's raw bytes, with the jobs the GPU could
/// not decode marked.
struct Staged {
    staging: CudaSlice<u8>,
    failed: Vec<bool>,
}

fn grid(items: usize, max_bytes: u64) -> LaunchConfig {
    let x = max_bytes.div_ceil(u64::from(THREADS)).clamp(1, u64::from(MAX_BLOCKS_X)) as u32;
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
    pub(crate) fn open(ordinal: usize) -> Result<Self> {
        gpu(ordinal).map(Self)
    }

    /// Reads the box into `out` (host memory, C order), decoding on the GPU.
    pub(crate) fn read_to_host(
        &self,
        ctx: ArrayCtx<'_>,
        lookup: &Lookup<'_, '_>,
        start: &[u64],
        shape: &[u64],
        out: &mut [u8],
        verify: bool,
    ) -> Result<()> {
        let layout = Layout::build(ctx, lookup, start, shape, verify)?;
        let stream = self.0.ctx.new_stream().map_err(gpu_error)?;
        let staged = self.stage(&stream, &layout)?;
        let mut host = stream.clone_dtoh(&staged.staging).map_err(gpu_error)?;
        layout.repair(ctx, &mut host, &staged.failed, verify)?;
        let elem_bytes = ctx.meta.dtype.size_bytes();
        for (job, op) in &layout.parts {
            let chunk = &host[layout.jobs[*job].staging.clone()];
            let src = Place { shape: &ctx.meta.chunk_shape, start: &op.in_chunk };
            let dst = Place { shape, start: &op.in_selection };
            for_each_row(src, dst, &op.region, elem_bytes, |s, d, n| out[d..d + n].copy_from_slice(&chunk[s..s + n]));
        }
        Ok(())
    }

    /// Reads the box into a new [`DeviceArray`] on this GPU.
    pub(crate) fn read_to_device(
        &self,
        ctx: ArrayCtx<'_>,
        lookup: &Lookup<'_, '_>,
        start: &[u64],
        shape: &[u64],
        verify: bool,
    ) -> Result<DeviceArray> {
        let layout = Layout::build(ctx, lookup, start, shape, verify)?;
        let stream = self.0.ctx.new_stream().map_err(gpu_error)?;
        let Staged { mut staging, failed } = self.stage(&stream, &layout)?;
        if verify || failed.contains(&true) {
            // Checksums are compared on the host: the staged chunks go back once.
            let mut host = stream.clone_dtoh(&staging).map_err(gpu_error)?;
            for job in layout.repair(ctx, &mut host, &failed, verify)? {
                let range = layout.jobs[job].staging.clone();
                stream.memcpy_htod(&host[range.clone()], &mut staging.slice_mut(range)).map_err(gpu_error)?;
            }
        }
        let out = stream.alloc_zeros::<u8>(layout.out_len().max(1)).map_err(gpu_error)?;
        let parts = layout.scatter_parts(ptr(&staging, &stream), ptr(&out, &stream))?;
        if !parts.is_empty() {
            let table = stream.clone_htod(bytemuck::cast_slice::<_, u8>(&parts)).map_err(gpu_error)?;
            let count = parts.len() as u32;
            let longest = parts.iter().map(|p| p.shape[..p.ndim as usize].iter().product::<u64>()).max().unwrap_or(1);
            let mut launch = stream.launch_builder(&self.0.scatter);
            launch.arg(&table).arg(&count);
            // SAFETY: each part reads inside `staging` and writes inside `out`
            // (Layout::scatter_parts builds them from the read's plan); both live until the
            // stream is synchronized below.
            unsafe { launch.launch(grid(parts.len(), longest)) }.map_err(gpu_error)?;
        }
        stream.synchronize().map_err(gpu_error)?;
        Ok(DeviceArray { data: out, shape: shape.to_vec(), dtype: ctx.meta.dtype, stream })
    }

    /// Uploads the layout's input, decodes it with nvCOMP and moves every chunk into its
    /// staging slot (unshuffled).
    fn stage(&self, stream: &Arc<CudaStream>, layout: &Layout<'_>) -> Result<Staged> {
        let gpu = &self.0;
        let mut input_bytes = layout.input.as_slice();
        let placeholder = [0u8; 1];
        if input_bytes.is_empty() {
            input_bytes = &placeholder;
        }
        let input = stream.clone_htod(input_bytes).map_err(gpu_error)?;
        let mut decoded = stream.alloc_zeros::<u8>(layout.decoded_len.max(1)).map_err(gpu_error)?;
        let mut failed = vec![false; layout.jobs.len()];
        for codec in [GpuCodec::Zstd, GpuCodec::Lz4] {
            let (jobs, ins, outs) = layout.decode_batch(codec);
            if jobs.is_empty() {
                continue;
            }
            let algo = if codec == GpuCodec::Zstd { Algo::Zstd } else { Algo::Lz4 };
            let results =
                gpu.nvcomp.decompress_batch(stream, algo, &input, &ins, &mut decoded, &outs).map_err(gpu_error)?;
            for ((job, result), out) in jobs.iter().zip(results).zip(&outs) {
                failed[*job] = result != Ok(out.len());
            }
        }
        let staging = stream.alloc_zeros::<u8>(layout.staging_len.max(1)).map_err(gpu_error)?;
        let bases =
            Bases { input: ptr(&input, stream), decoded: ptr(&decoded, stream), staging: ptr(&staging, stream) };
        let moves = layout.moves(bases);
        if !moves.is_empty() {
            let table = stream.clone_htod(bytemuck::cast_slice::<Move, u8>(&moves)).map_err(gpu_error)?;
            let count = moves.len() as u32;
            let longest = moves.iter().map(|m| m.len / m.elem.max(1)).max().unwrap_or(1);
            let mut launch = stream.launch_builder(&gpu.unshuffle);
            launch.arg(&table).arg(&count);
            // SAFETY: every move reads inside `input` or `decoded` and writes inside `staging`
            // (Layout::moves builds them from the layout's ranges); all three live until the
            // stream is synchronized below.
            unsafe { launch.launch(grid(moves.len(), longest)) }.map_err(gpu_error)?;
        }
        stream.synchronize().map_err(gpu_error)?;
        Ok(Staged { staging, failed })
    }
}
