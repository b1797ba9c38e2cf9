//! Byte shuffle: the k-th byte of every element is gathered into the k-th of `elem_bytes`
//! planes, so the slowly varying high bytes of smooth data sit together and compress well.

use super::simd::{Kernel, dispatch};
use super::{Filter, delta, elem_delta};
use crate::io::in_runs;

/// Shuffles `input` (whole elements of `elem_bytes`) into `out` of the same length.
pub(super) fn shuffle(input: &[u8], elem_bytes: usize, out: &mut [u8]) {
    match elem_bytes {
        2 => dispatch(ShuffleK::<2> { input, out }),
        4 => dispatch(ShuffleK::<4> { input, out }),
        8 => dispatch(ShuffleK::<8> { input, out }),
        k => shuffle_any(input, k, out),
    }
}

/// Hands `filter`'s output of the concatenated `parts` to `feed` in order (a shuffle; each
/// plane then byte-delta coded, or made of the elements' differences, as the filter says),
/// in pieces of at most `piece.len()` bytes made in `piece` one at a time, so that the
/// shuffled block never exists whole: each piece is cut from one plane while it is still
/// in cache. Every part but the last holds whole elements. Short parts (rows of a chunk)
/// are first gathered in `staging`, which reads them from memory faster than picking bytes
/// out of each. Every raw byte goes to `first_read` once, in order, as the first plane
/// reads it.
pub(super) fn shuffle_in_pieces<E>(
    parts: &[&[u8]],
    filter: Filter,
    (piece, staging): (&mut [u8], &mut Vec<u8>),
    mut first_read: impl FnMut(&[u8]),
    mut feed: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let elem_bytes = filter.shuffle_elem_bytes().unwrap_or(0);
    let (byte_delta, elem_delta) = (filter.byte_delta(), filter.elem_delta());
    assert!(elem_bytes > 1 || elem_delta, "a shuffle of elements of 2 bytes or more, or an element delta");
    assert!(!piece.is_empty(), "pieces of at least a byte");
    // A part but the last holding part of an element would stall the plane loop below.
    debug_assert!(parts.iter().rev().skip(1).all(|part| part.len() % elem_bytes == 0), "parts of whole elements");
    let whole = |part: &[u8]| part.len() / elem_bytes * elem_bytes;
    let tail = parts.last().map_or(&[][..], |last| &last[whole(last)..]);
    let body = parts.iter().enumerate().map(|(i, part)| if i + 1 == parts.len() { &part[..whole(part)] } else { part });
    for plane in 0..elem_bytes {
        // The plane's byte before the piece, for the byte delta; the element before the
        // run, for the element delta.
        let (mut prev, mut prev_elem) = (0, 0);
        let mut feed_piece = |piece: &mut [u8]| {
            if byte_delta {
                prev = delta::encode(piece, prev);
            }
            feed(piece)
        };
        let mut filled = 0;
        in_runs(body.clone(), staging, piece.len() * elem_bytes, |mut elems| {
            if plane == 0 {
                first_read(elems);
            }
            while !elems.is_empty() {
                let n = (elems.len() / elem_bytes).min(piece.len() - filled);
                let (input, out) = (&elems[..n * elem_bytes], &mut piece[filled..filled + n]);
                if elem_delta {
                    prev_elem = elem_delta::plane_of_differences(input, elem_bytes, plane, out, prev_elem);
                } else {
                    plane_part(input, elem_bytes, plane, out);
                }
                (filled, elems) = (filled + n, &elems[n * elem_bytes..]);
                if filled == piece.len() {
                    feed_piece(piece)?;
                    filled = 0;
                }
            }
            Ok(())
        })?;
        if filled > 0 {
            feed_piece(&mut piece[..filled])?;
        }
    }
    first_read(tail);
    if tail.is_empty() { Ok(()) } else { feed(tail) }
}

