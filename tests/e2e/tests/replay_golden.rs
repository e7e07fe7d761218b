//! Issue 5's golden traces: the end-to-end workloads (mesh, matmul with CBs
//! and a graph capture, leaks at device close, two processes at once, a
//! forked child) traced by the real collector and shim, then answered by the
//! real `ttalloc` — exact peaks, what made them, and exact leak lists.
//!
//! Sizes and addresses come from the workloads and the test library's
//! documented allocator (tests/testlib/README.md): per chip at open
//! SYS_DRAM_A (1 MiB at 0x40, released by the close without a free),
//! SYS_DRAM_B (128 KiB at 0x100040) and SYS_L1 (32 KiB at 0x156000).

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use ttalloc_e2e::*;

const KIB: u64 = 1 << 10;
const SYS_DRAM_A: u64 = MIB;
const SYS_DRAM: u64 = SYS_DRAM_A + 128 * KIB;
const SYS_L1: u64 = 32 * KIB;

fn ttalloc(args: &[&str]) -> Value {
    let o = Command::new(artefact("ttalloc")).args(args).output().expect("run ttalloc");
    ok(&o);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}\n{}", stdout(&o)))
}

/// `replay --json` and `leaks --json` of a trace.
fn answers(trace: &std::path::Path) -> (Value, Value) {
    let t = trace.to_str().unwrap();
    (ttalloc(&["replay", t, "--json"]), ttalloc(&["leaks", t, "--json"]))
}

fn driver_trace(dir: &std::path::Path, variant: &str, args: &[&str]) -> std::path::PathBuf {
    let shm = ShmDir::new();
    let d = testlib(variant).join("ttfake_driver");
    let mut cmd = vec![d.to_str().unwrap()];
    cmd.extend_from_slice(args);
    let run = collect(&shm, &dir.join("t.msgpack"), &cmd, &[]);
    ok(&run.output);
    run.trace
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// (size, address) of what was live at a chip × type peak, largest first.
fn peak_live(s: &Value, chip: i32, ty: &str) -> Vec<(u64, u64)> {
    s["chips"][chip.to_string()][ty]["peak_live"].as_array().unwrap().iter().map(|i| (u(&i["size"]), u(&i["address"]))).collect()
}

/// Every leak group as (pid, type, size, at, [(chip, address)]).
fn leak_list(l: &Value) -> Vec<(u64, String, u64, String, Vec<(i64, u64)>)> {
    l["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let items = g["items"].as_array().unwrap().iter().map(|i| (i["chip"].as_i64().unwrap(), u(&i["address"]))).collect();
            (u(&g["pid"]), g["type"].as_str().unwrap().to_string(), u(&g["size"]), g["at"].as_str().unwrap().to_string(), items)
        })
        .collect()
}

fn clean(s: &Value) {
    assert_eq!(s["unknown_frees"], 0);
    assert_eq!(s["dropped"], 0);
    assert_eq!(s["alloc_failures"], 0);
    assert_eq!(s["trace"]["complete"], true);
}

/// tests/workloads/test_mesh_allocation.py on an 8-chip mesh (0.81 layout).
#[test]
fn golden_mesh_workload() {
    let shm = ShmDir::new();
    let dir = tempfile::tempdir().unwrap();
    let lib = testlib("v081");
    let run = collect(&shm, &dir.path().join("mesh.msgpack"), &["python3", workload("test_mesh_allocation.py").to_str().unwrap(), "--lib", lib.to_str().unwrap()], &[]);
    ok(&run.output);
    let (s, l) = answers(&run.trace);
    clean(&s);
    let pid = u(&s["processes"][0]["pid"]);
    assert_eq!(s["processes"].as_array().unwrap().len(), 1);
    assert_eq!(s["chips"].as_object().unwrap().len(), 8);
    for chip in 0..8 {
        let c = &s["chips"][chip.to_string()];
        // 4 MiB sharded + 2 MiB replicated per chip on top of the system buffers.
        assert_eq!(u(&c["DRAM"]["peak"]), SYS_DRAM + 4 * MIB + 2 * MIB, "chip {chip}");
        assert_eq!(u(&c["L1"]["peak"]), SYS_L1 + 128 * KIB, "chip {chip}");
        assert_eq!(u(&c["CB"]["peak"]), 16 * KIB + 16 * KIB + 8 * KIB, "chip {chip}");
        for ty in ["DRAM", "L1", "CB"] {
            assert_eq!(c[ty]["live_end"], 0, "chip {chip} {ty}");
            assert_eq!(u(&c[ty]["peak_pid"]), pid);
        }
        assert_eq!((u(&c["DRAM"]["allocs"]), u(&c["DRAM"]["frees"]), u(&c["DRAM"]["close_released"])), (4, 4, 1));
        assert_eq!(peak_live(&s, chip, "DRAM"), vec![(4 * MIB, 0x120040), (2 * MIB, 0x520040), (SYS_DRAM_A, 0x40), (128 * KIB, 0x100040)]);
        assert_eq!(peak_live(&s, chip, "L1"), vec![(128 * KIB, 0x136000), (SYS_L1, 0x156000)]);
        assert_eq!(peak_live(&s, chip, "CB"), vec![(16 * KIB, 0x19000), (16 * KIB, 0x1d000), (8 * KIB, 0x21000)]);
    }
    // The only leak: SYS_DRAM_A on every chip, released by the mesh close.
    assert_eq!(leak_list(&l), vec![(pid, "DRAM".into(), SYS_DRAM_A, "device_close".into(), (0..8).map(|c| (c, 0x40)).collect())]);
    assert_eq!((u(&l["count"]), u(&l["bytes"])), (8, 8 * MIB));
}

