//! One [`Gpu`] per device, made on first use and kept for the process: the CUDA context,
//! libnvcomp and the kernels of `kernels.ptx`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{CudaContext, CudaFunction, CudaStream, DriverError, sys};
use cudarc::nvrtc::Ptx;
use nvcomp_sys::Nvcomp;

use super::transfer::Pinned;
use crate::error::{Error, GpuUnavailable, Result};

/// The kernels, compiled from `kernels.cu` by `scripts/gen-ptx.py` (PTX ISA 8.0: drivers
/// R525 and later JIT it for the GPU at hand).
const KERNELS_PTX: &str = include_str!("kernels.ptx");

/// The oldest compute capability the PTX targets (`compute_70`, Volta).
const MIN_COMPUTE_CAPABILITY: (i32, i32) = (7, 0);

/// Refuses a device older than [`MIN_COMPUTE_CAPABILITY`]: the driver would fail to load
/// the kernels with an error that does not say why.
fn supported(capability: (i32, i32)) -> std::result::Result<(), GpuUnavailable> {
    if capability >= MIN_COMPUTE_CAPABILITY {
        return Ok(());
    }
    let ((major, minor), (min_major, min_minor)) = (capability, MIN_COMPUTE_CAPABILITY);
    Err(GpuUnavailable::Unsupported(format!(
        "a GPU of compute capability {major}.{minor}: Atlas's kernels need {min_major}.{min_minor} or newer"
    )))
}

/// What a GPU read needs of one device.
pub(crate) struct Gpu {
    pub ctx: Arc<CudaContext>,
    /// Never used: while one stream lives, cudarc's `new_stream` does not synchronize the
    /// whole context (it does when going from no stream to one).
    _keepalive: Arc<CudaStream>,
    pub nvcomp: Arc<Nvcomp>,
    pub unshuffle: CudaFunction,
    pub scatter: CudaFunction,
    pub xxh3: CudaFunction,
    /// Pinned buffers for uploads and downloads, shared by the device's reads.
    pub upload: Mutex<Pinned>,
    pub download: Mutex<Pinned>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("ordinal", &self.ctx.ordinal())
            .field("nvcomp", &self.nvcomp)
            .finish_non_exhaustive()
    }
}

/// A CUDA or nvCOMP failure in the middle of a read.
pub(crate) fn gpu_error(e: impl std::fmt::Display) -> Error {
    Error::Gpu(e.to_string())
}

/// libnvcomp, loaded once per process (`ATLAS_NVCOMP_LIB`, the system loader, pip wheels).
fn nvcomp() -> Result<Arc<Nvcomp>> {
    static NVCOMP: OnceLock<std::result::Result<Arc<Nvcomp>, String>> = OnceLock::new();
    NVCOMP
        .get_or_init(|| Nvcomp::load().map(Arc::new).map_err(|e| e.to_string()))
        .clone()
        .map_err(|why| Error::GpuUnavailable(GpuUnavailable::NoNvcomp(why)))
}

