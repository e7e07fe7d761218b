//! Issue 3, real-library tier for the shim: a process preloaded with the real `libttalloc.so`
//! `dlopen`s the REAL `libtt_metal.so` of a ttnn wheel (0.65.0, 0.71.2, 0.81.1) like Python
//! does (`RTLD_NOW | RTLD_LOCAL`), from a renamed copy in a directory that is on no search
//! path. No device is needed: the load alone makes the shim find the library, resolve every
//! original and Buffer accessor in it and write its verdict, which the collector copies into
//! the trace. With `TTALLOC_INLINE=all` the shim also patches every entry of the real code,
//! and calls through those entries are recorded.
//!
//! Needs `make wheels` (run by `make test`); a missing wheel fails the test unless
//! `TTALLOC_SKIP_REAL_WHEELS=1`, which skips it loudly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use ttalloc_e2e::*;
use ttalloc_trace::Record;

/// `tests/workloads/load_metal.c`, compiled once per test run.
fn load_metal() -> &'static Path {
    static BIN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, bin) = BIN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("load_metal");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let out = Command::new(&cc).args(["-O1", "-Wall", "-o"]).arg(&bin).arg(workload("load_metal.c")).arg("-ldl").output().expect("run cc");
        ok(&out);
        (dir, bin)
    });
    bin
}

/// A renamed copy of the wheel's library in a fresh directory tree, with the wheel's sibling
/// libraries where its RPATH (`$ORIGIN:$ORIGIN/../../../ttnn.libs`) looks for them.
fn renamed_copy(lib: &Path) -> (tempfile::TempDir, PathBuf) {
    let wheel_lib_dir = lib.parent().unwrap();
    let libs = wheel_lib_dir.join("../../../ttnn.libs");
    // Inside the cache so that a hard link works (same file system); on no search path.
    let root = tempfile::Builder::new().prefix(".ttalloc-test-").tempdir_in(wheel_lib_dir.join("../../..")).unwrap();
    let dir = root.path().join("x/y/z");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("libmetal-renamed-by-ttalloc-test.so");
    if std::fs::hard_link(lib, &copy).is_err() {
        std::fs::copy(lib, &copy).unwrap();
    }
    for e in std::fs::read_dir(wheel_lib_dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.contains(".so") && !name.starts_with("libtt_metal") && !name.contains("renamed") {
            std::os::unix::fs::symlink(&p, dir.join(&name)).unwrap();
        }
    }
    std::os::unix::fs::symlink(libs.canonicalize().unwrap(), root.path().join("ttnn.libs")).unwrap();
    (root, copy)
}

/// Runs `load_metal COPY CALLS` preloaded, under the collector; returns the
/// trace and the line `load_metal` printed.
fn traced(copy: &Path, calls: u32, env: &[(&str, &str)]) -> (Replayed, serde_json::Value) {
    let shm = ShmDir::new();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.msgpack");
    let mut c = Command::new(artefact("ttalloc-collect"));
    c.arg("--out").arg(&trace).arg("--shm-dir").arg(shm.path()).arg("--").arg(load_metal()).arg(copy).arg(calls.to_string());
    c.env("TTALLOC_LIB", artefact("libttalloc.so")).env_remove("LD_LIBRARY_PATH").env_remove("TT_METAL_HOME");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    ok(&out);
    let text = stdout(&out);
    let line = text.lines().find(|l| l.starts_with("{\"loaded\"")).unwrap_or_else(|| panic!("no load_metal line: {text}"));
    let printed: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(printed["calls"], calls, "{line}");
    (replay(&trace), printed)
}

/// `load_metal` hands the shim one Buffer built by hand (0.81: over a BufferImpl;
/// 0.65–0.77: the fields in the Buffer) and prints what the real library's
/// accessors read from it; the shim reads it with direct loads (`direct_fields`
/// 6): the trace must hold exactly those values.
fn direct_loads_match_the_accessors(version: &str, r: &Replayed, printed: &serde_json::Value) {
    let b = &printed["buffer"];
    assert_eq!((b["tracked"].clone(), b["allocated"].clone()), (true.into(), true.into()), "{version}: {printed}");
    // Only 0.81 has a device() accessor to ask; on legacy builds the trace's chip 0 is the check.
    assert!(b.get("device_ok").is_none_or(|d| *d == true), "{version}: {printed}");
    let allocs: Vec<_> = r.records.iter().filter_map(|rec| if let Record::Alloc(a) = rec { Some(*a) } else { None }).collect();
    assert_eq!(allocs.len(), 1, "{version}");
    let a = allocs[0];
    let got = serde_json::json!({"size": a.size, "type": a.btype, "address": a.address, "page_size": a.page_size, "chip": a.chip, "flags": a.flags});
    let want = serde_json::json!({"size": b["size"], "type": b["type"], "address": b["address"], "page_size": b["page_size"], "chip": 0, "flags": 0});
    assert_eq!(got, want, "{version}: the shim's direct loads against the real accessors");
    let frees = r.records.iter().filter(|rec| matches!(rec, Record::Free { alloc_seq, .. } if *alloc_seq == a.ev.seq)).count();
    assert_eq!(frees, 1, "{version}: the free pairs with the allocation");
}

