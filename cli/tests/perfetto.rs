//! `ttalloc export --perfetto`: valid Chrome trace-event JSON, and bounded
//! for huge traces (the heaviest slices kept, counters downsampled with
//! their peaks intact, one stderr note saying so).

// MSRV 1.80: no is_multiple_of.
#![allow(clippy::manual_is_multiple_of)]

mod common;
use common::trace_event::validate;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufWriter;
use ttalloc_ring::BufferType;
use ttalloc_trace::*;

#[test]
fn golden_export_is_valid_and_complete_by_default() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "golden.trace", &golden());
    let out = d.path().join("out.json");
    let o = ttalloc(&["export", p.to_str().unwrap(), "--perfetto", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "nothing was left out, so no note");
    let s = validate(&std::fs::read_to_string(&out).unwrap()).unwrap();
    // 8 chips × (4 DRAM + 3 CB) + 2 L1 on chip 0 + L1_SMALL + TRACE.
    assert_eq!(s.phases["X"], 8 * 7 + 2 + 1 + 1);
    assert!(s.counters.len() >= 8 * 2 + 3);
}

/// 8 chips, DRAM and L1, a sliding window of live buffers with sizes and
/// lifetimes that vary, so weights differ: (events, trace path).
fn busy(dir: &std::path::Path, events: u64) -> std::path::PathBuf {
    let path = dir.join("busy.trace");
    let mut w = TraceWriter::new(BufWriter::new(std::fs::File::create(&path).unwrap()), &header()).unwrap();
    w.write(&Record::Process(Box::new(ProcessInfo { p: 0, pid: 42, start_ticks: 0, exe: "busy".into(), created_mono_ns: 0, created_real_ns: 0, shim_info: "{}".into(), attach: "from-start".into() }))).unwrap();
    let mut live: std::collections::VecDeque<u64> = Default::default();
    let mut x = 99u64;
    for seq in 0..events {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let ev = Ev { p: 0, seq, ts_ns: 1_000_000 + seq * 700 + (x >> 60), tid: 3 };
        if live.len() >= 300 || (live.len() > 10 && (x >> 40) % 3 == 0) {
            let i = ((x >> 20) as usize) % live.len().min(20);
            let a = live.remove(i).unwrap();
            w.write(&Record::Free { ev, alloc_seq: a }).unwrap();
        } else {
            let t = if (x >> 30) % 4 == 0 { BufferType::L1 } else { BufferType::Dram };
            w.write(&Record::Alloc(AllocRec { ev, chip: ((x >> 35) % 8) as i32, btype: t as u8, flags: 0, object: seq, address: 0x1000 * (seq % 4096), size: 1024 * (1 + (x >> 50) % 512), page_size: 1024 })).unwrap();
            live.push_back(seq);
        }
    }
    w.write(&Record::ProcessEnd(Box::new(ProcessEnd { p: 0, last_seq: events, how: "exited".into(), dropped: 0, problems: vec![] }))).unwrap();
    w.write(&Record::Footer(Footer::default())).unwrap();
    w.flush().unwrap();
    path
}

fn export(trace: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> (common::trace_event::Stats, String, u64) {
    let mut a = vec!["export", trace.to_str().unwrap(), "--perfetto", out.to_str().unwrap()];
    a.extend_from_slice(extra);
    let o = ttalloc(&a);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(out).unwrap();
    (validate(&text).unwrap_or_else(|e| panic!("{extra:?}: {e}")), stderr(&o), text.len() as u64)
}

type Key = (i64, u64, i64); // chip pid, allocation id, size

fn kept_slices(text: &str) -> BTreeMap<Key, f64> {
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    v["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| ((e["pid"].as_i64().unwrap(), e["args"]["id"].as_u64().unwrap(), e["args"]["size"].as_i64().unwrap()), e["dur"].as_f64().unwrap()))
        .collect()
}

#[test]
fn huge_exports_keep_the_heaviest_slices_and_exact_counter_peaks() {
    let d = tempfile::tempdir().unwrap();
    let n = 200_000;
    let trace = busy(d.path(), n);
    let all_out = d.path().join("all.json");
    let (all, note, all_bytes) = export(&trace, &all_out, &["--slices", "0", "--max-points", "0"]);
    assert_eq!(note, "");
    let (some, note, some_bytes) = export(&trace, &d.path().join("some.json"), &["--slices", "500", "--max-points", "100"]);

    // Bounded: 500 slices, ≤ 100 points per counter track, a small file.
    assert_eq!(some.phases["X"], 500);
    assert!(all.phases["X"] > 50_000, "{:?}", all.phases);
    for (k, pts) in &some.counters {
        assert!(pts.len() <= 100, "{k:?}: {} points", pts.len());
    }
    assert!(some_bytes * 20 < all_bytes, "{some_bytes} vs {all_bytes}");
    assert!(some_bytes < 400 << 10, "{some_bytes}");
    // One line says what was left out.
    assert_eq!(note.lines().count(), 1, "{note}");
    assert!(note.starts_with("ttalloc: export: kept the 500 allocation slices with the most byte × time of "), "{note}");
    assert!(note.contains("counter tracks reduced to 100 points"), "{note}");

    // Every counter track keeps its exact peak, and the same tracks exist.
    assert_eq!(some.counters.keys().collect::<BTreeSet<_>>(), all.counters.keys().collect::<BTreeSet<_>>());
    let peak = |pts: &Vec<(f64, serde_json::Value)>| pts.iter().map(|(_, a)| a["bytes"].as_u64().unwrap()).max().unwrap();
    let replay: serde_json::Value = serde_json::from_slice(&ttalloc(&["replay", trace.to_str().unwrap(), "--json"]).stdout).unwrap();
    for ((pid, name), pts) in &some.counters {
        assert_eq!(peak(pts), peak(&all.counters[&(*pid, name.clone())]), "{name}");
        let (chip, ty) = name.strip_prefix("chip ").unwrap().split_once(' ').unwrap();
        assert_eq!(peak(pts), replay["chips"][chip][ty]["peak"].as_u64().unwrap(), "{name}");
    }

    // The 500 kept are the heaviest by byte × time.
    let all_slices = kept_slices(&std::fs::read_to_string(&all_out).unwrap());
    let mut by_weight: Vec<(f64, Key)> = all_slices.iter().map(|(k, dur)| (k.2 as f64 * (dur * 1000.0 + 1.0), *k)).collect();
    by_weight.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
    let kept = kept_slices(&std::fs::read_to_string(d.path().join("some.json")).unwrap());
    let lightest_kept = kept.iter().map(|(k, dur)| k.2 as f64 * (dur * 1000.0 + 1.0)).fold(f64::MAX, f64::min);
    let heavier_than_that = by_weight.iter().filter(|(w, _)| *w > lightest_kept * 1.0001).count();
    assert!(heavier_than_that < 500, "{heavier_than_that} dropped slices weigh more than a kept one");
    assert!(kept.keys().all(|k| all_slices.contains_key(k)));
}
