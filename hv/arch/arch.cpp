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
#define X(name, enc) \
  case (enc):        \
    return VmcsField::name;
#include "hv/arch/vmcs_fields.def"
#undef X
    default: return std::nullopt;
  }
}

std::string_view to_string(VmcsField f) {
  switch (f) {
#define X(name, enc)    \
  case VmcsField::name: \
    return #name;
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
      if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i])))
        return false;
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
    case kDE: return "#DE";
    case kDB: return "#DB";
    case kNMI: return "NMI";
    case kBP: return "#BP";
    case kOF: return "#OF";
    case kBR: return "#BR";
    case kUD: return "#UD";
    case kNM: return "#NM";
    case kDF: return "#DF";
    case kCSO: return "#CSO";
    case kTS: return "#TS";
    case kNP: return "#NP";
    case kSS: return "#SS";
    case kGP: return "#GP";
    case kPF: return "#PF";
    case kMF: return "#MF";
    case kAC: return "#AC";
    case kMC: return "#MC";
    case kXM: return "#XM";
    case kVE: return "#VE";
    case kCP: return "#CP";
    default: return {};
  }
}

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

// "0x" and the value in lower-case hex without leading zeros (printf's "0x%x").
void append_hex(std::string& out, uint64_t v) {
  char tmp[16];
  char* p = tmp + sizeof tmp;
  do {
    *--p = kHexDigits[v & 15];
    v >>= 4;
  } while (v);
  out += "0x";
  out.append(p, static_cast<size_t>(tmp + sizeof tmp - p));
}

void append_dec(std::string& out, unsigned v) {
  char tmp[12];
  char* p = tmp + sizeof tmp;
  do {
    *--p = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  out.append(p, static_cast<size_t>(tmp + sizeof tmp - p));
}

}  // namespace

// Built by appending (no printf): exports decode every event of a recording.
void describe_event_to(std::string& out, uint32_t word) {
  if (!(word & detail::kValidBit)) {
    out += '-';
    return;
  }
  const uint8_t vector = static_cast<uint8_t>(word & 0xFF);
  const auto type = static_cast<InterruptionType>((word >> 8) & 7);
  auto hex2 = [&](std::string_view prefix) {
    out += prefix;
    const char digits[4] = {'0', 'x', kHexDigits[vector >> 4], kHexDigits[vector & 15]};
    out.append(digits, sizeof digits);
  };
  switch (type) {
    case InterruptionType::ExternalInterrupt: return hex2("IRQ ");
    case InterruptionType::Nmi: out += "NMI"; return;
    case InterruptionType::HardwareException:
    case InterruptionType::PrivilegedSoftwareException:
    case InterruptionType::SoftwareException: {
      const auto m = exception_mnemonic(vector);
      if (m.empty())
        hex2("exception ");
      else
        out += m;
      if (type == InterruptionType::SoftwareException) out += " (soft)";
      if (type == InterruptionType::PrivilegedSoftwareException) out += " (INT1)";
      return;
    }
    case InterruptionType::SoftwareInterrupt: return hex2("INT ");
    case InterruptionType::OtherEvent:
      out += "other event ";
      append_dec(out, vector);
      return;
    case InterruptionType::Reserved1: return hex2("reserved type 1 vector ");
  }
  out += '-';
}

void describe_to(std::string& out, EntryIntrInfo e) { describe_event_to(out, e.raw()); }
void describe_to(std::string& out, ExitIntrInfo e) {
  describe_event_to(out, e.raw());
  if (e.valid() && e.nmi_unblocking_due_to_iret()) out += " [nmi-unblock]";
  if (e.valid() && e.nested_exception()) out += " [nested]";
}
void describe_to(std::string& out, IdtVectoringInfo v) { describe_event_to(out, v.raw()); }

void describe_to(std::string& out, EptViolationQual q) {
  const char access[9] = {
      q.read() ? 'R' : '-', q.write() ? 'W' : '-', q.fetch() ? 'X' : '-', ' ', 'p', 'e', 'r', 'm', ' '};
  out.append(access, sizeof access);
  const char perm[3] = {q.readable() ? 'r' : '-', q.writable() ? 'w' : '-', q.executable() ? 'x' : '-'};
  out.append(perm, sizeof perm);
  if (q.linear_address_valid()) out += q.translated_access() ? " gla" : " gla(page walk)";
  if (q.nmi_unblocking_due_to_iret()) out += " nmi-unblock";
}

void describe_to(std::string& out, IoQual q) {
  if (q.rep()) out += "rep ";
  out += q.in() ? "in" : "out";
  if (q.string()) out += 's';
  out += ' ';
  append_hex(out, q.port());
  out += " size ";
  append_dec(out, q.size());
  if (q.immediate()) out += " imm";
}

void describe_to(std::string& out, CrAccessQual q) {
  static constexpr std::string_view kGpr[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                                "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
  switch (q.access_type()) {
    case CrAccessType::MovToCr:
      out += "mov to cr";
      append_dec(out, q.cr());
      out += " from ";
      out += kGpr[q.gpr()];
      break;
    case CrAccessType::MovFromCr:
      out += "mov from cr";
      append_dec(out, q.cr());
      out += " to ";
      out += kGpr[q.gpr()];
      break;
    case CrAccessType::Clts: out += "clts"; break;
    case CrAccessType::Lmsw:
      out += "lmsw ";
      append_hex(out, q.lmsw_source());
      break;
  }
}

std::string describe_event(uint32_t word) {
  std::string s;
  describe_event_to(s, word);
  return s;
}
std::string describe(EntryIntrInfo e) { return describe_event(e.raw()); }
std::string describe(ExitIntrInfo e) {
  std::string s;
  describe_to(s, e);
  return s;
}
std::string describe(IdtVectoringInfo v) { return describe_event(v.raw()); }
std::string describe(EptViolationQual q) {
  std::string s;
  describe_to(s, q);
  return s;
}
std::string describe(IoQual q) {
  std::string s;
  describe_to(s, q);
  return s;
}
std::string describe(CrAccessQual q) {
  std::string s;
  describe_to(s, q);
  return s;
}

}  // namespace es::arch
