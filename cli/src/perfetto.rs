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
//! Streaming: memory is bounded by the live set, not the history.

use crate::source::{Error, Source};
use crate::summary::Clock;
use crate::units::bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
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

#[derive(Default)]
struct Lanes {
    free: BinaryHeap<Reverse<u32>>,
    end: Vec<u64>,
}

impl Lanes {
    fn take(&mut self, ts: u64) -> (u32, bool) {
        if let Some(&Reverse(l)) = self.free.peek() {
            if self.end[l as usize] <= ts {
                self.free.pop();
                return (l, false);
            }
        }
        self.end.push(ts);
        ((self.end.len() - 1) as u32, true)
    }
    fn give(&mut self, lane: u32, end: u64) {
        let e = &mut self.end[lane as usize];
        *e = (*e).max(end);
        self.free.push(Reverse(lane));
    }
}

struct Open {
    lane: u32,
    start: u64,
    ev: ChipEvent,
}

struct Exporter<W: Write> {
    w: W,
    first: bool,
    lanes: HashMap<(i32, BufferType), Lanes>,
    open: HashMap<(u32, u64, i32), Open>,
    chips: HashSet<i32>,
    counters: HashMap<(i32, BufferType), u64>,
    pids: HashSet<u32>,
    max_ts: u64,
    slices: u64,
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

    fn slice(&mut self, o: &Open, end: u64, how: &str) -> std::io::Result<()> {
        let e = &o.ev;
        let end = end.max(o.start);
        self.slices += 1;
        let mut name = format!("{} {}", e.btype.name(), bytes(e.size));
        if e.hooked {
            name.push_str(" (hooked)");
        }
        if e.global {
            name.push_str(" (global CB)");
        }
        let obj = if e.btype == BufferType::Cb { format!(r#""program":"{:#x}""#, e.object) } else { format!(r#""buffer":"{:#x}""#, e.object) };
        let s = format!(
            r#"{{"ph":"X","cat":{},"name":{},"pid":{},"tid":{},"ts":{},"dur":{},"args":{{"size":{},"address":"{:#x}","pid":{},"tid":{},"id":{},{},"hooked":{},"released":{}}}}}"#,
            js(e.btype.name()),
            js(&name),
            chip_pid(e.chip),
            lane_tid(e.btype, o.lane),
            us(o.start),
            us(end - o.start),
            e.size,
            e.address,
            e.pid,
            e.tid,
            e.id,
            obj,
            e.hooked,
            js(how)
        );
        self.emit(&s)?;
        self.lanes.get_mut(&(e.chip, e.btype)).expect("lane set").give(o.lane, end);
        Ok(())
    }

    fn event(&mut self, e: &ChipEvent, ts: u64) -> std::io::Result<()> {
        self.chip_meta(e.chip)?;
        if e.kind.is_acquire() {
            let (lane, new) = self.lanes.entry((e.chip, e.btype)).or_default().take(ts);
            if new {
                let (pid, tid) = (chip_pid(e.chip), lane_tid(e.btype, lane));
                self.emit(&format!(r#"{{"ph":"M","name":"thread_name","pid":{pid},"tid":{tid},"ts":0,"args":{{"name":"{} #{lane}"}}}}"#, e.btype.name()))?;
                self.emit(&format!(r#"{{"ph":"M","name":"thread_sort_index","pid":{pid},"tid":{tid},"ts":0,"args":{{"sort_index":{tid}}}}}"#))?;
            }
            // A resync may re-announce something already open: close the old slice first.
            if let Some(old) = self.open.remove(&(e.p, e.id, e.chip)) {
                self.slice(&old, ts, "resync")?;
            }
            self.open.insert((e.p, e.id, e.chip), Open { lane, start: ts, ev: *e });
        } else if e.kind.is_release() {
            if let Some(o) = self.open.remove(&(e.p, e.id, e.chip)) {
                self.slice(&o, ts, e.kind.name())?;
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

    fn counter(&mut self, chip: i32, t: BufferType, ts: u64, value: u64) -> std::io::Result<()> {
        if self.counters.insert((chip, t), value) == Some(value) {
            return Ok(());
        }
        self.emit(&format!(
            r#"{{"ph":"C","name":"chip {chip} {}","pid":{},"tid":0,"ts":{},"args":{{"bytes":{value}}}}}"#,
            t.name(),
            chip_pid(chip),
            us(ts)
        ))
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
}

/// Writes the Perfetto JSON for `trace` to `out`; returns the number of slices.
pub fn run(trace: &Path, out: &Path) -> Result<u64, Error> {
    let mut src = Source::open(trace, Some("export"))?;
    let file = std::fs::File::create(out).map_err(|e| Error::new(out.display().to_string(), format!("cannot create: {e}")))?;
    let r = export(&mut src, BufWriter::with_capacity(1 << 20, file), out);
    if r.is_err() {
        let _ = std::fs::remove_file(out);
    } else {
        src.warn_if_cut();
    }
    r
}

fn export<W: Write>(src: &mut Source, w: W, out: &Path) -> Result<u64, Error> {
    let oerr = |e: std::io::Error| crate::out_err(&out.display().to_string(), e);
    let mut x = Exporter {
        w,
        first: true,
        lanes: HashMap::new(),
        open: HashMap::new(),
        chips: HashSet::new(),
        counters: HashMap::new(),
        pids: HashSet::new(),
        max_ts: 0,
        slices: 0,
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
            x.counter(chip, t, ts, v).map_err(oerr)?;
        }
    }
    // Still live at the end of the trace: slices up to its last moment.
    let mut left: Vec<Open> = x.open.drain().map(|(_, o)| o).collect();
    left.sort_by_key(|o| (o.ev.chip, o.start, o.ev.id));
    let end = x.max_ts;
    for o in &left {
        x.slice(o, end, "live at end of trace").map_err(oerr)?;
    }
    x.w.write_all(b"\n]}\n").map_err(oerr)?;
    x.w.flush().map_err(oerr)?;
    Ok(x.slices)
}
