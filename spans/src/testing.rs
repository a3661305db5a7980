//! Fixtures and check functions for sencha's own tests, benchmarks and fuzzers.
//!
//! Unstable: behind the `testing` feature, not covered by semver.
