// Schema versions on real files through the real CLI: a newer recording is refused and left
// alone; an older one is read through a migrated copy and never modified unless the user
// asks (`exitscope migrate --in-place`). Older files: a real v1 recording committed under
// tests/data/schema (written by exitscope 0.1.0 before v2 existed) and one generated here
// from the frozen v1 SQL, the way an older exitscope would have created it.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "replay/recording.h"
#include "schema/event_row.h"
#include "schema/migrations.h"
#include "schema/session_row.h"
#include "schema/sqlite_db.h"
#include "tests/support/cli_run.h"

namespace fs = std::filesystem;
using es::test::CliRun;
using es::test::run_cli;
using es::test::slurp;

namespace {

int64_t query(const std::string& path, const std::string& sql) {
  auto db = es::db::Db::open(path, SQLITE_OPEN_READONLY);
  if (!db) return -1;
  auto v = db->query_int(sql);
  return v ? *v : -1;
}

void exec(const std::string& path, const std::string& sql) {
  auto db = es::db::Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  ASSERT_TRUE(db) << db.error();
  auto r = db->exec(sql);
  ASSERT_TRUE(r) << r.error();
}

// A fresh copy of the committed v1 recording (irq-ept-reinject, 12 exits, 38 events).
std::string old_recording(const std::string& name) {
  const std::string p = es::test::process_tmp(name);
  fs::remove(es::test::process_tmp(fs::path(name).stem().string() + ".v5.db"));
  fs::copy_file(std::string(ES_TEST_DATA_DIR) + "/schema/v1_irq_ept_reinject.db", p,
                fs::copy_options::overwrite_existing);
  return p;
}

// A v1 file built by SQL: the v1 tables (schema/v1.sql never changes once released) and a
// session with an injected IRQ delivered through one EPT violation.
std::string generated_v1(const std::string& name) {
  const std::string p = es::test::process_tmp(name);
  fs::remove(p);
  exec(p, std::string(es::schema::v1_sql()));
  exec(
      p,
      "INSERT INTO sessions (id, source, scenario, guest_path, guest_hash, policy, tool_version, host, kernel, "
      "command_line, config_json, started_at, ended_at, complete, end_reason, event_count, exit_count) VALUES "
      "(1, 'hv', 'hand-made', '', '', 'default', '0.0.9', 'test', 'test', '', '{}', '2025-01-01T00:00:00Z', "
      "'2025-01-01T00:00:01Z', 1, 0, 3, 1);"
      "INSERT INTO events (id, kind, level, hv_level, vcpu, time_ns, reason, flags, cause, origin, rip, qualification, "
      "guest_linear, guest_phys, intr_info, intr_error, idt_vectoring_info, idt_vectoring_error, instr_len, aux, "
      "aux64) "
      "VALUES (1, 1, 1, 0, 0, 100, 48, 0, 0, 0, 4096, 0, 0, 8192, 0, 0, 2147483680, 0, 0, 0, 0),"
      "       (2, 2, 1, 0, 0, 200, 0, 0, 1, 0, 4096, 0, 0, 0, 2147483680, 0, 0, 0, 0, 0, 0),"
      "       (3, 1, 1, 0, 0, 300, 30, 0, 0, 0, 4100, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0);");
  EXPECT_EQ(query(p, "PRAGMA user_version"), 1);
  return p;
}

TEST(SchemaVersions, NewerRecordingIsRefusedAndLeftAlone) {
  const std::string p = es::test::process_tmp("newer.db");
  fs::remove(p);
  ASSERT_EQ(run_cli("record --scenario irq-ept-reinject --max-exits 5 --quiet -o " + p).code, 0);
  exec(p, "PRAGMA user_version = " + std::to_string(es::schema::kSchemaVersion + 1));
  const std::string before = slurp(p);
  const std::string v = "v" + std::to_string(es::schema::kSchemaVersion);
  const std::string newer = "v" + std::to_string(es::schema::kSchemaVersion + 1);
  for (const char* cmd : {"info", "events", "chains", "migrate", "migrate --in-place"}) {
    const CliRun r = run_cli(std::string(cmd) + " " + p);
    EXPECT_EQ(r.code, 2) << cmd;
    EXPECT_EQ(es::test::count_lines(r.err), 1u) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("'" + p + "' uses exitscope schema " + newer + ", newer than this build understands (" + v +
                         "); open it with a newer exitscope."),
              std::string::npos)
        << cmd << ": " << r.err;
  }
  EXPECT_EQ(slurp(p), before) << "a refused file is not modified";
  EXPECT_FALSE(fs::exists(es::test::process_tmp("newer.v5.db")));
}

