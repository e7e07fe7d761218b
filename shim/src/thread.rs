//! Per-thread state: no lazy initialisation, no allocation, safe to touch
//! from any hook. All-zero bytes are a fresh thread's state.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bumped in the child after `fork`, so cached tids of the parent are
/// refreshed. Starts at 1: a fresh thread's cached generation is 0.
pub static FORK_GENERATION: AtomicU64 = AtomicU64::new(1);

const PROGRAM_DEPTH: usize = 4;

/// Everything the hooks keep per thread, in one thread-local block; a hook
/// takes its address once (`with`) and passes `&State` down.
pub struct State {
    /// (fork generation, kernel tid).
    tid: Cell<(u64, u32)>,
    in_recorder: Cell<bool>,
    programs: Cell<[u64; PROGRAM_DEPTH]>,
    program_top: Cell<usize>,
    /// The `Buffer*` for which `hook_allocate` just returned true on this thread.
    hooked: Cell<u64>,
    /// The allocation `hook_allocate` let through to the allocator, until
    /// `track_allocate` confirms it (reusing what was read) or the allocator throws.
    pending: Cell<Pending>,
}

// Rust gives a cdylib's thread-locals the general-dynamic TLS model: every
// access is a call to `__tls_get_addr` (≈ 14 instructions, three per
// create+free pair). The shim is preloaded, so it is in the initial TLS
// image and may use the initial-exec model — one load from %fs — as
// LD_PRELOAD allocators do. Stable Rust cannot ask for that model, so on
// x86-64 Linux the block is defined in `.tbss` here and addressed through
// its GOT TP-offset; elsewhere a `const` thread_local! does the job. (A
// `dlopen` of the shim, which nobody does, would take the block from glibc's
// static-TLS reserve; if that ran out the dlopen would fail, not crash.)
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod block {
    use super::State;

    std::arch::global_asm!(
        ".section .tbss,\"awT\",@nobits",
        ".p2align 3",
        // Global for the other codegen units, hidden from the dynamic symbol table.
        ".globl ttalloc_shim_thread_state",
        ".hidden ttalloc_shim_thread_state",
        ".type ttalloc_shim_thread_state, @object",
        ".size ttalloc_shim_thread_state, {size}",
        "ttalloc_shim_thread_state:",
        ".zero {size}",
        ".text",
        size = const std::mem::size_of::<State>(),
    );

    #[inline(always)]
    pub fn get() -> &'static State {
        let p: *const State;
        // SAFETY: the block is this thread's, zero-filled by the loader for
        // every thread, and all-zero bytes are a valid `State` (only `Cell`s
        // of integers; see `FRESH`).
        unsafe {
            std::arch::asm!(
                "mov {p}, qword ptr fs:[0]",
                "add {p}, qword ptr [rip + ttalloc_shim_thread_state@gottpoff]",
                p = out(reg) p,
                options(pure, readonly, nostack),
            );
            &*p
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod block {
    use super::{State, FRESH};

    thread_local! {
        static STATE: State = const { FRESH };
    }

    #[inline(always)]
    pub fn get() -> &'static State {
        // SAFETY: `State` has no destructor, so the slot lives as long as the thread.
        STATE.with(|s| unsafe { &*(s as *const State) })
    }
}

/// A fresh thread's state: all zero bytes, which the initial-exec block
/// relies on (that block is zero-filled by the loader and never reads this).
#[cfg_attr(all(target_arch = "x86_64", target_os = "linux"), allow(dead_code))]
const FRESH: State = State {
    tid: Cell::new((0, 0)),
    in_recorder: Cell::new(false),
    programs: Cell::new([0; PROGRAM_DEPTH]),
    program_top: Cell::new(0),
    hooked: Cell::new(0),
    pending: Cell::new(Pending::NONE),
};

/// Runs `f` with this thread's state.
#[inline]
pub fn with<R>(f: impl FnOnce(&State) -> R) -> R {
    f(block::get())
}

/// A requested allocation: the buffer and what `hook_allocate` read of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    pub buffer: u64,
    pub size: u64,
    pub btype: u8,
    /// The chip field of its device (resolved while the device surely lives).
    pub chip: i32,
    pub device: u64,
}

impl Pending {
    pub const NONE: Pending = Pending { buffer: 0, size: 0, btype: 0, chip: 0, device: 0 };
}

