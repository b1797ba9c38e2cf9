//! The serialised structs of the metadata file: the store, its datasets, their arrays and
//! the list of committed fragments. Layout and meaning: docs/FORMAT.md, "Metadata file".

use std::collections::{BTreeMap, HashSet};

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::attr::Attributes;
use super::codec::{Codec, Shuffle};
use super::dtype::DType;
use super::name::{validate_attribute_key, validate_name};
use super::scalar::Scalar;
use super::stats::ArrayStats;
use super::unique::unique_keys;
use crate::error::EntityKind;

/// The format version this build writes, and the newest it reads.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Most dimensions an array may have.
pub const MAX_NDIM: usize = 32;
/// Largest chunk, in bytes of raw elements; bounds every per-block allocation.
pub(crate) const MAX_CHUNK_BYTES: u64 = 256 << 20;
/// Largest zstd dictionary an array may carry.
pub(crate) const MAX_DICTIONARY_BYTES: usize = 64 << 10;
/// Deepest nesting of lists and maps in an attribute value. The JSON encoding spends two
/// levels per list or map (the tagged object and its value) and `serde_json` refuses input
/// nested deeper than 128, so this stays well below 64 to keep every accepted value readable.
pub(crate) const MAX_ATTR_DEPTH: usize = 32;

/// The whole metadata file: one commit of the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreMeta {
    pub format_version: u32,
    /// Incremented by every commit; the higher of two metadata files wins.
    pub generation: u64,
    /// Codec for new blocks of arrays without their own.
    pub codec: Codec,
    /// Shuffle setting for new blocks of arrays without their own.
    pub shuffle: Shuffle,
    /// The id the next defined array gets; ids are never reused.
    pub next_array_id: u64,
    #[serde(deserialize_with = "unique_keys")]
    pub attributes: Attributes,
    /// Each shared by the copies a change and its commit make, and copied only when changed
    /// ([`Arc::make_mut`]), so a commit copies the datasets it changed, not the registry.
    #[serde(deserialize_with = "unique_keys")]
    pub datasets: BTreeMap<String, Arc<DatasetMeta>>,
    /// Committed fragments, oldest first; a later fragment's block wins for a chunk.
    pub fragments: Vec<FragmentMeta>,
    /// xxh3-64 of this file's plain encoding with `checksum` left out (docs/FORMAT.md,
    /// "Metadata checksum"); set when the file is written, checked when it is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<u64>,
    /// Array id -> the persisted statistics read from this file that did not check out, and
    /// what is wrong with them: forgotten for use ([`StoreMeta::forget_unsound_stats`]) but
    /// kept for `verify` to report. Never written: any commit writes the file anew without
    /// them.
    #[serde(skip)]
    pub unsound_stats: BTreeMap<u64, (ArrayStats, String)>,
}

/// One dataset of the registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DatasetMeta {
    #[serde(deserialize_with = "unique_keys")]
    pub attributes: Attributes,
    #[serde(deserialize_with = "unique_keys")]
    pub arrays: BTreeMap<String, ArrayMeta>,
}

/// One committed fragment file in `data/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FragmentMeta {
    /// File name inside `data/`.
    pub name: String,
    /// The file's length; a shorter or longer file is corrupt.
    pub len_bytes: u64,
}

/// Deserializes a list of one item per axis, refused at its item `MAX_NDIM + 1` as it is
/// read: a hostile file could otherwise make it as long as the file allows, each item of a
/// byte or two on disk taking 8 (`u64`) or 24 (`String`) bytes in memory, before the
/// schema check counts the axes.
fn per_axis<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Vec<T>, D::Error> {
    struct PerAxis<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for PerAxis<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {MAX_NDIM} items, one per axis")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                if items.len() == MAX_NDIM {
                    return Err(A::Error::invalid_length(MAX_NDIM + 1, &self));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    deserializer.deserialize_seq(PerAxis(PhantomData))
}

