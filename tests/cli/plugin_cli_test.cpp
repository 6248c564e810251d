// `record --plugin` / `import --plugin` run as a user runs them: real plugins (the project's
// examples, plugins built here that misbehave on purpose, the README's example compiled with the
// README's command), real recordings checked with `exitscope info` / `events` and sqlite3.
//
// Expected outcomes, written before the runs:
// - exit_counts' CSV has, per (vCPU, level, hv level, exit reason), the number of VM_EXIT lines
//   `exitscope events --kind VM_EXIT` prints for the same recording: the plugin sees each record
//   the recorder writes, no more, no less. Nested runs: L2's exits show as level 2.
// - A plugin that cannot be used stops the command with exit code 2, one line naming the plugin
//   file, and no DB (nor DB.partial) on disk.
// - A plugin that crashes in its record callback (after its 20th VM exit): exit code 1, one line
//   naming the plugin and the signal; DB is complete (`info`: status complete, run end STOPPED
//   with the crash as detail), PRAGMA integrity_check says ok, and it holds at least the 20
//   exits the plugin saw (the one it crashed on included: the plugin gets each record before
//   the recorder, which still gets it) and fewer than the run without the plugin has.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <cctype>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/cli_run.h"

namespace es {
namespace {

using test::CliRun;
using test::count_lines;
using test::slurp;

CliRun run(const std::string& args) { return test::run_cli(args); }
std::string q(const std::string& s) { return "'" + s + "'"; }
bool exists(const std::string& p) { return std::filesystem::exists(p); }

// Fresh directory per test (parallel test processes each have their own tmp).
std::string fresh_dir(const std::string& name) {
  const std::string d = test::process_tmp(name);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

// "vcpu,level,hv_level,NAME" -> exits, from `exitscope events DB --kind VM_EXIT`
// ("#ID  TIME  L1(L0)  vcpu0  VM_EXIT  NAME ...").
// The whitespace-separated words of a line. (No <regex>: GCC 12 warns inside it under ASan.)
std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> w;
  std::istringstream in(line);
  for (std::string x; in >> x;) w.push_back(x);
  return w;
}

std::map<std::string, uint64_t> exits_from_events(const std::string& db) {
  const CliRun r = run("events " + q(db) + " --kind VM_EXIT");
  EXPECT_EQ(r.code, 0) << r.err;
  std::map<std::string, uint64_t> m;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    const auto w = words(line);
    unsigned level = 0, hv_level = 0, vcpu = 0;
    if (w.size() < 6 || w[0].rfind('#', 0) != 0 || std::sscanf(w[2].c_str(), "L%u(L%u)", &level, &hv_level) != 2 ||
        std::sscanf(w[3].c_str(), "vcpu%u", &vcpu) != 1 || w[4] != "VM_EXIT") {
      ADD_FAILURE() << "unexpected events line: " << line;
      continue;
    }
    ++m[std::to_string(vcpu) + "," + std::to_string(level) + "," + std::to_string(hv_level) + "," + w[5]];
  }
  return m;
}

// The same key from exit_counts' CSV ("vcpu,level,hv_level,reason,name,count").
std::map<std::string, uint64_t> exits_from_csv(const std::string& path) {
  std::map<std::string, uint64_t> m;
  std::istringstream in(slurp(path));
  std::string line;
  EXPECT_TRUE(std::getline(in, line));
  EXPECT_EQ(line, "vcpu,level,hv_level,reason,name,count");
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    for (std::string x; std::getline(ls, x, ',');) f.push_back(x);
    if (f.size() != 6) {
      ADD_FAILURE() << "unexpected CSV line: " << line;
      continue;
    }
    m[f[0] + "," + f[1] + "," + f[2] + "," + f[4]] += std::stoull(f[5]);
  }
  return m;
}

uint64_t total(const std::map<std::string, uint64_t>& m) {
  uint64_t n = 0;
  for (auto& [k, v] : m) n += v;
  return n;
}

std::string sqlite(const std::string& db, const std::string& sql) {
  const std::string out = test::process_tmp("sqlite.out");
  const std::string cmd = "sqlite3 " + q(db) + " " + q(sql) + " >" + q(out) + " 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << slurp(out);
  std::string s = slurp(out);
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

// "#ID KIND" per line, from `exitscope events DB --vector V`.
std::vector<std::string> vector_events(const std::string& db, const std::string& vector) {
  const CliRun r = run("events " + q(db) + " --vector " + vector);
  EXPECT_EQ(r.code, 0) << r.err;
  std::vector<std::string> v;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    const auto w = words(line);
    if (w.size() >= 5 && w[0].size() > 1 && w[0][0] == '#' && std::isdigit(static_cast<unsigned char>(w[0][1])))
      v.push_back(w[0] + " " + w[4]);
  }
  return v;
}

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> v;
  std::istringstream in(slurp(path));
  for (std::string line; std::getline(in, line);) v.push_back(line);
  return v;
}

