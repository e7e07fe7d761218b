//! Everything ttalloc knows about the tt-metal binary it hooks.
//!
//! * [`catalog`]  — pure data: hook targets, Buffer accessors, ABI families. The one place to
//!   edit for a new tt-metal release.
//! * [`validate`] — pure checks over machine-code bytes that prove a field offset before we
//!   trust it (shared by the in-process reader and the on-disk analysis).
//! * [`runtime`]  — find the *loaded* `libtt_metal.so` (however it was loaded) and resolve its
//!   own definitions, never the shim's interposed ones.
//! * [`abi`]      — read a `Buffer` / `IDevice` safely from inside a hook.
//! * [`patchable`] — can a function's entry take an inline-hook jump (pure check over bytes).
//! * [`elf`]      — analysis of a `libtt_metal.so` file on disk (PLT reachability, call sites).
//! * [`doctor`]   — locate the default library and render the human verdict.

pub mod abi;
pub mod catalog;
pub mod doctor;
pub mod elf;
pub mod patchable;
pub mod runtime;
pub mod validate;

pub use catalog::{Accessor, Family, Target};
