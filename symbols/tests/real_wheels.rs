//! Real-library tier: the `libtt_metal.so` of the ttnn 0.65.0, 0.71.2 and 0.81.1 wheels.
//!
//! Get them with `scripts/fetch-wheels.sh 0.65.0 0.71.2 0.81.1` (cache:
//! `$TTALLOC_WHEEL_CACHE`, default `~/.cache/ttalloc/wheels`). A missing library FAILS the
//! test, unless `TTALLOC_SKIP_REAL_WHEELS=1`, which skips it loudly.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use ttalloc_symbols::abi::{BufferReader, DeviceKind};
use ttalloc_symbols::catalog::{self, Accessor, Family, Target, TARGETS};
use ttalloc_symbols::elf::{self, Analysis, Mode, Strategy};
use ttalloc_symbols::{doctor, runtime, validate};

const VERSIONS: [&str; 3] = ["0.65.0", "0.71.2", "0.81.1"];
const FETCH: &str = "scripts/fetch-wheels.sh 0.65.0 0.71.2 0.81.1";

fn cache() -> PathBuf {
    std::env::var_os("TTALLOC_WHEEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/ttalloc/wheels"))
}

fn require(p: PathBuf) -> Option<PathBuf> {
    if p.is_file() {
        return Some(p);
    }
    if std::env::var("TTALLOC_SKIP_REAL_WHEELS").as_deref() == Ok("1") {
        eprintln!(
            "\n!!!!!!!! SKIPPED real-wheel check: {} is missing and TTALLOC_SKIP_REAL_WHEELS=1 !!!!!!!!\n",
            p.display()
        );
        return None;
    }
    panic!("{} is missing: run `{FETCH}` (or set TTALLOC_SKIP_REAL_WHEELS=1 to skip loudly)", p.display());
}

/// The bare library (`<cache>/<v>/lib/libtt_metal.so`).
fn lib(v: &str) -> Option<PathBuf> {
    require(cache().join(v).join("lib/libtt_metal.so"))
}

/// The library inside its minimal site-packages (loadable, with dist-info).
fn site_lib(v: &str) -> Option<PathBuf> {
    require(cache().join(v).join("site/ttnn/build/lib/libtt_metal.so"))
}

/// Full analyses, computed once per version and shared by the tests.
fn full(v: &str) -> Option<&'static Analysis> {
    static CELLS: [OnceLock<Option<Analysis>>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let i = VERSIONS.iter().position(|x| *x == v).unwrap();
    CELLS[i]
        .get_or_init(|| lib(v).map(|p| elf::analyze(&p, Mode::Full).unwrap_or_else(|e| panic!("{v}: {e}"))))
        .as_ref()
}

fn all() -> Vec<(&'static str, &'static Analysis)> {
    VERSIONS.iter().filter_map(|v| full(v).map(|a| (*v, a))).collect()
}

#[test]
fn required_targets_present_and_plt_reachable() {
    for (v, a) in all() {
        for t in TARGETS.iter().filter(|t| t.required) {
            let r = a.target(t.target).unwrap();
            assert!(r.present, "{v}: {} missing", t.demangled);
            assert!(r.plt, "{v}: {} has no JUMP_SLOT/GLOB_DAT relocation", t.demangled);
            assert_eq!(r.strategy, Strategy::Interpose, "{v}: {}", t.demangled);
            assert_eq!(r.direct_calls, Some(0), "{v}: {} has direct calls", t.demangled);
        }
    }
}

