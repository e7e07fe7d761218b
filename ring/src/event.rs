//! The 64-byte event record written by the shim, one per hooked call.

/// What happened. Values are part of the ring and trace formats: append only.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `GraphTracker::track_allocate`: a buffer got device memory (or, if
    /// `FLAG_HOOKED`, was captured without memory).
    Alloc = 1,
    /// `GraphTracker::track_deallocate`.
    Free = 2,
    /// `GraphTracker::track_allocate_cb`: one circular buffer of program `object`.
    CbAlloc = 3,
    /// `GraphTracker::track_deallocate_cb(device)`: every CB of program `object` on that device.
    CbFree = 4,
    /// `~ProgramImpl` on builds that never call `track_deallocate_cb`: all CBs of `object`, every device.
    ProgramEnd = 5,
    /// `Device::close` / `MeshDevice::close`: what is still live on those chips is released.
    DeviceClose = 6,
    /// An interposed call that unwound (C++ exception): `size`/`btype`/`chip` say what was asked.
    AllocFailed = 7,
    /// A dataflow buffer of program `object` (0.81 path with no tracker call).
    DfbAlloc = 8,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Alloc,
            2 => Kind::Free,
            3 => Kind::CbAlloc,
            4 => Kind::CbFree,
            5 => Kind::ProgramEnd,
            6 => Kind::DeviceClose,
            7 => Kind::AllocFailed,
            8 => Kind::DfbAlloc,
            _ => return None,
        })
    }
}

/// tt-metal's `BufferType` values (stable across 0.65–0.81), plus `Cb` for
/// circular/dataflow buffers and `Unknown` when the field could not be read.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BufferType {
    Dram = 0,
    L1 = 1,
    SystemMemory = 2,
    L1Small = 3,
    Trace = 4,
    Cb = 16,
    Unknown = 255,
}

impl BufferType {
    pub fn from_u8(v: u8) -> BufferType {
        match v {
            0 => BufferType::Dram,
            1 => BufferType::L1,
            2 => BufferType::SystemMemory,
            3 => BufferType::L1Small,
            4 => BufferType::Trace,
            16 => BufferType::Cb,
            _ => BufferType::Unknown,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            BufferType::Dram => "DRAM",
            BufferType::L1 => "L1",
            BufferType::SystemMemory => "SYSTEM_MEMORY",
            BufferType::L1Small => "L1_SMALL",
            BufferType::Trace => "TRACE",
            BufferType::Cb => "CB",
            BufferType::Unknown => "UNKNOWN",
        }
    }
    pub fn from_name(s: &str) -> Option<BufferType> {
        [
            BufferType::Dram,
            BufferType::L1,
            BufferType::SystemMemory,
            BufferType::L1Small,
            BufferType::Trace,
            BufferType::Cb,
            BufferType::Unknown,
        ]
        .into_iter()
        .find(|t| t.name() == s)
    }
}

/// `graph capture without dispatch`: no device memory behind this allocation.
pub const FLAG_HOOKED: u16 = 1 << 0;
/// A CB that aliases an already-counted L1 buffer (`globally_allocated`).
pub const FLAG_GLOBAL_CB: u16 = 1 << 1;
/// Some field could not be read safely and is reported as unknown.
pub const FLAG_PARTIAL: u16 = 1 << 2;
/// Event emitted by an inline (non-PLT) hook.
pub const FLAG_INLINE_HOOK: u16 = 1 << 3;

/// Chip value when the chip could not be determined.
pub const CHIP_UNKNOWN: i32 = -1;
/// Chips `<= MESH_CHIP_BASE` name a mesh: slot `MESH_CHIP_BASE - chip` of the header's mesh table.
pub const MESH_CHIP_BASE: i32 = -2;

pub fn chip_for_mesh_slot(slot: usize) -> i32 {
    MESH_CHIP_BASE - slot as i32
}
pub fn mesh_slot_of_chip(chip: i32) -> Option<usize> {
    (chip <= MESH_CHIP_BASE).then(|| (MESH_CHIP_BASE - chip) as usize)
}

/// Everything in an event except its sequence number (the slot stamp carries that).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventBody {
    pub ts_ns: u64,
    /// `Buffer*` for buffers, `ProgramImpl*` for CBs/programs, `IDevice*` for closes.
    pub object: u64,
    pub address: u64,
    pub size: u64,
    /// Kind-specific: CB index within its program; requested size for failures.
    pub aux: u64,
    pub page_size: u32,
    pub tid: u32,
    /// Chip id, `CHIP_UNKNOWN`, or a mesh reference (see `mesh_slot_of_chip`).
    pub chip: i32,
    pub kind: u8,
    pub btype: u8,
    pub flags: u16,
}

/// An event as the consumer sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// Per-process total order: the ring position. Dense over recorded events.
    pub seq: u64,
    pub body: EventBody,
}

const _: () = assert!(std::mem::size_of::<EventBody>() == 56);
