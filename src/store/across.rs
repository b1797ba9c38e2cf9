//! Reading one array across many datasets ([`Atlas::read_array_across`] and its stacked
//! forms): the workload of many small datasets (e.g. ocean profiles) sharing array names.
//! One snapshot, one parallel engine request for all datasets.

use ndarray::ArrayD;

use super::Atlas;
use super::config::{Element, ReadOptions};
use super::output::{new_output, shaped, stacked_extent};
use super::state::State;
use super::state::dictionary;
use crate::codec::ZstdDict;
use crate::engine::{ArrayCtx, Slot, SlotRead};
use crate::error::{EntityKind, Error, Result, counted};
use crate::gpu;
use crate::meta::{ArrayMeta, DType, checked_product};

impl Atlas {
    /// Reads the box `start .. start + shape` of the array named `array` in each of
    /// `datasets`, one array of `shape` per dataset, in the order given.
    ///
    /// Same as splitting [`read_array_across_stacked`](Atlas::read_array_across_stacked);
    /// the rules for missing and shorter arrays are given there.
    ///
    /// # Errors
    /// As [`Atlas::read_array_across_stacked_into`]; [`Error::OutOfMemory`] if the results do
    /// not fit in memory.
    pub fn read_array_across<T: Element>(
        &self,
        array: &str,
        datasets: &[impl AsRef<str>],
        start: &[u64],
        shape: &[u64],
    ) -> Result<Vec<ArrayD<T>>> {
        let stacked = self.read_array_across_stacked::<T>(array, datasets, start, shape)?;
        Ok(stacked.outer_iter().map(|one| one.to_owned()).collect())
    }

    /// Reads the box `start .. start + shape` of the array named `array` in each of
    /// `datasets` into one new array of shape `(datasets.len(), *shape)`: row `i` is
    /// `datasets[i]`'s box.
    ///
    /// The rules for missing and shorter arrays are those of
    /// [`read_array_across_stacked_into`](Atlas::read_array_across_stacked_into).
    ///
    /// # Errors
    /// As [`Atlas::read_array_across_stacked_into`], except that no output length can be
    /// wrong; [`Error::OutOfMemory`] if the result does not fit in memory.
    pub fn read_array_across_stacked<T: Element>(
        &self,
        array: &str,
        datasets: &[impl AsRef<str>],
        start: &[u64],
        shape: &[u64],
    ) -> Result<ArrayD<T>> {
        let datasets: Vec<&str> = datasets.iter().map(AsRef::as_ref).collect();
        let state = self.inner.read();
        let request = Request::check(&state, array, &datasets, start, shape, (T::DTYPE, T::matches))?;
        let extent = stacked_extent(datasets.len(), shape);
        let mut out = new_output(array, &extent)?;
        request.run(&state, start, shape, &mut out, ReadOptions::default())?;
        Ok(shaped(&extent, out))
    }

