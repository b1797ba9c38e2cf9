//! Lifecycle operations on a whole store: compaction, recompression, and changing the
//! metadata file's encoding. Each is a change like any other: it takes the writer lock
//! (`Inner::begin_change`) and is committed by the commit protocol of docs/FORMAT.md.

use std::sync::Arc;

use super::Atlas;
use super::copy::{blocks_to_copy, carries};
use super::pending::PendingFragment;
use super::state::dictionary;
use super::state::{FragmentChange, Inner, State};
use crate::engine::{ArrayCtx, BlockRef, WriteSettings, recode_blocks};
use crate::error::{Error, Result};
use crate::fragment::{BlockEntry, EncodedBlock, holds_dead_bytes};
use crate::meta::{Codec, MetaCompression, MetaFormat, Shuffle, StoreMeta};

/// What [`Atlas::compact`] did. Byte counts are of the committed fragment files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CompactReport {
    /// Fragment files the store had before.
    pub fragments_before: u64,
    /// Fragment files it has after: 1, or 0 when no block is left.
    pub fragments_after: u64,
    /// Bytes of the fragment files before.
    pub before_bytes: u64,
    /// Bytes of the fragment files after.
    pub after_bytes: u64,
    /// Blocks copied to the new fragment: the current block of every written chunk of every
    /// array, inside the array's chunk grid.
    pub blocks_kept: u64,
    /// Index entries left behind: blocks superseded by newer ones, blocks of deleted arrays
    /// and datasets, entries of chunks holding only the fill value (which need none), and
    /// blocks outside their array's chunk grid (no read reaches them). A block that a
    /// session wrote and then wrote again before its flush has no entry (a fragment indexes
    /// each chunk once): it is not counted here, but its bytes are in `before_bytes`.
    pub blocks_dropped: u64,
}

impl Atlas {
    /// Rewrites the store's live blocks into one new fragment and removes the old fragment
    /// files, reclaiming the space of superseded blocks and of deleted arrays and datasets.
    ///
    /// Pending changes of this handle are committed first, as their own commit; compaction
    /// is a second one. Blocks are copied as stored (no decoding or re-encoding; checksums,
    /// codecs and statistics stay), ordered by array name, then dataset, then chunk, so the
    /// arrays of one name in different datasets sit together. Chunks that hold only the fill
    /// value lose their entry: they read as the fill value either way. A store with nothing
    /// to drop (one fragment, every entry live, no bytes of blocks written again in the
    /// session that made it) is left as it is.
    ///
    /// Other handles keep reading the commit they opened (their fragments stay mapped) until
    /// they refresh or start a change.
    ///
    /// # Errors
    /// As [`Atlas::flush`] (committing the pending changes), then [`Error::Locked`] when
    /// another handle took the writer lock meanwhile, [`Error::Corrupt`] for an index entry
    /// whose raw length is not its chunk's or whose statistics cannot describe the block
    /// (copied without a decode, entries are checked as `verify` checks them), or
    /// [`Error::Io`]. An error before the
    /// compaction's commit point leaves the store as it was (with the pending changes
    /// committed if that step succeeded) and this handle holding no lock (but if committing
    /// the pending changes fails, the handle keeps them and the lock, as after a failed
    /// [`Atlas::flush`]). An error making
    /// the commit durable or removing the old files comes after the commit point: the store
    /// is compacted, and leftover files are removed when the next writer starts.
    pub fn compact(&self) -> Result<CompactReport> {
        let mut guard = self.inner.write();
        let state = &mut *guard;
        self.inner.commit(state, FragmentChange::Append)?;
        self.inner.begin_change(state)?;
        let arrays = arrays_by_name(&state.meta);
        let blocks_kept: u64 = arrays
            .iter()
            .map(|(dataset, name, id)| {
                let array = &state.meta.datasets[dataset].arrays[name];
                state.committed.blocks_of(*id).filter(|(_, e)| carries(array, e)).count() as u64
            })
            .sum();
        let fragments_before = state.meta.fragments.len() as u64;
        let before_bytes = state.meta.fragments.iter().map(|f| f.len_bytes).sum();
        let mut report = CompactReport {
            fragments_before,
            fragments_after: fragments_before,
            before_bytes,
            after_bytes: before_bytes,
            blocks_kept,
            blocks_dropped: state.committed.entry_count() - blocks_kept,
        };
        // One fragment whose every entry is live may still hold dead bytes: blocks a session
        // wrote and then wrote again are in the file but not in its index.
        let live_entries = || arrays.iter().flat_map(|(_, _, id)| state.committed.blocks_of(*id).map(|(_, e)| e));
        let all_live = fragments_before == 1 && report.blocks_dropped == 0;
        if fragments_before == 0 || (all_live && !holds_dead_bytes(before_bytes, live_entries())) {
            self.inner.discard(state); // Nothing to gain: no commit, and the writer lock goes.
            return Ok(report);
        }
        let copied = copy_live_blocks(&self.inner, state, &arrays);
        if let Err(e) = copied.and_then(|()| self.inner.commit(state, FragmentChange::Replace)) {
            // A session left means no commit was made.
            self.inner.discard(state);
            return Err(e);
        }
        report.fragments_after = state.meta.fragments.len() as u64;
        report.after_bytes = state.meta.fragments.iter().map(|f| f.len_bytes).sum();
        Ok(report)
    }

