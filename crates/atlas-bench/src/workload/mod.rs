//! The workloads of the "Speed" issue. Each returns its table rows; each can also run as a
//! child process task, so its peak memory is its own.

pub mod append;
pub mod boxes;
pub mod bulk;
pub mod many;
