//! Streaming trace reader. Memory stays bounded whatever the file holds:
//! named records are length-checked before they are read, process indices
//! and array lengths are validated, and every error names the byte offset.
//!
//! Records are decoded straight from a block buffer the reader refills in
//! large reads (not byte by byte through `Read`): a record that straddles the
//! end of the block is retried once the block has been refilled, so decoding
//! never mutates state until a record is complete.

use crate::record::*;
use crate::writer::{tag, Prev};
use std::fmt;
use std::io::{self, BufRead};

/// Named records above this size are refused (a real one is a few KiB).
const MAX_NAMED_BYTES: u32 = 1 << 20;
/// Process indices above this are refused (a trace with a million processes is not one).
const MAX_PROCESSES: u32 = 1 << 20;
const MAX_STR: u32 = 4096;
/// Block size of the reader's own buffer; it grows (to hold the largest
/// record a trace may have) only when one record does not fit.
const BLOCK: usize = 256 << 10;
const MAX_BLOCK: usize = MAX_NAMED_BYTES as usize + 64;

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

/// Why a record could not be decoded from the bytes at hand. Small and
/// heap-free: it travels through every `?` of the hot path.
enum DecodeError {
    /// The bytes end inside the record: more are needed.
    Short,
    /// The bytes are not a valid record: what was wrong, and the value.
    Bad(&'static str, u64),
    /// A named record's body did not deserialize.
    Body(String),
    /// A well-formed record that contradicts the trace (said as is).
    Inconsistent(String),
}
use DecodeError::{Bad, Body, Inconsistent, Short};

impl DecodeError {
    fn message(self) -> String {
        match self {
            Short => "record cut short".into(),
            Bad(what, v) => format!("{what} {v}"),
            Body(e) => format!("body: {e}"),
            Inconsistent(e) => e,
        }
    }
}

/// Bytes an event record can never exceed in this format: array marker (5),
/// tag (9), process, seq, time, thread (4 × 9), up to 7 more fields (7 × 9) = 113.
/// With at least this many bytes at hand an event is decoded without bounds checks.
const FAST_MIN: usize = 128;

/// A msgpack cursor over a byte slice: just what the trace format uses.
/// `CHECKED = false` only for event records in slices of `FAST_MIN` bytes or more.
struct Cur<'a, const CHECKED: bool> {
    b: &'a [u8],
    i: usize,
}

