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
/// Live-table slots the later generations may add up to (64 B each: 1 GiB of address
/// space, reserved in the file but backed only once a generation is in use).
const MAX_LIVE_GROWTH: u64 = 1 << 24;
const MAX_LIVE_GENS: u32 = 8;
/// `madvise` advice (Linux 5.14+): fault the range in writable, failing instead of SIGBUS.
const MADV_POPULATE_WRITE: libc::c_int = 23;

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
    live_gens_max: usize,
    /// The creator's file (device, inode), to reserve live-table generations in it
    /// later; `None` when opened (only the creator grows the table).
    created: Option<(u64, u64)>,
}

// The region is shared memory accessed only through atomics and seqlocked copies.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

fn last_os_error(what: &'static str) -> RegionError {
    RegionError::Io(what, std::io::Error::last_os_error())
}

/// Live-table generations a region with `live_slots` in generation 0 has room for:
/// generation g holds `live_slots << g`, so a process with far more live buffers than
/// the configured table still finds short probes (see `live.rs`).
pub fn live_generations(live_slots: u64) -> u32 {
    let total = |g: u32| live_slots.saturating_mul((1u64 << g) - 1);
    (1..=MAX_LIVE_GENS).rev().find(|g| total(*g) <= MAX_LIVE_GROWTH.max(live_slots)).unwrap_or(1)
}

/// First slot (from the live table's start) and length of generation `g`.
fn generation_span(live_slots: usize, g: usize) -> (usize, usize) {
    (live_slots * ((1 << g) - 1), live_slots << g)
}

/// Bytes from the file's start to the end of live-table generation `gens - 1`.
fn bytes_through(ring_slots: u64, live_slots: u64, gens: u32) -> usize {
    let (first, _) = generation_span(live_slots as usize, gens as usize);
    HEADER_BYTES + (ring_slots as usize + first) * SLOT_BYTES
}

/// The file's length: header, ring, every live-table generation.
pub fn region_bytes(ring_slots: u64, live_slots: u64) -> usize {
    bytes_through(ring_slots, live_slots, live_generations(live_slots))
}

/// The part of the file in use from the start: header, ring, generation 0.
fn initial_bytes(ring_slots: u64, live_slots: u64) -> usize {
    bytes_through(ring_slots, live_slots, 1)
}