    /// Re-encodes every block of every array with `codec` and makes it the store's default
    /// for new blocks, clearing the arrays' own codec settings. A given `shuffle` goes the
    /// same way (and clears the arrays' own shuffle settings); with `None`, each array keeps
    /// the shuffle it has (its own setting, or the store's, which stays as it is).
    ///
    /// Each block is decoded with the codec that wrote it and verified against its checksum
    /// first; its checksum (of the raw bytes) and statistics do not change. Chunks holding
    /// only the fill value have no bytes and stay as they are, and so do blocks already
    /// encoded this way (except zstd ones, whose level is not recorded) and blocks stored
    /// raw that the new codec does not make smaller either (docs/ARCHITECTURE.md, decision
    /// o; known only once re-encoded). A chunk staged in memory (of a small write, or the
    /// unfinished last chunk of an append) is encoded with the new settings when it is
    /// sealed. The re-encoded blocks go to this handle's pending fragment like a write's
    /// and are committed by the next flush; the old ones become dead until
    /// [`Atlas::compact`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zstd level zstd does not support; [`Error::Locked`];
    /// [`Error::ChecksumMismatch`] or [`Error::Corrupt`] for a damaged block or index-entry
    /// statistics that cannot describe their block, as `verify` reports them (the store's
    /// data is then unchanged, and the writer lock is released unless this handle had changes pending);
    /// [`Error::Codec`]; [`Error::Io`].
    pub fn recompress(&self, codec: Codec, shuffle: Option<Shuffle>) -> Result<()> {
        codec.check().map_err(Error::invalid)?;
        self.inner.change(&mut self.inner.write(), |state| {
            let mut written = Vec::new();
            for (dataset, name, _) in arrays_by_name(&state.meta) {
                written.extend(recode_array(&self.inner, state, &dataset, &name, codec, shuffle)?);
            }
            state.record(written);
            state.meta.codec = codec;
            if let Some(shuffle) = shuffle {
                state.meta.shuffle = shuffle;
            }
            for array in state.meta.datasets.values_mut().flat_map(|ds| Arc::make_mut(ds).arrays.values_mut()) {
                array.codec = None;
                if shuffle.is_some() {
                    array.shuffle = None;
                }
            }
            Ok(())
        })
    }

    /// Re-encodes every block of one array with `codec` and `shuffle`, and gives the array
    /// these as its own settings for new blocks; with `shuffle` `None` it keeps the shuffle
    /// it has (its own setting, or the store's). Otherwise as [`Atlas::recompress`].
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no such array; otherwise as [`Atlas::recompress`].
    pub fn recompress_array(&self, dataset: &str, array: &str, codec: Codec, shuffle: Option<Shuffle>) -> Result<()> {
        codec.check().map_err(Error::invalid)?;
        let mut guard = self.inner.write();
        // Refused before taking the writer lock, and again on the newest commit it loads.
        self.inner.check_before_change(&guard, |state| state.array(dataset, array).map(drop))?;
        self.inner.change(&mut guard, |state| {
            let written = recode_array(&self.inner, state, dataset, array, codec, shuffle)?;
            state.record(written);
            let meta = state.array_mut(dataset, array)?;
            meta.codec = Some(codec);
            if shuffle.is_some() {
                meta.shuffle = shuffle;
            }
            Ok(())
        })
    }

    /// Changes how the metadata file is encoded. The next flush writes the new file (e.g.
    /// `atlas.msgpack.zst`) and, after that commit point, removes the old one; `open` finds
    /// the store by whichever is there. If a crash leaves both, the one of the higher
    /// generation, the newer commit, wins. The change is pending until the next flush, like
    /// any other, even if nothing else changes. `None` keeps the format (or compression)
    /// of the newest commit, which the change moves this handle to first: another
    /// writer's change of the other one is kept.
    ///
    /// # Errors
    /// As [`Atlas::begin_change`]: [`Error::Locked`], [`Error::ChangesDiscarded`], or an
    /// error loading the newest commit.
    pub fn set_meta_format(&self, format: Option<MetaFormat>, compression: Option<MetaCompression>) -> Result<()> {
        let mut state = self.inner.write();
        self.inner.begin_change(&mut state)?;
        let (format_now, compression_now) = state.encoding;
        state.encoding = (format.unwrap_or(format_now), compression.unwrap_or(compression_now));
        Ok(())
    }
}

