//! Targets 4 and 5 of issue 7: trace bytes per event (≤ 24 on a long mesh
//! workload) and replay speed / peak RSS on a large trace.
//!
//! Size: real traces written by `ttalloc-collect` (launch mode) over the fake
//! tt-metal — `ttfake_driver mesh 8` once (fixed per-process overhead
//! dominates), `bench_churn mesh_loop 8 ITERS` (the same workload body
//! repeated in one process: the long-run rate, also as the increment between
//! two lengths, which cancels the fixed part), and `bench_churn churn`.
//! Per-record-kind sizes come from re-encoding the trace with `TraceWriter`.
//!
//! Replay: a synthetic trace of 10^7 alloc/free events (10^8 with
//! TTALLOC_BENCH_BIG=1) written with `ttalloc_trace::TraceWriter`, replayed by
//! `ttalloc replay TRACE --json` (wall time, peak RSS from wait4) and in-process
//! by `ttalloc_trace::Model` (the model `ttalloc replay` and the collector share).

mod common;
use common::*;
use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use ttalloc_trace::record::*;
use ttalloc_trace::{Model, Record, TraceReader, TraceWriter};

fn kind_name(r: &Record) -> &'static str {
    match r {
        Record::Header(_) => "header",
        Record::Process(_) => "process",
        Record::Mesh(_) => "mesh",
        Record::Alloc(_) => "alloc",
        Record::Free { .. } => "free",
        Record::UnknownFree { .. } => "unknown_free",
        Record::CbAlloc(_) => "cb_alloc",
        Record::CbFree { .. } => "cb_free",
        Record::ProgramEnd { .. } => "program_end",
        Record::DfbAlloc(_) => "dfb_alloc",
        Record::DeviceClose { .. } => "device_close",
        Record::AllocFailed { .. } => "alloc_failed",
        Record::Gap { .. } => "gap",
        Record::Resync { .. } => "resync",
        Record::ResyncDrop { .. } => "resync_drop",
        Record::ProcessEnd(_) => "process_end",
        Record::Footer(_) => "footer",
    }
}

/// kind → (count, bytes) by re-encoding every record in order.
fn per_kind(path: &Path) -> BTreeMap<&'static str, (u64, u64)> {
    let f = std::fs::File::open(path).unwrap();
    let mut rd = TraceReader::new(BufReader::with_capacity(1 << 20, f));
    let mut m: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    let mut w: Option<TraceWriter<std::io::Sink>> = None;
    while let Ok(Some(r)) = rd.next_record() {
        if let Record::Header(h) = &r {
            let nw = TraceWriter::new(std::io::sink(), h).unwrap();
            let e = m.entry("header").or_default();
            e.0 += 1;
            e.1 += nw.bytes();
            w = Some(nw);
            continue;
        }
        let Some(wr) = w.as_mut() else { continue };
        let before = wr.bytes();
        wr.write(&r).unwrap();
        let e = m.entry(kind_name(&r)).or_default();
        e.0 += 1;
        e.1 += wr.bytes() - before;
    }
    m
}

struct SizeRun {
    bytes: u64,
    events: u64,
    records: u64,
    kinds: BTreeMap<&'static str, (u64, u64)>,
}

fn traced(cmd: &[String]) -> SizeRun {
    let shm = shm_dir();
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("t.msgpack");
    let f = run(&mut collect_cmd(&trace, shm.path(), cmd, &[]), Duration::from_secs(300));
    ok(&f, "traced workload");
    let facts = trace_facts(&trace);
    assert_eq!(facts.dropped, 0, "events were dropped: sizes would be wrong");
    SizeRun { bytes: facts.bytes, events: facts.events, records: facts.records, kinds: per_kind(&trace) }
}

