// `exitscope record` as a user runs it: the real binary, real files on disk.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <fstream>
#include <string>

#include "tests/support/cli_run.h"

namespace {

namespace fs = std::filesystem;

// stdout and stderr together: what the user sees in the terminal.
struct CliRun {
  int code = -1;
  std::string out;
};

CliRun run(const std::string& args) {
  const es::test::CliRun r = es::test::run_cli(args);
  return {r.code, r.out + r.err};
}

class RecordCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("exitscope_record_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const char* name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(RecordCli, RecordsAScenarioThatInfoAndChainsExplain) {
  const CliRun rec = run("record --scenario irq-ept-reinject -o " + path("a.db"));
  ASSERT_EQ(rec.code, 0) << rec.out;
  EXPECT_NE(rec.out.find("IRQ 0x20 delivered"), std::string::npos) << rec.out;
  const CliRun info = run("info " + path("a.db"));
  ASSERT_EQ(info.code, 0) << info.out;
  EXPECT_NE(info.out.find("irq-ept-reinject"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("complete"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("EPT_VIOLATION"), std::string::npos) << info.out;
  const CliRun chains = run("chains " + path("a.db"));
  ASSERT_EQ(chains.code, 0) << chains.out;
  EXPECT_NE(chains.out.find("IRQ 0x20"), std::string::npos) << chains.out;
  EXPECT_NE(chains.out.find("delivered"), std::string::npos) << chains.out;
}

TEST_F(RecordCli, ScenariosListsEveryScenarioWithADescription) {
  const CliRun r = run("scenarios");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* name :
       {"timer-irq", "irq-ept-reinject", "guest-pf", "pf-during-irq", "double-fault", "triple-fault", "softint-ept",
        "nmi-blocking", "exception-vectoring-policy", "nested-irq-vectoring", "nested-async-pf", "nested-ept-reinject",
        "nested-exception-reflect", "nmi-exit-host", "fred-nested-exception", "nmi-iret-ept", "nmi-iret-pf",
        "nested-nmi-iret-ept", "nested-nmi-iret-pf"})
    EXPECT_NE(r.out.find(name), std::string::npos) << name;
}

// The guest's verdict (its port 0xF4 byte) reaches the user: in record's summary, in info,
// and with --exit-code as the process's exit code, so a guest can be a test.
TEST_F(RecordCli, GuestExitCodeReachesSummaryInfoAndExitStatus) {
  // A real flat-binary guest: mov al, 7; out 0xF4, al; hlt.
  const unsigned char guest[] = {0xB0, 0x07, 0xE6, 0xF4, 0xF4};
  std::ofstream(path("exit7.bin"), std::ios::binary).write(reinterpret_cast<const char*>(guest), sizeof guest);

  const CliRun plain = run("record --guest " + path("exit7.bin") + " -o " + path("a.db"));
  EXPECT_EQ(plain.code, 0) << "without --exit-code a finished recording exits 0\n" << plain.out;
  EXPECT_NE(plain.out.find("guest exit code: 7"), std::string::npos) << plain.out;
  const CliRun info = run("info " + path("a.db"));
  ASSERT_EQ(info.code, 0) << info.out;
  EXPECT_NE(info.out.find("exit code:  7"), std::string::npos) << info.out;

  const CliRun as_test = run("record --guest " + path("exit7.bin") + " -o " + path("b.db") + " --exit-code --quiet");
  EXPECT_EQ(as_test.code, 7) << as_test.out;
  const CliRun nested = run("record --guest " + path("exit7.bin") + " --nested -o " + path("n.db") + " --exit-code");
  EXPECT_EQ(nested.code, 7) << nested.out;

  // A guest that checks itself and passes: 0, with --exit-code too.
  const CliRun pass = run("record --scenario nested-nmi-iret-pf -o " + path("c.db") + " --exit-code");
  EXPECT_EQ(pass.code, 0) << pass.out;
  EXPECT_NE(pass.out.find("guest exit code: 0"), std::string::npos) << pass.out;

  // The same guest under the hypervisor bug it checks for fails, and says so through the exit code.
  const CliRun fail =
      run("record --scenario nmi-iret-ept --bug ignore-nmi-unblocking -o " + path("f.db") + " --exit-code");
  EXPECT_EQ(fail.code, 1) << fail.out;
  EXPECT_NE(fail.out.find("guest exit code: 1"), std::string::npos) << fail.out;

  // No exit code at all (the run hit a limit): 125, and info claims none.
  const CliRun limit = run("record --scenario timer-irq --arg 0 --max-exits 20 -o " + path("d.db") + " --exit-code");
  EXPECT_EQ(limit.code, 125) << limit.out;
  EXPECT_EQ(limit.out.find("guest exit code"), std::string::npos) << limit.out;
  const CliRun info_limit = run("info " + path("d.db"));
  ASSERT_EQ(info_limit.code, 0) << info_limit.out;
  EXPECT_EQ(info_limit.out.find("exit code:"), std::string::npos) << info_limit.out;

  const CliRun help = run("record --help");
  EXPECT_NE(help.out.find("--exit-code"), std::string::npos) << help.out;
  // A KVM recording has no guest exit port: the option is refused, whatever the build.
  const CliRun kvm = run("record --kvm --exit-code -o " + path("k.db"));
  EXPECT_EQ(kvm.code, 2) << kvm.out;
  EXPECT_FALSE(std::filesystem::exists(path("k.db")));
}

TEST_F(RecordCli, BadInputGetsOneClearErrorAndExitCode2) {
  std::ofstream(path("exists.db")) << "x";
  std::ofstream(path("garbled.elf"), std::ios::binary) << "\x7f"
                                                          "ELF\x02\x01\x01";
  struct Case {
    std::string args;
    const char* expect;
  } cases[] = {
      {"record --scenario no-such -o " + path("b.db"), "unknown scenario 'no-such'"},
      {"record --scenario timer-irq --policy nope -o " + path("b.db"), "unknown policy 'nope'"},
      {"record --guest " + path("missing.bin") + " -o " + path("b.db"), "missing.bin"},
      {"record --guest " + path("garbled.elf") + " -o " + path("b.db"), "truncated"},
      {"record --scenario timer-irq -o /proc/no/such/dir/x.db", "x.db"},
      {"record --scenario timer-irq -o " + path("exists.db"), "exists"},
      {"record --scenario timer-irq", "-o DB"},
      {"record --scenario timer-irq --max-exits ten -o " + path("b.db"), "--max-exits"},
      {"record --bogus", "--bogus"},
      {"record --scenario timer-irq --bug exit-with-vectoring -o " + path("b.db"), "needs a nested run"},
      {"record --scenario nested-irq-vectoring --bug nope -o " + path("b.db"), "unknown --bug 'nope'"},
      {"record --scenario timer-irq --bug async-pf-into-l2 -o " + path("b.db"), "needs a nested run"},
      {"record --scenario timer-irq --nested -o " + path("b.db"), "--nested is for --guest"},
  };
  for (const auto& c : cases) {
    const CliRun r = run(c.args);
    EXPECT_EQ(r.code, 2) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << "\n" << r.out;
    EXPECT_EQ(r.out.find("Segmentation"), std::string::npos) << c.args;
  }
  // The existing file was left alone; --force replaces it.
  std::ifstream f(path("exists.db"));
  std::string content((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "x");
  EXPECT_EQ(run("record --scenario irq-ept-reinject --quiet --force -o " + path("exists.db")).code, 0);
}

// Starts `exitscope record` on an endless timer-irq run and waits until it has committed
// batches to the file (the recording plus its WAL pass 2 MB). Returns the child's pid.
pid_t start_long_recording(const std::string& db) {
  const pid_t pid = fork();
  if (pid == 0) {
    execl(ES_EXITSCOPE_BIN, "exitscope", "record", "--scenario", "timer-irq", "--arg", "0", "--max-exits", "100000000",
          "--quiet", "-o", db.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  auto size = [&](const std::string& p) {
    std::error_code ec;
    const auto n = fs::file_size(p, ec);
    return ec ? 0 : n;
  };
  for (int i = 0; i < 600 && size(db) + size(db + "-wal") < (2u << 20); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return pid;
}

// Reliability: SIGKILL mid-recording. The file opens, every committed batch is there, the
// session says it is incomplete, and the replay commands work on it.
TEST_F(RecordCli, KilledRecordingKeepsCommittedBatchesAndSaysIncomplete) {
  const std::string db = path("killed.db");
  const pid_t pid = start_long_recording(db);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  const CliRun info = run("info --no-console " + db);
  ASSERT_EQ(info.code, 0) << info.out;
  EXPECT_NE(info.out.find("INCOMPLETE"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("VM_EXIT"), std::string::npos) << info.out;
  const CliRun events = run("events " + db + " --kind exit --limit 3");
  EXPECT_EQ(events.code, 0) << events.out;
  EXPECT_NE(events.out.find("VM_EXIT"), std::string::npos) << events.out;
  const CliRun chains = run("chains " + db + " --outcome delivered");
  EXPECT_EQ(chains.code, 0) << chains.out;
  EXPECT_NE(chains.out.find("IRQ 0x20"), std::string::npos);
}

// SIGINT (Ctrl-C) stops the run cleanly: everything flushed, the session complete, ended by
// the user.
TEST_F(RecordCli, InterruptedRecordingStopsCleanlyWithEverythingFlushed) {
  const std::string db = path("interrupted.db");
  const pid_t pid = start_long_recording(db);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGINT), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  const CliRun info = run("info --no-console " + db);
  ASSERT_EQ(info.code, 0) << info.out;
  EXPECT_NE(info.out.find("status:     complete"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("stopped"), std::string::npos) << info.out;
  EXPECT_FALSE(fs::exists(db + "-wal") && fs::file_size(db + "-wal") > 0) << "finish() leaves one self-contained file";
}

TEST_F(RecordCli, EveryCommandHasHelp) {
  for (const char* cmd : {"record", "scenarios"}) {
    const CliRun r = run(std::string(cmd) + " --help");
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_NE(r.out.find("Usage: exitscope"), std::string::npos) << cmd << r.out;
  }
}

}  // namespace
