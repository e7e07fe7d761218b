//! `cargo run -p ttalloc-symbols --example analyze -- LIB [--full] [--json]`: the doctor
//! verdict for one library (the CLI's `ttalloc doctor` wraps the same calls).
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.iter().find(|a| !a.starts_with("--")) {
        Some(p) => std::path::PathBuf::from(p),
        None => ttalloc_symbols::doctor::find_default_library().unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        }),
    };
    let mode = if args.iter().any(|a| a == "--full") {
        ttalloc_symbols::elf::Mode::Full
    } else {
        ttalloc_symbols::elf::Mode::Quick
    };
    let t = std::time::Instant::now();
    let a = ttalloc_symbols::elf::analyze(&path, mode).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let dt = t.elapsed();
    if args.iter().any(|a| a == "--json") {
        println!("{}", a.to_json_string());
    } else {
        print!("{}", ttalloc_symbols::doctor::render_text(&a));
    }
    eprintln!("analysis took {dt:?}");
}
