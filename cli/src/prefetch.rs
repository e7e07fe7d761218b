//! Reading ahead: a [`Source`] decoded on a second thread, in batches, while
//! the caller applies the records already decoded. Decoding is about a third
//! of a summary's work, so with a second core a replay takes the time of the
//! rest; on one core it costs a channel message per `BATCH` records.
//!
//! The caller sees each record by reference and the emptied batch goes back:
//! records are dropped, and batches reused, on the decoding thread, so the
//! applying thread (the slower one) neither moves nor drops them.

use crate::source::{Error, Source};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;
use ttalloc_trace::Record;

/// Records per message: large enough that the hand-over is noise, small
/// enough that a batch is still in cache when the consumer reads it.
const BATCH: usize = 1024;
/// Batches decoded ahead of the consumer at most.
const AHEAD: usize = 4;
/// How far ahead the consumer is shown a record (for `Model::prefetch`).
pub const LOOK_AHEAD: usize = ttalloc_trace::Model::PREFETCH_AHEAD;

enum Msg {
    Batch(Vec<Record>),
    /// The end of the file (clean, cut, or an error after the records before it).
    End(Box<Source>, Option<Error>),
}

enum Reading {
    /// No thread could be started.
    Inline(Box<Source>),
    Ahead { rx: Receiver<Msg>, spent: Sender<Vec<Record>>, thread: JoinHandle<()> },
    /// The end was reached: the source, for its `cut`.
    Done(Box<Source>),
    /// Given up (the thread failed, or the consumer is being dropped).
    Stopped,
}

pub struct Prefetch {
    reading: Reading,
    /// Records handed to the caller so far (as `Source::ordinal`).
    pub ordinal: u64,
}

impl Prefetch {
    pub fn start(src: Source) -> Prefetch {
        let (tx, rx) = sync_channel(AHEAD);
        let (spent, reuse) = channel();
        // The source is handed over once the thread runs, so a failed spawn keeps it here.
        let (hand, take) = channel::<Box<Source>>();
        let spawned = std::thread::Builder::new().name("ttalloc-read".into()).spawn(move || {
            if let Ok(src) = take.recv() {
                read_ahead(src, tx, reuse);
            }
        });
        let reading = match spawned {
            Ok(thread) => match hand.send(Box::new(src)) {
                Ok(()) => Reading::Ahead { rx, spent, thread },
                Err(e) => Reading::Inline(e.0),
            },
            Err(_) => Reading::Inline(Box::new(src)),
        };
        Prefetch { reading, ordinal: 0 }
    }

    /// Calls `f` with each record, its ordinal and the record `LOOK_AHEAD`
    /// after it when that one is already decoded (for `Model::prefetch`), in
    /// file order, to the end:
    /// `Ok` for a clean or cut end (see `finished`), the error of a corrupt
    /// record (after the records before it).
    pub fn each(&mut self, mut f: impl FnMut(u64, &Record, Option<&Record>)) -> Result<(), Error> {
        let (rx, spent) = match &mut self.reading {
            Reading::Inline(src) => {
                while let Some(r) = src.next_record()? {
                    f(src.ordinal, &r, None);
                }
                self.ordinal = src.ordinal;
                return Ok(());
            }
            Reading::Ahead { rx, spent, .. } => (rx, spent),
            Reading::Done(_) | Reading::Stopped => return Ok(()),
        };
        let end = loop {
            match rx.recv() {
                Ok(Msg::Batch(b)) => {
                    for (i, r) in b.iter().enumerate() {
                        self.ordinal += 1;
                        f(self.ordinal, r, b.get(i + LOOK_AHEAD));
                    }
                    let _ = spent.send(b);
                }
                Ok(Msg::End(src, failed)) => break Some((src, failed)),
                Err(_) => break None,
            }
        };
        let Some((src, failed)) = end else {
            self.reading = Reading::Stopped;
            return Err(Error::new("ttalloc", "the trace reading thread failed"));
        };
        if let Reading::Ahead { thread, .. } = std::mem::replace(&mut self.reading, Reading::Done(src)) {
            let _ = thread.join();
        }
        failed.map_or(Ok(()), Err)
    }

    /// The source, once `each` has reached its end (for `cut`).
    pub fn finished(&self) -> Option<&Source> {
        match &self.reading {
            Reading::Done(src) => Some(src),
            _ => None,
        }
    }
}

fn read_ahead(mut src: Box<Source>, tx: SyncSender<Msg>, reuse: Receiver<Vec<Record>>) {
    loop {
        // A batch back from the consumer: its records are dropped here.
        let mut batch = reuse.try_recv().unwrap_or_else(|_| Vec::with_capacity(BATCH));
        batch.clear();
        let end = match src.next_batch(&mut batch, BATCH) {
            Ok(true) => None,
            Ok(false) => Some(None),
            Err(e) => Some(Some(e)),
        };
        // A send fails only when the consumer is gone: stop.
        if !batch.is_empty() && tx.send(Msg::Batch(batch)).is_err() {
            return;
        }
        if let Some(failed) = end {
            let _ = tx.send(Msg::End(src, failed));
            return;
        }
    }
}

