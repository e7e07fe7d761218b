//! Hand-drawn inline SVG: step-line charts, stacked bars and the L1 address
//! map. No external references; tooltips are SVG `<title>`s. Everything
//! that draws data carries the class `mark` (the page's self-check looks
//! for drawn marks in every picture).

use crate::summary::L1Map;
use crate::units::{bytes, hex};
use std::fmt::Write;

pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

pub fn type_color(t: &str) -> &'static str {
    match t {
        "DRAM" => "#4e79a7",
        "L1" => "#f28e2b",
        "L1_SMALL" => "#e15759",
        "TRACE" => "#76b7b2",
        "CB" => "#59a14f",
        "SYSTEM_MEMORY" => "#edc948",
        _ => "#9c755f",
    }
}

/// A palette for the parts of a stacked bar.
pub fn part_color(i: usize) -> &'static str {
    const P: [&str; 10] = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
    P[i % P.len()]
}

/// A round axis step for `max` in at most `ticks` steps (1, 2, 5 × 10^k).
fn nice_step(max: f64, ticks: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / ticks;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let n = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * mag
}

/// A byte axis step: a power of two (memory sizes are), at most 4 steps to `max`.
fn byte_step(max: u64) -> u64 {
    max.div_ceil(4).max(1).next_power_of_two()
}

/// An axis count: `800`, `25k`, `2.5M`.
fn short_count(n: u64) -> String {
    let (v, unit) = match n {
        0..=9_999 => return n.to_string(),
        10_000..=999_999 => (n as f64 / 1e3, "k"),
        1_000_000..=999_999_999 => (n as f64 / 1e6, "M"),
        _ => (n as f64 / 1e9, "G"),
    };
    let s = format!("{v:.1}");
    format!("{}{unit}", s.strip_suffix(".0").unwrap_or(&s))
}

pub struct Series {
    pub name: String,
    pub color: &'static str,
    /// (x, y bytes) as a step function: each y holds until the next x.
    pub points: Vec<(f64, u64)>,
}

/// A point worth a marker: (x, y, tooltip).
pub struct Marker {
    pub x: f64,
    pub y: u64,
    pub color: &'static str,
    pub label: String,
}

