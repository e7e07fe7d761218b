//! Shared helpers for ttalloc's performance benchmarks (`cargo bench -p ttalloc-e2e`).
//!
//! Everything runs the real release artefacts (`libttalloc.so`,
//! `ttalloc-collect`, `ttalloc`) over the fake tt-metal (tests/testlib), so
//! that the numbers include the PLT hop, the hook, the original, and a real
//! collector draining on the other core. No Tenstorrent hardware is involved.
//!
//! Where things are found:
//! * artefacts: `$TTALLOC_ARTEFACTS`, else `$CARGO_TARGET_DIR/release`, else the
//!   `release/` dir this bench binary was built into, else `<repo>/target/release`
//!   (the first that holds `libttalloc.so` and `ttalloc-collect`); found
//!   there, an artefact older than its crates' sources stops the bench;
//! * test library: `$TTALLOC_TESTLIB`, else `<repo>/target/testlib` (`make testlib`);
//! * helper C++ programs (tests/workloads/bench_churn.cpp, seed_baseline.cpp)
//!   are compiled with g++ into `<artefacts>/bench-bin/` when missing or stale.
//!
//! Knobs (environment): `TTALLOC_BENCH_ROUNDS` (interleaved rounds),
//! `TTALLOC_BENCH_QUICK=1` (smaller sizes, for a smoke run).
#![allow(dead_code)]

use std::io::{BufRead, Read};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

fn has_artefacts(d: &Path) -> bool {
    d.join("libttalloc.so").is_file() && d.join("ttalloc-collect").is_file()
}

/// The directory holding the release artefacts.
pub fn artefacts() -> PathBuf {
    if let Some(d) = std::env::var_os("TTALLOC_ARTEFACTS") {
        let d = PathBuf::from(d);
        assert!(has_artefacts(&d), "TTALLOC_ARTEFACTS={}: no libttalloc.so + ttalloc-collect there", d.display());
        return d;
    }
    let mut candidates = Vec::new();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let t = PathBuf::from(t);
        let t = if t.is_relative() { root().join(t) } else { t };
        candidates.push(t.join("release"));
    }
    if let Ok(exe) = std::env::current_exe() {
        // <target>/release/deps/<bench>-<hash>
        if let Some(release) = exe.parent().and_then(Path::parent) {
            candidates.push(release.to_path_buf());
        }
    }
    candidates.push(root().join("target/release"));
    for c in &candidates {
        if has_artefacts(c) {
            // Once: artefacts are looked up for every command a bench runs.
            static CHECKED: std::sync::Once = std::sync::Once::new();
            CHECKED.call_once(|| refuse_stale(c));
            return c.clone();
        }
    }
    panic!(
        "libttalloc.so / ttalloc-collect not found in any of {:?}: run `make` (or `cargo build --release -p ttalloc-shim -p ttalloc-collector`) first, or set TTALLOC_ARTEFACTS",
        candidates
    );
}

/// Each release artefact and the crates it is built from.
const ARTEFACT_SOURCES: &[(&str, &[&str])] = &[
    ("libttalloc.so", &["shim", "ring", "symbols"]),
    ("ttalloc-collect", &["collector", "ring", "trace"]),
    ("ttalloc", &["cli", "ring", "symbols", "trace"]),
];

/// Stops a bench about to measure an artefact older than its sources:
/// `cargo bench` does not rebuild them (`make bench` does), and the numbers
/// would silently be those of an earlier build. A build benched on purpose
/// is named with `TTALLOC_ARTEFACTS` (or as a baseline), which is not checked.
fn refuse_stale(dir: &Path) {
    for (name, crates) in ARTEFACT_SOURCES {
        let p = dir.join(name);
        let (Some(built), Some((source, changed))) = (mtime(&p), newest_source(crates)) else { continue };
        if built < changed {
            panic!("{} is older than {}: run `make bench` (or `make` first), or set TTALLOC_ARTEFACTS to bench that build on purpose", p.display(), source.display());
        }
    }
}

