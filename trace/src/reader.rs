//! Streaming trace reader. Memory stays bounded whatever the file holds:
//! named records are length-checked before they are read, process indices
//! and array lengths are validated, and every error names the byte offset.

use crate::record::*;
use crate::writer::{tag, Prev};
use rmp::decode as dec;
use std::fmt;
use std::io::{self, BufRead, Read};

/// Named records above this size are refused (a real one is a few KiB).
const MAX_NAMED_BYTES: u32 = 1 << 20;
/// Process indices above this are refused (a trace with a million processes is not one).
const MAX_PROCESSES: u32 = 1 << 20;
const MAX_STR: u32 = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError {
    pub offset: u64,
    pub message: String,
    /// The file ended inside a record: everything before `offset` was read.
    pub truncated: bool,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte offset {}", self.message, self.offset)
    }
}
impl std::error::Error for TraceError {}

struct Counting<R> {
    inner: R,
    offset: u64,
}
impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.offset += n as u64;
        Ok(n)
    }
}

pub struct TraceReader<R> {
    rd: Counting<R>,
    prev: Vec<Prev>,
    started: bool,
    done: bool,
    /// A footer was read: the trace was finished cleanly.
    pub complete: bool,
    pub records: u64,
}

impl<R: BufRead> TraceReader<R> {
    pub fn new(inner: R) -> Self {
        TraceReader { rd: Counting { inner, offset: 0 }, prev: Vec::new(), started: false, done: false, complete: false, records: 0 }
    }

    pub fn offset(&self) -> u64 {
        self.rd.offset
    }

    fn err(&self, start: u64, message: impl Into<String>, truncated: bool) -> TraceError {
        TraceError { offset: start, message: message.into(), truncated }
    }

