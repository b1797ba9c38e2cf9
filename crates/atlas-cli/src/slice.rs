//! `--slice` selections in numpy's notation: one item per axis, separated by commas;
//! `i` picks one index (and drops the axis), `start:stop[:step]` a range, `:` all of it,
//! `...` as many `:` as the axes the other items leave. Negative numbers count from the
//! end; missing trailing axes mean `:`.

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};

/// What one axis selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AxisSel {
    /// One index; the axis is dropped from the output.
    Index(i64),
    /// `start:stop:step` with Python's defaults and clamping; `step >= 1`.
    Range { start: Option<i64>, stop: Option<i64>, step: u64 },
    /// `...`: whole axes, as many as the other items leave (at most one per selection).
    Ellipsis,
}

/// A whole axis, `:`.
const WHOLE: AxisSel = AxisSel::Range { start: None, stop: None, step: 1 };

/// A parsed `--slice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceSpec(pub Vec<AxisSel>);

/// A selection resolved against an array's shape: the box to read, the step along each
/// axis, and which axes the output keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// First element of the box.
    pub start: Vec<u64>,
    /// Extent of the box (from the first to the last selected index, inclusive).
    pub extent: Vec<u64>,
    /// Step along each axis (1 for picked indices).
    pub step: Vec<u64>,
    /// Whether the output keeps each axis (false for a picked index).
    pub keep: Vec<bool>,
}

impl Selection {
    /// The whole array.
    pub fn all(shape: &[u64]) -> Self {
        Self {
            start: vec![0; shape.len()],
            extent: shape.to_vec(),
            step: vec![1; shape.len()],
            keep: vec![true; shape.len()],
        }
    }

    /// Number of selected indices along each axis of the box.
    pub fn counts(&self) -> Vec<u64> {
        self.extent.iter().zip(&self.step).map(|(e, s)| e.div_ceil(*s)).collect()
    }

    /// The output's shape: the counts of the kept axes.
    pub fn out_shape(&self) -> Vec<usize> {
        self.counts().iter().zip(&self.keep).filter(|(_, k)| **k).map(|(c, _)| *c as usize).collect()
    }
}

impl FromStr for SliceSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self(Vec::new()));
        }
        // One trailing comma, as numpy's `a[0:3,]`.
        let text = text.strip_suffix(',').filter(|rest| !rest.trim().is_empty()).unwrap_or(text);
        let items = text.split(',').map(|item| parse_axis(item.trim())).collect::<Result<Vec<_>, _>>()?;
        if items.iter().filter(|item| **item == AxisSel::Ellipsis).count() > 1 {
            return Err("an index can only have a single ellipsis ('...')".into());
        }
        Ok(Self(items))
    }
}

fn parse_axis(item: &str) -> Result<AxisSel, String> {
    use std::num::IntErrorKind::{NegOverflow, PosOverflow};
    let not_integer = |s: &str| format!("{s:?} is not an integer");
    let bound = |s: &str| -> Result<Option<i64>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        // Past i64, saturated: a range bound clamps to its axis as in Python (`0:10**20`).
        s.parse::<i64>().map(Some).or_else(|e| match e.kind() {
            PosOverflow => Ok(Some(i64::MAX)),
            NegOverflow => Ok(Some(i64::MIN)),
            _ => Err(not_integer(s)),
        })
    };
    let parts: Vec<&str> = item.split(':').collect();
    match parts[..] {
        [""] => Err("empty item (use ':' for a whole axis)".to_string()),
        ["..."] => Ok(AxisSel::Ellipsis),
        // Unlike a range bound, an index past i64 cannot be clamped: it is out of bounds.
        [index] => index.parse::<i64>().map(AxisSel::Index).map_err(|e| match e.kind() {
            PosOverflow | NegOverflow => format!("index {index} is out of bounds for any axis"),
            _ => not_integer(index),
        }),
        [start, stop] => Ok(AxisSel::Range { start: bound(start)?, stop: bound(stop)?, step: 1 }),
        [lo, hi, stride] => {
            let step = match bound(stride)? {
                None => 1,
                Some(s) if s > 0 => s.unsigned_abs(),
                Some(s) => return Err(format!("step {s} is not supported (steps must be positive)")),
            };
            Ok(AxisSel::Range { start: bound(lo)?, stop: bound(hi)?, step })
        }
        _ => Err(format!("{item:?} has more than two ':'")),
    }
}

impl SliceSpec {
    /// Resolves the selection against `shape`.
    ///
    /// # Errors
    /// More items than axes, or an index outside its axis.
    pub fn resolve(&self, shape: &[u64]) -> Result<Selection> {
        let given: Vec<AxisSel> = self.0.iter().copied().filter(|item| *item != AxisSel::Ellipsis).collect();
        if given.len() > shape.len() {
            let items = if given.len() == 1 { "1 item".to_string() } else { format!("{} items", given.len()) };
            bail!("--slice has {items} but the array has {} dimensions (shape {shape:?})", shape.len());
        }
        // `...` stands for the whole axes the other items leave, where it is.
        let items: Vec<AxisSel> = match self.0.iter().position(|item| *item == AxisSel::Ellipsis) {
            Some(at) => {
                let whole = std::iter::repeat_n(WHOLE, shape.len() - given.len());
                given[..at].iter().copied().chain(whole).chain(given[at..].iter().copied()).collect()
            }
            None => given,
        };
        let mut sel = Selection::all(shape);
        for (axis, (item, &len)) in items.iter().zip(shape).enumerate() {
            let len_i = i128::from(len);
            match *item {
                AxisSel::Index(i) => {
                    let at = if i < 0 { len_i + i128::from(i) } else { i128::from(i) };
                    if !(0..len_i).contains(&at) {
                        bail!("index {i} is out of bounds for axis {axis} with size {len}");
                    }
                    sel.start[axis] = at as u64;
                    sel.extent[axis] = 1;
                    sel.keep[axis] = false;
                }
                AxisSel::Range { start, stop, step } => {
                    // Python's rules: negative counts from the end, then clamp to 0..=len.
                    let clamp = |v: Option<i64>, default: i128| {
                        v.map_or(default, |v| {
                            let v = i128::from(v);
                            (if v < 0 { len_i + v } else { v }).clamp(0, len_i)
                        })
                    };
                    let (lo, hi) = (clamp(start, 0), clamp(stop, len_i));
                    sel.start[axis] = lo as u64;
                    // The box ends at the last selected index, so no row past it is read.
                    let count = if hi > lo { (hi - lo - 1) / i128::from(step) + 1 } else { 0 };
                    sel.extent[axis] = if count == 0 { 0 } else { ((count - 1) * i128::from(step) + 1) as u64 };
                    sel.step[axis] = step;
                }
                AxisSel::Ellipsis => unreachable!("expanded above"),
            }
        }
        Ok(sel)
    }
}

