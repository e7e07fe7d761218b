//! Pass 2 of a summary — the live sets at the peaks — on a second thread
//! that trails pass 1 through the same file.
//!
//! Pass 1 only learns where each peak was once it has read the whole trace,
//! and keeping every live set that might turn out to be a peak would cost
//! memory in proportion to the history. Instead pass 2 replays the file
//! again with its own (live-only) model and snapshots the live set at the
//! record that is, *as far as pass 1 knows so far*, the peak of a target.
//! Peaks only move forward in the file and so does pass 2, so a later,
//! higher peak is simply snapshotted again when pass 2 reaches it; the last
//! snapshot of each target is the answer.
//!
//! Pass 2 stays `LAG` records behind pass 1 until pass 1 is done, so a
//! snapshot is only taken at a record that stayed the peak for at least
//! `LAG` records: at most one per target per `LAG` records. On one core the
//! two threads take turns and the cost is that of running the passes one
//! after the other; with two cores the summary takes about one pass.

use crate::source::{Error, Source};
use crate::summary::{l1_map, live_on, Clock, L1Map, L1Peak, LiveItem, Options, Rest, Target};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use ttalloc_trace::Model;

/// Records pass 2 stays behind pass 1 (until pass 1 has finished).
pub const LAG: u64 = 1 << 20;

/// Where the targets peak as of now: (target, record), and the chips' L1 peaks.
pub type Peaks = (Vec<(Target, u64)>, Vec<(i32, L1Peak)>);

/// What pass 1 tells pass 2.
#[derive(Default)]
struct Published {
    /// Pass 1 has applied records 1..=progress.
    progress: u64,
    finished: bool,
    /// Pass 1 failed: pass 2 stops.
    aborted: bool,
    /// The record at which each target currently peaks.
    targets: Vec<(Target, u64)>,
    l1_peaks: Vec<(i32, L1Peak)>,
}

#[derive(Default)]
struct Board {
    state: Mutex<Published>,
    changed: Condvar,
}

/// The live set of a target at one record.
pub enum Snapshot {
    Peak(Vec<LiveItem>, Rest),
    L1(L1Map),
}

/// Pass 2's result: per target, the record it was taken at and the snapshot.
pub type Snapshots = HashMap<Target, (u64, Snapshot)>;

/// Pass 1's handle on the trailing pass.
pub struct Trailing {
    /// Pass 1 reports its progress every this many records (a power of two).
    pub publish_every: u64,
    board: Arc<Board>,
    /// Records pass 2 has applied (for a progress bar once pass 1 is done).
    pub done: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Result<Snapshots, Error>>>,
    /// Tests: each `publish` waits until pass 2 is within `lag` (so a small
    /// trace really is replayed by two passes in step, not one after the other).
    #[cfg(test)]
    lockstep: Option<u64>,
}

impl Trailing {
    /// Starts pass 2 `lag` records behind pass 1 (`LAG`; `u64::MAX`: only once pass 1 is done).
    pub fn start(path: &Path, opts: &Options, lag: u64) -> Trailing {
        let board = Arc::new(Board::default());
        let done = Arc::new(AtomicU64::new(0));
        let (b, d, path, opts) = (Arc::clone(&board), Arc::clone(&done), path.to_path_buf(), opts.clone());
        let thread = std::thread::Builder::new().name("ttalloc-pass2".into()).spawn(move || trail(&path, &opts, lag, &b, &d)).ok();
        Trailing {
            publish_every: (lag / 16).clamp(1, 1 << 16).next_power_of_two(),
            board,
            done,
            thread,
            #[cfg(test)]
            lockstep: LOCKSTEP.with(|l| l.get()).then_some(lag),
        }
    }

