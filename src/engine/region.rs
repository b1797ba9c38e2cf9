//! Copying an N-d box between two C-order byte buffers of different shapes, one contiguous
//! row at a time. Trailing dimensions that are whole in both buffers merge into longer rows.

/// A box inside a C-order buffer of `shape`, starting at `start`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place<'a> {
    pub shape: &'a [u64],
    pub start: &'a [u64],
}

/// A box copy between two C-order buffers reduced to its fewest dimensions: trailing
/// dimensions whole in both buffers are merged into one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BoxCopy {
    /// Extent of the box per (merged) dimension, in elements; none is zero.
    pub extents: Vec<usize>,
    /// Byte offset of the box's first element in the source and the destination.
    pub src_offset: usize,
    pub dst_offset: usize,
    /// Byte strides per (merged) dimension in the source and the destination.
    pub src_strides: Vec<usize>,
    pub dst_strides: Vec<usize>,
    pub elem_bytes: usize,
}

/// The copy of a box of extent `region` placed at `src` in one buffer and at `dst` in
/// another, or `None` when the box is empty.
pub(crate) fn box_copy(src: Place<'_>, dst: Place<'_>, region: &[u64], elem_bytes: usize) -> Option<BoxCopy> {
    let (mut src_shape, mut src_start) = (src.shape.to_vec(), src.start.to_vec());
    let (mut dst_shape, mut dst_start) = (dst.shape.to_vec(), dst.start.to_vec());
    let mut region = region.to_vec();
    // Before the merge: a buffer around an empty box may be empty with huge extents.
    if region.contains(&0) {
        return None;
    }
    // Merge the last dimension into the one before while it is whole in both buffers.
    while region.len() > 1 {
        let last = region.len() - 1;
        if region[last] != src_shape[last] || region[last] != dst_shape[last] {
            break;
        }
        for (shape, start) in [(&mut src_shape, &mut src_start), (&mut dst_shape, &mut dst_start)] {
            start[last - 1] = start[last - 1] * shape[last] + start[last];
            shape[last - 1] *= shape[last];
            shape.pop();
            start.pop();
        }
        let inner = region.pop().expect("len > 1");
        region[last - 1] *= inner;
    }
    let (src_strides, dst_strides) = (strides(&src_shape, elem_bytes), strides(&dst_shape, elem_bytes));
    Some(BoxCopy {
        extents: region.iter().map(|&n| to_usize(n)).collect(),
        src_offset: offset_of(&src_strides, &src_start),
        dst_offset: offset_of(&dst_strides, &dst_start),
        src_strides,
        dst_strides,
        elem_bytes,
    })
}

/// Calls `row(src_offset_bytes, dst_offset_bytes, len_bytes)` for every contiguous row of a
/// box of extent `region` placed at `src` in one buffer and at `dst` in another.
pub(crate) fn for_each_row(
    src: Place<'_>,
    dst: Place<'_>,
    region: &[u64],
    elem_bytes: usize,
    row: impl FnMut(usize, usize, usize),
) {
    if let Some(copy) = box_copy(src, dst, region, elem_bytes) {
        copy.rows(row);
    }
}

impl BoxCopy {
    /// Calls `row(src_offset, dst_offset, len)` (bytes) for every row of the box: a run
    /// along the last (merged) dimension.
    pub(crate) fn rows(&self, mut row: impl FnMut(usize, usize, usize)) {
        let ndim = self.extents.len();
        let row_bytes = self.extents.last().map_or(1, |&n| n) * self.elem_bytes;
        let (mut src_offset, mut dst_offset) = (self.src_offset, self.dst_offset);
        // Odometer over every dimension but the last, moving both offsets by their strides
        // instead of recomputing them for each row.
        let mut idx = vec![0usize; ndim];
        loop {
            row(src_offset, dst_offset, row_bytes);
            let mut d = ndim.saturating_sub(1);
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                idx[d] += 1;
                src_offset += self.src_strides[d];
                dst_offset += self.dst_strides[d];
                if idx[d] < self.extents[d] {
                    break;
                }
                src_offset -= self.src_strides[d] * self.extents[d];
                dst_offset -= self.dst_strides[d] * self.extents[d];
                idx[d] = 0;
            }
        }
    }
}