#[test]
fn track_deallocate_cb_is_never_called_in_065() {
    for (v, a) in all() {
        let r = a.target(Target::TrackDeallocateCb).unwrap();
        assert!(r.present, "{v}");
        if v == "0.65.0" {
            assert_eq!(r.call_sites, Some(0), "{v}");
            assert!(!r.plt, "{v}: no caller, so no PLT slot");
            assert_eq!(r.consequence(), "never called on this build: CB frees are inferred from program destruction");
        } else {
            assert!(r.call_sites.unwrap() >= 1, "{v}: {:?}", r.call_sites);
            assert!(r.plt, "{v}");
        }
        // allocate side, per the ABI page: 1 call site in 0.65, 3 from 0.71.2
        let cb = a.target(Target::TrackAllocateCb).unwrap().call_sites.unwrap();
        assert_eq!(cb, if v == "0.65.0" { 1 } else { 3 }, "{v}");
    }
}

#[test]
fn deallocate_circular_buffers_absent_in_065() {
    for (v, a) in all() {
        let r = a.target(Target::DeallocateCircularBuffers).unwrap();
        if v == "0.65.0" {
            assert!(!r.present && r.strategy == Strategy::Unreachable, "{v}");
            assert_eq!(r.consequence(), "CB lifetime ends at ~ProgramImpl");
        } else {
            assert!(r.present && r.plt && r.call_sites == Some(1), "{v}: {r:?}");
        }
    }
}

/// Dataflow buffers (issue 4.9): `allocate_dataflow_buffers` exists from 0.71.2
/// and places each DFB through one PLT call to `mark_address`, its only caller;
/// no `track_*` function is called for them.
#[test]
fn dataflow_buffers_are_placed_through_one_plt_call() {
    for (v, a) in all() {
        let adfb = a.target(Target::AllocateDataflowBuffers).unwrap();
        let mark = a.target(Target::DfbMarkAddress).unwrap();
        assert!(mark.present, "{v}: mark_address is exported on every release");
        if v == "0.65.0" {
            assert!(!adfb.present, "{v}");
            assert!(!mark.plt && mark.call_sites == Some(0), "{v}: {mark:?}");
        } else {
            assert!(adfb.present && adfb.plt && adfb.strategy == Strategy::Interpose, "{v}: {adfb:?}");
            assert!(mark.plt && mark.call_sites == Some(1) && mark.strategy == Strategy::Interpose, "{v}: {mark:?}");
            assert_eq!(mark.direct_calls, Some(0), "{v}");
        }
    }
}

#[test]
fn program_impl_d2_is_an_alias_of_d1() {
    for (v, a) in all() {
        let d1 = a.target(Target::ProgramImplD1).unwrap();
        let d2 = a.target(Target::ProgramImplD2).unwrap();
        assert_eq!(d1.address, d2.address, "{v}");
        assert_eq!(d2.alias_of.as_deref(), Some(catalog::info(Target::ProgramImplD1).mangled), "{v}");
        assert_eq!(d2.strategy, d1.strategy, "{v}");
    }
}

#[test]
fn abi_families_and_field_validation() {
    for (v, a) in all() {
        let path = lib(v).unwrap();
        let pimpl = catalog::PIMPL_MARKERS.iter().all(|m| a.accessor(*m));
        let is_dram = elf::function_bytes(&path, catalog::accessor_info(Accessor::BufferIsDram).mangled, 16).unwrap();
        for acc in catalog::ACCESSORS.iter().filter(|x| x.families.contains(&Family::Legacy)) {
            assert!(a.accessor(acc.accessor), "{v}: {} missing", acc.demangled);
        }
        if v == "0.81.1" {
            assert_eq!(a.family, Family::Pimpl);
            assert!(pimpl && a.accessor(Accessor::BufferUniqueId));
            assert_eq!(validate::is_dram_type_offset(&is_dram), None, "pimpl is_dram goes through impl");
        } else {
            assert_eq!(a.family, Family::Legacy, "{v}");
            assert!(!catalog::PIMPL_MARKERS.iter().any(|m| a.accessor(*m)), "{v}: pimpl accessors only in 0.81.1");
            assert!(!a.accessor(Accessor::BufferUniqueId), "{v}");
            assert_eq!(validate::is_dram_type_offset(&is_dram), Some(0x20), "{v}: {is_dram:02x?}");
            let ctor = elf::function_bytes(&path, catalog::LEGACY_BUFFER_CTORS[0], 256).unwrap();
            let addr = elf::find_symbols_by_prefix(&path, &[catalog::LEGACY_BUFFER_CTORS[0]]).unwrap()[0].1;
            let s = validate::ctor_arg_stores(&ctor, addr);
            assert_eq!(s.offset_of(catalog::CTOR_ARG_DEVICE, 8), Some(catalog::LEGACY_DEVICE_OFFSET as u32), "{v}");
            assert_eq!(s.offset_of(catalog::CTOR_ARG_SIZE, 8), Some(catalog::LEGACY_SIZE_OFFSET as u32), "{v}");
            assert_eq!(s.offset_of(catalog::CTOR_ARG_TYPE, 4), Some(catalog::LEGACY_TYPE_OFFSET as u32), "{v}");
        }
    }
}

