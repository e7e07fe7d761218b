//! The live table: a lock-free open-addressing hash table in the region that
//! mirrors every live allocation of the process (buffers by `Buffer*`, circular
//! buffers aggregated per program × device).
//!
//! The ring alone cannot survive a collector that arrives after the ring
//! overflowed, or that restarts mid-run: the events it missed are gone. The
//! table is the state those events would have produced, so such a collector
//! takes a snapshot and reconciles (see the collector's `resync`), and its live
//! totals are exact again. Writers: only the thread that owns a key touches its
//! slot (a buffer is allocated and freed in order; a program's CBs are placed
//! by one thread), so each slot has a single writer at a time; readers use a
//! per-slot version (seqlock) to copy consistent entries.
//!
//! The table is a chain of generations, each twice the size of the one before
//! (`region::live_generations`): inserts go to the newest, and when one needed a
//! long probe the shim puts the next in use (reserving its space then, once), so
//! probes stay short with 10^6 live buffers in a table configured for 2^18.
//! Lookups try the newest generation first; an entry stays where it was put.

use crate::region::Region;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const EMPTY: u64 = 0;
const TOMBSTONE: u64 = 1;
/// Claimed by a writer that has not published the key yet.
const BUSY: u64 = 2;
/// Longest probe sequence; past it the table counts as full for that key.
/// Bounds the hook's cost when the table is (nearly) full: 4096 probes cost
/// 4.2 µs per event at 3·10^5 live buffers in 2^18 slots (docs/performance.md);
/// at a load factor of 0.9 an unsuccessful linear probe averages ≈ 50.
pub const MAX_PROBE: usize = 256;
/// An insert that probed more slots than this puts the next generation in use. A
/// linear probe averages 2.5 insert probes at a load factor of 0.5 and 8.5 at 0.75,
/// and rarely needs 48 below ≈ 0.7: the newest generation grows at about that load.
const GROW_AFTER_PROBES: usize = 48;

/// What a live entry says. Mirrors the fields of the event that created it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveEntry {
    /// Sequence number of the creating event (or of `next_seq()` when its ring event was dropped).
    pub seq: u64,
    /// Sequence number of the latest event folded into this entry (CB aggregates).
    pub seq_last: u64,
    pub object: u64,
    pub address: u64,
    pub size: u64,
    pub chip: i32,
    pub kind: u8,
    pub btype: u8,
    pub flags: u16,
}

impl LiveEntry {
    /// The entry an event with sequence number `seq` creates.
    pub fn from_event(seq: u64, b: &crate::event::EventBody) -> LiveEntry {
        LiveEntry {
            seq,
            seq_last: seq,
            object: b.object,
            address: b.address,
            size: b.size,
            chip: b.chip,
            kind: b.kind,
            btype: b.btype,
            flags: b.flags,
        }
    }
}

#[repr(C, align(64))]
pub struct LiveSlot {
    key: AtomicU64,
    version: AtomicU32,
    _pad: u32,
    entry: UnsafeCell<LiveEntry>,
}
const _: () = assert!(std::mem::size_of::<LiveSlot>() == 64);

/// Key of a circular-buffer aggregate: program × device, with the top bit set
/// (user-space pointers never have it), so it cannot equal a `Buffer*` key.
pub fn cb_key(program: u64, device: u64) -> u64 {
    let mixed = (program ^ device.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 1) | (1 << 63)
}

/// The live-table key of one program's dataflow buffers on one device
/// (a program may hold CBs and DFBs on different cores of one device).
#[inline]
pub fn dfb_key(program: u64, device: u64) -> u64 {
    cb_key(program, !device)
}

#[inline]
fn is_real(key: u64) -> bool {
    key > BUSY
}

#[inline]
fn home(slots: &[LiveSlot], key: u64) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17) as usize & (slots.len() - 1)
}

