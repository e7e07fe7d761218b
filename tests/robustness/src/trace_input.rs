//! Arbitrary bytes as a trace file: the streaming reader into the replay
//! model (what the collector's live view and every command use), then the
//! whole `ttalloc replay` summary with every option on, its text and JSON
//! renderings, and the Perfetto export.

use crate::{check_one_line, scratch_file};
use std::io::Cursor;
use ttalloc_trace::{Model, TraceReader};

/// The reader and the model, in memory (fast: the `trace_reader` fuzz
/// target). Returns the records read.
pub fn read_into_model(data: &[u8]) -> u64 {
    let len = data.len() as u64;
    let mut rd = TraceReader::new(Cursor::new(data));
    let mut model = Model::new();
    let mut got = Vec::new();
    let error = loop {
        match rd.next_record() {
            Ok(Some(r)) => {
                model.apply(&r, &mut |_| {});
                got.push(r);
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
        assert!(rd.offset() <= len, "read past the end: offset {} of {len}", rd.offset());
    };
    let records = got.len() as u64;
    // The replay's read-ahead decodes in batches: the same records, the same end.
    let mut batched = Vec::new();
    let mut rd2 = TraceReader::new(Cursor::new(data));
    let size = 1 + data.last().map_or(0, |b| *b as usize % 9);
    let error2 = loop {
        match rd2.next_batch(&mut batched, size) {
            Ok(true) => {}
            Ok(false) => break None,
            Err(e) => break Some(e),
        }
    };
    assert!(batched == got, "batches of {size} read {} records, one by one {records}", batched.len());
    assert_eq!(error2, error, "batches of {size} end as one-by-one reading does");
    assert_eq!((rd2.offset(), rd2.records, rd2.complete), (rd.offset(), rd.records, rd.complete));
    // The smallest record is two bytes (`[tag]` is refused, `[tag, x]` is not).
    assert!(records * 2 <= len, "{records} records from {len} bytes");
    if let Some(e) = error {
        check_one_line("trace reader", &e.message);
        assert!(e.offset <= len, "error at offset {} past the end ({len}): {e}", e.offset);
        if e.truncated {
            assert!(e.offset < len || len == 0, "a cut at the very end is a clean end: {e}");
        }
        assert!(matches!(rd.next_record(), Ok(None)), "a reader that failed stays finished");
    }
    records
}

/// What `ttalloc replay`, `leaks`, `report`, `diff` and `export --perfetto` do with
/// the file (slower, it goes through files: the `trace_commands` target).
pub fn commands(data: &[u8]) {
    let path = scratch_file("trace");
    std::fs::write(&path, data).expect("scratch trace");
    let opts = ttalloc_cli::Options { top: 5, peak_live: true, l1_maps: true, l1_banks: 12, l1_size: None, timeline: 16, progress: false };
    match ttalloc_cli::summarize_with(&path, &opts) {
        Ok(s) => {
            let _ = ttalloc_cli::replay::render(&s);
            let _ = ttalloc_cli::leaks::render(&s.leaks);
            let _ = ttalloc_cli::report::render(&s);
            let _ = ttalloc_cli::diff::compare(&s, &ttalloc_cli::Summary::default(), Some(1.0));
            let _ = ttalloc_cli::diff::compare(&s, &s, Some(1.0));
            serde_json::to_string(&s).expect("a summary always serialises");
        }
        Err(e) => check_one_line("ttalloc replay", &e.to_string()),
    }
    let out = scratch_file("perfetto.json");
    if let Err(e) = ttalloc_cli::perfetto::run(&path, &out, &ttalloc_cli::perfetto::Limits::default()) {
        check_one_line("ttalloc export", &e.to_string());
    }
}

/// Corpus seeds: the small valid trace, and one whose sizes and counts are
/// near 2^64 (arithmetic overflow is what a fuzzer finds there).
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![("seed", seed()), ("huge", seed_with(u64::MAX - 1))]
}

/// A small valid trace with every kind of record (a corpus seed).
pub fn seed() -> Vec<u8> {
    seed_with(1 << 20)
}

fn seed_with(big: u64) -> Vec<u8> {
    use ttalloc_trace::*;
    let header = TraceHeader {
        magic: TRACE_MAGIC.into(),
        format_version: TRACE_FORMAT_VERSION,
        tool_version: "seed".into(),
        host: "h".into(),
        collector_pid: 1,
        started_real_ns: 2,
        command: vec!["x".into()],
    };
    let ev = |seq: u64| Ev { p: 0, seq, ts_ns: 1_000 + seq * 10, tid: 7 };
    let records = vec![
        Record::Process(Box::new(ProcessInfo { p: 0, pid: 10, start_ticks: 5, exe: "python".into(), created_mono_ns: 1, created_real_ns: 2, shim_info: "{}".into(), attach: "from-start".into() })),
        Record::Mesh(MeshInfo { p: 0, slot: 0, mesh: 0x5000, chips: vec![0, 1, 2, 3] }),
        Record::Alloc(AllocRec { ev: ev(0), chip: -2, btype: 0, flags: 0, object: 0x1000, address: 0x40000, size: big, page_size: 2048 }),
        Record::Alloc(AllocRec { ev: ev(1), chip: 1, btype: 1, flags: 0, object: 0x2000, address: big - 4096, size: big, page_size: 1024 }),
        Record::CbAlloc(CbRec { ev: ev(2), chip: 1, program: 0x9000, address: 0x1000, size: big, flags: 0 }),
        Record::DfbAlloc(CbRec { ev: ev(3), chip: 1, program: 0x9000, address: 0x3000, size: 1024, flags: 0 }),
        Record::CbFree { ev: ev(4), chip: 1, program: 0x9000 },
        Record::ProgramEnd { ev: ev(5), program: 0x9000 },
        Record::Free { ev: ev(6), alloc_seq: 1 },
        Record::UnknownFree { ev: ev(7), object: 1, chip: 2, btype: 1, address: 3, size: 4 },
        Record::AllocFailed { ev: ev(8), chip: 1, btype: 1, size: 99, program: 0, what: FAILED_BUFFER },
        Record::Gap { p: 0, after_seq: 8, lost: big },
        Record::Resync { p: 0, at_seq: 12, reason: "late-attach".into() },
        Record::Alloc(AllocRec { ev: ev(13), chip: 2, btype: 3, flags: FLAG_RESYNC, object: 0x3000, address: 0x100, size: 64, page_size: 0 }),
        Record::ResyncDrop { p: 0, alloc_seq: 13 },
        Record::DeviceClose { ev: ev(14), chip: -2 },
        Record::ProcessEnd(Box::new(ProcessEnd { p: 0, last_seq: 14, how: "exited".into(), dropped: 3, problems: vec![("reentry".into(), 1)] })),
        Record::Footer(Footer { records: 19, processes: 1, dropped: 3, unknown_frees: 1, ended_real_ns: 9 }),
    ];
    let mut w = TraceWriter::new(Vec::new(), &header).expect("in memory");
    for r in &records {
        w.write(r).expect("in memory");
    }
    w.into_inner()
}
