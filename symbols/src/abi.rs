//! Reading a `Buffer` and its device from inside a hook.
//!
//! `BufferReader::new` runs once at load: it resolves the library's own accessors, detects the
//! ABI family and *proves* every field offset from the library's machine code before trusting
//! it. The `read*` methods then run on the hot path: no allocation, no syscall, no panic.
//! A field that could not be proven is `None` — never a guess.
//!
//! Rules, per family (`catalog::FIELD_STRATEGIES`):
//! * exported accessors are preferred (they are tt-metal's own code, correct by
//!   construction); on pimpl builds (0.81+) all of them, and when all six the hot path needs
//!   are proven plain `BufferImpl` getters (`validate::field_getter`), their two loads are
//!   done directly instead of six calls per pair (`FieldLayout`).
//! * legacy (0.65–0.77) `type` is the u32 at the offset `Buffer::is_dram()` tests; `device`
//!   and `size` are at the offsets the `Buffer` ctor stores its `IDevice*`/size arguments to.
//!   Size uses the field (one load, no u32 `num_pages()` truncation) when the ctor proves it,
//!   else `num_pages() * page_size()`, which is exact because the ctor rejects sizes that are
//!   not a multiple of the page size. `is_allocated()`, `address()` and `page_size()` are
//!   loaded directly when proven plain getters of the `Buffer`, as on 0.81. A device
//!   pointer is returned only if its vptr is
//!   `Device`'s or `MeshDevice`'s, checked on every read.
//! * `address()` throws (TT_ASSERT) on an unallocated buffer: it is only called after the
//!   non-throwing `is_allocated()` said yes.

use std::ffi::c_void;

use crate::catalog::{self, accessor_info, Accessor, Family};
use crate::runtime::LoadedLib;
use crate::validate::{self, FieldGetter};

// Anything that could in principle throw is `C-unwind`: a C++ exception must unwind through
// our frames rather than abort the process.
type GetBool = unsafe extern "C-unwind" fn(usize) -> bool;
type GetU32 = unsafe extern "C-unwind" fn(usize) -> u32;
type GetU64 = unsafe extern "C-unwind" fn(usize) -> u64;
type GetPtr = unsafe extern "C-unwind" fn(usize) -> usize;
/// `std::vector<IDevice*> MeshDevice::get_devices() const`: sret in rdi, `this` in rsi.
type GetDevices = unsafe extern "C-unwind" fn(*mut [usize; 3], usize);
type OpDelete = unsafe extern "C-unwind" fn(*mut c_void);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferFields {
    /// `IDevice*` (a `Device` or a `MeshDevice`); 0 when unknown.
    pub device: usize,
    pub size: Option<u64>,
    /// `BufferType`: DRAM=0, L1=1, SYSTEM_MEMORY=2, L1_SMALL=3, TRACE=4.
    pub btype: Option<u8>,
    /// Only read when `allocated == Some(true)`.
    pub address: Option<u64>,
    pub page_size: Option<u64>,
    pub allocated: Option<bool>,
}

/// Where the accessors the hot path needs read their fields, proven from their code
/// (`validate::field_getter`): `via: Some(o)` (0.81+) — `*(this + o)` is the
/// `BufferImpl*` and the offsets are into it; `via: None` (0.65–0.77) — into the `Buffer`.
#[derive(Clone, Copy, Debug)]
struct FieldLayout {
    via: Option<u32>,
    /// device, size, type: the offsets the six accessors prove (pimpl), or the offsets the
    /// legacy ctor and `is_dram()` prove.
    request: Option<RequestFields>,
    /// `is_allocated()` is "the byte at `status` equals `allocated`".
    status: u32,
    allocated: u8,
    /// u32, as `Buffer::address()` returns it.
    address: u32,
    page_size: u32,
}

#[derive(Clone, Copy, Debug)]
struct RequestFields {
    device: u32,
    size: u32,
    /// u32 `BufferType`.
    btype: u32,
    /// Legacy: the ctor proved where the device pointer is stored, not what every `Buffer`
    /// holds there, so it counts only if its vptr is `Device`'s or `MeshDevice`'s.
    check_device: bool,
}

