//! The live model on a thread of its own. The drain loop's job is to empty
//! the rings and write the trace; the per-chip live state (`trace::Model`,
//! about 40 % of the work per event) and the snapshots it feeds to the live
//! view and the metrics endpoint are kept here, from the records handed over
//! in batches. With a core for each, the collector drains at the pace of
//! the slower half instead of the sum of both.

use crate::snapshot::Publisher;
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::Duration;
use std::thread::JoinHandle;
use ttalloc_trace::{Model, Record};

/// Records per hand-over (plus one at the end of every drain pass).
const BATCH: usize = 4096;
/// Batches in flight before the drain loop waits for the model (≈ 4.5 MiB).
const IN_FLIGHT: usize = 16;
/// With nothing handed over, the thread still looks this often whether a
/// snapshot is due (records that came just after the last one).
const IDLE_TICK: Duration = Duration::from_millis(50);

/// What the model thread owns, and gives back when it ends.
pub struct Live {
    pub model: Model,
    pub publisher: Option<Publisher>,
    /// Per process index: still being drained (the snapshots label processes by it).
    pub attached: Vec<bool>,
}

impl Live {
    /// A snapshot for the live view, if one is due.
    pub fn tick(&mut self) {
        if let Some(p) = &mut self.publisher {
            p.tick(&self.model, &attached_in(&self.attached));
        }
    }

    /// The last snapshot, saying why the trace ended.
    pub fn finish(&mut self, why: String) {
        if let Some(p) = &mut self.publisher {
            p.finish(&self.model, &attached_in(&self.attached), why);
        }
    }
}

/// `attached` (per process index) as the snapshots ask it.
fn attached_in(attached: &[bool]) -> impl Fn(u32) -> bool + '_ {
    |p| attached.get(p as usize).copied().unwrap_or(false)
}

struct Batch {
    records: Vec<Record>,
    /// Sent at the end of a drain pass: who is attached now.
    attached: Option<Vec<bool>>,
}

pub struct ModelThread {
    tx: SyncSender<Batch>,
    /// Emptied batches coming back: a batch is 288 KiB, and a fresh one per
    /// hand-over cost page faults here and unmapping (TLB shootdowns) there.
    spent: Receiver<Vec<Record>>,
    batch: Vec<Record>,
    /// The attachments last handed over (an idle pass with no change sends nothing).
    attached: Vec<bool>,
    thread: JoinHandle<Option<Box<Live>>>,
}

impl ModelThread {
    /// Starts the thread with `live`; gives it back if no thread can be started.
    pub fn start(live: Box<Live>) -> Result<ModelThread, Box<Live>> {
        let (tx, rx) = sync_channel::<Batch>(IN_FLIGHT);
        // The state is handed over once the thread runs, so a failed spawn keeps it here.
        let (hand, take) = channel::<Box<Live>>();
        let (give_back, spent) = channel::<Vec<Record>>();
        let spawned = std::thread::Builder::new().name("ttalloc-model".into()).spawn(move || {
            let live = take.recv().ok()?;
            Some(keep(live, rx, give_back))
        });
        match spawned {
            Ok(thread) => {
                hand.send(live).map_err(|e| e.0)?;
                Ok(ModelThread { tx, spent, batch: Vec::with_capacity(BATCH), attached: Vec::new(), thread })
            }
            Err(_) => Err(live),
        }
    }

    /// Queues `r` for the model. False if the thread is gone (it panicked).
    #[inline]
    pub fn push(&mut self, r: Record) -> bool {
        self.batch.push(r);
        self.batch.len() < BATCH || self.send(None)
    }

    /// The end of a drain pass: hands over what is queued, and who is attached.
    pub fn pass_done(&mut self, attached: Vec<bool>) -> bool {
        if self.batch.is_empty() && attached == self.attached {
            return true;
        }
        self.attached.clone_from(&attached);
        self.send(Some(attached))
    }

    fn send(&mut self, attached: Option<Vec<bool>>) -> bool {
        let next = self.spent.try_recv().unwrap_or_else(|_| Vec::with_capacity(BATCH));
        let records = std::mem::replace(&mut self.batch, next);
        self.tx.send(Batch { records, attached }).is_ok()
    }

