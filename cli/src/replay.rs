//! `ttalloc replay TRACE [--json] [--top N]` — peaks, live sets at the peaks,
//! counts, leaks and gaps per chip × memory type; and `--at SEQ|TIME` — the
//! live set at one moment of one process.

use crate::source::{Error, Source};
use crate::summary::{self, live_on, ordered_types, Clock, LiveItem, Options, Rest, Summary, TypeSummary};
use crate::units::{bytes, chip_set, count, hex, secs, table, Moment};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use ttalloc_trace::{Ev, Model, Record};

pub struct Args<'a> {
    pub trace: &'a Path,
    pub json: bool,
    pub top: usize,
    pub at: Option<Moment>,
    pub pid: Option<u32>,
}

pub fn run(a: &Args) -> Result<(), Error> {
    if let Some(m) = a.at {
        return at(a, m);
    }
    let opts = Options { top: a.top, peak_live: true, progress: true, ..Options::default() };
    let s = summary::summarize_with(a.trace, &opts)?;
    if a.json {
        write_json(&s)?;
    } else {
        write_out(&render(&s))?;
    }
    warn_cut(&s);
    Ok(())
}

pub fn write_out(s: &str) -> Result<(), Error> {
    let mut o = std::io::stdout().lock();
    o.write_all(s.as_bytes()).and_then(|_| o.flush()).map_err(|e| crate::out_err("stdout", e))
}

/// `v` as pretty JSON and a newline on stdout, streamed: a summary with 10^5
/// leaks is ≈ 30 MB, which as one string cost a fifth of the time after the
/// last record (copies as it grew, and the page faults of fresh buffers).
pub fn write_json(v: &impl Serialize) -> Result<(), Error> {
    let mut o = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut o, v)
        .map_err(std::io::Error::from)
        .and_then(|_| o.write_all(b"\n"))
        .and_then(|_| o.flush())
        .map_err(|e| crate::out_err("stdout", e))
}

pub fn warn_cut(s: &Summary) {
    if let Some(c) = &s.trace.cut {
        eprintln!("ttalloc: {}", c.warning(&s.trace.path));
    }
}

/// `pid 100 seq 12 +1.234s`
fn when(t: &TypeSummary) -> String {
    match (t.peak_pid, t.peak_seq, t.peak_t_ns) {
        (Some(pid), Some(seq), Some(tn)) => format!("pid {pid} seq {seq} +{}", secs(tn)),
        _ => "-".into(),
    }
}

pub fn item_line(i: &LiveItem) -> String {
    let what = match (i.buffer, i.program) {
        (Some(b), _) => format!("buffer {}", hex(b)),
        (_, Some(p)) => format!("cb of program {}", hex(p)),
        _ => String::new(),
    };
    let mut flags = String::new();
    if i.hooked {
        flags.push_str(" [hooked: no memory]");
    }
    if i.global {
        flags.push_str(" [global CB: aliases an L1 buffer]");
    }
    format!(
        "{:>11}  @{:<12} {}  pid {} tid {} seq {} +{}{}",
        bytes(i.size),
        hex(i.address),
        what,
        i.pid,
        i.tid,
        i.id,
        secs(i.t_ns),
        flags
    )
}