impl fmt::Display for SliceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        let items: Vec<String> = self
            .0
            .iter()
            .map(|item| match *item {
                AxisSel::Index(i) => i.to_string(),
                AxisSel::Ellipsis => "...".to_string(),
                AxisSel::Range { start, stop, step: 1 } => format!("{}:{}", show(start), show(stop)),
                AxisSel::Range { start, stop, step } => format!("{}:{}:{step}", show(start), show(stop)),
            })
            .collect();
        f.write_str(&items.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(spec: &str, shape: &[u64]) -> Selection {
        spec.parse::<SliceSpec>().unwrap().resolve(shape).unwrap()
    }

    #[test]
    fn ranges_indices_and_defaults_follow_numpy() {
        let sel = resolve("0:10,5,:", &[20, 8, 4]);
        assert_eq!(sel.start, vec![0, 5, 0]);
        assert_eq!(sel.extent, vec![10, 1, 4]);
        assert_eq!(sel.out_shape(), vec![10, 4]);
        let sel = resolve("-3:,::3", &[10, 7]);
        assert_eq!((sel.out_shape(), sel.start, sel.extent), (vec![3, 3], vec![7, 0], vec![3, 7]));
        let sel = resolve("-1", &[10, 7]);
        assert_eq!((sel.out_shape(), sel.start), (vec![7], vec![9, 0]));
        assert_eq!(resolve("5:2", &[10]).out_shape(), vec![0]);
        assert_eq!(resolve("1:100:4", &[10]).extent, vec![9]);
        assert_eq!(resolve("", &[3, 4]), Selection::all(&[3, 4]));
        assert_eq!(resolve("0:3,", &[10, 4]), resolve("0:3", &[10, 4]));
        assert_eq!(resolve("1, 2 ,", &[10, 4]), resolve("1,2", &[10, 4]));
    }

    #[test]
    fn an_ellipsis_stands_for_the_axes_the_other_items_leave() {
        assert_eq!(resolve("...,1", &[4, 5, 6]), resolve(":,:,1", &[4, 5, 6]));
        assert_eq!(resolve("1,...", &[4, 5, 6]), resolve("1", &[4, 5, 6]));
        assert_eq!(resolve("1,...,2", &[4, 5, 6]), resolve("1,:,2", &[4, 5, 6]));
        assert_eq!(resolve("1,...,2,3", &[4, 5, 6]), resolve("1,2,3", &[4, 5, 6]), "for no axis");
        assert_eq!(resolve("...", &[]), Selection::all(&[]));
        assert!("...,1,...".parse::<SliceSpec>().unwrap_err().contains("single ellipsis"));
        let spec: SliceSpec = "...,1,2".parse().unwrap();
        assert!(spec.resolve(&[10]).unwrap_err().to_string().contains("2 items"));
        assert_eq!(spec.to_string(), "...,1,2");
    }

    #[test]
    fn bad_slices_are_refused_with_the_reason() {
        assert!("a:b".parse::<SliceSpec>().unwrap_err().contains("not an integer"));
        assert!("1:2:-1".parse::<SliceSpec>().unwrap_err().contains("positive"));
        assert!("1:2:3:4".parse::<SliceSpec>().unwrap_err().contains("more than two"));
        assert!("1,,2".parse::<SliceSpec>().unwrap_err().contains("empty item"));
        assert!(",".parse::<SliceSpec>().unwrap_err().contains("empty item"));
        assert!("1,,".parse::<SliceSpec>().unwrap_err().contains("empty item"));
        let spec: SliceSpec = "-100000000000000000000:100000000000000000000".parse().unwrap();
        assert_eq!(spec.resolve(&[10]).unwrap(), Selection::all(&[10]), "bounds past i64 clamp");
        let past = "-100000000000000000000".parse::<SliceSpec>().unwrap_err();
        assert_eq!(past, "index -100000000000000000000 is out of bounds for any axis");
        let spec: SliceSpec = "10".parse().unwrap();
        assert!(spec.resolve(&[10]).unwrap_err().to_string().contains("out of bounds for axis 0 with size 10"));
        let spec: SliceSpec = "1,2".parse().unwrap();
        assert!(spec.resolve(&[10]).unwrap_err().to_string().contains("2 items"));
        let spec: SliceSpec = "1".parse().unwrap();
        assert!(spec.resolve(&[]).unwrap_err().to_string().contains("has 1 item but"));
    }

    #[test]
    fn display_round_trips() {
        for text in ["0:10,5,:", "-3:,::3", "1:2:4"] {
            let spec: SliceSpec = text.parse().unwrap();
            assert_eq!(spec.to_string().parse::<SliceSpec>().unwrap(), spec);
        }
    }
}
