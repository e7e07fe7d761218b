//! Property tests of the trace codec: any sequence of records the writer
//! accepts reads back identical, and any prefix of it reads back as a prefix
//! (a cut trace never yields a wrong record).

use proptest::prelude::*;
use std::io::Cursor;
use ttalloc_trace::*;

fn header() -> TraceHeader {
    TraceHeader {
        magic: TRACE_MAGIC.into(),
        format_version: TRACE_FORMAT_VERSION,
        tool_version: "prop".into(),
        host: "h".into(),
        collector_pid: 1,
        started_real_ns: 2,
        command: vec![],
    }
}

/// Process indices are small in real traces; a few keep the per-process delta state busy.
fn ev() -> impl Strategy<Value = Ev> {
    (0u32..4, any::<u64>(), any::<u64>(), any::<u32>()).prop_map(|(p, seq, ts_ns, tid)| Ev { p, seq, ts_ns, tid })
}

fn cb() -> impl Strategy<Value = CbRec> {
    (ev(), any::<i32>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u16>())
        .prop_map(|(ev, chip, program, address, size, flags)| CbRec { ev, chip, program, address, size, flags })
}

fn text() -> impl Strategy<Value = String> {
    ".{0,40}"
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        (ev(), any::<i32>(), any::<u8>(), any::<u16>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u32>()).prop_map(
            |(ev, chip, btype, flags, object, address, size, page_size)| Record::Alloc(AllocRec { ev, chip, btype, flags, object, address, size, page_size })
        ),
        (ev(), any::<u64>()).prop_map(|(ev, alloc_seq)| Record::Free { ev, alloc_seq }),
        (ev(), any::<u64>(), any::<i32>(), any::<u8>(), any::<u64>(), any::<u64>())
            .prop_map(|(ev, object, chip, btype, address, size)| Record::UnknownFree { ev, object, chip, btype, address, size }),
        cb().prop_map(Record::CbAlloc),
        cb().prop_map(Record::DfbAlloc),
        (ev(), any::<i32>(), any::<u64>()).prop_map(|(ev, chip, program)| Record::CbFree { ev, chip, program }),
        (ev(), any::<u64>()).prop_map(|(ev, program)| Record::ProgramEnd { ev, program }),
        (ev(), any::<i32>()).prop_map(|(ev, chip)| Record::DeviceClose { ev, chip }),
        (ev(), any::<i32>(), any::<u8>(), any::<u64>(), any::<u64>(), any::<u8>())
            .prop_map(|(ev, chip, btype, size, program, what)| Record::AllocFailed { ev, chip, btype, size, program, what }),
        (0u32..4, any::<u64>(), any::<u64>()).prop_map(|(p, after_seq, lost)| Record::Gap { p, after_seq, lost }),
        (0u32..4, any::<u64>(), text()).prop_map(|(p, at_seq, reason)| Record::Resync { p, at_seq, reason }),
        (0u32..4, any::<u64>()).prop_map(|(p, alloc_seq)| Record::ResyncDrop { p, alloc_seq }),
        (0u32..4, any::<u32>(), any::<u64>(), text(), text()).prop_map(|(p, pid, start_ticks, exe, attach)| Record::Process(Box::new(ProcessInfo {
            p,
            pid,
            start_ticks,
            exe,
            created_mono_ns: 1,
            created_real_ns: 2,
            shim_info: "{}".into(),
            attach
        }))),
        (0u32..4, any::<u32>(), any::<u64>(), prop::collection::vec(any::<i32>(), 0..64))
            .prop_map(|(p, slot, mesh, chips)| Record::Mesh(MeshInfo { p, slot, mesh, chips })),
        (0u32..4, any::<u64>(), text(), any::<u64>(), prop::collection::vec((text(), any::<u64>()), 0..4))
            .prop_map(|(p, last_seq, how, dropped, problems)| Record::ProcessEnd(Box::new(ProcessEnd { p, last_seq, how, dropped, problems }))),
        (any::<u64>(), any::<u32>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(records, processes, dropped, unknown_frees, ended_real_ns)| {
            Record::Footer(Footer { records, processes, dropped, unknown_frees, ended_real_ns })
        }),
    ]
}