/// A step-line chart of byte series over event numbers `0..x_max`, with
/// `markers` (the peaks) as dots.
pub fn line_chart(title: &str, series: &[Series], markers: &[Marker], x_max: f64, w: u32, h: u32) -> String {
    let (ml, mr, mt, mb) = (72.0, 10.0, 24.0, 34.0);
    let pw = w as f64 - ml - mr;
    let ph = h as f64 - mt - mb;
    let y_max_raw = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).max().unwrap_or(0).max(1);
    let ystep = byte_step(y_max_raw);
    let y_ticks = y_max_raw.div_ceil(ystep).max(1);
    let y_max = y_ticks.saturating_mul(ystep) as f64;
    let x_max = if x_max > 0.0 { x_max } else { 1.0 };
    let xstep = nice_step(x_max, 5.0).max(1.0);
    let sx = |x: f64| ml + (x / x_max).clamp(0.0, 1.0) * pw;
    let sy = |y: u64| mt + ph - (y as f64 / y_max).clamp(0.0, 1.0) * ph;
    let mut o = String::new();
    let _ = write!(o, r#"<svg class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{}">"#, esc(title));
    let _ = write!(o, r#"<text x="{ml}" y="14" class="title">{}</text>"#, esc(title));
    // By tick index: sizes near 2^64 (a hostile trace) must not overflow the counter.
    for k in 0..=y_ticks {
        let y = k.saturating_mul(ystep);
        let py = sy(y);
        let _ = write!(o, r##"<line x1="{ml}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#e8e8e8"/><text x="{:.1}" y="{:.1}" class="ytick">{}</text>"##, ml + pw, ml - 5.0, py + 4.0, bytes(y));
    }
    let mut x = 0.0;
    while x <= x_max * 1.0001 {
        let px = sx(x);
        let anchor = if px > ml + pw - 24.0 { "end" } else { "middle" };
        let _ = write!(o, r##"<line x1="{px:.1}" y1="{mt}" x2="{px:.1}" y2="{:.1}" stroke="#f2f2f2"/><text x="{px:.1}" y="{:.1}" class="xtick" text-anchor="{anchor}">{}</text>"##, mt + ph, mt + ph + 14.0, short_count(x as u64));
        x += xstep;
    }
    let _ = write!(o, r##"<text x="{:.1}" y="{:.1}" class="axis">event # (order of the traced calls)</text>"##, ml + pw, h as f64 - 4.0);
    let _ = write!(o, r##"<rect x="{ml}" y="{mt}" width="{pw:.1}" height="{ph:.1}" fill="none" stroke="#aaa"/>"##);
    for s in series {
        if s.points.is_empty() {
            continue;
        }
        let mut d = String::new();
        let mut prev: Option<u64> = None;
        for &(x, y) in &s.points {
            let px = sx(x);
            match prev {
                None => {
                    let _ = write!(d, "M{px:.1},{:.1}", sy(y));
                }
                Some(py) => {
                    let _ = write!(d, " L{px:.1},{:.1} L{px:.1},{:.1}", sy(py), sy(y));
                }
            }
            prev = Some(y);
        }
        if let Some(py) = prev {
            let _ = write!(d, " L{:.1},{:.1}", sx(x_max), sy(py));
        }
        let peak = s.points.iter().map(|p| p.1).max().unwrap_or(0);
        let _ = write!(o, r#"<path class="mark" d="{d}" fill="none" stroke="{}" stroke-width="1.6"><title>{} (peak {})</title></path>"#, s.color, esc(&s.name), bytes(peak));
    }
    for m in markers {
        let (px, py) = (sx(m.x), sy(m.y));
        let _ = write!(o, r##"<circle class="mark" cx="{px:.1}" cy="{py:.1}" r="3.5" fill="{}" stroke="#fff" stroke-width="1"><title>{}</title></circle>"##, m.color, esc(&m.label));
    }
    // Legend, right-aligned on the title line.
    let mut lx = ml + pw;
    for s in series.iter().rev() {
        lx -= 22.0 + 6.5 * s.name.len() as f64;
        let _ = write!(o, r#"<rect x="{lx:.1}" y="5" width="10" height="10" fill="{}"/><text x="{:.1}" y="14" class="legend">{}</text>"#, s.color, lx + 13.0, esc(&s.name));
    }
    o.push_str("</svg>");
    o
}

pub struct Part {
    pub label: String,
    pub bytes: u64,
    pub color: &'static str,
}

/// A horizontal stacked bar of `parts` out of `total`, labelled where there is room.
pub fn stacked_bar(title: &str, parts: &[Part], total: u64, w: u32) -> String {
    let h = 26;
    let total = total.max(parts.iter().fold(0u64, |sum, p| sum.saturating_add(p.bytes))).max(1);
    let mut o = String::new();
    let _ = write!(o, r#"<svg class="bar" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{}">"#, esc(title));
    let _ = write!(o, r##"<rect x="0" y="2" width="{w}" height="22" fill="#f4f4f4" stroke="#ccc"/>"##);
    let mut x = 0.0;
    for p in parts {
        let pw = p.bytes as f64 / total as f64 * w as f64;
        if pw <= 0.0 {
            continue;
        }
        let _ = write!(o, r##"<rect class="mark" x="{x:.2}" y="2" width="{pw:.2}" height="22" fill="{}" stroke="#fff" stroke-width="0.5"><title>{}</title></rect>"##, p.color, esc(&p.label));
        let short = bytes(p.bytes);
        if pw > 8.0 * short.len() as f64 + 8.0 {
            let _ = write!(o, r##"<text x="{:.1}" y="17" class="inbar">{}</text>"##, x + pw / 2.0, short);
        }
        x += pw;
    }
    o.push_str("</svg>");
    o
}

/// The L1 address map at the L1 peak: L1 and L1_SMALL buffers on the upper
/// lane, CBs (which overlap across programs by design) on the lower one, the
/// CB region bracketed, the largest free gap outlined, address ticks below.
pub fn address_map(m: &L1Map, w: u32) -> String {
    let h = 118.0;
    let (ml, mr) = (10.0, 10.0);
    let pw = w as f64 - ml - mr;
    let span = (m.hi.saturating_sub(m.lo)).max(1) as f64;
    let sx = |a: u64| ml + (a.saturating_sub(m.lo) as f64 / span).clamp(0.0, 1.0) * pw;
    let (buf_y, buf_h, cb_y, cb_h) = (22.0, 30.0, 58.0, 18.0);
    let mut o = String::new();
    let _ = write!(o, r#"<svg class="l1map" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="L1 address map">"#);
    let _ = write!(o, r##"<text x="{ml}" y="14" class="lane">buffers (L1, L1_SMALL)</text><text x="{ml}" y="{:.1}" class="lane">circular buffers</text>"##, cb_y + cb_h + 12.0);
    let _ = write!(o, r##"<rect x="{ml}" y="{buf_y}" width="{pw:.1}" height="{buf_h}" fill="#fafafa" stroke="#bbb"/><rect x="{ml}" y="{cb_y}" width="{pw:.1}" height="{cb_h}" fill="#fafafa" stroke="#ddd"/>"##);
    // The CB region: from the lowest to the highest CB address.
    let cbs: Vec<_> = m.ranges.iter().filter(|r| r.btype == "CB").collect();
    if let (Some(lo), Some(hi)) = (cbs.iter().map(|r| r.start).min(), cbs.iter().map(|r| r.end).max()) {
        let (x0, x1) = (sx(lo), sx(hi));
        let _ = write!(o, r##"<rect x="{x0:.2}" y="{cb_y}" width="{:.2}" height="{cb_h}" fill="#59a14f" fill-opacity="0.12" stroke="#59a14f" stroke-dasharray="2 2"><title>CB region {}–{} ({})</title></rect>"##, (x1 - x0).max(1.0), hex(lo), hex(hi), bytes(hi - lo));
        let label = format!("CB region {}", bytes(hi - lo));
        let (lx, anchor) = if x1 + 6.5 * label.len() as f64 + 8.0 < ml + pw { (x1 + 4.0, "start") } else { (x0 - 4.0, "end") };
        let _ = write!(o, r##"<text x="{lx:.1}" y="{:.1}" text-anchor="{anchor}" class="lane" style="fill:#3b7a34">{}</text>"##, cb_y + cb_h - 5.0, esc(&label));
    }
    if let Some([start, size]) = m.largest_gap {
        let (x0, x1) = (sx(start), sx(start + size));
        let _ = write!(o, r##"<rect x="{x0:.2}" y="{:.1}" width="{:.2}" height="{:.1}" fill="#d62728" fill-opacity="0.05" stroke="#d62728" stroke-width="1.5" stroke-dasharray="5 3"><title>largest free gap: {} at {}</title></rect>"##, buf_y - 3.0, (x1 - x0).max(1.5), cb_y + cb_h - buf_y + 6.0, bytes(size), hex(start));
        let full = format!("largest free gap {}", bytes(size));
        let label = if x1 - x0 > 6.5 * full.len() as f64 { Some(full) } else { (x1 - x0 > 30.0).then(|| "gap".to_string()) };
        if let Some(label) = label {
            let _ = write!(o, r##"<text x="{:.1}" y="{:.1}" class="gap">{}</text>"##, (x0 + x1) / 2.0, buf_y + buf_h / 2.0 + 4.0, esc(&label));
        }
    }
    for r in &m.ranges {
        let (x0, x1) = (sx(r.start), sx(r.end));
        let cb = r.btype == "CB";
        let (y, hh, op) = if cb { (cb_y, cb_h, 0.55) } else { (buf_y, buf_h, 0.9) };
        let prog = r.program.map(|p| format!(" program {p:#x}")).unwrap_or_default();
        let clip = if r.clipped { " (footprint estimate clipped)" } else { "" };
        let _ = write!(
            o,
            r##"<rect class="mark" x="{x0:.2}" y="{y}" width="{:.2}" height="{hh}" fill="{}" fill-opacity="{op}" stroke="#333" stroke-width="0.3"><title>{} {} at {}–{} pid {} seq {}{}{}</title></rect>"##,
            (x1 - x0).max(1.0),
            type_color(&r.btype),
            esc(&r.btype),
            bytes(r.size),
            hex(r.start),
            hex(r.end),
            r.pid,
            r.id,
            prog,
            clip
        );
        let label = bytes(r.size);
        if !cb && x1 - x0 > 7.0 * label.len() as f64 + 6.0 {
            let _ = write!(o, r##"<text x="{:.1}" y="{:.1}" class="inbar">{}</text>"##, (x0 + x1) / 2.0, buf_y + buf_h / 2.0 + 4.0, label);
        }
    }
    // Address ticks.
    let axis_y = cb_y + cb_h + 24.0;
    // Addresses are tiled in powers of two: ticks at multiples of one.
    // (Hostile traces put addresses near 2^64: no overflow, at most a few dozen ticks.)
    let step = ((span / 8.0).ceil().max(1.0) as u64).checked_next_power_of_two().unwrap_or(1 << 63);
    let first = m.lo.div_ceil(step).saturating_mul(step);
    let _ = write!(o, r##"<line x1="{ml}" y1="{axis_y}" x2="{:.1}" y2="{axis_y}" stroke="#999"/>"##, ml + pw);
    let ticks = (0..64u64).map_while(|k| first.checked_add(k.checked_mul(step)?)).take_while(|a| *a <= m.hi);
    for a in ticks {
        let px = sx(a);
        let anchor = if px < ml + 30.0 { "start" } else if px > ml + pw - 30.0 { "end" } else { "middle" };
        let _ = write!(o, r##"<line x1="{px:.1}" y1="{axis_y}" x2="{px:.1}" y2="{:.1}" stroke="#999"/><text x="{px:.1}" y="{:.1}" text-anchor="{anchor}" class="addr">{}</text>"##, axis_y + 4.0, axis_y + 16.0, hex(a));
    }
    o.push_str("</svg>");
    o
}
