//! Integration tests of the public API: one binary, one module per theme (STYLE.md, "Tests").
//! Each test works in its own temp dir named after it (`util::test_dir!`).

mod api;
mod commit;
mod compat;
mod concurrency;
mod crash;
mod errors;
mod layering;
mod model;
mod roundtrip;
mod util;