/// Claims the first free slot of `key`'s probe sequence in `slots`. Returns how many
/// slots it probed, `None` if none was free within `MAX_PROBE`.
#[inline]
fn insert_in(slots: &[LiveSlot], key: u64, entry: &LiveEntry) -> Option<usize> {
    let mask = slots.len() - 1;
    let home = home(slots, key);
    for i in 0..MAX_PROBE.min(slots.len()) {
        let slot = &slots[(home + i) & mask];
        let cur = slot.key.load(Ordering::Relaxed);
        if (cur == EMPTY || cur == TOMBSTONE)
            && slot.key.compare_exchange(cur, BUSY, Ordering::Acquire, Ordering::Relaxed).is_ok()
        {
            write_entry(slot, entry);
            slot.key.store(key, Ordering::Release);
            return Some(i + 1);
        }
    }
    None
}

#[inline]
fn find_in(slots: &[LiveSlot], key: u64, object: u64) -> Option<&LiveSlot> {
    let mask = slots.len() - 1;
    let home = home(slots, key);
    for i in 0..MAX_PROBE.min(slots.len()) {
        let slot = &slots[(home + i) & mask];
        match slot.key.load(Ordering::Acquire) {
            EMPTY => return None,
            k if k == key && unsafe { (*slot.entry.get()).object } == object => return Some(slot),
            _ => {}
        }
    }
    None
}

impl Region {
    /// Adds an entry for a key that is not live. False if the table is full.
    ///
    /// Entries go into the newest generation. When an insert there needed more than
    /// `GROW_AFTER_PROBES` probes (or found no slot), the next, twice larger generation is
    /// put in use, so probes stay short however many buffers are live; older entries stay
    /// where they are until freed.
    #[inline]
    pub fn live_insert(&self, key: u64, entry: &LiveEntry) -> bool {
        if !is_real(key) {
            return false;
        }
        // The common case, one generation, inline; the rest out of line.
        if self.live_gens() == 1 && self.insert_newest(1, self.live_generation0(), key, entry) {
            return true;
        }
        self.live_insert_grown(key, entry)
    }

    /// Inserts into `newest`, generation `gens - 1`; after a long probe puts the next
    /// generation in use. False if `newest` had no free slot within `MAX_PROBE`.
    #[inline(always)]
    fn insert_newest(&self, gens: usize, newest: &[LiveSlot], key: u64, entry: &LiveEntry) -> bool {
        let Some(probes) = insert_in(newest, key, entry) else { return false };
        if probes > GROW_AFTER_PROBES {
            self.grow_live(gens, false);
        }
        true
    }

    #[inline(never)]
    fn live_insert_grown(&self, key: u64, entry: &LiveEntry) -> bool {
        loop {
            let gens = self.live_gens();
            if self.insert_newest(gens, self.live_generation(gens - 1), key, entry) {
                return true;
            }
            if !self.grow_live(gens, true) {
                // No larger generation (the last is in use, or its space could not be
                // reserved): slots freed in older generations still take entries, so the
                // table refuses only when every generation is full.
                return (0..gens - 1).rev().any(|g| insert_in(self.live_generation(g), key, entry).is_some());
            }
        }
    }

    /// The slot of `key` (created with `object`): newest generation first, where recent
    /// (and so most short-lived) buffers are.
    #[inline]
    fn live_find(&self, key: u64, object: u64) -> Option<&LiveSlot> {
        match self.live_gens() {
            1 => find_in(self.live_generation0(), key, object),
            gens => self.live_find_grown(gens, key, object),
        }
    }

    #[inline(never)]
    fn live_find_grown(&self, gens: usize, key: u64, object: u64) -> Option<&LiveSlot> {
        (0..gens).rev().find_map(|g| find_in(self.live_generation(g), key, object))
    }

    /// Removes and returns the entry of `key` (whose creator recorded `object`).
    /// Inlined: the shim's free path only asks whether there was one.
    #[inline]
    pub fn live_remove(&self, key: u64, object: u64) -> Option<LiveEntry> {
        let slot = self.live_find(key, object)?;
        let entry = unsafe { *slot.entry.get() };
        slot.key.store(TOMBSTONE, Ordering::Release);
        Some(entry)
    }

    /// Applies `f` to the entry of `key` in place (single writer per key).
    pub fn live_update(&self, key: u64, object: u64, f: impl FnOnce(&mut LiveEntry)) -> bool {
        let Some(slot) = self.live_find(key, object) else { return false };
        let mut e = unsafe { *slot.entry.get() };
        f(&mut e);
        write_entry(slot, &e);
        true
    }

