//! Count the instructions in the library's code that transfer control to a function: direct
//! `call`/`jmp`/`jcc` to its entry (a call the PLT cannot see), to its PLT stub, or an indirect
//! `call/jmp *slot(%rip)` through its GOT slot (`-fno-plt` code). Linear sweep: clang puts no
//! data in x86-64 `.text`, and padding decodes as int3/nop.

use std::collections::HashMap;

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction};

use super::image::Image;
use super::plt::PLT_SECTIONS;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Calls {
    /// Branches to the function entry itself (bypass interposition).
    pub direct: u32,
    /// Branches to its PLT stub.
    pub via_plt: u32,
    /// Indirect branches through its GOT slot.
    pub via_got: u32,
}

impl Calls {
    pub fn total(&self) -> u32 {
        self.direct + self.via_plt + self.via_got
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Direct,
    Plt,
}

/// Where calls to item `i` can land.
#[derive(Default)]
pub(crate) struct CallIndex {
    by_addr: HashMap<u64, Vec<(usize, Kind)>>,
    by_slot: HashMap<u64, Vec<usize>>,
}

impl CallIndex {
    pub fn entry(&mut self, item: usize, addr: u64) {
        self.by_addr.entry(addr).or_default().push((item, Kind::Direct));
    }
    pub fn plt_stub(&mut self, item: usize, addr: u64) {
        self.by_addr.entry(addr).or_default().push((item, Kind::Plt));
    }
    pub fn got_slot(&mut self, item: usize, slot: u64) {
        self.by_slot.entry(slot).or_default().push(item);
    }
}

/// Sweep every executable section except the PLT itself.
pub(crate) fn count(img: &Image<'_>, index: &CallIndex, items: usize) -> Vec<Calls> {
    let mut calls = vec![Calls::default(); items];
    let mut ins = Instruction::default();
    for (name, addr, bytes) in img.exec_sections() {
        if PLT_SECTIONS.contains(&name.as_str()) {
            continue;
        }
        let mut decoder = Decoder::with_ip(64, bytes, addr, DecoderOptions::NONE);
        while decoder.can_decode() {
            decoder.decode_out(&mut ins);
            match ins.flow_control() {
                FlowControl::Call | FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch => {
                    if let Some(hits) = index.by_addr.get(&ins.near_branch_target()) {
                        for (i, kind) in hits {
                            match kind {
                                Kind::Direct => calls[*i].direct += 1,
                                Kind::Plt => calls[*i].via_plt += 1,
                            }
                        }
                    }
                }
                FlowControl::IndirectCall | FlowControl::IndirectBranch if ins.is_ip_rel_memory_operand() => {
                    if let Some(hits) = index.by_slot.get(&ins.ip_rel_memory_address()) {
                        for i in hits {
                            calls[*i].via_got += 1;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    calls
}
