//! Harnesses that feed arbitrary bytes to what reads files written by
//! someone else: the trace reader (and everything `ttalloc` builds on it) and
//! the ring reader (what the collector maps from /dev/shm).
//!
//! Each harness returns normally for any input, good or bad, and panics only
//! when a reader broke a promise: it panicked, an error did not name a
//! plausible offset, a message spanned lines, or more was read than exists.
//! The same functions run under the coverage-guided fuzzer (`fuzz/`, `make
//! fuzz`), under proptest, and over the saved crashers (`fuzz/regressions`).

pub mod ring_input;
pub mod trace_input;

/// Where inputs that once broke a harness are kept, one directory per target.
pub fn regressions_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions")
}

/// A scratch directory in memory when there is one (many harness runs per second).
pub(crate) fn scratch_dir() -> &'static std::path::Path {
    use std::sync::OnceLock;
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        tempfile::Builder::new().prefix("ttalloc-harness-").tempdir_in(base).expect("scratch dir")
    })
    .path()
}

/// A file name unique to this thread (proptest and the test harness run threads).
pub(crate) fn scratch_file(stem: &str) -> std::path::PathBuf {
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    scratch_dir().join(format!("{stem}-{tid}"))
}

/// One-line messages only: a reader's error is printed as one line.
pub(crate) fn check_one_line(what: &str, msg: &str) {
    assert!(!msg.is_empty() && !msg.contains('\n'), "{what}: message not a single line: {msg:?}");
}
