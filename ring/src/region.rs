//! Creating (shim) and opening (collector) a region file, with the checks
//! that keep one user's allocation stream away from another user.

use crate::layout::{Header, FORMAT_VERSION, HEADER_BYTES, MAGIC, SLOT_BYTES};
use crate::live::LiveSlot;
use crate::producer::Slot;
use std::ffi::CString;
use std::fmt;
use std::mem::offset_of;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};

pub const MAX_RING_SLOTS: u64 = 1 << 28;
pub const MAX_LIVE_SLOTS: u64 = 1 << 26;

#[derive(Debug)]
pub enum RegionError {
    Io(&'static str, std::io::Error),
    NotOurs { uid: u32, mode: u32 },
    Invalid(String),
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegionError::Io(what, e) => write!(f, "{what}: {e}"),
            RegionError::NotOurs { uid, mode } => write!(
                f,
                "refused: owned by uid {uid} with mode {mode:o} (a ring must be ours and 0600)"
            ),
            RegionError::Invalid(why) => write!(f, "not a ttalloc ring: {why}"),
        }
    }
}
impl std::error::Error for RegionError {}

/// A mapped region. Dropping it unmaps (the file stays).
pub struct Region {
    base: *mut u8,
    len: usize,
    path: PathBuf,
    /// Table sizes as validated when the region was created or opened. The
    /// header is shared memory another process can write: slices into the
    /// mapping are cut with these, never with what the header says now.
    ring_slots: usize,
    live_slots: usize,
}

// The region is shared memory accessed only through atomics and seqlocked copies.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

fn last_os_error(what: &'static str) -> RegionError {
    RegionError::Io(what, std::io::Error::last_os_error())
}

pub fn region_bytes(ring_slots: u64, live_slots: u64) -> usize {
    HEADER_BYTES + (ring_slots as usize + live_slots as usize) * SLOT_BYTES
}

impl Region {
    /// Creates a new region file (mode 0600, exclusive) with all of its space
    /// reserved up front, so a full `/dev/shm` fails here instead of raising
    /// SIGBUS in the host process later.
    pub fn create(
        path: &Path,
        ring_slots: u64,
        live_slots: u64,
        pid: u32,
        start_ticks: u64,
    ) -> Result<Region, RegionError> {
        Self::create_with_info(path, ring_slots, live_slots, pid, start_ticks, b"")
    }

