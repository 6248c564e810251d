// Export throughput: 1 M events recorded by the real Recorder (not timed), then exported to a
// Perfetto protobuf trace, Chrome JSON, text and Markdown by the library the CLI uses, written
// to a file on disk.
//   export_bench [EVENTS]   (default 1000000)
// Prints one line per format: events, seconds, events/s, output size, and the CPU time of all
// threads (the export reads SQLite on a second thread: with a free core, wall < CPU).
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "exitscope/record.h"
#include "hv/arch/event_info.h"
#include "hv/arch/exit_reason.h"
#include "exitscope/probe_bus.h"
#include "probes/recorder/recorder.h"
#include "replay/chain_steps.h"
#include "replay/export/export.h"

namespace {

using namespace es;

uint32_t irq(uint8_t v) { return arch::EntryIntrInfo::make(v, arch::InterruptionType::ExternalInterrupt).raw(); }

// A mix like a timer-driven guest: per period an I/O exit (emulated), an HLT exit, then the
// timer IRQ chain with an EPT violation during delivery, requeue, map, reinjection, delivery.
// 20 records per period.
void record(const std::string& path, uint64_t events) {
  recorder::SessionStart info;
  info.scenario = "export-bench";
  info.tool_version = "bench";
  auto rec = recorder::Recorder::open(path, info, true, {.steps = es::replay::chain_steps()});
  if (!rec) {
    std::fprintf(stderr, "export_bench: %s\n", rec.error().c_str());
    std::exit(2);
  }
  probes::ProbeBus bus;
  (*rec)->attach(bus);
  uint64_t t = 0, n = 0;
  auto emit = [&](es_record r) {
    r.time_ns = (t += 50);
    r.level = 1;
    bus.emit(r);
    ++n;
    return r.id;
  };
  auto exit_rec = [&](arch::BasicExitReason why, uint64_t q, uint32_t vec, uint64_t origin, uint64_t cause) {
    es_record r{};
    r.kind = ES_KIND_VM_EXIT;
    r.reason = arch::ExitReason(why).raw();
    r.qualification = q;
    r.idt_vectoring_info = vec;
    r.origin = origin;
    r.cause = cause;
    r.rip = 0x100040;
    r.flags = ES_FLAG_BYTES_VALID;
    r.aux = 2;
    r.bytes[0] = 0xe6;
    r.bytes[1] = 0x42;
    return emit(r);
  };
  auto simple = [&](uint16_t kind, uint32_t reason, uint32_t word, uint64_t origin, uint64_t cause) {
    es_record r{};
    r.kind = kind;
    r.reason = reason;
    r.intr_info = word;
    r.origin = origin;
    r.cause = cause;
    r.rip = 0x100041;
    if (kind == ES_KIND_DECISION && reason == ES_DECISION_EPT_MAP) r.guest_phys = 0x7e000;
    return emit(r);
  };
  uint64_t last = simple(ES_KIND_VM_ENTRY, 0, 0, 0, 0);
  while (n + 20 <= events) {
    uint64_t x = exit_rec(arch::BasicExitReason::IoInstruction, 0x420008, 0, 0, last);
    uint64_t d = simple(ES_KIND_DECISION, ES_DECISION_EMULATE, 0, 0, x);
    last = simple(ES_KIND_VM_ENTRY, 0, 0, 0, d);
    x = exit_rec(arch::BasicExitReason::Hlt, 0, 0, 0, last);
    d = simple(ES_KIND_DECISION, ES_DECISION_HALT, 0, 0, x);
    const uint64_t root = [&] {
      es_record r{};
      r.kind = ES_KIND_RAISE;
      r.id = bus.next_id();
      r.origin = r.id;
      r.intr_info = irq(0x20);
      r.cause = d;
      return emit(r);
    }();
    simple(ES_KIND_DECISION, ES_DECISION_QUEUE_IRQ, irq(0x20), root, root);
    d = simple(ES_KIND_DECISION, ES_DECISION_INJECT_NEW, irq(0x20), root, root);
    last = simple(ES_KIND_VM_ENTRY, 0, irq(0x20), root, d);
    x = exit_rec(arch::BasicExitReason::EptViolation, 0x182,
                 arch::IdtVectoringInfo::make(0x20, arch::InterruptionType::ExternalInterrupt).raw(), root, last);
    simple(ES_KIND_DECISION, ES_DECISION_REQUEUE_FROM_VECTORING, irq(0x20), root, x);
    d = simple(ES_KIND_DECISION, ES_DECISION_EPT_MAP, 0, root, x);
    d = simple(ES_KIND_DECISION, ES_DECISION_INJECT_REINJECTED, irq(0x20), root, d);
    last = simple(ES_KIND_VM_ENTRY, 0, irq(0x20), root, d);
    simple(ES_KIND_DELIVERY, 0, irq(0x20), root, last);
    x = exit_rec(arch::BasicExitReason::IoInstruction, 0x3f80000, 0, 0, last);
    d = simple(ES_KIND_DECISION, ES_DECISION_EMULATE, 0, 0, x);
    last = simple(ES_KIND_VM_ENTRY, 0, 0, 0, d);
    x = exit_rec(arch::BasicExitReason::Cpuid, 0, 0, 0, last);
    last = simple(ES_KIND_VM_ENTRY, 0, 0, 0, x);
  }
  while (n < events) last = simple(ES_KIND_DECISION, ES_DECISION_HALT, 0, 0, last);
  if (auto r = (*rec)->finish({ES_END_LIMIT, "bench"}); !r) {
    std::fprintf(stderr, "export_bench: %s\n", r.error().c_str());
    std::exit(2);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t events = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000;
  std::filesystem::create_directories(ES_BENCH_TMPDIR);
  const std::string db = std::string(ES_BENCH_TMPDIR) + "/export_bench.db";
  const auto t0 = std::chrono::steady_clock::now();
  // ES_BENCH_REUSE=1: keep the recording of an earlier run with the same size.
  const bool reuse = std::getenv("ES_BENCH_REUSE") && std::filesystem::exists(db);
  if (!reuse) std::filesystem::remove(db);
  if (!reuse) record(db, events);
  const double rec_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("recorded %llu events in %.2f s (setup, not timed below)\n", static_cast<unsigned long long>(events),
              rec_s);
  // Baseline in the same run: reading every event back (what any export must do at least).
  double base_s = 0;
  {
    auto rec = replay::Recording::open(db);
    if (!rec) return 2;
    uint64_t seen = 0, sum = 0;
    const auto start = std::chrono::steady_clock::now();
    auto r = rec->for_each_event({}, [&](const replay::Event& ev) {
      ++seen;
      sum += ev.rec.time_ns;
      return true;
    });
    base_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!r || seen != events) return 2;
    std::printf("baseline: read %llu events in %.3f s (checksum %llu)\n", static_cast<unsigned long long>(seen), base_s,
                static_cast<unsigned long long>(sum % 1000));
  }
  for (const char* name : {"perfetto", "chrome", "text", "markdown"}) {
    auto rec = replay::Recording::open(db);
    if (!rec) return 2;
    const std::string out_path = std::string(ES_BENCH_TMPDIR) + "/export_bench." + name;
    std::FILE* f = std::fopen(out_path.c_str(), "wb");
    if (!f) return 2;
    const auto start = std::chrono::steady_clock::now();
    const std::clock_t cpu_start = std::clock();
    Result<void> r;
    {
      exporter::Output out(f);
      r = exporter::run_export(*rec, *exporter::find_export_format(name), {}, out);
    }
    std::fclose(f);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double cpu_s = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
    if (!r) {
      std::fprintf(stderr, "export_bench: %s\n", r.error().c_str());
      return 2;
    }
    std::printf("%-8s %llu events in %.3f s = %.2f M events/s, %.1f x baseline, %.1f MB, cpu %.3f s\n", name,
                static_cast<unsigned long long>(events), s, static_cast<double>(events) / s / 1e6, s / base_s,
                static_cast<double>(std::filesystem::file_size(out_path)) / 1e6, cpu_s);
  }
  return 0;
}
