//! The list of xarray coordinates the Python module keeps in a dataset's attribute
//! `_xarray_coords` (the arrays that open as coordinates): kept true when the CLI moves or
//! deletes an array, as the module itself does.

use anyhow::Result;
use atlas::{AttrValue, Dataset};

/// The dataset attribute naming which of its arrays are xarray coordinates.
const COORDS_KEY: &str = "_xarray_coords";

/// After array `name` of `dataset` is renamed to `new_name` (in `dataset`), or deleted or
/// moved to another dataset (`None`), its entry in the list is renamed or dropped: a name
/// left there would make a later array of that name a coordinate. A list that does not
/// name it (or no list) is left as it is.
pub(crate) fn coordinate_moved(dataset: &Dataset, name: &str, new_name: Option<&str>) -> Result<()> {
    let attrs = dataset.attrs();
    let Some(AttrValue::List(coords)) = attrs.get(COORDS_KEY)? else { return Ok(()) };
    if !coords.iter().any(|coord| coord.as_str() == Some(name)) {
        return Ok(());
    }
    let follows = |coord: AttrValue| match coord.as_str() {
        Some(coord) if coord == name => new_name.map(AttrValue::from),
        _ => Some(coord),
    };
    attrs.set(COORDS_KEY, AttrValue::List(coords.into_iter().filter_map(follows).collect()))?;
    Ok(())
}
