// The import session: a real trace file into a real recording, your plugins loaded first.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <string>

#include "session/config.h"
#include "session/import_session.h"
#include "tests/support/tmp.h"

namespace {

std::string session_text(const std::string& db, const char* column) {
  sqlite3* h = nullptr;
  std::string out = "<none>";
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    const std::string sql = std::string("SELECT ") + column + " FROM sessions WHERE id = 1";
    if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_text(st, 0))
      out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
  }
  sqlite3_close(h);
  return out;
}

// tests/data/import/vmx_614.txt: two comment lines and eight kvm_* lines of a 6.14 VMX host
// (kvm_exit with intr_info / error_code / requests: the 6.14+ print format).
TEST(ImportSession, TraceTextBecomesARecordingWithItsImportConfig) {
  const std::string db = es::test::process_tmp("vmx_614.db");
  es::session::ImportRequest r;
  r.file = std::string(ES_SOURCE_DIR) + "/tests/data/import/vmx_614.txt";
  r.output = db;
  r.command_line = "session_tests import";
  auto s = es::session::ImportSession::open(r);
  ASSERT_TRUE(s) << s.error();
  auto stats = (*s)->run();
  ASSERT_TRUE(stats) << stats.error();
  EXPECT_FALSE((*s)->unload_plugins());
  EXPECT_EQ(stats->lines, 10u);
  EXPECT_EQ(stats->kvm_events, 8u);
  EXPECT_EQ(stats->unparsed, 0u);
  EXPECT_EQ(stats->vendor, "vmx");
  EXPECT_FALSE(std::filesystem::exists(db + ".partial"));
  EXPECT_EQ(session_text(db, "source"), "import");
  EXPECT_EQ(session_text(db, "complete"), "1");
  EXPECT_EQ(es::session::config_source(session_text(db, "config_json")), "import");
  auto again = (*s)->run();
  EXPECT_FALSE(again);  // one session, one import
}

// A plugin that cannot be loaded stops the session before anything is written.
TEST(ImportSession, UnloadablePluginStopsItWithNothingWritten) {
  const std::string db = es::test::process_tmp("import-plugin.db");
  es::session::ImportRequest r;
  r.file = std::string(ES_SOURCE_DIR) + "/tests/data/import/vmx_614.txt";
  r.output = db;
  r.plugins.push_back({.path = es::test::process_tmp("no-such-plugin.so"), .args = {}});
  auto s = es::session::ImportSession::open(r);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().find("no-such-plugin.so"), std::string::npos) << s.error();
  EXPECT_FALSE(std::filesystem::exists(db));
}

}  // namespace
