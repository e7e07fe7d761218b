//! One traced process, from the collector's side: its region, its ring
//! cursor, and the state needed to turn ring events into trace records —
//! pairing frees with their allocations, and reconciling with the live table
//! when events were lost (late attach after an overflow, collector restart,
//! ring overflow while attached).
//!
//! Resync (docs/design.md, "Exact live totals without every event"): first
//! apply, as history, every ring event published before the snapshot begins
//! (P); their frees of allocations whose events were dropped are absorbed, not
//! called unknown. Then take a snapshot of the live table and read `head` (H1).
//! Entries the collector lacks become `Alloc`s with `FLAG_RESYNC`; entries it
//! holds that the table lacks become `ResyncDrop`s. Ring events in [P, H1) may
//! or may not be reflected in the snapshot, so within that window an
//! allocation already present (same or later seq) is skipped, and a free of
//! something not held (or held from a later seq) is absorbed.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use ttalloc_ring::event::mesh_slot_of_chip;
use ttalloc_ring::clock::{self, TscToNs};
use ttalloc_ring::live::LiveEntry;
use ttalloc_ring::{naming::RegionName, Kind, Problem, RawEvent, Region, RingReader};
use ttalloc_trace::record::*;

#[derive(Clone, Copy, Debug)]
struct HeldBuffer {
    /// Orders it against ring events (a live-table seq may be provisional).
    seq: u64,
    /// Its id in the trace (`Free::alloc_seq` names it).
    id: u64,
    chip: i32,
}

/// Ids of resynced allocations: live-table entries whose event was dropped
/// share a provisional seq, so they get ids of their own, above any real seq.
const RESYNC_ID_BASE: u64 = 1 << 62;

#[derive(Clone, Debug, Default)]
struct HeldCbs {
    /// Trace ids of the CB allocations held live.
    ids: Vec<u64>,
    /// Highest seq folded into this program × chip (resync aggregates included).
    seq_last: u64,
    seq_first: u64,
}

pub struct Session {
    pub name: RegionName,
    pub p: u32,
    pub region: Region,
    buffers: HashMap<u64, HeldBuffer>,
    cbs: HashMap<(u64, i32), HeldCbs>,
    meshes_sent: HashSet<u32>,
    /// Ring events below this may already be reflected in the last snapshot.
    window_end: u64,
    /// Applying the events published before a snapshot: unknown frees are expected.
    absorbing: bool,
    next_resync_id: u64,
    last_dropped: u64,
    pub events: u64,
    pub absorbed: u64,
    pub unknown_frees: u64,
    pub finished: bool,
    /// Set when the shim stamps TSC ticks (`ttalloc_ring::clock`).
    clock: Option<TscToNs>,
    /// Events copied out of the ring, reused from drain to drain.
    batch: Vec<RawEvent>,
}

pub type Out<'a> = &'a mut dyn FnMut(Record);

impl Session {
    /// Opens the session and emits the process header (and a resync if
    /// history before `tail` or dropped events cannot come from the ring).
    pub fn start(name: RegionName, p: u32, region: Region, exe: Option<String>, out: Out) -> Session {
        let info = String::from_utf8_lossy(&region.info()).into_owned();
        let exe = exe
            .or_else(|| {
                let v: serde_json::Value = serde_json::from_str(&info).ok()?;
                v.get("cmdline")?.as_str().map(str::to_string)
            })
            .unwrap_or_else(|| format!("pid {}", name.pid));
        let reader = RingReader::new(&region);
        let (tail, dropped) = (reader.tail(), reader.dropped());
        let h = region.header();
        let attach = match (tail, dropped) {
            (0, 0) => "from-start",
            (0, _) => "late-attach",
            _ => "restart-resync",
        };
        out(Record::Process(Box::new(ProcessInfo {
            p,
            pid: h.pid,
            start_ticks: h.start_ticks,
            exe,
            created_mono_ns: h.created_mono_ns,
            created_real_ns: h.created_real_ns,
            shim_info: info,
            attach: attach.to_string(),
        })));
        let clock = (h.created_tsc != 0).then(|| TscToNs::new(h.created_tsc, h.created_mono_ns));
        let mut s = Session {
            name,
            p,
            region,
            buffers: HashMap::default(),
            cbs: HashMap::default(),
            meshes_sent: HashSet::default(),
            window_end: 0,
            absorbing: false,
            next_resync_id: RESYNC_ID_BASE,
            last_dropped: 0,
            events: 0,
            absorbed: 0,
            unknown_frees: 0,
            finished: false,
            clock,
            batch: Vec::new(),
        };
        if attach != "from-start" {
            if dropped > 0 {
                out(Record::Gap { p, after_seq: tail, lost: dropped });
            }
            s.last_dropped = dropped;
            s.resync(attach, out);
        }
        s
    }

