//! Pure checks over machine code that *prove* a field offset before anyone reads memory with
//! it. They take bytes only, so the same check runs on the mapped library inside the shim and
//! on the file in tests / `ttalloc doctor`.

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, OpAccess, OpKind, Register,
};

/// `Buffer::is_dram() const` of the legacy layout is exactly
/// `testl $0xfffffffb, disp8(%rdi); sete %al; ret` — DRAM (0) and TRACE (4) are the only
/// types with all other bits clear. Returns `disp8`, i.e. where the u32 `BufferType` lives.
pub fn is_dram_type_offset(bytes: &[u8]) -> Option<u8> {
    match bytes {
        [0xf7, 0x47, off, 0xfb, 0xff, 0xff, 0xff, 0x0f, 0x94, 0xc0, 0xc3, ..] => Some(*off),
        _ => None,
    }
}

/// A side-effect-free `int` getter: `mov disp(%rdi),%eax; ret` (disp8 or disp32). Used to
/// check that vtable slot 3 really is a trivial `id()` before we call it on every event.
pub fn int_getter_offset(bytes: &[u8]) -> Option<u32> {
    match bytes {
        [0x8b, 0x47, off, 0xc3, ..] => Some(*off as u32),
        [0x8b, 0x87, a, b, c, d, 0xc3, ..] => Some(u32::from_le_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// Where a constructor stores its integer arguments into `*this`, found by following register
/// copies through the straight-line prologue (up to the first branch/call).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtorStores {
    /// Indexed by SysV argument position (0 = `this`/rdi, 1 = rsi, 2 = rdx, 3 = rcx,
    /// 4 = r8, 5 = r9): `(offset into *this, store width in bytes)` of the first store.
    pub stores: [Option<(u32, u8)>; 6],
}

impl CtorStores {
    /// Offset of argument `arg` if it was stored whole with `width` bytes.
    pub fn offset_of(&self, arg: usize, width: u8) -> Option<u32> {
        match self.stores.get(arg).copied().flatten() {
            Some((off, w)) if w == width => Some(off),
            _ => None,
        }
    }
}

const ARG_REGS: [Register; 6] =
    [Register::RDI, Register::RSI, Register::RDX, Register::RCX, Register::R8, Register::R9];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Holds {
    Unknown,
    This,
    Arg(usize),
}

/// Decode the prologue of a constructor at `ip` and report where each argument register lands
/// in `*this`. The legacy `Buffer` ctor does `mov %rsi,0x10(%rdi); mov %rdx,0x18(%rdi);
/// mov %r8d,0x20(%rdi)` before its first branch, proving device/size/type offsets.
pub fn ctor_arg_stores(bytes: &[u8], ip: u64) -> CtorStores {
    let mut out = CtorStores::default();
    let mut regs = [Holds::Unknown; 16]; // indexed by full 64-bit GPR number
    let gpr = |r: Register| -> Option<usize> {
        let f = r.full_register();
        (f >= Register::RAX && f <= Register::R15).then(|| f as usize - Register::RAX as usize)
    };
    regs[gpr(Register::RDI).unwrap()] = Holds::This;
    for (i, r) in ARG_REGS.iter().enumerate().skip(1) {
        regs[gpr(*r).unwrap()] = Holds::Arg(i);
    }
    let mut decoder = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
    let mut factory = InstructionInfoFactory::new();
    let mut ins = Instruction::default();
    for _ in 0..64 {
        if !decoder.can_decode() {
            break;
        }
        decoder.decode_out(&mut ins);
        if ins.is_invalid() || ins.flow_control() != FlowControl::Next {
            break;
        }
        let reg_to_reg = matches!(ins.code(), Code::Mov_r64_rm64 | Code::Mov_rm64_r64)
            && ins.op0_kind() == OpKind::Register
            && ins.op1_kind() == OpKind::Register;
        let store =
            matches!(ins.code(), Code::Mov_rm64_r64 | Code::Mov_rm32_r32 | Code::Mov_rm16_r16 | Code::Mov_rm8_r8)
                && ins.op0_kind() == OpKind::Memory
                && ins.op1_kind() == OpKind::Register;
        if reg_to_reg {
            if let (Some(d), Some(s)) = (gpr(ins.op0_register()), gpr(ins.op1_register())) {
                regs[d] = regs[s];
                continue;
            }
        }
        if store && ins.memory_index() == Register::None {
            if let (Some(b), Some(s)) = (gpr(ins.memory_base()), gpr(ins.op1_register())) {
                if let (Holds::This, Holds::Arg(a)) = (regs[b], regs[s]) {
                    let width = ins.op1_register().size() as u8;
                    if out.stores[a].is_none() {
                        out.stores[a] = Some((ins.memory_displacement64() as u32, width));
                    }
                }
            }
            continue; // a store writes no register
        }
        for used in factory.info(&ins).used_registers() {
            if matches!(
                used.access(),
                OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
            ) {
                if let Some(r) = gpr(used.register()) {
                    regs[r] = Holds::Unknown;
                }
            }
        }
    }
    out
}

/// How an accessor reads its field. `via: Some(o)` (0.81+ pimpl): `mov o(%rdi),%reg` loads
/// the `BufferImpl*`, the field is read from it; `via: None` (0.65–0.77): the field is
/// read from the `Buffer` itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldGetter {
    /// `mov off(%base),%eax|%rax; ret`: the field's `width` bytes (4 or 8), zero-extended.
    Load { via: Option<u32>, off: u32, width: u8 },
    /// `cmpb $value,off(%base); sete %al; ret`: the byte at `off` equals `value`.
    ByteEquals { via: Option<u32>, off: u32, value: u8 },
}

/// Proves that the accessor at `ip` is a plain getter (see [`FieldGetter`]), so the shim
/// may do its one or two loads itself instead of calling it on every event. A guard
/// `cmpb $imm,off(%base); jcc <throw path>` before the load is allowed: `Buffer::address()`
/// asserts the buffer is allocated, and the shim reads the address only after
/// `is_allocated()` said yes. Anything else (a call, a store, another register, a second
/// pointer hop) is `None`.
pub fn field_getter(bytes: &[u8], ip: u64) -> Option<FieldGetter> {
    let mut decoder = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut next = || {
        if !decoder.can_decode() {
            return None;
        }
        decoder.decode_out(&mut ins);
        (!ins.is_invalid()).then_some(ins)
    };
    // `[base + disp]` with no index and no segment: the displacement, if it fits 32 bits.
    let simple = |i: &Instruction, op: u32, base: Register| -> Option<u32> {
        (i.op_kind(op) == OpKind::Memory
            && i.memory_base() == base
            && i.memory_index() == Register::None
            && i.segment_prefix() == Register::None)
            .then(|| u32::try_from(i.memory_displacement64()).ok())
            .flatten()
    };
    let (mut base, mut via, mut guarded) = (Register::RDI, None, false);
    let mut i = next()?;
    loop {
        match i.code() {
            Code::Cmp_rm8_imm8 if !guarded => {
                let off = simple(&i, 0, base)?;
                let value = i.immediate8();
                let after = next()?;
                match after.code() {
                    Code::Sete_rm8 if after.op0_kind() == OpKind::Register && after.op0_register() == Register::AL => {
                        return (next()?.flow_control() == FlowControl::Return).then_some(FieldGetter::ByteEquals { via, off, value });
                    }
                    _ if after.flow_control() == FlowControl::ConditionalBranch => guarded = true,
                    _ => return None,
                }
                i = next()?;
            }
            Code::Mov_r64_rm64 | Code::Mov_r32_rm32 if i.op0_kind() == OpKind::Register => {
                let width = if i.code() == Code::Mov_r64_rm64 { 8 } else { 4 };
                let off = simple(&i, 1, base)?;
                let after = next()?;
                let want = if width == 8 { Register::RAX } else { Register::EAX };
                if after.flow_control() == FlowControl::Return {
                    return (i.op0_register() == want).then_some(FieldGetter::Load { via, off, width });
                }
                // The one pointer hop of a pimpl: the first instruction, from `this`.
                if via.is_some() || guarded || width != 8 {
                    return None;
                }
                (base, via) = (i.op0_register(), Some(off));
                i = after;
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_dram_pattern() {
        let b = [0xf7, 0x47, 0x20, 0xfb, 0xff, 0xff, 0xff, 0x0f, 0x94, 0xc0, 0xc3, 0x0f];
        assert_eq!(is_dram_type_offset(&b), Some(0x20));
        // 0.81.1 pimpl form: mov 0x10(%rdi),%rax; testl $..,0x10(%rax)
        let p = [0x48, 0x8b, 0x47, 0x10, 0xf7, 0x40, 0x10, 0xfb, 0xff, 0xff, 0xff];
        assert_eq!(is_dram_type_offset(&p), None);
        assert_eq!(is_dram_type_offset(&b[..6]), None);
    }

    /// The accessors of the real 0.81.1 `libtt_metal.so` (bytes from its
    /// disassembly) and the shapes that must be refused.
    #[test]
    fn pimpl_getters_of_0_81() {
        let load = |off, width| Some(FieldGetter::Load { via: Some(0x10), off, width });
        // size(): mov 0x10(%rdi),%rax; mov 0x8(%rax),%rax; ret
        assert_eq!(field_getter(&[0x48, 0x8b, 0x47, 0x10, 0x48, 0x8b, 0x40, 0x08, 0xc3], 0), load(8, 8));
        // buffer_type(): …; mov 0x10(%rax),%eax; ret
        assert_eq!(field_getter(&[0x48, 0x8b, 0x47, 0x10, 0x8b, 0x40, 0x10, 0xc3], 0), load(0x10, 4));
        // device(): …; mov (%rax),%rax; ret
        assert_eq!(field_getter(&[0x48, 0x8b, 0x47, 0x10, 0x48, 0x8b, 0x00, 0xc3], 0), load(0, 8));
        // is_allocated(): …; cmpb $0x1,0x38(%rax); sete %al; ret
        let alloc = [0x48, 0x8b, 0x47, 0x10, 0x80, 0x78, 0x38, 0x01, 0x0f, 0x94, 0xc0, 0xc3];
        assert_eq!(field_getter(&alloc, 0), Some(FieldGetter::ByteEquals { via: Some(0x10), off: 0x38, value: 1 }));
        // address(): …; cmpb $0x0,0x38(%rax); je <throw>; mov 0x40(%rax),%eax; ret
        let addr = [0x48, 0x8b, 0x47, 0x10, 0x80, 0x78, 0x38, 0x00, 0x74, 0x04, 0x8b, 0x40, 0x40, 0xc3];
        assert_eq!(field_getter(&addr, 0), load(0x40, 4));
        // Refused: loads into another register, a call, no ret, two guards, two hops,
        // a guard on `this` before the hop, a 4-byte hop.
        assert_eq!(field_getter(&[0x48, 0x8b, 0x47, 0x10, 0x48, 0x8b, 0x48, 0x08, 0xc3], 0), None);
        assert_eq!(field_getter(&[0x48, 0x8b, 0x47, 0x10, 0xe8, 0, 0, 0, 0, 0xc3], 0), None);
        assert_eq!(field_getter(&[0x48, 0x8b, 0x47, 0x10, 0x48, 0x8b, 0x40, 0x08, 0x90], 0), None);
        let two = [0x48, 0x8b, 0x47, 0x10, 0x80, 0x78, 0x38, 0x00, 0x74, 0x08, 0x80, 0x78, 0x39, 0x00, 0x74, 0x04, 0x8b, 0x40, 0x40, 0xc3];
        assert_eq!(field_getter(&two, 0), None);
        assert_eq!(field_getter(&[0x48, 0x8b, 0x47, 0x10, 0x48, 0x8b, 0x40, 0x08, 0x48, 0x8b, 0x40, 0x08, 0xc3], 0), None);
        let guard_then_hop = [0x80, 0x7f, 0x48, 0x00, 0x74, 0x08, 0x48, 0x8b, 0x47, 0x10, 0x8b, 0x40, 0x40, 0xc3];
        assert_eq!(field_getter(&guard_then_hop, 0), None);
        assert_eq!(field_getter(&[0x8b, 0x47, 0x10, 0x8b, 0x40, 0x08, 0xc3], 0), None);
    }

    /// The accessors of the real 0.65.0 and 0.71.2 libraries (identical bytes in both):
    /// the fields are in the `Buffer` itself.
    #[test]
    fn legacy_getters_of_0_65_and_0_71() {
        // page_size(): mov 0x58(%rdi),%rax; ret
        assert_eq!(field_getter(&[0x48, 0x8b, 0x47, 0x58, 0xc3], 0), Some(FieldGetter::Load { via: None, off: 0x58, width: 8 }));
        // is_allocated(): cmpb $0x1,0x48(%rdi); sete %al; ret
        let alloc = [0x80, 0x7f, 0x48, 0x01, 0x0f, 0x94, 0xc0, 0xc3];
        assert_eq!(field_getter(&alloc, 0), Some(FieldGetter::ByteEquals { via: None, off: 0x48, value: 1 }));
        // address(): cmpb $0x0,0x48(%rdi); je <throw>; mov 0x50(%rdi),%eax; ret (rel8 and rel32 jumps)
        let addr = [0x80, 0x7f, 0x48, 0x00, 0x74, 0x04, 0x8b, 0x47, 0x50, 0xc3];
        assert_eq!(field_getter(&addr, 0), Some(FieldGetter::Load { via: None, off: 0x50, width: 4 }));
        let addr32 = [0x80, 0x7f, 0x48, 0x00, 0x0f, 0x84, 0x3e, 0x91, 0xff, 0xff, 0x8b, 0x47, 0x50, 0xc3];
        assert_eq!(field_getter(&addr32, 0x1000), Some(FieldGetter::Load { via: None, off: 0x50, width: 4 }));
        // Refused: num_pages() (a division), a load into another register, an indexed load.
        let num_pages = [0x48, 0x8b, 0x4f, 0x58, 0x48, 0x85, 0xc9, 0x74, 0x16, 0x48, 0x8b, 0x47, 0x18];
        assert_eq!(field_getter(&num_pages, 0), None);
        assert_eq!(field_getter(&[0x48, 0x8b, 0x4f, 0x58, 0xc3], 0), None);
        assert_eq!(field_getter(&[0x48, 0x8b, 0x04, 0x37, 0xc3], 0), None);
    }

    #[test]
    fn getter_pattern() {
        assert_eq!(int_getter_offset(&[0x8b, 0x47, 0x08, 0xc3]), Some(8));
        assert_eq!(int_getter_offset(&[0x8b, 0x87, 0x00, 0x01, 0, 0, 0xc3]), Some(0x100));
        assert_eq!(int_getter_offset(&[0x48, 0x8b, 0x7f, 0x18, 0x48, 0x8b, 0x07]), None);
    }

    #[test]
    fn ctor_prologue_of_legacy_buffer() {
        // Bytes of 0.65.0 Buffer::Buffer(IDevice*, …) up to the first stores.
        let code = [
            0x55, 0x41, 0x57, 0x41, 0x56, 0x41, 0x55, 0x41, 0x54, 0x53, 0x48, 0x83, 0xec, 0x48, // pushes; sub rsp
            0x4d, 0x89, 0xce, // mov %r9,%r14
            0x45, 0x89, 0xc7, // mov %r8d,%r15d
            0x49, 0x89, 0xcc, // mov %rcx,%r12
            0x49, 0x89, 0xd5, // mov %rdx,%r13
            0x48, 0x89, 0xf5, // mov %rsi,%rbp
            0x48, 0x89, 0xfb, // mov %rdi,%rbx
            0xc5, 0xf8, 0x57, 0xc0, // vxorps
            0xc5, 0xf8, 0x11, 0x07, // vmovups %xmm0,(%rdi)
            0x48, 0x89, 0x77, 0x10, // mov %rsi,0x10(%rdi)
            0x48, 0x89, 0x57, 0x18, // mov %rdx,0x18(%rdi)
            0x44, 0x89, 0x47, 0x20, // mov %r8d,0x20(%rdi)
            0xc3,
        ];
        let s = ctor_arg_stores(&code, 0x1000);
        assert_eq!(s.offset_of(1, 8), Some(0x10));
        assert_eq!(s.offset_of(2, 8), Some(0x18));
        assert_eq!(s.offset_of(4, 4), Some(0x20));
        assert_eq!(s.offset_of(3, 8), None);
    }

    #[test]
    fn ctor_tracks_copies_and_clobbers() {
        let code = [
            0x48, 0x89, 0xf5, // mov %rsi,%rbp
            0x48, 0x89, 0xfb, // mov %rdi,%rbx
            0x48, 0x31, 0xf6, // xor %rsi,%rsi  (clobbers rsi)
            0x48, 0x89, 0x73, 0x08, // mov %rsi,0x8(%rbx): not an argument any more
            0x48, 0x89, 0x6b, 0x10, // mov %rbp,0x10(%rbx): arg 1 via copies
        ];
        let s = ctor_arg_stores(&code, 0);
        assert_eq!(s.offset_of(1, 8), Some(0x10));
    }
}
