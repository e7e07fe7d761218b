//! A process's live allocations by allocation seq: slot `seq mod capacity`,
//! so the one cache line a record needs can be fetched a few records ahead.
//!
//! With 10^5 allocations live and released in random order, nearly every
//! release misses the cache on its entry. Seqs are a process's event
//! numbers, dense and rising, so the live ones sit in a window of recent
//! seqs, and `seq mod capacity` is a slot no other live seq wants — except
//! the few allocations older than the window. A slot is one 64-byte line
//! holding its allocation (seq included): one line per record, no key
//! array and no probing. [`LiveTable::prefetch`] issues that line's load
//! early and the release finds it in cache.
//!
//! When a seq's slot is taken, the earlier of the two moves to `evicted`, a
//! hash map: long-lived allocations (weights, caches) end up there, where
//! they cost nothing until they are released. Lookups try the slot first
//! and the map only if the slot holds another seq.
//!
//! The slots are at most a quarter full, and on huge pages once they reach
//! 2 MiB (`HugeArray`): a random release would otherwise miss the TLB as
//! well.

use crate::huge::HugeArray;
use crate::model::Live;
use rustc_hash::FxHashMap;

#[derive(Clone, Debug, Default)]
pub struct LiveTable {
    /// Slot `seq & (len − 1)` holds allocation `seq`, unless a later seq took it.
    slots: HugeArray<Slot>,
    /// Allocations whose slot a later seq holds.
    evicted: FxHashMap<u64, Live>,
    /// No seq in `evicted` is larger (while it is non-empty): new seqs, the
    /// common insert, skip the map.
    evicted_max: u64,
    /// Allocations held, in slots and in `evicted`.
    len: usize,
}

/// An entry on a cache line of its own (a `Live` is 64 bytes).
#[derive(Clone, Debug, Default)]
#[repr(align(64))]
struct Slot(Option<Live>);

impl LiveTable {
    #[inline]
    fn slot_of(&self, seq: u64) -> usize {
        seq as usize & self.slots.len().wrapping_sub(1)
    }

    /// The slot holding `seq`, if its own slot does.
    #[inline]
    fn slot_holding(&self, seq: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let i = self.slot_of(seq);
        self.slots[i].0.as_ref().is_some_and(|held| held.seq == seq).then_some(i)
    }

    /// Could `seq` be in `evicted`?
    #[inline]
    fn maybe_evicted(&self, seq: u64) -> bool {
        !self.evicted.is_empty() && seq <= self.evicted_max
    }

    fn evict(&mut self, live: Live) {
        self.evicted_max = if self.evicted.is_empty() { live.seq } else { self.evicted_max.max(live.seq) };
        self.evicted.insert(live.seq, live);
    }

    /// Puts `live`, not held yet, in its slot; the earlier seq of a clash is evicted.
    #[inline]
    fn place(&mut self, live: Live) {
        let i = self.slot_of(live.seq);
        match &mut self.slots[i].0 {
            None => self.slots[i].0 = Some(live),
            Some(held) if held.seq < live.seq => {
                let earlier = std::mem::replace(held, live);
                self.evict(earlier);
            }
            Some(_) => self.evict(live),
        }
    }

    /// Adds `live` under its seq; false (and `live` dropped) if that seq is already live.
    #[inline]
    pub fn insert(&mut self, live: Live) -> bool {
        if self.contains(live.seq) {
            return false;
        }
        // At most a quarter full: a new seq's slot is then rarely still held
        // by the seq a capacity earlier. At half full, 7.7 % of the inserts of
        // the replay's random shape clashed, and it ran 1.10x slower.
        if (self.len + 1) * 4 > self.slots.len() {
            self.grow();
        }
        self.place(live);
        self.len += 1;
        true
    }

    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(16);
        let mut slots = std::mem::replace(&mut self.slots, HugeArray::from_fn(cap, |_| Slot(None)));
        let evicted = std::mem::take(&mut self.evicted);
        // Re-placed in any order, each clash still keeps the later seq.
        for live in slots.iter_mut().filter_map(|s| s.0.take()).chain(evicted.into_values()) {
            self.place(live);
        }
    }

    #[inline]
    pub fn remove(&mut self, seq: u64) -> Option<Live> {
        let out = match self.slot_holding(seq) {
            Some(i) => self.slots[i].0.take(),
            None if self.maybe_evicted(seq) => self.evicted.remove(&seq),
            None => None,
        };
        self.len -= out.is_some() as usize;
        out
    }

    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Live> {
        match self.slot_holding(seq) {
            Some(i) => self.slots[i].0.as_mut(),
            None if self.maybe_evicted(seq) => self.evicted.get_mut(&seq),
            None => None,
        }
    }

    #[inline]
    pub fn contains(&self, seq: u64) -> bool {
        self.slot_holding(seq).is_some() || (self.maybe_evicted(seq) && self.evicted.contains_key(&seq))
    }

    /// Slots (kept at most a quarter full).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The live allocations, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &Live> {
        self.slots.iter().filter_map(|s| s.0.as_ref()).chain(self.evicted.values())
    }

    /// Starts loading the cache line of `seq`'s slot. A hint only: nothing is
    /// read or changed.
    #[inline]
    pub fn prefetch(&self, seq: u64) {
        if self.slots.is_empty() {
            return;
        }
        // In bounds (`slot_of` < capacity); pointer arithmetic skips the bounds check.
        prefetch_line(self.slots.as_ptr().wrapping_add(self.slot_of(seq)).cast());
    }
}

