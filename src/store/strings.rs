//! Reads and writes of string arrays through [`ArrayHandle`].

use ndarray::{ArrayD, ArrayView, Dimension};

use super::array::{ArrayHandle, DATA_SHAPE};
use super::config::ReadOptions;
use super::output::{new_output, shaped};
use super::state::{State, dictionary};
use crate::engine::{ArrayCtx, read_strings, write_strings};
use crate::error::{Error, GpuUnavailable, Result};
use crate::gpu::Device;
use crate::meta::DType;

fn is_string(dtype: DType) -> bool {
    dtype == DType::String
}

impl ArrayHandle {
    /// Reads the box `start .. start + shape` of a string array. Never-written elements
    /// read as the empty string.
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`] if the array does not hold
    /// strings; [`Error::OutOfMemory`] if the result does
    /// not fit in memory; otherwise as [`ArrayHandle::read_into`].
    pub fn read_strings(&self, start: &[u64], shape: &[u64]) -> Result<ArrayD<String>> {
        self.read_strings_with(start, shape, ReadOptions::default())
    }

    /// [`ArrayHandle::read_strings`] with `options`: `verify_checksums: false` skips the
    /// checksum of each block. String arrays are read on the CPU; `Device::Auto` does so.
    ///
    /// # Errors
    /// As [`ArrayHandle::read_strings`]; [`Error::GpuUnavailable`] for a CUDA device, as for
    /// every read the GPU cannot do.
    pub fn read_strings_with(&self, start: &[u64], shape: &[u64], options: ReadOptions) -> Result<ArrayD<String>> {
        let state = self.inner.read();
        let meta = self.checked_meta(&state, start, (shape, "shape"), DType::String, is_string)?;
        if let Device::Cuda(_) = options.device {
            let why = format!("{}: string arrays are read on the CPU (use Device::Cpu)", self.label);
            return Err(Error::GpuUnavailable(GpuUnavailable::Unsupported(why)));
        }
        let mut out = new_output(&self.label, shape)?;
        let dict = dictionary(meta);
        let ctx = ArrayCtx { meta, label: &self.label, dict: dict.as_ref(), cache: None };
        let lookup = |coord: &[u64]| state.find_block(meta.id, coord);
        read_strings(ctx, &lookup, start, shape, &mut out, options.verify_checksums)?;
        Ok(shaped(shape, out))
    }

    /// Writes strings with the first at `start`. An empty string is the fill value (null).
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`] if the array does not hold
    /// strings; [`Error::InvalidArgument`] if one chunk's
    /// strings exceed 256 MiB; otherwise as [`ArrayHandle::write`].
    #[allow(clippy::needless_pass_by_value)] // a view is a cheap handle; by value as in ndarray
    pub fn write_strings<S: AsRef<str> + Sync + Clone, D: Dimension>(
        &self,
        start: &[u64],
        data: ArrayView<'_, S, D>,
    ) -> Result<()> {
        let shape: Vec<u64> = data.shape().iter().map(|&n| n as u64).collect();
        let data = data.as_standard_layout();
        let input = data.as_slice().expect("standard layout is contiguous");
        let mut guard = self.inner.write();
        self.inner.check_before_change(&guard, |state| {
            self.checked_meta(state, start, (&shape, DATA_SHAPE), DType::String, is_string).map(drop)
        })?;
        if shape.contains(&0) {
            return Ok(());
        }
        self.inner.change(&mut guard, |state| self.write_strings_in(state, start, &shape, input))
    }

    /// [`Self::write_strings`] in a change begun, checked and encoded against its (maybe
    /// newer) schema.
    fn write_strings_in<S: AsRef<str> + Sync + Clone>(
        &self,
        state: &mut State,
        start: &[u64],
        shape: &[u64],
        input: &[S],
    ) -> Result<()> {
        let meta = self.checked_meta(state, start, (shape, DATA_SHAPE), DType::String, is_string)?.clone();
        let dict = dictionary(&meta);
        let ctx = ArrayCtx { meta: &meta, label: &self.label, dict: dict.as_ref(), cache: None };
        let written = self.append_unrecorded(state, &meta, |lookup, settings, sink| {
            write_strings(ctx, lookup, start, shape, input, settings, sink)
        })?;
        state.record(written);
        Ok(())
    }

    /// Appends strings along axis 0; see [`ArrayHandle::append`].
    ///
    /// # Errors
    /// As [`ArrayHandle::append`] and [`ArrayHandle::write_strings`].
    #[allow(clippy::needless_pass_by_value)] // as `write_strings`
    pub fn append_strings<S: AsRef<str> + Sync + Clone, D: Dimension>(&self, data: ArrayView<'_, S, D>) -> Result<()> {
        let shape: Vec<u64> = data.shape().iter().map(|&n| n as u64).collect();
        let data = data.as_standard_layout();
        let input = data.as_slice().expect("standard layout is contiguous");
        self.append_with(&shape, (DType::String, is_string), |state, start| {
            self.write_strings_in(state, start, &shape, input)
        })
    }
}
