//! `libttalloc.so`: preloaded into a tt-metal process, it defines tt-metal's
//! allocation-tracking functions (so the library's own PLT calls land here),
//! records each call into the process's shared-memory ring, and always
//! forwards to the original.
//!
//! * `hooks`     — the exported mangled symbols (one small function each);
//! * `inline`    — entry patches for targets the library calls without symbol binding;
//! * `tracer`    — process-wide state: the resolved library, originals, the region;
//! * `record`    — turning a hooked call into an event + live-table update;
//! * `thread`    — per-thread state: tid, re-entry guard, current program, hook verdicts;
//! * `devices`   — chip ids and mesh → chips;
//! * `dfb`       — dataflow buffers: the placement under way, programs holding them;
//! * `loader`    — noticing libtt_metal.so when it is loaded (constructor, dlopen);
//! * `lifecycle` — fork, exit.
//!
//! Rule everywhere: the workload wins. Any failure here degrades to
//! "forward the call and count the problem".

pub mod devices;
pub mod dfb;
pub mod hooks;
pub mod inline;
pub mod lifecycle;
pub mod loader;
pub mod record;
pub mod thread;
pub mod tracer;
