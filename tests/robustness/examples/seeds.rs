//! Writes the fuzz corpus seeds: `seeds DIR` → DIR/<target>/seed for each fuzz target.

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: seeds DIR"));
    let ring = vec![("seed", ttalloc_robustness::ring_input::seed())];
    let traces = ttalloc_robustness::trace_input::seeds();
    for (target, seeds) in [("trace_reader", &traces), ("trace_commands", &traces), ("ring_reader", &ring)] {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).expect("corpus dir");
        for (name, bytes) in seeds.iter() {
            std::fs::write(d.join(name), bytes).expect("seed");
        }
    }
}
