// `record --kvm` must not hide the kernel's events from other tracers. A BPF program on a
// tracepoint ("tp/") returns a filter for the tracepoint's perf events: 0 drops the event for
// every perf user on the host (perf_trace_run_bpf_submit(), kernel/events/core.c). exitscope's
// programs returned 0, so while it recorded, `perf kvm stat record` / `perf record -e kvm:*` and
// any perf user of sched_process_fork saw nothing (found by the test bed's perf comparison).
// Expected: perf, run around the recording, sees every kvm_pio the recording holds and the
// forks of the recorded shell.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/kvm/kvm_test_support.h"
#include "tests/support/cli_run.h"

namespace {

using es::test::run_cli;
using es::test::kvm::refused_by_machine;

size_t count_of(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

class KvmPerfCoexist : public es::test::kvm::KvmFixture {};

TEST_F(KvmPerfCoexist, PerfStillSeesKvmAndForkEventsWhileExitscopeRecords) {
  if (std::system("command -v perf >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "perf is not installed (package linux-perf; ./run installs it)";
  const std::string data = db("perf.data"), rec = db("coexist.db"), log = db("perf.log");
  // perf system-wide around exitscope, which runs the guest through a shell (so that its
  // sched_process_fork program is attached and the shell's fork is one perf must see).
  const std::string cmd = "perf record -q -a -e kvm:kvm_pio -e sched:sched_process_fork -o '" + data + "' -- '" +
                          std::string(ES_EXITSCOPE_BIN) + "' record --kvm -o '" + rec + "' -- sh -c \"'" +
                          ES_KVM_GUEST_BIN + "' --loops 3\" > '" + log + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string out = es::test::slurp(log);
  if (out.find("perf_event_paranoid") != std::string::npos || out.find("No permission") != std::string::npos ||
      out.find("not supported") != std::string::npos)
    GTEST_SKIP() << "perf cannot record tracepoints here: " << out;
  if (refused_by_machine(2, out)) GTEST_SKIP() << "the kernel refused exitscope's programs: " << out;
  ASSERT_EQ(rc, 0) << out;

  const auto script = run_cli("events '" + rec + "' --kind context");
  const size_t recorded = count_of(script.out, "kvm_pio");
  ASSERT_GT(recorded, 0u) << "the recording holds no kvm_pio: " << script.out;

  const std::string seen = db("perf.script");
  ASSERT_EQ(std::system(("perf script -i '" + data + "' > '" + seen + "' 2>/dev/null").c_str()), 0);
  const std::string perf_out = es::test::slurp(seen);
  EXPECT_EQ(count_of(perf_out, "kvm:kvm_pio"), recorded)
      << "perf saw a different number of kvm_pio events than exitscope recorded (0 means exitscope's "
         "tracepoint programs dropped them for perf)";
  EXPECT_GE(count_of(perf_out, "sched:sched_process_fork"), 1u) << "perf saw no fork: " << perf_out.substr(0, 2000);
}

}  // namespace