impl<'a, const CHECKED: bool> Cur<'a, CHECKED> {
    #[inline(always)]
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let v = if CHECKED {
            *self.b.get(self.i).ok_or(Short)?
        } else {
            debug_assert!(self.i < self.b.len());
            // SAFETY: an unchecked cursor reads one event record from a slice of
            // at least FAST_MIN bytes, more than any event record can span.
            unsafe { *self.b.get_unchecked(self.i) }
        };
        self.i += 1;
        Ok(v)
    }
    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let s = self.b.get(self.i..self.i + n).ok_or(Short)?;
        self.i += n;
        Ok(s)
    }
    /// A big-endian unsigned of N bytes.
    #[inline(always)]
    fn be<const N: usize>(&mut self) -> Result<u64, DecodeError> {
        let s: [u8; N] = if CHECKED {
            self.take(N)?.try_into().map_err(|_| Short)?
        } else {
            debug_assert!(self.i + N <= self.b.len());
            // SAFETY: as in `byte`.
            let s = unsafe { self.b.as_ptr().add(self.i).cast::<[u8; N]>().read_unaligned() };
            self.i += N;
            s
        };
        let mut a = [0u8; 8];
        a[8 - N..].copy_from_slice(&s);
        Ok(u64::from_be_bytes(a))
    }
    /// Any msgpack integer as (magnitude bits, negative).
    #[inline(always)]
    fn int(&mut self) -> Result<(u64, bool), DecodeError> {
        let m = self.byte()?;
        Ok(match m {
            0x00..=0x7f => (m as u64, false),
            0xe0..=0xff => (m as i8 as i64 as u64, true),
            0xcc => (self.be::<1>()?, false),
            0xcd => (self.be::<2>()?, false),
            0xce => (self.be::<4>()?, false),
            0xcf => (self.be::<8>()?, false),
            0xd0 => {
                let v = self.be::<1>()? as u8 as i8 as i64;
                (v as u64, v < 0)
            }
            0xd1 => {
                let v = self.be::<2>()? as u16 as i16 as i64;
                (v as u64, v < 0)
            }
            0xd2 => {
                let v = self.be::<4>()? as u32 as i32 as i64;
                (v as u64, v < 0)
            }
            0xd3 => {
                let v = self.be::<8>()? as i64;
                (v as u64, v < 0)
            }
            _ => return Err(Bad("expected an integer, found marker", m as u64)),
        })
    }
    #[inline(always)]
    fn u64(&mut self) -> Result<u64, DecodeError> {
        match self.int()? {
            (v, false) => Ok(v),
            (v, true) => Err(Bad("negative integer where an unsigned one belongs:", v as i64 as u64)),
        }
    }
    #[inline(always)]
    fn i64(&mut self) -> Result<i64, DecodeError> {
        match self.int()? {
            (v, false) if v > i64::MAX as u64 => Err(Bad("integer out of range:", v)),
            (v, _) => Ok(v as i64),
        }
    }
    fn array_len(&mut self) -> Result<u32, DecodeError> {
        let m = self.byte()?;
        Ok(match m {
            0x90..=0x9f => (m & 0x0f) as u32,
            0xdc => self.be::<2>()? as u32,
            0xdd => self.be::<4>()? as u32,
            _ => return Err(Bad("expected an array, found marker", m as u64)),
        })
    }
    fn bin_len(&mut self) -> Result<u32, DecodeError> {
        let m = self.byte()?;
        Ok(match m {
            0xc4 => self.be::<1>()? as u32,
            0xc5 => self.be::<2>()? as u32,
            0xc6 => self.be::<4>()? as u32,
            _ => return Err(Bad("expected bin, found marker", m as u64)),
        })
    }
    fn str_len(&mut self) -> Result<u32, DecodeError> {
        let m = self.byte()?;
        Ok(match m {
            0xa0..=0xbf => (m & 0x1f) as u32,
            0xd9 => self.be::<1>()? as u32,
            0xda => self.be::<2>()? as u32,
            0xdb => self.be::<4>()? as u32,
            _ => return Err(Bad("expected a string, found marker", m as u64)),
        })
    }
}

pub struct TraceReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// `buf[pos..end]` is read but not yet decoded.
    pos: usize,
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    /// `inner` reported end of file.
    eof: bool,
    prev: Vec<Prev>,
    /// Format 1: `tid`, `object` and `program` are absolute, not deltas.
    absolute: bool,
    started: bool,
    done: bool,
    /// A footer was read: the trace was finished cleanly.
    pub complete: bool,
    pub records: u64,
}

impl<R: BufRead> TraceReader<R> {
    pub fn new(inner: R) -> Self {
        TraceReader {
            inner,
            buf: Vec::new(),
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            prev: Vec::new(),
            absolute: false,
            started: false,
            done: false,
            complete: false,
            records: 0,
        }
    }

    /// Byte offset of the next record (everything before it was decoded).
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn err(&self, offset: u64, message: impl Into<String>, truncated: bool) -> TraceError {
        TraceError { offset, message: message.into(), truncated }
    }

    fn fail(&mut self, offset: u64, message: impl Into<String>, truncated: bool) -> TraceError {
        self.done = true;
        self.err(offset, message, truncated)
    }

