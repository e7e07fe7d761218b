//! A process's live allocations by allocation seq: an open-addressing table
//! that can be asked, a few records ahead, to bring a seq's slot into cache.
//!
//! With 10^5 allocations live and released in random order, nearly every
//! release missed the cache on its hash-map entry (and again on its key's
//! control bytes): the replay ran at half the speed of a small live set on
//! the same instructions. `std`'s map cannot be prefetched without probing
//! it, and a probe stalls on the miss it was meant to hide; here the slot is
//! a multiply away, so [`LiveTable::prefetch`] issues the loads early and
//! the release finds them in cache.
//!
//! Layout: linear probing over keys alone (8 per cache line, so a probe run
//! stays short), the allocations in a parallel array of 64-byte lines, one
//! each, read only on a hit: two lines per record to prefetch. Deletion
//! shifts the rest of the run back, so there are no tombstones. Both arrays
//! are on huge pages once they reach 2 MiB (`HugeArray`): a random release
//! would otherwise miss the TLB as well.

use crate::huge::HugeArray;
use crate::model::Live;

#[derive(Clone, Debug, Default)]
pub struct LiveTable {
    /// `seq + 1` of the allocation in each slot; 0: empty.
    keys: HugeArray<u64>,
    /// `Some` exactly where `keys` is non-zero.
    vals: HugeArray<Slot>,
    len: usize,
    /// 64 − log2(capacity): Fibonacci hashing keeps the top bits.
    shift: u32,
    /// The allocation with seq `u64::MAX`, whose key would read as empty.
    top: Option<Box<Live>>,
}

/// An entry on a cache line of its own (a `Live` is 64 bytes).
#[derive(Clone, Debug, Default)]
#[repr(align(64))]
struct Slot(Option<Live>);

/// Fibonacci hashing: consecutive seqs land far apart, so runs stay short.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl LiveTable {
    #[inline]
    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(GOLDEN) >> self.shift) as usize
    }

    #[inline]
    fn mask(&self) -> usize {
        self.keys.len().wrapping_sub(1)
    }

    /// Walks `key`'s run: `Ok(slot)` holding it, or `Err(slot)`, the empty
    /// one that ends the run (where it would go). The table must have slots.
    #[inline]
    fn probe(&self, key: u64) -> Result<usize, usize> {
        let mut i = self.home(key);
        loop {
            match self.keys[i] {
                k if k == key => return Ok(i),
                0 => return Err(i),
                _ => i = (i + 1) & self.mask(),
            }
        }
    }

    /// The slot holding `seq`, if it is live (not for seq `u64::MAX`).
    #[inline]
    fn find(&self, seq: u64) -> Option<usize> {
        let key = seq.wrapping_add(1);
        if self.keys.is_empty() || key == 0 {
            return None;
        }
        self.probe(key).ok()
    }

    /// Adds `live` under its seq; false (and `live` dropped) if that seq is already live.
    #[inline]
    pub fn insert(&mut self, live: Live) -> bool {
        if live.seq == u64::MAX {
            if self.top.is_some() {
                return false;
            }
            self.top = Some(Box::new(live));
            return true;
        }
        // At most 3/4 full: a miss walks ≈ 8 keys, one or two cache lines.
        if (self.len + 1) * 4 > self.keys.len() * 3 {
            self.grow();
        }
        let key = live.seq + 1;
        let Err(i) = self.probe(key) else { return false };
        self.keys[i] = key;
        self.vals[i] = Slot(Some(live));
        self.len += 1;
        true
    }

    fn grow(&mut self) {
        let cap = (self.keys.len() * 2).max(16);
        let keys = std::mem::replace(&mut self.keys, HugeArray::from_fn(cap, |_| 0));
        let mut vals = std::mem::replace(&mut self.vals, HugeArray::from_fn(cap, |_| Slot(None)));
        self.shift = 64 - cap.trailing_zeros();
        for (&key, val) in keys.iter().zip(vals.iter_mut()).filter(|(key, _)| **key != 0) {
            // Keys are distinct: each lands on the empty slot ending its run.
            let (Ok(i) | Err(i)) = self.probe(key);
            self.keys[i] = key;
            self.vals[i] = Slot(val.0.take());
        }
    }

    #[inline]
    pub fn remove(&mut self, seq: u64) -> Option<Live> {
        if seq == u64::MAX {
            return self.top.take().map(|b| *b);
        }
        let mut hole = self.find(seq)?;
        let out = self.vals[hole].0.take();
        self.keys[hole] = 0;
        self.len -= 1;
        // Pull back each later entry of the run that may sit at the hole
        // (its home is not after the hole), so every probe still finds it.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let key = self.keys[j];
            if key == 0 {
                return out;
            }
            let from_home = j.wrapping_sub(self.home(key)) & mask;
            if from_home >= (j.wrapping_sub(hole) & mask) {
                self.keys[hole] = key;
                self.keys[j] = 0;
                self.vals[hole] = Slot(self.vals[j].0.take());
                hole = j;
            }
        }
    }

    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Live> {
        if seq == u64::MAX {
            return self.top.as_deref_mut();
        }
        let i = self.find(seq)?;
        self.vals[i].0.as_mut()
    }

    pub fn contains(&self, seq: u64) -> bool {
        if seq == u64::MAX {
            return self.top.is_some();
        }
        self.find(seq).is_some()
    }

    /// Slots (kept at most 3/4 full).
    pub fn capacity(&self) -> usize {
        self.keys.len()
    }

    pub fn len(&self) -> usize {
        self.len + self.top.is_some() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live allocations, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &Live> {
        self.vals.iter().filter_map(|s| s.0.as_ref()).chain(self.top.as_deref())
    }

    /// Starts loading the cache lines `seq`'s slot (or its insertion point)
    /// most likely sits in: its key's and its entry's. A hint only: nothing
    /// is read or changed.
    #[inline]
    pub fn prefetch(&self, seq: u64) {
        if self.keys.is_empty() {
            return;
        }
        // In bounds (`home` < capacity); pointer arithmetic skips the bounds checks.
        let i = self.home(seq.wrapping_add(1));
        prefetch_line(self.keys.as_ptr().wrapping_add(i).cast());
        prefetch_line(self.vals.as_ptr().wrapping_add(i).cast());
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

    /// Against a BTreeMap through growth, re-inserts, removes of present and
    /// absent seqs (runs shifted back over the holes) and seq `u64::MAX`:
    /// the same contents after every step, and every live seq found.
    #[test]
    fn holds_what_a_map_would() {
        let (mut table, mut map) = (LiveTable::default(), BTreeMap::new());
        let mut x = 7u64;
        for step in 0..60_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            // Few distinct seqs (long runs, many shifts), plus the edge seqs.
            let seq = match (x >> 40) % 50 {
                0 => u64::MAX,
                1 => 0,
                2 => u64::MAX - 1,
                _ => (x >> 33) % if step < 30_000 { 3000 } else { 200 },
            };
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
    }
}
