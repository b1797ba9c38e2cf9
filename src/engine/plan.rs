//! Planning: a hyperslab of an array becomes one operation per chunk it touches, each
//! saying which part of the chunk and which part of the selection it covers.

use super::region::Place;

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

    /// Where the op's box sits in a selection buffer of `selection_shape`.
    pub(crate) fn in_selection_of<'a>(&'a self, selection_shape: &'a [u64]) -> Place<'a> {
        Place { shape: selection_shape, start: &self.in_selection }
    }

    /// Where the op's box sits in its chunk, of `chunk_shape`.
    pub(crate) fn in_chunk_of<'a>(&'a self, chunk_shape: &'a [u64]) -> Place<'a> {
        Place { shape: chunk_shape, start: &self.in_chunk }
    }
}

/// The chunks touched by the box `start .. start + shape`, in C order of their coordinates.
/// The caller has checked the box lies inside the array; an empty box touches nothing.
pub(crate) fn plan(chunk_shape: &[u64], start: &[u64], shape: &[u64]) -> Vec<ChunkOp> {
    Plan::new(chunk_shape, start, shape).collect()
}

/// [`plan`] in batches of at most [`PLAN_BATCH`] chunks, made as they are asked for: what a
/// request plans at a time stays bounded however many chunks it touches (a box of a
/// million one-byte chunks would otherwise hold a few hundred MB of plan; a metadata file
/// of a few hundred bytes can claim such a grid).
pub(crate) fn plan_batches<'a>(
    chunk_shape: &'a [u64],
    start: &'a [u64],
    shape: &'a [u64],
) -> impl Iterator<Item = Vec<ChunkOp>> + 'a {
    let mut ops = Plan::new(chunk_shape, start, shape);
    std::iter::from_fn(move || {
        Some(ops.by_ref().take(PLAN_BATCH).collect::<Vec<_>>()).filter(|batch| !batch.is_empty())
    })
}

/// Chunks planned at a time by [`plan_batches`]; far more than any request of chunks of a
/// useful size touches (W1's 512^3 in 64^3 chunks is 512), so those are planned whole.
pub(crate) const PLAN_BATCH: usize = 1 << 16;

/// The chunk ops of a box, one after the other ([`plan`]).
struct Plan<'a> {
    chunk_shape: &'a [u64],
    start: &'a [u64],
    shape: &'a [u64],
    /// The grid box of the chunks touched: `first ..= last` along each axis.
    first: Vec<u64>,
    last: Vec<u64>,
    /// The next chunk's coordinate; `None` once every chunk was given.
    next: Option<Vec<u64>>,
}

impl<'a> Plan<'a> {
    fn new(chunk_shape: &'a [u64], start: &'a [u64], shape: &'a [u64]) -> Self {
        let ndim = shape.len();
        let first: Vec<u64> = (0..ndim).map(|d| start[d] / chunk_shape[d]).collect();
        let last: Vec<u64> = (0..ndim).map(|d| (start[d] + shape[d].saturating_sub(1)) / chunk_shape[d]).collect();
        let next = (!shape.contains(&0)).then(|| first.clone());
        Self { chunk_shape, start, shape, first, last, next }
    }
}

impl Iterator for Plan<'_> {
    type Item = ChunkOp;

    fn next(&mut self) -> Option<ChunkOp> {
        let coord = self.next.take()?;
        let ndim = coord.len();
        let mut op = ChunkOp { coord, in_chunk: vec![0; ndim], in_selection: vec![0; ndim], region: vec![0; ndim] };
        for d in 0..ndim {
            let chunk_lo = op.coord[d] * self.chunk_shape[d];
            let lo = self.start[d].max(chunk_lo);
            // The last chunk of an extent near u64::MAX may end past it.
            let hi = (self.start[d] + self.shape[d]).min(chunk_lo.saturating_add(self.chunk_shape[d]));
            op.in_chunk[d] = lo - chunk_lo;
            op.in_selection[d] = lo - self.start[d];
            op.region[d] = hi - lo;
        }
        // Odometer over the grid box first..=last, last dimension fastest.
        if let Some(d) = (0..ndim).rev().find(|&d| op.coord[d] < self.last[d]) {
            let mut next = op.coord.clone();
            next[d] += 1;
            next[d + 1..].copy_from_slice(&self.first[d + 1..]);
            self.next = Some(next);
        }
        Some(op)
    }
}