    /// Every generation in use, oldest first.
    fn live_all(&self) -> impl Iterator<Item = &[LiveSlot]> {
        (0..self.live_gens()).map(|g| self.live_generation(g))
    }

    /// Removes every entry for which `pred` holds (device close: rare, a full scan).
    pub fn live_remove_where(&self, mut pred: impl FnMut(&LiveEntry) -> bool) -> usize {
        let mut n = 0;
        for slot in self.live_all().flatten() {
            let k = slot.key.load(Ordering::Acquire);
            if is_real(k) && pred(unsafe { &*slot.entry.get() }) {
                if slot.key.compare_exchange(k, TOMBSTONE, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                    n += 1;
                }
            }
        }
        n
    }

    /// A consistent copy of every live entry (each entry individually consistent;
    /// the set as a whole is reconciled against the ring by the collector).
    pub fn live_snapshot(&self) -> Vec<(u64, LiveEntry)> {
        let mut out = Vec::new();
        for slot in self.live_all().flatten() {
            for _attempt in 0..64 {
                let v1 = slot.version.load(Ordering::Acquire);
                if v1 & 1 == 1 {
                    std::hint::spin_loop();
                    continue;
                }
                let k = slot.key.load(Ordering::Acquire);
                let e = unsafe { std::ptr::read_volatile(slot.entry.get()) };
                std::sync::atomic::fence(Ordering::Acquire);
                if slot.version.load(Ordering::Relaxed) == v1 {
                    if is_real(k) {
                        out.push((k, e));
                    }
                    break;
                }
            }
        }
        out
    }
}

