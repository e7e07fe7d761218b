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

impl Region {
    /// Reserves the next sequence number, or counts a drop if the ring is full.
    #[inline]
    pub fn reserve(&self) -> Result<Reservation<'_>, PushError> {
        let h = self.header();
        let n = self.ring_capacity();
        let mut pos = h.head.0.load(Ordering::Relaxed);
        loop {
            let tail = h.tail.0.load(Ordering::Acquire);
            if pos.wrapping_sub(tail) >= n {
                h.dropped.0.fetch_add(1, Ordering::Relaxed);
                return Err(PushError::Full);
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

