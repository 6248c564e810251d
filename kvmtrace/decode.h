// What a kvm_exit / kvm_nested_vmexit / kvm_nested_vmexit_inject event says in hardware terms,
// by vendor and era: the one place where info1 / info2 / intr_info get their meaning.
//
//   VMX, 5.10+ (intr_info printed): info1 = exit qualification, info2 = IDT-vectoring info,
//     intr_info / error_code = VM-exit interruption info and its error code.
//   VMX before 5.10 ("info A B", fields info1 / info2 only): info2 = VM-exit interruption info;
//     but trace-cmd's kvm plugin prints "info A B" on every kernel, so for text the meaning is
//     decided from the evidence of the whole trace (kvmtrace::EraEvidence, era.h).
//   SVM, every era: info1 / info2 = EXITINFO1 / EXITINFO2 (an NPF's GPA in EXITINFO2),
//     intr_info / error_code = EXITINTINFO and its error code: the event being delivered
//     (AMD APM Vol. 2 15.7.2 "Exit Int Info"), in the records' IDT-vectoring layout.
#pragma once

#include <cstdint>
#include <optional>

#include "kvmtrace/event.h"

namespace es::kvmtrace {

// kvm_exit "info A B" on VMX: before 5.10 info2 is the VM-exit interruption info, from 5.10 the
// IDT-vectoring info. Undecided: nothing told (the older meaning is taken).
enum class InfoPairMeaning : uint8_t { Undecided, ExitIntrInfo, IdtVectoring };

struct DecodedExit {
  bool svm = false;
  uint32_t reason = 0;                 // VMX: full 32-bit exit reason; SVM: EXITCODE
  std::optional<uint64_t> rip;         // guest RIP; nullopt: the event did not say
  uint64_t qualification = 0;          // VMX exit qualification / SVM EXITINFO1 (0 when not printed)
  std::optional<uint64_t> exit_info2;  // SVM EXITINFO2
  std::optional<uint64_t> guest_phys;  // SVM NPF: the faulting GPA (EXITINFO2)
  // SDM Vol. 3C 28.2.4 "Information for VM Exits That Occur During Event Delivery" (VMX) /
  // EXITINTINFO converted to that layout (SVM): nullopt when the trace does not carry it.
  std::optional<uint32_t> idt_vectoring_info;
  uint32_t idt_vectoring_error = 0;
  // SDM Vol. 3C 28.2.2 "Information for VM Exits Due to Vectored Events" (VMX only).
  std::optional<uint32_t> exit_intr_info;
  uint32_t exit_intr_error = 0;
  // The meaning of info2 was assumed (labels without intr_info) or contested (the trace
  // contradicts itself): the record is marked inferred.
  bool inferred = false;
  bool assumed_info2_vectoring = false;  // Info1Info2: info2 taken as IDT-vectoring info (5.10+ meaning)
};

// `svm`: the vendor to decode with (an exit whose isa is unknown takes the trace's, the
// linker's decision). `meaning` / `contested`: what the trace's evidence decided for "info A B".
DecodedExit decode_exit(const KvmEvent& e, bool svm, InfoPairMeaning meaning, bool contested);

}  // namespace es::kvmtrace
