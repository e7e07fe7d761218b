//! Replays trace records into chip-level events and exact per-chip usage.
//!
//! Accounting rules (see docs/coverage.md for why):
//! * an allocation on a mesh is one allocation per chip of the mesh, same address;
//! * hooked allocations (graph capture without dispatch) are live and paired, but use no bytes;
//! * circular/dataflow buffers of different programs overlap in L1 by design: a
//!   chip's CB usage is the *largest* live program's CB bytes, not the sum;
//!   globally allocated CBs alias an L1 buffer and add no bytes;
//! * a device close releases what the process still had live on those chips
//!   (`CloseRelease`), so a leak report can name them instead of inventing frees.

use crate::live_table::LiveTable;
use crate::record::*;
pub use crate::usage::{Usage, UsageMap};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::Arc;
use ttalloc_ring::event::{mesh_slot_of_chip, FLAG_GLOBAL_CB, FLAG_HOOKED};
use ttalloc_ring::BufferType;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChipKind {
    Alloc,
    Free,
    CbAlloc,
    CbFree,
    DfbAlloc,
    DfbFree,
    /// Still live when its device closed: released by the close, never freed.
    CloseRelease,
    AllocFailed,
    UnknownFree,
    /// Live per the shim's live table when the collector (re)attached.
    ResyncAlloc,
    /// The collector held it live but the live table says it is gone.
    ResyncDrop,
}

impl ChipKind {
    pub fn name(self) -> &'static str {
        match self {
            ChipKind::Alloc => "alloc",
            ChipKind::Free => "free",
            ChipKind::CbAlloc => "cb_alloc",
            ChipKind::CbFree => "cb_free",
            ChipKind::DfbAlloc => "dfb_alloc",
            ChipKind::DfbFree => "dfb_free",
            ChipKind::CloseRelease => "close_release",
            ChipKind::AllocFailed => "alloc_failed",
            ChipKind::UnknownFree => "unknown_free",
            ChipKind::ResyncAlloc => "resync_alloc",
            ChipKind::ResyncDrop => "resync_drop",
        }
    }
    /// Adds memory (or a hooked placeholder) to the live set.
    pub fn is_acquire(self) -> bool {
        matches!(self, ChipKind::Alloc | ChipKind::CbAlloc | ChipKind::DfbAlloc | ChipKind::ResyncAlloc)
    }
    pub fn is_release(self) -> bool {
        matches!(self, ChipKind::Free | ChipKind::CbFree | ChipKind::DfbFree | ChipKind::CloseRelease | ChipKind::ResyncDrop)
    }
}

/// One event on one chip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChipEvent {
    pub p: u32,
    pub pid: u32,
    pub seq: u64,
    pub ts_ns: u64,
    pub tid: u32,
    pub kind: ChipKind,
    pub chip: i32,
    pub btype: BufferType,
    pub address: u64,
    pub size: u64,
    pub page_size: u32,
    /// `Buffer*` for buffers, `ProgramImpl*` for CBs.
    pub object: u64,
    /// Sequence number of the allocation this event is about (its stable id).
    pub id: u64,
    /// The allocation's own record ordinal, time and thread (a release's
    /// `seq`/`ts_ns`/`tid` are the release's).
    pub alloc_record: u64,
    pub alloc_ts_ns: u64,
    pub alloc_tid: u32,
    pub hooked: bool,
    /// A globally allocated CB (aliases an L1 buffer; adds no bytes).
    pub global: bool,
    /// This acquire raised its chip × type (over all processes) to a new peak.
    pub peak: bool,
}

impl ChipEvent {
    /// Bytes the allocation occupies on this chip (as `Live::bytes`).
    pub fn bytes(&self) -> u64 {
        counted_bytes(self.size, self.hooked, self.global)
    }
}

/// The chips of an allocation: one, or a list of `ChipSets` (a mesh's, or
/// what is left of one after a device close).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chips {
    One(i32),
    Set(u32),
}

