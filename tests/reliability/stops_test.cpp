// Stops that stop, recordings readable after a kill, inputs refused before they block
// (issue #17 items 4 and 5, RELIABILITY.md "Stopping and finishing"). The real `exitscope`
// binary on real files, FIFOs and processes; SQLite files damaged the way a kill leaves them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "probes/recorder/recorder.h"
#include "tests/support/cli_run.h"

extern char** environ;

namespace fs = std::filesystem;
using es::test::CliRun;
using es::test::run_cli;
using es::test::run_cli_env;
using Clock = std::chrono::steady_clock;

namespace {

std::string quoted(const std::string& p) { return "'" + p + "'"; }

void remove_db(const std::string& p) {
  for (const char* s : {"", "-wal", "-shm", "-journal"}) fs::remove(p + s);
}

std::string recording(const std::string& name) {
  const std::string p = es::test::process_tmp(name);
  remove_db(p);
  const CliRun r = run_cli("record --scenario irq-ept-reinject --quiet -o " + quoted(p));
  EXPECT_EQ(r.code, 0) << r.err;
  return p;
}

// A flat guest that is `jmp $` (EB FE): it never exits to the hypervisor.
std::string jmp_self_guest() {
  const std::string p = es::test::process_tmp("jmp_self.bin");
  std::ofstream(p, std::ios::binary) << "\xEB\xFE";
  return p;
}

std::string header_mode(const std::string& db) {
  std::ifstream in(db, std::ios::binary);
  char h[20] = {};
  in.read(h, sizeof h);
  return h[18] == 2 ? "wal" : h[18] == 1 ? "rollback" : "?";
}

struct Spawned {
  pid_t pid = 0;
  std::string err_path;
};

Spawned spawn_cli(const std::vector<std::string>& args) {
  Spawned s;
  s.err_path = es::test::process_tmp("spawned.err");
  std::vector<char*> argv;
  std::string bin = ES_EXITSCOPE_BIN;
  argv.push_back(bin.data());
  std::vector<std::string> copy = args;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, s.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  EXPECT_EQ(posix_spawn(&s.pid, bin.c_str(), &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  return s;
}

// Waits up to `limit` for `pid`; its exit code, or -1 if it is still running (then killed).
int wait_for(pid_t pid, std::chrono::milliseconds limit) {
  const auto end = Clock::now() + limit;
  int status = 0;
  while (Clock::now() < end) {
    if (::waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

// Waits until `db` holds the session row (the recorder's first transaction is committed).
bool wait_for_session(const std::string& db) {
  for (int i = 0; i < 500; ++i) {
    sqlite3* h = nullptr;
    if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* st = nullptr;
      const bool ok = sqlite3_prepare_v2(h, "SELECT count(*) FROM sessions", -1, &st, nullptr) == SQLITE_OK &&
                      sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
      sqlite3_finalize(st);
      sqlite3_close_v2(h);
      if (ok) return true;
    } else {
      sqlite3_close_v2(h);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// Leaves a hot rollback journal beside `db`, as a writer killed mid-transaction does: a child
// changes every event with a one-page cache (so changed pages reach the file before the
// commit) and is killed before COMMIT. SQLite file format 2.1 / atomic commit: the journal
// holds the original pages and every reader must roll them back first.
void leave_hot_journal(const std::string& db) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    sqlite3* h = nullptr;
    if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) ::_exit(1);
    sqlite3_exec(h,
                 "PRAGMA journal_mode=DELETE; PRAGMA cache_size=1; BEGIN; UPDATE events SET rip = rip + 1; "
                 "UPDATE events SET text = zeroblob(400);",
                 nullptr, nullptr, nullptr);
    ::raise(SIGKILL);
    ::_exit(1);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_GT(fs::file_size(db + "-journal"), 0u) << "the killed writer left a hot journal";
}

// `exitscope ARGS` as user nobody with TMPDIR=tmpdir (root reads and writes anything, so a
// read-only directory is read-only only to another user). False if that cannot be done here.
bool can_run_as_nobody() { return ::geteuid() == 0 && ::access("/usr/bin/setpriv", X_OK) == 0; }
CliRun run_as_nobody(const std::string& tmpdir, const std::string& args) {
  return run_cli_env("TMPDIR=" + quoted(tmpdir), "--version >/dev/null; TMPDIR=" + quoted(tmpdir) +
                                                     " /usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups '" +
                                                     ES_EXITSCOPE_BIN + "' " + args);
}

// A directory only nobody can write to, for TMPDIR.
std::string nobody_tmpdir(const std::string& name) {
  const std::string d = es::test::process_tmp(name);
  fs::remove_all(d);
  fs::create_directories(d);
  ::chmod(d.c_str(), 01777);
  // Every directory above must be searchable by nobody.
  for (fs::path p = fs::path(d).parent_path(); p != p.root_path(); p = p.parent_path()) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) ::chmod(p.c_str(), st.st_mode | 0111);
  }
  return d;
}

// A read-only directory holding copies of `files` (with their -journal / -wal / -shm).
std::string read_only_copy(const std::string& name, const std::string& db) {
  const std::string dir = es::test::process_tmp(name);
  if (fs::exists(dir)) {
    ::chmod(dir.c_str(), 0755);
    fs::remove_all(dir);
  }
  fs::create_directories(dir);
  for (const char* s : {"", "-journal", "-wal", "-shm"})
    if (fs::exists(db + s)) fs::copy_file(db + s, dir + "/r.db" + s);
  for (const auto& e : fs::directory_iterator(dir)) ::chmod(e.path().c_str(), 0444);
  ::chmod(dir.c_str(), 0555);
  return dir + "/r.db";
}

}  // namespace

// Issue #17 item 5: `jmp $` never exits to the hypervisor, so only the interpreter loop can see
// the stop request. Expected: the run ends within a second or two of SIGTERM, exit code 0 (the
// signal ends a run the way --max-insns does), end reason "stopped", a complete recording and
// one self-contained file.
TEST(Stops, SigtermStopsAGuestThatNeverExits) {
  const std::string db = es::test::process_tmp("jmp_self.db");
  remove_db(db);
  Spawned p = spawn_cli({"record", "--guest", jmp_self_guest(), "--max-insns", "0", "--quiet", "-o", db});
  ASSERT_TRUE(wait_for_session(db));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // well inside the guest's loop
  ASSERT_EQ(::kill(p.pid, SIGTERM), 0);
  const auto t0 = Clock::now();
  const int code = wait_for(p.pid, std::chrono::seconds(5));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  ASSERT_EQ(code, 0) << "still running 5 s after SIGTERM, or failed: " << es::test::slurp(p.err_path);
  EXPECT_LT(took, 2000) << "SIGTERM took " << took << " ms to end the run";
  const CliRun info = run_cli("info " + quoted(db));
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("status:     complete"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("run end:    stopped"), std::string::npos) << info.out;
  EXPECT_FALSE(fs::exists(db + "-wal"));
  EXPECT_FALSE(fs::exists(db + "-shm"));
  EXPECT_EQ(header_mode(db), "rollback");
}

// The same stop through Ctrl-C (SIGINT).
TEST(Stops, SigintStopsAGuestThatNeverExits) {
  const std::string db = es::test::process_tmp("jmp_self_int.db");
  remove_db(db);
  Spawned p = spawn_cli({"record", "--guest", jmp_self_guest(), "--max-insns", "0", "--quiet", "-o", db});
  ASSERT_TRUE(wait_for_session(db));
  ASSERT_EQ(::kill(p.pid, SIGINT), 0);
  ASSERT_EQ(wait_for(p.pid, std::chrono::seconds(5)), 0) << es::test::slurp(p.err_path);
  const CliRun info = run_cli("info " + quoted(db));
  EXPECT_NE(info.out.find("run end:    stopped"), std::string::npos) << info.out << info.err;
}

// Issue #17 item 4: a reader open while `record` finishes kept it in WAL mode with -wal / -shm
// beside it. Expected: one rollback-mode file at the path all the same, and the reader still
// reads the finished recording it had open.
TEST(Stops, FinishWithAReaderOpenLeavesOneSelfContainedFile) {
  const std::string db = es::test::process_tmp("reader_at_finish.db");
  remove_db(db);
  Spawned p = spawn_cli({"record", "--guest", jmp_self_guest(), "--max-insns", "0", "--quiet", "-o", db});
  ASSERT_TRUE(wait_for_session(db));
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db.c_str(), &reader, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  auto count = [&](const char* sql) {
    sqlite3_stmt* st = nullptr;
    int64_t n = -1;
    if (sqlite3_prepare_v2(reader, sql, -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
      n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
  };
  EXPECT_EQ(count("SELECT count(*) FROM sessions"), 1);
  ASSERT_EQ(::kill(p.pid, SIGTERM), 0);
  ASSERT_EQ(wait_for(p.pid, std::chrono::seconds(5)), 0) << es::test::slurp(p.err_path);
  EXPECT_FALSE(fs::exists(db + "-wal")) << "the reader kept the recording in WAL mode";
  EXPECT_FALSE(fs::exists(db + "-shm"));
  EXPECT_EQ(header_mode(db), "rollback");
  EXPECT_EQ(count("SELECT complete FROM sessions"), 1) << "the open reader sees the finished recording";
  sqlite3_close_v2(reader);
  const CliRun info = run_cli("info " + quoted(db));
  EXPECT_NE(info.out.find("status:     complete"), std::string::npos) << info.out << info.err;
}

// Issue #17 item 9: readers kept SQLite's automatic checkpoints from ever restarting the WAL,
// which grew to the size of the whole recording (595 MB for 21 MB of data). Expected: with a
// reader inside a read transaction almost all the time, the WAL stays near the restart
// threshold (here lowered to 1 MiB through EXITSCOPE_WAL_RESTART_BYTES; 64 MiB by default)
// instead of growing with the recording. The same run with the threshold out of reach shows
// the growth this bounds, so the test can tell the two apart.
namespace {
struct WalRun {
  uint64_t peak_wal = 0;
  uint64_t final_size = 0;
  int code = -1;
  std::string err;
};

WalRun record_with_a_busy_reader(const std::string& name, const char* restart_bytes) {
  WalRun out;
  const std::string db = es::test::process_tmp(name);
  remove_db(db);
  ::setenv("EXITSCOPE_WAL_RESTART_BYTES", restart_bytes, 1);
  Spawned p =
      spawn_cli({"record", "--scenario", "timer-irq", "--arg", "0", "--max-exits", "120000", "--quiet", "-o", db});
  ::unsetenv("EXITSCOPE_WAL_RESTART_BYTES");
  if (!wait_for_session(db)) {
    out.err = "no session row appeared";
    (void)wait_for(p.pid, std::chrono::seconds(60));
    return out;
  }
  sqlite3* reader = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db.c_str(), &reader, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_busy_timeout(reader, 1000);
  int status = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (::waitpid(p.pid, &status, WNOHANG) == 0 && Clock::now() < deadline) {
    // A reader as the GUI's polling or a `watch exitscope info` is: a read transaction held
    // most of the time, released briefly between polls.
    if (sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM events;", nullptr, nullptr, nullptr) == SQLITE_OK) {
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      std::error_code ec;
      const auto wal = fs::file_size(db + "-wal", ec);
      if (!ec) out.peak_wal = std::max<uint64_t>(out.peak_wal, wal);
      (void)sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  sqlite3_close_v2(reader);
  if (Clock::now() >= deadline) {
    ::kill(p.pid, SIGKILL);
    (void)::waitpid(p.pid, &status, 0);
    out.err = "record did not finish within 120 s";
    return out;
  }
  out.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  out.err = es::test::slurp(p.err_path);
  std::error_code ec;
  out.final_size = fs::file_size(db, ec);
  return out;
}

// The bytes of the largest index of a finished recording (SQLite's dbstat table).
uint64_t largest_index_bytes(const std::string& db) {
  sqlite3* h = nullptr;
  uint64_t out = 0;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(h,
                           "SELECT max(b) FROM (SELECT sum(pgsize) AS b FROM dbstat WHERE name IN "
                           "(SELECT name FROM sqlite_schema WHERE type = 'index') GROUP BY name)",
                           -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      out = static_cast<uint64_t>(sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);
  }
  sqlite3_close_v2(h);
  return out;
}
}  // namespace

TEST(Stops, WalStaysBoundedWithAReaderInsideATransaction) {
  const WalRun bounded = record_with_a_busy_reader("wal_bounded.db", "1048576");
  ASSERT_EQ(bounded.code, 0) << bounded.err;
  ASSERT_GT(bounded.final_size, 30ull << 20) << "the recording is too small to show WAL growth";
  // The finish builds the indexes one at a time, each committed and checkpointed before the next
  // (schema::create_indexes' after_each): the WAL then holds one whole index, so its peak is the
  // largest index's pages (12.4 MB here since the kind / reason key of schema v5; the cause index's
  // 10.1 MB before) plus what the writer adds before a restart (the 1 MiB threshold). The bound:
  // that index and 2 MiB, not a size in proportion to the recording.
  const uint64_t index = largest_index_bytes(es::test::process_tmp("wal_bounded.db"));
  ASSERT_GT(index, 0u);
  const uint64_t bound = index + (2ull << 20);
  EXPECT_LT(bounded.peak_wal, bound) << "WAL peaked at " << bounded.peak_wal << " bytes for a " << bounded.final_size
                                     << "-byte recording whose largest index is " << index << " bytes";

  const WalRun unbounded = record_with_a_busy_reader("wal_unbounded.db", "1099511627776");
  ASSERT_EQ(unbounded.code, 0) << unbounded.err;
  // The run without restarts must break the bound the first run was held to, or the test cannot
  // tell the two apart. How far past it the WAL grows depends on how often SQLite's own PASSIVE
  // checkpoints catch up in the reader's 2 ms gaps (a reset is then allowed), which the load
  // decides: 47 - 53 MB on an idle machine, 25 MB under ASan in CI. A fixed 24 MiB (twice the
  // bound) was within that spread (CI failed at 24 987 832 bytes); the bounded run's own peak is
  // no better a yardstick: it is the finish's largest index build, not the recording. The bound
  // above is what the comparison needs.
  EXPECT_GT(unbounded.peak_wal, bound)
      << "without restarts the WAL should grow past the " << bound << " bytes the first run stayed under (peak "
      << unbounded.peak_wal << " bytes for a " << unbounded.final_size
      << "-byte recording); if it does not, this test no longer shows what the bound does";
}

// Issue #17 item 5: opening a FIFO for reading blocks until a writer comes. Expected: each
// command refuses it in one sentence at once, and no output is created.
TEST(Stops, FifoInputsAreRefusedAtOnce) {
  const std::string fifo = es::test::process_tmp("input.fifo");
  fs::remove(fifo);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string out = es::test::process_tmp("from_fifo.db");
  remove_db(out);
  for (const std::string& cmd :
       {"info " + quoted(fifo), "events " + quoted(fifo), "import " + quoted(fifo) + " -o " + quoted(out),
        "record --guest " + quoted(fifo) + " -o " + quoted(out)}) {
    const auto t0 = Clock::now();
    const CliRun r = run_cli_env("", "--version >/dev/null; timeout 10 '" + std::string(ES_EXITSCOPE_BIN) + "' " + cmd);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    EXPECT_EQ(r.code, 2) << cmd << ": " << r.err;
    EXPECT_LT(took, 3000) << cmd;
    EXPECT_NE(r.err.find("FIFO"), std::string::npos) << cmd << ": " << r.err;
    EXPECT_EQ(es::test::count_lines(r.err), 1u) << r.err;
    EXPECT_FALSE(fs::exists(out)) << cmd;
  }
}

// Issue #17 item 5: a directory, or a 6 GiB (sparse) file, given as the guest aborted with
// std::bad_alloc. Expected: one sentence, exit code 2, no recording.
TEST(Stops, DirectoryAndHugeGuestFilesAreRefused) {
  const std::string dir = es::test::process_tmp("guest_dir");
  fs::create_directories(dir);
  const std::string huge = es::test::process_tmp("huge_guest.bin");
  {
    const int fd = ::open(huge.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 6ll << 30), 0);
    ::close(fd);
  }
  const std::string out = es::test::process_tmp("huge_guest.db");
  remove_db(out);
  const CliRun d = run_cli("record --guest " + quoted(dir) + " -o " + quoted(out));
  EXPECT_EQ(d.code, 2) << d.err;
  EXPECT_NE(d.err.find("is a directory"), std::string::npos) << d.err;
  const CliRun h = run_cli("record --guest " + quoted(huge) + " -o " + quoted(out));
  EXPECT_EQ(h.code, 2) << h.err;
  EXPECT_NE(h.err.find("6144 MiB"), std::string::npos) << h.err;
  EXPECT_EQ(es::test::count_lines(h.err), 1u) << h.err;
  EXPECT_FALSE(fs::exists(out));
  fs::remove(huge);
}

// Issue #17 item 4: a hot journal made every command say "attempt to write a readonly
// database". Expected: with write access the journal is rolled back in place (the events read
// as before the killed transaction: the first entry at the guest's load address 0x100000), the
// journal is gone, and a note says so.
TEST(Stops, HotJournalIsRolledBackForReaders) {
  const std::string db = recording("hot_journal.db");
  leave_hot_journal(db);
  const CliRun r = run_cli("events " + quoted(db));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("#1 "), std::string::npos);
  EXPECT_NE(r.out.substr(0, r.out.find('\n')).find("rip=0x100000"), std::string::npos) << r.out.substr(0, 200);
  EXPECT_NE(r.err.find("recovered in place"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(db + "-journal"));
  EXPECT_EQ(run_cli("info " + quoted(db)).err, "") << "recovered once, read plainly after";
}

// The same on read-only media (a read-only directory, read by another user): expected a
// recovered private copy in TMPDIR, the original and its journal untouched.
TEST(Stops, HotJournalOnReadOnlyMediaIsReadFromARecoveredCopy) {
  if (!can_run_as_nobody()) GTEST_SKIP() << "needs root and setpriv to read as another user";
  const std::string db = recording("hot_journal_ro.db");
  leave_hot_journal(db);
  const std::string ro = read_only_copy("ro_hot", db);
  const auto journal_size = fs::file_size(ro + "-journal");
  const CliRun r = run_as_nobody(nobody_tmpdir("tmp_hot"), "events " + quoted(ro));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.substr(0, r.out.find('\n')).find("rip=0x100000"), std::string::npos) << r.out.substr(0, 200);
  EXPECT_NE(r.err.find("reading a recovered copy"), std::string::npos) << r.err;
  EXPECT_EQ(fs::file_size(ro + "-journal"), journal_size) << "the original is unchanged";
}

// A recording left in WAL mode (killed, or finished by an older exitscope with a reader open),
// copied to read-only media without its -wal / -shm. Expected: it opens, complete.
TEST(Stops, LeftoverWalModeOnReadOnlyMediaIsRead) {
  if (!can_run_as_nobody()) GTEST_SKIP() << "needs root and setpriv to read as another user";
  const std::string db = recording("wal_mode.db");
  {
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(h, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close_v2(h);
  }
  ASSERT_EQ(header_mode(db), "wal");
  const std::string ro = read_only_copy("ro_wal", db);
  const CliRun r = run_as_nobody(nobody_tmpdir("tmp_wal"), "info " + quoted(ro));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("status:     complete"), std::string::npos) << r.out;
}

// Issue #17 item 9: export printed twenty "NN%" lines to a stderr that is a file. Expected, for
// an export large enough to report progress (over a million events): one final line on a
// non-terminal stderr, naming the count; nothing at all for a small export.
TEST(Stops, ExportProgressToANonTerminalIsOneLine) {
  const std::string db = es::test::process_tmp("big_export.db");
  remove_db(db);
  constexpr uint64_t kEvents = 1'050'000;
  {
    es::recorder::SessionStart info;
    es::recorder::RecorderOptions options{.steps = es::recorder::kNoChains};
    auto rec = es::recorder::Recorder::open(db, info, true, options);
    ASSERT_TRUE(rec) << rec.error();
    std::vector<es_record> batch(10'000);
    for (uint64_t done = 0; done < kEvents; done += batch.size()) {
      for (size_t i = 0; i < batch.size(); ++i) {
        batch[i] = es_record{};
        batch[i].kind = ES_KIND_VM_EXIT;
        batch[i].reason = 12;  // HLT
        batch[i].time_ns = (done + i) * 100;
      }
      (*rec)->on_records(batch.data(), batch.size());
    }
    ASSERT_TRUE((*rec)->finish({ES_END_LIMIT, "test", 0}));
  }
  const CliRun big = run_cli("export " + quoted(db) + " --format perfetto -o /dev/null");
  ASSERT_EQ(big.code, 0) << big.err;
  EXPECT_EQ(big.err, "exitscope export: " + std::to_string(kEvents) + " events exported\n");
  const CliRun small = run_cli("export " + quoted(recording("small_export.db")) + " -o /dev/null");
  EXPECT_EQ(small.err, "");
  remove_db(db);
}

// Issue #17 item 9: an import that runs out of space said its events "are kept in
// 'DB.partial'", a file it removes. Expected (file size limit as the full disk, SIGXFSZ
// ignored so write() fails with EFBIG): exit code 2, one sentence naming the limit and saying
// nothing was imported, and neither DB nor DB.partial on disk.
TEST(Stops, ImportOutOfSpaceDoesNotPointToTheRemovedPartialFile) {
  const std::string trace = es::test::process_tmp("many_exits.txt");
  {
    std::ofstream t(trace);
    for (int i = 0; i < 40000; ++i)
      t << " qemu-1234 [000] " << 100 + i / 1000 << "." << 100000 + i % 1000 * 100
        << ": kvm_exit: reason EPT_VIOLATION rip 0x" << std::hex << 0x1000 + i << std::dec << " info 181 0\n";
  }
  const std::string db = es::test::process_tmp("too_big_import.db");
  remove_db(db);
  remove_db(db + ".partial");
  const CliRun r =
      run_cli_env("", "--version >/dev/null; trap '' XFSZ; ulimit -f 512; '" + std::string(ES_EXITSCOPE_BIN) +
                          "' import " + quoted(trace) + " --quiet -o " + quoted(db));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("file size limit"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Nothing was imported"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("kept in"), std::string::npos) << r.err;
  EXPECT_EQ(es::test::count_lines(r.err), 1u) << r.err;
  EXPECT_FALSE(fs::exists(db));
  EXPECT_FALSE(fs::exists(db + ".partial"));
}

// Issue #18 writes an import's DB.partial with synchronous=OFF until it is finished (it is not
// the user's file yet). What RELIABILITY.md promises still holds for a killed import: no DB at
// all, and the DB.partial it leaves is a readable, incomplete recording of the batches it had
// committed (a process kill loses nothing written to the OS, whatever the sync setting; WAL
// keeps each batch's commit atomic). The next import replaces the stale DB.partial.
TEST(Stops, KilledImportLeavesNoRecordingAndAReadablePartialFile) {
  const std::string trace = es::test::process_tmp("kill_import.txt");
  {
    std::ofstream t(trace);
    for (int i = 0; i < 100000; ++i) {
      const int us = 100000 + i * 4;
      t << " qemu-1234 [000] " << us / 1000000 + 100 << "." << std::to_string(us % 1000000 + 1000000).substr(1)
        << ": kvm_exit: vcpu 0 reason EPT_VIOLATION rip 0x" << std::hex << 0x1000 + (i & 0xfff) << std::dec
        << " info1 0x0000000000000182 info2 0x00000000800000ec intr_info 0x00000000 error_code 0x00000000\n";
      t << " qemu-1234 [000] " << us / 1000000 + 100 << "." << std::to_string(us % 1000000 + 1000001).substr(1)
        << ": kvm_inj_virq: IRQ 0xec [reinjected]\n";
      t << " qemu-1234 [000] " << us / 1000000 + 100 << "." << std::to_string(us % 1000000 + 1000002).substr(1)
        << ": kvm_entry: vcpu 0, rip 0x" << std::hex << 0x1000 + (i & 0xfff) << std::dec << "\n";
    }
  }
  const std::string db = es::test::process_tmp("killed_import.db");
  const std::string partial = db + ".partial";
  remove_db(db);
  remove_db(partial);
  Spawned p = spawn_cli({"import", trace, "--quiet", "-o", db});
  // Killed once the first batches are committed, long before the end (300 k lines).
  bool committed = false;
  for (int i = 0; i < 1000 && !committed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    sqlite3* h = nullptr;
    if (fs::exists(partial) && sqlite3_open_v2(partial.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* st = nullptr;
      committed = sqlite3_prepare_v2(h, "SELECT count(*) FROM events", -1, &st, nullptr) == SQLITE_OK &&
                  sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
      sqlite3_finalize(st);
    }
    sqlite3_close_v2(h);
  }
  ASSERT_TRUE(committed) << "no committed batch seen in " << partial << ": " << es::test::slurp(p.err_path);
  ASSERT_EQ(::kill(p.pid, SIGKILL), 0);
  ASSERT_EQ(wait_for(p.pid, std::chrono::seconds(10)), 128 + SIGKILL) << "the import ended before it was killed";
  EXPECT_FALSE(fs::exists(db));
  ASSERT_TRUE(fs::exists(partial));
  const CliRun info = run_cli("info " + quoted(partial));
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("INCOMPLETE"), std::string::npos) << info.out;
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open_v2(partial.c_str(), &h, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "ok");
  sqlite3_finalize(st);
  sqlite3_close_v2(h);
  // The next import of the same file replaces the stale DB.partial and completes.
  const CliRun again = run_cli("import " + quoted(trace) + " --quiet -o " + quoted(db));
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_FALSE(fs::exists(partial));
  const CliRun done = run_cli("info " + quoted(db));
  EXPECT_EQ(done.code, 0) << done.err;
  EXPECT_EQ(done.out.find("INCOMPLETE"), std::string::npos) << done.out;
}

// Issue #17 item 9: a current (v2) recording whose user_version was set to 1 was answered with
// advice to migrate it to "a writable NEW.db", which cannot help. Expected: one sentence that
// the file's tables do not fit the version it claims, and no such advice.
TEST(Stops, FileLabelledWithAnOlderSchemaThanItsTablesIsNamedAsSuch) {
  const std::string db = recording("labelled_v1.db");
  {
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(h, "PRAGMA user_version = 1", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close_v2(h);
  }
  const CliRun r = run_cli("info " + quoted(db));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("says it uses schema v1"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("writable NEW.db"), std::string::npos) << r.err;
  EXPECT_EQ(es::test::count_lines(r.err), 1u) << r.err;
}
