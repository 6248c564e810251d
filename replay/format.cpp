#include "replay/format.h"

#include <charconv>
#include <cstdio>

#include "exitscope/discard.h"
#include "hv/arch/event_info.h"
#include "hv/arch/controls.h"
#include "hv/arch/exceptions.h"
#include "hv/arch/exit_qualification.h"
#include "hv/arch/exit_reason.h"
#include "hv/arch/svm.h"
#include "hv/arch/vmcs.h"
#include "replay/names.h"

namespace es::replay {

void append_terminal_safe(std::string& out, std::string_view text, bool quoted);

namespace {

std::string hex(uint64_t v) {
  char b[24] = {'0', 'x'};
  const auto res = std::to_chars(b + 2, b + sizeof b, v, 16);
  return std::string(b, res.ptr);
}

void append_hex(std::string& out, uint64_t v) {
  char b[24] = {'0', 'x'};
  const auto res = std::to_chars(b + 2, b + sizeof b, v, 16);
  out.append(b, static_cast<size_t>(res.ptr - b));
}

void append_dec(std::string& out, uint64_t v) {
  char b[24];
  const auto res = std::to_chars(b, b + sizeof b, v);
  out.append(b, static_cast<size_t>(res.ptr - b));
}

// Space-separated fields appended to an output that may already hold other text: the
// separator goes before every field but the first of this decode.
class Fields {
 public:
  explicit Fields(std::string& out) : out_(out), start_(out.size()) {}
  std::string& next() {
    if (out_.size() != start_) out_ += ' ';
    return out_;
  }
  std::string& out() { return out_; }