TEST(PluginCli, RecordLoadsTwoPluginsWithTheirOptionsAndExitCountsMatchEvents) {
  const std::string d = fresh_dir("two_plugins");
  const std::string db = d + "/r.db", csv = d + "/exits.csv", stats = d + "/stats.txt";
  const CliRun r = run("record --scenario timer-irq -o " + q(db) + " --quiet --plugin " +
                       q(std::string(ES_EXIT_COUNTS_PLUGIN) + ":out=" + csv) +
                       " --plugin=" + q(std::string(ES_EXIT_STATS_PLUGIN) + ":out=" + stats));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto expected = exits_from_events(db);
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(exits_from_csv(csv), expected);
  EXPECT_NE(slurp(stats).find("exit-stats: " + std::to_string(total(expected)) + " VM exits"), std::string::npos)
      << slurp(stats);
}

TEST(PluginCli, NestedRunShowsL2ExitsAtLevel2InThePlugin) {
  const std::string d = fresh_dir("nested");
  const std::string db = d + "/r.db", csv = d + "/exits.csv";
  const CliRun r = run("record --scenario nested-ept-reinject -o " + q(db) + " --quiet --plugin " +
                       q(std::string(ES_EXIT_COUNTS_PLUGIN) + ":out=" + csv));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto got = exits_from_csv(csv);
  EXPECT_EQ(got, exits_from_events(db));
  bool l2 = false;
  for (auto& [k, v] : got) l2 = l2 || k.find(",2,") != std::string::npos;
  EXPECT_TRUE(l2) << "a nested run has exits of L2 (level 2)";
}

TEST(PluginCli, ImportFeedsEveryRecordToThePlugins) {
  const std::string d = fresh_dir("import");
  const std::string db = d + "/t.db", csv = d + "/exits.csv";
  const CliRun r = run("import " + q(std::string(ES_SOURCE_DIR) + "/tests/data/import/nested.txt") + " -o " + q(db) +
                       " --quiet --plugin " + q(std::string(ES_EXIT_COUNTS_PLUGIN) + ":out=" + csv));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto expected = exits_from_events(db);
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(exits_from_csv(csv), expected);
}

struct Unusable {
  const char* what;
  std::string plugin;  // the --plugin value
  std::string named;   // what the sentence must name
};

std::vector<Unusable> unusable_plugins(const std::string& dir) {
  const std::string text = dir + "/notes.so";
  std::ofstream(text) << "not a shared object\n";
  return {
      {"missing file", dir + "/missing.so", dir + "/missing.so"},
      {"not an ELF file", text, text},
      {"no install symbol", ES_NOT_A_PLUGIN, ES_NOT_A_PLUGIN},
      {"newer plugin API", ES_NEWER_PLUGIN, ES_NEWER_PLUGIN},
      {"install refuses", ES_REFUSING_PLUGIN, ES_REFUSING_PLUGIN},
      {"install crashes", std::string(ES_CRASHING_PLUGIN) + ":crash=install", ES_CRASHING_PLUGIN},
  };
}

TEST(PluginCli, UnusablePluginIsNamedAndRecordCreatesNothing) {
  const std::string d = fresh_dir("unusable_record");
  for (const Unusable& u : unusable_plugins(d)) {
    const std::string db = d + "/r.db";
    const CliRun r = run("record --scenario timer-irq -o " + q(db) + " --plugin " + q(u.plugin));
    EXPECT_EQ(r.code, 2) << u.what << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << u.what << ": " << r.err;
    EXPECT_NE(r.err.find("plugin '" + u.named + "'"), std::string::npos) << u.what << ": " << r.err;
    EXPECT_FALSE(exists(db)) << u.what;
    EXPECT_TRUE(r.out.empty()) << u.what << ": " << r.out;
  }
}

TEST(PluginCli, UnusablePluginIsNamedAndImportCreatesNothing) {
  const std::string d = fresh_dir("unusable_import");
  const std::string trace = std::string(ES_SOURCE_DIR) + "/tests/data/import/vmx_614.txt";
  for (const Unusable& u : unusable_plugins(d)) {
    const std::string db = d + "/t.db";
    const CliRun r = run("import " + q(trace) + " -o " + q(db) + " --plugin " + q(u.plugin));
    EXPECT_EQ(r.code, 2) << u.what << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << u.what << ": " << r.err;
    EXPECT_NE(r.err.find("plugin '" + u.named + "'"), std::string::npos) << u.what << ": " << r.err;
    EXPECT_FALSE(exists(db)) << u.what;
    EXPECT_FALSE(exists(db + ".partial")) << u.what;
  }
}

