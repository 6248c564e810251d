// Recorder: records emitted through a real ProbeBus land in a real SQLite file and read back
// through replay exactly.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "probes/recorder/recorder.h"
#include "replay/recording.h"
#include "schema/migrations.h"
#include "tests/probes/test_support.h"

namespace es {
namespace {

using recorder::Recorder;
using recorder::RecorderOptions;
using recorder::RunEnd;
using recorder::SessionStart;

SessionStart test_session(const std::string& scenario = "unit") {
  SessionStart s;
  s.source = recorder::Source::Hv;
  s.scenario = scenario;
  s.guest_path = "guests/irq.bin";
  s.guest_hash = "sha256:" + recorder::sha256_hex("guest", 5);
  s.policy = "kvm";
  s.command_line = "exitscope record --scenario unit";
  s.config_json = R"({"timer_ns":1000})";
  return s;
}

int64_t query_int(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  int64_t v = -1;
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

// A record with every field set to a distinct value (wide values exercise the signed
// INTEGER storage of uint64_t).
es_record full_record(uint16_t kind, uint32_t salt) {
  es_record r{};
  r.kind = kind;
  r.level = 2;
  r.hv_level = 1;
  r.vcpu = static_cast<uint16_t>(3 + salt);
  r.reason = 0x80000030u + salt;
  r.flags = 0;
  r.cause = 7 + salt;
  r.origin = 5 + salt;
  r.rip = 0xffffffff81000000ull + salt;
  r.qualification = 0x8000000000000183ull + salt;
  r.guest_linear = 0xffff888000001000ull + salt;
  r.guest_phys = 0x123456789000ull + salt;
  r.intr_info = 0x80000b0eu + salt;
  r.intr_error = 0x2 + salt;
  r.idt_vectoring_info = 0x80000020u + salt;
  r.idt_vectoring_error = 0xdead + salt;
  r.instr_len = 3 + salt;
  r.aux = 0;
  r.aux64 = 0xfedcba9876543210ull + salt;
  return r;
}

void expect_same(const es_record& a, const es_record& b) {
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.level, b.level);
  EXPECT_EQ(a.hv_level, b.hv_level);
  EXPECT_EQ(a.vcpu, b.vcpu);
  EXPECT_EQ(a.reason, b.reason);
  EXPECT_EQ(a.flags, b.flags);
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.cause, b.cause);
  EXPECT_EQ(a.origin, b.origin);
  EXPECT_EQ(a.time_ns, b.time_ns);
  EXPECT_EQ(a.rip, b.rip);
  EXPECT_EQ(a.qualification, b.qualification);
  EXPECT_EQ(a.guest_linear, b.guest_linear);
  EXPECT_EQ(a.guest_phys, b.guest_phys);
  EXPECT_EQ(a.intr_info, b.intr_info);
  EXPECT_EQ(a.intr_error, b.intr_error);
  EXPECT_EQ(a.idt_vectoring_info, b.idt_vectoring_info);
  EXPECT_EQ(a.idt_vectoring_error, b.idt_vectoring_error);
  EXPECT_EQ(a.instr_len, b.instr_len);
  EXPECT_EQ(a.aux, b.aux);
  EXPECT_EQ(a.aux64, b.aux64);
  EXPECT_EQ(0, std::memcmp(a.bytes, b.bytes, sizeof a.bytes));
}

TEST(RecorderTest, RoundTripEveryFieldThroughProbeBus) {
  const std::string path = test::temp_db("roundtrip.db");
  auto rec = Recorder::open(path, test_session(), false, {.steps = recorder::kNoChains});
  ASSERT_TRUE(rec) << rec.error();
  probes::ProbeBus bus;
  (*rec)->attach(bus);
  EXPECT_TRUE(bus.enabled(ES_KIND_VM_EXIT));

  std::vector<es_record> sent;
  for (uint32_t i = 0; i < 50; ++i) {
    const uint16_t kind = static_cast<uint16_t>(1 + i % (ES_KIND_COUNT - 1));
    es_record r = full_record(kind, i);
    r.time_ns = 1000ull * i + 0x7fffffffffffull;
    if (kind == ES_KIND_VM_EXIT && (i / (ES_KIND_COUNT - 1)) % 2) {  // bytes on every other exit
      r.flags = ES_FLAG_BYTES_VALID;
      r.aux = 3;
      r.bytes[0] = 0x0f;
      r.bytes[1] = 0x01;
      r.bytes[2] = 0xc1;
    }
    if (kind == ES_KIND_CONSOLE) {
      r.aux = 5;
      std::memcpy(r.bytes, "boot\n", 5);
    }
    bus.emit(r);  // assigns version and id
    sent.push_back(r);
  }
  ASSERT_TRUE((*rec)->finish(RunEnd{ES_END_GUEST_EXIT, "guest wrote the exit port", 4}));
  EXPECT_FALSE(bus.any_enabled()) << "finish() must detach from the bus";

  auto rd = replay::Recording::open(path);
  ASSERT_TRUE(rd) << rd.error();
  auto events = rd->events({});
  ASSERT_TRUE(events) << events.error();
  ASSERT_EQ(events->size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    SCOPED_TRACE("record " + std::to_string(i));
    expect_same(sent[i], (*events)[i].rec);
  }

  auto s = rd->session();
  ASSERT_TRUE(s) << s.error();
  EXPECT_TRUE(s->complete);
  EXPECT_EQ(s->source, "hv");
  EXPECT_EQ(s->scenario, "unit");
  EXPECT_EQ(s->guest_path, "guests/irq.bin");
  EXPECT_EQ(s->guest_hash, test_session().guest_hash);
  EXPECT_EQ(s->policy, "kvm");
  EXPECT_EQ(s->command_line, "exitscope record --scenario unit");
  EXPECT_EQ(s->config_json, R"({"timer_ns":1000})");
  EXPECT_FALSE(s->host.empty());
  EXPECT_FALSE(s->kernel.empty());
  EXPECT_FALSE(s->tool_version.empty());
  EXPECT_FALSE(s->ended_at.empty());
  ASSERT_TRUE(s->end_reason.has_value());
  EXPECT_EQ(*s->end_reason, uint32_t{ES_END_GUEST_EXIT});
  EXPECT_EQ(s->end_detail, "guest wrote the exit port");
  EXPECT_EQ(s->event_count, 50u);
  EXPECT_EQ(s->source_dropped, 4u);
  EXPECT_EQ(s->records_dropped, 0u);
  EXPECT_EQ(query_int(path, "SELECT event_count FROM sessions"), 50);
  EXPECT_EQ(query_int(path, "SELECT exit_count FROM sessions"), 5);  // kinds cycle 1..11 over 50 records
  // Same (rip, bytes) never twice in the code table; every exit with bytes references it.
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM events WHERE code_id IS NOT NULL"), 2);
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM vcpus"), 50);
  EXPECT_EQ(query_int(path, "PRAGMA user_version"), schema::kSchemaVersion);
  EXPECT_GE(query_int(path, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'events_origin'"), 1);
}

TEST(RecorderTest, CodeTableDeduplicatesRipAndBytes) {
  const std::string path = test::temp_db("code_dedup.db");
  auto rec = Recorder::open(path, test_session(), false, {.steps = recorder::kNoChains});
  ASSERT_TRUE(rec) << rec.error();
  probes::ProbeBus bus;
  (*rec)->attach(bus);
  for (int i = 0; i < 300; ++i) {
    es_record r{};
    r.kind = ES_KIND_VM_EXIT;
    r.reason = 30;
    r.rip = 0x1000 + (i % 3) * 0x10;  // three distinct RIPs
    r.flags = ES_FLAG_BYTES_VALID;
    r.aux = 1;
    r.bytes[0] = 0xee;  // out dx, al
    bus.emit(r);
  }
  ASSERT_TRUE((*rec)->finish({}));
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM code"), 3);
  EXPECT_EQ(query_int(path, "SELECT count(DISTINCT code_id) FROM events"), 3);
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM events WHERE code_id IS NULL"), 0);
}

class RecorderBatchTest : public ::testing::TestWithParam<int> {};

// Record counts around multiples of the batch size all arrive complete and in order.
TEST_P(RecorderBatchTest, EveryRecordArrivesAcrossBatchBoundaries) {
  const int n = GetParam();
  constexpr size_t kBatch = 8;
  const std::string path = test::temp_db("batch_" + std::to_string(n) + ".db");
  RecorderOptions opt{.steps = recorder::kNoChains};
  opt.batch_size = kBatch;
  opt.max_queued = kBatch;  // the producer blocks as soon as one batch is pending
  auto rec = Recorder::open(path, test_session(), false, opt);
  ASSERT_TRUE(rec) << rec.error();
  probes::ProbeBus bus;
  (*rec)->attach(bus);
  for (int i = 0; i < n; ++i) {
    es_record r{};
    r.kind = ES_KIND_VM_EXIT;
    r.time_ns = static_cast<uint64_t>(i);
    bus.emit(r);
  }
  ASSERT_TRUE((*rec)->finish({}));
  const auto stats = (*rec)->stats();
  EXPECT_EQ(stats.written, static_cast<uint64_t>(n));
  EXPECT_EQ(stats.dropped, 0u);
  EXPECT_GE(stats.batches, static_cast<uint64_t>((n + static_cast<int>(kBatch) - 1) / static_cast<int>(kBatch)));
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM events"), n);
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM events WHERE id != time_ns + 1"), 0) << "ids out of order";
  if (n > 0) {
    EXPECT_EQ(query_int(path, "SELECT max(id) FROM events"), n);
  }
}
INSTANTIATE_TEST_SUITE_P(Sizes, RecorderBatchTest, ::testing::Values(0, 1, 7, 8, 9, 16, 17, 1000));

// The writer stores a batch's rows 32 to a statement (Recorder::kRowsPerInsert). Expected from
// SQLite's default conflict resolution (ABORT: the failing statement's rows are backed out, the
// transaction and the rows before it stay): a duplicate id among 32 rows costs only itself, as
// with one statement a row - the row stored first is kept, the later one is counted as dropped,
// and every other row of the group is stored with each of its fields. Rows whose id SQLite
// assigns (id 0) get the next ids in order.
TEST(RecorderTest, RowsStoredManyToAStatementLoseOnlyADuplicate) {
  const std::string path = test::temp_db("many_rows.db");
  RecorderOptions opt{.steps = recorder::kNoChains};
  opt.batch_size = 1000;  // one batch: the rows arrive well within commit_interval_ms
  opt.max_queued = 1000;
  auto rec = Recorder::open(path, test_session(), false, opt);
  ASSERT_TRUE(rec) << rec.error();
  std::vector<es_record> kept;
  std::vector<es_record> sent;
  for (uint32_t i = 0; i < 100; ++i) {
    es_record r = full_record(ES_KIND_VM_EXIT, i);
    r.version = ES_RECORD_VERSION;
    r.id = i + 1;
    r.time_ns = i;
    sent.push_back(r);
    kept.push_back(r);
    if (i == 59) {  // id 40 again, in the group of rows 33..64
      es_record dup = full_record(ES_KIND_VM_EXIT, 1000);
      dup.version = ES_RECORD_VERSION;
      dup.id = 40;
      dup.time_ns = i;
      sent.push_back(dup);
    }
  }
  for (uint32_t i = 0; i < 40; ++i) {  // then 40 rows without ids
    es_record r = full_record(ES_KIND_VM_ENTRY, 2000 + i);
    r.version = ES_RECORD_VERSION;
    r.time_ns = 100 + i;
    sent.push_back(r);
    r.id = 101 + i;
    kept.push_back(r);
  }
  (*rec)->on_records(sent.data(), sent.size());
  ASSERT_TRUE((*rec)->finish({}));
  EXPECT_EQ((*rec)->stats().written, kept.size());
  EXPECT_EQ((*rec)->stats().dropped, 1u);
  EXPECT_EQ(query_int(path, "SELECT records_dropped FROM sessions"), 1);
  auto rd = replay::Recording::open(path);
  ASSERT_TRUE(rd) << rd.error();
  auto events = rd->events({});
  ASSERT_TRUE(events) << events.error();
  ASSERT_EQ(events->size(), kept.size());
  for (size_t i = 0; i < kept.size(); ++i) {
    SCOPED_TRACE("row " + std::to_string(i));
    expect_same((*events)[i].rec, kept[i]);
  }
}

// The vcpus table is counted by the writer as rows are stored (no GROUP BY over events at finish,
// issue #18): it must hold what that GROUP BY returns, with ids out of order, vCPUs far apart
// (0, 2, the largest es_record.vcpu 65535) and a row SQLite rejects (duplicate id: not counted).
TEST(RecorderTest, VcpusRowsAreWhatTheEventsTableHolds) {
  const std::string path = test::temp_db("vcpus_rows.db");
  RecorderOptions opt{.steps = recorder::kNoChains};
  opt.batch_size = 2;  // rows over several write batches
  auto rec = Recorder::open(path, test_session(), false, opt);
  ASSERT_TRUE(rec) << rec.error();
  probes::ProbeBus bus;
  (*rec)->attach(bus);
  const std::pair<uint64_t, uint16_t> rows[] = {{5, 2}, {3, 0}, {9, 2}, {1, 65535}, {4, 0}, {3, 2}, {7, 2}};
  for (const auto& [id, vcpu] : rows) {
    es_record r{};
    r.kind = ES_KIND_VM_EXIT;
    r.id = id;
    r.vcpu = vcpu;
    r.time_ns = id;
    bus.emit(r);
  }
  ASSERT_TRUE((*rec)->finish({}));
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM events"), 6);  // the second id 3 is rejected
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM vcpus"), 3);
  // vCPU 0: ids 3, 4; vCPU 2: 5, 9, 7 (not the rejected 3); vCPU 65535: 1.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  auto text = [&](const char* sql) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    std::string v;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
      v = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
  };
  EXPECT_EQ(text("SELECT group_concat(vcpu || ':' || first_event || '-' || last_event || '/' || event_count, ' ') "
                 "FROM (SELECT * FROM vcpus ORDER BY vcpu)"),
            "0:3-4/2 2:5-9/3 65535:1-1/1");
  EXPECT_EQ(text("SELECT group_concat(vcpu || ':' || f || '-' || l || '/' || n, ' ') FROM (SELECT vcpu, min(id) AS f, "
                 "max(id) AS l, count(*) AS n FROM events GROUP BY vcpu ORDER BY vcpu)"),
            "0:3-4/2 2:5-9/3 65535:1-1/1");
  sqlite3_close(db);
}

TEST(RecorderTest, RefusesExistingFileUnlessForced) {
  const std::string path = test::temp_db("existing.db");
  { std::ofstream(path) << "precious"; }
  auto refused = Recorder::open(path, test_session(), false, {.steps = recorder::kNoChains});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find(path), std::string::npos) << refused.error();
  EXPECT_NE(refused.error().find("already exists"), std::string::npos) << refused.error();
  EXPECT_NE(refused.error().find("--force"), std::string::npos) << refused.error();
  {
    std::ifstream in(path);
    std::string content;
    in >> content;
    EXPECT_EQ(content, "precious") << "a refused open must not touch the file";
  }
  auto forced = Recorder::open(path, test_session("forced"), true, {.steps = recorder::kNoChains});
  ASSERT_TRUE(forced) << forced.error();
  ASSERT_TRUE((*forced)->finish({}));
  auto rd = replay::Recording::open(path);
  ASSERT_TRUE(rd) << rd.error();
  EXPECT_EQ(rd->session()->scenario, "forced");
}

TEST(RecorderTest, UnwritablePathGivesOneClearSentence) {
  // Missing directory.
  const std::string missing = std::string(ES_TEST_TMPDIR) + "/no/such/dir/rec.db";
  auto r1 = Recorder::open(missing, test_session(), false, {.steps = recorder::kNoChains});
  ASSERT_FALSE(r1);
  EXPECT_NE(r1.error().find(missing), std::string::npos) << r1.error();
  EXPECT_NE(r1.error().find("does not exist"), std::string::npos) << r1.error();
  // A directory where nothing can be created, even by root.
  const std::string proc = "/proc/self/exitscope-test.db";
  auto r2 = Recorder::open(proc, test_session(), false, {.steps = recorder::kNoChains});
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.error().find(proc), std::string::npos) << r2.error();
  EXPECT_NE(r2.error().find("writable"), std::string::npos) << r2.error();
  // The path names a directory.
  auto r3 = Recorder::open(ES_TEST_TMPDIR, test_session(), true, {.steps = recorder::kNoChains});
  ASSERT_FALSE(r3);
  EXPECT_NE(r3.error().find("directory"), std::string::npos) << r3.error();
}

