//! Verdicts on the test library (tests/testlib, built by `make testlib`): the normal 0.81
//! stand-in is reached by interposition; the same code linked with `-Bsymbolic-functions`
//! needs an inline hook for every target, and every entry can take one.

use std::path::PathBuf;

use ttalloc_symbols::catalog::{self, Target, TARGETS};
use ttalloc_symbols::elf::{self, Mode, Strategy};
use ttalloc_symbols::{doctor, patchable};

fn testlib(variant: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/testlib").join(variant).join("libtt_metal.so");
    assert!(p.is_file(), "{} missing: run `make testlib`", p.display());
    p
}

#[test]
fn symbolic_build_needs_inline_hooks_and_every_entry_takes_one() {
    for mode in [Mode::Quick, Mode::Full] {
        let a = elf::analyze(&testlib("v081-symbolic"), mode).unwrap();
        for t in &a.targets {
            assert!(t.present, "{}", t.demangled);
            assert!(!t.plt, "{}: -Bsymbolic-functions leaves no JUMP_SLOT", t.demangled);
            assert_eq!(t.strategy, Strategy::InlineHook, "{mode:?} {}: {:?}", t.demangled, a.notes);
        }
        // Close is called through vtable slots holding RELATIVE relocations, not symbols.
        for c in [Target::DeviceClose, Target::MeshDeviceClose] {
            assert!(a.target(c).unwrap().address_taken, "{c:?}");
        }
        let text = doctor::render_text(&a);
        assert!(text.contains("verdict   OK: every required target is reached; 13 hooked inline"), "{text}");
        assert!(!text.contains("never called"), "MeshDevice::close is called through its vtable:\n{text}");
    }
}

#[test]
fn normal_build_is_interposed_and_only_caller_rule_applies() {
    let a = elf::analyze(&testlib("v081"), Mode::Quick).unwrap();
    for t in a.targets.iter().filter(|t| t.present) {
        assert_eq!(t.strategy, Strategy::Interpose, "{}", t.demangled);
        assert!(!t.address_taken, "{}", t.demangled);
    }
    // v065: track_deallocate_cb is present but its only caller is absent: never called, nothing to hook.
    let a = elf::analyze(&testlib("v065"), Mode::Quick).unwrap();
    let r = a.target(Target::TrackDeallocateCb).unwrap();
    assert!(r.present && !r.plt);
    assert_eq!(r.strategy, Strategy::Unreachable);
    assert!(a.targets.iter().all(|t| t.strategy != Strategy::InlineHook));
}

#[test]
fn entry_check_agrees_with_the_file_bytes() {
    let path = testlib("v081-symbolic");
    let a = elf::analyze(&path, Mode::Quick).unwrap();
    for info in TARGETS {
        let t = a.target(info.target).unwrap();
        let size = t.size.expect("st_size") as usize;
        let code = elf::function_bytes(&path, info.mangled, size).unwrap();
        assert_eq!(code.len(), size);
        let prologue = patchable::entry_patchable(&code, t.address.unwrap());
        assert!(
            prologue.as_ref().is_ok_and(|n| *n >= patchable::JMP_LEN),
            "{}: {prologue:?}",
            catalog::info(info.target).demangled
        );
    }
}