TEST(SchemaVersions, OlderRecordingIsReadThroughAMigratedCopyAndNeverModified) {
  const std::string old = old_recording("old.db");
  const std::string copy = es::test::process_tmp("old.v5.db");
  const std::string before = slurp(old);

  const CliRun info = run_cli("info --no-console " + old);
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_EQ(info.err, "note: '" + old + "' uses the older schema v1; reading a migrated copy '" + copy +
                          "' (schema v5). The original is unchanged; 'exitscope migrate " + old +
                          " --in-place' upgrades it instead.\n");
  EXPECT_NE(info.out.find("scenario:   irq-ept-reinject"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("events:     38 "), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("status:     complete"), std::string::npos) << info.out;

  EXPECT_EQ(slurp(old), before) << "the original must not be touched";
  EXPECT_EQ(query(old, "PRAGMA user_version"), 1);
  EXPECT_FALSE(fs::exists(old + "-wal") || fs::exists(old + "-journal"));
  ASSERT_TRUE(fs::exists(copy));
  EXPECT_EQ(query(copy, "PRAGMA user_version"), es::schema::kSchemaVersion);
  EXPECT_EQ(query(copy, "SELECT count(*) FROM events"), 38);
  EXPECT_EQ(query(copy, "SELECT count(*) FROM schema_history WHERE version = 2 AND from_version = 1"), 1);

  // The next command reuses the copy, and reads the same data as from the copy itself.
  const CliRun events = run_cli("events " + old);
  ASSERT_EQ(events.code, 0) << events.err;
  EXPECT_NE(events.err.find("reading its migrated copy '" + copy + "'"), std::string::npos) << events.err;
  EXPECT_EQ(es::test::count_lines(events.out), 38u);
  EXPECT_EQ(events.out, run_cli("events " + copy).out);
  const CliRun chains = run_cli("chains " + old);
  ASSERT_EQ(chains.code, 0) << chains.err;
  EXPECT_EQ(chains.out, run_cli("chains " + copy).out);
  EXPECT_EQ(slurp(old), before);
}

TEST(SchemaVersions, GeneratedV1FileIsMigratedOnOpen) {
  const std::string old = generated_v1("handmade.db");
  const CliRun events = run_cli("events " + old);
  ASSERT_EQ(events.code, 0) << events.err;
  EXPECT_EQ(es::test::count_lines(events.out), 3u) << events.out;
  EXPECT_NE(events.out.find("EPT_VIOLATION"), std::string::npos) << events.out;
  EXPECT_NE(events.err.find("uses the older schema v1"), std::string::npos) << events.err;
  EXPECT_EQ(query(old, "PRAGMA user_version"), 1);
  const CliRun info = run_cli("info --no-console " + old);
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("scenario:   hand-made"), std::string::npos) << info.out;
}

