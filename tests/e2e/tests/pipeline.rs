//! Issue 2: the whole path — hooked call in the (test) libtt_metal.so →
//! libttalloc.so → shared-memory ring → ttalloc-collect → msgpack trace —
//! run the way a user runs it, with exact per-chip numbers.
//!
//! Real binaries: libttalloc.so, ttalloc-collect, python3 and the C++ driver.
//! Faithful stand-in: tests/testlib instead of tt-metal (no hardware here).

use ttalloc_e2e::*;
use ttalloc_ring::BufferType::*;
use ttalloc_trace::ChipKind;

/// System buffers the test library allocates per chip at open (tests/testlib/README.md).
const SYS_DRAM: u64 = 1_048_576 + 131_072;
const SYS_L1: u64 = 32_768;

fn mesh_python(variant: &str) {
    let shm = ShmDir::new();
    let dir = tempfile::tempdir().unwrap();
    let lib = testlib(variant);
    let run = collect(&shm, &dir.path().join("t.msgpack"), &["python3", workload("test_mesh_allocation.py").to_str().unwrap(), "--lib", lib.to_str().unwrap()], &[]);
    ok(&run.output);
    let r = replay(&run.trace);
    assert!(r.complete, "trace has a footer");
    assert_eq!(r.processes(), 1);
    for chip in 0..8 {
        // 4 MiB sharded + 2 MiB replicated per chip, on top of the system buffers.
        assert_eq!(r.peak(chip, Dram), SYS_DRAM + 4 * MIB + 2 * MIB, "chip {chip} DRAM");
        assert_eq!(r.peak(chip, L1), SYS_L1 + 131_072, "chip {chip} L1");
        assert_eq!(r.peak(chip, Cb), 16_384 + 16_384 + 8_192, "chip {chip} CB");
        // Everything ends: freed, or (DRAM A) released at close.
        assert_eq!(r.current(chip, Dram) + r.current(chip, L1) + r.current(chip, Cb), 0);
        assert_eq!(r.count_on(ChipKind::CloseRelease, chip), 1, "chip {chip}: DRAM A released at close");
    }
    assert_eq!(r.per_chip(ChipKind::Alloc, Dram).values().map(|v| v.0).sum::<usize>(), 8 * 4);
    assert_eq!(r.per_chip(ChipKind::CbAlloc, Cb).len(), 8);
    assert_eq!(r.model.unknown_frees, 0);
    assert_eq!(r.model.dropped, 0);
    // Nothing left behind in the ring directory.
    assert!(shm.rings().is_empty(), "{:?}", shm.rings());
    let summary = stderr(&run.output);
    assert!(summary.contains("unknown frees: 0"), "{summary}");
}

#[test]
fn test_mesh_allocation_python_v065() {
    mesh_python("v065");
}

#[test]
fn test_mesh_allocation_python_v071() {
    mesh_python("v071");
}

#[test]
fn test_mesh_allocation_python_v081() {
    mesh_python("v081");
}

#[test]
fn launch_mode_returns_the_commands_exit_code() {
    let shm = ShmDir::new();
    let dir = tempfile::tempdir().unwrap();
    let run = collect(&shm, &dir.path().join("t.msgpack"), &["sh", "-c", "exit 7"], &[]);
    assert_eq!(run.output.status.code(), Some(7));
    let r = replay(&run.trace);
    assert!(r.complete);
    assert_eq!(r.processes(), 0, "a process that never loads libtt_metal.so is silent");
}

#[test]
fn cpp_driver_and_dump_show_one_line_per_chip_event() {
    let shm = ShmDir::new();
    let dir = tempfile::tempdir().unwrap();
    let driver = testlib("v071").join("ttfake_driver");
    let run = collect(&shm, &dir.path().join("t.msgpack"), &[driver.to_str().unwrap(), "mesh", "2"], &[]);
    ok(&run.output);
    let r = replay(&run.trace);
    let sharded: Vec<_> = r.events.iter().filter(|e| e.kind == ChipKind::Alloc && e.size == 4 * MIB).collect();
    assert_eq!(sharded.iter().map(|e| e.chip).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(sharded[0].address, sharded[1].address, "same address on every chip of the mesh");
    assert_eq!(sharded[0].id, sharded[1].id, "one allocation, one id");
}

/// Event times are CLOCK_MONOTONIC ns whether the shim stamps TSC ticks
/// (where the kernel's clocksource is the TSC) or reads the clock itself
/// (`TTALLOC_CLOCK=monotonic`): within the run's window, in order per thread.
#[test]
fn event_times_are_monotonic_ns_in_both_clock_modes() {
    for clock in [None, Some("monotonic")] {
        let shm = ShmDir::new();
        let dir = tempfile::tempdir().unwrap();
        let d = testlib("v081").join("ttfake_driver");
        let env: Vec<(&str, &str)> = clock.map(|c| vec![("TTALLOC_CLOCK", c)]).unwrap_or_default();
        let before = ttalloc_ring::clock::monotonic_ns();
        let run = collect(&shm, &dir.path().join("t.msgpack"), &[d.to_str().unwrap(), "churn", "20000"], &env);
        let after = ttalloc_ring::clock::monotonic_ns();
        ok(&run.output);
        let r = replay(&run.trace);
        let mut last: std::collections::HashMap<u32, u64> = Default::default();
        let mut n = 0;
        for rec in &r.records {
            if let ttalloc_trace::Record::Alloc(a) = rec {
                let ev = a.ev;
                assert!(ev.ts_ns > before && ev.ts_ns < after, "{clock:?}: {} outside [{before}, {after}]", ev.ts_ns);
                let prev = last.insert(ev.tid, ev.ts_ns).unwrap_or(0);
                assert!(ev.ts_ns >= prev, "{clock:?}: time went back on tid {}", ev.tid);
                n += 1;
            }
        }
        assert!(n >= 20_000, "{clock:?}: {n} allocations seen");
    }
}
