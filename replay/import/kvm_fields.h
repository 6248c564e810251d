// The fields of the x86 KVM tracepoints (arch/x86/kvm/trace.h) by name, and how each event's
// fields become an es::import::TraceLine. One mapping for every source that has the fields
// themselves rather than their print format: trace.dat records (libtraceevent) and trace text
// that libtraceevent could not format ("[FAILED TO PARSE] exception=6 has_error=0 ...").
// Which fields an event has is its kernel era, as the print format is for text.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"
#include "replay/import/trace_text.h"

namespace es::import {

enum Field : uint8_t {
  fExitReason, fGuestRip, fIsa, fInfo1, fInfo2, fIntrInfo, fErrorCode, fVcpuId, fRip, fImmediateExit,
  fIrq, fVector, fSoft, fReinjected, fException, fHasError, fFaultAddress, fLen, fInsn, fFailed,
  fRw, fPort, fSize, fVal, fWrite, fEcx, fData, fApicid, fVec, fReason, fErrno, fExitCode,
  fExitInfo1, fExitInfo2, fExitIntInfo, fExitIntInfoErr, fType, fGpa, fVmcb, fNestedRip, fIntCtl, fEventInj,
  kFieldCount
};
inline constexpr std::array<const char*, kFieldCount> kFieldNames = {
    "exit_reason", "guest_rip", "isa", "info1", "info2", "intr_info", "error_code", "vcpu_id", "rip",
    "immediate_exit", "irq", "vector", "soft", "reinjected", "exception", "has_error", "fault_address", "len",
    "insn", "failed", "rw", "port", "size", "val", "write", "ecx", "data", "apicid", "vec", "reason", "errno",
    "exit_code", "exit_info1", "exit_info2", "exit_int_info", "exit_int_info_err", "type", "gpa", "vmcb",
    "nested_rip", "int_ctl", "event_inj"};

inline std::optional<Field> field_by_name(std::string_view name) {
  for (size_t i = 0; i < kFieldCount; ++i)
    if (name == kFieldNames[i]) return static_cast<Field>(i);
  return std::nullopt;
}

// arch/x86/kvm/trace.h: KVM_ISA_VMX 1, KVM_ISA_SVM 2 (kvm_exit's `isa`).
inline constexpr uint64_t kIsaSvm = 2;

// kvm_exit / kvm_nested_vmexit(_inject) era by its fields: intr_info since 5.10 (the nested
// events before 6.x: exit_int_info), info1 / info2 before, neither in very old kernels.
template <typename Fields>
ExitFormat exit_format_of(const Fields& f) {
  if (f.has(fIntrInfo) || f.has(fExitIntInfo)) return ExitFormat::IntrInfo;
  if (f.has(fInfo2) || f.has(fExitInfo2)) return ExitFormat::InfoPair;
  return ExitFormat::ReasonRipOnly;
}

// Fills `t` (event-specific part; the caller sets event, time, CPU, pid) from the fields of one
// `ev` event. `Fields` provides has(Field), get(Field) -> uint64_t (signed fields sign-extended)
// and bytes(Field, uint8_t* out, size_t max) -> size_t for arrays. False if a field the event
// cannot do without is missing.
template <typename Fields>
bool fill_from_fields(TraceEvent ev, const Fields& f, TraceLine& t) {
  using arch::EntryIntrInfo;
  using arch::InterruptionType;
  if (f.has(fVcpuId)) t.vcpu = static_cast<int32_t>(f.get(fVcpuId) & 0xFFFF);
  switch (ev) {
    case TraceEvent::Exit:
    case TraceEvent::NestedVmexit:
    case TraceEvent::NestedVmexitInject: {
      const bool old_nested = f.has(fExitCode);  // "rip: .. reason: .. ext_inf1: ..": kvm_nested_* before 6.x
      if (!f.has(old_nested ? fExitCode : fExitReason)) return false;
      t.reason = static_cast<uint32_t>(f.get(old_nested ? fExitCode : fExitReason));
      t.reason_known = true;
      // VMX: the full 32-bit exit reason (SDM Vol. 3C 28.2.1 "Basic VM-Exit Information");
      // SVM: the EXITCODE (AMD APM Vol. 2 Appendix C). Without `isa`, VMX is assumed.
      t.svm = f.has(fIsa) && f.get(fIsa) == kIsaSvm;
      if (f.has(old_nested ? fRip : fGuestRip)) {
        t.rip = f.get(old_nested ? fRip : fGuestRip);
        t.has_rip = true;
      }
      t.info1 = f.get(old_nested ? fExitInfo1 : fInfo1);
      t.info2 = f.get(old_nested ? fExitInfo2 : fInfo2);
      t.has_info2 = f.has(old_nested ? fExitInfo2 : fInfo2);
      t.exit_format = exit_format_of(f);
      if (t.exit_format == ExitFormat::IntrInfo) {
        t.has_intr_info = true;
        t.intr_info = static_cast<uint32_t>(f.get(old_nested ? fExitIntInfo : fIntrInfo));
        t.error_code = static_cast<uint32_t>(f.get(old_nested ? fExitIntInfoErr : fErrorCode));
      }
      return true;
    }
    case TraceEvent::NestedIntrVmexit:
      t.rip = f.get(fRip);
      t.has_rip = f.has(fRip);
      return true;
    case TraceEvent::Entry:
      if (f.has(fRip)) {
        t.rip = f.get(fRip);
        t.has_rip = true;
      }
      t.immediate_exit = f.get(fImmediateExit) != 0;
      if (f.has(fIntrInfo)) {  // 6.14+: the VM-entry interruption information KVM wrote
        t.has_intr_info = true;
        t.event_word = static_cast<uint32_t>(f.get(fIntrInfo));
        t.event_error = static_cast<uint32_t>(f.get(fErrorCode));
      }
      return true;
    case TraceEvent::InjVirq: {
      // Before 6.0 the only field is `irq`; then `vector`, `soft` and `reinjected`.
      if (!f.has(fIrq) && !f.has(fVector)) return false;
      const uint8_t v = static_cast<uint8_t>(f.get(f.has(fVector) ? fVector : fIrq));
      const bool soft = f.get(fSoft) != 0;
      t.event_word =
          EntryIntrInfo::make(v, soft ? InterruptionType::SoftwareInterrupt : InterruptionType::ExternalInterrupt)
              .raw();
      t.reinjected = f.get(fReinjected) != 0;
      t.reinjected_printed_era = f.has(fReinjected);
      return true;
    }
    case TraceEvent::InjException: {
      if (!f.has(fException)) return false;
      const uint8_t v = static_cast<uint8_t>(f.get(fException));
      // has_error is what KVM delivers (none in real mode even for #GP); without the field,
      // the vector's architectural property (SDM Vol. 3A 6.13 "Error Code").
      const bool has_error = f.has(fHasError) ? f.get(fHasError) != 0 : arch::exception_has_error_code(v);
      t.event_word = kvm_exception_word(v, has_error);
      t.event_error = has_error ? static_cast<uint32_t>(f.get(fErrorCode)) : 0;
      t.reinjected = f.get(fReinjected) != 0;
      t.reinjected_printed_era = f.has(fReinjected);
      return true;
    }
    case TraceEvent::PageFault:
      if (!f.has(fFaultAddress)) return false;
      t.a = f.get(fFaultAddress);
      t.b = f.get(fErrorCode);
      if (f.has(fGuestRip)) {
        t.rip = f.get(fGuestRip);
        t.has_rip = true;
      }
      return true;
    case TraceEvent::EmulateInsn: {
      t.rip = f.get(fRip);
      t.has_rip = f.has(fRip);
      if (f.has(fInsn)) {
        uint8_t insn[sizeof t.bytes] = {};
        const size_t have = f.bytes(fInsn, insn, sizeof insn);
        const size_t n = std::min<size_t>(static_cast<size_t>(f.get(fLen)), have);
        std::memcpy(t.bytes, insn, n);
        t.byte_count = static_cast<uint8_t>(n);
      }
      t.flag = f.get(fFailed) != 0;
      return true;
    }
    case TraceEvent::Pio:
      if (!f.has(fPort)) return false;
      t.flag = f.get(fRw) != 0;
      t.a = f.get(fPort);
      t.b = f.get(fVal);  // absent before 4.x
      t.c = static_cast<uint32_t>(f.get(fSize));
      return true;
    case TraceEvent::Msr:
      if (!f.has(fEcx)) return false;
      t.flag = f.get(fWrite) != 0;
      t.a = f.get(fEcx);
      t.b = f.get(fData);
      t.c = f.get(fException) != 0 ? 1 : 0;
      return true;
    case TraceEvent::ApicAcceptIrq:
    case TraceEvent::Eoi:
      t.a = f.get(fApicid);
      t.b = f.get(ev == TraceEvent::Eoi ? fVector : fVec) & 0xFF;
      return true;
    case TraceEvent::UserspaceExit: {
      const int64_t err = static_cast<int64_t>(f.get(fErrno));
      t.a = f.get(fReason);
      t.b = static_cast<uint64_t>(err);
      t.flag = err < 0;
      return true;
    }
    case TraceEvent::Mmio:
      t.d = static_cast<uint32_t>(f.get(fType));
      t.flag = t.d == 2;
      t.c = static_cast<uint32_t>(f.get(fLen));
      t.a = f.get(fGpa);
      t.b = f.get(fVal);
      return true;
    case TraceEvent::NestedVmenter:
      // kvm_nested_vmenter (kvm_nested_vmrun before 5.12): L1's VMRUN / VMLAUNCH as KVM emulates it.
      // event_inj: vmcb12's EVENTINJ (AMD APM Vol. 2 15.20 "Event Injection") or vmcs12's VM-entry
      // interruption information (SDM Vol. 3C 25.8.3): what L1 asks to inject into L2.
      if (!f.has(fVmcb) || !f.has(fEventInj)) return false;
      t.a = f.get(fVmcb);
      t.b = f.get(fRip);
      t.rip = f.get(fNestedRip);
      t.has_rip = f.has(fNestedRip);
      t.c = static_cast<uint32_t>(f.get(fIntCtl));
      t.event_word = static_cast<uint32_t>(f.get(fEventInj));
      t.svm = !f.has(fIsa) || f.get(fIsa) == kIsaSvm;  // kvm_nested_vmrun (no isa) was SVM's alone
      return true;
    default: return true;  // another event: context
  }
}

}  // namespace es::import
