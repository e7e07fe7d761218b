//! The interposed symbols. Each hook: find the original, record (as recorder
//! code: never re-entered, panics caught and counted), forward. Forwarding is
//! never inside `catch_unwind`: C++ exceptions thrown by tt-metal pass through
//! these `C-unwind` frames to tt-metal's caller untouched.

use crate::dfb;
use crate::record;
use crate::thread::{self, State};
use crate::tracer::{self, Tracer};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use ttalloc_ring::Problem;
use ttalloc_symbols::catalog::{self, Target};

/// Originals found by `dlsym(RTLD_NEXT)` when the tracer could not be built
/// (only possible when tt-metal is in the global scope, e.g. a C++ program).
static FALLBACK: [AtomicUsize; Target::ALL.len()] = [const { AtomicUsize::new(0) }; Target::ALL.len()];

#[cold]
fn fallback(target: Target) -> usize {
    let slot = &FALLBACK[target as usize];
    let cached = slot.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    let name = std::ffi::CString::new(catalog::info(target).mangled).unwrap_or_default();
    let f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
    slot.store(f, Ordering::Relaxed);
    f
}

#[inline]
fn original(t: Option<&Tracer>, target: Target) -> usize {
    match t.map(|t| t.original(target)) {
        Some(f) if f != 0 => f,
        _ => fallback(target),
    }
}

/// Runs recorder code for `t`: panics caught and counted; skipped and
/// counted on re-entry (a signal handler calling tt-metal mid-hook).
#[inline]
fn recorder(t: Option<&'static Tracer>, f: impl FnOnce(&'static Tracer, &State)) {
    let Some(t) = t else { return };
    let problem = match thread::with(|s| s.as_recorder(|| catch_unwind(AssertUnwindSafe(|| f(t, s))))) {
        Some(Ok(())) => return,
        Some(Err(_)) => Problem::Panic,
        None => Problem::Reentry,
    };
    if let Some(r) = t.region() {
        r.count_problem(problem);
    }
}

/// No original to forward to: nothing sane can be done but count it.
#[cold]
fn missing(t: Option<&Tracer>, target: Target) {
    if let Some(r) = t.and_then(|t| t.region()) {
        r.count_problem(Problem::NoOriginal);
    }
    tracer::warn_once(&format!("cannot forward {}: original not found", catalog::info(target).demangled));
}

type Fn1 = unsafe extern "C-unwind" fn(usize);
type Fn2 = unsafe extern "C-unwind" fn(usize, usize);
type Fn1B = unsafe extern "C-unwind" fn(usize) -> u8;
type Fn2B = unsafe extern "C-unwind" fn(usize, usize) -> u8;
type FnCb = unsafe extern "C-unwind" fn(usize, usize, u64, u64, bool, usize);
type FnMark = unsafe extern "C-unwind" fn(usize, u64, u64, u64);

macro_rules! forward {
    ($t:expr, $target:expr, $ty:ty, $default:expr, ($($arg:expr),*)) => {{
        let f = original($t, $target);
        if f == 0 {
            missing($t, $target);
            $default
        } else {
            let f: $ty = std::mem::transmute(f);
            f($($arg),*)
        }
    }};
}

/// `GraphTracker::track_allocate(const Buffer*)`
#[no_mangle]
pub unsafe extern "C-unwind" fn _ZN2tt8tt_metal12GraphTracker14track_allocateEPKNS0_6BufferE(this: usize, buffer: usize) {
    let t = tracer::get();
    recorder(t, |t, s| record::alloc(t, s, buffer));
    forward!(t, Target::TrackAllocate, Fn2, (), (this, buffer))
}

/// `GraphTracker::track_deallocate(Buffer*)`: first thing in `deallocate_impl`.
#[no_mangle]
pub unsafe extern "C-unwind" fn _ZN2tt8tt_metal12GraphTracker16track_deallocateEPNS0_6BufferE(this: usize, buffer: usize) {
    let t = tracer::get();
    recorder(t, |t, s| record::free(t, s, buffer));
    forward!(t, Target::TrackDeallocate, Fn2, (), (this, buffer))
}

