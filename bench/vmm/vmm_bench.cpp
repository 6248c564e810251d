// VM exits per second through the whole L0 hypervisor (exit handler, complete/inject,
// devices), recording off and recording into SQLite, in the same run.
//
//   build/bin/vmm_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include "hv/vmm/scenarios.h"
#include "hv/vmm/machine.h"
#include "probes/recorder/recorder.h"
#include "replay/chain_steps.h"

namespace {

// mov dx, 0x80 ; l: out dx, al ; jmp l   -- one I/O exit per two instructions.
const std::vector<uint8_t> kOutLoop = {0x66, 0xBA, 0x80, 0x00, 0xEE, 0xEB, 0xFD};
constexpr uint64_t kExits = 200'000;

es::hv::VmmConfig config() {
  es::hv::VmmConfig cfg;
  cfg.max_exits = kExits;
  cfg.eager_ept = true;  // measure the steady state, not the first-touch EPT exits
  return cfg;
}

// Baseline, same run: the CPU model alone on the same guest, re-entered by a bare loop
// that only advances RIP (no L0 logic). The ratio Vmm / CpuOnly is the L0's share.
void BM_CpuOnlyOutLoop(benchmark::State& state) {
  es::probes::ProbeBus bus;
  es::hv::Machine vmm(bus, config());
  std::string err;
  if (!vmm.load(kOutLoop, err)) state.SkipWithError(err.c_str());
  es::hv::GuestGprs gprs;
  es::hv::EntryContext ctx;
  auto& v = vmm.l0().vmcs();
  using es::arch::VmcsField;
  uint64_t exits = 0;
  for (auto _ : state) {
    const es::hv::ExitRecordInfo e = vmm.l0().silicon().vm_entry(v, gprs, ctx);
    benchmark::DoNotOptimize(e);
    v.write(VmcsField::GuestRip, v.read(VmcsField::GuestRip) + v.read(VmcsField::VmExitInstructionLen));
    ++exits;
  }
  state.counters["exits_per_s"] = benchmark::Counter(static_cast<double>(exits), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_CpuOnlyOutLoop);

void BM_VmmOutLoopRecordingOff(benchmark::State& state) {
  uint64_t exits = 0;
  for (auto _ : state) {
    state.PauseTiming();
    es::probes::ProbeBus bus;
    es::hv::Machine vmm(bus, config());
    std::string err;
    if (!vmm.load(kOutLoop, err)) state.SkipWithError(err.c_str());
    state.ResumeTiming();
    exits += vmm.run().exits;
  }
  state.counters["exits_per_s"] = benchmark::Counter(static_cast<double>(exits), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_VmmOutLoopRecordingOff)->Unit(benchmark::kMillisecond)->UseRealTime();

// Runs the loop with the recorder attached (timed through finish()), nested or not.
void run_recorded(benchmark::State& state, bool nested) {
  uint64_t exits = 0, events = 0;
  const std::string path = std::filesystem::temp_directory_path() /
                           ("vmm_bench_" + std::to_string(nested) + "_" + std::to_string(getpid()) + ".db");
  for (auto _ : state) {
    state.PauseTiming();
    es::probes::ProbeBus bus;
    es::hv::Machine m(bus, config(), nested ? std::optional<es::hv::VmmConfig>(config()) : std::nullopt);
    std::string err;
    if (!m.load(kOutLoop, err)) state.SkipWithError(err.c_str());
    auto rec = es::recorder::Recorder::open(path, es::recorder::SessionStart{}, /*force=*/true,
                                            {.steps = es::replay::chain_steps()});
    if (!rec) state.SkipWithError(rec.error().c_str());
    (*rec)->attach(bus);
    state.ResumeTiming();
    const auto r = m.run();
    auto fin = (*rec)->finish({r.end_reason, "", 0});
    exits += r.exits;
    events += (*rec)->stats().written;
  }
  std::filesystem::remove(path);
  state.counters["exits_per_s"] = benchmark::Counter(static_cast<double>(exits), benchmark::Counter::kIsRate);
  state.counters["events_per_s"] = benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
}

void BM_VmmOutLoopRecordingToSqlite(benchmark::State& state) { run_recorded(state, false); }
BENCHMARK(BM_VmmOutLoopRecordingToSqlite)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

// Nested: the same loop as L2 under L1. Every OUT is an L2 exit on the silicon that L0
// reflects to L1 (nested VM exit), L1 handles it and re-enters (nested VM entry: vmcs02
// rebuilt from vmcs12). Exits counted are L1's (nested) exits.
void BM_NestedOutLoopRecordingOff(benchmark::State& state) {
  uint64_t exits = 0;
  for (auto _ : state) {
    state.PauseTiming();
    es::probes::ProbeBus bus;
    es::hv::Machine m(bus, config(), config());
    std::string err;
    if (!m.load(kOutLoop, err)) state.SkipWithError(err.c_str());
    state.ResumeTiming();
    exits += m.run().exits;
  }
  state.counters["exits_per_s"] = benchmark::Counter(static_cast<double>(exits), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_NestedOutLoopRecordingOff)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_NestedOutLoopRecordingToSqlite(benchmark::State& state) { run_recorded(state, true); }
BENCHMARK(BM_NestedOutLoopRecordingToSqlite)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
