//! Reads whose result stays on a GPU (feature `gpu`), and typed copies back to the host.

use ndarray::{ArrayD, IxDyn};

use super::Atlas;
use super::array::ArrayHandle;
use super::config::{Element, ReadOptions};
use super::output::{refuse_unaddressable, stacked_extent};
use crate::error::{Error, GpuUnavailable, Result};
use crate::gpu::{self, Device, DeviceArray};
use crate::meta::DType;

impl ArrayHandle {
    /// Reads the box `start .. start + shape` into GPU memory: the blocks are gathered from
    /// the fragments, uploaded in one transfer, decoded with one nvCOMP batch per codec,
    /// unshuffled on the GPU and laid out in C order. A block the GPU fails to decode, or
    /// whose checksum does not match, is decoded on the CPU instead. With
    /// `verify_checksums` (the default) the decoded chunks are hashed on the GPU; only
    /// chunks of at most 240 bytes or over 64 MiB are copied to the host to be hashed there
    /// (docs/GUARANTEES.md, section 4).
    ///
    /// `options.device` picks the GPU: [`Device::Cuda`] or [`Device::Auto`] (device 0).
    ///
    /// # Errors
    /// [`Error::GpuUnavailable`] saying what is missing (and for [`Device::Cpu`] or string
    /// arrays); [`Error::Gpu`] when a CUDA call fails; [`Error::OutOfMemory`] when the result
    /// could not be held in memory; otherwise as [`ArrayHandle::read_into`].
    pub fn read_to_device(&self, start: &[u64], shape: &[u64], options: ReadOptions) -> Result<DeviceArray> {
        // Any dtype: the result keeps the array's.
        self.with_read_slot(start, shape, (DType::UInt8, |_| true), |slot, meta| {
            // Checked before the read is laid out: its plan is built in host memory first.
            refuse_unaddressable(&self.label, shape, meta.dtype.size_bytes())?;
            let gpu = cuda_target(options.device)?;
            gpu.read_to_device(slot, shape, (shape.to_vec(), meta.dtype), options.verify_checksums)
        })
    }
}

impl Atlas {
    /// As [`Atlas::read_array_across_stacked`], into GPU memory: one array of shape
    /// `(datasets.len(), *shape)`, row `i` dataset `i`'s box, read as
    /// [`ArrayHandle::read_to_device`] reads (all datasets' blocks in one upload).
    ///
    /// # Errors
    /// As [`Atlas::read_array_across_stacked_into`] and [`ArrayHandle::read_to_device`].
    pub fn read_array_across_stacked_to_device(
        &self,
        array: &str,
        datasets: &[impl AsRef<str>],
        start: &[u64],
        shape: &[u64],
        options: ReadOptions,
    ) -> Result<DeviceArray> {
        let datasets: Vec<&str> = datasets.iter().map(AsRef::as_ref).collect();
        self.with_across_slots(array, &datasets, (start, shape), (DType::UInt8, |_| true), |slots, meta| {
            let stacked = stacked_extent(datasets.len(), shape);
            refuse_unaddressable(array, &stacked, meta.dtype.size_bytes())?;
            let gpu = cuda_target(options.device)?;
            gpu.read_to_device(slots, shape, (stacked, meta.dtype), options.verify_checksums)
        })
    }
}

/// The GPU a read to device memory runs on: [`Device::Cuda`], or device 0 for
/// [`Device::Auto`].
fn cuda_target(device: Device) -> Result<gpu::Target> {
    let device = match device {
        Device::Auto => Device::Cuda(0),
        Device::Cpu => {
            let why = "a read to the device needs Device::Cuda or Device::Auto".to_string();
            return Err(Error::GpuUnavailable(GpuUnavailable::Unsupported(why)));
        }
        cuda @ Device::Cuda(_) => cuda,
    };
    Ok(gpu::resolve(device)?.expect("a CUDA device resolves to a GPU or an error"))
}

impl DeviceArray {
    /// Copies the array to the host as an `ndarray` of `T`.
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`] if `T` does not fit the dtype; [`Error::Gpu`].
    pub fn to_host<T: Element>(&self) -> Result<ArrayD<T>> {
        if !T::matches(self.dtype()) {
            return Err(Error::dtype_mismatch("(device array)", self.dtype(), T::DTYPE));
        }
        let bytes = self.to_host_bytes()?;
        let dims: Vec<usize> = self.shape().iter().map(|&n| usize::try_from(n).expect("it is in memory")).collect();
        let mut out = vec![T::default(); dims.iter().product()];
        T::read_via_bytes(&mut out, |dst| {
            dst.copy_from_slice(&bytes);
            Ok(())
        })?;
        Ok(ArrayD::from_shape_vec(IxDyn(&dims), out).expect("length is the product of the shape"))
    }
}
