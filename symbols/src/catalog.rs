//! Pure data about tt-metal's ABI: what we hook, how we read a `Buffer`, which ABI family a
//! build belongs to. This is the one file to edit for a new tt-metal release; everything else
//! derives from it. Facts come from the real `libtt_metal.so` of the ttnn wheels (see
//! `docs/tt-metal-abi.md`); the real-wheel tests (`tests/real_wheels.rs`) re-check them.

use serde::{Deserialize, Serialize};

/// A function the shim intercepts.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum Target {
    TrackAllocate,
    TrackDeallocate,
    HookAllocate,
    HookDeallocate,
    TrackAllocateCb,
    TrackDeallocateCb,
    AllocateCircularBuffers,
    DeallocateCircularBuffers,
    ProgramImplD1,
    ProgramImplD2,
    DeviceClose,
    MeshDeviceClose,
    AllocateDataflowBuffers,
    DfbMarkAddress,
}

impl Target {
    pub const ALL: [Target; 14] = [
        Target::TrackAllocate,
        Target::TrackDeallocate,
        Target::HookAllocate,
        Target::HookDeallocate,
        Target::TrackAllocateCb,
        Target::TrackDeallocateCb,
        Target::AllocateCircularBuffers,
        Target::DeallocateCircularBuffers,
        Target::ProgramImplD1,
        Target::ProgramImplD2,
        Target::DeviceClose,
        Target::MeshDeviceClose,
        Target::AllocateDataflowBuffers,
        Target::DfbMarkAddress,
    ];
}

#[derive(Debug)]
pub struct TargetInfo {
    pub target: Target,
    pub mangled: &'static str,
    /// Exactly what `cpp_demangle` prints for `mangled` (= `c++filt`, except vtables).
    pub demangled: &'static str,
    /// What the call means for the numbers.
    pub role: &'static str,
    /// SysV x86-64 / Itanium calling convention of the function.
    pub convention: &'static str,
    /// Without it ttalloc cannot produce correct totals on any supported release.
    /// Optional targets are missing or never called on some releases (see `role`).
    pub required: bool,
    /// The one function that calls it in every measured release: a build without that caller
    /// never calls the target (no hook, inline or not, is needed).
    pub only_caller: Option<Target>,
}

