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
use std::path::{Path, PathBuf};
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

/// The header of a synthesized trace.
fn bench_header(command: &str) -> TraceHeader {
    TraceHeader {
        magic: TRACE_MAGIC.into(),
        format_version: TRACE_FORMAT_VERSION,
        tool_version: "bench".into(),
        host: "bench".into(),
        collector_pid: 1,
        started_real_ns: 1,
        command: vec![command.into()],
    }
}

/// Writes a trace of `events` alloc/free events: 8 chips, DRAM and L1, up to
/// `max_live` buffers live at once, realistic per-event deltas. Returns bytes.
fn synthesize(path: &Path, events: u64, max_live: usize) -> u64 {
    let f = std::fs::File::create(path).unwrap();
    let header = bench_header("synthetic");
    let mut w = TraceWriter::new(BufWriter::with_capacity(1 << 20, f), &header).unwrap();
    w.write(&Record::Process(Box::new(ProcessInfo {
        p: 0,
        pid: 4242,
        start_ticks: 1,
        exe: "synthetic".into(),
        created_mono_ns: 1_000_000,
        created_real_ns: 1,
        shim_info: "{}".into(),
        attach: "from-start".into(),
    })))
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
    w.write(&Record::ProcessEnd(Box::new(ProcessEnd { p: 0, last_seq: events, how: "exited".into(), dropped: 0, problems: vec![] }))).unwrap();
    w.write(&Record::Footer(Footer { records: w.records() + 1, processes: 1, dropped: 0, unknown_frees: 0, ended_real_ns: 2 })).unwrap();
    w.flush().unwrap();
    w.bytes()
}

/// One way of replaying a trace, run once per round.
struct Replayer {
    name: String,
    cmd: String,
    run: Box<dyn Fn(&Path) -> Finished>,
    /// Seconds of the replay itself (the model child reports its own; else wall).
    secs: fn(&Finished) -> f64,
    cli: bool,
}

fn replayers(baseline: Option<&Path>) -> Vec<Replayer> {
    let mut v = Vec::new();
    let mut builds: Vec<(&str, Option<PathBuf>, PathBuf)> = vec![("this build", cli(), std::env::current_exe().expect("own path"))];
    if let Some(b) = baseline {
        builds.push(("baseline", Some(b.join("ttalloc")).filter(|p| p.exists()), b.join("trace_size_replay")));
    }
    for (which, ttalloc, model) in builds {
        if let Some(t) = ttalloc {
            v.push(Replayer {
                name: format!("`ttalloc replay --json` ({which})"),
                cmd: format!("{} replay T --json", if which == "baseline" { "BASELINE/ttalloc" } else { "ttalloc" }),
                run: Box::new(move |p: &Path| run(Command::new(&t).arg("replay").arg(p).arg("--json"), Duration::from_secs(1800))),
                secs: |f| f.wall.as_secs_f64(),
                cli: true,
            });
        }
        if model.exists() {
            v.push(Replayer {
                name: format!("TraceReader + Model, in-process ({which})"),
                cmd: format!("TTALLOC_BENCH_CHILD_REPLAY=T {}", if which == "baseline" { "BASELINE/trace_size_replay" } else { "trace_size_replay" }),
                run: Box::new(move |p: &Path| run(Command::new(&model).env("TTALLOC_BENCH_CHILD_REPLAY", p), Duration::from_secs(1800))),
                secs: |f| f64_of(&last_json(&f.stdout), "secs"),
                cli: false,
            });
        }
    }
    v
}

