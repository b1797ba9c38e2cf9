//! Planning: a hyperslab of an array becomes one operation per chunk it touches, each
//! saying which part of the chunk and which part of the selection it covers.

/// The part of one chunk that a read or write touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkOp {
    /// The chunk's grid coordinate.
    pub coord: Vec<u64>,
    /// Start of the touched box inside the chunk.
    pub in_chunk: Vec<u64>,
    /// Start of the touched box inside the selection.
    pub in_selection: Vec<u64>,
    /// Extent of the touched box.
    pub region: Vec<u64>,
}

impl ChunkOp {
    /// Whether the op touches every element of a chunk of `chunk_shape`.
    pub(crate) fn covers_chunk(&self, chunk_shape: &[u64]) -> bool {
        self.region == chunk_shape
    }
}

/// The chunks touched by the box `start .. start + shape`, in C order of their coordinates.
/// The caller has checked the box lies inside the array; an empty box touches nothing.
pub(crate) fn plan(chunk_shape: &[u64], start: &[u64], shape: &[u64]) -> Vec<ChunkOp> {
    if shape.contains(&0) {
        return Vec::new();
    }
    let ndim = shape.len();
    let first: Vec<u64> = (0..ndim).map(|d| start[d] / chunk_shape[d]).collect();
    let last: Vec<u64> = (0..ndim).map(|d| (start[d] + shape[d] - 1) / chunk_shape[d]).collect();
    let mut ops = Vec::new();
    let mut coord = first.clone();
    loop {
        let mut op = ChunkOp {
            coord: coord.clone(),
            in_chunk: vec![0; ndim],
            in_selection: vec![0; ndim],
            region: vec![0; ndim],
        };
        for d in 0..ndim {
            let chunk_lo = coord[d] * chunk_shape[d];
            let lo = start[d].max(chunk_lo);
            let hi = (start[d] + shape[d]).min(chunk_lo + chunk_shape[d]);
            op.in_chunk[d] = lo - chunk_lo;
            op.in_selection[d] = lo - start[d];
            op.region[d] = hi - lo;
        }
        ops.push(op);
        // Odometer over the grid box first..=last, last dimension fastest.
        let Some(d) = (0..ndim).rev().find(|&d| coord[d] < last[d]) else { return ops };
        coord[d] += 1;
        coord[d + 1..].copy_from_slice(&first[d + 1..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// The oracle: visit every element of the selection and bucket it by chunk.
    fn naive(chunk_shape: &[u64], start: &[u64], shape: &[u64]) -> HashMap<Vec<u64>, usize> {
        let mut counts = HashMap::new();
        let total: u64 = shape.iter().product();
        for flat in 0..total {
            let mut rem = flat;
            let mut coord = vec![0; shape.len()];
            for d in (0..shape.len()).rev() {
                coord[d] = (start[d] + rem % shape[d]) / chunk_shape[d];
                rem /= shape[d];
            }
            *counts.entry(coord).or_insert(0) += 1;
        }
        counts
    }

    proptest! {
        #[test]
        fn plan_matches_element_by_element_oracle(
            dims in proptest::collection::vec((1u64..5, 0u64..6, 0u64..7), 0..4)
        ) {
            let chunk_shape: Vec<u64> = dims.iter().map(|d| d.0).collect();
            let start: Vec<u64> = dims.iter().map(|d| d.1).collect();
            let shape: Vec<u64> = dims.iter().map(|d| d.2).collect();
            let ops = plan(&chunk_shape, &start, &shape);
            let oracle = naive(&chunk_shape, &start, &shape);
            prop_assert_eq!(ops.len(), oracle.len());
            for op in &ops {
                let n: u64 = op.region.iter().product();
                prop_assert_eq!(Some(&(n as usize)), oracle.get(&op.coord));
                for d in 0..shape.len() {
                    prop_assert_eq!(op.coord[d] * chunk_shape[d] + op.in_chunk[d], start[d] + op.in_selection[d]);
                    prop_assert!(op.in_chunk[d] + op.region[d] <= chunk_shape[d]);
                }
            }
        }
    }

    #[test]
    fn scalar_selection_is_one_op_on_the_empty_coordinate() {
        assert_eq!(
            plan(&[], &[], &[]),
            vec![ChunkOp { coord: vec![], in_chunk: vec![], in_selection: vec![], region: vec![] }]
        );
    }
}