/// Indexed by `Target as usize`; `info()` relies on that order (checked by a unit test).
pub const TARGETS: &[TargetInfo] = &[
    TargetInfo {
        target: Target::TrackAllocate,
        mangled: "_ZN2tt8tt_metal12GraphTracker14track_allocateEPKNS0_6BufferE",
        demangled: "tt::tt_metal::GraphTracker::track_allocate(tt::tt_metal::Buffer const*)",
        role: "buffer allocated: tail call of allocate_impl after status=ALLOCATED (also fires for hooked, unallocated buffers)",
        convention: "this=GraphTracker*, rsi=const Buffer*; returns void",
        required: true,
        only_caller: None,
    },
    TargetInfo {
        target: Target::TrackDeallocate,
        mangled: "_ZN2tt8tt_metal12GraphTracker16track_deallocateEPNS0_6BufferE",
        demangled: "tt::tt_metal::GraphTracker::track_deallocate(tt::tt_metal::Buffer*)",
        role: "buffer about to be freed: first thing in deallocate_impl (address/size/type still valid)",
        convention: "this=GraphTracker*, rsi=Buffer*; returns void",
        required: true,
        only_caller: None,
    },
    TargetInfo {
        target: Target::HookAllocate,
        mangled: "_ZN2tt8tt_metal12GraphTracker13hook_allocateEPKNS0_6BufferE",
        demangled: "tt::tt_metal::GraphTracker::hook_allocate(tt::tt_metal::Buffer const*)",
        role: "graph-capture hook: true means the buffer gets no device memory (address 0)",
        convention: "this=GraphTracker*, rsi=const Buffer*; returns bool in al",
        required: true,
        only_caller: None,
    },
    TargetInfo {
        target: Target::HookDeallocate,
        mangled: "_ZN2tt8tt_metal12GraphTracker15hook_deallocateEPNS0_6BufferE",
        demangled: "tt::tt_metal::GraphTracker::hook_deallocate(tt::tt_metal::Buffer*)",
        role: "graph-capture hook on free: true means no device memory is released",
        convention: "this=GraphTracker*, rsi=Buffer*; returns bool in al",
        required: true,
        only_caller: None,
    },
    TargetInfo {
        target: Target::TrackAllocateCb,
        mangled: "_ZN2tt8tt_metal12GraphTracker17track_allocate_cbERKNS0_12CoreRangeSetEmmbPKNS0_7IDeviceE",
        demangled: "tt::tt_metal::GraphTracker::track_allocate_cb(tt::tt_metal::CoreRangeSet const&, unsigned long, unsigned long, bool, tt::tt_metal::IDevice const*)",
        role: "one circular buffer allocated in L1 (globally_allocated=true aliases an already-reported buffer)",
        convention: "this=GraphTracker*, rsi=const CoreRangeSet&, rdx=addr, rcx=size, r8b=globally_allocated, r9=const IDevice*; returns void",
        required: true,
        only_caller: None,
    },
    TargetInfo {
        target: Target::TrackDeallocateCb,
        mangled: "_ZN2tt8tt_metal12GraphTracker19track_deallocate_cbEPKNS0_7IDeviceE",
        demangled: "tt::tt_metal::GraphTracker::track_deallocate_cb(tt::tt_metal::IDevice const*)",
        role: "all CBs of the program being destroyed, on this device (no address, no program); never called before 0.71",
        convention: "this=GraphTracker*, rsi=const IDevice*; returns void",
        required: false,
        only_caller: Some(Target::DeallocateCircularBuffers),
    },
    TargetInfo {
        target: Target::AllocateCircularBuffers,
        mangled: "_ZN2tt8tt_metal6detail11ProgramImpl25allocate_circular_buffersEPKNS0_7IDeviceE",
        demangled: "tt::tt_metal::detail::ProgramImpl::allocate_circular_buffers(tt::tt_metal::IDevice const*)",
        role: "brackets the track_allocate_cb calls of one program: gives their ProgramImpl*",
        convention: "this=ProgramImpl*, rsi=const IDevice*; returns void",
        required: true,
        only_caller: None,
    },
    TargetInfo {
        target: Target::DeallocateCircularBuffers,
        mangled: "_ZN2tt8tt_metal6detail11ProgramImpl27deallocate_circular_buffersEv",
        demangled: "tt::tt_metal::detail::ProgramImpl::deallocate_circular_buffers()",
        role: "brackets track_deallocate_cb: the program whose CBs end (from 0.71; absent in 0.65)",
        convention: "this=ProgramImpl*; returns void",
        required: false,
        only_caller: None,
    },
    TargetInfo {
        target: Target::ProgramImplD1,
        mangled: "_ZN2tt8tt_metal6detail11ProgramImplD1Ev",
        demangled: "tt::tt_metal::detail::ProgramImpl::~ProgramImpl()",
        role: "program destroyed: ends the lifetime of its CBs (the only CB-free signal on 0.65/0.68)",
        convention: "this=ProgramImpl*; returns void",
        required: true,
        only_caller: None,
    },
    TargetInfo {
        target: Target::ProgramImplD2,
        mangled: "_ZN2tt8tt_metal6detail11ProgramImplD2Ev",
        demangled: "tt::tt_metal::detail::ProgramImpl::~ProgramImpl()",
        role: "base-object destructor; in the measured builds an alias of D1 (same address, no PLT slot)",
        convention: "this=ProgramImpl*; returns void",
        required: false,
        only_caller: None,
    },
    TargetInfo {
        target: Target::DeviceClose,
        mangled: "_ZN2tt8tt_metal6Device5closeEv",
        demangled: "tt::tt_metal::Device::close()",
        role: "device closes: buffers still alive never get a track_deallocate",
        convention: "this=Device*; returns bool in al",
        required: true,
        only_caller: None,
    },
    TargetInfo {
        target: Target::MeshDeviceClose,
        mangled: "_ZN2tt8tt_metal11distributed10MeshDevice5closeEv",
        demangled: "tt::tt_metal::distributed::MeshDevice::close()",
        role: "mesh closes: its buffers end without track_deallocate; reached through the vtable only (no PLT slot)",
        convention: "this=MeshDevice*; returns bool in al",
        required: false,
        only_caller: None,
    },
    TargetInfo {
        target: Target::AllocateDataflowBuffers,
        mangled: "_ZN2tt8tt_metal6detail11ProgramImpl25allocate_dataflow_buffersEPKNS0_7IDeviceE",
        demangled: "tt::tt_metal::detail::ProgramImpl::allocate_dataflow_buffers(tt::tt_metal::IDevice const*)",
        role: "newer dataflow-buffer allocation path (0.71+): brackets CB-like allocations of one program",
        convention: "this=ProgramImpl*, rsi=const IDevice*; returns void",
        required: false,
        only_caller: None,
    },
    TargetInfo {
        target: Target::DfbMarkAddress,
        mangled: "_ZN2tt8tt_metal6detail11ProgramImpl23CircularBufferAllocator12mark_addressEmmm",
        demangled: "tt::tt_metal::detail::ProgramImpl::CircularBufferAllocator::mark_address(unsigned long, unsigned long, unsigned long)",
        role: "places one dataflow buffer (address, size) in one core range's L1; on 0.71.2/0.81.1 its only caller is allocate_dataflow_buffers, which calls no track_* function",
        convention: "this=CircularBufferAllocator*, rsi=address, rdx=size, rcx=base address; returns void",
        required: false,
        // 0.65 calls it directly for CB placement; without a DFB path nothing needs it.
        only_caller: Some(Target::AllocateDataflowBuffers),
    },
];