 private:
  std::string& out_;
  size_t start_;
};

// "IRQ 0x20", "#PF err=0x2"
template <typename Word>
void append_event_text(std::string& out, Word w, uint32_t error) {
  arch::describe_to(out, w);
  if (w.valid() && w.error_code_bit()) {
    out += " err=";
    append_hex(out, error);
  }
}

void append_bytes(std::string& out, const es_record& r) {
  const unsigned n = r.aux < sizeof r.bytes ? r.aux : sizeof r.bytes;
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned i = 0; i < n; ++i) {
    if (i) out += ' ';
    out += kHex[r.bytes[i] >> 4];
    out += kHex[r.bytes[i] & 15];
  }
}

std::string console_text(const es_record& r) {
  const unsigned n = r.aux < sizeof r.bytes ? r.aux : sizeof r.bytes;
  std::string s = "\"";
  append_terminal_safe(s, std::string_view(reinterpret_cast<const char*>(r.bytes), n), true);
  return s + "\"";
}

// KVM_EXIT_* names of the exits kvm_userspace_exit reports most (include/uapi/linux/kvm.h).
std::string_view kvm_exit_name(uint64_t reason) {
  switch (reason) {
    case 0: return "KVM_EXIT_UNKNOWN";
    case 2: return "KVM_EXIT_IO";
    case 3: return "KVM_EXIT_HYPERCALL";
    case 4: return "KVM_EXIT_DEBUG";
    case 5: return "KVM_EXIT_HLT";
    case 6: return "KVM_EXIT_MMIO";
    case 7: return "KVM_EXIT_IRQ_WINDOW_OPEN";
    case 8: return "KVM_EXIT_SHUTDOWN";
    case 9: return "KVM_EXIT_FAIL_ENTRY";
    case 10: return "KVM_EXIT_INTR";
    case 17: return "KVM_EXIT_INTERNAL_ERROR";
    case 24: return "KVM_EXIT_SYSTEM_EVENT";
    case 29: return "KVM_EXIT_X86_RDMSR";
    case 30: return "KVM_EXIT_X86_WRMSR";
    default: return {};
  }
}

// CONTEXT records: VMCS dump lines and the KVM tracepoints kept beside exits (record.h).
std::string context_text(const es_record& r) {
  std::string s;
  const std::string line = r.aux ? " line=" + std::to_string(r.aux) : std::string();
  switch (r.reason) {
    case ES_CONTEXT_VMCS_FIELD: {
      const std::string_view name = arch::to_string(static_cast<arch::VmcsField>(r.aux));
      return "vmcs " + (name.empty() ? hex(r.aux) : std::string(name)) + "=" + hex(r.aux64);
    }
    // aux64: how many lines of other tracepoints in a row (0 in older recordings: one), the first
    // at line `aux`, the last at line `qualification`.
    case ES_CONTEXT_OTHER_EVENT:
      return r.aux64 > 1 ? std::to_string(r.aux64) + " other tracepoint lines, first" + line +
                               " last line=" + std::to_string(r.qualification)
                         : "other tracepoint" + line;
    case ES_CONTEXT_PAGE_FAULT:
      // aux64 holds the full 64-bit error code (record.h); older recordings only intr_error.
      return "kvm_page_fault addr=" + hex(r.guest_phys) + " err=" + hex(r.aux64 | r.intr_error) +
             " rip=" + ((r.flags & ES_FLAG_RIP_UNKNOWN) ? std::string("unknown") : hex(r.rip)) + line;
    case ES_CONTEXT_EMULATE_INSN: return "kvm_emulate_insn rip=" + hex(r.rip) + (r.intr_error == 1 ? " failed" : "");
    case ES_CONTEXT_PIO:
      return std::string("kvm_pio ") + (r.intr_error == 1 ? "out" : "in") + " port=" + hex(r.qualification) +
             " val=" + hex(r.aux64) + (r.instr_len ? " size=" + std::to_string(r.instr_len) : "") + line;
    case ES_CONTEXT_MSR:
      return std::string("kvm_msr ") + (r.intr_error == 1 ? "wrmsr " : "rdmsr ") + hex(r.qualification) + "=" +
             hex(r.aux64) + line;
    case ES_CONTEXT_APIC_ACCEPT_IRQ:
    case ES_CONTEXT_EOI:
      return std::string(r.reason == ES_CONTEXT_EOI ? "kvm_eoi" : "kvm_apic_accept_irq") +
             " apic=" + hex(r.qualification) + " " + arch::describe(arch::EntryIntrInfo(r.intr_info)) + line;
    case ES_CONTEXT_MMIO: {
      const char* what = r.intr_error == 2 ? "write" : r.intr_error == 1 ? "read" : "unsatisfied-read";
      return std::string("kvm_mmio ") + what + " gpa=" + hex(r.guest_phys) + " val=" + hex(r.aux64) +
             " len=" + std::to_string(r.instr_len) + line;
    }
    case ES_CONTEXT_USERSPACE_EXIT: {
      const std::string_view name = kvm_exit_name(r.qualification);
      s = "kvm_userspace_exit " + (name.empty() ? "reason " + std::to_string(r.qualification) : std::string(name));
      if (r.intr_error) s += " errno=" + std::to_string(static_cast<int32_t>(r.intr_error));
      return s + line;
    }
    default:
      s = "context " + hex(r.reason);
      if (r.aux) s += " aux=" + hex(r.aux);
      if (r.aux64) s += " aux64=" + hex(r.aux64);
      return s;
  }
}

// An exit for a hardware #PF (VMX EXCEPTION_OR_NMI with vector 14): its qualification is CR2.
bool is_pf_exception_exit(const es_record& r) {
  if (r.flags & ES_FLAG_SVM) return false;  // SVM: EXITINFO2 holds the address, shown as exitinfo2
  if (arch::ExitReason(r.reason).basic() != arch::BasicExitReason::ExceptionOrNmi) return false;
  const arch::ExitIntrInfo info(r.intr_info);
  return info.valid() && info.vector() == arch::kPF && info.type() == arch::InterruptionType::HardwareException;
}

// Guest interruptibility state, Table 25-3 "Format of Interruptibility State": "STI+MOV-SS", "none".
void append_interruptibility(std::string& out, uint32_t v) {
  const size_t start = out.size();
  auto add = [&](uint32_t bit, const char* name) {
    if (!(v & bit)) return;
    if (out.size() != start) out += '+';
    out += name;
  };
  add(arch::interruptibility::kBlockingBySti, "STI");
  add(arch::interruptibility::kBlockingByMovSs, "MOV-SS");
  add(arch::interruptibility::kBlockingBySmi, "SMI");
  add(arch::interruptibility::kBlockingByNmi, "NMI");
  add(arch::interruptibility::kEnclaveInterruption, "enclave");
  if (v & arch::interruptibility::kReservedMask) {
    if (out.size() != start) out += '+';
    append_hex(out, v & arch::interruptibility::kReservedMask);
  }
  if (out.size() == start) out += "none";
}

// What a decision's aux / aux64 mean, by decision (the hv's Vmm::decide calls and the KVM
// linker): named, never "aux=0x30". EMULATE's aux depends on the exit handled, known only with
// `cause`; without it the value is shown as "detail=".
void append_decision_detail(Fields& f, const es_record& r, const CauseExit* cause) {
  switch (r.reason) {
    case ES_DECISION_UNEXPECTED_EXIT:
      if (r.aux) append_hex(f.next() += "raw_reason=", r.aux);
      return;
    case ES_DECISION_REFLECT_TO_L1:
    case ES_DECISION_HANDLE_IN_L0:
      // aux = the L2 exit's reason (SVM exit code with ES_FLAG_SVM); an async #PF's aux64 = its
      // token, the CR2 L1 finds in the exit qualification.
      if (r.aux || r.reason == ES_DECISION_HANDLE_IN_L0) append_exit_reason(f.next() += "exit=", r.aux, r.flags);
      if (r.aux64) append_hex(f.next() += "cr2=", r.aux64);
      return;
    case ES_DECISION_DISCARD:
      switch (r.aux) {
        case 0: return;
        case ES_DISCARD_COALESCED: f.next() += "why=coalesced(IRR bit already set)"; return;  // SDM 11.8.4
        case ES_DISCARD_COLLAPSED:
          f.next() += "why=collapsed(2 NMIs already pending)";
          return;  // SDM 6.7.1, KVM process_nmi
        case ES_DISCARD_OUTRANKED: f.next() += "why=outranked(an exception was injected instead)"; return;
        // L1's injection into L2 that L0's exit to L1 did not return (APM 15.7.2, SDM 28.2.4).
        case ES_DISCARD_NOT_HANDED_BACK: f.next() += "why=not-handed-back(L0's exit to L1 did not return it)"; return;
        default: append_dec(f.next() += "why=", r.aux); return;
      }
    case ES_DECISION_IMMEDIATE_EXIT:
      // aux = the vector of L1's interrupt that waits for L2's delivery to finish.
      append_hex(f.next() += "pending_l1_irq=", r.aux);
      return;
    case ES_DECISION_DEFER_BLOCKED:
      // aux = guest interruptibility at the entry; none set and still blocked: RFLAGS.IF = 0.
      if (r.aux == 0 && arch::EntryIntrInfo(r.intr_info).type() == arch::InterruptionType::ExternalInterrupt)
        f.next() += "blocking=IF=0";
      else
        append_interruptibility(f.next() += "blocking=", r.aux);
      return;
    case ES_DECISION_REQUEUE_FROM_VECTORING:
      if (r.aux) append_dec(f.next() += "len=", r.aux);  // VM-exit instruction length, reinjected with it
      return;
    case ES_DECISION_QUEUE_EXCEPTION:
    case ES_DECISION_FIX_PAGE_FAULT:
    case ES_DECISION_INJECT_NEW:
    case ES_DECISION_INJECT_REINJECTED:
      // Vmm::inject / queue_exception: aux = VM-entry instruction length (software events),
      // aux64 = the CR2 a #PF carries.
      if (r.aux64) append_hex(f.next() += "cr2=", r.aux64);
      if (r.aux) append_dec(f.next() += "len=", r.aux);
      return;
    case ES_DECISION_RESTORE_NMI_BLOCKING:
      if (r.aux64) append_hex(f.next() += "exit_qual=", r.aux64);
      return;
    case ES_DECISION_EMULATE: {
      if (const arch::EntryIntrInfo info(r.intr_info); info.valid()) return;  // the vector is in the event text
      if (!r.aux && !r.aux64) return;                                         // a VMCALL: nothing to name
      const EmulatedExit what = emulated_exit(cause);
      if (what == EmulatedExit::Io) {
        append_hex(f.next() += "port=", r.aux);
        append_hex(f.next() += "value=", r.aux64);
      } else if (what == EmulatedExit::Cpuid) {
        append_hex(f.next() += "leaf=", r.aux);
      } else if (what == EmulatedExit::MsrRead || what == EmulatedExit::MsrWrite || what == EmulatedExit::Msr) {
        append_hex(f.next() += "msr=", r.aux);
        if (what != EmulatedExit::MsrRead && r.aux64) append_hex(f.next() += "value=", r.aux64);
      } else {
        if (r.aux) append_hex(f.next() += "detail=", r.aux);
        if (r.aux64) append_hex(f.next() += "value=", r.aux64);
      }
      return;
    }
    default:
      if (r.aux) append_hex(f.next() += "detail=", r.aux);
      if (r.aux64) append_hex(f.next() += "detail64=", r.aux64);
      return;
  }
}

// Table 28-7 "Exit Qualification for EPT Violations" on one line, in the SDM's terms: the
// access (bits 2:0), the EPT entry's permissions (5:3, "not present" when none), whether the
// guest-linear address is valid (7) and, if so, whether the access was to its translation or
// to a paging-structure entry of its page walk (8), and what paging said of that address (9-11,
// when the processor reports them). "data write, EPT entry not present, gla valid: translation".
void append_ept_violation(std::string& out, uint64_t raw) {
  const arch::EptViolationQual q(raw);
  const size_t start = out.size();
  auto access = [&](bool on, const char* what) {
    if (!on) return;
    if (out.size() != start) out += '+';
    out += what;
  };
  access(q.read(), "data read");
  access(q.write(), "data write");
  access(q.fetch(), "fetch");
  if (out.size() == start) out += "no access bit";
  out += ", EPT entry ";
  if (!q.entry_present()) {
    out += "not present";
  } else {
    out += q.readable() ? 'r' : '-';
    out += q.writable() ? 'w' : '-';
    out += q.executable() ? 'x' : '-';
  }
  if (q.linear_address_valid())
    out += q.translated_access() ? ", gla valid: translation" : ", gla valid: paging-structure entry";
  else
    out += ", no gla";
  // SDM Vol. 3C Table 28-7, bits 9-11: what the guest's paging said of the linear address.
  if (q.advanced_info()) {
    out += q.user_linear() ? " (user-mode" : " (supervisor-mode";
    out += q.rw_page() ? ", read/write page" : ", read-only page";
    out += q.xd_page() ? ", execute-disable)" : ", executable)";
  }
  if (q.nmi_unblocking_due_to_iret()) out += ", NMI unblocking due to IRET";
}
}  // namespace

