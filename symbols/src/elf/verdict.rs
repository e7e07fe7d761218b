//! What each verdict means for the numbers a user will read — one sentence per target.

use serde::{Deserialize, Serialize};

use super::TargetReport;
use crate::catalog::{target_by_mangled, Target};

/// How the shim can reach a target on this build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Every call is bound by symbol (PLT/GOT or a vtable slot relocation): defining the
    /// symbol in the preloaded shim receives it.
    Interpose,
    /// Present, but (some) calls are not bound by symbol: the shim patches the function's
    /// entry with a jump to its hook (`shim/src/inline.rs`).
    InlineHook,
    /// Not in this build, or never called in it (its only caller is absent).
    Unreachable,
}

impl Strategy {
    /// Present + PLT/GOT or vtable-slot binding → interposable, unless some calls cannot be
    /// seen by symbol binding: a pointer to it held by a `R_X86_64_RELATIVE` relocation (a
    /// vtable slot of a `-Bsymbolic` build) or, in Full mode, direct calls.
    pub fn decide(
        present: bool,
        plt: bool,
        via_vtable: bool,
        address_taken: bool,
        direct_calls: Option<u32>,
    ) -> Strategy {
        if !present {
            Strategy::Unreachable
        } else if direct_calls.unwrap_or(0) > 0 || address_taken || !(plt || via_vtable) {
            Strategy::InlineHook
        } else {
            Strategy::Interpose
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Strategy::Interpose => "hooked by symbol interposition",
            Strategy::InlineHook => "hooked inline",
            Strategy::Unreachable => "not reachable",
        }
    }
}

