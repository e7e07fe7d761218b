//! The producer side of the ring: many threads, never blocking.
//!
//! A writer reserves a position with a CAS on `head` (only if the ring has
//! room: `head - tail < slots`), fills the slot, then publishes it by storing
//! `stamp = position + 1` with release ordering. The position *is* the event's
//! sequence number, so sequence order is the order in which reservations
//! happened — consistent with every thread's program order and with the
//! library's own ordering (a free is reserved before the memory is released,
//! an allocation after it was obtained). A full ring drops the event and
//! counts it in `dropped`; the live table keeps totals exact regardless.

use crate::event::EventBody;
use crate::region::Region;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering};

#[repr(C, align(64))]
pub struct Slot {
    /// `position + 1` once the slot holds the event at `position`; 0 = never written.
    pub(crate) stamp: AtomicU64,
    pub(crate) body: UnsafeCell<EventBody>,
}
const _: () = assert!(std::mem::size_of::<Slot>() == 64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// No room: the event was counted in `dropped`.
    Full,
}

/// A reserved but not yet published position.
pub struct Reservation<'a> {
    region: &'a Region,
    pub seq: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum Room {
    Free,
    Full,
    /// `tail` is past the `head` this thread read: other threads reserved and the
    /// collector consumed that many since (this thread was preempted between the
    /// two loads). Not a full ring: counting it as one dropped events that had room.
    StaleHead,
}

/// Whether position `pos` may be reserved with the collector at `tail`.
#[inline(always)]
fn room(pos: u64, tail: u64, slots: u64) -> Room {
    match pos.wrapping_sub(tail) {
        used if used < slots => Room::Free,
        // The true head is never behind the tail.
        _ if pos < tail => Room::StaleHead,
        _ => Room::Full,
    }
}

impl Region {
    /// Reserves the next sequence number, or counts a drop if the ring is full.
    #[inline]
    pub fn reserve(&self) -> Result<Reservation<'_>, PushError> {
        let h = self.header();
        let n = self.ring_capacity();
        let mut pos = h.head.0.load(Ordering::Relaxed);
        loop {
            let tail = h.tail.0.load(Ordering::Acquire);
            match room(pos, tail, n) {
                Room::Free => {}
                Room::Full => {
                    h.dropped.0.fetch_add(1, Ordering::Relaxed);
                    return Err(PushError::Full);
                }
                Room::StaleHead => {
                    pos = h.head.0.load(Ordering::Relaxed);
                    continue;
                }
            }
            match h.head.0.compare_exchange_weak(pos, pos + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(Reservation { region: self, seq: pos }),
                Err(current) => pos = current,
            }
        }
    }

    /// The sequence number the next reservation would get (for entries whose
    /// ring event was dropped: it orders them against recorded events).
    #[inline]
    pub fn next_seq(&self) -> u64 {
        self.header().head.0.load(Ordering::Acquire)
    }

    /// Reserve + publish in one step.
    #[inline]
    pub fn push(&self, body: &EventBody) -> Result<u64, PushError> {
        let r = self.reserve()?;
        let seq = r.seq;
        r.publish(body);
        Ok(seq)
    }
}

impl Reservation<'_> {
    #[inline]
    pub fn publish(self, body: &EventBody) {
        let slots = self.region.slots();
        let slot = &slots[(self.seq as usize) & (slots.len() - 1)];
        // Sole writer of this slot until the consumer moves `tail` past it.
        unsafe { std::ptr::write(slot.body.get(), *body) };
        slot.stamp.store(self.seq + 1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_tells_a_stale_head_from_a_full_ring() {
        assert_eq!(room(10, 0, 16), Room::Free);
        assert_eq!(room(16, 0, 16), Room::Full);
        assert_eq!(room(40, 30, 16), Room::Free);
        assert_eq!(room(46, 30, 16), Room::Full);
        // Read head 100, preempted; others pushed and the collector drained past it.
        assert_eq!(room(100, 150_000, 1 << 20), Room::StaleHead);
        assert_eq!(room(100, 101, 16), Room::StaleHead);
    }

    /// Producers that check for room before each push never see `Full`, however
    /// they are scheduled against each other and a draining consumer (a bench that
    /// asserts this found the stale-head drop).
    #[test]
    fn a_push_with_room_is_never_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let r = std::sync::Arc::new(Region::create(&dir.path().join("r"), 64, 16, std::process::id(), 1).unwrap());
        let threads = 4u64;
        let per = 400_000u64;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let consumer = {
            let (r, stop) = (r.clone(), stop.clone());
            std::thread::spawn(move || {
                let rd = crate::RingReader::new(&r);
                let mut n = 0u64;
                while !stop.load(Ordering::Acquire) || rd.tail() < rd.head() {
                    n += rd.drain(1 << 10, |_| {}).events;
                }
                n
            })
        };
        let producers: Vec<_> = (0..threads)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    let rd = crate::RingReader::new(&r);
                    for _ in 0..per {
                        while rd.head().wrapping_sub(rd.tail()) >= 64 - threads {
                            std::thread::yield_now();
                        }
                        r.reserve().expect("room was checked").publish(&EventBody::default());
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        stop.store(true, Ordering::Release);
        assert_eq!(consumer.join().unwrap(), threads * per);
        assert_eq!(crate::RingReader::new(&r).dropped(), 0);
    }
}
