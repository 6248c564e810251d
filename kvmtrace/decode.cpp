#include "kvmtrace/decode.h"

#include "hv/arch/svm.h"

namespace es::kvmtrace {

DecodedExit decode_exit(const KvmEvent& e, bool svm, InfoPairMeaning meaning, bool contested) {
  const ExitFields& x = e.exit;
  DecodedExit d;
  d.svm = svm;
  d.reason = x.reason.value_or(0);
  d.rip = e.rip;
  d.qualification = x.info1.value_or(0);
  if (svm) {
    d.exit_info2 = x.info2;
    if (d.reason == static_cast<uint32_t>(arch::SvmExitCode::Npf)) d.guest_phys = x.info2;
    if (x.intr_info) {
      // EXITINTINFO in the records' VMX layout (APM 15.20 -> SDM 28.2.4): INT3 / INTO, SVM
      // exceptions (type 3), become software exceptions (type 6) as KVM requeues them.
      const uint32_t error = x.error_code.value_or(0);
      const arch::SvmEventInfo exitintinfo = arch::SvmEventInfo::from_parts(*x.intr_info, error);
      d.idt_vectoring_info = arch::to_idt_vectoring(arch::to_vmx_entry(exitintinfo)).raw();
      d.idt_vectoring_error = error;
    }
    return d;
  }
  const uint32_t info2 = static_cast<uint32_t>(x.info2.value_or(0));
  switch (x.format) {
    case ExitFormat::IntrInfo:  // 5.10+: info2 = IDT-vectoring info, intr_info = exit interruption info
      d.idt_vectoring_info = info2;
      d.exit_intr_info = x.intr_info.value_or(0);
      d.exit_intr_error = x.error_code.value_or(0);
      break;
    case ExitFormat::InfoPair:  // "info A B": meaning decided from the whole trace
      if (meaning == InfoPairMeaning::IdtVectoring)
        d.idt_vectoring_info = info2;
      else
        d.exit_intr_info = info2;  // before 5.10: VM-exit interruption info
      d.inferred = contested;
      break;
    case ExitFormat::Info1Info2:  // labels of the 5.10+ format, intr_info cut off: assume 5.10+ meaning
      d.idt_vectoring_info = info2;
      d.inferred = true;
      d.assumed_info2_vectoring = true;
      break;
    default: break;
  }
  return d;
}

}  // namespace es::kvmtrace