impl FieldLayout {
    /// The object holding the fields of a live `Buffer*` (`None` if its `BufferImpl*` is
    /// null, as after a move).
    #[inline(always)]
    unsafe fn fields_of(&self, buf: usize) -> Option<usize> {
        let Some(via) = self.via else { return Some(buf) };
        let imp = std::ptr::read_unaligned(buf.wrapping_add(via as usize) as *const usize);
        (imp != 0).then_some(imp)
    }
    #[inline(always)]
    unsafe fn u64_at(&self, imp: usize, off: u32) -> u64 {
        std::ptr::read_unaligned(imp.wrapping_add(off as usize) as *const u64)
    }
    #[inline(always)]
    unsafe fn u32_at(&self, imp: usize, off: u32) -> u32 {
        std::ptr::read_unaligned(imp.wrapping_add(off as usize) as *const u32)
    }
    #[inline(always)]
    unsafe fn u8_at(&self, imp: usize, off: u32) -> u8 {
        *(imp.wrapping_add(off as usize) as *const u8)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    Device,
    Mesh,
    Unknown,
}

/// Reads `Buffer`s of one loaded library. Plain function pointers and offsets: `Send + Sync`.
#[derive(Clone, Debug)]
pub struct BufferReader {
    family: Family,
    is_allocated: Option<GetBool>,
    address: Option<GetU32>,
    page_size: Option<GetU64>,
    num_pages: Option<GetU32>,
    size_fn: Option<GetU64>,
    type_fn: Option<GetU32>,
    device_fn: Option<GetPtr>,
    unique_id_fn: Option<GetU64>,
    type_off: Option<usize>,
    size_off: Option<usize>,
    device_off: Option<usize>,
    /// Where the fields live, when the accessors the hot path needs are proven plain
    /// getters (`validate::field_getter`): all six on pimpl builds, the three placement
    /// ones on legacy builds. Those fields are then loaded, not called for.
    direct: Option<FieldLayout>,
    /// `&_ZTV… + 16`; 0 when the vtable is not exported.
    device_vptr: usize,
    mesh_vptr: usize,
    /// Validated `Device::id()` (vtable slot 3 of `Device`).
    /// Offset of the `int` that `Device::id()` returns (proven: slot 3 is `mov off(%rdi),%eax; ret`).
    device_id_off: Option<usize>,
    get_devices: Option<GetDevices>,
    op_delete: Option<OpDelete>,
}

impl BufferReader {
    /// Resolve and validate everything; the notes say what was proven and what degraded.
    pub fn new(lib: &LoadedLib) -> (BufferReader, Vec<String>) {
        let mut notes = Vec::new();
        let sym = |a: Accessor| lib.sym(accessor_info(a).mangled);
        // SAFETY (all transmutes below): the address is the library's own definition of the
        // named function, whose C++ signature matches the Rust type.
        macro_rules! func {
            ($a:expr, $t:ty) => {
                sym($a).map(|p| unsafe { std::mem::transmute::<usize, $t>(p) })
            };
        }
        let pimpl_exports = catalog::PIMPL_MARKERS.iter().all(|a| sym(*a).is_some());
        let is_dram_bytes = sym(Accessor::BufferIsDram).and_then(|p| unsafe { lib.code_bytes(p, 16) });
        let family = Family::detect(pimpl_exports, is_dram_bytes);
        notes.push(format!("ABI family {} ({})", family.name(), lib.path.display()));

        let vptr = |a: Accessor| sym(a).map_or(0, |v| v + catalog::VTABLE_ADDRESS_POINT);
        let mut r = BufferReader {
            family,
            is_allocated: func!(Accessor::BufferIsAllocated, GetBool),
            address: func!(Accessor::BufferAddress, GetU32),
            page_size: func!(Accessor::BufferPageSize, GetU64),
            num_pages: func!(Accessor::BufferNumPages, GetU32),
            size_fn: func!(Accessor::BufferSize, GetU64),
            type_fn: func!(Accessor::BufferType, GetU32),
            device_fn: func!(Accessor::BufferDevice, GetPtr),
            unique_id_fn: func!(Accessor::BufferUniqueId, GetU64),
            type_off: None,
            size_off: None,
            device_off: None,
            direct: None,
            device_vptr: vptr(Accessor::DeviceVtable),
            mesh_vptr: vptr(Accessor::MeshDeviceVtable),
            device_id_off: None,
            get_devices: func!(Accessor::MeshGetDevices, GetDevices),
            // Imported, not defined: use what the library's own references bind to.
            op_delete: lib
                .bound(accessor_info(Accessor::OperatorDelete).mangled)
                .map(|p| unsafe { std::mem::transmute::<usize, OpDelete>(p) }),
        };
        if r.is_allocated.is_none() {
            notes.push("Buffer::is_allocated() missing: address and allocation state unknown".into());
        }

        if family != Family::Pimpl {
            r.prove_legacy_offsets(lib, is_dram_bytes, &mut notes);
        }
        r.prove_getters(lib, &mut notes);
        r.describe_fields(&mut notes);
        r.prove_device_id(lib, &mut notes);
        match (r.get_devices.is_some(), r.op_delete.is_some()) {
            (true, true) => notes.push("mesh expansion: MeshDevice::get_devices() + operator delete".into()),
            _ => notes.push("mesh expansion unavailable: MeshDevice::get_devices() or operator delete missing".into()),
        }
        (r, notes)
    }