    /// Reads more bytes after `end`, first moving the undecoded rest to the
    /// front (and growing the block if the rest already fills it).
    fn refill(&mut self) -> io::Result<()> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            let want = if self.buf.is_empty() { BLOCK } else { (self.buf.len() * 2).min(MAX_BLOCK.max(self.end + 1)) };
            self.buf.resize(want, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Next record; `Ok(None)` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<Record>, TraceError> {
        if self.done {
            return Ok(None);
        }
        loop {
            let start = self.offset();
            if self.pos == self.end {
                if self.eof {
                    self.done = true;
                    if !self.started {
                        return Err(self.err(0, "empty file: not a ttalloc trace", false));
                    }
                    return Ok(None);
                }
                if let Err(e) = self.refill() {
                    return Err(self.fail(start, format!("read error: {e}"), false));
                }
                continue;
            }
            let r = decode(&self.buf[self.pos..self.end], &mut self.prev, self.absolute);
            let e = match r {
                Ok((r, n)) => {
                    self.pos += n;
                    return self.accept(r);
                }
                // Room to read more: retry with the rest of the record.
                Err(Short) if !self.eof && self.end - self.pos < MAX_BLOCK => {
                    if let Err(e) = self.refill() {
                        return Err(self.fail(start, format!("read error: {e}"), false));
                    }
                    continue;
                }
                // The file ends inside the record: a cut, not corruption.
                Err(Short) if self.eof => self.err(start, "trace cut short inside a record", true),
                Err(Short) => self.err(start, "corrupt record: longer than any record can be", false),
                Err(e) => self.err(start, format!("corrupt record: {}", e.message()), false),
            };
            self.done = true;
            if !self.started {
                return Err(self.err(0, format!("not a ttalloc trace ({})", e.message), e.truncated));
            }
            return Err(e);
        }
    }

    /// Appends up to `max` records to `out`: the ones `next_record` would
    /// return, in one call. Event records with room for the longest one are
    /// decoded here, without the per-record `Result`/`Option` layers; anything
    /// else goes through `next_record`. `Ok(false)` at a clean end of file; an
    /// error comes after the records before it, which are in `out`.
    pub fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<bool, TraceError> {
        let stop = out.len().saturating_add(max);
        while out.len() < stop {
            if self.started && !self.done && self.end - self.pos >= FAST_MIN {
                // A record that fails here leaves `prev` as it was, and
                // `next_record` decodes it again to report the error.
                if let Ok((r, n)) = decode_with::<false>(&self.buf[self.pos..self.end], &mut self.prev, self.absolute) {
                    self.pos += n;
                    self.counted(&r);
                    out.push(r);
                    continue;
                }
            }
            match self.next_record()? {
                Some(r) => out.push(r),
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    #[inline(always)]
    fn accept(&mut self, r: Record) -> Result<Option<Record>, TraceError> {
        if !self.started {
            self.start(&r)?;
        }
        self.counted(&r);
        Ok(Some(r))
    }

    /// `r` is returned: count it, and note a footer.
    #[inline(always)]
    fn counted(&mut self, r: &Record) {
        self.complete |= matches!(r, Record::Footer(_));
        self.records += 1;
    }

    /// The first record must be a header of a format this reader knows.
    #[cold]
    fn start(&mut self, r: &Record) -> Result<(), TraceError> {
        match r {
            Record::Header(h) if h.magic == TRACE_MAGIC => {
                if h.format_version > TRACE_FORMAT_VERSION {
                    return Err(self.fail(0, format!("trace format {} is newer than this ttalloc ({TRACE_FORMAT_VERSION})", h.format_version), false));
                }
                self.absolute = h.format_version < 2;
            }
            _ => return Err(self.fail(0, "not a ttalloc trace (no header)", false)),
        }
        self.started = true;
        Ok(())
    }
}

/// A process index, validated (and the delta state made room for).
#[inline(always)]
/// A record about process `p`: it must have been announced (so memory
/// follows the process records a trace holds, not an index it names).
fn check_p(prev: &mut Vec<Prev>, p: u64) -> Result<u32, DecodeError> {
    if p >= prev.len() as u64 {
        return Err(Inconsistent(format!("process {p} was never announced")));
    }
    Ok(p as u32)
}

/// A process record: indices are announced in order, 0, 1, 2, …
fn announce(prev: &mut Vec<Prev>, p: u64) -> Result<(), DecodeError> {
    let next = prev.len() as u64;
    if p > next || p >= MAX_PROCESSES as u64 {
        return Err(Inconsistent(format!("process {p} announced before process {next}")));
    }
    if p == next {
        prev.push(Prev::default());
    }
    Ok(())
}

/// Decodes one record from the front of `b`: the record and its length.
/// `prev` (the per-process delta state) changes only when a record is returned.
#[inline(always)]
fn decode(b: &[u8], prev: &mut Vec<Prev>, absolute: bool) -> Result<(Record, usize), DecodeError> {
    if b.len() >= FAST_MIN {
        decode_with::<false>(b, prev, absolute)
    } else {
        decode_with::<true>(b, prev, absolute)
    }
}

#[inline(always)]
fn decode_with<const CHECKED: bool>(b: &[u8], prev: &mut Vec<Prev>, absolute: bool) -> Result<(Record, usize), DecodeError> {
    let mut c = Cur::<CHECKED> { b, i: 0 };
    let len = c.array_len()?;
    if !(2..=16).contains(&len) {
        return Err(Bad("array of", len as u64));
    }
    let t = c.u64()?;
    let want = |n: u32| if len == n { Ok(()) } else { Err(Bad("wrong number of fields for the record's tag:", len as u64)) };
    let t = match u8::try_from(t) {
        Ok(t) => t,
        Err(_) => return Err(Bad("unknown tag", t)),
    };
    let r = match t {
        tag::HEADER | tag::PROCESS | tag::MESH | tag::PROCESS_END | tag::FOOTER | tag::GAP | tag::RESYNC | tag::RESYNC_DROP => {
            want(match t {
                tag::GAP | tag::RESYNC => 4,
                tag::RESYNC_DROP => 3,
                _ => 2,
            })?;
            let mut rc = Cur::<true> { b, i: c.i };
            let r = decode_rare(t, &mut rc, prev)?;
            c.i = rc.i;
            r
        }
        _ => {
            let p = check_p(prev, c.u64()?)?;
            let mut last = prev[p as usize];
            if absolute {
                (last.tid, last.object, last.program) = (0, 0, 0);
            }
            let seq = last.seq.wrapping_add(c.i64()? as u64);
            let ts_ns = last.ts.wrapping_add(c.i64()? as u64);
            // Format 1 wrote the tid unsigned, format 2 a signed delta: either
            // way the raw bits added to the base give the tid.
            let tid = last.tid.wrapping_add(c.int()?.0 as u32);
            let ev = Ev { p, seq, ts_ns, tid };
            let (mut object, mut program) = (last.object, last.program);
            let r = match t {
                tag::ALLOC => {
                    want(12)?;
                    let (chip, btype, flags) = (c.i64()? as i32, c.u64()? as u8, c.u64()? as u16);
                    object = object.wrapping_add(c.int()?.0);
                    Record::Alloc(AllocRec { ev, chip, btype, flags, object, address: c.u64()?, size: c.u64()?, page_size: c.u64()? as u32 })
                }
                tag::FREE => {
                    want(6)?;
                    Record::Free { ev, alloc_seq: seq.wrapping_sub(c.i64()? as u64) }
                }
                tag::UNKNOWN_FREE => {
                    want(10)?;
                    object = object.wrapping_add(c.int()?.0);
                    Record::UnknownFree { ev, object, chip: c.i64()? as i32, btype: c.u64()? as u8, address: c.u64()?, size: c.u64()? }
                }
                tag::CB_ALLOC | tag::DFB_ALLOC => {
                    want(10)?;
                    let chip = c.i64()? as i32;
                    program = program.wrapping_add(c.int()?.0);
                    let cb = CbRec { ev, chip, program, address: c.u64()?, size: c.u64()?, flags: c.u64()? as u16 };
                    if t == tag::CB_ALLOC {
                        Record::CbAlloc(cb)
                    } else {
                        Record::DfbAlloc(cb)
                    }
                }
                tag::CB_FREE => {
                    want(7)?;
                    let chip = c.i64()? as i32;
                    program = program.wrapping_add(c.int()?.0);
                    Record::CbFree { ev, chip, program }
                }
                tag::PROGRAM_END => {
                    want(6)?;
                    program = program.wrapping_add(c.int()?.0);
                    Record::ProgramEnd { ev, program }
                }
                tag::DEVICE_CLOSE => {
                    want(6)?;
                    Record::DeviceClose { ev, chip: c.i64()? as i32 }
                }
                tag::ALLOC_FAILED => {
                    want(10)?;
                    Record::AllocFailed { ev, chip: c.i64()? as i32, btype: c.u64()? as u8, size: c.u64()?, program: c.u64()?, what: c.u64()? as u8 }
                }
                other => return Err(Bad("unknown tag", other as u64)),
            };
            // Complete: commit the delta state.
            prev[p as usize] = Prev { seq, ts: ts_ns, tid, object, program };
            r
        }
    };
    Ok((r, c.i))
}

/// The records that are not events (named records, gaps, resyncs): out of
/// line, so the event path stays small.
#[cold]
#[inline(never)]
fn decode_rare(t: u8, c: &mut Cur<'_, true>, prev: &mut Vec<Prev>) -> Result<Record, DecodeError> {
    Ok(match t {
        tag::HEADER | tag::PROCESS | tag::MESH | tag::PROCESS_END | tag::FOOTER => {
            let n = c.bin_len()?;
            if n > MAX_NAMED_BYTES {
                return Err(Bad("named record too long: byte body of", n as u64));
            }
            let body = c.take(n as usize)?;
            let r = match t {
                tag::HEADER => rmp_serde::from_slice(body).map(|h| Record::Header(Box::new(h))),
                tag::PROCESS => rmp_serde::from_slice::<ProcessInfo>(body).map(|i| Record::Process(Box::new(i))),
                tag::MESH => rmp_serde::from_slice::<MeshInfo>(body).map(Record::Mesh),
                tag::PROCESS_END => rmp_serde::from_slice(body).map(|e| Record::ProcessEnd(Box::new(e))),
                _ => rmp_serde::from_slice(body).map(Record::Footer),
            };
            let r = r.map_err(|e| Body(e.to_string()))?;
            match &r {
                Record::Process(i) => announce(prev, i.p as u64)?,
                // Every allocation on a mesh is expanded to its chips: cap them as the ring does.
                Record::Mesh(m) if m.chips.len() > ttalloc_ring::MAX_MESH_CHIPS => {
                    let n = m.chips.len();
                    return Err(Inconsistent(format!("a mesh of {n} chips (at most {})", ttalloc_ring::MAX_MESH_CHIPS)));
                }
                _ => {
                    if let Some(p) = r.process() {
                        check_p(prev, p as u64)?;
                    }
                }
            }
            r
        }
        tag::GAP => {
            let p = check_p(prev, c.u64()?)?;
            Record::Gap { p, after_seq: c.u64()?, lost: c.u64()? }
        }
        tag::RESYNC => {
            let p = check_p(prev, c.u64()?)?;
            let at_seq = c.u64()?;
            let n = c.str_len()?;
            if n > MAX_STR {
                return Err(Bad("resync reason too long: bytes", n as u64));
            }
            let s = c.take(n as usize)?;
            Record::Resync { p, at_seq, reason: String::from_utf8_lossy(s).into_owned() }
        }
        tag::RESYNC_DROP => {
            let p = check_p(prev, c.u64()?)?;
            Record::ResyncDrop { p, alloc_seq: c.u64()? }
        }
        other => return Err(Bad("unknown tag", other as u64)),
    })
}

impl<R: BufRead> Iterator for TraceReader<R> {
    type Item = Result<Record, TraceError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Opens a trace file for streaming. (The reader keeps its own block buffer;
/// the `BufReader` is only the type callers name, so it stays small.)
pub fn open(path: &std::path::Path) -> Result<TraceReader<io::BufReader<std::fs::File>>, TraceError> {
    let f = std::fs::File::open(path).map_err(|e| TraceError { offset: 0, message: format!("cannot open: {e}"), truncated: false })?;
    Ok(TraceReader::new(io::BufReader::with_capacity(8 << 10, f)))
}

/// The footer of a finished trace, read from its last bytes (without
/// reading the rest): `None` if the file does not end with one (a trace cut
/// short, or still being written).
pub fn footer(path: &std::path::Path) -> Option<Footer> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    // A footer is a few dozen bytes: [4, bin(named map of five integers)].
    let tail = len.min(512);
    f.seek(SeekFrom::Start(len - tail)).ok()?;
    let mut b = Vec::with_capacity(tail as usize);
    io::Read::read_to_end(&mut f, &mut b).ok()?;
    (0..b.len().saturating_sub(4)).rev().find_map(|i| {
        if b[i] != 0x92 || b[i + 1] != tag::FOOTER {
            return None;
        }
        let mut c = Cur::<true> { b: &b[i + 2..], i: 0 };
        let n = c.bin_len().ok()? as usize;
        let body = c.take(n).ok()?;
        // It must be the last record.
        if i + 2 + c.i != b.len() {
            return None;
        }
        rmp_serde::from_slice::<Footer>(body).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{mp, TraceWriter};

    /// Format 1 (absolute `tid`, `object`, `program`) stays readable: records
    /// hand-encoded as the format-1 writer did.
    #[test]
    fn reads_format_1() {
        let header = TraceHeader { magic: TRACE_MAGIC.into(), format_version: 1, tool_version: "old".into(), host: "h".into(), collector_pid: 1, started_real_ns: 0, command: vec![] };
        let mut w = TraceWriter::new(Vec::new(), &header).unwrap();
        let process = ProcessInfo { p: 0, pid: 9, start_ticks: 1, exe: "x".into(), created_mono_ns: 0, created_real_ns: 0, shim_info: "{}".into(), attach: "from-start".into() };
        w.write(&Record::Process(Box::new(process.clone()))).unwrap();
        let mut b = w.into_inner();
        let v1_ev = |b: &mut Vec<u8>, t: u8, extra: u32, dseq: i64, tid: u64| {
            mp::array_len(b, 5 + extra);
            mp::uint(b, t as u64);
            mp::uint(b, 0);
            mp::sint(b, dseq);
            mp::sint(b, 100);
            mp::uint(b, tid);
        };
        for (seq, object) in [(1u64, 0x7f00_0000_2000u64), (2, 0x7f00_0000_1000)] {
            v1_ev(&mut b, tag::ALLOC, 7, 1, 40_000);
            for v in [0u64, 1, 0, object, 0x1000 * seq, 4096, 64] {
                mp::uint(&mut b, v);
            }
        }
        for program in [0x5555_0000_9000u64, 0x5555_0000_9000] {
            v1_ev(&mut b, tag::CB_ALLOC, 5, 1, 40_001);
            for v in [3u64, program, 0x100, 32, 0] {
                mp::uint(&mut b, v);
            }
        }
        v1_ev(&mut b, tag::PROGRAM_END, 1, 1, 40_001);
        mp::uint(&mut b, 0x5555_0000_9000);
        let got: Vec<Record> = TraceReader::new(&b[..]).collect::<Result<_, _>>().unwrap();
        let ev = |seq: u64, tid: u32| Ev { p: 0, seq, ts_ns: 100 * seq, tid };
        let alloc = |seq: u64, object: u64| Record::Alloc(AllocRec { ev: ev(seq, 40_000), chip: 0, btype: 1, flags: 0, object, address: 0x1000 * seq, size: 4096, page_size: 64 });
        let cb = |seq: u64| Record::CbAlloc(CbRec { ev: ev(seq, 40_001), chip: 3, program: 0x5555_0000_9000, address: 0x100, size: 32, flags: 0 });
        assert_eq!(
            got[1..],
            [
                Record::Process(Box::new(process)),
                alloc(1, 0x7f00_0000_2000),
                alloc(2, 0x7f00_0000_1000),
                cb(3),
                cb(4),
                Record::ProgramEnd { ev: ev(5, 40_001), program: 0x5555_0000_9000 }
            ]
        );
    }
}
