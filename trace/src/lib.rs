//! The ttalloc trace file: what `ttalloc-collect` writes and every `ttalloc`
//! command reads.
//!
//! * `record` — the process-level records (one per hooked call, plus process,
//!   mesh, gap and resync bookkeeping). Documented in `docs/trace-format.md`.
//! * `writer` / `reader` — a streaming msgpack codec: bounded memory, readable
//!   up to the cut when the writer died, hostile input rejected with an offset.
//! * `model` — replays records into chip-level events and exact per-chip,
//!   per-type usage (live bytes, peaks, counts). The collector's live view and
//!   the offline `ttalloc replay` share it, so they cannot disagree.

mod huge;
mod live_table;
pub mod model;
mod mp;
pub mod reader;
pub mod record;
pub mod usage;
pub mod writer;

pub use live_table::LiveTable;
pub use model::{ChipEvent, ChipKind, Model};
pub use usage::{Usage, UsageMap};
pub use reader::{TraceError, TraceReader};
pub use record::*;
pub use writer::TraceWriter;
