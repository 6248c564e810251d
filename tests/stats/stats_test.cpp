// `exitscope stats` through the real binary on real recordings: built-in scenarios recorded
// with `exitscope record`, and KVM traces imported with `exitscope import`. The expected figures
// are not taken from replay/: counts from `exitscope info`, times from SQL written here over the
// events table (an exit's time runs to the next VM entry of the same vCPU and level by id, as
// KVM's kvm_exit -> kvm_entry; median and p99 by nearest rank).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "schema/event_row.h"
#include "schema/sqlite_db.h"
#include "tests/export/mini_json.h"
#include "tests/support/cli_run.h"
#include "tests/support/tmp.h"

namespace es {
namespace {

using test::CliRun;
using test::run_cli;
using Json = test::json::Value;

// ---- independent SQL over the recording ----

using SqlRow = std::vector<std::optional<int64_t>>;

std::vector<SqlRow> sql(const std::string& path, const std::string& query) {
  sqlite3* db = nullptr;
  std::vector<SqlRow> rows;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "cannot open " << path;
    sqlite3_close(db);
    return rows;
  }
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, query.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << sqlite3_errmsg(db) << "\n" << query;
    sqlite3_close(db);
    return rows;
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    SqlRow r;
    for (int c = 0; c < sqlite3_column_count(st); ++c)
      r.push_back(sqlite3_column_type(st, c) == SQLITE_NULL ? std::nullopt
                                                            : std::optional<int64_t>(sqlite3_column_int64(st, c)));
    rows.push_back(std::move(r));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rows;
}

// Per (level, reason, svm) of exits of kind `exit_kind`: count, timed, total, min, max, mean,
// median, p99, where an exit's time is the time of the next `entry_kind` record (by id) of the
// same vCPU and level minus its own. `where` narrows the exits (SQL over x).
std::string latency_sql(int exit_kind, int entry_kind, const std::string& where = "1") {
  const std::string k = std::to_string(exit_kind), e = std::to_string(entry_kind);
  return "WITH d AS (SELECT x.level AS level, x.reason AS reason, (x.flags & 8) != 0 AS svm, "
         "  (SELECT n.time_ns FROM events n WHERE n.kind = " +
         e +
         " AND n.vcpu = x.vcpu AND n.level = x.level AND n.id > x.id ORDER BY n.id LIMIT 1) - x.time_ns AS d "
         "  FROM events x WHERE x.kind = " +
         k + " AND (" + where +
         ")), "
         "r AS (SELECT level, reason, svm, d, ROW_NUMBER() OVER (PARTITION BY level, reason, svm ORDER BY d) AS rn, "
         "  COUNT(d) OVER (PARTITION BY level, reason, svm) AS n FROM d WHERE d IS NOT NULL) "
         "SELECT g.level, g.reason, g.svm, g.cnt, "
         "  (SELECT COUNT(*) FROM r WHERE r.level = g.level AND r.reason = g.reason AND r.svm = g.svm), "
         "  (SELECT SUM(d) FROM r WHERE r.level = g.level AND r.reason = g.reason AND r.svm = g.svm), "
         "  (SELECT MIN(d) FROM r WHERE r.level = g.level AND r.reason = g.reason AND r.svm = g.svm), "
         "  (SELECT MAX(d) FROM r WHERE r.level = g.level AND r.reason = g.reason AND r.svm = g.svm), "
         "  (SELECT SUM(d) / COUNT(*) FROM r WHERE r.level = g.level AND r.reason = g.reason AND r.svm = g.svm), "
         "  (SELECT d FROM r WHERE r.level = g.level AND r.reason = g.reason AND r.svm = g.svm AND rn = (n * 50 + 99) "
         "/ 100), "
         "  (SELECT d FROM r WHERE r.level = g.level AND r.reason = g.reason AND r.svm = g.svm AND rn = (n * 99 + 99) "
         "/ 100) "
         "FROM (SELECT level, reason, svm, COUNT(*) AS cnt FROM d GROUP BY level, reason, svm) g";
}

std::optional<int64_t> num(const Json* v) {
  if (!v || v->type == Json::Type::Null) return std::nullopt;
  return static_cast<int64_t>(std::stoll(v->text));
}

Json parse(const std::string& text) {
  try {
    return test::json::parse(text);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "stats --format json is not JSON: " << e.what() << "\n" << text;
    return {};
  }
}

// The json rows of exits / nested_exits by (level, reason, svm).
using Key = std::tuple<int64_t, int64_t, bool>;
std::map<Key, const Json*> rows_by_reason(const Json& doc, const char* table) {
  std::map<Key, const Json*> out;
  const Json* t = doc.find(table);
  if (!t || !t->find("rows")) {
    ADD_FAILURE() << "no " << table << " rows";
    return out;
  }
  for (const Json& r : t->find("rows")->items)
    out[{*num(r.find("level")), *num(r.find("reason")), r.find("svm")->b}] = &r;
  return out;
}

// Compares the json table against the SQL figures, row by row.
void expect_table_matches_sql(const std::string& db, const Json& doc, const char* table, int exit_kind, int entry_kind,
                              const std::string& where = "1") {
  const auto rows = rows_by_reason(doc, table);
  const auto expect = sql(db, latency_sql(exit_kind, entry_kind, where));
  ASSERT_FALSE(expect.empty()) << "the recording has no exits of kind " << exit_kind;
  EXPECT_EQ(rows.size(), expect.size()) << table;
  for (const SqlRow& e : expect) {
    const Key key{*e[0], *e[1], *e[2] != 0};
    auto it = rows.find(key);
    ASSERT_NE(it, rows.end()) << table << ": no row for level " << *e[0] << " reason " << *e[1];
    const Json& r = *it->second;
    const std::string what = std::string(table) + " " + r.find("key")->text;
    EXPECT_EQ(num(r.find("count")), e[3]) << what;
    EXPECT_EQ(num(r.find("timed")), e[4]) << what;
    EXPECT_EQ(num(r.find("time_ns")), *e[4] ? e[5] : std::nullopt) << what;
    EXPECT_EQ(num(r.find("min_ns")), e[6]) << what;
    EXPECT_EQ(num(r.find("max_ns")), e[7]) << what;
    EXPECT_EQ(num(r.find("mean_ns")), e[8]) << what;
    EXPECT_EQ(num(r.find("median_ns")), e[9]) << what;
    EXPECT_EQ(num(r.find("p99_ns")), e[10]) << what;
  }
}

// `exitscope info`'s "exits by reason" section: name -> count.
std::map<std::string, uint64_t> info_exit_counts(const std::string& db) {
  const CliRun r = run_cli("info --no-console '" + db + "'");
  EXPECT_EQ(r.code, 0) << r.err;
  std::map<std::string, uint64_t> out;
  std::istringstream in(r.out);
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line == "exits by reason:") {
      inside = true;
      continue;
    }
    if (!inside) continue;
    if (line.empty()) break;
    if (line == "  (none)") continue;
    const size_t last = line.find_last_of(' ');
    std::string name = line.substr(2, last - 2);
    name.erase(name.find_last_not_of(' ') + 1);
    out[name] += std::stoull(line.substr(last + 1));
  }
  return out;
}

