//! Bytes -> registration calls -> a typed error or a valid heap, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sencha_spans::testing::check_registration_sequence(data));
