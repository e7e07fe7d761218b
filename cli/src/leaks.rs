//! `ttalloc leaks TRACE [--json] [--fail-if-leaks]` — everything still
//! allocated when its process ended or released by a device close, grouped by
//! process, memory type, size and how it ended (the trace has no call stacks:
//! allocations alike in all of these are taken to come from one site).

use crate::replay::{warn_cut, write_json, write_out};
use crate::source::Error;
use crate::summary::{self, LeakGroup, Options};
use crate::units::{bytes, chip_set, count, hex, secs};
use crate::{Status, EXIT_CONDITION, EXIT_OK};
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
pub struct LeakReport<'a> {
    /// Leaked chip-level allocations (a mesh buffer counts once per chip).
    pub count: u64,
    pub bytes: u64,
    pub leaks: &'a [LeakGroup],
}

pub fn run(trace: &Path, json: bool, fail_if_leaks: bool) -> Result<Status, Error> {
    let opts = Options { peak_live: false, progress: true, ..Options::default() };
    let s = summary::summarize_with(trace, &opts)?;
    let (n, b) = s.leaks.iter().fold((0u64, 0u64), |(n, b), g| (n + g.count, b.saturating_add(g.bytes)));
    if json {
        write_json(&LeakReport { count: n, bytes: b, leaks: &s.leaks })?;
    } else {
        write_out(&render(&s.leaks))?;
    }
    warn_cut(&s);
    Ok(if fail_if_leaks && n > 0 { EXIT_CONDITION } else { EXIT_OK })
}

pub fn render(groups: &[LeakGroup]) -> String {
    let (n, b) = groups.iter().fold((0u64, 0u64), |(n, b), g| (n + g.count, b.saturating_add(g.bytes)));
    if n == 0 {
        return "no leaks: everything was freed before its process ended or its device closed\n".into();
    }
    let mut o = format!(
        "{} leaked allocation{}, {} in {} group{}\n",
        count(n),
        if n == 1 { "" } else { "s" },
        bytes(b),
        groups.len(),
        if groups.len() == 1 { "" } else { "s" }
    );
    for g in groups {
        let how = if g.at == "exit" { "still live at process exit" } else { "released by device close" };
        let mut chips: Vec<i32> = g.items.iter().map(|i| i.chip).collect();
        chips.sort_unstable();
        chips.dedup();
        o.push_str(&format!(
            "\n{} × {} {} (total {}) pid {} on chip{} {}: {}{}\n",
            count(g.count),
            bytes(g.size),
            g.btype,
            bytes(g.bytes),
            g.pid,
            if chips.len() == 1 { "" } else { "s" },
            chip_set(&chips),
            how,
            if g.hooked { " [hooked: no memory]" } else { "" }
        ));
        // A mesh allocation leaks once per chip at the same address: one line for all of them.
        let mut lines: Vec<(Vec<i32>, &crate::summary::LeakItem)> = Vec::new();
        for i in &g.items {
            match lines.iter_mut().find(|(_, x)| x.id == i.id && x.address == i.address && x.tid == i.tid && x.released_seq == i.released_seq) {
                Some(l) => l.0.push(i.chip),
                None => lines.push((vec![i.chip], i)),
            }
        }
        for (chips, i) in lines {
            let what = match (i.buffer, i.program) {
                (Some(x), _) => format!("buffer {}", hex(x)),
                (_, Some(p)) => format!("program {}", hex(p)),
                _ => String::new(),
            };
            let rel = match i.released_seq {
                Some(s) => format!(", closed at seq {s}"),
                None => String::new(),
            };
            let which = if chips.len() == 1 { format!("chip {}", chips[0]) } else { format!("chips {}", chip_set(&chips)) };
            o.push_str(&format!("  {which:<10} @{:<12} {}  tid {} seq {} +{}{}\n", hex(i.address), what, i.tid, i.id, secs(i.t_ns), rel));
        }
    }
    o
}