pub fn info(t: Target) -> &'static TargetInfo {
    &TARGETS[t as usize]
}

pub fn target_by_mangled(mangled: &str) -> Option<&'static TargetInfo> {
    TARGETS.iter().find(|t| t.mangled == mangled)
}

/// A function or object we use to *read* tt-metal state (never hooked).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum Accessor {
    BufferAddress,
    BufferIsAllocated,
    BufferNumPages,
    BufferPageSize,
    BufferSize,
    BufferType,
    BufferDevice,
    BufferUniqueId,
    BufferIsDram,
    MeshGetDevices,
    DeviceVtable,
    MeshDeviceVtable,
    OperatorDelete,
}

impl Accessor {
    pub const ALL: [Accessor; 13] = [
        Accessor::BufferAddress,
        Accessor::BufferIsAllocated,
        Accessor::BufferNumPages,
        Accessor::BufferPageSize,
        Accessor::BufferSize,
        Accessor::BufferType,
        Accessor::BufferDevice,
        Accessor::BufferUniqueId,
        Accessor::BufferIsDram,
        Accessor::MeshGetDevices,
        Accessor::DeviceVtable,
        Accessor::MeshDeviceVtable,
        Accessor::OperatorDelete,
    ];
}

#[derive(Debug)]
pub struct AccessorInfo {
    pub accessor: Accessor,
    pub mangled: &'static str,
    pub demangled: &'static str,
    /// Families whose builds export it (and on which ttalloc uses it).
    pub families: &'static [Family],
    /// Defined elsewhere (libstdc++) and only *imported* by libtt_metal.so.
    pub imported: bool,
}

const BOTH: &[Family] = &[Family::Legacy, Family::Pimpl];
const PIMPL: &[Family] = &[Family::Pimpl];

