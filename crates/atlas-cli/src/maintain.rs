//! The commands that check or rewrite a whole store: `verify`, `convert-meta`,
//! `recompress` and `compact`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use atlas::{Atlas, Codec, MetaCompression, MetaFormat, Shuffle};
use serde_json::json;

use crate::inspect::{self, BadBlock, VerifyReport};
use crate::{
    ArrayPath, DiscardUncommitted, EXIT_CORRUPT, MetaCompressionArg, MetaFormatArg, is_broken_pipe, open_array,
    open_error, open_store, printable, progress, report,
};

pub(crate) fn verify(path: &Path, json_out: bool, quiet: bool, out: &mut dyn Write) -> Result<ExitCode> {
    let bar = progress::blocks(0, "verify", quiet);
    let (report, opened) = match Atlas::open(path) {
        Ok(store) => (inspect::verify(&store, &bar)?, true),
        // Bad metadata or a bad fragment index stops the store from opening at all.
        Err(e) => match BadBlock::from_open_error(&e) {
            Some(bad) => (VerifyReport { bad_blocks: vec![bad], ..VerifyReport::default() }, false),
            None => return Err(open_error(path, e)),
        },
    };
    bar.finish_and_clear();
    let code = if report.bad_blocks.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_CORRUPT) };
    match write_verify_report(path, &report, opened, json_out, out) {
        // The reader left (`atlas verify ... | head`): the status still tells.
        Err(e) if is_broken_pipe(&e) => Ok(code),
        written => written.map(|()| code),
    }
}

/// Writes `report`; `opened` is false when the store did not open, so no block was checked.
fn write_verify_report(
    path: &Path,
    report: &VerifyReport,
    opened: bool,
    json_out: bool,
    out: &mut dyn Write,
) -> Result<()> {
    if json_out {
        let bad: Vec<serde_json::Value> = report
            .bad_blocks
            .iter()
            .map(|b| {
                json!({"array": b.array, "coord": b.coord, "file": b.path.to_string_lossy(), "offset": b.offset_bytes,
                       "kind": b.kind, "detail": b.detail})
            })
            .collect();
        // Paths as text (JSON has no other kind), a byte that is not UTF-8 as U+FFFD;
        // absolute, as `info` shows the store handle's.
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let doc = json!({"store": path.to_string_lossy(), "ok": bad.is_empty(), "opened": opened,
                         "array_count": report.arrays, "blocks_checked": report.blocks_checked, "bad_blocks": bad});
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(());
    }
    for b in &report.bad_blocks {
        let file = b.path.display().to_string();
        let file = printable(&file);
        match (&b.array, &b.coord, b.offset_bytes) {
            (Some(array), Some(coord), Some(offset)) => {
                writeln!(out, "BAD {array} chunk {coord:?} file {file} offset {offset}: {}", printable(&b.detail))?;
            }
            (Some(array), None, _) => writeln!(out, "BAD {array} in {file}: {}", printable(&b.detail))?,
            _ => writeln!(out, "BAD file {file}: {}", printable(&b.detail))?,
        }
    }
    let arrays = report::counted(report.arrays, "array");
    let checked = report::counted(report.blocks_checked, "block");
    let bad_stats = report.bad_blocks.iter().filter(|b| b.kind == "stats_mismatch").count();
    match (report.bad_blocks.len() - bad_stats, bad_stats) {
        (0, 0) => writeln!(out, "ok: {checked} in {arrays} verified")?,
        _ if !opened => writeln!(out, "the store does not open because of the file above: no block was checked")?,
        (n, 0) => writeln!(out, "{n} bad of {checked} checked in {arrays}")?,
        (n, m) => writeln!(
            out,
            "{n} bad of {checked} checked in {arrays}; the statistics of {} are not their blocks'",
            report::counted(m as u64, "array")
        )?,
    }
    Ok(())
}