#[inline(always)]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults and reads nothing the
    // program can observe, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::live_with_seq;
    use std::collections::BTreeMap;

    /// Drives `table` and a BTreeMap with the same inserts and removes of
    /// `seq_at(step, x)`: the same contents after every step, and every live
    /// seq found.
    fn against_a_map(steps: u64, seq_at: impl Fn(u64, u64) -> u64) -> LiveTable {
        let (mut table, mut map) = (LiveTable::default(), BTreeMap::new());
        let mut x = 7u64;
        for step in 0..steps {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let seq = seq_at(step, x);
            if (x >> 20) % 2 == 0 {
                assert_eq!(table.remove(seq).map(|l| l.seq), map.remove(&seq), "step {step}");
            } else {
                let fresh = !map.contains_key(&seq);
                assert_eq!(table.insert(live_with_seq(seq)), fresh, "step {step}");
                map.entry(seq).or_insert(seq);
            }
            table.prefetch(seq);
            assert_eq!(table.len(), map.len());
            assert_eq!(table.contains(seq), map.contains_key(&seq));
            if step % 997 == 0 {
                for &s in map.keys() {
                    assert_eq!(table.get_mut(s).map(|l| l.seq), Some(s), "step {step}: {s} lost");
                }
            }
        }
        let mut seen: Vec<u64> = table.values().map(|l| l.seq).collect();
        seen.sort_unstable();
        assert_eq!(seen, map.keys().copied().collect::<Vec<_>>());
        table
    }

    /// Through growth, re-inserts and removes of present and absent seqs:
    /// few distinct seqs, clashing ones, and the edge seqs.
    #[test]
    fn holds_what_a_map_would() {
        against_a_map(60_000, |step, x| match (x >> 40) % 50 {
            0 => u64::MAX,
            1 => 0,
            2 => u64::MAX - 1,
            _ => (x >> 33) % if step < 30_000 { 3000 } else { 200 },
        });
    }

    /// Seqs that all want slot 0 (multiples of 2^40): every clash goes through
    /// `evicted`, inserted earlier and later than the slot's holder.
    #[test]
    fn clashing_seqs_are_all_kept() {
        let table = against_a_map(20_000, |_, x| ((x >> 33) % 500) << 40);
        assert!(table.evicted.len() + 1 >= table.len(), "all but one of them clash");
    }

    /// The replay's shape: rising seqs, each released at random later, a
    /// few never. Old ones are evicted by the new seqs of their slot; the
    /// rest stay in their slots.
    #[test]
    fn rising_seqs_with_long_lived_ones() {
        let mut table = LiveTable::default();
        let mut live: Vec<u64> = Vec::new();
        let mut x = 11u64;
        for seq in 0..200_000u64 {
            assert!(table.insert(live_with_seq(seq)));
            live.push(seq);
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            // Keep seqs below 100 forever; release at random among the rest.
            if live.len() > 1000 {
                let i = 100 + (x >> 33) as usize % (live.len() - 100);
                let gone = live.swap_remove(i);
                assert_eq!(table.remove(gone).map(|l| l.seq), Some(gone));
                assert!(!table.contains(gone));
            }
        }
        assert_eq!(table.len(), live.len());
        for &s in &live {
            assert!(table.contains(s), "{s} lost");
        }
        assert!((1..100).all(|s| table.evicted.contains_key(&s)), "long-lived seqs moved out of the way");
        assert!(table.capacity() <= 8 * live.len());
    }
}
