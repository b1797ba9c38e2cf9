//! [`Dataset`]: a named group of arrays and attributes.

use std::sync::Arc;

use super::array::ArrayHandle;
use super::attrs::{AttrTarget, Attrs};
use super::config::{ArraySpec, DEFAULT_CHUNK_BYTES, Element, ReadOptions, chunk_shape_within};
use super::state::{Inner, State};
use crate::error::{EntityKind, Error, Result};
use crate::meta::{ArrayMeta, ArrayStats, Attributes, BlockStats, DType, MAX_NDIM, Scalar, validate_name};

/// A handle on one dataset of a store, by name. Cheap to clone. Each call goes to the
/// dataset of that name at the time of the call: it fails with [`Error::NotFound`] while
/// the dataset is deleted, and reaches one created again under the name.
#[derive(Debug, Clone)]
pub struct Dataset {
    inner: Arc<Inner>,
    name: String,
}

impl Dataset {
    pub(crate) fn new(inner: Arc<Inner>, name: &str) -> Self {
        Self { inner, name: name.to_string() }
    }

    /// The dataset's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Defines a new array from `spec`; it reads as the fill value until written.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::AlreadyExists`], [`Error::InvalidArgument`] for a
    /// schema that does not hold together (dims or chunk shape of the wrong length, a zero
    /// chunk extent, a fill value the dtype cannot hold, a chunk over 256 MiB or over this
    /// handle's [`Limits::max_chunk_bytes`](crate::Limits), which a default chunk shape
    /// stays within...),
    /// [`Error::Locked`].
    pub fn define_array(&self, name: &str, spec: ArraySpec) -> Result<ArrayHandle> {
        validate_name(EntityKind::Array, name)?;
        let mut meta = self
            .new_array_meta(spec)
            .map_err(|detail| Error::invalid(format!("cannot define {}/{name}: {detail}", self.name)))?;
        let mut state = self.inner.write();
        let refuse_existing = |state: &State| {
            if state.dataset(&self.name)?.arrays.contains_key(name) {
                return Err(Error::already_exists(EntityKind::Array, format!("{}/{name}", self.name)));
            }
            Ok(())
        };
        // Refused before taking the writer lock, and again on the newest commit it loads.
        self.inner.check_before_change(&state, refuse_existing)?;
        self.inner.change(&mut state, |state| {
            refuse_existing(state)?;
            meta.id = state.allocate_array_id(&self.inner.dir)?;
            state.dataset_mut(&self.name)?.arrays.insert(name.to_string(), meta);
            Ok(())
        })?;
        Ok(ArrayHandle::new(self.inner.clone(), &self.name, name))
    }

    /// The schema `spec` asks for, or what makes it unusable.
    fn new_array_meta(&self, spec: ArraySpec) -> std::result::Result<ArrayMeta, String> {
        let ndim = spec.shape.len();
        // Checked first: the default names and chunk shape take time per dimension.
        if ndim > MAX_NDIM {
            return Err(format!("{ndim} dimensions is over the limit of {MAX_NDIM}"));
        }
        let dims = spec.dims.unwrap_or_else(|| (0..ndim).map(|d| format!("dim_{d}")).collect());
        let max_chunk_bytes = self.inner.limits.max_chunk_bytes;
        let chunk_shape = spec
            .chunk_shape
            .unwrap_or_else(|| chunk_shape_within(&spec.shape, spec.dtype, DEFAULT_CHUNK_BYTES.min(max_chunk_bytes)));
        let mut meta = ArrayMeta {
            id: 0,
            dtype: spec.dtype,
            shape: spec.shape,
            chunk_shape,
            dims,
            fill_value: standard_nan(spec.fill_value),
            codec: spec.codec,
            shuffle: spec.shuffle,
            attributes: Attributes::new(),
            stats: None,
            train_dictionary: spec.train_dictionary,
            zstd_dictionary: None,
        };
        meta.check()?;
        refuse_unusable_strings(&meta)?;
        refuse_vanishing_fill(&meta)?;
        meta.fill_value = narrowed_fill(&meta);
        // What this handle's limit would refuse at the flush, and at every load after it.
        let raw = meta.raw_chunk_bytes().unwrap_or(u64::MAX);
        if raw > max_chunk_bytes {
            return Err(format!(
                "a chunk of {raw} raw bytes is over this handle's max_chunk_bytes of {max_chunk_bytes}"
            ));
        }
        Ok(meta)
    }

