#include <array>
#include <cctype>
#include <cstdio>

#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"
#include "hv/arch/exit_qualification.h"
#include "hv/arch/exit_reason.h"
#include "hv/arch/vmcs.h"

namespace es::arch {

std::optional<VmcsField> vmcs_field_from_encoding(uint32_t encoding) {
  switch (encoding) {
#define X(name, enc) case (enc): return VmcsField::name;
#include "hv/arch/vmcs_fields.def"
#undef X
    default: return std::nullopt;
  }
}

std::string_view to_string(VmcsField f) {
  switch (f) {
#define X(name, enc) case VmcsField::name: return #name;
#include "hv/arch/vmcs_fields.def"
#undef X
  }
  return "?";
}

namespace {
constexpr auto kExitNames = [] {
  std::array<std::string_view, kExitReasonLimit> names{};
#define X(name, num, text) names[num] = text;
#include "hv/arch/exit_reasons.def"
#undef X
  return names;
}();
}  // namespace

bool is_known_exit_reason(uint16_t basic) { return basic < kExitReasonLimit && !kExitNames[basic].empty(); }

std::string_view exit_reason_name(uint16_t basic) {
  return basic < kExitReasonLimit ? kExitNames[basic] : std::string_view{};
}

int exit_reason_from_name(std::string_view name) {
  constexpr std::string_view kPrefix = "EXIT_REASON_";
  auto ieq = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i]))) return false;
    return true;
  };
  if (name.size() > kPrefix.size() && ieq(name.substr(0, kPrefix.size()), kPrefix)) name.remove_prefix(kPrefix.size());
  for (uint16_t i = 0; i < kExitReasonLimit; ++i)
    if (!kExitNames[i].empty() && ieq(kExitNames[i], name)) return i;
  return -1;
}

std::string_view to_string(InterruptionType t) {
  switch (t) {
    case InterruptionType::ExternalInterrupt: return "external interrupt";
    case InterruptionType::Reserved1: return "reserved";
    case InterruptionType::Nmi: return "NMI";
    case InterruptionType::HardwareException: return "hardware exception";
    case InterruptionType::SoftwareInterrupt: return "software interrupt";
    case InterruptionType::PrivilegedSoftwareException: return "privileged software exception";
    case InterruptionType::SoftwareException: return "software exception";
    case InterruptionType::OtherEvent: return "other event";
  }
  return "?";
}

std::string_view exception_mnemonic(uint8_t vector) {
  switch (vector) {
    case kDE: return "#DE"; case kDB: return "#DB"; case kNMI: return "NMI"; case kBP: return "#BP";
    case kOF: return "#OF"; case kBR: return "#BR"; case kUD: return "#UD"; case kNM: return "#NM";
    case kDF: return "#DF"; case kCSO: return "#CSO"; case kTS: return "#TS"; case kNP: return "#NP";
    case kSS: return "#SS"; case kGP: return "#GP"; case kPF: return "#PF"; case kMF: return "#MF";
    case kAC: return "#AC"; case kMC: return "#MC"; case kXM: return "#XM"; case kVE: return "#VE";
    case kCP: return "#CP";
    default: return {};
  }
}

std::string describe_event(uint32_t word) {
  if (!(word & detail::kValidBit)) return "-";
  const uint8_t vector = static_cast<uint8_t>(word & 0xFF);
  const auto type = static_cast<InterruptionType>((word >> 8) & 7);
  // Built by appending (no printf): exports decode every event of a recording.
  static constexpr char kHex[] = "0123456789abcdef";
  auto hex2 = [&](std::string s) {
    s += "0x";
    s += kHex[vector >> 4];
    s += kHex[vector & 15];
    return s;
  };
  switch (type) {
    case InterruptionType::ExternalInterrupt: return hex2("IRQ ");
    case InterruptionType::Nmi: return "NMI";
    case InterruptionType::HardwareException:
    case InterruptionType::PrivilegedSoftwareException:
    case InterruptionType::SoftwareException: {
      const auto m = exception_mnemonic(vector);
      std::string s = m.empty() ? hex2("exception ") : std::string(m);
      if (type == InterruptionType::SoftwareException) s += " (soft)";
      if (type == InterruptionType::PrivilegedSoftwareException) s += " (INT1)";
      return s;
    }
    case InterruptionType::SoftwareInterrupt: return hex2("INT ");
    case InterruptionType::OtherEvent: return "other event " + std::to_string(vector);
    case InterruptionType::Reserved1: return hex2("reserved type 1 vector ");
  }
  return "-";
}

std::string describe(EntryIntrInfo e) { return describe_event(e.raw()); }
std::string describe(ExitIntrInfo e) {
  std::string s = describe_event(e.raw());
  if (e.valid() && e.nmi_unblocking_due_to_iret()) s += " [nmi-unblock]";
  if (e.valid() && e.nested_exception()) s += " [nested]";
  return s;
}
std::string describe(IdtVectoringInfo v) { return describe_event(v.raw()); }

std::string describe(EptViolationQual q) {
  std::string s;
  s += q.read() ? 'R' : '-';
  s += q.write() ? 'W' : '-';
  s += q.fetch() ? 'X' : '-';
  s += " perm ";
  s += q.readable() ? 'r' : '-';
  s += q.writable() ? 'w' : '-';
  s += q.executable() ? 'x' : '-';
  if (q.linear_address_valid()) s += q.translated_access() ? " gla" : " gla(page walk)";
  if (q.nmi_unblocking_due_to_iret()) s += " nmi-unblock";
  return s;
}

std::string describe(IoQual q) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%s%s 0x%x size %u%s", q.rep() ? "rep " : "", q.in() ? "in" : "out",
                q.string() ? "s" : "", q.port(), q.size(), q.immediate() ? " imm" : "");
  return buf;
}

std::string describe(CrAccessQual q) {
  static constexpr const char* kGpr[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                           "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
  char buf[64];
  switch (q.access_type()) {
    case CrAccessType::MovToCr: std::snprintf(buf, sizeof buf, "mov to cr%u from %s", q.cr(), kGpr[q.gpr()]); break;
    case CrAccessType::MovFromCr: std::snprintf(buf, sizeof buf, "mov from cr%u to %s", q.cr(), kGpr[q.gpr()]); break;
    case CrAccessType::Clts: std::snprintf(buf, sizeof buf, "clts"); break;
    case CrAccessType::Lmsw: std::snprintf(buf, sizeof buf, "lmsw 0x%x", q.lmsw_source()); break;
  }
  return buf;
}

}  // namespace es::arch