std::string level_text(const es_record& r) { return level_text(r.level, r.hv_level, r.kind == ES_KIND_DELIVERY); }

std::string level_text(uint8_t level, uint8_t hv_level, bool delivery) {
  char b[24];
  if (delivery)
    std::snprintf(b, sizeof b, "L%u", level);
  else
    std::snprintf(b, sizeof b, "L%u(L%u)", level, hv_level);
  return b;
}

void append_exit_reason(std::string& out, uint32_t reason_word, uint32_t record_flags) {
  if (record_flags & ES_FLAG_SVM) {
    // SVM: the whole 32 bits are the exit code (no flag bits), APM Vol. 2 Appendix C.
    const std::string_view name = arch::svm_exit_name(reason_word);
    if (name.empty())
      append_hex(out += "exit code ", reason_word);
    else
      out += name;
    return;
  }
  const arch::ExitReason reason(reason_word);
  const std::string_view name = arch::exit_reason_name(reason.basic_number());
  if (name.empty()) {
    out += "reason ";
    append_dec(out, reason.basic_number());
  } else {
    out += name;
  }
  if (reason.entry_failure()) out += " (entry failure)";
}

void append_terminal_safe(std::string& out, std::string_view text, bool quoted) {
  for (const char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\\' || (quoted && c == '"'))
      (out += '\\') += static_cast<char>(c);
    else if (c < 0x20 || c >= 0x7f) {
      // C0 controls (ESC starts every terminal sequence), DEL, and every byte >= 0x80 (C1
      // controls such as 0x9b CSI are single bytes to an 8-bit terminal).
      static constexpr char kHex[] = "0123456789abcdef";
      ((out += "\\x") += kHex[c >> 4]) += kHex[c & 15];
    } else
      out += static_cast<char>(c);
  }
}

