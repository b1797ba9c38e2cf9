//! [`ArrayHandle`]: reads, writes and settings of one array.

use std::sync::Arc;

use ndarray::{ArrayD, ArrayView, Dimension};

use super::attrs::{AttrTarget, Attrs};
use super::config::{Element, ReadOptions};
use super::output::{new_output, shaped};
use super::pending::staging_cost;
use super::state::{Inner, State};
use super::state::{dictionary, write_settings};
use crate::codec::{MIN_TRAINING_SAMPLES, ZstdDict, training_samples};
use crate::engine::{
    ArrayCtx, Lookup, Sink, Slot, SlotRead, WriteSettings, plan, reaches_past, to_usize, trim_chunks,
    trim_string_chunks, write_region,
};
use crate::error::{Error, Result};
use crate::fragment::BlockEntry;
use crate::gpu;
use crate::meta::{ArrayMeta, ArrayStats, BlockStats, Codec, DType, MAX_DICTIONARY_BYTES, Shuffle, checked_product};

/// Chunks a dictionary is trained from, at most.
const MAX_TRAINING_SAMPLES: usize = 256;

/// Bytes of samples a dictionary is trained from, at most: zstd suggests about a hundred
/// times the dictionary's size; more costs time and memory (under the store's write lock)
/// for no better dictionary. Chunks so large that `MIN_TRAINING_SAMPLES` of them do not
/// fit (over 1 MiB) train none: a dictionary pays only on small chunks.
const MAX_TRAINING_BYTES: usize = 16 << 20;

/// What errors call the shape of a write's data (see [`ArrayHandle::checked_meta`]).
pub(super) const DATA_SHAPE: &str = "the data's shape";

/// A handle on one array of a dataset, by name. Cheap to clone. Each call goes to the
/// array of that name at the time of the call: it fails with [`Error::NotFound`] while
/// the array or its dataset is deleted, and reaches an array defined again under the name.
///
/// ```
/// # use atlas::{ArraySpec, Atlas, DType, StoreConfig};
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = Atlas::create(dir.path().join("s"), StoreConfig::default()).unwrap();
/// let spec = ArraySpec::new(DType::Float32, [100, 8]).chunk_shape([10, 8]);
/// let temp = store.create_dataset("run")?.define_array("temp", spec)?;
/// temp.write(&[10, 0], ndarray::Array2::<f32>::ones((5, 8)).view())?;
/// temp.append(ndarray::Array2::<f32>::zeros((1, 8)).view())?; // grows axis 0 to 101
/// store.flush()?;
/// assert_eq!(temp.shape()?, [101, 8]);
/// let rows = temp.read::<f32>(&[9, 0], &[2, 8])?; // row 9 is the fill value, 0
/// assert_eq!((rows[[0, 0]], rows[[1, 0]]), (0.0, 1.0));
/// # Ok::<(), atlas::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ArrayHandle {
    pub(super) inner: Arc<Inner>,
    dataset: String,
    name: String,
    pub(super) label: String,
}

impl ArrayHandle {
    pub(crate) fn new(inner: Arc<Inner>, dataset: &str, name: &str) -> Self {
        Self { inner, dataset: dataset.to_string(), name: name.to_string(), label: format!("{dataset}/{name}") }
    }

