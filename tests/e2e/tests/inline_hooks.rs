//! Issue 3: calls that bypass the PLT. `v081-symbolic` is the 0.81 test library linked with
//! `-Wl,-Bsymbolic-functions`: every intra-library call to a target is direct, so a pure
//! LD_PRELOAD shim sees nothing. The shim patches those entries (inline hooks) and must then
//! produce the same trace as on the normal `v081` build: same records in the same order with
//! the same numbers, modulo pids, timestamps and heap addresses of C++ objects.

use std::collections::HashMap;
use ttalloc_e2e::*;
use ttalloc_ring::BufferType::*;
use ttalloc_trace::{ChipKind, Record};

/// Runs a workload under the collector; returns the replay and the command's output.
fn run(cmd: &[&str], env: &[(&str, &str)]) -> (Replayed, std::process::Output) {
    let shm = ShmDir::new();
    let dir = tempfile::tempdir().unwrap();
    let run = collect(&shm, &dir.path().join("t.msgpack"), cmd, env);
    ok(&run.output);
    (replay(&run.trace), run.output)
}

fn driver(variant: &str, args: &[&str], env: &[(&str, &str)]) -> (Replayed, std::process::Output) {
    let d = testlib(variant).join("ttfake_driver");
    let mut cmd = vec![d.to_str().unwrap()];
    cmd.extend_from_slice(args);
    run(&cmd, env)
}

fn python_mesh(variant: &str) -> Replayed {
    let lib = testlib(variant);
    let script = workload("test_mesh_allocation.py");
    run(&["python3", script.to_str().unwrap(), "--lib", lib.to_str().unwrap()], &[]).0
}

/// Heap pointers (Buffer*, ProgramImpl*, MeshDevice*) differ from run to run; their identity
/// structure does not: name each by order of first appearance.
#[derive(Default)]
struct Names(HashMap<u64, usize>);

impl Names {
    fn of(&mut self, ptr: u64) -> String {
        if ptr == 0 {
            return "null".into();
        }
        let n = self.0.len();
        format!("#{}", self.0.entry(ptr).or_insert(n))
    }
}

/// One line per record, without pids, timestamps, thread ids, paths or heap addresses; grouped
/// by process (the collector interleaves the rings of two processes as it drains them).
fn normalized(r: &Replayed) -> Vec<String> {
    let mut n = Names::default();
    let mut records: Vec<&Record> = r.records.iter().collect();
    records.sort_by_key(|rec| rec.process().unwrap_or(u32::MAX));
    records
        .into_iter()
        .filter_map(|rec| {
            Some(match rec {
                Record::Header(_) => return None,
                Record::Process(i) => format!("process p{} {}", i.p, i.attach),
                Record::Mesh(m) => format!("mesh p{} slot {} {} chips {:?}", m.p, m.slot, n.of(m.mesh), m.chips),
                Record::Alloc(a) => format!(
                    "alloc p{} seq {} chip {} type {} flags {} {} addr {:#x} size {} page {}",
                    a.ev.p,
                    a.ev.seq,
                    a.chip,
                    a.btype,
                    a.flags,
                    n.of(a.object),
                    a.address,
                    a.size,
                    a.page_size
                ),
                Record::Free { ev, alloc_seq } => format!("free p{} seq {} of {alloc_seq}", ev.p, ev.seq),
                Record::UnknownFree { ev, object, chip, btype, address, size } => {
                    format!("unknown_free p{} seq {} {} chip {chip} type {btype} addr {address:#x} size {size}", ev.p, ev.seq, n.of(*object))
                }
                Record::CbAlloc(c) | Record::DfbAlloc(c) => format!(
                    "{} p{} seq {} chip {} {} addr {:#x} size {} flags {}",
                    if matches!(rec, Record::CbAlloc(_)) { "cb_alloc" } else { "dfb_alloc" },
                    c.ev.p,
                    c.ev.seq,
                    c.chip,
                    n.of(c.program),
                    c.address,
                    c.size,
                    c.flags
                ),
                Record::CbFree { ev, chip, program } => {
                    format!("cb_free p{} seq {} chip {chip} {}", ev.p, ev.seq, n.of(*program))
                }
                Record::ProgramEnd { ev, program } => format!("program_end p{} seq {} {}", ev.p, ev.seq, n.of(*program)),
                Record::DeviceClose { ev, chip } => format!("device_close p{} seq {} chip {chip}", ev.p, ev.seq),
                Record::AllocFailed { ev, chip, btype, size, program, what } => {
                    format!("alloc_failed p{} seq {} chip {chip} type {btype} size {size} {} what {what}", ev.p, ev.seq, n.of(*program))
                }
                other @ (Record::Gap { .. } | Record::Resync { .. } | Record::ResyncDrop { .. }) => format!("{other:?}"),
                Record::ProcessEnd(e) => {
                    format!("process_end p{} last {} {} dropped {} problems {:?}", e.p, e.last_seq, e.how, e.dropped, e.problems)
                }
                Record::Footer(f) => format!("footer {} records {} processes {} unknown frees", f.records, f.processes, f.unknown_frees),
            })
        })
        .collect()
}

