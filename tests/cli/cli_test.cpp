// Runs the built `exitscope` binary on recordings made here and checks what a user sees:
// output lines, error sentences and exit codes.
#include <gtest/gtest.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "hv/arch/exceptions.h"
#include "probes/recorder/recorder.h"
#include "replay/chain_steps.h"
#include "replay/recording.h"
#include "tests/probes/test_support.h"
#include "tests/support/cli_run.h"

namespace es {
namespace {

using test::CliRun;
using test::count_lines;
using test::slurp;
CliRun run(const std::string& args) { return test::run_cli(args); }

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::filesystem::create_directories(ES_TEST_TMPDIR);
    path_ = test::temp_db("cli.db");
    recorder::SessionStart info;
    info.scenario = "irq_ept_reinject";
    info.guest_path = "guests/irq.bin";
    info.guest_hash = "sha256:00ff";
    info.policy = "kvm";
    auto rec = recorder::Recorder::open(path_, info, false, {.steps = es::replay::chain_steps()});
    ASSERT_TRUE(rec) << rec.error();
    probes::ProbeBus bus;
    (*rec)->attach(bus);
    test::Emitter em(bus);
    em.console("hello from ");
    em.console("the guest\nbye\n");
    const uint64_t irq = em.raise(test::irq(0x20));
    const uint64_t entry = em.entry(test::irq(0x20), irq, irq);
    const uint64_t ept = em.vm_exit(test::exit_reason(arch::BasicExitReason::EptViolation), 0x182, 0,
                                    test::vectoring_irq(0x20), irq, entry, 0x9000);
    em.decision(ES_DECISION_REQUEUE_FROM_VECTORING, test::irq(0x20), irq, ept);
    const uint64_t re = em.decision(ES_DECISION_INJECT_REINJECTED, test::irq(0x20), irq, ept);
    em.delivery(test::irq(0x20), irq, re);
    const uint64_t ud = em.raise(test::hw_exc(arch::kUD));
    const uint64_t e2 = em.entry(test::hw_exc(arch::kUD), ud, ud);
    const uint64_t x2 = em.vm_exit(test::exit_reason(arch::BasicExitReason::EptViolation), 0x181, 0,
                                   test::vectoring_exc(arch::kUD), ud, e2);
    em.decision(ES_DECISION_DROP_FROM_VECTORING, test::hw_exc(arch::kUD), ud, x2);
    em.run_end(ES_END_GUEST_EXIT);
    ASSERT_TRUE((*rec)->finish({ES_END_GUEST_EXIT, "guest wrote the exit port"}));
  }
  static std::string path_;
};
std::string CliTest::path_;

TEST_F(CliTest, TopLevelHelpListsEveryCommand) {
  const CliRun r = run("--help");
  EXPECT_EQ(r.code, 0);
  for (const char* cmd : {"record", "scenarios", "info", "events", "chains"})
    EXPECT_NE(r.out.find(std::string("  ") + cmd), std::string::npos) << cmd << "\n" << r.out;
  const CliRun none = run("");
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.err.find("Usage: exitscope"), std::string::npos);
}

TEST_F(CliTest, EveryCommandHasHelp) {
  for (const char* cmd : {"info", "events", "chains"}) {
    const CliRun r = run(std::string(cmd) + " --help");
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_NE(r.out.find(std::string("Usage: exitscope ") + cmd), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("--help"), std::string::npos) << r.out;
  }
  EXPECT_NE(run("events -h").out.find("--vector"), std::string::npos);
}

TEST_F(CliTest, UnknownCommandAndBadFlagsExitTwoWithOneSentence) {
  CliRun r = run("frobnicate");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown command 'frobnicate'"), std::string::npos) << r.err;
  for (const char* cmd : {"info", "events", "chains"}) {
    r = run(std::string(cmd) + " '" + path_ + "' --no-such-flag");
    EXPECT_EQ(r.code, 2) << cmd;
    EXPECT_NE(r.err.find("unknown option '--no-such-flag'"), std::string::npos) << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  r = run("events '" + path_ + "' --vector 300");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--vector"), std::string::npos) << r.err;
  r = run("events '" + path_ + "' --kind banana");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown kind 'banana'"), std::string::npos) << r.err;
  r = run("events '" + path_ + "' --reason NOPE");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown reason 'NOPE'"), std::string::npos) << r.err;
  r = run("events '" + path_ + "' --limit");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("needs a value"), std::string::npos) << r.err;
  r = run("info");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("missing the recording file"), std::string::npos) << r.err;
}

