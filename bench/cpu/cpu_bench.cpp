// CPU-model throughput: simulated VM exits per second (recording off) for `out dx, al;
// jmp loop`, re-entered by a minimal loop that advances RIP; and guest instructions per
// second for a compute loop.
#include <benchmark/benchmark.h>

#include "cpu_bench_guests.h"
#include "tests/cpu/harness.h"

namespace es::hv::test {
namespace {

void BM_OutExitsPerSecond(benchmark::State& state) {
  TestVm vm(bench_guest_out_loop, bench_guest_out_loop_size, {}, /*record=*/false);
  Vmcs& v = vm.vmcs_;
  EntryContext ctx;
  uint64_t exits = 0;
  for (auto _ : state) {
    const ExitRecordInfo e = vm.cpu_.vm_entry(v, vm.gprs_, ctx);
    if (e.stop != StopReason::VmExit) state.SkipWithError("no exit");
    v.write(VmcsField::GuestRip, v.read(VmcsField::GuestRip) + v.read(VmcsField::VmExitInstructionLen));
    ++exits;
  }
  state.counters["exits/s"] = benchmark::Counter(static_cast<double>(exits), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_OutExitsPerSecond);

void BM_ComputeInsnsPerSecond(benchmark::State& state) {
  TestVm vm(bench_guest_compute_loop, bench_guest_compute_loop_size, {}, /*record=*/false);
  EntryContext ctx;
  ctx.max_insns = 1'000'000;
  uint64_t insns = 0;
  for (auto _ : state) {
    const ExitRecordInfo e = vm.cpu_.vm_entry(vm.vmcs_, vm.gprs_, ctx);
    if (e.stop != StopReason::InsnLimit) state.SkipWithError("unexpected stop");
    insns += e.insns_retired;
  }
  state.counters["insns/s"] = benchmark::Counter(static_cast<double>(insns), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ComputeInsnsPerSecond)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace es::hv::test

BENCHMARK_MAIN();