/// The shim's load-time verdict of the (one) traced process.
fn shim_info(r: &Replayed) -> serde_json::Value {
    let info = r.records.iter().find_map(|rec| match rec {
        Record::Process(i) => Some(i.shim_info.clone()),
        _ => None,
    });
    serde_json::from_str(&info.expect("a process record")).expect("shim_info is JSON")
}

fn hooks(info: &serde_json::Value) -> Vec<(String, String)> {
    info["analysis"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["demangled"].as_str().unwrap().to_string(), t["hook"].as_str().unwrap_or("?").to_string()))
        .collect()
}

fn assert_same_trace(what: &str, plain: &Replayed, other: &Replayed) {
    let (a, b) = (normalized(plain), normalized(other));
    assert!(a.iter().filter(|l| l.starts_with("alloc ")).count() >= 3, "{what}: a trivial trace proves nothing:\n{a:#?}");
    if a != b {
        let first = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
        panic!("{what}: traces differ at record {first} ({} vs {} records)\n  plain:    {:?}\n  inline:   {:?}", a.len(), b.len(), a.get(first), b.get(first));
    }
    // Per-process, per-chip numbers (everything but the peak's timestamp; across processes the
    // peak depends on how their lifetimes overlap in time).
    let numbers = |r: &Replayed| -> Vec<_> {
        r.model
            .proc_usage
            .iter()
            .map(|(k, u)| (*k, u.current, u.peak, u.peak_seq, u.allocs, u.frees, u.hooked_allocs, u.close_released, u.live_count))
            .collect()
    };
    assert_eq!(numbers(plain), numbers(other), "{what}: per-chip numbers");
}

fn inline_count(info: &serde_json::Value) -> usize {
    hooks(info).iter().filter(|(_, h)| h == "inline").count()
}

/// Targets present in the library for which the shim has a hook (12 of 13 today: dataflow
/// buffers have none yet).
fn hookable(info: &serde_json::Value) -> usize {
    let targets = info["analysis"]["targets"].as_array().unwrap();
    let n = targets.iter().filter(|t| t["present"] == true && t["hook_detail"] != "ttalloc has no hook for it").count();
    assert!(n >= 12, "{info}");
    n
}

/// The python mesh workload (8 chips): same trace on the normal and the symbolic build.
#[test]
fn symbolic_build_gives_the_same_trace_python_mesh() {
    let plain = python_mesh("v081");
    let symbolic = python_mesh("v081-symbolic");
    assert_eq!(inline_count(&shim_info(&plain)), 0, "the normal build is interposed: {:?}", hooks(&shim_info(&plain)));
    let info = shim_info(&symbolic);
    // Every target the shim hooks is patched (dataflow buffers: placed through mark_address;
    // hook_deallocate: nothing to record, deliberately not hooked).
    for (name, how) in hooks(&info) {
        if !name.contains("allocate_dataflow_buffers") && !name.contains("hook_deallocate") {
            assert_eq!(how, "inline", "{name}: {info}");
        }
    }
    assert_eq!(info["inline_hooked"], hookable(&info) as u64);
    assert_same_trace("python mesh", &plain, &symbolic);
    for chip in 0..8 {
        assert_eq!(symbolic.peak(chip, Cb), 16_384 + 16_384 + 8_192, "chip {chip}");
    }
}

/// C++ scenarios covering every target: hooked (graph-capture) buffers, CBs, device close with
/// leftovers, the L1/CB clash (a C++ exception through an inline-hooked entry and its
/// trampoline), out of memory, fork (the child inherits the patched code).
#[test]
fn symbolic_build_gives_the_same_trace_cpp_scenarios() {
    for args in [&["matmul_multicore_reuse"][..], &["mesh", "4"], &["leak_at_close"], &["cb_clash"], &["oom"], &["fork"], &["mesh_per_core", "4"], &["dfb", "4"]] {
        let (plain, _) = driver("v081", args, &[]);
        let (symbolic, out) = driver("v081-symbolic", args, &[]);
        if args[0] == "cb_clash" {
            assert!(stdout(&out).contains("clash"), "the exception reached the caller: {}", stdout(&out));
        }
        assert!(stderr(&out).lines().all(|l| !l.starts_with("ttalloc: cannot hook")), "{}", stderr(&out));
        assert_same_trace(&args.join(" "), &plain, &symbolic);
    }
}

