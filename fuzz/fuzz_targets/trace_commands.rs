//! Arbitrary bytes as a trace file for `ttalloc replay`/`leaks`/`export` (tests/robustness/src/trace_input.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ttalloc_robustness::trace_input::commands(data));
