#include "probes/kvm/kvm_decode.h"

#include <cstring>

#include "hv/arch/event_info.h"
#include "replay/import/kvm_fields.h"

namespace es::kvm {

namespace {

using arch::EntryIntrInfo;
using arch::InterruptionType;
using import::TraceEvent;



}  // namespace

bool Decoder::decode(const es_kvm_event& e, import::TraceLine& t) const {
  if (e.event >= ES_KVM_EV_COUNT || !layouts_[e.event]) return false;
  const EventLayout& l = *layouts_[e.event];
  if (e.raw_len < l.copy_len || e.raw_len > ES_KVM_RAW_MAX) return false;  // the probe's copy failed
  auto get = [&](Slot s) { return read_u64(e, l.at[s]); };
  t = import::TraceLine{};
  t.has_time = true;
  t.time_ns = e.time_ns;
  t.host_cpu = e.cpu;
  t.pid = static_cast<int32_t>(e.tid);
  if (l.has(kVcpu)) t.vcpu = static_cast<int32_t>(get(kVcpu) & 0xFFFF);
  if (l.has(kRip)) {
    t.rip = get(kRip);
    t.has_rip = true;
  }
  switch (e.event) {
    case ES_KVM_EV_EXIT:
    case ES_KVM_EV_NESTED_VMEXIT:
    case ES_KVM_EV_NESTED_VMEXIT_INJECT:
      t.event = e.event == ES_KVM_EV_EXIT           ? TraceEvent::Exit
                : e.event == ES_KVM_EV_NESTED_VMEXIT ? TraceEvent::NestedVmexit
                                                     : TraceEvent::NestedVmexitInject;
      // VMX: the full 32-bit exit reason (basic reason + failed-VM-entry flag, SDM Vol. 3C
      // 25.9.1 "Basic VM-Exit Information"); SVM: the EXITCODE (AMD APM Vol. 2 Appendix C).
      // One rule with the trace.dat reader (kvm_fields.h): SVM when isa is KVM_ISA_SVM. The three
      // events all carry isa; kvm_nested_intr_vmexit, which has none, is traced by SVM only and
      // the linker gives it SVM's meaning.
      t.svm = get(kIsa) == import::kIsaSvm;
      t.reason = static_cast<uint32_t>(get(kReason));
      t.reason_known = true;
      t.info1 = get(kInfo1);
      t.info2 = get(kInfo2);
      t.has_info2 = true;
      if (l.has(kIntrInfo)) {
        t.has_intr_info = true;
        t.intr_info = static_cast<uint32_t>(get(kIntrInfo));
        t.error_code = static_cast<uint32_t>(get(kErrorCode));
        t.exit_format = import::ExitFormat::IntrInfo;
      } else {
        t.exit_format = import::ExitFormat::InfoPair;  // before 5.10: info2 = VM-exit intr info on VMX
      }
      break;
    case ES_KVM_EV_NESTED_INTR_VMEXIT: t.event = TraceEvent::NestedIntrVmexit; break;
    case ES_KVM_EV_ENTRY:
      t.event = TraceEvent::Entry;
      t.immediate_exit = get(kImmediateExit) != 0;
      if (l.has(kIntrInfo)) {  // 6.14+: the VM-entry interruption info KVM wrote
        t.has_intr_info = true;
        t.event_word = static_cast<uint32_t>(get(kIntrInfo));
        t.event_error = static_cast<uint32_t>(get(kErrorCode));
      }
      break;
    case ES_KVM_EV_INJ_VIRQ: {
      t.event = TraceEvent::InjVirq;
      const bool soft = get(kSoft) != 0;
      t.event_word = EntryIntrInfo::make(static_cast<uint8_t>(get(kVector)),
                                         soft ? InterruptionType::SoftwareInterrupt
                                              : InterruptionType::ExternalInterrupt)
                         .raw();
      t.reinjected = get(kReinjected) != 0;
      t.reinjected_printed_era = l.has(kReinjected);
      break;
    }
    case ES_KVM_EV_INJ_EXCEPTION: {
      t.event = TraceEvent::InjException;
      const uint8_t v = static_cast<uint8_t>(get(kException));
      const bool has_error = get(kHasError) != 0;
      t.event_word = import::kvm_exception_word(v, has_error);
      t.event_error = has_error ? static_cast<uint32_t>(get(kErrorCode)) : 0;
      t.reinjected = get(kReinjected) != 0;
      t.reinjected_printed_era = l.has(kReinjected);
      break;
    }
    case ES_KVM_EV_PAGE_FAULT:
      t.event = TraceEvent::PageFault;
      t.a = get(kAddress);
      // All 64 bits (u64 since 6.4): KVM's PFERR_GUEST_FINAL / PFERR_GUEST_PAGE are bits 32 / 33.
      // The linker keeps them in the record's aux64 (record.h ES_CONTEXT_PAGE_FAULT); no RIP
      // here (the BTF program does not read it) is recorded as unknown, not 0.
      t.b = get(kErrorCode);
      break;
    case ES_KVM_EV_EMULATE_INSN: {
      t.event = TraceEvent::EmulateInsn;
      const uint8_t len = static_cast<uint8_t>(get(kLen));
      const FieldLoc& insn = l.at[kInsn];
      t.byte_count = static_cast<uint8_t>(len <= insn.size ? len : insn.size);
      std::memcpy(t.bytes, e.raw + insn.offset, t.byte_count);
      t.flag = get(kFailed) != 0;
      break;
    }
    case ES_KVM_EV_PIO:
      t.event = TraceEvent::Pio;
      t.flag = get(kRw) != 0;
      t.a = get(kPort);
      t.b = get(kVal);
      t.c = static_cast<uint32_t>(get(kSize));
      break;
    case ES_KVM_EV_MSR:
      t.event = TraceEvent::Msr;
      t.flag = get(kWrite) != 0;
      t.a = get(kEcx);
      t.b = get(kData);
      t.c = get(kException) != 0 ? 1 : 0;
      break;
    case ES_KVM_EV_APIC_ACCEPT_IRQ:
    case ES_KVM_EV_EOI:
      t.event = e.event == ES_KVM_EV_EOI ? TraceEvent::Eoi : TraceEvent::ApicAcceptIrq;
      t.a = get(kApicid);
      t.b = get(kVector) & 0xFF;
      break;
    case ES_KVM_EV_MMIO:
      // KVM_TRACE_MMIO_READ_UNSATISFIED 0, _READ 1, _WRITE 2 (include/trace/events/kvm.h)
      t.event = TraceEvent::Mmio;
      t.d = static_cast<uint32_t>(get(kType));
      t.flag = t.d == 2;
      t.c = static_cast<uint32_t>(get(kLen));
      t.a = get(kGpa);
      t.b = get(kVal);
      break;
    case ES_KVM_EV_NESTED_VMENTER:
      // The same TraceLine as kvm_fields.h fills from trace.dat (one meaning for every source):
      // rip = L2's RIP (nested_rip), a = the VMCB / VMCS12, b = L1's RIP, c = int_ctl,
      // event_word = event_inj as L1 wrote it (SVM EVENTINJ or vmcs12 VM-entry intr info).
      t.event = TraceEvent::NestedVmenter;
      t.b = t.rip;
      t.rip = get(kNestedRip);
      t.has_rip = true;
      t.a = get(kVmcb);
      t.c = static_cast<uint32_t>(get(kIntCtl));
      t.event_word = static_cast<uint32_t>(get(kEventInj));
      t.svm = !l.has(kIsa) || get(kIsa) == import::kIsaSvm;
      break;
    case ES_KVM_EV_USERSPACE_EXIT:
      t.event = TraceEvent::UserspaceExit;
      t.a = get(kReason);  // KVM_EXIT_* (include/uapi/linux/kvm.h)
      t.b = get(kErrno);   // sign-extended: negative when KVM_RUN returned an error
      break;
    default: return false;
  }
  return true;
}

}  // namespace es::kvm
