//! Finding regions: every `ttalloc-<uid>-…` file of our uid in the shm dir.

use std::path::{Path, PathBuf};
use ttalloc_ring::naming::RegionName;

pub fn scan(dir: &Path) -> Vec<(RegionName, PathBuf)> {
    let uid = unsafe { libc::geteuid() };
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<(RegionName, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = RegionName::parse(e.file_name().to_str()?)?;
            (name.uid == uid).then(|| (name, e.path()))
        })
        .collect();
    // Oldest image first, so a process's pre-exec region is handled before its successor.
    found.sort();
    found
}

/// Parent pid of a live process.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// The command line of a live process (None once it is gone).
pub fn exe_of(pid: u32) -> Option<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|s| !s.is_empty())
}