impl Region {
    /// Creates a new region file (mode 0600, exclusive) with the space it uses
    /// reserved up front, so a full `/dev/shm` fails here instead of raising
    /// SIGBUS in the host process later. The later live-table generations are a
    /// hole in the file until one is needed (`grow_live`).
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
        let gens_max = live_generations(live_slots);
        let len = bytes_through(ring_slots, live_slots, gens_max);
        let used = initial_bytes(ring_slots, live_slots);
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
            let fail = |e: RegionError| -> Result<Region, RegionError> {
                libc::close(fd);
                libc::unlink(cpath.as_ptr());
                Err(e)
            };
            // umask cannot widen 0600, but make the mode explicit anyway.
            libc::fchmod(fd, 0o600);
            if libc::ftruncate(fd, len as libc::off_t) != 0 {
                return fail(last_os_error("size ring file"));
            }
            let rc = libc::posix_fallocate(fd, 0, used as libc::off_t);
            if rc != 0 {
                return fail(RegionError::Io("reserve ring space", std::io::Error::from_raw_os_error(rc)));
            }
            let base = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0);
            if base == libc::MAP_FAILED {
                return fail(last_os_error("map ring"));
            }
            // Pre-faulted: first-lap page faults were the whole p99 of the hook
            // (docs/performance.md). Only the part in use: the rest stays a hole.
            let populated = libc::mmap(
                base,
                used,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED | libc::MAP_POPULATE,
                fd,
                0,
            );
            if populated == libc::MAP_FAILED {
                let e = last_os_error("map ring");
                libc::munmap(base, len);
                return fail(e);
            }
            let created = file_id(fd);
            libc::close(fd);
            let region = Region {
                base: base as *mut u8,
                len,
                path: path.to_path_buf(),
                ring_slots: ring_slots as usize,
                live_slots: live_slots as usize,
                live_gens_max: gens_max as usize,
                created,
            };
            let h = &mut *(base as *mut Header);
            h.version = FORMAT_VERSION;
            h.header_bytes = HEADER_BYTES as u32;
            h.ring_slots = ring_slots;
            h.live_slots = live_slots;
            h.live_gens_max = gens_max;
            h.live_gens.store(1, Ordering::Relaxed);
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
                Region { base: base as *mut u8, len: file_len as usize, path: path.to_path_buf(), ring_slots: 0, live_slots: 0, live_gens_max: 0, created: None };
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
            let gens_max = std::ptr::read_volatile(&h.live_gens_max);
            let ok_sizes = ring_slots.is_power_of_two()
                && ring_slots <= MAX_RING_SLOTS
                && live_slots.is_power_of_two()
                && live_slots <= MAX_LIVE_SLOTS
                && gens_max == live_generations(live_slots)
                && region_bytes(ring_slots, live_slots) as u64 == file_len;
            if !ok_sizes {
                return Err(RegionError::Invalid(format!(
                    "table sizes at offset {} (ring {ring_slots}, live {live_slots} in {gens_max} generations) do not match the file's {file_len} bytes",
                    offset_of!(Header, ring_slots)
                )));
            }
            if h.info_len.load(Ordering::Acquire) as usize > crate::layout::INFO_BYTES {
                return Err(RegionError::Invalid(format!("info length at offset {} out of range", offset_of!(Header, info_len))));
            }
            region.ring_slots = ring_slots as usize;
            region.live_slots = live_slots as usize;
            region.live_gens_max = gens_max as usize;
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

    /// Live-table generations in use now (1..=what the file has room for: the header's
    /// count is shared memory, so it is clamped, never trusted).
    #[inline]
    pub(crate) fn live_gens(&self) -> usize {
        (self.header().live_gens.load(Ordering::Acquire) as usize).clamp(1, self.live_gens_max.max(1))
    }

    /// Generation 0's slots (where everything is until a process outgrows it).
    #[inline]
    pub(crate) fn live_generation0(&self) -> &[LiveSlot] {
        let off = HEADER_BYTES + self.ring_slots * SLOT_BYTES;
        unsafe { std::slice::from_raw_parts(self.base.add(off) as *const LiveSlot, self.live_slots) }
    }

    /// The slots of live-table generation `g` (< `live_gens_max`).
    #[inline]
    pub(crate) fn live_generation(&self, g: usize) -> &[LiveSlot] {
        let (first, n) = generation_span(self.live_slots, g.min(self.live_gens_max.saturating_sub(1)));
        let off = HEADER_BYTES + (self.ring_slots + first) * SLOT_BYTES;
        unsafe { std::slice::from_raw_parts(self.base.add(off) as *const LiveSlot, n) }
    }

    /// Puts live-table generation `from` in use (the newest, `from - 1`, is filling up).
    /// Once per generation per process: reserves its space in the shm dir and faults it
    /// in (two syscalls), so no hook takes a page fault or a SIGBUS on it later. False
    /// when the file has no further generation, this process is not the creator, or the
    /// space could not be reserved (then no one tries again).
    /// With `wait`, a thread that finds another one reserving waits for it (bounded:
    /// the reserving thread could have been cancelled mid-way).
    #[cold]
    pub(crate) fn grow_live(&self, from: usize, wait: bool) -> bool {
        let h = self.header();
        let Some(created) = self.created else { return false };
        if from >= self.live_gens_max {
            return false;
        }
        if h.live_growing.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_err() {
            // Another thread is reserving (its generation is there in a moment), or it failed.
            for _ in 0..if wait { 100_000 } else { 0 } {
                if h.live_growing.load(Ordering::Acquire) != 1 {
                    break;
                }
                std::thread::yield_now();
            }
            return h.live_gens.load(Ordering::Acquire) as usize > from;
        }
        if h.live_gens.load(Ordering::Acquire) as usize > from {
            h.live_growing.store(0, Ordering::Release);
            return true;
        }
        let generation = self.live_generation(from);
        let (off, len) = (generation.as_ptr() as usize - self.base as usize, std::mem::size_of_val(generation));
        // Reopened by path, not a descriptor kept open: a host that closes every
        // descriptor could have handed that number to one of its own files.
        let reserved = CString::new(self.path.as_os_str().as_bytes()).is_ok_and(|p| unsafe {
            let fd = libc::open(p.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW);
            // SAFETY: [off, off + len) lies inside the file (region_bytes), checked to be ours.
            let ok = fd >= 0 && file_id(fd) == Some(created) && libc::posix_fallocate(fd, off as libc::off_t, len as libc::off_t) == 0;
            if fd >= 0 {
                libc::close(fd);
            }
            ok
        });
        if !reserved {
            h.live_growing.store(2, Ordering::Release);
            return false;
        }
        // Best effort: without it (kernels before 5.14) the pages fault in on first use.
        unsafe { libc::madvise(generation.as_ptr() as *mut libc::c_void, len, MADV_POPULATE_WRITE) };
        h.live_gens.store(from as u32 + 1, Ordering::Release);
        h.live_growing.store(0, Ordering::Release);
        true
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

/// (device, inode) of an open file.
fn file_id(fd: libc::c_int) -> Option<(u64, u64)> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev as u64, st.st_ino as u64))
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

    /// The later live-table generations are a hole in the file (no shm used) until one is
    /// put in use, and then exactly that generation is backed.
    #[test]
    fn later_generations_take_space_only_once_in_use() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let (ring, live) = (1024u64, 1u64 << 14);
        let r = Region::create(&path, ring, live, std::process::id(), 1).unwrap();
        let backed = || std::fs::metadata(&path).unwrap().blocks() as usize * 512;
        let (used, len) = (initial_bytes(ring, live), region_bytes(ring, live));
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, len);
        assert!(len > 8 * used, "{len} bytes reserved for {used} in use");
        assert!(backed() >= used && backed() < used + (1 << 20), "{} bytes backed, {used} in use", backed());
        assert!(r.grow_live(1, false));
        assert_eq!(r.live_gens(), 2);
        let gen1 = (live as usize) * 2 * SLOT_BYTES;
        assert!(backed() >= used + gen1 && backed() < used + gen1 + (1 << 20), "{} bytes backed", backed());
        // A collector's mapping cannot grow it.
        assert!(!Region::open(&path).unwrap().grow_live(2, false));
    }
}
