//! Byte shuffle: the k-th byte of every element is gathered into the k-th of `elem_bytes`
//! planes, so the slowly varying high bytes of smooth data sit together and compress well.

/// Shuffles `input` (whole elements of `elem_bytes`) into `out` of the same length.
pub(super) fn shuffle(input: &[u8], elem_bytes: usize, out: &mut [u8]) {
    // Literal widths let the inlined loop unroll for the common element sizes.
    match elem_bytes {
        2 => transpose(input, 2, out, Direction::Shuffle),
        4 => transpose(input, 4, out, Direction::Shuffle),
        8 => transpose(input, 8, out, Direction::Shuffle),
        k => transpose(input, k, out, Direction::Shuffle),
    }
}

/// Reverses [`shuffle`].
pub(super) fn unshuffle(input: &[u8], elem_bytes: usize, out: &mut [u8]) {
    match elem_bytes {
        2 => transpose(input, 2, out, Direction::Unshuffle),
        4 => transpose(input, 4, out, Direction::Unshuffle),
        8 => transpose(input, 8, out, Direction::Unshuffle),
        k => transpose(input, k, out, Direction::Unshuffle),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Shuffle,
    Unshuffle,
}

/// Moves byte `j` of element `i` to `j * n + i` (shuffle) or back (unshuffle). Bytes past the
/// last whole element are copied as they are.
#[allow(clippy::inline_always)] // the literal widths above must reach the loop
#[inline(always)]
fn transpose(input: &[u8], k: usize, out: &mut [u8], direction: Direction) {
    let n = if k <= 1 { 0 } else { input.len() / k };
    if n > 0 {
        for i in 0..n {
            for j in 0..k {
                match direction {
                    Direction::Shuffle => out[j * n + i] = input[i * k + j],
                    Direction::Unshuffle => out[i * k + j] = input[j * n + i],
                }
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
