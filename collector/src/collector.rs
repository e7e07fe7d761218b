//! The collector loop: discover regions, claim them, drain them, notice
//! process exit (also SIGKILL and exec), and finish each process's stream.

use crate::discover;
use crate::session::Session;
use crate::sink::Sink;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use ttalloc_ring::layout::STATE_EXITED;
use ttalloc_ring::naming::{self, RegionName};
use ttalloc_ring::Region;

/// Which regions this collector takes.
pub enum Scope {
    /// Every region of our uid (two-terminal mode).
    All,
    /// Launch mode: the child and its descendants.
    Descendants { root: u32, pids: HashSet<u32>, since_real_ns: u64 },
}

pub struct Collector {
    pub dir: PathBuf,
    pub sessions: Vec<Session>,
    seen: HashSet<RegionName>,
    refused: HashMap<PathBuf, String>,
    scope: Scope,
    pub sink: Sink,
    me: u32,
}

impl Collector {
    pub fn new(dir: PathBuf, scope: Scope, sink: Sink) -> Collector {
        Collector { dir, sessions: Vec::new(), seen: HashSet::new(), refused: HashMap::new(), scope, sink, me: std::process::id() }
    }

    fn wanted(&mut self, name: &RegionName, region: &Region) -> bool {
        match &mut self.scope {
            Scope::All => true,
            Scope::Descendants { root, pids, since_real_ns } => {
                if name.pid == *root || pids.contains(&name.pid) {
                    return true;
                }
                match discover::parent_of(name.pid) {
                    Some(ppid) if ppid == *root || pids.contains(&ppid) => {
                        pids.insert(name.pid);
                        true
                    }
                    // Gone before we looked: ours if it started after we did.
                    None => region.header().created_real_ns >= *since_real_ns,
                    Some(_) => false,
                }
            }
        }
    }

    /// Takes the region unless a live collector already drains it.
    fn claim(&self, region: &Region) -> bool {
        let slot = &region.header().collector_pid;
        let cur = slot.load(Ordering::Acquire);
        if cur == self.me {
            return true;
        }
        if cur != 0 && unsafe { libc::kill(cur as i32, 0) } == 0 {
            return false;
        }
        slot.compare_exchange(cur, self.me, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    pub fn discover(&mut self) {
        for (name, path) in discover::scan(&self.dir) {
            if self.seen.contains(&name) || self.refused.contains_key(&path) {
                continue;
            }
            let region = match Region::open(&path) {
                Ok(r) => r,
                Err(e) => {
                    // A region still being created looks invalid for a moment: look again
                    // while its process lives; refuse (once, with the reason) otherwise.
                    let young = matches!(e, ttalloc_ring::RegionError::Invalid(_))
                        && naming::process_alive(name.pid, name.start_ticks);
                    if !young {
                        let msg = format!("{}: {e}", path.display());
                        eprintln!("ttalloc-collect: {msg}");
                        self.refused.insert(path, msg);
                    }
                    continue;
                }
            };
            if !self.wanted(&name, &region) {
                self.seen.insert(name);
                continue;
            }
            if !self.claim(&region) {
                eprintln!("ttalloc-collect: {}: another collector is draining it", path.display());
                self.seen.insert(name);
                continue;
            }
            self.seen.insert(name);
            let p = self.sessions.len() as u32;
            let exe = discover::exe_of(name.pid);
            let sink = &mut self.sink;
            let s = Session::start(name, p, region, exe, &mut |r| sink.emit(r));
            self.sessions.push(s);
        }
    }

    /// Drains every active session once. Returns events handled.
    pub fn drain(&mut self) -> u64 {
        let mut n = 0;
        let sink = &mut self.sink;
        for s in self.sessions.iter_mut().filter(|s| !s.finished) {
            n += s.drain(1 << 16, &mut |r| sink.emit(r));
        }
        n
    }

    /// Finishes sessions whose process is gone (or replaced by exec).
    pub fn reap(&mut self) {
        let newest: HashMap<(u32, u64), u64> = self.sessions.iter().fold(HashMap::new(), |mut m, s| {
            let e = m.entry((s.name.pid, s.name.start_ticks)).or_insert(0);
            *e = (*e).max(s.name.image);
            m
        });
        let sink = &mut self.sink;
        for s in self.sessions.iter_mut().filter(|s| !s.finished) {
            let replaced = newest[&(s.name.pid, s.name.start_ticks)] > s.name.image;
            let alive = naming::process_alive(s.name.pid, s.name.start_ticks);
            if alive && !replaced {
                continue;
            }
            let emit = &mut |r| sink.emit(r);
            s.drain_dead(emit);
            let exited = s.region.header().state.load(Ordering::Acquire) & STATE_EXITED != 0;
            let how = if replaced { "exec" } else if exited { "exited" } else { "killed" };
            s.end(how, emit);
            s.region.unlink();
        }
    }

    /// Stops: drains what is there, ends every open stream, and leaves live
    /// processes' regions for a later collector (which will resync).
    pub fn stop(&mut self) {
        self.drain();
        self.reap();
        let sink = &mut self.sink;
        for s in self.sessions.iter_mut().filter(|s| !s.finished) {
            // Everything published by now, in bounded batches (a ring can hold 2^28 events).
            let reader = ttalloc_ring::RingReader::new(&s.region);
            let mut left = reader.head().saturating_sub(reader.tail());
            while left > 0 {
                let n = s.drain(left.min(1 << 16), &mut |r| sink.emit(r));
                if n == 0 {
                    break;
                }
                left = left.saturating_sub(n);
            }
            s.end("collector-stopped", &mut |r| sink.emit(r));
            s.region.header().collector_pid.store(0, Ordering::Release);
        }
    }

    /// The end of a drain loop pass: the live model catches up.
    pub fn pass_done(&mut self) {
        let attached = self.attachments();
        self.sink.pass_done(attached);
    }

    /// Per process (its index in the trace): still being drained.
    pub fn attachments(&self) -> Vec<bool> {
        self.sessions.iter().map(|s| !s.finished).collect()
    }

    pub fn active(&self) -> usize {
        self.sessions.iter().filter(|s| !s.finished).count()
    }
}
