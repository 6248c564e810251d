// Texts that sum a recording up, written once for every printer: a chain's original event (the
// chains command and the exporters put it in their own headings) and the facts of the session
// (`exitscope info` and the exporters' headers print them in their own layouts).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "replay/chains.h"
#include "replay/recording.h"

namespace es::replay {

// The chain's original event: "IRQ 0x20", with " (root #N not recorded)" when the record that
// raised it is not in the file (an imported trace that begins inside the chain).
std::string chain_event_text(uint64_t chain_id, uint32_t event_word, bool root_found);
std::string chain_event_text(const Chain& c);

// An external interrupt's injection that the source calls a reinjection although nothing before
// it in its chain tried to deliver it (`only_raises_before`: every member before the decision is
// a RAISE; no injection, entry or exit during delivery). KVM traces an interrupt user space
// queued with KVM_INTERRUPT (a VMM without the in-kernel irqchip) that way:
// kvm_vcpu_ioctl_interrupt -> kvm_queue_interrupt sets interrupt.injected, so the next entry
// injects it with reinjected = true (arch/x86/kvm/x86.c).
bool first_injection_called_reinjection(const es_record& decision, bool only_raises_before);
// What `chains` and the GUI's inspector say of such a decision (one sentence, no final period).
std::string_view first_injection_called_reinjection_note();

// An injection the source calls a reinjection whose cause is the chain's previous injection:
// no VM entry, exit or cancellation of it is recorded in between. KVM prints [reinjected] for an
// event it still held as injected (x86.c: the exception's / interrupt's `injected` flag), so no
// delivery of it had completed; why (an entry cancelled before it ran, an exit of its delivery
// the trace lacks, a state restore) the trace does not show: a host whose KVM traces no
// kvm_entry / kvm_exit, or an excerpt without those lines.
// `cause` is the decision's cause record, nullptr when it is not in the file.
bool reinjected_without_exit(const es_record& decision, const es_record* cause);
// What `chains` and the GUI's inspector say of it (one sentence, no final period).
std::string_view reinjected_without_exit_note();

// One fact of a session summary: "policy" -> "default".
struct SessionFact {
  std::string label;
  std::string value;
};

// Who prints the facts, which decides which facts there are and how they are worded.
enum class SessionFactsFor {
  // `exitscope info`: every fact, "-" for one the session lacks; tool, host, command and start
  // time on lines of their own; status and run end apart; then event and vCPU counts.
  Info,
  // The exporters' headers: only the facts the session has, the tool beside the source, the
  // kernel of a KVM or imported session, the end in one "session" fact, the time extent.
  Report,
};

// The session's facts in display order. `recording` names the file as the printer wants it
// (a path, or the file name alone so an export does not depend on where the file is). Values
// are the file's text as it is: a printer to a terminal makes them terminal_safe.
std::vector<SessionFact> session_facts(const SessionSummary& s, std::string_view recording, SessionFactsFor who);

}  // namespace es::replay
