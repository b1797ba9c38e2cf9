//! Running a hot loop with the vector instructions the CPU has, chosen at run time: a
//! release build targets plain x86-64 (SSE2), where loops over 8- to 32-bit lanes get a
//! quarter of what AVX2 gives them.
//!
//! It lives in `codec`, the lowest room with byte kernels, so that `fragment` (the block
//! statistics) can use it. It holds one of the crate's few `unsafe` blocks (see
//! docs/ARCHITECTURE.md): one call of a function compiled for AVX2, made only after checking
//! that the CPU has it.

/// A loop to run once, compiled for the best instruction set available. Implementations
/// mark [`Kernel::run`] `#[inline(always)]`, so that it is compiled again inside the AVX2
/// entry point below.
pub(crate) trait Kernel {
    type Output;
    fn run(self) -> Self::Output;
}

/// Runs `kernel`, with AVX2 where the CPU has it.
pub(crate) fn dispatch<K: Kernel>(kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: `run_avx2`'s one requirement is a CPU with AVX2, checked just above.
        return unsafe { run_avx2(kernel) };
    }
    kernel.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn run_avx2<K: Kernel>(kernel: K) -> K::Output {
    kernel.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sum<'a>(&'a [u32]);

    impl Kernel for Sum<'_> {
        type Output = u64;
        #[allow(clippy::inline_always)] // to be compiled again inside the AVX2 entry point
        #[inline(always)]
        fn run(self) -> u64 {
            self.0.iter().map(|&v| u64::from(v)).sum()
        }
    }

    #[test]
    fn a_dispatched_kernel_computes_what_it_computes_plainly() {
        let values: Vec<u32> = (0..1000).collect();
        assert_eq!(dispatch(Sum(&values)), Sum(&values).run());
    }
}
