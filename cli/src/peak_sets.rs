//! The live sets at the peaks, kept in the same pass that finds the peaks.
//!
//! A target is a chip × type (what was live at its peak) or a chip's L1
//! (L1 + L1_SMALL + CB, for its address map). For each, keep the record at
//! which it peaks so far and `since`: the allocations that were live there
//! and have been released since, one chip-level release each. At the end the
//! live set at the peak is what is still live and was acquired at or before
//! that record, plus `since`.
//!
//! `since` is emptied whenever the peak moves, and an allocation enters it at
//! most once (its release on that chip, if it was live at the peak), so it
//! never holds more than the live set at the peak: memory stays bounded by
//! the live sets, and the file is read once. (Until session 7 a second pass
//! re-read the file and snapshotted the live set at each peak: twice the CPU.)
//! A chip × type's set is shown ranked, its first `top` and the rest summed,
//! so its `since` keeps only its `top` largest whole ([`Largest`]); an L1
//! map needs every range.

use crate::largest::{Beyond, Largest};
use crate::summary::is_l1ish;
use rustc_hash::FxHashMap;
use ttalloc_ring::BufferType;
use ttalloc_trace::{ChipEvent, Model};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Target {
    Peak(i32, BufferType),
    L1(i32),
}

/// Live at a target's peak, released since.
enum Since {
    /// Every one (an L1 map's).
    All(Vec<ChipEvent>),
    /// The largest, the rest summed (a ranked chip × type's).
    Largest(Largest),
}

struct Track {
    /// The record at which the target peaks, so far.
    at: u64,
    since: Since,
}

/// A target's live set at its peak: whole, or (a chip × type's) the
/// allocations that can rank in its first `top`, and the others summed.
#[derive(Default)]
pub(crate) struct PeakSet {
    pub events: Vec<ChipEvent>,
    pub beyond: Beyond,
}

pub(crate) struct PeakSets {
    tracks: FxHashMap<Target, Track>,
    /// The latest `at` of any track: a release of an allocation acquired
    /// after it was live at no peak, and needs no lookup (most releases, once
    /// the peaks stop moving).
    latest: u64,
    /// Track chip × type peaks / chips' L1 peaks.
    peaks: bool,
    l1: bool,
    /// How many of a chip × type's set are listed.
    top: usize,
}

impl PeakSets {
    pub fn new(peaks: bool, l1: bool, top: usize) -> PeakSets {
        PeakSets { tracks: FxHashMap::default(), latest: 0, peaks, l1, top }
    }

    /// The targets an allocation of `btype` on `chip` belongs to.
    fn targets(&self, chip: i32, btype: BufferType) -> impl Iterator<Item = Target> {
        let peak = self.peaks.then_some(Target::Peak(chip, btype));
        let l1 = (self.l1 && is_l1ish(btype)).then_some(Target::L1(chip));
        peak.into_iter().chain(l1)
    }

    /// Whether an allocation acquired at record `record` was live at `t`'s peak (so far).
    fn live_at_peak(&self, t: &Target, record: u64) -> bool {
        self.tracks.get(t).is_some_and(|tr| record <= tr.at)
    }

    /// `e` (a release) took an allocation off its chip.
    #[inline]
    pub fn released(&mut self, e: &ChipEvent) {
        if e.alloc_record > self.latest {
            return;
        }
        // Not `targets()`: its chained options cost a release more than the lookups.
        if self.peaks {
            self.keep_if_live_at_peak(Target::Peak(e.chip, e.btype), e);
        }
        if self.l1 && is_l1ish(e.btype) {
            self.keep_if_live_at_peak(Target::L1(e.chip), e);
        }
    }

    #[inline]
    fn keep_if_live_at_peak(&mut self, t: Target, e: &ChipEvent) {
        match self.tracks.get_mut(&t) {
            Some(tr) if e.alloc_record <= tr.at => match &mut tr.since {
                Since::All(v) => v.push(*e),
                Since::Largest(l) => l.push(e),
            },
            _ => {}
        }
    }

