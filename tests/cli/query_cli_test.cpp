// `events --query` / options and `chains --chain N` read through SQLite's indexes (issue #18).
// Their output must be what the whole-recording reads gave before: on real recordings of
// built-in scenarios (made by `exitscope record`) and imported traces (`exitscope import`),
//  - every query is answered by the CLI and compared with the old semantics computed here by
//    reading every event and filtering in C++ (kind, vcpu, level, origin, time window, then
//    replay::matches_decoded for reasons and vectors);
//  - every chain printed by `chains --chain N` is compared with its section of the whole
//    `chains` listing (load_chains, unchanged), and load_chain_and_links with load_chains.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "hv/arch/exit_reason.h"
#include "hv/arch/svm.h"
#include "replay/chains.h"
#include "replay/format.h"
#include "replay/names.h"
#include "replay/query.h"
#include "replay/recording.h"
#include "tests/support/cli_run.h"

namespace es {
namespace {

using test::CliRun;

struct Source {
  std::string name;  // test label
  std::string args;  // after `exitscope record` / `import`
  bool import = false;
};

void PrintTo(const Source& s, std::ostream* os) { *os << s.name; }

// Scenarios whose chains cover the outcomes and links (reinjection, #DF, triple fault, serial
// handling, nested reflection, NMI collapse, dropped by policy) and imported VMX / SVM traces.
const std::vector<Source>& sources() {
  static const std::vector<Source> s = {
      {"irq_ept_reinject", "--scenario irq-ept-reinject"},
      {"pf_during_irq", "--scenario pf-during-irq"},
      {"double_fault", "--scenario double-fault"},
      {"triple_fault", "--scenario triple-fault"},
      {"nested_irq_vectoring", "--scenario nested-irq-vectoring"},
      {"nested_exception_reflect", "--scenario nested-exception-reflect"},
      {"sdm_nmi_collapse", "--scenario sdm-nmi-collapse"},
      {"sdm_gp_pf_serial", "--scenario sdm-gp-pf-serial"},
      {"policy_drop", "--scenario exception-vectoring-policy --policy drop-hw-exceptions"},
      {"timer_irq", "--scenario timer-irq --arg 0 --max-exits 3000"},
      {"import_nested", std::string(ES_SOURCE_DIR) + "/tests/data/import/nested.txt", true},
      {"import_svm", std::string(ES_SOURCE_DIR) + "/tests/data/import/svm.txt", true},
      {"import_livelock", std::string(ES_SOURCE_DIR) + "/tests/data/import/livelock.txt", true},
  };
  return s;
}

std::string make(const Source& src) {
  std::filesystem::create_directories(ES_TEST_TMPDIR);
  const std::string db = test::process_tmp("query_" + src.name + ".db");
  const CliRun r = src.import ? test::run_cli("import '" + src.args + "' -o '" + db + "' --force")
                              : test::run_cli("record " + src.args + " --quiet -o '" + db + "' --force");
  EXPECT_EQ(r.code, 0) << src.name << ": " << r.err;
  return db;
}

// What `events` printed before: every event read in id order, each filter term checked here.
std::string old_events(replay::Recording& rec, const replay::EventFilter& f) {
  std::string out;
  // A decision is decoded by the exit it answered (EMULATE port=...), found among all events.
  replay::CauseExits causes;
  auto r = rec.for_each_event({}, [&](const replay::Event& ev) {
    const es_record& e = ev.rec;
    causes.see(ev);
    if (f.kind && e.kind != *f.kind) return true;
    if (f.decision && e.kind != ES_KIND_DECISION) return true;
    if (f.vcpu && e.vcpu != *f.vcpu) return true;
    if (f.level && e.level != *f.level) return true;
    if (f.chain && e.origin != *f.chain) return true;
    if (f.from_ns && e.time_ns < *f.from_ns) return true;
    if (f.to_ns && e.time_ns > *f.to_ns) return true;
    if (!replay::matches_decoded(f, e)) return true;
    out += replay::format_event(ev, causes.cause_of(ev)) + "\n";
    return true;
  });
  EXPECT_TRUE(r) << r.error();
  return out;
}

std::string hex(uint64_t v) {
  std::ostringstream s;
  s << "0x" << std::hex << v;
  return s.str();
}

// Queries built from what the recording holds, so each one matches something (and a few
// that match nothing): every kind, exit reason (by name and number), decision, vector, vCPU,
// level, a chain, a time window, and combinations.
std::vector<std::string> queries_for(replay::Recording& rec) {
  std::set<std::string> q;
  uint64_t first = UINT64_MAX, last = 0;
  auto r = rec.for_each_event({}, [&](const replay::Event& ev) {
    const es_record& e = ev.rec;
    first = std::min<uint64_t>(first, e.time_ns);
    last = std::max<uint64_t>(last, e.time_ns);
    const std::string kind(replay::kind_name(e.kind));
    if (!kind.empty()) q.insert("kind:" + kind);
    q.insert("vcpu:" + std::to_string(e.vcpu));
    q.insert("level:" + std::to_string(e.level));
    if (e.kind == ES_KIND_VM_EXIT || e.kind == ES_KIND_NESTED_EXIT) {
      const bool svm = (e.flags & ES_FLAG_SVM) != 0;
      const std::string name(svm ? arch::svm_exit_name(e.reason)
                                 : arch::exit_reason_name(arch::ExitReason(e.reason).basic_number()));
      if (!name.empty() && name.find(' ') == std::string::npos) {
        q.insert("reason:" + name);
        q.insert("reason:" + name + " kind:" + kind + " vcpu:" + std::to_string(e.vcpu));
      }
      q.insert("reason:" + std::to_string(svm ? e.reason : arch::ExitReason(e.reason).basic_number()));
    }
    if (e.kind == ES_KIND_DECISION) {
      const std::string name(replay::decision_name(e.reason));
      if (!name.empty()) q.insert("reason:" + name);
      q.insert("reason:" + std::to_string(e.reason));
    }
    if (e.intr_info & 0x80000000u) q.insert("vector:" + hex(e.intr_info & 0xff));
    if (e.idt_vectoring_info & 0x80000000u) {
      q.insert("vector:" + hex(e.idt_vectoring_info & 0xff));
      q.insert("reason:" + std::to_string(arch::ExitReason(e.reason).basic_number()) +
               " vector:" + hex(e.idt_vectoring_info & 0xff));
    }
    if (e.origin && q.size() < 400) q.insert("chain:" + std::to_string(e.origin));
    return true;
  });
  EXPECT_TRUE(r) << r.error();
  if (last >= first) {
    const uint64_t third = (last - first) / 3;
    q.insert("from:" + std::to_string(first + third) + " to:" + std::to_string(last - third));
    q.insert("from:" + std::to_string(first + third) + " reason:EPT_VIOLATION vector:0x20");
  }
  q.insert("reason:EPT_VIOLATION vector:0x20");
  q.insert("reason:TRIPLE_FAULT");
  q.insert("reason:npf");
  q.insert("reason:0 kind:raise");
  q.insert("vector:0xfe");
  return {q.begin(), q.end()};
}

class QueryCli : public ::testing::TestWithParam<Source> {};

TEST_P(QueryCli, EventsQueryPrintsWhatTheWholeRecordingScanPrinted) {
  const std::string db = make(GetParam());
  auto rec = replay::Recording::open(db);
  ASSERT_TRUE(rec) << rec.error();
  auto drops = rec->drop_counts();
  ASSERT_TRUE(drops);
  ASSERT_EQ(drops->total(), 0u) << "a '#' header line would need skipping";
  size_t matched = 0;
  for (const std::string& q : queries_for(*rec)) {
    auto f = replay::parse_query(q);
    ASSERT_TRUE(f) << q << ": " << f.error();
    const std::string want = old_events(*rec, *f);
    const CliRun got = test::run_cli("events '" + db + "' --query '" + q + "'");
    ASSERT_EQ(got.code, 0) << q << ": " << got.err;
    EXPECT_EQ(got.out, want) << "query '" << q << "' on " << GetParam().name;
    if (want.empty()) {
      EXPECT_NE(got.err.find("no event matches"), std::string::npos) << q;
    }
    matched += !want.empty();
  }
  EXPECT_GT(matched, 5u) << "the queries should mostly match something";
}

// The chain sections of the whole listing, by chain id.
std::map<uint64_t, std::string> sections(const std::string& all) {
  std::map<uint64_t, std::string> out;
  size_t pos = 0;
  while ((pos = all.find("chain ", pos)) != std::string::npos) {
    if (pos != 0 && all[pos - 1] != '\n') {
      ++pos;
      continue;
    }
    const size_t end = all.find("\n\n", pos);
    const std::string text = all.substr(pos, end == std::string::npos ? std::string::npos : end + 2 - pos);
    out[std::stoull(text.substr(6))] = text;
    if (end == std::string::npos) break;
    pos = end + 2;
  }
  return out;
}

TEST_P(QueryCli, ChainsChainNPrintsItsSectionOfTheWholeListing) {
  const std::string db = make(GetParam());
  const CliRun all = test::run_cli("chains '" + db + "'");
  ASSERT_EQ(all.code, 0) << all.err;
  const auto by_id = sections(all.out);
  ASSERT_FALSE(by_id.empty()) << all.out;
  size_t checked = 0;
  for (const auto& [id, text] : by_id) {
    if (checked++ >= 60) break;  // timer-irq has thousands of alike chains
    const CliRun one = test::run_cli("chains '" + db + "' --chain " + std::to_string(id));
    ASSERT_EQ(one.code, 0) << one.err;
    EXPECT_EQ(one.out, text) << "chain " << id << " of " << GetParam().name;
  }
  // Not a chain: the same sentence and exit code as before.
  const CliRun none = test::run_cli("chains '" + db + "' --chain 0");
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.err.find("no chain 0 in"), std::string::npos) << none.err;
}

TEST_P(QueryCli, LoadChainAndLinksDecidesAsLoadChains) {
  const std::string db = make(GetParam());
  auto rec = replay::Recording::open(db);
  ASSERT_TRUE(rec) << rec.error();
  auto all = replay::load_chains(*rec);
  ASSERT_TRUE(all) << all.error();
  ASSERT_FALSE(all->empty());
  std::map<uint64_t, const replay::Chain*> by_id;
  for (const auto& c : *all) by_id[c.id] = &c;
  auto ids = [](const std::vector<replay::Event>& v) {
    std::vector<uint64_t> out;
    for (const auto& e : v) out.push_back(e.rec.id);
    return out;
  };
  size_t linked = 0;
  for (const auto& want : *all) {
    auto got = replay::load_chain_and_links(*rec, want.id);
    ASSERT_TRUE(got) << got.error();
    ASSERT_FALSE(got->empty()) << want.id;
    for (const replay::Chain& c : *got) {
      const replay::Chain& w = *by_id.at(c.id);
      EXPECT_EQ(replay::to_string(c.outcome), replay::to_string(w.outcome)) << c.id;
      EXPECT_EQ(c.outcome_event, w.outcome_event) << c.id;
      EXPECT_EQ(ids(c.events), ids(w.events)) << c.id;
      EXPECT_EQ(c.event_word, w.event_word) << c.id;
      EXPECT_EQ(c.root_found, w.root_found) << c.id;
      EXPECT_EQ(c.inferred, w.inferred) << c.id;
      EXPECT_EQ(c.interrupts_chain, w.interrupts_chain) << c.id;
      EXPECT_EQ(c.interrupted_by, w.interrupted_by) << c.id;
      EXPECT_EQ(c.interruptions, w.interruptions) << c.id;
      EXPECT_EQ(c.decisions, w.decisions) << c.id;
    }
    EXPECT_EQ(got->front().id, want.id);
    // The chains it names follow it: the one it interrupts and its interrupters.
    std::set<uint64_t> named(want.interrupted_by.begin(), want.interrupted_by.end());
    if (want.interrupts_chain) named.insert(want.interrupts_chain);
    std::set<uint64_t> returned;
    for (size_t i = 1; i < got->size(); ++i) returned.insert((*got)[i].id);
    EXPECT_EQ(returned, named) << want.id;
    linked += !named.empty();
  }
  auto none = replay::load_chain_and_links(*rec, 0);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  RecordProperty("linked_chains", static_cast<int>(linked));
}

INSTANTIATE_TEST_SUITE_P(Recordings, QueryCli, ::testing::ValuesIn(sources()),
                         [](const ::testing::TestParamInfo<Source>& i) { return i.param.name; });

// The chains these scenarios link must be among those compared (the comparison above would
// pass vacuously on recordings without links): pf-during-irq's #PF interrupts the IRQ's delivery
// (SDM Vol. 3A 6.15 Table 6-5, handled serially), double-fault's #NP interrupts the #GP.
TEST(QueryCliLinks, ScenariosWithLinkedChainsAreCovered) {
  for (const char* name : {"pf_during_irq", "double_fault"}) {
    const Source* src = nullptr;
    for (const auto& s : sources())
      if (s.name == name) src = &s;
    ASSERT_TRUE(src);
    const std::string db = make(*src);
    auto rec = replay::Recording::open(db);
    ASSERT_TRUE(rec) << rec.error();
    auto all = replay::load_chains(*rec);
    ASSERT_TRUE(all) << all.error();
    bool any = false;
    for (const auto& c : *all) any = any || c.interrupts_chain != 0;
    EXPECT_TRUE(any) << name << " links no chain to another";
  }
}

}  // namespace
}  // namespace es

