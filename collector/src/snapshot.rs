//! The collector's live state as an immutable snapshot, for the live view and
//! the metrics endpoint (which run on their own threads).
//!
//! The drain loop owns the model and never waits on a reader: at most every
//! `every` (100 ms, or the view's refresh if shorter) and only when records
//! arrived, it copies the small part readers need (per chip × type and per
//! process × chip × type usage, counters) into a new `Snapshot` and swaps an
//! `Arc` to it under a mutex it only `try_lock`s; readers hold that mutex for
//! an `Arc` clone. One snapshot is one consistent cut: chip totals, process
//! rows and counters all come from the same moment of the model.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ttalloc_ring::BufferType;
use ttalloc_trace::{Model, Usage};

/// Usage of one (chip, type), for a chip or for one process on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cell {
    /// Bytes in use now.
    pub current: u64,
    /// Highest bytes in use so far.
    pub peak: u64,
    /// Live allocations (hooked ones included).
    pub live: u64,
}

impl From<&Usage> for Cell {
    fn from(u: &Usage) -> Cell {
        Cell { current: u.current, peak: u.peak, live: u.live_count }
    }
}

/// One traced process: attached now, or ended while still holding allocations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcRow {
    /// Index of the process in the trace.
    pub p: u32,
    pub pid: u32,
    /// Its command line.
    pub exe: String,
    pub attached: bool,
    /// Event records of this process (as `ttalloc replay --json` counts them).
    pub events: u64,
    pub dropped: u64,
    pub unknown_frees: u64,
    pub usage: BTreeMap<(i32, BufferType), Cell>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Records applied to the model when this was taken (0: nothing yet).
    pub version: u64,
    /// (chip, type) → usage over all processes (the model's accounting).
    pub usage: BTreeMap<(i32, BufferType), Cell>,
    /// Attached processes, then ended ones still holding allocations, by `p`.
    pub procs: Vec<ProcRow>,
    pub events: u64,
    pub dropped: u64,
    pub unknown_frees: u64,
    /// Processes seen since the collector started.
    pub processes: u64,
    pub attached: u64,
    /// Set once the trace is finished: what ended it.
    pub finished: Option<String>,
}

impl Snapshot {
    /// Copies what the readers need from `model`; `attached(p)` says whether
    /// process `p` is still being drained.
    pub fn build(model: &Model, attached: &dyn Fn(u32) -> bool) -> Snapshot {
        let usage = model.usage.iter().map(|(k, u)| (*k, Cell::from(u))).collect();
        let mut s = Snapshot { version: model.records, usage, dropped: model.dropped, unknown_frees: model.unknown_frees, ..Default::default() };
        for (p, st) in model.procs.iter().enumerate() {
            let Some(info) = &st.info else { continue };
            let p = p as u32;
            s.processes += 1;
            s.events += st.events;
            let on = attached(p);
            s.attached += on as u64;
            // Ended and holding nothing: only the totals remember it.
            if !on && st.live.is_empty() {
                continue;
            }
            let range = (p, i32::MIN, BufferType::Dram)..=(p, i32::MAX, BufferType::Unknown);
            s.procs.push(ProcRow {
                p,
                pid: info.pid,
                exe: info.exe.clone(),
                attached: on,
                events: st.events,
                dropped: st.dropped,
                unknown_frees: st.unknown_frees,
                usage: model.proc_usage.range(range).map(|((_, c, t), u)| ((*c, *t), Cell::from(u))).collect(),
            });
        }
        s
    }

    /// Every chip something was allocated on, ascending.
    pub fn chips(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.usage.keys().map(|(c, _)| *c).collect();
        v.dedup();
        v
    }

    pub fn cell(&self, chip: i32, t: BufferType) -> Cell {
        self.usage.get(&(chip, t)).copied().unwrap_or_default()
    }
}

impl ProcRow {
    pub fn cell(&self, chip: i32, t: BufferType) -> Cell {
        self.usage.get(&(chip, t)).copied().unwrap_or_default()
    }
    /// Holds something (bytes or live allocations) on `chip`.
    pub fn uses(&self, chip: i32) -> bool {
        self.usage.iter().any(|((c, _), u)| *c == chip && (u.current > 0 || u.live > 0))
    }
    /// `python3 hold.py` for `/usr/bin/python3 tests/workloads/hold.py --lib …`:
    /// the program's and its first argument's base names (arguments can hold secrets).
    pub fn short_command(&self) -> String {
        let base = |w: &str| w.rsplit('/').next().unwrap_or(w).to_string();
        let mut words = self.exe.split_whitespace();
        let mut s = words.next().map(base).unwrap_or_else(|| format!("pid {}", self.pid));
        if let Some(a) = words.next().filter(|a| !a.starts_with('-')) {
            s = format!("{s} {}", base(a));
        }
        s
    }
}

/// Where the drain loop leaves the latest snapshot for the readers.
#[derive(Debug, Default)]
pub struct Shared {
    latest: Mutex<Arc<Snapshot>>,
}

impl Shared {
    pub fn get(&self) -> Arc<Snapshot> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stores `s` unless a reader holds the lock right now (then the caller retries later).
    fn try_put(&self, s: Snapshot) -> bool {
        match self.latest.try_lock() {
            Ok(mut g) => {
                *g = Arc::new(s);
                true
            }
            Err(_) => false,
        }
    }

    pub fn put(&self, s: Snapshot) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(s);
    }
}

/// The drain loop's side: decides when a new snapshot is worth taking.
pub struct Publisher {
    pub shared: Arc<Shared>,
    every: Duration,
    last: Option<Instant>,
    published: u64,
}

impl Publisher {
    pub fn new(every: Duration) -> Publisher {
        Publisher { shared: Arc::default(), every, last: None, published: 0 }
    }

