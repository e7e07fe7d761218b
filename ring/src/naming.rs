//! Where regions live and how their file names identify a process.
//!
//! `ttalloc-<uid>-<pid>-<start_ticks>` in `$TTALLOC_SHM_DIR` (default `/dev/shm`).
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

pub fn file_name(uid: u32, pid: u32, start_ticks: u64) -> String {
    format!("{PREFIX}{uid}-{pid}-{start_ticks}")
}

/// Parses a region file name into (uid, pid, start_ticks).
pub fn parse_file_name(name: &str) -> Option<(u32, u32, u64)> {
    let rest = name.strip_prefix(PREFIX)?;
    let mut it = rest.splitn(3, '-');
    let uid = it.next()?.parse().ok()?;
    let pid = it.next()?.parse().ok()?;
    let start = it.next()?.parse().ok()?;
    Some((uid, pid, start))
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
        let n = file_name(1000, 4242, 987654);
        assert_eq!(parse_file_name(&n), Some((1000, 4242, 987654)));
        assert_eq!(parse_file_name("ttalloc-x-1-2"), None);
        assert_eq!(parse_file_name("other-1-2-3"), None);
    }
    #[test]
    fn own_start_time_is_readable() {
        let me = std::process::id();
        let t = process_start_ticks(me).expect("own stat");
        assert!(process_alive(me, t));
        assert!(!process_alive(me, t + 1));
    }
}
