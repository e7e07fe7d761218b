//! Hand-drawn inline SVG: step-line charts, stacked bars and the L1 address
//! map. No scripts, no external references; tooltips are SVG `<title>`s.

use crate::summary::L1Map;
use crate::units::bytes;
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

/// A "nice" axis maximum and step for `max` (1, 2, 5 × 10^k; or powers of two × KiB for bytes).
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

fn byte_step(max: u64) -> u64 {
    // 1, 2, 5, 10, 20, 50, 100, 200, 500 of B, KiB, MiB, GiB, TiB: at most 5 steps.
    for unit in [1u64, 1 << 10, 1 << 20, 1 << 30, 1 << 40] {
        for m in [1u64, 2, 5, 10, 20, 50, 100, 200, 500] {
            let step = m * unit;
            if max.div_ceil(step) <= 5 {
                return step;
            }
        }
    }
    max.div_ceil(5).max(1)
}

pub struct Series {
    pub name: String,
    pub color: &'static str,
    /// (x seconds, y bytes), as a step function: each y holds until the next x.
    pub points: Vec<(f64, u64)>,
}

/// A step-line chart of byte series over seconds.
pub fn line_chart(title: &str, series: &[Series], x_max: f64, w: u32, h: u32) -> String {
    let (ml, mr, mt, mb) = (78.0, 12.0, 30.0, 30.0);
    let pw = w as f64 - ml - mr;
    let ph = h as f64 - mt - mb;
    let y_max_raw = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).max().unwrap_or(0).max(1);
    let ystep = byte_step(y_max_raw);
    let y_ticks = y_max_raw.div_ceil(ystep).max(1);
    let y_max = y_ticks.saturating_mul(ystep) as f64;
    let x_max = if x_max > 0.0 { x_max } else { 1.0 };
    let xstep = nice_step(x_max, 6.0);
    let sx = |x: f64| ml + (x / x_max).clamp(0.0, 1.0) * pw;
    let sy = |y: u64| mt + ph - (y as f64 / y_max).clamp(0.0, 1.0) * ph;
    let mut o = String::new();
    let _ = write!(o, r#"<svg class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{}">"#, esc(title));
    let _ = write!(o, r#"<text x="{ml}" y="14" class="title">{}</text>"#, esc(title));
    // Grid and axes.
    // By tick index: sizes near 2^64 (a hostile trace) must not overflow the counter.
    for k in 0..=y_ticks {
        let y = k.saturating_mul(ystep);
        let py = sy(y);
        let _ = write!(o, r##"<line x1="{ml}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" class="ytick">{}</text>"##, ml + pw, ml - 6.0, py + 4.0, bytes(y));
    }
    let mut x = 0.0;
    while x <= x_max * 1.0001 {
        let px = sx(x);
        let label = if xstep >= 1.0 { format!("{x:.0}s") } else if xstep >= 0.001 { format!("{:.0}ms", x * 1e3) } else { format!("{:.0}µs", x * 1e6) };
        let _ = write!(o, r##"<line x1="{px:.1}" y1="{mt}" x2="{px:.1}" y2="{:.1}" stroke="#f0f0f0"/><text x="{px:.1}" y="{:.1}" class="xtick">{label}</text>"##, mt + ph, mt + ph + 16.0);
        x += xstep;
    }
    let _ = write!(o, r##"<rect x="{ml}" y="{mt}" width="{pw:.1}" height="{ph:.1}" fill="none" stroke="#999"/>"##);
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
        let _ = write!(o, r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.6"><title>{} (peak {})</title></path>"#, s.color, esc(&s.name), bytes(peak));
    }
    // Legend, on the title line.
    let mut lx = ml + 24.0 + 6.5 * title.chars().count() as f64;
    for s in series {
        let _ = write!(o, r#"<rect x="{lx:.1}" y="5" width="10" height="10" fill="{}"/><text x="{:.1}" y="14" class="legend">{}</text>"#, s.color, lx + 14.0, esc(&s.name));
        lx += 24.0 + 7.0 * s.name.len() as f64;
    }
    o.push_str("</svg>");
    o
}

pub struct Part {
    pub label: String,
    pub bytes: u64,
    pub color: &'static str,
}

/// A horizontal stacked bar of `parts` out of `total`.
pub fn stacked_bar(parts: &[Part], total: u64, w: u32) -> String {
    let h = 26;
    let total = total.max(parts.iter().fold(0u64, |sum, p| sum.saturating_add(p.bytes))).max(1);
    let mut o = String::new();
    let _ = write!(o, r#"<svg class="bar" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#);
    let _ = write!(o, r##"<rect x="0" y="2" width="{w}" height="22" fill="#f4f4f4" stroke="#ccc"/>"##);
    let mut x = 0.0;
    for p in parts {
        let pw = p.bytes as f64 / total as f64 * w as f64;
        if pw <= 0.0 {
            continue;
        }
        let _ = write!(o, r##"<rect x="{x:.2}" y="2" width="{pw:.2}" height="22" fill="{}" stroke="#fff" stroke-width="0.5"><title>{}</title></rect>"##, p.color, esc(&p.label));
        x += pw;
    }
    o.push_str("</svg>");
    o
}

/// The L1 address map of one chip at its L1 peak.
pub fn address_map(m: &L1Map, w: u32) -> String {
    let h = 92.0;
    let (ml, mr) = (8.0, 8.0);
    let pw = w as f64 - ml - mr;
    let span = (m.hi.saturating_sub(m.lo)).max(1) as f64;
    let sx = |a: u64| ml + (a.saturating_sub(m.lo) as f64 / span).clamp(0.0, 1.0) * pw;
    let mut o = String::new();
    let _ = write!(o, r#"<svg class="l1map" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="L1 address map">"#);
    // Lanes: buffers (L1, L1_SMALL) on the upper band, CBs (which overlap across programs) below.
    let _ = write!(o, r##"<rect x="{ml}" y="8" width="{pw:.1}" height="28" fill="#fafafa" stroke="#bbb"/><rect x="{ml}" y="40" width="{pw:.1}" height="14" fill="#fafafa" stroke="#ddd"/>"##);
    if let Some([start, size]) = m.largest_gap {
        let x0 = sx(start);
        let x1 = sx(start + size);
        let _ = write!(o, r##"<rect x="{x0:.2}" y="6" width="{:.2}" height="50" fill="none" stroke="#d62728" stroke-width="1.5" stroke-dasharray="4 2"><title>largest free gap: {} at {:#x}</title></rect>"##, (x1 - x0).max(1.0), bytes(size), start);
        if x1 - x0 > 90.0 {
            let _ = write!(o, r##"<text x="{:.1}" y="26" text-anchor="middle" style="fill:#d62728">free {}</text>"##, (x0 + x1) / 2.0, bytes(size));
        }
    }
    for r in &m.ranges {
        let x0 = sx(r.start);
        let x1 = sx(r.end);
        let (y, hh, op) = if r.btype == "CB" { (40.0, 14.0, 0.45) } else { (8.0, 28.0, 0.9) };
        let prog = r.program.map(|p| format!(" program {p:#x}")).unwrap_or_default();
        let clip = if r.clipped { " (footprint estimate clipped)" } else { "" };
        let _ = write!(
            o,
            r##"<rect x="{x0:.2}" y="{y}" width="{:.2}" height="{hh}" fill="{}" fill-opacity="{op}" stroke="#333" stroke-width="0.3"><title>{} {} at {:#x}–{:#x} pid {} seq {}{}{}</title></rect>"##,
            (x1 - x0).max(0.8),
            type_color(&r.btype),
            esc(&r.btype),
            bytes(r.size),
            r.start,
            r.end,
            r.pid,
            r.id,
            prog,
            clip
        );
    }
    let _ = write!(o, r#"<text x="{ml}" y="70" class="xtick" text-anchor="start">{:#x}</text><text x="{:.1}" y="70" class="xtick" text-anchor="end">{:#x}</text>"#, m.lo, ml + pw, m.hi);
    let mut lx = ml;
    for t in ["L1", "L1_SMALL", "CB"] {
        let _ = write!(o, r#"<rect x="{lx:.1}" y="78" width="10" height="10" fill="{}"/><text x="{:.1}" y="87" class="legend">{t}</text>"#, type_color(t), lx + 14.0);
        lx += 90.0;
    }
    let _ = write!(o, r##"<rect x="{lx:.1}" y="78" width="10" height="10" fill="none" stroke="#d62728" stroke-dasharray="3 1"/><text x="{:.1}" y="87" class="legend">largest free gap</text>"##, lx + 14.0);
    o.push_str("</svg>");
    o
}
