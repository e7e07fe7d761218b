//! Inline hooks, for targets the library calls without symbol binding (`-Bsymbolic-functions`,
//! hidden visibility, LTO, vtable slots holding `R_X86_64_RELATIVE` pointers): an `LD_PRELOAD`
//! definition never sees those calls, so the function's entry is patched with a jump to the
//! very same exported hook the PLT would have reached (`hooks.rs`). The hook's "original"
//! becomes the trampoline `retour` builds (the displaced prologue, then a jump back past the
//! patch), also for calls that still arrive through some PLT: every path records exactly once.
//!
//! Installed once, by the tracer's initialisation, when the library has just been noticed (at
//! our constructor or inside our `dlopen`, before that `dlopen` returns): no code outside the
//! loader has been handed a pointer into the library yet. The jump is written with one atomic
//! 8-byte store when it fits in an aligned word (functions are 16-byte aligned), so a thread
//! that does run the function meanwhile sees the old bytes or the new, never a mix.
//!
//! Every failure leaves that function unpatched and is counted (`inline_hook_failed`); the
//! shim's info says which target and why.

use retour::RawDetour;
use ttalloc_symbols::catalog::{self, Target};
use ttalloc_symbols::elf::{self, Analysis, Strategy};
use ttalloc_symbols::patchable::{self, JMP_LEN};
use ttalloc_symbols::runtime::{self, LoadedLib};

/// `TTALLOC_INLINE`: `auto` (default) patches what the analysis says symbol binding cannot
/// reach; `all` patches every present target (mixed builds with direct calls next to a PLT
/// slot, which only `ttalloc doctor`'s full sweep can see); `off` never patches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Auto,
    All,
    Off,
}

impl Policy {
    pub fn from_env() -> Policy {
        match std::env::var("TTALLOC_INLINE").as_deref() {
            Ok("all") => Policy::All,
            Ok("off") | Ok("0") => Policy::Off,
            _ => Policy::Auto,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Policy::Auto => "auto",
            Policy::All => "all",
            Policy::Off => "off",
        }
    }
}

/// How the shim reaches one target in this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum How {
    /// Calls arrive through symbol binding; the original is the library's definition.
    Interpose,
    /// The entry is patched; the original is the trampoline.
    Inline,
    /// Needed an inline hook and did not get one: its direct calls are not seen.
    Failed(String),
    /// Not hooked at all (absent, never called, or the shim has no hook for it).
    None(&'static str),
}

impl How {
    pub fn name(&self) -> &'static str {
        match self {
            How::Interpose => "interpose",
            How::Inline => "inline",
            How::Failed(_) => "failed",
            How::None(_) => "none",
        }
    }

    pub fn detail(&self) -> Option<&str> {
        match self {
            How::Failed(s) => Some(s),
            How::None(s) => Some(s),
            _ => None,
        }
    }
}

/// What was done for every target (indexed by `Target as usize`) and the detours, which must
/// live as long as the process (dropping one would unpatch its entry).
pub struct Installed {
    pub how: Vec<How>,
    _detours: Vec<RawDetour>,
}

impl Installed {
    pub fn failures(&self) -> impl Iterator<Item = (Target, &str)> {
        Target::ALL.iter().zip(&self.how).filter_map(|(t, h)| match h {
            How::Failed(why) => Some((*t, why.as_str())),
            _ => None,
        })
    }
}

/// Decides, per target, interposition or an entry patch, and installs the patches when
/// `patch` is Ok (otherwise nothing is patched, and the reason is reported).
/// `originals[t]` becomes the trampoline of every patched target.
pub fn install(lib: &LoadedLib, a: &Analysis, policy: Policy, patch: Result<(), &'static str>, originals: &mut [usize]) -> Installed {
    let own = runtime::find_loaded_containing(install as *const () as usize);
    let hook_of = |t: Target| own.as_ref().and_then(|o| o.sym(catalog::info(t).mangled));
    let mut how: Vec<How> = vec![How::None("not in this library"); Target::ALL.len()];
    let mut detours = Vec::new();
    let mut done: Vec<(usize, usize)> = Vec::new(); // (entry, trampoline) already patched

    for t in Target::ALL {
        let k = t as usize;
        let Some(r) = a.target(t).filter(|r| r.present) else { continue };
        if hook_of(t).is_none() {
            how[k] = How::None("ttalloc has no hook for it");
            continue;
        }
        let wanted = match policy {
            Policy::Off => false,
            Policy::All => true,
            Policy::Auto => r.strategy == Strategy::InlineHook,
        };
        if !wanted {
            how[k] = match r.strategy {
                Strategy::InlineHook => How::Failed("TTALLOC_INLINE=off".into()),
                Strategy::Interpose => How::Interpose,
                Strategy::Unreachable if never_called(a, t) => How::None("never called on this build (its only caller is absent)"),
                Strategy::Unreachable => How::None("calls bypass symbol binding and the entry cannot be patched (see notes)"),
            };
            continue;
        }
        if let Err(why) = patch {
            how[k] = How::None(why); // nothing would be recorded anyway: not a failure
            continue;
        }
        let entry = lib.base + r.address.unwrap_or(0) as usize;
        // D2 = D1: one entry, one patch; the alias forwards to the same trampoline.
        if let Some(&(_, tramp)) = done.iter().find(|(e, _)| *e == entry) {
            originals[k] = tramp;
            how[k] = How::Inline;
            continue;
        }
        match unsafe { patch_entry(lib, &r.symbol, r.size, entry, originals[k], hook_of(t).unwrap_or(0)) } {
            Ok((detour, tramp)) => {
                detours.push(detour);
                done.push((entry, tramp));
                originals[k] = tramp;
                how[k] = How::Inline;
            }
            Err(why) => how[k] = How::Failed(why),
        }
    }
    Installed { how, _detours: detours }
}

