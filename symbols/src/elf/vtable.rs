//! Read a vtable slot from the file. Slots of a PIC library are filled at load time by
//! relocations: `R_X86_64_RELATIVE` (hidden function: the addend is its address) or
//! `R_X86_64_64` (exported function: its symbol's value). Without a RELA entry (RELR-packed or
//! non-PIC) the file holds the address itself.

use std::collections::HashMap;

use object::elf;

use super::image::{Image, Reloc};

/// Address of the function in virtual slot `slot` of the vtable object at `vtable`
/// (slot 0 is at the address point, `vtable + 16`).
pub(crate) fn slot_target(img: &Image<'_>, relocs_at: &HashMap<u64, Reloc>, vtable: u64, slot: usize) -> Option<u64> {
    let at = vtable + crate::catalog::VTABLE_ADDRESS_POINT as u64 + 8 * slot as u64;
    match relocs_at.get(&at) {
        Some(r) if r.rtype == elf::R_X86_64_RELATIVE => Some(r.addend as u64),
        Some(r) if r.rtype == elf::R_X86_64_64 => {
            let (_, sym) = img.dynsyms().nth(r.sym as usize)?;
            sym.defined.then(|| sym.value.wrapping_add(r.addend as u64))
        }
        Some(_) => None,
        None => img.read_u64(at).filter(|v| *v != 0),
    }
}

/// The mangled name of a function defined at `addr` (`.symtab` first: hidden functions such
/// as `Device::id()` only appear there).
pub(crate) fn symbol_at(img: &Image<'_>, addr: u64) -> Option<String> {
    let hit = img.symtab().find(|s| s.defined && s.func && s.value == addr && !s.name.is_empty());
    let hit = hit.or_else(|| img.dynsyms().map(|(_, s)| s).find(|s| s.defined && s.func && s.value == addr));
    hit.map(|s| String::from_utf8_lossy(s.name).into_owned())
}