    fn ev(&self, e: &RawEvent) -> Ev {
        let ts_ns = match &self.clock {
            Some(c) => c.to_ns(e.body.ts_ns),
            None => e.body.ts_ns,
        };
        Ev { p: self.p, seq: e.seq, ts_ns, tid: e.body.tid }
    }

    /// Emits the mesh table entry behind a mesh reference the first time it is used.
    fn chip(&mut self, chip: i32, out: Out) -> i32 {
        if let Some(slot) = mesh_slot_of_chip(chip) {
            if self.meshes_sent.insert(slot as u32) {
                out(Record::Mesh(MeshInfo {
                    p: self.p,
                    slot: slot as u32,
                    mesh: self.region.mesh_ptr(slot),
                    chips: self.region.mesh_chips(slot),
                }));
            }
        }
        chip
    }

    /// Drains up to `max` events. Returns how many were handled.
    pub fn drain(&mut self, max: u64, out: Out) -> u64 {
        if let Some(c) = &mut self.clock {
            c.observe(clock::now_pair()); // after the events below were stamped
        }
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        let d = RingReader::new(&self.region).drain(max, |e| batch.push(e));
        for e in &batch {
            self.handle(e, out);
        }
        self.batch = batch;
        self.events += d.events;
        let reader = RingReader::new(&self.region);
        let (dropped, tail) = (reader.dropped(), reader.tail());
        if dropped > self.last_dropped {
            out(Record::Gap { p: self.p, after_seq: tail, lost: dropped - self.last_dropped });
            self.last_dropped = dropped;
            self.resync("ring-overflow", out);
        }
        d.events
    }

    /// The process is gone: drain what it published and skip the slots it
    /// reserved but never published (a run of them is one gap). A header
    /// claiming more than one lap of reservations is corrupt: no producer
    /// gets that far ahead, so the excess is one gap, not 2^63 iterations.
    pub fn drain_dead(&mut self, out: Out) {
        let cap = self.region.ring_capacity();
        let mut skipped: Option<(u64, u64)> = None;
        let flush = |skipped: &mut Option<(u64, u64)>, out: Out, p: u32| {
            if let Some((after_seq, lost)) = skipped.take() {
                out(Record::Gap { p, after_seq, lost });
            }
        };
        loop {
            let reader = RingReader::new(&self.region);
            let (tail, head) = (reader.tail(), reader.head());
            if tail >= head {
                break;
            }
            if head - tail > cap {
                flush(&mut skipped, out, self.p);
                out(Record::Gap { p: self.p, after_seq: tail, lost: head - tail });
                break;
            }
            if reader.published_prefix() > tail {
                flush(&mut skipped, out, self.p);
                self.drain(1 << 16, out);
            } else if reader.skip_unpublished(tail) {
                self.last_dropped += 1; // not a ring overflow: never resync for it
                let run = skipped.get_or_insert((tail, 0));
                run.1 += 1;
            } else {
                break;
            }
        }
        flush(&mut skipped, out, self.p);
    }

    /// Handles the ring's events up to (not including) `end`, all published.
    fn apply_until(&mut self, end: u64, out: Out) {
        let mut batch = std::mem::take(&mut self.batch);
        loop {
            let tail = RingReader::new(&self.region).tail();
            if tail >= end {
                break;
            }
            batch.clear();
            let d = RingReader::new(&self.region).drain((end - tail).min(1 << 16), |e| batch.push(e));
            for e in &batch {
                self.handle(e, out);
            }
            self.events += d.events;
            if d.events == 0 {
                break;
            }
        }
        self.batch = batch;
    }

