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

impl Region {
    #[inline]
    fn live_home(&self, key: u64) -> usize {
        let slots = self.live_slots();
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17) as usize & (slots.len() - 1)
    }

    /// Adds an entry for a key that is not live. False if the table is full.
    #[inline]
    pub fn live_insert(&self, key: u64, entry: &LiveEntry) -> bool {
        if !is_real(key) {
            return false;
        }
        let slots = self.live_slots();
        let mask = slots.len() - 1;
        let home = self.live_home(key);
        for i in 0..MAX_PROBE.min(slots.len()) {
            let slot = &slots[(home + i) & mask];
            let cur = slot.key.load(Ordering::Relaxed);
            if (cur == EMPTY || cur == TOMBSTONE)
                && slot.key.compare_exchange(cur, BUSY, Ordering::Acquire, Ordering::Relaxed).is_ok()
            {
                write_entry(slot, entry);
                slot.key.store(key, Ordering::Release);
                return true;
            }
        }
        false
    }

    #[inline]
    fn live_find(&self, key: u64, object: u64) -> Option<&LiveSlot> {
        let slots = self.live_slots();
        let mask = slots.len() - 1;
        let home = self.live_home(key);
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

    /// Removes every entry for which `pred` holds (device close: rare, a full scan).
    pub fn live_remove_where(&self, mut pred: impl FnMut(&LiveEntry) -> bool) -> usize {
        let mut n = 0;
        for slot in self.live_slots() {
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
        for slot in self.live_slots() {
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
        for p in 1..=16u64 {
            assert!(r.live_insert(p * 4096, &entry(p * 4096, 1)));
        }
        assert!(!r.live_insert(17 * 4096, &entry(17 * 4096, 1)));
        assert!(r.live_remove(3 * 4096, 3 * 4096).is_some());
        assert!(r.live_insert(17 * 4096, &entry(17 * 4096, 1)));
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
        let (_d, r) = region(1 << 12);
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