class StatsTest : public ::testing::Test {
 protected:
  static std::string record(const std::string& scenario) {
    const std::string path = test::process_tmp(scenario + ".db");
    const CliRun r = run_cli("record --scenario " + scenario + " -o '" + path + "'");
    EXPECT_EQ(r.code, 0) << r.err;
    return path;
  }
  static std::string import(const std::string& file) {
    const std::string path = test::process_tmp(std::filesystem::path(file).stem().string() + ".db");
    const CliRun r =
        run_cli("import '" + std::string(ES_SOURCE_DIR) + "/tests/data/import/" + file + "' -o '" + path + "'");
    EXPECT_EQ(r.code, 0) << r.err;
    return path;
  }
  static Json stats_json(const std::string& db, const std::string& args = "") {
    const CliRun r = run_cli("stats '" + db + "' --format json " + args);
    EXPECT_EQ(r.code, 0) << r.err;
    return parse(r.out);
  }
};

// ---- counts ----

TEST_F(StatsTest, CountsEqualInfoOnHvImportedVmxAndSvm) {
  for (const std::string& db :
       {record("timer-irq"), record("irq-ept-reinject"), import("vmx_614.txt"), import("svm_gp_msr_2019.txt")}) {
    const auto info = info_exit_counts(db);
    ASSERT_FALSE(info.empty()) << db;
    const Json doc = stats_json(db);
    std::map<std::string, uint64_t> stats;
    for (const Json& r : doc.find("exits")->find("rows")->items)
      stats[r.find("key")->text] += static_cast<uint64_t>(*num(r.find("count")));
    EXPECT_EQ(stats, info) << db;
  }
}

// ---- times against SQL ----

TEST_F(StatsTest, ExitToEntryTimesEqualIndependentSqlOnHvRecording) {
  const std::string db = record("timer-irq");
  expect_table_matches_sql(db, stats_json(db), "exits", 1, 2);
}

TEST_F(StatsTest, ExitToEntryTimesEqualIndependentSqlOnImportedTraces) {
  for (const std::string& db : {import("vmx_614.txt"), import("svm_gp_msr_2019.txt"), import("advancing.txt")})
    expect_table_matches_sql(db, stats_json(db), "exits", 1, 2);
}

// Nested exits (L2 -> L1) are a table of their own, timed to L1's next nested entry of L2.
TEST_F(StatsTest, NestedExitsSeparateAndTimedToNextNestedEntry) {
  const std::string db = record("nested-exception-reflect");
  const Json doc = stats_json(db);
  expect_table_matches_sql(db, doc, "nested_exits", 6, 12);
  expect_table_matches_sql(db, doc, "exits", 1, 2);
  EXPECT_GT(*num(doc.find("nested_exits")->find("count")), 0);
  // --level 2: L2's exits only, the same figures as SQL restricted to level 2.
  expect_table_matches_sql(db, stats_json(db, "--level 2"), "exits", 1, 2, "x.level = 2");
}

TEST_F(StatsTest, VcpuFilterAndTimeWindowSelectTheSameExitsAsSql) {
  const std::string db = record("timer-irq");
  // The window: the middle half of the run.
  const auto ext = sql(db, "SELECT MIN(time_ns), MAX(time_ns) FROM events");
  const int64_t from = *ext[0][0] + (*ext[0][1] - *ext[0][0]) / 4, to = *ext[0][0] + 3 * (*ext[0][1] - *ext[0][0]) / 4;
  const Json doc = stats_json(db, "--vcpu 0 --from " + std::to_string(from) + " --to " + std::to_string(to));
  expect_table_matches_sql(db, doc, "exits", 1, 2,
                           "x.vcpu = 0 AND x.time_ns BETWEEN " + std::to_string(from) + " AND " + std::to_string(to));
  const Json none = stats_json(db, "--vcpu 7");
  EXPECT_EQ(*num(none.find("exits")->find("count")), 0);
}

