//! What a block's bytes go through before its codec (`Filter`), and how a block is encoded
//! (`BlockEncoding`): the filter and codec ids its index entry records.

use super::{CodecId, UndoElemDelta, delta, elem_delta, shuffle};

/// What a block's bytes go through before its codec, as its index entry records it
/// (docs/FORMAT.md, "Filter ids").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) enum Filter {
    /// Nothing: the codec sees the raw bytes.
    #[default]
    None,
    /// Byte shuffle by this element size.
    Shuffle(usize),
    /// Byte shuffle by this element size, then byte delta of each plane.
    ShuffleDelta(usize),
    /// Element delta (each element less the one before it), then byte shuffle, by this
    /// element size.
    DeltaShuffle(usize),
}

impl Filter {
    /// The filter's id and parameter, as the index entry records them.
    pub(crate) fn to_id(self) -> (u8, u8) {
        let param = |k: usize| u8::try_from(k).expect("element sizes are at most 8");
        match self {
            Self::None => (0, 0),
            Self::Shuffle(k) => (1, param(k)),
            Self::ShuffleDelta(k) => (2, param(k)),
            Self::DeltaShuffle(k) => (3, param(k)),
        }
    }

    /// The filter an index entry's id and parameter name; `None` for any other pair.
    pub(crate) fn from_id(id: u8, param: u8) -> Option<Self> {
        match (id, param) {
            (0, 0) => Some(Self::None),
            (1, k @ 1..=8) => Some(Self::Shuffle(usize::from(k))),
            (2, k @ 1..=8) => Some(Self::ShuffleDelta(usize::from(k))),
            (3, k @ 1..=8) => Some(Self::DeltaShuffle(usize::from(k))),
            _ => None,
        }
    }

    /// The element size the block is shuffled by, `None` when it is not shuffled.
    pub(crate) fn shuffle_elem_bytes(self) -> Option<usize> {
        match self {
            Self::None => None,
            Self::Shuffle(k) | Self::ShuffleDelta(k) | Self::DeltaShuffle(k) => Some(k),
        }
    }

    /// Undoes the element delta of a block's raw bytes piece by piece, if this filter has
    /// one: `None` when it has not.
    pub(crate) fn undo_elem_delta(self) -> Option<UndoElemDelta> {
        match self {
            Self::DeltaShuffle(k) => Some(UndoElemDelta::new(k)),
            _ => None,
        }
    }

    /// Whether the elements are delta coded before the shuffle.
    pub(crate) fn elem_delta(self) -> bool {
        matches!(self, Self::DeltaShuffle(_))
    }

    /// Whether the planes are byte-delta coded after the shuffle.
    pub(crate) fn byte_delta(self) -> bool {
        matches!(self, Self::ShuffleDelta(_))
    }

    /// Undoes the byte delta of a decoded block's `planes` (still shuffled), if this
    /// filter has one.
    pub(crate) fn undo_byte_delta(self, planes: &mut [u8]) {
        if let Self::ShuffleDelta(elem_bytes) = self {
            delta::decode_planes(planes, elem_bytes);
        }
    }
}

/// Runs `filter` on `raw` into `out` of the same length; `filter` is not `None`.
pub(super) fn apply_filter(raw: &[u8], filter: Filter, out: &mut [u8]) {
    let elem_bytes = filter.shuffle_elem_bytes().expect("a filter that shuffles");
    if filter.elem_delta() {
        elem_delta::encode_shuffled(raw, elem_bytes, out);
        return;
    }
    shuffle::shuffle(raw, elem_bytes, out);
    if filter.byte_delta() {
        delta::encode_planes(out, elem_bytes);
    }
}

/// How one block is encoded: what the index entry needs to decode it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct BlockEncoding {
    pub codec: CodecId,
    pub filter: Filter,
}

impl BlockEncoding {
    /// The raw bytes as they are: no codec, no filter.
    pub(crate) const RAW: Self = Self { codec: CodecId::None, filter: Filter::None };
}
