//! Process-wide state, built once when libtt_metal.so is first seen: the
//! library, the originals of every hooked function, the Buffer reader, and the
//! shared-memory region (absent when recording is disabled or impossible).

use crate::{inline, thread};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};
use ttalloc_ring::naming::{self, RegionName};
use ttalloc_ring::Region;
use ttalloc_symbols::abi::BufferReader;
use ttalloc_symbols::catalog::{self, Target};
use ttalloc_symbols::elf::{self, Mode};
use ttalloc_symbols::runtime::{self, LoadedLib};

pub struct Tracer {
    pub lib: LoadedLib,
    pub reader: BufferReader,
    originals: Vec<usize>,
    /// On builds without `deallocate_circular_buffers` (0.65/0.68) nothing ever
    /// calls `track_deallocate_cb`: a program's CBs end with `~ProgramImpl`.
    pub cb_free_at_program_end: bool,
    region: AtomicPtr<Region>,
    info: String,
    /// Targets that needed an inline hook and did not get one (counted in every region).
    inline_failures: u64,
}

const UNINIT: u8 = 0;
const BUSY: u8 = 1;
const READY: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static TRACER: AtomicPtr<Tracer> = AtomicPtr::new(std::ptr::null_mut());
/// Set in a forked child: the parent's region must not be written; make our own.
static NEEDS_REGION: AtomicBool = AtomicBool::new(false);
/// The one warning line this process may print.
static WARNED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static INITIALIZING: Cell<bool> = const { Cell::new(false) };
}

/// `TTALLOC=0` turns recording off entirely (hooks still forward): no file, no output.
pub fn recording_enabled() -> bool {
    !matches!(std::env::var("TTALLOC").as_deref(), Ok("0") | Ok("off") | Ok("false"))
}

pub fn warn_once(msg: &str) {
    if !WARNED.swap(true, Ordering::AcqRel) && std::env::var_os("TTALLOC_QUIET").is_none() {
        eprintln!("ttalloc: {msg}");
    }
}

/// The tracer, initialising it if libtt_metal.so is loaded and it is not yet.
#[inline]
pub fn get() -> Option<&'static Tracer> {
    if STATE.load(Ordering::Acquire) == READY {
        return unsafe { TRACER.load(Ordering::Acquire).as_ref() };
    }
    try_init()
}

#[cold]
pub fn try_init() -> Option<&'static Tracer> {
    if INITIALIZING.with(|i| i.get()) {
        return None;
    }
    // Marked before taking BUSY: a signal handler that calls a hook on this
    // thread while it holds BUSY must forward, not wait for itself.
    INITIALIZING.with(|i| i.set(true));
    loop {
        match STATE.compare_exchange(UNINIT, BUSY, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(READY) => {
                INITIALIZING.with(|i| i.set(false));
                return unsafe { TRACER.load(Ordering::Acquire).as_ref() };
            }
            // Another thread is initialising: it takes milliseconds, once.
            Err(_) => std::thread::yield_now(),
        }
    }
    let built = std::panic::catch_unwind(build).ok().flatten();
    INITIALIZING.with(|i| i.set(false));
    match built {
        Some(t) => {
            TRACER.store(Box::into_raw(Box::new(t)), Ordering::Release);
            STATE.store(READY, Ordering::Release);
            unsafe { TRACER.load(Ordering::Acquire).as_ref() }
        }
        None => {
            // Not loaded yet (or unusable): try again at the next dlopen or hook.
            STATE.store(UNINIT, Ordering::Release);
            None
        }
    }
}