TEST_F(StatsTest, ReasonSelectsOneExitReason) {
  const std::string db = record("timer-irq");
  const Json doc = stats_json(db, "--reason HLT");
  const auto& rows = doc.find("exits")->find("rows")->items;
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].find("key")->text, "HLT");
  EXPECT_EQ(static_cast<uint64_t>(*num(rows[0].find("count"))), info_exit_counts(db).at("HLT"));
  EXPECT_EQ(rows[0].find("count_pct")->text, "100.00");
  // SVM names on an AMD recording: KVM's "msr" (exit code 0x7c, APM Vol. 2 Appendix C).
  const std::string svm = import("svm_gp_msr_2019.txt");
  const Json msr = stats_json(svm, "--reason msr");
  const auto& svm_rows = msr.find("exits")->find("rows")->items;
  ASSERT_EQ(svm_rows.size(), 1u);
  EXPECT_EQ(svm_rows[0].find("reason")->text, "124");
  EXPECT_TRUE(svm_rows[0].find("svm")->b);
  EXPECT_EQ(static_cast<uint64_t>(*num(svm_rows[0].find("count"))), info_exit_counts(svm).at("msr"));
}

// I/O exits by port: VMX exit qualification [31:16] (SDM Vol. 3C Table 28-5); EPT violations by
// GPA page (SDM Vol. 3C 28.2.1: the guest-physical address field).
TEST_F(StatsTest, PortAndPageViewsEqualSql) {
  const std::string db = record("timer-irq");
  const Json ports = stats_json(db, "--by port");
  std::map<int64_t, int64_t> got;
  for (const Json& r : ports.find("exits")->find("rows")->items) got[*num(r.find("value"))] += *num(r.find("count"));
  std::map<int64_t, int64_t> want;
  for (const SqlRow& r : sql(db,
                             "SELECT (qualification >> 16) & 65535, COUNT(*) FROM events WHERE kind = 1 AND "
                             "(reason & 65535) = 30 AND (flags & 8) = 0 GROUP BY 1"))
    want[*r[0]] = *r[1];
  EXPECT_FALSE(want.empty());
  EXPECT_EQ(got, want);

  const Json pages = stats_json(db, "--by page");
  got.clear();
  want.clear();
  for (const Json& r : pages.find("exits")->find("rows")->items) got[*num(r.find("value"))] += *num(r.find("count"));
  for (const SqlRow& r : sql(db,
                             "SELECT guest_phys & ~4095, COUNT(*) FROM events WHERE kind = 1 AND "
                             "(reason & 65535) IN (48, 49) GROUP BY 1"))
    want[*r[0]] = *r[1];
  EXPECT_FALSE(want.empty());
  EXPECT_EQ(got, want);
}

// kvm_msr names the MSR of an SVM MSR intercept (EXITINFO1 0 = RDMSR, APM Vol. 2 15.11).
TEST_F(StatsTest, MsrViewNamesTheMsrFromKvmMsr) {
  const std::string db = import("svm_gp_msr_2019.txt");
  const CliRun r = run_cli("stats '" + db + "' --by msr");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto msrs = sql(db, "SELECT DISTINCT qualification FROM events WHERE kind = 11 AND reason = 260");
  ASSERT_FALSE(msrs.empty());
  char key[32];
  std::snprintf(key, sizeof key, "msr 0x%llx", static_cast<unsigned long long>(*msrs[0][0]));
  EXPECT_NE(r.out.find(key), std::string::npos) << r.out;
}

// perf kvm stat's mmio view (issue #21): exits KVM emulated as MMIO, by address and direction, from
// a real kvm_amd trace (the test bed's mmio scenario; its header says what KVM does). The expected
// table comes from SQL over the imported events: for each exit, the first kvm_mmio record
// (ES_CONTEXT_MMIO 0x107: guest_phys = GPA, intr_error 2 = write) of its vCPU before the next entry.
TEST_F(StatsTest, MmioViewCountsTheExitsEmulatedAsMmioByAddress) {
  const std::string db = import("testbed_svm_6_1_mmio.txt");
  const Json v = stats_json(db, "--by mmio");
  std::map<std::string, int64_t> got;
  for (const Json& r : v.find("exits")->find("rows")->items) got[r.find("key")->text] += *num(r.find("count"));
  std::map<std::string, int64_t> want;
  for (const SqlRow& r : sql(db,
                             "SELECT m.guest_phys, m.intr_error FROM events x JOIN events m ON m.id = ("
                             " SELECT min(c.id) FROM events c WHERE c.kind = 11 AND c.reason = 263 AND c.vcpu = x.vcpu"
                             " AND c.id > x.id AND c.id < coalesce((SELECT min(e.id) FROM events e WHERE e.kind = 2"
                             " AND e.vcpu = x.vcpu AND e.id > x.id), 1 << 62)) WHERE x.kind = 1")) {
    char key[48];
    std::snprintf(key, sizeof key, "mmio 0x%llx %s", static_cast<unsigned long long>(*r[0]), *r[1] == 2 ? "wr" : "rd");
    ++want[key];
  }
  // What the header says KVM did, before either side is trusted.
  EXPECT_EQ(want, (std::map<std::string, int64_t>{{"mmio 0x20000 wr", 1}, {"mmio 0x20010 rd", 1}}));
  EXPECT_EQ(got, want);
  const CliRun bad = run_cli("stats '" + db + "' --by mmi");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("mmio"), std::string::npos) << bad.err;  // the list of views names it
}

// ---- formats agree ----

