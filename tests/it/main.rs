//! Integration tests of the public API: one binary, one module per theme (STYLE.md, "Tests").
//! Each test works in its own temp dir named after it (`util::test_dir!`).

// Tests compare floats exactly on purpose (a round trip must be bit-exact) and build small
// index values with plain casts.
#![allow(
    clippy::float_cmp,
    clippy::cast_possible_wrap,
    clippy::too_many_lines,
    clippy::single_match_else,
    clippy::default_trait_access,
    clippy::case_sensitive_file_extension_comparisons
)]

mod across;
mod api;
mod batch;
mod boxes;
mod cache;
mod commit;
mod compat;
mod concurrency;
mod concurrency2;
mod corruption;
mod crash;
mod datamodel;
mod errors;
#[cfg(feature = "test-util")]
mod faults;
mod fuzz_regressions;
mod gpu;
mod hostile;
mod inspect;
mod killing;
mod layering;
mod lifecycle;
mod model;
mod observe;
mod rename;
mod roundtrip;
mod util;
