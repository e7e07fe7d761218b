//! Replaying a trace file into a [`Summary`] — the object `ttalloc replay
//! --json` prints (documented in `docs/replay-json.md`) and that `diff`,
//! `leaks` and `report` are built on.
//!
//! The accounting is `ttalloc_trace::Model`'s; this module only watches it.
//! The file is streamed once and memory stays bounded by the live set: the
//! live sets at the peaks are kept as the peaks are found (`peak_sets`).

use crate::largest::{largest_first, Beyond};
use crate::peak_sets::{PeakSets, Target};
use crate::prefetch::Prefetch;
use crate::source::{Cut, Error, Source};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use ttalloc_ring::BufferType;
use ttalloc_trace::{ChipEvent, ChipKind, Model, Record};

/// Display order of memory types in tables.
pub const TYPE_ORDER: [&str; 7] = ["DRAM", "L1", "L1_SMALL", "TRACE", "CB", "SYSTEM_MEMORY", "UNKNOWN"];

pub fn type_rank(name: &str) -> usize {
    TYPE_ORDER.iter().position(|t| *t == name).unwrap_or(TYPE_ORDER.len())
}

/// Types of a chip in display order.
pub fn ordered_types<V>(m: &BTreeMap<String, V>) -> Vec<(&String, &V)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by_key(|(k, _)| (type_rank(k), (*k).clone()));
    v
}