std::string terminal_safe(std::string_view text) {
  std::string s;
  append_terminal_safe(s, text, false);
  return s;
}

std::string exit_reason_text(uint32_t reason, uint32_t record_flags) {
  std::string s;
  append_exit_reason(s, reason, record_flags);
  return s;
}

std::string exit_reason_text(const es_record& exit) { return exit_reason_text(exit.reason, exit.flags); }

bool append_qualification(std::string& out, uint32_t reason, uint32_t record_flags, uint64_t q) {
  if (record_flags & ES_FLAG_SVM) {
    switch (static_cast<arch::SvmExitCode>(reason)) {
      case arch::SvmExitCode::Ioio: arch::describe_to(out, arch::SvmIoInfo(q)); return true;
      case arch::SvmExitCode::Npf: arch::describe_to(out, arch::SvmNpfInfo(q)); return true;
      default: return false;
    }
  }
  switch (arch::ExitReason(reason).basic()) {
    case arch::BasicExitReason::EptViolation: append_ept_violation(out, q); return true;
    case arch::BasicExitReason::IoInstruction: arch::describe_to(out, arch::IoQual(q)); return true;
    case arch::BasicExitReason::CrAccess: arch::describe_to(out, arch::CrAccessQual(q)); return true;
    default: return false;
  }
}

