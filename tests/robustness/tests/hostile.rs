//! Hand-made hostile traces: wrong magic, absurd lengths and counts, huge
//! indices, deep nesting, self-referencing records. Each one is refused with
//! a one-line error at the right offset, or read within a memory bound that
//! does not depend on what the file claims. The bound is measured with a
//! counting allocator around each read.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use ttalloc_trace::*;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size(), Relaxed) + l.size();
        PEAK.fetch_max(now, Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        System.dealloc(p, l)
    }
}

#[global_allocator]
static A: Counting = Counting;

/// One measurement at a time (the test harness runs tests on threads).
static MEASURE: Mutex<()> = Mutex::new(());

/// Reads `data` into the model; returns the error (if any) and the peak heap growth.
fn read(data: &[u8]) -> (Option<TraceError>, usize, Model) {
    let _one = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let mut rd = TraceReader::new(Cursor::new(data));
    let mut model = Model::new();
    let err = loop {
        match rd.next_record() {
            Ok(Some(r)) => model.apply(&r, &mut |_| {}),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    (err, PEAK.load(Relaxed) - base, model)
}

const MIB: usize = 1 << 20;

fn header() -> TraceHeader {
    TraceHeader {
        magic: TRACE_MAGIC.into(),
        format_version: TRACE_FORMAT_VERSION,
        tool_version: "hostile".into(),
        host: "h".into(),
        collector_pid: 1,
        started_real_ns: 2,
        command: vec![],
    }
}

fn trace(records: &[Record]) -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new(), &header()).unwrap();
    for r in records {
        w.write(r).unwrap();
    }
    w.into_inner()
}

fn process(p: u32) -> Record {
    Record::Process(Box::new(ProcessInfo { p, pid: 1, start_ticks: 0, exe: "x".into(), created_mono_ns: 0, created_real_ns: 0, shim_info: "{}".into(), attach: "from-start".into() }))
}

fn refused(data: &[u8], offset: u64, what: &str) {
    let (e, peak, _) = read(data);
    let e = e.unwrap_or_else(|| panic!("accepted; expected an error about {what}"));
    assert!(!e.message.contains('\n'), "{e}");
    assert_eq!(e.offset, offset, "{e}");
    assert!(e.message.contains(what), "{e} (expected {what:?})");
    assert!(peak < 4 * MIB, "{peak} bytes allocated to refuse it");
}

#[test]
fn wrong_magic() {
    let mut h = header();
    h.magic = "not-ttalloc".into();
    let bytes = TraceWriter::new(Vec::new(), &h).unwrap().into_inner();
    refused(&bytes, 0, "not a ttalloc trace");
}

#[test]
fn huge_lengths_are_refused_before_allocating() {
    let base = trace(&[]);
    let at = base.len() as u64;
    // [1, bin32 of 4 GiB]
    refused(&[&base[..], &[0x92, 0x01, 0xc6, 0xff, 0xff, 0xff, 0xff]].concat(), at, "byte body");
    // An array of 2^32 - 1 fields.
    refused(&[&base[..], &[0xdd, 0xff, 0xff, 0xff, 0xff]].concat(), at, "array of");
    // [21 resync, p 0, seq 0, str32 of 4 GiB], after process 0 was announced.
    let announced = trace(&[process(0)]);
    let at = announced.len() as u64;
    refused(&[&announced[..], &[0x94, 21, 0, 0, 0xdb, 0xff, 0xff, 0xff, 0xff]].concat(), at, "reason too long");
}

#[test]
fn absurd_process_indices_cost_nothing() {
    let mut bytes = trace(&[process(0)]);
    let at = bytes.len() as u64;
    // [20 gap, p = 2^20 - 1, 0, 0]: a process nobody announced.
    bytes.extend_from_slice(&[0x94, 20, 0xce, 0x00, 0x0f, 0xff, 0xff, 0, 0]);
    refused(&bytes, at, "process 1048575 was never announced");
    // Announcing it out of order is refused too.
    let mut bytes = trace(&[process(0)]);
    let at = bytes.len() as u64;
    bytes.extend_from_slice(&trace(&[process(7)])[trace(&[]).len()..]);
    refused(&bytes, at, "process 7 announced before process 1");
}