/// Like [`for_each_row`] for a run of boxes side by side along the last axis (equal along
/// every other one), box `j` at `src[j]` in one buffer and at `dst[j]` in another (each
/// list of places sharing one shape): calls `row(j, src_offset, dst_offset, len_bytes)` for
/// the rows of every box, row after row, each row of box 0 followed by the same row of box
/// 1, and so on. Each box's rows come in its own C order. A run of more than one box must
/// not span the last axis of either buffer, so that no dimensions merge into longer rows.
pub(crate) fn for_each_run_row(
    src: &[Place<'_>],
    dst: &[Place<'_>],
    regions: &[&[u64]],
    elem_bytes: usize,
    mut row: impl FnMut(usize, usize, usize, usize),
) {
    let last = |at: &[u64]| at.last().map_or(0, |&i| to_usize(i) * elem_bytes);
    // How far box j's row starts from box 0's in each buffer (it may be before it: box 0
    // can start inside its chunk, the others start at their chunk's first element; modular
    // arithmetic gives the right offset either way), and its length: worked out once.
    let others: Vec<(usize, usize, usize)> = (1..regions.len())
        .map(|j| {
            let s = last(src[j].start).wrapping_sub(last(src[0].start));
            let d = last(dst[j].start).wrapping_sub(last(dst[0].start));
            (s, d, last(regions[j]))
        })
        .collect();
    for_each_row(src[0], dst[0], regions[0], elem_bytes, |s, d, n| {
        row(0, s, d, n);
        debug_assert!(others.is_empty() || n == last(regions[0]), "a run's rows are rows of the last axis");
        for (j, &(ds, dd, n)) in others.iter().enumerate() {
            row(j + 1, s.wrapping_add(ds), d.wrapping_add(dd), n);
        }
    });
}

/// Byte offset of `start` given per-dimension byte strides.
fn offset_of(strides: &[usize], start: &[u64]) -> usize {
    strides.iter().zip(start).map(|(s, i)| s * to_usize(*i)).sum()
}

/// Whether a box of extent `region`, wherever it starts, is one contiguous range of a
/// C-order buffer of `shape`: leading extents 1, then at most one partial dimension, then
/// whole ones.
pub(crate) fn is_contiguous(shape: &[u64], region: &[u64]) -> bool {
    let Some(k) = region.iter().position(|&r| r != 1) else { return true };
    region[k + 1..] == shape[k + 1..]
}

/// Byte offset of `start` in a C-order buffer of `shape`.
pub(crate) fn offset_bytes(shape: &[u64], start: &[u64], elem_bytes: usize) -> usize {
    offset_of(&strides(shape, elem_bytes), start)
}

fn strides(shape: &[u64], elem_bytes: usize) -> Vec<usize> {
    let mut strides = vec![elem_bytes; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * to_usize(shape[d + 1]);
    }
    strides
}

/// Extents inside an in-memory buffer always fit `usize`.
pub(crate) fn to_usize(n: u64) -> usize {
    usize::try_from(n).expect("extent of an in-memory buffer fits usize")
}

/// Copies the box from `src` to `dst` (both C-order byte buffers).
pub(crate) fn copy_region(
    src: &[u8],
    src_at: Place<'_>,
    dst: &mut [u8],
    dst_at: Place<'_>,
    region: &[u64],
    elem_bytes: usize,
) {
    for_each_row(src_at, dst_at, region, elem_bytes, |s, d, n| dst[d..d + n].copy_from_slice(&src[s..s + n]));
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The model: copies the box element by element, each offset worked out from scratch.
    fn naive_copy(src: &[u8], src_at: Place<'_>, dst: &mut [u8], dst_at: Place<'_>, region: &[u64], elem_bytes: usize) {
        let count: u64 = region.iter().product();
        for flat in 0..count {
            let mut rest = flat;
            let mut index = vec![0u64; region.len()];
            for d in (0..region.len()).rev() {
                index[d] = rest % region[d];
                rest /= region[d];
            }
            let offset = |at: Place<'_>| {
                let position = |d: usize| at.start[d] + index[d];
                (0..region.len()).fold(0u64, |o, d| o * at.shape[d] + position(d)) as usize * elem_bytes
            };
            let (s, d) = (offset(src_at), offset(dst_at));
            dst[d..d + elem_bytes].copy_from_slice(&src[s..s + elem_bytes]);
        }
    }

    /// A buffer of `shape` whose every byte differs from its neighbours'.
    fn numbered(shape: &[u64], elem_bytes: usize) -> Vec<u8> {
        (0..shape.iter().product::<u64>() as usize * elem_bytes).map(|i| (i % 251) as u8).collect()
    }

    /// Per dimension: (source extent, source start, destination extent, destination start,
    /// box extent), the box inside both.
    fn dims() -> impl Strategy<Value = Vec<(u64, u64, u64, u64, u64)>> {
        let dim = (1u64..5, 0u64..4, 0u64..4, 0u64..4, 0u64..4).prop_map(|(n, src_pad, src_at, dst_pad, dst_at)| {
            let src_at = src_at.min(src_pad);
            let dst_at = dst_at.min(dst_pad);
            (n + src_pad, src_at, n + dst_pad, dst_at, n)
        });
        proptest::collection::vec(dim, 1..5)
    }

    proptest! {
        #[test]
        fn copy_region_copies_what_an_element_by_element_copy_does(dims in dims(), elem_bytes in prop_oneof![Just(1usize), Just(2), Just(8)]) {
            let pick = |f: fn(&(u64, u64, u64, u64, u64)) -> u64| dims.iter().map(f).collect::<Vec<u64>>();
            let (src_shape, src_start, dst_shape, dst_start, region) =
                (pick(|d| d.0), pick(|d| d.1), pick(|d| d.2), pick(|d| d.3), pick(|d| d.4));
            let src = numbered(&src_shape, elem_bytes);
            let src_at = Place { shape: &src_shape, start: &src_start };
            let dst_at = Place { shape: &dst_shape, start: &dst_start };
            let mut expected = vec![0u8; dst_shape.iter().product::<u64>() as usize * elem_bytes];
            let mut got = expected.clone();
            naive_copy(&src, src_at, &mut expected, dst_at, &region, elem_bytes);
            copy_region(&src, src_at, &mut got, dst_at, &region, elem_bytes);
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn a_run_of_boxes_copies_each_box_as_its_own_copy_would(
            leading in proptest::collection::vec((1u64..4, 0u64..3, 0u64..3), 1..3),
            chunk_last in 1u64..5,
            first_offset in 0u64..4,
            last_width in 1u64..5,
            boxes in 1usize..4,
            input_before in 0u64..3,
        ) {
            // Boxes side by side along the last axis of the input, each into a chunk buffer
            // of its own: the first may start inside its chunk, the last may end early.
            let first_offset = first_offset % chunk_last;
            let widths: Vec<u64> = (0..boxes)
                .map(|j| match (j, boxes) {
                    (0, 1) => (chunk_last - first_offset).min(last_width),
                    (0, _) => chunk_last - first_offset,
                    (j, n) if j == n - 1 => last_width.min(chunk_last),
                    _ => chunk_last,
                })
                .collect();
            // The input reaches past the run on the last axis, so no dimension merges.
            let input_last = input_before + widths.iter().sum::<u64>() + 1;
            let mut input_shape: Vec<u64> = leading.iter().map(|&(n, pad, _)| n + pad).collect();
            input_shape.push(input_last);
            let mut chunk_shape: Vec<u64> = leading.iter().map(|&(n, _, pad)| n + pad).collect();
            chunk_shape.push(chunk_last);
            let lead_in: Vec<u64> = leading.iter().map(|&(_, pad, _)| pad).collect();
            let lead_chunk: Vec<u64> = leading.iter().map(|&(_, _, pad)| pad).collect();
            let with = |lead: &[u64], last: u64| [lead, &[last]].concat();
            let mut at_input = input_before;
            let (mut src_starts, mut dst_starts, mut regions) = (Vec::new(), Vec::new(), Vec::new());
            for (j, &width) in widths.iter().enumerate() {
                src_starts.push(with(&lead_in, at_input));
                dst_starts.push(with(&lead_chunk, if j == 0 { first_offset } else { 0 }));
                let lead: Vec<u64> = leading.iter().map(|&(n, _, _)| n).collect();
                regions.push(with(&lead, width));
                at_input += width;
            }
            let input = numbered(&input_shape, 2);
            let empty = vec![0u8; chunk_shape.iter().product::<u64>() as usize * 2];
            let mut expected = vec![empty.clone(); boxes];
            for j in 0..boxes {
                let src_at = Place { shape: &input_shape, start: &src_starts[j] };
                let dst_at = Place { shape: &chunk_shape, start: &dst_starts[j] };
                naive_copy(&input, src_at, &mut expected[j], dst_at, &regions[j], 2);
            }
            let src: Vec<Place<'_>> = src_starts.iter().map(|start| Place { shape: &input_shape, start }).collect();
            let dst: Vec<Place<'_>> = dst_starts.iter().map(|start| Place { shape: &chunk_shape, start }).collect();
            let region_refs: Vec<&[u64]> = regions.iter().map(Vec::as_slice).collect();
            let mut got = vec![empty; boxes];
            for_each_run_row(&src, &dst, &region_refs, 2, |j, s, d, n| got[j][d..d + n].copy_from_slice(&input[s..s + n]));
            prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn copies_a_box_between_differently_shaped_buffers() {
        // src 3x4 holding 0..12; copy its [1..3, 1..3] to dst 2x5 at [0, 2].
        let src: Vec<u8> = (0..12).collect();
        let mut dst = vec![0u8; 10];
        let src_at = Place { shape: &[3, 4], start: &[1, 1] };
        let dst_at = Place { shape: &[2, 5], start: &[0, 2] };
        copy_region(&src, src_at, &mut dst, dst_at, &[2, 2], 1);
        assert_eq!(dst, vec![0, 0, 5, 6, 0, 0, 0, 9, 10, 0]);
    }

    #[test]
    fn whole_trailing_dimensions_merge_into_one_row() {
        let mut rows = Vec::new();
        let at = Place { shape: &[4, 3, 2], start: &[1, 0, 0] };
        for_each_row(at, at, &[2, 3, 2], 4, |s, d, n| rows.push((s, d, n)));
        assert_eq!(rows, vec![(24, 24, 48)]);
    }

    #[test]
    fn contiguity_is_leading_ones_then_one_partial_then_whole() {
        assert!(is_contiguous(&[4, 5, 6], &[1, 2, 6]));
        assert!(is_contiguous(&[4, 5, 6], &[1, 1, 3]));
        assert!(!is_contiguous(&[4, 5, 6], &[2, 2, 6]));
        assert!(is_contiguous(&[], &[]));
    }
}