std::string qualification_text(uint32_t reason, uint32_t record_flags, uint64_t q) {
  std::string s;
  append_qualification(s, reason, record_flags, q);
  return s;
}

void append_event_fields(std::string& out, const Event& ev) { append_event_fields(out, ev, nullptr); }

void append_event_fields(std::string& out, const Event& ev, const CauseExit* cause) {
  const es_record& r = ev.rec;
  Fields f(out);
  switch (r.kind) {
    case ES_KIND_VM_EXIT:
    case ES_KIND_NESTED_EXIT: {
      append_exit_reason(f.next(), r.reason, r.flags);
      if (is_pf_exception_exit(r)) {
        // SDM 28.2.1 "Basic VM-Exit Information": for a #PF the exit qualification is the
        // linear address that caused it, what the guest's CR2 would have received.
        append_hex(f.next() += "cr2=", r.qualification);
      } else if (r.qualification) {
        append_hex(f.next() += "qual=", r.qualification);
        const size_t mark = out.size();
        out += " [";
        if (append_qualification(out, r.reason, r.flags, r.qualification))
          out += ']';
        else
          out.resize(mark);
      }
      const arch::ExitIntrInfo info(r.intr_info);
      if (info.valid()) append_event_text(f.next() += "intr=", info, r.intr_error);
      const arch::IdtVectoringInfo vec(r.idt_vectoring_info);
      if (vec.valid()) append_event_text(f.next() += "vectoring=", vec, r.idt_vectoring_error);
      if (r.guest_phys) append_hex(f.next() += "gpa=", r.guest_phys);
      // SVM EXITINFO2 (aux64): the faulting address of a #PF intercept (APM 15.12 "Exception
      // Intercepts"), the next RIP of some intercepts; an NPF's is already shown as gpa.
      if ((r.flags & ES_FLAG_SVM) && r.aux64 && r.aux64 != r.guest_phys) append_hex(f.next() += "exitinfo2=", r.aux64);
      if (r.guest_linear) append_hex(f.next() += "gla=", r.guest_linear);
      if (r.flags & ES_FLAG_RIP_UNKNOWN)
        f.next() += "rip=unknown";
      else
        append_hex(f.next() += "rip=", r.rip);
      if (r.instr_len) append_dec(f.next() += "len=", r.instr_len);
      break;
    }
    case ES_KIND_VM_ENTRY:
    case ES_KIND_NESTED_ENTRY: {  // NESTED_ENTRY: vmcs12's VM-entry interruption info
      const arch::EntryIntrInfo info(r.intr_info);
      if (info.valid())
        append_event_text(f.next() += "inject=", info, r.intr_error);
      else
        f.next() += "no injection";
      if (info.valid() && arch::type_has_instruction_length(info.type())) append_dec(f.next() += "len=", r.instr_len);
      if (r.flags & ES_FLAG_RIP_UNKNOWN)
        f.next() += "rip=unknown";
      else
        append_hex(f.next() += "rip=", r.rip);
      if (r.kind == ES_KIND_NESTED_ENTRY && r.qualification)
        append_hex(f.next() += "exception_bitmap=", r.qualification);
      break;
    }
    case ES_KIND_DELIVERY:
    case ES_KIND_RAISE: {
      const arch::EntryIntrInfo info(r.intr_info);
      append_event_text(f.next(), info, r.intr_error);
      // The CR2 of a #PF: the faulting address at its raise, what the handler finds at delivery.
      // (A raise without an address, as an import infers it, shows none rather than a made-up 0.)
      if (info.valid() && info.vector() == arch::kPF && info.type() == arch::InterruptionType::HardwareException &&
          (r.kind == ES_KIND_DELIVERY || r.guest_linear != 0)) {
        if (r.flags & ES_FLAG_CR2_UNKNOWN)
          f.next() += "cr2=unknown";
        else
          append_hex(f.next() += "cr2=", r.guest_linear);
      }
      if (r.rip) append_hex(f.next() += "rip=", r.rip);
      break;
    }
    case ES_KIND_DECISION: {
      const std::string_view name = decision_name(r.reason);
      if (name.empty())
        append_dec(f.next() += "decision ", r.reason);
      else
        f.next() += name;
      const arch::EntryIntrInfo info(r.intr_info);
      if (info.valid()) append_event_text(f.next(), info, r.intr_error);
      if (r.reason == ES_DECISION_EPT_MAP || r.guest_phys) append_hex(f.next() += "gpa=", r.guest_phys);
      append_decision_detail(f, r, cause);
      break;
    }
    case ES_KIND_CONSOLE: f.next() += console_text(r); break;
    case ES_KIND_VIOLATION: {
      const std::string_view rule = violation_rule_name(r.reason);
      if (rule.empty())
        append_dec(f.next() += "violation ", r.reason);
      else
        f.next() += rule;
      // replay/check to_record: aux = how many events the finding spans, aux64 = the first of
      // them when more than one (cause = the last).
      if (r.aux > 1) append_dec(f.next() += "events=", r.aux);
      if (r.aux64) append_dec(f.next() += "first=#", r.aux64);
      break;
    }
    case ES_KIND_INTERNAL_ERROR: {
      const std::string_view name = error_name(r.reason);
      if (name.empty())
        append_dec(f.next() += "error ", r.reason);
      else
        f.next() += name;
      append_hex(f.next() += "rip=", r.rip);
      if (r.reason == ES_ERROR_BAD_MEMORY) append_hex(f.next() += "gpa=", r.guest_phys);
      if (r.reason == ES_ERROR_INVALID_STATE) append_hex(f.next() += "detail=", r.aux64);
      break;
    }
    case ES_KIND_RUN_END: {
      const std::string_view name = end_reason_name(r.reason);
      if (name.empty())
        append_dec(f.next() += "end ", r.reason);
      else
        f.next() += name;
      break;
    }
    case ES_KIND_CONTEXT: f.next() += context_text(r); break;
    default:
      if (r.aux) append_hex(f.next() += "aux=", r.aux);
      if (r.aux64) append_hex(f.next() += "aux64=", r.aux64);
      break;
  }
  if ((r.flags & ES_FLAG_BYTES_VALID) && r.kind != ES_KIND_CONSOLE) {
    append_bytes(f.next() += "bytes=[", r);
    out += ']';
  }
  if (r.flags & ES_FLAG_IMMEDIATE_EXIT) f.next() += "immediate-exit";
  if (r.flags & ES_FLAG_INFERRED) f.next() += "(inferred)";
}

