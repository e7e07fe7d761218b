#![allow(dead_code, clippy::manual_is_multiple_of)]
//! Golden traces built with the real writer, and a runner for the real binary.

pub mod trace_event;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use ttalloc_ring::event::FLAG_HOOKED;
use ttalloc_ring::BufferType;
use ttalloc_trace::*;

pub const MIB: u64 = 1 << 20;
pub const KIB: u64 = 1 << 10;

pub fn header() -> TraceHeader {
    TraceHeader {
        magic: TRACE_MAGIC.into(),
        format_version: TRACE_FORMAT_VERSION,
        tool_version: "test".into(),
        host: "testhost".into(),
        collector_pid: 1,
        started_real_ns: 2,
        command: vec!["python3".into(), "model.py".into()],
    }
}

pub fn ttalloc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ttalloc")).args(args).output().expect("run ttalloc")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn encode(records: &[Record]) -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new(), &header()).unwrap();
    for r in records {
        w.write(r).unwrap();
    }
    w.into_inner()
}

/// Byte offset at which each record starts (the header is at 0 and not listed).
pub fn offsets(records: &[Record]) -> Vec<u64> {
    let mut w = TraceWriter::new(Vec::new(), &header()).unwrap();
    let mut v = vec![];
    for r in records {
        v.push(w.bytes());
        w.write(r).unwrap();
    }
    v
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

pub const P0_T0: u64 = 1_000_000_000;

fn ev0(seq: u64) -> Ev {
    Ev { p: 0, seq, ts_ns: P0_T0 + seq * 1_000_000, tid: 4242 }
}
fn ev1(seq: u64, ts_ns: u64) -> Ev {
    Ev { p: 1, seq, ts_ns, tid: 777 }
}
#[allow(clippy::too_many_arguments)]
fn alloc(ev: Ev, chip: i32, t: BufferType, flags: u16, object: u64, address: u64, size: u64, page_size: u32) -> Record {
    Record::Alloc(AllocRec { ev, chip, btype: t as u8, flags, object, address, size, page_size })
}
fn cb(ev: Ev, program: u64, address: u64, size: u64) -> Record {
    Record::CbAlloc(CbRec { ev, chip: -2, program, address, size, flags: 0 })
}

/// The golden workload: two processes on the same 8-chip mesh.
///
/// * p0 (pid 100): a 4 MiB/chip DRAM buffer, a 2 MiB replicated one, CBs of two
///   programs (64+32 KiB and 128 KiB), a hooked 1 MiB L1 alloc, a 256 KiB L1
///   buffer on chip 0, a 1 MiB/chip DRAM buffer and a 16 KiB L1_SMALL one on
///   chip 3 that are only released by the device close, a gap of 2 events;
/// * p1 (pid 200): an 8 MiB/chip DRAM buffer while p0's are live, a 512 KiB
///   TRACE buffer on chip 5 it never frees, and one unknown free.
pub fn golden_records() -> Vec<Record> {
    let mesh = |p| Record::Mesh(MeshInfo { p, slot: 0, mesh: 0x5000 + p as u64, chips: (0..8).collect() });
    let proc_ = |p, pid, exe: &str| {
        Record::Process(Box::new(ProcessInfo { p, pid, start_ticks: 5, exe: exe.into(), created_mono_ns: 1, created_real_ns: 2, shim_info: "{}".into(), attach: "from-start".into() }))
    };
    vec![
        proc_(0, 100, "/usr/bin/python3"),
        mesh(0),
        proc_(1, 200, "/usr/bin/pytest"),
        mesh(1),
        alloc(ev0(0), -2, BufferType::Dram, 0, 0xB1, 0x100000, 4 * MIB, 2048),
        alloc(ev0(1), -2, BufferType::Dram, 0, 0xB2, 0x500000, 2 * MIB, 2048),
        alloc(ev1(0, 1_001_500_000), -2, BufferType::Dram, 0, 0xC7, 0x900000, 8 * MIB, 2048),
        cb(ev0(2), 0xA1, 0x10000, 64 * KIB),
        cb(ev0(3), 0xA1, 0x20000, 32 * KIB),
        cb(ev0(4), 0xA2, 0x10000, 128 * KIB),
        Record::Free { ev: ev1(1, 1_004_500_000), alloc_seq: 0 },
        alloc(ev0(5), 0, BufferType::L1, FLAG_HOOKED, 0xB3, 0x80000, MIB, 4096),
        alloc(ev0(6), 0, BufferType::L1, 0, 0xB4, 0x100000, 256 * KIB, 4096),
        Record::Free { ev: ev0(7), alloc_seq: 5 },
        Record::CbFree { ev: ev0(8), chip: -2, program: 0xA1 },
        Record::Free { ev: ev0(9), alloc_seq: 1 },
        alloc(ev0(10), -2, BufferType::Dram, 0, 0xB5, 0x700000, MIB, 2048),
        alloc(ev0(11), 3, BufferType::L1Small, 0, 0xB6, 0x8000, 16 * KIB, 2048),
        Record::Gap { p: 0, after_seq: 11, lost: 2 },
        alloc(ev1(2, 1_011_500_000), 5, BufferType::Trace, 0, 0xC8, 0x0, 512 * KIB, 4096),
        Record::Free { ev: ev1(3, 1_011_600_000), alloc_seq: 99 },
        Record::ProcessEnd(Box::new(ProcessEnd { p: 1, last_seq: 3, how: "exited".into(), dropped: 0, problems: vec![] })),
        Record::Free { ev: ev0(14), alloc_seq: 0 },
        Record::Free { ev: ev0(15), alloc_seq: 6 },
        Record::ProgramEnd { ev: ev0(16), program: 0xA2 },
        Record::DeviceClose { ev: ev0(17), chip: -2 },
        Record::ProcessEnd(Box::new(ProcessEnd { p: 0, last_seq: 17, how: "exited".into(), dropped: 2, problems: vec![("reentry".into(), 1)] })),
        Record::Footer(Footer { records: 29, processes: 2, dropped: 2, unknown_frees: 1, ended_real_ns: 9 }),
    ]
}

pub fn golden() -> Vec<u8> {
    encode(&golden_records())
}

/// One process, one DRAM buffer of `size` on chip 0 (allocated then freed).
pub fn single(size: u64) -> Vec<u8> {
    encode(&[
        Record::Process(Box::new(ProcessInfo { p: 0, pid: 1, start_ticks: 0, exe: "x".into(), created_mono_ns: 0, created_real_ns: 0, shim_info: "{}".into(), attach: "from-start".into() })),
        alloc(Ev { p: 0, seq: 0, ts_ns: 10, tid: 1 }, 0, BufferType::Dram, 0, 1, 0x1000, size, 2048),
        alloc(Ev { p: 0, seq: 1, ts_ns: 20, tid: 1 }, 0, BufferType::L1, 0, 2, 0x1000, 4096, 2048),
        Record::Free { ev: Ev { p: 0, seq: 2, ts_ns: 30, tid: 1 }, alloc_seq: 0 },
        Record::Free { ev: Ev { p: 0, seq: 3, ts_ns: 40, tid: 1 }, alloc_seq: 1 },
        Record::ProcessEnd(Box::new(ProcessEnd { p: 0, last_seq: 3, how: "exited".into(), dropped: 0, problems: vec![] })),
        Record::Footer(Footer::default()),
    ])
}
