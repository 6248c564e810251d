#include "replay/inspect.h"

#include <capstone/capstone.h>

#include <cstdio>
#include <functional>

#include "exitscope/discard.h"
#include "hv/arch/controls.h"
#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"
#include "hv/arch/exit_qualification.h"
#include "hv/arch/exit_reason.h"
#include "replay/chains.h"
#include "replay/format.h"
#include "replay/names.h"

namespace es::replay {

namespace {

// A field the source (a trace line's era or format) did not print.
constexpr std::string_view kNotInTrace = "not recorded (not in the trace)";

std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

// "0x80000b0e = #PF, error code 0x2"; "0x0 = not valid".
template <typename Word>
std::string word_text(Word w, uint32_t error) {
  if (!w.valid()) return hex(w.raw()) + " = not valid";
  std::string s = hex(w.raw()) + " = " + arch::describe(w) + " (" + std::string(arch::to_string(w.type())) + ")";
  if (w.error_code_bit()) s += ", error code " + hex(error);
  return s;
}

// SDM Vol. 3C 28.2.1, Table 28-7 "Exit Qualification for EPT Violations", in its words.
std::string ept_violation_text(uint64_t raw) {
  const arch::EptViolationQual q(raw);
  std::string s;
  auto add = [&](const std::string& part) { s += (s.empty() ? "" : "; ") + part; };
  std::string access;
  if (q.read()) access += "data read";
  if (q.write()) access += std::string(access.empty() ? "" : ", ") + "data write";
  if (q.fetch()) access += std::string(access.empty() ? "" : ", ") + "instruction fetch";
  add("access: " + (access.empty() ? std::string("none of read / write / fetch") : access) + " (bits 2:0)");
  if (!q.entry_present()) {
    add("the EPT entry was not present: not readable, not writable, not executable (bits 5:3)");
  } else {
    add(std::string("the EPT entry was ") + (q.readable() ? "readable" : "not readable") + ", " +
        (q.writable() ? "writable" : "not writable") + ", " + (q.executable() ? "executable" : "not executable") +
        ((raw & arch::EptViolationQual::kUserExecutable) ? ", user-mode executable" : "") + " (bits 5:3)");
  }
  if (!q.linear_address_valid()) {
    add("guest-linear address not valid (bit 7 clear: e.g. an access by the CPU to a physical address)");
  } else {
    add("guest-linear address valid (bit 7)");
    add(q.translated_access()
            ? "the access was to the translation of the linear address (bit 8 set)"
            : "the access was to a paging-structure entry during the page walk of the linear address (bit 8 clear)");
    // Bits 9-11, when the processor reports them (advanced VM-exit information for EPT
    // violations; a processor without it leaves them 0, EptViolationQual::advanced_info).
    if (q.advanced_info())
      add(std::string("guest paging said: ") + (q.user_linear() ? "user-mode" : "supervisor-mode") +
          " linear address (bit 9), " + (q.rw_page() ? "read/write page" : "read-only page") + " (bit 10), " +
          (q.xd_page() ? "execute-disable page" : "executable page") + " (bit 11)");
  }
  if (q.nmi_unblocking_due_to_iret()) add("NMI unblocking due to IRET (bit 12)");
  if (raw & arch::EptViolationQual::kShadowStack) add("shadow-stack access (bit 13)");
  if (raw & arch::EptViolationQual::kAsynchronous) add("asynchronous to instruction execution (bit 16)");
  if (!q.reserved_bits_clear()) add("bits above 16 set: not defined by the SDM edition this tool follows");
  return s;
}

// Guest interruptibility state, Table 25-3 "Format of Interruptibility State":
// "0x8 = blocking by NMI", "0x0 = no blocking".
std::string interruptibility_text(uint32_t v) {
  std::string s = hex(v) + " =";
  if (v & arch::interruptibility::kBlockingBySti) s += " blocking by STI,";
  if (v & arch::interruptibility::kBlockingByMovSs) s += " blocking by MOV SS,";
  if (v & arch::interruptibility::kBlockingBySmi) s += " blocking by SMI,";
  if (v & arch::interruptibility::kBlockingByNmi) s += " blocking by NMI,";
  if (v & arch::interruptibility::kEnclaveInterruption) s += " enclave interruption,";
  if (v & arch::interruptibility::kReservedMask) s += " reserved bits set,";
  if (v == 0) s += " no blocking,";
  s.pop_back();
  return s;
}

// Labelled detail of a decision (what record.h says its aux / aux64 hold, per decision).
void decision_fields(const es_record& r, const CauseExit* cause,
                     const std::function<void(std::string, std::string)>& add) {
  switch (r.reason) {
    case ES_DECISION_REFLECT_TO_L1:
    case ES_DECISION_HANDLE_IN_L0:
      if (r.aux || r.reason == ES_DECISION_HANDLE_IN_L0)
        add("L2 exit", exit_reason_text(r.aux, r.flags) + " (" + exit_reason_number(r.aux, r.flags) + ")" +
                           (r.reason == ES_DECISION_REFLECT_TO_L1 ? ", passed to L1 as a nested VM exit"
                                                                  : ", kept and handled by L0; L1 never sees it"));
      if (r.aux64) add("CR2 for L1", hex(r.aux64) + " (the exit qualification L1 reads: an async #PF's token)");
      return;
    case ES_DECISION_DISCARD:
      switch (r.aux) {
        case ES_DISCARD_COALESCED:
          add("Why discarded", "coalesced: this vector's IRR bit was already set, one request per vector (SDM 11.8.4)");
          return;
        case ES_DISCARD_COLLAPSED:
          add("Why discarded", "collapsed: two NMIs were already outstanding (SDM 6.7.1; KVM process_nmi)");
          return;
        case ES_DISCARD_OUTRANKED:
          add("Why discarded",
              "outranked: an exception was injected at the entry that should have carried it, and it was not requeued "
              "(KVM kvm_check_and_inject_events)");
          return;
        case ES_DISCARD_NOT_HANDED_BACK:
          // The vendor of the exit to L1 that caused it (the record's own SVM flag says only AMD).
          add("Why discarded",
              "not handed back: " + std::string(replay::discard_reference(
                                        r.aux, ((cause ? cause->flags : r.flags) & ES_FLAG_SVM) ? replay::Vendor::Svm
                                               : cause                                          ? replay::Vendor::Vmx
                                                       : replay::Vendor::Unknown)));
          return;
        default:
          if (r.aux) add("Why discarded", "code " + std::to_string(r.aux));
          return;
      }
    case ES_DECISION_IMMEDIATE_EXIT:
      add("Waiting interrupt", "L1's IRQ " + hex(r.aux) +
                                   ": L2's delivery in progress finishes first, then the immediate exit takes L2 "
                                   "to L1 with EXTERNAL_INTERRUPT (SDM 28.2.4: no such exit with valid IDT-vectoring)");
      return;
    case ES_DECISION_DEFER_BLOCKED:
      add("Guest interruptibility",
          interruptibility_text(r.aux) + (r.aux ? "" : ": an interrupt waits for RFLAGS.IF = 1"));
      return;
    case ES_DECISION_REQUEUE_FROM_VECTORING:
      if (r.aux) add("Instruction length", std::to_string(r.aux) + " (VM-exit instruction length, reinjected with it)");
      return;
    case ES_DECISION_QUEUE_EXCEPTION:
    case ES_DECISION_FIX_PAGE_FAULT:
    case ES_DECISION_INJECT_NEW:
    case ES_DECISION_INJECT_REINJECTED:
      if (r.aux64) add("CR2", hex(r.aux64) + " (the faulting linear address)");
      if (r.aux) add("Instruction length", std::to_string(r.aux) + " (VM-entry instruction length)");
      return;
    case ES_DECISION_RESTORE_NMI_BLOCKING:
      add("Exit qualification", hex(r.aux64) + " (of the exit that reported NMI unblocking due to IRET)");
      return;
    case ES_DECISION_UNEXPECTED_EXIT:
      add("Raw value", hex(r.aux) + " (exit reason, port or VM-instruction error the hypervisor had no handler for)");
      return;
    case ES_DECISION_EMULATE: {
      if (arch::EntryIntrInfo(r.intr_info).valid()) return;
      // By the vendor of the exit it answered (VMX reason or SVM exit code).
      const EmulatedExit why = emulated_exit(cause);
      if (why == EmulatedExit::Io) {
        add("Port", hex(r.aux));
        add("Value", hex(r.aux64));
      } else if (why == EmulatedExit::Cpuid) {
        add("CPUID leaf", hex(r.aux));
      } else if (why == EmulatedExit::MsrRead || why == EmulatedExit::MsrWrite || why == EmulatedExit::Msr) {
        add("MSR", hex(r.aux));
        if (why == EmulatedExit::MsrWrite || (why == EmulatedExit::Msr && r.aux64)) add("Value", hex(r.aux64));
      } else {
        if (r.aux) add("Detail", hex(r.aux) + " (port, CPUID leaf or MSR, by the exit handled)");
        if (r.aux64) add("Value", hex(r.aux64));
      }
      return;
    }
    default:
      if (r.aux) add("Detail", hex(r.aux));
      if (r.aux64) add("Detail (64-bit)", hex(r.aux64));
      return;
  }
}

}  // namespace

std::string disassemble(uint64_t rip, const uint8_t* bytes, size_t count) {
  if (!bytes || count == 0) return {};
  csh handle;
  if (cs_open(CS_ARCH_X86, CS_MODE_64, &handle) != CS_ERR_OK) return {};
  cs_insn* insn = nullptr;
  std::string out;
  if (cs_disasm(handle, bytes, count, rip, 1, &insn) == 1) {
    out = insn[0].mnemonic;
    if (insn[0].op_str[0]) (out += ' ') += insn[0].op_str;
    cs_free(insn, 1);
  }
  cs_close(&handle);
  return out;
}

std::string disassemble_event(const Event& ev) {
  const es_record& r = ev.rec;
  if (!(r.flags & ES_FLAG_BYTES_VALID) || r.kind == ES_KIND_CONSOLE) return {};
  const size_t n = r.aux && r.aux <= sizeof r.bytes ? r.aux : sizeof r.bytes;
  return disassemble(r.rip, r.bytes, n);
}

std::string inspect_title(const Event& ev) {
  const es_record& r = ev.rec;
  std::string s = "#" + std::to_string(r.id) + " " + std::string(kind_name(r.kind));
  if (r.kind == ES_KIND_VM_EXIT || r.kind == ES_KIND_NESTED_EXIT) s += " " + exit_reason_text(r);
  if (r.kind == ES_KIND_DECISION) s += " " + std::string(decision_name(r.reason));
  s += " at " + level_text(r) + " vcpu" + std::to_string(r.vcpu) + ", t=" + format_time(r.time_ns) + " s";
  return s;
}

std::vector<InspectField> inspect_event(const Event& ev) { return inspect_event(ev, nullptr); }

std::vector<InspectField> inspect_event(const Event& ev, const CauseExit* cause) {
  const es_record& r = ev.rec;
  std::vector<InspectField> f;
  auto add = [&](std::string label, std::string value, uint64_t link = 0) {
    f.push_back({std::move(label), std::move(value), link});
  };
  const std::string_view kind = kind_name(r.kind);
  add("Event",
      "#" + std::to_string(r.id) + " " + (kind.empty() ? "kind " + std::to_string(r.kind) : std::string(kind)));
  add("Time", format_time(r.time_ns) + " s (" + std::to_string(r.time_ns) + " ns)");
  add("Level", level_text(r) + ": " +
                   (r.kind == ES_KIND_DELIVERY ? "delivered by the CPU in the L" + std::to_string(r.level) + " guest"
                                               : "the L" + std::to_string(r.level) + " guest, " +
                                                     (r.kind == ES_KIND_DECISION ? "decided" : "observed") + " by L" +
                                                     std::to_string(r.hv_level)) +
                   ", vCPU " + std::to_string(r.vcpu));
  switch (r.kind) {
    case ES_KIND_VM_EXIT:
    case ES_KIND_NESTED_EXIT: {
      const arch::ExitReason reason(r.reason);
      // SVM: the exit code in hex, as APM Appendix C lists them; VMX: the basic reason number.
      add("Exit reason",
          exit_reason_text(r) + ((r.flags & ES_FLAG_SVM) ? " (SVM exit code " + hex(r.reason) + ")"
                                                         : " (" + std::to_string(reason.basic_number()) + ")"));
      const std::string q = qualification_text(r.reason, r.flags, r.qualification);
      if (r.flags & ES_FLAG_SVM) {
        // The VMCB's names (APM Vol. 2 15.7 / Appendix C): EXITINFO1 / EXITINFO2, and EXITINTINFO
        // (kept in the VMX IDT-vectoring layout, APM 15.20) for the event being delivered.
        add("EXITINFO1", hex(r.qualification) + (q.empty() ? "" : " = " + q));
        add("EXITINFO2", hex(r.aux64));
        add("EXITINTINFO", (r.flags & ES_FLAG_VECTORING_UNKNOWN)
                               ? std::string(kNotInTrace)
                               : word_text(arch::IdtVectoringInfo(r.idt_vectoring_info), r.idt_vectoring_error));
        if (r.guest_phys) add("Guest-physical address", hex(r.guest_phys));
        break;
      }
      const arch::ExitIntrInfo info(r.intr_info);
      if (reason.basic() == arch::BasicExitReason::EptViolation)
        add("Exit qualification", hex(r.qualification) + " = " + ept_violation_text(r.qualification));
      else if (reason.basic() == arch::BasicExitReason::ExceptionOrNmi && info.valid() && info.vector() == arch::kPF &&
               info.type() == arch::InterruptionType::HardwareException)
        // SDM 28.2.1: a #PF's exit qualification is the faulting linear address (CR2's value).
        add("Exit qualification", hex(r.qualification) + " = CR2, the linear address that caused the #PF");
      else
        add("Exit qualification", hex(r.qualification) + (q.empty() ? "" : " = " + q));
      std::string it = word_text(info, r.intr_error);
      if (info.valid() && info.nmi_unblocking_due_to_iret()) it += ", NMI unblocking due to IRET";
      if (info.valid() && info.nested_exception()) it += ", nested exception";
      add("VM-exit interruption info", (r.flags & ES_FLAG_EXIT_INTR_UNKNOWN) ? std::string(kNotInTrace) : it);
      add("IDT-vectoring info", (r.flags & ES_FLAG_VECTORING_UNKNOWN)
                                    ? std::string(kNotInTrace)
                                    : word_text(arch::IdtVectoringInfo(r.idt_vectoring_info), r.idt_vectoring_error));
      if (r.guest_phys) add("Guest-physical address", hex(r.guest_phys));
      if (r.guest_linear) add("Guest-linear address", hex(r.guest_linear));
      if (r.instr_len) add("VM-exit instruction length", std::to_string(r.instr_len));
      break;
    }
    case ES_KIND_VM_ENTRY:
    case ES_KIND_NESTED_ENTRY: {
      const arch::EntryIntrInfo info(r.intr_info);
      add("VM-entry interruption info",
          info.valid() ? word_text(info, r.intr_error) : hex(r.intr_info) + " = no injection");
      if (info.valid() && arch::type_has_instruction_length(info.type()))
        add("VM-entry instruction length", std::to_string(r.instr_len));
      if (r.kind == ES_KIND_VM_ENTRY) {
        // RFLAGS bit 1 is always 1 (SDM Vol. 1 3.4.3): a 0 there means the source did not record
        // the entered state (a kvm_entry line prints neither; record.h), not IF=0 and no blocking.
        if (r.aux64 & 0x2) {
          add("Guest interruptibility", interruptibility_text(r.aux));
          add("Guest RFLAGS", hex(r.aux64) + ((r.aux64 & 0x200) ? " (IF=1)" : " (IF=0)"));
        } else {
          add("Guest interruptibility", std::string(kNotInTrace));
          add("Guest RFLAGS", std::string(kNotInTrace));
        }
      }
      if (r.flags & ES_FLAG_IMMEDIATE_EXIT) add("Immediate exit", "requested");
      break;
    }
    case ES_KIND_DELIVERY:
    case ES_KIND_RAISE: {
      add(r.kind == ES_KIND_DELIVERY ? "Delivered" : "Raised",
          word_text(arch::EntryIntrInfo(r.intr_info), r.intr_error));
      if (r.guest_linear)
        add("CR2", hex(r.guest_linear) + (r.kind == ES_KIND_DELIVERY ? " (what the #PF handler reads)"
                                                                     : " (the faulting linear address)"));
      break;
    }
    case ES_KIND_DECISION: {
      const std::string_view name = decision_name(r.reason);
      add("Decision", (name.empty() ? "decision " + std::to_string(r.reason) : std::string(name)));
      const arch::EntryIntrInfo info(r.intr_info);
      if (info.valid()) add("Event concerned", word_text(info, r.intr_error));
      if (r.guest_phys) add("Guest-physical address", hex(r.guest_phys));
      decision_fields(r, cause, [&](std::string label, std::string value) { add(std::move(label), std::move(value)); });
      break;
    }
    case ES_KIND_VIOLATION: {
      const std::string_view name = violation_rule_name(r.reason);
      const std::string_view what = violation_rule_description(r.reason);
      add("Violation", (name.empty() ? "rule " + std::to_string(r.reason) : std::string(name)) +
                           (what.empty() ? "" : ": " + std::string(what)));
      if (r.aux > 1) add("Events involved", std::to_string(r.aux));
      if (r.aux64) add("First event", "#" + std::to_string(r.aux64), r.aux64);
      break;
    }
    default: add("Fields", describe_event_fields(ev)); break;
  }
  if (r.rip) add("RIP", hex(r.rip));
  const std::string insn = disassemble_event(ev);
  if (!insn.empty()) add("Instruction", insn);
  if (r.cause) add("Cause", "#" + std::to_string(r.cause), r.cause);
  if (r.origin)
    add("Chain", "#" + std::to_string(r.origin) + (r.origin == r.id ? " (this event is the root)" : ""), r.origin);
  if (r.flags & ES_FLAG_INFERRED) add("Link", "inferred, not observed");
  return f;
}

}  // namespace es::replay