std::string describe_event_fields(const Event& ev) { return describe_event_fields(ev, nullptr); }

EmulatedExit emulated_exit(const CauseExit* cause) {
  if (!cause) return EmulatedExit::Unknown;
  if (cause->flags & ES_FLAG_SVM) {
    switch (static_cast<arch::SvmExitCode>(cause->reason)) {
      case arch::SvmExitCode::Ioio: return EmulatedExit::Io;
      case arch::SvmExitCode::Cpuid: return EmulatedExit::Cpuid;
      case arch::SvmExitCode::Msr: return EmulatedExit::Msr;
      default: return EmulatedExit::Unknown;
    }
  }
  switch (arch::ExitReason(cause->reason).basic()) {
    case arch::BasicExitReason::IoInstruction: return EmulatedExit::Io;
    case arch::BasicExitReason::Cpuid: return EmulatedExit::Cpuid;
    case arch::BasicExitReason::MsrRead: return EmulatedExit::MsrRead;
    case arch::BasicExitReason::MsrWrite: return EmulatedExit::MsrWrite;
    default: return EmulatedExit::Unknown;
  }
}

std::string exit_reason_number(uint32_t reason, uint32_t record_flags) {
  if (record_flags & ES_FLAG_SVM) return "SVM exit code " + hex(reason);
  return std::to_string(arch::ExitReason(reason).basic_number());
}

std::optional<CauseExit> cause_exit(const Event& ev) {
  if (ev.rec.kind != ES_KIND_VM_EXIT && ev.rec.kind != ES_KIND_NESTED_EXIT) return std::nullopt;
  return CauseExit{ev.rec.reason, ev.rec.flags};
}

