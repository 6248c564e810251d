// The fields of the x86 KVM tracepoints (arch/x86/kvm/trace.h) by name, and how each event's
// fields become a KvmEvent. One mapping for every source that has the fields themselves rather
// than their print format: trace.dat records (libtraceevent), trace text that libtraceevent could
// not format ("[FAILED TO PARSE] exception=6 has_error=0 ...") and live eBPF records (the
// running kernel's tracefs offsets, probes/kvm/kvm_decode.cpp). Which fields an event has is its
// kernel era, as the print format is for text.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"
#include "kvmtrace/event.h"

namespace es::kvmtrace {

enum Field : uint8_t {
  fExitReason,
  fGuestRip,
  fIsa,
  fInfo1,
  fInfo2,
  fIntrInfo,
  fErrorCode,
  fVcpuId,
  fRip,
  fImmediateExit,
  fIrq,
  fVector,
  fSoft,
  fReinjected,
  fException,
  fHasError,
  fFaultAddress,
  fLen,
  fInsn,
  fFailed,
  fRw,
  fPort,
  fSize,
  fVal,
  fWrite,
  fEcx,
  fData,
  fApicid,
  fVec,
  fReason,
  fErrno,
  fExitCode,
  fExitInfo1,
  fExitInfo2,
  fExitIntInfo,
  fExitIntInfoErr,
  fType,
  fGpa,
  fVmcb,
  fNestedRip,
  fIntCtl,
  fEventInj,
  kFieldCount
};
inline constexpr std::array<const char*, kFieldCount> kFieldNames = {
    "exit_reason", "guest_rip",  "isa",        "info1",          "info2",         "intr_info",
    "error_code",  "vcpu_id",    "rip",        "immediate_exit", "irq",           "vector",
    "soft",        "reinjected", "exception",  "has_error",      "fault_address", "len",
    "insn",        "failed",     "rw",         "port",           "size",          "val",
    "write",       "ecx",        "data",       "apicid",         "vec",           "reason",
    "errno",       "exit_code",  "exit_info1", "exit_info2",     "exit_int_info", "exit_int_info_err",
    "type",        "gpa",        "vmcb",       "nested_rip",     "int_ctl",       "event_inj"};

inline std::optional<Field> field_by_name(std::string_view name) {
  for (size_t i = 0; i < kFieldCount; ++i)
    if (name == kFieldNames[i]) return static_cast<Field>(i);
  return std::nullopt;
}

// kvm_exit / kvm_nested_vmexit(_inject) era by its fields: intr_info since 5.10 (the nested
// events before 6.x: exit_int_info), info1 / info2 before, neither in very old kernels.
template <typename Fields>
ExitFormat exit_format_of(const Fields& f) {
  if (f.has(fIntrInfo) || f.has(fExitIntInfo)) return ExitFormat::IntrInfo;
  if (f.has(fInfo2) || f.has(fExitInfo2)) return ExitFormat::InfoPair;
  return ExitFormat::ReasonRipOnly;
}

// Fills `t` (event-specific part; the caller sets event, CPU, pid) from the fields of one `ev`
// event. `Fields` provides has(Field), get(Field) -> uint64_t (signed fields sign-extended) and
// bytes(Field, uint8_t* out, size_t max) -> size_t for arrays. False if a field the event cannot
// do without is missing.
template <typename Fields>
bool fill_from_fields(Tracepoint ev, const Fields& f, KvmEvent& t) {
  using arch::EntryIntrInfo;
  using arch::InterruptionType;
  const auto opt = [&](Field x) { return f.has(x) ? std::optional<uint64_t>(f.get(x)) : std::nullopt; };
  const auto opt32 = [&](Field x) {
    return f.has(x) ? std::optional<uint32_t>(static_cast<uint32_t>(f.get(x))) : std::nullopt;
  };
  if (f.has(fVcpuId)) t.vcpu = static_cast<int32_t>(f.get(fVcpuId) & 0xFFFF);
  switch (ev) {
    case Tracepoint::Exit:
    case Tracepoint::NestedVmexit:
    case Tracepoint::NestedVmexitInject: {
      const bool old_nested = f.has(fExitCode);  // "rip: .. reason: .. ext_inf1: ..": kvm_nested_* before 6.x
      ExitFields& x = t.exit;
      x.reason = opt32(old_nested ? fExitCode : fExitReason);
      if (!x.reason) return false;
      // Without `isa` (kernels before it was added), VMX is assumed.
      x.isa = f.has(fIsa) && f.get(fIsa) == kIsaSvm ? Isa::Svm : Isa::Vmx;
      t.rip = opt(old_nested ? fRip : fGuestRip);
      x.info1 = opt(old_nested ? fExitInfo1 : fInfo1);
      x.info2 = opt(old_nested ? fExitInfo2 : fInfo2);
      x.format = exit_format_of(f);
      if (x.format == ExitFormat::IntrInfo) {
        x.intr_info = opt32(old_nested ? fExitIntInfo : fIntrInfo);
        x.error_code = static_cast<uint32_t>(f.get(old_nested ? fExitIntInfoErr : fErrorCode));
      }
      return true;
    }
    case Tracepoint::NestedIntrVmexit: t.rip = opt(fRip); return true;
    case Tracepoint::Entry:
      t.rip = opt(fRip);
      t.immediate_exit = f.get(fImmediateExit) != 0;
      if (f.has(fIntrInfo))  // 6.14+: the VM-entry interruption information KVM wrote
        t.injected = Injection{static_cast<uint32_t>(f.get(fIntrInfo)), static_cast<uint32_t>(f.get(fErrorCode))};
      return true;
    case Tracepoint::InjVirq: {
      // Before 6.0 the only field is `irq`; then `vector`, `soft` and `reinjected`.
      if (!f.has(fIrq) && !f.has(fVector)) return false;
      const uint8_t v = static_cast<uint8_t>(f.get(f.has(fVector) ? fVector : fIrq));
      const bool soft = f.get(fSoft) != 0;
      Injection& in = t.injected.emplace();
      in.word = EntryIntrInfo::make(v, soft ? InterruptionType::SoftwareInterrupt : InterruptionType::ExternalInterrupt)
                    .raw();
      in.reinjected = f.get(fReinjected) != 0;
      in.reinjected_printed_era = f.has(fReinjected);
      return true;
    }
    case Tracepoint::InjException: {
      if (!f.has(fException)) return false;
      const uint8_t v = static_cast<uint8_t>(f.get(fException));
      // has_error is what KVM delivers (none in real mode even for #GP); without the field,
      // the vector's architectural property (SDM Vol. 3A 6.13 "Error Code").
      const bool has_error = f.has(fHasError) ? f.get(fHasError) != 0 : arch::exception_has_error_code(v);
      Injection& in = t.injected.emplace();
      in.word = kvm_exception_word(v, has_error);
      in.error_code = has_error ? static_cast<uint32_t>(f.get(fErrorCode)) : 0;
      in.reinjected = f.get(fReinjected) != 0;
      in.reinjected_printed_era = f.has(fReinjected);
      return true;
    }
    case Tracepoint::PageFault: {
      if (!f.has(fFaultAddress)) return false;
      auto& pf = t.fields<KvmEvent::PageFault>();
      pf.address = f.get(fFaultAddress);
      pf.error_code = f.get(fErrorCode);  // all 64 bits
      t.rip = opt(fGuestRip);
      return true;
    }
    case Tracepoint::EmulateInsn: {
      t.rip = opt(fRip);
      auto& em = t.fields<KvmEvent::EmulateInsn>();
      if (f.has(fInsn)) {
        uint8_t insn[sizeof em.bytes] = {};
        const size_t have = f.bytes(fInsn, insn, sizeof insn);
        const size_t n = std::min<size_t>(static_cast<size_t>(f.get(fLen)), have);
        std::memcpy(em.bytes, insn, n);
        em.byte_count = static_cast<uint8_t>(n);
      }
      em.failed = f.get(fFailed) != 0;
      return true;
    }
    case Tracepoint::Pio: {
      if (!f.has(fPort)) return false;
      auto& pio = t.fields<KvmEvent::Pio>();
      pio.write = f.get(fRw) != 0;
      pio.port = f.get(fPort);
      pio.value = f.get(fVal);  // absent before 4.x
      pio.size = static_cast<uint32_t>(f.get(fSize));
      return true;
    }
    case Tracepoint::Msr: {
      if (!f.has(fEcx)) return false;
      auto& msr = t.fields<KvmEvent::Msr>();
      msr.write = f.get(fWrite) != 0;
      msr.index = f.get(fEcx);
      msr.data = f.get(fData);
      msr.gp_fault = f.get(fException) != 0;
      return true;
    }
    case Tracepoint::ApicAcceptIrq:
    case Tracepoint::Eoi: {
      auto& apic = t.fields<KvmEvent::ApicIrq>();
      apic.apicid = f.get(fApicid);
      apic.vector = static_cast<uint8_t>(f.get(ev == Tracepoint::Eoi ? fVector : fVec) & 0xFF);
      return true;
    }
    case Tracepoint::UserspaceExit: {
      auto& ue = t.fields<KvmEvent::UserspaceExit>();
      ue.reason = f.get(fReason);
      ue.error = static_cast<int64_t>(f.get(fErrno));  // sign-extended
      return true;
    }
    case Tracepoint::Mmio: {
      auto& mmio = t.fields<KvmEvent::Mmio>();
      mmio.type = static_cast<uint32_t>(f.get(fType));
      mmio.len = static_cast<uint32_t>(f.get(fLen));
      mmio.gpa = f.get(fGpa);
      mmio.value = f.get(fVal);
      return true;
    }
    case Tracepoint::NestedVmenter: {
      // kvm_nested_vmenter (kvm_nested_vmrun before 5.12): L1's VMRUN / VMLAUNCH as KVM emulates it.
      // event_inj: vmcb12's EVENTINJ (AMD APM Vol. 2 15.20 "Event Injection") or vmcs12's VM-entry
      // interruption information (SDM Vol. 3C 25.8.3): what L1 asks to inject into L2.
      if (!f.has(fVmcb) || !f.has(fEventInj)) return false;
      auto& nv = t.fields<KvmEvent::NestedVmenter>();
      nv.vmcb = f.get(fVmcb);
      nv.l1_rip = f.get(fRip);
      t.rip = opt(fNestedRip);
      nv.int_ctl = static_cast<uint32_t>(f.get(fIntCtl));
      t.injected = Injection{static_cast<uint32_t>(f.get(fEventInj)), 0};
      // kvm_nested_vmrun (no isa) was SVM's alone.
      nv.isa = !f.has(fIsa) || f.get(fIsa) == kIsaSvm ? Isa::Svm : Isa::Vmx;
      return true;
    }
    default: return true;  // another event: context
  }
}

}  // namespace es::kvmtrace
