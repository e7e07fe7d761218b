// The in-process real-wheel test plays the preloaded shim: its executable defines and exports
// `GraphTracker::track_allocate`, so we can check that `dlopen(RTLD_LOCAL)`ed libtt_metal.so
// binds its PLT slot to that definition while `LoadedLib::sym` still returns the library's own.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!(
        "cargo:rustc-link-arg-tests=-Wl,--export-dynamic-symbol=_ZN2tt8tt_metal12GraphTracker14track_allocateEPKNS0_6BufferE"
    );
}