    /// `t` peaks at record `ord` (called after all of that record's events).
    pub fn peaked(&mut self, t: Target, ord: u64) {
        let top = self.top;
        let tr = self.tracks.entry(t).or_insert_with(|| Track {
            at: 0,
            since: match t {
                Target::Peak(..) => Since::Largest(Largest::new(top)),
                Target::L1(_) => Since::All(Vec::new()),
            },
        });
        tr.at = ord;
        self.latest = self.latest.max(ord);
        match &mut tr.since {
            Since::All(v) => v.clear(),
            Since::Largest(l) => l.clear(),
        }
    }

    /// The live set of each target at its peak, one acquire event per
    /// allocation (unordered; of a chip × type's releases since its peak,
    /// those beyond its `top` largest only summed); `m` is the model at the
    /// end of the trace.
    pub fn finish(self, m: &Model) -> FxHashMap<Target, PeakSet> {
        let mut sets: FxHashMap<Target, PeakSet> = FxHashMap::default();
        for (p, l) in m.live() {
            for &chip in m.chips_of(l) {
                for t in self.targets(chip, l.btype) {
                    if self.live_at_peak(&t, l.record) {
                        sets.entry(t).or_default().events.push(m.live_event(p, l, chip));
                    }
                }
            }
        }
        for (t, tr) in self.tracks {
            let set = sets.entry(t).or_default();
            match tr.since {
                Since::All(v) => set.events.extend(v),
                Since::Largest(l) => {
                    let (largest, beyond) = l.into_parts();
                    set.events.extend(largest);
                    set.beyond = beyond;
                }
            }
        }
        sets
    }
}

#[cfg(test)]
mod tests {
    use crate::source::Source;
    use crate::summary::{is_l1ish, l1_map, live_on, summarize_with, Clock, L1Peak, Options};
    use ttalloc_ring::BufferType;
    use ttalloc_trace::*;

