// Event filters and the one-chain reader go through SQLite's indexes (schema/indexes.sql),
// checked with EXPLAIN QUERY PLAN on a real recording: a filter on kind / reason, vCPU, time
// window (an id range: the recording is in time order) or chain (origin) is a SEARCH on its
// index, and `chains --chain N` reads no table or
// index from end to end (no SCAN) however large the recording.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <set>
#include <string>
#include <vector>

#include "hv/arch/exceptions.h"
#include "hv/arch/exit_qualification.h"
#include "probes/recorder/recorder.h"
#include "replay/chain_steps.h"
#include "replay/browse.h"
#include "replay/chains.h"
#include "replay/query.h"
#include "replay/recording.h"
#include "replay/stats.h"
#include "tests/probes/test_support.h"

namespace es {
namespace {

using arch::BasicExitReason;

// An IRQ 0x20 chain whose delivery hit an EPT violation (reinjected, delivered), a #PF raised
// during a second IRQ's delivery (linked to it), an I/O exit on vCPU 1 at L2.
std::string make_recording(const std::string& name) {
  const std::string path = test::temp_db(name);
  auto rec = recorder::Recorder::open(path, recorder::SessionStart{}, false, {.steps = es::replay::chain_steps()});
  EXPECT_TRUE(rec) << rec.error();
  probes::ProbeBus bus;
  (*rec)->attach(bus);
  test::Emitter em(bus);
  const uint64_t irq = em.raise(test::irq(0x20));
  const uint64_t entry = em.entry(test::irq(0x20), irq, irq);
  const uint64_t ept = em.vm_exit(test::exit_reason(BasicExitReason::EptViolation), 0x182, 0, test::vectoring_irq(0x20),
                                  irq, entry, 0x7000);
  em.decision(ES_DECISION_REQUEUE_FROM_VECTORING, test::irq(0x20), irq, ept);
  const uint64_t re = em.decision(ES_DECISION_INJECT_REINJECTED, test::irq(0x20), irq, ept);
  em.delivery(test::irq(0x20), irq, re);
  const uint64_t irq2 = em.raise(test::irq(0x21));
  const uint64_t entry2 = em.entry(test::irq(0x21), irq2, irq2);
  const uint64_t pf = em.raise(test::hw_exc(arch::kPF), entry2);
  em.delivery(test::hw_exc(arch::kPF), pf, pf);
  es_record io{};
  io.kind = ES_KIND_VM_EXIT;
  io.reason = test::exit_reason(BasicExitReason::IoInstruction);
  io.qualification = arch::IoQual::make(0x3f8, 1, false).raw();
  io.vcpu = 1;
  io.level = 2;
  em.emit(io);
  em.run_end(ES_END_GUEST_EXIT);
  EXPECT_TRUE((*rec)->finish({ES_END_GUEST_EXIT, "done"}));
  return path;
}

// The EXPLAIN QUERY PLAN rows of `sql` (with `binds`), one string.
std::string plan(db::Db& db, const std::string& sql, const std::vector<int64_t>& binds = {}) {
  auto st = db.prepare("EXPLAIN QUERY PLAN " + sql);
  EXPECT_TRUE(st) << sql;
  if (!st) return {};
  for (size_t i = 0; i < binds.size(); ++i) st->bind(static_cast<int>(i + 1), binds[i]);
  std::string out;
  while (st->step() == SQLITE_ROW) out += st->col_text(3) + "\n";
  return out;
}

std::string filter_plan(replay::Recording& rec, const std::string& query) {
  auto f = replay::parse_query(query);
  EXPECT_TRUE(f) << f.error();
  if (!f) return {};
  std::vector<int64_t> binds;
  auto where = rec.filter_sql(*f, binds);
  EXPECT_TRUE(where) << where.error();
  if (!where) return {};
  return plan(rec.db(), std::string(replay::event_select_sql()) + " WHERE " + *where + " ORDER BY e.id", binds);
}

TEST(QueryPlanTest, FilterTermsSearchTheirIndexes) {
  auto rec = replay::Recording::open(make_recording("plan_filters.db"));
  ASSERT_TRUE(rec) << rec.error();
  // The user's query: a seek on the (kind << 32) | reason key (schema/kind_reason.h) per
  // (kind, reason) pair present, not a scan of events.
  std::string p = filter_plan(*rec, "reason:EPT_VIOLATION vector:0x20");
  EXPECT_NE(p.find("SEARCH e USING INDEX events_kind_reason (<expr>=?)"), std::string::npos) << p;
  EXPECT_EQ(p.find("SCAN e"), std::string::npos) << p;
  p = filter_plan(*rec, "reason:INJECT_REINJECTED");
  EXPECT_NE(p.find("events_kind_reason (<expr>=?)"), std::string::npos) << p;
  p = filter_plan(*rec, "reason:48");  // a number: exits' basic reason, any other kind's reason
  EXPECT_NE(p.find("events_kind_reason (<expr>=?)"), std::string::npos) << p;
  EXPECT_EQ(p.find("SCAN e"), std::string::npos) << p;
  p = filter_plan(*rec, "kind:exit reason:IO_INSTRUCTION");
  EXPECT_NE(p.find("events_kind_reason (<expr>=?)"), std::string::npos) << p;
  // A kind alone: its range of keys.
  p = filter_plan(*rec, "kind:delivery");
  EXPECT_NE(p.find("events_kind_reason (<expr>>? AND <expr><?)"), std::string::npos) << p;
  EXPECT_EQ(p.find("SCAN e"), std::string::npos) << p;
  p = filter_plan(*rec, "vcpu:1");
  EXPECT_NE(p.find("SEARCH e USING INDEX events_vcpu (vcpu=?)"), std::string::npos) << p;
  // Written in time order: no time index, the window is an id range (tests/replay/time_order_test.cpp).
  p = filter_plan(*rec, "from:100 to:400");
  EXPECT_NE(p.find("SEARCH e USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"), std::string::npos) << p;
  EXPECT_EQ(p.find("SCAN e"), std::string::npos) << p;
  // The effects of an event (the GUI's "caused by" links): the partial cause index.
  p = plan(rec->db(), std::string(replay::event_select_sql()) + " WHERE e.cause = ? AND e.cause != 0 ORDER BY e.id",
           {1});
  EXPECT_NE(p.find("SEARCH e USING INDEX events_cause (cause=?)"), std::string::npos) << p;
  p = filter_plan(*rec, "chain:1");
  EXPECT_NE(p.find("SEARCH e USING INDEX events_origin (origin=?)"), std::string::npos) << p;
  // A reason no event has: nothing to search at all.
  auto f = replay::parse_query("reason:TRIPLE_FAULT");
  ASSERT_TRUE(f);
  auto none = rec->events(*f);
  ASSERT_TRUE(none) << none.error();
  EXPECT_TRUE(none->empty());
}

// events_vcpu holds only the events of vCPUs other than 0 (schema/indexes.sql). Expected on the
// recording above (every event on vCPU 0 but the I/O exit on vCPU 1): the index has one entry;
// `vcpu:1` searches it and finds that exit; `vcpu:0` scans and finds every other event; the
// timeline's lane walk (past its exact limit, so through the index) finds vCPUs 0 and 1.
TEST(QueryPlanTest, VcpuIndexHoldsTheOtherVcpusOnly) {
  const std::string path = make_recording("plan_vcpu.db");
  auto rec = replay::Recording::open(path);
  ASSERT_TRUE(rec) << rec.error();
  auto entries = rec->db().query_int("SELECT count(*) FROM events INDEXED BY events_vcpu WHERE vcpu != 0");
  ASSERT_TRUE(entries) << entries.error();
  EXPECT_EQ(*entries, 1);
  EXPECT_EQ(filter_plan(*rec, "vcpu:0").find("events_vcpu"), std::string::npos);
  auto ids = [&](const std::string& q) {
    auto f = replay::parse_query(q);
    EXPECT_TRUE(f) << f.error();
    std::vector<uint64_t> out;
    auto r = rec->for_each_event(*f, [&](const replay::Event& e) {
      out.push_back(e.rec.id);
      return true;
    });
    EXPECT_TRUE(r) << r.error();
    return out;
  };
  auto all = rec->db().query_int("SELECT count(*) FROM events");
  ASSERT_TRUE(all);
  const std::vector<uint64_t> one = ids("vcpu:1");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(ids("vcpu:0").size(), static_cast<size_t>(*all) - 1);
  EXPECT_EQ(ids("vcpu:2").size(), 0u);
  auto span = replay::event_span(*rec);
  ASSERT_TRUE(span) << span.error();
  auto lanes = replay::lanes(*rec, *span, 0);
  ASSERT_TRUE(lanes) << lanes.error();
  std::set<uint16_t> vcpus;
  for (const replay::Lane& l : *lanes) vcpus.insert(l.vcpu);
  EXPECT_EQ(vcpus, (std::set<uint16_t>{0, 1}));
}

// A kind is a range of events_kind_reason's keys, (kind << 32) | (reason & 0xFFFFFFFF)
// (schema/kind_reason.h). A file from elsewhere can hold a reason no writer stores: negative, or
// past 32 bits. Expected: the mask keeps such a row in its own kind's range, so every kind's
// filter gives the same events as `+kind = K` read by scanning the table (before the mask, a
// VM_EXIT with reason -1 keyed as -1 and left the exits, and a DECISION with reason 2^32 + 5
// keyed into the next kind's range), and the summary counts each kind once, as the scan does.
TEST(QueryPlanTest, AKindsFilterHoldsItsRowsWhateverTheirReason) {
  const std::string path = make_recording("plan_hostile_reason.db");
  {
    auto db = db::Db::open(path, SQLITE_OPEN_READWRITE);
    ASSERT_TRUE(db) << db.error();
    ASSERT_TRUE(
        db->exec("UPDATE events SET reason = -1 WHERE id = (SELECT min(id) FROM events WHERE kind = " +
                 std::to_string(ES_KIND_VM_EXIT) +
                 "); UPDATE events SET reason = 4294967301 WHERE id = (SELECT min(id) FROM events WHERE kind = " +
                 std::to_string(ES_KIND_DECISION) + ")"));
  }
  auto rec = replay::Recording::open(path);
  ASSERT_TRUE(rec) << rec.error();
  std::vector<std::pair<uint16_t, uint64_t>> scanned;
  for (uint16_t kind = 0; kind < ES_KIND_COUNT; ++kind) {
    std::vector<uint64_t> want, got;
    auto st = rec->db().prepare("SELECT id FROM events WHERE +kind = ? ORDER BY id");
    ASSERT_TRUE(st);
    st->bind(1, int64_t{kind});
    while (st->step() == SQLITE_ROW) want.push_back(st->col_u64(0));
    replay::EventFilter f;
    f.kind = kind;
    ASSERT_TRUE(rec->for_each_event(f, [&](const replay::Event& e) {
      got.push_back(e.rec.id);
      return true;
    }));
    EXPECT_EQ(got, want) << "kind " << kind;
    if (!want.empty()) scanned.emplace_back(kind, want.size());
  }
  auto s = rec->session(replay::Recording::Detail::Full);
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->counts_by_kind, scanned);
}

TEST(QueryPlanTest, ReasonAndVectorTermsGiveTheDecodedMatches) {
  auto rec = replay::Recording::open(make_recording("plan_matches.db"));
  ASSERT_TRUE(rec) << rec.error();
  auto ids = [&](const std::string& q) {
    auto f = replay::parse_query(q);
    EXPECT_TRUE(f) << f.error();
    std::vector<uint64_t> out;
    auto r = rec->for_each_event(*f, [&](const replay::Event& e) {
      out.push_back(e.rec.id);
      return true;
    });
    EXPECT_TRUE(r) << r.error();
    return out;
  };
  // #3 is the EPT violation whose IDT-vectoring info names IRQ 0x20 (SDM Vol. 3C "Information
  // for VM Exits That Occur During Event Delivery"); its own exit interruption info is invalid.
  EXPECT_EQ(ids("reason:EPT_VIOLATION vector:0x20"), std::vector<uint64_t>{3});
  EXPECT_EQ(ids("reason:EPT_VIOLATION vector:0x21"), std::vector<uint64_t>{});
  EXPECT_EQ(ids("reason:IO_INSTRUCTION"), std::vector<uint64_t>{11});
  EXPECT_EQ(ids("reason:30 vcpu:1 level:2"), std::vector<uint64_t>{11});  // 30 = I/O instruction
  EXPECT_EQ(ids("vector:0x21"), (std::vector<uint64_t>{7, 8}));
  EXPECT_EQ(ids("vector:14"), (std::vector<uint64_t>{9, 10}));
}

// Every statement load_chain_and_links runs on events, planned again: SEARCH only, never a SCAN.
TEST(QueryPlanTest, OneChainReadsNoTableFromEndToEnd) {
  auto rec = replay::Recording::open(make_recording("plan_chain.db"));
  ASSERT_TRUE(rec) << rec.error();
  std::vector<std::string> statements;
  sqlite3_trace_v2(
      rec->db().get(), SQLITE_TRACE_STMT,
      [](unsigned, void* ctx, void* p, void*) {
        char* sql = sqlite3_expanded_sql(static_cast<sqlite3_stmt*>(p));
        if (sql) static_cast<std::vector<std::string>*>(ctx)->push_back(sql);
        sqlite3_free(sql);
        return 0;
      },
      &statements);
  auto chains = replay::load_chain_and_links(*rec, 7);  // IRQ 0x21, interrupted by the #PF (#9)
  sqlite3_trace_v2(rec->db().get(), 0, nullptr, nullptr);
  ASSERT_TRUE(chains) << chains.error();
  ASSERT_EQ(chains->size(), 2u);
  EXPECT_EQ((*chains)[0].id, 7u);
  EXPECT_EQ((*chains)[0].interrupted_by, std::vector<uint64_t>{9});
  EXPECT_EQ((*chains)[1].id, 9u);
  EXPECT_EQ((*chains)[1].interrupts_chain, 7u);
  ASSERT_FALSE(statements.empty());
  for (const std::string& sql : statements) {
    if (sql.find("FROM sqlite_master") != std::string::npos) continue;  // the schema's few rows: are the indexes there?
    const std::string p = plan(rec->db(), sql);
    EXPECT_EQ(p.find("SCAN"), std::string::npos) << sql << "\n" << p;
    // Nor a search on the kind index alone for an effect's kinds (every exit and raise: 16 s at
    // 100 M events), where the chain's own ids (cause / origin) narrow it to a few rows.
    EXPECT_EQ(p.find("MULTI-INDEX OR"), std::string::npos) << sql << "\n" << p;
  }
}

// `stats` on a finished recording (issue #21): the exit pass reads the events_exit_entry
// covering index (schema/indexes.sql) from end to end or from the window's first id, never
// the events table; the chain figures come from the chains table's stored rows (schema v3), so
// no statement reads chain members through the origin index. With a progress callback every
// statement runs on the traced connection (without one the chains are read on a second).
TEST(QueryPlanTest, StatsReadsTheExitIndexAndTheChainsTableOnly) {
  auto rec = replay::Recording::open(make_recording("plan_stats.db"));
  ASSERT_TRUE(rec) << rec.error();
  struct View {
    const char* name;
    replay::StatsOptions opt;
  };
  std::vector<View> views(5);
  views[0].name = "by reason";
  views[1].name = "by msr";
  views[1].opt.by = replay::StatsBy::Msr;
  views[2].name = "by port, vcpu 1";
  views[2].opt.by = replay::StatsBy::Port;
  views[2].opt.vcpu = 1;
  views[3].name = "from 3 ns";
  views[3].opt.from_ns = 3;
  views[4].name = "level 2";
  views[4].opt.level = 2;
  for (View& v : views) {
    v.opt.progress = [](double) { return true; };
    std::vector<std::string> statements;
    sqlite3_trace_v2(
        rec->db().get(), SQLITE_TRACE_STMT,
        [](unsigned, void* ctx, void* p, void*) {
          char* sql = sqlite3_expanded_sql(static_cast<sqlite3_stmt*>(p));
          if (sql) static_cast<std::vector<std::string>*>(ctx)->push_back(sql);
          sqlite3_free(sql);
          return 0;
        },
        &statements);
    auto st = replay::compute_stats(*rec, v.opt);
    sqlite3_trace_v2(rec->db().get(), 0, nullptr, nullptr);
    ASSERT_TRUE(st) << st.error();
    EXPECT_TRUE(st->notice.empty()) << v.name << ": " << st->notice;
    // The recording's three chains are on vCPU 0 at L1: the vCPU 1 and L2 views count none.
    EXPECT_EQ(st->chains, (v.opt.vcpu || v.opt.level) ? 0u : 3u) << v.name;
    int exit_pass = 0, chain_rows = 0;
    for (const std::string& sql : statements) {
      if (sql.find("sqlite_master") != std::string::npos) continue;
      const std::string p = plan(rec->db(), sql);
      if (p.find("COVERING INDEX events_exit_entry") != std::string::npos) ++exit_pass;
      if (p.find("SCAN chains") != std::string::npos) ++chain_rows;
      EXPECT_EQ(p.find("events_origin"), std::string::npos) << v.name << ": " << sql << "\n" << p;
      if (p.find("SCAN events") != std::string::npos) {
        EXPECT_NE(p.find("SCAN events USING COVERING INDEX events_exit_entry"), std::string::npos)
            << v.name << ": " << sql << "\n"
            << p;
      }
    }
    EXPECT_EQ(exit_pass, 1) << v.name;
    EXPECT_EQ(chain_rows, 1) << v.name;
  }
}

}  // namespace
}  // namespace es
