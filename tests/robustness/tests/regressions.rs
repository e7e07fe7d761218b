//! Every input that once broke a harness (fuzz/regressions/<target>/) and
//! every seed, replayed on each test run.

use ttalloc_robustness::{regressions_dir, ring_input, trace_input};

fn replay_dir(target: &str, run: impl Fn(&[u8])) -> usize {
    let dir = regressions_dir().join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return 0 };
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        eprintln!("{}", path.display());
        run(&data);
        n += 1;
    }
    n
}

#[test]
fn trace_regressions() {
    let both = |d: &[u8]| {
        trace_input::read_into_model(d);
        trace_input::commands(d);
    };
    let n = replay_dir("trace_reader", both) + replay_dir("trace_commands", both);
    eprintln!("{n} trace regressions replayed");
}

#[test]
fn ring_regressions() {
    let n = replay_dir("ring_reader", |d| {
        ring_input::run(d);
    });
    eprintln!("{n} ring regressions replayed");
}

#[test]
fn seeds_are_valid() {
    assert!(ring_input::run(&ring_input::seed()), "the ring seed is accepted");
    assert_eq!(trace_input::read_into_model(&trace_input::seed()), 19, "header + 18 records");
}