/// The schema of one array, as stored and as returned by `array_meta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ArrayMeta {
    /// Store-unique id; blocks in fragments name their array by it.
    pub id: u64,
    /// Element type.
    pub dtype: DType,
    /// Extent along each dimension.
    #[serde(deserialize_with = "per_axis")]
    pub shape: Vec<u64>,
    /// Extent of one chunk along each dimension.
    #[serde(deserialize_with = "per_axis")]
    pub chunk_shape: Vec<u64>,
    /// Dimension names (`dim_0`, `dim_1`... where none were given; `""` is unnamed).
    #[serde(deserialize_with = "per_axis")]
    pub dims: Vec<String>,
    /// The value read where nothing was written.
    pub fill_value: Scalar,
    /// Codec for new blocks, overriding the store's; `None` follows the store.
    pub codec: Option<Codec>,
    /// Shuffle for new blocks, overriding the store's; `None` follows the store.
    pub shuffle: Option<Shuffle>,
    /// The array's attributes.
    #[serde(deserialize_with = "unique_keys")]
    pub attributes: Attributes,
    /// Statistics as of the last commit that changed the array's blocks or shape; `None`
    /// before its first write, where the persisted ones did not check out at open, or where
    /// a commit could not merge them from the blocks' index entries (damaged ones).
    /// `Dataset::array_stats` gives current ones.
    #[serde(default)]
    pub stats: Option<ArrayStats>,
    /// Whether a zstd dictionary is trained from the array's first chunks (for small chunks).
    #[serde(default)]
    pub train_dictionary: bool,
    /// The array's zstd dictionary once trained; zstd blocks written after it use it.
    #[serde(default, with = "super::bytes")]
    pub zstd_dictionary: Option<Vec<u8>>,
}

impl ArrayMeta {
    /// Number of chunks along each dimension.
    #[must_use]
    pub fn chunk_grid(&self) -> Vec<u64> {
        self.shape.iter().zip(&self.chunk_shape).map(|(s, c)| s.div_ceil(*c)).collect()
    }

    /// Whether `coord` is a chunk of the array's grid. A shrink leaves fill entries for
    /// the chunks past the new shape, which listings of blocks leave out.
    pub(crate) fn holds_chunk(&self, coord: &[u64]) -> bool {
        coord.len() == self.shape.len()
            && coord.iter().zip(self.shape.iter().zip(&self.chunk_shape)).all(|(c, (s, n))| *c < s.div_ceil(*n))
    }

    /// Elements in one chunk.
    #[must_use]
    pub fn chunk_elems(&self) -> u64 {
        self.chunk_shape.iter().product()
    }

    /// Bytes of one chunk's raw elements.
    #[must_use]
    pub fn chunk_bytes(&self) -> u64 {
        self.chunk_elems() * self.dtype.size_bytes() as u64
    }

    /// What reading one block of the array allocates at least (`None` past `u64`): its raw
    /// chunk, or for strings the `n + 1` 4-byte offsets every block holds besides its text.
    pub(crate) fn raw_chunk_bytes(&self) -> Option<u64> {
        let elems = checked_product(&self.chunk_shape)?;
        match self.dtype {
            DType::String => elems.checked_add(1)?.checked_mul(4),
            dtype => elems.checked_mul(dtype.size_bytes() as u64),
        }
    }

    /// The fill value as the little-endian bytes of one element.
    pub(crate) fn fill_bytes(&self) -> Vec<u8> {
        self.fill_value.to_le_bytes(self.dtype).expect("fill value was checked against the dtype")
    }

    /// Checks the invariants every array schema keeps; returns what is wrong.
    pub(crate) fn check(&self) -> Result<(), String> {
        let ndim = self.shape.len();
        if ndim > MAX_NDIM {
            return Err(format!("{ndim} dimensions is over the limit of {MAX_NDIM}"));
        }
        for (what, len) in [("chunk_shape", self.chunk_shape.len()), ("dims", self.dims.len())] {
            if len != ndim {
                return Err(format!("shape has {ndim} dimensions but {what} has {len}"));
            }
        }
        if self.chunk_shape.contains(&0) {
            return Err(format!("chunk_shape {:?} has a zero extent", self.chunk_shape));
        }
        if checked_product(&self.shape).and_then(|n| n.checked_mul(self.dtype.size_bytes() as u64)).is_none() {
            return Err(format!("shape {:?} overflows a 64-bit byte count", self.shape));
        }
        if self.raw_chunk_bytes().is_none_or(|b| b > MAX_CHUNK_BYTES) {
            return Err(format!("chunk_shape {:?} is over the limit of {MAX_CHUNK_BYTES} bytes", self.chunk_shape));
        }
        if self.fill_value.to_le_bytes(self.dtype).is_none() {
            return Err(format!("fill value {} does not fit dtype {}", self.fill_value, self.dtype));
        }
        self.codec.map_or(Ok(()), Codec::check)?;
        if self.zstd_dictionary.as_ref().is_some_and(|d| d.len() > MAX_DICTIONARY_BYTES) {
            return Err(format!("zstd dictionary is over the limit of {MAX_DICTIONARY_BYTES} bytes"));
        }
        // One zstd cannot load (a dictionary's magic number before tables that do not parse)
        // would fail every block that uses it, and each failure would blame the block.
        if self.zstd_dictionary.as_ref().is_some_and(|d| zstd::zstd_safe::DDict::try_create(d).is_none()) {
            return Err("zstd dictionary does not load: its tables are damaged".into());
        }
        let mut seen = HashSet::new();
        for dim in self.dims.iter().filter(|d| !d.is_empty()) {
            // Printed as they are by tools (`atlas ls`): no terminal escapes, bounded.
            if dim.len() > super::name::MAX_NAME_BYTES || dim.chars().any(char::is_control) {
                return Err(format!("dimension name {dim:?} is over 255 bytes or holds a control character"));
            }
            if !seen.insert(dim) {
                return Err(format!("dimension name {dim:?} is used twice"));
            }
        }
        check_attributes(&self.attributes)
    }
}

