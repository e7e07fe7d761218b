mod common;
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

#[test]
fn leaks_grouped_text_json_and_gate() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "golden.trace", &golden());
    let path = p.to_str().unwrap();
    let o = ttalloc(&["leaks", path, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["count"], 10);
    assert_eq!(v["bytes"], 8 * MIB + 512 * KIB + 16 * KIB);
    let g = &v["leaks"][0];
    assert_eq!((g["pid"].as_u64(), g["type"].as_str(), g["size"].as_u64(), g["count"].as_u64(), g["at"].as_str()), (Some(100), Some("DRAM"), Some(MIB), Some(8), Some("device_close")));
    let chips: Vec<i64> = g["items"].as_array().unwrap().iter().map(|i| i["chip"].as_i64().unwrap()).collect();
    assert_eq!(chips, (0..8).collect::<Vec<_>>());
    for i in g["items"].as_array().unwrap() {
        assert_eq!((i["address"].as_u64(), i["tid"].as_u64(), i["ts_ns"].as_u64(), i["id"].as_u64()), (Some(0x700000), Some(4242), Some(P0_T0 + 10_000_000), Some(10)));
    }
    assert_eq!(v["leaks"][1]["pid"], 200);
    assert_eq!(v["leaks"][1]["at"], "exit");
    assert_eq!(v["leaks"][1]["items"][0]["chip"], 5);

    let o = ttalloc(&["leaks", path]);
    let t = stdout(&o);
    assert!(t.contains("10 leaked allocations, 8.52 MiB in 3 groups"), "{t}");
    assert!(t.contains("8 × 1.00 MiB DRAM (total 8.00 MiB) pid 100 on chips 0-7: released by device close"), "{t}");
    assert!(t.contains("chips 0-7  @0x700000"), "{t}");
    assert!(t.contains("still live at process exit"), "{t}");

    assert_eq!(ttalloc(&["leaks", path, "--fail-if-leaks"]).status.code(), Some(1));
    let clean = write(d.path(), "clean.trace", &single(MIB));
    let o = ttalloc(&["leaks", clean.to_str().unwrap(), "--fail-if-leaks"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("no leaks"));
}

#[test]
fn diff_gates_on_peak_growth() {
    let d = tempfile::tempdir().unwrap();
    let base = write(d.path(), "base.trace", &single(10 * MIB));
    let grown = write(d.path(), "grown.trace", &single(12 * MIB)); // +20%
    let shrunk = write(d.path(), "shrunk.trace", &single(8 * MIB));
    let (b, g, s) = (base.to_str().unwrap(), grown.to_str().unwrap(), shrunk.to_str().unwrap());

    let o = ttalloc(&["diff", b, g, "--fail-if-peak-grows", "10"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("peak grew more than 10%: chip 0 DRAM 10.00 MiB → 12.00 MiB (+20.0%)"), "{}", stderr(&o));
    assert!(stdout(&o).contains("+2.00 MiB"), "{}", stdout(&o));
    assert_eq!(ttalloc(&["diff", b, g, "--fail-if-peak-grows", "25"]).status.code(), Some(0));
    assert_eq!(ttalloc(&["diff", b, g, "--fail-if-peak-grows", "20"]).status.code(), Some(0), "exactly the threshold passes");
    assert_eq!(ttalloc(&["diff", b, g]).status.code(), Some(0));
    assert_eq!(ttalloc(&["diff", b, s, "--fail-if-peak-grows", "10"]).status.code(), Some(0));
    assert_eq!(ttalloc(&["diff", b, b, "--fail-if-peak-grows", "0"]).status.code(), Some(0));

    let o = ttalloc(&["diff", b, g, "--json", "--fail-if-peak-grows", "10"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["failed"], true);
    let rows = v["rows"].as_array().unwrap();
    let dram = rows.iter().find(|r| r["type"] == "DRAM").unwrap();
    assert_eq!((dram["base_peak"].as_u64(), dram["new_peak"].as_u64(), dram["peak_delta"].as_i64()), (Some(10 * MIB), Some(12 * MIB), Some(2 * MIB as i64)));
    assert!((dram["peak_pct"].as_f64().unwrap() - 20.0).abs() < 1e-9);
    assert_eq!(dram["exceeds"], true);
    let l1 = rows.iter().find(|r| r["type"] == "L1").unwrap();
    assert_eq!(l1["exceeds"], false);

    // A saved `replay --json` works as a baseline.
    let o = ttalloc(&["replay", b, "--json"]);
    let saved = write(d.path(), "base.json", &o.stdout);
    assert_eq!(ttalloc(&["diff", saved.to_str().unwrap(), g, "--fail-if-peak-grows", "10"]).status.code(), Some(1));
    assert_eq!(ttalloc(&["diff", saved.to_str().unwrap(), b, "--fail-if-peak-grows", "10"]).status.code(), Some(0));

    // Golden vs itself: every chip × type is there with zero deltas.
    let gold = write(d.path(), "g.trace", &golden());
    let o = ttalloc(&["diff", gold.to_str().unwrap(), gold.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rows"].as_array().unwrap().len(), 19);
    assert!(v["rows"].as_array().unwrap().iter().all(|r| r["peak_delta"] == 0 && r["live_end_delta"] == 0));
}

#[test]
fn perfetto_export_is_valid_trace_event_json() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "golden.trace", &golden());
    let out = d.path().join("out.json");
    let o = ttalloc(&["export", p.to_str().unwrap(), "--perfetto", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let evs = v["traceEvents"].as_array().unwrap();
    let mut pnames: HashMap<i64, String> = HashMap::new();
    let mut counters: HashSet<String> = HashSet::new();
    let mut slices: BTreeMap<(i64, i64), Vec<(f64, f64)>> = BTreeMap::new();
    let mut per_chip_type: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut be: HashMap<(i64, i64), i64> = HashMap::new();
    for e in evs {
        for k in ["ph", "ts", "pid", "tid"] {
            assert!(e.get(k).is_some(), "{k} missing in {e}");
        }
        assert!(e["ts"].is_number());
        let (pid, tid) = (e["pid"].as_i64().unwrap(), e["tid"].as_i64().unwrap());
        match e["ph"].as_str().unwrap() {
            "M" if e["name"] == "process_name" => {
                pnames.insert(pid, e["args"]["name"].as_str().unwrap().to_string());
            }
            "C" => {
                counters.insert(e["name"].as_str().unwrap().to_string());
                assert!(e["args"]["bytes"].is_u64());
            }
            "X" => {
                let ts = e["ts"].as_f64().unwrap();
                let dur = e["dur"].as_f64().unwrap();
                assert!(dur >= 0.0);
                slices.entry((pid, tid)).or_default().push((ts, ts + dur));
                *per_chip_type.entry((pnames.get(&pid).cloned().unwrap_or_default(), e["cat"].as_str().unwrap().to_string())).or_default() += 1;
            }
            "B" => *be.entry((pid, tid)).or_default() += 1,
            "E" => *be.entry((pid, tid)).or_default() -= 1,
            "i" | "M" => {}
            other => panic!("unexpected ph {other}"),
        }
    }
    assert!(be.values().all(|n| *n == 0));
    // Slices on one track never overlap, so they always nest (trivially).
    for (k, v) in &mut slices {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        for w in v.windows(2) {
            assert!(w[1].0 >= w[0].1 - 1e-9, "overlap on {k:?}: {w:?}");
        }
    }
    for c in 0..8 {
        assert_eq!(pnames[&(1000 + c)], format!("chip {c}"));
        assert!(counters.contains(&format!("chip {c} DRAM")), "{counters:?}");
        assert!(counters.contains(&format!("chip {c} CB")), "{counters:?}");
        assert_eq!(per_chip_type[&(format!("chip {c}"), "DRAM".to_string())], 4);
        assert_eq!(per_chip_type[&(format!("chip {c}"), "CB".to_string())], 3);
    }
    assert!(counters.contains("chip 0 L1") && counters.contains("chip 3 L1_SMALL") && counters.contains("chip 5 TRACE"));
    assert_eq!(per_chip_type[&("chip 0".to_string(), "L1".to_string())], 2);
    assert_eq!(per_chip_type[&("chip 5".to_string(), "TRACE".to_string())], 1);
    // The DRAM counter of chip 0 reaches exactly the peak.
    let max = evs.iter().filter(|e| e["ph"] == "C" && e["name"] == "chip 0 DRAM").map(|e| e["args"]["bytes"].as_u64().unwrap()).max();
    assert_eq!(max, Some(14 * MIB));
    // The 4 MiB buffer's slice spans its lifetime: seq 0 → seq 14 of p0 (14 ms).
    let b1 = evs.iter().find(|e| e["ph"] == "X" && e["pid"] == 1000 && e["args"]["buffer"] == "0xb1").unwrap();
    assert_eq!(b1["ts"].as_f64().unwrap(), (P0_T0 / 1000) as f64);
    assert_eq!(b1["dur"].as_f64().unwrap(), 14_000.0);
    assert!(evs.iter().any(|e| e["ph"] == "i" && e["name"].as_str().unwrap().starts_with("gap: 2 events lost")));
}

#[test]
fn html_report_is_self_contained() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "golden.trace", &golden());
    let out = d.path().join("r.html");
    let o = ttalloc(&["report", p.to_str().unwrap(), "--html", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let h = std::fs::read_to_string(&out).unwrap();
    assert!(h.starts_with("<!DOCTYPE html>"));
    // Nothing fetched: no URLs, no external resources, and a policy that forbids any.
    let l = h.to_lowercase();
    assert!(!l.contains("http:") && !l.contains("https:") && !l.contains("//cdn") && !l.contains("src="), "external reference");
    assert!(!l.contains("url(") && !l.contains("@import"), "no CSS fetches");
    assert!(h.contains("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';"));
    assert_eq!(h.matches("<script").count(), 1, "one inline script: the self-check");
    // Per chip: memory over the trace (DRAM-like and L1-like), with the peaks marked.
    for c in 0..8 {
        let start = h.find(&format!("<div class=\"chip\" id=\"chip{c}\">")).unwrap_or_else(|| panic!("chip {c} plots"));
        let end = start + h[start..].find("</div>").unwrap();
        let part = &h[start..end];
        assert!(part.contains(&format!("aria-label=\"chip {c} · DRAM\"")), "chip {c} DRAM plot");
        assert!(part.contains(&format!("aria-label=\"chip {c} · L1\"")), "chip {c} L1 plot");
        assert!(part.contains("<circle class=\"mark\""), "chip {c}: peak marked");
    }
    // Peaks: chips 0-7 alike for DRAM; 14 MiB.
    assert!(h.contains("14.00 MiB"));
    // L1 maps: chip 0 (L1 + CBs), chip 3 (L1_SMALL + CBs), the rest alike (CBs only).
    assert_eq!(h.matches("<svg class=\"l1map\"").count(), 3);
    assert!(h.contains("<h3>chips 1-2,4-7</h3>"), "{}", &h[h.find("id=\"l1\"").unwrap()..][..600]);
    assert!(h.contains("Largest free gap"));
    assert!(h.contains("CB region"));
    assert!(h.contains("released by device close"));
    assert_eq!(h.matches("<svg").count(), h.matches("</svg>").count());
    // Well-formed enough: every opened section/table closes.
    for tag in ["div", "table", "svg", "p", "h2", "h3", "script", "style"] {
        let opens = h.matches(&format!("<{tag}>")).count() + h.matches(&format!("<{tag} ")).count();
        assert_eq!(opens, h.matches(&format!("</{tag}>")).count(), "<{tag}>");
    }
}

#[test]
fn l1_map_in_the_summary() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "golden.trace", &golden());
    let s = ttalloc_cli::summarize_with(&p, &ttalloc_cli::Options { l1_maps: true, ..Default::default() }).unwrap();
    // Chip 0's L1 footprint peaks at p0 seq 6: CBs of program 0xA2 (128 KiB at 0x10000) + the 256 KiB L1 buffer at 0x100000.
    let m = &s.l1_maps[&0];
    assert_eq!((m.peak, m.seq, m.pid), (384 * KIB, 6, 100));
    assert_eq!((m.lo, m.hi), (0x10000, 0x140000));
    assert_eq!(m.largest_gap, Some([0x30000, 0x100000 - 0x30000]));
    assert_eq!(m.ranges.len(), 4, "3 CBs of two programs and the buffer");
    // Chip 3: L1_SMALL at 0x8000 (16 KiB) below the CB region.
    let m3 = &s.l1_maps[&3];
    assert_eq!(m3.peak, 128 * KIB + 16 * KIB);
    assert_eq!(m3.lo, 0x8000);
    assert_eq!(m3.largest_gap, Some([0xc000, 0x4000]));
}

#[test]
fn dump_one_json_object_per_chip_event() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "golden.trace", &golden());
    let o = ttalloc(&["dump", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let events: Vec<&Value> = lines.iter().filter(|v| v.get("record").is_none()).collect();
    let records: Vec<&str> = lines.iter().filter_map(|v| v.get("record")).map(|r| r.as_str().unwrap()).collect();
    assert_eq!(records, vec!["header", "process", "mesh", "process", "mesh", "gap", "process_end", "device_close", "process_end", "footer"]);
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for e in &events {
        for k in ["seq", "ts_ns", "pid", "tid", "kind", "chip", "type", "address", "size", "buffer", "hooked", "id", "global"] {
            assert!(e.get(k).is_some(), "{k} missing in {e}");
        }
        *kinds.entry(e["kind"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let want: BTreeMap<String, usize> = [("alloc", 8 * 4 + 1 + 1 + 1 + 1), ("free", 8 * 3 + 2), ("cb_alloc", 24), ("cb_free", 24), ("close_release", 9), ("unknown_free", 1)]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    assert_eq!(kinds, want);
    let hooked: Vec<&&Value> = events.iter().filter(|e| e["hooked"] == true).collect();
    assert_eq!(hooked.len(), 2);
    assert_eq!(hooked[0]["type"], "L1");
    let cb = events.iter().find(|e| e["kind"] == "cb_alloc").unwrap();
    assert_eq!((cb["program"].as_u64(), cb["buffer"].is_null(), cb["type"].as_str()), (Some(0xA1), true, Some("CB")));
    let cr = events.iter().find(|e| e["kind"] == "close_release").unwrap();
    assert_eq!((cr["seq"].as_u64(), cr["id"].as_u64(), cr["size"].as_u64(), cr["pid"].as_u64()), (Some(17), Some(10), Some(MIB), Some(100)));

    let o = ttalloc(&["dump", p.to_str().unwrap(), "--events-only"]);
    assert!(stdout(&o).lines().all(|l| !l.contains("\"record\"")));
}

/// Every record kind the format has (as in trace/tests/codec.rs) goes through every command.
#[test]
fn rare_records_go_through_every_command() {
    use ttalloc_trace::*;
    let ev = |seq: u64| Ev { p: 0, seq, ts_ns: 1_000_000 + seq * 37, tid: 4242 };
    let recs = vec![
        Record::Process(Box::new(ProcessInfo { p: 0, pid: 10, start_ticks: 5, exe: "py<th>on".into(), created_mono_ns: 1, created_real_ns: 2, shim_info: "{}".into(), attach: "late-attach".into() })),
        Record::Mesh(MeshInfo { p: 0, slot: 0, mesh: 0x5000, chips: (0..2).collect() }),
        Record::Alloc(AllocRec { ev: ev(0), chip: -2, btype: 0, flags: 0, object: 0x7f00_0000_1000, address: 0x40000, size: 4 << 20, page_size: 2048 }),
        Record::CbAlloc(CbRec { ev: ev(1), chip: 1, program: 0x9000, address: 0x1000, size: 4096, flags: ttalloc_ring::event::FLAG_GLOBAL_CB }),
        Record::DfbAlloc(CbRec { ev: ev(2), chip: 1, program: 0x9000, address: 0x3000, size: 1024, flags: 0 }),
        Record::AllocFailed { ev: ev(3), chip: 1, btype: 1, size: 99, program: 0, what: FAILED_BUFFER },
        Record::UnknownFree { ev: ev(4), object: 1, chip: 1, btype: 1, address: 3, size: 4 },
        Record::Resync { p: 0, at_seq: 5, reason: "restart-resync".into() },
        Record::Alloc(AllocRec { ev: ev(5), chip: 0, btype: 1, flags: FLAG_RESYNC, object: 0x77, address: 0x9000, size: 8192, page_size: 2048 }),
        Record::ResyncDrop { p: 0, alloc_seq: 0 },
        Record::ProgramEnd { ev: ev(6), program: 0x9000 },
        Record::DeviceClose { ev: ev(7), chip: -2 },
        Record::ProcessEnd(Box::new(ProcessEnd { p: 0, last_seq: 7, how: "killed".into(), dropped: 0, problems: vec![] })),
        Record::Footer(Footer::default()),
    ];
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "rare.trace", &encode(&recs));
    let path = p.to_str().unwrap();
    let o = ttalloc(&["dump", path, "--events-only"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let kinds: Vec<String> = stdout(&o).lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["kind"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, ["alloc", "alloc", "cb_alloc", "dfb_alloc", "alloc_failed", "unknown_free", "resync_alloc", "resync_drop", "resync_drop", "cb_free", "dfb_free", "close_release"]);
    let o = ttalloc(&["replay", path, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["chips"]["1"]["CB"]["peak"], 1024, "the global CB adds nothing");
    assert_eq!(v["chips"]["0"]["L1"]["live_end"], 0);
    assert_eq!(v["alloc_failures"], 1);
    assert_eq!(v["unknown_frees"], 1);
    assert_eq!(v["processes"][0]["resyncs"], 1);
    assert_eq!(v["leaks"][0]["type"], "L1");
    assert_eq!(v["leaks"][0]["at"], "device_close");
    for args in [vec!["replay"], vec!["leaks"], vec!["replay", "--at", "3"]] {
        let mut a = args.clone();
        a.push(path);
        let o = ttalloc(&a);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "");
    }
    let out = d.path().join("rare.json");
    assert_eq!(ttalloc(&["export", path, "--perfetto", out.to_str().unwrap()]).status.code(), Some(0));
    let _: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let html = d.path().join("rare.html");
    assert_eq!(ttalloc(&["report", path, "--html", html.to_str().unwrap()]).status.code(), Some(0));
    let h = std::fs::read_to_string(&html).unwrap();
    assert!(h.contains("py&lt;th&gt;on") && !h.contains("py<th>on"), "escaped");
}
