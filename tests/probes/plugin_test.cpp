// Plugin loader: dlopen the example plugin, version negotiation, refusal, built-in path.
#include <gtest/gtest.h>

#include <signal.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "probes/bus/plugin_host.h"
#include "tests/probes/test_support.h"

namespace es {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void emit_exits(probes::ProbeBus& bus) {
  test::Emitter em(bus);
  for (int i = 0; i < 3; ++i) em.vm_exit(test::exit_reason(arch::BasicExitReason::EptViolation), 0, 0, 0, 0, 0);
  em.vm_exit(test::exit_reason(arch::BasicExitReason::Hlt), 0, 0, 0, 0, 0);
  em.raise(test::irq(0x20));  // not an exit: not counted
}

TEST(PluginHostTest, LoadsExamplePluginCountsExitsAndPrintsAtUnload) {
  const std::string out = test::temp_db("exit_stats.txt");
  probes::ProbeBus bus;
  probes::PluginHost host(bus);
  auto id = host.load(ES_EXIT_STATS_PLUGIN, {"out=" + out});
  ASSERT_TRUE(id) << id.error();
  EXPECT_TRUE(bus.enabled(ES_KIND_VM_EXIT));
  EXPECT_FALSE(bus.enabled(ES_KIND_RAISE)) << "the plugin subscribed to exits only";
  emit_exits(bus);
  EXPECT_TRUE(slurp(out).empty()) << "the table is printed at unload, not before";
  EXPECT_TRUE(host.unload(*id));
  EXPECT_FALSE(bus.any_enabled()) << "unload unsubscribes";
  const std::string table = slurp(out);
  EXPECT_NE(table.find("exit-stats: 4 VM exits"), std::string::npos) << table;
  EXPECT_NE(table.find("EPT_VIOLATION"), std::string::npos) << table;
  EXPECT_NE(table.find("HLT"), std::string::npos) << table;
  EXPECT_NE(table.find(" 3\n"), std::string::npos) << table;
}

TEST(PluginHostTest, BuiltinExitStatsUsesTheSameInstallPath) {
  const std::string out = test::temp_db("exit_stats_builtin.txt");
  probes::ProbeBus bus;
  {
    probes::PluginHost host(bus);
    auto id = host.install_builtin("exit-stats", &probes::es_builtin_exit_stats_install, {"out=" + out});
    ASSERT_TRUE(id) << id.error();
    emit_exits(bus);
  }  // host destroyed: unload_all
  EXPECT_NE(slurp(out).find("exit-stats: 4 VM exits"), std::string::npos) << slurp(out);
  EXPECT_FALSE(bus.any_enabled());
}

TEST(PluginHostTest, RefusesPluginBuiltForANewerApi) {
  probes::ProbeBus bus;
  probes::PluginHost host(bus);
  auto id = host.load(ES_NEWER_PLUGIN);
  ASSERT_FALSE(id);
  EXPECT_NE(id.error().find(ES_NEWER_PLUGIN), std::string::npos) << id.error();
  EXPECT_NE(id.error().find("needs plugin API v42"), std::string::npos) << id.error();
  EXPECT_EQ(host.size(), 0u);
}

TEST(PluginHostTest, PluginThatRefusesIsUnloadedAndLeavesNoSubscription) {
  probes::ProbeBus bus;
  probes::PluginHost host(bus);
  auto id = host.load(ES_REFUSING_PLUGIN);
  ASSERT_FALSE(id);
  EXPECT_NE(id.error().find("refused to install (returned 7)"), std::string::npos) << id.error();
  EXPECT_FALSE(bus.any_enabled());
  EXPECT_EQ(host.size(), 0u);
}

TEST(PluginHostTest, SharedObjectWithoutTheEntryPointsIsRefused) {
  probes::ProbeBus bus;
  probes::PluginHost host(bus);
  auto id = host.load(ES_NOT_A_PLUGIN);
  ASSERT_FALSE(id);
  EXPECT_NE(id.error().find("does not export es_plugin_version"), std::string::npos) << id.error();
  auto missing = host.load("/nonexistent/plugin.so");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("cannot load plugin '/nonexistent/plugin.so'"), std::string::npos) << missing.error();
}