TEST_F(StatsTest, CsvAndJsonAndTextCarryTheSameFigures) {
  const std::string db = record("irq-ept-reinject");
  const Json doc = stats_json(db, "--histogram");
  const CliRun csv = run_cli("stats '" + db + "' --format csv --histogram");
  const CliRun text = run_cli("stats '" + db + "' --histogram");
  ASSERT_EQ(csv.code, 0) << csv.err;
  ASSERT_EQ(text.code, 0) << text.err;
  // CSV: exit rows by key, fields as in the header.
  std::istringstream in(csv.out);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line.rfind("section,level,key,value,count,", 0), 0u) << line;
  std::map<std::string, std::vector<std::string>> csv_exits;
  size_t histogram_rows = 0;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::string cur;
    bool quoted = false;
    for (char c : line) {
      if (c == '"')
        quoted = !quoted;
      else if (c == ',' && !quoted)
        f.push_back(std::exchange(cur, {}));
      else
        cur += c;
    }
    f.push_back(cur);
    ASSERT_EQ(f.size(), 17u) << line;
    if (f[0] == "exit") csv_exits[f[1] + " " + f[2]] = f;
    if (f[0] == "histogram") ++histogram_rows;
  }
  const auto& rows = doc.find("exits")->find("rows")->items;
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(csv_exits.size(), rows.size());
  auto us = [](const Json* v) {
    const int64_t ns = *num(v);
    return std::to_string(ns / 1000) + "." + std::string(3 - std::to_string(ns % 1000).size(), '0') +
           std::to_string(ns % 1000) + "us";
  };
  for (const Json& r : rows) {
    const std::string key = r.find("level")->text + " " + r.find("key")->text;
    ASSERT_TRUE(csv_exits.count(key)) << key;
    const auto& f = csv_exits[key];
    EXPECT_EQ(f[4], r.find("count")->text) << key;
    EXPECT_EQ(f[5], r.find("count_pct")->text) << key;
    EXPECT_EQ(f[7], r.find("time_ns")->text) << key;
    EXPECT_EQ(f[9], r.find("min_ns")->text) << key;
    EXPECT_EQ(f[10], r.find("max_ns")->text) << key;
    EXPECT_EQ(f[12], r.find("median_ns")->text) << key;
    EXPECT_EQ(f[13], r.find("p99_ns")->text) << key;
    // Text: the row of this level and reason shows the same count, share and times.
    std::istringstream t(text.out);
    bool found = false;
    while (std::getline(t, line)) {
      std::istringstream w(line);
      std::vector<std::string> tok;
      for (std::string s; w >> s;) tok.push_back(s);
      if (tok.size() != 11 || tok[0] != "L" + r.find("level")->text || tok[1] != r.find("key")->text) continue;
      found = true;
      EXPECT_EQ(tok[2], r.find("count")->text) << line;
      EXPECT_EQ(tok[3], r.find("count_pct")->text) << line;
      EXPECT_EQ(tok[4], us(r.find("time_ns"))) << line;
      EXPECT_EQ(tok[5], r.find("time_pct")->text) << line;
      EXPECT_EQ(tok[6], us(r.find("min_ns"))) << line;
      EXPECT_EQ(tok[7], us(r.find("max_ns"))) << line;
      EXPECT_EQ(tok[8], us(r.find("mean_ns"))) << line;
      EXPECT_EQ(tok[9], us(r.find("median_ns"))) << line;
      EXPECT_EQ(tok[10], us(r.find("p99_ns"))) << line;
      break;
    }
    EXPECT_TRUE(found) << key << "\n" << text.out;
  }
  EXPECT_EQ(histogram_rows, doc.find("histogram")->items.size());
  int64_t in_histogram = 0;
  for (const Json& b : doc.find("histogram")->items) in_histogram += *num(b.find("count"));
  EXPECT_EQ(in_histogram, *num(doc.find("exits")->find("timed")));
  EXPECT_NE(text.out.find("Exit-to-entry time histogram"), std::string::npos);
}

