//! [`Attrs`]: the attributes of the store, a dataset or an array, through one handle type.

use std::sync::Arc;

use super::state::{Inner, State, same_text};
use crate::error::{EntityKind, Error, Result};
use crate::meta::{AttrValue, Attributes, MAX_ATTR_DEPTH, validate_attribute_key};

/// Whose attributes an [`Attrs`] handle reaches.
#[derive(Debug, Clone)]
pub(crate) enum AttrTarget {
    Store,
    Dataset(String),
    Array(String, String),
}

/// The attributes of a store, dataset or array: typed values under string keys. Changes are
/// durable at the next flush.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use atlas::{Atlas, AttrValue, StoreConfig};
/// let store = Atlas::create(dir.path().join("s"), StoreConfig::default())?;
/// store.attrs().set("title", "ocean profiles")?;
/// store.attrs().set("created", AttrValue::Timestamp(1_700_000_000_000_000_000))?;
/// assert_eq!(store.attrs().get("title")?, Some(AttrValue::from("ocean profiles")));
/// # Ok::<(), atlas::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Attrs {
    inner: Arc<Inner>,
    target: AttrTarget,
}

impl Attrs {
    pub(crate) fn new(inner: Arc<Inner>, target: AttrTarget) -> Self {
        Self { inner, target }
    }

    /// All attributes, sorted by key.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the dataset or array was deleted.
    pub fn all(&self) -> Result<Attributes> {
        self.with(Attributes::clone)
    }

    /// One attribute, or `None` if the key is not set.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the dataset or array was deleted.
    pub fn get(&self, key: &str) -> Result<Option<AttrValue>> {
        self.with(|attrs| attrs.get(key).cloned())
    }

    /// Sets an attribute, replacing any value under the key. A value the key already holds
    /// (on this handle's snapshot and the newest commit) changes nothing: no writer lock,
    /// nothing to commit (a notebook cell run again).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a key that is empty, over 255 bytes, `.` or `..`, or holds
    /// a control character, `/` or `\`; [`Error::InvalidArgument`] for a value nested
    /// deeper than 32 levels; [`Error::NotFound`] if the dataset or array was deleted;
    /// [`Error::Locked`].
    pub fn set(&self, key: &str, value: impl Into<AttrValue>) -> Result<()> {
        validate_attribute_key(key)?;
        let value = value.into();
        if value.depth() > MAX_ATTR_DEPTH {
            return Err(Error::invalid(format!("attribute {key:?} nests deeper than {MAX_ATTR_DEPTH} levels")));
        }
        let value = value.with_standard_nans();
        // As written: a NaN is set already, -0.0 over 0.0 is a change.
        let is_set = |attrs: &Attributes| attrs.get(key).is_some_and(|set| same_text(set, &value));
        self.with_mut(
            |_| Ok(()),
            is_set,
            |attrs| {
                attrs.insert(key.to_string(), value.clone());
            },
        )
    }

    /// Removes an attribute.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the key is not set, or the dataset or array was deleted;
    /// [`Error::Locked`].
    pub fn remove(&self, key: &str) -> Result<()> {
        let check = |attrs: &Attributes| {
            if attrs.contains_key(key) { Ok(()) } else { Err(Error::not_found(EntityKind::Attribute, key)) }
        };
        self.with_mut(
            check,
            |_| false,
            |attrs| {
                attrs.remove(key);
            },
        )
    }

    fn with<R>(&self, f: impl FnOnce(&Attributes) -> R) -> Result<R> {
        let state = self.inner.read();
        Ok(f(self.target_attrs(&state)?))
    }

    /// Changes the target's attributes by `apply` where `check` passes: `check` first
    /// before taking the writer lock for the change, then on the newest commit's attributes
    /// (which `begin_change` may have just loaded, so other writers' attributes are kept).
    /// Where `is_done` holds on the newest commit already, nothing changes: no writer lock,
    /// nothing to commit.
    fn with_mut(
        &self,
        check: impl Fn(&Attributes) -> Result<()>,
        is_done: impl Fn(&Attributes) -> bool,
        apply: impl FnOnce(&mut Attributes),
    ) -> Result<()> {
        let mut guard = self.inner.write();
        self.inner.check_before_change(&guard, |state| check(self.target_attrs(state)?))?;
        if self.inner.holds_on_newest(&guard, |state| self.target_attrs(state).is_ok_and(&is_done)) {
            return Ok(());
        }
        self.inner.change(&mut guard, |state| {
            let attrs = match &self.target {
                AttrTarget::Store => &mut state.meta.attributes,
                AttrTarget::Dataset(ds) => &mut state.dataset_mut(ds)?.attributes,
                AttrTarget::Array(ds, name) => &mut state.array_mut(ds, name)?.attributes,
            };
            check(attrs)?;
            apply(attrs);
            Ok(())
        })
    }

    fn target_attrs<'s>(&self, state: &'s State) -> Result<&'s Attributes> {
        Ok(match &self.target {
            AttrTarget::Store => &state.meta.attributes,
            AttrTarget::Dataset(ds) => &state.dataset(ds)?.attributes,
            AttrTarget::Array(ds, name) => &state.array(ds, name)?.attributes,
        })
    }
}