/// The most recently changed source file of `crates`, and when.
fn newest_source(crates: &[&str]) -> Option<(PathBuf, std::time::SystemTime)> {
    let mut stack: Vec<PathBuf> = crates.iter().map(|c| root().join(c).join("src")).collect();
    let mut newest: Option<(PathBuf, std::time::SystemTime)> = None;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(t) = mtime(&p) {
                let newer = match &newest {
                    Some((_, n)) => t > *n,
                    None => true,
                };
                if newer {
                    newest = Some((p, t));
                }
            }
        }
    }
    newest
}

pub fn artefact(name: &str) -> PathBuf {
    artefacts().join(name)
}

/// The `ttalloc` CLI, if built.
pub fn cli() -> Option<PathBuf> {
    let p = artefacts().join("ttalloc");
    p.is_file().then_some(p)
}

pub fn testlib(variant: &str) -> PathBuf {
    let base = std::env::var_os("TTALLOC_TESTLIB").map(PathBuf::from).unwrap_or_else(|| root().join("target/testlib"));
    let p = base.join(variant);
    assert!(p.join("libtt_metal.so").is_file(), "{} missing: run `make testlib`", p.display());
    p
}

pub fn quick() -> bool {
    std::env::var("TTALLOC_BENCH_QUICK").is_ok_and(|v| v == "1")
}

