//! `ttalloc dump TRACE [--events-only]` — one JSON object per line per
//! chip-level event (see docs/replay-json.md, "dump"), plus lines with a
//! `record` field for the process-level bookkeeping records.

use crate::source::{Error, Source};
use serde_json::json;
use std::io::{BufWriter, Write};
use std::path::Path;
use ttalloc_ring::BufferType;
use ttalloc_trace::{ChipEvent, ChipKind, Model, Record};

fn write_event(w: &mut impl Write, e: &ChipEvent) -> std::io::Result<()> {
    let cb = e.btype == BufferType::Cb;
    write!(
        w,
        "{{\"seq\":{},\"ts_ns\":{},\"pid\":{},\"p\":{},\"tid\":{},\"kind\":\"{}\",\"chip\":{},\"type\":\"{}\",\"address\":{},\"size\":{},\"page_size\":{},",
        e.seq,
        e.ts_ns,
        e.pid,
        e.p,
        e.tid,
        e.kind.name(),
        e.chip,
        e.btype.name(),
        e.address,
        e.size,
        e.page_size
    )?;
    if cb || e.kind == ChipKind::AllocFailed {
        // CBs (and failed allocations) name a program, not a buffer.
        write!(w, "\"buffer\":null,\"program\":{},", e.object)?;
    } else {
        write!(w, "\"buffer\":{},", e.object)?;
    }
    writeln!(w, "\"id\":{},\"hooked\":{},\"global\":{}}}", e.id, e.hooked, e.global)
}

fn record_line(r: &Record, m: &Model) -> Option<serde_json::Value> {
    let pid = |p: u32| m.procs.get(p as usize).map_or(0, |s| s.pid());
    Some(match r {
        Record::Header(h) => json!({"record": "header", "format_version": h.format_version, "tool_version": h.tool_version, "host": h.host, "collector_pid": h.collector_pid, "started_real_ns": h.started_real_ns, "command": h.command}),
        Record::Process(i) => json!({"record": "process", "p": i.p, "pid": i.pid, "exe": i.exe, "attach": i.attach, "start_ticks": i.start_ticks, "created_mono_ns": i.created_mono_ns, "created_real_ns": i.created_real_ns, "shim_info": i.shim_info}),
        Record::Mesh(x) => json!({"record": "mesh", "p": x.p, "pid": pid(x.p), "slot": x.slot, "mesh": x.mesh, "chips": x.chips}),
        Record::ProcessEnd(e) => json!({"record": "process_end", "p": e.p, "pid": pid(e.p), "last_seq": e.last_seq, "how": e.how, "dropped": e.dropped, "problems": e.problems.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>()}),
        Record::Footer(f) => json!({"record": "footer", "records": f.records, "processes": f.processes, "dropped": f.dropped, "unknown_frees": f.unknown_frees, "ended_real_ns": f.ended_real_ns}),
        Record::Gap { p, after_seq, lost } => json!({"record": "gap", "p": p, "pid": pid(*p), "after_seq": after_seq, "lost": lost}),
        Record::Resync { p, at_seq, reason } => json!({"record": "resync", "p": p, "pid": pid(*p), "at_seq": at_seq, "reason": reason}),
        Record::DeviceClose { ev, chip } => json!({"record": "device_close", "p": ev.p, "pid": pid(ev.p), "seq": ev.seq, "ts_ns": ev.ts_ns, "tid": ev.tid, "chip": chip}),
        _ => return None,
    })
}

pub fn run(trace: &Path, events_only: bool) -> Result<(), Error> {
    let mut src = Source::open(trace, Some("dump"))?;
    let mut model = Model::new();
    let stdout = std::io::stdout();
    let mut w = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut werr: Option<std::io::Error> = None;
    while let Some(r) = src.next_record()? {
        if !events_only {
            if let Some(v) = record_line(&r, &model) {
                if let Err(x) = writeln!(w, "{v}") {
                    return Err(crate::out_err("stdout", x));
                }
            }
        }
        {
            let w = &mut w;
            let werr = &mut werr;
            model.apply(&r, &mut |e| {
                if werr.is_none() {
                    if let Err(x) = write_event(w, e) {
                        *werr = Some(x);
                    }
                }
            });
        }
        if let Some(e) = werr.take() {
            return Err(crate::out_err("stdout", e));
        }
    }
    w.flush().map_err(|e| crate::out_err("stdout", e))?;
    src.warn_if_cut();
    Ok(())
}
