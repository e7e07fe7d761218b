//! Recording one hooked call: read what tt-metal passed, reserve a sequence
//! number, mirror the change in the live table, publish the event.
//! No allocation, lock or syscall on these paths (mesh registration and
//! device close are cold and may do more).

use crate::devices::{chip_ref, chips_of};
use crate::thread::{Pending, State};
use crate::tracer::Tracer;
use ttalloc_ring::event::*;
use crate::dfb;
use ttalloc_ring::live::{cb_key, dfb_key, LiveEntry};
use ttalloc_ring::{BufferType, EventBody, Kind, Problem, Region};
use ttalloc_symbols::abi::BufferFields;

/// Reserves a sequence number (or, if the ring is full, the position the
/// event would have had, so the live table still orders it), runs `mirror`
/// with it (which may complete the body), then publishes the event.
#[inline]
fn emit(region: &Region, tid: u32, mut body: EventBody, mirror: impl FnOnce(u64, &mut EventBody)) {
    body.ts_ns = region.stamp();
    body.tid = tid;
    let reserved = region.reserve();
    let seq = match &reserved {
        Ok(r) => r.seq,
        Err(_) => region.next_seq(),
    };
    // One call site, so `mirror` inlines whatever it holds.
    mirror(seq, &mut body);
    if let Ok(r) = reserved {
        r.publish(&body);
    }
}

/// Fills an event body from buffer fields (`chip`: the chip field of
/// `f.device`); unreadable fields are unknown and counted.
fn buffer_body(region: &Region, kind: Kind, buffer: usize, f: &BufferFields, chip: i32) -> EventBody {
    let mut flags = 0;
    if f.size.is_none() || f.btype.is_none() || f.device == 0 {
        flags |= FLAG_PARTIAL;
        region.count_problem(Problem::UnreadableField);
    }
    EventBody {
        object: buffer as u64,
        address: f.address.unwrap_or(0),
        size: f.size.unwrap_or(0),
        page_size: f.page_size.unwrap_or(0).min(u32::MAX as u64) as u32,
        chip,
        kind: kind as u8,
        btype: f.btype.unwrap_or(BufferType::Unknown as u8),
        flags,
        ..Default::default()
    }
}

/// `track_allocate(buffer)`: the buffer has its address (or was hooked).
/// Size, type and device were usually read by `hook_allocate` just before.
pub unsafe fn alloc(t: &Tracer, s: &State, buffer: usize) {
    let Some(region) = t.region() else { return };
    let (mut f, chip) = match s.take_pending(buffer as u64) {
        Some(p) => {
            let known = p.btype != UNREAD;
            let f = BufferFields {
                device: p.device as usize,
                size: known.then_some(p.size),
                btype: known.then_some(p.btype),
                ..Default::default()
            };
            (f, p.chip)
        }
        None => {
            let f = t.reader.read_request(buffer);
            (f, chip_ref(t, region, f.device))
        }
    };
    t.reader.read_placement(buffer, &mut f);
    let mut body = buffer_body(region, Kind::Alloc, buffer, &f, chip);
    if s.take_hooked(buffer as u64) {
        body.flags |= FLAG_HOOKED;
    }
    emit(region, s.tid(), body, |seq, body| {
        if !region.live_insert(buffer as u64, &LiveEntry::from_event(seq, body)) {
            region.count_problem(Problem::LiveTableFull);
        }
    });
}

/// `track_deallocate(buffer)`: called before the memory is released. The
/// collector pairs it with its allocation by `Buffer*`; the buffer itself is
/// read only when the shim does not know it (for the unknown-free report).
pub unsafe fn free(t: &Tracer, s: &State, buffer: usize) {
    let Some(region) = t.region() else { return };
    let body = EventBody { object: buffer as u64, kind: Kind::Free as u8, ..Default::default() };
    emit(region, s.tid(), body, |_, body| {
        if region.live_remove(buffer as u64, buffer as u64).is_none() {
            describe_unknown_free(t, region, buffer, body);
        }
    });
}