    fn prove_legacy_offsets(&mut self, lib: &LoadedLib, is_dram_bytes: Option<&[u8]>, notes: &mut Vec<String>) {
        let type_off = is_dram_bytes.and_then(validate::is_dram_type_offset).map(usize::from);
        match type_off {
            Some(o) => notes.push(format!("type: Buffer::is_dram() tests the u32 at +{o:#x}")),
            None => notes.push("type: Buffer::is_dram() does not match the legacy pattern: type unknown".into()),
        }
        let ctor = catalog::LEGACY_BUFFER_CTORS.iter().find_map(|n| lib.sym(n)).or_else(|| {
            // The trailing ctor parameters may change between releases: search by prefix.
            let found = crate::elf::find_symbols_by_prefix(&lib.path, catalog::LEGACY_BUFFER_CTOR_PREFIXES).ok()?;
            found.iter().map(|(_, v)| lib.base + *v as usize).find(|a| lib.is_code(*a))
        });
        let stores =
            ctor.and_then(|a| unsafe { lib.code_bytes(a, 256) }.map(|b| validate::ctor_arg_stores(b, a as u64)));
        let Some(stores) = stores else {
            notes.push("device/size: no legacy Buffer ctor found: offsets unproven, device unknown".into());
            self.type_off = type_off;
            return;
        };
        let ctor_type = stores.offset_of(catalog::CTOR_ARG_TYPE, 4).map(|o| o as usize);
        match (type_off, ctor_type) {
            (Some(a), Some(b)) if a != b => {
                notes.push(format!(
                    "type: is_dram() says +{a:#x} but the ctor stores the type at +{b:#x}: type unknown"
                ));
            }
            _ => self.type_off = type_off,
        }
        self.device_off = stores.offset_of(catalog::CTOR_ARG_DEVICE, 8).map(|o| o as usize);
        self.size_off = stores.offset_of(catalog::CTOR_ARG_SIZE, 8).map(|o| o as usize);
        match self.device_off {
            Some(o) => {
                notes.push(format!("device: the Buffer ctor stores its IDevice* at +{o:#x}; each read checks the vptr"))
            }
            None => notes.push("device: the Buffer ctor's IDevice* store was not found: device unknown".into()),
        }
        match self.size_off {
            Some(o) => notes.push(format!("size: the Buffer ctor stores its size at +{o:#x}: read directly")),
            None => notes.push("size: ctor store not found: num_pages() * page_size()".into()),
        }
    }

