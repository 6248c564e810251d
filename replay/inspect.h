// The decoded view of one event, field by field, for the GUI's inspector (and any CLI that
// wants more than one line): every hardware word decoded through hv/arch, the decision and
// its reason, the causal links, and the guest instruction at RIP disassembled with Capstone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "replay/format.h"
#include "replay/recording.h"

namespace es::replay {

struct InspectField {
  std::string label;  // "Exit reason", "IDT-vectoring", ...
  std::string value;  // "EPT_VIOLATION (48)", "IRQ 0x20 (0x80000020)", ...
  uint64_t link = 0;  // an event id the value refers to (cause / origin / effect), 0 = none
};

// One-line title: "#242 VM_EXIT EPT_VIOLATION at L1 vcpu0, t=0.000033440 s".
std::string inspect_title(const Event& ev);
// The fields that apply to this event's kind, in display order. Raw words are shown with
// their decoding ("0x80000020 = IRQ 0x20, valid").
std::vector<InspectField> inspect_event(const Event& ev);
// The same, with the exit that caused a decision (format.h CauseExit) when known: an EMULATE
// decision's detail is then named (port, CPUID leaf, MSR).
std::vector<InspectField> inspect_event(const Event& ev, const CauseExit* cause);

// The first instruction in `bytes` at guest address `rip`, 64-bit mode, Intel syntax:
// "mov qword ptr [rdi], rax". "" if Capstone cannot decode it.
std::string disassemble(uint64_t rip, const uint8_t* bytes, size_t count);
// The instruction of an event with ES_FLAG_BYTES_VALID ("" otherwise).
std::string disassemble_event(const Event& ev);

}  // namespace es::replay
