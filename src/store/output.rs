//! The arrays the allocating reads return: sized from the request's extent, refused when
//! they could not exist in memory instead of failing inside the allocator.

use ndarray::{ArrayD, IxDyn};

use crate::error::{Error, Result};
use crate::io::zeroed_buffer;

/// A new output of `extent` elements of `T` (`T::default()` each: zeroed memory for the
/// numeric types) for a read of `array`, or [`Error::OutOfMemory`] when it would take
/// more than `isize::MAX` bytes counting every extent but zeros (the most `Vec` and ndarray
/// accept), or more than the allocator gives.
pub(super) fn new_output<T: Clone + Default>(array: &str, extent: &[u64]) -> Result<Vec<T>> {
    refuse_unaddressable(array, extent, size_of::<T>())?;
    // Under isize::MAX bytes without its zeros, so the product fits.
    let len = extent.iter().map(|&n| usize::try_from(n).expect("checked above")).product();
    // The allocator refuses here, as an error, what `vec!` would abort the process on; the
    // probe is freed at once (a large one was only mapped, never touched).
    if Vec::<T>::new().try_reserve_exact(len).is_err() {
        return Err(too_large(array, extent));
    }
    Ok(zeroed_buffer(len))
}

/// Refuses a result of a read of `array`, `extent` elements of `elem_bytes` each (not
/// counting its zero extents), over `isize::MAX` bytes, more than any memory can address.
pub(super) fn refuse_unaddressable(array: &str, extent: &[u64], elem_bytes: usize) -> Result<()> {
    let bytes = extent.iter().filter(|&&n| n != 0).try_fold(elem_bytes.max(1) as u64, |acc, &n| acc.checked_mul(n));
    if bytes.is_none_or(|bytes| isize::try_from(bytes).is_err()) {
        return Err(too_large(array, extent));
    }
    Ok(())
}

fn too_large(array: &str, extent: &[u64]) -> Error {
    Error::out_of_memory(format!("{array}: a result of shape {extent:?}"))
}

/// `out`, made by [`new_output`] for `extent`, as an array of that shape.
pub(super) fn shaped<T>(extent: &[u64], out: Vec<T>) -> ArrayD<T> {
    let dims: Vec<usize> = extent.iter().map(|&n| usize::try_from(n).expect("new_output checked it")).collect();
    ArrayD::from_shape_vec(IxDyn(&dims), out).expect("new_output checked the shape")
}

/// The extent of `count` boxes of `shape` stacked: `(count, *shape)`.
pub(super) fn stacked_extent(count: usize, shape: &[u64]) -> Vec<u64> {
    std::iter::once(count as u64).chain(shape.iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_past_isize_max_bytes_are_refused_and_zero_extents_are_empty() {
        assert_eq!(new_output::<u8>("a", &[2, 3]).unwrap(), [0; 6]);
        assert!(new_output::<f32>("a", &[1 << 62]).is_err(), "2^64 bytes");
        assert!(new_output::<u8>("a", &[1 << 62, 4]).is_err(), "the product overflows u64");
        // Zero elements, but ndarray still refuses the other extents' product past isize::MAX.
        assert!(new_output::<u8>("a", &[0, 1 << 63]).is_err());
        let empty = new_output::<u16>("a", &[0, 1 << 40]).unwrap();
        assert_eq!(shaped(&[0, 1 << 40], empty).shape(), [0, 1 << 40]);
        assert_eq!(stacked_extent(3, &[4, 5]), [3, 4, 5]);
    }

    #[test]
    fn outputs_the_allocator_cannot_give_are_refused_not_aborted_on() {
        // 2^62 bytes: under isize::MAX, over any machine's memory and address space.
        assert!(matches!(new_output::<u8>("a", &[1 << 62]), Err(Error::OutOfMemory { .. })));
    }
}
