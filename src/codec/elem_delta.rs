//! Element delta, the "delta" filter of numcodecs and Blosc: before the shuffle, each element
//! is stored as its difference from the one before it, taken as a little-endian unsigned
//! integer of the element's size (wrapping; floats by their bits). A series that rises or
//! falls steadily (timestamps, counters, coordinates) becomes one small value repeated,
//! which the shuffle and the codec then pack into almost nothing. Bytes past the last whole
//! element are left as they are, as the shuffle leaves them.
//!
//! Element sizes are those of the dtypes (1, 2, 4, 8), but an index entry read from disk may
//! name any size from 1 to 8, so every one of them is handled.

/// Writes the element differences of `raw` (elements of `elem_bytes`, 1 to 8) into `out`,
/// of the same length; the first element is kept as it is.
pub(super) fn encode(raw: &[u8], elem_bytes: usize, out: &mut [u8]) {
    assert_eq!(raw.len(), out.len(), "encoded in place of the raw bytes");
    match elem_bytes {
        1 => encode_k::<1>(raw, out),
        2 => encode_k::<2>(raw, out),
        3 => encode_k::<3>(raw, out),
        4 => encode_k::<4>(raw, out),
        5 => encode_k::<5>(raw, out),
        6 => encode_k::<6>(raw, out),
        7 => encode_k::<7>(raw, out),
        8 => encode_k::<8>(raw, out),
        _ => panic!("element sizes are 1 to 8 bytes, not {elem_bytes}"),
    }
}

/// Undoes [`encode`] on a block's raw bytes as they come, piece after piece in order: a
/// running sum that carries the last decoded element from one piece to the next.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Undo {
    elem_bytes: usize,
    /// The block's decoded element before the next piece (0 before the first).
    prev: u64,
}

impl Undo {
    /// Starts at the beginning of a block of `elem_bytes`-byte elements (1 to 8).
    pub(crate) fn new(elem_bytes: usize) -> Self {
        assert!((1..=8).contains(&elem_bytes), "element sizes are 1 to 8 bytes, not {elem_bytes}");
        Self { elem_bytes, prev: 0 }
    }

    /// Decodes `piece`, the block's next bytes: whole elements, but for the bytes past the
    /// block's last whole element at its very end, which are left as they are.
    pub(crate) fn apply(&mut self, piece: &mut [u8]) {
        self.prev = match self.elem_bytes {
            1 => undo_k::<1>(piece, self.prev),
            2 => undo_k::<2>(piece, self.prev),
            3 => undo_k::<3>(piece, self.prev),
            4 => undo_k::<4>(piece, self.prev),
            5 => undo_k::<5>(piece, self.prev),
            6 => undo_k::<6>(piece, self.prev),
            7 => undo_k::<7>(piece, self.prev),
            _ => undo_k::<8>(piece, self.prev),
        };
    }
}

/// An element's value: its `K` bytes, little-endian. Sums and differences wrap past
/// 64 bits; only the low `K` bytes are stored back, so they wrap at the element's width.
fn load<const K: usize>(element: [u8; K]) -> u64 {
    let mut wide = [0u8; 8];
    wide[..K].copy_from_slice(&element);
    u64::from_le_bytes(wide)
}

fn store<const K: usize>(value: u64) -> [u8; K] {
    value.to_le_bytes()[..K].try_into().expect("K is at most 8")
}

fn encode_k<const K: usize>(raw: &[u8], out: &mut [u8]) {
    let (elements, tail) = raw.as_chunks::<K>();
    let (differences, out_tail) = out.as_chunks_mut::<K>();
    let mut prev = 0u64;
    for (difference, &element) in differences.iter_mut().zip(elements) {
        let value = load(element);
        *difference = store(value.wrapping_sub(prev));
        prev = value;
    }
    out_tail.copy_from_slice(tail);
}

fn undo_k<const K: usize>(piece: &mut [u8], mut prev: u64) -> u64 {
    let (elements, _tail) = piece.as_chunks_mut::<K>();
    for element in elements {
        prev = prev.wrapping_add(load(*element));
        *element = store(prev);
    }
    prev
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Undone piece by piece (cut anywhere on an element), encode gives back the bytes,
        /// for every element size, a partial last element included.
        #[test]
        fn undo_in_pieces_reverses_encode(
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            elem_bytes in 1usize..=8,
            cuts in proptest::collection::vec(0usize..80, 0..6),
        ) {
            let mut coded = vec![0; raw.len()];
            encode(&raw, elem_bytes, &mut coded);
            let whole = raw.len() / elem_bytes * elem_bytes;
            proptest::prop_assert_eq!(&coded[whole..], &raw[whole..], "the partial element is left alone");
            let mut undo = Undo::new(elem_bytes);
            let mut at = 0;
            for cut in cuts {
                let end = (at + cut * elem_bytes).min(whole);
                undo.apply(&mut coded[at..end]);
                at = end;
            }
            undo.apply(&mut coded[at..]);
            proptest::prop_assert_eq!(coded, raw);
        }
    }

    #[test]
    fn a_steady_series_becomes_one_repeated_difference() {
        let raw: Vec<u8> = (0..5u32).flat_map(|i| (1_000 + 7 * i).to_le_bytes()).collect();
        let mut coded = vec![0; raw.len()];
        encode(&raw, 4, &mut coded);
        let values: Vec<u32> = coded.chunks_exact(4).map(|e| u32::from_le_bytes(e.try_into().unwrap())).collect();
        assert_eq!(values, [1_000, 7, 7, 7, 7]);
        // Differences wrap at the element's width: 0 - 1 is 0xffff for 2-byte elements.
        let mut coded = [0; 4];
        encode(&[1, 0, 0, 0], 2, &mut coded);
        assert_eq!(coded, [1, 0, 0xff, 0xff]);
    }
}