/// The exported-symbol path with inline hooks in place: `TTALLOC_INLINE=all` patches every
/// entry of the normal build too, whose calls still arrive through the PLT at the exported
/// hooks. The hooks forward to the trampolines, so each call is recorded once, not twice.
#[test]
fn plt_calls_and_patched_entries_record_once() {
    for args in [&["matmul_multicore_reuse"][..], &["mesh", "2"]] {
        let (plain, _) = driver("v081", args, &[]);
        let (both, _) = driver("v081", args, &[("TTALLOC_INLINE", "all")]);
        let info = shim_info(&both);
        assert_eq!(inline_count(&info), hookable(&info), "{:?}", hooks(&info));
        assert_same_trace(&format!("{} with TTALLOC_INLINE=all", args.join(" ")), &plain, &both);
    }
}

/// Threads racing through the patched entries and trampolines: exact totals.
#[test]
fn symbolic_build_threads() {
    let (r, _) = driver("v081-symbolic", &["threads", "4", "20000"], &[]);
    assert_eq!(r.model.unknown_frees, 0);
    assert_eq!(r.model.live().count(), 0);
    if r.model.dropped == 0 {
        assert_eq!(r.model.usage[&(0, L1)].allocs, 1 + 80_000);
        assert_eq!(r.model.usage[&(0, Dram)].allocs, 2 + 80_000);
    }
}

/// When the patch is refused (here: by the user), the run degrades to forwarding: the
/// workload is unchanged, the trace says which targets were not hooked and why, the problem
/// is counted, and stderr carries one line.
#[test]
fn refused_inline_hooks_degrade_to_forwarding() {
    let (r, out) = driver("v081-symbolic", &["mesh", "2"], &[("TTALLOC_INLINE", "off")]);
    assert!(stdout(&out).contains("\"scenario\":\"mesh\""), "the workload ran: {}", stdout(&out));
    assert_eq!(r.count(ChipKind::Alloc), 0, "direct calls are not seen without the patch");
    let info = shim_info(&r);
    let failed: Vec<_> = info["analysis"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["hook"] == "failed")
        .map(|t| t["hook_detail"].as_str().unwrap().to_string())
        .collect();
    let n = hookable(&info);
    assert_eq!(failed.len(), n, "{info}");
    assert!(failed.iter().all(|d| d == "TTALLOC_INLINE=off"));
    let proc0 = &r.model.procs[0];
    let end = proc0.end.as_ref().unwrap();
    assert!(end.problems.contains(&("inline_hook_failed".to_string(), n as u64)), "{:?}", end.problems);
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("ttalloc: cannot hook")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(&format!("and {} more: its direct calls are not recorded", n - 1)), "{}", lines[0]);
}

/// `ttalloc doctor` says which targets are hooked inline on the symbolic build.
#[test]
fn doctor_says_hooked_inline() {
    let lib = testlib("v081-symbolic").join("libtt_metal.so");
    let out = std::process::Command::new(artefact("ttalloc")).arg("doctor").arg(&lib).output().unwrap();
    ok(&out);
    let text = stdout(&out);
    assert!(text.contains("verdict   OK: every required target is reached; 13 hooked inline"), "{text}");
    let line = text.lines().find(|l| l.contains("GraphTracker::track_allocate ")).unwrap();
    assert!(line.contains("hooked inline"), "{line}");
    let json = std::process::Command::new(artefact("ttalloc")).args(["doctor", "--json"]).arg(&lib).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(v["targets"].as_array().unwrap().iter().all(|t| t["strategy"] == "inline_hook"));
}

/// `TTALLOC=0` on the symbolic build: nothing is patched, nothing is written or printed.
#[test]
fn disabled_tracking_patches_nothing() {
    let shm = ShmDir::new();
    let d = testlib("v081-symbolic").join("ttfake_driver");
    let out = preloaded(&shm, &[d.to_str().unwrap(), "mesh", "2"], &[("TTALLOC", "0")]).output().unwrap();
    ok(&out);
    assert!(shm.rings().is_empty());
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}
