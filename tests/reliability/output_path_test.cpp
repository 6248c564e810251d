// Outputs never destroy what exitscope did not create (issue #17, RELIABILITY.md "Files from
// strangers"): a device, FIFO or terminal is written as a stream (export) or refused (a
// recording is a SQLite file); only a regular file is ever renamed over; an output that is one
// of the inputs is refused by device and inode; a recording in progress is locked and never
// replaced. The real `exitscope` binary on real files, FIFOs, links and /dev/null.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "probes/recorder/output_file.h"
#include "tests/support/cli_run.h"

extern char** environ;

namespace fs = std::filesystem;
using es::test::CliRun;
using es::test::run_cli;
using es::test::slurp;

namespace {

std::string quoted(const std::string& p) { return "'" + p + "'"; }

std::string recording(const std::string& name) {
  const std::string p = es::test::process_tmp(name);
  for (const char* s : {"", "-wal", "-shm"}) fs::remove(p + s);
  const CliRun r = run_cli("record --scenario irq-ept-reinject --quiet -o " + quoted(p));
  EXPECT_EQ(r.code, 0) << r.err;
  return p;
}

void write_file(const std::string& p, const std::string& text) {
  fs::remove(p);
  std::ofstream(p, std::ios::binary) << text;
}

bool is_dev_null(const char* path = "/dev/null") {
  struct stat st {};
  return ::lstat(path, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3;
}

bool is_fifo(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
}

std::string make_fifo(const std::string& name) {
  const std::string p = es::test::process_tmp(name);
  fs::remove(p);
  EXPECT_EQ(::mkfifo(p.c_str(), 0600), 0);
  return p;
}

// Reads `fifo` to its end on a thread (a FIFO's writer blocks until a reader opens it).
class FifoReader {
 public:
  explicit FifoReader(std::string fifo) : t_([this, f = std::move(fifo)] { text_ = slurp(f); }) {}
  std::string text() {
    if (t_.joinable()) t_.join();
    return text_;
  }
  ~FifoReader() {
    if (t_.joinable()) t_.join();
  }

 private:
  std::string text_;
  std::thread t_;
};

// Expected: export writes /dev/null as a stream: exit 0, and /dev/null is still the character
// device 1:3 (it was replaced by a regular file when export renamed its .partial over it).
TEST(OutputPath, ExportToDevNullLeavesTheDeviceInPlace) {
  const std::string db = recording("null.db");
  ASSERT_TRUE(is_dev_null());
  for (const char* format : {"text", "markdown", "perfetto"}) {
    const CliRun r = run_cli("export " + quoted(db) + " --format " + format + " -o /dev/null");
    EXPECT_EQ(r.code, 0) << format << ": " << r.err;
    EXPECT_TRUE(r.err.empty()) << r.err;
    ASSERT_TRUE(is_dev_null()) << format << ": /dev/null is no longer the null device";
  }
  EXPECT_FALSE(fs::exists("/dev/null.partial"));
}

// Expected: export to a FIFO (and to a symlink to one) writes exactly what it writes to
// stdout into the pipe, and the FIFO and the link are still a FIFO and a link.
TEST(OutputPath, ExportToAFifoOrALinkToItStreamsAndKeepsBoth) {
  const std::string db = recording("fifo.db");
  const CliRun plain = run_cli("export " + quoted(db));
  ASSERT_EQ(plain.code, 0) << plain.err;
  ASSERT_FALSE(plain.out.empty());
  const std::string fifo = make_fifo("out.fifo");
  const std::string link = es::test::process_tmp("fifo.link");
  fs::remove(link);
  fs::create_symlink(fifo, link);
  for (const std::string& target : {fifo, link}) {
    FifoReader reader(fifo);
    const CliRun r = run_cli("export " + quoted(db) + " -o " + quoted(target));
    EXPECT_EQ(r.code, 0) << target << ": " << r.err;
    // If export never opened the pipe, the reader still waits in open(): give it an EOF.
    if (const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK); fd >= 0) ::close(fd);
    EXPECT_EQ(reader.text(), plain.out) << target;
    EXPECT_TRUE(is_fifo(fifo)) << target;
    EXPECT_FALSE(fs::exists(target + ".partial"));
  }
  EXPECT_TRUE(fs::is_symlink(link));
}

// /dev/stdout is a link to /proc/self/fd/1. A link of our own to it (the same as /dev/stdout,
// without touching the system's) must be written through, as the file descriptor it names:
// the output lands in the command's stdout (here a file) and the link stays a link.
TEST(OutputPath, ExportToAStdoutLinkWritesToTheOpenDescriptor) {
  const std::string db = recording("stdout.db");
  const CliRun plain = run_cli("export " + quoted(db));
  ASSERT_EQ(plain.code, 0) << plain.err;
  const std::string link = es::test::process_tmp("stdout.link");
  fs::remove(link);
  fs::create_symlink("/proc/self/fd/1", link);
  const CliRun r = run_cli("export " + quoted(db) + " -o " + quoted(link) + " --force");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, plain.out);
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(fs::read_symlink(link), "/proc/self/fd/1");
  const CliRun dev = run_cli("export " + quoted(db) + " -o /dev/stdout");
  EXPECT_EQ(dev.code, 0) << dev.err;
  EXPECT_EQ(dev.out, plain.out);
  EXPECT_TRUE(fs::is_symlink("/dev/stdout"));
}

