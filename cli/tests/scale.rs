//! A 10^7-event trace streamed through `replay`: memory must follow the live
//! set, not the history.

#![allow(clippy::manual_is_multiple_of)]

mod common;
use common::*;
use std::io::BufWriter;
use std::time::Instant;
use ttalloc_ring::BufferType;
use ttalloc_trace::*;

const WINDOW: u64 = 2_000;

/// Steady state of a long run: a sliding window of live buffers (allocs and
/// frees alternate), a mesh allocation every 64th, a CB program every 256th,
/// and the peak at the very end.
fn generate(path: &std::path::Path, events: u64) -> u64 {
    let f = std::fs::File::create(path).unwrap();
    let mut w = TraceWriter::new(BufWriter::with_capacity(1 << 20, f), &header()).unwrap();
    w.write(&Record::Process(Box::new(ProcessInfo { p: 0, pid: 42, start_ticks: 0, exe: "big".into(), created_mono_ns: 0, created_real_ns: 0, shim_info: "{}".into(), attach: "from-start".into() }))).unwrap();
    w.write(&Record::Mesh(MeshInfo { p: 0, slot: 0, mesh: 1, chips: (0..8).collect() })).unwrap();
    let mut seq = 0u64;
    let mut live: std::collections::VecDeque<u64> = Default::default();
    let mut n = 0u64;
    let ev = |seq: u64| Ev { p: 0, seq, ts_ns: 1_000_000_000 + seq * 500, tid: 7 };
    while n < events {
        let i = seq;
        if live.len() as u64 >= WINDOW && n < events - 3 * WINDOW {
            let a = live.pop_front().unwrap();
            w.write(&Record::Free { ev: ev(seq), alloc_seq: a }).unwrap();
        } else if i % 256 == 0 {
            w.write(&Record::CbAlloc(CbRec { ev: ev(seq), chip: 0, program: 0x1000 + (i % 4096), address: 0x10000, size: 32 * KIB, flags: 0 })).unwrap();
            live.push_back(seq);
        } else {
            let chip = if i % 64 == 0 { -2 } else { (i % 8) as i32 };
            let t = if i % 3 == 0 { BufferType::L1 } else { BufferType::Dram };
            w.write(&Record::Alloc(AllocRec { ev: ev(seq), chip, btype: t as u8, flags: 0, object: 0x7f00_0000_0000 + i * 64, address: 0x100000 + (i % 1024) * 4096, size: 4096 + (i % 7) * 1024, page_size: 2048 })).unwrap();
            live.push_back(seq);
        }
        seq += 1;
        n += 1;
    }
    w.write(&Record::ProcessEnd(Box::new(ProcessEnd { p: 0, last_seq: seq - 1, how: "exited".into(), dropped: 0, problems: vec![] }))).unwrap();
    w.write(&Record::Footer(Footer { records: n + 3, processes: 1, ..Footer::default() })).unwrap();
    w.flush().unwrap();
    n
}

/// Runs ttalloc under /usr/bin/time (max RSS in KiB), else polls /proc/<pid>/status VmHWM.
fn run_measured(args: &[&str]) -> (std::process::Output, u64) {
    let bin = env!("CARGO_BIN_EXE_ttalloc");
    if std::path::Path::new("/usr/bin/time").exists() {
        let d = tempfile::tempdir().unwrap();
        let rss = d.path().join("rss");
        let o = std::process::Command::new("/usr/bin/time").arg("-f").arg("%M").arg("-o").arg(&rss).arg(bin).args(args).output().unwrap();
        let kib: u64 = std::fs::read_to_string(&rss).unwrap().lines().last().unwrap().trim().parse().unwrap();
        return (o, kib * 1024);
    }
    let child = std::process::Command::new(bin).args(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let status = format!("/proc/{}/status", child.id());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let poll = std::thread::spawn(move || {
        let mut hwm = 0u64;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(t) = std::fs::read_to_string(&status) {
                if let Some(l) = t.lines().find(|l| l.starts_with("VmHWM:")) {
                    hwm = hwm.max(l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        hwm
    });
    let o = child.wait_with_output().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    (o, poll.join().unwrap())
}

/// Generates `events` events, replays them, checks the result; returns (trace bytes, peak RSS).
fn scale(events: u64, keep: Option<std::path::PathBuf>) -> (u64, u64) {
    let d = tempfile::tempdir().unwrap();
    let path = keep.unwrap_or_else(|| d.path().join("big.trace"));
    let t = Instant::now();
    let n = generate(&path, events);
    let size = std::fs::metadata(&path).unwrap().len();
    eprintln!("generated {n} events, {} bytes, in {:.1?}", size, t.elapsed());

    let t = Instant::now();
    let (o, rss) = run_measured(&["replay", path.to_str().unwrap(), "--json"]);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    eprintln!("replay: {:.1}s ({:.2} M events/s), peak RSS {} MiB for a {} MiB trace", secs, n as f64 / secs / 1e6, rss >> 20, size >> 20);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["trace"]["complete"], true);
    assert_eq!(v["processes"][0]["events"], n);
    // The window grows by 3 × WINDOW at the very end: the DRAM peak is there.
    let dram0 = &v["chips"]["0"]["DRAM"];
    assert!(dram0["peak_seq"].as_u64().unwrap() > n - 3 * WINDOW, "{dram0}");
    assert!(!dram0["peak_live"].as_array().unwrap().is_empty());
    // Leaks: everything live at exit, once per chip.
    let leaked: u64 = v["leaks"].as_array().unwrap().iter().map(|g| g["count"].as_u64().unwrap()).sum();
    assert!(leaked >= 4 * WINDOW, "{leaked}");
    assert!(rss < 64 << 20, "peak RSS {} MiB: memory should follow the live set (~{} buffers), not the history", rss >> 20, 5 * WINDOW);
    (size, rss)
}

/// The scale check: 10^7 events (~13 s here under `make test`, which
/// builds release; debug builds optimise ttalloc-trace/-cli too, see Cargo.toml).
/// (`TTALLOC_SCALE_TRACE=path` keeps the generated trace.)
#[test]
fn ten_million_events_replay_in_bounded_memory() {
    let (size, rss) = scale(10_000_000, std::env::var_os("TTALLOC_SCALE_TRACE").map(Into::into));
    assert!(rss * 10 < size, "peak RSS {rss} is not far below the trace size {size}");
}

/// Always run: memory does not grow with the history (4× the events, same live set).
#[test]
fn replay_memory_follows_the_live_set_not_the_history() {
    let (small_size, small) = scale(150_000, None);
    let (big_size, big) = scale(600_000, None);
    assert!(big_size > 3 * small_size);
    assert!(big < small + (4 << 20), "peak RSS grew from {} KiB to {} KiB with 4x the history", small >> 10, big >> 10);
}
