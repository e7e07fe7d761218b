//! `ttalloc report TRACE --html OUT.html` — one self-contained HTML file (no
//! scripts, no network): per-chip memory over time, the composition of each
//! peak, each chip's L1 address map at its L1 peak, and the leaks.

pub mod svg;

use crate::replay::warn_cut;
use crate::source::Error;
use crate::summary::{self, ordered_types, type_rank, Options, Summary, Timeline, TypeSummary};
use crate::units::{bytes, chip_set, count, hex, secs};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use svg::{esc, Part, Series};

pub struct Args<'a> {
    pub trace: &'a Path,
    pub out: &'a Path,
    pub top: usize,
    pub l1_banks: u32,
    pub l1_size: Option<u64>,
}

pub fn run(a: &Args) -> Result<(), Error> {
    let opts = Options { top: a.top, peak_live: true, l1_maps: true, l1_banks: a.l1_banks, l1_size: a.l1_size, timeline: 480, progress: true };
    let s = summary::summarize_with(a.trace, &opts)?;
    let html = render(&s);
    std::fs::write(a.out, html).map_err(|e| Error::new(a.out.display().to_string(), format!("cannot write: {e}")))?;
    warn_cut(&s);
    Ok(())
}

const CSS: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f6f6f6;font-weight:600}td.n,th.n{text-align:right}
.muted{color:#777}.warn{background:#fff4e5;border:1px solid #f0c36d;padding:8px 12px;border-radius:4px}
svg text{font:11px system-ui,sans-serif;fill:#444}svg text.title{font-weight:600;font-size:12px;fill:#222}
svg text.ytick{text-anchor:end}svg text.xtick{text-anchor:middle}
.chip{margin-bottom:28px}code{font:12px ui-monospace,monospace}
nav a{margin-right:10px}
"#;

fn type_sets() -> [(&'static str, &'static [&'static str]); 2] {
    [("DRAM", &["DRAM", "TRACE", "SYSTEM_MEMORY"]), ("L1", &["L1", "L1_SMALL", "CB"])]
}

/// Step points of one series of the timeline, in seconds from `t0`.
fn points(tl: &Timeline, buckets: &[Option<[u64; 2]>]) -> Vec<(f64, u64)> {
    let w = tl.bucket_ns as f64 / 1e9;
    let mut out = Vec::new();
    if buckets.first().is_some_and(|b| b.is_none()) {
        // Nothing of this type before its first change: zero.
        out.push((0.0, 0));
    }
    for (i, b) in buckets.iter().enumerate() {
        if let Some([max, last]) = *b {
            // The bucket's maximum holds through the bucket; its last value after it.
            out.push((i as f64 * w, max));
            if last != max {
                out.push(((i + 1) as f64 * w, last));
            }
        }
    }
    out
}

fn used_span(tl: &Timeline) -> f64 {
    let used = tl.series.values().flat_map(|t| t.values()).map(|v| v.iter().rposition(|b| b.is_some()).map_or(0, |i| i + 1)).max().unwrap_or(1);
    used as f64 * tl.bucket_ns as f64 / 1e9
}

fn when(u: &TypeSummary) -> String {
    match (u.peak_pid, u.peak_seq, u.peak_t_ns) {
        (Some(pid), Some(seq), Some(t)) => format!("pid {pid} seq {seq} +{}", secs(t)),
        _ => "—".into(),
    }
}

pub fn render(s: &Summary) -> String {
    let mut o = String::with_capacity(64 << 10);
    let t = &s.trace;
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><link rel=\"icon\" href=\"data:,\"><title>ttalloc report — {}</title><style>{CSS}</style></head><body>\n",
        esc(&t.path)
    );
    let _ = writeln!(o, "<h1>ttalloc report</h1><p class=\"muted\"><code>{}</code> · {} · {} records · {} process{} · host {} · ttalloc {}</p>", esc(&t.path), bytes(t.bytes), count(t.records), s.processes.len(), if s.processes.len() == 1 { "" } else { "es" }, esc(&t.host), esc(&t.tool_version));
    if !t.command.is_empty() {
        let _ = write!(o, "<p>command: <code>{}</code></p>", esc(&t.command.join(" ")));
    }
    if let Some(c) = &t.cut {
        let _ = write!(o, "<p class=\"warn\">This trace was cut short: {} at byte offset {}. Everything before it is shown.</p>", esc(&c.message), c.offset);
    }
    if s.dropped > 0 || s.unknown_frees > 0 {
        let _ = write!(o, "<p class=\"warn\">{} event(s) were lost in {} gap(s) and {} free(s) could not be paired: numbers near those moments may be off.</p>", count(s.dropped), s.gaps.len(), count(s.unknown_frees));
    }
    o.push_str("<nav>");
    for chip in s.chips.keys() {
        let _ = write!(o, "<a href=\"#chip{chip}\">chip {chip}</a>");
    }
    o.push_str("<a href=\"#peaks\">peaks</a><a href=\"#leaks\">leaks</a><a href=\"#processes\">processes</a></nav>\n");

    // Overview.
    o.push_str("<h2>Overview</h2><table><tr><th class=n>chip</th><th>type</th><th class=n>peak</th><th>peak at</th><th class=n>live at end</th><th class=n>allocs</th><th class=n>frees</th></tr>\n");
    for (chip, types) in &s.chips {
        for (name, u) in ordered_types(types) {
            let _ = writeln!(o, "<tr><td class=n>{chip}</td><td>{}</td><td class=n>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>", esc(name), bytes(u.peak), when(u), bytes(u.live_end), count(u.allocs), count(u.frees));
        }
    }
    o.push_str("</table>\n");

    // Per chip: memory over time and the L1 map.
    for (chip, types) in &s.chips {
        let _ = writeln!(o, "<section class=\"chip\" id=\"chip{chip}\"><h2>Chip {chip}</h2>");
        let mut drew = false;
        if let Some(tl) = &s.timeline {
            let span = used_span(tl);
            if let Some(ser) = tl.series.get(chip) {
                for (set, members) in type_sets() {
                    let series: Vec<Series> = members
                        .iter()
                        .filter_map(|m| ser.get(*m).map(|b| Series { name: m.to_string(), color: svg::type_color(m), points: points(tl, b) }))
                        .collect();
                    if series.is_empty() {
                        continue;
                    }
                    o.push_str(&svg::line_chart(&format!("chip {chip} {set} memory over time"), &series, span, 1040, 220));
                    o.push('\n');
                    drew = true;
                }
            }
        }
        if !drew {
            // Always one picture per chip: its peaks by type.
            let parts: Vec<Part> = ordered_types(types).into_iter().map(|(n, u)| Part { label: format!("{n}: peak {}", bytes(u.peak)), bytes: u.peak, color: svg::type_color(n) }).collect();
            o.push_str(&svg::stacked_bar(&parts, 0, 1040));
        }
        if let Some(m) = s.l1_maps.get(chip) {
            let _ = write!(o, "<h3>L1 address map at the L1 peak</h3><p>{} of L1 + L1_SMALL + CB in use at pid {} seq {} (+{}); the map spans <code>{}</code>–<code>{}</code>.", bytes(m.peak), m.pid, m.seq, secs(m.t_ns), hex(m.lo), hex(m.hi));
            match m.largest_gap {
                Some([start, size]) => {
                    let _ = write!(o, " Largest free gap: <b>{}</b> at <code>{}</code> ({} free in {} gap{}).", bytes(size), hex(start), bytes(m.free), m.gaps.len(), if m.gaps.len() == 1 { "" } else { "s" });
                }
                None => o.push_str(" No free gap inside the occupied span."),
            }
            if m.banks <= 1 {
                o.push_str(" <span class=\"muted\">Buffers are drawn at their full size (per-bank footprints unknown; <code>--l1-banks N</code> refines them), so the free space shown is a lower bound.</span>");
            }
            o.push_str("</p>\n");
            o.push_str(&svg::address_map(m, 1040));
            o.push('\n');
        }
        o.push_str("</section>\n");
    }

    // Peak composition, chips with the same story shown once.
    o.push_str("<h2 id=\"peaks\">What made each peak</h2>\n");
    let mut groups: Vec<(Vec<i32>, &String, &TypeSummary)> = Vec::new();
    for (chip, types) in &s.chips {
        for (name, u) in ordered_types(types) {
            if u.peak == 0 {
                continue;
            }
            match groups.iter_mut().find(|(_, n, g)| *n == name && *g == u) {
                Some(g) => g.0.push(*chip),
                None => groups.push((vec![*chip], name, u)),
            }
        }
    }
    groups.sort_by_key(|(chips, name, _)| (type_rank(name), chips[0]));
    if groups.is_empty() {
        o.push_str("<p>No memory was in use.</p>");
    }
    for (chips, name, u) in groups {
        let which = if chips.len() == 1 { format!("chip {}", chips[0]) } else { format!("chips {}", chip_set(&chips)) };
        let _ = writeln!(o, "<h3>{which} · {} · peak {} at {}</h3>", esc(name), bytes(u.peak), when(u));
        let mut parts: Vec<Part> = u
            .peak_live
            .iter()
            .enumerate()
            .map(|(i, it)| Part { label: format!("{} at {} (pid {} seq {})", bytes(it.bytes), hex(it.address), it.pid, it.id), bytes: it.bytes, color: svg::part_color(i) })
            .collect();
        if u.peak_live_rest.bytes > 0 {
            parts.push(Part { label: format!("{} more: {}", u.peak_live_rest.count, bytes(u.peak_live_rest.bytes)), bytes: u.peak_live_rest.bytes, color: "#cccccc" });
        }
        o.push_str(&svg::stacked_bar(&parts, if name == "CB" { 0 } else { u.peak }, 1040));
        o.push_str("<table><tr><th></th><th class=n>size</th><th>address</th><th>what</th><th class=n>pid</th><th class=n>tid</th><th class=n>seq</th><th class=n>time</th></tr>\n");
        for (i, it) in u.peak_live.iter().enumerate() {
            let what = match (it.buffer, it.program) {
                (Some(b), _) => format!("buffer {}", hex(b)),
                (_, Some(p)) => format!("CB of program {}", hex(p)),
                _ => String::new(),
            };
            let flag = if it.hooked { " (hooked: no memory)" } else if it.global { " (global CB)" } else { "" };
            let _ = writeln!(o, "<tr><td><svg width=\"10\" height=\"10\"><rect width=\"10\" height=\"10\" fill=\"{}\"/></svg></td><td class=n>{}</td><td><code>{}</code></td><td>{}{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>+{}</td></tr>", svg::part_color(i), bytes(it.size), hex(it.address), what, flag, it.pid, it.tid, it.id, secs(it.t_ns));
        }
        if u.peak_live_rest.count > 0 {
            let _ = writeln!(o, "<tr><td></td><td class=n>{}</td><td colspan=6 class=muted>{} more allocations</td></tr>", bytes(u.peak_live_rest.bytes), count(u.peak_live_rest.count));
        }
        o.push_str("</table>\n");
        if name == "CB" {
            o.push_str("<p class=\"muted\">CBs of different programs share L1 addresses: the CB peak is the largest program's CBs, not the sum of the list.</p>\n");
        }
    }

    // Leaks.
    o.push_str("<h2 id=\"leaks\">Leaks</h2>\n");
    let (n, b) = s.leaks.iter().fold((0u64, 0u64), |(n, b), g| (n + g.count, b.saturating_add(g.bytes)));
    if n == 0 {
        o.push_str("<p>None: everything was freed before its process ended or its device closed.</p>\n");
    } else {
        let _ = writeln!(o, "<p>{} allocation{} ({}) still live at process exit or released by a device close.</p>", count(n), if n == 1 { "" } else { "s" }, bytes(b));
        let mut per_chip: BTreeMap<i32, u64> = BTreeMap::new();
        for g in &s.leaks {
            for i in &g.items {
                let sum = per_chip.entry(i.chip).or_default();
                *sum = sum.saturating_add(if g.hooked { 0 } else { g.size });
            }
        }
        o.push_str("<table><tr><th class=n>count</th><th class=n>size</th><th>type</th><th class=n>total</th><th class=n>pid</th><th>chips</th><th>how</th><th>first allocation</th></tr>\n");
        for g in &s.leaks {
            let chips: Vec<i32> = g.items.iter().map(|i| i.chip).collect();
            let how = if g.at == "exit" { "live at process exit" } else { "released by device close" };
            let first = g.items.iter().min_by_key(|i| i.id).map(|i| format!("seq {} tid {} +{} at <code>{}</code>", i.id, i.tid, secs(i.t_ns), hex(i.address))).unwrap_or_default();
            let _ = writeln!(o, "<tr><td class=n>{}</td><td class=n>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td><td>{}{}</td><td>{}</td></tr>", count(g.count), bytes(g.size), esc(&g.btype), bytes(g.bytes), g.pid, chip_set(&chips), how, if g.hooked { " (hooked)" } else { "" }, first);
        }
        o.push_str("</table>\n");
        let parts: Vec<Part> = per_chip.iter().enumerate().map(|(i, (c, b))| Part { label: format!("chip {c}: {}", bytes(*b)), bytes: *b, color: svg::part_color(i) }).collect();
        o.push_str("<h3>Leaked bytes by chip</h3>");
        o.push_str(&svg::stacked_bar(&parts, 0, 1040));
    }

    // Processes.
    o.push_str("<h2 id=\"processes\">Processes</h2><table><tr><th class=n>p</th><th class=n>pid</th><th>exe</th><th>attach</th><th>ended</th><th class=n>events</th><th class=n>dropped</th><th class=n>unknown frees</th></tr>\n");
    for p in &s.processes {
        let _ = writeln!(o, "<tr><td class=n>{}</td><td class=n>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>", p.p, p.pid, esc(&p.exe), esc(&p.attach), esc(p.ended.as_deref().unwrap_or("—")), count(p.events), count(p.dropped), count(p.unknown_frees));
    }
    o.push_str("</table>\n");
    if !s.gaps.is_empty() {
        o.push_str("<h3>Gaps</h3><table><tr><th class=n>pid</th><th class=n>after seq</th><th class=n>lost</th></tr>\n");
        for g in s.gaps.iter().take(100) {
            let _ = writeln!(o, "<tr><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>", g.pid, g.after_seq, count(g.lost));
        }
        o.push_str("</table>\n");
    }
    let _ = writeln!(o, "<p class=\"muted\">unknown frees: {} · allocation failures: {} · generated by ttalloc {}</p>", count(s.unknown_frees), count(s.alloc_failures), env!("CARGO_PKG_VERSION"));
    o.push_str("</body></html>\n");
    o
}
