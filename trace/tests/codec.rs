use std::io::Cursor;
use ttalloc_trace::*;

fn header() -> TraceHeader {
    TraceHeader {
        magic: TRACE_MAGIC.into(),
        format_version: TRACE_FORMAT_VERSION,
        tool_version: "test".into(),
        host: "h".into(),
        collector_pid: 1,
        started_real_ns: 2,
        command: vec!["x".into()],
    }
}

fn ev(p: u32, seq: u64) -> Ev {
    Ev { p, seq, ts_ns: 1_000_000 + seq * 37, tid: 4242 }
}

pub fn sample() -> Vec<Record> {
    vec![
        Record::Process(Box::new(ProcessInfo { p: 0, pid: 10, start_ticks: 5, exe: "python".into(), created_mono_ns: 1, created_real_ns: 2, shim_info: "{}".into(), attach: "from-start".into() })),
        Record::Mesh(MeshInfo { p: 0, slot: 0, mesh: 0x5000, chips: (0..8).collect() }),
        Record::Alloc(AllocRec { ev: ev(0, 0), chip: -2, btype: 0, flags: 0, object: 0x7f00_0000_1000, address: 0x40000, size: 4 << 20, page_size: 2048 }),
        Record::CbAlloc(CbRec { ev: ev(0, 1), chip: 3, program: 0x9000, address: 0x1000, size: 4096, flags: 0 }),
        Record::DfbAlloc(CbRec { ev: ev(0, 2), chip: 3, program: 0x9000, address: 0x3000, size: 1024, flags: 0 }),
        Record::CbFree { ev: ev(0, 3), chip: 3, program: 0x9000 },
        Record::ProgramEnd { ev: ev(0, 4), program: 0x9000 },
        Record::Free { ev: ev(0, 5), alloc_seq: 0 },
        Record::UnknownFree { ev: ev(0, 6), object: 1, chip: 2, btype: 1, address: 3, size: 4 },
        Record::DeviceClose { ev: ev(0, 7), chip: -2 },
        Record::AllocFailed { ev: ev(0, 8), chip: 1, btype: 1, size: 99, program: 0, what: FAILED_BUFFER },
        Record::Gap { p: 0, after_seq: 8, lost: 3 },
        Record::Resync { p: 0, at_seq: 12, reason: "late-attach".into() },
        Record::ResyncDrop { p: 0, alloc_seq: 7 },
        Record::ProcessEnd(Box::new(ProcessEnd { p: 0, last_seq: 8, how: "exited".into(), dropped: 3, problems: vec![("reentry".into(), 1)] })),
        Record::Footer(Footer { records: 17, processes: 1, dropped: 3, unknown_frees: 1, ended_real_ns: 9 }),
    ]
}

fn encode(records: &[Record]) -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new(), &header()).unwrap();
    for r in records {
        w.write(r).unwrap();
    }
    w.into_inner()
}

#[test]
fn every_record_kind_round_trips() {
    let recs = sample();
    let bytes = encode(&recs);
    let mut rd = TraceReader::new(Cursor::new(bytes));
    assert_eq!(rd.next_record().unwrap(), Some(Record::Header(Box::new(header()))));
    let got: Vec<Record> = rd.by_ref().map(|r| r.unwrap()).collect();
    assert_eq!(got, recs);
    assert!(rd.complete);
}

#[test]
fn cut_short_trace_reads_up_to_the_cut() {
    let bytes = encode(&sample());
    let full = TraceReader::new(Cursor::new(bytes.clone())).count();
    for cut in [bytes.len() - 1, bytes.len() / 2, 40] {
        let mut rd = TraceReader::new(Cursor::new(bytes[..cut].to_vec()));
        let mut ok = 0;
        let mut err = None;
        for r in rd.by_ref() {
            match r {
                Ok(_) => ok += 1,
                Err(e) => err = Some(e),
            }
        }
        assert!(ok < full);
        assert!(!rd.complete);
        if let Some(e) = err {
            assert!(e.truncated, "{e}");
            assert!(e.offset <= cut as u64);
        }
    }
}

#[test]
fn foreign_files_are_refused_at_offset_zero() {
    for junk in [b"".to_vec(), b"hello world".to_vec(), vec![0x92, 0x00, 0xc4, 0x01, 0x00], vec![0xdd, 0xff, 0xff, 0xff, 0xff]] {
        let e = TraceReader::new(Cursor::new(junk)).next().unwrap().unwrap_err();
        assert_eq!(e.offset, 0, "{e}");
        assert!(e.message.contains("not a ttalloc trace") || e.message.contains("empty"), "{e}");
    }
}