/// The catalog knows the target's only caller, and this build lacks it.
fn never_called(a: &Analysis, t: Target) -> bool {
    catalog::info(t).only_caller.is_some_and(|c| !a.target(c).is_some_and(|r| r.present))
}

/// Builds the trampoline and writes the entry jump. Returns the detour and the trampoline.
unsafe fn patch_entry(lib: &LoadedLib, symbol: &str, size: Option<u64>, entry: usize, exported: usize, hook: usize) -> Result<(RawDetour, usize), String> {
    if !lib.is_code(entry) || (exported != 0 && exported != entry) {
        return Err(format!("entry {entry:#x} is not this library's code"));
    }
    let size = size.ok_or("function size unknown")? as usize;
    let code = lib.code_bytes(entry, size).filter(|c| c.len() == size).ok_or("function bytes not mapped")?;
    // The analysis read the file: patch only if the mapped code is that code (the file could
    // have been replaced since it was loaded, and hidden targets have no dlsym to cross-check).
    match elf::function_bytes(&lib.path, symbol, size) {
        Ok(file) if file == code => {}
        Ok(_) => return Err("mapped code differs from the library file".into()),
        Err(e) => return Err(e),
    }
    patchable::entry_patchable(code, entry as u64)?;
    // retour panics (an assert) if a relocated operand ends up out of range: a failure too.
    let built = std::panic::catch_unwind(|| RawDetour::new(entry as *const (), hook as *const ()));
    let detour = match built {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return Err(format!("retour: {e}")),
        Err(_) => return Err("retour panicked building the trampoline".into()),
    };
    let tramp = detour.trampoline() as *const () as usize;
    if !write_jump_atomically(entry, hook)? {
        detour.enable().map_err(|e| format!("retour: {e}"))?;
    }
    Ok((detour, tramp))
}

/// Writes `jmp hook` at `entry` with one atomic store into the aligned 8-byte word holding the
/// 5 bytes. Returns Ok(false), writing nothing, when the jump does not fit that way (entry
/// not within the first 3 bytes of a word, or `hook` beyond ±2 GiB): retour patches then.
unsafe fn write_jump_atomically(entry: usize, hook: usize) -> Result<bool, String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let rel = hook as i64 - (entry as i64 + JMP_LEN as i64);
    let off = entry % 8;
    let Ok(rel) = i32::try_from(rel) else { return Ok(false) };
    if off + JMP_LEN > 8 {
        return Ok(false);
    }
    let word = entry - off;
    let page = page_size();
    let page_start = word & !(page - 1);
    let rwx = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
    if libc::mprotect(page_start as *mut libc::c_void, page, rwx) != 0 {
        return Err(format!("mprotect: {}", std::io::Error::last_os_error()));
    }
    let cell = &*(word as *const AtomicU64);
    let old = cell.load(Ordering::Acquire);
    let mut bytes = old.to_le_bytes();
    bytes[off] = 0xe9;
    bytes[off + 1..off + JMP_LEN].copy_from_slice(&rel.to_le_bytes());
    let swapped = cell.compare_exchange(old, u64::from_le_bytes(bytes), Ordering::SeqCst, Ordering::SeqCst);
    // Code pages are read + execute (checked by `is_code`); give them back exactly that.
    libc::mprotect(page_start as *mut libc::c_void, page, libc::PROT_READ | libc::PROT_EXEC);
    swapped.map(|_| true).map_err(|_| "entry bytes changed while patching".to_string())
}

fn page_size() -> usize {
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    extern "C" fn add_one(x: u64) -> u64 {
        std::hint::black_box(x).wrapping_mul(3).wrapping_add(1)
    }

    #[inline(never)]
    extern "C" fn add_two(x: u64) -> u64 {
        std::hint::black_box(x).wrapping_mul(5).wrapping_add(2)
    }

    #[test]
    fn atomic_jump_redirects_and_retour_trampoline_runs_the_original() {
        let (f, g) = (add_one as *const () as usize, add_two as *const () as usize);
        let d = unsafe { RawDetour::new(f as *const (), g as *const ()) }.unwrap();
        let tramp: extern "C" fn(u64) -> u64 = unsafe { std::mem::transmute(d.trampoline()) };
        let call = |x| unsafe { std::mem::transmute::<usize, extern "C" fn(u64) -> u64>(std::hint::black_box(f))(x) };
        assert_eq!(call(10), 31);
        let atomic = unsafe { write_jump_atomically(f, g) }.unwrap();
        // Rust aligns functions to 16 bytes: the jump fits one aligned word.
        assert_eq!(atomic, f % 8 <= 3);
        if !atomic {
            unsafe { d.enable().unwrap() };
        }
        assert_eq!(call(10), 52, "entry jumps to the hook");
        assert_eq!(tramp(10), 31, "trampoline runs the original");
    }

    #[test]
    fn policy_from_env_values() {
        assert_eq!(Policy::Auto.name(), "auto");
        assert_eq!(How::Failed("x".into()).detail(), Some("x"));
        assert_eq!(How::Inline.name(), "inline");
    }
}