// Expected: an export through a symlink to a regular file replaces the file, not the link.
TEST(OutputPath, ExportThroughASymlinkReplacesTheFileAndKeepsTheLink) {
  const std::string db = recording("link.db");
  const std::string file = es::test::process_tmp("report.txt");
  const std::string link = es::test::process_tmp("report.link");
  write_file(file, "old report\n");
  fs::remove(link);
  fs::create_symlink(file, link);
  const CliRun r = run_cli("export " + quoted(db) + " -o " + quoted(link) + " --force");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(slurp(file), run_cli("export " + quoted(db)).out);
}

// A recording is a SQLite database: it cannot be a stream. Expected: record, import and
// migrate (with --force) refuse /dev/null and a FIFO in one sentence, exit 2 without blocking
// on the FIFO, and leave both in place (before: /dev/null became a regular file).
TEST(OutputPath, RecordingsRefuseDevicesAndFifos) {
  const std::string trace = es::test::process_tmp("t.txt");
  write_file(trace, " qemu-1 [000] 10.000000: kvm_exit: reason EPT_VIOLATION rip 0x1000 info 0 0\n");
  const std::string old_db = es::test::process_tmp("old.db");
  fs::copy_file(std::string(ES_TEST_DATA_DIR) + "/schema/v1_irq_ept_reinject.db", old_db,
                fs::copy_options::overwrite_existing);
  const std::string fifo = make_fifo("rec.fifo");
  for (const std::string& out : {std::string("/dev/null"), fifo}) {
    for (const std::string& cmd : {"record --scenario timer-irq --quiet --force -o " + quoted(out),
                                   "import " + quoted(trace) + " --force -o " + quoted(out),
                                   "migrate " + quoted(old_db) + " --force -o " + quoted(out)}) {
      const CliRun r = run_cli(cmd);
      EXPECT_EQ(r.code, 2) << cmd << ": " << r.err;
      EXPECT_EQ(es::test::count_lines(r.err), 1u) << cmd << ": " << r.err;
      EXPECT_NE(r.err.find(quoted(out) + " is a " + std::string(out == fifo ? "FIFO" : "character device")),
                std::string::npos)
          << r.err;
      EXPECT_NE(r.err.find("cannot be written to a device or a pipe"), std::string::npos) << r.err;
    }
  }
  EXPECT_TRUE(is_dev_null());
  EXPECT_TRUE(is_fifo(fifo));
  EXPECT_FALSE(fs::exists("/dev/null.partial"));
}

