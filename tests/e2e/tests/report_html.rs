//! The HTML report of the mesh workload, rendered by headless Chromium
//! (Debian's `chromium`, installed by `make deps`): every picture is laid
//! out with visible marks and no script error happens (the page's self-check
//! records both on `<body>`), and the screenshot is a page, not a blank.
//! Plus the Perfetto export of the same trace, checked against the
//! trace-event format.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use ttalloc_e2e::*;

#[path = "../../../cli/tests/common/trace_event.rs"]
mod trace_event;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The mesh workload (8 chips, 0.81 layout) traced by the real collector.
fn mesh_trace(dir: &Path) -> PathBuf {
    let shm = ShmDir::new();
    let lib = testlib("v081");
    let run = collect(&shm, &dir.join("mesh.msgpack"), &["python3", workload("test_mesh_allocation.py").to_str().unwrap(), "--lib", lib.to_str().unwrap()], &[]);
    ok(&run.output);
    run.trace
}

/// Headless Chromium, isolated (fresh profile, no network services), killed after 90 s.
fn chromium(profile: &Path, args: &[&str]) -> Output {
    assert!(Path::new(CHROMIUM).exists(), "{CHROMIUM} missing: `make deps` installs Debian's chromium");
    let mut child = Command::new(CHROMIUM)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .env("HOME", profile)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().expect("wait chromium").is_some() {
            return child.wait_with_output().expect("chromium output");
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("chromium did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of attribute `name` on the `<body>` tag of `dom`.
fn body_attr<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let start = dom.find("<body")?;
    let tag = &dom[start..start + dom[start..].find('>')?];
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&tag[at..at + tag[at..].find('"')?])
}

/// Width and height from a PNG's IHDR.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn mesh_report_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let trace = mesh_trace(dir.path());
    let html = dir.path().join("mesh.html");
    let o = Command::new(artefact("ttalloc")).arg("report").arg(&trace).arg("--html").arg(&html).output().unwrap();
    ok(&o);
    let url = format!("file://{}", html.display());

    // The DOM after load: the self-check ran, every picture drew, no errors.
    let profile = tempfile::tempdir().unwrap();
    let o = chromium(profile.path(), &["--virtual-time-budget=5000", "--dump-dom", &url]);
    assert!(o.status.success(), "chromium --dump-dom: {:?}\n{}", o.status, stderr(&o));
    let dom = stdout(&o);
    assert_eq!(body_attr(&dom, "data-rendered"), Some("1"), "the page's check did not run:\n{}", &dom[..dom.len().min(2000)]);
    let errors_at = dom.find("id=\"ttalloc-errors\"").expect("error box");
    assert_eq!(body_attr(&dom, "data-errors"), Some("0"), "{}", &dom[errors_at..(errors_at + 1000).min(dom.len())]);
    let charts: usize = body_attr(&dom, "data-charts").unwrap().parse().unwrap();
    let drawn: usize = body_attr(&dom, "data-drawn").unwrap().parse().unwrap();
    // 8 chips × (DRAM, L1) plots, 3 peak compositions (DRAM, L1, CB: alike on all chips),
    // one L1 map (alike on all chips), the leaked-bytes bar.
    assert_eq!(charts, 8 * 2 + 3 + 1 + 1, "pictures on the page");
    assert_eq!(drawn, charts, "pictures drawn");
    for c in 0..8 {
        assert!(dom.contains(&format!("aria-label=\"chip {c} · DRAM\"")), "chip {c}");
    }
    assert!(dom.contains("largest free gap 1.07 MiB"), "the L1 map labels its largest gap");
    assert!(dom.contains("CB region 40.00 KiB"));

    // A screenshot of the top of the page: a page with pictures, not a blank.
    let shot = dir.path().join("mesh.png");
    let profile = tempfile::tempdir().unwrap();
    let o = chromium(profile.path(), &["--window-size=1200,1600", &format!("--screenshot={}", shot.display()), &url]);
    assert!(o.status.success(), "chromium --screenshot: {:?}\n{}", o.status, stderr(&o));
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(png_size(&png), (1200, 1600));
    // A blank 1200×1600 page compresses to ≈ 10 KB; this one has cards, a table and 6 plots.
    assert!(png.len() > 80_000, "screenshot of {} bytes: is the page blank?", png.len());
    if let Some(keep) = std::env::var_os("TTALLOC_KEEP_REPORT") {
        let keep = PathBuf::from(keep);
        std::fs::copy(&html, keep.join("mesh.html")).unwrap();
        std::fs::copy(&shot, keep.join("mesh.png")).unwrap();
    }
}

#[test]
fn mesh_perfetto_export_is_valid_trace_event_json() {
    let dir = tempfile::tempdir().unwrap();
    let trace = mesh_trace(dir.path());
    let out = dir.path().join("mesh.json");
    let o = Command::new(artefact("ttalloc")).arg("export").arg(&trace).arg("--perfetto").arg(&out).output().unwrap();
    ok(&o);
    let s = trace_event::validate(&std::fs::read_to_string(&out).unwrap()).unwrap_or_else(|e| panic!("{e}"));
    for c in 0..8 {
        assert_eq!(s.process_names[&(1000 + c)], format!("chip {c}"));
        for ty in ["DRAM", "L1", "CB"] {
            let track = &s.counters[&(1000 + c, format!("chip {c} {ty}"))];
            let peak = track.iter().map(|(_, a)| a["bytes"].as_u64().unwrap()).max().unwrap();
            let want = match ty {
                "DRAM" => MIB + 128 * 1024 + 6 * MIB,
                "L1" => 32 * 1024 + 128 * 1024,
                _ => 40 * 1024,
            };
            assert_eq!(peak, want, "chip {c} {ty}");
            assert_eq!(track.last().unwrap().1["bytes"], 0, "chip {c} {ty} ends at 0");
        }
    }
    // One slice per allocation per chip: 4 DRAM, 2 L1, 3 CB.
    assert_eq!(s.phases["X"], 8 * (4 + 2 + 3));
}