/// The [`Gpu`] of device `ordinal`, made on first use. An unavailable device is remembered
/// too, so `Device::Auto` reads on a machine without one cost a map lookup.
///
/// # Errors
/// [`Error::GpuUnavailable`] saying whether the driver, the device or libnvcomp is missing,
/// or the device is too old;
/// [`Error::Gpu`] when making the context or loading the kernels fails (not remembered).
pub(crate) fn gpu(ordinal: usize) -> Result<Arc<Gpu>> {
    type Known = HashMap<usize, std::result::Result<Arc<Gpu>, GpuUnavailable>>;
    static GPUS: OnceLock<Mutex<Known>> = OnceLock::new();
    let mut gpus = GPUS.get_or_init(Mutex::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = gpus.get(&ordinal) {
        return known.clone().map_err(Error::GpuUnavailable);
    }
    let made = make(ordinal);
    match &made {
        Ok(gpu) => _ = gpus.insert(ordinal, Ok(gpu.clone())),
        Err(Error::GpuUnavailable(why)) => _ = gpus.insert(ordinal, Err(why.clone())),
        Err(_) => {}
    }
    made
}

/// Device memory a read frees stays in the device's default pool, up to this much, for the
/// next read (CUDA's default, 0, unmaps it at every synchronization: a read of a few
/// hundred MB then spends milliseconds mapping its buffers and nvCOMP's scratch again).
/// The pool is the process's: memory kept there is not free to `cudaMalloc` users (docs/GPU.md).
const KEEP_FREED_BYTES: u64 = 4 << 30;

/// The device's default memory pool (what `cudarc` allocates from).
fn default_pool(ctx: &CudaContext) -> std::result::Result<sys::CUmemoryPool, DriverError> {
    let mut pool = std::ptr::null_mut();
    // SAFETY: `pool` is a live local of the handle type the call writes; the device is `ctx`'s.
    unsafe { sys::cuDeviceGetDefaultMemPool(&raw mut pool, ctx.cu_device()) }.result()?;
    Ok(pool)
}

/// A 64-bit attribute of the device's default memory pool (the byte counts and the
/// release threshold are `cuuint64_t`).
fn pool_attribute(ctx: &CudaContext, attr: sys::CUmemPool_attribute) -> std::result::Result<u64, DriverError> {
    let mut value = 0u64;
    // SAFETY: the pool handle is live (the device's default pool); `value` is a live local
    // of the 64-bit type these attributes are written as.
    unsafe { sys::cuMemPoolGetAttribute(default_pool(ctx)?, attr, (&raw mut value).cast()) }.result()?;
    Ok(value)
}

/// Sets the release threshold of the device's default memory pool to
/// [`KEEP_FREED_BYTES`], unless something in the process set it higher.
fn keep_freed_memory(ctx: &CudaContext) -> std::result::Result<(), DriverError> {
    let attr = sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD;
    if pool_attribute(ctx, attr)? < KEEP_FREED_BYTES {
        let mut threshold = KEEP_FREED_BYTES;
        // SAFETY: as in `pool_attribute`; the driver reads the 64-bit threshold.
        unsafe { sys::cuMemPoolSetAttribute(default_pool(ctx)?, attr, (&raw mut threshold).cast()) }.result()?;
    }
    Ok(())
}

impl Gpu {
    /// Device memory a read may count on: what the driver reports free, plus what the
    /// default pool keeps from earlier reads without using it.
    ///
    /// # Errors
    /// [`Error::Gpu`] when the driver cannot say.
    pub(crate) fn spare_bytes(&self) -> Result<u64> {
        self.ctx.bind_to_thread().map_err(gpu_error)?;
        let (free, _total) = cudarc::driver::result::mem_get_info().map_err(gpu_error)?;
        let kept = || -> std::result::Result<u64, DriverError> {
            use sys::CUmemPool_attribute::{CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT, CU_MEMPOOL_ATTR_USED_MEM_CURRENT};
            let reserved = pool_attribute(&self.ctx, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT)?;
            Ok(reserved.saturating_sub(pool_attribute(&self.ctx, CU_MEMPOOL_ATTR_USED_MEM_CURRENT)?))
        };
        let kept = if self.ctx.has_async_alloc() { kept().unwrap_or(0) } else { 0 };
        Ok(free as u64 + kept)
    }
}

fn make(ordinal: usize) -> Result<Arc<Gpu>> {
    // cudarc panics on first use when libcuda is missing: ask before anything else.
    if !nvcomp_sys::cuda_driver_present() {
        return Err(Error::GpuUnavailable(GpuUnavailable::NoDriver));
    }
    let count = CudaContext::device_count().map_or(0, |n| usize::try_from(n).unwrap_or(0));
    if ordinal >= count {
        return Err(Error::GpuUnavailable(GpuUnavailable::NoDevice { ordinal, count }));
    }
    let nvcomp = nvcomp()?;
    let ctx = CudaContext::new(ordinal).map_err(gpu_error)?;
    supported(ctx.compute_capability().map_err(gpu_error)?).map_err(Error::GpuUnavailable)?;
    let keepalive = ctx.new_stream().map_err(gpu_error)?;
    // Only speed depends on it: a driver that refuses pool attributes still reads.
    if ctx.has_async_alloc()
        && let Err(e) = keep_freed_memory(&ctx)
    {
        log::warn!("atlas: keeping freed device memory in the pool failed ({e}); reads allocate afresh");
    }
    let module = ctx.load_module(Ptx::from_src(KERNELS_PTX)).map_err(gpu_error)?;
    Ok(Arc::new(Gpu {
        unshuffle: module.load_function("atlas_unshuffle").map_err(gpu_error)?,
        scatter: module.load_function("atlas_scatter").map_err(gpu_error)?,
        xxh3: module.load_function("atlas_xxh3").map_err(gpu_error)?,
        ctx,
        _keepalive: keepalive,
        nvcomp,
        upload: Mutex::new(Pinned::for_upload()),
        download: Mutex::new(Pinned::for_download()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_older_than_the_kernels_are_refused_by_name() {
        assert!(supported((7, 0)).is_ok() && supported((9, 0)).is_ok() && supported((12, 1)).is_ok());
        match supported((6, 1)) {
            Err(GpuUnavailable::Unsupported(why)) => assert!(why.contains("6.1") && why.contains("7.0"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
