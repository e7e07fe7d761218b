//! Per-thread state. `const` thread-locals: no lazy initialisation, no
//! allocation, safe to touch from any hook.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bumped in the child after `fork`, so cached tids of the parent are refreshed.
pub static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

const PROGRAM_DEPTH: usize = 4;

/// Everything the hooks keep per thread, in one thread-local: the cdylib's
/// TLS is general-dynamic, so each access is a `__tls_get_addr` call; a hook
/// takes the address once (`with`) and passes `&State` down.
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

thread_local! {
    static STATE: State = const {
        State {
            tid: Cell::new((u64::MAX, 0)),
            in_recorder: Cell::new(false),
            programs: Cell::new([0; PROGRAM_DEPTH]),
            program_top: Cell::new(0),
            hooked: Cell::new(0),
            pending: Cell::new(Pending::NONE),
        }
    };
}

/// Runs `f` with this thread's state.
#[inline]
pub fn with<R>(f: impl FnOnce(&State) -> R) -> R {
    STATE.with(f)
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
