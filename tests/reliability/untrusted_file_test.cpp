// A recording is a file people mail to each other (issue #17, RELIABILITY.md "Files from
// strangers"): every value in it is validated before it is used, and nothing in it reaches the
// reader's terminal unescaped. Real recordings, edited with SQL the way a hostile sender would,
// read through the real `exitscope` binary.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <climits>
#include <filesystem>
#include <string>
#include <vector>

#include "schema/sqlite_db.h"
#include "tests/support/cli_run.h"

namespace fs = std::filesystem;
using es::test::CliRun;
using es::test::run_cli;
using es::test::slurp;

namespace {

void exec(const std::string& path, const std::string& sql) {
  auto db = es::db::Db::open(path, SQLITE_OPEN_READWRITE);
  ASSERT_TRUE(db) << db.error();
  auto r = db->exec(sql);
  ASSERT_TRUE(r) << r.error();
}

// A fresh, complete recording of a built-in scenario (console output, chains, exits).
std::string fresh_recording(const std::string& name) {
  const std::string p = es::test::process_tmp(name);
  for (const char* s : {"", "-wal", "-shm"}) fs::remove(p + s);
  const CliRun r = run_cli("record --scenario irq-ept-reinject --quiet -o '" + p + "'");
  EXPECT_EQ(r.code, 0) << r.err;
  return p;
}

// Every command that reads a recording, with `p` as its input.
std::vector<std::string> reading_commands(const std::string& p, const std::string& other) {
  const std::string q = "'" + p + "'";
  return {"info " + q, "events " + q, "chains " + q, "check " + q, "export " + q, "export " + q + " --format markdown",
          "export " + q + " --format chrome",
          // Perfetto's protobuf is binary (any byte, 0x1b too, is a varint somewhere): to a file.
          "export " + q + " --format perfetto -o '" + p + ".pftrace' --force", "diff " + q + " '" + other + "'",
          "diff '" + other + "' " + q, "migrate " + q + " -o '" + p + ".copy.db' --force",
          "migrate " + q + " --in-place"};
}

// user_version is a signed 32-bit header field (SQLite file format, offset 60). Expected:
// every command refuses a value no exitscope writes (negative) with exit 2 and one sentence
// naming the file and the value, and the file is not touched. Before the fix, -5 indexed the
// migration step table at -5 and every command died with SIGSEGV (exit 139), silently.
TEST(UntrustedFile, HostileSchemaVersionIsRefusedByEveryCommandInOneSentence) {
  const std::string good = fresh_recording("good.db");
  for (const int version : {-5, -1, INT_MIN}) {
    const std::string p = es::test::process_tmp("version" + std::to_string(version) + ".db");
    fs::copy_file(good, p, fs::copy_options::overwrite_existing);
    exec(p, "PRAGMA user_version = " + std::to_string(version));
    const std::string before = slurp(p);
    for (const std::string& cmd : reading_commands(p, good)) {
      const CliRun r = run_cli(cmd);
      EXPECT_EQ(r.code, 2) << cmd << ": " << r.err;
      EXPECT_EQ(es::test::count_lines(r.err), 1u) << cmd << ": " << r.err;
      EXPECT_NE(r.err.find("'" + p + "' has schema version " + std::to_string(version) +
                           " in its header, which no exitscope writes"),
                std::string::npos)
          << cmd << ": " << r.err;
    }
    EXPECT_EQ(slurp(p), before) << "version " << version << ": the file was modified";
    EXPECT_FALSE(fs::exists(p + ".copy.db"));
  }
}

// Every sessions column, the schema_history rows and a few events set to what a hostile
// sender could write: NULLs, blobs where text is expected, negative and huge counts, an end
// reason no build knows, truncated or malformed JSON in config_json (both the import and the
// KVM summaries parse it), events with impossible kinds, lengths and links to themselves.
// Expected: no command dies on a signal (exit < 128); each either works (0, or 1 for check /
// diff findings) or refuses in one sentence (2).
TEST(UntrustedFile, HostileSessionAndEventColumnsNeverCrashAnyCommand) {
  const std::string good = fresh_recording("good2.db");
  const std::vector<std::string> configs = {
      "NULL",
      "X'00ff00'",
      "'{\"import\": {\"file\": \"'",
      "'{\"import\": {\"file\": \"a\\\\'",
      "'{\"import\": {\"file_version\": 7, \"unparsed_lines\": [1, 2, \"assumptions\": [\"\\\\u'",
      "'{\"kvm\": {\"kernel\": \"\\\\'",
      "'{\"kvm\": {\"events\": [{\"name\": \"kvm_exit\", \"fields_missing\": [[[[\"\\\\'",
      "'{\"kvm\": {\"drops_per_cpu\": [-1, 99999999999999999999999, \"x\"], \"ring_pages\": -9'",
      "'" + std::string(3000, '[') + "'",
  };
  int n = 0;
  for (const std::string& config : configs) {
    const std::string p = es::test::process_tmp("hostile" + std::to_string(n++) + ".db");
    fs::copy_file(good, p, fs::copy_options::overwrite_existing);
    // The sender's file need not have our constraints: the sessions table without NOT NULL.
    exec(p,
         "CREATE TABLE s2 AS SELECT * FROM sessions; DROP TABLE sessions; ALTER TABLE s2 RENAME TO sessions;"
         "CREATE TABLE h2 AS SELECT * FROM schema_history; DROP TABLE schema_history;"
         "ALTER TABLE h2 RENAME TO schema_history;"
         "UPDATE sessions SET source = NULL, scenario = X'1b5b324a', guest_path = 12, guest_hash = NULL, "
         "policy = -1, tool_version = NULL, host = NULL, kernel = X'', command_line = NULL, config_json = " +
             config +
             ", started_at = 3.5, ended_at = NULL, complete = -7, end_reason = 4294967295, end_detail = X'9b',"
             " records_dropped = -1, source_dropped = 9223372036854775807;"
             "INSERT INTO schema_history (version, from_version, migrated_at, tool_version, source_file) VALUES "
             "(-2147483648, 99, NULL, X'1b', NULL);"
             // Schema v4 rows (schema/v4.sql): `extra` packs guest_linear .. aux64 (schema/event_row.cpp);
             // here a mask naming five fields over a number that never ends, an overlong one, a
             // text instead of a blob, and the widest aux.
             "INSERT INTO events (id, kind, level, hv_level, vcpu, time_ns, reason, flags, cause, origin, rip, "
             "qualification, guest_phys, intr_info, intr_error, idt_vectoring_info, code_id, text, extra) VALUES "
             "(1000001, 65535, 255, 255, -1, -1, -1, -1, 1000001, 1000001, -1, -1, -1, -1, -1, -1, 999999, NULL,"
             " X'1fffffffffffffffffffffffffffffffffff'),"
             "(1000002, 7, 1, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, X'1b', X'08ffffffff0f'),"
             "(1000003, 1, 1, 0, 70000, -9223372036854775808, 4294967295, 0, 1000002, 1000003, 0, 0, 0, "
             "2147483648, 0, 2147483903, -5, 'text where none belongs', 'x'),"
             "(1000004, 1, 1, 0, 0, 6, 0, 0, 0, NULL, 0, 0, 0, 0, 0, 0, NULL, NULL, X'ff')");
    for (const std::string& cmd : reading_commands(p, good)) {
      const CliRun r = run_cli(cmd);
      EXPECT_LT(r.code, 128) << "config " << config << ": " << cmd << " died on signal " << r.code - 128;
      EXPECT_GE(r.code, 0) << cmd;
      if (r.code == 2) {
        EXPECT_EQ(es::test::count_lines(r.err), 1u) << cmd << ": " << r.err;
      }
      EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << cmd << " printed a raw ESC from the file";
    }
  }
}

// A guest that writes terminal control sequences to its console (OSC 0 retitles the window,
// CSI 2J clears the screen, the 8-bit CSI 0x9b does the same on some terminals), and a
// session whose strings carry them. Expected (the rule `events` already followed): `info`
// and `diff` print them as \xNN text; no ESC, BEL or 0x9b byte reaches stdout, and the
// escaped form is there for the reader to see.
TEST(UntrustedFile, InfoAndDiffEscapeTerminalControlsFromTheFile) {
  const std::string good = fresh_recording("plain.db");
  const std::string p = es::test::process_tmp("escapes.db");
  fs::copy_file(good, p, fs::copy_options::overwrite_existing);
  exec(p,
       "UPDATE sessions SET scenario = 'demo' || char(27) || ']0;owned' || char(7), "
       "policy = char(27) || '[2J', host = 'h' || char(155) || '2J', end_detail = 'end' || char(27) || 'c';"
       "INSERT INTO events (id, kind, level, hv_level, vcpu, time_ns, reason, flags, cause, origin, rip, "
       "qualification, guest_phys, intr_info, intr_error, idt_vectoring_info, text, extra) VALUES (1000000, 7, 1, 0, "
       "0, 999999999, 0, 0, 0, NULL, 0, 0, 0, 0, 0, 0, 'hi' || char(27) || ']0;title' || char(7) || char(27) || "
       "'[2J', X'0810')");  // extra: aux = 16 (schema/event_row.cpp)
  auto no_controls = [](const std::string& out) {
    for (const char c : out)
      if (c == '\x1b' || c == '\x07' || c == '\x9b' || static_cast<unsigned char>(c) == 0xc2) return false;
    return true;
  };
  const CliRun info = run_cli("info '" + p + "'");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_TRUE(no_controls(info.out)) << info.out;
  EXPECT_NE(info.out.find("scenario:   demo\\x1b]0;owned\\x07\n"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("policy:     \\x1b[2J\n"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("  | hi\\x1b]0;title\\x07\\x1b[2J"), std::string::npos) << info.out;
  const CliRun diff = run_cli("diff '" + good + "' '" + p + "'");
  EXPECT_EQ(diff.code, 1) << diff.err;
  EXPECT_TRUE(no_controls(diff.out)) << diff.out;
  EXPECT_NE(diff.out.find("scenario demo\\x1b]0;owned\\x07  policy \\x1b[2J"), std::string::npos) << diff.out;
  // `events` escaped console text already; it still does, and the same way.
  const CliRun events = run_cli("events '" + p + "' --kind CONSOLE");
  EXPECT_EQ(events.code, 0) << events.err;
  EXPECT_TRUE(no_controls(events.out)) << events.out;
  EXPECT_NE(events.out.find("\"hi\\x1b]0;title\\x07\\x1b[2J\""), std::string::npos) << events.out;
}

// SQLite quotes the file's own object names in some errors ("malformed database schema
// (NAME)"). A table named with ESC ] 0 ; ... BEL whose SQL is broken: expected, every reading
// command refuses the corrupt file in one sentence (exit 2) with the name's control bytes
// shown as '?', so no ESC or BEL reaches stderr.
TEST(UntrustedFile, SqliteErrorQuotingTheFilesNamesIsEscaped) {
  const std::string p = fresh_recording("badname.db");
  exec(p,
       "CREATE TABLE \"e\x1b]0;owned\x07\" (a); PRAGMA writable_schema = ON; "
       "UPDATE sqlite_schema SET sql = 'CREATE TABLE broken(' WHERE name LIKE 'e%owned%';");
  for (const char* cmd : {"info", "events", "chains", "export"}) {
    const CliRun r = run_cli(std::string(cmd) + " '" + p + "'");
    EXPECT_EQ(r.code, 2) << cmd << ": " << r.err;
    EXPECT_EQ(es::test::count_lines(r.err), 1u) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("malformed database schema (e?]0;owned?)"), std::string::npos) << cmd << ": " << r.err;
    EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << cmd;
    EXPECT_EQ(r.err.find('\x07'), std::string::npos) << cmd;
  }
}

}  // namespace
