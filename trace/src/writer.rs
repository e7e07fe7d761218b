//! Streaming trace writer: each record is one msgpack array `[tag, …]`.
//! Hot records are positional with per-process deltas for `seq`, `ts_ns`,
//! `tid`, the `Buffer*` and the `ProgramImpl*` (format 2: most deltas fit in
//! one byte — a program's CBs share one pointer, a thread's events one tid,
//! and buffers come from nearby heap slots); rare records carry a named msgpack map
//! (rmp-serde) inside a length-prefixed `bin`, so readers can bound them.

use crate::mp;
use crate::record::*;
use rmp::encode as enc;
use serde::Serialize;
use std::io::{self, Write};

pub(crate) mod tag {
    pub const HEADER: u8 = 0;
    pub const PROCESS: u8 = 1;
    pub const MESH: u8 = 2;
    pub const PROCESS_END: u8 = 3;
    pub const FOOTER: u8 = 4;
    pub const ALLOC: u8 = 10;
    pub const FREE: u8 = 11;
    pub const UNKNOWN_FREE: u8 = 12;
    pub const CB_ALLOC: u8 = 13;
    pub const CB_FREE: u8 = 14;
    pub const PROGRAM_END: u8 = 15;
    pub const DFB_ALLOC: u8 = 16;
    pub const DEVICE_CLOSE: u8 = 17;
    pub const ALLOC_FAILED: u8 = 18;
    pub const GAP: u8 = 20;
    pub const RESYNC: u8 = 21;
    pub const RESYNC_DROP: u8 = 22;
}

/// Per-process delta state shared by writer and reader.
#[derive(Clone, Copy, Default)]
pub(crate) struct Prev {
    pub seq: u64,
    pub ts: u64,
    pub tid: u32,
    /// The last `Buffer*` of an alloc or unknown free.
    pub object: u64,
    /// The last `ProgramImpl*` of a cb_alloc, dfb_alloc, cb_free or program_end.
    pub program: u64,
}

pub struct TraceWriter<W: Write> {
    out: W,
    prev: Vec<Prev>,
    records: u64,
    bytes: u64,
    /// Rare records (named maps, strings).
    scratch: Vec<u8>,
    /// Event records.
    fixed: mp::Fixed,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::Other, e.to_string())
}

impl<W: Write> TraceWriter<W> {
    /// Starts a trace with its header.
    pub fn new(out: W, header: &TraceHeader) -> io::Result<Self> {
        let mut w = TraceWriter { out, prev: Vec::new(), records: 0, bytes: 0, scratch: Vec::with_capacity(256), fixed: mp::Fixed::new() };
        w.write(&Record::Header(Box::new(header.clone())))?;
        Ok(w)
    }

    pub fn records(&self) -> u64 {
        self.records
    }
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn named<T: Serialize>(&mut self, t: u8, value: &T) -> io::Result<()> {
        let body = rmp_serde::to_vec_named(value).map_err(io_err)?;
        let b = &mut self.scratch;
        enc::write_array_len(b, 2).map_err(io_err)?;
        enc::write_uint(b, t as u64).map_err(io_err)?;
        enc::write_bin(b, &body).map_err(io_err)?;
        Ok(())
    }

    fn ev(&mut self, t: u8, ev: &Ev, extra: u32) -> io::Result<()> {
        let p = ev.p as usize;
        if self.prev.len() <= p {
            self.prev.resize(p + 1, Prev::default());
        }
        let prev = &mut self.prev[p];
        let (dseq, dts, dtid) = (ev.seq.wrapping_sub(prev.seq), ev.ts_ns.wrapping_sub(prev.ts), ev.tid.wrapping_sub(prev.tid));
        (prev.seq, prev.ts, prev.tid) = (ev.seq, ev.ts_ns, ev.tid);
        let b = &mut self.fixed;
        mp::array_len(b, 5 + extra);
        mp::uint(b, t as u64);
        mp::uint(b, ev.p as u64);
        mp::sint(b, dseq as i64);
        mp::sint(b, dts as i64);
        mp::sint(b, dtid as i32 as i64);
        Ok(())
    }

    /// `object` as a delta from the process's previous one (after `ev`).
    fn object(&mut self, p: u32, object: u64) {
        let prev = &mut self.prev[p as usize].object;
        mp::sint(&mut self.fixed, object.wrapping_sub(*prev) as i64);
        *prev = object;
    }

