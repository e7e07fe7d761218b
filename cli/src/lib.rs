//! `ttalloc`: the offline commands over a ttalloc trace (replay, leaks, diff,
//! export, report, dump, doctor). The binary (`main.rs`) only parses the
//! command line; each command lives in its own module, and [`summarize`] —
//! a trace replayed into the `replay --json` object — is shared by replay,
//! leaks, diff and report (and by anyone else linking this crate).

// The workspace MSRV is 1.80: no `is_none_or` / `is_multiple_of` yet.
#![allow(clippy::unnecessary_map_or, clippy::manual_is_multiple_of)]

pub mod diff;
pub mod doctor;
pub mod dump;
pub mod leaks;
pub mod merge;
pub mod perfetto;
pub mod replay;
pub mod report;
pub mod source;
pub mod summary;
mod largest;
mod peak_sets;
mod prefetch;
pub mod units;

pub use source::Error;
pub use summary::{summarize, summarize_with, Options, Summary};

/// Exit status of a command: 0 success, 1 a `--fail-if-…` condition held,
/// 2 an error (bad file, bad arguments).
pub type Status = i32;

pub const EXIT_OK: Status = 0;
pub const EXIT_CONDITION: Status = 1;
pub const EXIT_ERROR: Status = 2;

/// The message of the error a write to a closed stdout becomes; `main` exits 0
/// quietly on it (`ttalloc dump T | head`).
pub const BROKEN_PIPE: &str = "broken pipe";

/// An error writing the command's output (`what`: "stdout" or the output file).
pub fn out_err(what: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Error::new(what, BROKEN_PIPE)
    } else {
        Error::new(what, e.to_string())
    }
}
