//! Where records go: the trace file (if any) and the live model (on its own
//! thread, `model_thread`, unless none could be started). A write error
//! (disk full) is reported once; the trace written so far stays readable and
//! the live state stays exact.

use crate::model_thread::{Live, ModelThread};
use crate::snapshot::Publisher;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use ttalloc_trace::record::*;
use ttalloc_trace::{Model, TraceWriter};

/// Where the live model is kept.
enum Home {
    Here(Box<Live>),
    Away(ModelThread),
}

/// The model applied on the drain thread (no model thread): out of line, so
/// the inlined `Model::apply` does not weigh on `emit`'s usual path.
#[inline(never)]
fn apply_here(live: &mut Live, r: &Record) {
    live.model.apply(r, &mut |_| {});
}

pub struct Sink {
    writer: Option<TraceWriter<BufWriter<File>>>,
    pub path: Option<PathBuf>,
    home: Home,
    pub write_error: Option<String>,
    pub records: u64,
}

impl Sink {
    /// `publisher`: snapshots for the live view / metrics, taken by the model's thread.
    pub fn new(out: Option<&Path>, header: TraceHeader, publisher: Option<Publisher>) -> Result<Sink, String> {
        let mut model = Model::new();
        model.apply(&Record::Header(Box::new(header.clone())), &mut |_| {});
        let home = match ModelThread::start(Box::new(Live { model, publisher, attached: Vec::new() })) {
            Ok(t) => Home::Away(t),
            Err(live) => Home::Here(live),
        };
        let writer = match out {
            None => None,
            Some(path) => {
                use std::os::unix::fs::OpenOptionsExt;
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Some(
                    TraceWriter::new(BufWriter::with_capacity(1 << 20, f), &header)
                        .map_err(|e| format!("{}: {e}", path.display()))?,
                )
            }
        };
        let mut sink = Sink { writer, path: out.map(Path::to_path_buf), home, write_error: None, records: 0 };
        // The header goes out at once: a collector killed in its first moments
        // still leaves a (cut short) trace, not an empty file. A full disk is
        // reported like any later write error; the workload runs regardless.
        sink.flush();
        Ok(sink)
    }

    pub fn emit(&mut self, r: Record) {
        self.records += 1;
        if let Some(w) = &mut self.writer {
            if let Err(e) = w.write(&r) {
                self.fail(e);
            }
        }
        match &mut self.home {
            Home::Here(live) => apply_here(live, &r),
            Home::Away(t) => {
                if !t.push(r) {
                    self.model_lost();
                }
            }
        }
    }

    /// The end of a drain pass: the model catches up with it (`attached`:
    /// per process index, still being drained) and a snapshot is taken if due.
    pub fn pass_done(&mut self, attached: Vec<bool>) {
        match &mut self.home {
            Home::Here(live) => {
                live.attached = attached;
                live.tick();
            }
            Home::Away(t) => {
                if !t.pass_done(attached) {
                    self.model_lost();
                }
            }
        }
    }

    /// The live model, caught up with every record so far (its thread, if
    /// any, ends here: call once the drain loop is done).
    pub fn model(&mut self) -> &Model {
        &self.settle().model
    }

    /// The model back on this thread.
    fn settle(&mut self) -> &mut Live {
        if let Home::Away(_) = self.home {
            let Home::Away(t) = std::mem::replace(&mut self.home, Home::Here(Self::lost_live())) else { unreachable!() };
            match t.join() {
                Some(live) => self.home = Home::Here(live),
                None => self.model_lost(),
            }
        }
        match &mut self.home {
            Home::Here(live) => live,
            Home::Away(_) => unreachable!("settled"),
        }
    }

    /// Only a bug in the model can end its thread early: the trace is still
    /// written in full, but the live state starts again from nothing.
    #[cold]
    fn model_lost(&mut self) {
        eprintln!("ttalloc-collect: the live model failed (a bug); the trace is complete, the live view and summary are not");
        self.home = Home::Here(Self::lost_live());
    }

    fn lost_live() -> Box<Live> {
        Box::new(Live { model: Model::new(), publisher: None, attached: Vec::new() })
    }

    /// The last snapshot, once the trace is finished (`attached` as in `pass_done`).
    pub fn publish_final(&mut self, attached: Vec<bool>, why: String) {
        let live = self.settle();
        live.attached = attached;
        live.finish(why);
    }

    fn fail(&mut self, e: std::io::Error) {
        let path = self.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let msg = format!("{path}: write failed ({e}); the trace up to here is readable, live state continues");
        eprintln!("ttalloc-collect: {msg}");
        self.write_error = Some(msg);
        self.writer = None;
    }

    /// Makes everything written so far readable by others (called every poll).
    pub fn flush(&mut self) {
        if let Some(w) = &mut self.writer {
            if let Err(e) = w.flush() {
                self.fail(e);
            }
        }
    }

    pub fn finish(&mut self, footer: Footer) {
        self.settle();
        self.emit(Record::Footer(footer));
        self.flush();
        self.writer = None;
    }
}
