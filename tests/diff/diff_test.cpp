// exitscope diff on real recordings: the same scenario twice (identical), guest-pf under the
// default policy vs drop-hw-exceptions (diverges at the REQUEUE / DROP decision, one chain
// differs), hand-built recordings for the chain matching, and the CLI's bad input.
#include <gtest/gtest.h>

#include <fstream>

#include "hv/arch/exceptions.h"
#include "probes/recorder/recorder.h"
#include "replay/chain_steps.h"
#include "replay/diff/diff.h"
#include "tests/probes/test_support.h"
#include "tests/support/cli_run.h"

namespace es {
namespace {

using test::CliRun;
using test::run_cli;

std::string record_scenario(const std::string& file, const std::string& args) {
  const std::string path = test::temp_db(file);
  const CliRun r = run_cli("record " + args + " -o '" + path + "' --quiet");
  EXPECT_EQ(r.code, 0) << r.err;
  return path;
}

Result<diff::DiffResult> diff_files(const std::string& a, const std::string& b, diff::DiffOptions o = {}) {
  auto ra = replay::Recording::open(a);
  if (!ra) return make_error(ra.error());
  auto rb = replay::Recording::open(b);
  if (!rb) return make_error(rb.error());
  return diff::diff_recordings(*ra, *rb, o);
}

TEST(DiffTest, TwoRecordingsOfTheSameScenarioAreIdentical) {
  const std::string a = record_scenario("same_a.db", "--scenario irq-ept-reinject");
  const std::string b = record_scenario("same_b.db", "--scenario irq-ept-reinject");
  auto d = diff_files(a, b);
  ASSERT_TRUE(d) << d.error();
  EXPECT_TRUE(d->identical());
  EXPECT_FALSE(d->first);
  EXPECT_TRUE(d->chains.empty());
  EXPECT_GT(d->a.compared_events, 0u);
  const CliRun r = run_cli("diff '" + a + "' '" + b + "'");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("events: identical"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("scenario irq-ept-reinject  policy default"), std::string::npos) << r.out;
}

TEST(DiffTest, LiveCheckerViolationsDoNotMakeRecordingsDiffer) {
  const std::string lossy = "--scenario exception-vectoring-policy --policy drop-hw-exceptions";
  const std::string a = record_scenario("evp_checked.db", lossy);
  const std::string b = record_scenario("evp_unchecked.db", lossy + " --no-check");
  auto d = diff_files(a, b);
  ASSERT_TRUE(d) << d.error();
  EXPECT_TRUE(d->identical()) << (d->first ? "events differ" : "chains differ");
  EXPECT_EQ(d->a.violations, 1u);
  EXPECT_EQ(d->b.violations, 0u);
}

class PolicyDiffTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    a_ = record_scenario("gpf_default.db", "--scenario guest-pf --policy default");
    b_ = record_scenario("gpf_drop.db", "--scenario guest-pf --policy drop-hw-exceptions");
  }
  static std::string a_, b_;
};
std::string PolicyDiffTest::a_, PolicyDiffTest::b_;

TEST_F(PolicyDiffTest, FirstDivergenceIsTheRequeueVersusDropDecision) {
  auto d = diff_files(a_, b_);
  ASSERT_TRUE(d) << d.error();
  EXPECT_FALSE(d->identical());
  ASSERT_TRUE(d->first);
  const diff::Divergence& div = *d->first;
  ASSERT_LT(div.a_at, div.a.size());
  ASSERT_LT(div.b_at, div.b.size());
  const es_record& ra = div.a[div.a_at].rec;
  const es_record& rb = div.b[div.b_at].rec;
  EXPECT_EQ(ra.kind, ES_KIND_DECISION);
  EXPECT_EQ(ra.reason, uint32_t{ES_DECISION_REQUEUE_FROM_VECTORING});
  EXPECT_EQ(rb.kind, ES_KIND_DECISION);
  EXPECT_EQ(rb.reason, uint32_t{ES_DECISION_DROP_FROM_VECTORING});
  // Both about the #PF whose delivery hit the EPT violation just before.
  EXPECT_EQ(arch::EntryIntrInfo(ra.intr_info).vector(), arch::kPF);
  EXPECT_EQ(arch::EntryIntrInfo(rb.intr_info).vector(), arch::kPF);
  ASSERT_GE(div.a_at, 1u);
  EXPECT_EQ(div.a[div.a_at - 1].rec.kind, ES_KIND_VM_EXIT);
  EXPECT_EQ(div.a_at, 3u);  // default context: 3 events before
  EXPECT_EQ(div.a.size(), 7u);
  // Everything before is the same on both sides.
  for (size_t i = 0; i < div.a_at; ++i) EXPECT_EQ(diff::normalize(div.a[i].rec), diff::normalize(div.b[i].rec));
}

