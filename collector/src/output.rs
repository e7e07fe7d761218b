//! The launched command's output while the full-screen view owns the
//! terminal: its stdout and stderr are piped here, the view shows the latest
//! lines, and once the terminal is restored the kept lines are written out
//! again (to the stream each came from) so nothing the command said is lost.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lines kept (the oldest are dropped beyond this, and counted).
const KEEP: usize = 2000;

#[derive(Default)]
struct Inner {
    lines: Mutex<(VecDeque<(bool, String)>, u64)>,
    open: AtomicUsize,
}

#[derive(Clone, Default)]
pub struct CommandOutput(Arc<Inner>);

impl CommandOutput {
    /// Reads the child's piped stdout and stderr on two threads.
    pub fn attach(&self, child: &mut std::process::Child) {
        if let Some(s) = child.stdout.take() {
            self.read(s, false);
        }
        if let Some(s) = child.stderr.take() {
            self.read(s, true);
        }
    }

    fn read(&self, stream: impl Read + Send + 'static, is_err: bool) {
        let inner = self.0.clone();
        inner.open.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || {
            let mut r = BufReader::new(stream);
            let mut buf = Vec::new();
            while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string();
                buf.clear();
                let mut g = inner.lines.lock().unwrap_or_else(|e| e.into_inner());
                g.0.push_back((is_err, line));
                if g.0.len() > KEEP {
                    g.0.pop_front();
                    g.1 += 1;
                }
            }
            inner.open.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Lines read so far (kept or not): changes whenever a line arrives.
    pub fn lines_seen(&self) -> u64 {
        let g = self.0.lines.lock().unwrap_or_else(|e| e.into_inner());
        g.0.len() as u64 + g.1
    }

    /// The latest `n` lines, with control characters made visible-safe for the view.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let g = self.0.lines.lock().unwrap_or_else(|e| e.into_inner());
        let skip = g.0.len().saturating_sub(n);
        g.0.iter().skip(skip).map(|(_, l)| l.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()).collect()
    }

    /// Writes the kept lines out, after waiting (at most `wait`) for the pipes to close.
    pub fn replay(&self, wait: Duration) {
        let end = Instant::now() + wait;
        while self.0.open.load(Ordering::SeqCst) > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        let g = self.0.lines.lock().unwrap_or_else(|e| e.into_inner());
        if g.1 > 0 {
            eprintln!("ttalloc-collect: the command's first {} output lines were not kept; its last {}:", g.1, g.0.len());
        }
        let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
        for (is_err, l) in &g.0 {
            let _ = if *is_err { writeln!(err, "{l}") } else { writeln!(out, "{l}") };
        }
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_both_streams_in_arrival_order_and_sanitises_the_view() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "printf 'one\\n'; sleep 0.05; printf 'two\\033[31m\\n' >&2; sleep 0.05; printf 'three'"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = CommandOutput::default();
        out.attach(&mut child);
        child.wait().unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while out.0.open.load(Ordering::SeqCst) > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(out.tail(10), ["one", "two [31m", "three"]);
        assert_eq!(out.tail(1), ["three"]);
        assert_eq!(out.lines_seen(), 3);
        let g = out.0.lines.lock().unwrap();
        assert_eq!(g.0.iter().map(|(e, _)| *e).collect::<Vec<_>>(), [false, true, false]);
    }
}