impl State {
    /// Kernel thread id, cached (one syscall per thread, refreshed after fork).
    #[inline]
    pub fn tid(&self) -> u32 {
        let gen = FORK_GENERATION.load(Ordering::Relaxed);
        let (g, t) = self.tid.get();
        if g == gen {
            return t;
        }
        let t = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
        self.tid.set((gen, t));
        t
    }

    /// Runs `f` as recorder code unless this thread is already in recorder
    /// code (tt-metal calling back into a hook from something the recorder
    /// called): then returns None and the caller only forwards.
    #[inline]
    pub fn as_recorder<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        if self.in_recorder.get() {
            return None;
        }
        self.in_recorder.set(true);
        struct Reset<'a>(&'a Cell<bool>);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let _reset = Reset(&self.in_recorder);
        Some(f())
    }

    pub fn push_program(&self, p: u64) {
        let top = self.program_top.get();
        if top < PROGRAM_DEPTH {
            let mut a = self.programs.get();
            a[top] = p;
            self.programs.set(a);
        }
        self.program_top.set(top + 1);
    }

    pub fn pop_program(&self) {
        self.program_top.set(self.program_top.get().saturating_sub(1));
    }

    /// The program whose CBs are being placed or released on this thread (0 if none).
    pub fn current_program(&self) -> u64 {
        let top = self.program_top.get();
        if top == 0 || top > PROGRAM_DEPTH {
            return 0;
        }
        self.programs.get()[top - 1]
    }

    /// True if `p` is already being handled further up this thread's stack
    /// (a D1 destructor calling D2, say).
    pub fn program_active(&self, p: u64) -> bool {
        let top = self.program_top.get().min(PROGRAM_DEPTH);
        self.programs.get()[..top].contains(&p)
    }

    pub fn set_hooked(&self, buffer: u64) {
        self.hooked.set(buffer);
    }

    /// Whether `hook_allocate` said "hooked" for this buffer (consumes the verdict).
    #[inline]
    pub fn take_hooked(&self, buffer: u64) -> bool {
        let hit = self.hooked.get() == buffer && buffer != 0;
        if hit {
            self.hooked.set(0);
        }
        hit
    }

    /// Sets the pending request, returning the one it replaces.
    #[inline]
    pub fn set_pending(&self, p: Pending) -> Pending {
        self.pending.replace(p)
    }

    /// The pending request for `buffer`, if that is what is pending (consumed).
    #[inline]
    pub fn take_pending(&self, buffer: u64) -> Option<Pending> {
        let p = self.pending.get();
        if p.buffer == buffer && buffer != 0 {
            self.pending.set(Pending::NONE);
            Some(p)
        } else {
            None
        }
    }
}

/// This thread's kernel tid (cold paths; hot paths use `State::tid`).
pub fn tid() -> u32 {
    with(|s| s.tid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel_tid() -> u32 {
        unsafe { libc::syscall(libc::SYS_gettid) as u32 }
    }

    /// Every thread starts from the all-zero block: no program, nothing
    /// pending, not in recorder code, and its own tid (not a cached 0).
    #[test]
    fn each_thread_starts_fresh_with_its_own_tid() {
        let seen: Vec<(u32, u32)> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    with(|s| {
                        assert_eq!(s.current_program(), 0);
                        assert_eq!(s.take_pending(0x1000), None);
                        assert!(!s.take_hooked(0x1000));
                        assert_eq!(s.as_recorder(|| s.as_recorder(|| ())), Some(None), "re-entry is refused");
                        s.push_program(7);
                        s.set_pending(Pending { buffer: 0x1000, ..Pending::NONE });
                        (s.tid(), kernel_tid())
                    })
                })
                .join()
                .unwrap()
            })
            .collect();
        for (cached, real) in &seen {
            assert_ne!(*cached, 0);
            assert_eq!(cached, real);
        }
        // What the spawned threads set is theirs alone.
        with(|s| {
            assert_eq!(s.current_program(), 0);
            assert_eq!(s.take_pending(0x1000), None);
            assert_eq!(s.tid(), kernel_tid());
        });
    }

    /// The state a hook reads is the one it wrote, call after call.
    #[test]
    fn state_persists_across_calls_on_one_thread() {
        std::thread::spawn(|| {
            with(|s| s.set_hooked(0x2000));
            assert!(with(|s| s.take_hooked(0x2000)));
            assert!(!with(|s| s.take_hooked(0x2000)), "a verdict is consumed once");
        })
        .join()
        .unwrap();
    }
}
