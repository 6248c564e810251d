// The session row's configuration of recordings already on disk reads through the session
// layer: the v1 fixture (recorded before nlohmann-json wrote it), and rows that are not JSON.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>

#include "session/config.h"

namespace {

// The fixture is opened read-only with SQLite itself: the test must not migrate or touch it.
std::string fixture_config(const std::string& path) {
  sqlite3* db = nullptr;
  std::string out;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT config_json FROM sessions WHERE id = 1", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return out;
}

// tests/data/schema/v1_irq_ept_reinject.db: "record --scenario irq-ept-reinject --max-exits 12"
// by a schema-v1 exitscope (its command_line column).
TEST(SessionConfig, ReadsTheHvConfigOfASchemaV1Recording) {
  const std::string json = fixture_config(std::string(ES_SOURCE_DIR) + "/tests/data/schema/v1_irq_ept_reinject.db");
  ASSERT_FALSE(json.empty());
  EXPECT_EQ(es::session::config_source(json), "hv");
  auto c = es::session::parse_hv_config(json);
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->max_exits, 12u);
  EXPECT_EQ(c->max_insns, 200000000u);
  EXPECT_EQ(c->guest_arg, 0u);
  EXPECT_FALSE(c->eager_ept);
  EXPECT_EQ(c->exception_bitmap, 0u);
  EXPECT_FALSE(c->nested);
  EXPECT_EQ(c->bug, "");
  // Written again, it is the same text: the stored form did not change.
  EXPECT_EQ(es::session::to_json(*c), json);
}

TEST(SessionConfig, RoundTripsEverySetting) {
  es::session::HvStoredConfig c{.max_exits = 7,
                                .max_insns = 0,
                                .guest_arg = 0xFFFFFFFFFFFFFFFFull,
                                .eager_ept = true,
                                .exception_bitmap = 0x80004000u,
                                .nested = true,
                                .bug = "a \"quoted\" \\ name\n"};
  auto back = es::session::parse_hv_config(es::session::to_json(c));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, c);
}

// A row from an older or other source, or damaged: a sentence or a default, never a crash.
TEST(SessionConfig, OtherSourcesAndDamagedRowsAreToldApart) {
  EXPECT_EQ(es::session::config_source(R"({"kvm": {"kernel": "6.1.0"}})"), "kvm");
  EXPECT_EQ(es::session::config_source(R"({"import": {"file": "t.dat"}})"), "import");
  EXPECT_EQ(es::session::config_source("{}"), "");
  EXPECT_EQ(es::session::config_source(R"({"max_exits":)"), "");
  auto truncated = es::session::parse_hv_config(R"({"max_exits":12,"nes)");
  ASSERT_FALSE(truncated);
  EXPECT_NE(truncated.error().find("not valid JSON"), std::string::npos) << truncated.error();
  auto wrong = es::session::parse_hv_config(R"({"max_exits":-1})");
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().find("\"max_exits\""), std::string::npos) << wrong.error();
  auto bitmap = es::session::parse_hv_config(R"({"exception_bitmap":4294967296})");
  EXPECT_FALSE(bitmap);
  auto array = es::session::parse_hv_config("[1,2]");
  EXPECT_FALSE(array);
  // Keys an older recording lacks keep their defaults.
  auto partial = es::session::parse_hv_config(R"({"max_exits":3})");
  ASSERT_TRUE(partial) << partial.error();
  EXPECT_EQ(partial->max_exits, 3u);
  EXPECT_EQ(partial->bug, "");
}

}  // namespace