    /// Pass 1 has applied records up to `progress`; `targets` and `l1_peaks` are where the peaks are now.
    pub fn publish(&self, progress: u64, targets: Vec<(Target, u64)>, l1_peaks: Vec<(i32, L1Peak)>, finished: bool) {
        let mut st = self.board.state.lock().unwrap_or_else(|e| e.into_inner());
        st.progress = progress;
        st.targets = targets;
        st.l1_peaks = l1_peaks;
        st.finished = finished;
        drop(st);
        self.board.changed.notify_all();
        #[cfg(test)]
        if let (Some(lag), false) = (self.lockstep, finished) {
            while self.done.load(Ordering::Relaxed).saturating_add(lag) < progress && self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
                std::thread::yield_now();
            }
        }
    }

    /// Waits for pass 2 (after the final `publish`), with a progress bar
    /// for the rest of it when `trace` is given and deserves one.
    pub fn join_showing(self, trace: Option<&Path>, last: u64) -> Result<Snapshots, Error> {
        if let Some(bar) = trace.and_then(|p| crate::source::bar(p, last, "records", "replay pass 2/2")) {
            while self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
                bar.set_position(self.done.load(Ordering::Relaxed));
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            bar.finish_and_clear();
        }
        self.join()
    }

    /// Waits for pass 2 (after the final `publish`).
    pub fn join(mut self) -> Result<Snapshots, Error> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Error::new("ttalloc", "pass 2 failed (thread panicked)")),
            None => Err(Error::new("ttalloc", "cannot start the pass 2 thread")),
        }
    }
}

impl Drop for Trailing {
    /// Pass 1 failed (or its caller gave up): stop pass 2.
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.board.state.lock().unwrap_or_else(|e| e.into_inner()).aborted = true;
            self.board.changed.notify_all();
            let _ = t.join();
        }
    }
}

/// What pass 2 knows of pass 1's findings.
struct View {
    limit: u64,
    finished: bool,
    /// record → the targets that peak there.
    at: BTreeMap<u64, Vec<Target>>,
    l1_peaks: HashMap<i32, L1Peak>,
}

/// Waits until pass 1 has moved on (or finished, or aborted), then refreshes `v`. False: aborted.
fn wait(board: &Board, v: &mut View) -> bool {
    let mut st = board.state.lock().unwrap_or_else(|e| e.into_inner());
    while !st.aborted && !st.finished && st.progress == v.limit {
        st = board.changed.wait(st).unwrap_or_else(|e| e.into_inner());
    }
    if st.aborted {
        return false;
    }
    v.limit = st.progress;
    v.finished = st.finished;
    v.at.clear();
    for &(t, ord) in &st.targets {
        v.at.entry(ord).or_default().push(t);
    }
    v.l1_peaks = st.l1_peaks.iter().copied().collect();
    true
}

fn trail(path: &Path, opts: &Options, lag: u64, board: &Board, done: &AtomicU64) -> Result<Snapshots, Error> {
    let mut src = Source::open(path, None)?;
    let mut model = Model::live_only();
    let mut clock = Clock::default();
    let mut v = View { limit: 0, finished: false, at: BTreeMap::new(), l1_peaks: HashMap::new() };
    let mut snaps = Snapshots::new();
    // The next record at which some target peaks (as far as pass 1 knows).
    let mut due = u64::MAX;
    // Records pass 2 may apply before it must look at the board again.
    let mut until = 0;
    loop {
        let next = src.ordinal + 1;
        if next > until {
            if !v.finished && next.saturating_add(lag) > v.limit {
                if !wait(board, &mut v) {
                    return Ok(snaps);
                }
                due = v.at.range(next..).next().map_or(u64::MAX, |(o, _)| *o);
                continue;
            }
            until = if v.finished { u64::MAX } else { v.limit - lag };
        }
        // Done once no target peaks at or after the next record.
        if v.finished && due == u64::MAX {
            break;
        }
        let Some(r) = src.next_record()? else { break };
        clock.see(&r);
        model.apply(&r, &mut |_| {});
        let ord = src.ordinal;
        done.store(ord, Ordering::Relaxed);
        if ord == due {
            due = v.at.range(ord + 1..).next().map_or(u64::MAX, |(o, _)| *o);
            for &t in &v.at[&ord] {
                let snap = match t {
                    Target::Peak(chip, bt) => {
                        let (items, rest) = live_on(&model, &clock, chip, bt, opts.top);
                        Snapshot::Peak(items, rest)
                    }
                    Target::L1(chip) => match v.l1_peaks.get(&chip) {
                        Some(pk) => Snapshot::L1(l1_map(&model, &clock, chip, pk, opts)),
                        None => continue,
                    },
                };
                snaps.insert(t, (ord, snap));
            }
        }
    }
    done.store(src.ordinal, Ordering::Relaxed);
    Ok(snaps)
}

