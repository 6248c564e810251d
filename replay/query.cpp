#include "replay/query.h"

#include <array>
#include <cctype>

#include "replay/names.h"

namespace es::replay {

namespace {

constexpr std::array<std::string_view, 8> kKeys = {"kind", "reason", "vector", "vcpu", "level", "chain", "from", "to"};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Result<uint64_t> number(std::string_view key, std::string_view value, uint64_t max) {
  auto n = parse_uint(value);
  if (!n || *n > max)
    return make_error("'" + std::string(key) + ":' needs a number up to " + std::to_string(max) +
                      " (decimal or 0x hex), not '" + std::string(value) + "'.");
  return *n;
}

}  // namespace

std::string query_key_list() {
  std::string s;
  for (std::string_view k : kKeys) {
    if (!s.empty()) s += ", ";
    s += k;
  }
  return s;
}

Result<EventFilter> parse_query(std::string_view text) {
  EventFilter f;
  size_t pos = 0;
  while (pos < text.size()) {
    while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
    if (pos >= text.size()) break;
    size_t end = pos;
    while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end]))) ++end;
    const std::string_view term = text.substr(pos, end - pos);
    pos = end;
    const size_t colon = term.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return make_error("query term '" + std::string(term) + "' is not key:value; use keys " + query_key_list() +
                        " (e.g. reason:EPT_VIOLATION vector:0x20).");
    const std::string key = lower(term.substr(0, colon));
    const std::string_view value = term.substr(colon + 1);
    if (value.empty()) return make_error("query key '" + key + ":' has no value; write e.g. " + key + ":1.");
    if (key == "kind") {
      std::string v(value);
      auto k = parse_kind(v);
      if (!k && lower(v).rfind("vm_", 0) != 0) k = parse_kind("VM_" + v);
      if (!k) return make_error("unknown kind '" + v + "' in 'kind:' (one of " + kind_name_list() + ").");
      f.kind = *k;
    } else if (key == "reason") {
      if (auto r = set_reason(f, value); !r) return make_error(r.error());
    } else if (key == "vector") {
      auto n = number(key, value, 255);
      if (!n) return make_error(n.error());
      f.vector = static_cast<uint8_t>(*n);
    } else if (key == "vcpu") {
      auto n = number(key, value, 65535);
      if (!n) return make_error(n.error());
      f.vcpu = static_cast<uint16_t>(*n);
    } else if (key == "level") {
      std::string_view v = value;
      if (v.size() == 2 && (v[0] == 'L' || v[0] == 'l')) v.remove_prefix(1);
      auto n = number(key, v, 255);
      if (!n) return make_error(n.error());
      f.level = static_cast<uint8_t>(*n);
    } else if (key == "chain") {
      auto n = number(key, value, UINT64_MAX);
      if (!n) return make_error(n.error());
      f.chain = *n;
    } else if (key == "from" || key == "to") {
      auto ns = parse_time_ns(value);
      if (!ns)
        return make_error("'" + key + ":' needs a time such as 1500, 1.5us, 20ms or 2s, not '" + std::string(value) +
                          "'.");
      (key == "from" ? f.from_ns : f.to_ns) = *ns;
    } else {
      return make_error("unknown query key '" + key + "'; use one of " + query_key_list() + ".");
    }
  }
  return f;
}

}  // namespace es::replay
