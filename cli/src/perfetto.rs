//! `ttalloc export TRACE --perfetto OUT.json` — Chrome trace-event JSON for
//! ui.perfetto.dev (or chrome://tracing).
//!
//! * each chip is a "process" (`chip N`) with one counter track per memory
//!   type (`chip N DRAM`, …) holding the chip's exact usage;
//! * each allocation is an `X` slice from its allocation to its free on its
//!   chip, on a lane ("thread" `DRAM #k`): lanes are reused only once free, so
//!   slices on one lane never overlap and always balance;
//! * the traced processes are one more "process" (`ttalloc processes`, one
//!   thread per pid) carrying instants for gaps; unknown frees and failed
//!   allocations are instants on their chip.
//!
//! Bounded output for huge traces (a 10^7-event trace is gigabytes of JSON
//! otherwise, more than the UI loads): by default only the `slices`
//! allocations with the most byte × time get a slice (chosen with a min-heap
//! while streaming, laid out on lanes at the end), and a counter track with
//! more than `max_points` changes is reduced to `max_points` points that keep
//! each interval's maximum (so the peak stays exact) and its final value.
//! One stderr line says what was left out. Memory is bounded by the live set
//! plus those limits, not by the history.

use crate::source::{Error, Source};
use crate::summary::Clock;
use crate::units::{bytes, count};
use rustc_hash::{FxHashMap, FxHashSet};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::io::{BufWriter, Write};
use std::path::Path;
use ttalloc_ring::BufferType;
use ttalloc_trace::{ChipEvent, ChipKind, Model, Record};

/// Perfetto "pid" of a chip's track group.
pub fn chip_pid(chip: i32) -> i64 {
    1000 + chip as i64
}
/// Perfetto "pid" of the traced processes' track group.
pub const PROCESSES_PID: i64 = 1;

fn type_code(t: BufferType) -> i64 {
    match t {
        BufferType::Dram => 1,
        BufferType::L1 => 2,
        BufferType::L1Small => 3,
        BufferType::Trace => 4,
        BufferType::Cb => 5,
        BufferType::SystemMemory => 6,
        BufferType::Unknown => 7,
    }
}

/// Perfetto "tid" of lane `lane` of type `t`.
pub fn lane_tid(t: BufferType, lane: u32) -> i64 {
    type_code(t) * 1_000_000 + lane as i64
}

/// Microseconds with nanosecond precision, as JSON number text.
fn us(ns: u64) -> String {
    format!("{}.{:03}", ns / 1000, ns % 1000)
}

fn js(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

/// How much of a trace goes into the JSON.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Allocation slices kept (those with the most byte × time); 0: all.
    pub slices: usize,
    /// Points per counter track; 0: every change.
    pub max_points: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { slices: 20_000, max_points: 5_000 }
    }
}

/// What an export wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub slices: u64,
    /// Allocations (per chip) that could have had a slice.
    pub allocations: u64,
    pub tracks: u64,
    /// Counter tracks reduced to `max_points`.
    pub downsampled: u64,
}

/// An allocation's life on one chip.
#[derive(Clone, Copy)]
struct Slice {
    start: u64,
    end: u64,
    ev: ChipEvent,
    how: &'static str,
}

impl Slice {
    /// What makes a slice worth keeping: its area in the memory × time picture.
    fn weight(&self) -> (u128, u64, u64) {
        let dur = self.end.saturating_sub(self.start) as u128 + 1;
        (self.ev.size.max(1) as u128 * dur, self.ev.size, u64::MAX - self.start)
    }
}

/// `Slice` ordered by weight, for the min-heap of kept slices.
struct ByWeight(Slice);
impl PartialEq for ByWeight {
    fn eq(&self, o: &Self) -> bool {
        self.0.weight() == o.0.weight()
    }
}
impl Eq for ByWeight {}
impl PartialOrd for ByWeight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for ByWeight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.weight().cmp(&o.0.weight())
    }
}