/// Indexed by `Accessor as usize` (checked by a unit test).
pub const ACCESSORS: &[AccessorInfo] = &[
    AccessorInfo {
        accessor: Accessor::BufferAddress,
        mangled: "_ZNK2tt8tt_metal6Buffer7addressEv",
        demangled: "tt::tt_metal::Buffer::address() const",
        families: BOTH,
        imported: false,
    },
    AccessorInfo {
        accessor: Accessor::BufferIsAllocated,
        mangled: "_ZNK2tt8tt_metal6Buffer12is_allocatedEv",
        demangled: "tt::tt_metal::Buffer::is_allocated() const",
        families: BOTH,
        imported: false,
    },
    AccessorInfo {
        accessor: Accessor::BufferNumPages,
        mangled: "_ZNK2tt8tt_metal6Buffer9num_pagesEv",
        demangled: "tt::tt_metal::Buffer::num_pages() const",
        families: BOTH,
        imported: false,
    },
    AccessorInfo {
        accessor: Accessor::BufferPageSize,
        mangled: "_ZNK2tt8tt_metal6Buffer9page_sizeEv",
        demangled: "tt::tt_metal::Buffer::page_size() const",
        families: BOTH,
        imported: false,
    },
    AccessorInfo {
        accessor: Accessor::BufferSize,
        mangled: "_ZNK2tt8tt_metal6Buffer4sizeEv",
        demangled: "tt::tt_metal::Buffer::size() const",
        families: PIMPL,
        imported: false,
    },
    AccessorInfo {
        accessor: Accessor::BufferType,
        mangled: "_ZNK2tt8tt_metal6Buffer11buffer_typeEv",
        demangled: "tt::tt_metal::Buffer::buffer_type() const",
        families: PIMPL,
        imported: false,
    },
    AccessorInfo {
        accessor: Accessor::BufferDevice,
        mangled: "_ZNK2tt8tt_metal6Buffer6deviceEv",
        demangled: "tt::tt_metal::Buffer::device() const",
        families: PIMPL,
        imported: false,
    },
    AccessorInfo {
        accessor: Accessor::BufferUniqueId,
        mangled: "_ZNK2tt8tt_metal6Buffer9unique_idEv",
        demangled: "tt::tt_metal::Buffer::unique_id() const",
        families: PIMPL,
        imported: false,
    },
    AccessorInfo {
        accessor: Accessor::BufferIsDram,
        mangled: "_ZNK2tt8tt_metal6Buffer7is_dramEv",
        demangled: "tt::tt_metal::Buffer::is_dram() const",
        families: BOTH,
        imported: false,
    },
    AccessorInfo {
        accessor: Accessor::MeshGetDevices,
        mangled: "_ZNK2tt8tt_metal11distributed10MeshDevice11get_devicesEv",
        demangled: "tt::tt_metal::distributed::MeshDevice::get_devices() const",
        families: BOTH,
        imported: false,
    },
    AccessorInfo {
        accessor: Accessor::DeviceVtable,
        mangled: "_ZTVN2tt8tt_metal6DeviceE",
        demangled: "{vtable(tt::tt_metal::Device)}",
        families: BOTH,
        imported: false,
    },
    AccessorInfo {
        accessor: Accessor::MeshDeviceVtable,
        mangled: "_ZTVN2tt8tt_metal11distributed10MeshDeviceE",
        demangled: "{vtable(tt::tt_metal::distributed::MeshDevice)}",
        families: BOTH,
        imported: false,
    },
    AccessorInfo {
        accessor: Accessor::OperatorDelete,
        mangled: "_ZdlPv",
        demangled: "operator delete(void*)",
        families: BOTH,
        imported: true,
    },
];

pub fn accessor_info(a: Accessor) -> &'static AccessorInfo {
    &ACCESSORS[a as usize]
}

/// Legacy `Buffer::Buffer(IDevice*, size, page_size, BufferType, …)` (identical mangling in
/// 0.65 and 0.71). Its first stores prove where device/size/type live (see
/// [`crate::validate::ctor_arg_stores`]). Not an [`Accessor`]: it is never called.
pub const LEGACY_BUFFER_CTORS: &[&str] = &[
    "_ZN2tt8tt_metal6BufferC2EPNS0_7IDeviceEmmNS0_10BufferTypeERKNS0_18BufferShardingArgsESt8optionalIbES8_IN4ttsl10StrongTypeIhNS0_14SubDeviceIdTagEEEEbNS1_7PrivateE",
    "_ZN2tt8tt_metal6BufferC1EPNS0_7IDeviceEmmNS0_10BufferTypeERKNS0_18BufferShardingArgsESt8optionalIbES8_IN4ttsl10StrongTypeIhNS0_14SubDeviceIdTagEEEEbNS1_7PrivateE",
];
/// Fallback when the trailing parameters change: any ctor whose first parameter is `IDevice*`.
pub const LEGACY_BUFFER_CTOR_PREFIXES: &[&str] =
    &["_ZN2tt8tt_metal6BufferC2EPNS0_7IDeviceE", "_ZN2tt8tt_metal6BufferC1EPNS0_7IDeviceE"];
