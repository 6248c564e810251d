// One-line decoded text of an event, using hv/arch for every hardware word.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "replay/recording.h"

namespace es::replay {

// The exit a decision answered (its cause), when the caller knows it: what some decisions'
// aux means depends on it (EMULATE: the port of an I/O exit, the leaf of a CPUID, the MSR of
// RDMSR / WRMSR). Without it those values print as "detail=".
struct CauseExit {
  uint32_t reason = 0;  // the exit's reason word
  uint32_t flags = 0;   // its es_record.flags (ES_FLAG_SVM)
};

// The CauseExit of an event if it is an exit (VM_EXIT / NESTED_EXIT), nullopt otherwise.
std::optional<CauseExit> cause_exit(const Event& ev);

// What an EMULATE decision's aux / aux64 hold, from the exit it answered, read by that exit's
// vendor: a VMX basic exit reason (SDM Vol. 3D Appendix C) or an SVM exit code (AMD APM Vol. 2
// Appendix C: IOIO 0x7b, CPUID 0x72, MSR 0x7c). SVM's MSR exit says read or write only in
// EXITINFO1, which the cause does not carry: Msr.
enum class EmulatedExit { Unknown, Io, Cpuid, MsrRead, MsrWrite, Msr };
EmulatedExit emulated_exit(const CauseExit* cause);
// An exit reason's number as its vendor writes it: "48" (VMX basic reason), "SVM exit code 0x400".
std::string exit_reason_number(uint32_t reason, uint32_t record_flags);

// The recent exits of a listing walked in id order, so a decision finds the exit that caused
// it: `see` every event, then `cause_of` the decision. Keeps the last 64 exits.
class CauseExits {
 public:
  void see(const Event& ev);
  const CauseExit* cause_of(const Event& ev) const;

 private:
  struct Slot {
    uint64_t id = 0;
    CauseExit exit;
  };
  std::array<Slot, 64> ring_{};
  size_t next_ = 0;
};

// The level notation used everywhere (events, chains, exports, the GUI): "L2(L0)" = about the
// L2 guest, seen or decided by L0's hypervisor; "L2(L1)" = L1's view / decision for its L2. A
// delivery is the CPU's, in the guest itself: just "L2".
std::string level_text(const es_record& r);
// The same from its parts: `delivery` for a DELIVERY record (the CPU's: no hypervisor level).
std::string level_text(uint8_t level, uint8_t hv_level, bool delivery);

// A VM entry (or nested entry) that injects an event: its VM-entry interruption information is
// valid, bit 31 (SDM Vol. 3C 25.8.3 "VM-Entry Controls for Event Injection"; AMD's EVENTINJ has
// its V bit in the same place, APM Vol. 2 15.20). What a timeline draws as an injection and the
// trace exports show as an instant.
bool injects_event(const es_record& r);
// The basic exit reason of a VM exit's reason word, bits 15:0 (Vol. 3C 28.2.1 "Basic VM-Exit
// Information"; the failed-entry bit 31 and the other flags dropped), by which the timeline colours
// exits. An SVM exit code (AMD APM Vol. 2 Appendix C) gets the same mask: every code but the
// failed-VMRUN ones (-1 VMEXIT_INVALID ...) comes back unchanged.
uint16_t basic_exit_reason(uint32_t reason);

// A short label for an event's mark on a timeline (what it is, reason / vector), so a picture
// reads without the GUI: "EPT_VIOLATION vec IRQ 0x20", "inject IRQ 0x20", "deliver #PF",
// "raise NMI", "REQUEUE_FROM_VECTORING".
std::string mark_label(const es_record& r);
// A tooltip for an event's mark: "#501 VM_EXIT  L2(L0) vcpu0  t=0.000036275 s" then the decoded fields.
std::string mark_tooltip(const Event& ev);

// "     12  0.000001200  L1(L0) vcpu0  VM_EXIT        EPT_VIOLATION RW- perm --- gpa=0x3000 ... cause=#11 origin=#5"
std::string format_event(const Event& ev);
std::string format_event(const Event& ev, const CauseExit* cause);
// The decoded part only (no id / time / level columns): "EPT_VIOLATION RW- perm --- gpa=0x3000 ...".
std::string describe_event_fields(const Event& ev);
std::string describe_event_fields(const Event& ev, const CauseExit* cause);
// `text` from a recording (session strings, guest console output) made safe to print on a
// terminal: control bytes, DEL and bytes >= 0x80 as \xNN, newline / CR as \n / \r, backslash
// doubled (and '"' escaped when `quoted`), so a recording cannot send escape sequences to the
// reader's terminal. The escaping `events` applies to console records.
std::string terminal_safe(std::string_view text);
void append_terminal_safe(std::string& out, std::string_view text, bool quoted = false);
// The one naming function for exit reasons, vendor-aware: `record_flags` are the record's
// es_record.flags, whose ES_FLAG_SVM says the reason is an SVM exit code (AMD APM Vol. 2
// Appendix C) rather than a VMX exit reason. VMX: KVM's name, "EPT_VIOLATION", or "reason N"
// for an unknown one, with " (entry failure)" when bit 31 is set. SVM: KVM's name, "npf",
// "io", "GP excp", or "exit code 0x..." for an unknown one.
std::string exit_reason_text(uint32_t reason, uint32_t record_flags);
// The same for an exit record (its reason and flags).
std::string exit_reason_text(const es_record& exit);
// Decodes the qualification of an exit with this reason ("" if not decoded): VMX exit
// qualification, or SVM EXITINFO1 (IOIO, NPF) when record_flags has ES_FLAG_SVM.
std::string qualification_text(uint32_t reason, uint32_t record_flags, uint64_t qualification);

// The same texts appended to `out` (the functions above are built on these): exporters decode
// every event of a recording straight into their output buffer instead of returning a string
// per field. append_qualification appends nothing and returns false when not decoded.
void append_event_fields(std::string& out, const Event& ev);
void append_event_fields(std::string& out, const Event& ev, const CauseExit* cause);
void append_exit_reason(std::string& out, uint32_t reason, uint32_t record_flags);
bool append_qualification(std::string& out, uint32_t reason, uint32_t record_flags, uint64_t qualification);

}  // namespace es::replay