fn sizes(rep: &mut Report) {
    let q = quick();
    let v = testlib("v081");
    let driver = v.join("ttfake_driver").display().to_string();
    let bc = bench_churn("v081").display().to_string();
    let (i1, i2) = if q { (50, 500) } else { (200, 4000) };
    let churn_n = if q { 50_000 } else { 500_000 };
    let one = traced(&[driver.clone(), "mesh".into(), "8".into()]);
    let a = traced(&[bc.clone(), "mesh_loop".into(), "8".into(), i1.to_string()]);
    let b = traced(&[bc.clone(), "mesh_loop".into(), "8".into(), i2.to_string()]);
    let c = traced(&[bc.clone(), "churn".into(), churn_n.to_string(), "warmup=0".into()]);
    let incr = (b.bytes - a.bytes) as f64 / (b.events - a.events) as f64;
    let mut t = Table::new(&["workload", "events", "records", "trace bytes", "bytes/event (whole file)", "command"]);
    for (name, r, cmd) in [
        ("ttfake_driver mesh 8 (one run)", &one, "ttalloc-collect --out T -- ttfake_driver mesh 8".to_string()),
        (&*format!("mesh_loop 8 × {i1}"), &a, format!("ttalloc-collect --out T -- bench_churn-v081 mesh_loop 8 {i1}")),
        (&*format!("mesh_loop 8 × {i2}"), &b, format!("ttalloc-collect --out T -- bench_churn-v081 mesh_loop 8 {i2}")),
        (&*format!("churn {churn_n} pairs"), &c, format!("ttalloc-collect --out T -- bench_churn-v081 churn {churn_n} warmup=0")),
    ] {
        t.row(vec![name.to_string(), r.events.to_string(), r.records.to_string(), r.bytes.to_string(), f1(r.bytes as f64 / r.events as f64), cmd]);
    }
    t.row(vec![
        format!("mesh_loop increment ({i2} − {i1} iterations)"),
        (b.events - a.events).to_string(),
        (b.records - a.records).to_string(),
        (b.bytes - a.bytes).to_string(),
        f1(incr),
        "difference of the two rows above".into(),
    ]);
    rep.table("Target 4: trace bytes per event (v081, collector launch mode)", &t);

    let mut t = Table::new(&["record kind", &format!("count (mesh_loop × {i2})"), "bytes/record", &format!("count (churn {churn_n})"), "bytes/record"]);
    let kinds: std::collections::BTreeSet<&str> = b.kinds.keys().chain(c.kinds.keys()).copied().collect();
    for k in kinds {
        let x = b.kinds.get(k).copied().unwrap_or_default();
        let y = c.kinds.get(k).copied().unwrap_or_default();
        let per = |(n, by): (u64, u64)| if n == 0 { "–".to_string() } else { f1(by as f64 / n as f64) };
        t.row(vec![k.into(), x.0.to_string(), per(x), y.0.to_string(), per(y)]);
    }
    rep.table("Target 4: bytes per record kind (re-encoded with TraceWriter)", &t);
    let whole = b.bytes as f64 / b.events as f64;
    rep.say(&format!(
        "Target 4 (≤ 24 B/event on a long mesh workload): {:.1} B/event over the whole {i2}-iteration trace, {:.1} B/event incrementally → {}\n",
        whole,
        incr,
        verdict(whole <= 24.0 && incr <= 24.0)
    ));
}

/// A deterministic 64-bit LCG (no rand dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 11
    }
}

/// Writes a trace of `events` alloc/free events: 8 chips, DRAM and L1, up to
/// `max_live` buffers live at once, realistic per-event deltas. Returns bytes.
fn synthesize(path: &Path, events: u64, max_live: usize) -> u64 {
    let f = std::fs::File::create(path).unwrap();
    let header = TraceHeader {
        magic: TRACE_MAGIC.into(),
        format_version: TRACE_FORMAT_VERSION,
        tool_version: "bench".into(),
        host: "bench".into(),
        collector_pid: 1,
        started_real_ns: 1,
        command: vec!["synthetic".into()],
    };
    let mut w = TraceWriter::new(BufWriter::with_capacity(1 << 20, f), &header).unwrap();
    w.write(&Record::Process(ProcessInfo {
        p: 0,
        pid: 4242,
        start_ticks: 1,
        exe: "synthetic".into(),
        created_mono_ns: 1_000_000,
        created_real_ns: 1,
        shim_info: "{}".into(),
        attach: "from-start".into(),
    }))
    .unwrap();
    let mut rng = Lcg(7);
    // (object, alloc seq) of live buffers
    let mut live: Vec<(u64, u64)> = Vec::with_capacity(max_live);
    let mut next_obj = 0x5555_0000_0000u64;
    let mut ts = 1_000_000u64;
    for seq in 0..events {
        ts += 200 + rng.next() % 600;
        let ev = Ev { p: 0, seq, ts_ns: ts, tid: 4242 + (rng.next() % 4) as u32 };
        let want_alloc = live.is_empty() || (live.len() < max_live && rng.next() % 100 < 52);
        if want_alloc {
            next_obj += 0x80;
            let chip = (rng.next() % 8) as i32;
            let l1 = rng.next().is_multiple_of(4);
            let size = if l1 { 1024 * (1 + rng.next() % 64) } else { 2048 * (1 + rng.next() % 2048) };
            w.write(&Record::Alloc(AllocRec {
                ev,
                chip,
                btype: if l1 { 1 } else { 0 },
                flags: 0,
                object: next_obj,
                address: 0x12_0040 + (rng.next() % (1 << 28)) / 32 * 32,
                size,
                page_size: if l1 { 1024 } else { 2048 },
            }))
            .unwrap();
            live.push((next_obj, seq));
        } else {
            let i = (rng.next() as usize) % live.len();
            let (_, aseq) = live.swap_remove(i);
            w.write(&Record::Free { ev, alloc_seq: aseq }).unwrap();
        }
    }
    w.write(&Record::ProcessEnd(ProcessEnd { p: 0, last_seq: events, how: "exited".into(), dropped: 0, problems: vec![] })).unwrap();
    w.write(&Record::Footer(Footer { records: w.records() + 1, processes: 1, dropped: 0, unknown_frees: 0, ended_real_ns: 2 })).unwrap();
    w.flush().unwrap();
    w.bytes()
}

