//! PLT stubs → the GOT slot each one jumps through.
//!
//! Every linker lays stubs out differently (GNU ld lazy `.plt`: `jmp *slot; push n; jmp PLT0`;
//! GNU ld IBT `.plt.sec`: `endbr64; bnd jmp *slot`; mold `.plt`: `mov $n,%r11d; jmp *slot`;
//! `.plt.got`: `jmp *slot` padded with int3/nop), but each has exactly one
//! `jmp *disp(%rip)` per stub. So we decode the sections and call a stub "the first
//! non-padding instruction after the previous unconditional jump"; callers branch to that.

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic};

use super::image::Image;

pub(crate) const PLT_SECTIONS: [&str; 3] = [".plt", ".plt.sec", ".plt.got"];

/// `(stub entry address, GOT slot address)` for every stub in the PLT sections.
pub(crate) fn stubs(img: &Image<'_>) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for name in PLT_SECTIONS {
        if let Some((addr, bytes)) = img.section(name) {
            decode_stubs(bytes, addr, &mut out);
        }
    }
    out
}

pub(crate) fn decode_stubs(bytes: &[u8], addr: u64, out: &mut Vec<(u64, u64)>) {
    let mut decoder = Decoder::with_ip(64, bytes, addr, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut stub_start: Option<u64> = None;
    while decoder.can_decode() {
        decoder.decode_out(&mut ins);
        let padding = ins.is_invalid() || matches!(ins.mnemonic(), Mnemonic::Int3 | Mnemonic::Nop | Mnemonic::Ud2);
        if stub_start.is_none() && !padding {
            stub_start = Some(ins.ip());
        }
        let fc = ins.flow_control();
        if fc == FlowControl::IndirectBranch && ins.is_ip_rel_memory_operand() {
            out.push((stub_start.unwrap_or(ins.ip()), ins.ip_rel_memory_address()));
        }
        if matches!(fc, FlowControl::IndirectBranch | FlowControl::UnconditionalBranch) {
            stub_start = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_lazy_plt() {
        // PLT0 then one entry: jmp *0x10(%rip); push $0; jmp PLT0
        let mut b = vec![0xff, 0x35, 0, 0, 0, 0, 0xff, 0x25, 0, 0, 0, 0, 0x0f, 0x1f, 0x40, 0x00];
        b.extend([0xff, 0x25, 0x10, 0, 0, 0, 0x68, 0, 0, 0, 0, 0xe9, 0xe0, 0xff, 0xff, 0xff]);
        let mut out = Vec::new();
        decode_stubs(&b, 0x1000, &mut out);
        // PLT0's jmp (no relocation names its slot) and the entry at 0x1010 → slot 0x1016+0x10
        assert_eq!(out.last(), Some(&(0x1010, 0x1026)));
    }

    #[test]
    fn mold_plt() {
        // mov $0x0,%r11d; jmp *0x8(%rip); int3 x4; mov $0x1,%r11d; jmp *0x8(%rip); int3 x4
        let mut b = Vec::new();
        for n in 0..2u8 {
            b.extend([0x41, 0xbb, n, 0, 0, 0, 0xff, 0x25, 0x08, 0, 0, 0, 0xcc, 0xcc, 0xcc, 0xcc]);
        }
        let mut out = Vec::new();
        decode_stubs(&b, 0x2000, &mut out);
        assert_eq!(out, vec![(0x2000, 0x2014), (0x2010, 0x2024)]);
    }

    #[test]
    fn ibt_plt_sec() {
        // endbr64; bnd jmp *0x10(%rip); nopl 0(%rax,%rax)
        let b = [0xf3, 0x0f, 0x1e, 0xfa, 0xf2, 0xff, 0x25, 0x10, 0, 0, 0, 0x0f, 0x1f, 0x44, 0, 0];
        let mut out = Vec::new();
        decode_stubs(&b, 0x3000, &mut out);
        assert_eq!(out, vec![(0x3000, 0x301b)]);
    }
}
