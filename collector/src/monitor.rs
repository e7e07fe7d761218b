//! `--monitor`: the live view's thread. On a terminal it owns the screen
//! (ratatui, view.rs) and the keys; otherwise it prints a plain table
//! (text_table.rs) whenever the state changed, every refresh. It only reads
//! snapshots (snapshot.rs), so the drain loop never waits on it.
//!
//! Keys: q, Esc or Ctrl-C quit — the collector then finishes the trace just as
//! on SIGINT (raw mode turns Ctrl-C into a key, so the view forwards it);
//! p pauses the view (draining goes on); ↑ ↓ PgUp PgDn Home End scroll.

use crate::output::CommandOutput;
use crate::snapshot::{Shared, Snapshot};
use crate::text_table;
use crate::view::{self, ViewState};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Options {
    pub refresh: Duration,
    pub focus: Vec<i32>,
    pub trace: Option<String>,
}

#[derive(Default)]
struct Control {
    /// The trace is finished (the final snapshot is published).
    done: AtomicBool,
    /// After `done`, keep the full-screen view up until q.
    keep_open: AtomicBool,
}

pub struct Monitor {
    thread: JoinHandle<()>,
    control: Arc<Control>,
    /// The full-screen view (false: the plain table).
    pub full_screen: bool,
}

/// Is stdout a terminal, so `start` will take the full screen?
pub fn full_screen_possible() -> bool {
    std::io::stdout().is_terminal()
}

/// Starts the view; `quit` is called once when the person quits (q).
pub fn start(shared: Arc<Shared>, opts: Options, output: Option<CommandOutput>, quit: Box<dyn Fn() + Send>) -> Result<Monitor, String> {
    let control = Arc::new(Control::default());
    let c = control.clone();
    let full_screen = full_screen_possible();
    let thread = if full_screen {
        let term = ratatui::try_init().map_err(|e| format!("cannot take over the terminal: {e}"))?;
        std::thread::spawn(move || full_screen_loop(term, &shared, &opts, output, quit, &c))
    } else {
        std::thread::spawn(move || text_loop(&shared, &opts, &c))
    };
    Ok(Monitor { thread, control, full_screen })
}

impl Monitor {
    /// Tells the view the trace is finished and waits for it: at once, or,
    /// with `keep_open` on the full screen, until the person presses q.
    /// The terminal is restored when this returns.
    pub fn finish(self, keep_open: bool) {
        self.control.keep_open.store(keep_open, Ordering::SeqCst);
        self.control.done.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
        if self.full_screen {
            ratatui::restore();
        }
    }
}

fn full_screen_loop(
    mut term: ratatui::DefaultTerminal,
    shared: &Shared,
    opts: &Options,
    output: Option<CommandOutput>,
    quit: Box<dyn Fn() + Send>,
    control: &Control,
) {
    let mut st = ViewState { focus: opts.focus.clone(), refresh_ms: opts.refresh.as_millis() as u64, trace: opts.trace.clone(), ..Default::default() };
    let mut snap: Arc<Snapshot> = shared.get();
    let mut next = Instant::now();
    let mut redraw = true;
    let mut output_seen = 0;
    let mut saw_done = false;
    loop {
        let done = control.done.load(Ordering::SeqCst);
        if done && (st.quitting || !control.keep_open.load(Ordering::SeqCst)) {
            return;
        }
        if done && !saw_done {
            // The final state, paused or not.
            saw_done = true;
            snap = shared.get();
            redraw = true;
        }
        if Instant::now() >= next {
            next = Instant::now() + opts.refresh;
            // Redraw only what changed: an idle view costs nothing.
            if !st.paused && !done {
                let latest = shared.get();
                redraw |= !Arc::ptr_eq(&latest, &snap);
                snap = latest;
            }
            let seen = output.as_ref().map_or(0, CommandOutput::lines_seen);
            redraw |= seen != output_seen;
            output_seen = seen;
        }
        if redraw {
            let lines = output.as_ref().map(|o| o.tail(6)).unwrap_or_default();
            if term.draw(|f| view::draw(f, &snap, &mut st, &lines)).is_err() {
                return; // the terminal is gone; draining goes on
            }
            redraw = false;
        }
        // Short polls so a finished trace is noticed quickly.
        let wait = next.saturating_duration_since(Instant::now()).min(Duration::from_millis(50));
        match event::poll(wait) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => {
                // No keyboard to read (no controlling terminal): keep showing.
                std::thread::sleep(wait);
                continue;
            }
        }
        let Ok(ev) = event::read() else { continue };
        redraw = true;
        let Event::Key(k) = ev else { continue };
        if k.kind != KeyEventKind::Press {
            continue;
        }
        let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
            if done {
                return;
            }
            if !st.quitting {
                st.quitting = true;
                quit();
            }
            continue;
        }
        match k.code {
            KeyCode::Char('p') => {
                st.paused = !st.paused;
                if !st.paused {
                    snap = shared.get();
                }
            }
            KeyCode::Up => st.scroll = st.scroll.saturating_sub(1),
            KeyCode::Down => st.scroll += 1,
            KeyCode::PageUp => st.scroll = st.scroll.saturating_sub(10),
            KeyCode::PageDown => st.scroll += 10,
            KeyCode::Home => st.scroll = 0,
            KeyCode::End => st.scroll = usize::MAX,
            _ => {}
        }
    }
}

fn text_loop(shared: &Shared, opts: &Options, control: &Control) {
    let mut shown = None;
    loop {
        let done = control.done.load(Ordering::SeqCst);
        let snap = shared.get();
        let key = (snap.version, snap.finished.is_some());
        if shown != Some(key) {
            shown = Some(key);
            let mut out = std::io::stdout().lock();
            if out.write_all(text_table::render(&snap, &opts.focus).as_bytes()).and_then(|_| out.flush()).is_err() {
                return; // stdout closed: nothing more to show
            }
        }
        if done {
            return;
        }
        let end = Instant::now() + opts.refresh;
        while Instant::now() < end && !control.done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20).min(opts.refresh));
        }
    }
}