    /// A handle on an existing array.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn array(&self, name: &str) -> Result<ArrayHandle> {
        self.inner.read().array(&self.name, name)?;
        Ok(ArrayHandle::new(self.inner.clone(), &self.name, name))
    }

    /// Deletes an array; its blocks become unreachable.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Locked`].
    pub fn delete_array(&self, name: &str) -> Result<()> {
        let mut state = self.inner.write();
        self.inner.check_before_change(&state, |state| state.array(&self.name, name).map(drop))?;
        self.inner.change(&mut state, |state| {
            // Checked again: the change may have moved to a commit without the array.
            let removed = state.dataset_mut(&self.name)?.arrays.remove(name);
            removed.map(drop).ok_or_else(|| Error::not_found(EntityKind::Array, format!("{}/{name}", self.name)))
        })
    }

    /// Names of the dataset's arrays, sorted.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the dataset was deleted.
    pub fn list_arrays(&self) -> Result<Vec<String>> {
        Ok(self.inner.read().dataset(&self.name)?.arrays.keys().cloned().collect())
    }

    /// Whether the dataset has an array `name` (false once the dataset is deleted).
    #[must_use]
    pub fn array_exists(&self, name: &str) -> bool {
        self.inner.read().array(&self.name, name).is_ok()
    }

    /// The lengths of the axes named `dim` in the dataset's arrays, one per such axis (a
    /// check that an array fits beside the others, say, without copying every schema).
    ///
    /// # Errors
    /// [`Error::NotFound`] if the dataset was deleted.
    pub fn dim_lengths(&self, dim: &str) -> Result<Vec<u64>> {
        let state = self.inner.read();
        let arrays = state.dataset(&self.name)?.arrays.values();
        let axes = arrays.flat_map(|array| array.dims.iter().zip(&array.shape));
        Ok(axes.filter(|(name, _)| *name == dim).map(|(_, &len)| len).collect())
    }

    /// The schema of an array.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn array_meta(&self, name: &str) -> Result<ArrayMeta> {
        self.inner.read().array(&self.name, name).cloned()
    }

    /// Writes `data` into array `name` with its first element at `start`.
    /// Same as `self.array(name)?.write(start, data)`.
    ///
    /// # Errors
    /// See [`ArrayHandle::write`].
    pub fn write_array<T: Element, D: ndarray::Dimension>(
        &self,
        name: &str,
        start: &[u64],
        data: ndarray::ArrayView<'_, T, D>,
    ) -> Result<()> {
        self.array(name)?.write(start, data)
    }

    /// Reads the box `start .. start + shape` of array `name`.
    /// Same as `self.array(name)?.read(start, shape)`.
    ///
    /// # Errors
    /// See [`ArrayHandle::read`].
    pub fn read_array<T: Element>(&self, name: &str, start: &[u64], shape: &[u64]) -> Result<ndarray::ArrayD<T>> {
        self.array(name)?.read(start, shape)
    }

    /// Reads the box `start .. start + shape` of array `name` into `out` (C order).
    ///
    /// # Errors
    /// See [`ArrayHandle::read_into`].
    pub fn read_array_into<T: Element>(
        &self,
        name: &str,
        start: &[u64],
        shape: &[u64],
        out: &mut [T],
        options: ReadOptions,
    ) -> Result<()> {
        self.array(name)?.read_into(start, shape, out, options)
    }

    /// Reads strings of array `name`; see [`ArrayHandle::read_strings`].
    ///
    /// # Errors
    /// See [`ArrayHandle::read_strings`].
    pub fn read_strings(&self, name: &str, start: &[u64], shape: &[u64]) -> Result<ndarray::ArrayD<String>> {
        self.array(name)?.read_strings(start, shape)
    }

    /// Writes strings into array `name`; see [`ArrayHandle::write_strings`].
    ///
    /// # Errors
    /// See [`ArrayHandle::write_strings`].
    pub fn write_strings<S: AsRef<str> + Sync + Clone, D: ndarray::Dimension>(
        &self,
        name: &str,
        start: &[u64],
        data: ndarray::ArrayView<'_, S, D>,
    ) -> Result<()> {
        self.array(name)?.write_strings(start, data)
    }

    /// Changes the shape of array `name`; see [`ArrayHandle::resize`].
    ///
    /// # Errors
    /// See [`ArrayHandle::resize`].
    pub fn resize_array(&self, name: &str, new_shape: &[u64]) -> Result<()> {
        self.array(name)?.resize(new_shape)
    }

    /// Appends `data` to array `name` along axis 0; see [`ArrayHandle::append`].
    ///
    /// # Errors
    /// See [`ArrayHandle::append`].
    pub fn append_array<T: Element, D: ndarray::Dimension>(
        &self,
        name: &str,
        data: ndarray::ArrayView<'_, T, D>,
    ) -> Result<()> {
        self.array(name)?.append(data)
    }

    /// The statistics of array `name`; see [`ArrayHandle::stats`].
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Corrupt`] if a block's index entry holds statistics that
    /// cannot describe the block (a min above its max, more values than a chunk holds), when
    /// the statistics are merged from the entries: where none were committed, or this
    /// handle changed the array since (committed ones are used as they are).
    pub fn array_stats(&self, name: &str) -> Result<ArrayStats> {
        self.array(name)?.stats()
    }

    /// The statistics of every block of array `name`; see [`ArrayHandle::block_stats`].
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Corrupt`] if a block's index entry holds statistics that
    /// cannot describe the block (a min above its max, more values than a chunk holds).
    pub fn block_stats(&self, name: &str) -> Result<Vec<BlockStats>> {
        self.array(name)?.block_stats()
    }

    /// The dataset's attributes.
    #[must_use]
    pub fn attrs(&self) -> Attrs {
        Attrs::new(self.inner.clone(), AttrTarget::Dataset(self.name.clone()))
    }
}

