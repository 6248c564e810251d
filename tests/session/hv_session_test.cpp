// The session API records a built-in scenario into a real SQLite file and answers with what the
// recording holds: end reason, counts and the configuration stored in its session row.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "exitscope/record.h"
#include "session/hv_session.h"
#include "tests/support/tmp.h"

namespace {

using es::session::HvRequest;
using es::session::HvSession;

// One value of the recording's single row / aggregate.
struct Db {
  explicit Db(const std::string& path) {
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  }
  ~Db() { sqlite3_close(db); }
  std::string text(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    std::string out = "<no row>";
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
      return "<" + std::string(sqlite3_errmsg(db)) + ">";
    if (sqlite3_step(st) == SQLITE_ROW)
      out = sqlite3_column_text(st, 0) ? reinterpret_cast<const char*>(sqlite3_column_text(st, 0)) : "<null>";
    sqlite3_finalize(st);
    return out;
  }
  uint64_t num(const std::string& sql) { return std::stoull(text(sql)); }
  sqlite3* db = nullptr;
};

HvRequest request(const std::string& scenario, const std::string& output) {
  HvRequest r;
  r.scenario = scenario;
  r.output = output;
  r.stop_on_signals = false;
  r.command_line = "session_tests";
  return r;
}

// irq-ept-reinject stopped by the guest hypervisor's exit limit: the vmm ends the run with
// ES_END_LIMIT "stopped after --max-exits 12" (hv/vmm/vmm.cpp) after exactly 12 VM exits, the
// guest never wrote its exit code, and the session row says the same as the result.
TEST(HvSession, LimitedRunEndsAtTheLimitAndTheRowAgreesWithTheResult) {
  const std::string db = es::test::process_tmp("limit.db");
  HvRequest r = request("irq-ept-reinject", db);
  r.max_exits = 12;
  auto s = HvSession::open(r);
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ((*s)->what(), "irq-ept-reinject");
  auto res = (*s)->run();
  ASSERT_TRUE(res) << res.error();
  EXPECT_FALSE((*s)->unload_plugins());
  EXPECT_EQ(res->end_reason, static_cast<uint32_t>(ES_END_LIMIT));
  EXPECT_EQ(res->end_detail, "stopped after --max-exits 12");
  EXPECT_EQ(res->vm_exits, 12u);
  EXPECT_FALSE(res->reflected_to_l1);
  EXPECT_FALSE(res->guest_exit_code);
  EXPECT_EQ(res->output, db);

  Db d(db);
  EXPECT_EQ(d.num("SELECT complete FROM sessions"), 1u);
  EXPECT_EQ(d.num("SELECT end_reason FROM sessions"), res->end_reason);
  EXPECT_EQ(d.text("SELECT end_detail FROM sessions"), res->end_detail);
  EXPECT_EQ(d.num("SELECT count(*) FROM events"), res->events);
  EXPECT_GT(res->events, res->vm_exits);  // injections, decisions and deliveries besides the exits
  EXPECT_EQ(d.num("SELECT count(*) FROM events WHERE kind = " + std::to_string(ES_KIND_VM_EXIT)), res->vm_exits);
  EXPECT_EQ(d.text("SELECT scenario FROM sessions"), "irq-ept-reinject");
  EXPECT_EQ(d.text("SELECT source FROM sessions"), "hv");

  // The stored configuration reads back as the one the session used, and is, key for key and in
  // the same order, what a recording of the same run made before the session layer stores
  // (tests/data/schema/v1_irq_ept_reinject.db was recorded with --max-exits 12).
  const std::string stored = d.text("SELECT config_json FROM sessions");
  auto back = es::session::parse_hv_config(stored);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, (*s)->config());
  EXPECT_EQ(back->max_exits, 12u);
  EXPECT_EQ(back->max_insns, 200000000u);
  EXPECT_FALSE(back->nested);
  EXPECT_EQ(stored, R"({"max_exits":12,"max_insns":200000000,"guest_arg":0,"eager_ept":false,"exception_bitmap":0,)"
                    R"("nested":false,"bug":""})");
  EXPECT_EQ(es::session::config_source(stored), "hv");
}