/// A free of a buffer the shim does not hold: read the buffer, so the report can say
/// what it was. Rare, and out of line so the free path stays small enough to inline.
#[cold]
#[inline(never)]
unsafe fn describe_unknown_free(t: &Tracer, region: &Region, buffer: usize, body: &mut EventBody) {
    let f = t.reader.read(buffer);
    let (ts_ns, tid) = (body.ts_ns, body.tid);
    *body = buffer_body(region, Kind::Free, buffer, &f, chip_ref(t, region, f.device));
    (body.ts_ns, body.tid) = (ts_ns, tid);
}

/// `btype` of a pending request whose type could not be read.
const UNREAD: u8 = u8::MAX;

/// `hook_allocate(buffer)` returned `hooked`: remember the verdict for the
/// `track_allocate` that follows on this thread; remember a non-hooked
/// request (size, type, device) until it is confirmed, so an allocator
/// exception can be reported and `track_allocate` need not read them again.
pub unsafe fn hook_verdict(t: &Tracer, s: &State, buffer: usize, hooked: bool) {
    if hooked {
        s.set_hooked(buffer as u64);
        return;
    }
    let Some(region) = t.region() else { return };
    let f = t.reader.read_request(buffer);
    let (size, btype) = match (f.size, f.btype) {
        (Some(s), Some(b)) if b != UNREAD => (s, b),
        _ => (0, UNREAD),
    };
    let chip = chip_ref(t, region, f.device);
    let previous = s.set_pending(Pending { buffer: buffer as u64, size, btype, chip, device: f.device as u64 });
    if previous.buffer != 0 {
        report_failed(region, s.tid(), previous);
    }
}

/// An allocation that was requested but never confirmed by `track_allocate`:
/// the allocator threw (out of memory). Reported when the thread next
/// allocates, or at exit.
#[cold]
fn report_failed(region: &Region, tid: u32, p: Pending) {
    if p.buffer == 0 {
        return;
    }
    let body = EventBody { object: p.buffer, size: p.size, btype: p.btype, chip: p.chip, kind: Kind::AllocFailed as u8, aux: 1, ..Default::default() };
    emit(region, tid, body, |_, _| {});
}

pub fn flush_pending(t: &Tracer, s: &State) {
    if let Some(region) = t.region() {
        report_failed(region, s.tid(), s.set_pending(Pending::NONE));
    }
}

/// `track_allocate_cb(ranges, address, size, globally_allocated, device)`.
pub unsafe fn cb_alloc(t: &Tracer, s: &State, address: u64, size: u64, global: bool, device: usize) {
    let Some(region) = t.region() else { return };
    let program = s.current_program();
    let body = EventBody {
        object: program,
        address,
        size,
        chip: chip_ref(t, region, device),
        kind: Kind::CbAlloc as u8,
        btype: BufferType::Cb as u8,
        flags: if global { FLAG_GLOBAL_CB } else { 0 },
        ..Default::default()
    };
    // The live table keeps one aggregate per program × device (bytes of
    // non-global CBs, lowest address), enough to resync exact totals.
    let key = cb_key(program, device as u64);
    let bytes = if global { 0 } else { size };
    emit(region, s.tid(), body, |seq, _| {
        let updated = region.live_update(key, program, |e| {
            e.size += bytes;
            e.address = e.address.min(address);
            e.seq_last = seq;
        });
        if !updated {
            let mut e = LiveEntry::from_event(seq, &body);
            e.size = bytes;
            if !region.live_insert(key, &e) {
                region.count_problem(Problem::LiveTableFull);
            }
        }
    });
}

/// `track_deallocate_cb(device)`: every CB of the current program on `device`.
pub unsafe fn cb_free(t: &Tracer, s: &State, device: usize) {
    let Some(region) = t.region() else { return };
    let program = s.current_program();
    if program == 0 {
        region.count_problem(Problem::CbFreeWithoutProgram);
    }
    let body = EventBody {
        object: program,
        chip: chip_ref(t, region, device),
        kind: Kind::CbFree as u8,
        btype: BufferType::Cb as u8,
        ..Default::default()
    };
    emit(region, s.tid(), body, |_, _| {
        region.live_remove(cb_key(program, device as u64), program);
    });
}

