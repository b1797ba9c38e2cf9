//! A read too large for the device in one go, run in rounds: its slots are halved, and a
//! single slot is cut across its first axis at a chunk boundary, until each part's layout
//! fits or is one chunk row of one slot. Each round is a read of its own into its part of
//! the output (C order: a run of slots, or of rows of one slot, is one contiguous range of
//! bytes).

use std::ops::Range;

use super::layout::Layout;
use crate::engine::{Slot, SlotRead};
use crate::error::Result;

/// Runs the read of `slots` (as `engine::read_slots` takes them) in as few rounds as
/// `fits` allows: `run(layout, bytes)` reads one part, whose output lies at `bytes` of the
/// whole output. A part that is not worth cutting runs whether it fits or not: one row of
/// one slot, or one slot whose box lies in one chunk row of its array (its halves would
/// decode the same chunks, each time). Returns the number of rounds.
///
/// # Errors
/// What [`Layout::build`] and `run` return.
pub(crate) fn in_rounds(
    slots: &[Slot<'_, '_>],
    slot_shape: &[u64],
    (elem_bytes, verify): (usize, bool),
    fits: &dyn Fn(&Layout<'_, '_>) -> bool,
    run: &mut dyn FnMut(&Layout<'_, '_>, Range<usize>) -> Result<()>,
) -> Result<usize> {
    let layout = Layout::build(slots, slot_shape, elem_bytes, verify)?;
    let rows = slot_shape.first().copied().unwrap_or(1);
    let cuttable = slots.len() > 1 || (rows > 1 && !slots.first().is_some_and(in_one_chunk_row));
    if fits(&layout) || !cuttable {
        run(&layout, 0..layout.out_len())?;
        return Ok(1);
    }
    let slot_bytes = layout.out_len() / slots.len().max(1);
    drop(layout);
    // A part's rounds, its output `at` bytes into this one's.
    let mut part = |at: usize, slots: &[Slot<'_, '_>], shape: &[u64]| {
        let shifted = &mut |layout: &Layout<'_, '_>, bytes: Range<usize>| run(layout, at + bytes.start..at + bytes.end);
        in_rounds(slots, shape, (elem_bytes, verify), fits, shifted)
    };
    if slots.len() > 1 {
        let (first, second) = slots.split_at(slots.len() / 2);
        return Ok(part(0, first, slot_shape)? + part(first.len() * slot_bytes, second, slot_shape)?);
    }
    let row_bytes = slot_bytes / usize::try_from(rows).expect("the slot is in memory");
    let cut = cut_row(&slots[0], rows);
    let mut done = 0;
    for band in [0..cut, cut..rows] {
        let shape: Vec<u64> = std::iter::once(band.end - band.start).chain(slot_shape[1..].iter().copied()).collect();
        let cut_part = Part::of(&slots[0], band.clone());
        let fill;
        let slot = match &cut_part {
            Part::Read { start, shape, at } => match &slots[0] {
                Slot::Read(read) => Slot::Read(SlotRead { start, shape, at, ..*read }),
                Slot::Fill(_) => unreachable!("a fill slot has no read"),
            },
            Part::Fill(read) => {
                fill = read.ctx.meta.fill_bytes();
                Slot::Fill(&fill)
            }
            Part::Same => slots[0],
        };
        done += part(usize::try_from(band.start).expect("in memory") * row_bytes, &[slot], &shape)?;
    }
    Ok(done)
}

/// The part of a slot in rows `band` of its first axis, as a slot of those rows.
enum Part<'s, 'r, 'a> {
    /// The slot's box cut to the band (owned: the slot borrows it).
    Read { start: Vec<u64>, shape: Vec<u64>, at: Vec<u64> },
    /// The band misses the box: every element is the array's fill value.
    Fill(&'s SlotRead<'r, 'a>),
    /// A fill slot: the same fill.
    Same,
}

impl<'s, 'r, 'a> Part<'s, 'r, 'a> {
    fn of(slot: &'s Slot<'r, 'a>, band: Range<u64>) -> Self {
        let Slot::Read(read) = slot else { return Part::Same };
        let (box_start, box_end) = (read.at[0], read.at[0] + read.shape[0]);
        let (lo, hi) = (box_start.max(band.start), box_end.min(band.end));
        if lo >= hi {
            return Part::Fill(read);
        }
        let (mut start, mut shape, mut at) = (read.start.to_vec(), read.shape.to_vec(), read.at.to_vec());
        start[0] += lo - box_start;
        shape[0] = hi - lo;
        at[0] = lo - band.start;
        Part::Read { start, shape, at }
    }
}

/// Whether `slot` reads a box that lies in one chunk row of its array along the first axis.
fn in_one_chunk_row(slot: &Slot<'_, '_>) -> bool {
    let Slot::Read(read) = slot else { return false };
    let chunk = read.ctx.meta.chunk_shape[0].max(1);
    let last = read.start[0] + read.shape[0].max(1) - 1;
    read.start[0] / chunk == last / chunk
}

/// Where to cut a slot of `rows` rows in two: the boundary between chunk rows of its
/// array nearest the middle, so that no chunk is decoded in both halves, or the middle
/// when no boundary falls strictly inside.
fn cut_row(slot: &Slot<'_, '_>, rows: u64) -> u64 {
    let middle = rows / 2;
    let Slot::Read(read) = slot else { return middle };
    let chunk = read.ctx.meta.chunk_shape[0].max(1);
    // Slot row r holds array row start + r - at (inside the box); in i128 to keep signs.
    let offset = i128::from(read.start[0]) - i128::from(read.at[0]);
    let array_middle = i128::from(middle) + offset;
    let chunk = i128::from(chunk);
    let boundary = (array_middle + chunk / 2).div_euclid(chunk) * chunk - offset;
    u64::try_from(boundary).ok().filter(|&row| row > 0 && row < rows).unwrap_or(middle)
}