#[test]
fn huge_declared_lengths_do_not_allocate() {
    let mut bytes = encode(&[]);
    // [1, bin32 of 4 GiB]
    bytes.extend_from_slice(&[0x92, 0x01, 0xc6, 0xff, 0xff, 0xff, 0xff]);
    let mut rd = TraceReader::new(Cursor::new(bytes));
    rd.next().unwrap().unwrap();
    let e = rd.next().unwrap().unwrap_err();
    assert!(e.message.contains("byte body"), "{e}");
}

#[test]
fn mesh_workload_events_average_under_24_bytes() {
    // Typical steady state: alloc + free of buffers by one thread.
    let mut recs = vec![];
    for i in 0..10_000u64 {
        let seq = 2 * i;
        recs.push(Record::Alloc(AllocRec { ev: Ev { p: 0, seq, ts_ns: 5_000_000_000 + seq * 900, tid: 31337 }, chip: -2, btype: 0, flags: 0, object: 0x5555_5555_0000 + (i % 64) * 0x100, address: 0x10_0000 + (i % 64) * 0x40000, size: 4 << 20, page_size: 2048 }));
        recs.push(Record::Free { ev: Ev { p: 0, seq: seq + 1, ts_ns: 5_000_000_000 + seq * 900 + 450, tid: 31337 }, alloc_seq: seq });
    }
    let w = { let mut w = TraceWriter::new(Vec::new(), &header()).unwrap(); let h = w.bytes(); for r in &recs { w.write(r).unwrap(); } (w.bytes() - h) as f64 / recs.len() as f64 };
    assert!(w <= 24.0, "{w} bytes per event");
}

/// A reader that hands out at most a few bytes per call (a pipe, a slow disk).
struct Dribble {
    data: Vec<u8>,
    at: usize,
    step: usize,
}
impl std::io::Read for Dribble {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.step = self.step % 7 + 1;
        let n = self.step.min(buf.len()).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn many(n: u64) -> Vec<Record> {
    let mut recs = sample();
    recs.pop(); // the footer goes last
    // Processes 1 and 2 are announced before their records (the reader requires it).
    for p in 1..3 {
        recs.push(Record::Process(Box::new(ProcessInfo { p, pid: 10 + p, start_ticks: 5, exe: "python".into(), created_mono_ns: 1, created_real_ns: 2, shim_info: "{}".into(), attach: "from-start".into() })));
    }
    for i in 0..n {
        let seq = 100 + 2 * i;
        recs.push(Record::Alloc(AllocRec { ev: Ev { p: (i % 3) as u32, seq, ts_ns: 9_000_000 + seq * 1_000, tid: 7 }, chip: (i % 8) as i32, btype: 1, flags: 0, object: 0x7f00_0000_0000 + i, address: 0x1000 * i, size: 4096 + i, page_size: 2048 }));
        recs.push(Record::Free { ev: Ev { p: (i % 3) as u32, seq: seq + 1, ts_ns: 9_000_000 + seq * 1_000 + 5, tid: 7 }, alloc_seq: seq });
    }
    recs.push(Record::Footer(Footer::default()));
    recs
}

#[test]
fn records_straddling_reads_and_blocks_decode_the_same() {
    // Well over the reader's block size, so records straddle block ends.
    let recs = many(40_000);
    let bytes = encode(&recs);
    assert!(bytes.len() > 1 << 20, "{}", bytes.len());
    let whole: Vec<Record> = TraceReader::new(Cursor::new(bytes.clone())).skip(1).map(|r| r.unwrap()).collect();
    assert_eq!(whole, recs);
    let mut rd = TraceReader::new(std::io::BufReader::with_capacity(5, Dribble { data: bytes.clone(), at: 0, step: 0 }));
    let dribbled: Vec<Record> = rd.by_ref().skip(1).map(|r| r.unwrap()).collect();
    assert_eq!(dribbled, recs);
    assert!(rd.complete);
    assert_eq!(rd.offset(), bytes.len() as u64);
}

#[test]
fn a_cut_at_any_byte_reads_exactly_the_whole_records_before_it() {
    let recs = sample();
    let bytes = encode(&recs);
    // Start offset of every record, the header included.
    let mut w = TraceWriter::new(Vec::new(), &header()).unwrap();
    let mut starts = vec![0u64, w.bytes()];
    for r in &recs {
        w.write(r).unwrap();
        starts.push(w.bytes());
    }
    for cut in 1..bytes.len() {
        let mut rd = TraceReader::new(std::io::BufReader::with_capacity(3, Dribble { data: bytes[..cut].to_vec(), at: 0, step: cut % 5 }));
        let mut ok = 0usize;
        let mut err = None;
        for r in rd.by_ref() {
            match r {
                Ok(_) => ok += 1,
                Err(e) => err = Some(e),
            }
        }
        // Whole records before the cut are read; the one cut is reported as a cut at its start.
        let whole = starts.iter().filter(|&&s| s > 0 && s <= cut as u64).count();
        assert_eq!(ok, whole, "cut at {cut}");
        if starts.contains(&(cut as u64)) {
            assert!(err.is_none(), "cut at a record boundary {cut}: {err:?}");
        } else {
            let e = err.unwrap_or_else(|| panic!("cut at {cut}: no error"));
            assert!(e.truncated, "cut at {cut}: {e}");
            assert_eq!(e.offset, if ok == 0 { 0 } else { starts[ok] }, "cut at {cut}: {e}");
        }
        assert!(!rd.complete);
    }
}

#[test]
fn corruption_mid_file_is_an_error_with_its_offset_not_a_cut() {
    let recs = sample();
    let mut bytes = encode(&recs);
    let mut w = TraceWriter::new(Vec::new(), &header()).unwrap();
    for r in &recs[..3] {
        w.write(r).unwrap();
    }
    let at = w.bytes() as usize;
    bytes[at] = 0xc1; // the never-used msgpack marker, where record 4 starts
    let mut rd = TraceReader::new(Cursor::new(bytes));
    let got: Vec<_> = rd.by_ref().collect();
    assert_eq!(got.iter().filter(|r| r.is_ok()).count(), 4, "header + 3 records");
    let e = got.last().unwrap().as_ref().unwrap_err();
    assert!(!e.truncated, "{e}");
    assert_eq!(e.offset, at as u64, "{e}");
    assert!(e.message.starts_with("corrupt record"), "{e}");
}

mod garbage {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// Whatever follows a valid header — random bytes, or valid records
        /// with bytes flipped — the reader returns records or one error with
        /// an offset inside the file; it never panics or reads past the data.
        #[test]
        fn any_bytes_after_a_header_are_read_or_refused(tail in proptest::collection::vec(any::<u8>(), 0..600), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8)) {
            let mut bytes = encode(&many(20));
            for (i, v) in flips {
                let n = bytes.len();
                bytes[200 + i % (n - 200)] = v;
            }
            bytes.extend_from_slice(&tail);
            let len = bytes.len() as u64;
            let mut rd = TraceReader::new(Cursor::new(bytes));
            let mut errors = 0;
            for r in rd.by_ref() {
                if let Err(e) = r {
                    errors += 1;
                    prop_assert!(e.offset <= len, "{e}");
                }
            }
            prop_assert!(errors <= 1);
            prop_assert!(rd.offset() <= len);
        }
    }
}