TEST(PluginHostTest, BadArgumentMakesTheExamplePluginRefuse) {
  probes::ProbeBus bus;
  probes::PluginHost host(bus);
  auto id = host.load(ES_EXIT_STATS_PLUGIN, {"colour=blue"});
  ASSERT_FALSE(id);
  EXPECT_NE(id.error().find("refused to install"), std::string::npos) << id.error();
}

// --plugin values: "PATH" or "PATH:key=value,..." (the options become argv, in order).
TEST(PluginSpecTest, PathAndOptionsAreSplitAtTheFirstColon) {
  auto plain = probes::parse_plugin_spec("build/plugins/es_exit_counts.so");
  ASSERT_TRUE(plain) << plain.error();
  EXPECT_EQ(plain->path, "build/plugins/es_exit_counts.so");
  EXPECT_TRUE(plain->args.empty());
  auto with = probes::parse_plugin_spec("p.so:out=/tmp/a:b.csv,vector=0x20");
  ASSERT_TRUE(with) << with.error();
  EXPECT_EQ(with->path, "p.so");
  EXPECT_EQ(with->args, (std::vector<std::string>{"out=/tmp/a:b.csv", "vector=0x20"}));
  // A file whose name holds ':' is taken whole.
  const std::string odd = test::temp_db("odd:name.so");
  std::ofstream(odd) << "x";
  auto whole = probes::parse_plugin_spec(odd);
  ASSERT_TRUE(whole) << whole.error();
  EXPECT_EQ(whole->path, odd);
  EXPECT_TRUE(whole->args.empty());
}

TEST(PluginSpecTest, BadValuesAreRefusedNamingThem) {
  for (const char* bad : {"", ":a=1", "p.so:", "p.so:flag", "p.so:=1", "p.so:a=1,,b=2"}) {
    auto s = probes::parse_plugin_spec(bad);
    ASSERT_FALSE(s) << bad;
    EXPECT_NE(s.error().find("--plugin"), std::string::npos) << s.error();
    if (*bad) {
      EXPECT_NE(s.error().find(std::string("'") + bad + "'"), std::string::npos) << s.error();
    }
  }
}

TEST(PluginSpecTest, RepeatedPluginOptionsAreTakenOutInOrderUpToDashDash) {
  std::vector<std::string> words = {"record", "--plugin", "a.so", "-o", "x.db", "--plugin=b.so:k=v",
                                    "--",     "--plugin", "c.so"};
  std::vector<char*> av;
  for (auto& w : words) av.push_back(w.data());
  auto values = probes::take_plugin_options(av);
  ASSERT_TRUE(values) << values.error();
  EXPECT_EQ(*values, (std::vector<std::string>{"a.so", "b.so:k=v"}));
  std::vector<std::string> rest(av.begin(), av.end());
  EXPECT_EQ(rest, (std::vector<std::string>{"record", "-o", "x.db", "--", "--plugin", "c.so"}));
  std::string cmd = "import", opt = "--plugin";
  std::vector<char*> last = {cmd.data(), opt.data()};
  auto missing = probes::take_plugin_options(last);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("'--plugin' needs a value"), std::string::npos) << missing.error();
}

// record --kvm checks the files before it attaches anything, without running plugin code.
TEST(PluginHostTest, CheckFileRefusesMissingAndNonElfFilesWithoutLoading) {
  EXPECT_TRUE(probes::PluginHost::check_file(ES_EXIT_STATS_PLUGIN));
  auto missing = probes::PluginHost::check_file("/nonexistent/plugin.so");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("cannot load plugin '/nonexistent/plugin.so' (No such file or directory)"),
            std::string::npos)
      << missing.error();
  const std::string text = test::temp_db("notes.so");
  std::ofstream(text) << "#!/bin/sh\n";
  auto not_elf = probes::PluginHost::check_file(text);
  ASSERT_FALSE(not_elf);
  EXPECT_NE(not_elf.error().find("(not an ELF file)"), std::string::npos) << not_elf.error();
}

