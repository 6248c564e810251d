#include "probes/kvm/kvm_config.h"

#include <nlohmann/json.hpp>

#include "probes/recorder/config_text.h"

namespace es::kvm {

namespace {

// ordered_json: the keys stay in the order written (the order recordings on disk have).
using Json = nlohmann::ordered_json;

}  // namespace

std::string to_json(const KvmStoredConfig& c) {
  Json k;
  k["kernel"] = c.kernel;
  Json events = Json::array();
  for (const KvmStoredConfig::Event& e : c.events) {
    Json ev;
    ev["name"] = e.name;
    ev["attach"] = e.attach;
    if (!e.prototype.empty()) ev["prototype"] = e.prototype;
    if (!e.not_tp.empty()) ev["not_tp"] = e.not_tp;
    if (!e.fields_missing.empty()) ev["fields_missing"] = e.fields_missing;
    events.push_back(std::move(ev));
  }
  k["events"] = std::move(events);
  k["refused"] = c.refused;
  k["ring_bytes"] = c.ring_bytes;
  k["ring_slots"] = c.ring_slots;
  k["ring_cpus"] = c.ring_cpus;
  k["pid"] = c.pid;
  k["vcpu"] = c.vcpu;
  k["duration_s"] = c.duration_s;
  k["buffer_bytes"] = c.buffer_bytes;
  if (!c.scheduling.empty()) k["scheduling"] = c.scheduling;
  if (c.drops_per_cpu) {
    uint64_t total = 0;
    for (uint64_t d : *c.drops_per_cpu) total += d;
    k["drops_per_cpu"] = *c.drops_per_cpu;
    k["drops"] = total;
    k["buffer_drops"] = c.buffer_drops;
    k["abandoned"] = c.abandoned;
  }
  if (c.linked) {
    k["vendor"] = c.vendor;
    k["era"] = c.era;
    k["assumptions"] = c.assumptions;
    k["undecodable"] = c.undecodable;
    if (!c.vcpu_map.empty()) k["vcpu_map"] = c.vcpu_map;
  }
  Json j;
  j["kvm"] = std::move(k);
  return recorder::config_text(j);
}

std::vector<std::string> describe_kvm_config(std::string_view text) {
  std::vector<std::string> out;
  // Untrusted (a recording someone sent): parsed without exceptions, every value type-checked.
  const Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    if (text.find("{\"kvm\":") != std::string_view::npos)
      out.push_back("configuration unreadable (its JSON is damaged)");
    return out;
  }
  if (!j.is_object() || !j.contains("kvm") || !j["kvm"].is_object()) return out;
  const Json& k = j["kvm"];
  auto str = [](const Json& o, const char* key) -> std::string {
    const auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto num = [&](const char* key) -> std::string {
    const auto it = k.find(key);
    return it != k.end() && it->is_number_integer() ? it->dump() : std::string();
  };
  // A list's items as the stored text has them, ", " between: strings quoted, numbers as they are.
  auto list = [&](const char* key) -> std::string {
    const auto it = k.find(key);
    if (it == k.end() || !it->is_array()) return {};
    std::string l;
    for (const Json& v : *it) l += (l.empty() ? "" : ", ") + recorder::config_text(v);
    return l;
  };
  const std::string vendor = str(k, "vendor"), era = str(k, "era");
  out.push_back("kernel " + str(k, "kernel") + (vendor.empty() ? "" : ", " + vendor) + (era.empty() ? "" : ", " + era));
  // "events": [{"name": "kvm_exit", "attach": "tp"}, ...] -> "kvm_exit (tp), ..."
  std::string ev;
  if (const auto it = k.find("events"); it != k.end() && it->is_array())
    for (const Json& e : *it) {
      if (!e.is_object()) continue;
      const std::string how = str(e, "attach");
      ev += (ev.empty() ? "" : ", ") + str(e, "name") + " (" + (how.empty() ? "?" : how) + ")";
    }
  out.push_back("attached " + ev);
  if (const std::string refused = list("refused"); !refused.empty()) out.push_back("refused " + refused);
  const std::string drops = num("drops");
  const std::string slots = num("ring_slots"), ring_cpus = num("ring_cpus");
  out.push_back((slots.empty() ? "ring " + num("ring_bytes") + " bytes; "
                               : "rings " + num("ring_bytes") + " bytes (" + slots + " records on each of " +
                                     ring_cpus + " CPUs); ") +
                (drops.empty() ? std::string("drops unknown (the recording did not finish)")
                               : drops + " dropped (per CPU: " + list("drops_per_cpu") + ")"));
  const std::string buffer = num("buffer_bytes"), buffer_drops = num("buffer_drops"), abandoned = num("abandoned");
  const std::string scheduling = str(k, "scheduling");
  if (!buffer.empty())
    out.push_back(
        "buffer " + buffer + " bytes" +
        (buffer_drops.empty() || buffer_drops == "0" ? std::string() : "; " + buffer_drops + " dropped full") +
        (abandoned.empty() || abandoned == "0" ? std::string() : "; " + abandoned + " not written (interrupted)") +
        (scheduling.empty() ? std::string() : "; " + scheduling));
  return out;
}

}  // namespace es::kvm
