//! Records in time order across processes.
//!
//! A trace holds each process's records in its own order (by seq), but the
//! processes are interleaved as the collector drained their rings: a ring it
//! discovered late (it looks for new ones every 100 ms) lands in the file
//! after events of other processes that happened later. Summing usage per
//! chip over processes in file order would then miss moments when both
//! processes held memory. So commands read the file through a bounded
//! reordering window: each process's records keep their order, and among
//! processes the one whose next record is earliest goes first. A record
//! leaves the window once the file has reached records `WINDOW_NS` later,
//! or when the window holds `MAX_HELD` records (memory stays bounded).
//! A finished trace whose footer counts one process is read as it is.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use ttalloc_trace::Record;

/// How far behind the newest record a process's records may arrive and
/// still be put in order: the collector's 100 ms scan for new rings, twice over.
pub const WINDOW_NS: u64 = 250_000_000;
/// Records held at most (≈ 2 MiB, so the window stays in cache): 1.6 ms of
/// a 10 M events/s trace, 160 ms of a busy real one (10^5 events/s).
pub const MAX_HELD: usize = 1 << 14;

#[derive(Default)]
pub struct Merge {
    /// Per process: its held records with their time key and arrival, in file order.
    queues: Vec<VecDeque<(u64, u64, Record)>>,
    /// (time key, arrival, process) of each non-empty queue's first record.
    heads: BinaryHeap<Reverse<(u64, u64, u32)>>,
    /// Records of no process (header, footer): in file order, the footer after everything.
    global: VecDeque<Record>,
    held: usize,
    arrival: u64,
    newest: u64,
    /// Per process, the time of its latest event (the key of records without one).
    last_ts: Vec<u64>,
}

impl Merge {
    /// Takes in the next record of the file.
    pub fn push(&mut self, r: Record) {
        let Some(p) = r.process() else {
            self.global.push_back(r);
            return;
        };
        let p = p as usize;
        if self.queues.len() <= p {
            self.queues.resize_with(p + 1, VecDeque::new);
            self.last_ts.resize(p + 1, 0);
        }
        // Resynced allocations carry no time: they belong where their process is.
        let key = match r.ev() {
            Some(ev) if ev.ts_ns != 0 => {
                self.last_ts[p] = self.last_ts[p].max(ev.ts_ns);
                ev.ts_ns
            }
            _ => self.last_ts[p],
        };
        self.newest = self.newest.max(key);
        self.arrival += 1;
        if self.queues[p].is_empty() {
            self.heads.push(Reverse((key, self.arrival, p as u32)));
        }
        self.queues[p].push_back((key, self.arrival, r));
        self.held += 1;
    }

    /// The next record in time order, if it may leave the window now (or, at
    /// the end of the file, `end`, whatever is left).
    pub fn pop(&mut self, end: bool) -> Option<Record> {
        // The header (and anything else global before the first event) goes first.
        if self.global.front().is_some_and(|r| matches!(r, Record::Header(_))) || (end && self.held == 0) {
            return self.global.pop_front();
        }
        let &Reverse((key, _, p)) = self.heads.peek()?;
        if !(end || self.held > MAX_HELD || self.newest.saturating_sub(key) > WINDOW_NS) {
            return None;
        }
        self.heads.pop();
        let q = &mut self.queues[p as usize];
        let (_, _, r) = q.pop_front().expect("a head has a record");
        self.held -= 1;
        // Ties in time go in file order.
        if let Some(&(k, a, _)) = q.front() {
            self.heads.push(Reverse((k, a, p)));
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttalloc_trace::*;

    fn alloc(p: u32, seq: u64, ts: u64) -> Record {
        Record::Alloc(AllocRec { ev: Ev { p, seq, ts_ns: ts, tid: 1 }, chip: 0, btype: 0, flags: 0, object: seq, address: 0, size: 1, page_size: 0 })
    }

    fn run(records: Vec<Record>) -> Vec<(u32, u64)> {
        let mut m = Merge::default();
        let mut out = Vec::new();
        for r in records {
            m.push(r);
            while let Some(r) = m.pop(false) {
                out.push(r);
            }
        }
        while let Some(r) = m.pop(true) {
            out.push(r);
        }
        out.iter().filter_map(|r| r.ev().map(|e| (e.p, e.seq))).collect()
    }

    #[test]
    fn processes_interleave_by_time_each_in_its_own_order() {
        // p1's ring was drained after p0's later events; p0's own order is kept
        // even where its threads' clocks disagree (seq 2 before seq 3).
        let order = run(vec![alloc(0, 0, 100), alloc(0, 1, 400), alloc(0, 3, 380), alloc(0, 2, 500), alloc(1, 0, 200), alloc(1, 1, 450)]);
        assert_eq!(order, vec![(0, 0), (1, 0), (0, 1), (0, 3), (1, 1), (0, 2)]);
    }

    #[test]
    fn records_leave_once_the_file_is_far_enough_ahead() {
        let mut m = Merge::default();
        m.push(alloc(0, 0, 1_000));
        assert!(m.pop(false).is_none(), "held: a later record of another process may still come");
        m.push(alloc(0, 1, 1_000 + WINDOW_NS + 1));
        assert!(matches!(m.pop(false), Some(Record::Alloc(a)) if a.ev.seq == 0));
        assert!(m.pop(false).is_none());
    }
}
