//! Noticing libtt_metal.so: at our constructor (a C++ program linked with it
//! has it mapped already) and after every `dlopen` (Python importing ttnn
//! loads it with `RTLD_LOCAL`, where `dlsym(RTLD_NEXT)` cannot see it).
//! Processes that never load it (compilers tt-metal spawns inherit
//! LD_PRELOAD) see nothing of ttalloc: no region, no file, no output.

use crate::tracer;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use ttalloc_symbols::runtime;

static REAL_DLOPEN: AtomicUsize = AtomicUsize::new(0);
static SEEN_GENERATION: AtomicU64 = AtomicU64::new(u64::MAX);

type DlopenFn = unsafe extern "C" fn(*const libc::c_char, libc::c_int) -> *mut libc::c_void;

/// Looks for libtt_metal.so if the set of loaded objects changed since the last look.
pub fn check_loaded() {
    let gen = runtime::loaded_objects_generation();
    if SEEN_GENERATION.swap(gen, Ordering::AcqRel) != gen {
        let _ = tracer::get();
    }
}

/// Interposed `dlopen`: forward, then look for libtt_metal.so.
#[no_mangle]
pub unsafe extern "C" fn dlopen(filename: *const libc::c_char, flags: libc::c_int) -> *mut libc::c_void {
    let mut real = REAL_DLOPEN.load(Ordering::Relaxed);
    if real == 0 {
        real = libc::dlsym(libc::RTLD_NEXT, c"dlopen".as_ptr()) as usize;
        REAL_DLOPEN.store(real, Ordering::Relaxed);
    }
    if real == 0 {
        return std::ptr::null_mut();
    }
    let real: DlopenFn = std::mem::transmute(real);
    let handle = real(filename, flags);
    if !handle.is_null() && flags & libc::RTLD_NOLOAD == 0 {
        let _ = std::panic::catch_unwind(check_loaded);
    }
    handle
}
