#include "replay/names.h"

#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>

#include "exitscope/names.h"
#include "exitscope/record.h"

namespace es::replay {

namespace {

// Both tables come from the ABI's (exitscope/record_kinds.def, decisions.def), the same ones
// record.h makes the numbers from; all_named below proves them gap-free.
constexpr std::array<std::string_view, ES_KIND_COUNT> kKindNames = [] {
  std::array<std::string_view, ES_KIND_COUNT> n{};
#define ES_KIND(id, name) n[id] = #name;
#include "exitscope/record_kinds.def"
#undef ES_KIND
  return n;
}();

constexpr std::array<std::string_view, ES_DECISION_COUNT> kDecisionNames = [] {
  std::array<std::string_view, ES_DECISION_COUNT> n{};
#define ES_DECISION(id, name) n[id] = #name;
#include "exitscope/decisions.def"
#undef ES_DECISION
  return n;
}();

template <size_t N>
constexpr bool all_named(std::array<std::string_view, N> table) {
  for (size_t i = 0; i < N; ++i)
    if (table[i].empty()) return false;
  return true;
}
static_assert(all_named(kKindNames), "every ES_KIND_* needs a name");
static_assert(all_named(kDecisionNames), "every ES_DECISION_* needs a name");

constexpr std::array<std::string_view, 6> kEndNames = {"guest exit",     "limit",   "triple fault",
                                                       "internal error", "stopped", "halted"};
static_assert(ES_END_HALTED + 1 == kEndNames.size(), "every ES_END_* needs a name");
constexpr std::array<std::string_view, 4> kErrorNames = {"", "unimplemented instruction", "invalid state",
                                                         "bad memory"};
static_assert(ES_ERROR_BAD_MEMORY + 1 == kErrorNames.size());

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

std::string_view strip_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() > prefix.size() && iequal(s.substr(0, prefix.size()), prefix)) s.remove_prefix(prefix.size());
  return s;
}

}  // namespace

std::string_view kind_name(uint16_t kind) { return kind < kKindNames.size() ? kKindNames[kind] : std::string_view{}; }
std::string_view decision_name(uint32_t d) {
  return d < kDecisionNames.size() ? kDecisionNames[d] : std::string_view{};
}
std::string_view end_reason_name(uint32_t e) { return e < kEndNames.size() ? kEndNames[e] : std::string_view{}; }
std::string_view error_name(uint32_t e) { return e < kErrorNames.size() ? kErrorNames[e] : std::string_view{}; }

std::optional<uint64_t> parse_uint(std::string_view t) {
  if (t.empty()) return std::nullopt;
  int base = 10;
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
    base = 16;
    t.remove_prefix(2);
  }
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v, base);
  if (ec != std::errc() || p != t.data() + t.size()) return std::nullopt;
  return v;
}

std::optional<uint16_t> parse_kind(std::string_view text) {
  if (auto n = parse_uint(text)) {
    if (*n < ES_KIND_COUNT) return static_cast<uint16_t>(*n);
    return std::nullopt;
  }
  text = strip_prefix(text, "ES_KIND_");
  for (uint16_t k = 0; k < kKindNames.size(); ++k)
    if (iequal(kKindNames[k], text)) return k;
  // Convenience aliases.
  if (iequal(text, "exit")) return uint16_t{ES_KIND_VM_EXIT};
  if (iequal(text, "entry")) return uint16_t{ES_KIND_VM_ENTRY};
  return std::nullopt;
}

std::optional<uint32_t> parse_decision(std::string_view text) {
  text = strip_prefix(text, "ES_DECISION_");
  for (uint32_t d = 0; d < kDecisionNames.size(); ++d)
    if (iequal(kDecisionNames[d], text)) return d;
  return std::nullopt;
}

std::optional<uint64_t> parse_time_ns(std::string_view text) {
  struct Unit {
    std::string_view suffix;
    double scale;
  };
  static constexpr Unit kUnits[] = {{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}};
  for (const Unit& u : kUnits) {
    if (text.size() > u.suffix.size() && text.substr(text.size() - u.suffix.size()) == u.suffix) {
      std::string_view num = text.substr(0, text.size() - u.suffix.size());
      double v = 0;
      auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
      if (ec != std::errc() || p != num.data() + num.size() || v < 0) return std::nullopt;
      return static_cast<uint64_t>(v * u.scale + 0.5);
    }
  }
  return parse_uint(text);
}

// "%llu.%09llu" of seconds and nanoseconds, without printf (exports print every event's time).
void append_time(std::string& out, uint64_t ns) {
  char buf[32];
  auto [p, ec] = std::to_chars(buf, buf + 20, ns / 1000000000ull);
  (void)ec;
  *p++ = '.';
  uint64_t frac = ns % 1000000000ull;
  for (int i = 8; i >= 0; --i) {
    p[i] = static_cast<char>('0' + frac % 10);
    frac /= 10;
  }
  out.append(buf, static_cast<size_t>(p + 9 - buf));
}

std::string format_time(uint64_t ns) {
  std::string s;
  append_time(s, ns);
  return s;
}

std::string kind_name_list() {
  std::string s;
  for (uint16_t k = 1; k < kKindNames.size(); ++k) {
    if (k > 1) s += ", ";
    s += kKindNames[k];
  }
  return s;
}

// From the ABI's rule table (exitscope/violations.def), as the checker's rules().
std::string_view violation_rule_name(uint32_t rule) { return es_violation_name(rule); }
std::string_view violation_rule_description(uint32_t rule) { return es_violation_description(rule); }

}  // namespace es::replay
