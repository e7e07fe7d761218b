//! Writes the fuzz corpus seeds: `seeds DIR` → DIR/<target>/seed for each fuzz target.

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: seeds DIR"));
    let trace = ttalloc_robustness::trace_input::seed();
    for (target, bytes) in [("trace_reader", trace.clone()), ("trace_commands", trace), ("ring_reader", ttalloc_robustness::ring_input::seed())] {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).expect("corpus dir");
        std::fs::write(d.join("seed"), bytes).expect("seed");
    }
}
