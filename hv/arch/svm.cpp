#include "hv/arch/svm.h"

#include <array>
#include <cctype>

namespace es::arch {

namespace {

// Every spelling the table gives one code.
struct SvmSpelling {
  std::string_view name, macro, apm;
  uint32_t code;
};
constexpr SvmSpelling kSpellings[] = {
#define X(enumerator, code, text, macro, apm) {text, macro, apm, code},
#include "hv/arch/svm_exit_codes.def"
#undef X
};

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

bool strip(std::string_view& s, std::string_view prefix) {
  if (s.size() <= prefix.size() || !iequal(s.substr(0, prefix.size()), prefix)) return false;
  s.remove_prefix(prefix.size());
  return true;
}

}  // namespace

std::string_view svm_exit_name(uint32_t code) {
  // A switch from the table: the compiler's search, not a loop per call (exports name every exit).
  switch (code) {
#define X(enumerator, c, text, macro, apm) \
  case (c):                                \
    return text;
#include "hv/arch/svm_exit_codes.def"
#undef X
    default: return {};
  }
}

bool is_known_svm_exit_code(uint32_t code) { return !svm_exit_name(code).empty(); }

std::optional<uint32_t> svm_exit_code_from_name(std::string_view name) {
  if (name.empty()) return std::nullopt;
  for (const SvmSpelling& s : kSpellings)
    if (iequal(s.name, name)) return s.code;
  // "GP_excp": KVM's two-word exception name as one token (a filter query splits on spaces).
  if (name.size() > 5 && iequal(name.substr(name.size() - 5), "_excp")) {
    char joined[16];
    if (name.size() < sizeof joined) {
      name.copy(joined, name.size());
      joined[name.size() - 5] = ' ';
      const std::string_view j(joined, name.size());
      for (const SvmSpelling& s : kSpellings)
        if (iequal(s.name, j)) return s.code;
    }
  }
  // Prefixed spellings: SVM_EXIT_<macro> (kernel), EXIT_<macro> (trace-cmd's kvm plugin),
  // SVM_<macro> (SVM_VMGEXIT_*), VMEXIT_<mnemonic> (APM); and each bare.
  std::string_view bare = name;
  (void)(strip(bare, "SVM_EXIT_") || strip(bare, "VMEXIT_") || strip(bare, "EXIT_") || strip(bare, "SVM_"));
  for (const SvmSpelling& s : kSpellings) {
    if (!s.macro.empty() && iequal(s.macro, bare)) return s.code;
    if (!s.apm.empty() && iequal(s.apm, bare)) return s.code;
  }
  return std::nullopt;
}

std::string_view to_string(SvmEventType t) {
  switch (t) {
    case SvmEventType::Intr: return "INTR";
    case SvmEventType::Nmi: return "NMI";
    case SvmEventType::Exception: return "exception";
    case SvmEventType::SoftInt: return "software interrupt";
  }
  return "?";
}

std::string describe(SvmEventInfo e) {
  if (!e.valid()) return "-";
  if (!e.type()) return "reserved type " + std::to_string(e.type_bits()) + " vector " + std::to_string(e.vector());
  std::string s = describe_event(to_vmx_entry(e).raw());
  if (e.error_code_valid()) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string digits;
    uint32_t v = e.error_code();
    do {
      digits.insert(digits.begin(), kHex[v & 15]);
      v >>= 4;
    } while (v);
    s += " err=0x" + digits;
  }
  return s;
}

void describe_to(std::string& out, SvmIoInfo q) {
  if (q.rep()) out += "rep ";
  out += q.in() ? "in" : "out";
  if (q.string()) out += 's';
  static constexpr char kHex[] = "0123456789abcdef";
  std::string port;
  unsigned p = q.port();
  do {
    port.insert(port.begin(), kHex[p & 15]);
    p >>= 4;
  } while (p);
  out += " 0x" + port + " size " + std::to_string(q.size());
}

void describe_to(std::string& out, SvmNpfInfo q) {
  out += q.fetch() ? 'X' : q.write() ? 'W' : 'R';
  out += q.present() ? " present" : " not-present";
  if (q.user()) out += " user";
  if (q.reserved_bit()) out += " rsvd";
  if (q.final_translation()) out += " final";
  if (q.page_table_walk()) out += " page walk";
  if (q.rmp_check()) out += " rmp";
  if (q.encrypted()) out += " encrypted";
  if (q.size_mismatch()) out += " rmp-size";
  if (q.vmpl_check()) out += " vmpl";
}

}  // namespace es::arch