/// Product of `extents`, or `None` on overflow; zero where any extent is zero, however
/// large the others (in any order).
pub(crate) fn checked_product(extents: &[u64]) -> Option<u64> {
    if extents.contains(&0) {
        return Some(0);
    }
    extents.iter().try_fold(1u64, |acc, e| acc.checked_mul(*e))
}

/// Checks attribute keys and nesting depth; returns what is wrong.
pub(crate) fn check_attributes(attributes: &Attributes) -> Result<(), String> {
    for (key, value) in attributes {
        validate_attribute_key(key).map_err(|e| e.to_string())?;
        if value.depth() > MAX_ATTR_DEPTH {
            return Err(format!("attribute {key:?} nests deeper than {MAX_ATTR_DEPTH} levels"));
        }
    }
    Ok(())
}

impl StoreMeta {
    /// An empty store's first commit.
    pub(crate) fn new(codec: Codec, shuffle: Shuffle) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            generation: 0,
            codec,
            shuffle,
            next_array_id: 0,
            attributes: Attributes::new(),
            datasets: BTreeMap::new(),
            fragments: Vec::new(),
            checksum: None,
            unsound_stats: BTreeMap::new(),
        }
    }

    /// Checks everything a metadata file read from disk must satisfy before it is used:
    /// valid names, sound array schemas, unique array ids. Returns what is wrong.
    ///
    /// A dataset shared with `checked` (the same `Arc` under the same name: a commit's
    /// datasets that a change left alone) was checked with it, and only its array ids are
    /// looked at again (a schema check loads each zstd dictionary, say).
    pub(crate) fn check(&self, checked: Option<&StoreMeta>) -> Result<(), String> {
        // Counters no writer reaches (2^64 commits or arrays): the next commit or array
        // would overflow them.
        if self.generation == u64::MAX || self.next_array_id == u64::MAX {
            return Err(format!(
                "generation {} or next_array_id {} is at u64::MAX",
                self.generation, self.next_array_id
            ));
        }
        self.codec.check()?;
        check_attributes(&self.attributes)?;
        let mut ids = HashSet::new();
        for (ds_name, ds) in &self.datasets {
            let known = checked.and_then(|c| c.datasets.get(ds_name)).is_some_and(|c| Arc::ptr_eq(c, ds));
            if !known {
                validate_name(EntityKind::Dataset, ds_name).map_err(|e| e.to_string())?;
                check_attributes(&ds.attributes)?;
            }
            for (name, array) in &ds.arrays {
                if !known {
                    validate_name(EntityKind::Array, name).map_err(|e| e.to_string())?;
                    array.check().map_err(|e| format!("array {ds_name}/{name}: {e}"))?;
                }
                if array.id >= self.next_array_id || !ids.insert(array.id) {
                    return Err(format!("array {ds_name}/{name} has a duplicate or unallocated id {}", array.id));
                }
            }
        }
        let mut names = HashSet::new();
        for fragment in &self.fragments {
            if !is_fragment_name(&fragment.name) || !names.insert(&fragment.name) {
                return Err(format!("fragment name {:?} is invalid or listed twice", fragment.name));
            }
        }
        Ok(())
    }

    /// Forgets persisted array stats that do not check out (see [`ArrayStats::check`]), so
    /// that they are merged again from the block index when asked for, and keeps them in
    /// `unsound_stats` for `verify`. Stats are a cache: ones a damaged or older writer left
    /// (string means of 0 from earlier builds) must neither be returned nor keep the store
    /// from opening.
    pub(crate) fn forget_unsound_stats(&mut self) {
        for array in self.datasets.values_mut().flat_map(|ds| Arc::make_mut(ds).arrays.values_mut()) {
            let Some(stats) = array.stats else { continue };
            let check = |stats: ArrayStats| {
                let elems = checked_product(&array.shape).ok_or("the array's element count overflows")?;
                stats.check(array.dtype, elems)
            };
            let Err(wrong) = check(stats) else { continue };
            array.stats = None;
            // A string array's mean of 0 is what earlier builds wrote: no damage to report.
            let legacy_string_mean = array.dtype == DType::String
                && stats.mean == Some(0.0)
                && check(ArrayStats { mean: None, ..stats }).is_ok();
            if !legacy_string_mean {
                self.unsound_stats.insert(array.id, (stats, wrong));
            }
        }
    }
}

