//! Event timestamps.
//!
//! One timestamp is taken per event on the host's allocation path. Reading
//! the TSC costs 13–16 ns on the machines measured, CLOCK_MONOTONIC through
//! the vDSO 34 ns (docs/performance.md). So where the kernel itself keeps time
//! with the TSC (its clocksource is `tsc`: invariant and synchronised across
//! CPUs), the shim stamps raw TSC ticks and the collector converts them to
//! CLOCK_MONOTONIC ns, against the (ticks, ns) pair taken when the region was
//! created and pairs it takes itself. Elsewhere events carry CLOCK_MONOTONIC
//! ns directly. `TTALLOC_CLOCK=monotonic` forces the latter.

use std::sync::atomic::{AtomicU8, Ordering};

/// CLOCK_MONOTONIC in ns (vDSO: no syscall).
#[inline]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The TSC, or 0 where there is none.
#[inline]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// Whether this host's TSC may stand in for CLOCK_MONOTONIC (decided once).
pub fn tsc_trusted() -> bool {
    static VERDICT: AtomicU8 = AtomicU8::new(0); // 0 unknown, 1 no, 2 yes
    match VERDICT.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let yes = decide_tsc();
            VERDICT.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
    }
}

fn decide_tsc() -> bool {
    if !cfg!(target_arch = "x86_64") || std::env::var_os("TTALLOC_CLOCK").is_some_and(|v| v == "monotonic") {
        return false;
    }
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .is_ok_and(|s| s.trim() == "tsc")
}

/// A (ticks, CLOCK_MONOTONIC ns) pair taken as close together as possible.
pub fn now_pair() -> (u64, u64) {
    let t0 = ticks();
    let ns = monotonic_ns();
    let t1 = ticks();
    (t0 + (t1.wrapping_sub(t0)) / 2, ns)
}

/// Converts one process's TSC stamps to CLOCK_MONOTONIC ns: linear from the
/// region's creation pair, with the rate re-measured each time the span
/// since creation has doubled (pair jitter over a longer span: a better rate),
/// so it changes a handful of times per run, by parts per million.
#[derive(Clone, Debug)]
pub struct TscToNs {
    tsc0: u64,
    ns0: u64,
    span: u64,
    /// ns per tick in 24.40 fixed point: integer multiply per event (the
    /// f64 ↔ i128 conversions it replaces were 3 % of the collector's time).
    mult: u64,
}

/// Fraction bits of `TscToNs::mult`: a relative error ≤ 2^-40 per tick, ≈ 10 ns per hour.
const FRAC: u32 = 40;

impl TscToNs {
    pub fn new(tsc0: u64, ns0: u64) -> Self {
        TscToNs { tsc0, ns0, span: 0, mult: 0 }
    }

    /// Takes a (ticks, ns) pair observed now.
    pub fn observe(&mut self, (tsc, ns): (u64, u64)) {
        let span = tsc.saturating_sub(self.tsc0);
        if span > 0 && ns > self.ns0 && (self.span == 0 || span >= self.span.saturating_mul(2)) {
            self.span = span;
            let mult = (u128::from(ns - self.ns0) << FRAC) / u128::from(span);
            self.mult = u64::try_from(mult).unwrap_or(u64::MAX);
        }
    }

    #[inline]
    pub fn to_ns(&self, tsc: u64) -> u64 {
        let scaled = |ticks: u64| (u128::from(ticks) * u128::from(self.mult) >> FRAC).min(u64::MAX as u128) as u64;
        if tsc >= self.tsc0 {
            self.ns0.saturating_add(scaled(tsc - self.tsc0))
        } else {
            self.ns0.saturating_sub(scaled(self.tsc0 - tsc))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_linearly_and_refines_on_doubling() {
        let mut c = TscToNs::new(1_000, 5_000);
        c.observe((3_000, 6_000)); // 0.5 ns per tick
        assert_eq!(c.to_ns(2_000), 5_500);
        c.observe((3_500, 9_999)); // span grew < 2×: kept
        assert_eq!(c.to_ns(2_000), 5_500);
        c.observe((5_000, 13_000)); // span 4000 ≥ 2 × 2000: 2 ns per tick
        assert_eq!(c.to_ns(2_000), 7_000);
        assert_eq!(c.to_ns(0), 3_000, "before creation: extrapolated");
    }

    #[test]
    fn real_tsc_tracks_monotonic_time() {
        if !tsc_trusted() {
            return; // nothing to compare on this host (the monotonic path needs no conversion)
        }
        let (t0, n0) = now_pair();
        let mut c = TscToNs::new(t0, n0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        c.observe(now_pair());
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (t, n) = now_pair();
        let err = c.to_ns(t) as i64 - n as i64;
        assert!(err.abs() < 50_000, "converted TSC within 50 µs of CLOCK_MONOTONIC, off by {err} ns");
    }
}