// The recording's path is the one string of the output a user chooses: quotes, backslashes and
// control bytes in it must still give valid JSON that reads back as the same path.
TEST_F(StatsTest, JsonEscapesTheRecordingPath) {
  const std::string db = record("timer-irq");
  const std::string odd = test::process_tmp("we\"ird\\na\tme.db");
  std::filesystem::copy_file(db, odd);
  const CliRun r = run_cli("stats '" + odd + "' --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  const Json doc = parse(r.out);
  ASSERT_NE(doc.find("recording"), nullptr);
  EXPECT_EQ(doc.find("recording")->text, odd);
}

// ---- chains ----

// IRQ 0x20's delivery in irq-ept-reinject hits an EPT violation (IDT-vectoring valid, SDM Vol.
// 3C 27.2.4), L0 reinjects it: one exit and one reinjection on the way. Raise -> delivery times
// equal the RAISE and DELIVERY rows of each chain.
TEST_F(StatsTest, ChainKindsCountExitsReinjectionsAndDeliveryTime) {
  const std::string db = record("irq-ept-reinject");
  const Json doc = stats_json(db);
  const Json* chains = doc.find("chains");
  ASSERT_NE(chains, nullptr);
  const Json* irq = nullptr;
  for (const Json& k : chains->find("kinds")->items)
    if (k.find("key")->text == "IRQ 0x20") irq = &k;
  ASSERT_NE(irq, nullptr) << "no IRQ 0x20 chains";
  // Chains rooted at a RAISE of IRQ 0x20 (VM-entry format: type 0 in [10:8], vector 0x20).
  const std::string roots = "SELECT id FROM events WHERE kind = 5 AND origin = id AND (intr_info & 2047) = 32";
  const auto n = sql(db, "SELECT COUNT(*) FROM (" + roots + ")");
  EXPECT_EQ(num(irq->find("count")), n[0][0]);
  const auto exits =
      sql(db, "SELECT COUNT(*) FROM events WHERE kind = 1 AND idt_vectoring_info & 2147483648 AND origin IN (" + roots +
                  ")");
  EXPECT_EQ(num(irq->find("exits")), exits[0][0]);
  EXPECT_GE(*num(irq->find("exits")), 1);
  const auto re = sql(db, "SELECT COUNT(*) FROM events WHERE kind = 4 AND reason = 6 AND origin IN (" + roots + ")");
  EXPECT_EQ(num(irq->find("reinjections")), re[0][0]);
  EXPECT_GE(*num(irq->find("reinjections")), 1);
  const auto t = sql(db,
                     "SELECT MIN(d), MAX(d), SUM(d) / COUNT(*), COUNT(*) FROM (SELECT "
                     "(SELECT MAX(v.time_ns) FROM events v WHERE v.kind = 3 AND v.origin = r.id) - r.time_ns AS d "
                     "FROM events r WHERE r.id IN (" +
                         roots + ")) WHERE d IS NOT NULL");
  EXPECT_EQ(num(irq->find("min_ns")), t[0][0]);
  EXPECT_EQ(num(irq->find("max_ns")), t[0][1]);
  EXPECT_EQ(num(irq->find("mean_ns")), t[0][2]);
  EXPECT_EQ(num(irq->find("delivered")), t[0][3]);
  // The slowest chain opens with `chains --chain N`.
  const auto& slowest = chains->find("slowest")->items;
  ASSERT_FALSE(slowest.empty());
  const CliRun open = run_cli("chains '" + db + "' --chain " + slowest[0].find("chain")->text);
  EXPECT_EQ(open.code, 0) << open.err;
  EXPECT_NE(open.out.find("IRQ 0x20"), std::string::npos) << open.out;
}

// --from / --to select chains by the time their event was raised (the root RAISE record), like
// exits by the time of the exit: a chain raised 1 ns before the window and delivered inside it
// is out; one raised at the window's last ns and delivered after it is in. Expected counts from
// SQL over the RAISE roots.
TEST_F(StatsTest, TimeWindowSelectsChainsByRaiseTime) {
  const std::string db = record("timer-irq");
  // Roots in time order with their delivery time (kind 5 = RAISE, 3 = DELIVERY).
  const auto roots = sql(db,
                         "SELECT r.time_ns, (SELECT MAX(v.time_ns) FROM events v WHERE v.kind = 3 AND v.origin = r.id) "
                         "FROM events r WHERE r.kind = 5 AND r.origin = r.id ORDER BY r.id");
  ASSERT_GE(roots.size(), 6u) << "timer-irq should raise several ticks";
  // Window: from 1 ns after the 2nd root's raise (its delivery is later, so it straddles the
  // edge) to the raise time of the 5th root (inclusive).
  ASSERT_TRUE(roots[1][1] && *roots[1][1] > *roots[1][0]) << "the 2nd chain's delivery should follow its raise";
  const int64_t from = *roots[1][0] + 1, to = *roots[4][0];
  const auto expect =
      sql(db,
          "SELECT COUNT(*), COUNT((SELECT MAX(v.time_ns) FROM events v WHERE v.kind = 3 AND v.origin = r.id)) "
          "FROM events r WHERE r.kind = 5 AND r.origin = r.id AND r.time_ns BETWEEN " +
              std::to_string(from) + " AND " + std::to_string(to));
  ASSERT_EQ(*expect[0][0], 3) << "roots 3, 4 and 5 are in the window";
  const Json doc = stats_json(db, "--histogram --from " + std::to_string(from) + " --to " + std::to_string(to));
  const Json* chains = doc.find("chains");
  ASSERT_NE(chains, nullptr);
  EXPECT_EQ(num(chains->find("count")), expect[0][0]);
  int64_t delivered = 0, in_histogram = 0;
  for (const Json& k : chains->find("kinds")->items) delivered += *num(k.find("delivered"));
  for (const Json& b : chains->find("histogram")->items) in_histogram += *num(b.find("count"));
  EXPECT_EQ(delivered, *expect[0][1]);
  EXPECT_EQ(in_histogram, delivered) << "the raise-to-delivery histogram counts each delivered chain once";
  // The whole recording counts every root.
  const Json all = stats_json(db);
  EXPECT_EQ(static_cast<size_t>(*num(all.find("chains")->find("count"))), roots.size());
  // The help says which time selects a chain.
  EXPECT_NE(run_cli("stats --help").out.find("chains by the time their\nevent was raised"), std::string::npos);
}

// A narrow window reads its chains one by one through the origin index instead of walking the
// whole recording; each chain must come out as the whole walk decides it. Per chain of
// irq-ept-reinject and timer-irq: a window on its raise alone gives exactly that chain, with the
// time, exits, reinjections and outcome the whole recording's slowest list gives it.
TEST_F(StatsTest, NarrowWindowDecidesEachChainAsTheWholeWalk) {
  for (const char* scenario : {"timer-irq", "irq-ept-reinject", "pf-during-irq"}) {
    const std::string db = record(scenario);
    const Json all = stats_json(db, "--slowest 1000");
    std::map<std::string, const Json*> whole;
    for (const Json& c : all.find("chains")->find("slowest")->items) whole[c.find("chain")->text] = &c;
    const auto roots = sql(db, "SELECT id, time_ns FROM events WHERE origin = id ORDER BY id");
    ASSERT_FALSE(roots.empty()) << scenario;
    for (const SqlRow& r : roots) {
      const std::string t = std::to_string(*r[1]);
      const Json one = stats_json(db, "--slowest 1000 --from " + t + " --to " + t);
      const Json* chains = one.find("chains");
      // Chains raised at the same ns share the window.
      const auto same_time = sql(db, "SELECT COUNT(*) FROM events WHERE origin = id AND time_ns = " + t);
      EXPECT_EQ(num(chains->find("count")), same_time[0][0]) << scenario << " at " << t;
      for (const Json& c : chains->find("slowest")->items) {
        auto it = whole.find(c.find("chain")->text);
        ASSERT_NE(it, whole.end()) << scenario << ": chain " << c.find("chain")->text
                                   << " not delivered in the whole walk";
        for (const char* f : {"time_ns", "exits", "reinjections"})
          EXPECT_EQ(num(c.find(f)), num(it->second->find(f)))
              << scenario << " chain " << c.find("chain")->text << " " << f;
        EXPECT_EQ(c.find("outcome")->text, it->second->find("outcome")->text)
            << scenario << " chain " << c.find("chain")->text;
      }
    }
  }
}

// ---- unknown times ----

// A trace pasted without kvm_entry lines: every exit counts, no time is known, and stats says
// so instead of printing zeros.
TEST_F(StatsTest, TraceWithoutKvmEntrySaysTimesUnknown) {
  const std::string db = import("real/stable_2020_svm_npf_wrapped_vcpu_info_pair.txt");
  ASSERT_EQ(*sql(db, "SELECT COUNT(*) FROM events WHERE kind = 2")[0][0], 0);
  const int64_t exits = *sql(db, "SELECT COUNT(*) FROM events WHERE kind = 1")[0][0];
  ASSERT_GT(exits, 0);
  const CliRun text = run_cli("stats '" + db + "' --histogram");
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("times:      unknown"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("unknown"), std::string::npos);
  EXPECT_EQ(text.out.find("0.000us"), std::string::npos) << text.out;
  const Json doc = stats_json(db);
  EXPECT_FALSE(doc.find("times_known")->b);
  EXPECT_EQ(*num(doc.find("exits")->find("count")), exits);
  for (const Json& r : doc.find("exits")->find("rows")->items) {
    EXPECT_EQ(r.find("time_ns")->type, Json::Type::Null);
    EXPECT_EQ(r.find("mean_ns")->type, Json::Type::Null);
  }
  const CliRun csv = run_cli("stats '" + db + "' --format csv");
  EXPECT_NE(csv.out.find(",0,,,,,,,,,,\n"), std::string::npos) << csv.out;  // timed 0, then empty fields
}

// ---- stored chain figures (schema v3) against the walk ----

void exec_sql(const std::string& path, const std::string& statements) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK) << path;
  char* err = nullptr;
  const int rc = sqlite3_exec(db, statements.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "") << "\n" << statements;
  sqlite3_free(err);
  sqlite3_close(db);
}

