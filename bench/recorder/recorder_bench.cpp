// Recorder throughput against a bare SQLite bulk insert of the same rows, and the cost of a
// probe point with nothing attached.
//
//   BM_RecorderThroughput   ProbeBus -> Recorder (double buffer, writer thread) -> SQLite file
//   BM_BareSqliteInsert     the same rows, same events row (schema/event_row.h), one prepared INSERT,
//                           one transaction per batch of the same size, no thread
//   BM_DisabledProbePoint   `if (bus.enabled(ES_KIND_VM_EXIT)) {...}` with no subscriber (nor
//                           USDT tracer: the mask and the USDT semaphore are both read)
//   BM_EmptyLoopBaseline    the same loop without the probe point
// The ratio is recorder items_per_second / bare items_per_second (see BENCHMARKS.md).
#include <benchmark/benchmark.h>

#include <filesystem>
#include <string>

#include "exitscope/probe_bus.h"
#include "probes/recorder/recorder.h"
#include "schema/event_row.h"
#include "schema/migrations.h"

namespace {

constexpr size_t kBatch = 16384;
constexpr int64_t kRecords = 200000;

std::string bench_path(const char* name) {
  std::filesystem::create_directories(ES_BENCH_TMPDIR);
  std::string p = std::string(ES_BENCH_TMPDIR) + "/" + name;
  for (const char* s : {"", "-wal", "-shm", "-journal"}) std::filesystem::remove(p + s);
  return p;
}

es_record make_exit(uint64_t i) {
  es_record r{};
  r.version = ES_RECORD_VERSION;
  r.kind = ES_KIND_VM_EXIT;
  r.level = 1;
  r.reason = 48;
  r.time_ns = i * 100;
  r.rip = 0x1000 + (i & 0xff);
  r.qualification = 0x182;
  r.guest_phys = 0x9000 + (i << 12);
  r.idt_vectoring_info = 0x80000020;
  r.cause = i;
  r.origin = i & ~0xfull;
  return r;
}

void BM_BareSqliteInsert(benchmark::State& state) {
  for (auto _ : state) {
    state.PauseTiming();
    const std::string path = bench_path("bare.db");
    auto db = es::db::Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (!db || !db->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL") || !es::schema::migrate(*db)) {
      state.SkipWithError("cannot create the bare database");
      return;
    }
    auto st = db->prepare(es::schema::event_insert_sql());
    state.ResumeTiming();
    for (int64_t i = 0; i < kRecords; i += static_cast<int64_t>(kBatch)) {
      (void)db->exec("BEGIN");
      for (int64_t j = i; j < std::min<int64_t>(kRecords, i + static_cast<int64_t>(kBatch)); ++j) {
        const es_record r = make_exit(static_cast<uint64_t>(j) + 1);
        es::db::Stmt& s = *st;
        es_record row = r;
        row.id = static_cast<uint64_t>(j) + 1;
        es::schema::bind_event_row(s, row, 0);
        s.step();
        s.reset();
      }
      (void)db->exec("COMMIT");
    }
  }
  state.SetItemsProcessed(state.iterations() * kRecords);
}

void BM_RecorderThroughput(benchmark::State& state) {
  for (auto _ : state) {
    state.PauseTiming();
    const std::string path = bench_path("recorder.db");
    es::recorder::RecorderOptions opt{.steps = es::recorder::kNoChains};
    opt.batch_size = kBatch;
    opt.max_queued = 4 * kBatch;
    // No steps (no chains): measured is the record path, not post-processing.
    auto rec = es::recorder::Recorder::open(path, {}, false, opt);
    if (!rec) {
      state.SkipWithError(rec.error().c_str());
      return;
    }
    es::probes::ProbeBus bus;
    (*rec)->attach(bus);
    state.ResumeTiming();
    for (int64_t i = 0; i < kRecords; ++i) {
      if (bus.enabled(ES_KIND_VM_EXIT)) {
        es_record r = make_exit(static_cast<uint64_t>(i) + 1);
        r.id = 0;
        bus.emit(r);
      }
    }
    // Every record committed to the file: the same end point as the bare loop.
    if (auto r = (*rec)->flush(); !r) state.SkipWithError(r.error().c_str());
    state.PauseTiming();
    // Index build + session update happen once per recording; timed in BM_RecorderFinish.
    if (auto r = (*rec)->finish({}); !r) state.SkipWithError(r.error().c_str());
    rec = es::make_error("done");
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kRecords);
}

// End-of-recording work for kRecords rows: indexes, vcpus table, session row, checkpoint.
void BM_RecorderFinish(benchmark::State& state) {
  for (auto _ : state) {
    state.PauseTiming();
    const std::string path = bench_path("finish.db");
    es::recorder::RecorderOptions opt{.steps = es::recorder::kNoChains};
    opt.batch_size = kBatch;  // no steps: no chains
    auto rec = es::recorder::Recorder::open(path, {}, false, opt);
    if (!rec) {
      state.SkipWithError(rec.error().c_str());
      return;
    }
    for (int64_t i = 0; i < kRecords; ++i) (*rec)->on_record(make_exit(static_cast<uint64_t>(i) + 1));
    (void)(*rec)->flush();
    state.ResumeTiming();
    if (auto r = (*rec)->finish({}); !r) state.SkipWithError(r.error().c_str());
  }
}

void BM_DisabledProbePoint(benchmark::State& state) {
  es::probes::ProbeBus bus;
  uint64_t emitted = 0;
  for (auto _ : state) {
    // The bus is opaque to the optimizer (its mask could change between iterations), so the
    // load and branch happen every time; DoNotOptimize keeps the body from being elided.
    benchmark::DoNotOptimize(bus);
    if (bus.enabled(ES_KIND_VM_EXIT)) {
      es_record r = make_exit(emitted);
      bus.emit(r);
      ++emitted;
    }
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(emitted);
}

// Baseline for (c) in the same run: the same loop (opaque bus, clobber) without the probe point.
void BM_EmptyLoopBaseline(benchmark::State& state) {
  es::probes::ProbeBus bus;
  for (auto _ : state) {
    benchmark::DoNotOptimize(bus);
    benchmark::ClobberMemory();
  }
}

}  // namespace

BENCHMARK(BM_BareSqliteInsert)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_RecorderThroughput)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_RecorderFinish)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_EmptyLoopBaseline);
BENCHMARK(BM_DisabledProbePoint);
BENCHMARK_MAIN();
