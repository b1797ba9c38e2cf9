//! Room `gpu`: reads whose blocks are decoded on an NVIDIA GPU through nvCOMP (feature
//! `gpu`). A read is laid out on the host ([`layout`]: where every block of the request goes
//! in one upload), uploaded through pinned buffers while the host gathers the next piece
//! ([`transfer`]), decoded with one batched nvCOMP call per codec, its shuffled chunks
//! unshuffled by one kernel, checked, then scattered into the result by a second kernel; a
//! result for the host is then copied back. Blocks the GPU reports as failed, or whose
//! checksum does not match, are decoded again on the CPU. A read that would take more than
//! half the device memory it finds spare runs in rounds ([`rounds`]).
//!
//! Without the feature this room only answers "unavailable" ([`resolve`]).

#[cfg(feature = "gpu")]
mod context;
#[cfg(feature = "gpu")]
mod device_array;
#[cfg(feature = "gpu")]
pub(crate) mod layout;
#[cfg(feature = "gpu")]
pub(crate) mod rounds;
#[cfg(feature = "gpu")]
mod run;
#[cfg(feature = "gpu")]
mod transfer;

#[cfg(feature = "gpu")]
pub use device_array::DeviceArray;
#[cfg(feature = "gpu")]
pub(crate) use run::Target;

use crate::engine::{ArrayCtx, Lookup, Slot, SlotRead, read_boxes, read_slots};
use crate::error::Result;

/// Where a read decodes its blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Device {
    /// On the CPU, on all cores.
    #[default]
    Cpu,
    /// On CUDA device `n` through nvCOMP (feature `gpu`); [`crate::Error::GpuUnavailable`]
    /// says why when it cannot.
    Cuda(usize),
    /// On CUDA device 0 when the `gpu` feature, a driver, a device and libnvcomp are all
    /// there, else on the CPU.
    Auto,
}

/// A GPU that reads can run on. Uninhabited without the `gpu` feature.
#[cfg(not(feature = "gpu"))]
#[derive(Debug)]
pub(crate) enum Target {}

#[cfg(not(feature = "gpu"))]
impl Target {
    pub(crate) fn read_to_host(&self, _: &[Slot<'_, '_>], _: &[u64], _: usize, _: &mut [u8], _: bool) -> Result<()> {
        match *self {}
    }
}

/// Reads `slots` (as `engine::read_slots` takes them) into `out` (host memory) on `target`,
/// from [`resolve`]: the CPU engine for `None`.
pub(crate) fn read_slots_on(
    target: Option<&Target>,
    slots: &[Slot<'_, '_>],
    slot_shape: &[u64],
    elem_bytes: usize,
    out: &mut [u8],
    verify: bool,
) -> Result<()> {
    match target {
        None => read_slots(slots, slot_shape, elem_bytes, out, verify),
        Some(gpu) => gpu.read_to_host(slots, slot_shape, elem_bytes, out, verify),
    }
}

/// Reads boxes of `shape` at `starts` of one array into `out` (as `engine::read_boxes`
/// takes them) on `target`: on the CPU for `None`, where each chunk is decoded once for
/// all the boxes it feeds; on the GPU as one batch of slots, one box each.
pub(crate) fn read_boxes_on(
    target: Option<&Target>,
    ctx: ArrayCtx<'_>,
    lookup: &Lookup<'_, '_>,
    starts: &[&[u64]],
    shape: &[u64],
    out: &mut [u8],
    verify: bool,
) -> Result<()> {
    let Some(gpu) = target else { return read_boxes(ctx, lookup, starts, shape, out, verify) };
    let at = vec![0; shape.len()];
    let slots: Vec<Slot<'_, '_>> =
        starts.iter().map(|start| Slot::Read(SlotRead { ctx, lookup, start, shape, at: &at })).collect();
    gpu.read_to_host(&slots, shape, ctx.meta.dtype.size_bytes(), out, verify)
}

/// The GPU a read with `device` runs on, or `None` for the CPU. [`Device::Auto`] gives a
/// target that redoes a read on the CPU if the GPU fails at run time.
///
/// # Errors
/// [`crate::Error::GpuUnavailable`] for [`Device::Cuda`] when the feature, the driver, the
/// device or libnvcomp is missing. [`Device::Auto`] falls back to the CPU instead.
pub(crate) fn resolve(device: Device) -> Result<Option<Target>> {
    match device {
        Device::Cpu => Ok(None),
        #[cfg(feature = "gpu")]
        Device::Cuda(ordinal) => Target::open(ordinal, false).map(Some),
        #[cfg(feature = "gpu")]
        Device::Auto => Ok(Target::open(0, true).ok()),
        #[cfg(not(feature = "gpu"))]
        Device::Cuda(_) => Err(crate::error::Error::GpuUnavailable(crate::error::GpuUnavailable::NotBuilt)),
        #[cfg(not(feature = "gpu"))]
        Device::Auto => Ok(None),
    }
}
