//! Renaming datasets and moving arrays: changes of the metadata alone. Blocks are indexed
//! by array id, never by name, so no block is read, copied or written.

use std::sync::Arc;

use super::Atlas;
use super::state::State;
use crate::error::{EntityKind, Error, Result};
use crate::meta::validate_name;

impl Atlas {
    /// Renames dataset `from` to `to`, with its arrays and attributes. Only the metadata
    /// changes (at the next flush, as any change): no block is copied. Handles opened on
    /// the old name ([`Dataset`](crate::Dataset), [`ArrayHandle`](crate::ArrayHandle)) go by
    /// name, so they fail with [`Error::NotFound`] from then on; open the new name. Renaming
    /// a dataset to its own name changes nothing.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for `to`, [`Error::NotFound`] if there is no dataset `from`,
    /// [`Error::AlreadyExists`] if there is one named `to`, [`Error::Locked`].
    pub fn rename_dataset(&self, from: &str, to: &str) -> Result<()> {
        validate_name(EntityKind::Dataset, to)?;
        let check = |state: &State| {
            state.dataset(from)?;
            if from != to && state.meta.datasets.contains_key(to) {
                return Err(Error::already_exists(EntityKind::Dataset, to));
            }
            Ok(())
        };
        let mut state = self.inner.write();
        // To its own name: nothing to change where the dataset is (as a set that changes
        // nothing); a read-only handle is refused as at any change.
        if from == to && self.inner.holds_on_newest(&state, |state| state.dataset(from).is_ok()) {
            return Ok(());
        }
        // Refused before taking the writer lock, and again on the newest commit it loads.
        self.inner.check_before_change(&state, check)?;
        self.inner.change(&mut state, |state| {
            check(state)?;
            let dataset = state.meta.datasets.remove(from).expect("checked above");
            state.meta.datasets.insert(to.to_string(), dataset);
            Ok(())
        })
    }

    /// Moves array `from` of dataset `from_dataset` to dataset `to_dataset` under the name
    /// `to` (the same dataset renames it), with its blocks, schema, attributes and
    /// statistics. Only the metadata changes (at the next flush, as any change): no block is
    /// copied. An [`ArrayHandle`](crate::ArrayHandle) goes by name, so one opened on the old
    /// name fails with [`Error::NotFound`] from then on. Moving an array to its own place
    /// changes nothing.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for `to`, [`Error::NotFound`] if there is no array `from` in
    /// `from_dataset` or no dataset `to_dataset`, [`Error::AlreadyExists`] if `to_dataset`
    /// has an array named `to`, [`Error::Locked`].
    pub fn move_array(&self, (from_dataset, from): (&str, &str), (to_dataset, to): (&str, &str)) -> Result<()> {
        validate_name(EntityKind::Array, to)?;
        let same_place = (from_dataset, from) == (to_dataset, to);
        let check = |state: &State| check_array_places(state, (from_dataset, from), (to_dataset, to), same_place);
        let mut state = self.inner.write();
        // To its own place: nothing to change where the array is (as `rename_dataset`).
        if same_place && self.inner.holds_on_newest(&state, |state| state.array(from_dataset, from).is_ok()) {
            return Ok(());
        }
        // Refused before taking the writer lock, and again on the newest commit it loads.
        self.inner.check_before_change(&state, check)?;
        self.inner.change(&mut state, |state| {
            check(state)?;
            let datasets = &mut state.meta.datasets;
            let array = Arc::make_mut(datasets.get_mut(from_dataset).expect("checked above"))
                .arrays
                .remove(from)
                .expect("checked above");
            let target = Arc::make_mut(datasets.get_mut(to_dataset).expect("checked above"));
            target.arrays.insert(to.to_string(), array);
            Ok(())
        })
    }
}

/// Checks, on `state`, that array `from` can go to `to` (each `(dataset, name)`): it exists,
/// and so does the dataset of `to`, with no array of that name, unless `own_place` allows
/// `to` to be `from` itself (a move that changes nothing).
pub(super) fn check_array_places(state: &State, from: (&str, &str), to: (&str, &str), own_place: bool) -> Result<()> {
    state.array(from.0, from.1)?;
    if state.dataset(to.0)?.arrays.contains_key(to.1) && !(own_place && from == to) {
        return Err(Error::already_exists(EntityKind::Array, format!("{}/{}", to.0, to.1)));
    }
    Ok(())
}
