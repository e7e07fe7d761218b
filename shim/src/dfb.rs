//! Dataflow buffers (tt-metal 0.71+, used by 0.81's matmul/tilize programs).
//!
//! tt-metal reports none of them to its GraphTracker: `allocate_dataflow_buffers
//! (program, device)` places each DFB by calling the exported
//! `CircularBufferAllocator::mark_address(address, size, base)` once per core
//! range the DFB spans (its only caller on 0.71.2 and 0.81.1). So the shim
//! keeps, per thread, which placement is under way and the addresses already
//! recorded in it (one DFB over two core ranges is one L1 range, not two), and,
//! process-wide, which programs hold DFBs on which device, so that program
//! destruction can release them.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinct DFB addresses remembered per placement; beyond, DFBs are counted
/// as unattributed rather than risk counting one twice.
const SEEN: usize = 32;

#[derive(Clone, Copy)]
struct Placing {
    program: u64,
    device: u64,
    seen: [u64; SEEN],
    n: usize,
}

const IDLE: Placing = Placing { program: 0, device: 0, seen: [0; SEEN], n: 0 };

thread_local! {
    static PLACING: Cell<Placing> = const { Cell::new(IDLE) };
}

/// Marks the dynamic extent of one `allocate_dataflow_buffers` call.
pub struct Placement {
    outer: Placing,
}

impl Placement {
    pub fn enter(program: u64, device: u64) -> Self {
        let outer = PLACING.with(|p| p.replace(Placing { program, device, ..IDLE }));
        Placement { outer }
    }
}

impl Drop for Placement {
    fn drop(&mut self) {
        PLACING.with(|p| p.set(self.outer));
    }
}

/// What a `mark_address(address, …)` call means on this thread.
pub enum Mark {
    /// A DFB of `program` on `device`, not yet recorded in this placement.
    New { program: u64, device: u64 },
    /// Same address again (another core range of the same DFB).
    Repeat,
    /// No placement under way: not a DFB (on 0.71.2/0.81.1 never happens;
    /// on older builds the same function places CBs, reported elsewhere).
    Outside,
    /// Too many DFBs in one placement to remember.
    Unattributed,
}

pub fn mark(address: u64) -> Mark {
    PLACING.with(|cell| {
        let mut p = cell.get();
        if p.program == 0 {
            return Mark::Outside;
        }
        if p.seen[..p.n].contains(&address) {
            return Mark::Repeat;
        }
        if p.n == SEEN {
            return Mark::Unattributed;
        }
        p.seen[p.n] = address;
        p.n += 1;
        cell.set(p);
        Mark::New { program: p.program, device: p.device }
    })
}

/// Programs holding DFBs, with the device they were placed for: an
/// open-addressing set (program pointer → device), lock-free, fixed size.
const PROGRAMS: usize = 4096;
static PROGRAM_KEYS: [AtomicU64; PROGRAMS] = [const { AtomicU64::new(0) }; PROGRAMS];
static PROGRAM_DEVICES: [AtomicU64; PROGRAMS] = [const { AtomicU64::new(0) }; PROGRAMS];
/// Entries ever inserted and not removed; lets destruction skip the lookup.
static HELD: AtomicU64 = AtomicU64::new(0);
const TOMBSTONE: u64 = u64::MAX;

fn slot_of(program: u64) -> usize {
    (program.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize % PROGRAMS
}

/// Remembers that `program` holds DFBs on `device`; false if the set is full.
pub fn remember(program: u64, device: u64) -> bool {
    let start = slot_of(program);
    for i in 0..PROGRAMS {
        let s = (start + i) % PROGRAMS;
        let k = PROGRAM_KEYS[s].load(Ordering::Acquire);
        if k == program {
            return true;
        }
        if k == 0 || k == TOMBSTONE {
            if PROGRAM_KEYS[s].compare_exchange(k, program, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                PROGRAM_DEVICES[s].store(device, Ordering::Release);
                HELD.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            // Lost the slot to another thread: it may have been this program.
            if PROGRAM_KEYS[s].load(Ordering::Acquire) == program {
                return true;
            }
        }
    }
    false
}

/// Forgets `program`, returning the device its DFBs were placed for.
pub fn forget(program: u64) -> Option<u64> {
    if HELD.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let start = slot_of(program);
    for i in 0..PROGRAMS {
        let s = (start + i) % PROGRAMS;
        let k = PROGRAM_KEYS[s].load(Ordering::Acquire);
        if k == 0 {
            return None;
        }
        if k == program {
            let device = PROGRAM_DEVICES[s].load(Ordering::Acquire);
            if PROGRAM_KEYS[s].compare_exchange(k, TOMBSTONE, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                HELD.fetch_sub(1, Ordering::Relaxed);
                return Some(device);
            }
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_dfb_over_two_core_ranges_is_recorded_once() {
        assert!(matches!(mark(0x19000), Mark::Outside));
        {
            let _p = Placement::enter(0x5000, 0x7000);
            assert!(matches!(mark(0x19000), Mark::New { program: 0x5000, device: 0x7000 }));
            assert!(matches!(mark(0x19000), Mark::Repeat));
            assert!(matches!(mark(0x21000), Mark::New { .. }));
        }
        assert!(matches!(mark(0x19000), Mark::Outside));
    }

    #[test]
    fn programs_are_remembered_until_forgotten() {
        assert!(remember(0xA000, 1));
        assert!(remember(0xA000, 1));
        assert!(remember(0xB000, 2));
        assert_eq!(forget(0xA000), Some(1));
        assert_eq!(forget(0xA000), None);
        assert_eq!(forget(0xB000), Some(2));
    }
}