/// Lanes of one chip × type: the lowest free lane is reused first.
#[derive(Default)]
struct Lanes {
    free: BinaryHeap<Reverse<u32>>,
    n: u32,
}

impl Lanes {
    /// A lane; true if it is new.
    fn take(&mut self) -> (u32, bool) {
        match self.free.pop() {
            Some(Reverse(l)) => (l, false),
            None => {
                self.n += 1;
                (self.n - 1, true)
            }
        }
    }
    fn give(&mut self, lane: u32) {
        self.free.push(Reverse(lane));
    }
}

/// A counter track's points: exact until there are more than `max` changes,
/// then `max / 2` buckets of (maximum, last value) whose width doubles as
/// time runs past the last one.
struct Track {
    exact: Vec<(u64, u64)>,
    buckets: Option<Buckets>,
}

struct Buckets {
    t0: u64,
    width: u64,
    b: Vec<Option<(u64, u64)>>,
}

impl Buckets {
    fn add(&mut self, ts: u64, v: u64) {
        let off = ts.saturating_sub(self.t0);
        while off / self.width >= self.b.len() as u64 {
            let n = self.b.len();
            let mut out = vec![None; n];
            for (i, o) in out.iter_mut().enumerate().take(n / 2) {
                *o = match (self.b[2 * i], self.b[2 * i + 1]) {
                    (Some((a, _)), Some((b, l))) => Some((a.max(b), l)),
                    (x, None) => x,
                    (None, y) => y,
                };
            }
            self.b = out;
            self.width *= 2;
        }
        let slot = &mut self.b[(off / self.width) as usize];
        *slot = Some(match *slot {
            Some((m, _)) => (m.max(v), v),
            None => (v, v),
        });
    }
}

impl Track {
    fn add(&mut self, ts: u64, v: u64, max: usize) {
        if let Some(b) = &mut self.buckets {
            b.add(ts, v);
            return;
        }
        self.exact.push((ts, v));
        if max > 0 && self.exact.len() > max {
            let t0 = self.exact.iter().map(|p| p.0).min().unwrap_or(ts);
            let t1 = self.exact.iter().map(|p| p.0).max().unwrap_or(ts);
            let n = (max / 2).max(1);
            let mut width = 1u64;
            while (t1 - t0) / width >= n as u64 {
                width *= 2;
            }
            let mut b = Buckets { t0, width, b: vec![None; n] };
            for &(t, v) in &self.exact {
                b.add(t, v);
            }
            self.exact = Vec::new();
            self.buckets = Some(b);
        }
    }

    /// The points to write, in time order.
    fn points(&self) -> Vec<(u64, u64)> {
        match &self.buckets {
            None => {
                let mut p = self.exact.clone();
                // Processes interleave in the file: time order per track.
                p.sort_by_key(|x| x.0);
                p
            }
            Some(b) => {
                let mut p = Vec::new();
                for (i, s) in b.b.iter().enumerate() {
                    if let Some((max, last)) = *s {
                        let t = b.t0 + i as u64 * b.width;
                        p.push((t, max));
                        if last != max {
                            p.push((t + b.width / 2, last));
                        }
                    }
                }
                p
            }
        }
    }
}

struct Exporter<W: Write> {
    w: W,
    first: bool,
    limits: Limits,
    open: FxHashMap<(u32, u64, i32), (u64, ChipEvent)>,
    /// The slices kept (all of them when unlimited): a min-heap by weight.
    kept: BinaryHeap<Reverse<ByWeight>>,
    allocations: u64,
    chips: BTreeSet<i32>,
    tracks: BTreeMap<(i32, BufferType), Track>,
    last_value: FxHashMap<(i32, BufferType), u64>,
    pids: FxHashSet<u32>,
    max_ts: u64,
}

impl<W: Write> Exporter<W> {
    fn emit(&mut self, s: &str) -> std::io::Result<()> {
        if !self.first {
            self.w.write_all(b",\n")?;
        }
        self.first = false;
        self.w.write_all(s.as_bytes())
    }