    /// The array's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the dataset holding the array (for the calls on [`Atlas`](crate::Atlas)
    /// that take a dataset and an array: `array_blocks`, `recompress_array`).
    #[must_use]
    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    /// The array's schema.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn meta(&self) -> Result<ArrayMeta> {
        self.inner.read().array(&self.dataset, &self.name).cloned()
    }

    /// The array's shape (elements per axis), without copying the rest of its schema (its
    /// attributes, a dictionary) as [`ArrayHandle::meta`] does.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the array or its dataset was deleted.
    pub fn shape(&self) -> Result<Vec<u64>> {
        Ok(self.inner.read().array(&self.dataset, &self.name)?.shape.clone())
    }

    /// The array's chunk shape, as [`ArrayHandle::shape`] gives its shape.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the array or its dataset was deleted.
    pub fn chunk_shape(&self) -> Result<Vec<u64>> {
        Ok(self.inner.read().array(&self.dataset, &self.name)?.chunk_shape.clone())
    }

    /// The array's dtype.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the array or its dataset was deleted.
    pub fn dtype(&self) -> Result<DType> {
        Ok(self.inner.read().array(&self.dataset, &self.name)?.dtype)
    }

    /// Reads the box `start .. start + shape` as a new array.
    ///
    /// A new output is zeroed memory, and a large one is paid for in page faults: reading
    /// often, [`ArrayHandle::read_into`] a buffer kept between calls is faster. How much
    /// depends on the allocator: with glibc, once a program has freed buffers of tens of MiB
    /// (a clone of a large array, say), new ones come from the heap and are zeroed again,
    /// which made the reads of `examples/05_codecs.rs` 3-5x slower.
    ///
    /// # Errors
    /// As [`ArrayHandle::read_into`], except that no output length can be wrong;
    /// [`Error::OutOfMemory`] if the result does not fit in memory.
    pub fn read<T: Element>(&self, start: &[u64], shape: &[u64]) -> Result<ArrayD<T>> {
        self.read_with(start, shape, ReadOptions::default())
    }

    /// [`ArrayHandle::read`] with `options`: `verify_checksums: false` skips the checksum
    /// of each block, `device` picks where blocks are decoded.
    ///
    /// # Errors
    /// As [`ArrayHandle::read`].
    pub fn read_with<T: Element>(&self, start: &[u64], shape: &[u64], options: ReadOptions) -> Result<ArrayD<T>> {
        // The request is checked before its output is allocated.
        self.checked_meta(&self.inner.read(), start, (shape, "shape"), T::DTYPE, T::matches)?;
        let mut out = new_output(&self.label, shape)?;
        self.read_into(start, shape, &mut out, options)?;
        Ok(shaped(shape, out))
    }

    /// Reads the whole array, at its shape when the read runs (as `arr[...]` in Python):
    /// [`ArrayHandle::read`] of the box from the origin to [`ArrayHandle::shape`]. A shrink
    /// by another thread between the two is met by reading again at the new shape (after a
    /// grow, the read gives the shape it began with).
    ///
    /// # Errors
    /// As [`ArrayHandle::read`], [`Error::NotFound`] if the array was deleted.
    pub fn read_all<T: Element>(&self) -> Result<ArrayD<T>> {
        loop {
            let shape = self.shape()?;
            match self.read(&vec![0; shape.len()], &shape) {
                Err(Error::OutOfBounds { array_shape, .. }) if array_shape != shape => {}
                result => return result,
            }
        }
    }

    /// Reads the box `start .. start + shape` into `out`, in C order. Chunks never written
    /// read as the fill value. After an error `out` holds whatever the read wrote before it
    /// stopped, the values of a damaged chunk included: a block is checked as its rows are
    /// copied out.
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`] if `T` is not the array's dtype; [`Error::ShapeMismatch`] if
    /// `start`/`shape` have the wrong number of dimensions or `out` the wrong length;
    /// [`Error::OutOfBounds`]; [`Error::ChecksumMismatch`] or [`Error::Corrupt`] if a block
    /// on disk is damaged; [`Error::Io`] reading this handle's unflushed blocks back, or
    /// an uncompressed block of 256 KiB or more (read with `pread`);
    /// [`Error::GpuUnavailable`] or [`Error::Gpu`] for a read on a GPU (`options.device`)
    /// that cannot run here or fails.
    pub fn read_into<T: Element>(
        &self,
        start: &[u64],
        shape: &[u64],
        out: &mut [T],
        options: ReadOptions,
    ) -> Result<()> {
        let target = gpu::resolve(options.device)?;
        let verify = options.verify_checksums;
        self.with_read_slot(start, shape, (T::DTYPE, T::matches), |slot, meta| {
            if out.len() as u64 != checked_product(shape).unwrap_or(u64::MAX) {
                let what = format!("a selection of shape {shape:?}");
                return Err(Error::buffer_len(&self.label, &what, shape, out.len()));
            }
            let elem_bytes = meta.dtype.size_bytes();
            T::read_via_bytes(out, |bytes| gpu::read_slots_on(target.as_ref(), slot, shape, elem_bytes, bytes, verify))
        })
    }

    /// Runs `read` with the box `start .. start + shape` as the one slot of an engine read
    /// (the whole output) and the array's schema, after checking the box and that the
    /// caller's type (`dtype`: its dtype and the dtypes it accepts) fits the array, under
    /// the store's read lock.
    pub(crate) fn with_read_slot<R>(
        &self,
        start: &[u64],
        shape: &[u64],
        dtype: (DType, fn(DType) -> bool),
        read: impl FnOnce(&[Slot<'_, '_>], &ArrayMeta) -> Result<R>,
    ) -> Result<R> {
        let state = self.inner.read();
        let meta = self.checked_meta(&state, start, (shape, "shape"), dtype.0, dtype.1)?;
        let dict = dictionary(meta);
        let cache = self.inner.chunk_cache();
        let ctx = ArrayCtx { meta, label: &self.label, dict: dict.as_ref(), cache };
        let lookup = |coord: &[u64]| state.find_block(meta.id, coord);
        let at = vec![0; shape.len()];
        let slot = Slot::Read(SlotRead { ctx, lookup: &lookup, start, shape, at: &at });
        read(std::slice::from_ref(&slot), meta)
    }

    /// Writes `data` with its first element at `start`. Chunks the data covers only in part
    /// keep their other elements. Durable at the next flush.
    ///
    /// A small write (its chunks hold at most 8 MiB, each counted as at least 256 bytes) is
    /// staged: its chunks are kept raw in memory, up to 64 MiB for the store handle (see
    /// `OpenOptions::staging_bytes`), and
    /// encoded when the store commits or the budget is reached. So many small writes (an
    /// element at a time, one small array in each of many datasets) neither encode a chunk
    /// again for each write nor store a copy of it each time, and are encoded side by side
    /// on the engine's threads.
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`], [`Error::ShapeMismatch`] (wrong number of dimensions),
    /// [`Error::OutOfBounds`], [`Error::Locked`], [`Error::Io`], [`Error::Codec`];
    /// [`Error::ChecksumMismatch`] or [`Error::Corrupt`] if the current block of a chunk the
    /// data covers only in part is damaged (it is decoded, and verified, to keep the rest).
    #[allow(clippy::needless_pass_by_value)] // a view is a cheap handle; by value as in ndarray
    pub fn write<T: Element, D: Dimension>(&self, start: &[u64], data: ArrayView<'_, T, D>) -> Result<()> {
        self.write_rows(start, &data, false)
    }

    /// Writes `data` at `start`; with `stage_tail`, the rows that fall in a chunk row this
    /// write leaves partly filled at the end of axis 0 are staged: kept raw in memory until
    /// a later write completes the chunk or the commit encodes them, so that appends of a
    /// few rows do not encode their chunk again each time. Without it, a small write is
    /// staged whole ([`rows_of_small_write`]). A write that trains the array's zstd
    /// dictionary is never staged.
    fn write_rows<T: Element, D: Dimension>(
        &self,
        start: &[u64],
        data: &ArrayView<'_, T, D>,
        stage_tail: bool,
    ) -> Result<()> {
        let shape: Vec<u64> = data.shape().iter().map(|&n| n as u64).collect();
        let data = data.as_standard_layout();
        let input = T::as_bytes(data.as_slice().expect("standard layout is contiguous"));
        let mut guard = self.inner.write();
        // Checked before taking the writer lock; an empty selection changes nothing.
        self.inner.check_before_change(&guard, |state| {
            self.checked_meta(state, start, (&shape, DATA_SHAPE), T::DTYPE, T::matches).map(drop)
        })?;
        if shape.contains(&0) {
            return Ok(());
        }
        self.inner.change(&mut guard, |state| self.write_rows_in::<T>(state, start, &shape, input, stage_tail))
    }

    /// [`Self::write_rows`] of `input` (raw elements of `shape`) in a change begun, which may
    /// have moved to a newer commit: checked and encoded against its schema.
    fn write_rows_in<T: Element>(
        &self,
        guard: &mut State,
        start: &[u64],
        shape: &[u64],
        input: &[u8],
        stage_tail: bool,
    ) -> Result<()> {
        let mut meta = self.checked_meta(guard, start, (shape, DATA_SHAPE), T::DTYPE, T::matches)?.clone();
        // A write of enough whole chunks trains the array's dictionary from them (until one
        // is trained) and encodes all its rows, staging none.
        let training = Self::training_sample_count(guard, &meta)
            .filter(|_| input.len() as u64 >= meta.chunk_bytes().saturating_mul(MIN_TRAINING_SAMPLES as u64));
        let staged_rows = match (training.is_some(), stage_tail) {
            (true, _) => 0,
            (false, true) => rows_to_stage(guard, self.inner.staging_bytes, &meta, start, shape)?,
            (false, false) => rows_of_small_write(guard, self.inner.staging_bytes, &meta, start, shape)?,
        };
        if let Some(samples) = training {
            meta.zstd_dictionary = Self::train_dictionary(guard, &meta, input, samples);
        }
        let dict = dictionary(&meta);
        let ctx = ArrayCtx { meta: &meta, label: &self.label, dict: dict.as_ref(), cache: None };
        // Axis 0 is the outermost, so its rows are consecutive byte ranges of the input.
        let split = if staged_rows == 0 {
            input.len()
        } else {
            to_usize(shape[0] - staged_rows) * (input.len() / to_usize(shape[0]))
        };
        let (encoded, staged) = input.split_at(split);
        let (mut part_start, mut part_shape) = (start.to_vec(), shape.to_vec());
        if let Some(rows) = part_shape.first_mut() {
            *rows -= staged_rows;
        }
        let mut written = Vec::new();
        if !encoded.is_empty() {
            written = self.append_unrecorded(guard, &meta, |lookup, settings, sink| {
                write_region(ctx, lookup, &part_start, &part_shape, encoded, settings, sink)
            })?;
        }
        // The rows staged come after those encoded (a later chunk row), so staging needs none
        // of their blocks; those are recorded once staging succeeded too, so a failed write
        // changes nothing.
        if !staged.is_empty() {
            (part_start[0], part_shape[0]) = (start[0] + shape[0] - staged_rows, staged_rows);
            guard.stage(&self.inner.data_dir(), ctx, &part_start, &part_shape, staged)?;
        }
        guard.record(written);
        // Kept only once its blocks are: a failed write leaves no dictionary behind.
        if training.is_some() {
            guard.array_mut(&self.dataset, &self.name)?.zstd_dictionary = meta.zstd_dictionary;
        }
        Ok(())
    }

    /// Changes the array's shape. Growing reads as the fill value in the new part;
    /// shrinking drops the data outside the new shape (chunks reaching past it are
    /// rewritten, so growing again later reads fill there). Durable at the next flush. The
    /// shape the array already has (on the newest commit) changes nothing and leaves no
    /// pending change; a handle that sees another shape takes the writer lock to compare
    /// on the newest commit (so [`Error::Locked`] is possible) and gives it back.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a shape of another number of dimensions;
    /// [`Error::InvalidArgument`] for a shape whose byte count overflows; [`Error::NotFound`],
    /// [`Error::Locked`], [`Error::Io`], [`Error::Codec`]; on a shrink,
    /// [`Error::ChecksumMismatch`] or [`Error::Corrupt`] if a chunk it trims is damaged.
    pub fn resize(&self, new_shape: &[u64]) -> Result<()> {
        let mut guard = self.inner.write();
        self.inner.check_before_change(&guard, |state| self.check_resize(state, new_shape))?;
        let same_shape = |state: &State| state.array(&self.dataset, &self.name).is_ok_and(|m| m.shape == new_shape);
        if self.inner.holds_on_newest(&guard, same_shape) {
            return Ok(());
        }
        let started = guard.session.is_none();
        let resized = self.inner.change(&mut guard, |state| self.resize_in(state, new_shape))?;
        // The array had that shape on the newest commit: nothing to commit, no lock to hold.
        if started && !resized {
            self.inner.discard(&mut guard);
        }
        Ok(())
    }

    /// [`Self::resize`] in a change begun, checked against its (maybe newer) schema;
    /// returns whether the shape changed.
    fn resize_in(&self, guard: &mut State, new_shape: &[u64]) -> Result<bool> {
        let mut meta = self.check_resize(guard, new_shape)?;
        if meta.shape == new_shape {
            return Ok(false);
        }
        // Chunks that reach past the new shape and may hold values: trim them.
        let shrinks = new_shape.iter().zip(&meta.shape).any(|(new, old)| new < old);
        if shrinks {
            let mut coords: Vec<Box<[u64]>> = guard
                .live_entries(meta.id)
                .into_iter()
                // An entry read from disk may name a coordinate of another length: not a
                // chunk of this array's grid, so nothing to trim.
                .filter(|e| e.coord.len() == new_shape.len() && !e.is_fill)
                .filter(|e| reaches_past(&e.coord, &meta.chunk_shape, &meta.shape, new_shape))
                .map(|e| e.coord.clone())
                .collect();
            coords.sort_unstable();
            let dict = dictionary(&meta);
            let ctx = ArrayCtx { meta: &meta, label: &self.label, dict: dict.as_ref(), cache: None };
            let trimmed = self.append_unrecorded(guard, &meta, |lookup, settings, sink| {
                if meta.dtype == DType::String {
                    trim_string_chunks(ctx, lookup, &coords, new_shape, settings, sink)
                } else {
                    trim_chunks(ctx, lookup, &coords, new_shape, settings, sink)
                }
            })?;
            guard.record(trimmed);
        }
        meta.shape = new_shape.to_vec();
        let session = guard.session.as_mut().expect("begin_change starts a session");
        session.reshaped.insert(meta.id);
        *guard.array_mut(&self.dataset, &self.name)? = meta;
        Ok(true)
    }

    /// Appends `data` along axis 0: the array grows by `data`'s first extent and `data` is
    /// written there. Its other extents must equal the array's.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the other extents differ or the array is 0-d; as
    /// [`ArrayHandle::resize`] and [`ArrayHandle::write`]. An append that fails leaves the
    /// array as it was, so it can be retried.
    #[allow(clippy::needless_pass_by_value)] // as `write`
    pub fn append<T: Element, D: Dimension>(&self, data: ArrayView<'_, T, D>) -> Result<()> {
        let shape: Vec<u64> = data.shape().iter().map(|&n| n as u64).collect();
        let data = data.as_standard_layout();
        let input = T::as_bytes(data.as_slice().expect("standard layout is contiguous"));
        self.append_with(&shape, (T::DTYPE, T::matches), |state, start| {
            self.write_rows_in::<T>(state, start, &shape, input, true)
        })
    }

    /// Grows axis 0 by `shape[0]` and has `write` put data of `shape` at the start it returns,
    /// all under one hold of the handle's state and in one change: so an append lands after
    /// every row committed by another writer (the change moves to the newest commit first)
    /// or appended through this handle from another thread. The shape and dtype (`given`:
    /// the caller's dtype and the dtypes it can be) are checked first, so a refused append
    /// changes nothing; an append whose write fails is taken back. Either way it can be
    /// retried.
    pub(super) fn append_with(
        &self,
        shape: &[u64],
        given: (DType, fn(DType) -> bool),
        write: impl FnOnce(&mut State, &[u64]) -> Result<()>,
    ) -> Result<()> {
        let mut guard = self.inner.write();
        self.inner.check_before_change(&guard, |state| self.check_append(state, shape, given).map(drop))?;
        if shape[0] == 0 {
            return Ok(());
        }
        self.inner.change(&mut guard, |state| {
            let meta = self.check_append(state, shape, given)?;
            let (from, id) = (meta.shape[0], meta.id);
            let mut grown = shape.to_vec();
            grown[0] = from.checked_add(shape[0]).ok_or_else(|| {
                Error::invalid(format!("{}: appending {} rows to {from} overflows axis 0", self.label, shape[0]))
            })?;
            let reshaped_before = state.session.as_ref().is_some_and(|session| session.reshaped.contains(&id));
            self.resize_in(state, &grown)?;
            let mut start = vec![0; shape.len()];
            start[0] = from;
            if shape.contains(&0) {
                return Ok(());
            }
            // Taken back whole, so that a session this append began is still released
            // unchanged (`release_if_unchanged`) and commits no stats for it.
            write(state, &start).inspect_err(|_| {
                if let Ok(meta) = state.array_mut(&self.dataset, &self.name) {
                    meta.shape[0] = from;
                }
                if let Some(session) = state.session.as_mut().filter(|_| !reshaped_before) {
                    session.reshaped.remove(&id);
                }
            })
        })
    }

    /// The array's schema, after checking that data of `shape` and dtype `given` can be
    /// appended to it: same number of dimensions, same extents past axis 0.
    fn check_append<'s>(
        &self,
        state: &'s State,
        shape: &[u64],
        given: (DType, fn(DType) -> bool),
    ) -> Result<&'s ArrayMeta> {
        let meta = self.meta_in(state)?;
        if !meta.shape.is_empty() && shape.len() != meta.shape.len() {
            return Err(Error::dims(&self.label, "the appended data's shape", shape, &meta.shape));
        }
        if meta.shape.is_empty() || shape[1..] != meta.shape[1..] {
            let needs = meta.shape.iter().skip(1).map(ToString::to_string).collect::<Vec<_>>().join(", ");
            let detail = if meta.shape.is_empty() {
                "a 0-d array cannot be appended to".to_string()
            } else {
                format!("the appended data's shape {shape:?} is not [n, {needs}] (the array's is {:?})", meta.shape)
            };
            return Err(Error::ShapeMismatch {
                array: self.label.clone(),
                expected: meta.shape.clone(),
                found: shape.to_vec(),
                detail,
            });
        }
        let origin = vec![0; shape.len()];
        self.checked_meta(state, &origin, (&origin, DATA_SHAPE), given.0, given.1)
    }

    /// Appends blocks produced by `produce` (given the chunk lookup, the encode settings and
    /// a sink) to the session's fragment and returns their entries, for the caller to record
    /// (`State::record`) once all of its change succeeded: a failed change gives them back
    /// (`Inner::change`).
    pub(super) fn append_unrecorded(
        &self,
        state: &mut State,
        meta: &ArrayMeta,
        produce: impl for<'l> FnOnce(&'l Lookup<'l, 'l>, WriteSettings, &mut Sink<'_>) -> Result<()>,
    ) -> Result<Vec<BlockEntry>> {
        let dict = dictionary(meta);
        let settings = write_settings(&state.meta, meta, dict.as_ref());
        // Each chunk is produced once per call, so lookups never need this call's own
        // blocks; they are recorded after the last one is appended.
        state.append_unrecorded(&self.inner.data_dir(), meta.id, |lookup, sink| produce(lookup, settings, sink))
    }

    /// How many chunk-sized samples a large enough write trains the array's dictionary
    /// from, when it would train one: asked for, none trained yet, zstd its codec, and
    /// chunks small enough (see [`MAX_TRAINING_BYTES`]).
    fn training_sample_count(state: &State, meta: &ArrayMeta) -> Option<usize> {
        if !meta.train_dictionary || meta.zstd_dictionary.is_some() {
            return None;
        }
        if !matches!(write_settings(&state.meta, meta, None).codec, Codec::Zstd { .. }) {
            return None;
        }
        let chunk_bytes = usize::try_from(meta.chunk_bytes()).ok().filter(|n| *n > 0)?;
        let count = (MAX_TRAINING_BYTES / chunk_bytes).min(MAX_TRAINING_SAMPLES);
        (count >= MIN_TRAINING_SAMPLES).then_some(count)
    }

    /// A zstd dictionary trained on the first `count` chunk-sized samples of `input`
    /// (shuffled as blocks will be); `None` when zstd cannot train one from them.
    fn train_dictionary(state: &State, meta: &ArrayMeta, input: &[u8], count: usize) -> Option<Vec<u8>> {
        let settings = write_settings(&state.meta, meta, None);
        let sample_len = usize::try_from(meta.chunk_bytes()).ok()?;
        let samples: Vec<&[u8]> = input.chunks_exact(sample_len).take(count).collect();
        let (data, sizes) = training_samples(&samples, settings.filter);
        let max_bytes = (data.len() / 16).min(MAX_DICTIONARY_BYTES);
        ZstdDict::train(&data, &sizes, max_bytes).map(|dict| dict.bytes().to_vec())
    }

    /// The array's schema with `new_shape`, checked.
    fn check_resize(&self, state: &State, new_shape: &[u64]) -> Result<ArrayMeta> {
        let mut meta = state.array(&self.dataset, &self.name)?.clone();
        if new_shape.len() != meta.shape.len() {
            return Err(Error::dims(&self.label, "the new shape", new_shape, &meta.shape));
        }
        let old_shape = std::mem::replace(&mut meta.shape, new_shape.to_vec());
        meta.check().map_err(|e| Error::invalid(format!("cannot resize {}: {e}", self.label)))?;
        meta.shape = old_shape;
        Ok(meta)
    }

    /// Gives the array its own codec for new blocks (`None`: follow the store's). Existing
    /// blocks keep theirs. The setting the array already has (on this handle's snapshot and
    /// the newest commit) changes nothing (no writer lock, nothing to commit).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zstd level zstd does not support;
    /// [`Error::NotFound`], [`Error::Locked`]; as
    /// [`Atlas::set_codec`](crate::Atlas::set_codec) for chunks held in memory.
    pub fn set_codec(&self, codec: Option<Codec>) -> Result<()> {
        codec.map_or(Ok(()), Codec::check).map_err(Error::invalid)?;
        self.change_meta(|meta| meta.codec == codec, |meta| meta.codec = codec)
    }

    /// Gives the array its own shuffle setting for new blocks (`None`: follow the store's);
    /// the setting it already has changes nothing, as for [`Self::set_codec`].
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Locked`]; as
    /// [`Atlas::set_codec`](crate::Atlas::set_codec) for chunks held in memory.
    pub fn set_shuffle(&self, shuffle: Option<Shuffle>) -> Result<()> {
        self.change_meta(|meta| meta.shuffle == shuffle, |meta| meta.shuffle = shuffle)
    }

    /// The array's statistics (count, null count, min, max, sum, mean), current with this
    /// handle's writes. Reads no data: block statistics are kept in the fragment index.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Corrupt`] if a block's index entry holds statistics that
    /// cannot describe the block (a min above its max, more values than a chunk holds), when
    /// the statistics are merged from the entries: where none were committed, or this
    /// handle changed the array since (committed ones are used as they are).
    pub fn stats(&self) -> Result<ArrayStats> {
        let state = self.inner.read();
        state.current_stats(state.array(&self.dataset, &self.name)?)
    }

    /// Statistics of every block written (chunks never written have none) of a chunk of the
    /// array's grid, sorted by chunk coordinate. A reader can skip blocks whose min/max
    /// cannot match a range filter.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Corrupt`] if a block's index entry holds statistics that
    /// cannot describe the block (a min above its max, more values than a chunk holds).
    pub fn block_stats(&self) -> Result<Vec<BlockStats>> {
        let state = self.inner.read();
        let meta = state.array(&self.dataset, &self.name)?;
        let blocks = state.live_stats(meta)?.into_iter().map(|(entry, stats)| {
            let (min, max) = stats.min_max(meta.dtype);
            BlockStats::new(entry.coord.to_vec(), stats.valid_count, min, max, stats.sum())
        });
        Ok(blocks.collect())
    }

    /// The array's attributes.
    #[must_use]
    pub fn attrs(&self) -> Attrs {
        Attrs::new(self.inner.clone(), AttrTarget::Array(self.dataset.clone(), self.name.clone()))
    }

    fn change_meta(&self, is_done: impl Fn(&ArrayMeta) -> bool, change: impl FnOnce(&mut ArrayMeta)) -> Result<()> {
        let mut state = self.inner.write();
        self.inner.check_before_change(&state, |state| state.array(&self.dataset, &self.name).map(drop))?;
        if self.inner.holds_on_newest(&state, |state| self.meta_in(state).is_ok_and(&is_done)) {
            return Ok(());
        }
        self.inner.change(&mut state, |state| {
            // Staged chunks are encoded as the settings were when they were written.
            state.seal_staged()?;
            change(state.array_mut(&self.dataset, &self.name)?);
            Ok(())
        })
    }

    /// The array's schema in `state`.
    pub(super) fn meta_in<'s>(&self, state: &'s State) -> Result<&'s ArrayMeta> {
        state.array(&self.dataset, &self.name)
    }

    /// The array's schema after checking a selection against it. `shape_is` names `shape`
    /// in errors ("shape" for a read's, "the data's shape" for a write's); `given` is the
    /// dtype of the caller's data and `accepts` the dtypes it can be.
    pub(super) fn checked_meta<'s>(
        &self,
        state: &'s State,
        start: &[u64],
        (shape, shape_is): (&[u64], &str),
        given: DType,
        accepts: fn(DType) -> bool,
    ) -> Result<&'s ArrayMeta> {
        let meta = self.meta_in(state)?;
        if !accepts(meta.dtype) {
            return Err(Error::dtype_mismatch(&self.label, meta.dtype, given));
        }
        let ndim = meta.shape.len();
        if start.len() != ndim {
            return Err(Error::dims(&self.label, "start", start, &meta.shape));
        }
        if shape.len() != ndim {
            return Err(Error::dims(&self.label, shape_is, shape, &meta.shape));
        }
        let inside = (0..ndim).all(|d| start[d].checked_add(shape[d]).is_some_and(|end| end <= meta.shape[d]));
        if !inside {
            return Err(Error::OutOfBounds {
                array: self.label.clone(),
                start: start.to_vec(),
                shape: shape.to_vec(),
                array_shape: meta.shape.clone(),
            });
        }
        Ok(meta)
    }
}

