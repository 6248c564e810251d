// Out of space mid-recording: `exitscope record` stops with one error naming the file and
// the cause, exits non-zero, and leaves a recording that `info`, `events` and `chains` open
// with every batch committed before the failure. Two ways to run out: the file size limit
// (RLIMIT_FSIZE with SIGXFSZ ignored, works anywhere) and a real full filesystem (a 4 MiB
// tmpfs mounted by the test; skipped where mounting is refused).
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>

#include "tests/support/cli_run.h"

namespace fs = std::filesystem;
using es::test::CliRun;
using es::test::run_cli;

namespace {

// An endless guest (timer IRQs forever): only the disk can stop it before the limit.
const char* const kEndless[] = {"record", "--scenario",  "timer-irq", "--arg",
                                "0",      "--max-exits", "100000000", "--quiet"};

// Runs `exitscope record ... -o db` in a child with an optional file size limit; kills it
// after `timeout` (a recorder that does not stop on a full disk would run for minutes).
CliRun record_until_full(const std::string& db, rlim_t fsize_limit, std::chrono::seconds timeout, bool& timed_out) {
  const std::string out = es::test::process_tmp("record.out"), err = es::test::process_tmp("record.err");
  const pid_t pid = fork();
  if (pid == 0) {
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (o < 0 || e < 0) _exit(126);
    dup2(o, 1);
    dup2(e, 2);
    if (fsize_limit) {
      signal(SIGXFSZ, SIG_IGN);  // write() fails with EFBIG instead of killing the process
      const rlimit lim{fsize_limit, fsize_limit};
      if (setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(125);
    }
    std::vector<const char*> argv{"exitscope"};
    for (const char* a : kEndless) argv.push_back(a);
    argv.push_back("-o");
    argv.push_back(db.c_str());
    argv.push_back(nullptr);
    execv(ES_EXITSCOPE_BIN, const_cast<char* const*>(argv.data()));
    _exit(127);
  }
  CliRun r;
  timed_out = false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      timed_out = true;
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  r.out = es::test::slurp(out);
  r.err = es::test::slurp(err);
  return r;
}

// What a user checks after the error: one line naming the file and the cause, a count of
// what was kept, and that count is what `info` finds in a file the replay commands open.
void expect_stopped_with_readable_file(const CliRun& rec, const std::string& db, const std::string& cause) {
  EXPECT_NE(rec.code, 0);
  EXPECT_LT(rec.code, 128) << "killed by a signal instead of stopping: " << rec.err;
  EXPECT_EQ(es::test::count_lines(rec.err), 1u) << "one error line, got:\n" << rec.err;
  EXPECT_NE(rec.err.find("'" + db + "'"), std::string::npos) << rec.err;
  EXPECT_NE(rec.err.find(cause), std::string::npos) << rec.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(rec.err, m, std::regex("The ([0-9]+) events committed before are kept"))) << rec.err;
  const std::string kept = m[1];
  EXPECT_NE(kept, "0") << "the limit is large enough for some batches to be committed first";

  const CliRun info = run_cli("info --no-console '" + db + "'");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("INCOMPLETE"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("events:     " + kept + " "), std::string::npos)
      << "info should count the " << kept << " committed events:\n"
      << info.out;
  const CliRun events = run_cli("events '" + db + "' --kind exit --limit 3");
  EXPECT_EQ(events.code, 0) << events.err;
  // Event rows only: when the recorder dropped records before it stopped (more of them under
  // load), `events` says so first in a "# ... dropped" line, which is not an event.
  size_t rows = 0;
  for (size_t at = 0; at < events.out.size();) {
    const size_t end = events.out.find('\n', at);
    if (events.out.compare(at, 2, "# ") != 0) ++rows;
    if (end == std::string::npos) break;
    at = end + 1;
  }
  EXPECT_EQ(rows, 3u) << events.out;
  const CliRun chains = run_cli("chains '" + db + "' --outcome delivered");
  EXPECT_EQ(chains.code, 0) << chains.err;
  EXPECT_NE(chains.out.find("IRQ 0x20"), std::string::npos) << chains.out;
}

TEST(DiskFull, FileSizeLimitStopsRecordingWithOneErrorAndAReadableFile) {
  const std::string db = es::test::process_tmp("fsize.db");
  fs::remove(db);
  bool timed_out = false;
  const CliRun rec = record_until_full(db, 4u << 20, std::chrono::seconds(60), timed_out);
  ASSERT_FALSE(timed_out) << "exitscope record kept running after the file size limit was reached";
  expect_stopped_with_readable_file(rec, db, "file size limit reached");
  EXPECT_NE(rec.err.find("ulimit -f"), std::string::npos) << rec.err;
}

// A real full filesystem. Needs root and a kernel that lets this process mount tmpfs.
class DiskFullTmpfs : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root; run the tests as root to cover ENOSPC";
    dir_ = es::test::process_tmp("tmpfs");
    fs::create_directories(dir_);
    if (mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=4m") != 0)
      GTEST_SKIP() << "mount of a 4 MiB tmpfs on " << dir_ << " refused (" << std::strerror(errno)
                   << "); the file-size-limit test covers the recorder's side";
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
  }
  std::string dir_;
  bool mounted_ = false;
};

TEST_F(DiskFullTmpfs, FullFilesystemStopsRecordingWithOneErrorAndAReadableFile) {
  const std::string db = dir_ + "/full.db";
  bool timed_out = false;
  const CliRun rec = record_until_full(db, 0, std::chrono::seconds(60), timed_out);
  ASSERT_FALSE(timed_out) << "exitscope record kept running on a full filesystem";
  expect_stopped_with_readable_file(rec, db, "disk full");
  EXPECT_NE(rec.err.find(std::strerror(ENOSPC)), std::string::npos) << rec.err;
}

}  // namespace