// Plugins load before anything of --kvm: a missing one is reported without eBPF being loaded.
TEST(PluginCli, UnusablePluginStopsRecordKvmBeforeAnyProbe) {
  const std::string d = fresh_dir("unusable_kvm");
  const std::string db = d + "/k.db", plugin = d + "/missing.so";
  const CliRun r = run("record --kvm -o " + q(db) + " --duration 1 --plugin " + q(plugin));
  if (r.err.find("no KVM recorder") != std::string::npos) GTEST_SKIP() << "this build has no KVM recorder";
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("plugin '" + plugin + "'"), std::string::npos) << r.err;
  EXPECT_FALSE(exists(db));
}

TEST(PluginCli, BadPluginValueIsRefusedNamingIt) {
  struct Bad {
    std::string args, named;
  } const bad[] = {
      {"--plugin ''", "--plugin"},
      {"--plugin x.so:verbose", "option 'verbose' is not key=value"},
      {"--plugin x.so:a=1,,b=2", "option '' is not key=value"},
      {"--plugin :a=1", "--plugin ':a=1' has no path"},
      {"--plugin x.so:", "--plugin 'x.so:'"},
      {"--plugin", "'--plugin' needs a value"},
  };
  const std::string d = fresh_dir("bad_value");
  for (const Bad& b : bad) {
    for (const std::string cmd : {"record --scenario timer-irq", "import /dev/null"}) {
      const std::string db = d + "/x.db";
      const CliRun r = run(cmd + " -o " + q(db) + " " + b.args);
      EXPECT_EQ(r.code, 2) << cmd << " " << b.args << ": " << r.err;
      EXPECT_NE(r.err.find(b.named), std::string::npos) << cmd << " " << b.args << ": " << r.err;
      EXPECT_EQ(count_lines(r.err), 1u) << r.err;
      EXPECT_FALSE(exists(db)) << cmd << " " << b.args;
    }
  }
}

TEST(PluginCli, HelpOfRecordAndImportDocumentsPlugin) {
  for (const char* cmd : {"record", "import"}) {
    const CliRun r = run(std::string(cmd) + " --help");
    EXPECT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("--plugin PATH[:K=V,..]"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Writing a plugin"), std::string::npos) << r.out;
  }
}

class PluginCrash : public ::testing::TestWithParam<const char*> {};

TEST_P(PluginCrash, RecordIsStoppedFinishedAndConsistent) {
  const std::string mode = GetParam();
  const std::string signal = mode == std::string("bus")     ? "SIGBUS"
                             : mode == std::string("fpe")   ? "SIGFPE"
                             : mode == std::string("abort") ? "SIGABRT"
                                                            : "SIGSEGV";  // segv, stack (overflow)
  const std::string d = fresh_dir("crash_" + mode);
  const std::string db = d + "/r.db", full = d + "/full.db";
  const CliRun r = run("record --scenario timer-irq -o " + q(db) + " --quiet --plugin " +
                       q(std::string(ES_CRASHING_PLUGIN) + ":crash=" + mode + ",after=20"));
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(
      r.err.find("plugin '" + std::string(ES_CRASHING_PLUGIN) + "' crashed (" + signal + ") in its record callback"),
      std::string::npos)
      << r.err;

  const CliRun info = run("info " + q(db));
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("status:     complete"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("run end:    stopped: plugin '" + std::string(ES_CRASHING_PLUGIN) + "' crashed (" + signal +
                          ") in its record callback"),
            std::string::npos)
      << info.out;
  EXPECT_EQ(sqlite(db, "PRAGMA integrity_check"), "ok");
  EXPECT_FALSE(exists(db + "-wal")) << "a finished recording is one file";
  const uint64_t exits = std::stoull(sqlite(db, "SELECT count(*) FROM events WHERE kind = 1"));
  EXPECT_GE(exits, 20u) << "the 20 exits the plugin saw, the one it crashed on included";
  EXPECT_EQ(sqlite(db, "SELECT event_count = (SELECT count(*) FROM events) FROM sessions"), "1");

  ASSERT_EQ(run("record --scenario timer-irq -o " + q(full) + " --quiet").code, 0);
  const uint64_t full_exits = std::stoull(sqlite(full, "SELECT count(*) FROM events WHERE kind = 1"));
  EXPECT_LT(exits, full_exits) << "the run was stopped at the crash";
}

INSTANTIATE_TEST_SUITE_P(Signals, PluginCrash, ::testing::Values("segv", "bus", "fpe", "abort", "stack"));

TEST(PluginCli, CrashAtExitLeavesTheRecordingCompleteAndIsReported) {
  const std::string d = fresh_dir("crash_atexit");
  const std::string db = d + "/r.db";
  const CliRun r = run("record --scenario timer-irq -o " + q(db) + " --quiet --plugin " +
                       q(std::string(ES_CRASHING_PLUGIN) + ":crash=atexit"));
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("crashed (SIGSEGV) in its at-exit callback"), std::string::npos) << r.err;
  const CliRun info = run("info " + q(db));
  EXPECT_NE(info.out.find("status:     complete"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("run end:    guest exit"), std::string::npos) << info.out;
  EXPECT_EQ(sqlite(db, "PRAGMA integrity_check"), "ok");
}

TEST(PluginCli, ImportGoesOnWithoutACrashedPlugin) {
  const std::string d = fresh_dir("crash_import");
  const std::string trace = std::string(ES_SOURCE_DIR) + "/tests/data/import/nested.txt";
  const std::string db = d + "/t.db", plain = d + "/plain.db";
  const CliRun r = run("import " + q(trace) + " -o " + q(db) + " --quiet --plugin " +
                       q(std::string(ES_CRASHING_PLUGIN) + ":after=1"));
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("plugin '" + std::string(ES_CRASHING_PLUGIN) + "' crashed (SIGSEGV)"), std::string::npos)
      << r.err;
  ASSERT_EQ(run("import " + q(trace) + " -o " + q(plain) + " --quiet").code, 0);
  EXPECT_EQ(sqlite(db, "PRAGMA integrity_check"), "ok");
  EXPECT_NE(run("info " + q(db)).out.find("status:     complete"), std::string::npos);
  EXPECT_EQ(sqlite(db, "SELECT count(*) FROM events"), sqlite(plain, "SELECT count(*) FROM events"));
}

