#include "replay/import/trace_text.h"

#include <array>
#include <cstdint>
#include <cstring>

#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"
#include "kvmtrace/fields.h"
#include "kvmtrace/names.h"

namespace es::import {

namespace {

using arch::EntryIntrInfo;
using arch::InterruptionType;
using kvmtrace::Field;
using kvmtrace::Injection;
using kvmtrace::Isa;

// Character classes by table: the scanners below run over every byte of every line.
enum CharClass : uint8_t { kSpace = 1, kDelim = 2, kDigit = 4, kIdent = 8 };
constexpr std::array<uint8_t, 256> kCharClass = [] {
  std::array<uint8_t, 256> t{};
  t[' '] = t['\t'] = kSpace | kDelim;
  t[','] = kDelim;
  for (int c = '0'; c <= '9'; ++c) t[c] = kDigit | kIdent;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = kIdent;
  t['_'] = kIdent;
  return t;
}();
// Hex digit values; 0xFF = not a hex digit.
constexpr std::array<uint8_t, 256> kHexValue = [] {
  std::array<uint8_t, 256> t{};
  for (auto& v : t) v = 0xFF;
  for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<uint8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) t[c] = static_cast<uint8_t>(c - 'A' + 10);
  return t;
}();
constexpr uint8_t char_class(char c) { return kCharClass[static_cast<unsigned char>(c)]; }
constexpr bool is_space(char c) { return char_class(c) & kSpace; }
constexpr bool is_digit(char c) { return char_class(c) & kDigit; }
constexpr bool is_delim(char c) { return char_class(c) & kDelim; }  // space, tab, comma
constexpr bool is_ident(char c) { return char_class(c) & kIdent; }

// Position of the last blank, npos if none (string_view::find_last_of(" \t") calls memchr per byte).
size_t last_space(std::string_view s) {
  for (size_t i = s.size(); i > 0; --i)
    if (is_space(s[i - 1])) return i - 1;
  return std::string_view::npos;
}

inline std::string_view trim(std::string_view s) {
  const char* b = s.data() + leading_blanks(s);
  const char* e = s.data() + s.size();
  while (e > b && (is_space(e[-1]) || e[-1] == '\r' || e[-1] == '\n')) --e;
  return {b, static_cast<size_t>(e - b)};
}

// Hex with or without 0x; at most 16 digits; the whole token.
bool parse_hex(std::string_view t, uint64_t& out) {
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) t.remove_prefix(2);
  if (t.empty() || t.size() > 16) return false;
  uint64_t v = 0;
  for (char c : t) {
    const uint8_t d = kHexValue[static_cast<unsigned char>(c)];
    if (d > 15) return false;
    v = (v << 4) | d;
  }
  out = v;
  return true;
}
bool parse_hex32(std::string_view t, uint32_t& out) {
  uint64_t v = 0;
  if (!parse_hex(t, v) || v > 0xFFFF'FFFFull) return false;
  out = static_cast<uint32_t>(v);
  return true;
}
bool parse_dec(std::string_view t, uint64_t& out) {
  if (t.empty() || t.size() > 19) return false;
  uint64_t v = 0;
  for (char c : t) {
    if (!is_digit(c)) return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  out = v;
  return true;
}
// Decimal, or hex with 0x (kvm_inj_virq: "irq 52" before 5.19, "IRQ 0x34" after).
bool parse_num(std::string_view t, uint64_t& out) {
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) return parse_hex(t, out);
  return parse_dec(t, out);
}

// "secs.frac" -> ns; frac of 1..9 digits.
// One forward scan (every line's prefix has one, and the parse of a pasted trace asks for it
// about twice per line): 1..19 digits, '.', 1..9 digits, nothing else.
bool parse_timestamp(std::string_view t, uint64_t& ns) {
  const size_t n = t.size();
  size_t i = 0;
  uint64_t secs = 0, frac = 0;
  for (; i < n && is_digit(t[i]); ++i) secs = secs * 10 + static_cast<uint64_t>(t[i] - '0');
  if (i == 0 || i > 19 || i + 1 >= n || t[i] != '.' || n - i - 1 > 9 || secs > 18'000'000'000ull) return false;
  for (size_t j = i + 1; j < n; ++j) {
    if (!is_digit(t[j])) return false;
    frac = frac * 10 + static_cast<uint64_t>(t[j] - '0');
  }
  for (size_t k = n - i - 1; k < 9; ++k) frac *= 10;
  ns = secs * 1'000'000'000ull + frac;
  return true;
}

// Splits on spaces and commas ("vcpu 0, rip 0x..."), without allocating. The token slots are
// left uninitialized (only [0, n) is written and read): a std::array of string_views was zeroed,
// 640 bytes, for every line (1.4 % of the pasted 50 MB import's CPU, issue #18).
struct Tokens {
  static constexpr size_t kMax = 40;
  size_t n = 0;
  bool overflow = false;
  explicit Tokens(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
      while (i < s.size() && is_delim(s[i])) ++i;
      const size_t b = i;
      while (i < s.size() && !is_delim(s[i])) ++i;
      if (i > b) {
        if (n == kMax) {
          overflow = true;
          return;
        }
        begin_[n] = s.data() + b;
        size_[n++] = i - b;
      }
    }
  }
  std::string_view operator[](size_t i) const {
    return i < n ? std::string_view(begin_[i], size_[i]) : std::string_view{};
  }

 private:
  const char* begin_[kMax];  // NOLINT: uninitialized on purpose, see above
  size_t size_[kMax];
};

TraceEvent event_from_name(std::string_view n) { return kvmtrace::tracepoint_from_name(n); }

// Exit reason names of every era and vendor, VMX reason flags, exception mnemonics: kvmtrace/names.h.
size_t parse_reason(std::string_view name, std::string_view next, TraceLine& out) {
  const kvmtrace::ExitName n = kvmtrace::exit_reason_from_kvm_name(name, next);
  out.exit.isa = n.isa;
  out.exit.reason = n.reason;
  out.old_name = n.old_name;
  return n.tokens;
}

std::string_view key_of(std::string_view t) {
  if (!t.empty() && t.back() == ':') t.remove_suffix(1);
  return t;
}

// kvm_exit, kvm_nested_vmexit (both eras), kvm_nested_vmexit_inject ("reason: X ext_inf1: ...").
bool parse_exit_body(const Tokens& tk, TraceLine& out) {
  bool have_reason = false, have_info1 = false, info_pair = false;
  uint32_t flags = 0;
  for (size_t i = 0; i < tk.n;) {
    const std::string_view key = key_of(tk[i]);
    const std::string_view v = tk[i + 1];
    uint64_t x = 0;
    if (key == "vcpu") {
      if (!parse_dec(v, x) || x > 0xFFFF) return false;
      out.vcpu = static_cast<int32_t>(x);
      i += 2;
    } else if (key == "reason") {
      if (i + 1 >= tk.n) return false;
      i += 1 + parse_reason(v, tk[i + 2], out);
      have_reason = true;
      while (i < tk.n && kvmtrace::vmx_reason_flags_from_name(tk[i], flags)) ++i;
    } else if (key == "rip") {
      if (!parse_hex(v, x)) return false;
      out.rip = x;
      i += 2;
    } else if (key == "info") {  // "info 181 0": two hex values without 0x
      uint64_t y = 0;
      if (!parse_hex(v, x) || !parse_hex(tk[i + 2], y)) return false;
      out.exit.info1 = x;
      out.exit.info2 = y;
      info_pair = have_info1 = true;
      i += 3;
    } else if (key == "info1" || key == "ext_inf1") {
      if (!parse_hex(v, x)) return false;
      out.exit.info1 = x;
      have_info1 = true;
      i += 2;
    } else if (key == "info2" || key == "ext_inf2") {
      if (!parse_hex(v, x)) return false;
      out.exit.info2 = x;
      i += 2;
    } else if (key == "intr_info" || key == "int_info" || key == "ext_int") {
      uint32_t w = 0;
      if (!parse_hex32(v, w)) return false;
      out.exit.intr_info = w;
      out.exit.old_nested_format |= key != "intr_info";
      i += 2;
    } else if (key == "intr" && info_pair) {
      // "info A B intr C" (a perf kvm plugin printing the intr_info field too, hex without 0x, as
      // pasted in a 2024 kvm@ thread): the field exists from 5.10 on, so the line has that era's
      // meanings (info2 = IDT-vectoring info on VMX, intr_info = EXITINTINFO on SVM).
      uint64_t w = 0;
      if (!parse_hex(v, w) || w > 0xFFFFFFFFu) return false;
      out.exit.intr_info = static_cast<uint32_t>(w);
      i += 2;
    } else if (key == "error_code" || key == "int_info_err" || key == "ext_int_err") {
      uint32_t w = 0;
      if (!parse_hex32(v, w)) return false;
      out.exit.error_code = w;
      i += 2;
    } else if (key == "requests" || key == "isa") {
      if (!parse_hex(v, x)) return false;
      i += 2;
    } else {
      return false;  // an unknown word: not a format we know
    }
  }
  if (!have_reason || !out.exit.reason) return false;
  if (!out.exit.svm()) *out.exit.reason |= flags;
  if (out.exit.intr_info)
    out.exit.format = ExitFormat::IntrInfo;
  else if (info_pair)
    out.exit.format = ExitFormat::InfoPair;
  else if (have_info1 || out.exit.info2)
    out.exit.format = ExitFormat::Info1Info2;
  else
    out.exit.format = ExitFormat::ReasonRipOnly;
  return true;
}

// kvm_entry: "vcpu 0" | "vcpu 0, rip 0x..." | "... [immediate exit]" | "... intr_info 0x... error_code 0x...".
bool parse_entry_body(const Tokens& tk, TraceLine& out) {
  bool have_vcpu = false, have_intr_info = false;
  uint32_t intr_info = 0, error_code = 0;
  for (size_t i = 0; i < tk.n;) {
    const std::string_view key = key_of(tk[i]);
    const std::string_view v = tk[i + 1];
    uint64_t x = 0;
    if (key == "vcpu") {
      if (!parse_dec(v, x) || x > 0xFFFF) return false;
      out.vcpu = static_cast<int32_t>(x);
      have_vcpu = true;
      i += 2;
    } else if (key == "rip") {
      // The kernel prints "rip 0x%lx%s" with "[immediate exit]" right after the number (6.9+).
      const size_t bracket = v.find('[');
      if (!parse_hex(v.substr(0, bracket), x)) return false;
      out.rip = x;
      i += 2;
      if (bracket != std::string_view::npos) {
        if (v.substr(bracket) != "[immediate" || tk[i] != "exit]") return false;
        out.immediate_exit = true;
        ++i;
      }
    } else if (key == "intr_info") {
      if (!parse_hex32(v, intr_info)) return false;
      have_intr_info = true;
      i += 2;
    } else if (key == "error_code") {
      if (!parse_hex32(v, error_code)) return false;
      i += 2;
    } else if (key == "[immediate" && v == "exit]") {
      out.immediate_exit = true;
      i += 2;
    } else {
      return false;
    }
  }
  if (have_intr_info) out.injected = Injection{intr_info, error_code};
  return have_vcpu;
}

// kvm_inj_virq: "irq 52" (decimal, before 5.19) | "IRQ 0xec [reinjected]" | "Soft/INTn 0x20".
bool parse_inj_virq(const Tokens& tk, TraceLine& out) {
  if (tk.n < 2 || tk.n > 3) return false;
  Injection& in = out.injected.emplace();
  uint64_t v = 0;
  InterruptionType type = InterruptionType::ExternalInterrupt;
  if (tk[0] == "irq") {
    if (!parse_dec(tk[1], v)) return false;
  } else if (tk[0] == "IRQ" || tk[0] == "Soft/INTn") {
    if (!parse_num(tk[1], v)) return false;
    in.reinjected_printed_era = true;
    if (tk[0] == "Soft/INTn") type = InterruptionType::SoftwareInterrupt;
  } else {
    return false;
  }
  if (v > 255) return false;
  if (tk.n == 3) {
    if (tk[2] != "[reinjected]") return false;
    in.reinjected = true;
  }
  in.word = EntryIntrInfo::make(static_cast<uint8_t>(v), type).raw();
  return true;
}

// kvm_inj_exception: "#PF (0x2)" | "#UD" | "#GP (0x0) [reinjected]" | "#BP [reinjected]".
bool parse_inj_exception(const Tokens& tk, TraceLine& out) {
  if (tk.n < 1 || tk.n > 3) return false;
  const int vec = kvmtrace::exception_vector_from_name(tk[0]);
  if (vec < 0) return false;
  Injection& in = out.injected.emplace();
  size_t i = 1;
  bool has_error = false;
  if (i < tk.n && tk[i].size() >= 3 && tk[i].front() == '(' && tk[i].back() == ')') {
    if (!parse_hex32(tk[i].substr(1, tk[i].size() - 2), in.error_code)) return false;
    has_error = true;
    ++i;
  }
  if (i < tk.n) {
    if (tk[i] != "[reinjected]") return false;
    in.reinjected = true;
    ++i;
  }
  if (i != tk.n) return false;
  // The old format printed "(0x0)" for every exception, with or without an error code;
  // whether one is delivered is the vector's architectural property (SDM Vol. 3A 6.13).
  const uint8_t v = static_cast<uint8_t>(vec);
  const bool deliver = arch::exception_has_error_code(v);
  if (!deliver) in.error_code = 0;
  in.word = kvm_exception_word(v, deliver);
  in.reinjected_printed_era = in.reinjected || tk.n == 1 || (tk.n == 2 && !has_error);
  return true;
}

// kvm_page_fault: "address 7f1 error_code 181" (old) | "vcpu 0 rip 0x... address 0x... error_code 0x...".
bool parse_page_fault(const Tokens& tk, TraceLine& out) {
  bool have_addr = false;
  auto& pf = out.fields<kvmtrace::KvmEvent::PageFault>();
  for (size_t i = 0; i < tk.n;) {
    const std::string_view key = tk[i];
    uint64_t x = 0;
    if (key == "vcpu") {
      if (!parse_dec(tk[i + 1], x) || x > 0xFFFF) return false;
      out.vcpu = static_cast<int32_t>(x);
    } else if (key == "rip") {
      if (!parse_hex(tk[i + 1], x)) return false;
      out.rip = x;
    } else if (key == "address") {
      if (!parse_hex(tk[i + 1], pf.address)) return false;
      have_addr = true;
    } else if (key == "error_code") {
      if (!parse_hex(tk[i + 1], pf.error_code)) return false;
    } else {
      return false;
    }
    i += 2;
  }
  return have_addr;
}

// kvm_emulate_insn: "0:ffffffff8103a5c6:0f 01 c1 (prot64)" (rip after the first colon).
bool parse_emulate_insn(std::string_view body, TraceLine& out) {
  const size_t c1 = body.find(':');
  if (c1 == std::string_view::npos) return false;
  const size_t c2 = body.find(':', c1 + 1);
  if (c2 == std::string_view::npos) return false;
  uint64_t rip = 0;
  if (!parse_hex(trim(body.substr(c1 + 1, c2 - c1 - 1)), rip)) return false;
  out.rip = rip;
  const Tokens tk(body.substr(c2 + 1));
  size_t i = 0;
  auto& em = out.fields<kvmtrace::KvmEvent::EmulateInsn>();
  for (; i < tk.n && em.byte_count < 16; ++i) {
    uint32_t b = 0;
    if (tk[i].size() != 2 || !parse_hex32(tk[i], b)) break;
    em.bytes[em.byte_count++] = static_cast<uint8_t>(b);
  }
  em.failed =
      tk.n > 0 && (tk[tk.n - 1] == "failed" || tk[tk.n - 1] == "FAIL");  // kernel print | trace-cmd's kvm plugin
  return true;
}

// kvm_userspace_exit: "reason KVM_EXIT_IO (2)" | "reason restart (4)" | "reason error (14)" (the
// last two print -errno instead of the exit reason).
bool parse_userspace_exit(const Tokens& tk, TraceLine& out) {
  if (tk.n != 3 || tk[0] != "reason" || tk[2].size() < 3 || tk[2].front() != '(' || tk[2].back() != ')') return false;
  uint64_t n = 0;
  if (!parse_dec(tk[2].substr(1, tk[2].size() - 2), n) || n > 0xFFFF'FFFF) return false;
  auto& ue = out.fields<kvmtrace::KvmEvent::UserspaceExit>();
  if (tk[1] == "restart" || tk[1] == "error") {
    ue.error = -static_cast<int64_t>(n);  // errno as the tracepoint stores it
  } else {
    ue.reason = n;
  }
  return true;
}

// kvm_mmio: "mmio write len 4 gpa 0xfee000b0 val 0x0" (type read | write | unsatisfied-read).
bool parse_mmio(const Tokens& tk, TraceLine& out) {
  if (tk.n < 8 || tk[0] != "mmio" || tk[2] != "len" || tk[4] != "gpa" || tk[6] != "val") return false;
  auto& mmio = out.fields<kvmtrace::KvmEvent::Mmio>();
  if (tk[1] == "unsatisfied-read")
    mmio.type = 0;
  else if (tk[1] == "read")
    mmio.type = 1;
  else if (tk[1] == "write")
    mmio.type = 2;
  else
    return false;
  uint64_t len = 0;
  if (!parse_dec(tk[3], len) || len > 0xFFFF'FFFF) return false;
  mmio.len = static_cast<uint32_t>(len);
  return parse_hex(tk[5], mmio.gpa) && parse_hex(tk[7], mmio.value);
}

// kvm_pio: "pio_write at 0x70 size 1 count 1 val 0x8f" (val absent on older kernels).
bool parse_pio(const Tokens& tk, TraceLine& out) {
  if (tk.n < 3 || tk[1] != "at") return false;
  auto& pio = out.fields<kvmtrace::KvmEvent::Pio>();
  if (tk[0] == "pio_write")
    pio.write = true;
  else if (tk[0] != "pio_read")
    return false;
  if (!parse_hex(tk[2], pio.port)) return false;
  for (size_t i = 3; i + 1 < tk.n; i += 2) {
    uint64_t x = 0;
    if (tk[i] == "val" && parse_hex(tk[i + 1], x))
      pio.value = x;
    else if (tk[i] == "size" && parse_dec(tk[i + 1], x) && x <= 8)
      pio.size = static_cast<uint32_t>(x);
  }
  return true;
}

// kvm_msr: "msr_write 6e0 = 0x1a2b" | "msr_read 10 = 0x123 (#GP)".
bool parse_msr(const Tokens& tk, TraceLine& out) {
  if (tk.n < 4 || tk[2] != "=") return false;
  auto& msr = out.fields<kvmtrace::KvmEvent::Msr>();
  if (tk[0] == "msr_write")
    msr.write = true;
  else if (tk[0] != "msr_read")
    return false;
  if (!parse_hex(tk[1], msr.index) || !parse_hex(tk[3], msr.data)) return false;
  if (tk.n > 4) msr.gp_fault = tk[4] == "(#GP)";
  return true;
}

// kvm_apic_accept_irq: "apicid 0 vec 236 (Fixed|edge)"; kvm_eoi: "apicid 0 vector 236".
bool parse_apic(const Tokens& tk, TraceLine& out, std::string_view vec_key) {
  uint64_t id = 0, vec = 0;
  if (tk.n < 4 || tk[0] != "apicid" || tk[2] != vec_key) return false;
  if (!parse_hex(tk[1], id) || !parse_dec(tk[3], vec) || vec > 255) return false;
  auto& apic = out.fields<kvmtrace::KvmEvent::ApicIrq>();
  apic.apicid = id;
  apic.vector = static_cast<uint8_t>(vec);
  return true;
}

// kvm_nested_intr_vmexit: "rip: 0x...".
bool parse_nested_intr(const Tokens& tk, TraceLine& out) {
  if (tk.n != 2 || key_of(tk[0]) != "rip") return false;
  uint64_t rip = 0;
  if (!parse_hex(tk[1], rip)) return false;
  out.rip = rip;
  return true;
}

// kvm_nested_vmenter: "rip: 0x.. vmcb: 0x.. nested_rip: 0x.. int_ctl: 0x.. event_inj: 0x..
// nested_npt=y nested_cr3: 0x.." (VMX: "vmcs:", "nested_ept="); kvm_nested_vmrun (before 5.12):
// "rip: 0x.. vmcb: 0x.. nrip: 0x.. int_ctl: 0x.. event_inj: 0x.. npt: on".
bool parse_nested_vmenter(const Tokens& tk, TraceLine& out) {
  bool l1_rip = false, vmcb = false, inj = false;
  auto& nv = out.fields<kvmtrace::KvmEvent::NestedVmenter>();
  for (size_t i = 0; i + 1 < tk.n; ++i) {
    const std::string_view key = key_of(tk[i]);
    uint64_t x = 0;
    if (!parse_hex(tk[i + 1], x)) continue;
    if (key == "rip")
      l1_rip = true, nv.l1_rip = x;
    else if (key == "vmcb" || key == "vmcs")
      vmcb = true, nv.vmcb = x, nv.isa = key == "vmcb" ? Isa::Svm : Isa::Vmx;
    else if (key == "nested_rip" || key == "nrip")
      out.rip = x;
    else if (key == "int_ctl")
      nv.int_ctl = static_cast<uint32_t>(x);
    else if (key == "event_inj")
      inj = true, out.injected = Injection{static_cast<uint32_t>(x), 0};
  }
  return l1_rip && vmcb && inj;
}

// "CPU 3/KVM" -> 3.
int32_t vcpu_from_task(std::string_view comm) {
  comm = trim(comm);
  if (comm.size() < 9 || comm.substr(0, 4) != "CPU " || comm.substr(comm.size() - 4) != "/KVM") return -1;
  uint64_t n = 0;
  if (!parse_dec(comm.substr(4, comm.size() - 8), n) || n > 0xFFFF) return -1;
  return static_cast<int32_t>(n);
}

// The text before the event name: "comm-pid [cpu] flags secs.usecs:" (ftrace / trace-cmd),
// "comm pid [cpu] secs.usecs:" (perf), "secs.usecs:" or nothing.
bool parse_prefix_text(std::string_view p, TraceLine& out, bool perf) {
  p = trim(p);
  if (p.empty()) {
    out.prefix = PrefixStyle::None;
    return true;
  }
  if (p.back() != ':') return false;
  p.remove_suffix(1);
  p = trim(p);
  size_t sp = last_space(p);
  const std::string_view ts = sp == std::string_view::npos ? p : p.substr(sp + 1);
  if (!parse_timestamp(ts, out.time_ns)) return false;
  out.has_time = true;
  if (sp == std::string_view::npos) {
    out.prefix = PrefixStyle::TimeOnly;
    return true;
  }
  p = trim(p.substr(0, sp));
  // Optional irq-flags column (ftrace "d..1", "dN.2.", trace-cmd "...."), then "[cpu]".
  sp = last_space(p);
  std::string_view last = sp == std::string_view::npos ? p : p.substr(sp + 1);
  if (!last.empty() && last.front() != '[' && last.size() <= 6 && !perf) {
    bool flags = true, all_digits = true;
    for (char c : last) {
      if (!(c == '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c))) flags = false;
      if (!is_digit(c)) all_digits = false;
    }
    if (all_digits) flags = false;  // perf's pid column, not ftrace's irq flags
    if (flags && sp != std::string_view::npos) {
      out.has_cpu_flags = true;
      p = trim(p.substr(0, sp));
      sp = last_space(p);
      last = sp == std::string_view::npos ? p : p.substr(sp + 1);
    }
  }
  std::string_view task = p;
  if (last.size() >= 3 && last.front() == '[' && last.back() == ']') {
    uint64_t cpu = 0;
    if (!parse_dec(last.substr(1, last.size() - 2), cpu) || cpu > 0xFFFF) return false;
    out.host_cpu = static_cast<int32_t>(cpu);
    task = sp == std::string_view::npos ? std::string_view{} : trim(p.substr(0, sp));
  }
  // Task: "comm-pid" (ftrace) or "comm pid" / "comm pid/tid" (perf). Some perf-based tools put
  // the irq-flags column after the pid ("<...> 206966 .N.. [017]"): dropped.
  if (const size_t b = last_space(task); b != std::string_view::npos && task.size() - b - 1 <= 6) {
    const std::string_view f = task.substr(b + 1);
    bool flags = f.find('.') != std::string_view::npos;
    for (char c : f)
      if (!(c == '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c))) flags = false;
    if (flags) task = trim(task.substr(0, b));
  }
  if (!task.empty()) {
    const size_t dash = task.find_last_of('-');
    const size_t blank = last_space(task);
    uint64_t pid = 0;
    std::string_view comm;
    if (dash != std::string_view::npos && (blank == std::string_view::npos || dash > blank) &&
        parse_dec(task.substr(dash + 1), pid)) {
      comm = task.substr(0, dash);
    } else if (blank != std::string_view::npos) {
      std::string_view id = task.substr(blank + 1);
      // perf script -F pid,tid: "pid/tid", the process (the VMM: its VM, issue #16) and the thread.
      uint64_t tgid = 0;
      bool has_tgid = false;
      if (const size_t slash = id.find('/'); slash != std::string_view::npos) {
        has_tgid = parse_dec(id.substr(0, slash), tgid) && tgid <= 0x7FFF'FFFF;
        id = id.substr(slash + 1);
      }
      if (parse_dec(id, pid)) {
        comm = task.substr(0, blank);
        if (has_tgid) out.tgid = static_cast<int32_t>(tgid);
      } else {
        comm = task;
      }
    } else {
      comm = task;
    }
    if (pid <= 0x7FFF'FFFF && !comm.empty() && comm.size() != task.size()) out.pid = static_cast<int32_t>(pid);
    out.task_vcpu = vcpu_from_task(comm);
  }
  out.prefix = perf ? PrefixStyle::Perf : PrefixStyle::Ftrace;
  return true;
}

// parse_prefix_text with the last prefix that parsed remembered (per thread) but for its
// timestamp: consecutive lines of a trace mostly come from one task on one CPU and differ only
// in their time, and a pasted trace's joined line has its first half's prefix (issue #15). Of
// "comm-pid [cpu] flags secs.usecs:" everything parse_prefix_text reads after the timestamp
// comes from the text before it (the head), so an equal head gives the same fields; the
// timestamp is parsed each time. `out` is a fresh TraceLine at every call site, so the fields a
// parse sets are all it changes.
bool parse_prefix(std::string_view p, TraceLine& out, bool perf) {
  struct Memo {
    char head[128];
    size_t len = SIZE_MAX;
    bool perf = false;
    PrefixStyle prefix = PrefixStyle::None;
    bool has_cpu_flags = false;
    int32_t host_cpu = -1, pid = -1, tgid = -1, task_vcpu = -1;
  };
  thread_local Memo m;
  // The split parse_prefix_text makes: trim, the ':', trim, the last word is the timestamp.
  std::string_view q = trim(p);
  if (q.empty() || q.back() != ':') return parse_prefix_text(p, out, perf);
  q.remove_suffix(1);
  q = trim(q);
  const size_t sp = last_space(q);
  if (sp == std::string_view::npos) return parse_prefix_text(p, out, perf);  // "secs.usecs:" alone
  const std::string_view head = q.substr(0, sp);
  if (head.size() == m.len && perf == m.perf && std::memcmp(head.data(), m.head, head.size()) == 0) {
    if (!parse_timestamp(q.substr(sp + 1), out.time_ns)) return false;
    out.has_time = true;
    out.prefix = m.prefix;
    out.has_cpu_flags = m.has_cpu_flags;
    out.host_cpu = m.host_cpu;
    out.pid = m.pid;
    out.tgid = m.tgid;
    out.task_vcpu = m.task_vcpu;
    return true;
  }
  if (!parse_prefix_text(p, out, perf)) return false;
  if (head.size() <= sizeof m.head) {
    std::memcpy(m.head, head.data(), head.size());
    m.len = head.size();
    m.perf = perf;
    m.prefix = out.prefix;
    m.has_cpu_flags = out.has_cpu_flags;
    m.host_cpu = out.host_cpu;
    m.pid = out.pid;
    m.tgid = out.tgid;
    m.task_vcpu = out.task_vcpu;
  }
  return true;
}

// The fields of an event libtraceevent could not format, as trace-cmd report prints them:
// "[FAILED TO PARSE] exception=6 has_error=0 error_code=0 reinjected=0" (kvm_inj_exception on
// 6.x kernels: its print format uses __print_symbolic with an empty list). Values decimal
// (signed ones with '-') or 0x hex; arrays "insn=ARRAY[0f, 0b, 00]".
struct TextFields {
  std::array<uint64_t, kvmtrace::kFieldCount> v{};
  uint64_t present = 0;  // bit per Field
  uint8_t insn[16] = {};
  size_t insn_count = 0;
  bool has(Field x) const { return (present >> x) & 1; }
  uint64_t get(Field x) const { return has(x) ? v[x] : 0; }
  size_t bytes(Field x, uint8_t* out, size_t max) const {
    if (x != kvmtrace::fInsn) return 0;
    const size_t n = std::min(insn_count, max);
    std::memcpy(out, insn, n);
    return n;
  }
};
static_assert(kvmtrace::kFieldCount <= 64);

constexpr std::string_view kFailedToParse = "[FAILED TO PARSE]";

bool parse_failed_fields(TraceEvent ev, std::string_view body, TraceLine& out) {
  const Tokens tk(body.substr(kFailedToParse.size()));
  if (tk.overflow) return false;
  TextFields f;
  for (size_t i = 0; i < tk.n; ++i) {
    const std::string_view tok = tk[i];
    const size_t eq = tok.find('=');
    if (eq == std::string_view::npos || eq == 0) return false;
    const std::optional<Field> field = kvmtrace::field_by_name(tok.substr(0, eq));
    std::string_view value = tok.substr(eq + 1);
    if (value.substr(0, 6) == "ARRAY[") {  // elements are the following tokens, up to "..]"
      value.remove_prefix(6);
      for (;;) {
        const bool last = !value.empty() && value.back() == ']';
        if (last) value.remove_suffix(1);
        uint32_t b = 0;
        if (!value.empty() && parse_hex32(value, b) && field == kvmtrace::fInsn && f.insn_count < sizeof f.insn)
          f.insn[f.insn_count++] = static_cast<uint8_t>(b);
        if (last || i + 1 >= tk.n) break;
        value = tk[++i];
      }
      if (field) f.present |= uint64_t{1} << *field;
      continue;
    }
    if (!field) continue;  // a field the importer does not use (csbase, flags, requests, ...)
    uint64_t x = 0;
    const bool negative = !value.empty() && value[0] == '-';
    if (!parse_num(negative ? value.substr(1) : value, x)) return false;
    f.v[*field] = negative ? static_cast<uint64_t>(-static_cast<int64_t>(x)) : x;
    f.present |= uint64_t{1} << *field;
  }
  return kvmtrace::fill_from_fields(ev, f, out);
}

bool parse_body(TraceEvent ev, std::string_view body, TraceLine& out) {
  if (body.substr(0, kFailedToParse.size()) == kFailedToParse) return parse_failed_fields(ev, body, out);
  if (ev == TraceEvent::EmulateInsn) return parse_emulate_insn(body, out);
  const Tokens tk(body);
  if (tk.overflow) return false;
  switch (ev) {
    case TraceEvent::Exit:
    case TraceEvent::NestedVmexit:
    case TraceEvent::NestedVmexitInject: return parse_exit_body(tk, out);
    case TraceEvent::Entry: return parse_entry_body(tk, out);
    case TraceEvent::InjVirq: return parse_inj_virq(tk, out);
    case TraceEvent::InjException: return parse_inj_exception(tk, out);
    case TraceEvent::PageFault: return parse_page_fault(tk, out);
    case TraceEvent::NestedIntrVmexit: return parse_nested_intr(tk, out);
    case TraceEvent::Pio: return parse_pio(tk, out);
    case TraceEvent::Msr: return parse_msr(tk, out);
    case TraceEvent::ApicAcceptIrq: return parse_apic(tk, out, "vec");
    case TraceEvent::Eoi: return parse_apic(tk, out, "vector");
    case TraceEvent::UserspaceExit: return parse_userspace_exit(tk, out);
    case TraceEvent::Mmio: return parse_mmio(tk, out);
    case TraceEvent::NestedVmenter: return parse_nested_vmenter(tk, out);
    default: return true;
  }
}

// Words a wrapped KVM line can continue with.
bool continuation_word(std::string_view t) {
  uint64_t x = 0;
  if (parse_hex(t, x)) return true;
  static constexpr std::string_view kWords[] = {
      "info1", "info2", "intr_info", "error_code", "requests", "rip", "reason", "vcpu", "info", "int_info",
      "int_info_err", "isa", "[reinjected]", "[immediate", "exit]", "address",
      "ext_inf1:", "ext_inf2:", "ext_int:", "ext_int_err:",
      // kvm_emulate_insn's mode and result (arch/x86/kvm/trace.h)
      "(real)", "(vm86)", "(prot16)", "(prot32)", "(prot64)", "failed", "FAIL"};
  for (std::string_view w : kWords)
    if (t == w) return true;
  return false;
}

// trace-cmd report's "cpus=4", "version = 6", "CPU 3 is empty", "CPU:3 [LOST 12 EVENTS]"; ftrace's
// "tracer: nop". Cheap on event lines: QEMU's vCPU threads ("CPU 0/KVM-1234 [000] ...") start
// with "CPU " too, so the check looks only at the end of the line.
bool is_header(std::string_view s) {
  constexpr std::string_view kEmpty = " is empty";
  switch (s[0]) {
    case 'c': return s.substr(0, 5) == "cpus=";
    case 'v': return s.substr(0, 10) == "version = ";
    case 't': return s.substr(0, 8) == "tracer: ";
    case 'C':
      return s.substr(0, 4) == "CPU:" ||
             (s.substr(0, 4) == "CPU " && s.size() > kEmpty.size() && s.substr(s.size() - kEmpty.size()) == kEmpty);
    default: return false;
  }
}

}  // namespace

std::string_view strip_quotes(std::string_view line, bool* quoted) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  bool q = false;
  for (;;) {
    const size_t i = leading_blanks(line);
    if (i < line.size() && line[i] == '>') {
      line.remove_prefix(i + 1);
      q = true;
      continue;
    }
    break;
  }
  if (quoted) *quoted = q;
  return line;
}

std::string_view clean_line(std::string_view line, std::string& buf, LineRepairs& r) {
  r = LineRepairs{};
  // Bytes no tracer prints: NUL and other control bytes, and anything outside ASCII (a mailer's
  // non-breaking spaces and their mojibake, binary data around a paste). Runs become one blank.
  bool dirty = false;
  for (char c : line) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x80 || (u < 0x20 && c != '\t')) {
      dirty = true;
      break;
    }
  }
  std::string_view s = line;
  if (dirty) {
    buf.clear();
    bool blank = false;
    for (char c : line) {
      const unsigned char u = static_cast<unsigned char>(c);
      if (u >= 0x80 || (u < 0x20 && c != '\t')) {
        if (!blank) buf += ' ';
        blank = true;
      } else {
        buf += c;
        blank = false;
      }
    }
    r.non_text = true;
    s = buf;
  }
  // A leading "CPU 0:" / "CPU0:" / "cpu 0:" tag (not QEMU's "CPU 0/KVM" thread name, which
  // has a '/' after the number).
  {
    size_t i = 0;
    while (i < s.size() && is_space(s[i])) ++i;
    if (s.size() - i > 4 && (s.substr(i, 3) == "CPU" || s.substr(i, 3) == "cpu")) {
      size_t j = i + 3;
      while (j < s.size() && s[j] == ' ') ++j;
      const size_t d = j;
      while (j < s.size() && is_digit(s[j])) ++j;
      uint64_t n = 0;
      if (j > d && j < s.size() && s[j] == ':' && (j + 1 == s.size() || is_space(s[j + 1])) &&
          parse_dec(s.substr(d, j - d), n) && n <= 0xFFFF) {
        r.cpu_prefix = true;
        r.host_cpu = static_cast<int32_t>(n);
        s.remove_prefix(j + 1);
      }
    }
  }
  // A trailing author marker: " <--", " <==", " <<" and what follows ("<-------- [1]", "<== here").
  for (size_t m = s.find(" <"); m != std::string_view::npos; m = s.find(" <", m + 1)) {
    if (m + 2 < s.size() && (s[m + 2] == '-' || s[m + 2] == '=' || s[m + 2] == '<')) {
      s = s.substr(0, m);
      // ... and the blanks before it, which would read as a mailer's soft line break.
      while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
      r.marker = true;
      break;
    }
  }
  // A quoted-printable mail writes '=' as "=3D" (RFC 2045 6.7): "msr_write 40000070 =3D 0x0".
  // No KVM print format has it (values after '=' are decimal or 0x hex), so it is always that.
  if (s.find("=3D") != std::string_view::npos) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      if (s.substr(i, 3) == "=3D") {
        out += '=';
        i += 2;
      } else {
        out += s[i];
      }
    }
    buf = std::move(out);
    s = buf;
    r.qp_equals = true;
  }
  // trace-cmd's kvm plugin, run on a kernel whose tracepoint lost the fields it reads (Linux
  // 5.10 made kvm_nested_vmexit print like kvm_exit), prints libtraceevent's complaints and then
  // the kernel's own text: 'CAN'T FIND FIELD "rip"<CANT FIND FIELD exit_code>vcpu 0 reason npf ...'.
  // The complaints go; what follows is the line.
  for (const std::string_view what : {std::string_view("CAN'T FIND FIELD \""), std::string_view("<CANT FIND FIELD ")}) {
    if (s.find("FIND FIELD") == std::string_view::npos) break;  // one scan for the common line
    for (size_t at = s.find(what); at != std::string_view::npos; at = s.find(what)) {
      const char close = what.back() == '"' ? '"' : '>';
      const size_t end = s.find(close, at + what.size());
      if (end == std::string_view::npos) break;
      std::string rest = std::string(s.substr(0, at)) + std::string(s.substr(end + 1));
      buf = std::move(rest);
      s = buf;
      r.missing_field = true;
    }
  }
  if (s.data() == line.data() && s.size() == line.size()) return line;
  if (s.data() != buf.data()) {  // a view into `line`: copy so the caller may keep `buf` only
    std::string tmp(s);
    buf = std::move(tmp);
    s = buf;
  }
  return s;
}

bool has_trace_prefix(std::string_view line) {
  // A prefix ends in "secs.usecs:" among the first 8 words. Most lines asked (the second half of
  // a wrapped line, prose) have no ':' at all: one memchr, not a tokenization (issue #15: this
  // was a tenth of parsing a pasted trace). Words are read up to the 8th only.
  if (line.find(':') == std::string_view::npos) return false;
  const std::string_view s = trim(line);
  size_t i = 0;
  for (size_t word = 0; word < 8 && i < s.size(); ++word) {
    while (i < s.size() && is_delim(s[i])) ++i;
    const size_t b = i;
    while (i < s.size() && !is_delim(s[i])) ++i;
    const std::string_view t = s.substr(b, i - b);
    if (t.empty()) break;
    if (t.size() < 4 || t.back() != ':') continue;
    uint64_t ns = 0;
    if (parse_timestamp(t.substr(0, t.size() - 1), ns)) return true;
  }
  return false;
}

bool continues_a_line(std::string_view line) {
  // parse_trace_line below: without ':' no "kvm_<name>:", no "secs.usecs:" and no dangling
  // prefix can match, so after the blank, comment and header checks only its last step (the
  // tokens: Continuation or Text) is left; has_trace_prefix returns false at its first check.
  if (line.find(':') != std::string_view::npos) return false;
  const std::string_view s = trim(line);
  return !s.empty() && s.front() != '#' && !is_header(s);
}

bool is_comment_line(std::string_view line) {
  const std::string_view s = trim(line);  // as parse_trace_line's first steps
  return !s.empty() && (s.front() == '#' || is_header(s));
}

LineClass parse_trace_line(std::string_view line, TraceLine& out, bool perf_only, bool prefix_required) {
  out = TraceLine{};
  const std::string_view s = trim(line);
  if (s.empty()) return LineClass::Blank;
  if (s.front() == '#' || is_header(s)) return LineClass::Comment;

  // Find "kvm_<name>:" (perf: "kvm:kvm_<name>:") at a word start.
  size_t pos = 0;
  size_t unknown_kvm = std::string_view::npos;  // first "kvm_<name>:" of a tracepoint not in kEvents
  while ((pos = s.find("kvm_", pos)) != std::string_view::npos) {
    const bool word_start = pos == 0 || is_space(s[pos - 1]) || s[pos - 1] == ':';
    size_t end = pos;
    while (end < s.size() && is_ident(s[end])) ++end;
    if (word_start && end < s.size() && s[end] == ':') {
      const TraceEvent ev = event_from_name(s.substr(pos, end - pos));
      const bool perf = pos >= 4 && s.substr(pos - 4, 4) == "kvm:";
      if (ev == TraceEvent::None && unknown_kvm == std::string_view::npos && (!perf_only || perf)) unknown_kvm = pos;
      if (ev != TraceEvent::None && (!perf_only || perf)) {
        const std::string_view prefix = s.substr(0, perf ? pos - 4 : pos);
        if (!parse_prefix(prefix, out, perf) || (prefix_required && out.prefix < PrefixStyle::Ftrace)) {
          out = TraceLine{};
          return LineClass::Text;
        }
        out.event = ev;
        if (!parse_body(ev, trim(s.substr(end + 1)), out)) return LineClass::BadEvent;
        return LineClass::Event;
      }
    }
    pos = end > pos ? end : pos + 1;
  }
  // Another KVM tracepoint (kvm_fpu, kvm_ack_irq, kvm_set_irq, ...): context, with or without a
  // prefix, as trace.dat import and the live recorder classify it (trace_dat.cpp: any event
  // not in kEvents is Other).
  if (unknown_kvm != std::string_view::npos) {
    const bool perf = unknown_kvm >= 4 && s.substr(unknown_kvm - 4, 4) == "kvm:";
    TraceLine t;
    if (parse_prefix(s.substr(0, perf ? unknown_kvm - 4 : unknown_kvm), t, perf) &&
        !(prefix_required && t.prefix < PrefixStyle::Ftrace)) {
      out = t;
      out.event = TraceEvent::Other;
      out.kvm_system = true;
      return LineClass::Event;
    }
  }
  // Another tracepoint: "<prefix> secs.usecs: name: ..." (perf: "sys:name:").
  for (size_t colon = s.find(": "); colon != std::string_view::npos; colon = s.find(": ", colon + 1)) {
    size_t b = colon;
    while (b > 0 && !is_space(s[b - 1])) --b;
    uint64_t ns = 0;
    if (!parse_timestamp(s.substr(b, colon - b), ns)) continue;
    size_t n = colon + 1;
    while (n < s.size() && is_space(s[n])) ++n;
    size_t e = n;
    // Any word ending in ':': tracepoint names ("sched_switch:", "kvmmmu:kvm_mmu_get_page:") and
    // what an author put in their place ("<hack>:" for a debug trace_printk).
    while (e < s.size() && !is_space(s[e])) ++e;
    const bool named = e > n + 1 && s[e - 1] == ':';
    // Parsed into `out` itself (still as reset above), reset again if it is not this.
    if (named && !perf_only) {
      if (parse_prefix(s.substr(0, colon + 1), out, false) && out.has_time &&
          !(prefix_required && out.prefix < PrefixStyle::Ftrace)) {
        out.event = TraceEvent::Other;
        return LineClass::Event;
      }
      out = TraceLine{};
    }
    break;
  }
  // A prefix whose event went to the next line: "... [002] d..1 1234.567890:".
  if (s.back() == ':') {
    TraceLine t;
    if (parse_prefix(s, t, false) && t.has_time) return LineClass::DanglingPrefix;
  }
  const Tokens tk(s);
  if (!tk.overflow && tk.n > 0) {
    bool all = true;
    for (size_t i = 0; i < tk.n && all; ++i) all = continuation_word(tk[i]);
    if (all) return LineClass::Continuation;
  }
  return LineClass::Text;
}

}  // namespace es::import