// Schema v4's events table back in the v3 layout (schema/v4.sql in reverse: origin 0, the packed
// columns apart, chain_events, the v3 indexes), for a file made here to look older.
void events_as_v3(const std::string& path) {
  auto db = db::Db::open(path, SQLITE_OPEN_READWRITE);
  ASSERT_TRUE(db) << db.error();
  ASSERT_TRUE(schema::register_event_row_functions(*db));
  auto r = db->exec(
      "CREATE TABLE ev3 AS SELECT id, kind, level, hv_level, vcpu, time_ns, reason, flags, cause, IFNULL(origin, 0) AS "
      "origin, rip, qualification, es_extra_field(extra, 0) AS guest_linear, guest_phys, intr_info, intr_error, "
      "idt_vectoring_info, es_extra_field(extra, 1) AS idt_vectoring_error, es_extra_field(extra, 2) AS instr_len, "
      "es_extra_field(extra, 3) AS aux, es_extra_field(extra, 4) AS aux64, code_id, text FROM events ORDER BY id;"
      "DROP TABLE events; ALTER TABLE ev3 RENAME TO events;"
      "CREATE TABLE chain_events (chain_id INTEGER NOT NULL, event_id INTEGER NOT NULL, PRIMARY KEY (chain_id, "
      "event_id)) WITHOUT ROWID; INSERT INTO chain_events SELECT origin, id FROM events WHERE origin != 0;"
      "CREATE INDEX events_origin ON events(origin, id); CREATE INDEX events_kind_reason ON events(kind, reason);"
      "CREATE INDEX events_time ON events(time_ns); CREATE INDEX events_vcpu ON events(vcpu, id);"
      "CREATE INDEX events_cause ON events(cause);");
  ASSERT_TRUE(r) << r.error();
}

std::string copy_db(const std::string& from, const std::string& name) {
  const std::string to = test::process_tmp(name);
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(to + suffix);
  std::filesystem::remove(test::process_tmp(std::filesystem::path(name).stem().string() + ".v5.db"));
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
  return to;
}

// `stats` text output with the recording's path replaced by "DB", so two files' figures compare.
std::string stats_text(const std::string& db, const std::string& args, std::string* err = nullptr,
                       const std::string& shown = "") {
  const CliRun r = run_cli("stats '" + db + "' " + args);
  EXPECT_EQ(r.code, 0) << r.err;
  if (err) *err = r.err;
  std::string out = r.out;
  const std::string path = shown.empty() ? db : shown;
  for (size_t at = out.find(path); at != std::string::npos; at = out.find(path, at)) out.replace(at, path.size(), "DB");
  return out;
}

const char* const kScenarios[] = {"timer-irq", "irq-ept-reinject", "guest-pf", "pf-during-irq", "double-fault"};
const char* const kViews[] = {"--histogram --slowest 1000", "--vcpu 0 --level 1 --slowest 1000", "--by port",
                              "--by page --sort time"};