TEST_F(PolicyDiffTest, ThePfChainDiffersReinjectedVersusDroppedAndRegenerated) {
  auto d = diff_files(a_, b_);
  ASSERT_TRUE(d) << d.error();
  ASSERT_EQ(d->chains.size(), 1u);
  const diff::ChainDifference& c = d->chains[0];
  EXPECT_EQ(arch::EntryIntrInfo(c.key.event_word).vector(), arch::kPF);
  ASSERT_TRUE(c.a);
  ASSERT_TRUE(c.b);
  EXPECT_EQ(c.a->story, "EPT_VIOLATION -> reinjected -> delivered");
  EXPECT_EQ(c.b->story, "EPT_VIOLATION -> dropped by policy -> regenerated -> delivered");
  EXPECT_EQ(c.a->chain_ids.size(), 1u);
  EXPECT_EQ(c.b->chain_ids.size(), 2u);  // the dropped chain and its regeneration
  // A reinjected the #PF; B dropped it and the CPU raised it again (a new chain, delivered).
  EXPECT_EQ(c.a->outcome, replay::Outcome::ReinjectedThenDelivered);
  EXPECT_EQ(c.b->outcome, replay::Outcome::Delivered);
}

TEST_F(PolicyDiffTest, CliPrintsHeadersDivergenceAndChainDifference) {
  CliRun r = run_cli("diff '" + a_ + "' '" + b_ + "'");
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("A: " + a_ + "  scenario guest-pf  policy default"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("B: " + b_ + "  scenario guest-pf  policy drop-hw-exceptions"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("first difference at event"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("> #"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("REQUEUE_FROM_VECTORING #PF"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("DROP_FROM_VECTORING #PF"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("#PF at rip 0x"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("A EPT_VIOLATION -> reinjected -> delivered"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("B EPT_VIOLATION -> dropped by policy -> regenerated -> delivered"), std::string::npos) << r.out;

  r = run_cli("diff '" + a_ + "' '" + b_ + "' --chains-only");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out.find("first difference"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dropped by policy -> regenerated"), std::string::npos) << r.out;

  r = run_cli("diff '" + a_ + "' '" + b_ + "' --context 0");
  EXPECT_EQ(r.code, 1);
  // Just the differing event on each side.
  EXPECT_EQ(r.out.find("VM_EXIT"), std::string::npos) << r.out;
}

// Chain matching on hand-built recordings: a chain present on one side only is listed.
std::string record_script(const std::string& name, const std::function<void(test::Emitter&)>& script) {
  const std::string path = test::temp_db(name);
  auto rec = recorder::Recorder::open(path, recorder::SessionStart{}, false, {.steps = es::replay::chain_steps()});
  EXPECT_TRUE(rec) << rec.error();
  if (!rec) return path;
  probes::ProbeBus bus;
  (*rec)->attach(bus);
  test::Emitter em(bus);
  script(em);
  EXPECT_TRUE((*rec)->finish({}));
  return path;
}

TEST(DiffTest, ExtraChainOnOneSideIsListedAndTheShorterSideEnds) {
  auto base = [](test::Emitter& em) {
    const uint64_t root = em.raise(test::irq(0x20));
    const uint64_t e = em.entry(test::irq(0x20), root, root);
    em.delivery(test::irq(0x20), root, e);
  };
  const std::string a = record_script("extra_a.db", base);
  const std::string b = record_script("extra_b.db", [&](test::Emitter& em) {
    base(em);
    em.raise(test::irq(0x21));  // never delivered: pending (no RUN_END)
  });
  auto d = diff_files(a, b);
  ASSERT_TRUE(d) << d.error();
  ASSERT_TRUE(d->first);
  EXPECT_EQ(d->first->a_at, d->first->a.size());  // A ended
  ASSERT_EQ(d->chains.size(), 1u);
  EXPECT_FALSE(d->chains[0].a);
  ASSERT_TRUE(d->chains[0].b);
  EXPECT_EQ(d->chains[0].b->outcome, replay::Outcome::PendingAtEnd);
  const CliRun r = run_cli("diff '" + a + "' '" + b + "'");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("(end of recording)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("A (no such chain)"), std::string::npos) << r.out;
}

TEST(DiffCliTest, HelpAndBadInput) {
  CliRun r = run_cli("diff --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--chains-only"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Exit status"), std::string::npos) << r.out;
  r = run_cli("diff");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("needs two recordings"), std::string::npos) << r.err;
  const std::string a = record_script("bad_a.db", [](test::Emitter& em) { em.raise(test::irq(0x20)); });
  r = run_cli("diff '" + a + "'");
  EXPECT_EQ(r.code, 2);
  const std::string missing = test::process_tmp("missing.db");
  r = run_cli("diff '" + a + "' '" + missing + "'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(missing), std::string::npos) << r.err;
  const std::string junk = test::process_tmp("junk.db");
  std::ofstream(junk) << "not sqlite";
  r = run_cli("diff '" + junk + "' '" + a + "'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(junk), std::string::npos) << r.err;
  r = run_cli("diff '" + a + "' '" + a + "' --context lots");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--context"), std::string::npos) << r.err;
  r = run_cli("diff '" + a + "' '" + a + "' x.db");
  EXPECT_EQ(r.code, 2);
}

}  // namespace
}  // namespace es