/// `GraphTracker::hook_allocate(const Buffer*) -> bool`: true = graph capture, no memory.
#[no_mangle]
pub unsafe extern "C-unwind" fn _ZN2tt8tt_metal12GraphTracker13hook_allocateEPKNS0_6BufferE(this: usize, buffer: usize) -> bool {
    let t = tracer::get();
    let hooked = forward!(t, Target::HookAllocate, Fn2B, 0, (this, buffer)) != 0;
    recorder(t, |t, s| record::hook_verdict(t, s, buffer, hooked));
    hooked
}

// `GraphTracker::hook_deallocate(Buffer*)` is deliberately not interposed:
// a graph-capture free needs nothing recorded (its allocation carries the
// hooked flag), and forwarding through it cost ≈ 2 ns per event
// (hooks-only bench: 15.6 → 13.6 ns/event without it; docs/performance.md).

/// `GraphTracker::track_allocate_cb(const CoreRangeSet&, u64 addr, u64 size, bool globally_allocated, const IDevice*)`
#[no_mangle]
pub unsafe extern "C-unwind" fn _ZN2tt8tt_metal12GraphTracker17track_allocate_cbERKNS0_12CoreRangeSetEmmbPKNS0_7IDeviceE(
    this: usize,
    core_ranges: usize,
    address: u64,
    size: u64,
    globally_allocated: bool,
    device: usize,
) {
    let t = tracer::get();
    recorder(t, |t, s| record::cb_alloc(t, s, address, size, globally_allocated, device));
    forward!(t, Target::TrackAllocateCb, FnCb, (), (this, core_ranges, address, size, globally_allocated, device))
}

/// `GraphTracker::track_deallocate_cb(const IDevice*)`: all CBs of the current program on `device`.
#[no_mangle]
pub unsafe extern "C-unwind" fn _ZN2tt8tt_metal12GraphTracker19track_deallocate_cbEPKNS0_7IDeviceE(this: usize, device: usize) {
    let t = tracer::get();
    recorder(t, |t, s| record::cb_free(t, s, device));
    forward!(t, Target::TrackDeallocateCb, Fn2, (), (this, device))
}

/// Pops the current program when a program-scoped original returns or unwinds;
/// on unwind from CB placement, records why (an L1/CB clash).
struct ProgramScope {
    t: Option<&'static Tracer>,
    program: usize,
    device: usize,
    placing: bool,
    done: bool,
}

impl ProgramScope {
    fn enter(t: Option<&'static Tracer>, program: usize, device: usize, placing: bool) -> Self {
        thread::with(|s| s.push_program(program as u64));
        ProgramScope { t, program, device, placing, done: false }
    }
}

impl Drop for ProgramScope {
    fn drop(&mut self) {
        thread::with(|s| s.pop_program());
        if self.placing && !self.done {
            let (program, device) = (self.program, self.device);
            recorder(self.t, |t, s| unsafe { record::cb_alloc_failed(t, s, program, device) });
        }
    }
}

/// `detail::ProgramImpl::allocate_circular_buffers(const IDevice*)`: throws on an L1/CB clash.
#[no_mangle]
pub unsafe extern "C-unwind" fn _ZN2tt8tt_metal6detail11ProgramImpl25allocate_circular_buffersEPKNS0_7IDeviceE(program: usize, device: usize) {
    let t = tracer::get();
    let mut scope = ProgramScope::enter(t, program, device, true);
    forward!(t, Target::AllocateCircularBuffers, Fn2, (), (program, device));
    scope.done = true;
}