impl Drop for Prefetch {
    /// The consumer stopped (done, or gave up on an error): the thread stops
    /// at its next send, and its source (and progress bar) is dropped with it.
    fn drop(&mut self) {
        if let Reading::Ahead { rx, spent, thread } = std::mem::replace(&mut self.reading, Reading::Stopped) {
            // The receiver goes first, so the thread's next send fails and it ends.
            drop((rx, spent));
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttalloc_trace::*;

    /// A one-process trace of `n` alloc records, cut short (no footer) or
    /// `whole`, and where each record starts. A footer that says one process
    /// lets `Source` read without merging processes.
    fn trace(path: &std::path::Path, n: u64, whole: bool) -> Vec<u64> {
        let header = TraceHeader { magic: TRACE_MAGIC.into(), format_version: TRACE_FORMAT_VERSION, tool_version: "t".into(), host: "h".into(), collector_pid: 1, started_real_ns: 1, command: vec![] };
        let mut w = TraceWriter::new(Vec::new(), &header).unwrap();
        w.write(&Record::Process(Box::new(ProcessInfo { p: 0, pid: 9, start_ticks: 0, exe: "t".into(), created_mono_ns: 0, created_real_ns: 0, shim_info: "{}".into(), attach: "from-start".into() }))).unwrap();
        let mut starts = Vec::new();
        for seq in 0..n {
            starts.push(w.bytes());
            let ev = Ev { p: 0, seq, ts_ns: 10 * seq, tid: 1 };
            w.write(&Record::Alloc(AllocRec { ev, chip: (seq % 8) as i32, btype: 1, flags: 0, object: seq, address: 64 * seq, size: 4096, page_size: 1024 })).unwrap();
        }
        if whole {
            w.write(&Record::Footer(Footer { records: n + 2, processes: 1, dropped: 0, unknown_frees: 0, ended_real_ns: 1 })).unwrap();
        }
        std::fs::write(path, w.into_inner()).unwrap();
        starts
    }

    fn all(mut next: impl FnMut() -> Result<Option<Record>, Error>) -> (Vec<Record>, Option<String>) {
        let mut got = Vec::new();
        loop {
            match next() {
                Ok(Some(r)) => got.push(r),
                Ok(None) => return (got, None),
                Err(e) => return (got, Some(e.to_string())),
            }
        }
    }

    /// Every record `each` gives, checking the ordinals count up from 1 and
    /// that each record shown ahead is the one `LOOK_AHEAD` later; and its error.
    fn ahead(p: &mut Prefetch) -> (Vec<Record>, Option<String>) {
        let mut got = Vec::new();
        let mut shown: Vec<(usize, Record)> = Vec::new();
        let first = p.ordinal;
        let end = p.each(|ord, r, a| {
            assert_eq!(ord, first + got.len() as u64 + 1);
            if let Some(a) = a {
                shown.push((got.len() + LOOK_AHEAD, a.clone()));
            }
            got.push(r.clone());
        });
        for (i, a) in &shown {
            assert!(got.get(*i) == Some(a), "record {i} shown ahead is not the one read there");
        }
        // Shown for all but the last few of each batch (not across a hand-over).
        let batches = got.len().div_ceil(BATCH);
        assert!(shown.len() + batches * LOOK_AHEAD >= got.len(), "{} of {} shown ahead", shown.len(), got.len());
        (got, end.err().map(|e| e.to_string()))
    }

    /// Across batch boundaries, to a cut end and to a corrupt record, the read-ahead
    /// source returns what the source itself does, with the same ordinals.
    #[test]
    fn reading_ahead_returns_what_the_source_does() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("t");
        for (n, whole) in [0, 1, BATCH as u64, 2 * BATCH as u64 + 7].into_iter().flat_map(|n| [(n, false), (n, true)]) {
            trace(&path, n, whole);
            let mut src = Source::open(&path, None).unwrap();
            let (want, want_err) = all(|| src.next_record());
            let mut p = Prefetch::start(Source::open(&path, None).unwrap());
            let (got, err) = ahead(&mut p);
            assert_eq!((got.len(), &err), (want.len(), &want_err), "{n} records");
            assert!(got == want, "{n} records");
            assert_eq!(p.ordinal, src.ordinal);
            assert_eq!(p.finished().unwrap().ordinal, src.ordinal, "the source counted in batches as one by one");
            assert_eq!(p.finished().unwrap().cut, src.cut, "{n} records");
            assert_eq!(src.cut.is_some(), !whole, "no footer: a cut");
            assert_eq!(ahead(&mut p), (vec![], None), "the end stays the end");
        }
        // A corrupt record mid-file: the records before it, then its error.
        for whole in [false, true] {
            let starts = trace(&path, 3 * BATCH as u64, whole);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[starts[BATCH + 5] as usize] = 0xc1;
            std::fs::write(&path, bytes).unwrap();
            let mut src = Source::open(&path, None).unwrap();
            let (want, want_err) = all(|| src.next_record());
            let mut p = Prefetch::start(Source::open(&path, None).unwrap());
            let (got, err) = ahead(&mut p);
            assert_eq!((got.len(), &err), (want.len(), &want_err));
            assert_eq!(got.len(), 2 + BATCH + 5, "the header, the process, the records before the corrupt one");
            assert!(err.as_ref().is_some_and(|e| e.contains("corrupt record")), "{err:?}");
        }
    }
}
