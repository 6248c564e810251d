// The chains table a recording gets from chains decided while it is written (ChainBuilder in the
// recorder's writer) must be the one materialize_chains builds by reading the recording back
// (the path every recording took before issue #18). Each case makes a real recording with the
// exitscope binary, copies it, rebuilds the copy's chains with materialize_chains and compares
// both files' chains tables row by row (the members are events.origin, schema v4).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "replay/chains.h"
#include "schema/sqlite_db.h"
#include "tests/support/sql_dump.h"

namespace {

namespace fs = std::filesystem;

std::string tmp_path(const std::string& name) {
  fs::create_directories(ES_TEST_TMPDIR);
  return std::string(ES_TEST_TMPDIR) + "/" + name;
}

int run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

using es::test::dump;

// The chains of `db` as written, and as materialize_chains rebuilds them on a copy.
void expect_same_chains(const std::string& db_path, const std::string& what) {
  SCOPED_TRACE(what);
  const std::string copy = db_path + ".readback.db";
  fs::copy_file(db_path, copy, fs::copy_options::overwrite_existing);
  auto streamed = es::db::Db::open(db_path, SQLITE_OPEN_READONLY);
  auto readback = es::db::Db::open(copy, SQLITE_OPEN_READWRITE);
  ASSERT_TRUE(streamed && readback);
  ASSERT_TRUE(es::replay::materialize_chains(*readback)) << "materialize_chains failed on " << copy;
  const std::string chains_sql = "SELECT * FROM chains ORDER BY id";
  const std::string a = dump(*streamed, chains_sql), b = dump(*readback, chains_sql);
  EXPECT_EQ(a, b);
  // Not vacuous: a recording of events in chains has chains.
  auto events_in_chains = streamed->query_int("SELECT count(*) FROM events WHERE origin != 0");
  ASSERT_TRUE(events_in_chains);
  if (*events_in_chains > 0) {
    EXPECT_FALSE(a.empty());
  }
  fs::remove(copy);
}

std::vector<std::string> scenario_names() {
  const std::string list = tmp_path("scenarios.txt");
  std::vector<std::string> names;
  if (std::system((std::string(ES_EXITSCOPE_BIN) + " scenarios --names > " + list).c_str()) != 0) return names;
  std::ifstream in(list);
  for (std::string n; in >> n;) names.push_back(n);
  return names;
}

TEST(ChainsStreamed, EveryScenarioGetsTheChainsTheReadBackBuilds) {
  const auto names = scenario_names();
  ASSERT_GT(names.size(), 10u);
  size_t with_chains = 0;
  for (const std::string& n : names) {
    for (const char* variant : {"", " --policy drop-hw-exceptions"}) {
      const std::string db = tmp_path("streamed_" + n + (*variant ? "_drop" : "") + ".db");
      const int rc = run(std::string(ES_EXITSCOPE_BIN) + " record --scenario " + n + variant +
                         " --max-exits 3000 --quiet --no-check --force -o " + db);
      if (!fs::exists(db)) {
        ADD_FAILURE() << n << variant << ": no recording (exit status " << rc << ")";
        continue;
      }
      expect_same_chains(db, n + variant);
      auto c = es::db::Db::open(db, SQLITE_OPEN_READONLY);
      if (c) {
        auto chains = c->query_int("SELECT count(*) FROM chains");
        if (chains && *chains > 0) ++with_chains;
      }
      fs::remove(db);
    }
  }
  EXPECT_GE(with_chains, names.size());  // most scenarios are about chains: at least half the runs have some
}

TEST(ChainsStreamed, NestedBugSwitchesGetTheChainsTheReadBackBuilds) {
  const std::vector<std::pair<std::string, std::string>> runs = {
      {"nested-irq-vectoring", "exit-with-vectoring"},
      {"nested-async-pf", "async-pf-into-l2"},
      {"nmi-iret-ept", "ignore-nmi-unblocking"},
  };
  for (const auto& [scenario, bug] : runs) {
    const std::string db = tmp_path("streamed_bug_" + bug + ".db");
    run(std::string(ES_EXITSCOPE_BIN) + " record --scenario " + scenario + " --bug " + bug +
        " --max-exits 3000 --quiet --no-check --force -o " + db);
    ASSERT_TRUE(fs::exists(db)) << scenario << " --bug " << bug;
    expect_same_chains(db, scenario + " --bug " + bug);
    fs::remove(db);
  }
}

TEST(ChainsStreamed, EveryImportedTraceGetsTheChainsTheReadBackBuilds) {
  size_t n = 0;
  for (const auto& dir :
       {std::string(ES_SOURCE_DIR) + "/tests/data/import", std::string(ES_SOURCE_DIR) + "/tests/data/import/real"}) {
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().extension() != ".txt") continue;
      const std::string db = tmp_path("streamed_import_" + e.path().stem().string() + ".db");
      run(std::string(ES_EXITSCOPE_BIN) + " import " + e.path().string() + " --quiet --force -o " + db);
      if (!fs::exists(db)) continue;  // a trace the import refuses (tested in tests/import)
      expect_same_chains(db, e.path().filename().string());
      fs::remove(db);
      ++n;
    }
  }
  EXPECT_GT(n, 20u);
}

}  // namespace
