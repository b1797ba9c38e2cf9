//! Many boxes of one array in one call ([`ArrayHandle::read_boxes`]): random patches for a
//! training loop, probes in a notebook. The engine decodes each chunk once for all the
//! boxes it feeds (`engine::read_boxes`).

use ndarray::ArrayD;

use super::array::ArrayHandle;
use super::config::{Element, ReadOptions};
use super::output::{new_output, shaped, stacked_extent};
use super::state::{State, dictionary};
use crate::engine::ArrayCtx;
use crate::error::{Error, Result, counted};
use crate::gpu;
use crate::meta::{ArrayMeta, DType, checked_product};

impl ArrayHandle {
    /// Reads boxes of one extent, `shape`, starting at each of `starts`, into one new array
    /// of shape `(starts.len(), *shape)`: entry `i` is the box at `starts[i]`, as
    /// [`ArrayHandle::read`] reads it. On the CPU, every chunk the boxes touch is decoded
    /// once for the whole call, however many boxes it feeds, so many small boxes sharing
    /// chunks read much faster than with a call each (a GPU read, too, decodes each chunk once).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use atlas::{ArraySpec, Atlas, DType, StoreConfig};
    /// use ndarray::Array2;
    ///
    /// let store = Atlas::create(dir.path().join("store"), StoreConfig::default())?;
    /// let ds = store.create_dataset("images")?;
    /// let spec = ArraySpec::new(DType::UInt8, [64, 64]).chunk_shape([32, 32]);
    /// let image = ds.define_array("frame", spec)?;
    /// image.write(&[0, 0], Array2::from_shape_fn((64, 64), |(y, x)| (y + x) as u8).view())?;
    ///
    /// // Three 8x8 patches, one of them across four chunks.
    /// let patches = image.read_boxes::<u8, _>(&[[0, 0], [28, 28], [56, 40]], &[8, 8])?;
    /// assert_eq!(patches.shape(), [3, 8, 8]);
    /// assert_eq!(patches[[1, 0, 0]], 56);
    /// # Ok::<(), atlas::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`ArrayHandle::read_boxes_into`], except that no output length can be wrong;
    /// [`Error::OutOfMemory`] if the result does not fit in memory.
    pub fn read_boxes<T: Element, S: AsRef<[u64]>>(&self, starts: &[S], shape: &[u64]) -> Result<ArrayD<T>> {
        self.read_boxes_with(starts, shape, ReadOptions::default())
    }

    /// [`ArrayHandle::read_boxes`] with `options`, as [`ArrayHandle::read_with`].
    ///
    /// # Errors
    /// As [`ArrayHandle::read_boxes`].
    pub fn read_boxes_with<T: Element, S: AsRef<[u64]>>(
        &self,
        starts: &[S],
        shape: &[u64],
        options: ReadOptions,
    ) -> Result<ArrayD<T>> {
        let starts: Vec<&[u64]> = starts.iter().map(AsRef::as_ref).collect();
        // The request is checked before its output is allocated.
        self.checked_boxes(&self.inner.read(), &starts, shape, (T::DTYPE, T::matches))?;
        let extent = stacked_extent(starts.len(), shape);
        let mut out = new_output(&self.label, &extent)?;
        self.read_boxes_into(&starts, shape, &mut out, options)?;
        Ok(shaped(&extent, out))
    }

    /// Reads boxes of extent `shape` starting at each of `starts` into `out`, which holds
    /// `starts.len()` boxes one after the other, each in C order (box `i` from element
    /// `i * product(shape)` on). Boxes may overlap, repeat and come in any order. Chunks
    /// never written read as the fill value. With no boxes, the call only checks the
    /// array, `T` and `shape`.
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`] if `T` is not the array's dtype; [`Error::ShapeMismatch`] if
    /// a start or `shape` has the wrong number of dimensions or `out` the wrong length;
    /// [`Error::OutOfBounds`] for the first box (in the order given) outside the array;
    /// [`Error::ChecksumMismatch`] or [`Error::Corrupt`] if a block on disk is damaged;
    /// [`Error::Io`], [`Error::GpuUnavailable`], [`Error::Gpu`] as [`ArrayHandle::read_into`].
    pub fn read_boxes_into<T: Element, S: AsRef<[u64]>>(
        &self,
        starts: &[S],
        shape: &[u64],
        out: &mut [T],
        options: ReadOptions,
    ) -> Result<()> {
        let target = gpu::resolve(options.device)?;
        let starts: Vec<&[u64]> = starts.iter().map(AsRef::as_ref).collect();
        let state = self.inner.read();
        let meta = self.checked_boxes(&state, &starts, shape, (T::DTYPE, T::matches))?;
        let extent = stacked_extent(starts.len(), shape);
        if checked_product(&extent) != Some(out.len() as u64) {
            let what = format!("{} of shape {shape:?}", counted(starts.len(), "box", "boxes"));
            return Err(Error::buffer_len(&self.label, &what, &extent, out.len()));
        }
        let dict = dictionary(meta);
        let ctx = ArrayCtx { meta, label: &self.label, dict: dict.as_ref(), cache: None };
        let lookup = |coord: &[u64]| state.find_block(meta.id, coord);
        let verify = options.verify_checksums;
        T::read_via_bytes(out, |bytes| gpu::read_boxes_on(target.as_ref(), ctx, &lookup, &starts, shape, bytes, verify))
    }

    /// The array's schema once the boxes of `shape` at `starts` are checked as a read of
    /// each checks them (the first failing box's error); with no boxes, `shape` at the
    /// origin. `dtype` is the caller's element type: its dtype and the dtypes it accepts.
    fn checked_boxes<'s>(
        &self,
        state: &'s State,
        starts: &[&[u64]],
        shape: &[u64],
        dtype: (DType, fn(DType) -> bool),
    ) -> Result<&'s ArrayMeta> {
        let ndim = self.meta_in(state)?.shape.len();
        let origin = vec![0; ndim];
        let first = starts.first().copied().unwrap_or(&origin);
        let meta = self.checked_meta(state, first, (shape, "shape"), dtype.0, dtype.1)?;
        for start in starts.iter().skip(1) {
            self.checked_meta(state, start, (shape, "shape"), dtype.0, dtype.1)?;
        }
        Ok(meta)
    }
}