/// One plane of whole elements: `out[i]` is byte `plane` of element `i` of `input`.
fn plane_part(input: &[u8], elem_bytes: usize, plane: usize, out: &mut [u8]) {
    match elem_bytes {
        2 => dispatch(PlaneK::<2> { input, plane, out }),
        4 => dispatch(PlaneK::<4> { input, plane, out }),
        8 => dispatch(PlaneK::<8> { input, plane, out }),
        k => {
            for (dst, elem) in out.iter_mut().zip(input.chunks_exact(k)) {
                *dst = elem[plane];
            }
        }
    }
}

/// Reverses [`shuffle`].
pub(super) fn unshuffle(input: &[u8], elem_bytes: usize, out: &mut [u8]) {
    unshuffle_part(input, elem_bytes, 0, out);
}

/// Writes bytes `start .. start + out.len()` of what [`unshuffle`] makes of `planes` (a
/// whole shuffled block) into `out`, so a block can be unshuffled piece by piece while each
/// piece is still in cache. `start` is a multiple of `elem_bytes`, and so is `out.len()`
/// unless the piece reaches the block's end.
pub(crate) fn unshuffle_part(planes: &[u8], elem_bytes: usize, start: usize, out: &mut [u8]) {
    let n = if elem_bytes <= 1 { 0 } else { planes.len() / elem_bytes };
    let body = (n * elem_bytes).saturating_sub(start).min(out.len());
    let end = start + out.len();
    let (head, tail) = out.split_at_mut(body);
    let first = start / elem_bytes.max(1);
    assert!(body == 0 || start.is_multiple_of(elem_bytes), "a piece starts on an element");
    let m = body / elem_bytes.max(1);
    if m > 0 {
        unshuffle_with(elem_bytes, |j| &planes[j * n + first..][..m], head);
    }
    tail.copy_from_slice(&planes[start + body..end]);
}

/// Unshuffles `buf` (a whole shuffled block) where it is, `piece_len` bytes (whole
/// elements) at a time, handing each raw piece to `each_piece` in order right after it is
/// written (which may change it: the piece is done with). Only the planes before the last
/// are copied out first (into `lead`), and the last plane's bytes of one piece (into
/// `last`): `(k - 1) / k` of the block in extra memory, where unshuffling from a decoded
/// copy takes all of it.
///
/// Sound because raw bytes are written front to back: piece `i0 .. i0 + m` (in elements)
/// writes bytes below `(i0 + m) * k`, which is at most `(k - 1) * n + i0 + m` as
/// `i0 + m <= n`, so it never reaches the last plane's bytes of a later piece.
pub(crate) fn unshuffle_in_place(
    buf: &mut [u8],
    elem_bytes: usize,
    piece_len: usize,
    (lead, last): (&mut Vec<u8>, &mut Vec<u8>),
    mut each_piece: impl FnMut(&mut [u8]),
) {
    let k = elem_bytes;
    let n = if k <= 1 { 0 } else { buf.len() / k };
    let m_max = (piece_len / k.max(1)).max(1);
    lead.clear();
    lead.extend_from_slice(&buf[..n * k.saturating_sub(1)]);
    for i0 in (0..n).step_by(m_max) {
        let m = m_max.min(n - i0);
        last.clear();
        last.extend_from_slice(&buf[(k - 1) * n + i0..][..m]);
        let (lead, last) = (&lead[..], &last[..]);
        let piece = &mut buf[i0 * k..(i0 + m) * k];
        unshuffle_with(k, |j| if j + 1 < k { &lead[j * n + i0..][..m] } else { last }, piece);
        each_piece(piece);
    }
    // Bytes past the last whole element are where they were.
    each_piece(&mut buf[n * k..]);
}

/// Fills the `k`-byte elements of `out` from the planes `plane(0) .. plane(k - 1)`, each
/// one byte per element: byte `j` of element `i` is `plane(j)[i]`.
pub(super) fn unshuffle_with<'p>(k: usize, plane: impl Fn(usize) -> &'p [u8], out: &mut [u8]) {
    match k {
        2 => dispatch(UnshuffleK::<2> { planes: std::array::from_fn(plane), out }),
        4 => dispatch(UnshuffleK::<4> { planes: std::array::from_fn(plane), out }),
        8 => dispatch(UnshuffleK::<8> { planes: std::array::from_fn(plane), out }),
        k => {
            for (i, elem) in out.chunks_exact_mut(k).enumerate() {
                for (j, byte) in elem.iter_mut().enumerate() {
                    *byte = plane(j)[i];
                }
            }
        }
    }
}