// Expected: an output that is the command's input (the same name, a hard link, a ../ path, a
// symlink) is refused before anything is written: exit 2, one sentence naming both, and the
// input byte for byte as it was (before: import and record --force overwrote it, exit 0).
TEST(OutputPath, OutputThatIsTheInputIsRefusedByDeviceAndInode) {
  const std::string dir = es::test::process_tmp("inputs");
  fs::create_directories(dir);
  const std::string trace = dir + "/t.txt";
  const std::string trace_text = " qemu-1 [000] 10.000000: kvm_exit: reason EPT_VIOLATION rip 0x1000 info 0 0\n";
  write_file(trace, trace_text);
  const std::string hard = dir + "/hard.txt";
  fs::remove(hard);
  fs::create_hard_link(trace, hard);
  const std::string sym = dir + "/sym.txt";
  fs::remove(sym);
  fs::create_symlink(trace, sym);
  const std::string dotdot = dir + "/../" + fs::path(dir).filename().string() + "/t.txt";
  for (const std::string& out : {trace, hard, sym, dotdot}) {
    const CliRun r = run_cli("import " + quoted(trace) + " -o " + quoted(out) + " --force");
    EXPECT_EQ(r.code, 2) << out << ": " << r.err;
    EXPECT_EQ(es::test::count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(quoted(out) + " is the trace file itself"), std::string::npos) << r.err;
    EXPECT_EQ(slurp(trace), trace_text) << out;
  }
  const std::string guest = dir + "/g.bin";
  write_file(guest, std::string("\xeb\xfe", 2));  // jmp $
  for (const std::string& out : {guest, dir + "/../" + fs::path(dir).filename().string() + "/g.bin"}) {
    const CliRun r = run_cli("record --guest " + quoted(guest) + " -o " + quoted(out) + " --force --quiet");
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("is the guest file itself"), std::string::npos) << r.err;
    EXPECT_EQ(slurp(guest), std::string("\xeb\xfe", 2));
  }
  const std::string db = recording("in.db");
  const std::string db_link = es::test::process_tmp("in-hard.db");
  fs::remove(db_link);
  fs::create_hard_link(db, db_link);
  const std::string before = slurp(db);
  const CliRun ex = run_cli("export " + quoted(db) + " -o " + quoted(db_link));
  EXPECT_EQ(ex.code, 2) << ex.err;
  EXPECT_NE(ex.err.find("is the recording itself"), std::string::npos) << ex.err;
  EXPECT_EQ(slurp(db), before);
}

