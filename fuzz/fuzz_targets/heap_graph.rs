//! Bytes -> a heap graph -> every marker marks exactly what the reference oracle marks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sencha::testing::check_graph_from_bytes(data));