/// Refuses what a string array could define but never use (a rule for new arrays only):
/// a zstd dictionary to train, which is trained from numeric chunks only.
fn refuse_unusable_strings(meta: &ArrayMeta) -> std::result::Result<(), String> {
    if meta.dtype == DType::String && meta.train_dictionary {
        return Err("string arrays do not train a zstd dictionary (only numeric arrays do)".into());
    }
    Ok(())
}

/// Refuses a float32 fill value that is not 0 but would be stored as 0 (below the smallest
/// float32), as a fill past the largest is refused: the array would read as another value
/// than the one its schema shows. Checked when an array is defined only, not on open: a
/// store made before the check still opens.
fn refuse_vanishing_fill(meta: &ArrayMeta) -> std::result::Result<(), String> {
    #[allow(clippy::cast_possible_truncation)] // narrowing is what is checked
    match meta.fill_value {
        Scalar::Float(v) if meta.dtype == DType::Float32 && v != 0.0 && v as f32 == 0.0 => {
            Err(format!("fill value {v:?} does not fit dtype float32: it would be stored as 0"))
        }
        _ => Ok(()),
    }
}

/// A float32 array's fill value as the float32 it is stored as (1/3 as 0.33333334, 2^24 + 1
/// as 2^24), so that the schema shows what unwritten elements read; others as they are.
fn narrowed_fill(meta: &ArrayMeta) -> Scalar {
    if meta.dtype != DType::Float32 {
        return meta.fill_value;
    }
    let bytes = meta.fill_bytes().try_into().expect("a float32 is 4 bytes");
    standard_nan(Scalar::Float(f64::from(f32::from_le_bytes(bytes))))
}

/// A NaN fill value as the standard NaN: the metadata keeps every NaN as `"NaN"`, so any
/// other NaN's bits would change at the next open, and with them what unwritten chunks
/// read and which chunks are stored as all fill.
fn standard_nan(fill: Scalar) -> Scalar {
    match fill {
        Scalar::Float(v) if v.is_nan() => Scalar::Float(f64::NAN),
        other => other,
    }
}