    fn chip_meta(&mut self, chip: i32) -> std::io::Result<()> {
        if self.chips.insert(chip) {
            let pid = chip_pid(chip);
            let name = if chip < 0 { format!("chip {chip} (unresolved)") } else { format!("chip {chip}") };
            self.emit(&format!(r#"{{"ph":"M","name":"process_name","pid":{pid},"tid":0,"ts":0,"args":{{"name":{}}}}}"#, js(&name)))?;
            self.emit(&format!(r#"{{"ph":"M","name":"process_sort_index","pid":{pid},"tid":0,"ts":0,"args":{{"sort_index":{pid}}}}}"#))?;
        }
        Ok(())
    }

    /// An allocation ended (or the trace did): keep its slice if it weighs enough.
    fn close(&mut self, s: Slice) {
        self.allocations += 1;
        let k = Reverse(ByWeight(s));
        if self.limits.slices == 0 || self.kept.len() < self.limits.slices {
            self.kept.push(k);
        } else if self.kept.peek().is_some_and(|min| k < *min) {
            // Heavier than the lightest kept one (`Reverse`: smaller is heavier).
            self.kept.pop();
            self.kept.push(k);
        }
    }

    fn slice(&mut self, s: &Slice, lane: u32) -> std::io::Result<()> {
        let e = &s.ev;
        let mut name = format!("{} {}", e.btype.name(), bytes(e.size));
        if e.hooked {
            name.push_str(" (hooked)");
        }
        if e.global {
            name.push_str(" (global CB)");
        }
        let obj = if e.btype == BufferType::Cb { format!(r#""program":"{:#x}""#, e.object) } else { format!(r#""buffer":"{:#x}""#, e.object) };
        let line = format!(
            r#"{{"ph":"X","cat":{},"name":{},"pid":{},"tid":{},"ts":{},"dur":{},"args":{{"size":{},"address":"{:#x}","pid":{},"tid":{},"id":{},{},"hooked":{},"released":{}}}}}"#,
            js(e.btype.name()),
            js(&name),
            chip_pid(e.chip),
            lane_tid(e.btype, lane),
            us(s.start),
            us(s.end - s.start),
            e.size,
            e.address,
            e.pid,
            e.tid,
            e.id,
            obj,
            e.hooked,
            js(s.how)
        );
        self.emit(&line)
    }

    fn event(&mut self, e: &ChipEvent, ts: u64) -> std::io::Result<()> {
        self.chip_meta(e.chip)?;
        if e.kind.is_acquire() {
            // A resync may re-announce something already open: close the old slice first.
            if let Some((start, old)) = self.open.insert((e.p, e.id, e.chip), (ts, *e)) {
                self.close(Slice { start, end: ts.max(start), ev: old, how: "resync" });
            }
        } else if e.kind.is_release() {
            if let Some((start, ev)) = self.open.remove(&(e.p, e.id, e.chip)) {
                self.close(Slice { start, end: ts.max(start), ev, how: e.kind.name() });
            }
        } else {
            let name = match e.kind {
                ChipKind::UnknownFree => format!("unknown free {} {}", e.btype.name(), bytes(e.size)),
                ChipKind::AllocFailed => format!("allocation failed: {} {}", e.btype.name(), bytes(e.size)),
                k => k.name().to_string(),
            };
            self.emit(&format!(
                r#"{{"ph":"i","s":"p","name":{},"pid":{},"tid":0,"ts":{},"args":{{"pid":{},"tid":{},"seq":{},"address":"{:#x}","size":{}}}}}"#,
                js(&name),
                chip_pid(e.chip),
                us(ts),
                e.pid,
                e.tid,
                e.seq,
                e.address,
                e.size
            ))?;
        }
        Ok(())
    }

    fn counter(&mut self, chip: i32, t: BufferType, ts: u64, value: u64) {
        if self.last_value.insert((chip, t), value) == Some(value) {
            return;
        }
        let max = self.limits.max_points;
        self.tracks.entry((chip, t)).or_insert_with(|| Track { exact: Vec::new(), buckets: None }).add(ts, value, max);
    }

    fn process(&mut self, pid: u32, name: &str) -> std::io::Result<()> {
        if self.pids.is_empty() {
            self.emit(&format!(r#"{{"ph":"M","name":"process_name","pid":{PROCESSES_PID},"tid":0,"ts":0,"args":{{"name":"ttalloc processes"}}}}"#))?;
        }
        if self.pids.insert(pid) {
            self.emit(&format!(r#"{{"ph":"M","name":"thread_name","pid":{PROCESSES_PID},"tid":{pid},"ts":0,"args":{{"name":{}}}}}"#, js(name)))?;
        }
        Ok(())
    }

    /// Writes the kept slices on lanes, and the counter tracks.
    fn finish(&mut self) -> std::io::Result<Written> {
        // Still live at the end of the trace: slices up to its last moment.
        let end = self.max_ts;
        let mut left: Vec<(u64, ChipEvent)> = self.open.drain().map(|(_, o)| o).collect();
        left.sort_by_key(|(start, e)| (e.chip, *start, e.id));
        for (start, ev) in left {
            self.close(Slice { start, end: end.max(start), ev, how: "live at end of trace" });
        }
        // Lanes: sweep each chip × type in time order, ends before starts.
        let mut kept: Vec<Slice> = std::mem::take(&mut self.kept).into_iter().map(|Reverse(ByWeight(s))| s).collect();
        kept.sort_by_key(|s| (s.ev.chip, type_code(s.ev.btype), s.start, s.end, s.ev.id));
        // (time, what, slice); at one moment, slices that end there free their
        // lane before those that start take one, and empty ones come last.
        const END: u8 = 0;
        const START: u8 = 1;
        const END_EMPTY: u8 = 2;
        let mut sweep: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * kept.len());
        for (i, s) in kept.iter().enumerate() {
            sweep.push((s.start, START, i));
            sweep.push((s.end, if s.end == s.start { END_EMPTY } else { END }, i));
        }
        sweep.sort_by_key(|&(t, what, i)| (kept[i].ev.chip, type_code(kept[i].ev.btype), t, what, i));
        let mut lanes: FxHashMap<(i32, BufferType), Lanes> = FxHashMap::default();
        let mut lane_of = vec![0u32; kept.len()];
        for &(_, what, i) in &sweep {
            let key = (kept[i].ev.chip, kept[i].ev.btype);
            let l = lanes.entry(key).or_default();
            if what == START {
                let (lane, new) = l.take();
                lane_of[i] = lane;
                if new {
                    let (pid, tid) = (chip_pid(key.0), lane_tid(key.1, lane));
                    self.emit(&format!(r#"{{"ph":"M","name":"thread_name","pid":{pid},"tid":{tid},"ts":0,"args":{{"name":"{} #{lane}"}}}}"#, key.1.name()))?;
                    self.emit(&format!(r#"{{"ph":"M","name":"thread_sort_index","pid":{pid},"tid":{tid},"ts":0,"args":{{"sort_index":{tid}}}}}"#))?;
                }
            } else {
                l.give(lane_of[i]);
            }
        }
        for (i, s) in kept.iter().enumerate() {
            self.slice(s, lane_of[i])?;
        }
        let tracks = std::mem::take(&mut self.tracks);
        let mut downsampled = 0;
        for (&(chip, t), track) in &tracks {
            downsampled += track.buckets.is_some() as u64;
            for (ts, v) in track.points() {
                self.emit(&format!(r#"{{"ph":"C","name":"chip {chip} {}","pid":{},"tid":0,"ts":{},"args":{{"bytes":{v}}}}}"#, t.name(), chip_pid(chip), us(ts)))?;
            }
        }
        Ok(Written { slices: kept.len() as u64, allocations: self.allocations, tracks: tracks.len() as u64, downsampled })
    }
}

/// Writes the Perfetto JSON for `trace` to `out`. Says on stderr what was left out.
pub fn run(trace: &Path, out: &Path, limits: &Limits) -> Result<Written, Error> {
    let mut src = Source::open(trace, Some("export"))?;
    let file = std::fs::File::create(out).map_err(|e| Error::new(out.display().to_string(), format!("cannot create: {e}")))?;
    let r = export(&mut src, BufWriter::with_capacity(1 << 20, file), out, limits);
    match &r {
        Err(_) => {
            let _ = std::fs::remove_file(out);
        }
        Ok(w) => {
            src.warn_if_cut();
            if let Some(note) = note(w, limits) {
                eprintln!("ttalloc: {note}");
            }
        }
    }
    r
}

/// The one-line note on what was sampled, if anything was.
pub fn note(w: &Written, limits: &Limits) -> Option<String> {
    let mut parts = Vec::new();
    if w.slices < w.allocations {
        parts.push(format!(
            "kept the {} allocation slices with the most byte × time of {} (--slices N, 0 for all)",
            count(w.slices),
            count(w.allocations)
        ));
    }
    if w.downsampled > 0 {
        parts.push(format!(
            "{} of {} counter tracks reduced to {} points keeping each interval's maximum (--max-points N, 0 for all)",
            w.downsampled,
            w.tracks,
            count(limits.max_points as u64)
        ));
    }
    (!parts.is_empty()).then(|| format!("export: {}", parts.join("; ")))
}

fn export<W: Write>(src: &mut Source, w: W, out: &Path, limits: &Limits) -> Result<Written, Error> {
    let oerr = |e: std::io::Error| crate::out_err(&out.display().to_string(), e);
    let mut x = Exporter {
        w,
        first: true,
        limits: *limits,
        open: FxHashMap::default(),
        kept: BinaryHeap::new(),
        allocations: 0,
        chips: BTreeSet::new(),
        tracks: BTreeMap::new(),
        last_value: FxHashMap::default(),
        pids: FxHashSet::default(),
        max_ts: 0,
    };
    x.w.write_all(b"{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n").map_err(oerr)?;
    let mut model = Model::new();
    let mut clock = Clock::default();
    let mut evbuf: Vec<ChipEvent> = Vec::new();
    let mut touched: Vec<(i32, BufferType, u64)> = Vec::new();
    while let Some(r) = src.next_record()? {
        clock.see(&r);
        evbuf.clear();
        model.apply(&r, &mut |e| evbuf.push(*e));
        match &r {
            Record::Process(i) => {
                let name = format!("pid {} {}", i.pid, i.exe);
                x.process(i.pid, &name).map_err(oerr)?;
            }
            Record::Gap { p, after_seq, lost } => {
                let pid = model.procs.get(*p as usize).map_or(0, |s| s.pid());
                let ts = clock.last_of(*p).unwrap_or(0);
                x.process(pid, &format!("pid {pid}")).map_err(oerr)?;
                x.emit(&format!(
                    r#"{{"ph":"i","s":"t","name":"gap: {lost} events lost","pid":{PROCESSES_PID},"tid":{pid},"ts":{},"args":{{"after_seq":{after_seq},"lost":{lost}}}}}"#,
                    us(ts)
                ))
                .map_err(oerr)?;
            }
            _ => {}
        }
        touched.clear();
        for e in &evbuf {
            let ts = if e.ts_ns == 0 { clock.last_of(e.p).unwrap_or(0) } else { e.ts_ns };
            x.max_ts = x.max_ts.max(ts);
            x.event(e, ts).map_err(oerr)?;
            if e.kind.is_acquire() || e.kind.is_release() {
                match touched.iter_mut().find(|(c, t, _)| *c == e.chip && *t == e.btype) {
                    Some(t) => t.2 = t.2.max(ts),
                    None => touched.push((e.chip, e.btype, ts)),
                }
            }
        }
        for &(chip, t, ts) in &touched {
            let v = model.usage.get(&(chip, t)).map_or(0, |u| u.current);
            x.counter(chip, t, ts, v);
        }
    }
    let written = x.finish().map_err(oerr)?;
    x.w.write_all(b"\n]}\n").map_err(oerr)?;
    x.w.flush().map_err(oerr)?;
    Ok(written)
}
