//! `ttalloc report TRACE --html OUT.html` — one self-contained HTML file (no
//! network: a Content-Security-Policy forbids any fetch): the peaks at a
//! glance, per-chip memory over the course of the trace, the composition of
//! each peak, each chip's L1 address map at its L1 peak, and the leaks.
//!
//! The pictures are inline SVG drawn here, so the page shows everything with
//! scripts off. Its one small script only checks itself: that every picture
//! was laid out with visible marks, and that no script error happened; it
//! records the result on `<body>` (`data-rendered`, `data-charts`,
//! `data-drawn`, `data-errors`) for the headless-browser test.

pub mod svg;

use crate::replay::warn_cut;
use crate::source::Error;
use crate::summary::{self, ordered_types, type_rank, L1Map, Options, Rest, Summary, Timeline, TypeSummary};
use crate::units::{bytes, chip_set, count, dur, hex};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use svg::{esc, Marker, Part, Series};

pub struct Args<'a> {
    pub trace: &'a Path,
    pub out: &'a Path,
    pub top: usize,
    pub l1_banks: u32,
    pub l1_size: Option<u64>,
}

pub fn run(a: &Args) -> Result<(), Error> {
    let opts = Options { top: a.top, peak_live: true, l1_maps: true, l1_banks: a.l1_banks, l1_size: a.l1_size, timeline: 400, progress: true };
    let s = summary::summarize_with(a.trace, &opts)?;
    let html = render(&s);
    std::fs::write(a.out, html).map_err(|e| Error::new(a.out.display().to_string(), format!("cannot write: {e}")))?;
    warn_cut(&s);
    Ok(())
}

