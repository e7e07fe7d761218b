//! Trace records. Sequence numbers and timestamps are per process (`p` is the
//! process's index in this trace); order within a process is by `seq`.

use serde::{Deserialize, Serialize};

pub const TRACE_MAGIC: &str = "ttalloc-trace";
/// 2: `tid`, `object` and `program` are per-process deltas (1: absolute).
/// Readers read both.
pub const TRACE_FORMAT_VERSION: u32 = 2;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceHeader {
    pub magic: String,
    pub format_version: u32,
    pub tool_version: String,
    pub host: String,
    pub collector_pid: u32,
    pub started_real_ns: u64,
    /// The launched command in launch mode (`ttalloc-collect -- CMD …`).
    pub command: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub p: u32,
    pub pid: u32,
    pub start_ticks: u64,
    pub exe: String,
    pub created_mono_ns: u64,
    pub created_real_ns: u64,
    /// The shim's load-time report (JSON): libtt_metal.so path, build id, ABI
    /// family, and per target how it is hooked (the `ttalloc doctor` verdict).
    pub shim_info: String,
    /// Why the collector's view of this process starts where it does:
    /// "from-start", "late-attach", "restart-resync".
    pub attach: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeshInfo {
    pub p: u32,
    /// Mesh slot in the process's region (events name it as chip `-2 - slot`).
    pub slot: u32,
    pub mesh: u64,
    pub chips: Vec<i32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessEnd {
    pub p: u32,
    pub last_seq: u64,
    /// "exited", "killed" (gone without running its exit handler), or "collector-stopped".
    pub how: String,
    pub dropped: u64,
    /// Shim problem counters by name (only non-zero ones).
    pub problems: Vec<(String, u64)>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Footer {
    pub records: u64,
    pub processes: u32,
    pub dropped: u64,
    pub unknown_frees: u64,
    pub ended_real_ns: u64,
}

/// One event of one process, as recorded by the shim and resolved by the collector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ev {
    pub p: u32,
    pub seq: u64,
    pub ts_ns: u64,
    pub tid: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocRec {
    pub ev: Ev,
    /// Chip id, or a mesh reference (`ttalloc_ring::event::mesh_slot_of_chip`), or -1.
    pub chip: i32,
    pub btype: u8,
    /// `ttalloc_ring::event::FLAG_*`, plus `FLAG_RESYNC` below.
    pub flags: u16,
    /// The `Buffer*` (stable within the process while the buffer lives).
    pub object: u64,
    pub address: u64,
    pub size: u64,
    pub page_size: u32,
}

/// Set on allocations that come from a live-table resync rather than an event.
pub const FLAG_RESYNC: u16 = 1 << 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CbRec {
    pub ev: Ev,
    pub chip: i32,
    /// `ProgramImpl*`.
    pub program: u64,
    pub address: u64,
    pub size: u64,
    pub flags: u16,
}

/// The rare, large records are boxed so a `Record` is the size of its hot
/// event variants (72 bytes, not 112): every decoded record is moved through
/// the reader's `Result`/`Option` layers and the collector's sink.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Header(Box<TraceHeader>),
    Process(Box<ProcessInfo>),
    Mesh(MeshInfo),
    Alloc(AllocRec),
    /// Frees the allocation whose event had sequence number `alloc_seq`.
    Free { ev: Ev, alloc_seq: u64 },
    /// A free the collector could not pair (should never happen; counted everywhere).
    UnknownFree { ev: Ev, object: u64, chip: i32, btype: u8, address: u64, size: u64 },
    CbAlloc(CbRec),
    /// Every CB of `program` on `chip` (which may be a mesh reference).
    CbFree { ev: Ev, chip: i32, program: u64 },
    /// `~ProgramImpl` on builds without `track_deallocate_cb`: all CBs of `program`.
    ProgramEnd { ev: Ev, program: u64 },
    DfbAlloc(CbRec),
    /// Everything of this process still live on `chip` is released by the close.
    DeviceClose { ev: Ev, chip: i32 },
    AllocFailed { ev: Ev, chip: i32, btype: u8, size: u64, program: u64, what: u8 },
    /// `lost` events of process `p` were not recorded (ring full) before `after_seq`.
    Gap { p: u32, after_seq: u64, lost: u64 },
    /// The collector rebuilt process `p`'s live set from the live table; the
    /// `Alloc` records with `FLAG_RESYNC` and `ResyncDrop`s that follow complete it.
    Resync { p: u32, at_seq: u64, reason: String },
    /// An allocation the collector held live that the live table says is gone.
    ResyncDrop { p: u32, alloc_seq: u64 },
    ProcessEnd(Box<ProcessEnd>),
    Footer(Footer),
}

/// `AllocFailed::what`.
pub const FAILED_BUFFER: u8 = 1;
pub const FAILED_CIRCULAR_BUFFERS: u8 = 2;

impl Record {
    /// The event of an event record (`None` for process-level bookkeeping).
    #[inline]
    pub fn ev(&self) -> Option<&Ev> {
        Some(match self {
            Record::Alloc(a) => &a.ev,
            Record::CbAlloc(c) | Record::DfbAlloc(c) => &c.ev,
            Record::Free { ev, .. }
            | Record::UnknownFree { ev, .. }
            | Record::CbFree { ev, .. }
            | Record::ProgramEnd { ev, .. }
            | Record::DeviceClose { ev, .. }
            | Record::AllocFailed { ev, .. } => ev,
            _ => return None,
        })
    }

    #[inline]
    pub fn process(&self) -> Option<u32> {
        Some(match self {
            Record::Header(_) | Record::Footer(_) => return None,
            Record::Process(i) => i.p,
            Record::Mesh(m) => m.p,
            Record::Alloc(a) => a.ev.p,
            Record::CbAlloc(c) | Record::DfbAlloc(c) => c.ev.p,
            Record::Free { ev, .. }
            | Record::UnknownFree { ev, .. }
            | Record::CbFree { ev, .. }
            | Record::ProgramEnd { ev, .. }
            | Record::DeviceClose { ev, .. }
            | Record::AllocFailed { ev, .. } => ev.p,
            Record::Gap { p, .. } | Record::Resync { p, .. } | Record::ResyncDrop { p, .. } => *p,
            Record::ProcessEnd(e) => e.p,
        })
    }
}

#[cfg(test)]
mod size {
    #[test]
    fn a_record_is_as_small_as_its_event_variants() {
        assert_eq!(std::mem::size_of::<super::Record>(), 72);
    }
}