    /// [`Region::create`], with the producer's info (JSON) in place before the header becomes
    /// valid: a collector that finds the region never reads it without its info.
    pub fn create_with_info(
        path: &Path,
        ring_slots: u64,
        live_slots: u64,
        pid: u32,
        start_ticks: u64,
        info: &[u8],
    ) -> Result<Region, RegionError> {
        if !ring_slots.is_power_of_two() || ring_slots > MAX_RING_SLOTS || ring_slots < 16 {
            return Err(RegionError::Invalid(format!("ring_slots {ring_slots}")));
        }
        if !live_slots.is_power_of_two() || live_slots > MAX_LIVE_SLOTS || live_slots < 16 {
            return Err(RegionError::Invalid(format!("live_slots {live_slots}")));
        }
        let len = region_bytes(ring_slots, live_slots);
        let cpath = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| RegionError::Invalid("path with NUL".into()))?;
        unsafe {
            let fd = libc::open(
                cpath.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                0o600,
            );
            if fd < 0 {
                return Err(last_os_error("create ring file"));
            }
            // umask cannot widen 0600, but make the mode explicit anyway.
            libc::fchmod(fd, 0o600);
            let rc = libc::posix_fallocate(fd, 0, len as libc::off_t);
            if rc != 0 {
                libc::close(fd);
                libc::unlink(cpath.as_ptr());
                return Err(RegionError::Io(
                    "reserve ring space",
                    std::io::Error::from_raw_os_error(rc),
                ));
            }
            let base = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                // Pre-faulted: first-lap page faults were the whole p99 of the hook (docs/performance.md).
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                0,
            );
            libc::close(fd);
            if base == libc::MAP_FAILED {
                libc::unlink(cpath.as_ptr());
                return Err(last_os_error("map ring"));
            }
            let region = Region {
                base: base as *mut u8,
                len,
                path: path.to_path_buf(),
                ring_slots: ring_slots as usize,
                live_slots: live_slots as usize,
            };
            let h = &mut *(base as *mut Header);
            h.version = FORMAT_VERSION;
            h.header_bytes = HEADER_BYTES as u32;
            h.ring_slots = ring_slots;
            h.live_slots = live_slots;
            h.pid = pid;
            h.uid = libc::geteuid();
            h.start_ticks = start_ticks;
            if crate::clock::tsc_trusted() {
                let (tsc, ns) = crate::clock::now_pair();
                h.created_tsc = tsc;
                h.created_mono_ns = ns;
            } else {
                h.created_mono_ns = crate::clock::monotonic_ns();
            }
            h.created_real_ns = realtime_ns();
            region.set_info(info);
            fence(Ordering::Release);
            // Magic last: a reader that sees it sees a complete header.
            std::ptr::write_volatile(&mut h.magic, MAGIC);
            fence(Ordering::SeqCst);
            Ok(region)
        }
    }

    /// Opens an existing region for reading and draining. Refuses files not
    /// owned by the caller's uid, with any group/other permission, links,
    /// and anything whose header does not describe exactly this file.
    pub fn open(path: &Path) -> Result<Region, RegionError> {
        let cpath = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| RegionError::Invalid("path with NUL".into()))?;
        unsafe {
            let fd = libc::open(cpath.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW);
            if fd < 0 {
                return Err(last_os_error("open ring"));
            }
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) != 0 {
                libc::close(fd);
                return Err(last_os_error("stat ring"));
            }
            let mode = st.st_mode & 0o7777;
            if st.st_uid != libc::geteuid() || mode & 0o077 != 0 {
                libc::close(fd);
                return Err(RegionError::NotOurs { uid: st.st_uid, mode });
            }
            if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                libc::close(fd);
                return Err(RegionError::Invalid("not a regular file".into()));
            }
            let file_len = st.st_size as u64;
            if file_len < HEADER_BYTES as u64 {
                libc::close(fd);
                return Err(RegionError::Invalid(format!("{file_len} bytes is smaller than a header")));
            }
            let base = libc::mmap(
                std::ptr::null_mut(),
                file_len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            );
            libc::close(fd);
            if base == libc::MAP_FAILED {
                return Err(last_os_error("map ring"));
            }
            let mut region =
                Region { base: base as *mut u8, len: file_len as usize, path: path.to_path_buf(), ring_slots: 0, live_slots: 0 };
            let h = region.header();
            let magic = std::ptr::read_volatile(&h.magic);
            fence(Ordering::Acquire);
            if magic != MAGIC {
                return Err(RegionError::Invalid("wrong magic at offset 0".into()));
            }
            // Read once: the creator may still be writing, or anyone may scribble.
            let (version, header_bytes) = (std::ptr::read_volatile(&h.version), std::ptr::read_volatile(&h.header_bytes));
            let (ring_slots, live_slots) = (std::ptr::read_volatile(&h.ring_slots), std::ptr::read_volatile(&h.live_slots));
            if version != FORMAT_VERSION {
                return Err(RegionError::Invalid(format!(
                    "format version {version} at offset {} (this collector reads {FORMAT_VERSION})",
                    offset_of!(Header, version)
                )));
            }
            if header_bytes as usize != HEADER_BYTES {
                return Err(RegionError::Invalid(format!(
                    "header size {header_bytes} at offset {} (expected {HEADER_BYTES})",
                    offset_of!(Header, header_bytes)
                )));
            }
            let ok_sizes = ring_slots.is_power_of_two()
                && ring_slots <= MAX_RING_SLOTS
                && live_slots.is_power_of_two()
                && live_slots <= MAX_LIVE_SLOTS
                && region_bytes(ring_slots, live_slots) as u64 == file_len;
            if !ok_sizes {
                return Err(RegionError::Invalid(format!(
                    "table sizes at offset {} (ring {ring_slots}, live {live_slots}) do not match the file's {file_len} bytes",
                    offset_of!(Header, ring_slots)
                )));
            }
            if h.info_len.load(Ordering::Acquire) as usize > crate::layout::INFO_BYTES {
                return Err(RegionError::Invalid(format!("info length at offset {} out of range", offset_of!(Header, info_len))));
            }
            region.ring_slots = ring_slots as usize;
            region.live_slots = live_slots as usize;
            Ok(region)
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The timestamp for an event about to be published (see `clock`).
    #[inline]
    pub fn stamp(&self) -> u64 {
        if self.header().created_tsc != 0 {
            crate::clock::ticks()
        } else {
            crate::clock::monotonic_ns()
        }
    }

    pub fn header(&self) -> &Header {
        unsafe { &*(self.base as *const Header) }
    }

    pub(crate) fn slots(&self) -> &[Slot] {
        unsafe { std::slice::from_raw_parts(self.base.add(HEADER_BYTES) as *const Slot, self.ring_slots) }
    }

    pub(crate) fn live_slots(&self) -> &[LiveSlot] {
        let off = HEADER_BYTES + self.ring_slots * SLOT_BYTES;
        unsafe { std::slice::from_raw_parts(self.base.add(off) as *const LiveSlot, self.live_slots) }
    }

    /// Ring slots as validated at create/open (the header's copy may have changed since).
    pub fn ring_capacity(&self) -> u64 {
        self.ring_slots as u64
    }

    /// Writes the shim's JSON description (once, at creation, before any event).
    pub fn set_info(&self, json: &[u8]) {
        let h = self.header();
        let n = json.len().min(crate::layout::INFO_BYTES);
        unsafe {
            let dst = h.info.as_ptr() as *mut u8;
            std::ptr::copy_nonoverlapping(json.as_ptr(), dst, n);
        }
        h.info_len.store(n as u32, Ordering::Release);
    }

    pub fn info(&self) -> Vec<u8> {
        let h = self.header();
        let n = (h.info_len.load(Ordering::Acquire) as usize).min(crate::layout::INFO_BYTES);
        h.info[..n].to_vec()
    }

    pub fn count_problem(&self, p: crate::layout::Problem) {
        self.header().problems[p as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn problems(&self) -> [u64; crate::layout::PROBLEM_COUNT] {
        std::array::from_fn(|i| self.header().problems[i].load(Ordering::Relaxed))
    }

    /// Registers a mesh's chips (idempotent per mesh pointer). Returns its slot.
    pub fn register_mesh(&self, mesh: u64, chips: &[i32]) -> Option<usize> {
        use crate::layout::{MAX_MESH_CHIPS, MESH_SLOTS};
        if chips.len() > MAX_MESH_CHIPS || mesh == 0 {
            return None;
        }
        let h = self.header();
        for (i, slot) in h.meshes.iter().enumerate().take(MESH_SLOTS) {
            match slot.state.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    for (c, dst) in chips.iter().zip(slot.chips.iter()) {
                        dst.store(*c, Ordering::Relaxed);
                    }
                    slot.n_chips.store(chips.len() as u32, Ordering::Relaxed);
                    slot.mesh.store(mesh, Ordering::Relaxed);
                    slot.state.store(2, Ordering::Release);
                    return Some(i);
                }
                Err(_) => {
                    // Another writer owns this slot: wait for it only if it is still being written
                    // (a handful of stores), then compare.
                    while slot.state.load(Ordering::Acquire) == 1 {
                        std::hint::spin_loop();
                    }
                    // Retired slots (state 3: that mesh closed) keep their chips for
                    // readers of older events but never match a new mesh.
                    if slot.state.load(Ordering::Acquire) == 2
                        && slot.mesh.load(Ordering::Relaxed) == mesh
                        && self.mesh_chips(i) == chips
                    {
                        return Some(i);
                    }
                }
            }
        }
        None
    }

    /// Chips of mesh slot `i` (empty if unpublished or out of range).
    pub fn mesh_chips(&self, i: usize) -> Vec<i32> {
        use crate::layout::{MAX_MESH_CHIPS, MESH_SLOTS};
        if i >= MESH_SLOTS {
            return Vec::new();
        }
        let slot = &self.header().meshes[i];
        if !matches!(slot.state.load(Ordering::Acquire), 2 | 3) {
            return Vec::new();
        }
        let n = (slot.n_chips.load(Ordering::Relaxed) as usize).min(MAX_MESH_CHIPS);
        slot.chips[..n].iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }

    /// The published slot of a live (not retired) mesh, if registered.
    pub fn find_mesh(&self, mesh: u64) -> Option<usize> {
        self.header().meshes.iter().position(|s| {
            s.state.load(Ordering::Acquire) == 2 && s.mesh.load(Ordering::Relaxed) == mesh
        })
    }

    /// The mesh closed: its pointer may be reused by another mesh.
    pub fn retire_mesh(&self, i: usize) {
        if let Some(s) = self.header().meshes.get(i) {
            let _ = s.state.compare_exchange(2, 3, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    pub fn mesh_ptr(&self, i: usize) -> u64 {
        self.header().meshes.get(i).map(|s| s.mesh.load(Ordering::Acquire)).unwrap_or(0)
    }

    pub fn mark_state(&self, bit: u32) {
        self.header().state.fetch_or(bit, Ordering::AcqRel);
    }

    pub fn unlink(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.len);
        }
    }
}

pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_is_in_place_when_the_region_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let w = Region::create_with_info(&path, 16, 16, std::process::id(), 1, br#"{"tool":"x"}"#).unwrap();
        assert_eq!(Region::open(&path).unwrap().info(), br#"{"tool":"x"}"#);
        w.set_info(b"{}");
        assert_eq!(Region::open(&path).unwrap().info(), b"{}");
    }
}