// A nested scenario run to its end: the guest writes exit code 0 to port 0xF4 (ES_END_GUEST_EXIT),
// L0 reflects some of L2's exits to L1 (NESTED_EXIT records), and the settings stored are the
// request's: intercepts added to L1's bitmap and the nested bug's name. (Not eager EPT: the bug
// needs the EPT violation during L2's delivery that lazy EPT gives.)
TEST(HvSession, NestedRunToGuestExitStoresTheRequestedSettings) {
  const std::string db = es::test::process_tmp("nested.db");
  HvRequest r = request("nested-irq-vectoring", db);
  r.bug = "exit-with-vectoring";
  r.intercept = 1u << 6;  // #UD: an intercept the guest never needs
  auto s = HvSession::open(r);
  ASSERT_TRUE(s) << s.error();
  auto res = (*s)->run();
  ASSERT_TRUE(res) << res.error();
  EXPECT_EQ(res->end_reason, static_cast<uint32_t>(ES_END_GUEST_EXIT));
  ASSERT_TRUE(res->guest_exit_code);
  EXPECT_EQ(*res->guest_exit_code, 0u);
  ASSERT_TRUE(res->reflected_to_l1);
  Db d(db);
  EXPECT_EQ(d.num("SELECT count(*) FROM events WHERE kind = " + std::to_string(ES_KIND_NESTED_EXIT)),
            *res->reflected_to_l1);
  EXPECT_EQ(d.num("SELECT count(*) FROM events WHERE kind = " + std::to_string(ES_KIND_VM_EXIT)), res->vm_exits);
  // The bug makes L0 exit to L1 with EXTERNAL_INTERRUPT while IDT-vectoring is valid: the live
  // checker flags it (SDM Vol. 3C 27.2.3 / the seed thread), and the count is in the recording.
  EXPECT_GT(res->violations, 0u);
  EXPECT_EQ(d.num("SELECT count(*) FROM events WHERE kind = " + std::to_string(ES_KIND_VIOLATION)), res->violations);
  auto back = es::session::parse_hv_config(d.text("SELECT config_json FROM sessions"));
  ASSERT_TRUE(back) << back.error();
  EXPECT_TRUE(back->nested);
  EXPECT_FALSE(back->eager_ept);
  EXPECT_EQ(back->bug, "exit-with-vectoring");
  EXPECT_NE(back->exception_bitmap & (1u << 6), 0u);
}

// The settings stored for a request, without running it: the guest's hypervisor's limits and
// intercepts on top of the scenario's, L0's EPT mode.
TEST(HvSession, StoredSettingsAreTheRequestsOnTopOfTheScenarios) {
  HvRequest r = request("irq-ept-reinject", "unused.db");
  r.eager_ept = true;
  r.max_insns = 5000;
  r.guest_arg = 3;
  r.intercept = (1u << 14) | (1u << 6);
  auto c = es::session::check_hv_request(r);
  ASSERT_TRUE(c) << c.error();
  EXPECT_TRUE(c->eager_ept);
  EXPECT_EQ(c->max_insns, 5000u);
  EXPECT_EQ(c->guest_arg, 3u);
  EXPECT_EQ(c->exception_bitmap & ((1u << 14) | (1u << 6)), (1u << 14) | (1u << 6));
  EXPECT_EQ(c->max_exits, 0u);  // the scenario's: no limit
  EXPECT_FALSE(c->nested);
}

// Your plugin sees every record of the session and writes its own output when the caller
// unloads it, after the recording is complete: es_exit_counts.so counts VM exits by reason
// (probes/plugins/exit_counts.c) and its CSV's counts add up to the recording's VM exits.
TEST(HvSession, PluginsSeeTheRunAndWriteWhenUnloaded) {
  const std::string db = es::test::process_tmp("plugin.db");
  const std::string csv = es::test::process_tmp("exits.csv");
  HvRequest r = request("irq-ept-reinject", db);
  r.max_exits = 12;
  r.plugins.push_back({.path = ES_EXIT_COUNTS_PLUGIN, .args = {"out=" + csv}});
  auto s = HvSession::open(r);
  ASSERT_TRUE(s) << s.error();
  auto res = (*s)->run();
  ASSERT_TRUE(res) << res.error();
  EXPECT_FALSE(std::filesystem::exists(csv)) << "written before the caller unloaded the plugin";
  EXPECT_FALSE((*s)->unload_plugins());
  ASSERT_TRUE(std::filesystem::exists(csv));
  std::ifstream in(csv);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(line, "vcpu,level,hv_level,reason,name,count");
  uint64_t total = 0;
  while (std::getline(in, line)) total += std::stoull(line.substr(line.rfind(',') + 1));
  EXPECT_EQ(total, res->vm_exits);
  EXPECT_EQ(total, 12u);
}

// Settings the session refuses come back as one sentence, before anything is created.
TEST(HvSession, BadSettingsAreRefusedWithNothingWritten) {
  const std::string db = es::test::process_tmp("refused.db");
  HvRequest bad_policy = request("irq-ept-reinject", db);
  bad_policy.policy = "no-such-policy";
  auto a = HvSession::open(bad_policy);
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().find("unknown policy 'no-such-policy'"), std::string::npos) << a.error();

  HvRequest not_nested = request("irq-ept-reinject", db);
  not_nested.bug = "async-pf-into-l2";
  auto b = HvSession::open(not_nested);
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().find("needs a nested run"), std::string::npos) << b.error();

  HvRequest missing_guest = request("", db);
  missing_guest.guest_path = es::test::process_tmp("no-such-guest.bin");
  auto c = HvSession::open(missing_guest);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("cannot read guest file"), std::string::npos) << c.error();

  EXPECT_FALSE(std::filesystem::exists(db));
}

}  // namespace