// Counts the exits a subscriber after the plugin still gets.
void count_record(void* user, const es_record*) { ++*static_cast<int*>(user); }

struct sigaction current_action(int sig) {
  struct sigaction sa {};
  ::sigaction(sig, nullptr, &sa);
  return sa;
}

// The plugin crashes (SIGSEGV) in the record callback of the 2nd exit: the host is told once on
// this thread, the plugin is never called again, the subscriber after it still gets every
// record, and the fault handler is the previous one again once the host is gone.
TEST(PluginHostTest, CrashInRecordCallbackSwitchesThePluginOffAndTellsTheHost) {
  const struct sigaction before = current_action(SIGSEGV);
  probes::ProbeBus bus;
  int told = 0, seen_after = 0;
  {
    probes::PluginHost host(bus);
    host.set_on_crash([&] { ++told; });
    auto id = host.load(ES_CRASHING_PLUGIN, {"crash=segv", "after=2"});
    ASSERT_TRUE(id) << id.error();
    bus.subscribe(1u << ES_KIND_VM_EXIT, &count_record, &seen_after);
    EXPECT_FALSE(host.crash());
    emit_exits(bus);  // 4 exits
    EXPECT_EQ(told, 1);
    EXPECT_EQ(seen_after, 4) << "the record the plugin crashed on, and the ones after, still reach the others";
    auto crash = host.crash();
    ASSERT_TRUE(crash);
    EXPECT_EQ(crash->signal, SIGSEGV);
    EXPECT_EQ(crash->describe(),
              std::string("plugin '") + ES_CRASHING_PLUGIN + "' crashed (SIGSEGV) in its record callback");
    emit_exits(bus);
    EXPECT_EQ(told, 1) << "a crashed plugin is not called again";
    host.unload_all();
    EXPECT_TRUE(host.crash()) << "the crash is kept after unload";
  }
  EXPECT_EQ(current_action(SIGSEGV).sa_handler, before.sa_handler) << "the previous disposition is back";
}

// The KVM recorder feeds plugins from its pipeline thread: a crash there (abort()) is caught on
// that thread, which goes on.
TEST(PluginHostTest, CrashOnAnotherThreadIsCaughtOnThatThread) {
  probes::ProbeBus bus;
  probes::PluginHost host(bus);
  std::thread::id told_on;
  host.set_on_crash([&] { told_on = std::this_thread::get_id(); });
  auto id = host.load(ES_CRASHING_PLUGIN, {"crash=abort", "after=1"});
  ASSERT_TRUE(id) << id.error();
  bool finished = false;
  std::thread t([&] {
    emit_exits(bus);
    finished = true;
  });
  const std::thread::id tid = t.get_id();
  t.join();
  EXPECT_TRUE(finished);
  EXPECT_EQ(told_on, tid);
  ASSERT_TRUE(host.crash());
  EXPECT_EQ(host.crash()->signal, SIGABRT);
}

TEST(PluginHostTest, CrashInInstallIsRefusedNamingThePlugin) {
  probes::ProbeBus bus;
  probes::PluginHost host(bus);
  auto id = host.load(ES_CRASHING_PLUGIN, {"crash=install"});
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error(), std::string("plugin '") + ES_CRASHING_PLUGIN +
                            "' crashed (SIGSEGV) in its install function; fix the plugin or leave it out.");
  EXPECT_EQ(host.size(), 0u);
  EXPECT_FALSE(bus.any_enabled());
  EXPECT_FALSE(host.crash()) << "reported as the load's error, not as a crash of the run";
}

}  // namespace
}  // namespace es
