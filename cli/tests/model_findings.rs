//! Checks of `ttalloc_trace::Model` behaviour the CLI relies on.

use ttalloc_ring::BufferType;
use ttalloc_trace::*;

fn ev(seq: u64) -> Ev {
    Ev { p: 0, seq, ts_ns: 100 + seq, tid: 1 }
}

fn run(recs: &[Record]) -> Model {
    let mut m = Model::new();
    for r in recs {
        m.apply(r, &mut |_| {});
    }
    m
}

/// A resync that re-announces an allocation the model already holds live
/// (same seq, `FLAG_RESYNC`) replaces the live entry but adds its bytes to the
/// usage a second time; the later free subtracts them once, so the chip shows
/// memory in use forever.
#[test]
fn resync_of_a_known_allocation_is_not_counted_twice() {
    let a = |seq, flags| Record::Alloc(AllocRec { ev: ev(seq), chip: 0, btype: BufferType::Dram as u8, flags, object: 0x10, address: 0x1000, size: 100, page_size: 0 });
    let m = run(&[
        a(0, 0),
        Record::Resync { p: 0, at_seq: 5, reason: "restart-resync".into() },
        a(0, FLAG_RESYNC),
        Record::Free { ev: ev(6), alloc_seq: 0 },
    ]);
    let u = m.usage[&(0, BufferType::Dram)];
    assert_eq!(m.live().count(), 0);
    assert_eq!((u.current, u.live_count, u.peak), (0, 0, 100), "{u:?}");
}
