//! Reading a trace file for a command: one-line errors that name the file and
//! the byte offset, a cut-short trace turned into a warning, and a progress
//! bar on stderr for long replays when stderr is a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fmt;
use std::io::{BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use crate::merge::Merge;
use ttalloc_trace::{reader, Record, TraceError, TraceReader};

/// Files smaller than this replay too fast to deserve a progress bar.
const PROGRESS_MIN_BYTES: u64 = 32 << 20;

/// A command failure: printed as `ttalloc: <path>: <message>[ at byte offset N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub path: String,
    pub message: String,
    pub offset: Option<u64>,
}

impl Error {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Error {
        Error { path: path.into(), message: message.into(), offset: None }
    }
    pub fn io(path: &Path, e: std::io::Error) -> Error {
        Error::new(path.display().to_string(), e.to_string())
    }
    pub fn trace(path: &Path, e: &TraceError) -> Error {
        Error { path: path.display().to_string(), message: e.message.clone(), offset: Some(e.offset) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if let Some(o) = self.offset {
            write!(f, " at byte offset {o}")?;
        }
        Ok(())
    }
}
impl std::error::Error for Error {}

/// How a trace ended short of its footer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cut {
    /// Everything before this offset was replayed.
    pub offset: u64,
    pub message: String,
}

impl Cut {
    /// The warning line (without the `ttalloc: ` prefix).
    pub fn warning(&self, path: &str) -> String {
        format!("{path}: warning: {} at byte offset {}; replayed up to there", self.message, self.offset)
    }
}

/// A progress bar on stderr for a long replay of `trace` — `len` units
/// (`bytes` or `records`) — if stderr is a terminal and the file is large.
pub fn bar(trace: &Path, len: u64, unit: &str, label: &str) -> Option<ProgressBar> {
    let size = std::fs::metadata(trace).map(|m| m.len()).unwrap_or(0);
    if size < PROGRESS_MIN_BYTES || !std::io::stderr().is_terminal() {
        return None;
    }
    let template = if unit == "bytes" {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}".to_string()
    } else {
        format!("{{msg}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} eta {{eta}}")
    };
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(4));
    bar.set_style(ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> "));
    bar.set_message(format!("ttalloc: {label}"));
    Some(bar)
}

pub struct Source {
    pub path: PathBuf,
    reader: TraceReader<BufReader<std::fs::File>>,
    /// Puts the processes' records in time order (see `merge`); None when the
    /// footer says the trace has one process (nothing to reorder).
    merge: Option<Merge>,
    /// A corrupt record: returned once the records before it are.
    failed: Option<Error>,
    bar: Option<ProgressBar>,
    /// Records returned so far (the header is record 0).
    pub ordinal: u64,
    pub len: u64,
    /// Set once the end was reached, if the trace had no clean end.
    pub cut: Option<Cut>,
    finished: bool,
}

impl Source {
    /// Opens `path`; `label` (e.g. "replay") names the progress bar, if one is shown.
    pub fn open(path: &Path, label: Option<&str>) -> Result<Source, Error> {
        let reader = reader::open(path).map_err(|e| Error::trace(path, &e))?;
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let bar = label.and_then(|label| bar(path, len, "bytes", label));
        let merge = reader::footer(path).map_or(true, |f| f.processes > 1).then(Merge::default);
        Ok(Source { path: path.to_path_buf(), reader, merge, failed: None, bar, ordinal: 0, len, cut: None, finished: false })
    }

    pub fn display(&self) -> String {
        self.path.display().to_string()
    }

    pub fn offset(&self) -> u64 {
        self.reader.offset()
    }

    /// The next record — in time order across processes, each process's in
    /// its own order; `Ok(None)` at the end (clean or cut: see `cut`).
    pub fn next_record(&mut self) -> Result<Option<Record>, Error> {
        // One process: nothing to reorder.
        if self.merge.is_none() && !self.finished {
            if let Some(r) = self.read() {
                self.count(1);
                return Ok(Some(r));
            }
        }
        loop {
            let next = match &mut self.merge {
                Some(m) => m.pop(self.finished),
                None => None,
            };
            if let Some(r) = next {
                self.count(1);
                return Ok(Some(r));
            }
            if self.finished {
                return match self.failed.take() {
                    Some(e) => Err(e),
                    None => Ok(None),
                };
            }
            if let (Some(r), Some(m)) = (self.read(), &mut self.merge) {
                m.push(r);
            }
        }
    }

    /// The next record of the file; at its end (clean, cut or corrupt) None,
    /// with `finished`, `cut` and `failed` set.
    #[inline(always)]
    fn read(&mut self) -> Option<Record> {
        match self.reader.next_record() {
            Ok(Some(r)) => Some(r),
            other => {
                self.ended(other.err());
                None
            }
        }
    }

    /// Appends up to `max` records to `out`, as `next_record` returns them;
    /// `Ok(false)` once the end was reached and everything before it given.
    pub fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<bool, Error> {
        if self.merge.is_some() || self.finished {
            for _ in 0..max {
                match self.next_record()? {
                    Some(r) => out.push(r),
                    None => return Ok(false),
                }
            }
            return Ok(true);
        }
        let before = out.len();
        let read = self.reader.next_batch(out, max);
        let n = out.len() - before;
        self.count(n as u64);
        match read {
            Ok(true) => return Ok(true),
            Ok(false) => self.ended(None),
            Err(e) => self.ended(Some(e)),
        }
        // The end: the records before it first; then `next_record` gives the
        // error, or the clean end.
        if n > 0 {
            return Ok(true);
        }
        self.next_record().map(|r| r.is_some())
    }

    /// The file ended: cleanly (`None`), cut short or corrupt.
    #[cold]
    fn ended(&mut self, error: Option<TraceError>) {
        self.end();
        match error {
            None if !self.reader.complete => {
                self.cut = Some(Cut { offset: self.reader.offset(), message: "trace has no footer (the collector did not finish it)".into() });
            }
            None => {}
            Some(e) if e.truncated => self.cut = Some(Cut { offset: e.offset, message: e.message }),
            Some(e) => self.failed = Some(Error::trace(&self.path, &e)),
        }
    }

    /// `n` more records returned.
    #[inline]
    fn count(&mut self, n: u64) {
        let was = self.ordinal;
        self.ordinal += n;
        // Every 65536 records.
        if (was ^ self.ordinal) >> 16 != 0 {
            if let Some(b) = &self.bar {
                b.set_position(self.reader.offset());
            }
        }
    }

    fn end(&mut self) {
        self.finished = true;
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    /// Prints the cut-short warning, if any, on stderr.
    pub fn warn_if_cut(&self) {
        if let Some(c) = &self.cut {
            eprintln!("ttalloc: {}", c.warning(&self.display()));
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
