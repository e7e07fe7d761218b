mod common;
use common::*;
use serde_json::Value;

fn summary(dir: &std::path::Path) -> Value {
    let p = write(dir, "golden.trace", &golden());
    let o = ttalloc(&["replay", p.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn replay_json_golden_numbers() {
    let d = tempfile::tempdir().unwrap();
    let s = summary(d.path());
    let chips = s["chips"].as_object().unwrap();
    assert_eq!(chips.keys().cloned().collect::<Vec<_>>(), (0..8).map(|c| c.to_string()).collect::<Vec<_>>());
    for c in 0..8 {
        let dram = &s["chips"][c.to_string()]["DRAM"];
        assert_eq!(dram["peak"], 14 * MIB, "chip {c}");
        assert_eq!(dram["peak_pid"], 200);
        assert_eq!(dram["peak_p"], 1);
        assert_eq!(dram["peak_seq"], 0);
        assert_eq!(dram["peak_t_ns"], 0);
        assert_eq!(dram["peak_ts_ns"], 1_001_500_000u64);
        assert_eq!(dram["live_end"], 0);
        assert_eq!(dram["allocs"], 4);
        assert_eq!(dram["frees"], 4);
        assert_eq!(dram["close_released"], 1);
        let live: Vec<u64> = dram["peak_live"].as_array().unwrap().iter().map(|i| i["size"].as_u64().unwrap()).collect();
        assert_eq!(live, vec![8 * MIB, 4 * MIB, 2 * MIB]);
        assert_eq!(dram["peak_live"][0]["pid"], 200);
        assert_eq!(dram["peak_live"][0]["buffer"], 0xC7);
        assert_eq!(dram["peak_live"][1]["address"], 0x100000);
        assert_eq!(dram["peak_live_rest"]["count"], 0);

        let cb = &s["chips"][c.to_string()]["CB"];
        assert_eq!((cb["peak"].as_u64(), cb["peak_seq"].as_u64(), cb["peak_pid"].as_u64()), (Some(128 * KIB), Some(4), Some(100)));
        assert_eq!(cb["peak_t_ns"], 4_000_000);
        assert_eq!((cb["allocs"].as_u64(), cb["frees"].as_u64(), cb["live_end"].as_u64()), (Some(3), Some(3), Some(0)));
        let live: Vec<(u64, u64)> = cb["peak_live"].as_array().unwrap().iter().map(|i| (i["size"].as_u64().unwrap(), i["program"].as_u64().unwrap())).collect();
        assert_eq!(live, vec![(128 * KIB, 0xA2), (64 * KIB, 0xA1), (32 * KIB, 0xA1)]);
    }
    let l1 = &s["chips"]["0"]["L1"];
    assert_eq!((l1["peak"].as_u64(), l1["peak_seq"].as_u64(), l1["allocs"].as_u64(), l1["frees"].as_u64(), l1["hooked_allocs"].as_u64()), (Some(256 * KIB), Some(6), Some(2), Some(2), Some(1)));
    assert_eq!(l1["peak_live"][0]["size"], 256 * KIB);
    assert_eq!(l1["peak_live"][1]["hooked"], true);
    assert_eq!(l1["peak_live"][1]["bytes"], 0);
    assert!(s["chips"]["1"].get("L1").is_none());
    let small = &s["chips"]["3"]["L1_SMALL"];
    assert_eq!((small["peak"].as_u64(), small["close_released"].as_u64(), small["live_end"].as_u64()), (Some(16 * KIB), Some(1), Some(0)));
    let tr = &s["chips"]["5"]["TRACE"];
    assert_eq!((tr["peak"].as_u64(), tr["live_end"].as_u64(), tr["live_end_count"].as_u64(), tr["frees"].as_u64()), (Some(512 * KIB), Some(512 * KIB), Some(1), Some(0)));
    assert_eq!(tr["peak_t_ns"], 10_000_000);

    assert_eq!(s["unknown_frees"], 1);
    assert_eq!(s["dropped"], 2);
    assert_eq!(s["gaps"], serde_json::json!([{"p": 0, "pid": 100, "after_seq": 11, "lost": 2}]));
    assert_eq!(s["trace"]["complete"], true);
    assert!(s["trace"]["cut"].is_null());
    assert_eq!(s["trace"]["records"], 29);

    let procs = s["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 2);
    assert_eq!((procs[0]["pid"].as_u64(), procs[0]["events"].as_u64(), procs[0]["ended"].as_str()), (Some(100), Some(16), Some("exited")));
    assert_eq!(procs[0]["problems"]["reentry"], 1);
    assert_eq!(procs[0]["first_ts_ns"], P0_T0);
    assert_eq!((procs[1]["pid"].as_u64(), procs[1]["events"].as_u64(), procs[1]["unknown_frees"].as_u64()), (Some(200), Some(4), Some(1)));
    assert_eq!(procs[1]["peaks"]["0"]["DRAM"], 8 * MIB);
    assert_eq!(procs[0]["peaks"]["0"]["DRAM"], 6 * MIB);

    let leaks = s["leaks"].as_array().unwrap();
    let shape: Vec<(u64, &str, u64, &str, u64, u64)> = leaks
        .iter()
        .map(|g| (g["pid"].as_u64().unwrap(), g["type"].as_str().unwrap(), g["size"].as_u64().unwrap(), g["at"].as_str().unwrap(), g["count"].as_u64().unwrap(), g["bytes"].as_u64().unwrap()))
        .collect();
    assert_eq!(shape, vec![(100, "DRAM", MIB, "device_close", 8, 8 * MIB), (200, "TRACE", 512 * KIB, "exit", 1, 512 * KIB), (100, "L1_SMALL", 16 * KIB, "device_close", 1, 16 * KIB)]);
    let it = &leaks[0]["items"][0];
    assert_eq!((it["chip"].as_i64(), it["address"].as_u64(), it["id"].as_u64(), it["tid"].as_u64()), (Some(0), Some(0x700000), Some(10), Some(4242)));
    assert_eq!((it["ts_ns"].as_u64(), it["released_seq"].as_u64(), it["buffer"].as_u64()), (Some(P0_T0 + 10_000_000), Some(17), Some(0xB5)));
    assert_eq!(leaks[1]["items"][0]["released_seq"], Value::Null);
    assert_eq!(leaks[2]["items"][0]["chip"], 3);
}

#[test]
fn library_summary_matches_the_binary() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "g.trace", &golden());
    let s = ttalloc_cli::summarize(&p).unwrap();
    assert_eq!(s.chips[&7]["DRAM"].peak, 14 * MIB);
    assert_eq!(s.leaks.len(), 3);
    let round: ttalloc_cli::Summary = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(round, s);
}

#[test]
fn replay_text_tables() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "golden.trace", &golden());
    let o = ttalloc(&["replay", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = stdout(&o);
    assert!(t.contains("14.00 MiB"), "{t}");
    assert!(t.contains("pid 200 seq 0 +0.000s"), "{t}");
    assert!(t.contains("chips 0-7 DRAM: peak 14.00 MiB"), "{t}");
    assert!(t.contains("128.00 KiB"), "{t}");
    assert!(t.contains("gaps: 1 (2 events lost)"), "{t}");
    assert!(t.contains("unknown frees: 1"), "{t}");
    assert!(t.contains("leaks: 10 allocations"), "{t}");
    for ty in ["DRAM", "L1", "L1_SMALL", "TRACE", "CB"] {
        assert!(t.contains(ty), "{ty}");
    }
}

fn at(args: &[&str]) -> Value {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "golden.trace", &golden());
    let mut a = vec!["replay", p.to_str().unwrap(), "--json", "--at"];
    a.extend_from_slice(args);
    let o = ttalloc(&a);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn at_sequence_number() {
    let v = at(&["4"]);
    assert_eq!((v["at"]["pid"].as_u64(), v["at"]["seq"].as_u64(), v["at"]["t_ns"].as_u64(), v["at"]["past_end"].as_bool()), (Some(100), Some(4), Some(4_000_000), Some(false)));
    for c in 0..8 {
        let ch = &v["chips"][c.to_string()];
        assert_eq!((ch["DRAM"]["live"].as_u64(), ch["DRAM"]["count"].as_u64()), (Some(14 * MIB), Some(3)));
        assert_eq!(ch["CB"]["live"], 128 * KIB);
        assert_eq!(ch["CB"]["count"], 3);
    }
    assert!(v["chips"]["0"].get("L1").is_none());
}

#[test]
fn at_time_since_first_event() {
    // 4.5 ms after p0's first event: p0 seq 4 is the last; p1's free (in the file before p0 seq 5) is in.
    for t in ["4500us", "4.5ms", "0.0045s"] {
        let v = at(&[t]);
        assert_eq!(v["at"]["seq"], 4, "{t}");
        assert_eq!(v["chips"]["2"]["DRAM"]["live"], 6 * MIB, "{t}");
        let sizes: Vec<u64> = v["chips"]["2"]["DRAM"]["allocations"].as_array().unwrap().iter().map(|i| i["size"].as_u64().unwrap()).collect();
        assert_eq!(sizes, vec![4 * MIB, 2 * MIB]);
    }
}

#[test]
fn at_with_pid() {
    let v = at(&["2", "--pid", "200"]);
    assert_eq!((v["at"]["pid"].as_u64(), v["at"]["p"].as_u64(), v["at"]["seq"].as_u64(), v["at"]["t_ns"].as_u64()), (Some(200), Some(1), Some(2), Some(10_000_000)));
    assert_eq!(v["chips"]["0"]["DRAM"]["live"], 5 * MIB);
    assert_eq!(v["chips"]["0"]["L1"]["live"], 256 * KIB);
    assert_eq!(v["chips"]["0"]["CB"]["live"], 128 * KIB);
    assert_eq!(v["chips"]["3"]["L1_SMALL"]["live"], 16 * KIB);
    assert_eq!(v["chips"]["5"]["TRACE"]["live"], 512 * KIB);
    assert_eq!(v["chips"]["5"]["TRACE"]["allocations"][0]["buffer"], 0xC8);
}

#[test]
fn at_past_the_end_and_text() {
    let v = at(&["999999"]);
    assert_eq!(v["at"]["past_end"], true);
    assert_eq!(v["at"]["seq"], 17);
    assert_eq!(v["chips"]["5"]["TRACE"]["live"], 512 * KIB);
    assert!(v["chips"]["0"].get("DRAM").is_none());

    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "golden.trace", &golden());
    let o = ttalloc(&["replay", p.to_str().unwrap(), "--at", "4"]);
    assert_eq!(o.status.code(), Some(0));
    let t = stdout(&o);
    assert!(t.contains("live at pid 100 (process 0) seq 4 (+0.004s)"), "{t}");
    assert!(t.contains("chips 0-7 DRAM: 14.00 MiB live"), "{t}");
    let o = ttalloc(&["replay", p.to_str().unwrap(), "--at", "4", "--pid", "4711"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no process with pid 4711"), "{}", stderr(&o));
    let o = ttalloc(&["replay", p.to_str().unwrap(), "--at", "soon"]);
    assert_eq!(o.status.code(), Some(2));
}
