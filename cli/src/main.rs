//! `ttalloc` — offline analysis of ttalloc traces. Argument parsing and
//! dispatch only; the commands live in the `ttalloc_cli` library.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use ttalloc_cli::units::{parse_bytes, parse_moment, Moment};
use ttalloc_cli::{diff, doctor, dump, leaks, perfetto, replay, report, Error, Status, BROKEN_PIPE, EXIT_ERROR, EXIT_OK};

#[derive(Parser)]
#[command(name = "ttalloc", version, about = "Device-memory allocation tracker for Tenstorrent tt-metal: trace analysis", long_about = None)]
#[command(after_help = "Exit status: 0 success, 1 a --fail-if-… condition held, 2 error (missing, foreign or corrupt trace; bad arguments).\nA trace cut short is replayed up to the cut with a warning (exit 0).")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Peaks (and what was live at them), counts, live at end, leaks and gaps per chip × memory type.
    Replay {
        trace: PathBuf,
        /// Print the summary object (docs/replay-json.md) instead of tables.
        #[arg(long)]
        json: bool,
        /// Show the live set at one moment instead: a sequence number (`1234`)
        /// or a time since the process's first event (`2.5s`, `2500ms`, `10us`).
        #[arg(long, value_parser = parse_moment)]
        at: Option<Moment>,
        /// The process `--at` refers to (default: the first in the trace).
        #[arg(long, requires = "at")]
        pid: Option<u32>,
        /// Allocations listed per chip × type (the rest is summed; 0: all).
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Everything still allocated at process exit or released by a device close, grouped.
    Leaks {
        trace: PathBuf,
        #[arg(long)]
        json: bool,
        /// Exit 1 if anything leaked.
        #[arg(long)]
        fail_if_leaks: bool,
    },
    /// Per chip × type deltas of peak and live-at-end between two traces (or saved `replay --json` outputs).
    Diff {
        base: PathBuf,
        new: PathBuf,
        #[arg(long)]
        json: bool,
        /// Exit 1 if any chip × type peak grew by more than PCT percent (a new non-zero peak counts as growth).
        #[arg(long, value_name = "PCT")]
        fail_if_peak_grows: Option<f64>,
    },
    /// Chrome trace-event JSON for ui.perfetto.dev: usage counters and one slice per allocation, per chip.
    Export {
        trace: PathBuf,
        #[arg(long, value_name = "OUT.json")]
        perfetto: PathBuf,
        /// Allocation slices written: those with the most byte × time (0: all).
        #[arg(long, value_name = "N", default_value_t = perfetto::Limits::default().slices)]
        slices: usize,
        /// Points per counter track; busier tracks keep each interval's maximum and last value (0: all).
        #[arg(long, value_name = "N", default_value_t = perfetto::Limits::default().max_points)]
        max_points: usize,
    },
    /// A self-contained HTML report: memory over time, peak composition, L1 maps, leaks.
    Report {
        trace: PathBuf,
        #[arg(long, value_name = "OUT.html")]
        html: PathBuf,
        /// Allocations shown per peak.
        #[arg(long, default_value_t = 12)]
        top: usize,
        /// L1 banks an interleaved L1 buffer is spread over (per-bank footprint in the L1 map; 1: full size).
        #[arg(long, default_value_t = 1)]
        l1_banks: u32,
        /// Top of L1 in the map (e.g. 1464KiB; default: the highest address in use).
        #[arg(long, value_parser = parse_bytes)]
        l1_size: Option<u64>,
    },
    /// One JSON object per line per chip-level event (plus `record` lines).
    Dump {
        trace: PathBuf,
        /// Only chip-level events, no `record` lines.
        #[arg(long)]
        events_only: bool,
    },
    /// Can ttalloc hook this libtt_metal.so? (default: the one tt-metal would load)
    Doctor {
        lib: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

fn dispatch(cmd: Cmd) -> Result<Status, Error> {
    match cmd {
        Cmd::Replay { trace, json, at, pid, top } => {
            let top = if top == 0 { usize::MAX } else { top };
            replay::run(&replay::Args { trace: &trace, json, top, at, pid }).map(|_| EXIT_OK)
        }
        Cmd::Leaks { trace, json, fail_if_leaks } => leaks::run(&trace, json, fail_if_leaks),
        Cmd::Diff { base, new, json, fail_if_peak_grows } => diff::run(&base, &new, json, fail_if_peak_grows),
        Cmd::Export { trace, perfetto: out, slices, max_points } => perfetto::run(&trace, &out, &perfetto::Limits { slices, max_points }).map(|_| EXIT_OK),
        Cmd::Report { trace, html, top, l1_banks, l1_size } => {
            let top = if top == 0 { usize::MAX } else { top };
            report::run(&report::Args { trace: &trace, out: &html, top, l1_banks, l1_size }).map(|_| EXIT_OK)
        }
        Cmd::Dump { trace, events_only } => dump::run(&trace, events_only).map(|_| EXIT_OK),
        Cmd::Doctor { lib, json } => doctor::run(lib.as_deref(), json).map(|_| EXIT_OK),
    }
}

fn main() {
    let cli = Cli::parse();
    let code = match dispatch(cli.cmd) {
        Ok(code) => code,
        Err(e) if e.message == BROKEN_PIPE => EXIT_OK,
        Err(e) => {
            eprintln!("ttalloc: {e}");
            EXIT_ERROR
        }
    };
    std::process::exit(code);
}
