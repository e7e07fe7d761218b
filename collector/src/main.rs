//! `ttalloc-collect`: drains every ttalloc ring of this user into one trace.
//!
//!     ttalloc-collect --out trace.msgpack                 # until Ctrl-C / SIGTERM
//!     ttalloc-collect --out trace.msgpack -- CMD ARGS…    # launch mode

mod collector;
mod discover;
mod launch;
mod session;
mod sink;
mod summary;

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
    /// Launch mode: run this command with libttalloc.so preloaded.
    #[arg(last = true)]
    command: Vec<String>,
}

static STOP: AtomicBool = AtomicBool::new(false);

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
    let sink = sink::Sink::new(args.out.as_deref(), header)?;
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as usize);
        libc::signal(libc::SIGTERM, on_signal as *const () as usize);
    }
    let mut child = if args.command.is_empty() { None } else { Some(launch::spawn(&args.command, &dir)?) };
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
    let unknown: u64 = col.sink.model.unknown_frees;
    let footer = Footer {
        records: col.sink.records + 1,
        processes: col.sessions.len() as u32,
        dropped: col.sink.model.dropped,
        unknown_frees: unknown,
        ended_real_ns: ttalloc_ring::region::realtime_ns(),
    };
    col.sink.finish(footer);
    if !args.quiet {
        eprint!("{}", summary::render(&col.sink.model, events, col.sink.write_error.as_deref(), args.out.as_deref()));
    }
    if col.sink.write_error.is_some() && child.is_none() {
        return Ok(1);
    }
    Ok(exit_code)
}