/// The processes every generated record may name (a trace announces a process before its records).
fn with_processes(mut records: Vec<Record>) -> Vec<Record> {
    let procs = (0..4).map(|p| {
        Record::Process(Box::new(ProcessInfo { p, pid: 100 + p, start_ticks: 0, exe: "x".into(), created_mono_ns: 0, created_real_ns: 0, shim_info: "{}".into(), attach: "from-start".into() }))
    });
    records.splice(0..0, procs);
    records
}

fn encode(records: &[Record]) -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new(), &header()).unwrap();
    for r in records {
        w.write(r).unwrap();
    }
    w.into_inner()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn write_then_read_is_identity(records in prop::collection::vec(record(), 0..64).prop_map(with_processes)) {
        let bytes = encode(&records);
        let mut rd = TraceReader::new(Cursor::new(bytes));
        prop_assert_eq!(rd.next_record().unwrap(), Some(Record::Header(Box::new(header()))));
        let got: Vec<Record> = rd.by_ref().map(|r| r.unwrap()).collect();
        prop_assert_eq!(&got, &records);
        prop_assert_eq!(rd.complete, records.iter().any(|r| matches!(r, Record::Footer(_))));
    }

    #[test]
    fn a_cut_trace_reads_back_a_prefix(records in prop::collection::vec(record(), 1..32).prop_map(with_processes), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&records);
        let at = cut.index(bytes.len());
        let mut rd = TraceReader::new(Cursor::new(&bytes[..at]));
        let mut got = Vec::new();
        let mut end = None;
        for r in rd.by_ref() {
            match r {
                Ok(r) => got.push(r),
                Err(e) => end = Some(e),
            }
        }
        if let Some(Record::Header(_)) = got.first() {
            got.remove(0);
            prop_assert_eq!(&got[..], &records[..got.len()], "records before the cut are exact");
        }
        if let Some(e) = end {
            prop_assert!(e.truncated || e.offset == 0, "a cut is reported as a cut: {}", e);
            prop_assert!(e.offset <= at as u64);
        }
    }
}

/// Every record and the final error of `rd`, read one by one or in batches of `batch`.
fn read_all(mut rd: TraceReader<Cursor<&[u8]>>, batch: Option<usize>) -> (Vec<Record>, Option<TraceError>, bool, u64) {
    let mut got = Vec::new();
    let end = match batch {
        None => loop {
            match rd.next_record() {
                Ok(Some(r)) => got.push(r),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        },
        Some(n) => loop {
            match rd.next_batch(&mut got, n) {
                Ok(true) => {}
                Ok(false) => break None,
                Err(e) => break Some(e),
            }
        },
    };
    // The end stays the end.
    assert_eq!(rd.next_record().map_err(|e| e.message), Ok(None));
    (got, end, rd.complete, rd.records)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Batches give what one-by-one reading gives — records, error, offset,
    /// counters — on whole, cut and corrupted traces alike.
    #[test]
    fn batches_read_what_records_one_by_one_do(
        records in prop::collection::vec(record(), 0..64).prop_map(with_processes),
        cut in any::<prop::sample::Index>(),
        corrupt in prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
        batch in prop::sample::select(vec![1usize, 2, 7, 1024]),
    ) {
        let mut bytes = encode(&records);
        if let Some((at, b)) = corrupt {
            let at = at.index(bytes.len());
            bytes[at] = b;
        }
        let bytes = &bytes[..cut.index(bytes.len() + 1)];
        let one = read_all(TraceReader::new(Cursor::new(bytes)), None);
        let many = read_all(TraceReader::new(Cursor::new(bytes)), Some(batch));
        prop_assert_eq!(one.0, many.0);
        prop_assert_eq!(one.1.map(|e| (e.offset, e.message, e.truncated)), many.1.map(|e| (e.offset, e.message, e.truncated)));
        prop_assert_eq!((one.2, one.3), (many.2, many.3));
    }
}
