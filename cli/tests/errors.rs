mod common;
use common::*;
use ttalloc_trace::Record;

#[test]
fn missing_file() {
    let o = ttalloc(&["replay", "/nonexistent/x.trace"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.starts_with("ttalloc: /nonexistent/x.trace: cannot open: "), "{e}");
    assert!(e.trim_end().ends_with("at byte offset 0"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(o.stdout.is_empty());
}

#[test]
fn foreign_files() {
    let d = tempfile::tempdir().unwrap();
    for (name, bytes) in [("hello.txt", b"hello world\n".to_vec()), ("empty", vec![]), ("json.trace", b"{\"a\":1}".to_vec())] {
        let p = write(d.path(), name, &bytes);
        for cmd in ["replay", "leaks", "dump"] {
            let o = ttalloc(&[cmd, p.to_str().unwrap()]);
            assert_eq!(o.status.code(), Some(2), "{cmd} {name}");
            let e = stderr(&o);
            assert!(e.starts_with(&format!("ttalloc: {}: ", p.display())), "{e}");
            assert!(e.contains("not a ttalloc trace") || e.contains("empty file"), "{e}");
            assert!(e.trim_end().ends_with("at byte offset 0"), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }
    let out = d.path().join("x.json");
    let p = write(d.path(), "bad", b"junk");
    let o = ttalloc(&["export", p.to_str().unwrap(), "--perfetto", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!out.exists());
    let html = d.path().join("x.html");
    let o = ttalloc(&["report", p.to_str().unwrap(), "--html", html.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!html.exists());
    let o = ttalloc(&["diff", p.to_str().unwrap(), p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn corrupt_record_names_its_offset() {
    let d = tempfile::tempdir().unwrap();
    let recs = golden_records();
    let offs = offsets(&recs);
    let mut bytes = golden();
    // Record 10 is an event record: [array header, tag, …]; make the tag unknown.
    assert!(matches!(recs[10], Record::Free { .. }));
    let at = offs[10] as usize;
    bytes[at + 1] = 0x7f;
    let p = write(d.path(), "corrupt.trace", &bytes);
    for cmd in ["replay", "leaks", "dump"] {
        let o = ttalloc(&[cmd, p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{cmd}");
        let e = stderr(&o);
        assert_eq!(e, format!("ttalloc: {}: corrupt record: unknown tag 127 at byte offset {at}\n", p.display()), "{cmd}");
    }
    let o = ttalloc(&["replay", p.to_str().unwrap(), "--json"]);
    assert!(o.stdout.is_empty(), "no half summary on corruption");
}

#[test]
fn cut_short_trace_replays_up_to_the_cut() {
    let d = tempfile::tempdir().unwrap();
    let recs = golden_records();
    let offs = offsets(&recs);
    let full = golden();
    // Cut inside record 12 (p0 seq 6, the L1 alloc): everything before it is replayed.
    let cut = offs[12] as usize + 5;
    let p = write(d.path(), "cut.trace", &full[..cut]);
    let o = ttalloc(&["replay", p.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(e, format!("ttalloc: {}: warning: trace cut short inside a record at byte offset {}; replayed up to there\n", p.display(), offs[12]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["trace"]["complete"], false);
    assert_eq!(v["trace"]["cut"]["offset"], offs[12]);
    assert_eq!(v["trace"]["records"], 13, "the header and the 12 records before the cut");
    assert_eq!(v["chips"]["0"]["DRAM"]["peak"], 14 * MIB);
    assert_eq!(v["chips"]["0"]["DRAM"]["live_end"], 6 * MIB);
    assert_eq!(v["chips"]["0"]["L1"]["allocs"], 1, "only the hooked one made it");
    assert_eq!(v["leaks"].as_array().unwrap().len(), 0, "no process ended: nothing leaked yet");

    for cmd in [vec!["replay"], vec!["leaks"], vec!["dump"], vec!["replay", "--at", "100"]] {
        let mut a = cmd.clone();
        a.push(p.to_str().unwrap());
        let o = ttalloc(&a);
        assert_eq!(o.status.code(), Some(0), "{cmd:?}");
        assert!(stderr(&o).contains("warning: trace cut short"), "{cmd:?}: {}", stderr(&o));
    }
    let out = d.path().join("cut.json");
    let o = ttalloc(&["export", p.to_str().unwrap(), "--perfetto", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let _: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let html = d.path().join("cut.html");
    let o = ttalloc(&["report", p.to_str().unwrap(), "--html", html.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(std::fs::read_to_string(&html).unwrap().contains("cut short"));

    // Cut at a record boundary: no footer, also a warning.
    let p = write(d.path(), "nofooter.trace", &full[..offs[20] as usize]);
    let o = ttalloc(&["replay", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("warning: trace has no footer"), "{}", stderr(&o));

    // Every cut point replays or warns; none crashes.
    for cut in (1..full.len()).step_by(2) {
        let p = write(d.path(), "c.trace", &full[..cut]);
        let o = ttalloc(&["replay", p.to_str().unwrap(), "--json"]);
        match o.status.code() {
            Some(0) => assert!(stderr(&o).contains("warning"), "cut {cut}"),
            Some(2) => assert!(stderr(&o).contains("at byte offset 0"), "cut {cut}: {}", stderr(&o)),
            c => panic!("cut {cut}: exit {c:?} {}", stderr(&o)),
        }
    }
}

/// Text written at once and JSON streamed alike: a reader that went away ends the command quietly.
#[test]
fn broken_pipe_is_quiet() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "g.trace", &golden());
    let p = p.to_str().unwrap();
    for args in [vec!["dump", p], vec!["replay", p, "--json"], vec!["leaks", p, "--json"]] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ttalloc"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }
}

#[test]
fn doctor_is_wired() {
    let o = ttalloc(&["doctor", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "libtt_metal.so", b"not an ELF file");
    let o = ttalloc(&["doctor", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.starts_with(&format!("ttalloc: {}: ", p.display())), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}