TEST_F(CliTest, BadFilesExitTwoNamingTheFile) {
  const std::string text = test::temp_db("cli_text.db");
  { std::ofstream(text) << "not sqlite at all"; }
  for (const char* cmd : {"info", "events", "chains"}) {
    CliRun r = run(std::string(cmd) + " '" + text + "'");
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find(text), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("not a SQLite database"), std::string::npos) << r.err;
    r = run(std::string(cmd) + " '" + text + ".missing'");
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  }
}

// Issue #19: every command starts the same way (replay/cli/startup.h): --help on stdout with exit
// code 0; a bad flag or a wrong number of arguments in one sentence on stderr, prefixed with the
// command and pointing at its --help, exit code 2; a recording that cannot be opened named with
// the same prefix; -o as the short form of --output where a command writes a file.
TEST_F(CliTest, EveryCommandSharesOneStartUp) {
  const char* const commands[] = {"info", "events", "chains",  "export", "check", "diff",
                                  "gui",  "import", "migrate", "record", "stats", "scenarios"};
  for (const char* cmd : commands) {
    const std::string c(cmd);
    CliRun r = run(c + " --help");
    EXPECT_EQ(r.code, 0) << c << ": " << r.err;
    EXPECT_EQ(r.out.rfind("Usage: exitscope " + c + " ", 0), 0u) << r.out;
    EXPECT_TRUE(r.err.empty()) << r.err;
    r = run(c + " --no-such-flag");
    EXPECT_EQ(r.code, 2) << c;
    EXPECT_EQ(r.err,
              "exitscope " + c + ": unknown option '--no-such-flag'; run 'exitscope " + c + " --help' for usage.\n");
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  struct Count {
    const char* args;
    const char* sentence;
  };
  for (const Count& k : {Count{"info a.db b.db", "exitscope info: expects exactly one recording file;"},
                         Count{"stats", "exitscope stats: missing the recording file (DB);"},
                         Count{"diff a.db", "exitscope diff: needs two recordings (A.db B.db);"},
                         Count{"gui a.db b.db", "exitscope gui: expects at most one recording file;"},
                         Count{"import", "exitscope import: missing the trace file (FILE);"},
                         Count{"check", "exitscope check: missing the recording file (DB);"},
                         Count{"scenarios extra", "exitscope scenarios: takes no arguments;"}}) {
    const CliRun r = run(k.args);
    EXPECT_EQ(r.code, 2) << k.args;
    EXPECT_EQ(r.err.rfind(k.sentence, 0), 0u) << k.args << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  }
  // --list-rules needs no recording.
  EXPECT_EQ(run("check --list-rules").code, 0);
  const std::string missing = test::temp_db("cli_startup_missing.db");
  std::filesystem::remove(missing);
  for (const char* cmd : {"info", "events", "chains", "export", "check", "stats"}) {
    const CliRun r = run(std::string(cmd) + " '" + missing + "'");
    EXPECT_EQ(r.code, 2) << cmd;
    EXPECT_EQ(r.err.rfind("exitscope " + std::string(cmd) + ": ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(missing), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  }
  // -o is --output: with --in-place the two are refused together, naming --output.
  CliRun r = run("migrate '" + path_ + "' -o other.db --in-place");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("give either --in-place or --output NEW, not both"), std::string::npos) << r.err;
  r = run("export '" + path_ + "' -o");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("'--output'"), std::string::npos) << r.err;
  // --from / --to: one parser (args.h time_option) and one sentence.
  for (const char* cmd : {"events", "export"}) {
    r = run(std::string(cmd) + " '" + path_ + "' --to 3parsec");
    EXPECT_EQ(r.code, 2) << cmd;
    EXPECT_EQ(r.err,
              "exitscope " + std::string(cmd) +
                  ": option '--to' needs a time such as 1500, 1.5us, 20ms or 2s, not '3parsec'; run 'exitscope " + cmd +
                  " --help' for usage.\n");
  }
}

TEST_F(CliTest, InfoShowsSessionCountsExitsAndConsole) {
  const CliRun r = run("info '" + path_ + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("scenario:   irq_ept_reinject"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("guests/irq.bin  sha256:00ff"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("policy:     kvm"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("status:     complete"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("run end:    guest exit: guest wrote the exit port"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("events:     13"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("EPT_VIOLATION          2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("VM_EXIT                2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  | hello from the guest\n  | bye\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("delivered after reinjection=1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dropped by policy=1"), std::string::npos) << r.out;
}

TEST_F(CliTest, InfoSaysIncompleteForACrashedRecording) {
  const std::string path = test::temp_db("cli_incomplete.db");
  {
    probes::ProbeBus bus;  // outlives the recorder, as recorder.h requires
    auto rec = recorder::Recorder::open(path, {}, false, {.steps = es::replay::chain_steps()});
    ASSERT_TRUE(rec) << rec.error();
    (*rec)->attach(bus);
    test::Emitter(bus).raise(test::irq(0x20));
  }
  const CliRun r = run("info '" + path + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("INCOMPLETE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("run end:    unknown"), std::string::npos) << r.out;
}

TEST_F(CliTest, EventsListsOneDecodedLinePerEventWithFilters) {
  CliRun r = run("events '" + path_ + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(count_lines(r.out), 13u) << r.out;
  EXPECT_NE(r.out.find("EPT_VIOLATION qual=0x182"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("vectoring=IRQ 0x20"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("INJECT_REINJECTED IRQ 0x20"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"hello from \""), std::string::npos) << r.out;

  r = run("events '" + path_ + "' --reason EPT_VIOLATION --vector 6");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(count_lines(r.out), 1u) << r.out;
  EXPECT_NE(r.out.find("vectoring=#UD"), std::string::npos) << r.out;

  r = run("events '" + path_ + "' --chain 3 --kind DECISION");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(count_lines(r.out), 2u) << r.out;

  r = run("events '" + path_ + "' --from 300ns --to 0.5us --limit 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(count_lines(r.out), 2u) << r.out;
  EXPECT_EQ(r.out.rfind("#3 ", 0), 0u) << r.out;
}

TEST_F(CliTest, ChainsExplainsInterruptionReinjectionAndOutcome) {
  CliRun r = run("chains '" + path_ + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("chain 3: IRQ 0x20"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("interrupted: #5 EPT_VIOLATION"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("during delivery of IRQ 0x20"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("decision:    #7 INJECT_REINJECTED IRQ 0x20"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("outcome:     delivered after reinjection (#8)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("chain 9: #UD"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("outcome:     dropped by policy (#12)"), std::string::npos) << r.out;

  r = run("chains '" + path_ + "' --chain 9");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find("chain 3:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("chain 9:"), std::string::npos) << r.out;

  r = run("chains '" + path_ + "' --chain 42");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no chain 42"), std::string::npos) << r.err;
}

// Issue #18: `chains` streams the chains in id order. A #GP whose delivery raises #NP becomes
// #DF (SDM Vol. 3A 6.15, Table 6-5: contributory then contributory). The #GP chain (155) is
// printed first and names the later #NP chain (156) with its title and outcome, which the walk
// reads only after it; the #NP chain names the #GP chain it interrupted. Neither says "?".
TEST(ChainsCli, AChainNamesALaterChainItWasInterruptedBy) {
  const std::string db = test::process_tmp("df_stream.db");
  ASSERT_EQ(run("record --scenario double-fault --quiet --no-check --force -o " + db).code, 0);
  const CliRun r = run("chains " + db);
  ASSERT_EQ(r.code, 0) << r.err;
  const size_t gp = r.out.find("chain 155: #GP");
  const size_t np = r.out.find("chain 156: #NP");
  ASSERT_NE(gp, std::string::npos) << r.out;
  ASSERT_NE(np, std::string::npos) << r.out;
  EXPECT_LT(gp, np);  // id order
  const std::string gp_text = r.out.substr(gp, np - gp);
  EXPECT_NE(gp_text.find("interrupted by chain 156 (#NP, promoted to #DF)"), std::string::npos) << gp_text;
  EXPECT_NE(gp_text.find("escalation:  #GP (#155) -> #NP (chain 156) -> #DF (#157) -> promoted to #DF"),
            std::string::npos)
      << gp_text;
  EXPECT_NE(r.out.find("interrupts chain 155 (#GP): raised during its delivery", np), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("(?"), std::string::npos) << r.out;
}

// A real kernel's trace (the SVM test bed: Linux 6.1 KVM under QEMU TCG; the VMM has no in-kernel
// irqchip and raises IRQ 0x20 with KVM_INTERRUPT). Expected from arch/x86/kvm/x86.c before the
// run: kvm_vcpu_ioctl_interrupt -> kvm_queue_interrupt sets interrupt.injected, so the first
// entry injects it with reinjected = true and kvm_inj_virq prints "[reinjected]" although no
// delivery was tried; the second injection, after the NPF whose EXITINTINFO holds the IRQ (APM
// Vol. 2 15.7.2), is a true reinjection. `chains` says so of the first decision only, and the
// outcome stays "delivered after reinjection".
TEST(ChainsCli, AFirstInjectionKvmCallsReinjectedIsExplained) {
  const std::string db = test::process_tmp("kvm_interrupt.db");
  const std::string trace = std::string(ES_SOURCE_DIR) + "/tests/data/import/testbed/svm_6_1_kvm_interrupt_irq_npf.txt";
  const CliRun imp = run("import '" + trace + "' --quiet --force -o " + db);
  ASSERT_EQ(imp.code, 0) << imp.err;
  const CliRun r = run("chains " + db);
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string note = "its first injection, though KVM calls it [reinjected]";
  const size_t first = r.out.find("  decision:    #12 INJECT_REINJECTED IRQ 0x20  [L1(L0)]\n               " + note);
  EXPECT_NE(first, std::string::npos) << r.out;
  EXPECT_NE(r.out.find("KVM_INTERRUPT", first), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(note, first + 80), std::string::npos) << "said of the true reinjection too: " << r.out;
  EXPECT_NE(
      r.out.find("  decision:    #16 INJECT_REINJECTED IRQ 0x20  [L1(L0)]\n  outcome:     delivered after reinjection"),
      std::string::npos)
      << r.out;
}

// Issue #18: a chain longer than chain_hold_limit() members is read without holding them and each
// part of its story is a pass over its members through the origin index. What `chains` prints must
// not depend on that: with ES_CHAIN_HOLD=1 (every chain of two or more members let go) the output
// is the one of the held path, byte for byte, on recordings whose chains have every part of the
// story: a pasted livelock (interruptions, reinjections), the KVM_INTERRUPT note (the decisions
// pass's state), nested transitions and violations (a nested run with a bug), fault escalation
// (#DF, triple fault).
TEST(ChainsCli, AChainTooLongToHoldTellsTheSameStory) {
  struct Case {
    std::string name, make;
  };
  const std::string data = std::string(ES_SOURCE_DIR) + "/tests/data/import/";
  const std::vector<Case> cases = {
      {"livelock", "import '" + data + "livelock.txt' --quiet --force -o "},
      {"kvm_interrupt", "import '" + data + "testbed/svm_6_1_kvm_interrupt_irq_npf.txt' --quiet --force -o "},
      {"nested_bug", "record --scenario nested-irq-vectoring --bug exit-with-vectoring --quiet --force -o "},
      {"double_fault", "record --scenario double-fault --quiet --force -o "},
      {"triple_fault", "record --scenario triple-fault --quiet --force -o "},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string db = test::process_tmp("hold_" + c.name + ".db");
    const CliRun made = run(c.make + db);
    ASSERT_EQ(made.code, 0) << made.err;
    const CliRun held = run("chains " + db);
    const CliRun streamed = test::run_cli_env("ES_CHAIN_HOLD=1", "chains " + db);
    ASSERT_EQ(held.code, 0) << held.err;
    ASSERT_EQ(streamed.code, 0) << streamed.err;
    EXPECT_EQ(streamed.out, held.out);
    // Every member is printed (one indented line each), as many as the recording's chains have,
    // and --chain N of its longest chain tells the same story both ways too.
    auto rec = replay::Recording::open(db);
    ASSERT_TRUE(rec) << rec.error();
    auto members = rec->db().query_int("SELECT count(*) FROM events WHERE origin != 0");
    auto longest = rec->db().query_int(
        "SELECT origin FROM events WHERE origin != 0 GROUP BY origin ORDER BY count(*) DESC, origin LIMIT 1");
    ASSERT_TRUE(members && longest);
    size_t lines = 0;
    for (size_t at = streamed.out.find("\n    #"); at != std::string::npos; at = streamed.out.find("\n    #", at + 1))
      ++lines;
    EXPECT_EQ(lines, static_cast<size_t>(*members));
    const std::string one = "chains " + db + " --chain " + std::to_string(*longest);
    const CliRun one_held = run(one), one_streamed = test::run_cli_env("ES_CHAIN_HOLD=1", one);
    ASSERT_EQ(one_held.code, 0) << one_held.err;
    EXPECT_EQ(one_streamed.out, one_held.out);
    EXPECT_NE(one_held.out.find("chain " + std::to_string(*longest) + ":"), std::string::npos) << one_held.out;
  }
}

// `check` reads back a chain whose stored outcome is a loss; let go (ES_CHAIN_HOLD=1) it keeps its
// first and last member only, and the live checker's violation record is its last member. The
// event-lost finding still names the chain's last other member (#302 here: the EPT map after the
// drop; the dropped #PF's chain ends with the violation record the live checker wrote).
TEST(ChainsCli, CheckNamesTheLastEventOfALostChainItCouldNotHold) {
  const std::string db = test::process_tmp("hold_drop.db");
  const CliRun made =
      run("record --scenario exception-vectoring-policy --policy drop-hw-exceptions --quiet --force -o " + db);
  ASSERT_EQ(made.code, 0) << made.err;
  const CliRun held = run("check " + db), streamed = test::run_cli_env("ES_CHAIN_HOLD=1", "check " + db);
  EXPECT_NE(held.out.find("event-lost: chain 299 (#PF), events #299 #302"), std::string::npos) << held.out;
  EXPECT_EQ(streamed.out, held.out);
  EXPECT_EQ(streamed.code, held.code);
}

}  // namespace
}  // namespace es