// A recording of this build stores each chain's figures (schema v3 chains columns, stamped with
// the chain rules' version in chain_rules); stats reads them instead of the chains' events.
// Expected, per built-in scenario and view: the same output as when the stamp is gone (or names
// other rules), which makes stats walk every chain and decide it afresh; only then a one-sentence
// note on stderr says why it was slower. A window of a tenth of the recording (chains selected by
// their raise time; the walking side reads them one by one through the origin index) agrees too.
TEST_F(StatsTest, StoredChainFiguresEqualTheWalkOnEveryScenario) {
  for (const char* scenario : kScenarios) {
    const std::string db = record(scenario);
    ASSERT_EQ(sql(db, "SELECT version FROM chain_rules").size(), 1u) << scenario;
    EXPECT_GT(*sql(db, "SELECT COUNT(*) FROM chains")[0][0], 0) << scenario;
    EXPECT_EQ(*sql(db, "SELECT COUNT(*) FROM chains WHERE event_word IS NULL OR raise_ns IS NULL")[0][0], 0)
        << scenario;
    const std::string unstamped = copy_db(db, std::string(scenario) + "-walk.db");
    exec_sql(unstamped, "DELETE FROM chain_rules");
    const std::string other_rules = copy_db(db, std::string(scenario) + "-rules.db");
    exec_sql(other_rules, "UPDATE chain_rules SET version = 999");
    const auto times = sql(db, "SELECT MIN(time_ns), MAX(time_ns) FROM events");
    const int64_t mid = (*times[0][0] + *times[0][1]) / 2;
    std::vector<std::string> views(std::begin(kViews), std::end(kViews));
    const int64_t tenth = (*times[0][1] - *times[0][0]) / 10;
    views.push_back("--slowest 1000 --from " + std::to_string(mid - tenth / 2) + " --to " +
                    std::to_string(mid + tenth / 2));
    for (const std::string& view : views) {
      std::string err;
      const std::string stored = stats_text(db, view, &err);
      EXPECT_EQ(err, "") << scenario << " " << view;
      std::string walk_err;
      EXPECT_EQ(stored, stats_text(unstamped, view, &walk_err)) << scenario << " " << view;
      EXPECT_EQ(std::count(walk_err.begin(), walk_err.end(), '\n'), 1) << walk_err;
      EXPECT_NE(walk_err.find("stores no chain figures"), std::string::npos) << walk_err;
      EXPECT_NE(walk_err.find("reading every chain's events"), std::string::npos) << walk_err;
      EXPECT_EQ(stored, stats_text(other_rules, view, &walk_err)) << scenario << " " << view;
      EXPECT_NE(walk_err.find("chain rules v999, this exitscope's are v1"), std::string::npos) << walk_err;
    }
  }
}

// The exit pass reads the events_exit_entry covering index when the recording has it; without it
// (a file indexed by an older build or by hand), or with an index of that name on another
// condition, it reads the events table. Expected: the same tables either way, and no error.
TEST_F(StatsTest, ExitPassWithoutTheCoveringIndexGivesTheSameTables) {
  const std::string db = import("svm_gp_msr_2019.txt");
  const std::string none = copy_db(db, "no-exit-index.db");
  exec_sql(none, "DROP INDEX events_exit_entry");
  const std::string other = copy_db(db, "other-exit-index.db");
  exec_sql(other, "DROP INDEX events_exit_entry; CREATE INDEX events_exit_entry ON events(id, kind) WHERE kind = 1");
  for (const char* view : {"--histogram", "--by msr", "--by port", "--vcpu 0 --from 1us"}) {
    const std::string want = stats_text(db, view);
    std::string err;
    EXPECT_EQ(stats_text(none, view, &err), want) << view;
    EXPECT_EQ(err, "") << view;
    EXPECT_EQ(stats_text(other, view, &err), want) << view;
    EXPECT_EQ(err, "") << view;
  }
}

// The same for every imported trace (tests/data/import and its real/ traces): KVM chains are
// best-effort (inferred links, roots the trace lacks, counted by their first member), the case
// where a stored row and a walk could most easily differ. Expected: equal output, no note.
TEST_F(StatsTest, StoredChainFiguresEqualTheWalkOnEveryImportedTrace) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(ES_SOURCE_DIR) / "tests/data/import";
  std::vector<std::string> traces;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".txt") traces.push_back(fs::relative(e.path(), dir).string());
  std::sort(traces.begin(), traces.end());
  ASSERT_GE(traces.size(), 20u);
  for (const std::string& trace : traces) {
    const std::string db = import(trace);
    const std::string walk = copy_db(db, fs::path(trace).stem().string() + "-walk.db");
    exec_sql(walk, "DELETE FROM chain_rules");
    for (const char* view : {"--histogram --slowest 1000", "--vcpu 1 --slowest 100"}) {
      std::string err;
      const std::string stored = stats_text(db, view, &err);
      EXPECT_EQ(err, "") << trace << " " << view;
      EXPECT_EQ(stored, stats_text(walk, view)) << trace << " " << view;
    }
  }
}

