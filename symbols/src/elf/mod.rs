//! Analysis of a `libtt_metal.so` file on disk: which hook targets exist, whether calls to
//! them are bound by symbol (so `LD_PRELOAD` interposition sees them), how many call sites
//! they have, and which `Buffer` ABI family the build belongs to.
//!
//! `Mode::Quick` reads symbols and relocations only (the shim runs it at load);
//! `Mode::Full` also decodes the PLT and sweeps `.text` to count call sites (`ttalloc doctor`).

mod callsites;
mod image;
mod plt;
mod verdict;
mod version;
mod vtable;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use object::elf as E;
use object::Object;
use serde::{Deserialize, Serialize};

use crate::catalog::{self, Accessor, Family, ACCESSORS, TARGETS};
use crate::validate;
use image::{demangle, Image, Reloc};

pub use verdict::Strategy;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Symbols + relocations, no disassembly: cheap enough for the shim's init.
    Quick,
    /// Also decode the PLT and count call sites in `.text`.
    Full,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetReport {
    pub symbol: String,
    pub demangled: String,
    /// Defined in the library (exported or, if only in `.symtab`, hidden).
    pub present: bool,
    /// In `.dynsym`: `dlsym`-able and interposable.
    pub exported: bool,
    /// ELF virtual address of the definition (runtime address = load base + this).
    pub address: Option<u64>,
    /// Size of the function in bytes (`st_size`; what an inline hook may decode).
    #[serde(default)]
    pub size: Option<u64>,
    /// An `R_X86_64_JUMP_SLOT`/`GLOB_DAT` relocation names it: intra-library calls go through
    /// the PLT/GOT and interposition sees them.
    pub plt: bool,
    /// An `R_X86_64_64` relocation names it (a vtable slot): virtual calls are bound by symbol.
    pub via_vtable: bool,
    /// An `R_X86_64_RELATIVE` relocation holds its address (a vtable slot or function pointer
    /// of a `-Bsymbolic` build): calls through it bypass symbol binding.
    #[serde(default)]
    pub address_taken: bool,
    /// Full mode: call/jmp/jcc instructions in the library reaching it (entry, PLT stub or GOT).
    pub call_sites: Option<u32>,
    /// Full mode: of those, branches straight to the entry, which no symbol binding can see.
    pub direct_calls: Option<u32>,
    /// Another catalogued target defined at the same address (e.g. D2 = D1).
    pub alias_of: Option<String>,
    pub strategy: Strategy,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VtableSlot {
    pub vtable: String,
    pub slot: usize,
    /// ELF virtual address the slot points to.
    pub target: Option<u64>,
    /// Mangled name of the function there (from `.symtab`).
    pub symbol: Option<String>,
    pub demangled: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Analysis {
    pub library: PathBuf,
    /// Hex of `NT_GNU_BUILD_ID`.
    pub build_id: Option<String>,
    /// From the wheel's `*.dist-info/METADATA` (the binaries carry no version string).
    pub version: Option<String>,
    pub family: Family,
    pub mode: Mode,
    pub targets: Vec<TargetReport>,
    /// `(mangled accessor, present)`; `operator delete` counts as present when imported.
    pub accessors: Vec<(String, bool)>,
    /// `(mangled vtable, exported)`.
    pub vtables: Vec<(String, bool)>,
    /// Slot `IDEVICE_ID_SLOT` of the Device and MeshDevice vtables, read from the file.
    pub vtable_slots: Vec<VtableSlot>,
    /// What was validated and how (human readable).
    pub notes: Vec<String>,
}

impl Analysis {
    pub fn target(&self, t: catalog::Target) -> Option<&TargetReport> {
        self.targets.iter().find(|r| r.symbol == catalog::info(t).mangled)
    }

    pub fn accessor(&self, a: Accessor) -> bool {
        let m = catalog::accessor_info(a).mangled;
        self.accessors.iter().any(|(n, p)| n == m && *p)
    }

    /// The stable doctor JSON: `library`, `build_id`, `version`, `abi` (family name) and
    /// `targets: [{symbol, demangled, present, plt, call_sites, strategy, consequence}]`
    /// (plus additive detail keys).
    pub fn to_json(&self) -> serde_json::Value {
        let targets: Vec<_> = self
            .targets
            .iter()
            .map(|t| {
                serde_json::json!({
                    "symbol": t.symbol,
                    "demangled": t.demangled,
                    "present": t.present,
                    "plt": t.plt,
                    "call_sites": t.call_sites,
                    "strategy": t.strategy,
                    "consequence": t.consequence(),
                    "exported": t.exported,
                    "via_vtable": t.via_vtable,
                    "address_taken": t.address_taken,
                    "direct_calls": t.direct_calls,
                    "alias_of": t.alias_of,
                })
            })
            .collect();
        let pairs = |v: &[(String, bool)]| -> Vec<serde_json::Value> {
            v.iter().map(|(s, p)| serde_json::json!({"symbol": s, "present": p})).collect()
        };
        serde_json::json!({
            "library": self.library,
            "build_id": self.build_id,
            "version": self.version,
            "abi": self.family.name(),
            "mode": self.mode,
            "targets": targets,
            "accessors": pairs(&self.accessors),
            "vtables": pairs(&self.vtables),
            "vtable_slots": self.vtable_slots,
            "notes": self.notes,
        })
    }

    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(&self.to_json()).unwrap_or_default()
    }
}

/// Analyse a `libtt_metal.so` on disk. The file is memory-mapped, never read whole.
pub fn analyze(path: &Path, mode: Mode) -> Result<Analysis, String> {
    let map = image::map(path)?;
    let img = Image::parse(&map)?;
    let mut notes = Vec::new();

    // 1. .dynsym: everything the catalog names, plus legacy Buffer ctor candidates.
    let mut dynfound: HashMap<&[u8], (u32, image::Sym)> = HashMap::new();
    let wanted: std::collections::HashSet<&[u8]> =
        TARGETS.iter().map(|t| t.mangled.as_bytes()).chain(ACCESSORS.iter().map(|a| a.mangled.as_bytes())).collect();
    let mut ctor: Option<(String, u64)> = None;
    for (i, s) in img.dynsyms() {
        if wanted.contains(s.name) {
            // A name can appear twice (versioned import + definition): keep the definition.
            let keep = match dynfound.get(s.name) {
                None => true,
                Some((_, old)) => !old.defined && s.defined,
            };
            if keep {
                dynfound.insert(s.name, (i, s));
            }
        }
        if s.defined && catalog::LEGACY_BUFFER_CTOR_PREFIXES.iter().any(|p| s.name.starts_with(p.as_bytes())) {
            let name = String::from_utf8_lossy(s.name).into_owned();
            let exact = catalog::LEGACY_BUFFER_CTORS.contains(&name.as_str());
            if ctor.is_none() || exact {
                ctor = Some((name, s.value));
            }
        }
    }
    let defined = |m: &str| dynfound.get(m.as_bytes()).filter(|(_, s)| s.defined).map(|(i, s)| (*i, *s));

    // 2. Dynamic relocations: PLT/GOT and vtable-slot bindings of the targets; vtable contents.
    let relocs = img.relocs();
    let vt_ranges: Vec<(u64, u64)> = [Accessor::DeviceVtable, Accessor::MeshDeviceVtable]
        .iter()
        .filter_map(|a| defined(catalog::accessor_info(*a).mangled))
        .map(|(_, s)| (s.value, s.value + s.size.max(64)))
        .collect();
    let by_index: HashMap<u32, usize> = TARGETS
        .iter()
        .enumerate()
        .filter_map(|(k, t)| dynfound.get(t.mangled.as_bytes()).map(|(i, _)| (*i, k)))
        .collect();
    let mut plt = vec![false; TARGETS.len()];
    let mut via_vtable = vec![false; TARGETS.len()];
    let mut got_slots: Vec<(usize, u64)> = Vec::new();
    let mut relocs_at: HashMap<u64, Reloc> = HashMap::new();
    for r in &relocs {
        if let Some(&k) = by_index.get(&r.sym) {
            match r.rtype {
                E::R_X86_64_JUMP_SLOT | E::R_X86_64_GLOB_DAT => {
                    plt[k] = true;
                    got_slots.push((k, r.offset));
                }
                E::R_X86_64_64 => via_vtable[k] = true,
                _ => {}
            }
        }
        if vt_ranges.iter().any(|(lo, hi)| *lo <= r.offset && r.offset < *hi) {
            relocs_at.insert(r.offset, *r);
        }
    }

    // 3. Vtable slot 3 (IDevice::id) of Device and MeshDevice, named from .symtab.
    let mut vtables = Vec::new();
    let mut vtable_slots = Vec::new();
    for a in [Accessor::DeviceVtable, Accessor::MeshDeviceVtable] {
        let m = catalog::accessor_info(a).mangled;
        let found = defined(m);
        vtables.push((m.to_string(), found.is_some()));
        if let Some((_, s)) = found {
            let target = vtable::slot_target(&img, &relocs_at, s.value, catalog::IDEVICE_ID_SLOT);
            let symbol = target.and_then(|t| vtable::symbol_at(&img, t));
            vtable_slots.push(VtableSlot {
                vtable: m.to_string(),
                slot: catalog::IDEVICE_ID_SLOT,
                target,
                demangled: symbol.as_deref().map(demangle),
                symbol,
            });
        }
    }

    // 4. Targets: exported, else hidden in .symtab.
    let mut hidden: HashMap<&str, (u64, u64)> = HashMap::new();
    if TARGETS.iter().any(|t| defined(t.mangled).is_none()) {
        for s in img.symtab() {
            if s.defined && s.func {
                if let Some(t) = TARGETS.iter().find(|t| t.mangled.as_bytes() == s.name) {
                    hidden.insert(t.mangled, (s.value, s.size));
                }
            }
        }
    }
    let defs: Vec<Option<(u64, u64)>> = TARGETS
        .iter()
        .map(|t| defined(t.mangled).map(|(_, s)| (s.value, s.size)).or_else(|| hidden.get(t.mangled).copied()))
        .collect();
    let addresses: Vec<Option<u64>> = defs.iter().map(|d| d.map(|(a, _)| a)).collect();
    let mut address_taken = vec![false; TARGETS.len()];
    let at: HashMap<u64, Vec<usize>> = addresses.iter().enumerate().fold(HashMap::new(), |mut m, (k, a)| {
        if let Some(a) = a {
            m.entry(*a).or_default().push(k);
        }
        m
    });
    for r in relocs.iter().filter(|r| r.rtype == E::R_X86_64_RELATIVE) {
        for k in at.get(&(r.addend as u64)).into_iter().flatten() {
            address_taken[*k] = true;
        }
    }

    // 5. Full mode: PLT stubs and call sites.
    let calls = (mode == Mode::Full).then(|| {
        let mut index = callsites::CallIndex::default();
        for (k, a) in addresses.iter().enumerate() {
            if let Some(a) = a {
                index.entry(k, *a);
            }
        }
        let slot_items: HashMap<u64, Vec<usize>> = got_slots.iter().fold(HashMap::new(), |mut m, (k, s)| {
            m.entry(*s).or_default().push(*k);
            m
        });
        for (k, slot) in &got_slots {
            index.got_slot(*k, *slot);
        }
        for (stub, slot) in plt::stubs(&img) {
            for k in slot_items.get(&slot).into_iter().flatten() {
                index.plt_stub(*k, stub);
            }
        }
        callsites::count(&img, &index, TARGETS.len())
    });

    let mut targets: Vec<TargetReport> = TARGETS
        .iter()
        .enumerate()
        .map(|(k, t)| {
            let c = calls.as_ref().filter(|_| addresses[k].is_some()).map(|c| c[k]);
            let alias_of = addresses[k]
                .and_then(|a| (0..k).find(|&j| addresses[j] == Some(a)).map(|j| TARGETS[j].mangled.to_string()));
            let present = addresses[k].is_some();
            TargetReport {
                symbol: t.mangled.to_string(),
                demangled: t.demangled.to_string(),
                present,
                exported: defined(t.mangled).is_some(),
                address: addresses[k],
                size: defs[k].map(|(_, size)| size).filter(|size| *size > 0),
                plt: plt[k],
                via_vtable: via_vtable[k],
                address_taken: address_taken[k],
                call_sites: c.map(|c| c.total()),
                direct_calls: c.map(|c| c.direct),
                alias_of,
                strategy: Strategy::decide(present, plt[k], via_vtable[k], address_taken[k], c.map(|c| c.direct)),
            }
        })
        .collect();
    // An inline hook must be able to take the entry jump; if it cannot, nothing reaches the
    // target on this build.
    for t in targets.iter_mut().filter(|t| t.strategy == Strategy::InlineHook) {
        let code = match (t.address, t.size) {
            (Some(a), Some(n)) => img.bytes_at(a, n as usize).filter(|b| b.len() == n as usize),
            _ => None,
        };
        let verdict = match code {
            Some(code) => crate::patchable::entry_patchable(code, t.address.unwrap_or(0)).map(|_| ()),
            None => Err("function size or bytes unknown".to_string()),
        };
        if let Err(why) = verdict {
            notes.push(format!("{}: calls bypass the PLT and its entry cannot be patched ({why})", t.demangled));
            t.strategy = Strategy::Unreachable;
        }
    }
    // An alias with no binding of its own (D2 = D1) shares the other's code: hooking that one
    // covers it, and hooking both would report every call twice.
    for k in 0..targets.len() {
        if let Some(j) = (0..k).find(|&j| targets[k].alias_of.as_deref() == Some(TARGETS[j].mangled)) {
            if !targets[k].plt && !targets[k].via_vtable && !targets[k].address_taken {
                targets[k].strategy = targets[j].strategy;
            }
        }
    }

    // A target whose only caller is absent from this build is never called: there is nothing
    // to hook (0.65/0.68 `track_deallocate_cb`, which only `deallocate_circular_buffers` calls).
    for k in 0..targets.len() {
        if let Some(caller) = TARGETS[k].only_caller {
            let t = &mut targets[k];
            if t.present && !t.plt && !t.via_vtable && !t.address_taken && addresses[caller as usize].is_none() {
                t.strategy = Strategy::Unreachable;
            }
        }
    }

    // 6. Accessors and family.
    let accessors: Vec<(String, bool)> = ACCESSORS
        .iter()
        .map(|a| {
            let p = if a.imported { dynfound.contains_key(a.mangled.as_bytes()) } else { defined(a.mangled).is_some() };
            (a.mangled.to_string(), p)
        })
        .collect();
    let pimpl_exports = catalog::PIMPL_MARKERS.iter().all(|a| defined(catalog::accessor_info(*a).mangled).is_some());
    let is_dram =
        defined(catalog::accessor_info(Accessor::BufferIsDram).mangled).and_then(|(_, s)| img.bytes_at(s.value, 16));
    let family = Family::detect(pimpl_exports, is_dram);
    match family {
        Family::Pimpl => notes.push("Buffer::size/buffer_type/device() are exported: pimpl accessors are used".into()),
        Family::Legacy => {
            notes.push("Buffer::is_dram() is `testl $0xfffffffb,0x20(%rdi)`: BufferType is the u32 at +0x20".into());
            match &ctor {
                Some((name, addr)) => {
                    let s = img.bytes_at(*addr, 256).map(|b| validate::ctor_arg_stores(b, *addr)).unwrap_or_default();
                    notes.push(format!(
                        "Buffer ctor {} stores device at {}, size at {}, type at {}",
                        demangle(name).split('(').next().unwrap_or(""),
                        fmt_off(s.offset_of(catalog::CTOR_ARG_DEVICE, 8)),
                        fmt_off(s.offset_of(catalog::CTOR_ARG_SIZE, 8)),
                        fmt_off(s.offset_of(catalog::CTOR_ARG_TYPE, 4)),
                    ));
                }
                None => notes.push("no legacy Buffer ctor found: device and size offsets cannot be proven".into()),
            }
        }
        Family::Unknown => notes.push(
            "neither pimpl accessors nor the legacy is_dram() pattern: Buffer fields are read only through exported accessors".into(),
        ),
    }

    let build_id = img.elf.build_id().ok().flatten().map(|b| b.iter().map(|x| format!("{x:02x}")).collect());
    let version = version::wheel_version(path);
    if version.is_none() {
        notes.push(
            "version unknown: no ttnn *.dist-info/METADATA near the library (the binary embeds no version string)"
                .into(),
        );
    }
    Ok(Analysis {
        library: path.to_path_buf(),
        build_id,
        version,
        family,
        mode,
        targets,
        accessors,
        vtables,
        vtable_slots,
        notes,
    })
}

fn fmt_off(o: Option<u32>) -> String {
    o.map_or_else(|| "?".into(), |o| format!("+{o:#x}"))
}

/// Up to `max` file bytes of the function `mangled` (`.dynsym`, else `.symtab`).
pub fn function_bytes(path: &Path, mangled: &str, max: usize) -> Result<Vec<u8>, String> {
    let map = image::map(path)?;
    let img = Image::parse(&map)?;
    let addr = img
        .dynsyms()
        .map(|(_, s)| s)
        .chain(img.symtab())
        .find(|s| s.defined && s.name == mangled.as_bytes())
        .map(|s| s.value)
        .ok_or_else(|| format!("{mangled} not defined in {}", path.display()))?;
    img.bytes_at(addr, max).map(|b| b.to_vec()).ok_or_else(|| format!("{mangled}: address {addr:#x} has no file bytes"))
}

/// Defined `.dynsym` symbols starting with any of `prefixes`: `(name, ELF address)`.
pub fn find_symbols_by_prefix(path: &Path, prefixes: &[&str]) -> Result<Vec<(String, u64)>, String> {
    let map = image::map(path)?;
    let img = Image::parse(&map)?;
    Ok(img
        .dynsyms()
        .filter(|(_, s)| s.defined && prefixes.iter().any(|p| s.name.starts_with(p.as_bytes())))
        .map(|(_, s)| (String::from_utf8_lossy(s.name).into_owned(), s.value))
        .collect())
}

/// PLT stubs of the file: `(stub address, GOT slot, symbol bound to the slot)`. Exposed for
/// tests that cross-check the decoder against linker-emitted `name$plt` symbols.
pub fn plt_stubs(path: &Path) -> Result<Vec<(u64, u64, String)>, String> {
    let map = image::map(path)?;
    let img = Image::parse(&map)?;
    let slots: HashMap<u64, u32> = img
        .relocs()
        .into_iter()
        .filter(|r| matches!(r.rtype, E::R_X86_64_JUMP_SLOT | E::R_X86_64_GLOB_DAT))
        .map(|r| (r.offset, r.sym))
        .collect();
    Ok(plt::stubs(&img)
        .into_iter()
        .filter_map(|(stub, slot)| {
            let name = img.dynsym_name(*slots.get(&slot)?)?;
            Some((stub, slot, String::from_utf8_lossy(name).into_owned()))
        })
        .collect())
}

/// `.symtab` function symbols whose name ends with `suffix` (e.g. mold's `$plt`).
pub fn symtab_with_suffix(path: &Path, suffix: &str) -> Result<Vec<(String, u64)>, String> {
    let map = image::map(path)?;
    let img = Image::parse(&map)?;
    Ok(img
        .symtab()
        .filter(|s| s.name.ends_with(suffix.as_bytes()))
        .map(|s| (String::from_utf8_lossy(s.name).into_owned(), s.value))
        .collect())
}
