//! Where regions live and how their file names identify a process.
//!
//! `ttalloc-<uid>-<pid>-<start_ticks>-<image>` in `$TTALLOC_SHM_DIR` (default
//! `/dev/shm`). `image` (CLOCK_MONOTONIC ns at creation) tells apart the
//! images of one process across `exec`, which keeps pid and start time.
//! The uid in the name lets a collector skip other users' files without
//! opening them; ownership and mode are still verified on open.

use std::path::PathBuf;

pub const PREFIX: &str = "ttalloc-";

pub fn shm_dir() -> PathBuf {
    std::env::var_os("TTALLOC_SHM_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegionName {
    pub uid: u32,
    pub pid: u32,
    pub start_ticks: u64,
    pub image: u64,
}

impl RegionName {
    pub fn file_name(&self) -> String {
        format!("{PREFIX}{}-{}-{}-{}", self.uid, self.pid, self.start_ticks, self.image)
    }

    pub fn parse(name: &str) -> Option<RegionName> {
        let rest = name.strip_prefix(PREFIX)?;
        let mut it = rest.split('-');
        let n = RegionName {
            uid: it.next()?.parse().ok()?,
            pid: it.next()?.parse().ok()?,
            start_ticks: it.next()?.parse().ok()?,
            image: it.next()?.parse().ok()?,
        };
        it.next().is_none().then_some(n)
    }
}

/// Start time (clock ticks since boot) of a process, from `/proc/PID/stat`.
pub fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// True while the process that created a region is still the one running under that pid.
pub fn process_alive(pid: u32, start_ticks: u64) -> bool {
    process_start_ticks(pid) == Some(start_ticks)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names_round_trip() {
        let n = RegionName { uid: 1000, pid: 4242, start_ticks: 987654, image: 5 };
        assert_eq!(RegionName::parse(&n.file_name()), Some(n));
        assert_eq!(RegionName::parse("ttalloc-x-1-2-3"), None);
        assert_eq!(RegionName::parse("ttalloc-1-2-3-4-5"), None);
        assert_eq!(RegionName::parse("other-1-2-3-4"), None);
    }
    #[test]
    fn own_start_time_is_readable() {
        let me = std::process::id();
        let t = process_start_ticks(me).expect("own stat");
        assert!(process_alive(me, t));
        assert!(!process_alive(me, t + 1));
    }
}
