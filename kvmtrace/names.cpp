#include "kvmtrace/names.h"

#include <string>
#include <unordered_map>

#include "hv/arch/exceptions.h"
#include "hv/arch/exit_reason.h"
#include "hv/arch/svm.h"

namespace es::kvmtrace {

namespace {

struct ExcName {
  std::string_view name;
  uint8_t vector;
};
constexpr ExcName kExceptions[] = {
    {"DE", arch::kDE}, {"DB", arch::kDB}, {"NMI", arch::kNMI}, {"BP", arch::kBP}, {"OF", arch::kOF},
    {"BR", arch::kBR}, {"UD", arch::kUD}, {"NM", arch::kNM},   {"DF", arch::kDF}, {"TS", arch::kTS},
    {"NP", arch::kNP}, {"SS", arch::kSS}, {"GP", arch::kGP},   {"PF", arch::kPF}, {"MF", arch::kMF},
    {"AC", arch::kAC}, {"MC", arch::kMC}, {"XM", arch::kXM},   {"VE", arch::kVE}, {"CP", arch::kCP},
};
}  // namespace

int exception_vector_from_name(std::string_view n) {
  if (!n.empty() && n[0] == '#') n.remove_prefix(1);
  for (const ExcName& e : kExceptions)
    if (e.name.size() == n.size()) {
      bool eq = true;
      for (size_t i = 0; i < n.size(); ++i)
        if ((n[i] & ~0x20) != e.name[i]) eq = false;
      if (eq) return e.vector;
    }
  return -1;
}

namespace {

bool all_lower(std::string_view s) {
  for (char c : s)
    if (c >= 'A' && c <= 'Z') return false;
  return true;
}

// Names KVM printed for a VMX exit reason before it renamed them, and that trace-cmd's kvm
// plugin (libtraceevent plugin_kvm.c, its own VMX_EXIT_REASONS table) still prints on every
// kernel: exit 7 was EXIT_REASON_PENDING_INTERRUPT until Linux 5.6 renamed it INTERRUPT_WINDOW
// (SDM Vol. 3D Appendix C "VMX Basic Exit Reasons": 7 = interrupt window).
struct OldVmxName {
  std::string_view name;
  uint16_t basic;
};
constexpr OldVmxName kOldVmxNames[] = {
    {"PENDING_INTERRUPT", 7},
    {"INTERRUPT_PENDING", 7},
};

// VMX basic exit reason by KVM's name: the exact spelling through a table built once, other
// spellings ("EXIT_REASON_...", lower case) through arch::exit_reason_from_name. -1 if unknown.
int vmx_exit_reason(std::string_view name) {
  static const std::unordered_map<std::string_view, int> kExact = [] {
    std::unordered_map<std::string_view, int> m;
    for (uint16_t i = 0; i < 0x400; ++i)
      if (const std::string_view n = arch::exit_reason_name(i); !n.empty()) m.emplace(n, i);
    return m;
  }();
  if (const auto it = kExact.find(name); it != kExact.end()) return it->second;
  return arch::exit_reason_from_name(name);
}

// "0x4d": at most 16 hex digits whose value fits 32 bits (as the text parser reads numbers).
bool parse_hex32(std::string_view t, uint32_t& out) {
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) t.remove_prefix(2);
  if (t.empty() || t.size() > 16) return false;
  uint64_t v = 0;
  for (char c : t) {
    uint64_t d;
    if (c >= '0' && c <= '9')
      d = static_cast<uint64_t>(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = static_cast<uint64_t>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      d = static_cast<uint64_t>(c - 'A' + 10);
    else
      return false;
    v = (v << 4) | d;
  }
  if (v > 0xFFFF'FFFFull) return false;
  out = static_cast<uint32_t>(v);
  return true;
}

}  // namespace

ExitName exit_reason_from_kvm_name(std::string_view name, std::string_view next) {
  ExitName out;
  if (next == "excp") {  // "PF excp", "XF excp": KVM's two-word exception exits, hv/arch's SVM table
    std::string joined(name);
    joined += " excp";
    out.isa = Isa::Svm;
    out.reason = arch::svm_exit_code_from_name(joined);
    out.tokens = 2;
    return out;
  }
  const bool vmx_prefixed = name.size() > 12 && name.substr(0, 12) == "EXIT_REASON_";
  if (!vmx_prefixed && (all_lower(name) || name.substr(0, 5) == "EXIT_" || name.substr(0, 9) == "SVM_EXIT_")) {
    // Every era's spelling (KVM's "interrupt", "hypercall"; trace-cmd's "EXIT_EXCP_GP"), hv/arch.
    if (const std::optional<uint32_t> code = arch::svm_exit_code_from_name(name)) {
      out.isa = Isa::Svm;
      out.reason = code;
      return out;
    }
  }
  // trace-cmd's kvm plugin names SVM exceptions "EXIT_EXCP_GP" (0x40 + vector, AMD APM Vol. 2
  // Appendix C "SVM Intercept Exit Codes").
  if (std::string_view e = name; e.substr(0, 5) == "EXIT_" || e.substr(0, 9) == "SVM_EXIT_") {
    e.remove_prefix(e[0] == 'S' ? 9 : 5);
    if (e.size() > 5 && e.substr(0, 5) == "EXCP_") {
      const int v = exception_vector_from_name(e.substr(5));
      if (v >= 0) {
        out.isa = Isa::Svm;
        out.reason = 0x40u + static_cast<uint32_t>(v);
        return out;
      }
    }
  }
  for (const OldVmxName& o : kOldVmxNames)
    if (name == o.name) {
      out.isa = Isa::Vmx;
      out.reason = o.basic;
      out.old_name = true;
      return out;
    }
  const int basic = vmx_exit_reason(name);
  if (basic >= 0) {
    out.isa = Isa::Vmx;
    out.reason = static_cast<uint32_t>(basic);
    return out;
  }
  uint32_t raw = 0;
  if (name.size() > 2 && name[0] == '0' && name[1] == 'x' && parse_hex32(name, raw))
    out.reason = raw;  // printed as a number: vendor unknown from the name
  return out;
}

bool vmx_reason_flags_from_name(std::string_view t, uint32_t& bits) {
  bool any = false;
  while (!t.empty()) {
    const size_t bar = t.find('|');
    const std::string_view f = t.substr(0, bar);
    if (f == "FAILED_VMENTRY")
      bits |= arch::ExitReason::kEntryFailure, any = true;
    else if (f == "SGX_ENCLAVE_MODE" || f == "ENCLAVE_MODE")
      bits |= arch::ExitReason::kEnclaveMode, any = true;
    else if (f == "PENDING_MTF")
      bits |= arch::ExitReason::kPendingMtf, any = true;
    else if (f == "FROM_VMX_ROOT")
      bits |= arch::ExitReason::kFromVmxRoot, any = true;
    else
      return false;
    if (bar == std::string_view::npos) break;
    t.remove_prefix(bar + 1);
  }
  return any;
}

}  // namespace es::kvmtrace
