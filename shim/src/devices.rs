//! Turning an `IDevice*` into the chip field of an event: a chip id for a
//! `Device`, a mesh reference for a `MeshDevice` (its chips are published once
//! in the region's mesh table, so the shim's cost does not grow with chips).

use crate::tracer::Tracer;
use ttalloc_ring::event::{chip_for_mesh_slot, CHIP_UNKNOWN};
use ttalloc_ring::{Problem, Region, MAX_MESH_CHIPS};
use ttalloc_symbols::abi::DeviceKind;

/// The chip field for `dev`.
///
/// # Safety
/// `dev` is the `IDevice*` tt-metal passed to a hooked function (or 0).
pub unsafe fn chip_ref(t: &Tracer, region: &Region, dev: usize) -> i32 {
    if dev == 0 {
        return CHIP_UNKNOWN;
    }
    match t.reader.device_kind(dev) {
        DeviceKind::Device => t.reader.chip_id(dev).unwrap_or(CHIP_UNKNOWN),
        DeviceKind::Mesh => mesh_ref(t, region, dev),
        DeviceKind::Unknown => {
            region.count_problem(Problem::UnknownDevice);
            CHIP_UNKNOWN
        }
    }
}

#[cold]
unsafe fn register(t: &Tracer, region: &Region, mesh: usize) -> i32 {
    let mut devs = [0usize; MAX_MESH_CHIPS];
    let n = match t.reader.mesh_chip_devices(mesh, &mut devs) {
        Some(n) if n > 0 && n <= MAX_MESH_CHIPS => n,
        _ => {
            region.count_problem(Problem::MeshTableFull);
            return CHIP_UNKNOWN;
        }
    };
    let mut chips = [CHIP_UNKNOWN; MAX_MESH_CHIPS];
    for i in 0..n {
        chips[i] = t.reader.chip_id(devs[i]).unwrap_or(CHIP_UNKNOWN);
    }
    match region.register_mesh(mesh as u64, &chips[..n]) {
        Some(slot) => chip_for_mesh_slot(slot),
        None => {
            region.count_problem(Problem::MeshTableFull);
            CHIP_UNKNOWN
        }
    }
}

#[inline]
unsafe fn mesh_ref(t: &Tracer, region: &Region, mesh: usize) -> i32 {
    match region.find_mesh(mesh as u64) {
        Some(slot) => chip_for_mesh_slot(slot),
        None => register(t, region, mesh),
    }
}

/// The chips an event's chip field stands for (for device-close cleanup).
pub fn chips_of(region: &Region, chip: i32) -> Vec<i32> {
    match ttalloc_ring::event::mesh_slot_of_chip(chip) {
        Some(slot) => region.mesh_chips(slot),
        None => vec![chip],
    }
}