TEST(RecorderTest, DestroyedWithoutFinishLeavesIncompleteSessionWithItsEvents) {
  const std::string path = test::temp_db("incomplete.db");
  {
    probes::ProbeBus bus;  // outlives the recorder, as recorder.h requires
    auto rec = Recorder::open(path, test_session(), false, {.steps = recorder::kNoChains});
    ASSERT_TRUE(rec) << rec.error();
    (*rec)->attach(bus);
    test::Emitter em(bus);
    const uint64_t root = em.raise(test::irq(0x20));
    em.decision(ES_DECISION_QUEUE_IRQ, test::irq(0x20), root, root);
    // no finish(): the recorder is destroyed as in a crash-free abort
  }
  auto rd = replay::Recording::open(path);
  ASSERT_TRUE(rd) << rd.error();
  auto s = rd->session();
  ASSERT_TRUE(s) << s.error();
  EXPECT_FALSE(s->complete);
  EXPECT_FALSE(s->end_reason.has_value());
  EXPECT_TRUE(s->ended_at.empty());
  EXPECT_EQ(s->event_count, 2u) << "queued records must still be written";
}

TEST(RecorderTest, SessionRowExistsAsIncompleteWhileRecording) {
  const std::string path = test::temp_db("while_recording.db");
  auto rec = Recorder::open(path, test_session(), false, {.steps = recorder::kNoChains});
  ASSERT_TRUE(rec) << rec.error();
  // Another reader sees the session right away, marked incomplete (what a crash leaves).
  EXPECT_EQ(query_int(path, "SELECT complete FROM sessions WHERE id = 1"), 0);
  ASSERT_TRUE((*rec)->finish({ES_END_LIMIT, "max exits"}));
  EXPECT_EQ(query_int(path, "SELECT complete FROM sessions WHERE id = 1"), 1);
  EXPECT_EQ(query_int(path, "SELECT end_reason FROM sessions WHERE id = 1"), ES_END_LIMIT);
  EXPECT_FALSE((*rec)->finish({})) << "a second finish() is an error, not a crash";
}