    /// Accessors proven plain getters → direct loads instead of calls per event. Pimpl
    /// builds: all six over one `BufferImpl*`, or none. Legacy builds: the three placement
    /// getters on the `Buffer` itself, plus the three ctor-proven request offsets when all
    /// are proven. Anything unproven keeps its accessor call (or its offset, out of line).
    fn prove_getters(&mut self, lib: &LoadedLib, notes: &mut Vec<String>) {
        let getter = |a: Accessor| {
            let at = lib.sym(accessor_info(a).mangled)?;
            // SAFETY: `at` is a function of the mapped library; code_bytes bounds the read.
            validate::field_getter(unsafe { lib.code_bytes(at, 32) }?, at as u64)
        };
        use FieldGetter::{ByteEquals, Load};
        let placement = [Accessor::BufferIsAllocated, Accessor::BufferAddress, Accessor::BufferPageSize].map(getter);
        let (via, status, allocated, address, page_size) = match placement {
            [Some(ByteEquals { via, off: status, value }), Some(Load { via: v1, off: address, width: 4 }), Some(Load { via: v2, off: page_size, width: 8 })]
                if v1 == via && v2 == via && via.is_some() == (self.family == Family::Pimpl) =>
            {
                (via, status, value, address, page_size)
            }
            _ => {
                notes.push(format!("placement accessors are not plain getters ({placement:?}): read through the accessors"));
                return;
            }
        };
        let request = if self.family == Family::Pimpl {
            match [Accessor::BufferDevice, Accessor::BufferSize, Accessor::BufferType].map(getter) {
                [Some(Load { via: v0, off: device, width: 8 }), Some(Load { via: v1, off: size, width: 8 }), Some(Load { via: v2, off: btype, width: 4 })]
                    if [v0, v1, v2].iter().all(|v| *v == via) =>
                {
                    Some(RequestFields { device, size, btype, check_device: false })
                }
                other => {
                    notes.push(format!("pimpl: the accessors are not all plain BufferImpl getters ({other:?}): every field is read through its accessor"));
                    return;
                }
            }
        } else {
            let no_fns = self.size_fn.is_none() && self.type_fn.is_none() && self.device_fn.is_none();
            match (self.device_off, self.size_off, self.type_off) {
                (Some(device), Some(size), Some(btype)) if no_fns => Some(RequestFields {
                    device: device as u32,
                    size: size as u32,
                    btype: btype as u32,
                    check_device: true,
                }),
                _ => None,
            }
        };
        let l = FieldLayout { via, request, status, allocated, address, page_size };
        match (l.via, l.request) {
            (Some(v), Some(r)) => notes.push(format!(
                "pimpl: BufferImpl* at +{v:#x}; device +{:#x}, size +{:#x}, type +{:#x}, allocated iff byte +{:#x} == {}, address +{:#x}, page size +{:#x} (proven from the six accessors): read directly",
                r.device, r.size, r.btype, l.status, l.allocated, l.address, l.page_size
            )),
            (None, Some(r)) => notes.push(format!(
                "legacy: device +{:#x}, size +{:#x}, type +{:#x} (the offsets above); allocated iff byte +{:#x} == {}, address +{:#x}, page size +{:#x} (proven from the three accessors): all read directly",
                r.device, r.size, r.btype, l.status, l.allocated, l.address, l.page_size
            )),
            _ => notes.push(format!(
                "placement: allocated iff byte +{:#x} == {}, address +{:#x}, page size +{:#x} (proven from the three accessors): read directly",
                l.status, l.allocated, l.address, l.page_size
            )),
        }
        self.direct = Some(l);
    }

    /// How many of the six Buffer fields the hot path needs are read with direct loads.
    pub fn direct_fields(&self) -> usize {
        let placement = if self.direct.is_some() { 3 } else { 0 };
        let request = match self.direct.and_then(|l| l.request) {
            Some(_) => 3,
            None => [(self.size_fn.is_none(), self.size_off), (self.type_fn.is_none(), self.type_off), (self.device_fn.is_none(), self.device_off)]
                .iter()
                .filter(|(no_fn, off)| *no_fn && off.is_some())
                .count(),
        };
        placement + request
    }

    fn describe_fields(&self, notes: &mut Vec<String>) {
        let have = |b: bool| if b { "yes" } else { "NO" };
        notes.push(format!(
            "fields: size {} type {} device {} page_size {} address {}",
            have(
                self.size_fn.is_some()
                    || self.size_off.is_some()
                    || (self.num_pages.is_some() && self.page_size.is_some())
            ),
            have(self.type_fn.is_some() || self.type_off.is_some()),
            have(
                self.device_fn.is_some()
                    || (self.device_off.is_some() && (self.device_vptr != 0 || self.mesh_vptr != 0))
            ),
            have(self.page_size.is_some()),
            have(self.address.is_some() && self.is_allocated.is_some()),
        ));
    }