    /// Hands over the rest and waits for the model to catch up; its state
    /// comes back (None if the thread panicked).
    pub fn join(mut self) -> Option<Box<Live>> {
        let _ = self.send(None);
        drop(self.tx);
        self.thread.join().ok().flatten()
    }
}

/// The thread: apply every batch, publish a snapshot when one is due.
fn keep(mut live: Box<Live>, rx: Receiver<Batch>, give_back: Sender<Vec<Record>>) -> Box<Live> {
    loop {
        // Without a live view or metrics there is nothing to tick: sleep until records come.
        let next = match live.publisher {
            Some(_) => rx.recv_timeout(IDLE_TICK),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(mut b) => {
                live.model.apply_all(&b.records, &mut |_| {});
                b.records.clear();
                let _ = give_back.send(b.records);
                if let Some(a) = b.attached {
                    live.attached = a;
                    live.tick();
                }
            }
            Err(RecvTimeoutError::Timeout) => live.tick(),
            Err(RecvTimeoutError::Disconnected) => return live,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tests::{alloc, free, process};
    use crate::snapshot::Snapshot;
    use std::time::Instant;
    use ttalloc_ring::BufferType;

    /// Two processes allocating and freeing on 8 chips: 3 batches' worth and a bit.
    fn records() -> Vec<Record> {
        let mut v = vec![process(0, 100, "a"), process(1, 200, "b")];
        for i in 0..(3 * BATCH as u64 + 100) {
            let p = (i % 2) as u32;
            let t = if i % 3 == 0 { BufferType::L1 } else { BufferType::Dram };
            v.push(alloc(p, 2 * i, (i % 8) as i32, t, 4096 + i));
            if i % 4 != 0 {
                v.push(free(p, 2 * i + 1, 2 * i));
            }
        }
        v
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let t = Instant::now();
        while !cond() {
            assert!(t.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Handed over in full batches and at pass ends, the thread's model ends as
    /// the one the records applied inline give, as the live view sees it.
    #[test]
    fn the_thread_keeps_the_model_an_inline_apply_keeps() {
        let rs = records();
        let mut inline = Model::new();
        let mut t = ModelThread::start(Box::new(Live { model: Model::new(), publisher: None, attached: Vec::new() })).ok().unwrap();
        let mut last = Vec::new();
        for (i, r) in rs.iter().enumerate() {
            inline.apply(r, &mut |_| {});
            assert!(t.push(r.clone()));
            if i % 1000 == 999 {
                last = vec![true, i % 2000 == 999];
                assert!(t.pass_done(last.clone()));
            }
        }
        let live = t.join().unwrap();
        assert_eq!(live.model.records, rs.len() as u64);
        assert_eq!(live.attached, last, "the last pass's attachments");
        let attached = |p: u32| p == 0;
        assert_eq!(Snapshot::build(&live.model, &attached), Snapshot::build(&inline, &attached));
    }

    /// Snapshots are taken on the thread: after a pass, and — when records came
    /// too soon after the last snapshot — once it is due, with nothing more sent.
    #[test]
    fn snapshots_follow_the_model_even_when_nothing_more_comes() {
        let rs = records();
        let (first, rest) = rs.split_at(100);
        let publisher = Publisher::new(Duration::from_millis(300));
        let shared = publisher.shared.clone();
        let mut t = ModelThread::start(Box::new(Live { model: Model::new(), publisher: Some(publisher), attached: Vec::new() })).ok().unwrap();
        for r in first {
            t.push(r.clone());
        }
        t.pass_done(vec![true, true]);
        wait_for("the first snapshot", || shared.get().version == first.len() as u64);
        assert_eq!(shared.get().attached, 2);
        // Within 300 ms of the first: not published at the pass, but later, by the idle tick.
        for r in rest {
            t.push(r.clone());
        }
        t.pass_done(vec![true, false]);
        wait_for("the snapshot of everything", || shared.get().version == rs.len() as u64);
        assert_eq!(shared.get().attached, 1);
        let live = t.join().unwrap();
        assert_eq!(*shared.get(), Snapshot::build(&live.model, &|p| p == 0));
    }
}
