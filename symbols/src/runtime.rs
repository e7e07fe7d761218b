//! Find the `libtt_metal.so` that is loaded in *this* process and resolve its own
//! definitions.
//!
//! Why not `dlsym(RTLD_NEXT, …)`: Python loads ttnn with `dlopen(…, RTLD_LOCAL)`, so the
//! library is not in the global scope and `RTLD_NEXT` returns NULL. We instead walk every
//! loaded object, take a handle on it with `RTLD_NOLOAD` and ask *that* object. A handle
//! lookup searches the object itself first, then its dependencies — never the global scope —
//! so it returns the library's own definition even when the shim interposes the same name.
//! We still verify the address lies inside the object, because for a name the object does not
//! define the lookup falls through to its dependencies.
//!
//! Runs at shim init and after `dlopen`s, never on the hot path: it may allocate; it never
//! panics.

use std::ffi::{c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};

use crate::catalog::{self, Target};

#[derive(Clone, Copy, Debug)]
struct Segment {
    start: usize,
    end: usize,
    exec: bool,
}

/// A loaded object we hold a reference on (`dlopen(RTLD_NOLOAD)` bumped its refcount, so it
/// cannot be unloaded under us; dropped with `dlclose`).
#[derive(Debug)]
pub struct LoadedLib {
    pub path: PathBuf,
    /// Load bias: runtime address = `base` + ELF virtual address.
    pub base: usize,
    handle: *mut c_void,
    segments: Vec<Segment>,
}

// SAFETY: the handle is an opaque token; dlsym/dlclose are thread-safe.
unsafe impl Send for LoadedLib {}
unsafe impl Sync for LoadedLib {}

impl Drop for LoadedLib {
    fn drop(&mut self) {
        if !self.handle.is_null() {
            // SAFETY: handle came from a successful dlopen and is closed once.
            unsafe { libc::dlclose(self.handle) };
        }
    }
}

struct Obj {
    name: Vec<u8>,
    base: usize,
    segments: Vec<Segment>,
}

impl Obj {
    fn contains(&self, addr: usize) -> bool {
        self.segments.iter().any(|s| s.start <= addr && addr < s.end)
    }
}

unsafe extern "C" fn collect(info: *mut libc::dl_phdr_info, _size: usize, data: *mut c_void) -> c_int {
    let objs = &mut *(data as *mut Vec<Obj>);
    let info = &*info;
    let name = if info.dlpi_name.is_null() { Vec::new() } else { CStr::from_ptr(info.dlpi_name).to_bytes().to_vec() };
    let base = info.dlpi_addr as usize;
    let mut segments = Vec::new();
    if !info.dlpi_phdr.is_null() {
        for ph in std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) {
            if ph.p_type == libc::PT_LOAD {
                let start = base.wrapping_add(ph.p_vaddr as usize);
                segments.push(Segment {
                    start,
                    end: start.wrapping_add(ph.p_memsz as usize),
                    exec: ph.p_flags & libc::PF_X != 0,
                });
            }
        }
    }
    objs.push(Obj { name, base, segments });
    0
}

fn loaded_objects() -> Vec<Obj> {
    let mut objs: Vec<Obj> = Vec::new();
    // SAFETY: the callback only reads the info the loader hands it and pushes to `objs`.
    unsafe { libc::dl_iterate_phdr(Some(collect), &mut objs as *mut Vec<Obj> as *mut c_void) };
    objs
}

/// The loaded object (other than the one containing `exclude_addr`, i.e. the shim) that
/// defines `GraphTracker::track_allocate`, however it was loaded: `RTLD_LOCAL`, from any path,
/// under any file name.
pub fn find_loaded_tt_metal(exclude_addr: usize) -> Option<LoadedLib> {
    find_loaded_defining(catalog::info(Target::TrackAllocate).mangled, exclude_addr)
}

/// The first loaded object, other than the one containing `exclude_addr`, that itself defines
/// `mangled`.
pub fn find_loaded_defining(mangled: &str, exclude_addr: usize) -> Option<LoadedLib> {
    let cname = CString::new(mangled).ok()?;
    for obj in loaded_objects() {
        if obj.contains(exclude_addr) || obj.name.starts_with(b"linux-vdso") || obj.name.starts_with(b"linux-gate") {
            continue;
        }
        let handle = unsafe {
            if obj.name.is_empty() {
                // The main program: dlopen(NULL) searches the global scope, which the
                // containment check below filters.
                libc::dlopen(std::ptr::null(), libc::RTLD_LAZY | libc::RTLD_NOLOAD)
            } else {
                let Ok(n) = CString::new(obj.name.clone()) else { continue };
                libc::dlopen(n.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD)
            }
        };
        if handle.is_null() {
            continue;
        }
        let addr = unsafe { libc::dlsym(handle, cname.as_ptr()) } as usize;
        if addr != 0 && obj.contains(addr) {
            let path = object_path(&obj);
            return Some(LoadedLib { path, base: obj.base, handle, segments: obj.segments });
        }
        unsafe { libc::dlclose(handle) };
    }
    None
}

/// The loaded object whose segments contain `addr` (e.g. the shim itself, to resolve its own
/// exported hooks by name).
pub fn find_loaded_containing(addr: usize) -> Option<LoadedLib> {
    let obj = loaded_objects().into_iter().find(|o| o.contains(addr))?;
    let handle = unsafe {
        if obj.name.is_empty() {
            libc::dlopen(std::ptr::null(), libc::RTLD_LAZY | libc::RTLD_NOLOAD)
        } else {
            let n = CString::new(obj.name.clone()).ok()?;
            libc::dlopen(n.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD)
        }
    };
    if handle.is_null() {
        return None;
    }
    Some(LoadedLib { path: object_path(&obj), base: obj.base, handle, segments: obj.segments })
}