    /// Called every pass of the drain loop: cheap unless a snapshot is due.
    pub fn tick(&mut self, model: &Model, attached: &dyn Fn(u32) -> bool) {
        if self.last.is_some_and(|t| t.elapsed() < self.every) {
            return;
        }
        self.last = Some(Instant::now());
        // Every change (a process ending included) is a record.
        if model.records == self.published {
            return;
        }
        if self.shared.try_put(Snapshot::build(model, attached)) {
            self.published = model.records;
        }
    }

    /// The final state, once the trace is finished.
    pub fn finish(&mut self, model: &Model, attached: &dyn Fn(u32) -> bool, why: String) {
        let mut s = Snapshot::build(model, attached);
        s.finished = Some(why);
        self.shared.put(s);
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use ttalloc_trace::record::*;

    fn ev(p: u32, seq: u64) -> Ev {
        Ev { p, seq, ts_ns: 1000 + seq, tid: 7 }
    }

    pub fn process(p: u32, pid: u32, exe: &str) -> Record {
        Record::Process(Box::new(ProcessInfo {
            p,
            pid,
            start_ticks: 1,
            exe: exe.into(),
            created_mono_ns: 0,
            created_real_ns: 0,
            shim_info: String::new(),
            attach: "from-start".into(),
        }))
    }

    pub fn alloc(p: u32, seq: u64, chip: i32, t: BufferType, size: u64) -> Record {
        Record::Alloc(AllocRec { ev: ev(p, seq), chip, btype: t as u8, flags: 0, object: 0x1000 + seq, address: 0x10_0000 + seq * size, size, page_size: 2048 })
    }

    pub fn free(p: u32, seq: u64, alloc_seq: u64) -> Record {
        Record::Free { ev: ev(p, seq), alloc_seq }
    }

    pub fn model(records: &[Record]) -> Model {
        let mut m = Model::new();
        for r in records {
            m.apply(r, &mut |_| {});
        }
        m
    }

    #[test]
    fn snapshot_copies_chip_and_process_usage() {
        let m = model(&[
            process(0, 100, "/usr/bin/python3 tests/workloads/hold.py --lib x"),
            process(1, 200, "/opt/bin/ttfake_driver mesh 8"),
            alloc(0, 0, 0, BufferType::Dram, 4096),
            alloc(0, 1, 0, BufferType::Dram, 8192),
            free(0, 2, 0),
            alloc(1, 0, 0, BufferType::L1, 1024),
            alloc(1, 1, 3, BufferType::Dram, 2048),
        ]);
        let s = Snapshot::build(&m, &|_| true);
        assert_eq!(s.version, m.records);
        assert_eq!(s.chips(), vec![0, 3]);
        assert_eq!(s.cell(0, BufferType::Dram), Cell { current: 8192, peak: 12288, live: 1 });
        assert_eq!(s.cell(0, BufferType::L1), Cell { current: 1024, peak: 1024, live: 1 });
        assert_eq!(s.cell(3, BufferType::Dram), Cell { current: 2048, peak: 2048, live: 1 });
        assert_eq!((s.events, s.processes, s.attached, s.dropped, s.unknown_frees), (5, 2, 2, 0, 0));
        assert_eq!(s.procs.len(), 2);
        assert_eq!(s.procs[0].cell(0, BufferType::Dram), Cell { current: 8192, peak: 12288, live: 1 });
        assert_eq!(s.procs[0].usage.len(), 1, "only process 0's own entries");
        assert_eq!(s.procs[1].usage.len(), 2);
        assert_eq!(s.procs[0].short_command(), "python3 hold.py");
        assert_eq!(s.procs[1].short_command(), "ttfake_driver mesh");
        assert!(s.procs[1].uses(3) && !s.procs[0].uses(3));
    }

    #[test]
    fn ended_processes_stay_only_while_they_hold_something() {
        let m = model(&[
            process(0, 100, "a"),
            process(1, 200, "b"),
            alloc(0, 0, 0, BufferType::Dram, 4096),
            free(0, 1, 0),
            alloc(1, 0, 0, BufferType::Dram, 4096),
        ]);
        let s = Snapshot::build(&m, &|_| false);
        assert_eq!((s.processes, s.attached), (2, 0));
        assert_eq!(s.procs.iter().map(|p| p.pid).collect::<Vec<_>>(), vec![200], "pid 100 ended holding nothing");
        assert_eq!(s.events, 3);
    }

    #[test]
    fn publisher_swaps_only_when_due_and_changed() {
        let mut m = model(&[process(0, 100, "a")]);
        let mut p = Publisher::new(Duration::ZERO);
        p.tick(&m, &|_| true);
        let first = p.shared.get();
        assert_eq!(first.version, m.records);
        p.tick(&m, &|_| true);
        assert!(Arc::ptr_eq(&first, &p.shared.get()), "nothing changed: no new snapshot");
        m.apply(&alloc(0, 0, 1, BufferType::L1, 64), &mut |_| {});
        p.tick(&m, &|_| true);
        assert_eq!(p.shared.get().cell(1, BufferType::L1).current, 64);
        let mut slow = Publisher::new(Duration::from_secs(3600));
        slow.tick(&m, &|_| true);
        m.apply(&alloc(0, 1, 1, BufferType::L1, 64), &mut |_| {});
        slow.tick(&m, &|_| true);
        assert_eq!(slow.shared.get().cell(1, BufferType::L1).current, 64, "not due yet: the older snapshot stays");
        slow.finish(&m, &|_| false, "stopped".into());
        let f = slow.shared.get();
        assert_eq!((f.cell(1, BufferType::L1).current, f.finished.as_deref(), f.attached), (128, Some("stopped"), 0));
    }
}