#[test]
fn device_vtables_and_id_at_slot_3() {
    for (v, a) in all() {
        assert!(a.vtables.iter().all(|(_, found)| *found), "{v}: {:?}", a.vtables);
        let dev = catalog::accessor_info(Accessor::DeviceVtable).mangled;
        let mesh = catalog::accessor_info(Accessor::MeshDeviceVtable).mangled;
        let slot = |vt: &str| a.vtable_slots.iter().find(|s| s.vtable == vt && s.slot == 3).unwrap();
        let d = slot(dev);
        assert_eq!(d.symbol.as_deref(), Some(catalog::DEVICE_ID), "{v}: {d:?}");
        assert_eq!(d.demangled.as_deref(), Some(catalog::DEVICE_ID_DEMANGLED), "{v}");
        let m = slot(mesh);
        assert_eq!(m.demangled.as_deref(), Some("tt::tt_metal::distributed::MeshDevice::id() const"), "{v}");
        // Device::id() is the plain getter the in-process reader insists on before calling it.
        let code = elf::function_bytes(&lib(v).unwrap(), catalog::DEVICE_ID, 8).unwrap();
        assert!(validate::int_getter_offset(&code).is_some(), "{v}: {code:02x?}");
    }
}

#[test]
fn build_ids_present_and_distinct() {
    let ids: Vec<String> =
        all().iter().map(|(v, a)| a.build_id.clone().unwrap_or_else(|| panic!("{v}: no build id"))).collect();
    for id in &ids {
        assert_eq!(id.len(), 40, "{id}");
    }
    let mut dedup = ids.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), ids.len(), "{ids:?}");
}

#[test]
fn plt_decoder_agrees_with_the_linker() {
    for v in VERSIONS {
        let Some(path) = lib(v) else { continue };
        let stubs = elf::plt_stubs(&path).unwrap();
        // mold (0.71+) names every stub `sym$plt` in .symtab: an independent ground truth.
        let named = elf::symtab_with_suffix(&path, "$plt").unwrap();
        let by_name: std::collections::HashMap<_, _> = stubs.iter().map(|(stub, _, n)| (n.as_str(), *stub)).collect();
        let mut checked = 0;
        for (name, addr) in &named {
            if let Some(stub) = by_name.get(name.trim_end_matches("$plt")) {
                assert_eq!(stub, addr, "{v}: {name}");
                checked += 1;
            }
        }
        println!("{v}: {} PLT stubs decoded, {checked} cross-checked against `$plt` symbols", stubs.len());
        if v != "0.65.0" {
            assert!(checked > 1000, "{v}: only {checked}");
        }
        for t in TARGETS.iter().filter(|t| t.required) {
            assert!(stubs.iter().any(|(_, _, n)| n == t.mangled), "{v}: no stub for {}", t.demangled);
        }
    }
}

