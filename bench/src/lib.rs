//! sencha's workloads and benchmark helpers, shared by the CLI, criterion and iai suites.
#![deny(missing_docs)]

pub mod chart;
pub mod report;
pub mod workload;