fn write_entry(slot: &LiveSlot, e: &LiveEntry) {
    let v = slot.version.load(Ordering::Relaxed);
    slot.version.store(v.wrapping_add(1), Ordering::Relaxed);
    std::sync::atomic::fence(Ordering::Release);
    unsafe { std::ptr::write_volatile(slot.entry.get(), *e) };
    slot.version.store(v.wrapping_add(2), Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn region(live: u64) -> (tempfile::TempDir, Region) {
        let dir = tempfile::tempdir().unwrap();
        let r = Region::create(&dir.path().join("r"), 16, live, std::process::id(), 1).unwrap();
        (dir, r)
    }

    fn entry(object: u64, size: u64) -> LiveEntry {
        LiveEntry { object, size, seq: object, ..Default::default() }
    }

    #[test]
    fn insert_remove_snapshot() {
        let (_d, r) = region(1024);
        for p in (0x1000..0x1000 + 100 * 64).step_by(64) {
            assert!(r.live_insert(p, &entry(p, p / 64)));
        }
        for p in (0x1000..0x1000 + 50 * 64).step_by(64) {
            assert_eq!(r.live_remove(p, p).unwrap().size, p / 64);
        }
        assert!(r.live_remove(0x1000, 0x1000).is_none());
        let snap: HashMap<u64, LiveEntry> = r.live_snapshot().into_iter().collect();
        assert_eq!(snap.len(), 50);
        assert!(snap.values().all(|e| e.object >= 0x1000 + 50 * 64));
    }

    #[test]
    fn full_table_refuses_and_tombstones_are_reused() {
        let (_d, r) = region(16);
        // Only the creator grows the table; a collector's view of it cannot.
        let view = Region::open(r.path()).unwrap();
        for p in 1..=16u64 {
            assert!(view.live_insert(p * 4096, &entry(p * 4096, 1)));
        }
        assert!(!view.live_insert(17 * 4096, &entry(17 * 4096, 1)));
        assert!(view.live_remove(3 * 4096, 3 * 4096).is_some());
        assert!(view.live_insert(17 * 4096, &entry(17 * 4096, 1)));
        assert_eq!(r.live_gens(), 1);
    }

    /// A table configured for 16 entries holds thousands: each generation doubles, every
    /// entry stays findable in whichever generation it went to, and a collector's mapping
    /// of the file sees them all.
    #[test]
    fn generations_grow_past_the_configured_size() {
        let (_d, r) = region(16);
        let keys: Vec<u64> = (1..=2000u64).map(|i| i * 4096 + 64).collect();
        for k in &keys {
            assert!(r.live_insert(*k, &entry(*k, *k / 64)), "{k:#x} in {} generations", r.live_gens());
        }
        assert!(r.live_gens() >= 7, "2000 entries need generations up to 1024 slots, got {}", r.live_gens());
        let view = Region::open(r.path()).unwrap();
        assert_eq!(view.live_snapshot().len(), keys.len());
        // Removal finds entries in old and new generations alike.
        for k in keys.iter().step_by(2) {
            assert_eq!(r.live_remove(*k, *k).map(|e| e.size), Some(*k / 64));
        }
        assert!(r.live_update(keys[1], keys[1], |e| e.size = 7));
        let snap: HashMap<u64, LiveEntry> = view.live_snapshot().into_iter().collect();
        assert_eq!(snap.len(), keys.len() / 2);
        assert_eq!(snap[&keys[1]].size, 7);
        assert_eq!(r.live_remove_where(|e| e.size == 7), 1);
        assert_eq!(view.live_snapshot().len(), keys.len() / 2 - 1);
    }

    /// When every generation is full, inserts refuse (counted by the shim) instead of
    /// probing forever. Before that, once the last generation is full, slots left or
    /// freed in older generations take entries, so nearly the whole capacity is usable.
    #[test]
    fn the_last_generation_full_refuses() {
        let (_d, r) = region(16);
        let max = crate::region::live_generations(16) as usize;
        let capacity = 16 * ((1 << max) - 1);
        let mut n = 0u64;
        while r.live_insert((n + 1) * 4096, &entry((n + 1) * 4096, 1)) {
            n += 1;
            assert!(n as usize <= capacity);
        }
        assert_eq!(r.live_gens(), max);
        assert!(n as usize * 100 >= capacity * 98, "{n} of {capacity} slots used before refusing");
        // A slot freed in the oldest generation takes the next entry.
        assert!(r.live_remove(4096, 4096).is_some());
        assert!(r.live_insert(1 << 40, &entry(1 << 40, 1)));
        assert_eq!(r.live_remove(1 << 40, 1 << 40).map(|e| e.size), Some(1));
    }

    #[test]
    fn cb_aggregate_updates_in_place() {
        let (_d, r) = region(64);
        let k = cb_key(0x5000, 0x7000);
        assert!(r.live_insert(k, &entry(0x5000, 100)));
        assert!(r.live_update(k, 0x5000, |e| e.size += 50));
        assert_eq!(r.live_remove(k, 0x5000).unwrap().size, 150);
    }

    #[test]
    fn remove_where_scans() {
        let (_d, r) = region(64);
        for p in 1..=10u64 {
            let mut e = entry(p * 64, 1);
            e.chip = (p % 2) as i32;
            r.live_insert(p * 64, &e);
        }
        assert_eq!(r.live_remove_where(|e| e.chip == 1), 5);
        assert_eq!(r.live_snapshot().len(), 5);
    }

    #[test]
    fn concurrent_churn_keeps_exact_set() {
        churn_keeps_exact_set(1 << 12);
    }

    /// The same churn while the table grows under the four threads.
    #[test]
    fn concurrent_churn_across_growth_keeps_exact_set() {
        churn_keeps_exact_set(16);
    }

    fn churn_keeps_exact_set(live: u64) {
        let (_d, r) = region(live);
        let r = std::sync::Arc::new(r);
        let hs: Vec<_> = (0..4u64)
            .map(|t| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        let k = ((t + 1) << 40) | ((i % 200) << 6);
                        if i % 200 < 100 || i >= 19_800 {
                            // keep the last 200 of each thread alive
                            let _ = r.live_remove(k, k);
                            assert!(r.live_insert(k, &entry(k, i)));
                        } else {
                            let _ = r.live_remove(k, k);
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        // Each thread ends with keys (i % 200) live for i in 19_800..20_000 → 200 keys.
        assert_eq!(r.live_snapshot().len(), 4 * 200);
    }
}
