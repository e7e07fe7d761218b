//! A checker for the Chrome trace-event format (the JSON Perfetto and
//! chrome://tracing load), as far as `ttalloc export --perfetto` uses it:
//! the JSON object form, the fields each phase requires, balanced B/E,
//! complete (X) slices that never overlap on a thread, and counter (C)
//! tracks whose samples are in time order. Shared with tests/e2e.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// What a valid file held.
#[derive(Debug, Default)]
pub struct Stats {
    pub events: usize,
    /// Per phase letter.
    pub phases: BTreeMap<String, usize>,
    /// Counter track (pid, name) → its samples (ts µs, args).
    pub counters: BTreeMap<(i64, String), Vec<(f64, Value)>>,
    /// (pid, tid) → slices (ts, ts + dur) in file order.
    pub slices: BTreeMap<(i64, i64), Vec<(f64, f64)>>,
    pub process_names: HashMap<i64, String>,
    pub thread_names: HashMap<(i64, i64), String>,
}

fn num(e: &Value, k: &str) -> Result<f64, String> {
    e.get(k).and_then(Value::as_f64).ok_or_else(|| format!("`{k}` missing or not a number in {e}"))
}
fn int(e: &Value, k: &str) -> Result<i64, String> {
    e.get(k).and_then(Value::as_i64).ok_or_else(|| format!("`{k}` missing or not an integer in {e}"))
}
fn string<'a>(e: &'a Value, k: &str) -> Result<&'a str, String> {
    e.get(k).and_then(Value::as_str).ok_or_else(|| format!("`{k}` missing or not a string in {e}"))
}

/// Parses and checks `text`; the error names the first offending event.
pub fn validate(text: &str) -> Result<Stats, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let evs = v.get("traceEvents").and_then(Value::as_array).ok_or("no traceEvents array")?;
    if let Some(u) = v.get("displayTimeUnit") {
        if !matches!(u.as_str(), Some("ms") | Some("ns")) {
            return Err(format!("displayTimeUnit {u}"));
        }
    }
    let mut s = Stats::default();
    let mut open: HashMap<(i64, i64), Vec<f64>> = HashMap::new();
    for e in evs {
        if !e.is_object() {
            return Err(format!("event is not an object: {e}"));
        }
        let ph = string(e, "ph")?;
        let pid = int(e, "pid")?;
        let tid = int(e, "tid")?;
        let ts = num(e, "ts")?;
        if !ts.is_finite() || ts < 0.0 {
            return Err(format!("bad ts in {e}"));
        }
        if let Some(a) = e.get("args") {
            if !a.is_object() {
                return Err(format!("args is not an object in {e}"));
            }
        }
        match ph {
            "X" => {
                string(e, "name")?;
                let dur = num(e, "dur")?;
                if !dur.is_finite() || dur < 0.0 {
                    return Err(format!("bad dur in {e}"));
                }
                s.slices.entry((pid, tid)).or_default().push((ts, ts + dur));
            }
            "B" => {
                string(e, "name")?;
                open.entry((pid, tid)).or_default().push(ts);
            }
            "E" => {
                let b = open.get_mut(&(pid, tid)).and_then(|v| v.pop()).ok_or_else(|| format!("E without B: {e}"))?;
                if ts < b {
                    return Err(format!("E before its B: {e}"));
                }
            }
            "C" => {
                let name = string(e, "name")?.to_string();
                let args = e.get("args").and_then(Value::as_object).ok_or_else(|| format!("counter without args: {e}"))?;
                if args.is_empty() || !args.values().all(Value::is_number) {
                    return Err(format!("counter args must be numbers: {e}"));
                }
                let track = s.counters.entry((pid, name)).or_default();
                if let Some(&(prev, _)) = track.last() {
                    if ts < prev {
                        return Err(format!("counter goes back in time ({prev} then {ts}): {e}"));
                    }
                }
                track.push((ts, Value::Object(args.clone())));
            }
            "i" | "I" => {
                string(e, "name")?;
                if let Some(sc) = e.get("s") {
                    if !matches!(sc.as_str(), Some("g") | Some("p") | Some("t")) {
                        return Err(format!("bad instant scope in {e}"));
                    }
                }
            }
            "M" => {
                let name = string(e, "name")?;
                let args = e.get("args").ok_or_else(|| format!("metadata without args: {e}"))?;
                match name {
                    "process_name" => {
                        s.process_names.insert(pid, string(args, "name")?.to_string());
                    }
                    "thread_name" => {
                        s.thread_names.insert((pid, tid), string(args, "name")?.to_string());
                    }
                    "process_sort_index" | "thread_sort_index" => {
                        int(args, "sort_index")?;
                    }
                    other => return Err(format!("unknown metadata {other}")),
                }
            }
            other => return Err(format!("phase {other} not used by ttalloc: {e}")),
        }
        *s.phases.entry(ph.to_string()).or_default() += 1;
        s.events += 1;
    }
    if let Some((k, _)) = open.iter().find(|(_, v)| !v.is_empty()) {
        return Err(format!("B without E on {k:?}"));
    }
    for (k, v) in &s.slices {
        let mut v = v.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        for w in v.windows(2) {
            if w[1].0 < w[0].1 - 1e-9 {
                return Err(format!("slices overlap on {k:?}: {w:?}"));
            }
        }
        if !s.thread_names.contains_key(k) {
            return Err(format!("slices on unnamed thread {k:?}"));
        }
    }
    Ok(s)
}
