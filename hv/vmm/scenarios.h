// Scenarios: a guest program plus the configuration that makes it show one behaviour.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "hv/vmm/vmm.h"

namespace es::hv {

struct Scenario {
  std::string_view name;
  std::string_view description;  // one line: the rule it shows
  std::span<const uint8_t> guest;
  VmmConfig config;             // L0's; the command line may override limits and policy
  std::optional<VmmConfig> l1;  // set: the guest runs as L2 under an L1 with this config
};

const std::vector<Scenario>& scenarios();
const Scenario* find_scenario(std::string_view name);
inline constexpr std::string_view kDefaultScenario = "irq-ept-reinject";

}  // namespace es::hv
