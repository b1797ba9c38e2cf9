//! Byte shuffle: the k-th byte of every element is gathered into the k-th of `elem_bytes`
//! planes, so the slowly varying high bytes of smooth data sit together and compress well.

/// Shuffles `input` (whole elements of `elem_bytes`) into `out` of the same length.
pub(super) fn shuffle(input: &[u8], elem_bytes: usize, out: &mut [u8]) {
    match elem_bytes {
        2 => shuffle_k::<2>(input, out),
        4 => shuffle_k::<4>(input, out),
        8 => shuffle_k::<8>(input, out),
        k => transpose_any(input, k, out, Direction::Shuffle),
    }
}

/// Reverses [`shuffle`].
pub(super) fn unshuffle(input: &[u8], elem_bytes: usize, out: &mut [u8]) {
    match elem_bytes {
        2 => unshuffle_k::<2>(input, out),
        4 => unshuffle_k::<4>(input, out),
        8 => unshuffle_k::<8>(input, out),
        k => transpose_any(input, k, out, Direction::Unshuffle),
    }
}

// The fixed-width versions walk the elements as `[u8; K]` arrays and the K planes as
// slices of known length, so the loops carry no bounds checks. Bytes past the last whole
// element are copied as they are.
fn shuffle_k<const K: usize>(input: &[u8], out: &mut [u8]) {
    let (elems, tail) = input.as_chunks::<K>();
    let n = elems.len();
    let (body, out_tail) = out.split_at_mut(n * K);
    let mut planes: Vec<&mut [u8]> = body.chunks_exact_mut(n.max(1)).collect();
    for (j, plane) in planes.iter_mut().enumerate().take(K) {
        for (dst, elem) in plane.iter_mut().zip(elems) {
            *dst = elem[j];
        }
    }
    out_tail.copy_from_slice(tail);
}

fn unshuffle_k<const K: usize>(input: &[u8], out: &mut [u8]) {
    let n = input.len() / K;
    let (elems, out_tail) = out.as_chunks_mut::<K>();
    for (j, plane) in input[..n * K].chunks_exact(n.max(1)).enumerate().take(K) {
        for (elem, src) in elems.iter_mut().zip(plane) {
            elem[j] = *src;
        }
    }
    out_tail.copy_from_slice(&input[n * K..]);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Shuffle,
    Unshuffle,
}

/// The transpose for any width: byte `j` of element `i` moves to `j * n + i` (shuffle) or
/// back (unshuffle). Bytes past the last whole element stay where they are.
fn transpose_any(input: &[u8], k: usize, out: &mut [u8], direction: Direction) {
    let n = if k <= 1 { 0 } else { input.len() / k };
    for i in 0..n {
        for j in 0..k {
            match direction {
                Direction::Shuffle => out[j * n + i] = input[i * k + j],
                Direction::Unshuffle => out[i * k + j] = input[j * n + i],
            }
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
        }
    }
}
