//! Reading ahead: a [`Source`] decoded on a second thread, in batches, while
//! the caller applies the records already decoded. Decoding is about a third
//! of a summary's work, so with a second core a replay takes the time of the
//! rest; on one core it costs a channel message per `BATCH` records.

use crate::source::{Error, Source};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;
use ttalloc_trace::Record;

/// Records per message: large enough that the hand-over is noise, small
/// enough that a batch is still in cache when the consumer reads it.
const BATCH: usize = 1024;
/// Batches decoded ahead of the consumer at most.
const AHEAD: usize = 4;

enum Msg {
    Batch(Vec<Record>),
    /// The end of the file (clean, cut, or an error after the records before it).
    End(Box<Source>, Option<Error>),
}

pub struct Prefetch {
    /// The decoding thread's batches; None when it could not be started.
    rx: Option<Receiver<Msg>>,
    thread: Option<JoinHandle<()>>,
    batch: std::vec::IntoIter<Record>,
    /// The source: here from the start if reading inline, else once the thread is done.
    source: Option<Box<Source>>,
    /// Records returned so far (as `Source::ordinal`).
    pub ordinal: u64,
}

impl Prefetch {
    pub fn start(src: Source) -> Prefetch {
        let (tx, rx) = sync_channel(AHEAD);
        let src = Box::new(src);
        let mut p = Prefetch { rx: None, thread: None, batch: Vec::new().into_iter(), source: None, ordinal: 0 };
        // The source moves into the thread; if it cannot start, the source stays here.
        let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(src)));
        let theirs = std::sync::Arc::clone(&slot);
        let spawned = std::thread::Builder::new().name("ttalloc-read".into()).spawn(move || {
            if let Some(src) = theirs.lock().ok().and_then(|mut s| s.take()) {
                read_ahead(src, tx);
            }
        });
        match spawned {
            Ok(t) => {
                p.rx = Some(rx);
                p.thread = Some(t);
            }
            Err(_) => p.source = slot.lock().ok().and_then(|mut s| s.take()),
        }
        p
    }

    /// The next record, as [`Source::next_record`].
    #[inline]
    pub fn next_record(&mut self) -> Result<Option<Record>, Error> {
        match self.batch.next() {
            Some(r) => {
                self.ordinal += 1;
                Ok(Some(r))
            }
            None => self.refill(),
        }
    }

    #[cold]
    fn refill(&mut self) -> Result<Option<Record>, Error> {
        let Some(rx) = &self.rx else {
            // Reading inline.
            let src = self.source.as_mut().expect("an inline source");
            let r = src.next_record();
            self.ordinal = src.ordinal;
            return r;
        };
        loop {
            match rx.recv() {
                Ok(Msg::Batch(b)) => {
                    self.batch = b.into_iter();
                    if let Some(r) = self.batch.next() {
                        self.ordinal += 1;
                        return Ok(Some(r));
                    }
                }
                Ok(Msg::End(src, failed)) => {
                    self.source = Some(src);
                    return failed.map_or(Ok(None), Err);
                }
                // Disconnected: the end was already returned (or the thread died).
                Err(_) => {
                    return match &self.source {
                        Some(_) => Ok(None),
                        None => Err(Error::new("ttalloc", "the trace reading thread failed")),
                    }
                }
            }
        }
    }

    /// The source, once `next_record` has returned its end (for `cut`).
    pub fn finished(&self) -> Option<&Source> {
        self.source.as_deref()
    }
}

fn read_ahead(mut src: Box<Source>, tx: SyncSender<Msg>) {
    loop {
        let mut batch = Vec::with_capacity(BATCH);
        let end = loop {
            match src.next_record() {
                Ok(Some(r)) => {
                    batch.push(r);
                    if batch.len() == BATCH {
                        break None;
                    }
                }
                Ok(None) => break Some(None),
                Err(e) => break Some(Some(e)),
            }
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
        self.rx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttalloc_trace::*;

    /// A one-process trace of `n` alloc records (cut short: no footer), and where each record starts.
    fn trace(path: &std::path::Path, n: u64) -> Vec<u64> {
        let header = TraceHeader { magic: TRACE_MAGIC.into(), format_version: TRACE_FORMAT_VERSION, tool_version: "t".into(), host: "h".into(), collector_pid: 1, started_real_ns: 1, command: vec![] };
        let mut w = TraceWriter::new(Vec::new(), &header).unwrap();
        w.write(&Record::Process(Box::new(ProcessInfo { p: 0, pid: 9, start_ticks: 0, exe: "t".into(), created_mono_ns: 0, created_real_ns: 0, shim_info: "{}".into(), attach: "from-start".into() }))).unwrap();
        let mut starts = Vec::new();
        for seq in 0..n {
            starts.push(w.bytes());
            let ev = Ev { p: 0, seq, ts_ns: 10 * seq, tid: 1 };
            w.write(&Record::Alloc(AllocRec { ev, chip: (seq % 8) as i32, btype: 1, flags: 0, object: seq, address: 64 * seq, size: 4096, page_size: 1024 })).unwrap();
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

    /// Across batch boundaries, to a cut end and to a corrupt record, the read-ahead
    /// source returns what the source itself does, with the same ordinals.
    #[test]
    fn reading_ahead_returns_what_the_source_does() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("t");
        for n in [0, 1, BATCH as u64, 2 * BATCH as u64 + 7] {
            trace(&path, n);
            let mut src = Source::open(&path, None).unwrap();
            let (want, want_err) = all(|| src.next_record());
            let mut p = Prefetch::start(Source::open(&path, None).unwrap());
            let (got, err) = all(|| p.next_record());
            assert_eq!((got.len(), &err), (want.len(), &want_err), "{n} records");
            assert!(got == want, "{n} records");
            assert_eq!(p.ordinal, src.ordinal);
            assert_eq!(p.finished().unwrap().cut, src.cut, "{n} records");
            assert!(src.cut.is_some(), "no footer: a cut");
            assert!(matches!(p.next_record(), Ok(None)), "the end stays the end");
        }
        // A corrupt record mid-file: the records before it, then its error.
        let starts = trace(&path, 3 * BATCH as u64);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[starts[BATCH + 5] as usize] = 0xc1;
        std::fs::write(&path, bytes).unwrap();
        let mut src = Source::open(&path, None).unwrap();
        let (want, want_err) = all(|| src.next_record());
        let mut p = Prefetch::start(Source::open(&path, None).unwrap());
        let (got, err) = all(|| p.next_record());
        assert_eq!((got.len(), &err), (want.len(), &want_err));
        assert_eq!(got.len(), 2 + BATCH + 5, "the header, the process, the records before the corrupt one");
        assert!(err.as_ref().is_some_and(|e| e.contains("corrupt record")), "{err:?}");
    }
}
