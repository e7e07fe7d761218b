//! Recording one hooked call: read what tt-metal passed, reserve a sequence
//! number, mirror the change in the live table, publish the event.
//! No allocation, lock or syscall on these paths (mesh registration and
//! device close are cold and may do more).

use crate::devices::{chip_ref, chips_of};
use crate::thread;
use crate::tracer::Tracer;
use ttalloc_ring::event::*;
use crate::dfb;
use ttalloc_ring::live::{cb_key, dfb_key, LiveEntry};
use ttalloc_ring::{BufferType, EventBody, Kind, Problem, Region};

/// Reserves a sequence number (or, if the ring is full, the position the
/// event would have had, so the live table still orders it), runs `mirror`
/// with it, then publishes the event.
#[inline]
fn emit(region: &Region, mut body: EventBody, mirror: impl FnOnce(u64)) {
    body.ts_ns = region.stamp();
    body.tid = thread::tid();
    match region.reserve() {
        Ok(r) => {
            mirror(r.seq);
            r.publish(&body);
        }
        Err(_) => mirror(region.next_seq()),
    }
}

/// Reads a buffer into an event body; unreadable fields are unknown and counted.
unsafe fn buffer_body(t: &Tracer, region: &Region, kind: Kind, buffer: usize) -> EventBody {
    let f = t.reader.read(buffer);
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
        chip: chip_ref(t, region, f.device),
        kind: kind as u8,
        btype: f.btype.unwrap_or(BufferType::Unknown as u8),
        flags,
        ..Default::default()
    }
}

/// `track_allocate(buffer)`: the buffer has its address (or was hooked).
pub unsafe fn alloc(t: &Tracer, buffer: usize) {
    let Some(region) = t.region() else { return };
    thread::clear_pending(buffer as u64);
    let mut body = buffer_body(t, region, Kind::Alloc, buffer);
    if thread::take_hooked(buffer as u64) {
        body.flags |= FLAG_HOOKED;
    }
    emit(region, body, |seq| {
        if !region.live_insert(buffer as u64, &LiveEntry::from_event(seq, &body)) {
            region.count_problem(Problem::LiveTableFull);
        }
    });
}

/// `track_deallocate(buffer)`: called before the memory is released.
pub unsafe fn free(t: &Tracer, buffer: usize) {
    let Some(region) = t.region() else { return };
    let body = buffer_body(t, region, Kind::Free, buffer);
    emit(region, body, |_| {
        region.live_remove(buffer as u64, buffer as u64);
    });
}

/// `hook_allocate(buffer)` returned `hooked`: remember the verdict for the
/// `track_allocate` that follows on this thread; remember a non-hooked
/// request until it is confirmed, so an allocator exception can be reported.
pub unsafe fn hook_verdict(t: &Tracer, buffer: usize, hooked: bool) {
    if hooked {
        thread::set_hooked(buffer as u64);
        return;
    }
    let Some(region) = t.region() else { return };
    let f = t.reader.read(buffer);
    let chip = chip_ref(t, region, f.device);
    let previous = thread::set_pending((buffer as u64, f.size.unwrap_or(0), f.btype.unwrap_or(255), chip));
    report_failed(region, previous);
}

/// An allocation that was requested but never confirmed by `track_allocate`:
/// the allocator threw (out of memory). Reported when the thread next
/// allocates, or at exit.
fn report_failed(region: &Region, pending: (u64, u64, u8, i32)) {
    let (buffer, size, btype, chip) = pending;
    if buffer == 0 {
        return;
    }
    let body = EventBody { object: buffer, size, btype, chip, kind: Kind::AllocFailed as u8, aux: 1, ..Default::default() };
    emit(region, body, |_| {});
}

pub fn flush_pending(t: &Tracer) {
    if let Some(region) = t.region() {
        report_failed(region, thread::set_pending((0, 0, 0, 0)));
    }
}

/// `track_allocate_cb(ranges, address, size, globally_allocated, device)`.
pub unsafe fn cb_alloc(t: &Tracer, address: u64, size: u64, global: bool, device: usize) {
    let Some(region) = t.region() else { return };
    let program = thread::current_program();
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
    emit(region, body, |seq| {
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
pub unsafe fn cb_free(t: &Tracer, device: usize) {
    let Some(region) = t.region() else { return };
    let program = thread::current_program();
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
    emit(region, body, |_| {
        region.live_remove(cb_key(program, device as u64), program);
    });
}

/// `~ProgramImpl` on builds where nothing calls `track_deallocate_cb`.
pub unsafe fn program_end(t: &Tracer, program: usize) {
    let Some(region) = t.region() else { return };
    let body = EventBody { object: program as u64, kind: Kind::ProgramEnd as u8, btype: BufferType::Cb as u8, ..Default::default() };
    emit(region, body, |_| {
        // Rare (program destruction on 0.65/0.68 builds): a scan is fine.
        region.live_remove_where(|e| e.kind == Kind::CbAlloc as u8 && e.object == program as u64);
    });
}

/// `CircularBufferAllocator::mark_address(address, size, …)`: one DFB of the
/// program being placed on this thread (once per address, see `dfb`).
pub unsafe fn dfb_alloc(t: &Tracer, address: u64, size: u64) {
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
    emit(region, body, |seq| {
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
pub unsafe fn dfb_program_end(t: &Tracer, program: usize) {
    let Some(device) = dfb::forget(program as u64) else { return };
    let Some(region) = t.region() else { return };
    let body = EventBody { object: program as u64, kind: Kind::ProgramEnd as u8, btype: BufferType::Cb as u8, ..Default::default() };
    emit(region, body, |_| {
        region.live_remove(dfb_key(program as u64, device), program as u64);
    });
}

/// `allocate_circular_buffers` unwound (L1/CB clash): say so in the trace.
pub unsafe fn cb_alloc_failed(t: &Tracer, program: usize, device: usize) {
    let Some(region) = t.region() else { return };
    let body = EventBody {
        object: program as u64,
        chip: chip_ref(t, region, device),
        kind: Kind::AllocFailed as u8,
        btype: BufferType::Cb as u8,
        aux: 2,
        ..Default::default()
    };
    emit(region, body, |_| {});
}

/// The chip field of a device about to close (computed before the close, while
/// a mesh can still list its chips).
pub unsafe fn close_ref(t: &Tracer, device: usize) -> Option<i32> {
    let region = t.region()?;
    Some(chip_ref(t, region, device))
}

/// `Device::close` / `MeshDevice::close` returned: whatever is still live on
/// those chips is released by the close.
pub unsafe fn device_closed(t: &Tracer, device: usize, chip: i32) {
    let Some(region) = t.region() else { return };
    let body = EventBody { object: device as u64, chip, kind: Kind::DeviceClose as u8, ..Default::default() };
    let chips = chips_of(region, chip);
    emit(region, body, |_| {
        region.live_remove_where(|e| e.chip == chip || chips.contains(&e.chip));
    });
    if let Some(slot) = mesh_slot_of_chip(chip) {
        region.retire_mesh(slot);
    }
}