// The fixed-width versions walk the elements as `[u8; K]` arrays and the K planes as
// slices of known length, so the loops carry no bounds checks and vectorise; they run
// through `simd::dispatch`, where AVX2 makes them several times faster.

/// [`shuffle`] of a width `K`. Bytes past the last whole element are copied as they are.
struct ShuffleK<'a, const K: usize> {
    input: &'a [u8],
    out: &'a mut [u8],
}

impl<const K: usize> Kernel for ShuffleK<'_, K> {
    type Output = ();
    #[allow(clippy::inline_always)] // to be compiled again inside the AVX2 entry point
    #[inline(always)]
    fn run(self) {
        let (elems, tail) = self.input.as_chunks::<K>();
        let n = elems.len();
        let (body, out_tail) = self.out.split_at_mut(n * K);
        for (j, plane) in body.chunks_exact_mut(n.max(1)).enumerate().take(K) {
            for (dst, elem) in plane.iter_mut().zip(elems) {
                *dst = elem[j];
            }
        }
        out_tail.copy_from_slice(tail);
    }
}

/// [`plane_part`] of a width `K`: each element read as a little-endian integer and shifted,
/// the same shift for every lane, so the loop vectorises.
struct PlaneK<'a, const K: usize> {
    input: &'a [u8],
    plane: usize,
    out: &'a mut [u8],
}

macro_rules! plane_kernel {
    ($($k:literal => $int:ty),*) => {$(
        impl Kernel for PlaneK<'_, $k> {
            type Output = ();
            #[allow(clippy::inline_always)] // to be compiled again inside the AVX2 entry point
            #[inline(always)]
            #[allow(clippy::cast_possible_truncation)] // keeping the low byte is the point
            fn run(self) {
                let (elems, _) = self.input.as_chunks::<$k>();
                let shift = 8 * self.plane as u32;
                for (dst, elem) in self.out.iter_mut().zip(elems) {
                    *dst = (<$int>::from_le_bytes(*elem) >> shift) as u8;
                }
            }
        }
    )*};
}
plane_kernel!(2 => u16, 4 => u32, 8 => u64);

/// [`unshuffle_with`] of a width `K`.
struct UnshuffleK<'a, const K: usize> {
    planes: [&'a [u8]; K],
    out: &'a mut [u8],
}

macro_rules! unshuffle_kernel {
    ($($k:literal => $int:ty),*) => {$(
        impl Kernel for UnshuffleK<'_, $k> {
            type Output = ();
            #[allow(clippy::inline_always)] // to be compiled again inside the AVX2 entry point
            #[inline(always)]
            fn run(self) {
                let (elems, _) = self.out.as_chunks_mut::<$k>();
                let m = elems.len();
                let sources: [&[u8]; $k] = self.planes.map(|plane| &plane[..m]);
                // Indexed up to `m`, the length of every slice here, so the loop has one exit
                // and no bounds checks: iterating the elements, LLVM kept a second exit and,
                // for it, the last 32 elements scalar (half the work for a row of 64).
                for i in 0..m {
                    let value = (0..$k).fold(0, |value: $int, j| value | <$int>::from(sources[j][i]) << (8 * j));
                    elems[i] = value.to_le_bytes();
                }
            }
        }
    )*};
}
unshuffle_kernel!(2 => u16, 4 => u32, 8 => u64);

