//! The full-screen live view, drawn with ratatui from one snapshot: a title
//! bar, the totals, one row per chip (table.rs) with a bar per memory type
//! (bytes in use against the peak so far), the launched command's latest
//! output, and the keys. Pure: what is drawn depends only on its arguments.

use crate::snapshot::{Cell, Snapshot};
use crate::table::{self, Row};
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

/// What the person controls, and what the view needs besides the snapshot.
#[derive(Clone, Debug, Default)]
pub struct ViewState {
    pub paused: bool,
    /// First row shown (clamped by `draw`).
    pub scroll: usize,
    /// Chips to show with a per-process breakdown; empty: every chip.
    pub focus: Vec<i32>,
    pub refresh_ms: u64,
    pub trace: Option<String>,
    /// q was pressed: the collector is finishing the trace.
    pub quitting: bool,
}

fn columns(area: Rect) -> Vec<Rect> {
    let mut c = vec![Constraint::Length(5)];
    c.extend([Constraint::Fill(3); 5]);
    c.extend([Constraint::Length(7), Constraint::Fill(4)]);
    Layout::horizontal(c).spacing(1).split(area).to_vec()
}

/// A bar of `current` against `peak`, then the text right-aligned in
/// `text_w` (the column's widest text, so bars line up).
fn bar(c: &Cell, width: u16, text_w: usize) -> Line<'static> {
    let text = table::cell_text(c);
    let w = width as usize;
    if c.peak == 0 || w < text_w + 3 {
        let t = if text.chars().count() > w { table::short_bytes(c.current) } else { text };
        return Line::from(t).alignment(Alignment::Right);
    }
    let bw = w - text_w - 1;
    let filled = ((bw as u128 * c.current as u128 + c.peak as u128 / 2) / c.peak as u128) as usize;
    Line::from(vec![
        Span::styled("█".repeat(filled), Style::new().fg(Color::Green)),
        Span::styled("░".repeat(bw - filled), Style::new().fg(Color::DarkGray)),
        Span::raw(format!(" {text:>text_w$}")),
    ])
}

fn draw_row(f: &mut Frame, cols: &[Rect], y: u16, row: &Row, text_w: &[usize; 5]) {
    let at = |i: usize| Rect { y, ..cols[i] };
    let dim = if row.chip.is_empty() { Style::new().fg(Color::Gray) } else { Style::new() };
    f.render_widget(Paragraph::new(row.chip.as_str()).style(Style::new().add_modifier(Modifier::BOLD)), at(0));
    for (i, c) in row.cells.iter().enumerate() {
        f.render_widget(Paragraph::new(bar(c, cols[i + 1].width, text_w[i])).style(dim), at(i + 1));
    }
    f.render_widget(Paragraph::new(Line::from(row.buffers.to_string()).alignment(Alignment::Right)).style(dim), at(6));
    f.render_widget(Paragraph::new(row.who.as_str()).style(dim), at(7));
}

fn status(snap: &Snapshot, st: &ViewState) -> String {
    if let Some(why) = &snap.finished {
        format!("finished: {why} · q quits ")
    } else if st.quitting {
        "finishing the trace… ".into()
    } else if st.paused {
        "PAUSED (p resumes) ".into()
    } else {
        format!("every {} ms ", st.refresh_ms)
    }
}