    fn resync(&mut self, reason: &str, out: Out) {
        // History first: what was published before the snapshot is in the ring,
        // and the snapshot reflects it; only what was dropped is reconciled.
        let published = RingReader::new(&self.region).published_prefix();
        self.absorbing = true;
        self.apply_until(published, out);
        self.absorbing = false;
        let reader = RingReader::new(&self.region);
        let snapshot = self.region.live_snapshot();
        let h1 = reader.head();
        self.window_end = h1;
        out(Record::Resync { p: self.p, at_seq: h1, reason: reason.to_string() });
        let mut seen_buffers = HashSet::default();
        let mut seen_cbs = HashSet::default();
        // A program may hold CBs and DFBs on one chip: two entries, one key here.
        let mut resynced_cbs = HashSet::default();
        for (_key, e) in &snapshot {
            if e.kind == Kind::CbAlloc as u8 || e.kind == Kind::DfbAlloc as u8 {
                let key = (e.object, e.chip);
                seen_cbs.insert(key);
                if !self.cbs.contains_key(&key) || resynced_cbs.contains(&key) {
                    self.resync_cb(e, out);
                    resynced_cbs.insert(key);
                }
            } else {
                seen_buffers.insert(e.object);
                match self.buffers.get(&e.object) {
                    Some(h) if h.seq == e.seq => {}
                    Some(h) => {
                        out(Record::ResyncDrop { p: self.p, alloc_seq: h.id });
                        self.resync_buffer(e, out);
                    }
                    None => self.resync_buffer(e, out),
                }
            }
        }
        let gone: Vec<u64> = self.buffers.keys().filter(|k| !seen_buffers.contains(k)).copied().collect();
        for k in gone {
            let h = self.buffers.remove(&k).expect("held");
            out(Record::ResyncDrop { p: self.p, alloc_seq: h.id });
        }
        let gone: Vec<(u64, i32)> = self.cbs.keys().filter(|k| !seen_cbs.contains(k)).copied().collect();
        for k in gone {
            for id in self.cbs.remove(&k).expect("held").ids {
                out(Record::ResyncDrop { p: self.p, alloc_seq: id });
            }
        }
    }

    fn resync_id(&mut self) -> u64 {
        self.next_resync_id += 1;
        self.next_resync_id
    }

    fn resync_buffer(&mut self, e: &LiveEntry, out: Out) {
        let chip = self.chip(e.chip, out);
        let id = self.resync_id();
        out(Record::Alloc(AllocRec {
            ev: Ev { p: self.p, seq: id, ts_ns: 0, tid: 0 },
            chip,
            btype: e.btype,
            flags: e.flags | FLAG_RESYNC,
            object: e.object,
            address: e.address,
            size: e.size,
            page_size: 0,
        }));
        self.buffers.insert(e.object, HeldBuffer { seq: e.seq, id, chip: e.chip });
    }

    fn resync_cb(&mut self, e: &LiveEntry, out: Out) {
        let chip = self.chip(e.chip, out);
        let id = self.resync_id();
        let rec = CbRec {
            ev: Ev { p: self.p, seq: id, ts_ns: 0, tid: 0 },
            chip,
            program: e.object,
            address: e.address,
            size: e.size,
            flags: FLAG_RESYNC,
        };
        out(if e.kind == Kind::DfbAlloc as u8 { Record::DfbAlloc(rec) } else { Record::CbAlloc(rec) });
        let held = self.cbs.entry((e.object, e.chip)).or_insert_with(|| HeldCbs { seq_first: e.seq, ..Default::default() });
        held.ids.push(id);
        held.seq_last = held.seq_last.max(e.seq_last);
        held.seq_first = held.seq_first.min(e.seq);
    }

