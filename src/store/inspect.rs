//! Looking inside a store: where each block lives and how it is encoded
//! ([`Atlas::array_blocks`]), and a full check of every block ([`Atlas::verify`]).

use std::path::PathBuf;

use super::Atlas;
use super::state::{State, dictionary};
use crate::engine::{ArrayCtx, BlockRef, check_blocks, fill_chunk_checksum};
use crate::error::{Error, Result};
use crate::meta::{ArrayMeta, ArrayStats, DType};

/// The codec a block was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum BlockCodec {
    /// Stored as is.
    None,
    /// One zstd frame.
    Zstd,
    /// One raw LZ4 block.
    Lz4,
    /// One zstd frame written with the array's dictionary.
    ZstdDict,
}

impl BlockCodec {
    /// The codec's name: `none`, `zstd`, `zstd+dict` or `lz4`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Zstd => "zstd",
            Self::Lz4 => "lz4",
            Self::ZstdDict => "zstd+dict",
        }
    }
}

/// [`BlockCodec::name`].
impl std::fmt::Display for BlockCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One live block of an array, as its index entry describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[allow(clippy::struct_excessive_bools)] // facts of the index entry, each asked about alone
pub struct BlockInfo {
    /// The chunk's grid coordinate.
    pub coord: Vec<u64>,
    /// The codec that wrote the block.
    pub codec: BlockCodec,
    /// Whether the byte shuffle ran before the codec.
    pub shuffled: bool,
    /// Whether the byte delta ran after the shuffle (`Shuffle::ByteDelta`).
    pub byte_delta: bool,
    /// Whether the element delta ran before the shuffle (`Shuffle::Delta`).
    pub delta: bool,
    /// The chunk holds only the fill value and no bytes are stored.
    pub is_fill: bool,
    /// Bytes stored in the fragment.
    pub stored_bytes: u64,
    /// Bytes of the raw chunk.
    pub raw_bytes: u64,
    /// xxh3-64 of the raw chunk.
    pub checksum: u64,
    /// The fragment file holding the block.
    pub path: PathBuf,
    /// Offset of the block in that file.
    pub offset_bytes: u64,
    /// Whether the block is committed, written since the last flush, or not a block yet.
    pub state: BlockState,
}

/// Where a live block stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BlockState {
    /// In a committed fragment.
    Committed,
    /// Written by this handle since its last flush, in the fragment it is writing.
    Pending,
    /// A chunk of a small write, or the unfinished last chunk of an append, held in memory
    /// as raw bytes: it has no codec, checksum or place in a file until it is sealed into
    /// a block (by a larger write over it, a change of its codec or shuffle, a flush or a
    /// close), so its `codec` reads `None`, `stored_bytes` its raw bytes, and `checksum`
    /// and `offset_bytes` 0.
    Staged,
}

impl BlockState {
    /// Whether the block is not committed yet (pending or staged).
    #[must_use]
    pub fn is_uncommitted(self) -> bool {
        self != Self::Committed
    }
}

/// A block that failed [`Atlas::verify`].
#[derive(Debug)]
#[non_exhaustive]
pub struct BadBlock {
    /// `dataset/array`.
    pub array: String,
    /// The chunk's grid coordinate.
    pub coord: Vec<u64>,
    /// The fragment file holding the block.
    pub path: PathBuf,
    /// Offset of the block in that file.
    pub offset_bytes: u64,
    /// What is wrong: `ChecksumMismatch`, `Corrupt` (also when the codec refuses the bytes)
    /// or `Io` (the block could not be read).
    pub error: Error,
}

/// An array whose persisted statistics (kept in the metadata; [`crate::ArrayHandle::stats`]
/// returns them while the array is unchanged) are not those its blocks' index entries
/// merge to: a metadata file edited by hand, or written wrong. Found by [`Atlas::verify`].
#[derive(Debug)]
#[non_exhaustive]
pub struct BadStats {
    /// `dataset/array`.
    pub array: String,
    /// The array's dtype.
    pub dtype: DType,
    /// The statistics the metadata keeps.
    pub persisted: ArrayStats,
    /// Those merged from the blocks' index entries.
    pub merged: ArrayStats,
    /// Where the persisted statistics fail their own checks (a count over the array's
    /// elements, a mean that is not sum / count), what is wrong: then they may agree with
    /// `merged` in every field compared and still be reported.
    pub unsound: Option<String>,
}

/// What [`Atlas::verify`] found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Blocks checked: decoded and compared with their checksum, or for fill entries (no
    /// bytes) their recorded raw length. Chunks a small write or an unfinished append
    /// holds in memory have no checksum yet and are not counted.
    pub blocks_checked: u64,
    /// Every block that failed, in dataset, array, chunk order.
    pub bad_blocks: Vec<BadBlock>,
    /// Every array whose persisted statistics its blocks do not merge to, in dataset,
    /// array order.
    pub bad_stats: Vec<BadStats>,
}