void CauseExits::see(const Event& ev) {
  const es_record& r = ev.rec;
  if (r.kind != ES_KIND_VM_EXIT && r.kind != ES_KIND_NESTED_EXIT) return;
  ring_[next_] = Slot{r.id, CauseExit{r.reason, r.flags}};
  next_ = (next_ + 1) % ring_.size();
}

const CauseExit* CauseExits::cause_of(const Event& ev) const {
  if (!ev.rec.cause) return nullptr;
  for (const Slot& s : ring_)
    if (s.id == ev.rec.cause) return &s.exit;
  return nullptr;
}

std::string describe_event_fields(const Event& ev, const CauseExit* cause) {
  std::string s;
  append_event_fields(s, ev, cause);
  return s;
}

bool injects_event(const es_record& r) {
  return (r.kind == ES_KIND_VM_ENTRY || r.kind == ES_KIND_NESTED_ENTRY) && arch::EntryIntrInfo(r.intr_info).valid();
}

uint16_t basic_exit_reason(uint32_t reason) { return arch::ExitReason(reason).basic_number(); }

std::string mark_label(const es_record& r) {
  std::string s;
  switch (r.kind) {
    case ES_KIND_VM_EXIT:
    case ES_KIND_NESTED_EXIT: {
      append_exit_reason(s, r.reason, r.flags);
      if (const arch::ExitIntrInfo info(r.intr_info); info.valid()) arch::describe_to(s += ' ', info);
      if (const arch::IdtVectoringInfo vec(r.idt_vectoring_info); vec.valid()) arch::describe_to(s += " vec ", vec);
      return s;
    }
    case ES_KIND_VM_ENTRY:
    case ES_KIND_NESTED_ENTRY:
      if (const arch::EntryIntrInfo info(r.intr_info); info.valid())
        arch::describe_to(s += "inject ", info);
      else
        s = "entry";
      return s;
    case ES_KIND_DELIVERY: arch::describe_to(s += "deliver ", arch::EntryIntrInfo(r.intr_info)); return s;
    case ES_KIND_RAISE: arch::describe_to(s += "raise ", arch::EntryIntrInfo(r.intr_info)); return s;
    case ES_KIND_DECISION: {
      const std::string_view name = decision_name(r.reason);
      s = name.empty() ? "decision " + std::to_string(r.reason) : std::string(name);
      if (r.reason == ES_DECISION_DISCARD && r.aux >= 1 && r.aux <= 3)  // why, as the listing says it
        s += r.aux == 1 ? " (coalesced)" : r.aux == 2 ? " (collapsed)" : " (outranked)";
      return s;
    }
    case ES_KIND_VIOLATION: {
      const std::string_view rule = violation_rule_name(r.reason);
      return rule.empty() ? "violation" : std::string(rule);
    }
    default: {
      const std::string_view kind = kind_name(r.kind);
      return kind.empty() ? "kind " + std::to_string(r.kind) : std::string(kind);
    }
  }
}

std::string mark_tooltip(const Event& ev) {
  const es_record& r = ev.rec;
  const std::string_view kind = kind_name(r.kind);
  std::string s = "#" + std::to_string(r.id) + " " +
                  (kind.empty() ? "kind " + std::to_string(r.kind) : std::string(kind)) + "  " + level_text(r) +
                  " vcpu" + std::to_string(r.vcpu) + "  t=" + format_time(r.time_ns) + " s\n";
  append_event_fields(s, ev);
  if (r.origin) s += "\nchain " + std::to_string(r.origin);
  return s;
}

std::string format_event(const Event& ev) { return format_event(ev, nullptr); }

std::string format_event(const Event& ev, const CauseExit* cause) {
  const es_record& r = ev.rec;
  const std::string_view kind = kind_name(r.kind);
  char head[128];
  std::snprintf(head, sizeof head, "#%-7llu %s  %-6s vcpu%-2u %-14s", static_cast<unsigned long long>(r.id),
                format_time(r.time_ns).c_str(), level_text(r).c_str(), r.vcpu,
                kind.empty() ? ("kind" + std::to_string(r.kind)).c_str() : std::string(kind).c_str());
  std::string s = head;
  s += describe_event_fields(ev, cause);
  if (r.cause) s += " cause=#" + std::to_string(r.cause);
  if (r.origin) s += " origin=#" + std::to_string(r.origin);
  return s;
}

}  // namespace es::replay
