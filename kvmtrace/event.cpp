#include "kvmtrace/event.h"

#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"

namespace es::kvmtrace {

namespace {

struct NameTracepoint {
  std::string_view name;
  Tracepoint tp;
};
constexpr NameTracepoint kTracepoints[] = {
    {"kvm_exit", Tracepoint::Exit},
    {"kvm_entry", Tracepoint::Entry},
    {"kvm_inj_virq", Tracepoint::InjVirq},
    {"kvm_inj_exception", Tracepoint::InjException},
    {"kvm_page_fault", Tracepoint::PageFault},
    {"kvm_nested_vmexit", Tracepoint::NestedVmexit},
    {"kvm_nested_vmexit_inject", Tracepoint::NestedVmexitInject},
    {"kvm_nested_intr_vmexit", Tracepoint::NestedIntrVmexit},
    {"kvm_emulate_insn", Tracepoint::EmulateInsn},
    {"kvm_pio", Tracepoint::Pio},
    {"kvm_msr", Tracepoint::Msr},
    {"kvm_apic_accept_irq", Tracepoint::ApicAcceptIrq},
    {"kvm_eoi", Tracepoint::Eoi},
    {"kvm_userspace_exit", Tracepoint::UserspaceExit},
    {"kvm_mmio", Tracepoint::Mmio},
    {"kvm_nested_vmenter", Tracepoint::NestedVmenter},
    {"kvm_nested_vmrun", Tracepoint::NestedVmenter},  // its name before Linux 5.12
};

}  // namespace

Tracepoint tracepoint_from_name(std::string_view name) {
  for (const NameTracepoint& e : kTracepoints)
    if (e.name == name) return e.tp;
  return Tracepoint::None;
}

std::string_view to_string(Tracepoint e) {
  for (const NameTracepoint& n : kTracepoints)
    if (n.tp == e) return n.name;
  return e == Tracepoint::Other ? "other" : "none";
}

std::string_view to_string(ExitFormat f) {
  switch (f) {
    case ExitFormat::ReasonRipOnly: return "reason-rip";
    case ExitFormat::InfoPair: return "info-pair";
    case ExitFormat::Info1Info2: return "info1-info2";
    case ExitFormat::IntrInfo: return "intr_info";
    default: return "none";
  }
}

uint32_t kvm_exception_word(uint8_t vector, bool deliver_error_code) {
  using arch::InterruptionType;
  InterruptionType type = InterruptionType::HardwareException;
  if (vector == arch::kNMI)
    type = InterruptionType::Nmi;
  else if (vector == arch::kBP || vector == arch::kOF)
    type = InterruptionType::SoftwareException;
  return arch::EntryIntrInfo::make(vector, type, deliver_error_code).raw();
}

}  // namespace es::kvmtrace