#[test]
fn version_comes_from_dist_info() {
    for v in VERSIONS {
        let Some(p) = site_lib(v) else { continue };
        assert_eq!(elf::analyze(&p, Mode::Quick).unwrap().version.as_deref(), Some(v));
        let bare = elf::analyze(&lib(v).unwrap(), Mode::Quick).unwrap();
        assert_eq!(bare.version, None, "no dist-info next to the bare copy, no version string in the binary");
    }
}

#[test]
fn doctor_json_and_text() {
    let Some(a) = full("0.65.0") else { return };
    let j = a.to_json();
    for k in ["library", "build_id", "version", "abi", "targets"] {
        assert!(j.get(k).is_some(), "missing {k}");
    }
    assert_eq!(j["abi"], "legacy-0.65-0.77");
    let t = &j["targets"][0];
    for k in ["symbol", "demangled", "present", "plt", "call_sites", "strategy", "consequence"] {
        assert!(t.get(k).is_some(), "target missing {k}");
    }
    assert_eq!(t["strategy"], "interpose");
    let back: Analysis = serde_json::from_str(&serde_json::to_string(a).unwrap()).unwrap();
    assert_eq!(&back, a);
    let text = doctor::render_text(a);
    println!("{text}");
    assert!(text.contains("GraphTracker::track_deallocate_cb"));
    assert!(text.contains("never called on this build: CB frees are inferred from program destruction"));
    assert!(text.contains("verdict   OK"));
}

#[test]
fn quick_mode_timing() {
    let Some(p) = lib("0.81.1") else { return };
    let _ = elf::analyze(&p, Mode::Quick).unwrap(); // warm the page cache
    let t = Instant::now();
    let a = elf::analyze(&p, Mode::Quick).unwrap();
    let dt = t.elapsed();
    println!("Quick analysis of 0.81.1 ({} MB): {dt:?} (debug build)", std::fs::metadata(&p).unwrap().len() >> 20);
    assert!(a.targets.iter().all(|t| t.call_sites.is_none()));
    assert_eq!(a.family, Family::Pimpl);
}

// ---------------------------------------------------------------------------------------
// In-process tier: dlopen(RTLD_LOCAL) the real library in a child process (one library per
// process: the three releases share sonames such as libtt_stl.so).

/// Our stand-in for the preloaded shim's definition (exported by build.rs).
#[no_mangle]
pub extern "C" fn _ZN2tt8tt_metal12GraphTracker14track_allocateEPKNS0_6BufferE(_this: usize, _buf: usize) {}

fn run_child(v: &str, lib_path: &Path) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "inproc_child", "--nocapture", "--test-threads=1"])
        .env("TTALLOC_INPROC_LIB", lib_path)
        .env("TTALLOC_INPROC_VERSION", v)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("---- child {v} {} ----\n{text}", lib_path.display());
    assert!(out.status.success(), "child for {v} failed: {:?}", out.status);
    assert!(text.contains("INPROC OK"), "child for {v} did not run its checks");
}

#[test]
fn inprocess_065() {
    if let Some(p) = site_lib("0.65.0") {
        run_child("0.65.0", &p);
    }
}

#[test]
fn inprocess_071() {
    if let Some(p) = site_lib("0.71.2") {
        run_child("0.71.2", &p);
    }
}

#[test]
fn inprocess_081() {
    if let Some(p) = site_lib("0.81.1") {
        run_child("0.81.1", &p);
    }
}

/// A renamed copy (hard link, same directory so `$ORIGIN` still finds the dependencies).
#[test]
fn inprocess_081_renamed_copy() {
    let Some(p) = site_lib("0.81.1") else { return };
    let renamed = p.with_file_name("libttalloc-renamed-metal.so");
    if !renamed.exists() && std::fs::hard_link(&p, &renamed).is_err() {
        std::fs::copy(&p, &renamed).unwrap();
    }
    run_child("0.81.1", &renamed);
}