TEST(RecorderTest, FlushMakesQueuedRecordsVisibleWhileRecording) {
  const std::string path = test::temp_db("flush.db");
  RecorderOptions opt{.steps = recorder::kNoChains};
  opt.batch_size = 1000;  // far more than emitted: nothing would be written without flush()
  auto rec = Recorder::open(path, test_session(), false, opt);
  ASSERT_TRUE(rec) << rec.error();
  probes::ProbeBus bus;
  (*rec)->attach(bus);
  test::Emitter em(bus);
  for (int i = 0; i < 10; ++i) em.raise(test::irq(0x20));
  ASSERT_TRUE((*rec)->flush());
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM events"), 10);
  EXPECT_EQ(query_int(path, "SELECT complete FROM sessions"), 0);
  em.raise(test::irq(0x21));
  ASSERT_TRUE((*rec)->finish({}));
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM events"), 11);
}

TEST(RecorderTest, ConsoleChunksJoinIntoLines) {
  const std::string path = test::temp_db("console.db");
  auto rec = Recorder::open(path, test_session(), false, {.steps = recorder::kNoChains});
  ASSERT_TRUE(rec) << rec.error();
  probes::ProbeBus bus;
  (*rec)->attach(bus);
  test::Emitter em(bus);
  em.console("Hel");
  em.console("lo, exitscope\ns");
  em.console("econd line\n");
  em.console("tail");
  ASSERT_TRUE((*rec)->finish({}));
  auto rd = replay::Recording::open(path);
  ASSERT_TRUE(rd) << rd.error();
  auto lines = rd->console_lines();
  ASSERT_TRUE(lines) << lines.error();
  ASSERT_EQ(lines->size(), 3u);
  EXPECT_EQ((*lines)[0], "Hello, exitscope");
  EXPECT_EQ((*lines)[1], "second line");
  EXPECT_EQ((*lines)[2], "tail");
}