fn build() -> Option<Tracer> {
    let lib = runtime::find_loaded_tt_metal(build as *const () as usize)?;
    let (reader, notes) = BufferReader::new(&lib);
    let mut originals: Vec<usize> =
        Target::ALL.iter().map(|t| lib.sym(catalog::info(*t).mangled).unwrap_or(0)).collect();
    let analysis = elf::analyze(&lib.path, Mode::Quick);
    let cb_free_at_program_end = originals[Target::DeallocateCircularBuffers as usize] == 0;
    // Entries are patched only when there is something to record.
    let policy = inline::Policy::from_env();
    let patch = if recording_enabled() { Ok(()) } else { Err("not recording") };
    let hooks = analysis.as_ref().ok().map(|a| inline::install(&lib, a, policy, patch, &mut originals));
    let inline_failures = hooks.as_ref().map_or(0, |h| h.failures().count() as u64);
    if let Some((t, why)) = hooks.as_ref().and_then(|h| h.failures().next()) {
        warn_once(&format!(
            "cannot hook {} inline ({why}){}: its direct calls are not recorded",
            catalog::info(t).demangled,
            if inline_failures > 1 { format!(" and {} more", inline_failures - 1) } else { String::new() },
        ));
    }
    let info = info_json(&lib, &reader, cb_free_at_program_end, &analysis, hooks.as_ref(), policy, notes, &originals);
    let tracer = Tracer {
        lib,
        reader,
        originals,
        cb_free_at_program_end,
        region: AtomicPtr::new(std::ptr::null_mut()),
        info,
        inline_failures,
    };
    if recording_enabled() {
        tracer.install_region();
    }
    Some(tracer)
}

/// The shim's load-time verdict, stored in the region header and copied into the trace: the
/// library, its ABI family, and per target what the analysis found and how this process hooks
/// it (`hook`: interpose / inline / failed / none, with `hook_detail`), plus whether every
/// original and Buffer accessor was resolved in the loaded library.
#[allow(clippy::too_many_arguments)]
fn info_json(
    lib: &LoadedLib,
    reader: &BufferReader,
    cb_free_at_program_end: bool,
    analysis: &Result<elf::Analysis, String>,
    hooks: Option<&inline::Installed>,
    policy: inline::Policy,
    notes: Vec<String>,
    originals: &[usize],
) -> String {
    let mut analysis_json = analysis.as_ref().map(|a| a.to_json()).unwrap_or_else(|e| serde_json::json!({ "error": e }));
    if let (Some(targets), Some(h)) = (analysis_json.get_mut("targets").and_then(|t| t.as_array_mut()), hooks) {
        for t in targets.iter_mut() {
            let Some(k) = t["symbol"].as_str().and_then(catalog::target_by_mangled).map(|i| i.target as usize) else {
                continue;
            };
            t["hook"] = h.how[k].name().into();
            if let Some(d) = h.how[k].detail() {
                t["hook_detail"] = d.into();
            }
            t["original_resolved"] = (originals[k] != 0).into();
        }
    }
    let accessors: serde_json::Map<String, serde_json::Value> = catalog::ACCESSORS
        .iter()
        .map(|a| {
            let resolved = if a.imported { lib.bound(a.mangled) } else { lib.sym(a.mangled) };
            (a.mangled.to_string(), resolved.is_some().into())
        })
        .collect();
    serde_json::json!({
        "tool": "ttalloc-shim",
        "version": env!("CARGO_PKG_VERSION"),
        "library": lib.path.display().to_string(),
        "cmdline": cmdline(),
        "abi": reader.family().name(),
        "cb_free": if cb_free_at_program_end { "at ~ProgramImpl (track_deallocate_cb is never called on this build)" } else { "track_deallocate_cb" },
        "inline_policy": policy.name(),
        "inline_hooked": hooks.map_or(0, |h| h.how.iter().filter(|x| **x == inline::How::Inline).count()),
        "analysis": analysis_json,
        "accessors_resolved": accessors,
        "direct_fields": reader.direct_fields(),
        "notes": notes,
    })
    .to_string()
}

impl Tracer {
    /// The original of `t` (0 if the library does not define it).
    #[inline]
    pub fn original(&self, t: Target) -> usize {
        self.originals[t as usize]
    }

    /// The region to record into, if recording.
    #[inline]
    pub fn region(&self) -> Option<&Region> {
        if NEEDS_REGION.load(Ordering::Relaxed) {
            self.after_fork();
        }
        unsafe { self.region.load(Ordering::Acquire).as_ref() }
    }

    #[cold]
    fn after_fork(&self) {
        if NEEDS_REGION.swap(false, Ordering::AcqRel) {
            // The parent's mapping stays mapped (it is the parent's); never write to it again.
            self.region.store(std::ptr::null_mut(), Ordering::Release);
            if recording_enabled() {
                self.install_region();
                if let Some(r) = unsafe { self.region.load(Ordering::Acquire).as_ref() } {
                    r.mark_state(ttalloc_ring::layout::STATE_FORKED_CHILD);
                }
            }
        }
    }

