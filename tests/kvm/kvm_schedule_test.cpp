// `record --kvm` keeps out of the traced guests' way: the decoding / SQLite threads run at
// SCHED_IDLE while they are less than --max-lag behind, everything buffered is still written,
// and a full --buffer-size drops events that are counted, stored and shown. Real eBPF, real
// es-kvm-guest through /dev/kvm; skipped with the reason where the machine refuses.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "replay/recording.h"
#include "tests/kvm/kvm_test_support.h"
#include "tests/support/cli_run.h"

namespace {

using es::test::run_cli;

// Scheduling policy of each thread of `pid` (field 41 of /proc/PID/task/TID/stat, proc(5)).
std::vector<int> thread_policies(pid_t pid) {
  std::vector<int> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(dir + "/" + e->d_name + "/stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    const size_t paren = line.rfind(')');  // comm may contain spaces
    if (paren == std::string::npos) continue;
    std::istringstream fields(line.substr(paren + 2));
    std::string f;
    for (int i = 3; i <= 41 && fields >> f; ++i)
      if (i == 41) out.push_back(std::atoi(f.c_str()));
  }
  ::closedir(d);
  return out;
}

// The number `info` prints after `label` (e.g. a decision reason's count), or -1.
long long count_after(const std::string& info, const std::string& label) {
  const size_t b = info.find("  " + label + " ");
  if (b == std::string::npos) return -1;
  return std::atoll(info.c_str() + b + label.size() + 3);
}

using KvmSchedule = es::test::kvm::KvmFixture;
using es::test::kvm::Background;
using es::test::kvm::refused_by_machine;

TEST_F(KvmSchedule, DecodesAtIdlePriorityWhileTheGuestRunsAndLosesNothing) {
  const std::string out = db("yield.db");
  Background bg(
      {"record", "--kvm", "--max-lag", "600", "-o", out, "--", ES_KVM_GUEST_BIN, "--loops", "65535", "--quiet"},
      out + ".err");
  ASSERT_GT(bg.pid, 0);
  // While it records, some thread of the recorder is at SCHED_IDLE (5).
  bool saw_idle = false;
  for (int i = 0; i < 2000 && !saw_idle && !bg.exited(); ++i) {
    for (int p : thread_policies(bg.pid)) saw_idle |= p == SCHED_IDLE;
    if (!saw_idle) ::usleep(5 * 1000);
  }
  const int status = bg.wait();
  ASSERT_TRUE(WIFEXITED(status));
  if (refused_by_machine(WEXITSTATUS(status), bg.err())) GTEST_SKIP() << "the kernel refused: " << bg.err();
  ASSERT_EQ(WEXITSTATUS(status), 0) << bg.err();
  EXPECT_TRUE(saw_idle) << "no thread of the recorder ran at SCHED_IDLE while the guest ran";

  // Everything buffered was written: 65535 loops of the guest each raise one #UD and exit to
  // user space for its IN; nothing dropped.
  auto rec = es::replay::Recording::open(out);
  ASSERT_TRUE(rec) << rec.error();
  auto s = rec->session();
  ASSERT_TRUE(s) << s.error();
  EXPECT_TRUE(s->complete);
  EXPECT_EQ(s->source_dropped, 0u);
  const auto info = run_cli("info '" + out + "'");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("decoding at idle priority, up to 600000 ms behind"), std::string::npos) << info.out;
  EXPECT_EQ(count_after(info.out, "INJECT_NEW"), 65535) << info.out;
}

TEST_F(KvmSchedule, FullBufferDropsAreCountedStoredAndShown) {
  const std::string out = db("full.db");
  // A 1 MiB buffer (~10 k events) and a pipeline slowed to ~40 k events/s: the guest's ~70 k
  // events overflow it, and the pipeline's priority is raised on the way.
  const auto r = run_cli("record --kvm --buffer-size 1 --max-lag 0.05 --test-slow-pipeline -o '" + out + "' -- '" +
                         ES_KVM_GUEST_BIN + "' --loops 4000 --quiet");
  if (refused_by_machine(r.code, r.err)) GTEST_SKIP() << "the kernel refused: " << r.err;
  ASSERT_EQ(r.code, 0) << r.err;
  auto rec = es::replay::Recording::open(out);
  ASSERT_TRUE(rec) << rec.error();
  auto s = rec->session();
  ASSERT_TRUE(s) << s.error();
  ASSERT_GT(s->source_dropped, 0u);
  const std::string& j = s->config_json;
  const size_t b = j.find("\"buffer_drops\": ");
  ASSERT_NE(b, std::string::npos) << j;
  const uint64_t buffer_drops = std::stoull(j.substr(b + 16));
  EXPECT_GT(buffer_drops, 0u);
  EXPECT_LE(buffer_drops, s->source_dropped);
  EXPECT_NE(r.out.find(std::to_string(buffer_drops) + " more with the buffer full"), std::string::npos) << r.out;
  const auto info = run_cli("info '" + out + "'");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("buffer 1048576 bytes; " + std::to_string(buffer_drops) + " dropped full"), std::string::npos)
      << info.out;
  EXPECT_NE(info.out.find(std::to_string(s->source_dropped) + " by the source"), std::string::npos) << info.out;
  EXPECT_EQ(info.out.find("raised 0 time(s)"), std::string::npos) << info.out;
  // What was kept is a recording like any other.
  const auto events = run_cli("events '" + out + "' --limit 5");
  EXPECT_EQ(events.code, 0) << events.err;
}