TEST(RecorderTest, DropModeCountsEveryDroppedRecord) {
  const std::string path = test::temp_db("drops.db");
  RecorderOptions opt{.steps = recorder::kNoChains};
  opt.batch_size = 4;
  opt.max_queued = 4;
  opt.drop_when_full = true;
  auto rec = Recorder::open(path, test_session(), false, opt);
  ASSERT_TRUE(rec) << rec.error();
  probes::ProbeBus bus;
  (*rec)->attach(bus);
  constexpr int kN = 20000;
  for (int i = 0; i < kN; ++i) {
    es_record r{};
    r.kind = ES_KIND_VM_EXIT;
    bus.emit(r);
  }
  ASSERT_TRUE((*rec)->finish({}));
  const auto st = (*rec)->stats();
  EXPECT_EQ(st.written + st.dropped, static_cast<uint64_t>(kN)) << "every record is written or counted";
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM events"), static_cast<int64_t>(st.written));
  EXPECT_EQ(query_int(path, "SELECT records_dropped FROM sessions"), static_cast<int64_t>(st.dropped));
}

// Issue #19: a Recorder opened without steps used to write a recording with no chains and say
// nothing. The steps have no default now (this does not compile without them) ...
static_assert(!std::is_default_constructible_v<RecorderOptions>,
              "RecorderOptions must not be default-constructible: the caller names its steps or kNoChains");

