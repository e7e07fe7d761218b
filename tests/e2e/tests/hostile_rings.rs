//! Issue 8: the collector among corrupt, truncated and hostile ring files.
//! It must never crash or hang, refuse each bad file once with a one-line
//! message naming the file (and the header offset where there is one), keep
//! serving good rings, and turn a well-formed but garbage-filled ring into a
//! readable trace of bounded size.

use std::io::{Seek, SeekFrom, Write};
use std::mem::offset_of;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use ttalloc_e2e::*;
use ttalloc_ring::layout::{Header, MeshSlot, HEADER_BYTES, SLOT_BYTES};
use ttalloc_ring::Region;

/// A ring name for a process that is not running (pid 1 never started at that tick).
fn dead_name(image: u64) -> String {
    format!("ttalloc-{}-1-{}-{image}", unsafe { libc::geteuid() }, u64::MAX - 1)
}

fn valid_ring(path: &Path) {
    let r = Region::create(path, 16, 16, 1, u64::MAX - 1).unwrap();
    r.set_info(br#"{"tool":"ttalloc-shim","cmdline":"hostile"}"#);
}

fn poke(path: &Path, offset: usize, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset as u64)).unwrap();
    f.write_all(bytes).unwrap();
}

fn raw_file(path: &Path, bytes: &[u8], mode: u32) {
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// A stream of bytes that is not random-looking on purpose: every field gets
/// large, small and negative values.
fn junk(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn bad_ring_files_are_refused_once_and_named() {
    let shm = ShmDir::new();
    let d = shm.path();
    let mut expect: Vec<(PathBuf, &str)> = Vec::new();

    let p = d.join(dead_name(1));
    valid_ring(&p);
    poke(&p, 0, b"NOTTTALC");
    expect.push((p, "wrong magic at offset 0"));

    let p = d.join(dead_name(2));
    valid_ring(&p);
    poke(&p, offset_of!(Header, version), &99u32.to_ne_bytes());
    expect.push((p, &*Box::leak(format!("format version 99 at offset {}", offset_of!(Header, version)).into_boxed_str())));

    let p = d.join(dead_name(3));
    valid_ring(&p);
    poke(&p, offset_of!(Header, ring_slots), &(1u64 << 40).to_ne_bytes());
    expect.push((p, &*Box::leak(format!("table sizes at offset {}", offset_of!(Header, ring_slots)).into_boxed_str())));

    let p = d.join(dead_name(4));
    valid_ring(&p);
    poke(&p, offset_of!(Header, info_len), &u32::MAX.to_ne_bytes());
    expect.push((p, &*Box::leak(format!("info length at offset {}", offset_of!(Header, info_len)).into_boxed_str())));

    let p = d.join(dead_name(5));
    raw_file(&p, b"TTALLOC1 but far too short", 0o600);
    expect.push((p, "smaller than a header"));

    let p = d.join(dead_name(6));
    valid_ring(&p);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    expect.push((p, "refused: owned by uid"));

    let p = d.join(dead_name(7));
    let target = d.join("elsewhere");
    valid_ring(&target);
    std::os::unix::fs::symlink(&target, &p).unwrap();
    expect.push((p, "open ring"));

    let p = d.join(dead_name(8));
    std::fs::create_dir(&p).unwrap();
    expect.push((p, "open ring"));

    let p = d.join(dead_name(9));
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    expect.push((p, "not a regular file"));

    let dir = tempfile::tempdir().unwrap();
    let mut col = start_collector(&shm, &dir.path().join("t.msgpack"));
    // A good workload alongside: the collector keeps serving it.
    let driver = testlib("v081").join("ttfake_driver");
    let out = preloaded(&shm, &[driver.to_str().unwrap(), "mesh", "2"], &[]).output().unwrap();
    ok(&out);
    assert!(wait_for(20, || !shm.rings().iter().any(|r| r.to_string_lossy().contains(&format!("-{}-", out_pid(&out))))));
    std::thread::sleep(std::time::Duration::from_millis(300)); // a few more discovery passes
    assert!(col.child.try_wait().unwrap().is_none(), "the collector is still running");
    let trace = col.trace.clone();
    let o = col.stop();
    let err = stderr(&o);
    for (path, what) in &expect {
        let lines: Vec<&str> = err.lines().filter(|l| l.contains(&path.display().to_string())).collect();
        assert_eq!(lines.len(), 1, "{}: said once\n{err}", path.display());
        assert!(lines[0].starts_with("ttalloc-collect: ") && lines[0].contains(what), "{:?} should say {what:?}", lines[0]);
    }
    let r = replay(&trace);
    assert!(r.complete);
    assert_eq!(r.processes(), 1, "only the good ring became a process");
    assert_eq!(r.model.unknown_frees, 0);
}

fn out_pid(o: &std::process::Output) -> u64 {
    let v: serde_json::Value = serde_json::from_str(stdout(o).lines().next().unwrap()).unwrap();
    v["pid"].as_u64().unwrap()
}

/// A ring whose header is right and whose every other byte is garbage
/// (cursors a lap apart or 2^63 ahead, random stamps and events, a live
/// table full of junk, meshes claiming 1000 chips): a readable trace of
/// bounded size comes out, promptly.
#[test]
fn garbage_rings_make_bounded_traces() {
    let shm = ShmDir::new();
    let d = shm.path();
    let (ring, live) = (1024usize, 1024usize);
    for (i, head) in [(1u64, 1u64 << 63), (2, 5000), (3, 1000)] {
        let p = d.join(dead_name(100 + i));
        Region::create(&p, ring as u64, live as u64, 1, u64::MAX - 1).unwrap();
        let body = junk((ring + live) * SLOT_BYTES, i);
        poke(&p, HEADER_BYTES, &body);
        poke(&p, offset_of!(Header, tail), &3u64.to_ne_bytes());
        poke(&p, offset_of!(Header, head), &head.to_ne_bytes());
        poke(&p, offset_of!(Header, dropped), &u64::MAX.to_ne_bytes());
        poke(&p, offset_of!(Header, problems), &junk(16 * 8, i + 7));
        poke(&p, offset_of!(Header, info_len), &100u32.to_ne_bytes());
        poke(&p, offset_of!(Header, info), &junk(100, i + 9));
        // Mesh slots: published, with absurd chip counts and junk chips.
        for m in 0..4 {
            let at = offset_of!(Header, meshes) + m * std::mem::size_of::<MeshSlot>();
            poke(&p, at, &junk(std::mem::size_of::<MeshSlot>(), i * 10 + m as u64));
            poke(&p, at + 8, &1000u32.to_ne_bytes());
            poke(&p, at + 12, &2u32.to_ne_bytes());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.msgpack");
    let col = std::process::Command::new(artefact("ttalloc-collect"))
        .arg("--out")
        .arg(&trace)
        .arg("--shm-dir")
        .arg(d)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bg = Background { child: col, trace: trace.clone() };
    assert!(wait_for(20, || shm.rings().is_empty()), "every garbage ring was drained and finished: {:?}", shm.rings());
    let o = bg.stop();
    assert!(stderr(&o).lines().all(|l| !l.contains("panicked")), "{}", stderr(&o));
    let r = replay(&trace);
    assert!(r.complete);
    assert_eq!(r.processes(), 3);
    // Bounded: at most one record per slot and entry, and then some.
    let size = std::fs::metadata(&trace).unwrap().len();
    assert!(size < 3 * (ring + live) as u64 * 64, "{size} bytes of trace from 3 small rings");
}
