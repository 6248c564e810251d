// The hv core's USDT probe exitscope:record, attached by a real eBPF program in the kernel
// (probes/usdt/usdt_tail.bpf.c through es-usdt-tail) to a real `exitscope record` run: the
// external tracer must see exactly the records the in-process recorder wrote.
#include <gtest/gtest.h>
#include <unistd.h>

#include <sstream>
#include <string>
#include <vector>

#include "exitscope/probe_bus.h"
#include "replay/names.h"
#include "replay/recording.h"
#include "tests/support/cli_run.h"

namespace es::test {
namespace {

struct Seen {
  uint64_t id = 0;
  std::string kind;
  uint32_t reason = 0;
  unsigned vcpu = 0, level = 0;
  uint64_t time_ns = 0;
};

// Runs es-usdt-tail -- exitscope record --scenario NAME -o DB; skips where the kernel refuses.
std::vector<Seen> trace_scenario(const std::string& scenario, const std::string& db, std::string& summary) {
  const std::string out = process_tmp("usdt.out"), err = process_tmp("usdt.err");
  const std::string cmd = std::string("'") + ES_USDT_TAIL_BIN + "' --binary '" + ES_EXITSCOPE_BIN + "' -- '" +
                          ES_EXITSCOPE_BIN + "' record --scenario " + scenario + " -o '" + db + "' --force >'" + out +
                          "' 2>'" + err + "'";
  const int status = std::system(cmd.c_str());
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::vector<Seen> seen;
  if (code == 3) return seen;  // the caller skips with the message
  EXPECT_EQ(code, 0) << slurp(err);
  std::istringstream in(slurp(out));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream w(line);
    std::string tag;
    w >> tag;
    if (tag == "summary") {
      summary = line;
      continue;
    }
    EXPECT_EQ(tag, "record") << line;
    Seen s;
    std::string reason;
    w >> s.id >> s.kind >> reason >> s.vcpu >> s.level >> s.time_ns;
    s.reason = static_cast<uint32_t>(std::stoul(reason, nullptr, 16));
    seen.push_back(s);
  }
  return seen;
}

TEST(Usdt, AnEbpfProgramOnTheUsdtProbeSeesTheSameExitsAsTheRecorder) {
  if (::geteuid() != 0) GTEST_SKIP() << "attaching eBPF to a USDT probe needs root (or CAP_BPF + CAP_PERFMON)";
  for (const char* scenario : {"irq-ept-reinject", "nested-irq-vectoring"}) {
    SCOPED_TRACE(scenario);
    const std::string db = process_tmp(std::string(scenario) + ".db");
    std::string summary;
    const std::vector<Seen> seen = trace_scenario(scenario, db, summary);
    if (seen.empty() && summary.empty())
      GTEST_SKIP() << "the kernel refused the USDT program: " << slurp(process_tmp("usdt.err"));
    EXPECT_NE(summary.find("dropped 0"), std::string::npos) << summary;

    auto rec = replay::Recording::open(db);
    ASSERT_TRUE(rec) << rec.error();
    std::vector<es_record> recorded;
    ASSERT_TRUE(rec->for_each_event({}, [&](const replay::Event& e) {
      recorded.push_back(e.rec);
      return true;
    }));
    // Every record, in id order, with the same kind, reason, vCPU, level and time.
    ASSERT_EQ(seen.size(), recorded.size());
    size_t exits = 0;
    for (size_t i = 0; i < seen.size(); ++i) {
      SCOPED_TRACE(i);
      EXPECT_EQ(seen[i].id, recorded[i].id);
      EXPECT_EQ(seen[i].kind, replay::kind_name(recorded[i].kind));
      EXPECT_EQ(seen[i].reason, recorded[i].reason);
      EXPECT_EQ(seen[i].vcpu, recorded[i].vcpu);
      EXPECT_EQ(seen[i].level, recorded[i].level);
      EXPECT_EQ(seen[i].time_ns, recorded[i].time_ns);
      exits += recorded[i].kind == ES_KIND_VM_EXIT;
    }
    EXPECT_GT(exits, 20u);  // the scenarios exit dozens of times: the comparison is not vacuous
  }
}

// Without a tracer the semaphore is 0 and a probe point with no subscriber stays off; the
// kernel raising the semaphore (simulated here by writing it) turns every kind on.
TEST(Usdt, TheSemaphoreTurnsProbePointsOnOnlyWhileATracerIsAttached) {
  probes::ProbeBus bus;
  ASSERT_EQ(exitscope_record_semaphore, 0) << "a tracer is attached to this test process";
  EXPECT_FALSE(bus.enabled(ES_KIND_VM_EXIT));
  EXPECT_FALSE(bus.any_enabled());
  exitscope_record_semaphore = 1;
  EXPECT_TRUE(bus.enabled(ES_KIND_VM_EXIT));
  EXPECT_TRUE(bus.enabled(ES_KIND_DECISION));
  es_record r{};
  r.kind = ES_KIND_VM_EXIT;
  bus.emit(r);  // delivered to nobody in-process, fires the (unattached) USDT site
  EXPECT_EQ(r.id, 1u);
  exitscope_record_semaphore = 0;
  EXPECT_FALSE(bus.enabled(ES_KIND_VM_EXIT));
}

}  // namespace
}  // namespace es::test
