//! `ttalloc-collect`: drains every ttalloc ring of this user into one trace.
//!
//!     ttalloc-collect --out trace.msgpack                 # until Ctrl-C / SIGTERM
//!     ttalloc-collect --out trace.msgpack -- CMD ARGS…    # launch mode
//!     ttalloc-collect --monitor [-r MS] [-d CHIP]… [--metrics ADDR] …  # live view / Prometheus

mod collector;
mod discover;
mod launch;
mod metrics;
mod model_thread;
mod monitor;
mod output;
mod session;
mod sink;
mod snapshot;
mod summary;
mod table;
mod text_table;
mod view;

use clap::Parser;
use collector::{Collector, Scope};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use ttalloc_trace::record::*;

#[derive(Parser)]
#[command(name = "ttalloc-collect", version, about = "Collect tt-metal device-memory events from processes running with libttalloc.so")]
struct Args {
    /// Write the trace here (msgpack stream; see docs/trace-format.md).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Where rings live (default $TTALLOC_SHM_DIR or /dev/shm).
    #[arg(long)]
    shm_dir: Option<PathBuf>,
    /// In launch mode, how long to wait for descendants after the command exits.
    #[arg(long, default_value = "2000")]
    linger_ms: u64,
    /// No summary at the end.
    #[arg(long, short)]
    quiet: bool,
    /// Live view: per chip, device memory in use against its peak (full screen
    /// on a terminal, a plain table every refresh otherwise). q quits.
    #[arg(long)]
    monitor: bool,
    /// Live view refresh period, in milliseconds.
    #[arg(short = 'r', long = "refresh", value_name = "MS", default_value = "500", requires = "monitor",
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    refresh_ms: u64,
    /// Live view: only this chip, with a row per process on it (repeatable).
    #[arg(short = 'd', long = "device", value_name = "CHIP", requires = "monitor")]
    device: Vec<i32>,
    /// Live view: every chip (the default).
    #[arg(short = 'a', long = "all", requires = "monitor", conflicts_with = "device")]
    all: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics; ADDR is PORT (on
    /// 127.0.0.1) or HOST:PORT, loopback only unless --metrics-allow-remote.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Allow --metrics on a non-loopback address (no authentication: see docs/security.md).
    #[arg(long, requires = "metrics")]
    metrics_allow_remote: bool,
    /// Launch mode: run this command with libttalloc.so preloaded.
    #[arg(last = true)]
    command: Vec<String>,
}

static STOP: AtomicBool = AtomicBool::new(false);
/// The stop came from the live view's q: pass it on to the command, as a
/// terminal's Ctrl-C would have (raw mode keeps it from the process group).
static QUIT_KEY: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() {
    let args = Args::parse();
    match run(args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ttalloc-collect: {e}");
            std::process::exit(2);
        }
    }
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

fn run(args: Args) -> Result<i32, String> {
    let dir = args.shm_dir.clone().unwrap_or_else(ttalloc_ring::naming::shm_dir);
    if !dir.is_dir() {
        return Err(format!("{}: not a directory", dir.display()));
    }
    let started = ttalloc_ring::region::realtime_ns();
    let header = TraceHeader {
        magic: TRACE_MAGIC.into(),
        format_version: TRACE_FORMAT_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        host: host(),
        collector_pid: std::process::id(),
        started_real_ns: started,
        command: args.command.clone(),
    };
    // Snapshots for the live view and the metrics endpoint, at most every 100 ms
    // (taken on the model's thread; the readers share `shared`).
    let publisher = (args.monitor || args.metrics.is_some())
        .then(|| snapshot::Publisher::new(Duration::from_millis(args.refresh_ms.min(100))));
    let shared = publisher.as_ref().map(|p| p.shared.clone());
    let sink = sink::Sink::new(args.out.as_deref(), header, publisher)?;
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as usize);
        libc::signal(libc::SIGTERM, on_signal as *const () as usize);
    }
    if let (Some(a), Some(shared)) = (&args.metrics, &shared) {
        let addr = metrics::parse_addr(a, args.metrics_allow_remote)?;
        let bound = metrics::serve(addr, shared.clone())?;
        if !bound.ip().is_loopback() {
            eprintln!("ttalloc-collect: warning: metrics served on {bound} to anyone who can reach it (no authentication)");
        }
        eprintln!("ttalloc-collect: metrics at http://{bound}/metrics");
    }
    let full_screen = args.monitor && monitor::full_screen_possible();
    let output = (full_screen && !args.command.is_empty()).then(output::CommandOutput::default);
    // The view first: if it cannot take the terminal, no command was started.
    let monitor = match (&shared, args.monitor) {
        (Some(shared), true) => {
            let opts = monitor::Options {
                refresh: Duration::from_millis(args.refresh_ms),
                focus: args.device.clone(),
                trace: args.out.as_ref().map(|p| p.display().to_string()),
            };
            let quit = Box::new(|| {
                QUIT_KEY.store(true, Ordering::SeqCst);
                STOP.store(true, Ordering::SeqCst);
            });
            Some(monitor::start(shared.clone(), opts, output.clone(), quit)?)
        }
        _ => None,
    };
    let mut child = match args.command.is_empty() {
        true => None,
        false => match launch::spawn(&args.command, &dir, output.is_some()) {
            Ok(c) => Some(c),
            Err(e) => {
                if let Some(m) = monitor {
                    m.finish(false); // give the terminal back before saying why
                }
                return Err(e);
            }
        },
    };
    if let (Some(c), Some(o)) = (child.as_mut(), &output) {
        o.attach(c);
    }
    let scope = match &child {
        None => Scope::All,
        Some(c) => Scope::Descendants { root: c.id(), pids: Default::default(), since_real_ns: started },
    };
    let mut col = Collector::new(dir, scope, sink);
    let mut exit_code = 0;
    let mut child_done_at: Option<Instant> = None;
    let mut last_scan = Instant::now() - Duration::from_secs(1);
    let mut last_flush = Instant::now();
    let mut idle_polls = 0u32;
    loop {
        if last_scan.elapsed() >= Duration::from_millis(100) || child_done_at.is_some() {
            col.discover();
            last_scan = Instant::now();
        }
        let n = col.drain();
        col.reap();
        col.pass_done();
        // Flushed often enough that a killed collector leaves a useful trace, not per batch.
        if last_flush.elapsed() >= Duration::from_millis(100) {
            col.sink.flush();
            last_flush = Instant::now();
        }
        if let Some(c) = &mut child {
            if child_done_at.is_none() {
                if let Ok(Some(status)) = c.try_wait() {
                    exit_code = launch::exit_code(status);
                    child_done_at = Some(Instant::now());
                    continue; // one more discovery pass before deciding we are done
                }
            }
        }
        if let Some(t) = child_done_at {
            if col.active() == 0 || t.elapsed() >= Duration::from_millis(args.linger_ms) {
                break;
            }
        }
        if STOP.load(Ordering::SeqCst) {
            if let Some(c) = &mut child {
                if QUIT_KEY.load(Ordering::SeqCst) {
                    unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
                }
                // The command got the same Ctrl-C (same process group); give it a moment.
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    if let Ok(Some(status)) = c.try_wait() {
                        exit_code = launch::exit_code(status);
                        break;
                    }
                    col.drain();
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            break;
        }
        // Back off while idle (≈0 CPU), stay quick while events flow.
        idle_polls = if n == 0 { idle_polls + 1 } else { 0 };
        if n == 0 {
            std::thread::sleep(Duration::from_millis(if idle_polls > 20 { 50 } else { 5 }));
        }
    }
    col.discover();
    col.stop();
    let events: u64 = col.sessions.iter().map(|s| s.events).sum();
    let (dropped, unknown_frees) = {
        let m = col.sink.model();
        (m.dropped, m.unknown_frees)
    };
    let footer = Footer {
        records: col.sink.records + 1,
        processes: col.sessions.len() as u32,
        dropped,
        unknown_frees,
        ended_real_ns: ttalloc_ring::region::realtime_ns(),
    };
    col.sink.finish(footer);
    let stopped = STOP.load(Ordering::SeqCst);
    let why = match &child {
        Some(_) if !stopped => format!("the command exited with {exit_code}"),
        _ => "stopped".to_string(),
    };
    let attached = col.attachments();
    col.sink.publish_final(attached, why);
    if let Some(m) = monitor {
        // After a launched command ends, the full-screen view stays up until q.
        m.finish(child.is_some() && !stopped);
    }
    if let Some(o) = &output {
        o.replay(Duration::from_millis(500));
    }
    if !args.quiet {
        let write_error = col.sink.write_error.clone();
        eprint!("{}", summary::render(col.sink.model(), events, write_error.as_deref(), args.out.as_deref()));
    }
    if col.sink.write_error.is_some() && child.is_none() {
        return Ok(1);
    }
    Ok(exit_code)
}