    fn handle(&mut self, e: &RawEvent, out: Out) {
        let in_window = e.seq < self.window_end;
        let absorbing = self.absorbing;
        let b = &e.body;
        let ev = self.ev(e);
        let Some(kind) = Kind::from_u8(b.kind) else {
            // A corrupt slot: keep going, but make it visible.
            out(Record::Gap { p: self.p, after_seq: e.seq, lost: 1 });
            return;
        };
        match kind {
            Kind::Alloc => {
                // One probe: the new entry goes in, and whatever it replaces is looked at.
                let held = HeldBuffer { seq: e.seq, id: e.seq, chip: b.chip };
                match self.buffers.insert(b.object, held) {
                    Some(h) if in_window && h.seq >= e.seq => {
                        // Already announced by the snapshot: keep that entry.
                        self.buffers.insert(b.object, h);
                        return;
                    }
                    Some(h) => {
                        // Still held: its free was lost. Say so before reusing the key.
                        out(Record::ResyncDrop { p: self.p, alloc_seq: h.id });
                    }
                    None => {}
                }
                let chip = self.chip(b.chip, out);
                out(Record::Alloc(AllocRec {
                    ev,
                    chip,
                    btype: b.btype,
                    flags: b.flags,
                    object: b.object,
                    address: b.address,
                    size: b.size,
                    page_size: b.page_size,
                }));
            }
            // One probe: the entry comes out, and goes back in the rare case it is newer.
            Kind::Free => match self.buffers.remove(&b.object) {
                Some(h) if h.seq <= e.seq => out(Record::Free { ev, alloc_seq: h.id }),
                held => {
                    if let Some(h) = held {
                        self.buffers.insert(b.object, h);
                    }
                    if in_window || absorbing {
                        self.absorbed += 1;
                    } else if held.is_none() {
                        self.unknown_frees += 1;
                        let chip = self.chip(b.chip, out);
                        out(Record::UnknownFree { ev, object: b.object, chip, btype: b.btype, address: b.address, size: b.size });
                    }
                }
            },
            Kind::CbAlloc | Kind::DfbAlloc => {
                let key = (b.object, b.chip);
                let held = self.cbs.get(&key);
                if in_window && held.is_some_and(|c| c.seq_last >= e.seq) {
                    return;
                }
                let chip = self.chip(b.chip, out);
                let rec = CbRec { ev, chip, program: b.object, address: b.address, size: b.size, flags: b.flags };
                out(if kind == Kind::CbAlloc { Record::CbAlloc(rec) } else { Record::DfbAlloc(rec) });
                let held = self.cbs.entry(key).or_insert_with(|| HeldCbs { seq_first: e.seq, ..Default::default() });
                held.ids.push(e.seq);
                held.seq_last = e.seq;
            }
            Kind::CbFree => {
                let key = (b.object, b.chip);
                match self.cbs.get(&key) {
                    Some(c) if c.seq_first <= e.seq => {
                        self.cbs.remove(&key);
                        let chip = self.chip(b.chip, out);
                        out(Record::CbFree { ev, chip, program: b.object });
                    }
                    _ if in_window || absorbing => self.absorbed += 1,
                    _ => {
                        // A program without CBs on this device (nothing was placed): harmless.
                        let chip = self.chip(b.chip, out);
                        out(Record::CbFree { ev, chip, program: b.object });
                    }
                }
            }
            Kind::ProgramEnd => {
                self.cbs.retain(|(program, _), _| *program != b.object);
                out(Record::ProgramEnd { ev, program: b.object });
            }
            Kind::DeviceClose => {
                let chip = self.chip(b.chip, out);
                let chips: Vec<i32> = match mesh_slot_of_chip(b.chip) {
                    Some(slot) => self.region.mesh_chips(slot),
                    None => vec![b.chip],
                };
                // What is held on those chips ends here (the model releases it as
                // close_release); a mesh allocation stays held while a member closes.
                let on_closed = |c: i32| c == b.chip || chips.contains(&c);
                self.buffers.retain(|_, h| !on_closed(h.chip));
                self.cbs.retain(|(_, c), _| !on_closed(*c));
                out(Record::DeviceClose { ev, chip });
            }
            Kind::AllocFailed => {
                let chip = self.chip(b.chip, out);
                let what = if b.aux == 2 { FAILED_CIRCULAR_BUFFERS } else { FAILED_BUFFER };
                out(Record::AllocFailed { ev, chip, btype: b.btype, size: b.size, program: b.object, what });
            }
        }
    }

    pub fn end(&mut self, how: &str, out: Out) {
        let reader = RingReader::new(&self.region);
        let problems = self.region.problems();
        out(Record::ProcessEnd(Box::new(ProcessEnd {
            p: self.p,
            last_seq: reader.tail(),
            how: how.to_string(),
            dropped: reader.dropped(),
            problems: Problem::ALL
                .iter()
                .map(|p| (p.name().to_string(), problems[*p as usize]))
                .filter(|(_, n)| *n > 0)
                .collect(),
        })));
        self.finished = true;
    }
}
