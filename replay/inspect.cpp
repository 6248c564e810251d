#include "replay/inspect.h"

#include <capstone/capstone.h>

#include <cstdio>

#include "hv/arch/event_info.h"
#include "hv/arch/exit_reason.h"
#include "replay/format.h"
#include "replay/names.h"

namespace es::replay {

namespace {

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
  s += " at L" + std::to_string(r.level) + " vcpu" + std::to_string(r.vcpu) + ", t=" + format_time(r.time_ns) + " s";
  return s;
}

std::vector<InspectField> inspect_event(const Event& ev) {
  const es_record& r = ev.rec;
  std::vector<InspectField> f;
  auto add = [&](std::string label, std::string value, uint64_t link = 0) {
    f.push_back({std::move(label), std::move(value), link});
  };
  const std::string_view kind = kind_name(r.kind);
  add("Event", "#" + std::to_string(r.id) + " " + (kind.empty() ? "kind " + std::to_string(r.kind) : std::string(kind)));
  add("Time", format_time(r.time_ns) + " s (" + std::to_string(r.time_ns) + " ns)");
  add("Level", "L" + std::to_string(r.level) + " guest, observed by L" + std::to_string(r.hv_level) + ", vCPU " +
                   std::to_string(r.vcpu));
  switch (r.kind) {
    case ES_KIND_VM_EXIT:
    case ES_KIND_NESTED_EXIT: {
      const arch::ExitReason reason(r.reason);
      // SVM: the exit code in hex, as APM Appendix C lists them; VMX: the basic reason number.
      add("Exit reason", exit_reason_text(r) + ((r.flags & ES_FLAG_SVM) ? " (SVM exit code " + hex(r.reason) + ")"
                                                                        : " (" + std::to_string(reason.basic_number()) + ")"));
      const std::string q = qualification_text(r.reason, r.flags, r.qualification);
      if (r.flags & ES_FLAG_SVM) {
        // The VMCB's names (APM Vol. 2 15.7 / Appendix C): EXITINFO1 / EXITINFO2, and EXITINTINFO
        // (kept in the VMX IDT-vectoring layout, APM 15.20) for the event being delivered.
        add("EXITINFO1", hex(r.qualification) + (q.empty() ? "" : " = " + q));
        add("EXITINFO2", hex(r.aux64));
        add("EXITINTINFO", word_text(arch::IdtVectoringInfo(r.idt_vectoring_info), r.idt_vectoring_error));
        if (r.guest_phys) add("Guest-physical address", hex(r.guest_phys));
        break;
      }
      add("Exit qualification", hex(r.qualification) + (q.empty() ? "" : " = " + q));
      const arch::ExitIntrInfo info(r.intr_info);
      std::string it = word_text(info, r.intr_error);
      if (info.valid() && info.nmi_unblocking_due_to_iret()) it += ", NMI unblocking due to IRET";
      if (info.valid() && info.nested_exception()) it += ", nested exception";
      add("VM-exit interruption info", it);
      add("IDT-vectoring info", word_text(arch::IdtVectoringInfo(r.idt_vectoring_info), r.idt_vectoring_error));
      if (r.guest_phys) add("Guest-physical address", hex(r.guest_phys));
      if (r.guest_linear) add("Guest-linear address", hex(r.guest_linear));
      if (r.instr_len) add("VM-exit instruction length", std::to_string(r.instr_len));
      break;
    }
    case ES_KIND_VM_ENTRY:
    case ES_KIND_NESTED_ENTRY: {
      const arch::EntryIntrInfo info(r.intr_info);
      add("VM-entry interruption info", info.valid() ? word_text(info, r.intr_error) : hex(r.intr_info) + " = no injection");
      if (info.valid() && arch::type_has_instruction_length(info.type()))
        add("VM-entry instruction length", std::to_string(r.instr_len));
      if (r.kind == ES_KIND_VM_ENTRY) {
        add("Guest interruptibility", hex(r.aux));
        add("Guest RFLAGS", hex(r.aux64) + ((r.aux64 & 0x200) ? " (IF=1)" : " (IF=0)"));
      }
      if (r.flags & ES_FLAG_IMMEDIATE_EXIT) add("Immediate exit", "requested");
      break;
    }
    case ES_KIND_DELIVERY:
    case ES_KIND_RAISE: {
      add(r.kind == ES_KIND_DELIVERY ? "Delivered" : "Raised", word_text(arch::EntryIntrInfo(r.intr_info), r.intr_error));
      if (r.kind == ES_KIND_DELIVERY && r.guest_linear) add("CR2", hex(r.guest_linear));
      break;
    }
    case ES_KIND_DECISION: {
      const std::string_view name = decision_name(r.reason);
      add("Decision", (name.empty() ? "decision " + std::to_string(r.reason) : std::string(name)));
      const arch::EntryIntrInfo info(r.intr_info);
      if (info.valid()) add("Event concerned", word_text(info, r.intr_error));
      if (r.guest_phys) add("Guest-physical address", hex(r.guest_phys));
      if (r.aux) add("Detail", hex(r.aux));
      break;
    }
    case ES_KIND_VIOLATION:
      add("Violation", "rule " + std::to_string(r.reason) + (r.aux64 ? ", detail " + hex(r.aux64) : ""));
      break;
    default: add("Fields", describe_event_fields(ev)); break;
  }
  if (r.rip) add("RIP", hex(r.rip));
  const std::string insn = disassemble_event(ev);
  if (!insn.empty()) add("Instruction", insn);
  if (r.cause) add("Cause", "#" + std::to_string(r.cause), r.cause);
  if (r.origin) add("Chain", "#" + std::to_string(r.origin) + (r.origin == r.id ? " (this event is the root)" : ""), r.origin);
  if (r.flags & ES_FLAG_INFERRED) add("Link", "inferred, not observed");
  return f;
}

}  // namespace es::replay
