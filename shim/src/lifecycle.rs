//! Process lifecycle: the constructor, `fork` and normal exit.

use crate::{loader, tracer};

extern "C" fn at_exit() {
    let _ = std::panic::catch_unwind(tracer::on_exit);
}

extern "C" fn in_fork_child() {
    tracer::on_fork_child();
}

extern "C" fn constructor() {
    unsafe {
        libc::pthread_atfork(None, None, Some(in_fork_child));
        libc::atexit(at_exit);
    }
    let _ = std::panic::catch_unwind(loader::check_loaded);
}

#[used]
#[link_section = ".init_array"]
static CONSTRUCTOR: extern "C" fn() = constructor;
