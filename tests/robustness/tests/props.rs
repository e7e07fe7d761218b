//! Property tests of the hostile-input harnesses (the fuzz targets' code):
//! arbitrary and mutated traces and rings never make a reader panic, read
//! past the end, or print an error that does not fit one line with an offset.

use proptest::prelude::*;
use ttalloc_robustness::{ring_input, trace_input};

/// A valid input with a few bytes overwritten, inserted or cut off.
fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = seed.len();
    (prop::collection::vec((0..len, any::<u8>(), 0u8..3), 1..8), 0..=len).prop_map(move |(edits, keep)| {
        let mut v = seed.clone();
        for (at, byte, how) in edits {
            let at = at.min(v.len().saturating_sub(1));
            match how {
                0 if !v.is_empty() => v[at] = byte,
                1 => v.insert(at, byte),
                _ if !v.is_empty() => {
                    v.remove(at);
                }
                _ => {}
            }
        }
        v.truncate(keep.max(1));
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn trace_reader_survives_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        trace_input::read_into_model(&data);
    }

    #[test]
    fn trace_reader_survives_mutated_traces(data in mutated(trace_input::seed())) {
        trace_input::read_into_model(&data);
    }
}

proptest! {
    // These write files and run whole commands: fewer cases.
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn commands_survive_mutated_traces(data in mutated(trace_input::seed())) {
        trace_input::read_into_model(&data);
        trace_input::commands(&data);
    }

    #[test]
    fn ring_reader_survives_arbitrary_patches(data in prop::collection::vec(any::<u8>(), 0..3200)) {
        ring_input::run(&data);
    }

    #[test]
    fn ring_reader_survives_mutated_rings(data in mutated(ring_input::seed())) {
        ring_input::run(&data);
    }
}