    /// Reads the box `start .. start + shape` of the array named `array` in each of
    /// `datasets` into `out`, which holds `datasets.len()` times `shape`'s elements: C
    /// order, dataset-major (dataset `i`'s box first element at `i * product(shape)`).
    ///
    /// - At least one dataset must be named, and every one must exist. The array must exist
    ///   in at least one of them, and
    ///   wherever it exists have the same dtype (which `T` must match) and the same number of
    ///   dimensions, which `start` and `shape` must have. Its extents and chunk shapes may
    ///   differ between datasets.
    /// - Where a dataset has no array of that name, its slot reads as the fill value of the
    ///   array in the first dataset listed that has it.
    /// - Where a dataset's array is shorter than `start + shape` along some dimension, the
    ///   elements beyond its extent read as that array's own fill value; a box entirely
    ///   outside it reads as that fill value throughout. No selection is out of bounds.
    /// - Chunks never written read as the fill value, as in [`ArrayHandle::read`].
    /// - All datasets are read from one snapshot (the call holds the handle's state lock
    ///   throughout), including this handle's uncommitted writes. `options` as for
    ///   [`ArrayHandle::read_into`] (checksums verified by default; the device).
    /// - The datasets are read in parallel on the engine's pool; calling this from the
    ///   caller's own rayon tasks is fine.
    ///
    /// [`ArrayHandle::read`]: crate::ArrayHandle::read
    /// [`ArrayHandle::read_into`]: crate::ArrayHandle::read_into
    ///
    /// # Errors
    /// [`Error::NotFound`] if a dataset does not exist, or none of them has the array;
    /// [`Error::DTypeMismatch`] if `T` is not the array's dtype in every dataset;
    /// [`Error::ShapeMismatch`] if the arrays' numbers of dimensions differ, `start`/`shape`
    /// have another, or `out` has the wrong length; [`Error::InvalidArgument`] if `T` reads
    /// each but their dtypes differ (int64 and timestamp arrays, both read as `i64`), if no
    /// dataset is named, or if `start + shape` overflows; [`Error::OutOfMemory`] if the result's elements or bytes
    /// overflow;
    /// [`Error::ChecksumMismatch`] or [`Error::Corrupt`] if a block on disk is damaged (the
    /// contents of `out` are then unspecified); [`Error::Io`], [`Error::GpuUnavailable`],
    /// [`Error::Gpu`] as [`ArrayHandle::read_into`](crate::ArrayHandle::read_into).
    pub fn read_array_across_stacked_into<T: Element>(
        &self,
        array: &str,
        datasets: &[impl AsRef<str>],
        start: &[u64],
        shape: &[u64],
        out: &mut [T],
        options: ReadOptions,
    ) -> Result<()> {
        let datasets: Vec<&str> = datasets.iter().map(AsRef::as_ref).collect();
        let state = self.inner.read();
        let request = Request::check(&state, array, &datasets, start, shape, (T::DTYPE, T::matches))?;
        if out.len() != request.total_elems {
            let what = format!("{} of shape {shape:?}", counted(datasets.len(), "dataset's box", "datasets' boxes"));
            return Err(Error::buffer_len(array, &what, &stacked_extent(datasets.len(), shape), out.len()));
        }
        request.run(&state, start, shape, out, options)
    }

    /// Runs `read` with the slots of an engine read of `array`'s box across `datasets` (one
    /// per dataset, as `read_array_across_stacked_into` lays them out) and the schema of the
    /// first dataset having the array, after the checks of that call (`dtype`: the caller's
    /// dtype and the dtypes it accepts), under the store's read lock.
    #[cfg(feature = "gpu")]
    pub(crate) fn with_across_slots<R>(
        &self,
        array: &str,
        datasets: &[&str],
        (start, shape): (&[u64], &[u64]),
        dtype: (DType, fn(DType) -> bool),
        read: impl FnOnce(&[Slot<'_, '_>], &ArrayMeta) -> Result<R>,
    ) -> Result<R> {
        let state = self.inner.read();
        let request = Request::check(&state, array, datasets, start, shape, dtype)?;
        request.with_slots(&state, start, shape, |slots| read(slots, request.first))
    }
}

/// A checked request: the array's schema in each dataset.
struct Request<'s> {
    /// Per dataset: `dataset/array` and the schema, `None` where the array is missing.
    arrays: Vec<(String, Option<&'s ArrayMeta>)>,
    /// The schema in the first dataset that has the array.
    first: &'s ArrayMeta,
    /// Elements of the whole output.
    total_elems: usize,
}