/// Legacy ctor argument positions (SysV integer registers, `this` = 0).
pub const CTOR_ARG_DEVICE: usize = 1;
pub const CTOR_ARG_SIZE: usize = 2;
pub const CTOR_ARG_TYPE: usize = 4;

/// Hidden (not dlsym-able) `Device::id()`; only used to name vtable slot 3 from `.symtab`.
pub const DEVICE_ID: &str = "_ZNK2tt8tt_metal6Device2idEv";
pub const DEVICE_ID_DEMANGLED: &str = "tt::tt_metal::Device::id() const";
/// `IDevice::id()` is virtual slot 3 (vptr + 24) in every measured release.
pub const IDEVICE_ID_SLOT: usize = 3;
/// The address point of an Itanium vtable: vptr = &_ZTV… + 16 (offset-to-top, RTTI).
pub const VTABLE_ADDRESS_POINT: usize = 16;

/// Legacy field offsets measured in 0.65–0.77; used only after validation at load.
pub const LEGACY_DEVICE_OFFSET: usize = 0x10;
pub const LEGACY_SIZE_OFFSET: usize = 0x18;
pub const LEGACY_TYPE_OFFSET: usize = 0x20;

/// `BufferType` values (u32 in memory).
pub const BUFFER_TYPE_NAMES: &[&str] = &["DRAM", "L1", "SYSTEM_MEMORY", "L1_SMALL", "TRACE"];

/// How a build lays out `Buffer`, which decides how [`crate::abi::BufferReader`] reads it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum Family {
    /// 0.65 – 0.77: fields read at validated offsets, size/type/device not exported.
    Legacy,
    /// 0.81+: `Buffer` is a pimpl over `BufferImpl`; everything has an exported accessor.
    Pimpl,
    Unknown,
}

impl Family {
    pub fn name(&self) -> &'static str {
        match self {
            Family::Legacy => "legacy-0.65-0.77",
            Family::Pimpl => "pimpl-0.81",
            Family::Unknown => "unknown",
        }
    }

    /// Pimpl iff `Buffer::size/buffer_type/device() const` are all exported; Legacy iff not
    /// and `Buffer::is_dram()` bytes prove the `+0x20` type offset; else Unknown.
    pub fn detect(pimpl_exports: bool, is_dram_bytes: Option<&[u8]>) -> Family {
        if pimpl_exports {
            Family::Pimpl
        } else if is_dram_bytes.and_then(crate::validate::is_dram_type_offset) == Some(LEGACY_TYPE_OFFSET as u8) {
            Family::Legacy
        } else {
            Family::Unknown
        }
    }
}

/// The accessors whose joint presence means [`Family::Pimpl`].
pub const PIMPL_MARKERS: [Accessor; 3] = [Accessor::BufferSize, Accessor::BufferType, Accessor::BufferDevice];

/// The per-family strategy for each `BufferFields` field (documentation and doctor output;
/// `abi::BufferReader` implements exactly this).
pub struct FieldStrategy {
    pub field: &'static str,
    pub legacy: &'static str,
    pub pimpl: &'static str,
}