/// How many of the last rows of an append (a write of `shape` at `start` of the grown
/// array `meta`, every extent but axis 0 whole) to stage: those in the chunk row it leaves
/// partly filled at the end of axis 0, or 0 (the append ends on a chunk boundary, or that
/// chunk row alone is over the session's `budget` of staged bytes). Seals the session's
/// staged chunks first when the row's chunks not staged yet would take them past it.
fn rows_to_stage(state: &mut State, budget: u64, meta: &ArrayMeta, start: &[u64], shape: &[u64]) -> Result<u64> {
    let end = start[0] + shape[0];
    let partial = end % meta.chunk_shape[0];
    if end != meta.shape[0] || partial == 0 {
        return Ok(0);
    }
    let row_bytes =
        meta.chunk_grid()[1..].iter().fold(staging_cost(meta.chunk_bytes()), |bytes, &n| bytes.saturating_mul(n));
    if row_bytes > budget {
        return Ok(0);
    }
    let row = end / meta.chunk_shape[0];
    make_room(state, budget, row_bytes - state.staged_bytes_in_row(meta.id, row) as u64)?;
    Ok(partial.min(shape[0]))
}

/// How many rows of a plain write (of `shape` at `start`) to stage: all of them when the
/// chunks it touches hold at most an eighth of the session's `budget` of staged bytes,
/// else none (0-d arrays: none). Seals the session's staged chunks first when those of
/// its chunks not staged yet would take them past the budget.
fn rows_of_small_write(state: &mut State, budget: u64, meta: &ArrayMeta, start: &[u64], shape: &[u64]) -> Result<u64> {
    let Some(&rows) = shape.first() else { return Ok(0) };
    let chunks_touched = start
        .iter()
        .zip(shape)
        .zip(&meta.chunk_shape)
        .fold(1u64, |n, ((&s, &len), &c)| n.saturating_mul((s + len - 1) / c - s / c + 1));
    let bytes = chunks_touched.saturating_mul(staging_cost(meta.chunk_bytes()));
    if bytes > budget / 8 {
        return Ok(0);
    }
    let ops = plan(&meta.chunk_shape, start, shape);
    let new_chunks = ops.iter().filter(|op| !state.is_staged(meta.id, &op.coord)).count() as u64;
    make_room(state, budget, new_chunks * staging_cost(meta.chunk_bytes()))?;
    Ok(rows)
}

/// Seals the session's staged chunks when `new_bytes` more would take them past `budget`.
fn make_room(state: &mut State, budget: u64, new_bytes: u64) -> Result<()> {
    if (state.staged_bytes() as u64).saturating_add(new_bytes) > budget {
        state.seal_staged()?;
    }
    Ok(())
}
