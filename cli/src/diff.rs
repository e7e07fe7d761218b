//! `ttalloc diff BASE NEW [--json] [--fail-if-peak-grows PCT]` — per chip ×
//! type deltas of peak and live-at-end. BASE and NEW are traces or saved
//! `ttalloc replay --json` outputs (so a CI job can keep its baseline as JSON).

use crate::replay::{write_json, write_out};
use crate::source::Error;
use crate::summary::{self, type_rank, Options, Summary};
use crate::units::{bytes, delta, table};
use crate::{Status, EXIT_CONDITION, EXIT_OK};
use serde::Serialize;
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Row {
    pub chip: i32,
    #[serde(rename = "type")]
    pub btype: String,
    pub base_peak: u64,
    pub new_peak: u64,
    pub peak_delta: i128,
    /// Growth of the peak in percent; null when the base peak is 0.
    pub peak_pct: Option<f64>,
    pub base_live_end: u64,
    pub new_live_end: u64,
    pub live_end_delta: i128,
    /// The peak grew by more than the threshold (a new non-zero peak always does).
    pub exceeds: bool,
}

#[derive(Serialize)]
pub struct DiffReport {
    pub base: String,
    pub new: String,
    pub threshold_pct: Option<f64>,
    pub failed: bool,
    pub rows: Vec<Row>,
    pub base_leak_bytes: u64,
    pub new_leak_bytes: u64,
}

/// A trace, or a summary saved by `ttalloc replay --json`.
pub fn load(path: &Path) -> Result<Summary, Error> {
    let name = path.display().to_string();
    let mut f = std::fs::File::open(path).map_err(|e| Error { path: name.clone(), message: format!("cannot open: {e}"), offset: Some(0) })?;
    let mut first = [0u8; 1];
    let n = f.read(&mut first).map_err(|e| Error::new(name.clone(), e.to_string()))?;
    if n == 1 && (first[0] == b'{' || first[0].is_ascii_whitespace()) {
        let text = std::fs::read_to_string(path).map_err(|e| Error::new(name.clone(), e.to_string()))?;
        if text.trim_start().starts_with('{') {
            return serde_json::from_str(&text).map_err(|e| Error::new(name, format!("not a ttalloc replay --json summary: {e}")));
        }
    }
    summary::summarize_with(path, &Options { peak_live: false, progress: true, ..Options::default() })
}

pub fn compare(base: &Summary, new: &Summary, threshold_pct: Option<f64>) -> Vec<Row> {
    let mut keys: BTreeSet<(i32, usize, String)> = BTreeSet::new();
    for s in [base, new] {
        for (chip, types) in &s.chips {
            for t in types.keys() {
                keys.insert((*chip, type_rank(t), t.clone()));
            }
        }
    }
    keys.into_iter()
        .map(|(chip, _, t)| {
            let get = |s: &Summary| s.chips.get(&chip).and_then(|c| c.get(&t)).map_or((0, 0), |u| (u.peak, u.live_end));
            let (bp, bl) = get(base);
            let (np, nl) = get(new);
            let pct = (bp > 0).then(|| (np as f64 - bp as f64) * 100.0 / bp as f64);
            let exceeds = match threshold_pct {
                None => false,
                Some(th) => np > bp && pct.map_or(true, |p| p > th),
            };
            Row {
                chip,
                btype: t,
                base_peak: bp,
                new_peak: np,
                peak_delta: np as i128 - bp as i128,
                peak_pct: pct,
                base_live_end: bl,
                new_live_end: nl,
                live_end_delta: nl as i128 - bl as i128,
                exceeds,
            }
        })
        .collect()
}

fn pct_text(p: Option<f64>, d: i128) -> String {
    match p {
        Some(p) => format!("{p:+.1}%"),
        None if d > 0 => "new".into(),
        None => "-".into(),
    }
}

pub fn run(base_path: &Path, new_path: &Path, json: bool, threshold_pct: Option<f64>) -> Result<Status, Error> {
    let base = load(base_path)?;
    let new = load(new_path)?;
    let rows = compare(&base, &new, threshold_pct);
    let failed = rows.iter().any(|r| r.exceeds);
    let leak_bytes = |s: &Summary| s.leaks.iter().fold(0u64, |sum, g| sum.saturating_add(g.bytes));
    if json {
        let rep = DiffReport {
            base: base_path.display().to_string(),
            new: new_path.display().to_string(),
            threshold_pct,
            failed,
            rows,
            base_leak_bytes: leak_bytes(&base),
            new_leak_bytes: leak_bytes(&new),
        };
        write_json(&rep)?;
    } else {
        let mut o = format!("base: {}\nnew:  {}\n", base_path.display(), new_path.display());
        let trows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.chip.to_string(),
                    r.btype.clone(),
                    bytes(r.base_peak),
                    bytes(r.new_peak),
                    delta(r.peak_delta),
                    pct_text(r.peak_pct, r.peak_delta),
                    bytes(r.base_live_end),
                    bytes(r.new_live_end),
                    delta(r.live_end_delta),
                    if r.exceeds { "GREW".into() } else { String::new() },
                ]
            })
            .collect();
        o.push_str(&table(
            &["CHIP", "TYPE", "BASE PEAK", "NEW PEAK", "Δ PEAK", "Δ%", "BASE END", "NEW END", "Δ END", ""],
            &trows,
            &[true, false, true, true, true, true, true, true, true, false],
        ));
        o.push_str(&format!("leaks: {} → {}\n", bytes(leak_bytes(&base)), bytes(leak_bytes(&new))));
        write_out(&o)?;
    }
    for s in [&base, &new] {
        crate::replay::warn_cut(s);
    }
    if failed {
        let th = threshold_pct.unwrap_or(0.0);
        for r in compare(&base, &new, threshold_pct).iter().filter(|r| r.exceeds) {
            eprintln!(
                "ttalloc: peak grew more than {th}%: chip {} {} {} → {} ({})",
                r.chip,
                r.btype,
                bytes(r.base_peak),
                bytes(r.new_peak),
                pct_text(r.peak_pct, r.peak_delta)
            );
        }
        return Ok(EXIT_CONDITION);
    }
    Ok(EXIT_OK)
}
