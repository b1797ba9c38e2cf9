//! `atlas rm`: deletes datasets and arrays, all in one commit.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use atlas::Atlas;

use crate::coords::coordinate_moved;
use crate::{
    ArrayPath, DatasetOrArray, DiscardUncommitted, open_array, open_dataset, open_store, printable, report, suggested,
};

/// Deletes every dataset and array `names` gives, or none of them: each must exist, unless
/// `force` skips those that do not. An array whose dataset is deleted too goes with it.
/// Their blocks stay in the fragment files until a compaction.
pub(crate) fn rm(path: &Path, names: &[DatasetOrArray], force: bool, out: &mut dyn Write) -> Result<()> {
    let store = open_store(path)?;
    let _uncommitted = DiscardUncommitted(&store);
    let mut datasets: Vec<&str> = Vec::new();
    let mut arrays: Vec<&ArrayPath> = Vec::new();
    for name in names.iter().filter(|name| !(force && is_missing(&store, name))) {
        match name {
            DatasetOrArray::Dataset(dataset) => {
                open_dataset(&store, dataset).context("nothing was deleted")?;
                datasets.push(dataset);
            }
            DatasetOrArray::Array(array) => {
                open_array(&store, array).context("nothing was deleted")?;
                arrays.push(array);
            }
        }
    }
    datasets.sort_unstable();
    datasets.dedup();
    arrays.retain(|array| !datasets.contains(&array.dataset.as_str()));
    arrays.sort_unstable();
    arrays.dedup();
    // Another writer may have deleted one since it was checked: still nothing is committed.
    let mut deleted = Vec::new();
    let mut arrays_deleted = arrays.len() as u64;
    for array in arrays {
        let dataset = open_dataset(&store, &array.dataset).context("nothing was deleted")?;
        dataset.delete_array(&array.array).context("nothing was deleted")?;
        coordinate_moved(&dataset, &array.array, None).context("nothing was deleted")?;
        deleted.push(format!("deleted array {array}"));
    }
    for dataset in datasets {
        let arrays = open_dataset(&store, dataset).context("nothing was deleted")?.list_arrays()?.len() as u64;
        store.delete_dataset(dataset).context("nothing was deleted")?;
        arrays_deleted += arrays;
        deleted.push(format!("deleted dataset {dataset} ({})", report::counted(arrays, "array")));
    }
    if deleted.is_empty() {
        return Ok(()); // `--force`, and nothing named exists
    }
    store.flush()?;
    for line in &deleted {
        writeln!(out, "{}", printable(line))?;
    }
    if arrays_deleted > 0 {
        let path = path.display().to_string();
        writeln!(out, "their blocks stay on disk until {} reclaims them", printable(&suggested("compact", &[&path])))?;
    }
    Ok(())
}

/// Whether `name` names no dataset or array of `store` (other failures are left to the
/// checks that follow).
fn is_missing(store: &Atlas, name: &DatasetOrArray) -> bool {
    let found = match name {
        DatasetOrArray::Dataset(dataset) => store.open_dataset(dataset).map(drop),
        DatasetOrArray::Array(array) => {
            store.open_dataset(&array.dataset).and_then(|d| d.array(&array.array)).map(drop)
        }
    };
    matches!(found, Err(atlas::Error::NotFound { .. }))
}