/// `~ProgramImpl` on builds where nothing calls `track_deallocate_cb`.
pub unsafe fn program_end(t: &Tracer, s: &State, program: usize) {
    let Some(region) = t.region() else { return };
    let body = EventBody { object: program as u64, kind: Kind::ProgramEnd as u8, btype: BufferType::Cb as u8, ..Default::default() };
    emit(region, s.tid(), body, |_, _| {
        // Rare (program destruction on 0.65/0.68 builds): a scan is fine.
        region.live_remove_where(|e| e.kind == Kind::CbAlloc as u8 && e.object == program as u64);
    });
}

/// `CircularBufferAllocator::mark_address(address, size, …)`: one DFB of the
/// program being placed on this thread (once per address, see `dfb`).
pub unsafe fn dfb_alloc(t: &Tracer, s: &State, address: u64, size: u64) {
    let Some(region) = t.region() else { return };
    let (program, device) = match dfb::mark(address) {
        dfb::Mark::New { program, device } => (program, device),
        dfb::Mark::Repeat | dfb::Mark::Outside => return,
        dfb::Mark::Unattributed => return region.count_problem(Problem::DfbUnattributed),
    };
    if !dfb::remember(program, device) {
        // Could not be released at program destruction: better unrecorded.
        return region.count_problem(Problem::DfbUnattributed);
    }
    let body = EventBody {
        object: program,
        address,
        size,
        chip: chip_ref(t, region, device as usize),
        kind: Kind::DfbAlloc as u8,
        btype: BufferType::Cb as u8,
        ..Default::default()
    };
    let key = dfb_key(program, device);
    emit(region, s.tid(), body, |seq, _| {
        let updated = region.live_update(key, program, |e| {
            e.size += size;
            e.address = e.address.min(address);
            e.seq_last = seq;
        });
        if !updated && !region.live_insert(key, &LiveEntry::from_event(seq, &body)) {
            region.count_problem(Problem::LiveTableFull);
        }
    });
}

/// `~ProgramImpl` returned for a program holding DFBs: nothing in tt-metal
/// releases them explicitly, their L1 ends with the program.
pub unsafe fn dfb_program_end(t: &Tracer, s: &State, program: usize) {
    let Some(device) = dfb::forget(program as u64) else { return };
    let Some(region) = t.region() else { return };
    let body = EventBody { object: program as u64, kind: Kind::ProgramEnd as u8, btype: BufferType::Cb as u8, ..Default::default() };
    emit(region, s.tid(), body, |_, _| {
        region.live_remove(dfb_key(program as u64, device), program as u64);
    });
}

/// `allocate_circular_buffers` unwound (L1/CB clash): say so in the trace.
pub unsafe fn cb_alloc_failed(t: &Tracer, s: &State, program: usize, device: usize) {
    let Some(region) = t.region() else { return };
    let body = EventBody {
        object: program as u64,
        chip: chip_ref(t, region, device),
        kind: Kind::AllocFailed as u8,
        btype: BufferType::Cb as u8,
        aux: 2,
        ..Default::default()
    };
    emit(region, s.tid(), body, |_, _| {});
}

/// The chip field of a device about to close (computed before the close, while
/// a mesh can still list its chips).
pub unsafe fn close_ref(t: &Tracer, device: usize) -> Option<i32> {
    let region = t.region()?;
    Some(chip_ref(t, region, device))
}

/// `Device::close` / `MeshDevice::close` returned: whatever is still live on
/// those chips is released by the close.
pub unsafe fn device_closed(t: &Tracer, s: &State, device: usize, chip: i32) {
    let Some(region) = t.region() else { return };
    let body = EventBody { object: device as u64, chip, kind: Kind::DeviceClose as u8, ..Default::default() };
    let chips = chips_of(region, chip);
    emit(region, s.tid(), body, |_, _| {
        region.live_remove_where(|e| e.chip == chip || chips.contains(&e.chip));
    });
    if let Some(slot) = mesh_slot_of_chip(chip) {
        region.retire_mesh(slot);
    }
}