    /// Waves of allocations whose crests rise, fall back and rise again, on
    /// several chips and types (mesh DRAM, per-chip L1, CBs), with programs
    /// ending, resync drops and a device close of one chip between crests:
    /// every target peaks many times, and what was live at an early peak is
    /// released in every way before a later one.
    fn waves(path: &std::path::Path) {
        let header = TraceHeader { magic: TRACE_MAGIC.into(), format_version: TRACE_FORMAT_VERSION, tool_version: "t".into(), host: "h".into(), collector_pid: 1, started_real_ns: 1, command: vec![] };
        let mut w = TraceWriter::new(std::io::BufWriter::new(std::fs::File::create(path).unwrap()), &header).unwrap();
        w.write(&Record::Process(Box::new(ProcessInfo { p: 0, pid: 9, start_ticks: 0, exe: "w".into(), created_mono_ns: 0, created_real_ns: 0, shim_info: "{}".into(), attach: "from-start".into() }))).unwrap();
        w.write(&Record::Mesh(MeshInfo { p: 0, slot: 0, mesh: 1, chips: (0..4).collect() })).unwrap();
        let mut seq = 0u64;
        let mut x = 12345u64;
        let mut rnd = move || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            x >> 33
        };
        let mut live: Vec<u64> = Vec::new();
        for (wave, crest) in [40u64, 25, 60, 10, 80, 30, 81, 50, 90].into_iter().enumerate() {
            while (live.len() as u64) < crest {
                let ev = Ev { p: 0, seq, ts_ns: 1000 + seq * 10, tid: 1 + (seq % 3) as u32 };
                let r = match rnd() % 6 {
                    0 => Record::CbAlloc(CbRec { ev, chip: -2, program: 0x100 + rnd() % 3, address: 0x1000 * (1 + rnd() % 4), size: 1024 * (1 + rnd() % 8), flags: 0 }),
                    1 | 2 => Record::Alloc(AllocRec { ev, chip: (rnd() % 4) as i32, btype: BufferType::L1 as u8, flags: 0, object: seq, address: 0x10000 + 0x1000 * (seq % 64), size: 512 * (1 + rnd() % 16), page_size: 512 }),
                    3 => Record::Alloc(AllocRec { ev, chip: (rnd() % 4) as i32, btype: BufferType::L1Small as u8, flags: 0, object: seq, address: 0x8000 + 0x100 * (seq % 16), size: 256, page_size: 256 }),
                    _ => Record::Alloc(AllocRec { ev, chip: -2, btype: BufferType::Dram as u8, flags: 0, object: seq, address: 0x100000 * seq, size: 4096 * (1 + rnd() % 32), page_size: 2048 }),
                };
                w.write(&r).unwrap();
                live.push(seq);
                seq += 1;
            }
            while live.len() as u64 > crest / 3 {
                let i = (rnd() as usize) % live.len();
                let a = live.swap_remove(i);
                let ev = Ev { p: 0, seq, ts_ns: 1000 + seq * 10, tid: 1 };
                w.write(&match rnd() % 8 {
                    0 => Record::ResyncDrop { p: 0, alloc_seq: a },
                    1 => Record::ProgramEnd { ev, program: 0x100 + rnd() % 3 },
                    _ => Record::Free { ev, alloc_seq: a },
                })
                .unwrap();
                seq += 1;
            }
            if wave == 5 {
                // Chip 3 closes: its share of the mesh allocations goes, the rest stays.
                w.write(&Record::DeviceClose { ev: Ev { p: 0, seq, ts_ns: 1000 + seq * 10, tid: 1 }, chip: 3 }).unwrap();
                seq += 1;
            }
        }
        w.write(&Record::DeviceClose { ev: Ev { p: 0, seq, ts_ns: 1000 + seq * 10, tid: 1 }, chip: -2 }).unwrap();
        w.write(&Record::ProcessEnd(Box::new(ProcessEnd { p: 0, last_seq: seq, how: "exited".into(), dropped: 0, problems: vec![] }))).unwrap();
        w.write(&Record::Footer(Footer::default())).unwrap();
        w.flush().unwrap();
    }

    /// The one-pass live sets are the ones a brute-force replay sees when it
    /// stops at each peak's record (the model's `peak_record`, the L1 map's
    /// process and seq) and lists what is live there.
    #[test]
    fn the_live_sets_kept_in_one_pass_are_those_at_the_peak_records() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("waves.trace");
        waves(&path);
        let opts = Options { top: 4, peak_live: true, l1_maps: true, ..Options::default() };
        let s = summarize_with(&path, &opts).unwrap();
        assert_eq!(s.l1_maps.len(), 4);

        // The final model tells each target's peak record; replay again and stop there.
        let (mut src, mut m, mut clock) = (Source::open(&path, None).unwrap(), Model::new(), Clock::default());
        while let Some(r) = src.next_record().unwrap() {
            clock.see(&r);
            m.apply(&r, &mut |_| {});
        }
        let peaks: Vec<((i32, BufferType), u64)> = m.usage.iter().filter(|(_, u)| u.peak > 0).map(|(k, u)| (*k, u.peak_record)).collect();
        assert!(peaks.len() >= 12, "{peaks:?}");
        let (mut src, mut m) = (Source::open(&path, None).unwrap(), Model::new());
        let mut checked = (0, 0);
        while let Some(r) = src.next_record().unwrap() {
            m.apply(&r, &mut |_| {});
            for &((chip, bt), _) in peaks.iter().filter(|(_, at)| *at == src.ordinal) {
                let (items, rest) = live_on(&m, &clock, chip, bt, opts.top);
                let got = &s.chips[&chip][bt.name()];
                assert_eq!((&got.peak_live, got.peak_live_rest), (&items, rest), "chip {chip} {bt:?}");
                assert!(!items.is_empty());
                checked.0 += 1;
            }
            let Some(ev) = r.ev().copied() else { continue };
            for (&chip, map) in s.l1_maps.iter().filter(|(_, map)| (map.p, map.seq) == (ev.p, ev.seq)) {
                let set: Vec<ChipEvent> = m.live().filter(|(_, l)| is_l1ish(l.btype) && m.chips_of(l).contains(&chip)).map(|(p, l)| m.live_event(p, l, chip)).collect();
                let pk = L1Peak { total: map.peak, p: map.p, seq: map.seq, ts: map.ts_ns };
                assert_eq!(&l1_map(&m, &clock, &set, &pk, &opts), map, "chip {chip}");
                assert!(!map.ranges.is_empty());
                checked.1 += 1;
            }
        }
        assert_eq!(checked, (peaks.len(), 4));
    }
}
