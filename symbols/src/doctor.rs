//! `ttalloc doctor`: find the library a run would use and tell a tt-metal engineer, before a
//! long run, what ttalloc will and will not see on it.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::catalog::{self, Family};
use crate::elf::{Analysis, Strategy};

const LIB: &str = "libtt_metal.so";

/// The library a tt-metal program would load, in this order: the `ttnn` package `python3`
/// would import (`<ttnn>/build/lib/libtt_metal.so`), each directory of `LD_LIBRARY_PATH`,
/// `$TT_METAL_HOME/build/lib`, `$TT_METAL_HOME/build_Release/lib`.
pub fn find_default_library() -> Result<PathBuf, String> {
    let python = python_ttnn_dir();
    search(python, std::env::var_os("LD_LIBRARY_PATH"), std::env::var_os("TT_METAL_HOME"))
}

/// Where `import ttnn` would come from. `find_spec` locates the package exactly as `import`
/// does (editable installs included) without executing ttnn's heavy `__init__`.
fn python_ttnn_dir() -> Result<PathBuf, String> {
    let code = "import importlib.util as u, os; s = u.find_spec('ttnn'); \
                print(os.path.dirname(s.origin) if s and s.origin else (list(s.submodule_search_locations)[0] if s else ''))";
    match Command::new("python3").args(["-c", code]).output() {
        Ok(o) if o.status.success() => {
            let dir = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if dir.is_empty() {
                Err("python3: no ttnn package".into())
            } else {
                Ok(PathBuf::from(dir))
            }
        }
        Ok(o) => Err(format!("python3 failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Err(format!("python3: {e}")),
    }
}

fn search(
    python: Result<PathBuf, String>,
    ld_library_path: Option<OsString>,
    tt_metal_home: Option<OsString>,
) -> Result<PathBuf, String> {
    let mut tried = Vec::new();
    let mut candidates = Vec::new();
    match python {
        Ok(dir) => candidates.push(dir.join("build/lib").join(LIB)),
        Err(e) => tried.push(e),
    }
    if let Some(paths) = ld_library_path {
        candidates.extend(std::env::split_paths(&paths).filter(|d| !d.as_os_str().is_empty()).map(|d| d.join(LIB)));
    }
    match tt_metal_home {
        Some(home) => {
            candidates.extend(["build/lib", "build_Release/lib"].map(|sub| Path::new(&home).join(sub).join(LIB)))
        }
        None => tried.push("$TT_METAL_HOME unset".into()),
    }
    for c in candidates {
        if c.is_file() {
            return Ok(c);
        }
        tried.push(c.display().to_string());
    }
    Err(format!("no {LIB} found (tried: {}); pass the library path explicitly", tried.join(", ")))
}

/// Short display name: `GraphTracker::track_allocate` from the full demangled signature.
fn short_name(demangled: &str) -> &str {
    let head = demangled.split('(').next().unwrap_or(demangled);
    let parts: Vec<&str> = head.rsplitn(3, "::").collect();
    match parts.as_slice() {
        [f, class, _] | [f, class] => {
            let start = head.len() - f.len() - class.len() - 2;
            &head[start..]
        }
        _ => head,
    }
}

/// The human verdict: library identity, ABI family, then one line per target.
pub fn render_text(a: &Analysis) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "library   {}", a.library.display());
    let _ =
        writeln!(s, "version   {}", a.version.as_deref().unwrap_or("unknown (no ttnn dist-info next to the library)"));
    let _ = writeln!(s, "build-id  {}", a.build_id.as_deref().unwrap_or("none"));
    let abi_note = match a.family {
        Family::Legacy => "Buffer fields read at offsets proven from is_dram() and the Buffer ctor",
        Family::Pimpl => "Buffer fields read through exported accessors",
        Family::Unknown => "UNKNOWN layout: only exported accessors are used; sizes/types may be missing",
    };
    let _ = writeln!(s, "abi       {} ({abi_note})", a.family.name());
    let _ = writeln!(s);

    let width = a.targets.iter().map(|t| short_name(&t.demangled).len()).max().unwrap_or(0);
    for t in &a.targets {
        let name = short_name(&t.demangled);
        let name = if t.symbol.ends_with("D2Ev") {
            format!("{name} [D2]")
        } else if t.symbol.ends_with("D1Ev") {
            format!("{name} [D1]")
        } else {
            name.to_string()
        };
        let mut calls = match (t.present, t.call_sites) {
            (false, _) => "-".to_string(),
            (true, Some(1)) => "1 call site".to_string(),
            (true, Some(n)) => format!("{n} call sites"),
            (true, None) => "calls not counted".to_string(),
        };
        if t.via_vtable {
            calls.push_str(" + vtable");
        }
        if t.address_taken {
            calls.push_str(" + pointer");
        }
        let _ =
            writeln!(s, "  {name:<w$}  {:<30}  {calls:<22}  {}", t.strategy.describe(), t.consequence(), w = width + 5);
    }

    let _ = writeln!(s);
    let names = |f: &dyn Fn(&crate::elf::TargetReport) -> bool| -> Vec<&str> {
        a.targets.iter().filter(|t| f(t)).map(|t| short_name(&t.demangled)).collect()
    };
    let required = |t: &crate::elf::TargetReport| catalog::target_by_mangled(&t.symbol).is_some_and(|i| i.required);
    let unseen = names(&|t| required(t) && t.strategy == Strategy::Unreachable);
    let inline = names(&|t| t.strategy == Strategy::InlineHook && t.alias_of.is_none());
    let trackable = a.target(catalog::Target::TrackAllocate).is_some_and(|t| t.present);
    let verdict = if !trackable {
        "NOT TRACKABLE: GraphTracker::track_allocate is not in this library".to_string()
    } else if a.family == Family::Unknown {
        "DEGRADED: unknown Buffer layout".to_string()
    } else if !unseen.is_empty() {
        format!("DEGRADED: cannot see: {}", unseen.join(", "))
    } else if !inline.is_empty() {
        format!("OK: every required target is reached; {} hooked inline (entry patched at load)", inline.len())
    } else {
        "OK: every required target is reached by symbol interposition".to_string()
    };
    let _ = writeln!(s, "verdict   {verdict}");
    // Mixed builds: a PLT slot *and* direct calls. The shim decides from relocations only (it
    // does not sweep .text at load), so by default it interposes such a target.
    for t in a.targets.iter().filter(|t| t.plt && t.direct_calls.unwrap_or(0) > 0) {
        let _ = writeln!(
            s,
            "  note: {}: {} direct call(s) besides its PLT slot; the shim patches its entry only with TTALLOC_INLINE=all",
            short_name(&t.demangled),
            t.direct_calls.unwrap_or(0)
        );
    }
    for n in &a.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_order() {
        let dir = std::env::temp_dir().join(format!("ttalloc-doctor-{}", std::process::id()));
        let (a, b) = (dir.join("a"), dir.join("b"));
        for d in [&a, &b, &dir.join("home/build_Release/lib")] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(b.join(LIB), b"").unwrap();
        std::fs::write(dir.join("home/build_Release/lib").join(LIB), b"").unwrap();
        let ld = std::env::join_paths([&a, &b]).ok();
        let home = Some(dir.join("home").into_os_string());
        assert_eq!(search(Err("x".into()), ld.clone(), home.clone()).unwrap(), b.join(LIB));
        assert_eq!(search(Err("x".into()), None, home.clone()).unwrap(), dir.join("home/build_Release/lib").join(LIB));
        std::fs::create_dir_all(dir.join("py/ttnn/build/lib")).unwrap();
        std::fs::write(dir.join("py/ttnn/build/lib").join(LIB), b"").unwrap();
        assert_eq!(search(Ok(dir.join("py/ttnn")), ld, home).unwrap(), dir.join("py/ttnn/build/lib").join(LIB));
        assert!(search(Err("no python".into()), None, None).unwrap_err().contains("no python"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn short_names() {
        assert_eq!(
            short_name("tt::tt_metal::GraphTracker::track_allocate(tt::tt_metal::Buffer const*)"),
            "GraphTracker::track_allocate"
        );
        assert_eq!(short_name("tt::tt_metal::detail::ProgramImpl::~ProgramImpl()"), "ProgramImpl::~ProgramImpl");
        assert_eq!(short_name("foo()"), "foo");
    }
}