/// Target 5: `ttalloc replay` (the summary: one pass, the file decoded on a
/// second thread) and the bare reader + model, on synthetic traces, this
/// build against a baseline build (`TTALLOC_BENCH_BASELINE=DIR` holding its
/// `ttalloc` and `trace_size_replay` binaries), interleaved per round.
fn replay(rep: &mut Report) {
    let q = quick();
    let n = if q { 1_000_000 } else { 10_000_000 };
    let r = rounds(if q { 1 } else { 3 });
    // (shape, events, rounds, compare with the baseline)
    let mut sizes: Vec<(&str, u64, usize, bool)> = vec![("random", n, r, true), ("window", n, r, true)];
    if std::env::var("TTALLOC_BENCH_BIG").is_ok_and(|v| v == "1") {
        sizes.push(("window", 100_000_000, 1, false));
        sizes.push(("random", 100_000_000, 1, false));
    }
    let baseline = std::env::var_os("TTALLOC_BENCH_BASELINE").map(PathBuf::from);
    let max_live = 100_000;
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Table::new(&["trace", "events", "trace MiB", "how", "rounds", "wall s (median)", "events/s", "CPU s", "peak RSS MiB", "vs baseline", "command"]);
    for &(shape, n, rounds, compare) in &sizes {
        let path = tmp.path().join(format!("synthetic-{shape}-{n}.msgpack"));
        let t0 = Instant::now();
        let bytes = if shape == "random" { synthesize(&path, n, max_live) } else { synthesize_window(&path, n) };
        let gen = t0.elapsed();
        let mib = bytes as f64 / (1 << 20) as f64;
        t.row(vec![
            shape.into(),
            n.to_string(),
            f1(mib),
            "write (TraceWriter, in-process)".into(),
            "1".into(),
            f2(gen.as_secs_f64()),
            format!("{:.2} M", n as f64 / gen.as_secs_f64() / 1e6),
            "–".into(),
            "–".into(),
            "–".into(),
            format!("TTALLOC_BENCH_SYNTHESIZE=T:{n}:{shape}"),
        ]);
        // Warm the page cache so every replay reads from memory alike.
        if let Ok(mut f) = std::fs::File::open(&path) {
            let _ = std::io::copy(&mut f, &mut std::io::sink());
        }
        let rs = replayers(if compare { baseline.as_deref() } else { None });
        if !rs.iter().any(|r| r.cli) {
            rep.say("`ttalloc` binary not built: CLI replay skipped (in-process Model only).\n");
        }
        // (secs, cpu, rss) per replayer, rounds interleaved with the order rotated.
        let mut got: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); rs.len()];
        let mut answer: Option<serde_json::Value> = None;
        for round in 0..rounds {
            for k in 0..rs.len() {
                let i = (k + round) % rs.len();
                let f = (rs[i].run)(&path);
                ok(&f, &rs[i].name);
                if rs[i].cli {
                    // Every build must give the same answers.
                    let v: serde_json::Value = serde_json::from_str(&f.stdout).expect("replay --json prints JSON");
                    assert!(v.get("chips").is_some(), "replay JSON without chips");
                    match &answer {
                        None => answer = Some(v),
                        Some(a) => assert_eq!(a, &v, "{} answers differently", rs[i].name),
                    }
                }
                got[i].push(((rs[i].secs)(&f), f.cpu.as_secs_f64(), f.maxrss_kib as f64 / 1024.0));
            }
        }
        let med = |i: usize| median(&got[i].iter().map(|g| g.0).collect::<Vec<_>>());
        for (i, r) in rs.iter().enumerate() {
            let base = rs.iter().position(|b| b.cli == r.cli && b.name.contains("baseline"));
            let ratio = match base {
                Some(b) if b != i => format!("{:.1}× faster", med(b) / med(i)),
                _ => "–".into(),
            };
            t.row(vec![
                shape.into(),
                n.to_string(),
                f1(mib),
                r.name.clone(),
                rounds.to_string(),
                f2(med(i)),
                format!("{:.2} M", n as f64 / med(i) / 1e6),
                f2(median(&got[i].iter().map(|g| g.1).collect::<Vec<_>>())),
                f1(got[i].iter().map(|g| g.2).fold(0.0, f64::max)),
                ratio,
                r.cmd.clone(),
            ]);
        }
        let _ = std::fs::remove_file(&path);
    }
    rep.table("Target 5: replay of a large synthetic trace", &t);
    rep.say("Traces: `random` = synthesize(): alloc/free on 8 chips, DRAM and L1, random sizes, up to 10^5 buffers live, random frees (the live set does not fit in cache); `window` = the cli scale test's shape: 2000 live, mesh allocations and CBs, the peak at the very end (what was live at the peak is kept until the end of the file).\n");
    rep.say("`ttalloc replay --json` is the whole summary (peaks, the live sets at the peaks, counts, leaks) in one pass over the file, which a second thread decodes ahead of it (session 6's baseline: two passes, the second trailing the first on a second thread). Its CPU s counts both threads.\n");
}

