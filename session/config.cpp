#include "session/config.h"

#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>

namespace es::session {

namespace {

// ordered_json: the keys stay in the order written, so the stored text is the one recordings
// made before nlohmann-json have (a byte-for-byte comparison of two sessions still works).
using Json = nlohmann::ordered_json;

// Parsed without exceptions: a recording's row is untrusted input (tests/reliability).
Json parse(std::string_view text) { return Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false); }

}  // namespace

std::string to_json(const HvStoredConfig& c) {
  Json j;
  j["max_exits"] = c.max_exits;
  j["max_insns"] = c.max_insns;
  j["guest_arg"] = c.guest_arg;
  j["eager_ept"] = c.eager_ept;
  j["exception_bitmap"] = c.exception_bitmap;
  j["nested"] = c.nested;
  j["bug"] = c.bug;
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);  // invalid UTF-8 -> U+FFFD, never a throw
}

Result<HvStoredConfig> parse_hv_config(std::string_view text) {
  const Json j = parse(text);
  if (j.is_discarded()) return Error{"the session's configuration is not valid JSON"};
  if (!j.is_object()) return Error{"the session's configuration is not a JSON object"};
  HvStoredConfig c;
  std::string bad;
  auto unsigned_key = [&](const char* key, auto& out) {
    const auto it = j.find(key);
    if (it == j.end()) return;
    using T = std::remove_reference_t<decltype(out)>;
    if (!it->is_number_unsigned() || it->template get<uint64_t>() > std::numeric_limits<T>::max()) {
      if (bad.empty()) bad = key;
      return;
    }
    out = it->template get<T>();
  };
  auto bool_key = [&](const char* key, bool& out) {
    const auto it = j.find(key);
    if (it == j.end()) return;
    if (!it->is_boolean()) {
      if (bad.empty()) bad = key;
      return;
    }
    out = it->get<bool>();
  };
  unsigned_key("max_exits", c.max_exits);
  unsigned_key("max_insns", c.max_insns);
  unsigned_key("guest_arg", c.guest_arg);
  bool_key("eager_ept", c.eager_ept);
  unsigned_key("exception_bitmap", c.exception_bitmap);
  bool_key("nested", c.nested);
  if (const auto it = j.find("bug"); it != j.end()) {
    if (it->is_string())
      c.bug = it->get<std::string>();
    else if (bad.empty())
      bad = "bug";
  }
  if (!bad.empty()) return Error{"the session's configuration has \"" + bad + "\" of the wrong type"};
  return c;
}

std::string config_source(std::string_view text) {
  const Json j = parse(text);
  if (j.is_discarded() || !j.is_object()) return {};
  if (j.contains("kvm")) return "kvm";
  if (j.contains("import")) return "import";
  if (j.contains("max_exits") || j.contains("max_insns") || j.contains("nested")) return "hv";
  return {};
}

}  // namespace es::session
