// Runs a guest under the L0 vmm with a probe-bus subscriber that keeps every record, and
// answers the questions the scenario tests ask of a recording.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "hv/arch/event_info.h"
#include "hv/arch/exit_reason.h"
#include "hv/vmm/machine.h"
#include "hv/vmm/scenarios.h"
#include "hv/vmm/vmm.h"

namespace es::test {

struct RecordLog {
  std::vector<es_record> records;
  hv::RunResult result;

  static void collect(void* self, const es_record* r) { static_cast<RecordLog*>(self)->records.push_back(*r); }

  std::vector<es_record> where(const std::function<bool(const es_record&)>& pred) const {
    std::vector<es_record> out;
    for (const auto& r : records)
      if (pred(r)) out.push_back(r);
    return out;
  }
  std::vector<es_record> of_kind(uint16_t kind) const {
    return where([&](const es_record& r) { return r.kind == kind; });
  }
  std::vector<es_record> exits(arch::BasicExitReason reason) const {
    return where(
        [&](const es_record& r) { return r.kind == ES_KIND_VM_EXIT && arch::ExitReason(r.reason).basic() == reason; });
  }
  std::vector<es_record> decisions(uint32_t reason) const {
    return where([&](const es_record& r) { return r.kind == ES_KIND_DECISION && r.reason == reason; });
  }
  std::vector<es_record> chain(uint64_t origin) const {
    return where([&](const es_record& r) { return r.origin == origin; });
  }
};

inline RecordLog run_guest(std::span<const uint8_t> image, hv::VmmConfig cfg,
                           const std::optional<hv::VmmConfig>& l1 = std::nullopt) {
  RecordLog log;
  probes::ProbeBus bus;
  bus.subscribe(probes::kAllKinds, &RecordLog::collect, &log);
  hv::Machine machine(bus, cfg, l1);
  std::string error;
  if (!machine.load(image, error)) {
    log.result.end_reason = ES_END_INTERNAL_ERROR;
    log.result.message = "load failed: " + error;
    return log;
  }
  log.result = machine.run();
  return log;
}

// Runs a scenario; `tweak` edits the config of the guest's own hypervisor (L1 when nested),
// `tweak_l0` L0's.
inline RecordLog run_scenario(std::string_view name, const std::function<void(hv::VmmConfig&)>& tweak = {},
                              const std::function<void(hv::VmmConfig&)>& tweak_l0 = {}) {
  const hv::Scenario* s = hv::find_scenario(name);
  if (!s) {
    RecordLog log;
    log.result.end_reason = ES_END_INTERNAL_ERROR;
    log.result.message = "no scenario " + std::string(name);
    return log;
  }
  hv::VmmConfig l0 = s->config;
  std::optional<hv::VmmConfig> l1 = s->l1;
  if (tweak) tweak(l1 ? *l1 : l0);
  if (tweak_l0) tweak_l0(l0);
  return run_guest(s->guest, l0, l1);
}

// The guest wrote exit code 0 to its exit port; otherwise says why not, with its console.
inline ::testing::AssertionResult EndedCleanly(const RecordLog& log) {
  if (log.result.end_reason == ES_END_GUEST_EXIT && log.result.guest_exit_code == 0)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "end reason " << log.result.end_reason << " exit code "
                                       << log.result.guest_exit_code << " message '" << log.result.message
                                       << "' console:\n"
                                       << log.result.console;
}

inline uint32_t irq(uint8_t v) { return arch::EntryIntrInfo::make(v, arch::InterruptionType::ExternalInterrupt).raw(); }

}  // namespace es::test