    /// `program` as a delta from the process's previous one (after `ev`).
    fn program(&mut self, p: u32, program: u64) {
        let prev = &mut self.prev[p as usize].program;
        mp::sint(&mut self.fixed, program.wrapping_sub(*prev) as i64);
        *prev = program;
    }

    fn u(&mut self, v: u64) -> io::Result<()> {
        mp::uint(&mut self.fixed, v);
        Ok(())
    }
    fn i(&mut self, v: i64) -> io::Result<()> {
        mp::sint(&mut self.fixed, v);
        Ok(())
    }

    pub fn write(&mut self, r: &Record) -> io::Result<()> {
        self.scratch.clear();
        self.fixed.clear();
        match r {
            Record::Header(h) => self.named(tag::HEADER, h)?,
            Record::Process(i) => self.named(tag::PROCESS, i)?,
            Record::Mesh(m) => self.named(tag::MESH, m)?,
            Record::ProcessEnd(e) => self.named(tag::PROCESS_END, e)?,
            Record::Footer(f) => self.named(tag::FOOTER, f)?,
            Record::Alloc(a) => {
                self.ev(tag::ALLOC, &a.ev, 7)?;
                self.i(a.chip as i64)?;
                self.u(a.btype as u64)?;
                self.u(a.flags as u64)?;
                self.object(a.ev.p, a.object);
                self.u(a.address)?;
                self.u(a.size)?;
                self.u(a.page_size as u64)?;
            }
            Record::Free { ev, alloc_seq } => {
                self.ev(tag::FREE, ev, 1)?;
                self.i(ev.seq.wrapping_sub(*alloc_seq) as i64)?;
            }
            Record::UnknownFree { ev, object, chip, btype, address, size } => {
                self.ev(tag::UNKNOWN_FREE, ev, 5)?;
                self.object(ev.p, *object);
                self.i(*chip as i64)?;
                self.u(*btype as u64)?;
                self.u(*address)?;
                self.u(*size)?;
            }
            Record::CbAlloc(c) | Record::DfbAlloc(c) => {
                let t = if matches!(r, Record::CbAlloc(_)) { tag::CB_ALLOC } else { tag::DFB_ALLOC };
                self.ev(t, &c.ev, 5)?;
                self.i(c.chip as i64)?;
                self.program(c.ev.p, c.program);
                self.u(c.address)?;
                self.u(c.size)?;
                self.u(c.flags as u64)?;
            }
            Record::CbFree { ev, chip, program } => {
                self.ev(tag::CB_FREE, ev, 2)?;
                self.i(*chip as i64)?;
                self.program(ev.p, *program);
            }
            Record::ProgramEnd { ev, program } => {
                self.ev(tag::PROGRAM_END, ev, 1)?;
                self.program(ev.p, *program);
            }
            Record::DeviceClose { ev, chip } => {
                self.ev(tag::DEVICE_CLOSE, ev, 1)?;
                self.i(*chip as i64)?;
            }
            Record::AllocFailed { ev, chip, btype, size, program, what } => {
                self.ev(tag::ALLOC_FAILED, ev, 5)?;
                self.i(*chip as i64)?;
                self.u(*btype as u64)?;
                self.u(*size)?;
                self.u(*program)?;
                self.u(*what as u64)?;
            }
            Record::Gap { p, after_seq, lost } => {
                mp::array_len(&mut self.fixed, 4);
                self.u(tag::GAP as u64)?;
                self.u(*p as u64)?;
                self.u(*after_seq)?;
                self.u(*lost)?;
            }
            Record::Resync { p, at_seq, reason } => {
                let b = &mut self.scratch;
                mp::array_len(b, 4);
                mp::uint(b, tag::RESYNC as u64);
                mp::uint(b, *p as u64);
                mp::uint(b, *at_seq);
                enc::write_str(b, reason).map_err(io_err)?;
            }
            Record::ResyncDrop { p, alloc_seq } => {
                mp::array_len(&mut self.fixed, 3);
                self.u(tag::RESYNC_DROP as u64)?;
                self.u(*p as u64)?;
                self.u(*alloc_seq)?;
            }
        }
        // One of the two is empty.
        let bytes = if self.scratch.is_empty() { self.fixed.as_slice() } else { &self.scratch[..] };
        self.out.write_all(bytes)?;
        self.records += 1;
        self.bytes += bytes.len() as u64;
        Ok(())
    }
}