fn replay(rep: &mut Report) {
    let q = quick();
    let mut sizes: Vec<u64> = vec![if q { 1_000_000 } else { 10_000_000 }];
    if std::env::var("TTALLOC_BENCH_BIG").is_ok_and(|v| v == "1") {
        sizes.push(100_000_000);
    }
    let max_live = 100_000;
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Table::new(&["events", "trace MiB", "how", "wall s", "events/s", "peak RSS MiB", "command"]);
    for &n in &sizes {
        let path = tmp.path().join(format!("synthetic-{n}.msgpack"));
        let t0 = Instant::now();
        let bytes = synthesize(&path, n, max_live);
        let gen = t0.elapsed();
        let mib = bytes as f64 / (1 << 20) as f64;
        t.row(vec![
            n.to_string(),
            f1(mib),
            "write (TraceWriter, in-process)".into(),
            f2(gen.as_secs_f64()),
            format!("{:.2} M", n as f64 / gen.as_secs_f64() / 1e6),
            "–".into(),
            format!("synthesize(): {n} alloc/free events, 8 chips, ≤ {max_live} live"),
        ]);
        // Warm the page cache so both replays read from memory alike.
        if let Ok(mut f) = std::fs::File::open(&path) {
            let _ = std::io::copy(&mut f, &mut std::io::sink());
        }
        match cli() {
            Some(ttalloc) => {
                let f = run(Command::new(&ttalloc).arg("replay").arg(&path).arg("--json"), Duration::from_secs(900));
                ok(&f, "ttalloc replay --json");
                let v: serde_json::Value = serde_json::from_str(&f.stdout).expect("replay --json prints JSON");
                assert!(v.get("chips").is_some(), "replay JSON without chips");
                t.row(vec![
                    n.to_string(),
                    f1(mib),
                    "`ttalloc replay --json` (process)".into(),
                    f2(f.wall.as_secs_f64()),
                    format!("{:.2} M", n as f64 / f.wall.as_secs_f64() / 1e6),
                    f1(f.maxrss_kib as f64 / 1024.0),
                    format!("ttalloc replay synthetic-{n}.msgpack --json"),
                ]);
            }
            None => rep.say("`ttalloc` binary not built: CLI replay skipped (in-process Model only).\n"),
        }
        // In a child process (this binary again), so its peak RSS is the model's alone.
        let exe = std::env::current_exe().expect("own path");
        let f = run(Command::new(exe).env("TTALLOC_BENCH_CHILD_REPLAY", &path), Duration::from_secs(900));
        ok(&f, "in-process Model replay");
        let v = last_json(&f.stdout);
        let secs = f64_of(&v, "secs");
        t.row(vec![
            n.to_string(),
            f1(mib),
            "ttalloc_trace::Model (TraceReader + Model::apply)".into(),
            f2(secs),
            format!("{:.2} M", n as f64 / secs / 1e6),
            f1(f.maxrss_kib as f64 / 1024.0),
            "TraceReader + Model::apply over the file, in a child process".into(),
        ]);
        let _ = std::fs::remove_file(&path);
    }
    rep.table("Target 5: replay of a large synthetic trace", &t);
}

/// Child mode: replay one file with the model, print {"secs","records","chip_events"}.
fn child_replay(path: &Path) {
    let t0 = Instant::now();
    let mut rd = TraceReader::new(BufReader::with_capacity(1 << 20, std::fs::File::open(path).unwrap()));
    let mut model = Model::new();
    let mut chip_events = 0u64;
    while let Some(r) = rd.next_record().expect("readable") {
        model.apply(&r, &mut |_| chip_events += 1);
    }
    assert!(rd.complete);
    println!(r#"{{"secs":{},"records":{},"chip_events":{}}}"#, t0.elapsed().as_secs_f64(), rd.records, chip_events);
}

fn main() {
    if let Some(p) = std::env::var_os("TTALLOC_BENCH_CHILD_REPLAY") {
        child_replay(Path::new(&p));
        return;
    }
    let mut rep = Report::new("trace_size_replay");
    if only("size") {
        sizes(&mut rep);
    }
    if only("replay") {
        replay(&mut rep);
    }
}