/// Child mode: replay one file with the model, print {"secs","records","chip_events"}.
fn child_replay(path: &Path) {
    let t0 = Instant::now();
    let mut rd = TraceReader::new(BufReader::with_capacity(1 << 20, std::fs::File::open(path).unwrap()));
    let mut model = Model::new();
    let mut chip_events = 0u64;
    // In batches through `apply_all`, as the collector's model thread applies them.
    let mut batch = Vec::with_capacity(1024);
    loop {
        let next = rd.next_record().expect("readable");
        let end = next.is_none();
        batch.extend(next);
        if batch.len() == batch.capacity() || end {
            model.apply_all(&batch, &mut |_| chip_events += 1);
            batch.clear();
        }
        if end {
            break;
        }
    }
    assert!(rd.complete);
    println!(r#"{{"secs":{},"records":{},"chip_events":{}}}"#, t0.elapsed().as_secs_f64(), rd.records, chip_events);
}

/// The scale test's shape (cli/tests/scale.rs): a sliding window of 2000
/// live buffers (allocs and frees alternate), a mesh allocation every 64th
/// event, a CB program every 256th, and the peak at the very end — so a
/// summary keeps what was live at the peak to the end. Returns bytes.
fn synthesize_window(path: &Path, events: u64) -> u64 {
    const WINDOW: u64 = 2_000;
    let header = bench_header("window");
    let mut w = TraceWriter::new(BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap()), &header).unwrap();
    w.write(&Record::Process(Box::new(ProcessInfo { p: 0, pid: 42, start_ticks: 0, exe: "big".into(), created_mono_ns: 0, created_real_ns: 0, shim_info: "{}".into(), attach: "from-start".into() }))).unwrap();
    w.write(&Record::Mesh(MeshInfo { p: 0, slot: 0, mesh: 1, chips: (0..8).collect() })).unwrap();
    let mut live: std::collections::VecDeque<u64> = Default::default();
    let ev = |seq: u64| Ev { p: 0, seq, ts_ns: 1_000_000_000 + seq * 500, tid: 7 };
    for i in 0..events {
        if live.len() as u64 >= WINDOW && i < events - 3 * WINDOW {
            let a = live.pop_front().unwrap();
            w.write(&Record::Free { ev: ev(i), alloc_seq: a }).unwrap();
        } else if i % 256 == 0 {
            w.write(&Record::CbAlloc(CbRec { ev: ev(i), chip: 0, program: 0x1000 + (i % 4096), address: 0x10000, size: 32 << 10, flags: 0 })).unwrap();
            live.push_back(i);
        } else {
            let chip = if i % 64 == 0 { -2 } else { (i % 8) as i32 };
            let btype = if i % 3 == 0 { 1 } else { 0 };
            w.write(&Record::Alloc(AllocRec { ev: ev(i), chip, btype, flags: 0, object: 0x7f00_0000_0000 + i * 64, address: 0x100000 + (i % 1024) * 4096, size: 4096 + (i % 7) * 1024, page_size: 2048 })).unwrap();
            live.push_back(i);
        }
    }
    w.write(&Record::ProcessEnd(Box::new(ProcessEnd { p: 0, last_seq: events - 1, how: "exited".into(), dropped: 0, problems: vec![] }))).unwrap();
    w.write(&Record::Footer(Footer { records: events + 3, processes: 1, ..Footer::default() })).unwrap();
    w.flush().unwrap();
    w.bytes()
}

fn main() {
    if let Some(p) = std::env::var_os("TTALLOC_BENCH_CHILD_REPLAY") {
        child_replay(Path::new(&p));
        return;
    }
    // `TTALLOC_BENCH_SYNTHESIZE=PATH:EVENTS[:window|random]`: only write a
    // synthetic trace (for manual runs, e.g. the 10^8-event replay in docs/performance.md).
    if let Ok(spec) = std::env::var("TTALLOC_BENCH_SYNTHESIZE") {
        let parts: Vec<&str> = spec.split(':').collect();
        let (path, n) = (Path::new(parts[0]), parts.get(1).and_then(|n| n.parse::<u64>().ok()).expect("TTALLOC_BENCH_SYNTHESIZE=PATH:EVENTS[:window|random]"));
        let t0 = Instant::now();
        let bytes = match parts.get(2).copied().unwrap_or("window") {
            "random" => synthesize(path, n, 100_000),
            _ => synthesize_window(path, n),
        };
        println!("{}: {n} events, {bytes} bytes, written in {:.1} s", path.display(), t0.elapsed().as_secs_f64());
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
