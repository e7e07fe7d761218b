//! `--monitor` when stdout is not a terminal: the same rows as the full-screen
//! view (table.rs) as a plain, column-aligned table, printed whenever the
//! state changed (at most once per refresh) — readable in a log or a pipe.

use crate::snapshot::Snapshot;
use crate::table::{self, Row};

pub fn render(snap: &Snapshot, focus: &[i32]) -> String {
    let mut s = String::from("ttalloc-collect: ");
    if let Some(why) = &snap.finished {
        s += &format!("finished ({why}): ");
    }
    s += &table::totals(snap);
    s += "\n";
    let rows = table::rows(snap, focus);
    if rows.is_empty() {
        return s + "no device memory recorded yet\n\n";
    }
    let mut grid: Vec<Vec<String>> = vec![["chip", "DRAM", "L1", "L1_SMALL", "TRACE", "CB", "buffers", "processes"].map(String::from).to_vec()];
    grid.extend(rows.iter().map(|r: &Row| {
        let mut line = vec![r.chip.clone()];
        line.extend(r.cells.iter().map(table::cell_text));
        line.push(r.buffers.to_string());
        line.push(r.who.clone());
        line
    }));
    let widths: Vec<usize> = (0..8).map(|i| grid.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
    for line in &grid {
        let mut out = String::new();
        for (i, cell) in line.iter().enumerate() {
            if i == 7 {
                out += cell; // last column: no padding
            } else {
                out += &format!("{cell:<w$}  ", w = widths[i]);
            }
        }
        s += out.trim_end();
        s += "\n";
    }
    s + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tests::*;
    use ttalloc_ring::BufferType;

    #[test]
    fn aligned_columns_and_the_finish_line() {
        let m = model(&[
            process(0, 4242, "/usr/bin/python3 /x/hold.py --lib y"),
            alloc(0, 0, 0, BufferType::Dram, 6 << 20),
            alloc(0, 1, 0, BufferType::Dram, 3 << 20),
            free(0, 2, 0),
            alloc(0, 3, 1, BufferType::L1, 40960),
        ]);
        let mut snap = Snapshot::build(&m, &|_| true);
        let expected = "\
ttalloc-collect: processes 1 attached / 1 seen · events 4 · dropped 0 · unknown frees 0
chip  DRAM   L1       L1_SMALL  TRACE  CB  buffers  processes
0     3M/9M  -        -         -      -   1        4242 python3 hold.py
1     -      40K/40K  -         -      -   1        4242 python3 hold.py

";
        assert_eq!(render(&snap, &[]), expected);
        snap.finished = Some("stopped".into());
        assert!(render(&snap, &[1]).starts_with("ttalloc-collect: finished (stopped): processes 1"));
        assert_eq!(render(&Snapshot::default(), &[]), "ttalloc-collect: processes 0 attached / 0 seen · events 0 · dropped 0 · unknown frees 0\nno device memory recorded yet\n\n");
    }
}