// An older recording (schema v2: chains without the v3 figures, no chain_rules, no
// events_exit_entry index), made here from a new recording by taking them away, is read through a
// migrated copy that stores them, and `migrate --in-place` stores them in the file itself.
// Expected: the same output as the new file's, from the stored figures (no walk note), in both.
TEST_F(StatsTest, MigratedOldFileGivesTheSameTablesAsANewFile) {
  for (const char* scenario : {"irq-ept-reinject", "pf-during-irq"}) {
    const std::string db = record(scenario);
    const std::string old = copy_db(db, std::string("old-") + scenario + ".db");
    events_as_v3(old);
    exec_sql(old,
             "DROP TABLE chain_rules; ALTER TABLE chains DROP COLUMN event_word; "
             "ALTER TABLE chains DROP COLUMN vcpu; ALTER TABLE chains DROP COLUMN raise_ns; "
             "ALTER TABLE chains DROP COLUMN delivered_ns; ALTER TABLE chains DROP COLUMN vectoring_exits; "
             "ALTER TABLE chains DROP COLUMN reinjections; PRAGMA user_version = 2;");
    const std::string in_place = copy_db(old, std::string("inplace-") + scenario + ".db");
    const std::string copy = test::process_tmp(std::string("old-") + scenario + ".v5.db");
    for (const char* view : kViews) {
      const std::string want = stats_text(db, view);
      std::string err;
      EXPECT_EQ(stats_text(old, view, &err, copy), want) << scenario << " " << view;
      EXPECT_NE(err.find("uses the older schema v2"), std::string::npos) << err;
      EXPECT_EQ(err.find("chain figures"), std::string::npos) << "the migrated copy stores them: " << err;
    }
    EXPECT_EQ(sql(copy, "SELECT version FROM chain_rules").size(), 1u);
    EXPECT_EQ(*sql(copy, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'events_exit_entry'")[0][0], 1);
    ASSERT_EQ(run_cli("migrate --in-place '" + in_place + "'").code, 0);
    for (const char* view : kViews) {
      std::string err;
      EXPECT_EQ(stats_text(in_place, view, &err), stats_text(db, view)) << scenario << " " << view;
      EXPECT_EQ(err, "") << scenario << " " << view;
    }
  }
}

// A file at the current schema whose chain figures another build decided (chain_rules names other
// rules) or that stores none: `stats` says so and how to fix it; `migrate` (no --in-place) leaves
// the file alone and names the command; `migrate --in-place` stores this build's figures.
// Expected: after it, the stamp is this build's, stats gives the new file's output with no note.
TEST_F(StatsTest, MigrateInPlaceRefreshesChainFiguresOfOtherRules) {
  const std::string db = record("irq-ept-reinject");
  for (const char* damage : {"UPDATE chain_rules SET version = 999", "DELETE FROM chain_rules"}) {
    const std::string other = copy_db(db, "refresh.db");
    exec_sql(other, damage);
    std::string err;
    stats_text(other, "--histogram", &err);
    EXPECT_NE(err.find("'exitscope migrate " + other + " --in-place' stores them"), std::string::npos) << err;
    const CliRun look = run_cli("migrate '" + other + "'");
    EXPECT_EQ(look.code, 0) << look.err;
    EXPECT_NE(look.out.find("not this exitscope's"), std::string::npos) << look.out;
    EXPECT_EQ(sql(other, "SELECT version FROM chain_rules WHERE version = 1").size(), 0u) << "left alone: " << damage;
    const CliRun fix = run_cli("migrate --in-place '" + other + "'");
    ASSERT_EQ(fix.code, 0) << fix.err;
    EXPECT_NE(fix.out.find("stored this exitscope's chain figures"), std::string::npos) << fix.out;
    EXPECT_EQ(sql(other, "SELECT version FROM chain_rules").size(), 1u);
    EXPECT_EQ(*sql(other, "SELECT version FROM chain_rules")[0][0], 1);
    for (const char* view : kViews) {
      EXPECT_EQ(stats_text(other, view, &err), stats_text(db, view)) << damage << " " << view;
      EXPECT_EQ(err, "") << damage << " " << view;
    }
    const CliRun again = run_cli("migrate --in-place '" + other + "'");
    EXPECT_NE(again.out.find("nothing to do"), std::string::npos) << again.out;
  }
}

// The recording exitscope 0.1.0 wrote (schema v1, tests/data/schema): its migrated copy is
// stamped with this build's chain figures (its chains table was empty: 0.1.0 linked no chains),
// and they equal the walk over the same copy's events.
TEST_F(StatsTest, CommittedV1RecordingStoresTheWalksFigures) {
  const std::string old = copy_db(std::string(ES_SOURCE_DIR) + "/tests/data/schema/v1_irq_ept_reinject.db", "v1.db");
  const std::string copy = test::process_tmp("v1.v5.db");
  std::string err;
  const std::string stored = stats_text(old, "--histogram --slowest 1000", &err, copy);
  EXPECT_NE(err.find("uses the older schema v1"), std::string::npos) << err;
  EXPECT_EQ(err.find("chain figures"), std::string::npos) << err;
  // exitscope 0.1.0 linked no chains (every origin is 0): no chain to count, from either read.
  const int64_t chains = *sql(old, "SELECT COUNT(DISTINCT origin) FROM events WHERE origin != 0")[0][0];
  EXPECT_NE(stored.find("Event chains: " + std::to_string(chains) + " "), std::string::npos) << stored;
  EXPECT_EQ(sql(copy, "SELECT version FROM chain_rules").size(), 1u);
  const std::string walk = copy_db(copy, "v1-walk.db");
  exec_sql(walk, "DELETE FROM chain_rules");
  EXPECT_EQ(stats_text(walk, "--histogram --slowest 1000", &err), stored);
  EXPECT_NE(err.find("stores no chain figures"), std::string::npos) << err;
}

// ---- flags ----

TEST_F(StatsTest, HelpAndTopLevelHelpListStats) {
  const CliRun h = run_cli("stats --help");
  EXPECT_EQ(h.code, 0);
  for (const char* flag : {"--sort", "--vcpu", "--reason", "--from", "--to", "--by", "--format", "--histogram"})
    EXPECT_NE(h.out.find(flag), std::string::npos) << flag;
  EXPECT_NE(run_cli("--help").out.find("  stats"), std::string::npos);
}

TEST_F(StatsTest, BadFlagsRefusedInOneSentence) {
  const std::string db = record("timer-irq");
  for (const std::string args :
       {"--sort speed", "--by cpu", "--format xml", "--vcpu x", "--from 1q", "--reason NO_SUCH_EXIT",
        "--reason INJECT_NEW", "--from 2ms --to 1ms", "--frobnicate"}) {
    const CliRun r = run_cli("stats '" + db + "' " + args);
    EXPECT_EQ(r.code, 2) << args;
    EXPECT_TRUE(r.out.empty()) << args;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
    EXPECT_EQ(r.err.rfind("exitscope stats: ", 0), 0u) << r.err;
  }
  const CliRun missing = run_cli("stats /nonexistent/x.db");
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("/nonexistent/x.db"), std::string::npos) << missing.err;
}

TEST_F(StatsTest, SortOrdersRows) {
  const std::string db = record("timer-irq");
  for (const char* key : {"count", "time", "max", "mean"}) {
    const Json doc = stats_json(db, std::string("--sort ") + key);
    const std::string field = std::string(key) == "count"  ? "count"
                              : std::string(key) == "time" ? "time_ns"
                                                           : std::string(key) + "_ns";
    int64_t prev = INT64_MAX;
    for (const Json& r : doc.find("exits")->find("rows")->items) {
      const int64_t v = num(r.find(field)).value_or(0);
      EXPECT_LE(v, prev) << key;
      prev = v;
    }
  }
}

}  // namespace
}  // namespace es
