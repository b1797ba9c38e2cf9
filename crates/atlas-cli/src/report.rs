//! The read-only commands: `info`, `ls`, `stats`, `attrs` and `cat`, each as text for
//! people and, with `--json`, as one JSON document for programs.

use std::io::Write;

use anyhow::{Result, bail};
use atlas::{ArrayHandle, ArrayMeta, ArrayStats, Atlas, AttrValue, Attributes, DType, Dataset, Scalar};
use ndarray::{ArrayD, ArrayViewD, Axis, Slice};
use serde_json::{Value as Json, json};

use crate::inspect::{self, BlockSummary};
use crate::slice::Selection;
use crate::values::{Cell, Fixed, dispatch, float_text, iso8601};

/// `n` and `noun`, the noun in the plural unless `n` is 1: `1 block`, `3 blocks`.
pub fn counted(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// `1.5 MiB`: bytes in binary units.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

fn to_json<T: serde::Serialize>(value: &T) -> Json {
    serde_json::to_value(value).expect("atlas types serialise to JSON")
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    format!("[{}]", items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
}

/// Dimension names as a list, an unnamed one (`""`) quoted so that it shows.
fn dims_list(dims: &[String]) -> String {
    // Quoted where the list would not tell them apart otherwise: empty, or holding a
    // separator, a bracket, a quote or spaces at an end.
    let plain = |d: &str| !d.is_empty() && d.trim() == d && !d.contains([',', '[', ']', '"']);
    list(&dims.iter().map(|d| if plain(d) { d.clone() } else { format!("{d:?}") }).collect::<Vec<_>>())
}

/// Format and compression of a metadata file, from its name (`atlas.msgpack.zst`).
pub fn meta_encoding(file_name: &str) -> (&str, &str) {
    let mut parts = file_name.split('.').skip(1);
    let format = parts.next().unwrap_or("?");
    let compression = match parts.next() {
        None => "none",
        Some("zst") => "zstd",
        Some(other) => other,
    };
    (format, compression)
}

fn ratio(raw_bytes: u64, stored_bytes: u64) -> Option<f64> {
    (stored_bytes > 0).then(|| raw_bytes as f64 / stored_bytes as f64)
}

/// One array as `info` shows it.
struct ArrayFacts {
    name: String,
    meta: ArrayMeta,
    blocks: BlockSummary,
}

/// What `info` shows, gathered once for both output forms.
struct StoreFacts<'a> {
    disk: inspect::DiskUsage,
    meta_file: &'a str,
    /// (name, number of attributes, arrays).
    datasets: Vec<(String, usize, Vec<ArrayFacts>)>,
    /// Raw bytes of the live blocks of every array.
    raw_bytes: u64,
    /// Bytes those blocks take on disk.
    stored_bytes: u64,
}

/// `atlas info`.
pub fn info(store: &Atlas, json_out: bool, out: &mut dyn Write) -> Result<()> {
    let mut facts = StoreFacts {
        disk: inspect::disk_usage(store)?,
        meta_file: store.meta_file_name(),
        datasets: Vec::new(),
        raw_bytes: 0,
        stored_bytes: 0,
    };
    for ds_name in store.list_datasets() {
        let dataset = store.open_dataset(&ds_name)?;
        let mut arrays = Vec::new();
        for name in dataset.list_arrays()? {
            let meta = dataset.array_meta(&name)?;
            let blocks = inspect::block_summary(store, &ds_name, &name)?;
            facts.raw_bytes = facts.raw_bytes.saturating_add(blocks.raw_bytes);
            facts.stored_bytes = facts.stored_bytes.saturating_add(blocks.stored_bytes);
            arrays.push(ArrayFacts { name, meta, blocks });
        }
        facts.datasets.push((ds_name, dataset.attrs().all()?.len(), arrays));
    }
    if json_out { info_json(store, &facts, out) } else { info_text(store, &facts, out) }
}

fn info_json(store: &Atlas, facts: &StoreFacts<'_>, out: &mut dyn Write) -> Result<()> {
    let (format, compression) = meta_encoding(facts.meta_file);
    let datasets: Vec<Json> = facts
        .datasets
        .iter()
        .map(|(name, attrs, arrays)| {
            let arrays: Vec<Json> = arrays
                .iter()
                .map(|ArrayFacts { name, meta, blocks: s }| {
                    json!({
                        "name": name,
                        "dtype": meta.dtype.name(),
                        "shape": meta.shape,
                        "chunk_shape": meta.chunk_shape,
                        "dims": meta.dims,
                        "fill_value": fill_json(meta),
                        "codec": to_json(&meta.codec),
                        "shuffle": to_json(&meta.shuffle),
                        "chunks": meta.chunk_grid().iter().product::<u64>(),
                        "blocks": s.blocks,
                        "codec_mix": s.by_codec,
                        "raw_bytes": s.raw_bytes,
                        "stored_bytes": s.stored_bytes,
                        "ratio": ratio(s.raw_bytes, s.stored_bytes),
                    })
                })
                .collect();
            json!({"name": name, "attribute_count": attrs, "arrays": arrays})
        })
        .collect();
    let doc = json!({
        "store": store.path().to_string_lossy(),
        "meta_file": facts.meta_file,
        "meta_format": format,
        "meta_compression": compression,
        "meta_bytes": facts.disk.meta_bytes,
        "generation": store.generation(),
        "codec": to_json(&store.codec()),
        "shuffle": to_json(&store.shuffle()),
        "attribute_count": store.attrs().all()?.len(),
        "fragment_files": facts.disk.fragment_files,
        "fragment_bytes": facts.disk.fragment_bytes,
        "raw_bytes": facts.raw_bytes,
        "stored_bytes": facts.stored_bytes,
        "ratio": ratio(facts.raw_bytes, facts.stored_bytes),
        "datasets": datasets,
    });
    writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}

fn info_text(store: &Atlas, facts: &StoreFacts<'_>, out: &mut dyn Write) -> Result<()> {
    let (format, compression) = meta_encoding(facts.meta_file);
    let disk = facts.disk;
    writeln!(out, "store       {}", crate::printable(&store.path().display().to_string()))?;
    writeln!(
        out,
        "metadata    {} ({format}, compression {compression}, {}), generation {}",
        facts.meta_file,
        human_bytes(disk.meta_bytes),
        store.generation()
    )?;
    let shuffle = format!("{:?}", store.shuffle()).to_lowercase();
    writeln!(out, "codec       {} for new blocks, shuffle {shuffle}", store.codec())?;
    let array_count: usize = facts.datasets.iter().map(|(_, _, a)| a.len()).sum();
    writeln!(out, "datasets    {}, arrays {array_count}", facts.datasets.len())?;
    write!(out, "blocks      raw {}, stored {}", human_bytes(facts.raw_bytes), human_bytes(facts.stored_bytes))?;
    match ratio(facts.raw_bytes, facts.stored_bytes) {
        Some(r) => writeln!(out, ", ratio {r:.2}")?,
        None => writeln!(out)?,
    }
    let files = counted(disk.fragment_files, "fragment file");
    writeln!(out, "on disk     {} in {files}", human_bytes(disk.fragment_bytes))?;
    for (ds_name, _, arrays) in &facts.datasets {
        writeln!(out)?;
        writeln!(out, "{ds_name}/")?;
        for ArrayFacts { name, meta, blocks } in arrays {
            writeln!(
                out,
                "  {name}  {} {}  chunks {}  dims {}",
                meta.dtype,
                list(&meta.shape),
                list(&meta.chunk_shape),
                dims_list(&meta.dims)
            )?;
            writeln!(out, "    {}", summary_line(meta, blocks))?;
        }
    }
    Ok(())
}

fn summary_line(meta: &ArrayMeta, s: &BlockSummary) -> String {
    let chunks: u64 = meta.chunk_grid().iter().product();
    let mut line = format!("blocks {} of {}", s.blocks, counted(chunks, "chunk"));
    if !s.by_codec.is_empty() {
        let mix: Vec<String> = s.by_codec.iter().map(|(codec, n)| format!("{codec} {n}")).collect();
        line = format!("{line} ({})", mix.join(", "));
    }
    line = format!("{line}, raw {}, stored {}", human_bytes(s.raw_bytes), human_bytes(s.stored_bytes));
    match ratio(s.raw_bytes, s.stored_bytes) {
        Some(r) => format!("{line}, ratio {r:.2}"),
        None => line,
    }
}

/// `atlas ls`: the datasets, or one dataset's arrays.
pub fn ls(store: &Atlas, dataset: Option<&Dataset>, json_out: bool, out: &mut dyn Write) -> Result<()> {
    let Some(dataset) = dataset else {
        let mut rows = Vec::new();
        for name in store.list_datasets() {
            let arrays = store.open_dataset(&name)?.list_arrays()?.len();
            rows.push((name, arrays));
        }
        if json_out {
            let rows: Vec<Json> = rows.iter().map(|(name, n)| json!({"name": name, "array_count": n})).collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&json!({ "datasets": rows }))?)?;
        } else {
            let rows: Vec<Vec<String>> =
                rows.into_iter().map(|(name, n)| vec![name, counted(n as u64, "array")]).collect();
            write_columns(out, &rows)?;
        }
        return Ok(());
    };
    let mut rows = Vec::new();
    for name in dataset.list_arrays()? {
        rows.push((dataset.array_meta(&name)?, name));
    }
    if json_out {
        let rows: Vec<Json> = rows
            .iter()
            .map(|(meta, name)| {
                json!({"name": name, "dtype": meta.dtype.name(), "shape": meta.shape,
                       "chunk_shape": meta.chunk_shape, "dims": meta.dims})
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&json!({"dataset": dataset.name(), "arrays": rows}))?)?;
    } else {
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .map(|(meta, name)| {
                vec![
                    name,
                    meta.dtype.name().to_string(),
                    list(&meta.shape),
                    format!("chunks {}", list(&meta.chunk_shape)),
                    format!("dims {}", dims_list(&meta.dims)),
                ]
            })
            .collect();
        write_columns(out, &rows)?;
    }
    Ok(())
}