TEST(SchemaVersions, MigrateCommandCopiesByDefaultAndUpgradesInPlaceOnRequest) {
  const std::string old = old_recording("m.db");
  const std::string before = slurp(old);
  const std::string out = es::test::process_tmp("m-new.db");
  fs::remove(out);

  const CliRun copy = run_cli("migrate " + old + " -o " + out);
  ASSERT_EQ(copy.code, 0) << copy.err;
  EXPECT_EQ(copy.out, "migrated '" + old + "' (schema v1) to '" + out + "' (schema v5); the original is unchanged.\n");
  EXPECT_EQ(slurp(old), before);
  EXPECT_EQ(query(out, "PRAGMA user_version"), 5);
  EXPECT_EQ(query(out, "SELECT count(*) FROM events"), 38);
  const CliRun again = run_cli("migrate " + old + " -o " + out);
  EXPECT_EQ(again.code, 2);
  EXPECT_NE(again.err.find("already exists; pass --force"), std::string::npos) << again.err;

  // info says where the copy came from.
  const CliRun copy_info = run_cli("info --no-console " + out);
  EXPECT_EQ(copy_info.code, 0) << copy_info.err;
  EXPECT_NE(copy_info.out.find("schema:     v2 from v1 on "), std::string::npos) << copy_info.out;
  EXPECT_NE(copy_info.out.find("schema:     v3 from v2 on "), std::string::npos) << copy_info.out;
  EXPECT_NE(copy_info.out.find(", copied from " + fs::absolute(old).string()), std::string::npos) << copy_info.out;

  const CliRun current = run_cli("migrate " + out);
  EXPECT_EQ(current.code, 0);
  EXPECT_EQ(current.out, "'" + out + "' is already at schema v5; nothing to do.\n");

  const CliRun in_place = run_cli("migrate --in-place " + old);
  ASSERT_EQ(in_place.code, 0) << in_place.err;
  EXPECT_EQ(in_place.out, "migrated '" + old + "' in place from schema v1 to v5.\n");
  EXPECT_EQ(query(old, "PRAGMA user_version"), 5);
  EXPECT_EQ(query(old, "SELECT count(*) FROM schema_history WHERE source_file = ''"), 4);  // v1 -> v2 -> v3 -> v4 -> v5
  const CliRun info = run_cli("info --no-console " + old);
  EXPECT_EQ(info.code, 0);
  EXPECT_EQ(info.err, "") << "no copy once the original is current";
  EXPECT_NE(info.out.find("events:     38 "), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("schema:     v2 from v1 on "), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("schema:     v3 from v2 on "), std::string::npos) << info.out;
  EXPECT_NE(info.out.find(" (in place)"), std::string::npos) << info.out;

  const CliRun help = run_cli("migrate --help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("--in-place"), std::string::npos);
  EXPECT_EQ(run_cli("migrate").code, 2);
  EXPECT_EQ(run_cli("migrate " + old + " --in-place -o x.db").code, 2);
  const CliRun missing = run_cli("migrate " + es::test::process_tmp("nope.db"));
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;
}

}  // namespace

namespace {

// Every stored field of every event of a v3 file, in id order, as the v3 columns hold them.
std::vector<es_record> v3_rows(const std::string& path) {
  std::vector<es_record> out;
  auto db = es::db::Db::open(path, SQLITE_OPEN_READONLY);
  EXPECT_TRUE(db) << db.error();
  if (!db) return out;
  auto st = db->prepare(
      "SELECT id, kind, level, hv_level, vcpu, time_ns, reason, flags, cause, origin, rip, qualification, "
      "guest_linear, "
      "guest_phys, intr_info, intr_error, idt_vectoring_info, idt_vectoring_error, instr_len, aux, aux64 FROM events "
      "ORDER BY id");
  EXPECT_TRUE(st) << st.error();
  if (!st) return out;
  while (st->step() == SQLITE_ROW) {
    es_record r{};
    r.version = ES_RECORD_VERSION;
    r.id = st->col_u64(0);
    r.kind = static_cast<uint16_t>(st->col_i64(1));
    r.level = static_cast<uint8_t>(st->col_i64(2));
    r.hv_level = static_cast<uint8_t>(st->col_i64(3));
    r.vcpu = static_cast<uint16_t>(st->col_i64(4));
    r.time_ns = st->col_u64(5);
    r.reason = static_cast<uint32_t>(st->col_i64(6));
    r.flags = static_cast<uint32_t>(st->col_i64(7));
    r.cause = st->col_u64(8);
    r.origin = st->col_u64(9);
    r.rip = st->col_u64(10);
    r.qualification = st->col_u64(11);
    r.guest_linear = st->col_u64(12);
    r.guest_phys = st->col_u64(13);
    r.intr_info = static_cast<uint32_t>(st->col_i64(14));
    r.intr_error = static_cast<uint32_t>(st->col_i64(15));
    r.idt_vectoring_info = static_cast<uint32_t>(st->col_i64(16));
    r.idt_vectoring_error = static_cast<uint32_t>(st->col_i64(17));
    r.instr_len = static_cast<uint32_t>(st->col_i64(18));
    r.aux = static_cast<uint32_t>(st->col_i64(19));
    r.aux64 = st->col_u64(20);
    out.push_back(r);
  }
  return out;
}

// The same through schema/event_row.h from a current file.
std::vector<es_record> current_rows(es::db::Db& db) {
  std::vector<es_record> out;
  auto st = db.prepare("SELECT " + std::string(es::schema::event_row_columns()) + " FROM events e ORDER BY e.id");
  EXPECT_TRUE(st) << st.error();
  if (!st) return out;
  while (st->step() == SQLITE_ROW) {
    es_record r{};
    es::schema::read_event_row(*st, r);
    out.push_back(r);
  }
  return out;
}

std::string dump(const std::string& path, const std::string& sql) {
  auto db = es::db::Db::open(path, SQLITE_OPEN_READONLY);
  if (!db) return "cannot open " + path;
  auto st = db->prepare(sql);
  if (!st) return "cannot prepare " + sql;
  std::string out;
  while (st->step() == SQLITE_ROW) {
    for (int c = 0; c < sqlite3_column_count(st->get()); ++c) out += st->col_text(c) + "|";
    out += "\n";
  }
  return out;
}

}  // namespace