/// The seeds' matmul_multicore_reuse: DRAM in/out, three CBs, and a
/// NO_DISPATCH graph capture whose allocations are hooked (no memory).
#[test]
fn golden_matmul_with_cbs_and_graph_capture() {
    let dir = tempfile::tempdir().unwrap();
    let trace = driver_trace(dir.path(), "v081", &["matmul_multicore_reuse"]);
    let (s, l) = answers(&trace);
    clean(&s);
    let pid = u(&s["processes"][0]["pid"]);
    let c = &s["chips"]["0"];
    assert_eq!(u(&c["DRAM"]["peak"]), SYS_DRAM + 3 * 512 * KIB);
    assert_eq!(u(&c["CB"]["peak"]), 32 * KIB + 32 * KIB + 16 * KIB);
    assert_eq!(u(&c["L1"]["peak"]), SYS_L1, "the captured L1 buffer uses no memory");
    // The capture's two allocations are counted, paired, and weigh nothing.
    assert_eq!((u(&c["DRAM"]["allocs"]), u(&c["DRAM"]["frees"]), u(&c["DRAM"]["hooked_allocs"])), (2 + 3 + 1, 6, 1));
    assert_eq!((u(&c["L1"]["allocs"]), u(&c["L1"]["frees"]), u(&c["L1"]["hooked_allocs"])), (2, 2, 1));
    assert_eq!((u(&c["CB"]["allocs"]), u(&c["CB"]["frees"]), u(&c["CB"]["live_end"])), (3, 3, 0));
    assert_eq!(peak_live(&s, 0, "DRAM"), vec![(SYS_DRAM_A, 0x40), (512 * KIB, 0x120040), (512 * KIB, 0x1a0040), (512 * KIB, 0x220040), (128 * KIB, 0x100040)]);
    assert_eq!(peak_live(&s, 0, "CB"), vec![(32 * KIB, 0x19000), (32 * KIB, 0x21000), (16 * KIB, 0x29000)]);
    let progs: Vec<&Value> = c["CB"]["peak_live"].as_array().unwrap().iter().map(|i| &i["program"]).collect();
    assert!(progs.iter().all(|p| *p == progs[0] && p.is_u64()), "one program: {progs:?}");
    // The hooked allocations, as `dump` shows them: address 0, and their frees.
    let o = Command::new(artefact("ttalloc")).args(["dump", trace.to_str().unwrap(), "--events-only"]).output().unwrap();
    ok(&o);
    let hooked: Vec<(String, String, u64, u64)> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["hooked"] == true)
        .map(|e| (e["kind"].as_str().unwrap().to_string(), e["type"].as_str().unwrap().to_string(), u(&e["size"]), u(&e["address"])))
        .collect();
    let h = |k: &str, t: &str, s| (k.to_string(), t.to_string(), s, 0);
    assert_eq!(hooked, vec![h("alloc", "DRAM", MIB), h("alloc", "L1", 64 * KIB), h("free", "DRAM", MIB), h("free", "L1", 64 * KIB)]);
    assert_eq!(leak_list(&l), vec![(pid, "DRAM".into(), SYS_DRAM_A, "device_close".into(), vec![(0, 0x40)])]);
}

/// Three user buffers never freed: released by the device close, listed as leaks.
#[test]
fn golden_leaks_at_device_close() {
    let dir = tempfile::tempdir().unwrap();
    let trace = driver_trace(dir.path(), "v071", &["leak_at_close"]);
    let (s, l) = answers(&trace);
    clean(&s);
    let pid = u(&s["processes"][0]["pid"]);
    let c = &s["chips"]["0"];
    assert_eq!(u(&c["DRAM"]["peak"]), SYS_DRAM + MIB + 256 * KIB);
    assert_eq!(u(&c["L1"]["peak"]), SYS_L1 + 64 * KIB);
    assert_eq!((u(&c["DRAM"]["close_released"]), u(&c["L1"]["close_released"])), (3, 1));
    assert_eq!((c["DRAM"]["live_end"].clone(), c["L1"]["live_end"].clone()), (0.into(), 0.into()));
    let dc = |t: &str, size, items| (pid, t.to_string(), size, "device_close".to_string(), items);
    assert_eq!(
        leak_list(&l),
        vec![dc("DRAM", MIB, vec![(0, 0x40), (0, 0x120040)]), dc("DRAM", 256 * KIB, vec![(0, 0x220040)]), dc("L1", 64 * KIB, vec![(0, 0x146000)])]
    );
    assert_eq!((u(&l["count"]), u(&l["bytes"])), (4, 2 * MIB + 256 * KIB + 64 * KIB));
    // All released by the one close, the last event of the process.
    let last = u(&s["processes"][0]["last_seq"]);
    for g in l["leaks"].as_array().unwrap() {
        for i in g["items"].as_array().unwrap() {
            assert_eq!(u(&i["released_seq"]), last);
        }
    }
}