pub fn render(s: &Summary) -> String {
    let mut o = String::new();
    let t = &s.trace;
    o.push_str(&format!(
        "{}: {} records, {}, {} process{}{}\n\n",
        t.path,
        count(t.records),
        bytes(t.bytes),
        s.processes.len(),
        if s.processes.len() == 1 { "" } else { "es" },
        if t.complete { "" } else { " (incomplete: no footer)" }
    ));
    let mut rows = Vec::new();
    for (chip, types) in &s.chips {
        for (name, u) in ordered_types(types) {
            rows.push(vec![
                chip.to_string(),
                name.clone(),
                bytes(u.peak),
                when(u),
                bytes(u.live_end),
                count(u.live_end_count),
                count(u.allocs),
                count(u.frees),
                count(u.hooked_allocs),
                count(u.close_released),
            ]);
        }
    }
    if rows.is_empty() {
        o.push_str("no allocations recorded\n");
    } else {
        o.push_str(&table(
            &["CHIP", "TYPE", "PEAK", "PEAK AT", "LIVE AT END", "LIVE #", "ALLOCS", "FREES", "HOOKED", "CLOSE-RELEASED"],
            &rows,
            &[true, false, true, false, true, true, true, true, true, true],
        ));
    }
    // What was live at each peak; chips with the very same story are shown once.
    let mut groups: Vec<(Vec<i32>, &String, &TypeSummary)> = Vec::new();
    for (chip, types) in &s.chips {
        for (name, u) in ordered_types(types) {
            if u.peak_live.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(_, n, g)| *n == name && *g == u) {
                Some(g) => g.0.push(*chip),
                None => groups.push((vec![*chip], name, u)),
            }
        }
    }
    groups.sort_by_key(|(chips, name, _)| (summary::type_rank(name), chips[0]));
    for (chips, name, u) in groups {
        let which = if chips.len() == 1 { format!("chip {}", chips[0]) } else { format!("chips {}", chip_set(&chips)) };
        o.push_str(&format!("\n{which} {name}: peak {} at {}; live then (largest first):\n", bytes(u.peak), when(u)));
        for i in &u.peak_live {
            o.push_str(&format!("  {}\n", item_line(i)));
        }
        if u.peak_live_rest.count > 0 {
            o.push_str(&format!("  … and {} more ({})\n", count(u.peak_live_rest.count), bytes(u.peak_live_rest.bytes)));
        }
    }
    if !s.processes.is_empty() {
        o.push('\n');
        let rows: Vec<Vec<String>> = s
            .processes
            .iter()
            .map(|p| {
                vec![
                    p.p.to_string(),
                    p.pid.to_string(),
                    p.exe.clone(),
                    p.attach.clone(),
                    p.ended.clone().unwrap_or_else(|| "-".into()),
                    count(p.events),
                    count(p.dropped),
                    count(p.unknown_frees),
                ]
            })
            .collect();
        o.push_str(&table(&["P", "PID", "EXE", "ATTACH", "ENDED", "EVENTS", "DROPPED", "UNKNOWN FREES"], &rows, &[true, true, false, false, false, true, true, true]));
    }
    o.push('\n');
    o.push_str(&format!("unknown frees: {}\n", count(s.unknown_frees)));
    o.push_str(&format!("alloc failures: {}\n", count(s.alloc_failures)));
    o.push_str(&format!("gaps: {} ({} events lost)\n", count(s.gaps.len() as u64), count(s.dropped)));
    for g in s.gaps.iter().take(10) {
        o.push_str(&format!("  pid {} after seq {}: {} lost\n", g.pid, g.after_seq, count(g.lost)));
    }
    if s.gaps.len() > 10 {
        o.push_str(&format!("  … and {} more\n", s.gaps.len() - 10));
    }
    let (n, b): (u64, u64) = s.leaks.iter().fold((0, 0), |(n, b), g| (n + g.count, b.saturating_add(g.bytes)));
    if n == 0 {
        o.push_str("leaks: none\n");
    } else {
        o.push_str(&format!("leaks: {} allocation{} ({}) in {} group{}; `ttalloc leaks {}` lists them\n", count(n), if n == 1 { "" } else { "s" }, bytes(b), s.leaks.len(), if s.leaks.len() == 1 { "" } else { "s" }, t.path));
    }
    o
}

/// `replay --at`: the live set at one moment.
#[derive(Serialize)]
pub struct AtReport {
    pub at: AtMoment,
    pub chips: BTreeMap<i32, BTreeMap<String, AtUsage>>,
}

#[derive(Serialize)]
pub struct AtMoment {
    /// What was asked (`1234`, `2.5s`).
    pub requested: String,
    pub p: u32,
    pub pid: u32,
    /// The last event of that process at or before the moment (null: none yet).
    pub seq: Option<u64>,
    pub ts_ns: Option<u64>,
    pub t_ns: Option<u64>,
    /// The trace ended before the moment: this is its end.
    pub past_end: bool,
}

#[derive(Serialize)]
pub struct AtUsage {
    pub live: u64,
    pub count: u64,
    pub allocations: Vec<LiveItem>,
    pub rest: Rest,
}