pub fn rounds(default: usize) -> usize {
    std::env::var("TTALLOC_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(default)
}

/// Whether a section runs: all unless `TTALLOC_BENCH_ONLY=a,b` names some.
pub fn only(section: &str) -> bool {
    match std::env::var("TTALLOC_BENCH_ONLY") {
        Ok(v) if !v.is_empty() => v.split(',').any(|s| s.trim() == section),
        _ => true,
    }
}

pub fn bench_bin() -> PathBuf {
    let d = artefacts().join("bench-bin");
    std::fs::create_dir_all(&d).expect("bench-bin dir");
    d
}

fn mtime(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Compiles `args` into `out` with g++ unless `out` is newer than every input.
fn gxx(out: &Path, inputs: &[PathBuf], args: &[String]) -> PathBuf {
    let fresh = match mtime(out) {
        Some(t) => inputs.iter().all(|i| mtime(i).is_some_and(|m| m <= t)),
        None => false,
    };
    if !fresh {
        let o = Command::new(std::env::var("CXX").unwrap_or_else(|_| "g++".into()))
            .args(args)
            .arg("-o")
            .arg(out)
            .output()
            .expect("run g++ (the benches compile small C++ helpers)");
        assert!(o.status.success(), "g++ failed for {}:\n{}", out.display(), String::from_utf8_lossy(&o.stderr));
    }
    out.to_path_buf()
}

/// `bench_churn` linked against one test-library variant (RUNPATH = that dir).
pub fn bench_churn(variant: &str) -> PathBuf {
    let lib = testlib(variant);
    let src = root().join("tests/workloads/bench_churn.cpp");
    let inc = root().join("tests/testlib/include");
    let out = bench_bin().join(format!("bench_churn-{variant}"));
    let args: Vec<String> = vec![
        "-O2".into(),
        "-g".into(),
        "-std=c++17".into(),
        format!("-I{}", inc.display()),
        src.display().to_string(),
        format!("-L{}", lib.display()),
        "-Wl,--no-as-needed".into(),
        "-lttnn_fake".into(),
        "-ltt_metal".into(),
        format!("-Wl,-rpath,{}", lib.display()),
        "-pthread".into(),
    ];
    gxx(&out, &[src, inc.join("ttnn_fake.h"), lib.join("libtt_metal.so"), lib.join("libttnn_fake.so")], &args)
}

/// (preload library, reader) of the seeds' design (tests/workloads/seed_baseline.cpp).
pub fn seed_baseline() -> (PathBuf, PathBuf) {
    let src = root().join("tests/workloads/seed_baseline.cpp");
    let lib = gxx(
        &bench_bin().join("libseed_baseline.so"),
        std::slice::from_ref(&src),
        &["-O2".into(), "-std=c++17".into(), "-shared".into(), "-fPIC".into(), src.display().to_string(), "-ldl".into(), "-pthread".into()],
    );
    let reader = gxx(
        &bench_bin().join("seed_reader"),
        std::slice::from_ref(&src),
        &["-O2".into(), "-std=c++17".into(), "-DSEED_BASELINE_READER".into(), src.display().to_string()],
    );
    (lib, reader)
}

/// An isolated ring directory (tmpfs when available), removed on drop.
pub fn shm_dir() -> tempfile::TempDir {
    let base = if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
    tempfile::Builder::new().prefix("ttalloc-bench-").tempdir_in(base).expect("shm tempdir")
}

pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
    /// Peak RSS of the child (KiB): its VmHWM, polled from /proc while it runs
    /// (wait4's ru_maxrss would include the parent's RSS at fork time).
    pub maxrss_kib: i64,
    /// CPU time of the child (user + system).
    pub cpu: Duration,
}

/// Waits for `child` with wait4 (to get its rusage), killing it after `timeout`.
pub fn wait_timeout(mut child: Child, timeout: Duration, started: Instant) -> Finished {
    let mut out = String::new();
    let mut err = String::new();
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = so.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = se.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut hwm_kib = 0i64;
    loop {
        if let Some(h) = vm_hwm_kib(pid as u32) {
            hwm_kib = hwm_kib.max(h);
        }
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            break;
        }
        if started.elapsed() > timeout {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
            err.push_str(&format!("[bench: killed after {timeout:?}]\n"));
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let wall = started.elapsed();
    out.push_str(&t_out.join().unwrap_or_default());
    err.push_str(&t_err.join().unwrap_or_default());
    use std::os::unix::process::ExitStatusExt;
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    Finished {
        status: ExitStatus::from_raw(status),
        stdout: out,
        stderr: err,
        wall,
        maxrss_kib: hwm_kib,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
    }
}

/// VmHWM (peak resident set, KiB) of a live process.
pub fn vm_hwm_kib(pid: u32) -> Option<i64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Runs a command to completion (stdout/stderr captured), with a timeout.
pub fn run(cmd: &mut Command, timeout: Duration) -> Finished {
    let started = Instant::now();
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    wait_timeout(child, timeout, started)
}

pub fn ok(f: &Finished, what: &str) {
    assert!(f.status.success(), "{what}: {:?}\nstdout:\n{}\nstderr:\n{}", f.status, f.stdout, f.stderr);
}

/// The last JSON object line of a program's stdout.
pub fn last_json(stdout: &str) -> serde_json::Value {
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok().filter(|v| v.is_object()))
        .unwrap_or_else(|| panic!("no JSON line in:\n{stdout}"))
}

pub fn f64_of(v: &serde_json::Value, k: &str) -> f64 {
    v.get(k).and_then(|x| x.as_f64()).unwrap_or_else(|| panic!("{k} missing in {v}"))
}

/// `ttalloc-collect --out TRACE --shm-dir D -q -- CMD…` (launch mode).
pub fn collect_cmd(trace: &Path, shm: &Path, cmd: &[String], env: &[(&str, String)]) -> Command {
    // A baseline build's shim (`TTALLOC_LIB` in `env`) is drained by that build's own
    // collector when it sits beside it: the ring format may differ between builds.
    let sibling = env
        .iter()
        .find(|(k, _)| *k == "TTALLOC_LIB")
        .and_then(|(_, lib)| Path::new(lib).parent().map(|d| d.join("ttalloc-collect")))
        .filter(|p| p.exists());
    let mut c = Command::new(sibling.unwrap_or_else(|| artefact("ttalloc-collect")));
    c.arg("--out").arg(trace).arg("--shm-dir").arg(shm).arg("-q").arg("--").args(cmd);
    c.env("TTALLOC_LIB", artefact("libttalloc.so"));
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// What a trace's footer and process ends say about losses and problems.
#[derive(Default, Debug, Clone)]
pub struct TraceFacts {
    pub records: u64,
    pub events: u64,
    pub dropped: u64,
    pub gaps: u64,
    pub complete: bool,
    pub problems: Vec<(String, u64)>,
    pub bytes: u64,
    /// Records of kind Process / Mesh / ProcessEnd / Header / Footer (bookkeeping).
    pub fixed_records: u64,
}

pub fn trace_facts(path: &Path) -> TraceFacts {
    use ttalloc_trace::Record;
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut rd = ttalloc_trace::TraceReader::new(std::io::BufReader::with_capacity(1 << 20, f));
    let mut t = TraceFacts { bytes, ..Default::default() };
    while let Ok(Some(r)) = rd.next_record() {
        t.records += 1;
        match &r {
            Record::Footer(f) => t.dropped = t.dropped.max(f.dropped),
            Record::ProcessEnd(e) => {
                t.dropped = t.dropped.max(e.dropped);
                t.problems.extend(e.problems.iter().cloned());
            }
            Record::Gap { .. } => t.gaps += 1,
            _ => {}
        }
        match r {
            Record::Header(_) | Record::Footer(_) | Record::Process(_) | Record::Mesh(_) | Record::ProcessEnd(_) => {
                t.fixed_records += 1
            }
            Record::Alloc(_)
            | Record::Free { .. }
            | Record::UnknownFree { .. }
            | Record::CbAlloc(_)
            | Record::CbFree { .. }
            | Record::ProgramEnd { .. }
            | Record::DfbAlloc(_)
            | Record::DeviceClose { .. }
            | Record::AllocFailed { .. } => t.events += 1,
            _ => {}
        }
    }
    t.complete = rd.complete;
    t
}

// ---------------------------------------------------------------- statistics

pub fn median(v: &[f64]) -> f64 {
    percentile(v, 0.5)
}

pub fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pos = q * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

pub fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

// ------------------------------------------------------------------- output

/// A plain-text table (also valid Markdown).
pub struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(head: &[&str]) -> Table {
        Table { head: head.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
    pub fn render(&self) -> String {
        let n = self.head.len();
        let mut w = vec![0usize; n];
        for r in std::iter::once(&self.head).chain(self.rows.iter()) {
            for (i, c) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |r: &Vec<String>| {
            let cells: Vec<String> = (0..n).map(|i| format!("{:<w$}", r.get(i).map(String::as_str).unwrap_or(""), w = w[i])).collect();
            format!("| {} |\n", cells.join(" | "))
        };
        let mut s = line(&self.head);
        s.push_str(&format!("|{}|\n", w.iter().map(|x| "-".repeat(x + 2)).collect::<Vec<_>>().join("|")));
        for r in &self.rows {
            s.push_str(&line(r));
        }
        s
    }
}

pub fn f0(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        format!("{x:.0}")
    }
}
pub fn f1(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        format!("{x:.1}")
    }
}
pub fn f2(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        format!("{x:.2}")
    }
}

pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "MET"
    } else {
        "MISSED"
    }
}