const CSS: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:20px auto;max-width:1120px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 2px}h2{font-size:18px;margin-top:30px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f6f6f6;font-weight:600}td.n,th.n{text-align:right}td.sub{color:#888;font-size:12px}
.muted{color:#777}.warn{background:#fff4e5;border:1px solid #f0c36d;padding:8px 12px;border-radius:4px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:130px}
.card b{display:block;font-size:20px;font-weight:600}.card span{color:#666;font-size:12px}.card.bad{border-color:#e15759;background:#fdf1f1}.card.ok{border-color:#8cc084}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:6px 18px}.chip h3{margin:8px 0 0}
svg text{font:11px system-ui,"DejaVu Sans",sans-serif;fill:#444}svg text.title{font-weight:600;font-size:12px;fill:#222}
svg text.ytick{text-anchor:end}svg text.axis{text-anchor:end;fill:#888;font-size:10px}
svg text.inbar{text-anchor:middle;fill:#fff;font-weight:600}svg text.gap{text-anchor:middle;fill:#d62728;font-weight:600}
svg text.lane{fill:#777;font-size:10px}svg text.addr{font:10px ui-monospace,"DejaVu Sans Mono",monospace;fill:#555}
code{font:12px ui-monospace,"DejaVu Sans Mono",monospace}nav a{margin-right:12px}
#ttalloc-errors{color:#b00;white-space:pre-wrap}#ttalloc-errors:empty{display:none}
"#;

/// Checks the page drew: every picture laid out, with visible marks; script errors caught into the page.
const CHECK: &str = r#"
(function () {
  var errors = [];
  function show() {
    document.getElementById('ttalloc-errors').textContent = errors.join('\n');
    document.body.setAttribute('data-errors', String(errors.length));
  }
  window.addEventListener('error', function (e) { errors.push('script error: ' + e.message); show(); });
  try {
    var pictures = document.querySelectorAll('svg.chart, svg.bar, svg.l1map');
    var drawn = 0, blank = [];
    for (var i = 0; i < pictures.length; i++) {
      var svg = pictures[i], box = svg.getBoundingClientRect(), marks = svg.querySelectorAll('.mark'), visible = 0;
      for (var j = 0; j < marks.length; j++) {
        var b = marks[j].getBBox();
        if (b.width > 0 || b.height > 0) visible++;
      }
      if (box.width > 0 && box.height > 0 && visible > 0) drawn++;
      else blank.push(svg.getAttribute('aria-label') || 'picture ' + i);
    }
    document.body.setAttribute('data-charts', String(pictures.length));
    document.body.setAttribute('data-drawn', String(drawn));
    if (blank.length) errors.push('not drawn: ' + blank.join('; '));
  } catch (e) {
    errors.push('self-check failed: ' + e);
  }
  show();
  document.body.setAttribute('data-rendered', '1');
})();
"#;

/// Types drawn together in one chart: bytes of the same scale.
fn type_sets() -> [(&'static str, &'static [&'static str]); 2] {
    [("DRAM", &["DRAM", "TRACE", "SYSTEM_MEMORY"]), ("L1", &["L1", "L1_SMALL", "CB"])]
}

/// Step points of one series: x = event number.
fn points(tl: &Timeline, buckets: &[Option<[u64; 2]>]) -> Vec<(f64, u64)> {
    let w = tl.bucket_events as f64;
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

fn when(u: &TypeSummary) -> String {
    match (u.peak_pid, u.peak_seq, u.peak_t_ns) {
        (Some(pid), Some(seq), Some(t)) => format!("pid {pid} seq {seq} (+{})", dur(t)),
        _ => "—".into(),
    }
}

/// Chips whose rows are identical (a mesh), shown once.
fn grouped<'a, T: PartialEq>(items: impl Iterator<Item = (i32, &'a T)>) -> Vec<(Vec<i32>, &'a T)> {
    let mut groups: Vec<(Vec<i32>, &T)> = Vec::new();
    for (chip, t) in items {
        match groups.iter_mut().find(|(_, g)| *g == t) {
            Some(g) => g.0.push(chip),
            None => groups.push((vec![chip], t)),
        }
    }
    groups
}

fn chips_label(chips: &[i32]) -> String {
    if chips.len() == 1 {
        format!("chip {}", chips[0])
    } else {
        format!("chips {}", chip_set(chips))
    }
}

fn card(o: &mut String, class: &str, value: &str, what: &str) {
    let _ = write!(o, r#"<div class="card {class}"><b>{}</b><span>{}</span></div>"#, esc(value), esc(what));
}

pub fn render(s: &Summary) -> String {
    let mut o = String::with_capacity(128 << 10);
    let t = &s.trace;
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\"><meta name=\"viewport\" content=\"width=device-width\"><link rel=\"icon\" href=\"data:,\"><title>ttalloc report — {}</title><style>{CSS}</style></head><body>\n",
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
    cards(&mut o, s);
    o.push_str("<nav><a href=\"#peaks\">peaks</a><a href=\"#time\">over time</a><a href=\"#made\">what made them</a><a href=\"#l1\">L1 maps</a><a href=\"#leaks\">leaks</a><a href=\"#processes\">processes</a></nav>\n");
    peaks_table(&mut o, s);
    over_time(&mut o, s);
    composition(&mut o, s);
    l1_maps(&mut o, s);
    leaks(&mut o, s);
    processes(&mut o, s);
    let _ = writeln!(o, "<p class=\"muted\">unknown frees: {} · allocation failures: {} · generated by ttalloc {}</p>", count(s.unknown_frees), count(s.alloc_failures), env!("CARGO_PKG_VERSION"));
    let _ = write!(o, "<pre id=\"ttalloc-errors\"></pre><script>{CHECK}</script>\n</body></html>\n");
    o
}

/// The headline numbers.
fn cards(o: &mut String, s: &Summary) {
    o.push_str("<div class=\"cards\">");
    card(o, "", &s.chips.len().to_string(), if s.chips.len() == 1 { "chip" } else { "chips" });
    for ty in ["DRAM", "L1", "L1_SMALL", "TRACE", "CB"] {
        let best = s.chips.iter().filter_map(|(c, t)| t.get(ty).map(|u| (u.peak, *c))).filter(|(p, _)| *p > 0).max_by_key(|(p, c)| (*p, -c));
        if let Some((peak, _)) = best {
            let on: Vec<i32> = s.chips.iter().filter(|(_, t)| t.get(ty).is_some_and(|u| u.peak == peak)).map(|(c, _)| *c).collect();
            card(o, "", &bytes(peak), &format!("peak {ty} ({})", chips_label(&on)));
        }
    }
    let (n, b) = s.leaks.iter().fold((0u64, 0u64), |(n, b), g| (n.saturating_add(g.count), b.saturating_add(g.bytes)));
    if n == 0 {
        card(o, "ok", "no leaks", "all freed by exit / close");
    } else {
        card(o, "bad", &format!("{} leaked", count(n)), &format!("{} at exit or device close", bytes(b)));
    }
    if s.dropped > 0 || s.unknown_frees > 0 || s.alloc_failures > 0 {
        card(o, "bad", &count(s.dropped.saturating_add(s.unknown_frees).saturating_add(s.alloc_failures)), "lost events, unpaired frees, failed allocations");
    }
    o.push_str("</div>\n");
}

/// Peak (and live at end) per chip × type, identical chips on one row.
fn peaks_table(o: &mut String, s: &Summary) {
    let mut types: Vec<&String> = s.chips.values().flat_map(|t| t.keys()).collect();
    types.sort_by_key(|t| (type_rank(t), (*t).clone()));
    types.dedup();
    o.push_str("<h2 id=\"peaks\">Peaks</h2><p class=\"muted\">Peak per chip and memory type; below it, what was still live at the end. Hover a cell for when.</p><table><tr><th>chips</th>");
    for t in &types {
        let _ = write!(o, "<th class=n>{}</th>", esc(t));
    }
    o.push_str("</tr>\n");
    // Rows by what they show (a mesh's chips peak at different events but alike).
    let shown: Vec<(i32, Vec<Option<(u64, u64, u64, u64)>>)> =
        s.chips.iter().map(|(c, row)| (*c, types.iter().map(|t| row.get(*t).map(|u| (u.peak, u.live_end, u.allocs, u.frees))).collect())).collect();
    for (chips, _) in grouped(shown.iter().map(|(c, v)| (*c, v))) {
        let row = &s.chips[&chips[0]];
        let _ = write!(o, "<tr><td>{}</td>", chips_label(&chips));
        for t in &types {
            match row.get(*t) {
                Some(u) => {
                    let _ = write!(o, "<td class=n title=\"{} · {} allocs, {} frees\">{}<br><span class=sub>{} at end</span></td>", esc(&when(u)), count(u.allocs), count(u.frees), bytes(u.peak), bytes(u.live_end));
                }
                None => o.push_str("<td class=n>—</td>"),
            }
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
}

/// Per chip: DRAM-like and L1-like usage over the trace's events, peaks marked.
fn over_time(o: &mut String, s: &Summary) {
    let Some(tl) = &s.timeline else { return };
    o.push_str("<h2 id=\"time\">Memory over the trace</h2><p class=\"muted\">Usage per chip against the event number (the order of the traced calls, all processes); dots mark the peaks. Hover for values.</p><div class=\"grid\">\n");
    let x_max = tl.events.max(1) as f64;
    let when_x = |x: u64| {
        let i = (x / tl.bucket_events.max(1)) as usize;
        tl.t_ns.get(i).copied().flatten().map(|t| format!(" (+{})", dur(t))).unwrap_or_default()
    };
    for (chip, types) in &s.chips {
        let Some(ser) = tl.series.get(chip) else { continue };
        let _ = write!(o, "<div class=\"chip\" id=\"chip{chip}\">");
        for (set, members) in type_sets() {
            let mut series = Vec::new();
            let mut markers = Vec::new();
            for m in members {
                let Some(b) = ser.get(*m) else { continue };
                let pts = points(tl, b);
                if let (Some(u), Some(&(x, y))) = (types.get(*m), pts.iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.total_cmp(&a.0)))) {
                    if y > 0 {
                        markers.push(Marker { x, y, color: svg::type_color(m), label: format!("{m} peak {} at {} — event #{}{}", bytes(u.peak), when(u), x as u64, when_x(x as u64)) });
                    }
                }
                series.push(Series { name: m.to_string(), color: svg::type_color(m), points: pts });
            }
            if series.is_empty() {
                continue;
            }
            o.push_str(&svg::line_chart(&format!("chip {chip} · {set}"), &series, &markers, x_max, 540, 170));
            o.push('\n');
        }
        o.push_str("</div>\n");
    }
    o.push_str("</div>\n");
}

/// What was live at each peak, chips with the same story shown once.
fn composition(o: &mut String, s: &Summary) {
    o.push_str("<h2 id=\"made\">What made each peak</h2>\n");
    // Chips whose peaks are made of the same sizes at the same addresses (a
    // mesh) are shown once; the table lists the first chip's allocations.
    type Shape = (u64, Vec<(u64, u64, bool, bool)>, Rest);
    let shape = |u: &TypeSummary| -> Shape { (u.peak, u.peak_live.iter().map(|i| (i.size, i.address, i.hooked, i.global)).collect(), u.peak_live_rest) };
    let mut groups: Vec<(Vec<i32>, &String, &TypeSummary, Shape)> = Vec::new();
    for (chip, types) in &s.chips {
        for (name, u) in ordered_types(types) {
            if u.peak == 0 {
                continue;
            }
            let sh = shape(u);
            match groups.iter_mut().find(|(_, n, _, g)| *n == name && *g == sh) {
                Some(g) => g.0.push(*chip),
                None => groups.push((vec![*chip], name, u, sh)),
            }
        }
    }
    let mut groups: Vec<(Vec<i32>, &String, &TypeSummary)> = groups.into_iter().map(|(c, n, u, _)| (c, n, u)).collect();
    groups.sort_by_key(|(chips, name, _)| (type_rank(name), chips[0]));
    if groups.is_empty() {
        o.push_str("<p>No memory was in use.</p>");
    }
    for (chips, name, u) in groups {
        let which = chips_label(&chips);
        let _ = writeln!(o, "<h3>{which} · {} · peak {} at {}</h3>", esc(name), bytes(u.peak), when(u));
        if chips.len() > 1 {
            let _ = writeln!(o, "<p class=\"muted\">The same sizes at the same addresses on each of these chips; the table shows chip {}'s.</p>", chips[0]);
        }
        let mut parts: Vec<Part> = u
            .peak_live
            .iter()
            .enumerate()
            .map(|(i, it)| Part { label: format!("{} at {} (pid {} seq {})", bytes(it.bytes), hex(it.address), it.pid, it.id), bytes: it.bytes, color: svg::part_color(i) })
            .collect();
        if u.peak_live_rest.bytes > 0 {
            parts.push(Part { label: format!("{} more: {}", u.peak_live_rest.count, bytes(u.peak_live_rest.bytes)), bytes: u.peak_live_rest.bytes, color: "#cccccc" });
        }
        o.push_str(&svg::stacked_bar(&format!("{which} {name} peak composition"), &parts, if name == "CB" { 0 } else { u.peak }, 1080));
        o.push_str("<table><tr><th></th><th class=n>size</th><th>address</th><th>what</th><th class=n>pid</th><th class=n>tid</th><th class=n>seq</th><th class=n>time</th></tr>\n");
        for (i, it) in u.peak_live.iter().enumerate() {
            let what = match (it.buffer, it.program) {
                (Some(b), _) => format!("buffer {}", hex(b)),
                (_, Some(p)) => format!("CB of program {}", hex(p)),
                _ => String::new(),
            };
            let flag = if it.hooked { " (hooked: no memory)" } else if it.global { " (global CB)" } else { "" };
            let _ = writeln!(o, "<tr><td><svg width=\"10\" height=\"10\"><rect width=\"10\" height=\"10\" fill=\"{}\"/></svg></td><td class=n>{}</td><td><code>{}</code></td><td>{}{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>+{}</td></tr>", svg::part_color(i), bytes(it.size), hex(it.address), what, flag, it.pid, it.tid, it.id, dur(it.t_ns));
        }
        if u.peak_live_rest.count > 0 {
            let _ = writeln!(o, "<tr><td></td><td class=n>{}</td><td colspan=6 class=muted>{} more allocations</td></tr>", bytes(u.peak_live_rest.bytes), count(u.peak_live_rest.count));
        }
        o.push_str("</table>\n");
        if name == "CB" {
            o.push_str("<p class=\"muted\">CBs of different programs share L1 addresses: the CB peak is the largest program's CBs, not the sum of the list.</p>\n");
        }
    }
}

/// The layout of a map, without who and when: chips with the same layout are shown once.
fn layout(m: &L1Map) -> (u64, u64, u64, Vec<(u64, u64, &str, u64)>) {
    (m.peak, m.lo, m.hi, m.ranges.iter().map(|r| (r.start, r.end, r.btype.as_str(), r.size)).collect())
}

fn l1_maps(o: &mut String, s: &Summary) {
    o.push_str("<h2 id=\"l1\">L1 at its peak</h2>\n");
    if s.l1_maps.is_empty() {
        o.push_str("<p>No L1, L1_SMALL or CB memory was in use.</p>\n");
        return;
    }
    let layouts: Vec<(i32, _)> = s.l1_maps.iter().map(|(c, m)| (*c, layout(m))).collect();
    for (chips, lay) in grouped(layouts.iter().map(|(c, l)| (*c, l))) {
        let m = &s.l1_maps[&chips[0]];
        debug_assert_eq!(&layout(m), lay);
        let _ = write!(o, "<h3>{}</h3><p>{} of L1 + L1_SMALL + CB in use at pid {} seq {} (+{}); the map spans <code>{}</code>–<code>{}</code>.", chips_label(&chips), bytes(m.peak), m.pid, m.seq, dur(m.t_ns), hex(m.lo), hex(m.hi));
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
        o.push_str(&svg::address_map(m, 1080));
        o.push('\n');
    }
}

fn leaks(o: &mut String, s: &Summary) {
    o.push_str("<h2 id=\"leaks\">Leaks</h2>\n");
    let (n, b) = s.leaks.iter().fold((0u64, 0u64), |(n, b), g| (n.saturating_add(g.count), b.saturating_add(g.bytes)));
    if n == 0 {
        o.push_str("<p>None: everything was freed before its process ended or its device closed.</p>\n");
        return;
    }
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
        let first = g.items.iter().min_by_key(|i| i.id).map(|i| format!("seq {} tid {} +{} at <code>{}</code>", i.id, i.tid, dur(i.t_ns), hex(i.address))).unwrap_or_default();
        let _ = writeln!(o, "<tr><td class=n>{}</td><td class=n>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td><td>{}{}</td><td>{}</td></tr>", count(g.count), bytes(g.size), esc(&g.btype), bytes(g.bytes), g.pid, chip_set(&chips), how, if g.hooked { " (hooked)" } else { "" }, first);
    }
    o.push_str("</table>\n");
    let parts: Vec<Part> = per_chip.iter().enumerate().map(|(i, (c, b))| Part { label: format!("chip {c}: {}", bytes(*b)), bytes: *b, color: svg::part_color(i) }).collect();
    if parts.iter().any(|p| p.bytes > 0) {
        o.push_str("<h3>Leaked bytes by chip</h3>");
        o.push_str(&svg::stacked_bar("leaked bytes by chip", &parts, 0, 1080));
    }
}

fn processes(o: &mut String, s: &Summary) {
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
}
