// Hand-built recordings for the checker tests: the script emits through a real ProbeBus with
// the real recorder and the live checker (built-in plugin) attached, as `exitscope record`
// does; the test then reads the SQLite file back.
#pragma once

#include <algorithm>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "probes/bus/plugin_host.h"
#include "probes/recorder/recorder.h"
#include "replay/chain_steps.h"
#include "replay/check/check_recording.h"
#include "replay/check/live_checker.h"
#include "replay/recording.h"
#include "tests/probes/test_support.h"

namespace es::test {

struct Checked {
  std::string path;
  std::vector<check::Violation> offline;   // `exitscope check` (check_recording)
  std::vector<check::Violation> recorded;  // ES_KIND_VIOLATION records the live checker wrote
};

// The bus of the recording being made (for scripts that pre-assign ids, e.g. a chain root).
inline probes::ProbeBus*& current_bus() {
  static probes::ProbeBus* bus = nullptr;
  return bus;
}

inline Checked record_and_check(const std::string& name, const std::function<void(Emitter&)>& script,
                                const check::CheckOptions& options = {}) {
  Checked out;
  out.path = temp_db(name);
  auto rec = recorder::Recorder::open(out.path, recorder::SessionStart{}, false, {.steps = es::replay::chain_steps()});
  EXPECT_TRUE(rec) << rec.error();
  if (!rec) return out;
  probes::ProbeBus bus;
  (*rec)->attach(bus);
  {
    check::LiveChecker live(bus, options);
    probes::PluginHost host(bus);
    auto id = live.install(host);
    EXPECT_TRUE(id) << id.error();
    Emitter em(bus);
    current_bus() = &bus;
    script(em);
    current_bus() = nullptr;
    live.finish();
    host.unload_all();
  }
  auto fin = (*rec)->finish({});
  EXPECT_TRUE(fin) << fin.error();
  auto rd = replay::Recording::open(out.path);
  EXPECT_TRUE(rd) << rd.error();
  if (!rd) return out;
  auto off = check::check_recording(*rd, options);
  EXPECT_TRUE(off) << off.error();
  if (off) out.offline = *off;
  auto live = check::recorded_violations(*rd);
  EXPECT_TRUE(live) << live.error();
  if (live) out.recorded = *live;
  return out;
}

// (rule, chain, detecting event, count): what a VIOLATION record holds.
using ViolationKey = std::tuple<uint32_t, uint64_t, uint64_t, uint32_t>;
inline std::vector<ViolationKey> keys(const std::vector<check::Violation>& vs) {
  std::vector<ViolationKey> k;
  for (const auto& v : vs)
    k.emplace_back(static_cast<uint32_t>(v.rule), v.chain, v.events.empty() ? 0 : v.events.back(), v.count);
  std::sort(k.begin(), k.end());
  return k;
}

inline std::vector<check::Violation> of_rule(const std::vector<check::Violation>& vs, check::RuleId id) {
  std::vector<check::Violation> out;
  for (const auto& v : vs)
    if (v.rule == id) out.push_back(v);
  return out;
}

}  // namespace es::test