    /// Next record; `Ok(None)` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<Record>, TraceError> {
        if self.done {
            return Ok(None);
        }
        let start = self.rd.offset;
        let at_eof = match self.rd.inner.fill_buf() {
            Ok(b) => b.is_empty(),
            Err(e) => return Err(self.fail(start, format!("read error: {e}"), false)),
        };
        if at_eof {
            self.done = true;
            if !self.started {
                return Err(self.err(0, "empty file: not a ttalloc trace", false));
            }
            return Ok(None);
        }
        match self.decode(start) {
            Ok(r) => {
                if !self.started {
                    match &r {
                        Record::Header(h) if h.magic == TRACE_MAGIC => {
                            if h.format_version > TRACE_FORMAT_VERSION {
                                return Err(self.fail(0, format!("trace format {} is newer than this ttalloc ({TRACE_FORMAT_VERSION})", h.format_version), false));
                            }
                        }
                        _ => return Err(self.fail(0, "not a ttalloc trace (no header)", false)),
                    }
                    self.started = true;
                }
                if matches!(r, Record::Footer(_)) {
                    self.complete = true;
                }
                self.records += 1;
                Ok(Some(r))
            }
            Err(mut e) => {
                // Whatever the decoder complained about, a record that ends at
                // end-of-file is a cut, not corruption.
                if e.truncated {
                    if self.rd.inner.fill_buf().map_or(false, |b| b.is_empty()) {
                        e = self.err(start, "trace cut short inside a record", true);
                    } else {
                        e.truncated = false;
                    }
                }
                if !self.started {
                    e = self.err(0, format!("not a ttalloc trace ({})", e.message), e.truncated);
                }
                self.done = true;
                Err(e)
            }
        }
    }

    fn fail(&mut self, offset: u64, message: impl Into<String>, truncated: bool) -> TraceError {
        self.done = true;
        self.err(offset, message, truncated)
    }

    fn decode(&mut self, start: u64) -> Result<Record, TraceError> {
        macro_rules! bad {
            ($e:expr) => {{
                let e = $e;
                // Marked provisionally as a cut; `next_record` keeps that only at end of file.
                return Err(self.err(start, format!("corrupt record: {e}"), true));
            }};
        }
        let len = match dec::read_array_len(&mut self.rd) { Ok(n) => n, Err(e) => bad!(e) };
        if !(2..=16).contains(&len) {
            return Err(self.err(start, format!("corrupt record: array of {len}"), false));
        }
        let t: u8 = match dec::read_int(&mut self.rd) { Ok(v) => v, Err(e) => bad!(e) };
        macro_rules! u {
            () => { match dec::read_int::<u64, _>(&mut self.rd) { Ok(v) => v, Err(e) => bad!(e) } };
        }
        macro_rules! i {
            () => { match dec::read_int::<i64, _>(&mut self.rd) { Ok(v) => v, Err(e) => bad!(e) } };
        }
        let want = |n: u32| -> Result<(), TraceError> {
            if len == n { Ok(()) } else { Err(TraceError { offset: start, message: format!("corrupt record: tag {t} with {len} fields (expected {n})"), truncated: false }) }
        };
        match t {
            tag::HEADER | tag::PROCESS | tag::MESH | tag::PROCESS_END | tag::FOOTER => {
                want(2)?;
                let n = match dec::read_bin_len(&mut self.rd) { Ok(n) => n, Err(e) => bad!(e) };
                if n > MAX_NAMED_BYTES {
                    return Err(self.err(start, format!("corrupt record: {n}-byte body"), false));
                }
                let mut body = vec![0u8; n as usize];
                if let Err(e) = self.rd.read_exact(&mut body) { bad!(e) }
                let r = match t {
                    tag::HEADER => rmp_serde::from_slice(&body).map(Record::Header),
                    tag::PROCESS => rmp_serde::from_slice::<ProcessInfo>(&body).map(Record::Process),
                    tag::MESH => rmp_serde::from_slice::<MeshInfo>(&body).map(Record::Mesh),
                    tag::PROCESS_END => rmp_serde::from_slice(&body).map(Record::ProcessEnd),
                    _ => rmp_serde::from_slice(&body).map(Record::Footer),
                };
                let r = r.map_err(|e| self.err(start, format!("corrupt record body: {e}"), false))?;
                match &r {
                    Record::Process(i) => self.announce(start, i.p as u64)?,
                    // Every allocation on a mesh is expanded to its chips: cap them as the ring does.
                    Record::Mesh(m) if m.chips.len() > ttalloc_ring::MAX_MESH_CHIPS => {
                        return Err(self.err(start, format!("corrupt record: a mesh of {} chips (at most {})", m.chips.len(), ttalloc_ring::MAX_MESH_CHIPS), false));
                    }
                    _ => {
                        if let Some(p) = r.process() {
                            self.check_p(start, p as u64)?;
                        }
                    }
                }
                Ok(r)
            }
            tag::GAP => {
                want(4)?;
                let raw_p = u!();
                let p = self.check_p(start, raw_p)?;
                Ok(Record::Gap { p, after_seq: u!(), lost: u!() })
            }
            tag::RESYNC => {
                want(4)?;
                let raw_p = u!();
                let p = self.check_p(start, raw_p)?;
                let at_seq = u!();
                let n = match dec::read_str_len(&mut self.rd) { Ok(n) => n, Err(e) => bad!(e) };
                if n > MAX_STR {
                    return Err(self.err(start, "corrupt record: long reason", false));
                }
                let mut s = vec![0u8; n as usize];
                if let Err(e) = self.rd.read_exact(&mut s) { bad!(e) }
                Ok(Record::Resync { p, at_seq, reason: String::from_utf8_lossy(&s).into_owned() })
            }
            tag::RESYNC_DROP => {
                want(3)?;
                let raw_p = u!();
                let p = self.check_p(start, raw_p)?;
                Ok(Record::ResyncDrop { p, alloc_seq: u!() })
            }
            _ => {
                let raw_p = u!();
                let p = self.check_p(start, raw_p)?;
                let prev = self.prev[p as usize];
                let seq = prev.seq.wrapping_add(i!() as u64);
                let ts_ns = prev.ts.wrapping_add(i!() as u64);
                let tid = u!() as u32;
                self.prev[p as usize] = Prev { seq, ts: ts_ns };
                let ev = Ev { p, seq, ts_ns, tid };
                let r = match t {
                    tag::ALLOC => {
                        want(12)?;
                        Record::Alloc(AllocRec { ev, chip: i!() as i32, btype: u!() as u8, flags: u!() as u16, object: u!(), address: u!(), size: u!(), page_size: u!() as u32 })
                    }
                    tag::FREE => {
                        want(6)?;
                        Record::Free { ev, alloc_seq: seq.wrapping_sub(i!() as u64) }
                    }
                    tag::UNKNOWN_FREE => {
                        want(10)?;
                        Record::UnknownFree { ev, object: u!(), chip: i!() as i32, btype: u!() as u8, address: u!(), size: u!() }
                    }
                    tag::CB_ALLOC | tag::DFB_ALLOC => {
                        want(10)?;
                        let c = CbRec { ev, chip: i!() as i32, program: u!(), address: u!(), size: u!(), flags: u!() as u16 };
                        if t == tag::CB_ALLOC { Record::CbAlloc(c) } else { Record::DfbAlloc(c) }
                    }
                    tag::CB_FREE => {
                        want(7)?;
                        Record::CbFree { ev, chip: i!() as i32, program: u!() }
                    }
                    tag::PROGRAM_END => {
                        want(6)?;
                        Record::ProgramEnd { ev, program: u!() }
                    }
                    tag::DEVICE_CLOSE => {
                        want(6)?;
                        Record::DeviceClose { ev, chip: i!() as i32 }
                    }
                    tag::ALLOC_FAILED => {
                        want(10)?;
                        Record::AllocFailed { ev, chip: i!() as i32, btype: u!() as u8, size: u!(), program: u!(), what: u!() as u8 }
                    }
                    other => return Err(self.err(start, format!("corrupt record: unknown tag {other}"), false)),
                };
                Ok(r)
            }
        }
    }

    /// A record about process `p`: it must have been announced (so memory
    /// follows the process records a trace holds, not an index it names).
    fn check_p(&mut self, start: u64, p: u64) -> Result<u32, TraceError> {
        if p >= self.prev.len() as u64 {
            return Err(self.err(start, format!("corrupt record: process {p} was never announced"), false));
        }
        Ok(p as u32)
    }

    /// A process record: indices are announced in order, 0, 1, 2, …
    fn announce(&mut self, start: u64, p: u64) -> Result<(), TraceError> {
        let next = self.prev.len() as u64;
        if p > next || p >= MAX_PROCESSES as u64 {
            return Err(self.err(start, format!("corrupt record: process {p} announced before process {next}"), false));
        }
        if p == next {
            self.prev.push(Prev::default());
        }
        Ok(())
    }
}

impl<R: BufRead> Iterator for TraceReader<R> {
    type Item = Result<Record, TraceError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Opens a trace file for streaming.
pub fn open(path: &std::path::Path) -> Result<TraceReader<io::BufReader<std::fs::File>>, TraceError> {
    let f = std::fs::File::open(path).map_err(|e| TraceError { offset: 0, message: format!("cannot open: {e}"), truncated: false })?;
    Ok(TraceReader::new(io::BufReader::with_capacity(1 << 20, f)))
}