impl Atlas {
    /// Every live block of an array (the newest per chunk of its grid), sorted by chunk
    /// coordinate. Reads only the index, no data.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn array_blocks(&self, dataset: &str, array: &str) -> Result<Vec<BlockInfo>> {
        let state = self.inner.read();
        let meta = state.array(dataset, array)?;
        let mut blocks: Vec<BlockInfo> = state
            .live_blocks(meta.id)
            .into_iter()
            .filter(|block| meta.holds_chunk(&block.entry().coord))
            .map(|block| {
                let entry = block.entry();
                BlockInfo {
                    coord: entry.coord.to_vec(),
                    codec: match entry.encoding.codec {
                        crate::codec::CodecId::None => BlockCodec::None,
                        crate::codec::CodecId::Zstd => BlockCodec::Zstd,
                        crate::codec::CodecId::ZstdDict => BlockCodec::ZstdDict,
                        crate::codec::CodecId::Lz4 => BlockCodec::Lz4,
                    },
                    shuffled: entry.encoding.filter.shuffle_elem_bytes().is_some(),
                    byte_delta: entry.encoding.filter.byte_delta(),
                    delta: entry.encoding.filter.elem_delta(),
                    is_fill: entry.is_fill,
                    stored_bytes: entry.stored_len_bytes,
                    raw_bytes: entry.raw_len_bytes,
                    checksum: entry.checksum,
                    path: block.path().to_path_buf(),
                    offset_bytes: entry.offset_bytes,
                    state: match block {
                        BlockRef::Committed { .. } => BlockState::Committed,
                        BlockRef::Pending { .. } => BlockState::Pending,
                        BlockRef::Staged { .. } => BlockState::Staged,
                    },
                }
            })
            .collect();
        blocks.sort_by(|a, b| a.coord.cmp(&b.coord));
        Ok(blocks)
    }

    /// Decodes every live block of every array and checks it against its checksum, and
    /// its index entry's statistics as [`crate::Dataset::array_stats`] does and against a
    /// scan of the chunk (count, min and max exactly, the sum within rounding); a block
    /// (not a fill entry) of a chunk outside its array's grid is reported, and so are a
    /// numeric chunk holding other values than the fill value past the array's shape and
    /// a fill entry whose checksum is not that of a chunk of the fill value; an array
    /// whose persisted statistics are not what its blocks merge to, or fail their own
    /// checks (counts that do not add up to its elements, say: forgotten at open, so that
    /// [`Dataset::array_stats`](crate::Dataset::array_stats) merges them again), is
    /// reported apart ([`VerifyReport::bad_stats`]). In parallel,
    /// collecting every failure. `progress(done, total)` is called as blocks are
    /// checked, while this handle's state is held for reading: it must not call into the
    /// store's handles (a change would wait for itself, and so could a read while another
    /// thread waits to change the store).
    ///
    /// # Errors
    /// None today: every failure, an I/O error reading a block included, is reported per
    /// block in the [`VerifyReport`]. The `Result` leaves room for failures outside them.
    pub fn verify(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifyReport> {
        let state = self.inner.read();
        let arrays: Vec<(String, &ArrayMeta)> = state
            .meta
            .datasets
            .iter()
            .flat_map(|(ds, d)| d.arrays.iter().map(move |(name, meta)| (format!("{ds}/{name}"), meta)))
            .collect();
        // Staged chunks have no checksum yet: nothing to check. Fill entries outside the
        // grid are what a shrink leaves; any other block there is reported (`check_blocks`).
        let checkable = |meta: &ArrayMeta| {
            let mut blocks = state.live_blocks(meta.id);
            blocks.retain(|block| {
                block.has_checksum() && (meta.holds_chunk(&block.entry().coord) || !block.entry().is_fill)
            });
            blocks
        };
        let total: u64 = arrays.iter().map(|(_, meta)| checkable(meta).len() as u64).sum();
        let mut report = VerifyReport::default();
        progress(0, total);
        for (label, meta) in &arrays {
            let mut blocks = checkable(meta);
            blocks.sort_by(|a, b| a.entry().coord.cmp(&b.entry().coord));
            let dict = dictionary(meta);
            let ctx = ArrayCtx { meta, label, dict: dict.as_ref(), cache: None };
            // What a fill entry's checksum must be: a chunk's bytes hashed, once an array.
            let fill_checksum = blocks.iter().any(|b| b.entry().is_fill).then(|| fill_chunk_checksum(meta)).flatten();
            // Checked in groups so progress moves on large arrays too.
            for group in blocks.chunks(256) {
                for (block, error) in group.iter().zip(check_blocks(ctx, group, fill_checksum)) {
                    if let Some(error) = error {
                        report.bad_blocks.push(BadBlock {
                            array: label.clone(),
                            coord: block.entry().coord.to_vec(),
                            path: block.path().to_path_buf(),
                            offset_bytes: block.entry().offset_bytes,
                            error,
                        });
                    }
                }
                report.blocks_checked += group.len() as u64;
                progress(report.blocks_checked, total);
            }
            report.bad_stats.extend(stats_unlike_blocks(&state, label, meta));
        }
        Ok(report)
    }
}

/// The array's persisted statistics where its blocks do not merge to them. `None` where it
/// has none, where this handle changed the array (they are merged then), or where an
/// entry's statistics cannot describe its block (that block is reported).
fn stats_unlike_blocks(state: &State, label: &str, meta: &ArrayMeta) -> Option<BadStats> {
    // Stats that failed their own checks when read were forgotten for use, not for this.
    let unsound = state.meta.unsound_stats.get(&meta.id).cloned();
    let persisted = meta.stats.or(unsound.as_ref().map(|(stats, _)| *stats))?;
    if state.session.as_ref().is_some_and(|session| session.changed_array(meta.id)) {
        return None;
    }
    let merged = state.array_stats(meta).ok()?;
    let agree = unsound.is_none() && persisted.agrees_with(&merged);
    let unsound = unsound.map(|(_, wrong)| wrong);
    (!agree).then(|| BadStats { array: label.to_string(), dtype: meta.dtype, persisted, merged, unsound })
}
