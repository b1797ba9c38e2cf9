//! Handing many short byte slices (rows of a chunk in a caller's array) on in fewer, longer
//! runs: a copy into a buffer that stays in cache costs less than a call per row.

/// Hands the concatenated `parts` to `visit` in runs: parts shorter than `run_bytes`
/// gathered in `staging` up to that many bytes, longer ones as they are. Stops at the first
/// error `visit` returns.
pub(crate) fn in_runs<'p, E>(
    parts: impl IntoIterator<Item = &'p [u8]>,
    staging: &mut Vec<u8>,
    run_bytes: usize,
    mut visit: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    staging.clear();
    for part in parts {
        if staging.len() + part.len() > run_bytes && !staging.is_empty() {
            visit(staging)?;
            staging.clear();
        }
        if part.len() >= run_bytes {
            visit(part)?;
        } else {
            staging.extend_from_slice(part);
        }
    }
    if staging.is_empty() { Ok(()) } else { visit(staging) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_hold_the_parts_in_order_and_stay_short_unless_a_part_is_long() {
        let bytes: Vec<u8> = (0..=255).collect();
        let parts: Vec<&[u8]> = [0, 3, 10, 11, 40, 200, 256].windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
        let (mut runs, mut staging) = (Vec::new(), Vec::new());
        in_runs(parts.iter().copied(), &mut staging, 16, |run| {
            runs.push(run.to_vec());
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(runs.concat(), bytes);
        let lens: Vec<usize> = runs.iter().map(Vec::len).collect();
        assert_eq!(lens, [11, 29, 160, 56], "short parts joined up to 16 bytes, long ones alone");
        assert_eq!(in_runs(parts.iter().copied(), &mut staging, 16, |_| Err("stop")), Err("stop"));
    }
}
