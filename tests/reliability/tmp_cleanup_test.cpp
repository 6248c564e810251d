// tests/support/tmp.h: a test process removes its own ES_TEST_TMPDIR/<pid> at normal exit
// when every test passed, keeps it (and says where) when one failed, and the next process
// sweeps directories of dead processes once they are a day old. (A build directory once
// held 48 GB of leftovers.)
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "tests/support/cli_run.h"

namespace fs = std::filesystem;

namespace {

struct HelperRun {
  int code = -1;
  std::string out, err, dir;
};

HelperRun run_helper(const std::string& filter) {
  const std::string out = es::test::process_tmp("helper.out"), err = es::test::process_tmp("helper.err");
  const std::string cmd = std::string("'") + ES_TMP_HELPER_BIN +
                          "' --gtest_also_run_disabled_tests --gtest_filter=" + filter + " >'" + out + "' 2>'" + err +
                          "'";
  const int status = std::system(cmd.c_str());
  HelperRun r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = es::test::slurp(out);
  r.err = es::test::slurp(err);
  if (const size_t at = r.out.find("tmpdir="); at != std::string::npos)
    r.dir = r.out.substr(at + 7, r.out.find('\n', at) - at - 7);
  return r;
}

TEST(TmpCleanup, PassingProcessRemovesItsDirectory) {
  const HelperRun r = run_helper("TmpHelper.DISABLED_Passes");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  ASSERT_FALSE(r.dir.empty()) << r.out;
  EXPECT_FALSE(fs::exists(r.dir)) << r.dir << " (with an 8 MiB file) was left behind";
}

TEST(TmpCleanup, FailingProcessKeepsItsDirectoryAndSaysWhere) {
  const HelperRun r = run_helper("TmpHelper.DISABLED_Fails");
  ASSERT_NE(r.code, 0) << r.out << r.err;
  ASSERT_FALSE(r.dir.empty()) << r.out;
  EXPECT_TRUE(fs::exists(r.dir + "/big.bin"));
  EXPECT_NE(r.err.find("test files kept for inspection in " + r.dir), std::string::npos) << r.err;
  std::error_code ec;
  fs::remove_all(r.dir, ec);
}

TEST(TmpCleanup, StaleDirectoriesOfDeadProcessesAreSwept) {
  // A directory named like a pid that cannot be running (above pid_max) and a day old, and
  // a fresh one: the next helper run sweeps the first and leaves the second.
  const std::string root = std::string(ES_TEST_TMPDIR) + "-helper";
  const std::string stale = root + "/999999999", fresh = root + "/999999998";
  fs::create_directories(stale);
  fs::create_directories(fresh);
  fs::last_write_time(stale, fs::file_time_type::clock::now() - std::chrono::hours(48));
  const HelperRun r = run_helper("TmpHelper.DISABLED_Passes");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(fresh));
  fs::remove_all(fresh);
}

}  // namespace