    fn install_region(&self) {
        match create_region(self.info.as_bytes()) {
            Ok((r, reduced_from)) => {
                for _ in 0..self.inline_failures {
                    r.count_problem(ttalloc_ring::Problem::InlineHookFailed);
                }
                if let Some(asked) = reduced_from {
                    warn_once(&format!(
                        "{} is short of space: recording into a {}-event ring instead of {asked}; \
                         what a collector cannot keep up with is counted as dropped",
                        naming::shm_dir().display(),
                        r.ring_capacity()
                    ));
                }
                self.region.store(Box::into_raw(Box::new(r)), Ordering::Release);
            }
            Err(e) => warn_once(&format!("not recording this process ({e}); the workload runs unchanged")),
        }
    }
}

/// This process's command line (the collector may only see the region after the process is gone).
fn cmdline() -> String {
    std::fs::read("/proc/self/cmdline")
        .map(|b| b.split(|c| *c == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn env_pow2(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok()).filter(|v| v.is_power_of_two()).unwrap_or(default)
}

/// The smallest ring worth recording into when the shm dir is short of space.
const MIN_RING_EVENTS: u64 = 1 << 12;
const MIN_LIVE_SLOTS: u64 = 1 << 10;

/// Creates this process's region (its info written before it becomes
/// visible). When the shm dir has no room for the configured sizes, halves
/// them down to a useful minimum (a small ring the collector drains beats no
/// recording); returns the ring size asked for if it had to shrink.
fn create_region(info: &[u8]) -> Result<(Region, Option<u64>), ttalloc_ring::RegionError> {
    let pid = std::process::id();
    let start_ticks = naming::process_start_ticks(pid).unwrap_or(0);
    let name = RegionName {
        uid: unsafe { libc::geteuid() },
        pid,
        start_ticks,
        image: ttalloc_ring::producer_clock(),
    };
    let path = naming::shm_dir().join(name.file_name());
    let asked = env_pow2("TTALLOC_RING_EVENTS", 1 << 20);
    let (mut ring, mut live) = (asked, env_pow2("TTALLOC_LIVE_SLOTS", 1 << 18));
    loop {
        match Region::create_with_info(&path, ring, live, pid, start_ticks, info) {
            Ok(r) => return Ok((r, (ring != asked).then_some(asked))),
            Err(ttalloc_ring::RegionError::Io(_, e))
                if e.raw_os_error() == Some(libc::ENOSPC) && ring > MIN_RING_EVENTS =>
            {
                ring /= 2;
                live = (live / 2).max(MIN_LIVE_SLOTS);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Called in the child right after `fork`.
pub fn on_fork_child() {
    thread::FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
    NEEDS_REGION.store(true, Ordering::Release);
}

/// Called at normal process exit.
pub fn on_exit() {
    if STATE.load(Ordering::Acquire) != READY {
        return;
    }
    if let Some(t) = unsafe { TRACER.load(Ordering::Acquire).as_ref() } {
        crate::thread::with(|s| crate::record::flush_pending(t, s));
        if let Some(r) = unsafe { t.region.load(Ordering::Acquire).as_ref() } {
            r.mark_state(ttalloc_ring::layout::STATE_EXITED);
            report_unreachable(r);
        }
    }
}

/// At exit: if the region's file was deleted while no collector held it,
/// nothing will ever read what is left in the ring — say how much, once.
fn report_unreachable(r: &Region) {
    if r.path().exists() {
        return;
    }
    let h = r.header();
    let collector = h.collector_pid.load(Ordering::Acquire);
    if collector != 0 && unsafe { libc::kill(collector as i32, 0) } == 0 {
        return; // a live collector still has it mapped and will drain it
    }
    let reader = ttalloc_ring::RingReader::new(r);
    let lost = reader.head().saturating_sub(reader.tail()) + reader.dropped();
    if lost > 0 {
        warn_once(&format!(
            "{} was deleted before a collector read it: {lost} events of this process are lost",
            r.path().display()
        ));
    }
}