/// Writes `rows` as lines of columns two spaces apart, each as wide as its widest cell (in
/// characters, not bytes), the last one unpadded.
fn write_columns(out: &mut dyn Write, rows: &[Vec<String>]) -> Result<()> {
    let mut widths = Vec::new();
    for row in rows {
        widths.resize(widths.len().max(row.len()), 0);
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in rows {
        let (last, padded) = row.split_last().expect("a row has cells");
        for (cell, width) in padded.iter().zip(&widths) {
            write!(out, "{cell:width$}  ")?;
        }
        writeln!(out, "{last}")?;
    }
    Ok(())
}

/// A bool array's statistic as the bool it is: statistics hold bools as integers (`Int`
/// once read back, `UInt` as written).
fn bool_extreme(value: Option<Scalar>, dtype: DType) -> Option<bool> {
    match value {
        Some(Scalar::Int(v)) if dtype == DType::Bool => Some(v != 0),
        Some(Scalar::UInt(v)) if dtype == DType::Bool => Some(v != 0),
        _ => None,
    }
}

/// What counts as null in `meta`'s array, as `stats` says beside the count: a value equal
/// to the fill value is one, which a first look at an imported array of zeros would not
/// expect.
fn what_is_null(meta: &ArrayMeta) -> String {
    let missing = match meta.dtype {
        DType::String => return "empty strings".to_string(),
        DType::Float32 | DType::Float64 => Some("NaN"),
        DType::Timestamp => Some("NaT"),
        _ => None,
    };
    let fill = fill_text(meta);
    match missing {
        Some(missing) if missing == fill => format!("{missing} elements"),
        Some(missing) => format!("{missing}, or elements equal to the fill value {fill}"),
        None => format!("elements equal to the fill value {fill}"),
    }
}

/// The array's fill value as `stats` and `cat` print values (`NaT`, `true`, `NaN`).
pub(crate) fn fill_text(meta: &ArrayMeta) -> String {
    scalar_text(Some(meta.fill_value), meta.dtype)
}

fn scalar_text(value: Option<Scalar>, dtype: DType) -> String {
    if let Some(b) = bool_extreme(value, dtype) {
        return b.to_string(); // as `cat` prints bools
    }
    match value {
        None => "-".to_string(),
        Some(Scalar::Int(v)) if dtype == DType::Timestamp => iso8601(v),
        // Widened to f64 in the statistics; printed as the float32 it is.
        Some(Scalar::Float(v)) if dtype == DType::Float32 => float_text(v as f32),
        // As `cat` prints floats (`Scalar`'s own text keeps a point: `2.0`).
        Some(Scalar::Float(v)) => float_text(v),
        Some(v) => v.to_string(),
    }
}

/// A minimum or maximum as JSON: bools as `true`/`false`, as `cat --json` gives them.
fn extreme_json(value: Option<Scalar>, dtype: DType) -> Json {
    match value {
        // Widened to f64 in the statistics; written as the float32 it is.
        Some(Scalar::Float(v)) if dtype == DType::Float32 => crate::values::f32_json(v as f32),
        _ => bool_extreme(value, dtype).map_or_else(|| to_json(&value), Json::Bool),
    }
}

/// A fill value as JSON, as `cat --json` gives an element holding it: bools `true`/`false`,
/// floats with their point, a string array's `""`, a timestamp's nanoseconds (`null` for
/// `NaT`), whichever kind of number the schema spells it with (`1.0` for a bool).
fn fill_json(meta: &ArrayMeta) -> Json {
    let as_element = || -> Result<Json> {
        let Some(bytes) = meta.fill_value.to_le_bytes(meta.dtype) else { bail!("no element of the dtype") };
        Ok(dispatch!(meta.dtype, |T| <T as Fixed>::from_le(&bytes).json(meta.dtype), string => Json::from("")))
    };
    as_element().unwrap_or_else(|_| to_json(&meta.fill_value))
}

/// Whether a sum of values means something: not for strings (not numbers) nor timestamps
/// (a sum of instants is no instant).
fn has_sum(dtype: DType) -> bool {
    !matches!(dtype, DType::String | DType::Timestamp)
}

/// A sum of values as text, `-` where it means nothing.
fn sum_text(sum: f64, dtype: DType) -> String {
    if has_sum(dtype) { float_text(sum) } else { "-".to_string() }
}

/// A sum of values as JSON, `null` where it means nothing.
fn sum_json(sum: f64, dtype: DType) -> Json {
    if has_sum(dtype) { crate::values::float_json(sum) } else { Json::Null }
}

/// A mean as text: none for strings, an instant for timestamps (the mean is a float: for
/// today's dates it is within a few hundred nanoseconds).
fn mean_text(stats: &ArrayStats, dtype: DType) -> String {
    match (stats.mean, stats.mean_instant(), dtype) {
        (None, ..) | (_, _, DType::String) => "-".to_string(),
        (_, Some(instant), DType::Timestamp) => iso8601(instant),
        (Some(m), ..) => float_text(m),
    }
}

/// `atlas stats`.
pub fn stats(handle: &ArrayHandle, label: &str, blocks: bool, json_out: bool, out: &mut dyn Write) -> Result<()> {
    let meta = handle.meta()?;
    let stats = handle.stats()?;
    let block_stats = handle.block_stats()?;
    let chunks: u64 = meta.chunk_grid().iter().product();
    if json_out {
        let mut doc = json!({
            "array": label,
            "dtype": meta.dtype.name(),
            "shape": meta.shape,
            "chunks": chunks,
            "blocks": block_stats.len(),
            "stats": to_json(&stats),
        });
        doc["stats"]["min"] = extreme_json(stats.min, meta.dtype);
        doc["stats"]["max"] = extreme_json(stats.max, meta.dtype);
        doc["stats"]["sum"] = sum_json(stats.sum, meta.dtype);
        if let (Some(instant), DType::Timestamp) = (stats.mean_instant(), meta.dtype) {
            doc["stats"]["mean"] = json!(instant); // nanoseconds, as min and max
        }
        if blocks {
            doc["block_stats"] = block_stats
                .iter()
                .map(|b| {
                    json!({"coord": b.coord, "count": b.count, "min": extreme_json(b.min, meta.dtype), "max": extreme_json(b.max, meta.dtype),
                                 "sum": sum_json(b.sum, meta.dtype)})
                })
                .collect();
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(());
    }
    let dtype = meta.dtype;
    writeln!(out, "array   {label}  {dtype} {}", list(&meta.shape))?;
    writeln!(out, "count   {}", stats.count)?;
    writeln!(out, "nulls   {}  ({})", stats.null_count, what_is_null(&meta))?;
    writeln!(out, "min     {}", scalar_text(stats.min, dtype))?;
    writeln!(out, "max     {}", scalar_text(stats.max, dtype))?;
    writeln!(out, "sum     {}", sum_text(stats.sum, dtype))?;
    writeln!(out, "mean    {}", mean_text(&stats, dtype))?;
    writeln!(out, "blocks  {} of {} written", block_stats.len(), counted(chunks, "chunk"))?;
    if blocks {
        writeln!(out)?;
        writeln!(out, "chunk\tcount\tmin\tmax\tsum")?;
        for b in &block_stats {
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}",
                list(&b.coord),
                b.count,
                scalar_text(b.min, dtype),
                scalar_text(b.max, dtype),
                sum_text(b.sum, dtype)
            )?;
        }
    }
    Ok(())
}