pub const FIELD_STRATEGIES: &[FieldStrategy] = &[
    FieldStrategy {
        field: "allocated",
        legacy: "the byte Buffer::is_allocated() compares, when its code is proven a plain getter; else the call (exported, never throws)",
        pimpl: "the BufferImpl byte Buffer::is_allocated() compares, when all six accessors are proven plain getters; else the call",
    },
    FieldStrategy {
        field: "address",
        legacy: "u32 field Buffer::address() loads, when proven; else the call (throws unless allocated, so only after is_allocated())",
        pimpl: "u32 BufferImpl field, when proven; else Buffer::address() after is_allocated()",
    },
    FieldStrategy {
        field: "size",
        legacy: "u64 field +0x18 when the Buffer ctor is seen storing its size argument there; else num_pages()*page_size() (exact: the ctor rejects other sizes)",
        pimpl: "BufferImpl field Buffer::size() loads, when proven; else the call",
    },
    FieldStrategy {
        field: "type",
        legacy: "u32 field +0x20, proven by the Buffer::is_dram() bytes (and the ctor); else DRAM-or-unknown from is_dram()",
        pimpl: "BufferImpl field Buffer::buffer_type() loads, when proven; else the call",
    },
    FieldStrategy {
        field: "device",
        legacy: "field +0x10 proven by the ctor, trusted per read only if its vptr is Device's or MeshDevice's",
        pimpl: "BufferImpl field Buffer::device() loads, when proven; else the call",
    },
    FieldStrategy {
        field: "page_size",
        legacy: "field Buffer::page_size() loads, when proven; else the call",
        pimpl: "BufferImpl field Buffer::page_size() loads, when proven; else the call",
    },
    FieldStrategy {
        field: "unique_id",
        legacy: "not read: its offset moves between releases",
        pimpl: "Buffer::unique_id()",
    },
    FieldStrategy {
        field: "chip id",
        legacy: "the int Device's vtable slot 3 (IDevice::id()) loads, proven at load (MeshDevice::id() is a mesh id)",
        pimpl: "the int Device's vtable slot 3 (IDevice::id()) loads, proven at load",
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn demangle(s: &str) -> String {
        let sym = cpp_demangle::Symbol::new(s).expect(s);
        sym.demangle(&Default::default()).expect(s)
    }

    #[test]
    fn targets_are_indexed_by_discriminant() {
        assert_eq!(TARGETS.len(), Target::ALL.len());
        for (i, t) in Target::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
            assert_eq!(info(*t).target, *t);
        }
    }

    #[test]
    fn accessors_are_indexed_by_discriminant() {
        assert_eq!(ACCESSORS.len(), Accessor::ALL.len());
        for (i, a) in Accessor::ALL.iter().enumerate() {
            assert_eq!(*a as usize, i);
            assert_eq!(accessor_info(*a).accessor, *a);
        }
    }

    #[test]
    fn every_mangled_name_demangles_to_its_demangled_string() {
        for t in TARGETS {
            assert_eq!(demangle(t.mangled), t.demangled, "{:?}", t.target);
        }
        for a in ACCESSORS {
            assert_eq!(demangle(a.mangled), a.demangled, "{:?}", a.accessor);
        }
        assert_eq!(demangle(DEVICE_ID), DEVICE_ID_DEMANGLED);
        for c in LEGACY_BUFFER_CTORS {
            assert!(demangle(c).starts_with("tt::tt_metal::Buffer::Buffer(tt::tt_metal::IDevice*"));
        }
    }

    #[test]
    fn no_duplicate_names() {
        let mut seen = HashSet::new();
        for m in TARGETS.iter().map(|t| t.mangled).chain(ACCESSORS.iter().map(|a| a.mangled)) {
            assert!(seen.insert(m), "duplicate {m}");
        }
    }

    #[test]
    fn ctor_prefixes_match_full_names() {
        for c in LEGACY_BUFFER_CTORS {
            assert!(LEGACY_BUFFER_CTOR_PREFIXES.iter().any(|p| c.starts_with(p)));
        }
    }

    #[test]
    fn family_detection_rule() {
        let legacy = [0xf7, 0x47, 0x20, 0xfb, 0xff, 0xff, 0xff, 0x0f, 0x94, 0xc0, 0xc3];
        assert_eq!(Family::detect(true, None), Family::Pimpl);
        assert_eq!(Family::detect(false, Some(&legacy)), Family::Legacy);
        let mut moved = legacy;
        moved[2] = 0x28;
        assert_eq!(Family::detect(false, Some(&moved)), Family::Unknown);
        assert_eq!(Family::detect(false, None), Family::Unknown);
        assert_eq!(Family::Legacy.name(), "legacy-0.65-0.77");
        assert_eq!(Family::Pimpl.name(), "pimpl-0.81");
        assert_eq!(Family::Unknown.name(), "unknown");
    }
}
