//! Helpers for end-to-end tests: run the real `ttalloc-collect` (launch or
//! two-terminal mode) over a workload preloaded with the real
//! `libttalloc.so`, against a variant of the test library (tests/testlib,
//! a faithful stand-in for libtt_metal.so — there is no Tenstorrent
//! hardware here), then replay the trace with the same model `ttalloc` uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use ttalloc_ring::BufferType;
use ttalloc_trace::{ChipEvent, ChipKind, Model, Record, TraceReader};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

/// A release artefact, built by `make build` (the test fails clearly if it is missing).
pub fn artefact(name: &str) -> PathBuf {
    let p = root().join("target/release").join(name);
    assert!(p.exists(), "{} missing: run `make` first (make test does)", p.display());
    p
}

pub fn testlib(variant: &str) -> PathBuf {
    let p = root().join("target/testlib").join(variant);
    assert!(p.join("libtt_metal.so").exists(), "{} missing: run `make testlib`", p.display());
    p
}

pub fn workload(name: &str) -> PathBuf {
    root().join("tests/workloads").join(name)
}

/// An isolated ring directory, so tests running in parallel never see each other's rings.
pub struct ShmDir(pub tempfile::TempDir);

impl ShmDir {
    pub fn new() -> ShmDir {
        let base = if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        ShmDir(tempfile::Builder::new().prefix("ttalloc-test-").tempdir_in(base).expect("tempdir"))
    }
    pub fn path(&self) -> &Path {
        self.0.path()
    }
    pub fn rings(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.path()).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).collect()
    }
}

pub struct Run {
    pub output: Output,
    pub trace: PathBuf,
}