pub(crate) fn convert_meta(
    path: &Path,
    format: Option<MetaFormatArg>,
    compression: Option<MetaCompressionArg>,
    quiet: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let store = open_store(path)?;
    let format = format.map(|format| match format {
        MetaFormatArg::Json => MetaFormat::Json,
        MetaFormatArg::Msgpack => MetaFormat::MsgPack,
    });
    let compression = compression.map(|compression| match compression {
        MetaCompressionArg::None => MetaCompression::None,
        MetaCompressionArg::Zstd => MetaCompression::Zstd,
        MetaCompressionArg::Lz4 => MetaCompression::Lz4,
    });
    let before_bytes = inspect::disk_usage(&store)?.meta_bytes;
    // After `disk_usage`, which moves to a newer commit if the file was renamed meanwhile.
    let before = store.meta_file_name();
    let _uncommitted = DiscardUncommitted(&store);
    let spinner = progress::spinner("converting metadata", quiet);
    store.set_meta_format(format, compression)?;
    store.flush()?;
    spinner.finish_and_clear();
    // Committed: the new file's size is only reported.
    let after =
        inspect::disk_usage(&store).map_or_else(|_| "size unknown".into(), |u| report::human_bytes(u.meta_bytes));
    writeln!(out, "{before} ({}) -> {} ({after})", report::human_bytes(before_bytes), store.meta_file_name())?;
    Ok(())
}

/// Re-encodes array by array, so the bar moves per array. For the whole store this ends as
/// `Atlas::recompress` does: the codec (and `shuffle`, when given) becomes the store's
/// default and the arrays' own settings of it are cleared; without `shuffle` each array
/// keeps the shuffle it has. Nothing is committed unless every array succeeds.
pub(crate) fn recompress(
    store: &Atlas,
    only: Option<&ArrayPath>,
    codec: Codec,
    shuffle: Option<Shuffle>,
    quiet: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let _uncommitted = DiscardUncommitted(store);
    if only.is_none() {
        // First, so that the arrays are listed from the newest commit, under the writer lock
        // this change takes: one another process added since the store was opened is
        // recompressed too.
        store.set_codec(codec)?;
        if let Some(shuffle) = shuffle {
            store.set_shuffle(shuffle)?;
        }
    }
    let mut arrays = Vec::new();
    match only {
        Some(array) => {
            open_array(store, array)?;
            arrays.push((array.clone(), inspect::block_summary(store, &array.dataset, &array.array)?.blocks));
        }
        None => {
            for dataset in store.list_datasets() {
                for array in store.open_dataset(&dataset)?.list_arrays()? {
                    let blocks = inspect::block_summary(store, &dataset, &array)?.blocks;
                    arrays.push((ArrayPath { dataset: dataset.clone(), array }, blocks));
                }
            }
        }
    }
    let total: u64 = arrays.iter().map(|(_, n)| n).sum();
    let bar = progress::blocks(total, "recompress", quiet);
    for (array, blocks) in &arrays {
        bar.set_message(format!("recompress {array}"));
        store
            .recompress_array(&array.dataset, &array.array, codec, shuffle)
            .with_context(|| format!("cannot recompress {array}; nothing was committed"))?;
        if only.is_none() {
            // `recompress_array` made the codec (and a given shuffle) the array's own.
            let handle = open_array(store, array)?;
            handle.set_codec(None)?;
            if shuffle.is_some() {
                handle.set_shuffle(None)?;
            }
        }
        bar.inc(*blocks);
    }
    bar.finish_and_clear();
    let spinner = progress::spinner("committing", quiet);
    store.flush()?;
    spinner.finish_and_clear();
    writeln!(
        out,
        "recompressed {} (of {}) to {}, shuffle {}",
        report::counted(arrays.len() as u64, "array"),
        report::counted(total, "block"),
        codec,
        shuffle.map_or("unchanged", Shuffle::name),
    )?;
    Ok(())
}

pub(crate) fn compact(path: &Path, json_out: bool, quiet: bool, out: &mut dyn Write) -> Result<()> {
    let store = open_store(path)?;
    // Atlas reports no progress from inside a compaction: a spinner shows it is alive.
    let spinner = progress::spinner("compacting", quiet);
    let report = store.compact()?;
    spinner.finish_and_clear();
    if json_out {
        let doc = json!({
            "fragments_before": report.fragments_before,
            "fragments_after": report.fragments_after,
            "before_bytes": report.before_bytes,
            "after_bytes": report.after_bytes,
            "blocks_kept": report.blocks_kept,
            "blocks_dropped": report.blocks_dropped,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        writeln!(out, "fragments  {} -> {}", report.fragments_before, report.fragments_after)?;
        writeln!(
            out,
            "bytes      {} -> {}",
            report::human_bytes(report.before_bytes),
            report::human_bytes(report.after_bytes)
        )?;
        writeln!(out, "blocks     {} kept, {} dropped", report.blocks_kept, report.blocks_dropped)?;
    }
    Ok(())
}