fn dlerror() -> String {
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

#[test]
fn inproc_child() {
    let Some(path) = std::env::var_os("TTALLOC_INPROC_LIB").map(PathBuf::from) else {
        return;
    };
    let v = std::env::var("TTALLOC_INPROC_VERSION").unwrap();
    let name = catalog::info(Target::TrackAllocate).mangled;
    let cname = CString::new(name).unwrap();
    let fake = _ZN2tt8tt_metal12GraphTracker14track_allocateEPKNS0_6BufferE as *const () as usize;
    assert_eq!(
        unsafe { libc::dlsym(libc::RTLD_DEFAULT, cname.as_ptr()) } as usize,
        fake,
        "build.rs did not export the stand-in"
    );

    let gen0 = runtime::loaded_objects_generation();
    assert!(runtime::find_loaded_tt_metal(fake).is_none());
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // What Python does when it imports ttnn: a local, immediately-bound load.
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!h.is_null(), "dlopen {}: {}", path.display(), dlerror());
    assert!(runtime::loaded_objects_generation() > gen0, "generation must move after dlopen");
    // RTLD_LOCAL: invisible to the global scope, so RTLD_NEXT finds nothing.
    assert_eq!(
        unsafe { libc::dlsym(libc::RTLD_NEXT, cname.as_ptr()) } as usize,
        0,
        "RTLD_NEXT should not see a RTLD_LOCAL library"
    );

    let lib = runtime::find_loaded_tt_metal(fake).expect("find_loaded_tt_metal");
    println!("found {} at base {:#x}", lib.path.display(), lib.base);
    assert_eq!(lib.path, path, "the loader's name for the object, renamed or not");
    // Never the interposer, always the library's own definition, at the file's address.
    let a = elf::analyze(&lib.path, Mode::Quick).unwrap();
    for t in a.targets.iter().filter(|t| t.present) {
        assert_eq!(lib.sym(&t.symbol), Some(lib.base + t.address.unwrap() as usize), "{v}: {}", t.demangled);
    }
    assert_ne!(lib.sym(name), Some(fake));
    for acc in catalog::ACCESSORS {
        let present = a.accessor(acc.accessor);
        if acc.imported {
            assert!(lib.bound(acc.mangled).is_some(), "{v}: {} unbound", acc.demangled);
            continue;
        }
        let file_addr =
            elf::find_symbols_by_prefix(&lib.path, &[acc.mangled]).unwrap().into_iter().find(|(n, _)| n == acc.mangled);
        let want = present.then(|| lib.base + file_addr.unwrap().1 as usize);
        assert_eq!(lib.sym(acc.mangled), want, "{v}: {}", acc.demangled);
    }
    // Interposition works under RTLD_LOCAL: the library's own GOT slot is bound to our
    // definition, because the global scope (executable, preloads) is searched first.
    let slot = elf::plt_stubs(&lib.path).unwrap().into_iter().find(|(_, _, n)| n == name).unwrap().1;
    let bound = unsafe { *((lib.base + slot as usize) as *const usize) };
    assert_eq!(bound, fake, "{v}: track_allocate's GOT slot must point at the interposer");

    let (r, notes) = BufferReader::new(&lib);
    for n in &notes {
        println!("  note: {n}");
    }
    let want = if v == "0.81.1" { Family::Pimpl } else { Family::Legacy };
    assert_eq!(r.family(), want);
    assert!(r.has_chip_id() && r.can_expand_mesh(), "{v}: {notes:?}");
    unsafe { fake_objects(&r, &lib, want) };
    println!("INPROC OK {v}");
}

