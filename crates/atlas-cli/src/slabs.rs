//! Cutting an array into slabs for `import` and `export`: boxes that follow each other in C
//! order, each one contiguous run of the array's elements, of about a given size, or one
//! chunk row of up to [`CHUNK_ROW_SLABS`] slabs; memory stays bounded whatever the shape,
//! even when one row of axis 0 is larger than that.

/// The slabs of an array of `shape` (no zero extent), in C order. They split the outermost
/// axis whose chunk row (`chunk_shape[d]` indices, everything inside) fits in
/// [`CHUNK_ROW_SLABS`] slabs into whole chunk rows, as many as fit in `slab_bytes` (at least
/// one), taking single indices of the axes outside it; where not even a chunk's extent of
/// the last axis fits, they split the last axis alone.
#[derive(Debug)]
pub struct Slabs {
    shape: Vec<u64>,
    /// The axis split into ranges; axes before it advance one index at a time.
    axis: usize,
    /// Indices of `axis` per slab.
    step: u64,
    /// The next slab's start; `None` once every slab was given.
    next: Option<Vec<u64>>,
}

/// How many slabs' worth a chunk row may take before the slabs split inner axes: whole
/// chunk rows write each chunk once, while a slab of part of a chunk row rewrites each of its
/// chunks once per slab.
pub const CHUNK_ROW_SLABS: u64 = 16;

impl Slabs {
    pub fn new(shape: &[u64], chunk_shape: &[u64], elem_bytes: u64, slab_bytes: u64) -> Self {
        let last = shape.len() - 1;
        // Bytes of one index of axis d, everything inside it included.
        let inner = |d: usize| shape[d + 1..].iter().fold(elem_bytes, |acc, &n| acc.saturating_mul(n));
        let chunk_row = |d: usize| inner(d).saturating_mul(chunk_shape[d]);
        let (axis, step) = match (0..shape.len()).find(|&d| chunk_row(d) <= slab_bytes.saturating_mul(CHUNK_ROW_SLABS))
        {
            Some(d) => (d, (slab_bytes / chunk_row(d)).max(1) * chunk_shape[d]),
            None => (last, (slab_bytes / elem_bytes).max(1)),
        };
        Self { shape: shape.to_vec(), axis, step, next: Some(vec![0; shape.len()]) }
    }
}

impl Iterator for Slabs {
    /// A slab's start and extent.
    type Item = (Vec<u64>, Vec<u64>);

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.next.take()?;
        let axis = self.axis;
        let extent: Vec<u64> = (0..self.shape.len())
            .map(|d| match d {
                d if d < axis => 1,
                d if d == axis => self.step.min(self.shape[d] - start[d]),
                d => self.shape[d],
            })
            .collect();
        // The next start: further along the split axis, else one index on along the axes
        // outside it (the innermost first), else none.
        let mut next = start.clone();
        next[axis] += extent[axis];
        let mut d = axis;
        while next[d] == self.shape[d] {
            if d == 0 {
                return Some((start, extent));
            }
            next[d] = 0;
            d -= 1;
            next[d] += 1;
        }
        self.next = Some(next);
        Some((start, extent))
    }
}

#[cfg(test)]
mod tests {
    use super::{CHUNK_ROW_SLABS, Slabs};

    fn all(shape: &[u64], chunks: &[u64], slab_bytes: u64) -> Vec<(Vec<u64>, Vec<u64>)> {
        Slabs::new(shape, chunks, 1, slab_bytes).collect()
    }

    #[test]
    fn whole_chunk_rows_of_axis_0_when_they_fit() {
        assert_eq!(all(&[10, 4], &[3, 4], 24), [(vec![0, 0], vec![6, 4]), (vec![6, 0], vec![4, 4])]);
        // A chunk row of 12 bytes is kept whole for slabs down to 12 / 16 bytes.
        assert_eq!(all(&[4, 4], &[3, 4], 1), [(vec![0, 0], vec![3, 4]), (vec![3, 0], vec![1, 4])]);
    }

    #[test]
    fn rows_larger_than_a_slab_are_split_along_inner_axes_in_c_order() {
        // A chunk row of axis 0 is 2 x 2 x 6 = 24 bytes, over 16 slabs of 1 byte; one of
        // axis 1 (1 x 6) is within them.
        let slabs = all(&[2, 2, 6], &[2, 1, 3], 1);
        let expected: Vec<(Vec<u64>, Vec<u64>)> = vec![
            (vec![0, 0, 0], vec![1, 1, 6]),
            (vec![0, 1, 0], vec![1, 1, 6]),
            (vec![1, 0, 0], vec![1, 1, 6]),
            (vec![1, 1, 0], vec![1, 1, 6]),
        ];
        assert_eq!(slabs, expected);
        // Not even a chunk's extent of the last axis fits: runs of the last axis.
        let slabs = all(&[1, 40], &[1, 40], 2);
        assert_eq!(slabs.len(), 20);
        assert_eq!(slabs[1], (vec![0, 2], vec![1, 2]));
    }

    #[test]
    fn slabs_cover_every_element_once_in_c_order() {
        for (shape, chunks, slab) in [
            (vec![5u64, 3, 7], vec![2u64, 2, 3], 10u64),
            (vec![5, 3, 7], vec![2, 2, 3], 1000),
            (vec![5, 3, 7], vec![5, 3, 7], 1),
            (vec![1], vec![1], 1),
            (vec![4, 1, 9], vec![1, 1, 4], 9),
        ] {
            let mut offset = 0u64;
            for (start, extent) in Slabs::new(&shape, &chunks, 1, slab) {
                // C-order offset of the slab's start equals the elements given so far.
                let at = start.iter().zip(&shape).fold(0, |acc, (&i, &n)| acc * n + i);
                assert_eq!(at, offset, "{shape:?} {chunks:?} {slab}");
                // One contiguous run: inside the first axis with more than one index, whole axes.
                let first = extent.iter().position(|&n| n > 1).unwrap_or(extent.len());
                assert!((first + 1..shape.len()).all(|d| extent[d] == shape[d]), "{start:?} {extent:?} of {shape:?}");
                let count: u64 = extent.iter().product();
                assert!(count <= slab * CHUNK_ROW_SLABS, "{shape:?}: a slab of {count}");
                offset += count;
            }
            assert_eq!(offset, shape.iter().product::<u64>(), "{shape:?} {chunks:?} {slab}");
        }
    }
}