namespace es {
namespace {

// A recording whose writer never finished has no indexes: the narrow reads fall back to
// whole reads there, with the same output as on the indexed file.
TEST(QueryCliNoIndexes, SameOutputWithoutTheIndexes) {
  const Source* src = nullptr;
  for (const auto& s : sources())
    if (s.name == "pf_during_irq") src = &s;
  ASSERT_TRUE(src);
  const std::string db = make(*src);
  const std::string bare = test::process_tmp("query_no_indexes.db");
  std::filesystem::copy_file(db, bare, std::filesystem::copy_options::overwrite_existing);
  {
    auto w = db::Db::open(bare, SQLITE_OPEN_READWRITE);
    ASSERT_TRUE(w) << w.error();
    // Every index exitscope builds (events_time only for a recording out of time order, which
    // this is not) and the time-order fact, which an unfinished recording has not either.
    ASSERT_TRUE(
        w->exec("DROP INDEX events_origin; DROP INDEX events_kind_reason; DROP INDEX IF EXISTS events_time; "
                "DROP INDEX events_vcpu; DROP INDEX events_cause; DROP INDEX events_exit_entry; "
                "DROP TABLE event_order;"));
  }
  for (const std::string q : {"reason:EPT_VIOLATION vector:0x20", "reason:14", "vector:14", "kind:decision vcpu:0",
                              "reason:INJECT_REINJECTED"}) {
    const CliRun a = test::run_cli("events '" + db + "' --query '" + q + "'");
    const CliRun b = test::run_cli("events '" + bare + "' --query '" + q + "'");
    EXPECT_EQ(a.code, b.code) << q;
    EXPECT_EQ(a.out, b.out) << q;
  }
  const CliRun all = test::run_cli("chains '" + db + "'");
  ASSERT_EQ(all.code, 0);
  const auto by_id = sections(all.out);
  ASSERT_FALSE(by_id.empty());
  for (const auto& [id, text] : by_id) {
    const CliRun b = test::run_cli("chains '" + bare + "' --chain " + std::to_string(id));
    EXPECT_EQ(b.code, 0) << b.err;
    EXPECT_EQ(b.out, text) << "chain " << id;
  }
}

}  // namespace
}  // namespace es
