//! Issue 6: the live view and the metrics endpoint, on running workloads.
//!
//! * The Prometheus endpoint is scraped while two workloads hold their
//!   allocations (hold.py on chip 0, the 8-chip mesh workload at its peak);
//!   the collector is then stopped, and every value of the scrape must equal
//!   what `ttalloc replay --json` reports for the trace it wrote.
//! * The full-screen view runs in a real terminal (tmux): the mesh workload's
//!   memory is seen rising to its peak on every chip and falling back, and q
//!   finishes the trace as SIGINT does. Off a terminal it prints a plain table.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use ttalloc_e2e::*;

fn replay_json(trace: &Path) -> Value {
    let o = Command::new(artefact("ttalloc")).args(["replay", "--json"]).arg(trace).output().unwrap();
    ok(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Starts hold.py (preloaded) and returns it once it holds its buffers.
fn hold(shm: &ShmDir, n: u32) -> (std::process::Child, Value) {
    let lib = testlib("v081");
    let mut c = preloaded(shm, &["python3", workload("hold.py").to_str().unwrap(), "--lib", lib.to_str().unwrap(), "-n", &n.to_string()], &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(c.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    (c, serde_json::from_str(&line).unwrap_or_else(|e| panic!("hold.py said {line:?}: {e}")))
}

fn release(mut c: std::process::Child) {
    writeln!(c.stdin.as_mut().unwrap()).unwrap();
    assert!(c.wait().unwrap().success());
}

fn mesh_cmd(hold_file: &Path) -> Vec<String> {
    let lib = testlib("v081");
    ["python3", workload("test_mesh_allocation.py").to_str().unwrap(), "--lib", lib.to_str().unwrap(), "--hold-at-peak", hold_file.to_str().unwrap()]
        .map(String::from)
        .to_vec()
}

/// A workload that must not outlive a failed test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(m: &BTreeMap<String, u64>, series: &str) -> u64 {
    *m.get(series).unwrap_or_else(|| panic!("no series {series} in\n{m:#?}"))
}

#[test]
fn metrics_scraped_during_a_run_equal_the_replay_of_its_trace() {
    let shm = ShmDir::new();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.msgpack");
    let col = start_metrics_collector(&shm, &trace, &["-q"]);
    let (holder, said) = hold(&shm, 102);
    let go = dir.path().join("go");
    let cmd = mesh_cmd(&go);
    let mesh = preloaded(&shm, &cmd.iter().map(String::as_str).collect::<Vec<_>>(), &[]).stdout(Stdio::piped()).spawn().unwrap();
    let mut mesh = KillOnDrop(mesh);

    // Both hold still; wait until the collector has drained them (the scrape stops changing).
    let mut last = BTreeMap::new();
    let settled = wait_for(30, || {
        let m = scrape(&col.addr).unwrap();
        let at_peak = m.get("ttalloc_attached_processes") == Some(&2) && m.get("ttalloc_chip_live_allocations{chip=\"7\",type=\"CB\"}") == Some(&3);
        let same = at_peak && m == last;
        last = m;
        if !same {
            std::thread::sleep(Duration::from_millis(300));
        }
        same
    });
    assert!(settled, "metrics never settled:\n{last:#?}");
    let m = last;
    let stderr = col.stop(); // the processes still hold everything
    let r = replay_json(&trace);

    // Collector-wide counters.
    let procs = r["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 2);
    assert_eq!(get(&m, "ttalloc_processes_total"), 2);
    assert_eq!(get(&m, "ttalloc_events_total"), procs.iter().map(|p| p["events"].as_u64().unwrap()).sum::<u64>());
    assert_eq!(get(&m, "ttalloc_dropped_events_total"), r["dropped"].as_u64().unwrap());
    assert_eq!(get(&m, "ttalloc_unknown_frees_total"), r["unknown_frees"].as_u64().unwrap());

    // Per chip × type: exactly the replay's chips, with its peaks and live totals.
    let mut chip_series = 0;
    for (chip, types) in r["chips"].as_object().unwrap() {
        for (t, u) in types.as_object().unwrap() {
            let l = format!("{{chip=\"{chip}\",type=\"{t}\"}}");
            assert_eq!(get(&m, &format!("ttalloc_chip_peak_bytes{l}")), u["peak"].as_u64().unwrap(), "{l}");
            assert_eq!(get(&m, &format!("ttalloc_chip_bytes_in_use{l}")), u["live_end"].as_u64().unwrap(), "{l}");
            assert_eq!(get(&m, &format!("ttalloc_chip_live_allocations{l}")), u["live_end_count"].as_u64().unwrap(), "{l}");
            chip_series += 1;
        }
    }
    assert_eq!(m.keys().filter(|k| k.starts_with("ttalloc_chip_peak_bytes{")).count(), chip_series);
    assert_eq!(chip_series, 8 * 3, "DRAM, L1 and CB on 8 chips");

    // Per process: the replay's own peaks and counters.
    for p in procs {
        let pid = p["pid"].as_u64().unwrap();
        assert_eq!(get(&m, &format!("ttalloc_process_events_total{{pid=\"{pid}\"}}")), p["events"].as_u64().unwrap());
        assert_eq!(get(&m, &format!("ttalloc_process_dropped_events_total{{pid=\"{pid}\"}}")), p["dropped"].as_u64().unwrap());
        assert_eq!(get(&m, &format!("ttalloc_process_unknown_frees_total{{pid=\"{pid}\"}}")), p["unknown_frees"].as_u64().unwrap());
        let mut n = 0;
        for (chip, types) in p["peaks"].as_object().unwrap() {
            for (t, peak) in types.as_object().unwrap() {
                assert_eq!(get(&m, &format!("ttalloc_process_peak_bytes{{pid=\"{pid}\",chip=\"{chip}\",type=\"{t}\"}}")), peak.as_u64().unwrap());
                n += 1;
            }
        }
        assert_eq!(m.keys().filter(|k| k.starts_with(&format!("ttalloc_process_peak_bytes{{pid=\"{pid}\","))).count(), n);
    }
    // Bytes in use per process add up to the chip's live total (chips 1–7 have only the mesh).
    for (chip, types) in r["chips"].as_object().unwrap() {
        for (t, u) in types.as_object().unwrap() {
            let sum: u64 = m.iter().filter(|(k, _)| k.starts_with("ttalloc_process_bytes_in_use{") && k.ends_with(&format!(",chip=\"{chip}\",type=\"{t}\"}}"))).map(|(_, v)| v).sum();
            assert_eq!(sum, u["live_end"].as_u64().unwrap(), "chip {chip} {t}");
        }
    }
    // And hold.py's own: its user buffers plus the chip's system buffers (tests/testlib/README.md).
    let hold_pid = said["pid"].as_u64().unwrap();
    let user = said["live_user_bytes"].as_u64().unwrap();
    assert_eq!(get(&m, &format!("ttalloc_process_bytes_in_use{{pid=\"{hold_pid}\",chip=\"0\",type=\"DRAM\"}}")), user + 1_048_576 + 131_072);
    assert!(m.contains_key(&format!("ttalloc_process_attached{{pid=\"{hold_pid}\",command=\"python3 hold.py\"}}")), "{m:#?}");
    assert!(stderr.is_empty(), "{stderr}");

    release(holder);
    std::fs::write(&go, "").unwrap();
    assert!(mesh.0.wait().unwrap().success());
}

#[test]
fn metrics_refuse_a_non_loopback_address_without_the_flag() {
    let o = Command::new(artefact("ttalloc-collect")).args(["--metrics", "0.0.0.0:0"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("not a loopback address") && e.contains("--metrics-allow-remote"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn monitor_off_a_terminal_prints_a_plain_table() {
    let shm = ShmDir::new();
    let dir = tempfile::tempdir().unwrap();
    let driver = testlib("v081").join("ttfake_driver");
    let o = Command::new(artefact("ttalloc-collect"))
        .args(["--monitor", "-r", "50", "-q", "--shm-dir"])
        .arg(shm.path())
        .arg("--out")
        .arg(dir.path().join("t.msgpack"))
        .arg("--")
        .arg(&driver)
        .args(["mesh", "2"])
        .env("TTALLOC_LIB", artefact("libttalloc.so"))
        .output()
        .unwrap();
    ok(&o);
    let out = stdout(&o);
    // The last table is the final state: everything released, peaks kept.
    let last = out.rsplit("ttalloc-collect: finished").next().unwrap();
    assert!(out.contains("ttalloc-collect: finished (the command exited with 0): processes 0 attached / 1 seen"), "{out}");
    let rows: Vec<&str> = last.lines().filter(|l| l.starts_with("0 ") || l.starts_with("1 ")).collect();
    assert_eq!(rows.len(), 2, "{last}");
    for r in rows {
        let cols: Vec<&str> = r.split_whitespace().collect();
        assert_eq!(cols[1..7], ["0/7.12M", "0/160K", "-", "-", "0/40K", "0"], "{r}");
    }
}

/// A tmux server of our own (never the user's), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(width: u16, height: u16, cmd: &str) -> Tmux {
        assert!(
            Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()),
            "tmux is missing: `make deps` (which `make test` runs) installs it"
        );
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let t = Tmux { socket: format!("ttalloc-test-{}-{n}", std::process::id()) };
        let o = t.run(&["new-session", "-d", "-x", &width.to_string(), "-y", &height.to_string(), cmd]);
        ok(&o);
        t
    }
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux").args(["-L", &self.socket, "-f", "/dev/null"]).args(args).env_remove("TMUX").output().unwrap()
    }
    fn screen(&self) -> String {
        stdout(&self.run(&["capture-pane", "-p"]))
    }
    fn keys(&self, k: &str) {
        ok(&self.run(&["send-keys", k]));
    }
    /// Waits until the screen satisfies `f`; returns it.
    fn wait(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let mut s = String::new();
        assert!(wait_for(30, || { s = self.screen(); f(&s) }), "never saw {what}; screen:\n{s}");
        s
    }
    /// `wait`, then until two captures 100 ms apart agree: a capture can catch
    /// the view mid-redraw (the header already new, the rows below not yet).
    fn wait_settled(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let mut s = self.wait(what, &f);
        assert!(
            wait_for(30, || {
                std::thread::sleep(std::time::Duration::from_millis(100));
                let again = self.screen();
                std::mem::replace(&mut s, again) == s && f(&s)
            }),
            "{what}: the screen never settled:\n{s}"
        );
        s
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn chip_row(screen: &str, chip: i32) -> Vec<&str> {
    let line = screen.lines().find(|l| l.starts_with(&format!("{chip} "))).unwrap_or_else(|| panic!("no row for chip {chip}:\n{screen}"));
    // Bars are the only non-ASCII on a row; the numbers are what we check.
    line.split_whitespace().filter(|w| w.is_ascii()).collect()
}

#[test]
fn monitor_in_a_terminal_shows_the_mesh_rise_and_fall_per_chip() {
    let shm = ShmDir::new();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.msgpack");
    let go = dir.path().join("go");
    let exit = dir.path().join("exit");
    let collect = artefact("ttalloc-collect");
    let cmd = format!(
        "TTALLOC_LIB={} {} --monitor -r 100 --shm-dir {} --out {} -- {}; echo $? > {}; sleep 600",
        artefact("libttalloc.so").display(),
        collect.display(),
        shm.path().display(),
        trace.display(),
        mesh_cmd(&go).join(" "),
        exit.display()
    );
    let tmux = Tmux::new(140, 30, &cmd);

    // At the peak: 1.125 MiB system + 4 + 2 MiB DRAM, 32 + 128 KiB L1, 40 KiB of CBs, on each of the 8 chips.
    let peak = tmux.wait_settled("the mesh at its peak on chip 7", |s| s.lines().any(|l| l.starts_with("7 ") && l.contains("40K/40K")));
    for chip in 0..8 {
        let r = chip_row(&peak, chip);
        assert_eq!(r[..7], [chip.to_string().as_str(), "7.12M/7.12M", "160K/160K", "-", "-", "40K/40K", "6"], "chip {chip}:\n{peak}");
        assert_eq!(r[8], "python3", "{peak}");
    }
    assert!(peak.contains("processes 1 attached / 1 seen"), "{peak}");

    std::fs::write(&go, "").unwrap();
    let after = tmux.wait_settled("the end of the command", |s| s.contains("finished: the command exited with 0 · q quits"));
    for chip in 0..8 {
        let r = chip_row(&after, chip);
        assert_eq!(r[1..7], ["0/7.12M", "0/160K", "-", "-", "0/40K", "0"], "chip {chip}:\n{after}");
    }
    assert!(after.contains("command output"), "the command's stdout is shown in the view:\n{after}");
    tmux.keys("q");
    assert!(wait_for(10, || std::fs::read_to_string(&exit).is_ok_and(|s| s.trim() == "0")), "collector did not exit 0");
    let r = replay(&trace);
    assert!(r.complete);
    assert_eq!(r.peak(7, ttalloc_ring::BufferType::Dram), 1_048_576 + 131_072 + 6 * MIB);
}

#[test]
fn monitor_q_finishes_the_trace_like_sigint() {
    let shm = ShmDir::new();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.msgpack");
    let exit = dir.path().join("exit");
    let cmd = format!(
        "{} --monitor -r 100 -d 0 --shm-dir {} --out {}; echo $? > {}; sleep 600",
        artefact("ttalloc-collect").display(),
        shm.path().display(),
        trace.display(),
        exit.display()
    );
    let tmux = Tmux::new(140, 20, &cmd);
    tmux.wait("the view", |s| s.contains("every 100 ms"));
    // 102 buffers of 64 KiB, every other one freed: 51 live (3.1875 MiB) + 1.125 MiB system.
    let (holder, said) = hold(&shm, 102);
    let pid = said["pid"].as_u64().unwrap();
    let s = tmux.wait_settled("hold.py's buffers", |s| s.lines().any(|l| l.starts_with("0 ") && l.contains("4.31M/7.5M")));
    assert_eq!(chip_row(&s, 0)[..8], ["0", "4.31M/7.5M", "32K/32K", "-", "-", "-", "54", &pid.to_string()], "{s}");
    // -d 0: a row for the process under the chip.
    assert!(s.lines().any(|l| l.contains(&format!("└ {pid} python3 hold.py"))), "{s}");

    tmux.keys("p");
    tmux.wait("the pause", |s| s.contains("PAUSED (p resumes)"));
    tmux.keys("p");
    tmux.keys("q");
    assert!(wait_for(10, || std::fs::read_to_string(&exit).is_ok_and(|s| s.trim() == "0")), "collector did not exit 0:\n{}", tmux.screen());
    let r = replay(&trace);
    assert!(r.complete, "the trace was finished");
    let end = r.model.procs[0].end.as_ref().expect("process end record");
    assert_eq!(end.how, "collector-stopped", "as on SIGINT: the live process's region is left for a later collector");
    assert_eq!(r.current(0, ttalloc_ring::BufferType::Dram), said["live_user_bytes"].as_u64().unwrap() + 1_048_576 + 131_072);
    release(holder);
}