/// How many chunks of `chunk_bytes` a run may hold: up to `run_bytes` of them, but few
/// enough that `chunks` ops still make two runs per thread, and never over
/// [`MAX_RUN_CHUNKS`].
pub(crate) fn max_run_len(chunk_bytes: u64, run_bytes: u64, chunks: usize, threads: usize) -> usize {
    let by_bytes = usize::try_from(run_bytes / chunk_bytes.max(1)).unwrap_or(usize::MAX);
    by_bytes.min(chunks / (2 * threads.max(1))).clamp(1, MAX_RUN_CHUNKS)
}

/// Chunks in one run, at most: each takes a worker of its own (a few hundred bytes, kept by
/// its thread), so runs of tiny chunks (one byte each) must not grow with the request.
const MAX_RUN_CHUNKS: usize = 256;

/// Cuts `ops` (in C order of chunk coordinates, as [`plan`] makes them) into runs of at
/// most `max_len` chunks that differ only in their last coordinate: chunks side by side
/// along the last axis, which a read or write copies row after row together.
pub(crate) fn runs(ops: Vec<ChunkOp>, max_len: usize) -> Vec<Vec<ChunkOp>> {
    let mut runs: Vec<Vec<ChunkOp>> = Vec::new();
    let row = |op: &ChunkOp| op.coord.split_last().map(|(_, rest)| rest.to_vec());
    for op in ops {
        match runs.last_mut() {
            Some(run) if run.len() < max_len && row(&run[0]) == row(&op) => run.push(op),
            _ => runs.push(vec![op]),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_join_chunks_along_the_last_axis_up_to_a_length() {
        let op =
            |coord: [u64; 2]| ChunkOp { coord: coord.to_vec(), in_chunk: vec![], in_selection: vec![], region: vec![] };
        let ops: Vec<ChunkOp> = [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]].map(op).into();
        let coords = |max_len| -> Vec<Vec<Vec<u64>>> {
            runs(ops.clone(), max_len).into_iter().map(|run| run.into_iter().map(|op| op.coord).collect()).collect()
        };
        assert_eq!(coords(2), [vec![vec![0, 0], vec![0, 1]], vec![vec![0, 2]], vec![vec![1, 0], vec![1, 1]]]);
        assert_eq!(coords(8), [vec![vec![0, 0], vec![0, 1], vec![0, 2]], vec![vec![1, 0], vec![1, 1]]]);
        assert_eq!(coords(1).len(), 5);
        assert_eq!(max_run_len(1 << 20, 8 << 20, 32, 2), 8);
        assert_eq!(max_run_len(1 << 20, 8 << 20, 64, 2), 8);
        assert_eq!(max_run_len(1 << 20, 2 << 20, 64, 2), 2);
        assert_eq!(max_run_len(64 << 20, 8 << 20, 64, 2), 1);
        assert_eq!(max_run_len(1 << 10, 8 << 20, 3, 2), 1);
        assert_eq!(max_run_len(1, u64::MAX, 1 << 30, 2), MAX_RUN_CHUNKS, "tiny chunks");
    }
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
    fn batches_give_the_plan_in_order_a_bounded_batch_at_a_time() {
        let (chunk_shape, start, shape) = ([1, 1], [0, 3], [3, PLAN_BATCH as u64]);
        let batches: Vec<Vec<ChunkOp>> = plan_batches(&chunk_shape, &start, &shape).collect();
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [PLAN_BATCH; 3]);
        assert_eq!(batches.concat(), plan(&chunk_shape, &start, &shape));
        assert_eq!(plan_batches(&chunk_shape, &start, &[3, 0]).count(), 0, "an empty box");
    }

    #[test]
    fn scalar_selection_is_one_op_on_the_empty_coordinate() {
        assert_eq!(
            plan(&[], &[], &[]),
            vec![ChunkOp { coord: vec![], in_chunk: vec![], in_selection: vec![], region: vec![] }]
        );
    }
}