// A v3 recording (tests/data/schema/v3_softint_ept.db: `exitscope record --scenario softint-ept`
// by the last v3 build, 383 events, 14 chains; its `chains` output beside it) migrated to the
// current schema by `exitscope migrate`. Expected (schema/v4.sql, v5.sql): every field of every event reads back as the
// v3 columns held it (origin 0 stored as NULL, the five packed columns unpacked), the chains
// table is unchanged, chain_events is gone, the current indexes are built (origin partial), and
// `chains` on the old file (through its migrated copy) prints what the v3 build printed.
TEST(SchemaVersions, V3RecordingMigratesToV4WithEveryFieldAndChain) {
  const std::string old = es::test::process_tmp("v3.db");
  const std::string out = es::test::process_tmp("v3-to-v4.db");
  for (const std::string& p : {old, out, es::test::process_tmp("v3.v5.db")}) fs::remove(p);
  fs::copy_file(std::string(ES_TEST_DATA_DIR) + "/schema/v3_softint_ept.db", old);
  ASSERT_EQ(query(old, "PRAGMA user_version"), 3);
  const std::vector<es_record> before = v3_rows(old);
  ASSERT_EQ(before.size(), 383u);

  const CliRun m = run_cli("migrate " + old + " -o " + out);
  ASSERT_EQ(m.code, 0) << m.err;
  EXPECT_EQ(m.out, "migrated '" + old + "' (schema v3) to '" + out + "' (schema v5); the original is unchanged.\n");
  EXPECT_EQ(query(out, "PRAGMA user_version"), 5);
  EXPECT_EQ(query(out, "SELECT count(*) FROM schema_history WHERE version = 4 AND from_version = 3"), 1);
  EXPECT_EQ(query(out, "SELECT count(*) FROM schema_history WHERE version = 5 AND from_version = 4"), 1);

  auto db = es::db::Db::open(out, SQLITE_OPEN_READONLY);
  ASSERT_TRUE(db) << db.error();
  const std::vector<es_record> after = current_rows(*db);
  ASSERT_EQ(after.size(), before.size());
  size_t packed = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    SCOPED_TRACE("event #" + std::to_string(before[i].id));
    EXPECT_EQ(std::memcmp(&before[i], &after[i], sizeof(es_record)), 0);
    if (before[i].guest_linear || before[i].instr_len || before[i].aux || before[i].aux64) ++packed;
  }
  EXPECT_GT(packed, 100u) << "the fixture exercises the packed columns";
  EXPECT_EQ(query(out, "SELECT count(*) FROM events WHERE origin IS NULL"),
            query(old, "SELECT count(*) FROM events WHERE origin = 0"));
  EXPECT_EQ(query(out, "SELECT count(*) FROM events WHERE origin = 0"), 0);
  EXPECT_EQ(dump(out, "SELECT * FROM chains ORDER BY id"), dump(old, "SELECT * FROM chains ORDER BY id"));
  EXPECT_EQ(query(out, "SELECT count(*) FROM sqlite_schema WHERE name = 'chain_events'"), 0);
  EXPECT_EQ(dump(out, "SELECT sql FROM sqlite_schema WHERE name = 'events_origin'"),
            "CREATE INDEX events_origin ON events(origin) WHERE origin IS NOT NULL|\n");
  // hv's simulated clock never goes back: the migrated copy says so and has no time index
  // (schema/time_index.sql), so five of the six indexes.
  EXPECT_EQ(query(out, "SELECT time_sorted FROM event_order"), 1);
  EXPECT_EQ(query(out, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'events_time'"), 0);
  EXPECT_EQ(query(out, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name LIKE 'events_%'"), 5);
  EXPECT_EQ(dump(out, "SELECT sql FROM sqlite_schema WHERE name = 'events_cause'"),
            "CREATE INDEX events_cause ON events(cause) WHERE cause != 0|\n");
  EXPECT_EQ(dump(out, "SELECT sql FROM sqlite_schema WHERE name = 'events_kind_reason'"),
            "CREATE INDEX events_kind_reason ON events((kind << 32) | (reason & 4294967295))|\n");

  const CliRun chains = run_cli("chains " + old);
  ASSERT_EQ(chains.code, 0) << chains.err;
  EXPECT_EQ(chains.out, slurp(std::string(ES_TEST_DATA_DIR) + "/schema/v3_softint_ept.chains.txt"));
  EXPECT_NE(chains.err.find("uses the older schema v3"), std::string::npos) << chains.err;
}

// A v4 recording written by the build before issue #18's index change
// (tests/data/schema/v4_softint_ept.db: `exitscope record --scenario softint-ept` by c0f0a41,
// 383 events at 0 .. 51 305 ns; it has events_time, the two-column events_kind_reason and no
// event_order table) is read through a migrated copy (schema/v5.sql: the one-key
// events_kind_reason), and its time windows print what the same scenario recorded by this build
// prints, whose file says its times follow its ids and has no time index (its windows are binary
// searches over ids). Expected: the original left at user_version 4; the copy at 5 with the key
// index, time_sorted 1 and no events_time (create_indexes drops it on a sorted file); the same
// stdout for events / stats / export over [17 000, 34 000] ns (stats and export name the file they
// read: compared with the original's name put back), and `info`'s time extent.
TEST(SchemaVersions, V4RecordingOfTheBuildBeforeGivesTheSameWindowsAsANewOne) {
  const std::string p = es::test::process_tmp("v4-window.db");
  const std::string copy = es::test::process_tmp("v4-window.v5.db");
  fs::remove(p);
  fs::remove(copy);
  fs::copy_file(std::string(ES_TEST_DATA_DIR) + "/schema/v4_softint_ept.db", p);
  ASSERT_EQ(query(p, "PRAGMA user_version"), 4);
  ASSERT_EQ(query(p, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'events_time'"), 1);
  ASSERT_EQ(query(p, "SELECT count(*) FROM sqlite_schema WHERE name = 'event_order'"), 0);
  ASSERT_EQ(dump(p, "SELECT sql FROM sqlite_schema WHERE name = 'events_kind_reason'"),
            "CREATE INDEX events_kind_reason ON events(kind, reason)|\n");
  const std::vector<std::string> commands = {"events --from 17000 --to 34000", "events --from 40000",
                                             "stats --from 17000 --to 34000",
                                             "export --format text --from 17000 --to 34000"};
  // (stats names the whole path, the export its file name)
  auto named_back = [&](std::string out) {
    for (const auto& [from, to] :
         {std::pair{copy, p}, std::pair{std::string("v4-window.v5.db"), std::string("v4-window.db")}})
      for (size_t at; (at = out.find(from)) != std::string::npos;) out.replace(at, from.size(), to);
    return out;
  };
  std::vector<std::string> old_out;
  for (const std::string& c : commands) {
    const CliRun r = run_cli(c + " " + p);
    EXPECT_EQ(r.code, 0) << c << ": " << r.err;
    EXPECT_NE(r.err.find("uses the older schema v4"), std::string::npos) << c << ": " << r.err;
    old_out.push_back(named_back(r.out));
  }
  EXPECT_EQ(query(p, "PRAGMA user_version"), 4) << "the original is not changed";
  ASSERT_TRUE(fs::exists(copy));
  EXPECT_EQ(query(copy, "PRAGMA user_version"), 5);
  EXPECT_EQ(dump(copy, "SELECT sql FROM sqlite_schema WHERE name = 'events_kind_reason'"),
            "CREATE INDEX events_kind_reason ON events((kind << 32) | (reason & 4294967295))|\n");
  EXPECT_EQ(query(copy, "SELECT time_sorted FROM event_order"), 1);
  EXPECT_EQ(query(copy, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'events_time'"), 0);
  // The time extent (min / max of time_ns on the old file, its first / last row on the new).
  const std::string extent = "events:     383  (time 0.000000000 .. 0.000051305 s)";
  EXPECT_NE(run_cli("info --no-console " + p).out.find(extent), std::string::npos);
  EXPECT_NE(old_out[0].find('#'), std::string::npos) << "the window holds events: " << old_out[0];

  fs::remove(p);
  ASSERT_EQ(run_cli("record --scenario softint-ept --quiet -o " + p).code, 0);
  EXPECT_EQ(query(p, "PRAGMA user_version"), 5);
  EXPECT_EQ(query(p, "SELECT time_sorted FROM event_order"), 1);
  EXPECT_EQ(query(p, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'events_time'"), 0);
  EXPECT_EQ(query(p, "SELECT count(*) FROM events"), 383);
  for (size_t i = 0; i < commands.size(); ++i) {
    const CliRun r = run_cli(commands[i] + " " + p);
    EXPECT_EQ(r.code, 0) << commands[i] << ": " << r.err;
    EXPECT_EQ(r.out, old_out[i]) << commands[i];
  }
  EXPECT_NE(run_cli("info --no-console " + p).out.find(extent), std::string::npos);
}

// schema/event_row.h: a row written by bind_event_row reads back field for field, at the widest
// value of every field and at zero (the packed `extra` column's two ends: 10-byte LEB128 numbers
// and NULL), with origin 0 stored as NULL.
TEST(SchemaVersions, EventRowRoundTripsEveryFieldAtItsWidestValue) {
  const std::string p = es::test::process_tmp("event_row.db");
  fs::remove(p);
  auto db = es::db::Db::open(p, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  ASSERT_TRUE(db) << db.error();
  ASSERT_TRUE(es::schema::migrate(*db));
  es_record wide{};
  wide.version = ES_RECORD_VERSION;
  wide.id = 1;
  wide.kind = 0xffff;
  wide.level = 0xff;
  wide.hv_level = 0xff;
  wide.vcpu = 0xffff;
  wide.reason = wide.flags = wide.intr_info = wide.intr_error = wide.idt_vectoring_info = 0xffffffffu;
  wide.idt_vectoring_error = wide.instr_len = wide.aux = 0xffffffffu;
  wide.cause = wide.origin = wide.time_ns = wide.rip = wide.qualification = ~0ull;
  wide.guest_linear = wide.guest_phys = wide.aux64 = ~0ull;
  es_record zero{};
  zero.version = ES_RECORD_VERSION;
  zero.id = 2;
  auto ins = db->prepare(es::schema::event_insert_sql());
  ASSERT_TRUE(ins) << ins.error();
  for (const es_record& r : {wide, zero}) {
    es::schema::bind_event_row(*ins, r, 0);
    ASSERT_EQ(ins->step(), SQLITE_DONE) << db->errmsg();
    ins->reset();
  }
  const std::vector<es_record> back = current_rows(*db);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(std::memcmp(&back[0], &wide, sizeof wide), 0);
  EXPECT_EQ(std::memcmp(&back[1], &zero, sizeof zero), 0);
  EXPECT_EQ(query(p, "SELECT count(*) FROM events WHERE id = 2 AND origin IS NULL AND extra IS NULL"), 1);
}

// schema/session_row.h: a sessions row written the way the recorder writes it (start fields at
// open, drop counts while recording, end fields at finish) reads back column for column at the
// widest value of every column (id and counts using all 64 bits, end_reason at 2^32 - 1, text
// of every non-NUL byte, 64 KiB long), and replay's SessionSummary carries the same row. A row
// only started reads as incomplete with NULL end fields.
TEST(SchemaVersions, SessionRowRoundTripsEveryColumnAtItsWidestValue) {
  std::string bytes;
  for (size_t i = 0; i < 65536; ++i) bytes += static_cast<char>(1 + i % 255);
  auto text = [&](char tag) { return std::string(1, tag) + bytes; };
  es::schema::SessionRow wide;
  wide.id = INT64_MAX;
  wide.source = text('s');
  wide.scenario = text('c');
  wide.guest_path = text('p');
  wide.guest_hash = text('h');
  wide.policy = text('o');
  wide.tool_version = text('t');
  wide.host = text('H');
  wide.kernel = text('k');
  wide.command_line = text('l');
  wide.config_json = text('j');
  wide.started_at = text('a');
  wide.ended_at = text('e');
  wide.complete = true;
  wide.end_reason = UINT32_MAX;
  wide.end_detail = text('d');
  // All 64 bits used, a different value each, so two columns swapped cannot read back equal.
  wide.event_count = UINT64_MAX;
  wide.exit_count = UINT64_MAX - 1;
  wide.records_dropped = UINT64_MAX - 2;
  wide.source_dropped = UINT64_MAX - 3;

  auto read_back = [](es::db::Db& db) {
    es::schema::SessionRow row;
    auto st = db.prepare(es::schema::session_select_sql());
    EXPECT_TRUE(st) << st.error();
    if (!st) return row;
    EXPECT_EQ(st->step(), SQLITE_ROW) << db.errmsg();
    es::schema::read_session_row(*st, row);
    return row;
  };
  auto run = [](es::db::Db& db, std::string_view sql, auto bind) {
    auto st = db.prepare(sql);
    ASSERT_TRUE(st) << st.error();
    bind(*st);
    ASSERT_EQ(st->step(), SQLITE_DONE) << db.errmsg();
  };

  const std::string p = es::test::process_tmp("session_row.db");
  fs::remove(p);
  {
    auto db = es::db::Db::open(p, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    ASSERT_TRUE(db) << db.error();
    ASSERT_TRUE(es::schema::migrate(*db));
    run(*db, es::schema::session_start_sql(), [&](es::db::Stmt& s) { es::schema::bind_session_start(s, wide); });
    es::schema::SessionRow started = wide;
    started.ended_at.clear();
    started.complete = false;
    started.end_reason.reset();
    started.end_detail.clear();
    started.event_count = started.exit_count = started.records_dropped = started.source_dropped = 0;
    EXPECT_TRUE(read_back(*db) == started) << "the start fields, and NULL / 0 for the rest";
    EXPECT_EQ(*db->query_int("SELECT count(*) FROM sessions WHERE ended_at IS NULL AND end_reason IS NULL AND "
                             "end_detail IS NULL AND complete = 0"),
              1);
    run(*db, es::schema::session_drops_sql(), [&](es::db::Stmt& s) { es::schema::bind_session_drops(s, wide); });
    started.records_dropped = wide.records_dropped;
    started.source_dropped = wide.source_dropped;
    EXPECT_TRUE(read_back(*db) == started) << "the drop counts while recording";
    run(*db, es::schema::session_end_sql(), [&](es::db::Stmt& s) { es::schema::bind_session_end(s, wide); });
    EXPECT_TRUE(read_back(*db) == wide) << "every column after finish";
    EXPECT_EQ(*db->query_int("SELECT end_reason FROM sessions"), int64_t{UINT32_MAX});
    EXPECT_EQ(*db->query_int("SELECT id FROM sessions"), INT64_MAX);
  }

  // replay's reader: the same row, and event_count counted from events (none here).
  auto rec = es::replay::Recording::open(p);
  ASSERT_TRUE(rec) << rec.error();
  auto summary = rec->session(es::replay::Recording::Detail::Summary);
  ASSERT_TRUE(summary) << summary.error();
  es::schema::SessionRow expected = wide;
  expected.event_count = 0;
  EXPECT_TRUE(static_cast<const es::schema::SessionRow&>(*summary) == expected);
  auto drops = rec->drop_counts();
  ASSERT_TRUE(drops) << drops.error();
  EXPECT_EQ(drops->recorder, UINT64_MAX - 2);
  EXPECT_EQ(drops->source, UINT64_MAX - 3);
}
