// The import's session configuration, {"import": {...}} in sessions.config_json: written and
// read through nlohmann-json (issue #19), never by string concatenation or by searching the text.
#include <nlohmann/json.hpp>

#include "probes/recorder/config_text.h"

#include "replay/import/text_import.h"

namespace es::import {

namespace {

// ordered_json: the keys stay in the order written, the order recordings on disk have.
using Json = nlohmann::ordered_json;

// Imports written before nlohmann-json copied the bytes of file names and trace text as they
// were, so an old recording may hold invalid UTF-8, which the parser refuses: each such byte
// becomes U+FFFD first (what the writer does now), the rest of the text is kept.
std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    for (size_t k = 1; n && k < n; ++k)
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) n = 0;
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

// A recording's row is untrusted input (tests/reliability): parsed without exceptions.
Json parse(std::string_view text) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded()) return j;
  const std::string fixed = valid_utf8(text);
  return Json::parse(fixed.begin(), fixed.end(), nullptr, /*allow_exceptions=*/false);
}

// A string as `exitscope info` shows it: a control character (stored as \u00XX) becomes '?'.
std::string shown(const Json& v) {
  if (!v.is_string()) return {};
  std::string s = v.get<std::string>();
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  return s;
}

std::string str(const Json& o, const char* key) {
  const auto it = o.find(key);
  return it == o.end() ? std::string() : shown(*it);
}

std::vector<std::string> strs(const Json& o, const char* key) {
  std::vector<std::string> v;
  const auto it = o.find(key);
  if (it == o.end() || !it->is_array()) return v;
  for (const Json& e : *it)
    if (e.is_string()) v.push_back(shown(e));
  return v;
}

uint64_t num(const Json& o, const char* key) {
  const auto it = o.find(key);
  return it != o.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

constexpr std::string_view kUnreadable = "configuration unreadable (its JSON is damaged)";

}  // namespace

std::string import_config_json(const ImportStats& s, std::string_view file) {
  Json i;
  i["file"] = std::string(file);
  i["format"] = s.format;
  i["lines"] = s.lines;
  i["kvm_events"] = s.kvm_events;
  i["other_events"] = s.other_events;
  i["comment_lines"] = s.comment_lines;
  i["joined_lines"] = s.joined_lines;
  i["quoted_lines"] = s.quoted_lines;
  i["unparsed"] = s.unparsed;
  i["unparsed_lines"] = s.unparsed_lines;
  i["vendor"] = s.vendor;
  i["era"] = s.era;
  i["assumptions"] = s.assumptions;
  i["skipped"] = s.skipped;
  i["repaired"] = s.repaired;
  if (!s.vcpu_map.empty()) i["vcpu_map"] = s.vcpu_map;
  if (s.file_version) {  // trace.dat facts
    i["file_version"] = s.file_version;
    i["uname"] = s.uname;
    i["cpus"] = s.cpus;
    i["clock"] = s.clock;
    i["lost_events"] = s.lost_events;
  }
  Json j;
  j["import"] = std::move(i);
  return recorder::config_text(j);
}

std::vector<std::string> describe_vcpu_map(std::string_view text) {
  const Json j = parse(text);
  if (j.is_discarded() || !j.is_object()) return {};  // a damaged one is said by the import / kvm line
  for (const char* source : {"import", "kvm"}) {
    const auto it = j.find(source);
    if (it != j.end() && it->is_object() && it->contains("vcpu_map")) return strs(*it, "vcpu_map");
  }
  return {};
}

std::string describe_import_config(std::string_view text) {
  const Json j = parse(text);
  if (j.is_discarded()) {
    // Said once, as for a KVM recording (probes/kvm/kvm_config.cpp), when it was an import's.
    return text.find("{\"import\":") != std::string_view::npos ? std::string(kUnreadable) : std::string();
  }
  if (!j.is_object()) return {};
  const auto it = j.find("import");
  if (it == j.end()) return {};
  if (!it->is_object()) return std::string(kUnreadable);
  const Json& im = *it;
  const bool dat = num(im, "file_version") != 0;
  const char* unit = dat ? " records" : " lines";
  std::string o = str(im, "file") + " (" + str(im, "format") + ", " + str(im, "vendor") + "), " +
                  std::to_string(num(im, "lines")) + unit + ": " + std::to_string(num(im, "kvm_events")) +
                  " KVM events, " + std::to_string(num(im, "other_events")) + " other, " +
                  std::to_string(num(im, "unparsed")) + (dat ? " undecodable" : " unparsed");
  std::string listed;
  if (const auto l = im.find("unparsed_lines"); l != im.end() && l->is_array())
    for (const Json& n : *l)
      if (n.is_number_unsigned()) listed += (listed.empty() ? "" : ", ") + std::to_string(n.get<uint64_t>());
  if (!listed.empty()) o += std::string(dat ? " (records " : " (lines ") + listed + ")";
  constexpr const char* kIndent = "\n            ";
  if (const std::string era = str(im, "era"); !era.empty()) o += kIndent + std::string("kernel era: ") + era;
  if (dat) {
    const std::string uname = str(im, "uname"), clock = str(im, "clock");
    o += kIndent + std::string("traced host: ") + (uname.empty() ? "not in the file" : uname) + ", " +
         std::to_string(num(im, "cpus")) + " CPUs" + (clock.empty() ? "" : ", clock " + clock);
    if (const uint64_t lost = num(im, "lost_events"))
      o += kIndent + std::to_string(lost) + " events lost in the kernel's ring buffer";
  }
  for (const std::string& a : strs(im, "skipped")) o += kIndent + std::string("skipped: ") + a;
  for (const std::string& a : strs(im, "repaired")) o += kIndent + std::string("repaired: ") + a;
  for (const std::string& a : strs(im, "assumptions")) o += kIndent + std::string("assumed: ") + a;
  return o;
}

}  // namespace es::import
