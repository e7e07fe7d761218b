//! The shared-memory contract between the shim (`libttalloc.so`, many producer
//! threads inside a tt-metal process) and the collector (one consumer).
//!
//! One region per traced process, one file per region:
//!
//! ```text
//! [ Header (HEADER_BYTES) | ring: ring_slots × 64 B | live table: generation 0 (live_slots × 64 B),
//!   generation 1 (2 × live_slots × 64 B), … — a hole in the file until in use ]
//! ```
//!
//! * the **ring** carries every event in sequence order (`event`, `producer`, `consumer`);
//! * the **live table** mirrors the set of live allocations so that a collector
//!   that attaches late, restarts, or finds the ring overflowed can resync to
//!   exact live totals (`live`);
//! * the **header** names the process, carries the shim's load-time verdict, the
//!   mesh → chips table and the loss/problem counters (`layout`).
//!
//! Nothing here allocates, locks or makes a syscall on the producer path.

pub mod clock;
pub mod event;
pub mod layout;
pub mod live;
pub mod naming;
pub mod region;
mod consumer;
mod producer;

pub use consumer::{Drained, RingReader};
pub use event::{BufferType, EventBody, Kind, RawEvent};
pub use layout::{Header, Problem, MESH_SLOTS, MAX_MESH_CHIPS};
pub use clock::monotonic_ns as producer_clock;
pub use producer::{PushError, Reservation};
pub use region::{Region, RegionError};
