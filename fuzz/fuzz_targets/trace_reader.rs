//! Arbitrary bytes as a trace: the reader into the replay model (tests/robustness/src/trace_input.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ttalloc_robustness::trace_input::read_into_model(data);
});