    /// `IDevice::id()` is slot 3; `Device::id()` is hidden, so we prove from the mapped code
    /// that the slot holds a side-effect-free `int` getter before ever calling it.
    fn prove_device_id(&mut self, lib: &LoadedLib, notes: &mut Vec<String>) {
        if self.device_vptr == 0 {
            notes.push("chip id unavailable: Device vtable not exported".into());
            return;
        }
        // SAFETY: the vtable lies in the library's relocated, read-only data.
        let f = unsafe { *((self.device_vptr + 8 * catalog::IDEVICE_ID_SLOT) as *const usize) };
        let getter =
            lib.is_code(f).then(|| unsafe { lib.code_bytes(f, 8) }).flatten().and_then(validate::int_getter_offset);
        match getter {
            Some(off) => {
                // Read directly: the same load, without an indirect call per event.
                self.device_id_off = Some(off as usize);
                notes.push(format!("chip id: Device vtable slot 3 is an int getter of +{off:#x} (Device::id()): read directly"));
            }
            None => notes.push("chip id unavailable: Device vtable slot 3 is not a plain getter".into()),
        }
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn has_chip_id(&self) -> bool {
        self.device_id_off.is_some()
    }

    pub fn can_expand_mesh(&self) -> bool {
        self.get_devices.is_some() && self.op_delete.is_some() && self.mesh_vptr != 0
    }

    /// Read every field of the `Buffer` at `buf` that can be read safely. Hot path: no
    /// allocation, no syscall, no panicking arithmetic.
    ///
    /// # Safety
    /// `buf` must be a live `tt::tt_metal::Buffer*` of the library this reader was built for.
    pub unsafe fn read(&self, buf: usize) -> BufferFields {
        let mut f = self.read_request(buf);
        self.read_placement(buf, &mut f);
        f
    }

    /// The fields fixed when the buffer is requested (before the allocator
    /// runs): size, type, device. `hook_allocate` reads these; `track_allocate`
    /// then needs only [`BufferReader::read_placement`].
    ///
    /// # Safety
    /// As for [`BufferReader::read`].
    #[inline]
    pub unsafe fn read_request(&self, buf: usize) -> BufferFields {
        let mut f = BufferFields::default();
        if buf == 0 {
            return f;
        }
        // The direct loads inline into the hook; the accessor calls stay out of line.
        let Some((l, r)) = self.direct.as_ref().and_then(|l| Some((l, l.request.as_ref()?))) else { return self.call_request(buf) };
        if let Some(imp) = l.fields_of(buf) {
            f.size = Some(l.u64_at(imp, r.size));
            f.btype = u8::try_from(l.u32_at(imp, r.btype)).ok();
            f.device = l.u64_at(imp, r.device) as usize;
            if r.check_device {
                f.device = self.known_device(f.device);
            }
        }
        f
    }

    /// [`BufferReader::read_request`] through the accessors (or legacy offsets).
    #[inline(never)]
    unsafe fn call_request(&self, buf: usize) -> BufferFields {
        let mut f = BufferFields::default();
        f.size = if let Some(g) = self.size_fn {
            Some(g(buf))
        } else if let Some(o) = self.size_off {
            Some(std::ptr::read_unaligned(buf.wrapping_add(o) as *const u64))
        } else {
            match (self.num_pages, self.page_size.map(|g| g(buf))) {
                (Some(n), Some(ps)) if ps != 0 => u64::from(n(buf)).checked_mul(ps),
                _ => None,
            }
        };
        let raw_type = if let Some(g) = self.type_fn {
            Some(g(buf))
        } else {
            self.type_off.map(|o| std::ptr::read_unaligned(buf.wrapping_add(o) as *const u32))
        };
        f.btype = raw_type.and_then(|t| u8::try_from(t).ok());
        f.device = if let Some(g) = self.device_fn {
            g(buf)
        } else if let Some(o) = self.device_off {
            self.known_device(std::ptr::read_unaligned(buf.wrapping_add(o) as *const usize))
        } else {
            0
        };
        f
    }

    /// The fields the allocator sets: whether allocated, address, page size.
    ///
    /// # Safety
    /// As for [`BufferReader::read`].
    #[inline]
    pub unsafe fn read_placement(&self, buf: usize, f: &mut BufferFields) {
        if buf == 0 {
            return;
        }
        let Some(l) = &self.direct else { return self.call_placement(buf, f) };
        if let Some(imp) = l.fields_of(buf) {
            let allocated = l.u8_at(imp, l.status) == l.allocated;
            f.allocated = Some(allocated);
            if allocated {
                f.address = Some(u64::from(l.u32_at(imp, l.address)));
            }
            f.page_size = Some(l.u64_at(imp, l.page_size));
        }
    }

    /// [`BufferReader::read_placement`] through the accessors.
    #[inline(never)]
    unsafe fn call_placement(&self, buf: usize, f: &mut BufferFields) {
        f.allocated = self.is_allocated.map(|g| g(buf));
        if f.allocated == Some(true) {
            f.address = self.address.map(|g| u64::from(g(buf)));
        }
        f.page_size = self.page_size.map(|g| g(buf));
    }

    /// `Buffer::unique_id()` where exported (0.81+); its legacy offset moves, so never read.
    ///
    /// # Safety
    /// As for [`BufferReader::read`].
    pub unsafe fn unique_id(&self, buf: usize) -> Option<u64> {
        if buf == 0 {
            return None;
        }
        self.unique_id_fn.map(|g| g(buf))
    }

    /// `dev` if its vptr is `Device`'s or `MeshDevice`'s, else 0 (a legacy device field is
    /// proven by the ctor's store, not by what every `Buffer` holds there).
    ///
    /// # Safety
    /// As for [`BufferReader::device_kind`].
    #[inline]
    unsafe fn known_device(&self, dev: usize) -> usize {
        if self.device_kind(dev) == DeviceKind::Unknown {
            0
        } else {
            dev
        }
    }

    /// Classify an `IDevice*` by its vptr.
    ///
    /// # Safety
    /// `dev` must be 0 or point to readable memory (an `IDevice*` from tt-metal).
    #[inline]
    pub unsafe fn device_kind(&self, dev: usize) -> DeviceKind {
        if dev == 0 || dev & (std::mem::align_of::<usize>() - 1) != 0 {
            return DeviceKind::Unknown;
        }
        let vptr = *(dev as *const usize);
        if vptr != 0 && vptr == self.device_vptr {
            DeviceKind::Device
        } else if vptr != 0 && vptr == self.mesh_vptr {
            DeviceKind::Mesh
        } else {
            DeviceKind::Unknown
        }
    }

    /// Chip id of a physical `Device` (virtual `id()`, slot 3). `None` for a `MeshDevice`:
    /// its `id()` is a mesh id, not a chip.
    ///
    /// # Safety
    /// `dev` must be 0 or a live `IDevice*` of this library.
    #[inline]
    pub unsafe fn chip_id(&self, dev: usize) -> Option<i32> {
        if self.device_kind(dev) != DeviceKind::Device {
            return None;
        }
        // The vptr equals Device's, so slot 3 is exactly the getter proven at
        // load, and this is the load it does.
        self.device_id_off.map(|off| std::ptr::read_unaligned(dev.wrapping_add(off) as *const i32))
    }

    /// Copy the physical devices of a `MeshDevice` into `out`; returns how many the mesh has
    /// (entries beyond `out.len()` are dropped). Calls into tt-metal, which allocates the
    /// vector; we free it with the library's `operator delete`. Once per mesh, not per event.
    ///
    /// # Safety
    /// `mesh` must be 0 or a live `IDevice*` of this library.
    pub unsafe fn mesh_chip_devices(&self, mesh: usize, out: &mut [usize]) -> Option<usize> {
        if self.device_kind(mesh) != DeviceKind::Mesh {
            return None;
        }
        let (get, del) = (self.get_devices?, self.op_delete?);
        let mut v = [0usize; 3]; // begin, end, end_of_storage
        get(&mut v, mesh);
        let [begin, end, cap] = v;
        if begin == 0 {
            return Some(0);
        }
        if end < begin || cap < end || (end - begin) % std::mem::size_of::<usize>() != 0 {
            return None; // not a vector layout we understand: leak rather than free garbage
        }
        let n = (end - begin) / std::mem::size_of::<usize>();
        let devices = std::slice::from_raw_parts(begin as *const usize, n);
        let k = n.min(out.len());
        out[..k].copy_from_slice(&devices[..k]);
        del(begin as *mut c_void);
        Some(n)
    }
}
