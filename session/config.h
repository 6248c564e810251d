// The configuration a session stores in its row (sessions.config_json), written and read
// through nlohmann-json (never by string concatenation or by searching the text).
//
// The keys are the ones recordings on disk already carry: an hv recording has, since schema v1,
//   {"max_exits":12,"max_insns":200000000,"guest_arg":0,"eager_ept":false,"exception_bitmap":0,
//    "nested":false,"bug":""}
// in that order (tests/data/schema/v1_irq_ept_reinject.db); a live KVM recording {"kvm": {...}}
// (probes/kvm/kvm_record.h) and an import {"import": {...}} (replay/import/text_import.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "schema/result.h"

namespace es::session {

// What recorded an hv session's guest: the limits, argument and intercepts of the guest's own
// hypervisor (L1 when nested), L0's EPT mode, the nesting and the reproduced bug.
struct HvStoredConfig {
  uint64_t max_exits = 0;         // 0 = no limit
  uint64_t max_insns = 0;         // 0 = no limit
  uint64_t guest_arg = 0;         // RDI at guest entry
  bool eager_ept = false;         // all guest RAM mapped in EPT up front
  uint32_t exception_bitmap = 0;  // bit n: the guest's hypervisor intercepts vector n
  bool nested = false;            // the guest ran as L2 under an L1 hypervisor
  std::string bug;                // the reproduced bug's name (exitscope record --bug), "" if none
  bool operator==(const HvStoredConfig&) const = default;
};

// The JSON text stored in the session row, keys in the order above.
std::string to_json(const HvStoredConfig& config);

// The hv configuration in a session row's JSON. Keys missing from an older recording keep their
// defaults; unknown keys are ignored. Error (one sentence): not JSON, not an object, or a key
// of the wrong type.
Result<HvStoredConfig> parse_hv_config(std::string_view json);

// Which source wrote a session row's JSON, from its top-level object: "kvm" for {"kvm": ...},
// "import" for {"import": ...}, "hv" for the keys above, "" for anything else (also '{}' and
// text that is not JSON).
std::string config_source(std::string_view json);

}  // namespace es::session
