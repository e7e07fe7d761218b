//! The region header: identity, ring cursors, loss counters, the shim's
//! verdict and the mesh → chips table. `#[repr(C)]`, shared across processes.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};

pub const MAGIC: [u8; 8] = *b"TTALLOC1";
/// Bumped on any incompatible change of this file, `event.rs` or `live.rs`.
pub const FORMAT_VERSION: u32 = 3;
/// The header occupies this many bytes; the ring starts right after.
pub const HEADER_BYTES: usize = 64 * 1024;
pub const SLOT_BYTES: usize = 64;
pub const INFO_BYTES: usize = 16 * 1024;
pub const MESH_SLOTS: usize = 64;
pub const MAX_MESH_CHIPS: usize = 64;

/// Things the shim could not do, counted rather than reported one by one.
#[repr(usize)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A Buffer field failed validation or was unreadable; recorded as unknown.
    UnreadableField = 0,
    /// A hook was entered again on a thread already inside one (forwarded only).
    Reentry = 1,
    /// A Rust panic inside a hook was caught (event possibly lost, call forwarded).
    Panic = 2,
    /// An IDevice whose vtable is neither Device nor MeshDevice.
    UnknownDevice = 3,
    /// A mesh with more chips than `MAX_MESH_CHIPS`, or more meshes than `MESH_SLOTS`.
    MeshTableFull = 4,
    /// The live table had no free slot: live totals after a resync are not exact.
    LiveTableFull = 5,
    /// `track_deallocate_cb` without a current program on this thread.
    CbFreeWithoutProgram = 6,
    /// The original function could not be resolved; the call could not be forwarded.
    NoOriginal = 7,
    /// A dataflow buffer beyond what the shim can attribute (too many DFBs in
    /// one placement, or too many programs holding DFBs): not recorded.
    DfbUnattributed = 8,
    /// A target the library calls without symbol binding could not be hooked inline: its
    /// calls are not recorded (the shim's info says which and why).
    InlineHookFailed = 9,
}
impl Problem {
    pub const ALL: [Problem; 10] = [
        Problem::UnreadableField,
        Problem::Reentry,
        Problem::Panic,
        Problem::UnknownDevice,
        Problem::MeshTableFull,
        Problem::LiveTableFull,
        Problem::CbFreeWithoutProgram,
        Problem::NoOriginal,
        Problem::DfbUnattributed,
        Problem::InlineHookFailed,
    ];

    /// The name used in trace records and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Problem::UnreadableField => "unreadable_field",
            Problem::Reentry => "reentry",
            Problem::Panic => "panic",
            Problem::UnknownDevice => "unknown_device",
            Problem::MeshTableFull => "mesh_table_full",
            Problem::LiveTableFull => "live_table_full",
            Problem::CbFreeWithoutProgram => "cb_free_without_program",
            Problem::NoOriginal => "no_original",
            Problem::DfbUnattributed => "dfb_unattributed",
            Problem::InlineHookFailed => "inline_hook_failed",
        }
    }
}

pub const PROBLEM_COUNT: usize = 16;

#[repr(C, align(64))]
pub struct CacheLine<T>(pub T);

#[repr(C)]
pub struct MeshSlot {
    /// `MeshDevice*`; 0 = free. Written last (release) once `chips` is filled.
    pub mesh: AtomicU64,
    pub n_chips: AtomicU32,
    /// 0 free, 1 being written, 2 published, 3 retired (mesh closed; chips kept for old events).
    pub state: AtomicU32,
    pub chips: [AtomicI32; MAX_MESH_CHIPS],
}

#[repr(C)]
pub struct Header {
    pub magic: [u8; 8],
    pub version: u32,
    pub header_bytes: u32,
    pub ring_slots: u64,
    /// Slots of live-table generation 0; generation g has `live_slots << g`.
    pub live_slots: u64,
    /// Generations the file has room for (see `region::live_generations`).
    pub live_gens_max: u32,
    /// Generations in use, 1..=`live_gens_max`: grows when the newest fills, never shrinks.
    pub live_gens: AtomicU32,
    pub pid: u32,
    pub uid: u32,
    /// Process start time in clock ticks since boot (`/proc/PID/stat` field 22):
    /// with the pid, identifies the process even after pid reuse.
    pub start_ticks: u64,
    /// CLOCK_MONOTONIC ns at creation (the clock of every event's `ts_ns`).
    pub created_mono_ns: u64,
    /// CLOCK_REALTIME ns at creation, to put monotonic times on a calendar.
    pub created_real_ns: u64,
    /// TSC reading taken with `created_mono_ns`; non-zero means every event's
    /// `ts_ns` holds raw TSC ticks, converted by the reader (see `clock`).
    pub created_tsc: u64,
    /// Bit flags, see `STATE_*`.
    pub state: AtomicU32,
    /// Pid of the collector currently draining this ring (0 = none).
    pub collector_pid: AtomicU32,
    /// 0 idle, 1 while a producer reserves the next live-table generation, 2 once that
    /// failed (no room in the shm dir): no producer tries again.
    pub live_growing: AtomicU32,
    /// Producer reservation cursor: the next sequence number.
    pub head: CacheLine<AtomicU64>,
    /// Consumer cursor: every position below it has been consumed.
    pub tail: CacheLine<AtomicU64>,
    /// Events not recorded because the ring was full.
    pub dropped: CacheLine<AtomicU64>,
    pub problems: [AtomicU64; PROBLEM_COUNT],
    /// Length of the JSON in `info` (0 until written; written once, before any event).
    pub info_len: AtomicU32,
    pub info: [u8; INFO_BYTES],
    pub meshes: [MeshSlot; MESH_SLOTS],
}

/// The process has exited normally (atexit ran).
pub const STATE_EXITED: u32 = 1 << 0;
/// The process forked from a traced parent; this region is the child's own.
pub const STATE_FORKED_CHILD: u32 = 1 << 1;

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_BYTES);
const _: () = assert!(std::mem::size_of::<MeshSlot>() == 16 + 4 * MAX_MESH_CHIPS);
