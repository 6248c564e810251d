#include "probes/kvm/kvm_decode.h"

#include <cstring>

#include "hv/arch/event_info.h"

namespace es::kvm {

using arch::EntryIntrInfo;
using arch::InterruptionType;
using kvmtrace::Injection;
using kvmtrace::Isa;
using kvmtrace::Tracepoint;

bool Decoder::decode(const es_kvm_event& e, kvmtrace::KvmEvent& t) const {
  if (e.event >= ES_KVM_EV_COUNT || !layouts_[e.event]) return false;
  const EventLayout& l = *layouts_[e.event];
  if (e.raw_len < l.copy_len || e.raw_len > ES_KVM_RAW_MAX) return false;  // the probe's copy failed
  auto get = [&](Slot s) { return read_u64(e, l.at[s]); };
  t = kvmtrace::KvmEvent{};
  t.host_cpu = e.cpu;
  t.pid = static_cast<int32_t>(e.tid);
  if (l.has(kVcpu)) t.vcpu = static_cast<int32_t>(get(kVcpu) & 0xFFFF);
  if (l.has(kRip)) t.rip = get(kRip);
  switch (e.event) {
    case ES_KVM_EV_EXIT:
    case ES_KVM_EV_NESTED_VMEXIT:
    case ES_KVM_EV_NESTED_VMEXIT_INJECT:
      t.event = e.event == ES_KVM_EV_EXIT            ? Tracepoint::Exit
                : e.event == ES_KVM_EV_NESTED_VMEXIT ? Tracepoint::NestedVmexit
                                                     : Tracepoint::NestedVmexitInject;
      // VMX: the full 32-bit exit reason (basic reason + failed-VM-entry flag, SDM Vol. 3C
      // 25.9.1 "Basic VM-Exit Information"); SVM: the EXITCODE (AMD APM Vol. 2 Appendix C).
      // One rule with the trace.dat reader (kvmtrace/fields.h): SVM when isa is KVM_ISA_SVM. The
      // three events all carry isa; kvm_nested_intr_vmexit, which has none, is traced by SVM only
      // and the linker gives it SVM's meaning.
      t.exit.isa = get(kIsa) == kvmtrace::kIsaSvm ? Isa::Svm : Isa::Vmx;
      t.exit.reason = static_cast<uint32_t>(get(kReason));
      t.exit.info1 = get(kInfo1);
      t.exit.info2 = get(kInfo2);
      if (l.has(kIntrInfo)) {
        t.exit.intr_info = static_cast<uint32_t>(get(kIntrInfo));
        t.exit.error_code = static_cast<uint32_t>(get(kErrorCode));
        t.exit.format = kvmtrace::ExitFormat::IntrInfo;
      } else {
        t.exit.format = kvmtrace::ExitFormat::InfoPair;  // before 5.10: info2 = VM-exit intr info on VMX
      }
      break;
    case ES_KVM_EV_NESTED_INTR_VMEXIT: t.event = Tracepoint::NestedIntrVmexit; break;
    case ES_KVM_EV_ENTRY:
      t.event = Tracepoint::Entry;
      t.immediate_exit = get(kImmediateExit) != 0;
      if (l.has(kIntrInfo))  // 6.14+: the VM-entry interruption info KVM wrote
        t.injected = Injection{static_cast<uint32_t>(get(kIntrInfo)), static_cast<uint32_t>(get(kErrorCode))};
      break;
    case ES_KVM_EV_INJ_VIRQ: {
      t.event = Tracepoint::InjVirq;
      const bool soft = get(kSoft) != 0;
      Injection& in = t.injected.emplace();
      in.word = EntryIntrInfo::make(static_cast<uint8_t>(get(kVector)),
                                    soft ? InterruptionType::SoftwareInterrupt : InterruptionType::ExternalInterrupt)
                    .raw();
      in.reinjected = get(kReinjected) != 0;
      in.reinjected_printed_era = l.has(kReinjected);
      break;
    }
    case ES_KVM_EV_INJ_EXCEPTION: {
      t.event = Tracepoint::InjException;
      const uint8_t v = static_cast<uint8_t>(get(kException));
      const bool has_error = get(kHasError) != 0;
      Injection& in = t.injected.emplace();
      in.word = kvmtrace::kvm_exception_word(v, has_error);
      in.error_code = has_error ? static_cast<uint32_t>(get(kErrorCode)) : 0;
      in.reinjected = get(kReinjected) != 0;
      in.reinjected_printed_era = l.has(kReinjected);
      break;
    }
    case ES_KVM_EV_PAGE_FAULT: {
      t.event = Tracepoint::PageFault;
      auto& pf = t.fields<kvmtrace::KvmEvent::PageFault>();
      pf.address = get(kAddress);
      // All 64 bits (u64 since 6.4): KVM's PFERR_GUEST_FINAL / PFERR_GUEST_PAGE are bits 32 / 33.
      // The linker keeps them in the record's aux64 (record.h ES_CONTEXT_PAGE_FAULT); no RIP
      // here (the BTF program does not read it) is recorded as unknown, not 0.
      pf.error_code = get(kErrorCode);
      break;
    }
    case ES_KVM_EV_EMULATE_INSN: {
      t.event = Tracepoint::EmulateInsn;
      const uint8_t len = static_cast<uint8_t>(get(kLen));
      const FieldLoc& insn = l.at[kInsn];
      auto& em = t.fields<kvmtrace::KvmEvent::EmulateInsn>();
      em.byte_count = static_cast<uint8_t>(len <= insn.size ? len : insn.size);
      if (em.byte_count > sizeof em.bytes) em.byte_count = sizeof em.bytes;
      std::memcpy(em.bytes, e.raw + insn.offset, em.byte_count);
      em.failed = get(kFailed) != 0;
      break;
    }
    case ES_KVM_EV_PIO: {
      t.event = Tracepoint::Pio;
      auto& pio = t.fields<kvmtrace::KvmEvent::Pio>();
      pio.write = get(kRw) != 0;
      pio.port = get(kPort);
      pio.value = get(kVal);
      pio.size = static_cast<uint32_t>(get(kSize));
      break;
    }
    case ES_KVM_EV_MSR: {
      t.event = Tracepoint::Msr;
      auto& msr = t.fields<kvmtrace::KvmEvent::Msr>();
      msr.write = get(kWrite) != 0;
      msr.index = get(kEcx);
      msr.data = get(kData);
      msr.gp_fault = get(kException) != 0;
      break;
    }
    case ES_KVM_EV_APIC_ACCEPT_IRQ:
    case ES_KVM_EV_EOI: {
      t.event = e.event == ES_KVM_EV_EOI ? Tracepoint::Eoi : Tracepoint::ApicAcceptIrq;
      auto& apic = t.fields<kvmtrace::KvmEvent::ApicIrq>();
      apic.apicid = get(kApicid);
      apic.vector = static_cast<uint8_t>(get(kVector) & 0xFF);
      break;
    }
    case ES_KVM_EV_MMIO: {
      // KVM_TRACE_MMIO_READ_UNSATISFIED 0, _READ 1, _WRITE 2 (include/trace/events/kvm.h)
      t.event = Tracepoint::Mmio;
      auto& mmio = t.fields<kvmtrace::KvmEvent::Mmio>();
      mmio.type = static_cast<uint32_t>(get(kType));
      mmio.len = static_cast<uint32_t>(get(kLen));
      mmio.gpa = get(kGpa);
      mmio.value = get(kVal);
      break;
    }
    case ES_KVM_EV_NESTED_VMENTER: {
      // The same fields as kvmtrace/fields.h fills from trace.dat (one meaning for every source):
      // rip = L2's RIP (nested_rip), the VMCB / VMCS12, L1's RIP, int_ctl, and event_inj as L1
      // wrote it (SVM EVENTINJ or vmcs12 VM-entry intr info).
      t.event = Tracepoint::NestedVmenter;
      auto& nv = t.fields<kvmtrace::KvmEvent::NestedVmenter>();
      nv.l1_rip = t.rip.value_or(0);
      t.rip = get(kNestedRip);
      nv.vmcb = get(kVmcb);
      nv.int_ctl = static_cast<uint32_t>(get(kIntCtl));
      t.injected = Injection{static_cast<uint32_t>(get(kEventInj)), 0};
      nv.isa = !l.has(kIsa) || get(kIsa) == kvmtrace::kIsaSvm ? Isa::Svm : Isa::Vmx;
      break;
    }
    case ES_KVM_EV_USERSPACE_EXIT: {
      t.event = Tracepoint::UserspaceExit;
      auto& ue = t.fields<kvmtrace::KvmEvent::UserspaceExit>();
      ue.reason = get(kReason);                      // KVM_EXIT_* (include/uapi/linux/kvm.h)
      ue.error = static_cast<int64_t>(get(kErrno));  // sign-extended: negative when KVM_RUN failed
      break;
    }
    default: return false;
  }
  return true;
}

}  // namespace es::kvm
