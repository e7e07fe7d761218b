//! The short end-of-run summary: processes, events, per-chip peaks, live at exit.

use ttalloc_ring::BufferType;
use ttalloc_trace::Model;

pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

pub fn render(m: &Model, events: u64, write_error: Option<&str>, out: Option<&std::path::Path>) -> String {
    let mut s = String::new();
    let procs: Vec<String> = m.procs.iter().filter_map(|p| p.info.as_ref().map(|i| format!("{} ({})", i.pid, i.exe))).collect();
    s += &format!("ttalloc: {} process(es), {events} events", procs.len());
    if let Some(p) = out {
        s += &format!(", trace {}", p.display());
    }
    s += "\n";
    for p in &procs {
        s += &format!("  process {p}\n");
    }
    let chips: std::collections::BTreeSet<i32> = m.usage.keys().map(|(c, _)| *c).collect();
    if !chips.is_empty() {
        s += "  chip   peak DRAM     peak L1       peak CB       live at end (buffers)\n";
    }
    for chip in chips {
        let get = |t| m.usage.get(&(chip, t)).copied().unwrap_or_default();
        let live: u64 = m.usage.iter().filter(|((c, _), _)| *c == chip).map(|(_, u)| u.current).sum();
        let live_n: u64 = m.usage.iter().filter(|((c, _), _)| *c == chip).map(|(_, u)| u.live_count).sum();
        s += &format!(
            "  {chip:<6} {:<13} {:<13} {:<13} {} ({live_n})\n",
            human(get(BufferType::Dram).peak),
            human(get(BufferType::L1).peak),
            human(get(BufferType::Cb).peak),
            human(live)
        );
    }
    s += &format!("  unknown frees: {}   dropped events: {}   gaps: {}\n", m.unknown_frees, m.dropped, m.gaps);
    for p in &m.procs {
        if let (Some(i), Some(e)) = (&p.info, &p.end) {
            if !e.problems.is_empty() {
                let list: Vec<String> = e.problems.iter().map(|(n, c)| format!("{n}={c}")).collect();
                s += &format!("  shim problems in pid {}: {}\n", i.pid, list.join(" "));
            }
        }
    }
    if let Some(e) = write_error {
        s += &format!("  TRACE INCOMPLETE: {e}\n");
    }
    s
}