fn shim_info(r: &Replayed) -> serde_json::Value {
    let infos: Vec<&str> = r
        .records
        .iter()
        .filter_map(|rec| match rec {
            Record::Process(i) => Some(i.shim_info.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(infos.len(), 1, "one traced process");
    serde_json::from_str(infos[0]).unwrap_or_else(|e| panic!("shim_info is not JSON ({e}): {}", infos[0]))
}

fn problems(r: &Replayed) -> Vec<(String, u64)> {
    r.model.procs[0].end.as_ref().expect("process end").problems.clone()
}

fn targets(info: &serde_json::Value) -> &Vec<serde_json::Value> {
    info["analysis"]["targets"].as_array().expect("analysis.targets")
}

fn real_library(version: &str, abi: &str) {
    let Some(lib) = real_wheel_lib(version) else { return };
    let (_root, copy) = renamed_copy(&lib);

    // 1. Default policy: interposition everywhere (every real build binds its targets by symbol).
    let (r, printed) = traced(&copy, 3, &[]);
    let info = shim_info(&r);
    println!("{version}: shim_info {} bytes", info.to_string().len());
    assert_eq!(info["library"], copy.to_str().unwrap(), "found under its new name and path");
    assert_eq!(info["abi"], abi);
    assert_eq!(info["inline_hooked"], 0);
    for t in targets(&info) {
        let name = t["demangled"].as_str().unwrap();
        if t["present"] == true {
            assert_eq!(t["original_resolved"], true, "{version}: original of {name}");
            let hook = t["hook"].as_str().unwrap();
            let allowed: &[&str] = if t["strategy"] == "unreachable" { &["none"] } else { &["interpose", "none"] };
            assert!(allowed.contains(&hook), "{version}: {name}: {t}");
            if hook == "none" && t["strategy"] != "unreachable" {
                assert_eq!(t["hook_detail"], "ttalloc has no hook for it", "{version}: {name}");
            }
        } else {
            assert_eq!(t["original_resolved"], false, "{version}: {name}");
        }
    }
    let required = ["track_allocate(", "track_deallocate(", "hook_allocate(", "track_allocate_cb(", "allocate_circular_buffers(", "Device::close()"];
    for r in required {
        let t = targets(&info).iter().find(|t| t["demangled"].as_str().unwrap().contains(r)).unwrap();
        assert_eq!(t["hook"], "interpose", "{version}: {r}");
    }
    let accessors = info["accessors_resolved"].as_object().unwrap();
    for a in [
        "_ZNK2tt8tt_metal6Buffer7addressEv",
        "_ZNK2tt8tt_metal6Buffer12is_allocatedEv",
        "_ZNK2tt8tt_metal6Buffer9page_sizeEv",
        "_ZNK2tt8tt_metal11distributed10MeshDevice11get_devicesEv",
        "_ZTVN2tt8tt_metal6DeviceE",
        "_ZTVN2tt8tt_metal11distributed10MeshDeviceE",
        "_ZdlPv",
    ] {
        assert_eq!(accessors[a], true, "{version}: {a}");
    }
    let pimpl =
        ["_ZNK2tt8tt_metal6Buffer4sizeEv", "_ZNK2tt8tt_metal6Buffer11buffer_typeEv", "_ZNK2tt8tt_metal6Buffer6deviceEv", "_ZNK2tt8tt_metal6Buffer9unique_idEv"];
    for a in pimpl {
        assert_eq!(accessors[a], abi == "pimpl-0.81", "{version}: {a} resolved iff pimpl");
    }
    // Every release: the six fields the hot path needs are read with direct loads (0.81:
    // six proven BufferImpl getters; 0.65–0.77: three proven getters, three ctor offsets).
    assert_eq!(info["direct_fields"], 6, "{version}: {}", info["notes"]);
    direct_loads_match_the_accessors(version, &r, &printed);
    if abi != "pimpl-0.81" {
        assert_eq!(accessors["_ZNK2tt8tt_metal6Buffer9num_pagesEv"], true, "{version}: legacy size = num_pages * page_size");
    }
    assert!(info["notes"].as_array().unwrap().iter().all(|n| !n.as_str().unwrap().contains("cannot")), "{version}: {}", info["notes"]);
    assert_eq!(problems(&r), vec![], "{version}");
    // The direct calls through the library's own entry are not seen without a patch.
    assert_eq!(r.records.iter().filter(|rec| matches!(rec, Record::CbFree { .. })).count(), 0);

    // 2. TTALLOC_INLINE=all: every entry of the real code is patched; direct calls are recorded.
    let (r, printed) = traced(&copy, 7, &[("TTALLOC_INLINE", "all")]);
    direct_loads_match_the_accessors(version, &r, &printed);
    let info = shim_info(&r);
    let hooked = targets(&info).iter().filter(|t| t["present"] == true && t["hook_detail"] != "ttalloc has no hook for it").count();
    assert_eq!(info["inline_hooked"], hooked as u64, "{version}: {}", info["analysis"]["targets"]);
    assert!(targets(&info).iter().all(|t| t["hook"] != "failed"), "{version}: {}", info["analysis"]["targets"]);
    assert_eq!(r.records.iter().filter(|rec| matches!(rec, Record::CbFree { .. })).count(), 7, "{version}: each call through the patched entry recorded once");
    assert_eq!(problems(&r), vec![("cb_free_without_program".to_string(), 7)], "{version}");
}

#[test]
fn real_065_shim_resolves_everything() {
    real_library("0.65.0", "legacy-0.65-0.77");
}

#[test]
fn real_071_shim_resolves_everything() {
    real_library("0.71.2", "legacy-0.65-0.77");
}

#[test]
fn real_081_shim_resolves_everything() {
    real_library("0.81.1", "pimpl-0.81");
}
