// Plugin loader: dlopen the example plugin, version negotiation, refusal, built-in path.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

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
  EXPECT_NE(missing.error().find("cannot load plugin '/nonexistent/plugin.so'"), std::string::npos)
      << missing.error();
}

TEST(PluginHostTest, BadArgumentMakesTheExamplePluginRefuse) {
  probes::ProbeBus bus;
  probes::PluginHost host(bus);
  auto id = host.load(ES_EXIT_STATS_PLUGIN, {"colour=blue"});
  ASSERT_FALSE(id);
  EXPECT_NE(id.error().find("refused to install"), std::string::npos) << id.error();
}

}  // namespace
}  // namespace es
