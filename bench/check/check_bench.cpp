// The loop rules' cost per record at 400 k and 4 M records: the same per-record figure at both
// sizes means the detectors are linear (no-progress-cycle keeps a ring of the last exits per
// vCPU; no-progress-loop one run per vCPU and level). The checker alone, fed as `exitscope check`
// feeds it; reading the recording is left out.
//   ./build/bin/check_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstdint>

#include "exitscope/record.h"
#include "hv/arch/exit_reason.h"
#include "replay/check/checker.h"

namespace {

using es::check::Checker;
using es::check::RuleId;

// Four vCPUs, each going round 3 exits re-entered at their RIPs (a stuck unit); every 5000th turn
// the first exit's GPA changes (progress), so the run ends and is reported again.
size_t feed(uint64_t records) {
  Checker checker({.only = {RuleId::NoProgressCycle, RuleId::NoProgressLoop}});
  es_record x{};
  for (uint64_t id = 1; id <= records; ++id) {
    x = es_record{};
    x.id = id;
    x.time_ns = id * 100;
    x.level = 1;
    const uint64_t i = (id - 1) / 2;
    x.vcpu = static_cast<uint16_t>(i % 4);
    const uint64_t j = (i / 4) % 3, turn = i / 12;
    x.rip = 0x1000 + j * 0x10;
    if (id % 2) {
      x.kind = ES_KIND_VM_EXIT;
      x.reason =
          static_cast<uint32_t>(j == 0 ? es::arch::BasicExitReason::EptViolation : es::arch::BasicExitReason::Cpuid);
      x.guest_phys = j == 0 ? 0x9000 + turn / 5000 : 0;
    } else {
      x.kind = ES_KIND_VM_ENTRY;
    }
    checker.feed(x);
  }
  checker.finish();
  return checker.violations().size();
}

void BM_LoopRules(benchmark::State& state) {
  const auto records = static_cast<uint64_t>(state.range(0));
  size_t found = 0;
  for (auto _ : state) found = feed(records);
  state.counters["violations"] = static_cast<double>(found);
  state.counters["ns_per_record"] = benchmark::Counter(
      static_cast<double>(records), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_LoopRules)->Arg(400'000)->Arg(4'000'000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
