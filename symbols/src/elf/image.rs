//! A thin view over a memory-mapped ELF file: symbols, dynamic relocations, bytes by virtual
//! address. Everything borrows the mapping; nothing copies the (35 MB) file.

use object::elf;
use object::read::elf::{ElfFile64, FileHeader, SectionHeader, Sym as _};
use object::LittleEndian as LE;

pub(crate) type Elf<'d> = ElfFile64<'d, LE, &'d [u8]>;

pub(crate) struct Image<'d> {
    pub data: &'d [u8],
    pub elf: Elf<'d>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Sym<'d> {
    pub name: &'d [u8],
    pub value: u64,
    pub size: u64,
    pub defined: bool,
    pub func: bool,
}

/// One RELA entry of `.rela.dyn` / `.rela.plt`; `sym` indexes `.dynsym`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reloc {
    pub offset: u64,
    pub rtype: u32,
    pub sym: u32,
    pub addend: i64,
}

pub(crate) fn map(path: &std::path::Path) -> Result<memmap2::Mmap, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: read-only private mapping; a concurrent truncation of the file could SIGBUS,
    // which is the accepted risk of every ELF tool.
    unsafe { memmap2::Mmap::map(&f) }.map_err(|e| format!("{}: mmap: {e}", path.display()))
}

impl<'d> Image<'d> {
    pub fn parse(data: &'d [u8]) -> Result<Self, String> {
        let elf = Elf::parse(data).map_err(|e| format!("not a 64-bit little-endian ELF: {e}"))?;
        if elf.elf_header().e_machine(LE) != elf::EM_X86_64 {
            return Err("not an x86-64 ELF (tt-metal hosts are x86-64)".into());
        }
        Ok(Image { data, elf })
    }

    fn sym(
        &self,
        s: &'d elf::Sym64<LE>,
        table: &object::read::elf::SymbolTable<'d, elf::FileHeader64<LE>, &'d [u8]>,
    ) -> Sym<'d> {
        Sym {
            name: table.symbol_name(LE, s).unwrap_or(b""),
            value: s.st_value(LE),
            size: s.st_size(LE),
            defined: !s.is_undefined(LE),
            func: matches!(s.st_type(), elf::STT_FUNC | elf::STT_GNU_IFUNC),
        }
    }

    /// `.dynsym` entries with their indices (index 0 is the null symbol).
    pub fn dynsyms(&self) -> impl Iterator<Item = (u32, Sym<'d>)> + '_ {
        let t = self.elf.elf_dynamic_symbol_table();
        t.symbols().iter().enumerate().map(move |(i, s)| (i as u32, self.sym(s, t)))
    }

    /// `.symtab` entries (local and hidden symbols too; libtt_metal.so is not stripped).
    pub fn symtab(&self) -> impl Iterator<Item = Sym<'d>> + '_ {
        let t = self.elf.elf_symbol_table();
        t.symbols().iter().map(move |s| self.sym(s, t))
    }

    pub fn dynsym_name(&self, index: u32) -> Option<&'d [u8]> {
        let t = self.elf.elf_dynamic_symbol_table();
        let s = t.symbols().get(index as usize)?;
        t.symbol_name(LE, s).ok()
    }

    /// Every dynamic RELA relocation (sections linked to `.dynsym`: `.rela.dyn`, `.rela.plt`).
    pub fn relocs(&self) -> Vec<Reloc> {
        let sections = self.elf.elf_section_table();
        let dynsym = sections.iter().position(|s| s.sh_type(LE) == elf::SHT_DYNSYM);
        let mut out = Vec::new();
        for sh in sections.iter() {
            let Ok(Some((relas, link))) = sh.rela(LE, self.data) else { continue };
            if Some(link.0) != dynsym {
                continue;
            }
            out.extend(relas.iter().map(|r| Reloc {
                offset: r.r_offset.get(LE),
                rtype: r.r_type(LE, false),
                sym: r.r_sym(LE, false),
                addend: r.r_addend.get(LE),
            }));
        }
        out
    }

    /// `(address, bytes)` of a named section with file contents.
    pub fn section(&self, name: &str) -> Option<(u64, &'d [u8])> {
        let sections = self.elf.elf_section_table();
        let (_, sh) = sections.section_by_name(LE, name.as_bytes())?;
        Some((sh.sh_addr(LE), sh.data(LE, self.data).ok()?))
    }

    /// Executable sections with file contents: `(name, address, bytes)`.
    pub fn exec_sections(&self) -> Vec<(String, u64, &'d [u8])> {
        let sections = self.elf.elf_section_table();
        sections
            .iter()
            .filter(|sh| sh.sh_flags(LE) & u64::from(elf::SHF_EXECINSTR) != 0 && sh.sh_type(LE) != elf::SHT_NOBITS)
            .filter_map(|sh| {
                let name = String::from_utf8_lossy(sections.section_name(LE, sh).ok()?).into_owned();
                Some((name, sh.sh_addr(LE), sh.data(LE, self.data).ok()?))
            })
            .collect()
    }

    /// Up to `len` file bytes at virtual address `addr`, clipped to the containing section.
    pub fn bytes_at(&self, addr: u64, len: usize) -> Option<&'d [u8]> {
        for sh in self.elf.elf_section_table().iter() {
            let (start, size) = (sh.sh_addr(LE), sh.sh_size(LE));
            if start == 0 || sh.sh_type(LE) == elf::SHT_NOBITS || addr < start || addr >= start + size {
                continue;
            }
            let data = sh.data(LE, self.data).ok()?;
            let off = (addr - start) as usize;
            return data.get(off..off + len.min(data.len() - off));
        }
        None
    }

    pub fn read_u64(&self, addr: u64) -> Option<u64> {
        let b = self.bytes_at(addr, 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
}

pub(crate) fn demangle(name: &str) -> String {
    cpp_demangle::Symbol::new(name)
        .ok()
        .and_then(|s| s.demangle(&Default::default()).ok())
        .unwrap_or_else(|| name.to_string())
}
