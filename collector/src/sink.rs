//! Where records go: the trace file (if any) and the live model. A write
//! error (disk full) is reported once; the trace written so far stays
//! readable and the live state stays exact.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use ttalloc_trace::record::*;
use ttalloc_trace::{Model, TraceWriter};

pub struct Sink {
    writer: Option<TraceWriter<BufWriter<File>>>,
    pub path: Option<PathBuf>,
    pub model: Model,
    pub write_error: Option<String>,
    pub records: u64,
}

impl Sink {
    pub fn new(out: Option<&Path>, header: TraceHeader) -> Result<Sink, String> {
        let mut model = Model::new();
        model.apply(&Record::Header(Box::new(header.clone())), &mut |_| {});
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
        let mut sink = Sink { writer, path: out.map(Path::to_path_buf), model, write_error: None, records: 0 };
        // The header goes out at once: a collector killed in its first moments
        // still leaves a (cut short) trace, not an empty file. A full disk is
        // reported like any later write error; the workload runs regardless.
        sink.flush();
        Ok(sink)
    }

    pub fn emit(&mut self, r: Record) {
        self.records += 1;
        self.model.apply(&r, &mut |_| {});
        if let Some(w) = &mut self.writer {
            if let Err(e) = w.write(&r) {
                self.fail(e);
            }
        }
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
        self.emit(Record::Footer(footer));
        self.flush();
        self.writer = None;
    }
}
