//! The largest `n` of a stream of one chip's allocations, and the rest summed.
//!
//! A chip × type's live set at its peak is shown as its `top` largest
//! allocations and the rest as a count and a byte sum, so of the allocations
//! released since the peak only the largest `top` need to be kept whole.
//! Keeping every one of them copied each release's event (≈ 100 bytes), and
//! most such lists are emptied again when the peak moves: that copying was
//! a tenth of a random 10^7-record replay.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use ttalloc_trace::ChipEvent;

/// The order of a ranked live set: most bytes first, then the larger size,
/// then process and id (a total order on one chip's allocations).
pub(crate) fn largest_first(a: &ChipEvent, b: &ChipEvent) -> Ordering {
    b.bytes().cmp(&a.bytes()).then_with(|| b.size.cmp(&a.size)).then_with(|| a.p.cmp(&b.p)).then_with(|| a.id.cmp(&b.id))
}

/// Allocations beyond the first `n`: how many, and their bytes (u128: no
/// sum of u64 sizes overflows it, so saturating at the end is exact).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Beyond {
    pub count: u64,
    pub bytes: u128,
}

impl Beyond {
    pub fn add(&mut self, e: &ChipEvent) {
        self.count += 1;
        self.bytes += e.bytes() as u128;
    }
}

/// The greatest in heap order is the one ranked last: the heap's top is the
/// first to give way.
struct Ranked(ChipEvent);

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        largest_first(&self.0, &other.0)
    }
}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}

pub(crate) struct Largest {
    n: usize,
    kept: BinaryHeap<Ranked>,
    beyond: Beyond,
}

impl Largest {
    pub fn new(n: usize) -> Largest {
        Largest { n, kept: BinaryHeap::new(), beyond: Beyond::default() }
    }

    #[inline]
    pub fn push(&mut self, e: &ChipEvent) {
        if self.kept.len() < self.n {
            self.kept.push(Ranked(*e));
            return;
        }
        let out = match self.kept.peek_mut() {
            Some(mut last) if largest_first(e, &last.0) == Ordering::Less => std::mem::replace(&mut last.0, *e),
            _ => *e,
        };
        self.beyond.add(&out);
    }

    pub fn clear(&mut self) {
        self.kept.clear();
        self.beyond = Beyond::default();
    }

    /// The largest `n` (unordered), and the rest summed.
    pub fn into_parts(self) -> (Vec<ChipEvent>, Beyond) {
        (self.kept.into_iter().map(|r| r.0).collect(), self.beyond)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ttalloc_ring::BufferType;
    use ttalloc_trace::ChipKind;

    fn ev(p: u32, id: u64, size: u64, hooked: bool) -> ChipEvent {
        ChipEvent {
            p,
            pid: 0,
            seq: id,
            ts_ns: 0,
            tid: 0,
            kind: ChipKind::Alloc,
            chip: 0,
            btype: BufferType::Dram,
            address: 0,
            size,
            page_size: 0,
            object: 0,
            id,
            alloc_record: 0,
            alloc_ts_ns: 0,
            alloc_tid: 0,
            hooked,
            global: false,
            peak: false,
        }
    }

    proptest! {
        /// Against sorting the whole stream: the same first `n`, the same
        /// rest; sizes repeat (ties are broken by process and id) and a
        /// hooked allocation counts no bytes however large it is.
        #[test]
        fn keeps_what_sorting_everything_puts_first(
            stream in prop::collection::vec((0u32..3, 0u64..6, any::<bool>()), 0..200),
            n in 0usize..12,
        ) {
            let all: Vec<ChipEvent> = stream.iter().enumerate().map(|(i, &(p, s, h))| ev(p, i as u64, s * 1024, h)).collect();
            let mut l = Largest::new(n);
            for e in &all {
                l.push(e);
            }
            let (mut kept, beyond) = l.into_parts();
            kept.sort_by(largest_first);
            let mut sorted = all.clone();
            sorted.sort_by(largest_first);
            prop_assert_eq!(&kept[..], &sorted[..n.min(sorted.len())]);
            let rest = &sorted[n.min(sorted.len())..];
            prop_assert_eq!(beyond.count, rest.len() as u64);
            prop_assert_eq!(beyond.bytes, rest.iter().map(|e| e.bytes() as u128).sum::<u128>());
        }
    }

    #[test]
    fn clear_forgets_the_kept_and_the_rest() {
        let mut l = Largest::new(1);
        l.push(&ev(0, 1, 10, false));
        l.push(&ev(0, 2, 20, false));
        l.clear();
        l.push(&ev(0, 3, 5, false));
        let (kept, beyond) = l.into_parts();
        assert_eq!(kept.iter().map(|e| e.id).collect::<Vec<_>>(), vec![3]);
        assert_eq!(beyond, Beyond::default());
    }
}
