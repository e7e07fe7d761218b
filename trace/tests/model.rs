use ttalloc_ring::event::{FLAG_GLOBAL_CB, FLAG_HOOKED};
use ttalloc_ring::BufferType;
use ttalloc_trace::*;

fn ev(seq: u64) -> Ev {
    Ev { p: 0, seq, ts_ns: seq * 10, tid: 1 }
}

fn alloc(seq: u64, chip: i32, btype: BufferType, size: u64, flags: u16) -> Record {
    Record::Alloc(AllocRec { ev: ev(seq), chip, btype: btype as u8, flags, object: 0x1000 + seq, address: 0x100 * seq, size, page_size: 2048 })
}

fn run(recs: &[Record]) -> (Model, Vec<ChipEvent>) {
    let mut m = Model::new();
    let mut out = vec![];
    for r in recs {
        m.apply(r, &mut |e| out.push(*e));
    }
    (m, out)
}

fn mesh(n: i32) -> Record {
    Record::Mesh(MeshInfo { p: 0, slot: 0, mesh: 0xabc, chips: (0..n).collect() })
}

#[test]
fn mesh_allocation_is_one_per_chip_and_its_free_releases_all() {
    let (m, out) = run(&[mesh(8), alloc(0, -2, BufferType::Dram, 4 << 20, 0), Record::Free { ev: ev(1), alloc_seq: 0 }]);
    assert_eq!(out.len(), 16);
    for chip in 0..8 {
        let u = m.usage[&(chip, BufferType::Dram)];
        assert_eq!((u.peak, u.current, u.allocs, u.frees), (4 << 20, 0, 1, 1));
    }
    assert_eq!(m.unknown_frees, 0);
}

#[test]
fn hooked_allocations_are_paired_but_use_no_bytes() {
    let (m, out) = run(&[alloc(0, 0, BufferType::L1, 4096, FLAG_HOOKED), Record::Free { ev: ev(1), alloc_seq: 0 }]);
    let u = m.usage[&(0, BufferType::L1)];
    assert_eq!((u.peak, u.allocs, u.frees, u.hooked_allocs), (0, 1, 1, 1));
    assert!(out.iter().all(|e| e.hooked));
}

#[test]
fn cb_usage_is_the_largest_live_program_not_the_sum() {
    let cb = |seq, program, size, flags| Record::CbAlloc(CbRec { ev: ev(seq), chip: 0, program, address: 0x1000, size, flags });
    let (m, _) = run(&[
        cb(0, 0xA, 1000, 0),
        cb(1, 0xA, 500, 0),
        cb(2, 0xB, 1200, 0),
        cb(3, 0xB, 9999, FLAG_GLOBAL_CB),
    ]);
    let u = m.usage[&(0, BufferType::Cb)];
    assert_eq!((u.current, u.peak), (1500, 1500));
    let (m, _) = run(&[
        cb(0, 0xA, 1000, 0),
        cb(1, 0xA, 500, 0),
        cb(2, 0xB, 1200, 0),
        Record::CbFree { ev: ev(3), chip: 0, program: 0xA },
    ]);
    let u = m.usage[&(0, BufferType::Cb)];
    assert_eq!((u.current, u.peak, u.frees), (1200, 1500, 2));
    let (m, _) = run(&[cb(0, 0xA, 1000, 0), Record::ProgramEnd { ev: ev(1), program: 0xA }]);
    assert_eq!(m.usage[&(0, BufferType::Cb)].current, 0);
}

#[test]
fn device_close_releases_what_is_left_on_its_chips_only() {
    let (m, out) = run(&[
        mesh(2),
        alloc(0, -2, BufferType::Dram, 100, 0),
        alloc(1, 0, BufferType::L1, 10, 0),
        alloc(2, 5, BufferType::L1, 10, 0),
        Record::DeviceClose { ev: ev(3), chip: 0 },
    ]);
    let released: Vec<_> = out.iter().filter(|e| e.kind == ChipKind::CloseRelease).map(|e| (e.chip, e.id)).collect();
    assert_eq!(released, vec![(0, 0), (0, 1)]);
    assert_eq!(m.usage[&(1, BufferType::Dram)].current, 100);
    assert_eq!(m.usage[&(0, BufferType::Dram)].close_released, 1);
    assert_eq!(m.live().count(), 2);
}