fn spawn_hold(shm: &ShmDir, n: &str) -> (std::process::Child, u64) {
    let lib = testlib("v071");
    let mut child = preloaded(shm, &["python3", workload("hold.py").to_str().unwrap(), "--lib", lib.to_str().unwrap(), "-n", n], &[]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    (child, u(&v["pid"]))
}

fn release(mut child: std::process::Child) {
    child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    assert!(child.wait().unwrap().success());
}

/// Two processes on chip 0 at the same time (tests/workloads/hold.py): A
/// allocates 10 × 64 KiB and frees every other one, then B allocates 20 while
/// A still holds 5. The chip's peak is both processes' at B's last allocation.
#[test]
fn golden_two_processes_at_once() {
    let shm = ShmDir::new();
    let dir = tempfile::tempdir().unwrap();
    let col = start_collector(&shm, &dir.path().join("two.msgpack"));
    let (a, pid_a) = spawn_hold(&shm, "10");
    let (b, pid_b) = spawn_hold(&shm, "20");
    release(a);
    release(b);
    assert!(wait_for(10, || shm.rings().is_empty()), "collector drained both rings");
    let trace = col.trace.clone();
    col.stop();
    let (s, l) = answers(&trace);
    clean(&s);
    let c = &s["chips"]["0"]["DRAM"];
    assert_eq!(u(&c["peak"]), 2 * SYS_DRAM + 5 * 64 * KIB + 20 * 64 * KIB);
    assert_eq!(u(&c["peak_pid"]), pid_b);
    assert_eq!((u(&c["allocs"]), u(&c["frees"]), u(&c["live_end"])), (2 * 2 + 30, 2 * 2 + 30, 0));
    // Live at the peak: each process's two system buffers, A's 5 and B's 20.
    let listed = c["peak_live"].as_array().unwrap();
    assert_eq!(listed.len() as u64 + u(&c["peak_live_rest"]["count"]), 2 * 2 + 5 + 20);
    let listed_bytes: u64 = listed.iter().map(|i| u(&i["bytes"])).sum();
    assert_eq!(listed_bytes + u(&c["peak_live_rest"]["bytes"]), u(&c["peak"]));
    assert_eq!(peak_live(&s, 0, "DRAM")[..2], [(SYS_DRAM_A, 0x40), (SYS_DRAM_A, 0x40)]);
    // Each process's own peak.
    let procs = s["processes"].as_array().unwrap();
    let own = |pid| procs.iter().find(|p| u(&p["pid"]) == pid).map(|p| u(&p["peaks"]["0"]["DRAM"])).unwrap();
    assert_eq!((own(pid_a), own(pid_b)), (SYS_DRAM + 10 * 64 * KIB, SYS_DRAM + 20 * 64 * KIB));
    let mut leaks = leak_list(&l);
    leaks.sort();
    let mut want = vec![(pid_a, "DRAM".to_string(), SYS_DRAM_A, "device_close".to_string(), vec![(0, 0x40)]), (pid_b, "DRAM".to_string(), SYS_DRAM_A, "device_close".to_string(), vec![(0, 0x40)])];
    want.sort();
    assert_eq!(leaks, want);
}

/// fork: the child has its own ring and process in the trace; its buffer
/// adds to the chip while the parent's are live.
#[test]
fn golden_forked_child_is_a_second_process() {
    let dir = tempfile::tempdir().unwrap();
    let trace = driver_trace(dir.path(), "v071", &["fork"]);
    let (s, l) = answers(&trace);
    clean(&s);
    let procs = s["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 2);
    let (parent, child) = (u(&procs[0]["pid"]), u(&procs[1]["pid"]));
    let c = &s["chips"]["0"]["DRAM"];
    assert_eq!(u(&c["peak"]), SYS_DRAM + MIB + 2 * MIB);
    assert_eq!(u(&c["peak_pid"]), child);
    assert_eq!(peak_live(&s, 0, "DRAM"), vec![(2 * MIB, 0x220040), (SYS_DRAM_A, 0x40), (MIB, 0x120040), (128 * KIB, 0x100040)]);
    assert_eq!(u(&procs[1]["peaks"]["0"]["DRAM"]), 2 * MIB);
    assert_eq!(u(&procs[0]["peaks"]["0"]["DRAM"]), SYS_DRAM + MIB);
    assert_eq!(leak_list(&l), vec![(parent, "DRAM".into(), SYS_DRAM_A, "device_close".into(), vec![(0, 0x40)])]);
}