/// `detail::ProgramImpl::deallocate_circular_buffers()` (0.71+): calls `track_deallocate_cb` per device.
#[no_mangle]
pub unsafe extern "C-unwind" fn _ZN2tt8tt_metal6detail11ProgramImpl27deallocate_circular_buffersEv(program: usize) {
    let t = tracer::get();
    let mut scope = ProgramScope::enter(t, program, 0, false);
    forward!(t, Target::DeallocateCircularBuffers, Fn1, (), (program));
    scope.done = true;
}

unsafe fn program_destructor(target: Target, program: usize) {
    let t = tracer::get();
    if thread::with(|s| s.program_active(program as u64)) {
        // D1 calling D2 for the same object: already handled one level up.
        return forward!(t, target, Fn1, (), (program));
    }
    if t.is_some_and(|t| t.cb_free_at_program_end) {
        recorder(t, |t, s| record::program_end(t, s, program));
    }
    let mut scope = ProgramScope::enter(t, program, 0, false);
    forward!(t, target, Fn1, (), (program));
    scope.done = true;
    drop(scope);
    recorder(t, |t, s| record::dfb_program_end(t, s, program));
}

/// `detail::ProgramImpl::~ProgramImpl()` (complete object).
#[no_mangle]
pub unsafe extern "C-unwind" fn _ZN2tt8tt_metal6detail11ProgramImplD1Ev(program: usize) {
    program_destructor(Target::ProgramImplD1, program)
}

/// `detail::ProgramImpl::~ProgramImpl()` (base object).
#[no_mangle]
pub unsafe extern "C-unwind" fn _ZN2tt8tt_metal6detail11ProgramImplD2Ev(program: usize) {
    program_destructor(Target::ProgramImplD2, program)
}

unsafe fn close(target: Target, device: usize) -> bool {
    let t = tracer::get();
    // Resolve chips before the close: a closed mesh may no longer list them.
    let mut chip = None;
    recorder(t, |t, _| chip = record::close_ref(t, device));
    let ok = forward!(t, target, Fn1B, 0, (device)) != 0;
    if let Some(chip) = chip {
        recorder(t, |t, s| record::device_closed(t, s, device, chip));
    }
    ok
}

/// `Device::close()`: buffers still live on the chip never see `track_deallocate`.
#[no_mangle]
pub unsafe extern "C-unwind" fn _ZN2tt8tt_metal6Device5closeEv(device: usize) -> bool {
    close(Target::DeviceClose, device)
}

/// `distributed::MeshDevice::close()`.
#[no_mangle]
pub unsafe extern "C-unwind" fn _ZN2tt8tt_metal11distributed10MeshDevice5closeEv(device: usize) -> bool {
    close(Target::MeshDeviceClose, device)
}

/// `detail::ProgramImpl::allocate_dataflow_buffers(const IDevice*)` (0.71+):
/// places the program's DFBs through `mark_address`; throws on an L1 clash.
#[no_mangle]
pub unsafe extern "C-unwind" fn _ZN2tt8tt_metal6detail11ProgramImpl25allocate_dataflow_buffersEPKNS0_7IDeviceE(
    program: usize,
    device: usize,
) {
    let t = tracer::get();
    let mut scope = ProgramScope::enter(t, program, device, true);
    let _placement = dfb::Placement::enter(program as u64, device as u64);
    forward!(t, Target::AllocateDataflowBuffers, Fn2, (), (program, device));
    scope.done = true;
}

/// `detail::ProgramImpl::CircularBufferAllocator::mark_address(u64 address, u64 size, u64 base)`.
#[no_mangle]
pub unsafe extern "C-unwind" fn _ZN2tt8tt_metal6detail11ProgramImpl23CircularBufferAllocator12mark_addressEmmm(
    allocator: usize,
    address: u64,
    size: u64,
    base: u64,
) {
    let t = tracer::get();
    recorder(t, |t, s| record::dfb_alloc(t, s, address, size));
    forward!(t, Target::DfbMarkAddress, FnMark, (), (allocator, address, size, base))
}