/// The shuffle for any width: byte `j` of element `i` moves to `j * n + i`. Bytes past the
/// last whole element stay where they are.
fn shuffle_any(input: &[u8], k: usize, out: &mut [u8]) {
    let n = if k <= 1 { 0 } else { input.len() / k };
    for i in 0..n {
        for j in 0..k {
            out[j * n + i] = input[i * k + j];
        }
    }
    let tail = n * k;
    out[tail..].copy_from_slice(&input[tail..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_groups_bytes_by_position_and_unshuffle_restores() {
        let input = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        let mut shuffled = [0; 9];
        shuffle(&input, 4, &mut shuffled);
        assert_eq!(shuffled, [1, 5, 2, 6, 3, 7, 4, 8, 9]);
        for k in [1, 2, 3, 4, 8] {
            shuffle(&input, k, &mut shuffled);
            let mut back = [0; 9];
            unshuffle(&shuffled, k, &mut back);
            assert_eq!(back, input, "k={k}");
            // Piece by piece, in pieces of whole elements (the last one with the tail).
            let mut pieces = [0; 9];
            let step = k.max(1) * 2;
            for start in (0..9).step_by(step) {
                let end = if start + 2 * step > 9 { 9 } else { start + step };
                unshuffle_part(&shuffled, k, start, &mut pieces[start..end]);
                if end == 9 {
                    break;
                }
            }
            assert_eq!(pieces, input, "k={k} in pieces");
        }
    }

    #[test]
    fn unshuffling_in_place_restores_the_raw_bytes_and_hands_them_over_in_order() {
        let input: Vec<u8> = (0..1003u32).map(|i| (i * 7 % 251) as u8).collect();
        for k in [1, 2, 3, 4, 8] {
            let mut buf = vec![0; input.len()];
            shuffle(&input, k, &mut buf);
            for piece_len in [1, 5, 64, 4096] {
                let mut block = buf.clone();
                let (mut lead, mut last, mut seen) = (Vec::new(), Vec::new(), Vec::new());
                unshuffle_in_place(&mut block, k, piece_len, (&mut lead, &mut last), |piece| {
                    assert!(k == 1 || piece.len() <= piece_len.max(k), "pieces stay small");
                    seen.extend_from_slice(piece);
                });
                assert_eq!(block, input, "k={k} pieces of {piece_len}");
                assert_eq!(seen, input, "k={k} pieces of {piece_len}: every byte once, in order");
                assert!(lead.len() <= input.len() / k.max(1) * (k - 1), "only the lead planes are copied");
            }
        }
    }

    #[test]
    fn shuffling_in_pieces_hands_over_the_shuffled_bytes_in_order() {
        let input: Vec<u8> = (0..1003u32).map(|i| (i * 7 % 251) as u8).collect();
        let filters = [2, 3, 4, 8]
            .into_iter()
            .flat_map(|k| [Filter::Shuffle(k), Filter::ShuffleDelta(k), Filter::DeltaShuffle(k)]);
        for filter in filters.chain([Filter::DeltaShuffle(1)]) {
            let k = filter.shuffle_elem_bytes().unwrap();
            let mut whole = vec![0; input.len()];
            super::super::apply_filter(&input, filter, &mut whole);
            for piece_len in [1, 5, 64, 4096] {
                let mut streamed = Vec::new();
                let (mut piece, mut staging) = (vec![0; piece_len], Vec::new());
                // Parts of whole elements, short and long, but for the last, which has the tail.
                let cut = |n: usize| n / k * k;
                let ends = [0, cut(17), cut(400), cut(input.len() - 100), input.len()];
                let parts: Vec<&[u8]> = ends.windows(2).map(|w| &input[w[0]..w[1]]).collect();
                let mut first_read = Vec::new();
                shuffle_in_pieces(
                    &parts,
                    filter,
                    (&mut piece, &mut staging),
                    |raw| first_read.extend_from_slice(raw),
                    |part| {
                        assert!(part.len() <= piece_len.max(k - 1), "pieces stay small");
                        streamed.extend_from_slice(part);
                        Ok::<_, ()>(())
                    },
                )
                .unwrap();
                assert_eq!(streamed, whole, "{filter:?} pieces of {piece_len}");
                assert_eq!(first_read, input, "k={k}: every raw byte read once, in order");
            }
        }
    }
}
