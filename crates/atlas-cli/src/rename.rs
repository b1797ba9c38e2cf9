//! `atlas mv` (renames a dataset or moves an array, a change of the metadata alone) and
//! `atlas cp` (copies an array, its blocks as stored).

use std::io::Write;
use std::path::Path;

use anyhow::{Result, bail};

use crate::coords::coordinate_moved;
use crate::{ArrayPath, DatasetOrArray, DiscardUncommitted, open_array, open_dataset, open_store, printable, report};

/// Renames dataset `source` to `dest`, or moves array `source` to `dest` (in its dataset or
/// another), and commits it.
pub(crate) fn mv(path: &Path, source: &DatasetOrArray, dest: &DatasetOrArray, out: &mut dyn Write) -> Result<()> {
    let store = open_store(path)?;
    let _uncommitted = DiscardUncommitted(&store);
    let moved = match (source, dest) {
        (DatasetOrArray::Dataset(from), DatasetOrArray::Dataset(to)) => {
            open_dataset(&store, from)?; // missing: said with a hint
            store.rename_dataset(from, to)?;
            if from == to {
                format!("dataset {from} keeps its name")
            } else {
                format!("renamed dataset {from} to {to}")
            }
        }
        (DatasetOrArray::Array(from), DatasetOrArray::Array(to)) => {
            open_array(&store, from)?; // missing: said with a hint
            open_dataset(&store, &to.dataset)?;
            store.move_array((&from.dataset, &from.array), (&to.dataset, &to.array))?;
            if from == to {
                format!("array {from} stays where it is")
            } else {
                let renamed = (to.dataset == from.dataset).then_some(to.array.as_str());
                coordinate_moved(&open_dataset(&store, &from.dataset)?, &from.array, renamed)?;
                format!("moved array {from} to {to}")
            }
        }
        (DatasetOrArray::Dataset(from), DatasetOrArray::Array(to)) => {
            bail!(
                "{} is a dataset and {} an array: a dataset is renamed to a DATASET",
                printable(from),
                printable(&to.to_string())
            )
        }
        (DatasetOrArray::Array(from), DatasetOrArray::Dataset(to)) => {
            bail!(
                "{} is an array and {} a dataset: an array moves to a DATASET/ARRAY (e.g. {}/{})",
                printable(&from.to_string()),
                printable(to),
                printable(to),
                printable(&from.array)
            )
        }
    };
    store.flush()?;
    writeln!(out, "{}", printable(&moved))?;
    Ok(())
}

/// Copies array `source` to the new array `dest`, and commits it.
pub(crate) fn cp(path: &Path, source: &ArrayPath, dest: &ArrayPath, out: &mut dyn Write) -> Result<()> {
    let store = open_store(path)?;
    let _uncommitted = DiscardUncommitted(&store);
    open_array(&store, source)?; // missing: said with a hint
    open_dataset(&store, &dest.dataset)?;
    store.copy_array((&source.dataset, &source.array), (&dest.dataset, &dest.array))?;
    store.flush()?;
    let blocks = store.array_blocks(&dest.dataset, &dest.array)?.iter().filter(|b| !b.is_fill).count() as u64;
    let copied = format!("copied array {source} to {dest} ({})", report::counted(blocks, "block"));
    writeln!(out, "{}", printable(&copied))?;
    Ok(())
}