/// A mesh allocation outlives closes of some of its chips: each close takes
/// its chip off, the allocation reports the chips it is still on, and its
/// free releases exactly those; a second allocation on the same mesh, and one
/// on what is left of another, keep their own chips.
#[test]
fn a_mesh_allocation_keeps_the_chips_its_device_closes_left() {
    let (m, out) = run(&[
        mesh(4),
        alloc(0, -2, BufferType::Dram, 100, 0),
        alloc(1, -2, BufferType::L1, 10, 0),
        Record::DeviceClose { ev: ev(2), chip: 3 },
        Record::DeviceClose { ev: ev(3), chip: 1 },
        alloc(4, -2, BufferType::Dram, 7, 0),
    ]);
    let chips = |seq: u64| m.live().find(|(_, l)| l.seq == seq).map(|(_, l)| m.chips_of(l).to_vec());
    assert_eq!(chips(0), Some(vec![0, 2]));
    assert_eq!(chips(1), Some(vec![0, 2]));
    assert_eq!(chips(4), Some(vec![0, 1, 2, 3]), "the mesh itself still has its 4 chips");
    let closed: Vec<_> = out.iter().filter(|e| e.kind == ChipKind::CloseRelease).map(|e| (e.chip, e.id)).collect();
    assert_eq!(closed, vec![(3, 0), (3, 1), (1, 0), (1, 1)]);
    let mut recs = vec![Record::Free { ev: ev(5), alloc_seq: 0 }, Record::Free { ev: ev(6), alloc_seq: 4 }];
    let mut m = m;
    let mut freed = vec![];
    for r in recs.drain(..) {
        m.apply(&r, &mut |e| freed.push((e.chip, e.id)));
    }
    assert_eq!(freed, vec![(0, 0), (2, 0), (0, 4), (1, 4), (2, 4), (3, 4)]);
    for chip in 0..4 {
        assert_eq!(m.usage[&(chip, BufferType::Dram)].current, 0, "chip {chip}");
    }
    assert_eq!(m.live().count(), 1, "only the L1 buffer, on chips 0 and 2");
}

#[test]
fn unknown_frees_are_counted() {
    let (m, out) = run(&[Record::Free { ev: ev(5), alloc_seq: 1 }]);
    assert_eq!(m.unknown_frees, 1);
    assert_eq!(out[0].kind, ChipKind::UnknownFree);
}

#[test]
fn peak_records_when() {
    let (m, _) = run(&[
        alloc(0, 0, BufferType::Dram, 100, 0),
        alloc(1, 0, BufferType::Dram, 50, 0),
        Record::Free { ev: ev(2), alloc_seq: 0 },
        alloc(3, 0, BufferType::Dram, 60, 0),
    ]);
    let u = m.usage[&(0, BufferType::Dram)];
    assert_eq!((u.peak, u.peak_seq, u.current), (150, 1, 110));
}