#[test]
fn a_mesh_cannot_multiply_memory() {
    // One mesh record of ~200k chips (under the 1 MiB body limit), then
    // 2000 allocations on it: the model must not hold 2000 copies.
    let chips: Vec<i32> = (0..200_000).collect();
    let mut records = vec![process(0), Record::Mesh(MeshInfo { p: 0, slot: 0, mesh: 1, chips })];
    for i in 0..2000u64 {
        records.push(Record::Alloc(AllocRec { ev: Ev { p: 0, seq: i, ts_ns: i, tid: 1 }, chip: -2, btype: 0, flags: 0, object: 0x1000 + i, address: 0, size: 64, page_size: 0 }));
    }
    let bytes = trace(&records);
    let at = trace(&records[..1]).len() as u64;
    refused(&bytes, at, "a mesh of 200000 chips (at most 64)");
    // The largest mesh a ring can describe, used 2000 times, stays small.
    records[1] = Record::Mesh(MeshInfo { p: 0, slot: 0, mesh: 1, chips: (0..64).collect() });
    let bytes = trace(&records);
    let (e, peak, model) = read(&bytes);
    assert!(e.is_none(), "{e:?}");
    assert_eq!(model.live().count(), 2000);
    assert!(peak < 8 * MIB, "{} KiB for a {} KiB trace", peak / 1024, bytes.len() / 1024);
}

#[test]
fn deep_nesting_in_a_named_record() {
    // A header whose map has an unknown key holding 500k nested arrays: a
    // recursive skip would overflow the stack.
    let mut body = vec![0x81, 0xa1, b'z'];
    body.extend(std::iter::repeat(0x91).take(500_000));
    body.push(0xc0);
    let mut bytes = vec![0x92, 0x00, 0xc6];
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&body);
    let (e, _, _) = read(&bytes);
    let e = e.expect("refused");
    assert_eq!(e.offset, 0, "{e}");
}

#[test]
fn records_that_point_at_themselves() {
    // Frees of themselves, of the future, of another process; a device close
    // on a mesh whose chips name the mesh itself; CB frees of unknown programs.
    let ev = |seq| Ev { p: 0, seq, ts_ns: seq, tid: 1 };
    let records = vec![
        process(0),
        Record::Mesh(MeshInfo { p: 0, slot: 0, mesh: 1, chips: vec![-2, -2, 0] }),
        Record::Alloc(AllocRec { ev: ev(5), chip: -2, btype: 0, flags: 0, object: 1, address: 0, size: 64, page_size: 0 }),
        Record::Free { ev: ev(6), alloc_seq: 6 },
        Record::Free { ev: ev(7), alloc_seq: u64::MAX },
        Record::CbFree { ev: ev(8), chip: -2, program: 0 },
        Record::DeviceClose { ev: ev(9), chip: -2 },
        Record::ResyncDrop { p: 0, alloc_seq: 5 },
        Record::Free { ev: ev(10), alloc_seq: 5 },
    ];
    let (e, peak, model) = read(&trace(&records));
    assert!(e.is_none(), "{e:?}");
    assert!(peak < 4 * MIB);
    assert_eq!(model.live().count(), 0);
}

#[test]
fn absurd_sizes_and_counts_saturate() {
    // Sizes and loss counts near 2^64: totals stop at the top instead of
    // wrapping to small numbers (release) or panicking (debug builds).
    let ev = |seq| Ev { p: 0, seq, ts_ns: seq, tid: 1 };
    let huge = u64::MAX - 1;
    let mut records = vec![process(0)];
    for i in 0..3 {
        records.push(Record::Alloc(AllocRec { ev: ev(i), chip: 0, btype: 0, flags: 0, object: 1 + i, address: 0, size: huge, page_size: 0 }));
        records.push(Record::CbAlloc(CbRec { ev: ev(10 + i), chip: 0, program: 7, address: 0, size: huge, flags: 0 }));
        records.push(Record::Gap { p: 0, after_seq: i, lost: huge });
    }
    records.push(Record::CbFree { ev: ev(20), chip: 0, program: 7 });
    let (e, _, model) = read(&trace(&records));
    assert!(e.is_none(), "{e:?}");
    assert_eq!(model.usage[&(0, ttalloc_ring::BufferType::Dram)].current, u64::MAX);
    assert_eq!(model.usage[&(0, ttalloc_ring::BufferType::Cb)].peak, u64::MAX);
    assert_eq!(model.dropped, u64::MAX);
}
