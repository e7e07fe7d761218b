//! What the live view shows, independent of how it is drawn: one row per chip
//! (and, for focused chips, one per process on it), five memory types each
//! with bytes in use against the peak so far. The terminal view (view.rs) and
//! the plain periodic table (text_table.rs) both render these rows.

use crate::snapshot::{Cell, Snapshot};
use ttalloc_ring::BufferType;

/// The memory types shown, in column order.
pub const TYPES: [BufferType; 5] = [BufferType::Dram, BufferType::L1, BufferType::L1Small, BufferType::Trace, BufferType::Cb];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The chip id on a chip row, empty on a process row.
    pub chip: String,
    pub cells: [Cell; 5],
    /// Live buffers (circular buffers not included).
    pub buffers: u64,
    /// Chip row: the processes holding something on the chip; process row: that process.
    pub who: String,
}

fn proc_label(p: &crate::snapshot::ProcRow) -> String {
    let ended = if p.attached { "" } else { " (ended)" };
    format!("{} {}{ended}", p.pid, p.short_command())
}

fn buffers(cells: &[Cell; 5]) -> u64 {
    TYPES.iter().zip(cells).filter(|(t, _)| **t != BufferType::Cb).map(|(_, c)| c.live).sum()
}

/// Rows for every chip seen (`focus` empty), or for the `focus` chips, each
/// followed by one row per process using it.
pub fn rows(snap: &Snapshot, focus: &[i32]) -> Vec<Row> {
    let chips = if focus.is_empty() { snap.chips() } else { focus.to_vec() };
    let mut out = Vec::new();
    for chip in chips {
        let cells = TYPES.map(|t| snap.cell(chip, t));
        let users: Vec<_> = snap.procs.iter().filter(|p| p.uses(chip)).collect();
        out.push(Row {
            chip: chip.to_string(),
            cells,
            buffers: buffers(&cells),
            who: users.iter().map(|p| proc_label(p)).collect::<Vec<_>>().join(", "),
        });
        if focus.is_empty() {
            continue;
        }
        for p in users {
            let cells = TYPES.map(|t| p.cell(chip, t));
            out.push(Row { chip: String::new(), cells, buffers: buffers(&cells), who: format!("└ {}", proc_label(p)) });
        }
    }
    out
}

/// Compact bytes: `0`, `512B`, `40K`, `3.12M`, `128K`, `1.5G` (binary units,
/// three significant digits, trailing zeros dropped).
pub fn short_bytes(b: u64) -> String {
    if b < 1024 {
        return if b == 0 { "0".into() } else { format!("{b}B") };
    }
    let units = ["K", "M", "G", "T", "P"];
    let mut v = b as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    let digits = if v >= 100.0 { 0 } else if v >= 10.0 { 1 } else { 2 };
    let mut s = format!("{v:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[u])
}

/// `in use/peak`, or `-` when nothing of that type was ever there.
pub fn cell_text(c: &Cell) -> String {
    if c.peak == 0 && c.live == 0 {
        "-".into()
    } else {
        format!("{}/{}", short_bytes(c.current), short_bytes(c.peak))
    }
}

/// The status line both renderings start with.
pub fn totals(snap: &Snapshot) -> String {
    format!(
        "processes {} attached / {} seen · events {} · dropped {} · unknown frees {}",
        snap.attached, snap.processes, snap.events, snap.dropped, snap.unknown_frees
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tests::*;
    use crate::snapshot::Snapshot;

    #[test]
    fn short_bytes_is_compact_and_exact_enough() {
        let cases = [
            (0, "0"),
            (512, "512B"),
            (1024, "1K"),
            (40960, "40K"),
            (131072, "128K"),
            (3276800, "3.12M"),
            (6291456, "6M"),
            (1536 << 20, "1.5G"),
            (10 << 40, "10T"),
        ];
        for (b, s) in cases {
            assert_eq!(short_bytes(b), s, "{b}");
        }
    }

    #[test]
    fn rows_per_chip_and_per_process_when_focused() {
        let m = model(&[
            process(0, 100, "python3 a.py"),
            process(1, 200, "b"),
            alloc(0, 0, 0, BufferType::Dram, 4096),
            alloc(1, 0, 0, BufferType::L1, 1024),
            alloc(1, 1, 2, BufferType::Dram, 2048),
        ]);
        let s = Snapshot::build(&m, &|p| p == 0);
        let all = rows(&s, &[]);
        assert_eq!(all.iter().map(|r| r.chip.as_str()).collect::<Vec<_>>(), ["0", "2"]);
        assert_eq!(all[0].who, "100 python3 a.py, 200 b (ended)");
        assert_eq!(all[0].buffers, 2);
        assert_eq!(cell_text(&all[0].cells[0]), "4K/4K");
        assert_eq!(cell_text(&all[0].cells[2]), "-");
        let focused = rows(&s, &[0, 5]);
        let labels: Vec<_> = focused.iter().map(|r| (r.chip.as_str(), r.who.as_str())).collect();
        assert_eq!(labels, [("0", "100 python3 a.py, 200 b (ended)"), ("", "└ 100 python3 a.py"), ("", "└ 200 b (ended)"), ("5", "")]);
        assert_eq!(focused[2].cells[1], Cell { current: 1024, peak: 1024, live: 1 });
        assert_eq!(focused[3].cells, [Cell::default(); 5]);
    }
}
