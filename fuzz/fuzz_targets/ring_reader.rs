//! Arbitrary bytes patched over a ring file (tests/robustness/src/ring_input.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ttalloc_robustness::ring_input::run(data);
});