// README "Writing a plugin": its example plugin built with its cc command and loaded with its
// record / import commands, run as written from a directory laid out like the repository
// (probes/ and tests/ of the source, build/ the build tree).
TEST(PluginCli, ReadmeExamplePluginBuildsAndLoads) {
  const std::string readme = slurp(std::string(ES_SOURCE_DIR) + "/README.md");
  const size_t sec = readme.find("## Writing a plugin");
  ASSERT_NE(sec, std::string::npos);
  const std::string body = readme.substr(sec, readme.find("\n## ", sec + 1) - sec);
  auto block = [&](const std::string& lang) {
    const size_t b = body.find("```" + lang + "\n");
    if (b == std::string::npos) return std::string();
    const size_t s = b + 4 + lang.size();
    return body.substr(s, body.find("```", s) - s);
  };
  const std::string code = block("c"), commands = block("sh");
  ASSERT_FALSE(code.empty());
  ASSERT_NE(commands.find("cc -shared -fPIC -fvisibility=hidden -I probes/include"), std::string::npos) << commands;
  ASSERT_NE(commands.find("--plugin"), std::string::npos) << commands;

  const std::string d = fresh_dir("readme");
  namespace fs = std::filesystem;
  fs::create_directory_symlink(std::string(ES_SOURCE_DIR) + "/probes", d + "/probes");
  fs::create_directory_symlink(std::string(ES_SOURCE_DIR) + "/tests", d + "/tests");
  fs::create_directory_symlink(ES_BUILD_DIR, d + "/build");
  std::ofstream(d + "/vector_log.c") << code;
  std::ofstream(d + "/commands.sh") << "set -e\n" << commands;
  const std::string log = d + "/commands.log";
  const int status = std::system(("cd " + q(d) + " && sh commands.sh >" + q(log) + " 2>&1").c_str());
  ASSERT_EQ(status, 0) << slurp(log);

  // The record: irq20.log lists what `events --vector 0x20` prints (ids and kinds).
  const auto expected = vector_events(d + "/r.db", "0x20");
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(lines_of(d + "/irq20.log"), expected);
  // The import: vector.log (default name, vector=14) and exits.csv.
  const auto pf = vector_events(d + "/t.db", "14");
  ASSERT_FALSE(pf.empty());
  EXPECT_EQ(lines_of(d + "/vector.log"), pf);
  EXPECT_EQ(exits_from_csv(d + "/exits.csv"), exits_from_events(d + "/t.db"));
}

}  // namespace
}  // namespace es
