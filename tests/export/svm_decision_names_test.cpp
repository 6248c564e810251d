// Decisions on SVM recordings are named by AMD's exit codes, not VMX's reason table, in
// `events`, the GUI inspector (replay::inspect_event) and the exports. Expected from the APM
// (Vol. 2 Appendix C "SVM Intercept Exit Codes": NPF 0x400, IOIO 0x7b, CPUID 0x72, MSR 0x7c)
// and the record ABI (an EMULATE decision's aux is the port / leaf / MSR of the exit it
// answered, aux64 the value; REFLECT_TO_L1's aux the L2 exit code, ES_FLAG_SVM on SVM).
#include <gtest/gtest.h>

#include <string>

#include "replay/format.h"
#include "replay/inspect.h"
#include "replay/recording.h"
#include "tests/support/cli_run.h"

namespace es {
namespace {

std::string field(const std::vector<replay::InspectField>& fields, const std::string& label) {
  for (const auto& f : fields)
    if (f.label == label) return f.value;
  return "(no " + label + ")";
}

// A real AMD trace (kvm list 2021, nested SVM + SMM): L0 reflects L2's NPF to L1.
TEST(SvmDecisionNames, ReflectedNpfIsNamedByItsSvmExitCodeEverywhere) {
  const std::string db = test::process_tmp("svm_smm.db");
  const test::CliRun imp =
      test::run_cli("import '" ES_TEST_DATA_DIR "/import/svm_nested_smm_2021.txt' -o '" + db + "' --force");
  ASSERT_EQ(imp.code, 0) << imp.err;
  auto rec = replay::Recording::open(db);
  ASSERT_TRUE(rec) << rec.error();
  replay::EventFilter f;
  f.kind = ES_KIND_DECISION;
  auto decisions = rec->events(f);
  ASSERT_TRUE(decisions);
  const replay::Event* reflect = nullptr;
  for (const auto& e : *decisions)
    if (e.rec.reason == ES_DECISION_REFLECT_TO_L1) reflect = &e;
  ASSERT_NE(reflect, nullptr);
  EXPECT_EQ(field(replay::inspect_event(*reflect), "L2 exit"),
            "npf (SVM exit code 0x400), passed to L1 as a nested VM exit");
  const test::CliRun ev = test::run_cli("events '" + db + "' --verbose");
  EXPECT_NE(ev.out.find("npf (SVM exit code 0x400)"), std::string::npos) << ev.out;
  EXPECT_NE(ev.out.find("REFLECT_TO_L1 exit=npf"), std::string::npos) << ev.out;
  const test::CliRun md = test::run_cli("export '" + db + "' --format markdown");
  EXPECT_NE(md.out.find("REFLECT_TO_L1 exit=npf"), std::string::npos) << md.out;
  const test::CliRun js = test::run_cli("export '" + db + "' --format chrome");
  EXPECT_NE(js.out.find("REFLECT_TO_L1 exit=npf"), std::string::npos);
}

replay::Event emulate(uint32_t aux, uint64_t aux64) {
  replay::Event e;
  e.rec.kind = ES_KIND_DECISION;
  e.rec.reason = ES_DECISION_EMULATE;
  e.rec.id = 2;
  e.rec.cause = 1;
  e.rec.level = 1;
  e.rec.aux = aux;
  e.rec.aux64 = aux64;
  return e;
}

TEST(SvmDecisionNames, EmulateDetailIsReadByTheVendorOfItsExit) {
  const replay::CauseExit ioio{0x7b, ES_FLAG_SVM}, cpuid{0x72, ES_FLAG_SVM}, msr{0x7c, ES_FLAG_SVM};
  EXPECT_EQ(replay::describe_event_fields(emulate(0x3f8, 0x41), &ioio), "EMULATE port=0x3f8 value=0x41");
  EXPECT_EQ(replay::describe_event_fields(emulate(0x40000001, 0), &cpuid), "EMULATE leaf=0x40000001");
  EXPECT_EQ(replay::describe_event_fields(emulate(0xc0000080, 0x500), &msr), "EMULATE msr=0xc0000080 value=0x500");
  auto fields = replay::inspect_event(emulate(0x3f8, 0x41), &ioio);
  EXPECT_EQ(field(fields, "Port"), "0x3f8");
  EXPECT_EQ(field(replay::inspect_event(emulate(0xc0000080, 0x500), &msr), "MSR"), "0xc0000080");
  // SVM code 0x1e (a CR14 write intercept, APM C) is VMX's IO_INSTRUCTION number (30): it must
  // not be read through VMX's table as a port.
  const replay::CauseExit svm_30{30, ES_FLAG_SVM}, vmx_30{30, 0};
  EXPECT_EQ(replay::describe_event_fields(emulate(0x3f8, 0x41), &svm_30).find("port="), std::string::npos);
  EXPECT_EQ(replay::describe_event_fields(emulate(0x3f8, 0x41), &vmx_30), "EMULATE port=0x3f8 value=0x41");
  EXPECT_EQ(replay::exit_reason_number(0x400, ES_FLAG_SVM), "SVM exit code 0x400");
  EXPECT_EQ(replay::exit_reason_number(48, 0), "48");
}

}  // namespace
}  // namespace es