/// A mesh program's CBs freed chip by chip (`track_deallocate_cb(device)`):
/// each free releases that chip only; the program's CBs stay live elsewhere
/// until their own free, and the CB usage per chip follows the largest
/// remaining program exactly (also with several programs on a chip).
#[test]
fn cb_free_per_chip_of_a_mesh_program_and_the_largest_remaining_program() {
    let cb = |seq, chip, program, size| Record::CbAlloc(CbRec { ev: ev(seq), chip, program, address: 0x1000, size, flags: 0 });
    let free = |seq, chip, program| Record::CbFree { ev: ev(seq), chip, program };
    let (m, out) = run(&[
        mesh(4),
        cb(0, -2, 0xA, 1000),
        cb(1, -2, 0xA, 500),
        cb(2, 1, 0xB, 1200),
        cb(3, 1, 0xC, 700),
        free(4, 0, 0xA),
        free(5, 1, 0xA),
    ]);
    assert_eq!(m.usage[&(0, BufferType::Cb)].current, 0);
    assert_eq!(m.usage[&(1, BufferType::Cb)].current, 1200, "0xB is now the largest on chip 1");
    assert_eq!(m.usage[&(1, BufferType::Cb)].peak, 1500);
    assert_eq!(m.usage[&(2, BufferType::Cb)].current, 1500);
    assert_eq!(out.iter().filter(|e| e.kind == ChipKind::CbFree).count(), 4);
    // Chips 2 and 3 still hold 0xA's two CBs: one ProgramEnd frees them.
    assert_eq!(m.live().count(), 4);
    let (m, _) = run(&[mesh(4), cb(0, -2, 0xA, 1000), cb(1, -2, 0xA, 500), cb(2, 1, 0xB, 1200), free(4, 0, 0xA), Record::ProgramEnd { ev: ev(5), program: 0xA }]);
    for chip in [0, 2, 3] {
        assert_eq!(m.usage[&(chip, BufferType::Cb)].current, 0, "chip {chip}");
    }
    assert_eq!(m.usage[&(1, BufferType::Cb)].current, 1200);
    assert_eq!(m.live().count(), 1);
}

/// A one-chip buffer's release goes straight to the usage it was counted in
/// (handles taken at acquire): interleaved keys and processes (so the
/// process-wide and per-process maps number their keys differently), new
/// keys appearing between an allocation and its free, and frees out of order
/// must each land on their own (chip, type) and (process, chip, type).
#[test]
fn releases_land_on_the_usage_their_allocation_raised() {
    let at = |p: u32, seq: u64, chip: i32, t: BufferType, size: u64| {
        Record::Alloc(AllocRec { ev: Ev { p, seq, ts_ns: seq, tid: 1 }, chip, btype: t as u8, flags: 0, object: 0x1000 + seq, address: 0, size, page_size: 0 })
    };
    let free = |p: u32, seq: u64, alloc_seq: u64| Record::Free { ev: Ev { p, seq, ts_ns: seq, tid: 1 }, alloc_seq };
    // (process, chip, type, size), seq = index.
    let allocs = [(1, 0, BufferType::Dram, 1000), (1, 3, BufferType::L1, 2000), (0, 3, BufferType::L1, 3000), (0, 7, BufferType::L1Small, 4000), (1, 7, BufferType::L1Small, 5000)];
    let mut recs: Vec<Record> = allocs.iter().enumerate().map(|(i, (p, c, t, s))| at(*p, i as u64, *c, *t, *s)).collect();
    // Freed out of order, with a new key first seen in between.
    recs.push(free(1, 10, 4));
    recs.push(at(0, 11, 9, BufferType::Trace, 5));
    for (n, i) in [2u64, 0, 3, 1].into_iter().enumerate() {
        recs.push(free(allocs[i as usize].0, 12 + n as u64, i));
    }
    let (m, _) = run(&recs);
    for (p, chip, t, size) in allocs {
        let u = m.proc_usage[&(p, chip, t)];
        assert_eq!((u.current, u.peak, u.allocs, u.frees, u.live_count), (0, size, 1, 1, 0), "process {p} chip {chip} {t:?}");
        let u = m.usage[&(chip, t)];
        assert_eq!((u.current, u.live_count), (0, 0), "chip {chip} {t:?}");
    }
    assert_eq!(m.usage[&(3, BufferType::L1)].peak, 5000);
    let u = m.usage[&(9, BufferType::Trace)];
    assert_eq!((u.current, u.allocs, u.frees, u.live_count), (5, 1, 0, 1));
}
