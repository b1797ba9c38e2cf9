//! Element delta, the "delta" filter of numcodecs and Blosc: before the shuffle, each element
//! is stored as its difference from the one before it, taken as a little-endian unsigned
//! integer of the element's size (wrapping; floats by their bits). A series that rises or
//! falls steadily (timestamps, counters, coordinates) becomes one small value repeated,
//! which the shuffle and the codec then pack into almost nothing. Bytes past the last whole
//! element are left as they are, as the shuffle leaves them.
//!
//! Element sizes are those of the dtypes (1, 2, 4, 8), but an index entry read from disk may
//! name any size from 1 to 8, so every one of them is handled. One-byte elements are the
//! byte delta of one plane (`super::delta`, vectorised).

use super::delta;

/// Writes the element differences of `raw` (elements of `elem_bytes`, 1 to 8), shuffled,
/// into `out` of the same length: filter id 3 in one pass per plane, with no buffer for the
/// differences themselves (each plane takes its byte of each difference as it goes).
pub(super) fn encode_shuffled(raw: &[u8], elem_bytes: usize, out: &mut [u8]) {
    assert_eq!(raw.len(), out.len(), "encoded in place of the raw bytes");
    let k = elem_bytes;
    let n = raw.len() / k;
    let (planes, out_tail) = out.split_at_mut(n * k);
    for (plane, bytes) in planes.chunks_exact_mut(n.max(1)).enumerate() {
        plane_of_differences(&raw[..n * k], k, plane, bytes, 0);
    }
    out_tail.copy_from_slice(&raw[n * k..]);
}

/// Byte `plane` of each element's difference from the one before it, into `out` (one byte
/// per whole element of `input`, elements of `elem_bytes`, 1 to 8); `prev` is the element
/// before `input`'s first (0 at a block's start). Returns `input`'s last element, the
/// `prev` of the elements that follow: a plane can be made piece by piece.
pub(super) fn plane_of_differences(input: &[u8], elem_bytes: usize, plane: usize, out: &mut [u8], prev: u64) -> u64 {
    match elem_bytes {
        // Bytes: the byte delta's loop.
        1 => {
            out.copy_from_slice(&input[..out.len()]);
            u64::from(delta::encode(out, prev.to_le_bytes()[0]))
        }
        2 => plane_k::<2>(input, plane, out, prev),
        3 => plane_k::<3>(input, plane, out, prev),
        4 => plane_k::<4>(input, plane, out, prev),
        5 => plane_k::<5>(input, plane, out, prev),
        6 => plane_k::<6>(input, plane, out, prev),
        7 => plane_k::<7>(input, plane, out, prev),
        8 => plane_k::<8>(input, plane, out, prev),
        _ => panic!("element sizes are 1 to 8 bytes, not {elem_bytes}"),
    }
}

/// Undoes [`encode_shuffled`] (after the unshuffle) on a block's raw bytes as they come,
/// piece after piece in order: a running sum that carries the last decoded element from
/// one piece to the next.
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
            // Bytes: the byte delta's vectorised running sum.
            1 => u64::from(delta::decode(piece, self.prev.to_le_bytes()[0])),
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

fn plane_k<const K: usize>(input: &[u8], plane: usize, out: &mut [u8], mut prev: u64) -> u64 {
    let (elements, _) = input.as_chunks::<K>();
    for (byte, &element) in out.iter_mut().zip(elements) {
        let value = load(element);
        *byte = store::<K>(value.wrapping_sub(prev))[plane];
        prev = value;
    }
    prev
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
            let mut shuffled = vec![0; raw.len()];
            encode_shuffled(&raw, elem_bytes, &mut shuffled);
            let whole = raw.len() / elem_bytes * elem_bytes;
            proptest::prop_assert_eq!(&shuffled[whole..], &raw[whole..], "the partial element is left alone");
            let mut coded = vec![0; raw.len()];
            super::super::shuffle::unshuffle(&shuffled, elem_bytes, &mut coded);
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
        encode_shuffled(&raw, 4, &mut coded);
        // Planes of the differences 1000 (0x3e8), 7, 7, 7, 7.
        assert_eq!(coded, [0xe8, 7, 7, 7, 7, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        // Differences wrap at the element's width: 0 - 1 is 0xffff for 2-byte elements.
        let mut coded = [0; 4];
        encode_shuffled(&[1, 0, 0, 0], 2, &mut coded);
        assert_eq!(coded, [1, 0xff, 0, 0xff]);
    }
}
