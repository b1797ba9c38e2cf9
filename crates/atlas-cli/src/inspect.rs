//! Block-level facts about a store, shaped for printing: the codec mix and bytes of each
//! array (from `Atlas::array_blocks`), a check of every block (`Atlas::verify`), and the
//! sizes of the store's files.
//!
//! The only module that touches the block-level API, so a change there changes this file
//! only. What the library does not give yet (see `PROPOSED_LIB_API.md`): the list of
//! committed fragment files, so [`disk_usage`] lists `STORE/data/` itself.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use atlas::{ArrayMeta, ArrayStats, Atlas, DType, Error};
use indicatif::ProgressBar;

/// The live blocks of one array, summed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockSummary {
    /// Live blocks: written chunks, including fill entries (chunks written with only the
    /// fill value, which store no bytes).
    pub blocks: u64,
    /// Blocks per encoding: `zstd`, `lz4`, `none`, with `+shuffle` when the byte shuffle
    /// ran first (`+bytedelta` when the byte delta ran after it, `+delta` when the element
    /// delta ran before it); `fill` for fill entries.
    pub by_codec: BTreeMap<String, u64>,
    /// Bytes of the raw chunks of the blocks that store bytes.
    pub raw_bytes: u64,
    /// Bytes those blocks take in their fragment files.
    pub stored_bytes: u64,
}

/// Summarises the live blocks of `dataset/array` from the block index (no data is read).
pub fn block_summary(store: &Atlas, dataset: &str, array: &str) -> Result<BlockSummary> {
    let mut summary = BlockSummary::default();
    for block in store.array_blocks(dataset, array)? {
        summary.blocks += 1;
        let key = if block.is_fill {
            "fill".to_string()
        } else {
            summary.raw_bytes = summary.raw_bytes.saturating_add(block.raw_bytes);
            summary.stored_bytes = summary.stored_bytes.saturating_add(block.stored_bytes);
            let filter = match (block.shuffled, block.byte_delta, block.delta) {
                (_, true, _) => "+bytedelta",
                (_, _, true) => "+delta",
                (true, false, false) => "+shuffle",
                (false, false, false) => "",
            };
            format!("{}{filter}", block.codec.name())
        };
        *summary.by_codec.entry(key).or_default() += 1;
    }
    Ok(summary)
}

/// Memory one value of `dataset/array` takes once read, for sizing read slabs: its dtype's
/// size, or for strings a `String` and its heap block (40 bytes) plus the most text per value
/// any written chunk holds (its block's length over its values), so a slab of long strings
/// stays near its bound.
pub fn value_bytes(store: &Atlas, dataset: &str, array: &str, meta: &ArrayMeta) -> Result<u64> {
    if meta.dtype != DType::String {
        return Ok(meta.dtype.size_bytes() as u64);
    }
    let chunk_values = meta.chunk_shape.iter().product::<u64>().max(1);
    let blocks = store.array_blocks(dataset, array)?;
    let text = blocks.iter().filter(|b| !b.is_fill).map(|b| b.raw_bytes.div_ceil(chunk_values)).max().unwrap_or(0);
    Ok(40 + text)
}

/// The store's files on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskUsage {
    /// Fragment files.
    pub fragment_files: u64,
    /// Their bytes: blocks (live and dead), indexes and footers.
    pub fragment_bytes: u64,
    /// Bytes of the metadata file.
    pub meta_bytes: u64,
}

