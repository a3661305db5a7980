//! Span bytes -> a span of any legal class -> every kernel tier agrees with the scalar tier.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sencha::testing::check_kernels_from_bytes(data));
