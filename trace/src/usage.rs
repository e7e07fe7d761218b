//! Exact usage of one (chip, memory type) — or (process, chip, type) — and
//! the map that holds them.
//!
//! `UsageMap` reads like the `BTreeMap` it replaced (`get`, `[&key]`, sorted
//! `iter`/`range`, `&map` in `for`) but finds a key with one FxHash probe:
//! the model updates two of them per chip-level event, and the B-tree's
//! tuple comparisons were a third of the replay time.

use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::ops::{Index, RangeBounds};

use crate::model::ChipEvent;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub current: u64,
    pub peak: u64,
    pub peak_seq: u64,
    pub peak_ts_ns: u64,
    pub peak_p: u32,
    /// Records applied to the model when the peak was reached (the peak
    /// record's 1-based ordinal in the file, the header being record 1).
    pub peak_record: u64,
    pub allocs: u64,
    pub frees: u64,
    pub hooked_allocs: u64,
    pub close_released: u64,
    pub live_count: u64,
}

impl Usage {
    /// Adds `bytes`; true if that made a new peak.
    #[inline]
    pub(crate) fn raise(&mut self, bytes: u64, ev: &ChipEvent, record: u64) -> bool {
        // Hostile sizes saturate: a total at the top is absurd, but not a small lie.
        self.current = self.current.saturating_add(bytes);
        if self.current > self.peak {
            self.peak = self.current;
            self.peak_seq = ev.seq;
            self.peak_ts_ns = ev.ts_ns;
            self.peak_p = ev.p;
            self.peak_record = record;
            return true;
        }
        false
    }
    pub(crate) fn lower(&mut self, bytes: u64) {
        self.current = self.current.saturating_sub(bytes);
    }
}

/// Usage by key, in key order for reading, hashed for updating.
#[derive(Clone, Debug)]
pub struct UsageMap<K> {
    slot_of: FxHashMap<K, u32>,
    /// Keys in order (changes only when a key is first seen).
    order: BTreeMap<K, u32>,
    slots: Vec<Usage>,
}

impl<K> Default for UsageMap<K> {
    fn default() -> Self {
        UsageMap { slot_of: FxHashMap::default(), order: BTreeMap::new(), slots: Vec::new() }
    }
}

impl<K: Copy + Ord + Hash> UsageMap<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the usage of `key` is kept (created empty if new): a handle that
    /// stays valid for the map's life, so a release can skip the hash probe.
    #[inline]
    pub(crate) fn slot(&mut self, key: K) -> u32 {
        match self.slot_of.get(&key) {
            Some(&i) => i,
            None => {
                let i = self.slots.len() as u32;
                self.slots.push(Usage::default());
                self.slot_of.insert(key, i);
                self.order.insert(key, i);
                i
            }
        }
    }

    /// The usage at a handle from [`UsageMap::slot`].
    #[inline]
    pub(crate) fn at(&mut self, slot: u32) -> &mut Usage {
        &mut self.slots[slot as usize]
    }

    pub fn get(&self, key: &K) -> Option<&Usage> {
        self.slot_of.get(key).map(|&i| &self.slots[i as usize])
    }
    pub fn contains_key(&self, key: &K) -> bool {
        self.slot_of.contains_key(key)
    }
    pub fn len(&self) -> usize {
        self.slots.len()
    }
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
    /// In key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &Usage)> + '_ {
        self.order.iter().map(move |(k, &i)| (k, &self.slots[i as usize]))
    }
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + '_ {
        self.order.keys()
    }
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Usage> + '_ {
        self.order.values().map(move |&i| &self.slots[i as usize])
    }
    /// Keys within `range`, in order.
    pub fn range<R: RangeBounds<K>>(&self, range: R) -> impl DoubleEndedIterator<Item = (&K, &Usage)> + '_ {
        self.order.range(range).map(move |(k, &i)| (k, &self.slots[i as usize]))
    }
}

impl<K: Copy + Ord + Hash> Index<&K> for UsageMap<K> {
    type Output = Usage;
    fn index(&self, key: &K) -> &Usage {
        self.get(key).expect("no usage for this key")
    }
}

impl<'a, K: Copy + Ord + Hash> IntoIterator for &'a UsageMap<K> {
    type Item = (&'a K, &'a Usage);
    type IntoIter = Box<dyn DoubleEndedIterator<Item = (&'a K, &'a Usage)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<K: Copy + Ord + Hash> PartialEq for UsageMap<K> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}