/// Chip lists, each kept once and named by a 4-byte id, so that a `Live`
/// holds a chip or an id rather than a shared slice (16 bytes): that, and
/// no per-buffer usage handles, is what keeps a `Live` to one cache line.
#[derive(Clone, Debug, Default)]
struct ChipSets {
    lists: Vec<Arc<[i32]>>,
    ids: FxHashMap<Arc<[i32]>, u32>,
}

impl ChipSets {
    fn of(&mut self, chips: &[i32]) -> Chips {
        if let [one] = chips {
            return Chips::One(*one);
        }
        if let Some(&id) = self.ids.get(chips) {
            return Chips::Set(id);
        }
        let id = self.lists.len() as u32;
        let list: Arc<[i32]> = chips.into();
        self.lists.push(Arc::clone(&list));
        self.ids.insert(list, id);
        Chips::Set(id)
    }

    #[inline]
    fn slice<'a>(&'a self, chips: &'a Chips) -> &'a [i32] {
        match chips {
            Chips::One(c) => std::slice::from_ref(c),
            Chips::Set(id) => &self.lists[*id as usize],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LiveKind {
    Buffer,
    Cb,
    Dfb,
}

/// A live allocation (on one or more chips) of one process: 64 bytes, one
/// cache line of the live table (see `LiveTable` for why that matters).
#[derive(Clone, Debug)]
pub struct Live {
    pub seq: u64,
    /// The model's record count when it was acquired: its record's ordinal.
    pub record: u64,
    pub ts_ns: u64,
    pub object: u64,
    pub address: u64,
    pub size: u64,
    pub tid: u32,
    pub page_size: u32,
    /// The chip, or with `SET` an id of the model's `ChipSets` (see [`Model::chips_of`]).
    chip: i32,
    kind: LiveKind,
    pub btype: BufferType,
    flags: u8,
}

const HOOKED: u8 = 1;
const GLOBAL: u8 = 2;
const SET: u8 = 4;

/// A live table this large (1 MiB of slots, from 2048 allocations live)
/// no longer stays in a core's L2 here: below it, `prefetch` would only add
/// its instructions.
const PREFETCH_FROM_SLOTS: usize = 1 << 14;

impl Live {
    pub fn is_cb(&self) -> bool {
        self.kind != LiveKind::Buffer
    }
    /// Acquired during a graph capture without dispatch: live, but no bytes.
    pub fn hooked(&self) -> bool {
        self.flags & HOOKED != 0
    }
    /// A globally allocated CB (aliases an L1 buffer; adds no bytes).
    pub fn global(&self) -> bool {
        self.flags & GLOBAL != 0
    }
    /// Bytes it occupies on each of its chips (see `counted_bytes`).
    #[inline]
    pub fn bytes(&self) -> u64 {
        counted_bytes(self.size, self.hooked(), self.global())
    }
    #[inline]
    fn chips(&self) -> Chips {
        if self.flags & SET != 0 {
            Chips::Set(self.chip as u32)
        } else {
            Chips::One(self.chip)
        }
    }
    #[inline]
    fn set_chips(&mut self, chips: Chips) {
        (self.chip, self.flags) = match chips {
            Chips::One(c) => (c, self.flags & !SET),
            Chips::Set(id) => (id as i32, self.flags | SET),
        };
    }
}

/// Bytes an allocation of `size` occupies on a chip: none when hooked (graph
/// capture) or a globally allocated CB (aliases a counted L1 buffer).
#[inline]
fn counted_bytes(size: u64, hooked: bool, global: bool) -> u64 {
    if hooked || global {
        0
    } else {
        size
    }
}

/// The last (process, chip, type)s seen, direct-mapped to their `usage` and
/// `proc_usage` handles: a workload allocates on a handful of (chip, type)s,
/// and the two hash probes per allocation were a tenth of the model's time.
#[derive(Clone, Debug)]
struct SlotCache([(u32, i32, BufferType, [u32; 2]); SlotCache::LEN]);

impl Default for SlotCache {
    fn default() -> Self {
        // No process has index u32::MAX: every entry starts empty.
        SlotCache([(u32::MAX, 0, BufferType::Unknown, [u32::MAX; 2]); SlotCache::LEN])
    }
}

impl SlotCache {
    const LEN: usize = 64;

    #[inline(always)]
    fn slots(
        &mut self,
        usage: &mut UsageMap<(i32, BufferType)>,
        proc_usage: &mut UsageMap<(u32, i32, BufferType)>,
        p: u32,
        chip: i32,
        t: BufferType,
    ) -> [u32; 2] {
        let i = ((chip as u32).wrapping_mul(8) ^ t as u32 ^ p.wrapping_mul(131)) as usize % Self::LEN;
        let e = &mut self.0[i];
        if (e.0, e.1, e.2) != (p, chip, t) {
            *e = (p, chip, t, [usage.slot((chip, t)), proc_usage.slot((p, chip, t))]);
        }
        e.3
    }
}

/// The process-wide and per-process usage of (chip, type), updated together.
#[inline(always)]
fn both<'a>(
    usage: &'a mut UsageMap<(i32, BufferType)>,
    proc_usage: &'a mut UsageMap<(u32, i32, BufferType)>,
    cache: &mut SlotCache,
    p: u32,
    chip: i32,
    t: BufferType,
) -> [&'a mut Usage; 2] {
    let [u, pu] = cache.slots(usage, proc_usage, p, chip, t);
    [usage.at(u), proc_usage.at(pu)]
}

// Integer-keyed maps hashed with FxHash: SipHash's DoS resistance buys
// nothing on trace replay and cost a quarter of the time.
#[derive(Clone, Debug, Default)]
pub struct ProcState {
    pub info: Option<ProcessInfo>,
    pub end: Option<ProcessEnd>,
    /// Mesh slot → its chips.
    meshes: FxHashMap<u32, Chips>,
    /// Allocation seq → the live allocation.
    pub live: LiveTable,
    /// program → live CB/DFB allocation seqs.
    programs: FxHashMap<u64, Vec<u64>>,
    /// (chip, program) → that program's non-global CB bytes on the chip.
    cb_bytes: FxHashMap<(i32, u64), u64>,
    /// chip → multiset of the non-zero values of `cb_bytes` on it (bytes →
    /// programs), so the largest program is found without a scan.
    cb_levels: FxHashMap<i32, BTreeMap<u64, u32>>,
    pub last_seq: u64,
    pub dropped: u64,
    pub unknown_frees: u64,
    pub resyncs: u64,
    pub events: u64,
}

impl ProcState {
    pub fn pid(&self) -> u32 {
        self.info.as_ref().map_or(0, |i| i.pid)
    }
}

#[derive(Default)]
pub struct Model {
    pub header: Option<TraceHeader>,
    pub footer: Option<Footer>,
    pub procs: Vec<ProcState>,
    /// (chip, type) → usage summed over processes (CB: the largest program per process).
    pub usage: UsageMap<(i32, BufferType)>,
    /// (process, chip, type) → usage.
    pub proc_usage: UsageMap<(u32, i32, BufferType)>,
    pub unknown_frees: u64,
    pub dropped: u64,
    pub gaps: u64,
    pub alloc_failures: u64,
    pub records: u64,
    slot_cache: SlotCache,
    chip_sets: ChipSets,
    /// Some live table has outgrown the cache: `prefetch` is worth its cost.
    prefetching: bool,
}

impl Model {
    pub fn new() -> Model {
        Model::default()
    }

    #[inline]
    fn proc_mut(&mut self, p: u32) -> &mut ProcState {
        let p = p as usize;
        if self.procs.len() <= p {
            self.procs.resize_with(p + 1, ProcState::default);
        }
        &mut self.procs[p]
    }

    #[inline]
    fn expand(&self, p: u32, chip: i32) -> Chips {
        match mesh_slot_of_chip(chip) {
            None => Chips::One(chip),
            Some(slot) => match self.procs.get(p as usize).and_then(|s| s.meshes.get(&(slot as u32))) {
                Some(chips) => *chips,
                None => Chips::One(chip),
            },
        }
    }

    /// The chips live allocation `l` is on.
    pub fn chips_of<'a>(&'a self, l: &'a Live) -> &'a [i32] {
        match l.chips() {
            Chips::One(_) => std::slice::from_ref(&l.chip),
            Chips::Set(id) => &self.chip_sets.lists[id as usize],
        }
    }

    #[inline]
    fn base(&self, ev: &Ev, kind: ChipKind) -> ChipEvent {
        ChipEvent {
            p: ev.p,
            pid: self.procs.get(ev.p as usize).map_or(0, |s| s.pid()),
            seq: ev.seq,
            ts_ns: ev.ts_ns,
            tid: ev.tid,
            kind,
            chip: -1,
            btype: BufferType::Unknown,
            address: 0,
            size: 0,
            page_size: 0,
            object: 0,
            id: ev.seq,
            alloc_record: self.records,
            alloc_ts_ns: ev.ts_ns,
            alloc_tid: ev.tid,
            hooked: false,
            global: false,
            peak: false,
        }
    }

    /// The chip-level event about `live` (its chip filled in by the caller).
    #[inline]
    fn chip_event(&self, ev: &Ev, kind: ChipKind, id: u64, live: &Live) -> ChipEvent {
        let mut ce = self.base(ev, kind);
        ce.btype = live.btype;
        ce.address = live.address;
        ce.size = live.size;
        ce.page_size = live.page_size;
        ce.object = live.object;
        ce.id = id;
        ce.alloc_record = live.record;
        ce.alloc_ts_ns = live.ts_ns;
        ce.alloc_tid = live.tid;
        ce.hooked = live.hooked();
        ce.global = live.global();
        ce
    }

    /// Applies one record; `out` receives the chip-level events it produces, in order.
    ///
    /// Generic in `out`, so the caller's closure is inlined where events are
    /// made; that code is then compiled in the caller's crate, which is why
    /// the small helpers it calls are `#[inline]` (without them each was a
    /// call: ≈ 11 % more instructions per record, session 9).
    #[inline]
    pub fn apply(&mut self, r: &Record, out: &mut impl FnMut(&ChipEvent)) {
        self.records += 1;
        if let Some(ev) = r.ev() {
            let st = self.proc_mut(ev.p);
            st.last_seq = st.last_seq.max(ev.seq);
            st.events += 1;
        } else if let Some(p) = r.process() {
            self.proc_mut(p);
        }
        match r {
            Record::Header(h) => self.header = Some((**h).clone()),
            Record::Footer(f) => self.footer = Some(f.clone()),
            Record::Process(i) => self.proc_mut(i.p).info = Some((**i).clone()),
            Record::ProcessEnd(e) => self.proc_mut(e.p).end = Some((**e).clone()),
            Record::Mesh(m) => {
                let chips = self.chip_sets.of(&m.chips);
                self.proc_mut(m.p).meshes.insert(m.slot, chips);
            }
            Record::Alloc(a) => {
                let kind = if a.flags & FLAG_RESYNC != 0 { ChipKind::ResyncAlloc } else { ChipKind::Alloc };
                let mut live = Live {
                    kind: LiveKind::Buffer,
                    chip: 0,
                    seq: a.ev.seq,
                    record: self.records,
                    ts_ns: a.ev.ts_ns,
                    tid: a.ev.tid,
                    btype: BufferType::from_u8(a.btype),
                    object: a.object,
                    address: a.address,
                    size: a.size,
                    page_size: a.page_size,
                    flags: if a.flags & FLAG_HOOKED != 0 { HOOKED } else { 0 },
                };
                live.set_chips(self.expand(a.ev.p, a.chip));
                self.acquire(a.ev, kind, live, out);
            }
            Record::CbAlloc(c) | Record::DfbAlloc(c) => {
                let dfb = matches!(r, Record::DfbAlloc(_));
                let kind = match (dfb, c.flags & FLAG_RESYNC != 0) {
                    (_, true) => ChipKind::ResyncAlloc,
                    (false, false) => ChipKind::CbAlloc,
                    (true, false) => ChipKind::DfbAlloc,
                };
                let mut live = Live {
                    kind: if dfb { LiveKind::Dfb } else { LiveKind::Cb },
                    chip: 0,
                    seq: c.ev.seq,
                    record: self.records,
                    ts_ns: c.ev.ts_ns,
                    tid: c.ev.tid,
                    btype: BufferType::Cb,
                    object: c.program,
                    address: c.address,
                    size: c.size,
                    page_size: 0,
                    flags: if c.flags & FLAG_GLOBAL_CB != 0 { GLOBAL } else { 0 },
                };
                live.set_chips(self.expand(c.ev.p, c.chip));
                self.acquire(c.ev, kind, live, out);
            }
            Record::Free { ev, alloc_seq } => {
                if !self.release_whole(*ev, *alloc_seq, None, ChipKind::Free, out) {
                    self.unknown_free(*ev, 0, -1, BufferType::Unknown as u8, 0, 0, out);
                }
            }
            Record::UnknownFree { ev, object, chip, btype, address, size } => {
                self.unknown_free(*ev, *object, *chip, *btype, *address, *size, out);
            }
            Record::CbFree { ev, chip, program } => {
                let chips = self.expand(ev.p, *chip);
                self.release_program(*ev, *program, Some(chips), out);
            }
            Record::ProgramEnd { ev, program } => self.release_program(*ev, *program, None, out),
            Record::DeviceClose { ev, chip } => {
                let chips = self.expand(ev.p, *chip);
                let closed = self.chip_sets.slice(&chips);
                let mut seqs: Vec<u64> = self.procs[ev.p as usize]
                    .live
                    .values()
                    .filter(|l| self.chips_of(l).iter().any(|c| closed.contains(c)))
                    .map(|l| l.seq)
                    .collect();
                seqs.sort_unstable();
                for s in seqs {
                    self.release_whole(*ev, s, Some(chips), ChipKind::CloseRelease, out);
                }
            }
            Record::AllocFailed { ev, chip, btype, size, program, .. } => {
                self.alloc_failures += 1;
                let chips = self.expand(ev.p, *chip);
                for &c in self.chip_sets.slice(&chips) {
                    let mut ce = self.base(ev, ChipKind::AllocFailed);
                    ce.chip = c;
                    ce.btype = BufferType::from_u8(*btype);
                    ce.size = *size;
                    ce.object = *program;
                    out(&ce);
                }
            }
            Record::Gap { p, lost, .. } => {
                self.gaps += 1;
                self.dropped = self.dropped.saturating_add(*lost);
                let st = self.proc_mut(*p);
                st.dropped = st.dropped.saturating_add(*lost);
            }
            Record::Resync { p, .. } => self.proc_mut(*p).resyncs += 1,
            Record::ResyncDrop { p, alloc_seq } => {
                let ev = Ev { p: *p, seq: *alloc_seq, ts_ns: 0, tid: 0 };
                self.release_whole(ev, *alloc_seq, None, ChipKind::ResyncDrop, out);
            }
        }
    }

    fn unknown_free(&mut self, ev: Ev, object: u64, chip: i32, btype: u8, address: u64, size: u64, out: &mut impl FnMut(&ChipEvent)) {
        self.unknown_frees += 1;
        self.proc_mut(ev.p).unknown_frees += 1;
        let mut ce = self.base(&ev, ChipKind::UnknownFree);
        ce.chip = chip;
        ce.btype = BufferType::from_u8(btype);
        ce.object = object;
        ce.address = address;
        ce.size = size;
        out(&ce);
    }

    fn acquire(&mut self, ev: Ev, kind: ChipKind, live: Live, out: &mut impl FnMut(&ChipEvent)) {
        let p = ev.p;
        let mut ce = self.chip_event(&ev, kind, ev.seq, &live);
        let chips = live.chips();
        let (lkind, btype, object, bytes, hooked) = (live.kind, live.btype, live.object, live.bytes(), live.hooked());
        let st = self.proc_mut(p);
        // An allocation announced again (a resync of one already held) is already counted.
        if !st.live.insert(live) {
            return;
        }
        let big = st.live.capacity() >= PREFETCH_FROM_SLOTS;
        if lkind != LiveKind::Buffer {
            st.programs.entry(object).or_default().push(ev.seq);
        }
        self.prefetching |= big;
        let record = self.records;
        for k in 0..self.chip_sets.slice(&chips).len() {
            ce.chip = self.chip_sets.slice(&chips)[k];
            let chip = ce.chip;
            ce.peak = if lkind == LiveKind::Buffer {
                let [u, pu] = both(&mut self.usage, &mut self.proc_usage, &mut self.slot_cache, p, chip, btype);
                for u in [&mut *u, &mut *pu] {
                    u.allocs += 1;
                    u.live_count += 1;
                    u.hooked_allocs += hooked as u64;
                }
                pu.raise(bytes, &ce, record);
                u.raise(bytes, &ce, record)
            } else {
                self.cb_change(p, chip, object, bytes as i128, 1, &ce)
            };
            out(&ce);
        }
    }

    /// Releases every live CB/DFB of `program` (on `only` chips, if given).
    fn release_program(&mut self, ev: Ev, program: u64, only: Option<Chips>, out: &mut impl FnMut(&ChipEvent)) {
        let Some(st) = self.procs.get_mut(ev.p as usize) else { return };
        let Some(seqs) = st.programs.remove(&program) else { return };
        for &s in &seqs {
            self.release_whole(ev, s, only, ChipKind::CbFree, out);
        }
        // Those still live on other chips stay listed under the program.
        let st = &mut self.procs[ev.p as usize];
        let left: Vec<u64> = seqs.into_iter().filter(|s| st.live.contains(*s)).collect();
        if !left.is_empty() {
            st.programs.entry(program).or_default().extend(left);
        }
    }

    /// Releases allocation `seq` of process `ev.p` on `only` chips (all if None).
    /// Returns false if it was not live.
    fn release_whole(&mut self, ev: Ev, seq: u64, only: Option<Chips>, kind: ChipKind, out: &mut impl FnMut(&ChipEvent)) -> bool {
        let p = ev.p;
        let Some(st) = self.procs.get_mut(p as usize) else { return false };
        // `live` is what is released now; `whole`: nothing of it stays live.
        let (live, whole) = match only {
            None => match st.live.remove(seq) {
                Some(l) => (l, true),
                None => return false,
            },
            Some(sel) => {
                let Some(l) = st.live.get_mut(seq) else { return false };
                let (sel, chips) = (self.chip_sets.slice(&sel), l.chips());
                let on = self.chip_sets.slice(&chips);
                let n = on.iter().filter(|c| sel.contains(c)).count();
                if n == 0 {
                    return true;
                }
                if n == on.len() {
                    (st.live.remove(seq).expect("present"), true)
                } else {
                    let (released, remaining): (Vec<i32>, Vec<i32>) = on.iter().partition(|c| sel.contains(c));
                    let mut part = l.clone();
                    part.set_chips(self.chip_sets.of(&released));
                    l.set_chips(self.chip_sets.of(&remaining));
                    (part, false)
                }
            }
        };
        if whole && live.kind != LiveKind::Buffer {
            if let Some(v) = st.programs.get_mut(&live.object) {
                v.retain(|s| *s != seq);
                if v.is_empty() {
                    st.programs.remove(&live.object);
                }
            }
        }
        let kind = match (kind, live.kind) {
            (ChipKind::CbFree, LiveKind::Dfb) => ChipKind::DfbFree,
            (ChipKind::Free, LiveKind::Cb) => ChipKind::CbFree,
            (k, _) => k,
        };
        let mut ce = self.chip_event(&ev, kind, seq, &live);
        let bytes = live.bytes();
        let chips = live.chips();
        for k in 0..self.chip_sets.slice(&chips).len() {
            let chip = self.chip_sets.slice(&chips)[k];
            ce.chip = chip;
            if live.kind == LiveKind::Buffer {
                for u in both(&mut self.usage, &mut self.proc_usage, &mut self.slot_cache, p, chip, live.btype) {
                    u.frees += 1;
                    u.live_count = u.live_count.saturating_sub(1);
                    u.close_released += (kind == ChipKind::CloseRelease) as u64;
                    u.lower(bytes);
                }
            } else {
                self.cb_change(p, chip, live.object, -(bytes as i128), -1, &ce);
            }
            out(&ce);
        }
        true
    }

    /// Moves program `program`'s CB bytes on `chip` by `delta` and updates the
    /// chip's CB usage, which is the largest live program per process, summed
    /// over processes.
    /// Returns whether the chip's CB usage (over all processes) reached a new peak.
    fn cb_change(&mut self, p: u32, chip: i32, program: u64, delta: i128, count: i64, ce: &ChipEvent) -> bool {
        let record = self.records;
        let st = self.proc_mut(p);
        let old = st.cb_bytes.get(&(chip, program)).copied().unwrap_or(0);
        // i128: any u64 size and its negation fit; the result is clamped to u64.
        let new = (old as i128 + delta).clamp(0, u64::MAX as i128) as u64;
        let levels = st.cb_levels.entry(chip).or_default();
        // Per-process maximum before and after (the process's CB region).
        let before = levels.last_key_value().map_or(0, |(b, _)| *b);
        if new != old {
            if old > 0 {
                if let std::collections::btree_map::Entry::Occupied(mut e) = levels.entry(old) {
                    *e.get_mut() -= 1;
                    if *e.get() == 0 {
                        e.remove();
                    }
                }
            }
            // Zero-byte entries (programs with only global CBs left) never raise the max.
            if new > 0 {
                *levels.entry(new).or_default() += 1;
            }
        }
        let after = levels.last_key_value().map_or(0, |(b, _)| *b);
        if new == 0 {
            st.cb_bytes.remove(&(chip, program));
        } else {
            st.cb_bytes.insert((chip, program), new);
        }
        let [u, pu] = both(&mut self.usage, &mut self.proc_usage, &mut self.slot_cache, p, chip, BufferType::Cb);
        for u in [&mut *u, &mut *pu] {
            if count > 0 {
                u.allocs += 1;
                u.live_count += 1;
            } else {
                u.frees += 1;
                u.live_count = u.live_count.saturating_sub(1);
                u.close_released += (ce.kind == ChipKind::CloseRelease) as u64;
            }
        }
        if after >= before {
            pu.raise(after - before, ce, record);
            u.raise(after - before, ce, record)
        } else {
            pu.lower(before - after);
            u.lower(before - after);
            false
        }
    }

    /// How many records ahead of the one applied to call [`Model::prefetch`]:
    /// about a memory latency of work, so the loads land just in time.
    pub const PREFETCH_AHEAD: usize = 8;

    /// Applies `records` in order, prefetching `PREFETCH_AHEAD` ahead.
    pub fn apply_all(&mut self, records: &[Record], out: &mut impl FnMut(&ChipEvent)) {
        for (i, r) in records.iter().enumerate() {
            if let Some(a) = records.get(i + Self::PREFETCH_AHEAD) {
                self.prefetch(a);
            }
            self.apply(r, out);
        }
    }

    /// Starts loading what applying `r` will look up in its process's live
    /// table; called a few records ahead, it hides the cache miss a large,
    /// randomly released live set costs (see `LiveTable`). Changes nothing.
    #[inline]
    pub fn prefetch(&self, r: &Record) {
        if !self.prefetching {
            return;
        }
        let (p, seq) = match r {
            Record::Free { ev, alloc_seq } => (ev.p, *alloc_seq),
            Record::ResyncDrop { p, alloc_seq } => (*p, *alloc_seq),
            Record::Alloc(a) => (a.ev.p, a.ev.seq),
            Record::CbAlloc(c) | Record::DfbAlloc(c) => (c.ev.p, c.ev.seq),
            _ => return,
        };
        if let Some(st) = self.procs.get(p as usize) {
            st.live.prefetch(seq);
        }
    }

    /// Live allocation `l` of process `p` on `chip`, as the event that acquired it there.
    pub fn live_event(&self, p: u32, l: &Live, chip: i32) -> ChipEvent {
        let kind = match l.kind {
            LiveKind::Buffer => ChipKind::Alloc,
            LiveKind::Cb => ChipKind::CbAlloc,
            LiveKind::Dfb => ChipKind::DfbAlloc,
        };
        let mut ce = self.chip_event(&Ev { p, seq: l.seq, ts_ns: l.ts_ns, tid: l.tid }, kind, l.seq, l);
        ce.chip = chip;
        ce
    }

    /// Every live allocation, as (process, allocation).
    pub fn live(&self) -> impl Iterator<Item = (u32, &Live)> {
        self.procs.iter().enumerate().flat_map(|(p, s)| s.live.values().map(move |l| (p as u32, l)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A one-chip DRAM buffer `seq`, for tests of what holds `Live`s.
    pub(crate) fn live_with_seq(seq: u64) -> Live {
        Live {
            kind: LiveKind::Buffer,
            chip: 0,
            seq,
            record: seq,
            ts_ns: seq,
            tid: 1,
            btype: BufferType::Dram,
            object: seq,
            address: seq.wrapping_mul(4096),
            size: 4096,
            page_size: 2048,
            flags: 0,
        }
    }

    /// One cache line per entry of the live table.
    #[test]
    fn a_live_allocation_fits_a_cache_line() {
        assert_eq!(std::mem::size_of::<Option<Live>>(), 64);
    }

    /// Keys that share a cache entry evict each other; every answer is the key's own handles.
    #[test]
    fn slot_cache_answers_for_the_key_asked() {
        let (mut usage, mut proc_usage, mut cache) = (UsageMap::new(), UsageMap::new(), SlotCache::default());
        let types = [BufferType::Dram, BufferType::L1, BufferType::Cb];
        let keys: Vec<(u32, i32, BufferType)> =
            (0..3u32).flat_map(|p| (-3..40).flat_map(move |c| types.map(|t| (p, c, t)))).collect();
        assert!(keys.len() > 4 * SlotCache::LEN);
        for round in 0..3 {
            for (i, &(p, c, t)) in keys.iter().enumerate() {
                let (p, c, t) = if round == 1 { keys[keys.len() - 1 - i] } else { (p, c, t) };
                let got = cache.slots(&mut usage, &mut proc_usage, p, c, t);
                assert_eq!(got, [usage.slot((c, t)), proc_usage.slot((p, c, t))], "{p} {c} {t:?}");
            }
        }
        assert_eq!(usage.len(), 43 * 3);
        assert_eq!(proc_usage.len(), keys.len());
    }
}