/// `ttalloc-collect --out TRACE -- CMD…` with an isolated ring directory.
pub fn collect(shm: &ShmDir, trace: &Path, cmd: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(artefact("ttalloc-collect"));
    c.arg("--out").arg(trace).arg("--shm-dir").arg(shm.path()).arg("--").args(cmd);
    c.env("TTALLOC_LIB", artefact("libttalloc.so")).stdin(std::process::Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let output = c.output().expect("run ttalloc-collect");
    Run { output, trace: trace.to_path_buf() }
}

/// Everything a test wants to assert on, from one replay of a trace.
pub struct Replayed {
    pub model: Model,
    pub events: Vec<ChipEvent>,
    pub records: Vec<Record>,
    pub complete: bool,
    /// The byte offset where a cut-short trace ends inside a record.
    pub cut: Option<u64>,
}

impl Replayed {
    pub fn peak(&self, chip: i32, t: BufferType) -> u64 {
        self.model.usage.get(&(chip, t)).map_or(0, |u| u.peak)
    }
    pub fn current(&self, chip: i32, t: BufferType) -> u64 {
        self.model.usage.get(&(chip, t)).map_or(0, |u| u.current)
    }
    pub fn count(&self, kind: ChipKind) -> usize {
        self.events.iter().filter(|e| e.kind == kind).count()
    }
    pub fn count_on(&self, kind: ChipKind, chip: i32) -> usize {
        self.events.iter().filter(|e| e.kind == kind && e.chip == chip).count()
    }
    /// chip → number of events of `kind` and `btype`, with their byte sum.
    pub fn per_chip(&self, kind: ChipKind, t: BufferType) -> BTreeMap<i32, (usize, u64)> {
        let mut m = BTreeMap::new();
        for e in self.events.iter().filter(|e| e.kind == kind && e.btype == t) {
            let v = m.entry(e.chip).or_insert((0, 0));
            v.0 += 1;
            v.1 += e.size;
        }
        m
    }
    pub fn processes(&self) -> usize {
        self.model.procs.iter().filter(|p| p.info.is_some()).count()
    }
}

pub fn replay(trace: &Path) -> Replayed {
    let f = std::fs::File::open(trace).unwrap_or_else(|e| panic!("{}: {e}", trace.display()));
    let mut rd = TraceReader::new(std::io::BufReader::new(f));
    let mut model = Model::new();
    let mut events = Vec::new();
    let mut records = Vec::new();
    let mut cut = None;
    for r in rd.by_ref() {
        let r = match r {
            Ok(r) => r,
            // A writer killed or out of space leaves a trace readable up to the cut.
            Err(e) if e.truncated => {
                cut = Some(e.offset);
                break;
            }
            Err(e) => panic!("{}: {e}", trace.display()),
        };
        model.apply(&r, &mut |e| events.push(*e));
        records.push(r);
    }
    Replayed { model, events, records, complete: rd.complete, cut }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts a command succeeded, printing its output otherwise.
pub fn ok(o: &Output) {
    assert!(o.status.success(), "exit {:?}\nstdout:\n{}\nstderr:\n{}", o.status, stdout(o), stderr(o));
}

pub const MIB: u64 = 1 << 20;

/// Two-terminal mode: a collector running on its own, drained with SIGTERM.
pub struct Background {
    pub child: std::process::Child,
    pub trace: PathBuf,
}

pub fn start_collector(shm: &ShmDir, trace: &Path) -> Background {
    let child = Command::new(artefact("ttalloc-collect"))
        .arg("--out")
        .arg(trace)
        .arg("--shm-dir")
        .arg(shm.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start collector");
    Background { child, trace: trace.to_path_buf() }
}

impl Background {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// SIGTERM (Ctrl-C equivalent) and wait: the trace is finished cleanly.
    pub fn stop(self) -> Output {
        unsafe { libc_kill(self.child.id() as i32, 15) };
        let out = self.child.wait_with_output().expect("collector exit");
        assert!(out.status.success(), "collector: {:?}\n{}", out.status, stderr(&out));
        out
    }
    pub fn kill9(mut self) {
        unsafe { libc_kill(self.child.id() as i32, 9) };
        let _ = self.child.wait();
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// A workload preloaded by hand (the seeds' two-terminal way).
pub fn preloaded(shm: &ShmDir, cmd: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(cmd[0]);
    c.args(&cmd[1..]).env("LD_PRELOAD", artefact("libttalloc.so")).env("TTALLOC_SHM_DIR", shm.path());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Waits until a collector has claimed the (only) ring in `shm` and drained some of it.
pub fn wait_draining(shm: &ShmDir) -> bool {
    wait_for(20, || ring_header(shm, |h, tail| h.collector_pid.load(std::sync::atomic::Ordering::Acquire) != 0 && tail > 0))
}

/// Waits until the collector writing `trace` has resynced: its `Resync` record
/// (written right after the live-table snapshot) is in the file. A ring being
/// drained is not enough: a resync drains the history before its snapshot,
/// and frees published meanwhile are absorbed into it, not paired.
pub fn wait_resynced(trace: &Path) -> bool {
    wait_for(20, || trace.exists() && replay(trace).records.iter().any(|r| matches!(r, Record::Resync { .. })))
}

/// Waits until collector `pid` has claimed the (only) ring in `shm`.
pub fn wait_claimed_by(shm: &ShmDir, pid: u32) -> bool {
    wait_for(20, || ring_header(shm, |h, _| h.collector_pid.load(std::sync::atomic::Ordering::Acquire) == pid))
}

/// `f` of the (only) ring's header and tail; false while there is none.
fn ring_header(shm: &ShmDir, f: impl Fn(&ttalloc_ring::layout::Header, u64) -> bool) -> bool {
    shm.rings().first().and_then(|p| ttalloc_ring::Region::open(p).ok()).is_some_and(|r| f(r.header(), ttalloc_ring::RingReader::new(&r).tail()))
}

/// Waits until `f` holds (polling), at most `secs`.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// The real ttnn wheels' cache (`scripts/fetch-wheels.sh`, run by `make test`).
pub fn wheel_cache() -> PathBuf {
    std::env::var_os("TTALLOC_WHEEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/ttalloc/wheels"))
}

/// `<cache>/<version>/site/ttnn/build/lib/libtt_metal.so` with its sibling libraries. Missing:
/// the test FAILS, unless `TTALLOC_SKIP_REAL_WHEELS=1`, which skips it loudly.
pub fn real_wheel_lib(version: &str) -> Option<PathBuf> {
    let p = wheel_cache().join(version).join("site/ttnn/build/lib/libtt_metal.so");
    if p.is_file() {
        return Some(p);
    }
    if std::env::var("TTALLOC_SKIP_REAL_WHEELS").as_deref() == Ok("1") {
        eprintln!("\n!!!!!!!! SKIPPED real-wheel check: {} is missing and TTALLOC_SKIP_REAL_WHEELS=1 !!!!!!!!\n", p.display());
        return None;
    }
    panic!("{} is missing: run `make wheels` (or set TTALLOC_SKIP_REAL_WHEELS=1 to skip loudly)", p.display());
}

/// One scrape of a Prometheus text endpoint: series (`name{labels}`) → value.
/// Values are exact integers here (ttalloc exports only integers).
pub fn scrape(addr: &str) -> Result<BTreeMap<String, u64>, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).ok();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut r = String::new();
    s.read_to_string(&mut r).map_err(|e| e.to_string())?;
    let (head, body) = r.split_once("\r\n\r\n").ok_or("no HTTP body")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(head.to_string());
    }
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').ok_or_else(|| format!("bad line {l:?}"))?;
            Ok((k.to_string(), v.parse().map_err(|e| format!("{l:?}: {e}"))?))
        })
        .collect()
}

/// A collector started with `--metrics 127.0.0.1:0` (and `extra` arguments):
/// the address it printed, and the rest of its stderr.
pub struct MetricsCollector {
    pub child: std::process::Child,
    pub addr: String,
    stderr: std::sync::mpsc::Receiver<String>,
}

pub fn start_metrics_collector(shm: &ShmDir, trace: &Path, extra: &[&str]) -> MetricsCollector {
    use std::io::BufRead;
    let mut child = Command::new(artefact("ttalloc-collect"))
        .arg("--out")
        .arg(trace)
        .arg("--shm-dir")
        .arg(shm.path())
        .args(["--metrics", "127.0.0.1:0"])
        .args(extra)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start collector");
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let first = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("collector said nothing");
    let addr = first
        .strip_prefix("ttalloc-collect: metrics at http://")
        .and_then(|s| s.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    MetricsCollector { child, addr, stderr: rx }
}

impl MetricsCollector {
    /// SIGTERM and wait: the trace is finished cleanly. Returns its stderr.
    pub fn stop(mut self) -> String {
        unsafe { libc_kill(self.child.id() as i32, 15) };
        let st = self.child.wait().expect("collector exit");
        let err: Vec<String> = self.stderr.iter().collect();
        assert!(st.success(), "collector: {st:?}\n{}", err.join("\n"));
        err.join("\n")
    }
}