/// Fragment files are `<16 hex digits>-<16 hex digits>.frag`: a generation and a nonce.
pub(crate) fn fragment_name(generation: u64, nonce: u64) -> String {
    format!("{generation:016x}-{nonce:016x}.frag")
}

/// Whether `name` has the shape [`fragment_name`] gives.
pub(crate) fn is_fragment_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".frag") else { return false };
    let bytes = stem.as_bytes();
    bytes.len() == 33
        && bytes[16] == b'-'
        && bytes.iter().enumerate().all(|(i, b)| i == 16 || matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_checks_the_datasets_it_changed_and_every_array_id() {
        let mut base = StoreMeta::new(Codec::default(), Shuffle::Auto);
        base.next_array_id = 2;
        base.datasets.insert("a".into(), Arc::new(DatasetMeta::default()));
        Arc::make_mut(base.datasets.get_mut("a").unwrap()).arrays.insert("x".into(), array());
        base.check(None).unwrap();
        let changed = |arrays: &[(&str, ArrayMeta)]| {
            let mut next = base.clone();
            let ds = Arc::make_mut(next.datasets.entry("b".into()).or_default());
            ds.arrays.extend(arrays.iter().map(|(name, a)| ((*name).to_string(), a.clone())));
            next
        };
        let mut second = array();
        second.id = 1;
        changed(&[("y", second.clone())]).check(Some(&base)).unwrap();
        // An id the shared dataset's array has too.
        assert!(changed(&[("y", array())]).check(Some(&base)).unwrap_err().contains("duplicate"));
        // A schema that does not check out, in the changed dataset.
        second.chunk_shape = vec![0, 20];
        assert!(changed(&[("y", second)]).check(Some(&base)).unwrap_err().contains("zero"));
    }

    fn array() -> ArrayMeta {
        ArrayMeta {
            id: 0,
            dtype: DType::Float32,
            shape: vec![10, 20],
            chunk_shape: vec![4, 20],
            dims: vec!["y".into(), "x".into()],
            fill_value: Scalar::Float(f64::NAN),
            codec: None,
            shuffle: None,
            attributes: Attributes::new(),
            stats: None,
            train_dictionary: false,
            zstd_dictionary: None,
        }
    }

    #[test]
    fn sound_schema_passes_and_each_broken_invariant_is_named() {
        array().check().unwrap();
        let mut a = array();
        a.chunk_shape = vec![0, 1];
        assert!(a.check().unwrap_err().contains("zero"));
        let mut a = array();
        a.shape = vec![u64::MAX, 2];
        assert!(a.check().unwrap_err().contains("overflows"));
        let mut a = array();
        a.chunk_shape = vec![1 << 20, 1 << 20];
        assert!(a.check().unwrap_err().contains("limit"));
        let mut a = array();
        a.dims = vec!["x".into(), "x".into()];
        assert!(a.check().unwrap_err().contains("twice"));
        let mut a = array();
        a.dtype = DType::UInt8;
        assert!(a.check().unwrap_err().contains("fill value"));
        // String chunks: one more 4-byte offset than elements, so 64 Mi elements are over.
        let mut a = array();
        (a.dtype, a.fill_value) = (DType::String, Scalar::Int(0));
        a.chunk_shape = vec![1, (MAX_CHUNK_BYTES / 4) - 1];
        a.check().unwrap();
        a.chunk_shape = vec![1, MAX_CHUNK_BYTES / 4];
        assert!(a.check().unwrap_err().contains("limit"));
    }

    #[test]
    fn fragment_names_are_recognised_exactly() {
        let name = fragment_name(7, u64::MAX);
        assert!(is_fragment_name(&name));
        assert!(!is_fragment_name("../etc/passwd.frag"));
        assert!(!is_fragment_name("0000000000000007.frag"));
    }

    #[test]
    fn chunk_grid_rounds_up() {
        assert_eq!(array().chunk_grid(), vec![3, 1]);
        assert_eq!(array().chunk_bytes(), 4 * 20 * 4);
    }
}