fn at(a: &Args, moment: Moment) -> Result<(), Error> {
    let mut src = Source::open(a.trace, Some("replay"))?;
    let mut model = Model::new();
    let mut clock = Clock::default();
    let mut target: Option<u32> = None;
    let mut last: Option<Ev> = None;
    let mut past_end = true;
    let mut noop = |_: &ttalloc_trace::ChipEvent| {};
    while let Some(r) = src.next_record()? {
        if target.is_none() {
            match (a.pid, &r) {
                (Some(pid), Record::Process(i)) if i.pid == pid => target = Some(i.p),
                (None, r) => target = r.process(),
                _ => {}
            }
        }
        if let (Some(tp), Some(ev)) = (target, r.ev().copied()) {
            if ev.p == tp {
                let beyond = match moment {
                    Moment::Seq(s) => ev.seq > s,
                    Moment::Time(t) => ev.ts_ns.saturating_sub(clock.first_of(tp).unwrap_or(ev.ts_ns)) > t,
                };
                if beyond {
                    past_end = false;
                    break;
                }
                clock.see(&r);
                model.apply(&r, &mut noop);
                last = Some(ev);
                if moment == Moment::Seq(ev.seq) {
                    past_end = false;
                    break;
                }
                continue;
            }
        }
        clock.see(&r);
        model.apply(&r, &mut noop);
    }
    let Some(tp) = target else {
        return Err(match a.pid {
            Some(pid) => Error::new(a.trace.display().to_string(), format!("no process with pid {pid} in this trace")),
            None => Error::new(a.trace.display().to_string(), "no process in this trace"),
        });
    };
    if past_end {
        src.warn_if_cut();
    }
    let requested = match moment {
        Moment::Seq(s) => s.to_string(),
        Moment::Time(t) => format!("{}ns", t),
    };
    let pid = model.procs.get(tp as usize).map_or(0, |s| s.pid());
    let mut rep = AtReport {
        at: AtMoment {
            requested,
            p: tp,
            pid,
            seq: last.map(|e| e.seq),
            ts_ns: last.map(|e| e.ts_ns),
            t_ns: last.map(|e| clock.rel(tp, e.ts_ns)),
            past_end,
        },
        chips: BTreeMap::new(),
    };
    for (&(chip, bt), u) in &model.usage {
        if u.current == 0 && u.live_count == 0 {
            continue;
        }
        let (allocations, rest) = live_on(&model, &clock, chip, bt, a.top);
        rep.chips.entry(chip).or_default().insert(bt.name().to_string(), AtUsage { live: u.current, count: u.live_count, allocations, rest });
    }
    if a.json {
        write_json(&rep)
    } else {
        write_out(&render_at(&rep))
    }
}

fn render_at(r: &AtReport) -> String {
    let mut o = String::new();
    let m = &r.at;
    match (m.seq, m.t_ns) {
        (Some(seq), Some(t)) => o.push_str(&format!("live at pid {} (process {}) seq {} (+{})", m.pid, m.p, seq, secs(t))),
        _ => o.push_str(&format!("live before the first event of pid {} (process {})", m.pid, m.p)),
    }
    if m.past_end {
        o.push_str(" — the trace ends before the moment asked for; this is its end");
    }
    o.push_str(":\n");
    let mut rows = Vec::new();
    for (chip, types) in &r.chips {
        for (name, u) in ordered_types(types) {
            rows.push(vec![chip.to_string(), name.clone(), bytes(u.live), count(u.count)]);
        }
    }
    if rows.is_empty() {
        o.push_str("nothing live\n");
        return o;
    }
    o.push_str(&table(&["CHIP", "TYPE", "LIVE", "LIVE #"], &rows, &[true, false, true, true]));
    let mut groups: Vec<(Vec<i32>, &String, &AtUsage)> = Vec::new();
    for (chip, types) in &r.chips {
        for (name, u) in ordered_types(types) {
            match groups.iter_mut().find(|(_, n, g)| *n == name && g.live == u.live && g.allocations == u.allocations && g.rest == u.rest) {
                Some(g) => g.0.push(*chip),
                None => groups.push((vec![*chip], name, u)),
            }
        }
    }
    groups.sort_by_key(|(chips, name, _)| (summary::type_rank(name), chips[0]));
    for (chips, name, u) in groups {
        let which = if chips.len() == 1 { format!("chip {}", chips[0]) } else { format!("chips {}", chip_set(&chips)) };
        o.push_str(&format!("\n{which} {name}: {} live\n", bytes(u.live)));
        for i in &u.allocations {
            o.push_str(&format!("  {}\n", item_line(i)));
        }
        if u.rest.count > 0 {
            o.push_str(&format!("  … and {} more ({})\n", count(u.rest.count), bytes(u.rest.bytes)));
        }
    }
    o
}