#[cfg(test)]
thread_local! {
    /// Tests: start pass 2 in lockstep (see `Trailing::lockstep`).
    pub static LOCKSTEP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
mod tests {
    use crate::summary::{summarize_lagging, Options};
    use ttalloc_trace::*;

    /// Waves of allocations whose crests rise, fall back and rise again, on
    /// several chips and types (mesh DRAM, per-chip L1, CBs): targets peak
    /// many times, far apart, so a closely trailing pass 2 snapshots and then
    /// re-snapshots them.
    fn waves(path: &std::path::Path) {
        let header = TraceHeader { magic: TRACE_MAGIC.into(), format_version: TRACE_FORMAT_VERSION, tool_version: "t".into(), host: "h".into(), collector_pid: 1, started_real_ns: 1, command: vec![] };
        let mut w = TraceWriter::new(std::io::BufWriter::new(std::fs::File::create(path).unwrap()), &header).unwrap();
        w.write(&Record::Process(Box::new(ProcessInfo { p: 0, pid: 9, start_ticks: 0, exe: "w".into(), created_mono_ns: 0, created_real_ns: 0, shim_info: "{}".into(), attach: "from-start".into() }))).unwrap();
        w.write(&Record::Mesh(MeshInfo { p: 0, slot: 0, mesh: 1, chips: (0..4).collect() })).unwrap();
        let mut seq = 0u64;
        let mut x = 12345u64;
        let mut rnd = move || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            x >> 33
        };
        let mut live: Vec<u64> = Vec::new();
        for crest in [40u64, 25, 60, 10, 80, 30, 81] {
            while (live.len() as u64) < crest {
                let ev = Ev { p: 0, seq, ts_ns: 1000 + seq * 10, tid: 1 };
                let r = match rnd() % 5 {
                    0 => Record::CbAlloc(CbRec { ev, chip: -2, program: 0x100 + rnd() % 3, address: 0x1000, size: 1024 * (1 + rnd() % 8), flags: 0 }),
                    1 | 2 => Record::Alloc(AllocRec { ev, chip: (rnd() % 4) as i32, btype: 1, flags: 0, object: seq, address: 0x10000 + 0x1000 * (seq % 64), size: 512 * (1 + rnd() % 16), page_size: 512 }),
                    _ => Record::Alloc(AllocRec { ev, chip: -2, btype: 0, flags: 0, object: seq, address: 0x100000 * seq, size: 4096 * (1 + rnd() % 32), page_size: 2048 }),
                };
                w.write(&r).unwrap();
                live.push(seq);
                seq += 1;
            }
            while live.len() as u64 > crest / 3 {
                let i = (rnd() as usize) % live.len();
                let a = live.swap_remove(i);
                w.write(&Record::Free { ev: Ev { p: 0, seq, ts_ns: 1000 + seq * 10, tid: 1 }, alloc_seq: a }).unwrap();
                seq += 1;
            }
        }
        w.write(&Record::DeviceClose { ev: Ev { p: 0, seq, ts_ns: 1000 + seq * 10, tid: 1 }, chip: -2 }).unwrap();
        w.write(&Record::ProcessEnd(Box::new(ProcessEnd { p: 0, last_seq: seq, how: "exited".into(), dropped: 0, problems: vec![] }))).unwrap();
        w.write(&Record::Footer(Footer::default())).unwrap();
        w.flush().unwrap();
    }

    #[test]
    fn a_closely_trailing_pass_2_finds_the_same_live_sets_as_one_run_after_pass_1() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("waves.trace");
        waves(&path);
        let opts = Options { top: 4, peak_live: true, l1_maps: true, ..Options::default() };
        let after = summarize_lagging(&path, &opts, u64::MAX).unwrap();
        assert!(after.chips.values().flat_map(|t| t.values()).all(|u| u.peak == 0 || !u.peak_live.is_empty()));
        assert_eq!(after.l1_maps.len(), 4);
        super::LOCKSTEP.with(|l| l.set(true));
        for lag in [0, 1, 7, 50] {
            let close = summarize_lagging(&path, &opts, lag).unwrap();
            assert_eq!(close, after, "lag {lag}");
        }
    }
}