impl TargetReport {
    /// One sentence: what this verdict means for the numbers.
    pub fn consequence(&self) -> String {
        let Some(info) = target_by_mangled(&self.symbol) else {
            return format!("not a catalogued target ({:?})", self.strategy);
        };
        let t = info.target;
        if self.call_sites == Some(0) && self.present && !self.via_vtable && !self.address_taken {
            return match t {
                Target::TrackDeallocateCb => {
                    "never called on this build: CB frees are inferred from program destruction".into()
                }
                Target::ProgramImplD2 if self.alias_of.is_some() => {
                    "same code as ~ProgramImpl() [D1] and never called directly: covered by the D1 hook".into()
                }
                _ => "never called on this build: nothing is lost".into(),
            };
        }
        if t == Target::ProgramImplD2 && self.alias_of.is_some() && self.strategy != Strategy::Unreachable {
            return "same code as ~ProgramImpl() [D1]: calls go through D1's symbol and are covered by that hook"
                .into();
        }
        use Strategy::*;
        let s = match (t, self.strategy) {
            (Target::TrackAllocate, Interpose) => "every buffer allocation is recorded",
            (Target::TrackAllocate, InlineHook) => "calls bypass the PLT; the entry is patched: every buffer allocation is recorded",
            (Target::TrackAllocate, Unreachable) => "no allocation can be recorded: this library cannot be tracked",
            (Target::TrackDeallocate, Interpose) => "every owned-buffer free is recorded",
            (Target::TrackDeallocate, InlineHook) => "calls bypass the PLT; the entry is patched: every owned-buffer free is recorded",
            (Target::TrackDeallocate, Unreachable) => "frees cannot be seen: buffers look alive until their device closes",
            (Target::HookAllocate, Interpose) => "buffers allocated under graph capture without dispatch are marked hooked, not counted as device memory",
            (Target::HookAllocate, InlineHook) => "calls bypass the PLT; the entry is patched: graph-capture buffers are marked hooked",
            (Target::HookAllocate, Unreachable) => "graph-capture buffers cannot be told apart and count as device memory",
            // Not hooked by ttalloc (forwarding through it cost ≈ 2 ns per event): the
            // allocation's hooked flag already marks a graph-capture buffer's free.
            (Target::HookDeallocate, _) => "not hooked, nothing lost: a graph-capture free is marked by its allocation's hooked flag",
            (Target::TrackAllocateCb, Interpose) => "every circular-buffer (L1) allocation is recorded",
            (Target::TrackAllocateCb, InlineHook) => "calls bypass the PLT; the entry is patched: every circular-buffer (L1) allocation is recorded",
            (Target::TrackAllocateCb, Unreachable) => "circular buffers are invisible: L1 usage is under-reported",
            (Target::TrackDeallocateCb, Interpose) => "CB frees are recorded per device; the program comes from the surrounding deallocate_circular_buffers()/~ProgramImpl()",
            (Target::TrackDeallocateCb, InlineHook) => "calls bypass the PLT; the entry is patched: CB frees are recorded per device",
            (Target::TrackDeallocateCb, Unreachable) => "CB frees are inferred from program destruction",
            (Target::AllocateCircularBuffers, Interpose) => "circular buffers are attributed to their program",
            (Target::AllocateCircularBuffers, InlineHook) => "calls bypass the PLT; the entry is patched: circular buffers are attributed to their program",
            (Target::AllocateCircularBuffers, Unreachable) => "CBs cannot be attributed to a program: their frees cannot be matched",
            (Target::DeallocateCircularBuffers, Interpose) => "CB lifetime ends when the program releases its circular buffers",
            (Target::DeallocateCircularBuffers, InlineHook) => "calls bypass the PLT; the entry is patched: CB lifetime ends when the program releases its circular buffers",
            (Target::DeallocateCircularBuffers, Unreachable) => "CB lifetime ends at ~ProgramImpl",
            (Target::ProgramImplD1, Interpose) => "program destruction is seen: its circular buffers are released",
            (Target::ProgramImplD1, InlineHook) => "calls bypass the PLT; the entry is patched: program destruction is seen",
            (Target::ProgramImplD1, Unreachable) => "CBs of destroyed programs stay counted (L1 over-reported) unless track_deallocate_cb fires",
            (Target::ProgramImplD2, Interpose) => "base-object destruction is seen",
            (Target::ProgramImplD2, InlineHook) => "calls bypass the PLT; the entry is patched: base-object destruction is seen",
            (Target::ProgramImplD2, Unreachable) => "no separate base-object destructor: ~ProgramImpl() [D1] covers it",
            (Target::DeviceClose | Target::MeshDeviceClose, Interpose) if self.call_sites == Some(0) => "called only through the vtable, whose slot is bound by symbol: close is seen",
            (Target::DeviceClose, Interpose) => "device close is seen: buffers still alive then are closed out",
            (Target::DeviceClose, InlineHook) => "calls bypass the PLT and the vtable binding; the entry is patched: device close is seen",
            (Target::DeviceClose, Unreachable) => "buffers alive at device close are never released in the numbers",
            (Target::MeshDeviceClose, Interpose) if !self.plt => "called only through the vtable, whose slot is bound by symbol: mesh close is seen",
            (Target::MeshDeviceClose, Interpose) => "mesh close is seen: buffers still alive then are closed out",
            (Target::MeshDeviceClose, InlineHook) => "calls bypass symbol binding; the entry is patched: mesh close is seen",
            (Target::MeshDeviceClose, Unreachable) => "buffers alive at mesh close are never released in the numbers",
            (Target::AllocateDataflowBuffers, Interpose) => "dataflow buffers are attributed to their program",
            (Target::AllocateDataflowBuffers, InlineHook) => "calls bypass the PLT; the entry is patched: dataflow buffers are attributed to their program",
            (Target::AllocateDataflowBuffers, Unreachable) => "no dataflow-buffer path in this release: nothing to attribute",
            (Target::DfbMarkAddress, Interpose) => "every dataflow buffer's L1 placement (address, size) is recorded, although tt-metal reports none to its GraphTracker",
            (Target::DfbMarkAddress, InlineHook) => "placement calls bypass the PLT; the entry is patched: every dataflow buffer's L1 placement is recorded",
            (Target::DfbMarkAddress, Unreachable) => "no dataflow-buffer placement call in this release: nothing to record",
        };
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide() {
        assert_eq!(Strategy::decide(false, true, true, false, None), Strategy::Unreachable);
        assert_eq!(Strategy::decide(true, true, false, false, None), Strategy::Interpose);
        assert_eq!(Strategy::decide(true, false, true, false, Some(0)), Strategy::Interpose);
        assert_eq!(Strategy::decide(true, true, false, false, Some(2)), Strategy::InlineHook);
        assert_eq!(Strategy::decide(true, false, false, false, Some(0)), Strategy::InlineHook);
        // A PLT slot, but also a pointer no symbol binding covers (a -Bsymbolic vtable slot).
        assert_eq!(Strategy::decide(true, true, false, true, None), Strategy::InlineHook);
    }
}