// Reading an older recording writes a migrated copy beside it (old.db -> old.v5.db, through
// old.v5.db.partial). An archive from a stranger can hold anything under those names. Expected:
// a symlink named old.v5.db and a FIFO named x.v5.db.partial are neither replaced nor unlinked
// (nor is the link's target touched); info falls back to the temp directory, says so, exit 0.
TEST(OutputPath, MigratedCopyNeverReplacesALinkOrAFifoBesideTheOriginal) {
  const std::string dir = es::test::process_tmp("beside");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string v1 = std::string(ES_TEST_DATA_DIR) + "/schema/v1_irq_ept_reinject.db";
  fs::copy_file(v1, dir + "/old.db");
  fs::copy_file(v1, dir + "/x.db");
  write_file(dir + "/victim", "precious\n");
  fs::create_symlink("victim", dir + "/old.v5.db");
  ASSERT_EQ(::mkfifo((dir + "/x.v5.db.partial").c_str(), 0600), 0);
  for (const char* name : {"old.db", "x.db"}) {
    const CliRun r = run_cli("info " + quoted(dir + "/" + name));
    EXPECT_EQ(r.code, 0) << name << ": " << r.err;
    EXPECT_NE(r.err.find("reading a migrated copy"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("exitscope-migrated"), std::string::npos) << r.err;  // the temp-directory copy
  }
  EXPECT_TRUE(fs::is_symlink(dir + "/old.v5.db"));
  EXPECT_EQ(slurp(dir + "/victim"), "precious\n");
  EXPECT_TRUE(is_fifo(dir + "/x.v5.db.partial"));
  // migrate onto the link names the file behind it: the file is replaced, the link stays.
  const CliRun m = run_cli("migrate " + quoted(dir + "/old.db") + " -o " + quoted(dir + "/old.v5.db") + " --force");
  EXPECT_EQ(m.code, 0) << m.err;
  EXPECT_TRUE(fs::is_symlink(dir + "/old.v5.db"));
  EXPECT_NE(slurp(dir + "/victim").rfind("SQLite format 3", 0), std::string::npos);
}

// export writes FILE.partial and import DB.partial before renaming. Expected: a symlink there
// is not followed (its target, e.g. a dotfile, keeps its content) and a FIFO there is not
// unlinked nor opened (no hang); both commands refuse in one sentence naming the .partial name.
TEST(OutputPath, PartialFilesThatAreNotOursAreNeitherFollowedNorUnlinked) {
  const std::string db = recording("partial.db");
  const std::string victim = es::test::process_tmp("dotfile");
  write_file(victim, "precious\n");
  const std::string report = es::test::process_tmp("report2.txt");
  fs::remove(report + ".partial");
  fs::create_symlink(victim, report + ".partial");
  const CliRun ex = run_cli("export " + quoted(db) + " -o " + quoted(report));
  EXPECT_EQ(ex.code, 2) << ex.err;
  EXPECT_EQ(es::test::count_lines(ex.err), 1u) << ex.err;
  EXPECT_NE(ex.err.find(quoted(report + ".partial") + " exists and is not a regular file"), std::string::npos)
      << ex.err;
  EXPECT_EQ(slurp(victim), "precious\n");
  EXPECT_TRUE(fs::is_symlink(report + ".partial"));
  EXPECT_FALSE(fs::exists(report));

  const std::string out = es::test::process_tmp("imported.db");
  for (const char* s : {"", ".partial"}) fs::remove(out + s);
  const std::string fifo = out + ".partial";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const CliRun im = run_cli("import '" + std::string(ES_TEST_DATA_DIR) + "/import/mail.txt' -o " + quoted(out));
  EXPECT_EQ(im.code, 2) << im.err;
  EXPECT_EQ(es::test::count_lines(im.err), 1u) << im.err;
  EXPECT_NE(im.err.find(quoted(fifo) + " is a FIFO"), std::string::npos) << im.err;
  EXPECT_TRUE(is_fifo(fifo));
  EXPECT_FALSE(fs::exists(out));
}

// Waits until `path` is a recording in progress (its writer holds the lock), up to 20 s.
bool wait_for_lock(const std::string& path) {
  for (int i = 0; i < 400; ++i) {
    if (!es::recorder::lock_holder(path).empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// Expected: while one `record` writes f.db, a second `record -o f.db --force` (and import,
// migrate, export onto f.db) is refused with one sentence naming f.db and the first process
// by pid and name; the first run is unaffected, finishes when asked (SIGTERM) with exit 0, and
// f.db is its complete recording (before: both exited 0 and the first's events were lost).
TEST(OutputPath, ForceOntoARecordingInProgressIsRefusedNamingTheProcess) {
  const std::string guest = es::test::process_tmp("loop.bin");
  // mov ecx, 0x100000; loop $; cpuid; jmp back to the start: a VM exit (CPUID exits
  // unconditionally, SDM Vol. 3C 26.1.2) every million instructions, so a stop request is seen
  // promptly and the recording stays small; runs until a signal.
  write_file(guest, std::string("\xb9\x00\x00\x10\x00\xe2\xfe\x0f\xa2\xeb\xf5", 11));
  const std::string db = es::test::process_tmp("busy.db");
  for (const char* s : {"", "-wal", "-shm"}) fs::remove(db + s);
  const std::string log = es::test::process_tmp("first.err");
  std::string bin = ES_EXITSCOPE_BIN;
  std::vector<std::string> args = {bin, "record", "--guest", guest, "-o", db, "--quiet", "--max-insns", "0"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t first = 0;
  ASSERT_EQ(posix_spawn(&first, bin.c_str(), &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  const bool locked = wait_for_lock(db);
  if (locked) {
    const std::string holder = "process " + std::to_string(first) + " (exitscope)";
    const std::string sentence = quoted(db) + " is a recording still being written by " + holder;
    const std::string trace = es::test::process_tmp("t2.txt");
    write_file(trace, " qemu-1 [000] 10.000000: kvm_exit: reason EPT_VIOLATION rip 0x1000 info 0 0\n");
    const std::string old_db = es::test::process_tmp("old2.db");
    fs::copy_file(std::string(ES_TEST_DATA_DIR) + "/schema/v1_irq_ept_reinject.db", old_db,
                  fs::copy_options::overwrite_existing);
    const std::string other = recording("other.db");
    for (const std::string& cmd :
         {"record --scenario timer-irq --quiet --force -o " + quoted(db),
          "import " + quoted(trace) + " --force -o " + quoted(db),
          "migrate " + quoted(old_db) + " --force -o " + quoted(db), "export " + quoted(other) + " -o " + quoted(db)}) {
      const CliRun r = run_cli(cmd);
      EXPECT_EQ(r.code, 2) << cmd << ": " << r.err;
      EXPECT_EQ(es::test::count_lines(r.err), 1u) << cmd << ": " << r.err;
      EXPECT_NE(r.err.find(sentence), std::string::npos) << cmd << ": " << r.err;
    }
  }
  ::kill(first, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(first, &status, 0), first);
  ASSERT_TRUE(locked) << "the first record never locked " << db << ": " << slurp(log);
  ASSERT_TRUE(WIFEXITED(status)) << slurp(log);
  EXPECT_EQ(WEXITSTATUS(status), 0) << slurp(log);
  const CliRun info = run_cli("info " + quoted(db));
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("status:     complete"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("run end:    stopped"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("--guest " + guest), std::string::npos) << info.out;
  // Finished: the lock is gone and --force may replace it now.
  EXPECT_TRUE(es::recorder::lock_holder(db).empty());
  const CliRun again = run_cli("record --scenario timer-irq --quiet --force -o " + quoted(db));
  EXPECT_EQ(again.code, 0) << again.err;
}

}  // namespace