/// Draws the view; `output` is the launched command's latest lines (if any).
pub fn draw(f: &mut Frame, snap: &Snapshot, st: &mut ViewState, output: &[String]) {
    let out_h = if output.is_empty() { 0 } else { (output.len() as u16 + 2).min(8) };
    let [title, totals, header, body, out, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(out_h),
        Constraint::Length(1),
    ])
    .areas(f.area());

    let bar_style = Style::new().add_modifier(Modifier::REVERSED);
    f.render_widget(Paragraph::new(" ttalloc-collect · live device memory").style(bar_style), title);
    f.render_widget(Paragraph::new(Line::from(status(snap, st)).alignment(Alignment::Right)).style(bar_style), title);

    let mut t = format!(" {}", table::totals(snap));
    if let Some(p) = &st.trace {
        t += &format!(" · trace {p}");
    }
    let warn = snap.dropped > 0 || snap.unknown_frees > 0;
    f.render_widget(Paragraph::new(t).style(if warn { Style::new().fg(Color::Yellow) } else { Style::new() }), totals);

    let cols = columns(header);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let names = ["chip", "DRAM", "L1", "L1_SMALL", "TRACE", "CB"];
    for (i, n) in names.iter().enumerate() {
        let line = if i == 0 { Line::from(*n) } else { Line::from(*n).alignment(Alignment::Right) };
        f.render_widget(Paragraph::new(line).style(bold), cols[i]);
    }
    f.render_widget(Paragraph::new(Line::from("buffers").alignment(Alignment::Right)).style(bold), cols[6]);
    f.render_widget(Paragraph::new("processes").style(bold), cols[7]);

    let rows = table::rows(snap, &st.focus);
    let visible = body.height as usize;
    st.scroll = st.scroll.min(rows.len().saturating_sub(visible));
    if rows.is_empty() {
        f.render_widget(Paragraph::new(" no device memory recorded yet").style(Style::new().fg(Color::Gray)), body);
    }
    let cols = columns(body);
    let shown: Vec<&Row> = rows.iter().skip(st.scroll).take(visible).collect();
    let text_w: [usize; 5] = std::array::from_fn(|i| shown.iter().map(|r| table::cell_text(&r.cells[i]).len()).max().unwrap_or(0));
    for (i, row) in shown.iter().enumerate() {
        draw_row(f, &cols, body.y + i as u16, row, &text_w);
    }

    if out_h > 0 {
        let shown = output.len().saturating_sub(out_h as usize - 2);
        let lines: Vec<Line> = output[shown..].iter().map(|l| Line::from(l.as_str())).collect();
        f.render_widget(Paragraph::new(lines).block(Block::bordered().title(" command output ")), out);
    }

    f.render_widget(Paragraph::new(" q quit · p pause · ↑↓ PgUp PgDn Home End scroll"), keys);
    if !rows.is_empty() {
        let last = (st.scroll + visible).min(rows.len());
        let pos = format!("rows {}–{last} of {} ", st.scroll + 1, rows.len());
        f.render_widget(Paragraph::new(Line::from(pos).alignment(Alignment::Right)), keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tests::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use ttalloc_ring::BufferType;

    fn render(snap: &Snapshot, st: &mut ViewState, output: &[String], w: u16, h: u16) -> Terminal<TestBackend> {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(f, snap, st, output)).unwrap();
        t
    }

    fn known() -> Snapshot {
        let m = model(&[
            process(0, 4242, "/usr/bin/python3 /w/hold.py --lib x"),
            alloc(0, 0, 0, BufferType::Dram, 6 << 20),
            alloc(0, 1, 0, BufferType::Dram, 2 << 20),
            free(0, 2, 0),
            alloc(0, 3, 0, BufferType::L1, 40960),
            alloc(0, 4, 1, BufferType::Dram, 1 << 20),
        ]);
        Snapshot::build(&m, &|_| true)
    }

    fn lines(t: &Terminal<TestBackend>) -> Vec<String> {
        let b = t.backend().buffer();
        (0..b.area.height).map(|y| (0..b.area.width).map(|x| b[(x, y)].symbol()).collect::<String>().trim_end().to_string()).collect()
    }

    #[test]
    fn draws_every_chip_with_bars_against_the_peak() {
        let mut st = ViewState { refresh_ms: 500, trace: Some("t.msgpack".into()), ..Default::default() };
        let t = render(&known(), &mut st, &["hello".into()], 110, 12);
        let bars = [
            " ttalloc-collect · live device memory                                                            every 500 ms",
            " processes 1 attached / 1 seen · events 5 · dropped 0 · unknown frees 0 · trace t.msgpack",
            "chip            DRAM              L1       L1_SMALL          TRACE              CB buffers processes",
            // chip 0: DRAM 6M+2M at the peak, 2M in use (2 of 8 cells); L1 at its peak.
            "0     ██░░░░░░ 2M/8M ███████ 40K/40K              -              -               -       2 4242 python3 hold.p",
            "1     ████████ 1M/1M               -              -              -               -       1 4242 python3 hold.p",
            "",
            "",
            "",
            "┌ command output ────────────────────────────────────────────────────────────────────────────────────────────┐",
            "│hello                                                                                                       │",
            "└────────────────────────────────────────────────────────────────────────────────────────────────────────────┘",
            " q quit · p pause · ↑↓ PgUp PgDn Home End scroll                                                rows 1–2 of 2",
        ];
        assert_eq!(lines(&t), bars);
        let b = t.backend().buffer();
        assert_eq!(b[(6, 3)].fg, Color::Green, "in use");
        assert_eq!(b[(8, 3)].fg, Color::DarkGray, "the rest of the peak");
        assert!(b[(1, 0)].modifier.contains(Modifier::REVERSED), "title bar");
    }

    #[test]
    fn focus_lists_processes_scrolls_pauses_and_finishes() {
        let mut st = ViewState { refresh_ms: 500, focus: vec![0], scroll: 1, paused: true, ..Default::default() };
        // Height 5: one body row, so scrolling by one shows the process row.
        let t = render(&known(), &mut st, &[], 110, 5);
        assert_eq!(
            lines(&t),
            [
                " ttalloc-collect · live device memory                                                      PAUSED (p resumes)",
                " processes 1 attached / 1 seen · events 5 · dropped 0 · unknown frees 0",
                "chip            DRAM              L1       L1_SMALL          TRACE              CB buffers processes",
                "      ██░░░░░░ 2M/8M ███████ 40K/40K              -              -               -       2 └ 4242 python3 hold",
                " q quit · p pause · ↑↓ PgUp PgDn Home End scroll                                                rows 2–2 of 2",
            ]
        );
        st.scroll = usize::MAX;
        let mut s = known();
        s.finished = Some("stopped".into());
        let t = render(&s, &mut st, &[], 110, 5);
        assert_eq!(st.scroll, 1, "clamped to the last row");
        assert_eq!(lines(&t)[0], " ttalloc-collect · live device memory                                             finished: stopped · q quits");
        st.quitting = true;
        s.finished = None;
        let t = render(&s, &mut st, &[], 110, 5);
        assert!(lines(&t)[0].ends_with("finishing the trace…"));
    }

    #[test]
    fn empty_and_narrow() {
        let mut st = ViewState { refresh_ms: 250, ..Default::default() };
        let t = render(&Snapshot::default(), &mut st, &[], 80, 6);
        assert_eq!(lines(&t)[3], " no device memory recorded yet");
        assert_eq!(lines(&t)[0], format!("{:<67}every 250 ms", " ttalloc-collect · live device memory"));
        // 60 columns: no room for bars, the numbers stay.
        let t = render(&known(), &mut st, &[], 60, 6);
        assert_eq!(lines(&t)[3], "0      2M/8M 40K/40K      -       -      -       2 4242 pyth");
    }
}