#[test]
fn the_footer_is_read_from_the_end_of_a_finished_trace_only() {
    let d = tempfile::tempdir().unwrap();
    let recs = many(500);
    let bytes = encode(&recs);
    let p = d.path().join("t");
    std::fs::write(&p, &bytes).unwrap();
    let Some(Record::Footer(want)) = recs.last().cloned() else { panic!() };
    assert_eq!(reader::footer(&p), Some(want));
    // Cut short (no footer), or something after it: none.
    std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
    assert_eq!(reader::footer(&p), None);
    let mut more = bytes.clone();
    more.extend_from_slice(&encode(&[])[..5]);
    std::fs::write(&p, &more).unwrap();
    assert_eq!(reader::footer(&p), None);
}

/// Format 2's point: a program's CB records share one pointer and a
/// thread's records one tid, so both cost one byte after the first record.
#[test]
fn repeated_program_and_tid_cost_one_byte() {
    let mut w = TraceWriter::new(Vec::new(), &header()).unwrap();
    w.write(&sample()[0]).unwrap();
    let mut sizes = vec![];
    for seq in 0..3 {
        let before = w.bytes();
        let cb = CbRec { ev: Ev { p: 0, seq, ts_ns: 10 * seq, tid: 40_000 }, chip: 3, program: 0x5555_dead_9000, address: 0x10000, size: 4096, flags: 0 };
        w.write(&Record::CbAlloc(cb)).unwrap();
        sizes.push(w.bytes() - before);
    }
    // array, tag, p, dseq, dts, tid, chip, program: 1 byte each; address 5, size 3, flags 1.
    assert_eq!(sizes[1..], [17, 17]);
    assert!(sizes[0] >= 17 + 2 + 8, "first record carries the absolute tid and program: {sizes:?}");
}
