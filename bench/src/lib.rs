//! sencha's workloads and benchmark helpers, shared by the CLI, criterion and iai suites, and
//! the peers: other collectors that mark the same workloads beside sencha (`--peer boehm`).
//!
//! Unsafe code: only `peer::boehm_ffi` (built with the `boehm` feature), the calls into the C
//! peer in `bench/csrc/`.
#![deny(missing_docs)]

pub mod chart;
pub mod peer;
pub mod report;
pub mod workload;
