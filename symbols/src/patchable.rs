//! Can a function's entry be overwritten with a 5-byte `jmp rel32` (an inline hook) without
//! breaking it? A pure check over the function's bytes, run by the shim on the mapped code
//! before it patches anything (and by tests on the files).
//!
//! The patch replaces the instructions covering the first [`JMP_LEN`] bytes (the "prologue");
//! a trampoline replays them elsewhere and jumps back after them. That is only sound when
//! * the prologue is straight-line code: no call (its return address would point into the
//!   trampoline, which has no unwind info, so a C++ exception or a backtrace through it would
//!   fail), no branch and no return (a function shorter than the jump);
//! * nothing in the function branches back *into* the prologue past its first byte: that
//!   branch would land in the middle of the jump.
//!
//! RIP-relative operands in the prologue are fine: the trampoline builder re-targets them.

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction};

/// Length of the `jmp rel32` written at the entry.
pub const JMP_LEN: usize = 5;

/// Returns the prologue length (≥ [`JMP_LEN`]) if `code` — the whole function, starting at
/// virtual address `entry` — can take an entry jump; else why not.
pub fn entry_patchable(code: &[u8], entry: u64) -> Result<usize, String> {
    if code.len() < JMP_LEN {
        return Err(format!("function is {} bytes, shorter than a {JMP_LEN}-byte jump", code.len()));
    }
    let mut decoder = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut prologue = 0usize;
    while prologue < JMP_LEN {
        if !decoder.can_decode() {
            return Err("function ends inside the patched bytes".into());
        }
        decoder.decode_out(&mut ins);
        if ins.is_invalid() {
            return Err(format!("undecodable instruction at +{prologue:#x}"));
        }
        if ins.flow_control() != FlowControl::Next {
            return Err(format!("{:?} at +{prologue:#x} within the first {JMP_LEN} bytes", ins.flow_control()));
        }
        prologue += ins.len();
    }
    // The rest of the function: any direct branch into (entry, entry + prologue)?
    let inside = entry + 1..entry + prologue as u64;
    while decoder.can_decode() {
        decoder.decode_out(&mut ins);
        let branch = matches!(
            ins.flow_control(),
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch | FlowControl::Call
        );
        if branch && inside.contains(&ins.near_branch_target()) {
            return Err(format!(
                "instruction at +{:#x} branches to +{:#x}, inside the patched bytes",
                ins.ip() - entry,
                ins.near_branch_target() - entry
            ));
        }
    }
    Ok(prologue)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 0.81.1 `GraphTracker::hook_deallocate` prologue: push rbp; push r15; push r14; push rbx;
    /// sub $0xa8,%rsp; … ; ret
    const PUSHES: [u8; 14] = [0x55, 0x41, 0x57, 0x41, 0x56, 0x53, 0x48, 0x81, 0xec, 0xa8, 0, 0, 0, 0xc3];

    #[test]
    fn plain_prologue_is_patchable() {
        assert_eq!(entry_patchable(&PUSHES, 0x1000), Ok(5));
        // endbr64 (4) + push rbp (1) = 5
        let cet = [0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5, 0xc3];
        assert_eq!(entry_patchable(&cet, 0), Ok(5));
        // RIP-relative load in the prologue: relocatable.
        let rip = [0x48, 0x8b, 0x05, 0x10, 0, 0, 0, 0xc3];
        assert_eq!(entry_patchable(&rip, 0), Ok(7));
    }

    #[test]
    fn calls_branches_and_short_functions_are_refused() {
        // call rel32 first
        assert!(entry_patchable(&[0xe8, 0, 0, 0, 0, 0xc3], 0).unwrap_err().contains("Call"));
        // test; je (branch within the first 5 bytes)
        assert!(entry_patchable(&[0x48, 0x85, 0xff, 0x74, 0x01, 0xc3, 0xc3], 0).is_err());
        // xor eax,eax; ret — 3 bytes
        assert!(entry_patchable(&[0x31, 0xc0, 0xc3], 0).is_err());
        // mov eax,[rdi+8]; ret: the ret falls within the first 5 bytes
        assert!(entry_patchable(&[0x8b, 0x47, 0x08, 0xc3, 0xcc, 0xcc], 0).unwrap_err().contains("Return"));
    }

    #[test]
    fn a_loop_back_into_the_prologue_is_refused() {
        // push rbx (1); push r12 (2); push r13 (2) | ...; jne -> entry+1
        let mut code = vec![0x53, 0x41, 0x54, 0x41, 0x55, 0x90, 0x90];
        let at = code.len() as i64;
        let rel = 1 - (at + 2);
        code.extend_from_slice(&[0x75, rel as i8 as u8, 0xc3]);
        assert!(entry_patchable(&code, 0x4000).unwrap_err().contains("inside the patched bytes"));
        // A branch back to the entry itself is fine (it goes through the hook again).
        let mut ok = code.clone();
        ok[at as usize + 1] = (0 - (at + 2)) as i8 as u8;
        assert_eq!(entry_patchable(&ok, 0x4000), Ok(5));
    }
}