/// Absolute path of a loaded object: its loader name when that is an absolute path, else the
/// file mapped at its first segment per `/proc/self/maps` (handles relative names and the
/// main program).
fn object_path(obj: &Obj) -> PathBuf {
    let name = Path::new(std::str::from_utf8(&obj.name).unwrap_or(""));
    if name.is_absolute() {
        return name.to_path_buf();
    }
    let at = obj.segments.first().map(|s| s.start).unwrap_or(obj.base);
    if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
        for line in maps.lines() {
            let mut f = line.split_whitespace();
            let (Some(range), Some(path)) = (f.next(), f.nth(4)) else { continue };
            let Some((lo, hi)) = range.split_once('-') else { continue };
            let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)) else { continue };
            if lo <= at && at < hi && path.starts_with('/') {
                return PathBuf::from(path);
            }
        }
    }
    name.to_path_buf()
}

impl LoadedLib {
    /// The library's OWN definition of `mangled` (never an interposer's, never a dependency's).
    pub fn sym(&self, mangled: &str) -> Option<usize> {
        let c = CString::new(mangled).ok()?;
        // SAFETY: valid handle and NUL-terminated name.
        let addr = unsafe { libc::dlsym(self.handle, c.as_ptr()) } as usize;
        (addr != 0 && self.contains(addr)).then_some(addr)
    }

    /// What this library's *references* to an imported symbol (e.g. `operator delete`) bind
    /// to: the global scope first (main program, preloads, RTLD_GLOBAL objects), then the
    /// library's own dependency scope — the order the dynamic linker used for it.
    pub fn bound(&self, mangled: &str) -> Option<usize> {
        let c = CString::new(mangled).ok()?;
        // SAFETY: valid pseudo-handle / handle and NUL-terminated name.
        let global = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr()) } as usize;
        if global != 0 {
            return Some(global);
        }
        let local = unsafe { libc::dlsym(self.handle, c.as_ptr()) } as usize;
        (local != 0).then_some(local)
    }

    pub fn contains(&self, addr: usize) -> bool {
        self.segments.iter().any(|s| s.start <= addr && addr < s.end)
    }

    pub fn is_code(&self, addr: usize) -> bool {
        self.segments.iter().any(|s| s.exec && s.start <= addr && addr < s.end)
    }

    /// Up to `max` bytes of mapped code starting at `addr`, clipped to the end of its
    /// executable segment.
    ///
    /// # Safety
    /// The caller must not use the slice after this `LoadedLib` is dropped.
    pub unsafe fn code_bytes(&self, addr: usize, max: usize) -> Option<&[u8]> {
        let seg = self.segments.iter().find(|s| s.exec && s.start <= addr && addr < s.end)?;
        Some(std::slice::from_raw_parts(addr as *const u8, max.min(seg.end - addr)))
    }

    /// The `dlopen` handle (still owned by this `LoadedLib`).
    pub fn raw_handle(&self) -> *mut c_void {
        self.handle
    }
}

unsafe extern "C" fn generation(info: *mut libc::dl_phdr_info, size: usize, data: *mut c_void) -> c_int {
    let need = std::mem::offset_of!(libc::dl_phdr_info, dlpi_subs) + std::mem::size_of::<u64>();
    if size >= need {
        let info = &*info;
        *(data as *mut u64) = info.dlpi_adds.wrapping_add(info.dlpi_subs);
    }
    1 // every object reports the same counters: stop after the first
}

/// Changes whenever an object is loaded or unloaded (`dlpi_adds + dlpi_subs`), so the shim can
/// cheaply notice that `libtt_metal.so` may have appeared after a `dlopen`.
pub fn loaded_objects_generation() -> u64 {
    let mut g: u64 = 0;
    // SAFETY: the callback writes one u64 through `data`.
    unsafe { libc::dl_iterate_phdr(Some(generation), &mut g as *mut u64 as *mut c_void) };
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_counts_loads() {
        let g = loaded_objects_generation();
        assert!(g > 0);
        assert_eq!(g, loaded_objects_generation());
    }

    #[test]
    fn finds_libc_by_a_symbol_it_defines_and_excludes_by_address() {
        let libc_lib = find_loaded_defining("malloc", 0).expect("an object defining malloc");
        let malloc = libc_lib.sym("malloc").unwrap();
        assert!(libc_lib.contains(malloc) && libc_lib.is_code(malloc));
        assert!(libc_lib.path.is_absolute(), "{:?}", libc_lib.path);
        // Excluding it (as the shim excludes itself) must skip it.
        let other = find_loaded_defining("malloc", malloc);
        assert!(other.iter().all(|o| o.base != libc_lib.base));
        // Nothing defines this.
        assert!(find_loaded_tt_metal(0).is_none());
        assert!(libc_lib.sym("no_such_symbol_ttalloc").is_none());
        let same = find_loaded_containing(malloc).expect("the object holding malloc");
        assert_eq!((same.base, same.sym("malloc")), (libc_lib.base, Some(malloc)));
        let bytes = unsafe { libc_lib.code_bytes(malloc, 16) }.unwrap();
        assert_eq!(bytes.len(), 16);
    }
}