// ... and a factory that is empty (a std::function nobody set) is refused before the file exists.
TEST(RecorderStepsTest, AnEmptyStepsFactoryIsRefusedBeforeTheFileIsCreated) {
  const std::string path = test::temp_db("empty_steps.db");
  auto rec = Recorder::open(path, test_session(), false, {.steps = recorder::RecordStepsFactory{}});
  ASSERT_FALSE(rec) << "an empty steps factory must not open a recording that would have no chains";
  EXPECT_NE(rec.error().find("empty_steps.db"), std::string::npos) << rec.error();
  EXPECT_NE(rec.error().find("no chains"), std::string::npos) << rec.error();
  EXPECT_NE(rec.error().find("recorder::kNoChains"), std::string::npos) << rec.error();
  EXPECT_FALSE(std::filesystem::exists(path)) << "nothing is created for a refused recorder";
}

TEST(RecorderStepsTest, NoChainsWritesEveryRowAndAnEmptyChainsTable) {
  const std::string path = test::temp_db("no_chains.db");
  auto rec = Recorder::open(path, test_session(), false, {.steps = recorder::kNoChains});
  ASSERT_TRUE(rec) << rec.error();
  probes::ProbeBus bus;
  (*rec)->attach(bus);
  for (uint32_t i = 0; i < 10; ++i) {
    es_record r = full_record(ES_KIND_VM_EXIT, i);
    bus.emit(r);
  }
  ASSERT_TRUE((*rec)->finish({ES_END_GUEST_EXIT, "done"}));
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM events"), 10);
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM chains"), 0);
  EXPECT_EQ(query_int(path, "SELECT complete FROM sessions"), 1);
}