/// Every array as (dataset, name, id), ordered by name, then dataset.
fn arrays_by_name(meta: &StoreMeta) -> Vec<(String, String, u64)> {
    let mut arrays: Vec<(String, String, u64)> = meta
        .datasets
        .iter()
        .flat_map(|(ds, d)| d.arrays.iter().map(move |(name, a)| (ds.clone(), name.clone(), a.id)))
        .collect();
    arrays.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    arrays
}

/// Copies the current committed block of every chunk of `arrays` that a copy carries
/// (`copy::blocks_to_copy`) into the session's fragment, in the order given and then by
/// chunk, streaming from the maps.
fn copy_live_blocks(inner: &Inner, state: &mut State, arrays: &[(String, String, u64)]) -> Result<()> {
    let generation = state.meta.generation + 1;
    let data_dir = inner.data_dir();
    let State { session, committed, meta, .. } = state;
    let session = session.as_mut().expect("begin_change starts a session");
    // Every array's entries are checked before any block is copied.
    let mut to_copy = Vec::new();
    for (dataset, name, id) in arrays {
        let array = &meta.datasets[dataset].arrays[name];
        let label = format!("{dataset}/{name}");
        let ctx = ArrayCtx { meta: array, label: &label, dict: None, cache: None };
        let live = committed.blocks_of(*id).map(|(reader, entry)| BlockRef::Committed { reader, entry }).collect();
        let blocks = blocks_to_copy(ctx, live)?;
        if !blocks.is_empty() {
            to_copy.push((*id, blocks));
        }
    }
    let mut entries = Vec::new();
    for (id, blocks) in to_copy {
        let PendingFragment { writer, .. } = session.fragment(&data_dir, generation)?;
        for block in blocks {
            let stored = block.in_memory().expect("a committed block");
            entries.push(writer.append_block(&EncodedBlock::copy_of(block.entry(), id, &[stored]))?);
        }
    }
    state.record(entries);
    Ok(())
}

/// Re-encodes the current blocks of array `dataset/name` with `codec` and `shuffle` (else the
/// array's own shuffle, else the store's) into the session's fragment and returns their
/// entries, not yet recorded (so a failure leaves the handle's view unchanged).
fn recode_array(
    inner: &Inner,
    state: &mut State,
    dataset: &str,
    name: &str,
    codec: Codec,
    shuffle: Option<Shuffle>,
) -> Result<Vec<BlockEntry>> {
    let meta = &state.array(dataset, name)?.clone();
    let label = &format!("{dataset}/{name}");
    let dict = dictionary(meta);
    let shuffle = shuffle.or(meta.shuffle).unwrap_or(state.meta.shuffle);
    let settings = WriteSettings::new(codec, shuffle, meta.dtype, dict.as_ref());
    let target = settings.encoding();
    // A fill entry has no bytes. Re-encoding with lz4 or none gives the same bytes again;
    // a zstd block's level is not recorded, so zstd blocks are always re-encoded.
    // A staged chunk (of a small write or the unfinished last chunk of an append, raw in
    // memory) has no checksum or statistics yet: it is sealed at the commit with the
    // array's settings of then, which are the new ones.
    let staged = |e: &BlockEntry| matches!(state.find_block(meta.id, &e.coord), Some(BlockRef::Staged { .. }));
    let keep = |e: &BlockEntry| {
        e.is_fill || staged(e) || (e.encoding == target && !matches!(settings.codec, Codec::Zstd { .. }))
    };
    let mut coords: Vec<Box<[u64]>> =
        state.live_entries(meta.id).into_iter().filter(|e| !keep(e)).map(|e| e.coord.clone()).collect();
    if coords.is_empty() {
        return Ok(Vec::new());
    }
    coords.sort_unstable();
    state.append_unrecorded(&inner.data_dir(), meta.id, |lookup, sink| {
        let refs: Vec<BlockRef<'_>> = coords.iter().map(|coord| lookup(coord).expect("a live entry's block")).collect();
        recode_blocks(ArrayCtx { meta, label, dict: dict.as_ref(), cache: None }, &refs, settings, sink)
    })
}
