//! The consumer side of the ring: one collector drains published slots in
//! sequence order and advances `tail`, which frees them for producers.

use crate::event::{EventBody, RawEvent};
use crate::region::Region;
use std::sync::atomic::Ordering;

/// What one drain call found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    pub events: u64,
    /// A reserved slot was not yet published (a writer is mid-event, or died).
    pub blocked_at: Option<u64>,
}

pub struct RingReader<'a> {
    region: &'a Region,
}

impl<'a> RingReader<'a> {
    pub fn new(region: &'a Region) -> Self {
        RingReader { region }
    }

    pub fn tail(&self) -> u64 {
        self.region.header().tail.0.load(Ordering::Acquire)
    }

    pub fn head(&self) -> u64 {
        self.region.header().head.0.load(Ordering::Acquire)
    }

    pub fn dropped(&self) -> u64 {
        self.region.header().dropped.0.load(Ordering::Acquire)
    }

    /// Hands up to `max` published events, in sequence order, to `f`, then
    /// releases their slots.
    pub fn drain(&self, max: u64, mut f: impl FnMut(RawEvent)) -> Drained {
        let h = self.region.header();
        let slots = self.region.slots();
        let mask = slots.len() as u64 - 1;
        let start = h.tail.0.load(Ordering::Acquire);
        let head = h.head.0.load(Ordering::Acquire);
        // A hostile or corrupt header could put head anywhere: never read more than one lap.
        let end = head.min(start.saturating_add(max)).min(start.saturating_add(slots.len() as u64));
        let mut pos = start;
        let mut out = Drained::default();
        while pos < end {
            let slot = &slots[(pos & mask) as usize];
            if slot.stamp.load(Ordering::Acquire) != pos + 1 {
                out.blocked_at = Some(pos);
                break;
            }
            let body: EventBody = unsafe { std::ptr::read_volatile(slot.body.get()) };
            f(RawEvent { seq: pos, body });
            pos += 1;
        }
        out.events = pos - start;
        if pos != start {
            h.tail.0.store(pos, Ordering::Release);
        }
        out
    }

    /// The end of the contiguous run of published slots from `tail`: every
    /// event below it was published (and so had updated the live table) by now.
    pub fn published_prefix(&self) -> u64 {
        let h = self.region.header();
        let slots = self.region.slots();
        let mask = slots.len() as u64 - 1;
        let (mut pos, head) = (h.tail.0.load(Ordering::Acquire), h.head.0.load(Ordering::Acquire));
        let end = head.min(pos.saturating_add(slots.len() as u64));
        while pos < end && slots[(pos & mask) as usize].stamp.load(Ordering::Acquire) == pos + 1 {
            pos += 1;
        }
        pos
    }

    /// Gives up on a reserved slot whose writer can never publish it (its
    /// process died mid-event). Returns true if `seq` was skipped.
    pub fn skip_unpublished(&self, seq: u64) -> bool {
        let h = self.region.header();
        if h.tail.0.load(Ordering::Acquire) != seq || seq >= h.head.0.load(Ordering::Acquire) {
            return false;
        }
        h.tail.0.store(seq + 1, Ordering::Release);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Kind;
    use std::sync::Arc;

    fn region(ring: u64) -> (tempfile::TempDir, Region) {
        let dir = tempfile::tempdir().unwrap();
        let r = Region::create(&dir.path().join("r"), ring, 64, std::process::id(), 1).unwrap();
        (dir, r)
    }

    fn ev(i: u64) -> EventBody {
        EventBody { kind: Kind::Alloc as u8, object: i, size: i * 2, ..Default::default() }
    }

    #[test]
    fn single_thread_round_trip_in_order() {
        let (_d, r) = region(16);
        for i in 0..10 {
            assert_eq!(r.push(&ev(i)).unwrap(), i);
        }
        let mut got = vec![];
        let d = RingReader::new(&r).drain(100, |e| got.push(e));
        assert_eq!(d.events, 10);
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
        assert!(got.iter().all(|e| e.body.size == e.body.object * 2));
    }

    #[test]
    fn full_ring_drops_and_counts_without_blocking() {
        let (_d, r) = region(16);
        for i in 0..16 {
            r.push(&ev(i)).unwrap();
        }
        assert_eq!(r.push(&ev(99)), Err(crate::PushError::Full));
        assert_eq!(RingReader::new(&r).dropped(), 1);
        let reader = RingReader::new(&r);
        assert_eq!(reader.drain(4, |_| {}).events, 4);
        // Room again, and the sequence continues densely after the drop.
        assert_eq!(r.push(&ev(100)).unwrap(), 16);
    }

    #[test]
    fn unpublished_slot_blocks_until_published() {
        let (_d, r) = region(16);
        r.push(&ev(0)).unwrap();
        let res = r.reserve().unwrap();
        r.push(&ev(2)).unwrap();
        let reader = RingReader::new(&r);
        let d = reader.drain(100, |_| {});
        assert_eq!((d.events, d.blocked_at), (1, Some(1)));
        res.publish(&ev(1));
        assert_eq!(reader.drain(100, |_| {}).events, 2);
    }

    #[test]
    fn concurrent_producers_lose_nothing_while_drained() {
        let (_d, r) = region(1024);
        let r = Arc::new(r);
        let threads = 4u64;
        let per = 50_000u64;
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for i in 0..per {
                        let body = ev(t << 32 | i);
                        while r.push(&body).is_err() {
                            std::hint::spin_loop();
                        }
                    }
                })
            })
            .collect();
        let mut seen = vec![0u64; threads as usize];
        let mut last_seq = None;
        let mut total = 0;
        while total < threads * per {
            RingReader::new(&r).drain(4096, |e| {
                assert_eq!(last_seq.map_or(0, |s: u64| s + 1), e.seq);
                last_seq = Some(e.seq);
                let t = (e.body.object >> 32) as usize;
                // Each thread's events arrive in its program order.
                assert_eq!(e.body.object & 0xffff_ffff, seen[t]);
                seen[t] += 1;
                total += 1;
            });
        }
        for h in hs {
            h.join().unwrap();
        }
        assert!(seen.iter().all(|&n| n == per));
    }
}
