// The names KVM and trace-cmd print for exits and exceptions, of both vendors and every era, read
// back into numbers. The exit-reason tables themselves are hv/arch's, one per vendor
// (hv/arch/exit_reasons.def for VMX, hv/arch/svm_exit_codes.def for SVM, with KVM's spellings of
// every era); what is here is how a printed name picks its vendor and the names no table of the
// architecture has (KVM's old VMX names, trace-cmd's EXIT_EXCP_xx, the exception mnemonics).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "kvmtrace/event.h"

namespace es::kvmtrace {

struct ExitName {
  Isa isa = Isa::Unknown;          // Unknown: a bare number ("0x4d"), or not understood
  std::optional<uint32_t> reason;  // VMX basic exit reason / SVM exit code; nullopt: not understood
  bool old_name = false;           // a name KVM no longer prints (PENDING_INTERRUPT)
  size_t tokens = 1;               // words the name took ("PF excp": 2)
};

// kvm_exit's reason as printed: VMX names are upper case ("EPT_VIOLATION", "EXIT_REASON_..."),
// SVM's lower case ("npf", "interrupt", "PF excp") or trace-cmd's "EXIT_NPF" / "EXIT_EXCP_GP";
// a hex number ("0x4d": a code the kernel's table did not name) carries no vendor. `next` is the
// following word, for SVM's two-word "PF excp".
ExitName exit_reason_from_kvm_name(std::string_view name, std::string_view next);

// VMX_EXIT_REASON_FLAGS printed after the name on newer kernels ("FAILED_VMENTRY",
// "SGX_ENCLAVE_MODE|PENDING_MTF"): ORs their bits (SDM Vol. 3C 28.2.1) into `bits`; false if `t`
// is not such a word.
bool vmx_reason_flags_from_name(std::string_view t, uint32_t& bits);

// An exception vector by its mnemonic ("#PF", "PF", "gp"); -1 if unknown.
int exception_vector_from_name(std::string_view name);

}  // namespace es::kvmtrace
