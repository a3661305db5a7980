//! Bytes -> a sequence of public API calls -> a typed error or a consistent heap, marks equal
//! to the oracle's, sweeps that keep every reachable object; never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sencha::testing::check_api(data));