/// Prints a section and appends it to `<artefacts>/bench-results/<bench>.md`.
pub struct Report {
    path: PathBuf,
    text: String,
}

impl Report {
    pub fn new(bench: &str) -> Report {
        let dir = artefacts().join("bench-results");
        std::fs::create_dir_all(&dir).ok();
        let mut r = Report { path: dir.join(format!("{bench}.md")), text: String::new() };
        r.say(&format!("# {bench}\n\n{}\n", machine()));
        r
    }
    pub fn say(&mut self, s: &str) {
        println!("{s}");
        self.text.push_str(s);
        self.text.push('\n');
        let _ = std::fs::write(&self.path, &self.text);
    }
    pub fn table(&mut self, title: &str, t: &Table) {
        self.say(&format!("## {title}\n\n{}", t.render()));
    }
}

/// `nproc`, CPU model, load average: printed with every report.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!("machine: {cpus} CPUs, {model}; loadavg at start: {}", load.trim())
}

/// utime + stime of a live process, from /proc/PID/stat (clock ticks → Duration).
pub fn proc_cpu(pid: u32) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // fields after ')' start at field 3 (state); utime is field 14, stime 15.
    let ut: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Some(Duration::from_nanos((ut + st) * 1_000_000_000 / hz.max(1)))
}

/// Streams a child's stdout lines over a channel (a thread reads until EOF).
pub fn stdout_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let out = child.stdout.take().expect("child stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

pub fn sigint(child: &Child) {
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
}
