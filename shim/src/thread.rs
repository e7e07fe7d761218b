//! Per-thread state. `const` thread-locals: no lazy initialisation, no
//! allocation, safe to touch from any hook.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bumped in the child after `fork`, so cached tids of the parent are refreshed.
pub static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

const PROGRAM_DEPTH: usize = 4;

thread_local! {
    static TID: Cell<(u64, u32)> = const { Cell::new((u64::MAX, 0)) };
    static IN_RECORDER: Cell<bool> = const { Cell::new(false) };
    static PROGRAMS: Cell<[u64; PROGRAM_DEPTH]> = const { Cell::new([0; PROGRAM_DEPTH]) };
    static PROGRAM_TOP: Cell<usize> = const { Cell::new(0) };
    /// The `Buffer*` for which `hook_allocate` just returned true on this thread.
    static HOOKED: Cell<u64> = const { Cell::new(0) };
    /// The allocation `hook_allocate` let through to the allocator, until
    /// `track_allocate` confirms it: (buffer, size, type, chip).
    static PENDING: Cell<(u64, u64, u8, i32)> = const { Cell::new((0, 0, 0, 0)) };
}

/// Kernel thread id, cached per thread (one syscall per thread, refreshed after fork).
#[inline]
pub fn tid() -> u32 {
    let gen = FORK_GENERATION.load(Ordering::Relaxed);
    TID.with(|c| {
        let (g, t) = c.get();
        if g == gen {
            t
        } else {
            let t = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
            c.set((gen, t));
            t
        }
    })
}

/// Runs `f` as recorder code unless this thread is already in recorder code
/// (tt-metal calling back into a hook from something the recorder called):
/// then returns None and the caller only forwards.
#[inline]
pub fn as_recorder<R>(f: impl FnOnce() -> R) -> Option<R> {
    IN_RECORDER.with(|g| {
        if g.get() {
            return None;
        }
        g.set(true);
        struct Reset<'a>(&'a Cell<bool>);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let _reset = Reset(g);
        Some(f())
    })
}

pub fn push_program(p: u64) {
    let top = PROGRAM_TOP.with(|t| t.get());
    if top < PROGRAM_DEPTH {
        PROGRAMS.with(|s| {
            let mut a = s.get();
            a[top] = p;
            s.set(a);
        });
    }
    PROGRAM_TOP.with(|t| t.set(top + 1));
}

pub fn pop_program() {
    PROGRAM_TOP.with(|t| t.set(t.get().saturating_sub(1)));
}

/// The program whose CBs are being placed or released on this thread (0 if none).
pub fn current_program() -> u64 {
    let top = PROGRAM_TOP.with(|t| t.get());
    if top == 0 || top > PROGRAM_DEPTH {
        return 0;
    }
    PROGRAMS.with(|s| s.get()[top - 1])
}

/// True if `p` is already being handled further up this thread's stack
/// (a D1 destructor calling D2, say).
pub fn program_active(p: u64) -> bool {
    let top = PROGRAM_TOP.with(|t| t.get()).min(PROGRAM_DEPTH);
    PROGRAMS.with(|s| s.get()[..top].contains(&p))
}

pub fn set_hooked(buffer: u64) {
    HOOKED.with(|h| h.set(buffer));
}

/// Whether `hook_allocate` said "hooked" for this buffer (consumes the verdict).
pub fn take_hooked(buffer: u64) -> bool {
    HOOKED.with(|h| {
        let hit = h.get() == buffer && buffer != 0;
        if hit {
            h.set(0);
        }
        hit
    })
}

pub fn set_pending(p: (u64, u64, u8, i32)) -> (u64, u64, u8, i32) {
    PENDING.with(|c| c.replace(p))
}

pub fn clear_pending(buffer: u64) {
    PENDING.with(|c| {
        if c.get().0 == buffer {
            c.set((0, 0, 0, 0));
        }
    })
}