impl<'s> Request<'s> {
    /// Checks a request against `state` (see `read_array_across_stacked_into` for the rules).
    fn check(
        state: &'s State,
        array: &str,
        datasets: &[&str],
        start: &[u64],
        shape: &[u64],
        (given, accepts): (DType, fn(DType) -> bool),
    ) -> Result<Self> {
        if datasets.is_empty() {
            // Not "array not found": which array, and its dtype, would be unknown.
            return Err(Error::invalid(format!("no datasets given to read {array} across")));
        }
        let mut arrays = Vec::with_capacity(datasets.len());
        for &dataset in datasets {
            arrays.push((format!("{dataset}/{array}"), state.dataset(dataset)?.arrays.get(array)));
        }
        let mut found = arrays.iter().filter_map(|(label, meta)| meta.map(|meta| (label, meta)));
        let Some((first_label, first)) = found.next() else {
            return Err(Error::not_found(EntityKind::Array, array));
        };
        if !accepts(first.dtype) {
            return Err(Error::dtype_mismatch(first_label, first.dtype, given));
        }
        let ndim = first.shape.len();
        for (label, meta) in found {
            if !accepts(meta.dtype) {
                return Err(Error::dtype_mismatch(label, meta.dtype, given));
            }
            if meta.dtype != first.dtype {
                // `T` reads both (`i64` reads int64 and timestamp arrays), but not mixed.
                return Err(Error::invalid(format!(
                    "{label} holds {} where {first_label} holds {}: the arrays read across datasets must have one dtype",
                    meta.dtype, first.dtype
                )));
            }
            if meta.shape.len() != ndim {
                let detail = format!(
                    "its shape {:?} has {}; {first_label} has {ndim} (shape {:?})",
                    meta.shape,
                    counted(meta.shape.len(), "dimension", "dimensions"),
                    first.shape
                );
                return Err(Error::ShapeMismatch {
                    array: label.clone(),
                    expected: first.shape.clone(),
                    found: meta.shape.clone(),
                    detail,
                });
            }
        }
        if start.len() != ndim {
            return Err(Error::dims(first_label, "start", start, &first.shape));
        }
        if shape.len() != ndim {
            return Err(Error::dims(first_label, "shape", shape, &first.shape));
        }
        if start.iter().zip(shape).any(|(s, n)| s.checked_add(*n).is_none()) {
            return Err(Error::invalid(format!("{first_label}: start {start:?} + shape {shape:?} overflows")));
        }
        let total_elems = checked_product(shape)
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| n.checked_mul(datasets.len()))
            .filter(|n| n.checked_mul(first.dtype.size_bytes()).is_some())
            .ok_or_else(|| {
                Error::out_of_memory(format!("{first_label}: {} selections of shape {shape:?}", datasets.len()))
            })?;
        Ok(Self { arrays, first, total_elems })
    }

    /// Reads every dataset's box into its slot of `out` (checked to hold them all).
    fn run<T: Element>(
        &self,
        state: &State,
        start: &[u64],
        shape: &[u64],
        out: &mut [T],
        options: ReadOptions,
    ) -> Result<()> {
        let target = gpu::resolve(options.device)?;
        let elem_bytes = self.first.dtype.size_bytes();
        let verify = options.verify_checksums;
        self.with_slots(state, start, shape, |slots| {
            T::read_via_bytes(out, |bytes| gpu::read_slots_on(target.as_ref(), slots, shape, elem_bytes, bytes, verify))
        })
    }

    /// Runs `read` with one engine slot per dataset: its box clipped to its array's extent,
    /// or the fill value where it has no such array.
    fn with_slots<R>(
        &self,
        state: &State,
        start: &[u64],
        shape: &[u64],
        read: impl FnOnce(&[Slot<'_, '_>]) -> Result<R>,
    ) -> Result<R> {
        let at = vec![0; shape.len()];
        // Each box clipped to its array's extent; it lands at its slot's origin either way.
        let clipped: Vec<Vec<u64>> = self
            .arrays
            .iter()
            .map(|(_, meta)| {
                let extent = meta.map_or(&[][..], |m| &m.shape[..]);
                extent
                    .iter()
                    .zip(start.iter().zip(shape))
                    .map(|(&e, (&s, &n))| (s + n).min(e).saturating_sub(s))
                    .collect()
            })
            .collect();
        let lookups: Vec<_> = self
            .arrays
            .iter()
            .map(|(_, meta)| {
                let id = meta.map(|m| m.id);
                move |coord: &[u64]| id.and_then(|id| state.find_block(id, coord))
            })
            .collect();
        let dicts: Vec<Option<ZstdDict>> = self.arrays.iter().map(|(_, meta)| meta.and_then(dictionary)).collect();
        let missing_fill = self.first.fill_bytes();
        let slots: Vec<Slot<'_, '_>> = self
            .arrays
            .iter()
            .zip(clipped.iter().zip(&lookups).zip(&dicts))
            .map(|((label, meta), ((clipped, lookup), dict))| match meta {
                Some(meta) => {
                    let ctx = ArrayCtx { meta, label, dict: dict.as_ref(), cache: None };
                    Slot::Read(SlotRead { ctx, lookup, start, shape: clipped, at: &at })
                }
                None => Slot::Fill(&missing_fill),
            })
            .collect();
        read(&slots)
    }
}