TEST_F(KvmSchedule, MaxLagZeroDecodesAtNormalPriority) {
  const std::string out = db("nolag.db");
  const auto r = run_cli("record --kvm --max-lag 0 -o '" + out + "' -- '" + ES_KVM_GUEST_BIN + "' --loops 50 --quiet");
  if (refused_by_machine(r.code, r.err)) GTEST_SKIP() << "the kernel refused: " << r.err;
  ASSERT_EQ(r.code, 0) << r.err;
  const auto info = run_cli("info '" + out + "'");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("decoding beside the guests (--max-lag 0)"), std::string::npos) << info.out;
  EXPECT_EQ(count_after(info.out, "INJECT_NEW"), 50) << info.out;
}

TEST_F(KvmSchedule, InterruptWhileWritingTheBacklogKeepsWhatIsWritten) {
  const std::string out = db("abandon.db");
  // A slowed pipeline (~40 k events/s) that may lag 10 minutes: the guest's ~70 k events are
  // mostly still buffered when the recording stops.
  Background bg({"record", "--kvm", "--max-lag", "600", "--test-slow-pipeline", "-o", out, "--", ES_KVM_GUEST_BIN,
                 "--loops", "4000", "--quiet"},
                out + ".err");
  ASSERT_GT(bg.pid, 0);
  if (!bg.wait_attached()) {
    if (refused_by_machine(2, bg.err())) GTEST_SKIP() << "the kernel refused: " << bg.err();
    FAIL() << "the recorder did not start: " << bg.err();
  }
  ::usleep(500 * 1000);  // the guest runs (~0.2 s), the pipeline falls behind
  bg.kill(SIGINT);       // stop: write the backlog ...
  ::usleep(300 * 1000);
  bg.kill(SIGINT);  // ... no: keep what is written
  const int status = bg.wait();
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << bg.err();
  EXPECT_NE(bg.err().find("buffered events not written (counted as dropped)"), std::string::npos) << bg.err();
  auto rec = es::replay::Recording::open(out);
  ASSERT_TRUE(rec) << rec.error();
  auto s = rec->session();
  ASSERT_TRUE(s) << s.error();
  EXPECT_TRUE(s->complete);
  EXPECT_GT(s->source_dropped, 0u);
  EXPECT_GT(s->event_count, 0u);
  const auto info = run_cli("info '" + out + "'");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find(" not written (interrupted)"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find(std::to_string(s->source_dropped) + " by the source"), std::string::npos) << info.out;
}

TEST_F(KvmSchedule, KilledRecordingKeepsWhatItHadCommittedAndItsDropCounts) {
  const std::string out = db("killed-drops.db");
  // 32-record rings and a slow consumer, recording the whole host while guests run one after
  // the other: few events, many drops. The recorder commits what it has every second even
  // though no batch fills, with the drop count so far.
  Background bg({"record", "--kvm", "--test-overflow", "--duration", "60", "-o", out}, out + ".err");
  ASSERT_GT(bg.pid, 0);
  if (!bg.wait_attached()) {
    if (refused_by_machine(2, bg.err())) GTEST_SKIP() << "the kernel refused: " << bg.err();
    FAIL() << "the recorder did not start: " << bg.err();
  }
  const pid_t guests = ::fork();
  if (guests == 0) {
    ::setpgid(0, 0);  // killed as a group below, the running guest with it
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) ::dup2(devnull, 1);
    for (int i = 0; i < 100; ++i) {
      const pid_t g = ::fork();
      if (g == 0) {
        ::execl(ES_KVM_GUEST_BIN, "es-kvm-guest", "--loops", "65535", "--quiet", static_cast<char*>(nullptr));
        ::_exit(127);
      }
      int st = 0;
      ::waitpid(g, &st, 0);
    }
    ::_exit(0);
  }
  ASSERT_GT(guests, 0);
  uint64_t dropped = 0, events = 0;
  for (int i = 0; i < 300 && (dropped == 0 || events == 0); ++i) {
    ::usleep(100 * 1000);
    if (auto rec = es::replay::Recording::open(out)) {
      if (auto s = rec->session()) {
        dropped = s->source_dropped;
        events = s->event_count;
      }
    }
  }
  bg.kill(SIGKILL);
  bg.wait();
  int status = 0;
  ::kill(-guests, SIGKILL);
  ::waitpid(guests, &status, 0);
  ASSERT_GT(events, 0u) << "nothing was committed within 30 s";
  ASSERT_GT(dropped, 0u) << "the ring's drops were not stored while recording";
  const auto info = run_cli("info '" + out + "'");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("INCOMPLETE"), std::string::npos) << info.out;
  EXPECT_EQ(info.out.find(" 0 by the source"), std::string::npos) << info.out;
}

TEST(KvmScheduleUsage, BadBufferAndLagNameTheProblem) {
  auto r = run_cli("record --kvm -o /tmp/x.db --buffer-size 0");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--buffer-size needs a size in MiB"), std::string::npos) << r.err;
  r = run_cli("record --kvm -o /tmp/x.db --max-lag -1");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--max-lag needs a number of seconds"), std::string::npos) << r.err;
  r = run_cli("record --scenario irq-basic -o /tmp/x.db --max-lag 1");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--max-lag is for --kvm"), std::string::npos) << r.err;
  r = run_cli("record --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--max-lag"), std::string::npos);
  EXPECT_NE(r.out.find("--buffer-size"), std::string::npos);
  EXPECT_EQ(r.out.find("test-slow-pipeline"), std::string::npos);
}

}  // namespace
