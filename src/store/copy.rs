//! Copying an array within a store: its schema, and its blocks as stored (no decode, no
//! encode), as a compaction copies them.

use super::Atlas;
use super::pending::PendingFragment;
use super::rename::check_array_places;
use super::state::{Inner, State, live_blocks};
use crate::engine::{ArrayCtx, BlockRef, check_entry};
use crate::error::{EntityKind, Result};
use crate::fragment::{BlockEntry, EncodedBlock};
use crate::meta::{ArrayMeta, validate_name};

impl Atlas {
    /// Copies array `from` of dataset `from_dataset` to a new array `to` of `to_dataset` (the
    /// same dataset or another): its schema (dtype, shape, chunks, dims, fill value, codec
    /// and shuffle settings, zstd dictionary) and attributes, and every block holding data,
    /// copied as stored: no block is decoded or encoded again, and checksums, codecs and
    /// statistics stay. Its uncommitted writes are copied too (those still in memory are
    /// encoded first, as a flush would). The copy is a change like any other, committed by
    /// the next flush.
    ///
    /// Blocks are copied without a decode, so each index entry is checked first, as
    /// [`Atlas::compact`] checks them: a damaged one fails the copy before any block is
    /// copied. A block whose bytes are damaged is copied with its checksum and fails reads
    /// of the copy as it fails those of the original.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName) for `to`, [`Error::NotFound`](crate::Error::NotFound) if there is no array `from` in
    /// `from_dataset` or no dataset `to_dataset`, [`Error::AlreadyExists`](crate::Error::AlreadyExists) if `to_dataset`
    /// has an array named `to`, [`Error::Corrupt`](crate::Error::Corrupt) for an index entry that cannot describe
    /// its block; as any change, [`Error::Locked`](crate::Error::Locked), [`Error::ReadOnly`](crate::Error::ReadOnly),
    /// [`Error::ChangesDiscarded`](crate::Error::ChangesDiscarded); [`Error::Io`](crate::Error::Io).
    pub fn copy_array(&self, (from_dataset, from): (&str, &str), (to_dataset, to): (&str, &str)) -> Result<()> {
        validate_name(EntityKind::Array, to)?;
        let check = |state: &State| check_array_places(state, (from_dataset, from), (to_dataset, to), false);
        let mut state = self.inner.write();
        // Refused before taking the writer lock, and again on the newest commit it loads.
        self.inner.check_before_change(&state, check)?;
        self.inner.change(&mut state, |state| {
            check(state)?;
            // Staged chunks are encoded into blocks now rather than at the flush, so that
            // every block to copy has its stored bytes.
            state.seal_staged()?;
            let source = state.array(from_dataset, from)?.clone();
            let id = state.allocate_array_id(&self.inner.dir)?;
            let copied = copy_blocks(&self.inner, state, &source, &format!("{from_dataset}/{from}"), id)?;
            state.record(copied);
            // Merged from the copied blocks at the flush, as a new array's are.
            let copy = ArrayMeta { id, stats: None, ..source };
            state.dataset_mut(to_dataset)?.arrays.insert(to.to_string(), copy);
            Ok(())
        })
    }
}

/// Of `live`, the blocks of `ctx`'s array that a copy of its blocks as stored carries: those
/// that hold data (a fill entry reads as a chunk never written does) inside its grid (no
/// read reaches a block outside it), in chunk order. As no block is decoded, every entry is
/// checked first, from the index alone: a damaged one fails the copy before any block is
/// copied.
///
/// # Errors
/// As [`check_entry`].
pub(super) fn blocks_to_copy<'a>(ctx: ArrayCtx<'_>, live: Vec<BlockRef<'a>>) -> Result<Vec<BlockRef<'a>>> {
    let mut blocks: Vec<_> = live.into_iter().filter(|block| carries(ctx.meta, block.entry())).collect();
    blocks.sort_unstable_by(|a, b| a.entry().coord.cmp(&b.entry().coord));
    for &block in &blocks {
        check_entry(ctx, block)?;
    }
    Ok(blocks)
}

/// Whether a copy of `array`'s blocks as stored carries the block of `entry`
/// ([`blocks_to_copy`]).
pub(super) fn carries(array: &ArrayMeta, entry: &BlockEntry) -> bool {
    !entry.is_fill && array.holds_chunk(&entry.coord)
}

/// Appends a copy, for array id `to`, of every live block of `source` that holds data (a
/// fill entry reads as a chunk never written does) to the session's fragment, in chunk
/// order; returns their entries, not yet recorded. `label` names `source` in errors.
fn copy_blocks(inner: &Inner, state: &mut State, source: &ArrayMeta, label: &str, to: u64) -> Result<Vec<BlockEntry>> {
    let generation = state.meta.generation + 1;
    let data_dir = inner.data_dir();
    let State { session, committed, .. } = state;
    let session = session.as_mut().expect("a change runs in a session");
    let PendingFragment { writer, blocks, .. } = session.fragment(&data_dir, generation)?;
    let ctx = ArrayCtx { meta: source, label, dict: None, cache: None };
    let live = blocks_to_copy(ctx, live_blocks(Some(blocks), committed, source.id))?;
    let mut read_back = Vec::new();
    let mut copied = Vec::with_capacity(live.len());
    for block in live {
        let stored = match block {
            BlockRef::Pending { reader, entry } => {
                reader.read_block(entry, &mut read_back)?;
                &read_back[..]
            }
            mapped => mapped.in_memory().expect("a committed block (staged chunks were sealed)"),
        };
        copied.push(writer.append_block(&EncodedBlock::copy_of(block.entry(), to, &[stored]))?);
    }
    Ok(copied)
}