/// Drive the reader against hand-built objects laid out as each release's accessors expect
/// (offsets read from the disassembly); this exercises the real accessor calls and the
/// calling conventions, not just symbol lookup.
unsafe fn fake_objects(r: &BufferReader, lib: &runtime::LoadedLib, family: Family) {
    let vptr = |a: Accessor| lib.sym(catalog::accessor_info(a).mangled).unwrap() + catalog::VTABLE_ADDRESS_POINT;
    // Any 4-byte int field read from these reads 7, whatever the offset of `id_`.
    let mut device = [0x0000_0007_0000_0007usize; 64];
    device[0] = vptr(Accessor::DeviceVtable);
    let mut mesh = [0usize; 64];
    mesh[0] = vptr(Accessor::MeshDeviceVtable);
    let mut bogus = [0usize; 8];
    bogus[0] = 0xdead_beef_0000;
    let dev = device.as_ptr() as usize;
    assert_eq!(r.device_kind(dev), DeviceKind::Device);
    assert_eq!(r.device_kind(mesh.as_ptr() as usize), DeviceKind::Mesh);
    assert_eq!(r.device_kind(bogus.as_ptr() as usize), DeviceKind::Unknown);
    assert_eq!(r.chip_id(dev), Some(7));
    assert_eq!(r.chip_id(mesh.as_ptr() as usize), None, "MeshDevice::id() is not a chip");
    assert_eq!(r.mesh_chip_devices(dev, &mut [0; 4]), None);

    let mut buf = [0u8; 0x300];
    let mut imp = [0u8; 0x300];
    let put = |b: &mut [u8], off: usize, bytes: &[u8]| b[off..off + bytes.len()].copy_from_slice(bytes);
    let (obj, dev_off, size_off, type_off, status_off, addr_off, page_off) = match family {
        Family::Legacy => (&mut buf, 0x10, 0x18, 0x20, 0x48, 0x50, 0x58),
        _ => (&mut imp, 0x0, 0x8, 0x10, 0x38, 0x40, 0x48),
    };
    put(obj, dev_off, &dev.to_le_bytes());
    put(obj, size_off, &4096u64.to_le_bytes());
    put(obj, type_off, &1u32.to_le_bytes());
    put(obj, status_off, &[1]);
    put(obj, addr_off, &0x1234u32.to_le_bytes());
    put(obj, page_off, &1024u64.to_le_bytes());
    if family == Family::Pimpl {
        let imp_ptr = imp.as_ptr() as usize;
        put(&mut buf, 0x10, &imp_ptr.to_le_bytes()); // Buffer holds its BufferImpl* at +0x10
    }
    let b = buf.as_ptr() as usize;
    let f = r.read(b);
    println!("  fake buffer: {f:?}");
    assert_eq!(f.allocated, Some(true));
    assert_eq!(f.address, Some(0x1234));
    assert_eq!(f.size, Some(4096));
    assert_eq!(f.page_size, Some(1024));
    assert_eq!(f.btype, Some(1));
    assert_eq!(f.device, dev);

    // Not allocated: address() would throw, so it must not be called.
    let status = if family == Family::Legacy { &mut buf[0x48] } else { &mut imp[0x38] };
    *status = 0;
    let f = r.read(b);
    assert_eq!((f.allocated, f.address), (Some(false), None));
    if family == Family::Legacy {
        // A device pointer whose vptr is neither Device's nor MeshDevice's is not trusted.
        let bp = bogus.as_ptr() as usize;
        buf[0x10..0x18].copy_from_slice(&bp.to_le_bytes());
        assert_eq!(r.read(buf.as_ptr() as usize).device, 0);
    }
}

/// Every target's entry in the real builds could take an inline-hook jump (what the shim does
/// with `TTALLOC_INLINE=all`, or on a future build that bypasses the PLT).
#[test]
fn real_entries_take_an_inline_hook() {
    for (v, a) in all() {
        let path = lib(v).unwrap();
        for t in a.targets.iter().filter(|t| t.present) {
            let size = t.size.unwrap_or_else(|| panic!("{v}: {} has no st_size", t.demangled)) as usize;
            let code = elf::function_bytes(&path, &t.symbol, size).unwrap();
            let r = ttalloc_symbols::patchable::entry_patchable(&code, t.address.unwrap());
            println!("{v}: {:<90} {r:?}", t.demangled);
            assert!(r.is_ok(), "{v}: {}: {r:?}", t.demangled);
        }
    }
}