fn attr_text(value: &AttrValue) -> String {
    match value {
        AttrValue::Bool(v) => v.to_string(),
        AttrValue::Int(v) => v.to_string(),
        AttrValue::Float(v) => float_text(*v),
        AttrValue::String(s) => Json::from(s.as_str()).to_string(),
        AttrValue::Timestamp(ns) => iso8601(*ns),
        AttrValue::List(items) => format!("[{}]", items.iter().map(attr_text).collect::<Vec<_>>().join(", ")),
        AttrValue::Map(items) => format!(
            "{{{}}}",
            items
                .iter()
                .map(|(k, v)| format!("{}: {}", Json::from(k.as_str()), attr_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn attr_type(value: &AttrValue) -> &'static str {
    match value {
        AttrValue::Bool(_) => "bool",
        AttrValue::Int(_) => "int",
        AttrValue::Float(_) => "float",
        AttrValue::String(_) => "string",
        AttrValue::Timestamp(_) => "timestamp",
        AttrValue::List(_) => "list",
        AttrValue::Map(_) => "map",
    }
}

/// `atlas attrs`: as `key (type) = value` lines, or as JSON with each value's type tag.
pub fn attrs(attributes: &Attributes, json_out: bool, out: &mut dyn Write) -> Result<()> {
    if json_out {
        writeln!(out, "{}", serde_json::to_string_pretty(&to_json(attributes))?)?;
        return Ok(());
    }
    let width = attributes.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    for (key, value) in attributes {
        writeln!(out, "{key:width$}  {:9} {}", attr_type(value), attr_text(value))?;
    }
    Ok(())
}

/// `atlas cat`: the selected values, as text (one row of the last axis per line, planes of
/// 3-d and higher selections under a header of their index in the array) or as nested
/// JSON arrays.
pub fn cat(handle: &ArrayHandle, sel: &Selection, json_out: bool, slabs: SlabSize, out: &mut dyn Write) -> Result<()> {
    let meta = handle.meta()?;
    dispatch!(meta.dtype, |T| cat_typed::<T>(handle, &meta, sel, json_out, slabs, out),
        string => cat_typed::<String>(handle, &meta, sel, json_out, slabs, out))
}

/// How `cat` cuts its reads.
#[derive(Debug, Clone, Copy)]
pub struct SlabSize {
    /// The memory a slab may take.
    pub bytes: u64,
    /// The memory one value takes once read (`inspect::value_bytes`).
    pub value_bytes: u64,
}

fn cat_typed<T: Cell>(
    handle: &ArrayHandle,
    meta: &ArrayMeta,
    sel: &Selection,
    json_out: bool,
    slabs: SlabSize,
    out: &mut dyn Write,
) -> Result<()> {
    let out_shape = sel.out_shape();
    // Slabs need an output axis to cut; a selection without one (a 0-d array, or every axis
    // picked by an index) or with no element is read whole.
    let slabbed = sel.keep.contains(&true) && !out_shape.contains(&0);
    if json_out && out_shape.contains(&0) {
        write_empty_json(&out_shape, out)?;
        return Ok(writeln!(out)?);
    }
    if json_out && !slabbed {
        let values = read_selection::<T>(handle, sel, &sel.start, &sel.extent)?;
        write_nested_json(&values.view(), meta.dtype, out)?;
        writeln!(out)?;
        return Ok(());
    }
    if json_out {
        // The outer list written element by element, a slab at a time; a selection refused
        // is refused before its opening bracket (stdout stays empty, as on any error).
        slab_rows(sel, slabs)?;
        let mut first = true;
        write!(out, "[")?;
        for_each_slab::<T>(handle, sel, slabs, &mut |values| {
            for sub in values.outer_iter() {
                write!(out, "{}", if first { "" } else { "," })?;
                write_nested_json(&sub, meta.dtype, out)?;
                first = false;
            }
            Ok(())
        })?;
        writeln!(out, "]")?;
        return Ok(());
    }
    if out_shape.contains(&0) {
        return Ok(());
    }
    if sel.extent.is_empty() {
        let values = read_selection::<T>(handle, sel, &sel.start, &sel.extent)?;
        writeln!(out, "{}", values.first().expect("a 0-d array has one value").text(meta.dtype))?;
        return Ok(());
    }
    let mut printer = Printer { dtype: meta.dtype, sel, rows_done: 0 };
    for_each_slab::<T>(handle, sel, slabs, &mut |values| printer.print(&values.view(), out))
}

/// Nested JSON lists of `shape`, which holds a zero: written as they go, never built (the
/// axes before the zero may be as long as any).
fn write_empty_json(shape: &[usize], out: &mut dyn Write) -> Result<()> {
    write!(out, "[")?;
    if let [len, inner @ ..] = shape
        && !inner.is_empty()
    {
        for i in 0..*len {
            write!(out, "{}", if i == 0 { "" } else { "," })?;
            write_empty_json(inner, out)?;
        }
    }
    Ok(write!(out, "]")?)
}

/// The most slabs (of at least the default size) one row of a `cat` selection may take.
const MAX_ROW_SLABS: u64 = 16;

/// The axis `sel` is read in slabs along (its first kept one) and the bytes one index of it
/// spans. A slab is at least one such row: past a bound, a row (of a huge or hostile shape)
/// is refused rather than read whole, before anything is written.
fn slab_rows(sel: &Selection, slabs: SlabSize) -> Result<(usize, u64)> {
    let axis = sel.keep.iter().position(|&kept| kept).unwrap_or(0);
    let row_bytes = sel.extent[axis + 1..].iter().fold(slabs.value_bytes, |acc, &n| acc.saturating_mul(n));
    let max_row_bytes = slabs.bytes.max(crate::transfer::DEFAULT_SLAB_BYTES).saturating_mul(MAX_ROW_SLABS);
    if row_bytes > max_row_bytes {
        bail!(
            "one index of the selection's first axis holds {row_bytes} bytes, more than cat reads at once \
             ({max_row_bytes} bytes); narrow it with --slice"
        );
    }
    Ok((axis, row_bytes))
}

/// Reads `sel` in slabs along its first kept axis (output axis 0; the picked axes before it
/// span one index each) and hands each (stepped, picked axes dropped) to `f`. Each slab is a
/// whole number of steps, so every slab starts on a selected row.
fn for_each_slab<T: Cell>(
    handle: &ArrayHandle,
    sel: &Selection,
    slabs: SlabSize,
    f: &mut dyn FnMut(ArrayD<T>) -> Result<()>,
) -> Result<()> {
    let (axis, row_bytes) = slab_rows(sel, slabs)?;
    let slab_bytes = slabs.bytes;
    let step = sel.step[axis];
    // Selected rows per slab: a slab reads from its first selected row to its last, and
    // those rows (the ones stepped over too) fit in `slab_bytes`.
    let rows_fit = (slab_bytes / row_bytes.max(1)).max(1);
    let per_slab = 1 + (rows_fit - 1) / step;
    let end = sel.start[axis] + sel.extent[axis];
    let mut start = sel.start.clone();
    let mut extent = sel.extent.clone();
    while start[axis] < end {
        extent[axis] = (per_slab - 1).saturating_mul(step).saturating_add(1).min(end - start[axis]);
        f(read_selection::<T>(handle, sel, &start, &extent)?)?;
        start[axis] = start[axis].saturating_add(per_slab.saturating_mul(step));
    }
    Ok(())
}

/// Reads the box `start .. start + extent` (a part of `sel`'s box, no extent zero), applies
/// the steps and drops the picked axes.
fn read_selection<T: Cell>(handle: &ArrayHandle, sel: &Selection, start: &[u64], extent: &[u64]) -> Result<ArrayD<T>> {
    let mut values = T::read(handle, start, extent)?;
    // In place: the values stay where they were read, with no copy beside them.
    values.slice_each_axis_inplace(|ax| {
        Slice::new(0, None, isize::try_from(sel.step[ax.axis.index()]).expect("a step within its axis"))
    });
    for axis in (0..sel.keep.len()).rev() {
        if !sel.keep[axis] {
            values = values.index_axis_move(Axis(axis), 0);
        }
    }
    Ok(values)
}

/// Prints rows of the last axis, one per line; for 3 or more output axes, each 2-d plane
/// under a header naming its leading indices, planes separated by a blank line.
struct Printer<'a> {
    dtype: DType,
    sel: &'a Selection,
    /// Output rows (indices along output axis 0) printed by earlier slabs.
    rows_done: usize,
}

impl Printer<'_> {
    fn print<T: Cell>(&mut self, values: &ArrayViewD<'_, T>, out: &mut dyn Write) -> Result<()> {
        let ndim = values.ndim();
        if ndim == 0 {
            let value = values.first().expect("a 0-d array has one value");
            writeln!(out, "{}", value.text(self.dtype))?;
            return Ok(());
        }
        if ndim == 1 {
            for v in values {
                writeln!(out, "{}", v.text(self.dtype))?;
            }
            return Ok(());
        }
        let offset = self.rows_done;
        let lead = &values.shape()[..ndim - 1];
        for (k, row) in values.rows().into_iter().enumerate() {
            if ndim >= 3 {
                let mut index = unravel(k, lead);
                if index[ndim - 2] == 0 {
                    index[0] += offset;
                    if index[..ndim - 2].iter().any(|&i| i > 0) {
                        writeln!(out)?;
                    }
                    writeln!(out, "{}", plane_header(self.sel, &index[..ndim - 2]))?;
                }
            }
            // Value by value: the strings of a whole 1 GiB row would take tens of GiB.
            for (i, v) in row.iter().enumerate() {
                write!(out, "{}{}", if i == 0 { "" } else { " " }, v.text(self.dtype))?;
            }
            writeln!(out)?;
        }
        self.rows_done += values.shape()[0];
        Ok(())
    }
}

/// The numpy index of the plane at output index `outer` (over all output axes but the
/// last two) in the array: a picked axis's index, the array index of an outer output axis,
/// and `:` for the two axes the plane spans (`[1, 4, :, :]`).
fn plane_header(sel: &Selection, outer: &[usize]) -> String {
    let mut outer = outer.iter();
    let parts: Vec<String> = (0..sel.keep.len())
        .map(|axis| {
            if !sel.keep[axis] {
                return sel.start[axis].to_string();
            }
            match outer.next() {
                Some(&i) => (sel.start[axis] + i as u64 * sel.step[axis]).to_string(),
                None => ":".to_string(),
            }
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// The index of the `flat`-th element of `shape` in C order.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &n) in shape.iter().enumerate().rev() {
        index[i] = flat % n.max(1);
        flat /= n.max(1);
    }
    index
}

/// `values` as nested JSON lists, written value by value: a JSON tree of a 1 GiB row would
/// take tens of times its bytes.
fn write_nested_json<T: Cell>(values: &ArrayViewD<'_, T>, dtype: DType, out: &mut dyn Write) -> Result<()> {
    if values.ndim() == 0 {
        // Through `write!`: a serde_json error would hide a broken pipe from `main`.
        return Ok(write!(out, "{}", values.first().expect("a 0-d array has one value").json(dtype))?);
    }
    write!(out, "[")?;
    for (i, sub) in values.outer_iter().enumerate() {
        write!(out, "{}", if i == 0 { "" } else { "," })?;
        write_nested_json(&sub, dtype, out)?;
    }
    Ok(write!(out, "]")?)
}

#[cfg(test)]
mod tests {
    use atlas::{ArraySpec, StoreConfig};
    use ndarray::Array1;

    use super::*;

    #[test]
    fn unnamed_dimensions_show_as_empty_quotes() {
        let dims = |names: &[&str]| dims_list(&names.iter().map(ToString::to_string).collect::<Vec<_>>());
        assert_eq!(dims(&["", "b"]), r#"["", b]"#);
        assert_eq!(dims(&[""]), r#"[""]"#, "one unnamed dimension, not a 0-d array's []");
        assert_eq!(dims(&["a b, c", " x", "y"]), r#"["a b, c", " x", y]"#);
        assert_eq!(dims(&[]), "[]");
    }

    #[test]
    fn string_slabs_are_sized_by_the_text_they_hold() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = Atlas::create(dir.path().join("s.atlas"), StoreConfig::default()).unwrap();
        let ds = store.create_dataset("d").unwrap();
        let handle = ds.define_array("logs", ArraySpec::new(DType::String, [64]).chunk_shape([16])).unwrap();
        let text: Vec<String> = (0..64).map(|i| format!("{i:04}").repeat(256)).collect();
        handle.write_strings(&[0], Array1::from(text.clone()).view()).unwrap();
        let meta = handle.meta().unwrap();
        let value_bytes = crate::inspect::value_bytes(&store, "d", "logs", &meta).unwrap();
        assert!((1064..1200).contains(&value_bytes), "a String, its heap block and 1 KiB of text: {value_bytes}");
        // 4 KiB slabs hold 3 of them (16 if counted as bare `String`s), and give back every value.
        let slabs = SlabSize { bytes: 4096, value_bytes };
        let (mut sizes, mut back) = (Vec::new(), Vec::new());
        for_each_slab::<String>(&handle, &Selection::all(&meta.shape), slabs, &mut |values| {
            sizes.push(values.len());
            back.extend(values);
            Ok(())
        })
        .unwrap();
        assert!(sizes.iter().all(|&n| n == 3 || n == 1), "{sizes:?}");
        assert_eq!(back, text);
    }
}