/// Sizes of the store's metadata file and of the `*.frag` files in `STORE/data/` (which
/// also counts orphans a crashed writer left, until the next writer removes them).
///
/// Another process may commit meanwhile: a fragment file gone (compacted) is no longer the
/// store's and is not counted; a metadata file gone was replaced by a newer commit under
/// another name (another format), which `store` moves to before looking again.
pub fn disk_usage(store: &Atlas) -> Result<DiskUsage> {
    let mut meta_bytes = None;
    for _ in 0..META_TRIES {
        let meta_path = store.path().join(store.meta_file_name());
        match std::fs::metadata(&meta_path) {
            Ok(meta) => {
                meta_bytes = Some(meta.len());
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => store.refresh()?,
            Err(e) => return Err(e).with_context(|| format!("cannot stat {}", meta_path.display())),
        }
    }
    let Some(meta_bytes) = meta_bytes else {
        bail!("the metadata file of {} keeps changing name; is another process converting it?", store.path().display())
    };
    let mut usage = DiskUsage { meta_bytes, ..DiskUsage::default() };
    let data = store.path().join("data");
    let entries = std::fs::read_dir(&data).with_context(|| format!("cannot list {}", data.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", data.display()))?;
        if entry.path().extension().is_some_and(|e| e == "frag") {
            let len = match entry.metadata() {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot stat {}", entry.path().display())),
            };
            usage.fragment_files += 1;
            usage.fragment_bytes = usage.fragment_bytes.saturating_add(len); // sparse files may claim anything
        }
    }
    Ok(usage)
}

/// How many times [`disk_usage`] looks for a metadata file that a commit renamed.
const META_TRIES: usize = 5;

/// A block that failed verification, or a file that kept the store from opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadBlock {
    /// `dataset/array`; `None` for a file that fails before any block is read.
    pub array: Option<String>,
    /// The chunk's grid coordinate.
    pub coord: Option<Vec<u64>>,
    /// The file holding the bad bytes.
    pub path: PathBuf,
    /// The block's offset in that file.
    pub offset_bytes: Option<u64>,
    /// `checksum_mismatch`, `corrupt`, `io`, `missing` (a fragment file the metadata
    /// names), or `stats_mismatch` (an array's statistics the metadata file keeps, which are
    /// not those of its blocks: no coordinate then).
    pub kind: &'static str,
    /// What is wrong.
    pub detail: String,
}

impl BadBlock {
    /// The file a store could not be opened past (bad metadata, a bad fragment index, or a
    /// fragment file the metadata names that is missing), if that is why `Atlas::open`
    /// failed.
    pub fn from_open_error(error: &Error) -> Option<Self> {
        let (path, kind, detail) = match error {
            Error::Corrupt { path, detail } => (path, "corrupt", detail.clone()),
            // A fragment the metadata names is gone: the worst damage, not a tool error.
            Error::Io { path, source, .. }
                if source.kind() == std::io::ErrorKind::NotFound && path.extension().is_some_and(|e| e == "frag") =>
            {
                (path, "missing", "the metadata names this fragment file, which is missing".to_string())
            }
            _ => return None,
        };
        Some(Self { array: None, coord: None, path: path.clone(), offset_bytes: None, kind, detail })
    }
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Arrays checked.
    pub arrays: u64,
    /// Blocks decoded and checked.
    pub blocks_checked: u64,
    /// Every bad block, in dataset, array, chunk order.
    pub bad_blocks: Vec<BadBlock>,
}

/// Decodes every live block of every array and checks its checksum; `bar` counts blocks.
pub fn verify(store: &Atlas, bar: &ProgressBar) -> Result<VerifyReport> {
    let mut arrays = 0;
    for dataset in store.list_datasets() {
        arrays += store.open_dataset(&dataset)?.list_arrays()?.len() as u64;
    }
    let report = store.verify(&mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    let mut bad_blocks = report
        .bad_blocks
        .into_iter()
        .map(|bad| {
            let (kind, detail) = match &bad.error {
                Error::ChecksumMismatch { expected, found, .. } => {
                    ("checksum_mismatch", format!("checksum mismatch: stored {expected:#018x}, computed {found:#018x}"))
                }
                // The detail starts by naming the array and chunk, which are printed anyway.
                Error::Corrupt { detail, .. } => {
                    let named = format!("array {} chunk {:?}: ", bad.array, bad.coord);
                    ("corrupt", detail.strip_prefix(&named).unwrap_or(detail).to_string())
                }
                Error::Codec { .. } => ("corrupt", bad.error.to_string()),
                other => ("io", other.to_string()),
            };
            BadBlock {
                array: Some(bad.array),
                coord: Some(bad.coord),
                path: bad.path,
                offset_bytes: Some(bad.offset_bytes),
                kind,
                detail,
            }
        })
        .collect::<Vec<_>>();
    let meta_file = store.path().join(store.meta_file_name());
    bad_blocks.extend(report.bad_stats.into_iter().map(|bad| BadBlock {
        array: Some(bad.array),
        coord: None,
        path: meta_file.clone(),
        offset_bytes: None,
        kind: "stats_mismatch",
        detail: match &bad.unsound {
            Some(wrong) => format!("the statistics the metadata keeps do not hold together: {wrong}"),
            None => format!(
                "the statistics the metadata keeps ({}) are not those of its blocks ({})",
                stats_text(&bad.persisted),
                stats_text(&bad.merged)
            ),
        },
    }));
    Ok(VerifyReport { arrays, blocks_checked: report.blocks_checked, bad_blocks })
}

/// What `verify` compares of an array's statistics, in a line: `count 8, nulls 8, min 1,
/// max 8`.
fn stats_text(stats: &ArrayStats) -> String {
    let show = |v: Option<atlas::Scalar>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    format!("count {}, nulls {}, min {}, max {}", stats.count, stats.null_count, show(stats.min), show(stats.max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas::{MetaCompression, MetaFormat, StoreConfig};

    #[test]
    fn disk_usage_follows_a_metadata_file_another_process_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        drop(Atlas::create(&path, StoreConfig::default()).unwrap());
        let stale = Atlas::open(&path).unwrap();
        assert_eq!(stale.meta_file_name(), "atlas.json");
        // Another process converts the metadata file: atlas.json is gone.
        let other = Atlas::open(&path).unwrap();
        other.set_meta_format(Some(MetaFormat::MsgPack), Some(MetaCompression::Zstd)).unwrap();
        other.flush().unwrap();
        drop(other);

        let usage = disk_usage(&stale).unwrap();
        assert_eq!(stale.meta_file_name(), "atlas.msgpack.zst");
        assert_eq!(usage.meta_bytes, std::fs::metadata(path.join("atlas.msgpack.zst")).unwrap().len());
    }
}