// The caller's steps see every row in id order on the writer thread, then finish once, after the
// last row is in the file (what replay::chain_steps() relies on).
class CountingSteps final : public recorder::RecordSteps {
 public:
  CountingSteps(db::Db& db, std::vector<uint64_t>& ids, int64_t& rows_at_finish)
      : db_(db), ids_(ids), rows_at_finish_(rows_at_finish) {}
  void on_row(const es_record& row) override { ids_.push_back(row.id); }
  Result<void> finish() override {
    auto st = db_.prepare("SELECT count(*) FROM events");
    if (!st || st->step() != SQLITE_ROW) return make_error("cannot count events");
    rows_at_finish_ = st->col_i64(0);
    return {};
  }

 private:
  db::Db& db_;
  std::vector<uint64_t>& ids_;
  int64_t& rows_at_finish_;
};

TEST(RecorderStepsTest, TheCallersStepsSeeEveryRowThenFinishOnce) {
  const std::string path = test::temp_db("counting_steps.db");
  std::vector<uint64_t> ids;
  int64_t rows_at_finish = -1;
  int made = 0;
  RecorderOptions opt{.steps = recorder::RecordStepsFactory([&](db::Db& db) -> std::unique_ptr<recorder::RecordSteps> {
                        ++made;
                        return std::make_unique<CountingSteps>(db, ids, rows_at_finish);
                      })};
  opt.batch_size = 3;  // several batches
  auto rec = Recorder::open(path, test_session(), false, opt);
  ASSERT_TRUE(rec) << rec.error();
  probes::ProbeBus bus;
  (*rec)->attach(bus);
  std::vector<uint64_t> sent;
  for (uint32_t i = 0; i < 10; ++i) {
    es_record r = full_record(ES_KIND_VM_EXIT, i);
    bus.emit(r);
    sent.push_back(r.id);
  }
  ASSERT_TRUE((*rec)->finish({ES_END_GUEST_EXIT, "done"}));
  EXPECT_EQ(made, 1);
  EXPECT_EQ(ids, sent);
  EXPECT_EQ(rows_at_finish, 10);
}

TEST(SessionInfoTest, Sha256MatchesKnownVectors) {
  EXPECT_EQ(recorder::sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(recorder::sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string long_msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(recorder::sha256_hex(long_msg.data(), long_msg.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string file = test::temp_db("hash_me.bin");
  { std::ofstream(file, std::ios::binary) << "abc"; }
  auto h = recorder::hash_file(file);
  ASSERT_TRUE(h) << h.error();
  EXPECT_EQ(*h, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  auto missing = recorder::hash_file(file + ".missing");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find(file + ".missing"), std::string::npos);
}

}  // namespace
}  // namespace es
