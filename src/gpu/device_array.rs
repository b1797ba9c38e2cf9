//! [`DeviceArray`]: the result of a read that stays on the GPU.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};

use super::context::gpu_error;
use crate::error::Result;
use crate::meta::DType;

/// An array in GPU memory: C-order elements of `dtype`, little-endian, `shape` long, owned
/// by this value. The read that made it has finished on its stream, so the data can be used
/// on any stream of the same device. Dropping it waits for the device's pending work first
/// (other libraries may still be reading it on their streams), then frees the memory.
#[derive(Debug)]
pub struct DeviceArray {
    pub(crate) data: CudaSlice<u8>,
    pub(crate) shape: Vec<u64>,
    pub(crate) dtype: DType,
    pub(crate) stream: Arc<CudaStream>,
}

impl DeviceArray {
    /// Extent per dimension.
    #[must_use]
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// Element type.
    #[must_use]
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The CUDA device it lives on.
    #[must_use]
    pub fn ordinal(&self) -> usize {
        self.stream.context().ordinal()
    }

    /// Length of the data in bytes.
    #[must_use]
    pub fn len_bytes(&self) -> usize {
        let elems: u64 = self.shape.iter().product();
        usize::try_from(elems).expect("it is in memory") * self.dtype.size_bytes()
    }

    /// The device address of the first element (a `CUdeviceptr`), valid while `self` lives:
    /// for handing the data to other CUDA code (`DLPack`, `__cuda_array_interface__`).
    #[must_use]
    pub fn device_ptr(&self) -> u64 {
        let (ptr, _sync) = self.data.device_ptr(&self.stream);
        ptr
    }

    /// The stream the read ran on.
    #[must_use]
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The device buffer (at least one byte long, even for an empty array: its first
    /// [`DeviceArray::len_bytes`] bytes are the data).
    #[must_use]
    pub fn data(&self) -> &CudaSlice<u8> {
        &self.data
    }

    /// Copies the data to the host: C-order little-endian element bytes. For a typed array,
    /// `DeviceArray::to_host`.
    ///
    /// # Errors
    /// [`crate::Error::Gpu`].
    pub fn to_host_bytes(&self) -> Result<Vec<u8>> {
        let mut bytes = self.stream.clone_dtoh(&self.data).map_err(gpu_error)?;
        bytes.truncate(self.len_bytes());
        Ok(bytes)
    }
}

impl Drop for DeviceArray {
    fn drop(&mut self) {
        // The memory goes back to the stream-ordered pool on our stream, which knows nothing
        // of work other libraries queued on theirs: let that finish first.
        if let Err(e) = self.stream.context().synchronize() {
            log::error!("atlas: synchronizing before freeing a device array failed: {e}");
        }
    }
}