#[derive(Clone, Debug)]
pub struct Options {
    /// Entries of `peak_live` kept per chip × type (the rest is summed in `peak_live_rest`).
    pub top: usize,
    /// List what was live at each peak.
    pub peak_live: bool,
    /// Build the L1 address map of each chip at its L1 peak (L1 + L1_SMALL + CB).
    pub l1_maps: bool,
    /// L1 banks a buffer is interleaved over, for the per-bank footprint in the map.
    pub l1_banks: u32,
    /// Top of the L1 address range in the map (default: the highest end seen).
    pub l1_size: Option<u64>,
    /// Buckets of the usage-over-time series (0: none).
    pub timeline: usize,
    /// Progress bar on stderr (when it is a terminal and the file is large).
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { top: 20, peak_live: true, l1_maps: false, l1_banks: 1, l1_size: None, timeline: 0, progress: false }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub trace: TraceInfo,
    /// chip id → memory type name → usage.
    pub chips: BTreeMap<i32, BTreeMap<String, TypeSummary>>,
    pub unknown_frees: u64,
    pub dropped: u64,
    pub gaps: Vec<Gap>,
    pub alloc_failures: u64,
    pub leaks: Vec<LeakGroup>,
    pub processes: Vec<ProcessSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Timeline>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub l1_maps: BTreeMap<i32, L1Map>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceInfo {
    pub path: String,
    pub bytes: u64,
    pub records: u64,
    /// The trace ended with its footer.
    pub complete: bool,
    /// Where and why the replay stopped early (cut-short trace), else null.
    pub cut: Option<Cut>,
    pub format_version: u32,
    pub tool_version: String,
    pub host: String,
    pub command: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TypeSummary {
    pub peak: u64,
    /// Process (index, pid) whose event reached the peak; null when `peak` is 0.
    pub peak_p: Option<u32>,
    pub peak_pid: Option<u32>,
    pub peak_seq: Option<u64>,
    pub peak_ts_ns: Option<u64>,
    /// `peak_ts_ns` minus the first event time of that process.
    pub peak_t_ns: Option<u64>,
    pub live_end: u64,
    pub live_end_count: u64,
    pub allocs: u64,
    pub frees: u64,
    pub hooked_allocs: u64,
    pub close_released: u64,
    /// What was live at the peak, largest first (at most `top` entries).
    #[serde(default)]
    pub peak_live: Vec<LiveItem>,
    /// The live allocations at the peak not listed in `peak_live`.
    #[serde(default)]
    pub peak_live_rest: Rest,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rest {
    pub count: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveItem {
    pub p: u32,
    pub pid: u32,
    /// The allocation's sequence number (its id within the process).
    pub id: u64,
    pub tid: u32,
    pub ts_ns: u64,
    pub t_ns: u64,
    /// `buffer` or `cb`.
    pub kind: String,
    #[serde(rename = "type")]
    pub btype: String,
    pub address: u64,
    pub size: u64,
    /// Bytes it counts for (0 when hooked or a global CB).
    pub bytes: u64,
    pub page_size: u32,
    pub buffer: Option<u64>,
    pub program: Option<u64>,
    pub hooked: bool,
    pub global: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub p: u32,
    pub pid: u32,
    pub after_seq: u64,
    pub lost: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakGroup {
    pub p: u32,
    pub pid: u32,
    #[serde(rename = "type")]
    pub btype: String,
    pub size: u64,
    /// `exit` (live when its process ended) or `device_close` (released by a close).
    pub at: String,
    pub hooked: bool,
    pub count: u64,
    pub bytes: u64,
    pub items: Vec<LeakItem>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakItem {
    pub chip: i32,
    pub address: u64,
    /// The allocation: its seq (id), thread and time.
    pub id: u64,
    pub tid: u32,
    pub ts_ns: u64,
    pub t_ns: u64,
    pub buffer: Option<u64>,
    pub program: Option<u64>,
    /// The device close that released it (null for `exit`).
    pub released_seq: Option<u64>,
    pub released_ts_ns: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessSummary {
    pub p: u32,
    pub pid: u32,
    pub exe: String,
    pub attach: String,
    /// `exited`, `killed`, `collector-stopped`, or null (no end record).
    pub ended: Option<String>,
    pub first_ts_ns: Option<u64>,
    pub last_ts_ns: Option<u64>,
    pub last_seq: u64,
    pub events: u64,
    pub dropped: u64,
    pub unknown_frees: u64,
    pub resyncs: u64,
    pub problems: BTreeMap<String, u64>,
    /// This process's own peak per chip × type.
    pub peaks: BTreeMap<i32, BTreeMap<String, u64>>,
}

/// chip → type name → buckets of `[max, last]` (null: no change in that bucket).
pub type Series = BTreeMap<i32, BTreeMap<String, Vec<Option<[u64; 2]>>>>;

/// Usage over the course of the trace. The x axis is the event number (the
/// order of the traced calls in the trace), not time: allocations come in
/// bursts, and a time axis squeezes a burst into a pixel. Buckets of
/// `bucket_events` events each hold `[max, last]` per chip × type, or null
/// when nothing changed in them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Events in the trace.
    pub events: u64,
    pub bucket_events: u64,
    /// Per bucket, the time of its last event, ns after the trace's first event (null: no event).
    pub t_ns: Vec<Option<u64>>,
    pub series: Series,
}

/// A chip's L1 at the peak of its L1 footprint (L1 + L1_SMALL + CB).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct L1Map {
    pub peak: u64,
    pub p: u32,
    pub pid: u32,
    pub seq: u64,
    pub ts_ns: u64,
    pub t_ns: u64,
    pub lo: u64,
    pub hi: u64,
    pub banks: u32,
    pub ranges: Vec<L1Range>,
    /// Free ranges between `lo` and `hi`, `[start, size]`, largest first.
    pub gaps: Vec<[u64; 2]>,
    pub largest_gap: Option<[u64; 2]>,
    pub free: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct L1Range {
    pub start: u64,
    pub end: u64,
    #[serde(rename = "type")]
    pub btype: String,
    pub pid: u32,
    pub id: u64,
    pub size: u64,
    pub program: Option<u64>,
    /// The per-bank footprint estimate ran into the next range and was cut there.
    pub clipped: bool,
}

pub(crate) fn is_l1ish(t: BufferType) -> bool {
    matches!(t, BufferType::L1 | BufferType::L1Small | BufferType::Cb)
}

/// Per-process first/last event time (the zero of `t_ns`).
#[derive(Clone, Debug, Default)]
pub struct Clock {
    pub first: Vec<Option<u64>>,
    pub last: Vec<u64>,
}

impl Clock {
    #[inline]
    pub fn see(&mut self, r: &Record) {
        if let Some(ev) = r.ev() {
            let p = ev.p as usize;
            match (self.first.get_mut(p), self.last.get_mut(p)) {
                (Some(Some(_)), Some(last)) => *last = (*last).max(ev.ts_ns),
                _ => self.first_event(p, ev.ts_ns),
            }
        }
    }
    /// Process `p`'s first event (or a process index not seen before).
    #[cold]
    fn first_event(&mut self, p: usize, ts: u64) {
        if self.first.len() <= p {
            self.first.resize(p + 1, None);
            self.last.resize(p + 1, 0);
        }
        self.first[p].get_or_insert(ts);
        self.last[p] = self.last[p].max(ts);
    }
    pub fn rel(&self, p: u32, ts: u64) -> u64 {
        ts.saturating_sub(self.first.get(p as usize).copied().flatten().unwrap_or(ts))
    }
    pub fn first_of(&self, p: u32) -> Option<u64> {
        self.first.get(p as usize).copied().flatten()
    }
    pub fn last_of(&self, p: u32) -> Option<u64> {
        self.first_of(p).map(|_| self.last[p as usize])
    }
}

/// Fixed-size usage-over-events buckets; the bucket width doubles (pairs
/// merge) whenever the events run past the end, so memory does not grow with
/// the trace.
struct TimelineBuilder {
    n: usize,
    width: u64,
    events: u64,
    t0: Option<u64>,
    times: Vec<Option<u64>>,
    series: BTreeMap<(i32, BufferType), Vec<Option<[u64; 2]>>>,
}

impl TimelineBuilder {
    fn new(n: usize) -> Self {
        let n = n.max(2);
        TimelineBuilder { n, width: 1, events: 0, t0: None, times: vec![None; n], series: BTreeMap::new() }
    }
    /// The next event (at `ts`); returns its number.
    fn event(&mut self, ts: u64) -> u64 {
        let x = self.events;
        self.events += 1;
        while x / self.width >= self.n as u64 {
            self.merge();
        }
        let t0 = *self.t0.get_or_insert(ts);
        let t = &mut self.times[(x / self.width) as usize];
        *t = Some(t.unwrap_or(0).max(ts.saturating_sub(t0)));
        x
    }
    fn add(&mut self, key: (i32, BufferType), x: u64, value: u64) {
        let n = self.n;
        let b = &mut self.series.entry(key).or_insert_with(|| vec![None; n])[(x / self.width) as usize];
        *b = Some(match *b {
            Some([m, _]) => [m.max(value), value],
            None => [value, value],
        });
    }
    fn merge(&mut self) {
        fn halve<T: Copy>(v: &mut Vec<Option<T>>, join: impl Fn(T, T) -> T) {
            let mut out = vec![None; v.len()];
            for (i, o) in out.iter_mut().enumerate().take(v.len() / 2) {
                *o = match (v[2 * i], v[2 * i + 1]) {
                    (Some(a), Some(b)) => Some(join(a, b)),
                    (x, None) => x,
                    (None, y) => y,
                };
            }
            *v = out;
        }
        for v in self.series.values_mut() {
            halve(v, |[a, _], [b, l]| [a.max(b), l]);
        }
        halve(&mut self.times, |a, b| a.max(b));
        self.width *= 2;
    }
    fn finish(self) -> Timeline {
        let mut series: Series = BTreeMap::new();
        for ((chip, t), v) in self.series {
            series.entry(chip).or_default().insert(t.name().to_string(), v);
        }
        Timeline { events: self.events, bucket_events: self.width, t_ns: self.times, series }
    }
}

/// Where a chip's L1 footprint (L1 + L1_SMALL + CB) peaked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct L1Peak {
    pub total: u64,
    pub p: u32,
    pub seq: u64,
    pub ts: u64,
}

struct RawLeak {
    p: u32,
    btype: BufferType,
    size: u64,
    hooked: bool,
    at: &'static str,
    item: LeakItem,
}

/// The replay: the model plus what the summary needs that the model does not keep.
struct Replay {
    model: Model,
    clock: Clock,
    evbuf: Vec<ChipEvent>,
    l1_peak: HashMap<i32, L1Peak>,
    dirty: Vec<i32>,
    leaks: Vec<RawLeak>,
    gaps: Vec<Gap>,
    timeline: Option<TimelineBuilder>,
    l1_maps: bool,
    /// The live sets at the peaks (when wanted), and the targets peaking at this record.
    peak_sets: Option<PeakSets>,
    peaked: Vec<Target>,
}

impl Replay {
    fn apply(&mut self, ord: u64, r: &Record) {
        self.clock.see(r);
        let x = match (&mut self.timeline, r.ev()) {
            (Some(tl), Some(ev)) => tl.event(ev.ts_ns),
            _ => 0,
        };
        self.evbuf.clear();
        self.peaked.clear();
        // The timeline and the L1 peaks read the usage after the record: they get its events then.
        let later = self.timeline.is_some() || self.l1_maps;
        let (buf, peak_sets, peaked, leaks, clock) = (&mut self.evbuf, &mut self.peak_sets, &mut self.peaked, &mut self.leaks, &self.clock);
        self.model.apply(r, &mut |e| {
            if let Some(ps) = peak_sets {
                if e.kind.is_release() {
                    ps.released(e);
                } else if e.peak {
                    peaked.push(Target::Peak(e.chip, e.btype));
                }
            }
            if e.kind == ChipKind::CloseRelease {
                leaks.push(leak(e, clock, "device_close"));
            }
            if later {
                buf.push(*e)
            }
        });
        if let Record::Gap { p, after_seq, lost } = r {
            let pid = self.model.procs.get(*p as usize).map_or(0, |s| s.pid());
            self.gaps.push(Gap { p: *p, pid, after_seq: *after_seq, lost: *lost });
        }
        self.dirty.clear();
        for e in &self.evbuf {
            if let Some(tl) = &mut self.timeline {
                let key = (e.chip, e.btype);
                let Some(u) = self.model.usage.get(&key) else { continue };
                tl.add(key, x, u.current);
            }
            if self.l1_maps && is_l1ish(e.btype) && !self.dirty.contains(&e.chip) {
                self.dirty.push(e.chip);
            }
        }
        for &chip in &self.dirty {
            let total: u64 = [BufferType::L1, BufferType::L1Small, BufferType::Cb]
                .iter()
                .filter_map(|t| self.model.usage.get(&(chip, *t)))
                .fold(0u64, |sum, u| sum.saturating_add(u.current));
            let cur = self.l1_peak.get(&chip).map_or(0, |p| p.total);
            if total > cur {
                let ev = r.ev().copied().unwrap_or_default();
                self.l1_peak.insert(chip, L1Peak { total, p: ev.p, seq: ev.seq, ts: ev.ts_ns });
                self.peaked.push(Target::L1(chip));
            }
        }
        // After all of the record's events: its own releases were not live at the new peak.
        if let Some(ps) = &mut self.peak_sets {
            for &t in &self.peaked {
                ps.peaked(t, ord);
            }
        }
    }
}

/// A leak of `e`'s allocation on `e.chip`, found `at` its device's close
/// (`e` is the close's release) or its process's exit (`e` its acquire).
fn leak(e: &ChipEvent, clock: &Clock, at: &'static str) -> RawLeak {
    let released = e.kind.is_release();
    RawLeak {
        p: e.p,
        btype: e.btype,
        size: e.size,
        hooked: e.hooked,
        at,
        item: LeakItem {
            chip: e.chip,
            address: e.address,
            id: e.id,
            tid: e.alloc_tid,
            ts_ns: e.alloc_ts_ns,
            t_ns: clock.rel(e.p, e.alloc_ts_ns),
            buffer: (e.btype != BufferType::Cb).then_some(e.object),
            program: (e.btype == BufferType::Cb).then_some(e.object),
            released_seq: released.then_some(e.seq),
            released_ts_ns: released.then_some(e.ts_ns),
        },
    }
}

/// `summarize_with` with the default options (live sets at the peaks, 20 entries each).
pub fn summarize(path: &Path) -> Result<Summary, Error> {
    summarize_with(path, &Options::default())
}

/// Replays the trace at `path` into a summary. A cut-short trace is not an
/// error: `trace.cut` says where it stopped.
pub fn summarize_with(path: &Path, opts: &Options) -> Result<Summary, Error> {
    let label = opts.progress.then_some("replay");
    let src = Source::open(path, label)?;
    let mut st = Replay {
        model: Model::new(),
        clock: Clock::default(),
        evbuf: Vec::new(),
        l1_peak: HashMap::new(),
        dirty: Vec::new(),
        leaks: Vec::new(),
        gaps: Vec::new(),
        timeline: (opts.timeline > 0).then(|| TimelineBuilder::new(opts.timeline)),
        l1_maps: opts.l1_maps,
        peak_sets: (opts.peak_live || opts.l1_maps).then(|| PeakSets::new(opts.peak_live, opts.l1_maps, opts.top)),
        peaked: Vec::new(),
    };
    let mut src = Prefetch::start(src);
    src.each(|ord, r, ahead| {
        if let Some(a) = ahead {
            st.model.prefetch(a);
        }
        st.apply(ord, r)
    })?;
    let records = src.ordinal;
    let cut = src.finished().and_then(|s| s.cut.clone());
    drop(src);

    let (m, clock) = (&st.model, &st.clock);
    // What was live at the peaks is ranked beside the leaks being listed:
    // both only read the model, and each is a good part of the time after
    // the last record.
    let wanted = st.peak_sets.is_some();
    let peak_sets = std::sync::Mutex::new(st.peak_sets.take());
    let l1_peak = &st.l1_peak;
    let rank = || peak_sets.lock().ok().and_then(|mut ps| ps.take()).map(|ps| rank_peak_sets(ps, m, clock, l1_peak, opts));
    std::thread::scope(|sc| {
        let ranking = wanted.then(|| std::thread::Builder::new().name("ttalloc-peaks".into()).spawn_scoped(sc, rank));
        let mut s = summary_at_end(path, m, clock, records, cut, &mut st.gaps, &mut st.leaks);
        let ranked = match ranking {
            Some(Ok(h)) => h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
            // Not started: ranked here (the job, never run, left the sets behind).
            _ => rank(),
        };
        if let Some((peaks, l1_maps)) = ranked {
            for ((chip, bt), items, rest) in peaks {
                if let Some(ts) = s.chips.get_mut(&chip).and_then(|c| c.get_mut(bt.name())) {
                    ts.peak_live = items;
                    ts.peak_live_rest = rest;
                }
            }
            s.l1_maps = l1_maps;
        }
        s.timeline = st.timeline.take().map(TimelineBuilder::finish);
        Ok(s)
    })
}

/// A chip × type's live set at its peak: the first `top`, and the rest summed.
type RankedPeak = ((i32, BufferType), Vec<LiveItem>, Rest);

/// The live sets at the peaks, ranked: the first `top` of each chip × type
/// that peaked, and each chip's L1 map at its L1 peak.
fn rank_peak_sets(ps: PeakSets, m: &Model, clock: &Clock, l1_peak: &HashMap<i32, L1Peak>, opts: &Options) -> (Vec<RankedPeak>, BTreeMap<i32, L1Map>) {
    let mut sets = ps.finish(m);
    let mut peaks = Vec::new();
    if opts.peak_live {
        for (&(chip, bt), _) in m.usage.iter().filter(|(_, u)| u.peak > 0) {
            let set = sets.remove(&Target::Peak(chip, bt)).unwrap_or_default();
            let (items, rest) = ranked(m, clock, set.events, set.beyond, opts.top);
            peaks.push(((chip, bt), items, rest));
        }
    }
    let mut l1_maps = BTreeMap::new();
    for (&chip, pk) in l1_peak {
        let set = sets.remove(&Target::L1(chip)).unwrap_or_default();
        l1_maps.insert(chip, l1_map(m, clock, &set.events, pk, opts));
    }
    (peaks, l1_maps)
}

/// Everything but the peaks' live sets, from the model at the end of the
/// trace: per chip × type, per process, the leaks grouped.
fn summary_at_end(path: &Path, m: &Model, clock: &Clock, records: u64, cut: Option<Cut>, gaps: &mut Vec<Gap>, leaks: &mut Vec<RawLeak>) -> Summary {
    let pid_of = |p: u32| m.procs.get(p as usize).map_or(0, |s| s.pid());
    let header = m.header.clone().unwrap_or_else(|| ttalloc_trace::TraceHeader {
        magic: String::new(),
        format_version: 0,
        tool_version: String::new(),
        host: String::new(),
        collector_pid: 0,
        started_real_ns: 0,
        command: vec![],
    });
    let mut s = Summary {
        trace: TraceInfo {
            path: path.display().to_string(),
            bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            records,
            complete: m.footer.is_some() && cut.is_none(),
            cut,
            format_version: header.format_version,
            tool_version: header.tool_version,
            host: header.host,
            command: header.command,
        },
        unknown_frees: m.unknown_frees,
        dropped: m.dropped,
        alloc_failures: m.alloc_failures,
        gaps: std::mem::take(gaps),
        ..Summary::default()
    };
    for (&(chip, t), u) in &m.usage {
        let reached = u.peak > 0;
        s.chips.entry(chip).or_default().insert(
            t.name().to_string(),
            TypeSummary {
                peak: u.peak,
                peak_p: reached.then_some(u.peak_p),
                peak_pid: reached.then(|| pid_of(u.peak_p)),
                peak_seq: reached.then_some(u.peak_seq),
                peak_ts_ns: reached.then_some(u.peak_ts_ns),
                peak_t_ns: reached.then(|| clock.rel(u.peak_p, u.peak_ts_ns)),
                live_end: u.current,
                live_end_count: u.live_count,
                allocs: u.allocs,
                frees: u.frees,
                hooked_allocs: u.hooked_allocs,
                close_released: u.close_released,
                peak_live: Vec::new(),
                peak_live_rest: Rest::default(),
            },
        );
    }
    for (p, ps) in m.procs.iter().enumerate() {
        let p = p as u32;
        let info = ps.info.clone();
        let mut peaks: BTreeMap<i32, BTreeMap<String, u64>> = BTreeMap::new();
        for (&(pp, chip, t), u) in m.proc_usage.range((p, i32::MIN, BufferType::Dram)..=(p, i32::MAX, BufferType::Unknown)) {
            debug_assert_eq!(pp, p);
            peaks.entry(chip).or_default().insert(t.name().to_string(), u.peak);
        }
        s.processes.push(ProcessSummary {
            p,
            pid: ps.pid(),
            exe: info.as_ref().map_or_else(String::new, |i| i.exe.clone()),
            attach: info.as_ref().map_or_else(String::new, |i| i.attach.clone()),
            ended: ps.end.as_ref().map(|e| e.how.clone()),
            first_ts_ns: clock.first_of(p),
            last_ts_ns: clock.last_of(p),
            last_seq: ps.last_seq,
            events: ps.events,
            dropped: ps.dropped,
            unknown_frees: ps.unknown_frees,
            resyncs: ps.resyncs,
            problems: ps.end.as_ref().map(|e| e.problems.iter().cloned().collect()).unwrap_or_default(),
            peaks,
        });
        // Still live when the process ended: leaked at exit.
        let ended = ps.end.as_ref().is_some_and(|e| e.how != "collector-stopped");
        if ended {
            for l in ps.live.values() {
                for &chip in m.chips_of(l) {
                    leaks.push(leak(&m.live_event(p, l, chip), clock, "exit"));
                }
            }
        }
    }
    s.leaks = group_leaks(std::mem::take(leaks), &pid_of);
    s
}

fn group_leaks(raw: Vec<RawLeak>, pid_of: &dyn Fn(u32) -> u32) -> Vec<LeakGroup> {
    let mut groups: BTreeMap<(u32, BufferType, u64, &'static str, bool), LeakGroup> = BTreeMap::new();
    for r in raw {
        let g = groups.entry((r.p, r.btype, r.size, r.at, r.hooked)).or_insert_with(|| LeakGroup {
            p: r.p,
            pid: pid_of(r.p),
            btype: r.btype.name().to_string(),
            size: r.size,
            at: r.at.to_string(),
            hooked: r.hooked,
            ..LeakGroup::default()
        });
        g.count += 1;
        if !r.hooked {
            g.bytes = g.bytes.saturating_add(r.size);
        }
        g.items.push(r.item);
    }
    let mut v: Vec<LeakGroup> = groups.into_values().collect();
    for g in &mut v {
        g.items.sort_by_key(|i| (i.chip, i.id));
    }
    v.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.count.cmp(&a.count)).then(a.p.cmp(&b.p)).then(a.size.cmp(&b.size)));
    v
}

/// A live allocation (the event that acquired it, or a later one about it) as a `LiveItem`.
fn live_item(m: &Model, clock: &Clock, e: &ChipEvent) -> LiveItem {
    let cb = e.btype == BufferType::Cb;
    LiveItem {
        p: e.p,
        pid: m.procs.get(e.p as usize).map_or(0, |s| s.pid()),
        id: e.id,
        tid: e.alloc_tid,
        ts_ns: e.alloc_ts_ns,
        t_ns: clock.rel(e.p, e.alloc_ts_ns),
        kind: if cb { "cb" } else { "buffer" }.to_string(),
        btype: e.btype.name().to_string(),
        address: e.address,
        size: e.size,
        bytes: e.bytes(),
        page_size: e.page_size,
        buffer: (!cb).then_some(e.object),
        program: cb.then_some(e.object),
        hooked: e.hooked,
        global: e.global,
    }
}

/// Live allocations of `btype` on `chip`, largest first: the first `top`, and the rest summed.
pub fn live_on(m: &Model, clock: &Clock, chip: i32, btype: BufferType, top: usize) -> (Vec<LiveItem>, Rest) {
    let set = m.live().filter(|(_, l)| l.btype == btype && m.chips_of(l).contains(&chip)).map(|(p, l)| m.live_event(p, l, chip)).collect();
    ranked(m, clock, set, Beyond::default(), top)
}

/// A live set, largest first: the first `top` as items, and the rest summed
/// (with `beyond`, members of the set already summed).
fn ranked(m: &Model, clock: &Clock, mut set: Vec<ChipEvent>, mut beyond: Beyond, top: usize) -> (Vec<LiveItem>, Rest) {
    set.sort_unstable_by(largest_first);
    for e in set.iter().skip(top) {
        beyond.add(e);
    }
    let rest = Rest { count: beyond.count, bytes: beyond.bytes.min(u64::MAX as u128) as u64 };
    set.truncate(top);
    (set.iter().map(|e| live_item(m, clock, e)).collect(), rest)
}

/// A chip's L1 map from its live set at its L1 peak.
pub(crate) fn l1_map(m: &Model, clock: &Clock, set: &[ChipEvent], pk: &L1Peak, opts: &Options) -> L1Map {
    let banks = opts.l1_banks.max(1) as u64;
    let mut ranges: Vec<L1Range> = set
        .iter()
        .filter(|e| !e.hooked && !e.global && e.size > 0)
        .map(|e| {
            let foot = if e.btype != BufferType::Cb && banks > 1 && e.page_size > 0 {
                let ps = e.page_size as u64;
                e.size.div_ceil(ps).div_ceil(banks) * ps
            } else {
                e.size
            };
            L1Range {
                start: e.address,
                end: e.address.saturating_add(foot),
                btype: e.btype.name().to_string(),
                pid: m.procs.get(e.p as usize).map_or(0, |s| s.pid()),
                id: e.id,
                size: e.size,
                program: (e.btype == BufferType::Cb).then_some(e.object),
                clipped: false,
            }
        })
        .collect();
    ranges.sort_by_key(|r| (r.start, r.end, r.id, r.pid));
    // Buffers are placed so their per-bank footprints never overlap: an
    // estimate that runs into the next range is cut there. (CBs of different
    // programs share addresses by design and are left alone.)
    let starts: Vec<u64> = ranges.iter().map(|r| r.start).collect();
    for r in ranges.iter_mut() {
        if r.btype == "CB" {
            continue;
        }
        let i = starts.partition_point(|&s| s <= r.start);
        if let Some(&next) = starts.get(i) {
            if next < r.end {
                r.end = next;
                r.clipped = true;
            }
        }
    }
    let lo = ranges.iter().map(|r| r.start).min().unwrap_or(0);
    let top = ranges.iter().map(|r| r.end).max().unwrap_or(0);
    let hi = opts.l1_size.map_or(top, |s| s.max(top));
    let mut gaps = Vec::new();
    let mut at = lo;
    for r in &ranges {
        if r.start > at {
            gaps.push([at, r.start - at]);
        }
        at = at.max(r.end);
    }
    if hi > at {
        gaps.push([at, hi - at]);
    }
    let free = gaps.iter().map(|g| g[1]).sum();
    gaps.sort_by(|a, b| b[1].cmp(&a[1]).then(a[0].cmp(&b[0])));
    L1Map {
        peak: pk.total,
        p: pk.p,
        pid: m.procs.get(pk.p as usize).map_or(0, |s| s.pid()),
        seq: pk.seq,
        ts_ns: pk.ts,
        t_ns: clock.rel(pk.p, pk.ts),
        lo,
        hi,
        banks: banks as u32,
        ranges,
        largest_gap: gaps.first().copied(),
        gaps,
        free,
    }
}
