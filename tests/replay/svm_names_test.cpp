// replay's one vendor-aware naming function and the --reason resolution, for both vendors.
// Names: VMX from SDM Vol. 3D Appendix C with KVM's VMX_EXIT_REASONS strings, SVM from AMD APM
// Vol. 2 Appendix C with KVM's SVM_EXIT_REASONS strings.
#include <gtest/gtest.h>

#include "exitscope/record.h"
#include "replay/format.h"
#include "replay/inspect.h"
#include "replay/recording.h"

namespace es::replay {
namespace {

es_record exit_record(uint32_t reason, uint32_t flags) {
  es_record r{};
  r.kind = ES_KIND_VM_EXIT;
  r.reason = reason;
  r.flags = flags;
  return r;
}

TEST(SvmNames, OneNumberTwoVendors) {
  // 0x30 is VMX EPT_VIOLATION (48) and SVM write_dr0; 0x4d VMX TDCALL (77) and SVM's #GP intercept.
  EXPECT_EQ(exit_reason_text(0x30, 0), "EPT_VIOLATION");
  EXPECT_EQ(exit_reason_text(0x30, ES_FLAG_SVM), "write_dr0");
  EXPECT_EQ(exit_reason_text(0x4D, 0), "TDCALL");
  EXPECT_EQ(exit_reason_text(0x4D, ES_FLAG_SVM), "GP excp");
  EXPECT_EQ(exit_reason_text(0x46, ES_FLAG_SVM), "UD excp");
  EXPECT_EQ(exit_reason_text(0x400, ES_FLAG_SVM), "npf");
  EXPECT_EQ(exit_reason_text(0x7B, ES_FLAG_SVM), "io");
  EXPECT_EQ(exit_reason_text(0x81, ES_FLAG_SVM), "hypercall");
  EXPECT_EQ(exit_reason_text(0x60, ES_FLAG_SVM), "interrupt");
  EXPECT_EQ(exit_reason_text(0xFFFF'FFFFu, ES_FLAG_SVM), "invalid_guest_state");
  // Unknown codes: the number, in the vendor's usual base; VMX bit 31 still says entry failure.
  EXPECT_EQ(exit_reason_text(0x404, ES_FLAG_SVM), "exit code 0x404");
  EXPECT_EQ(exit_reason_text(0x400, 0), "reason 1024");
  EXPECT_EQ(exit_reason_text(0x8000'0021u, 0), "INVALID_STATE (entry failure)");
  EXPECT_EQ(exit_reason_text(exit_record(0x400, ES_FLAG_SVM | ES_FLAG_INFERRED)), "npf");
  // Qualifications: SVM EXITINFO1 decoded only for SVM exits (0x30 is no EPT violation there).
  EXPECT_EQ(qualification_text(0x7B, ES_FLAG_SVM, 0x03F8'0010u), "out 0x3f8 size 1");
  EXPECT_EQ(qualification_text(0x7B, ES_FLAG_SVM, 0x0070'0019u), "rep in 0x70 size 1");
  EXPECT_EQ(qualification_text(0x400, ES_FLAG_SVM, 0x1'0000'0015ull), "X present user final");
  EXPECT_EQ(qualification_text(0x30, ES_FLAG_SVM, 0x182), "");
  EXPECT_NE(qualification_text(0x30, 0, 0x182), "");
}

TEST(SvmNames, ReasonFilterResolvesBothVendorsNames) {
  {
    EventFilter f;
    ASSERT_TRUE(set_reason(f, "npf"));
    EXPECT_FALSE(f.exit_reason);
    EXPECT_EQ(f.svm_exit_code, 0x400u);
    EXPECT_TRUE(matches_decoded(f, exit_record(0x400, ES_FLAG_SVM)));
    EXPECT_FALSE(matches_decoded(f, exit_record(0x400, 0)));  // VMX 1024 is no NPF
    EXPECT_FALSE(matches_decoded(f, exit_record(48, 0)));     // nor is an EPT violation
  }
  {
    EventFilter f;  // a name of both vendors selects both vendors' exits
    ASSERT_TRUE(set_reason(f, "hlt"));
    EXPECT_EQ(f.exit_reason, 12);
    EXPECT_EQ(f.svm_exit_code, 0x78u);
    EXPECT_TRUE(matches_decoded(f, exit_record(12, 0)));
    EXPECT_TRUE(matches_decoded(f, exit_record(0x78, ES_FLAG_SVM)));
    EXPECT_FALSE(matches_decoded(f, exit_record(12, ES_FLAG_SVM)));  // SVM 0x0c is a CR12 read
  }
  {
    EventFilter f;  // VMX-only names keep selecting VMX exits only
    ASSERT_TRUE(set_reason(f, "EPT_VIOLATION"));
    EXPECT_FALSE(f.svm_exit_code);
    EXPECT_TRUE(matches_decoded(f, exit_record(48, 0)));
    EXPECT_FALSE(matches_decoded(f, exit_record(48, ES_FLAG_SVM)));
  }
  {
    EventFilter f;  // a decision name outranks an SVM-only one
    ASSERT_TRUE(set_reason(f, "shutdown"));
    EXPECT_EQ(f.decision, static_cast<uint32_t>(ES_DECISION_SHUTDOWN));
    EventFilter g;
    ASSERT_TRUE(set_reason(g, "SVM_EXIT_SHUTDOWN"));
    EXPECT_EQ(g.svm_exit_code, 0x7Fu);
  }
  {
    EventFilter f;  // a number: the VMX basic reason or the whole SVM exit code
    ASSERT_TRUE(set_reason(f, "0x400"));
    EXPECT_TRUE(matches_decoded(f, exit_record(0x400, ES_FLAG_SVM)));
    EventFilter g;
    ASSERT_TRUE(set_reason(g, "0xffffffff"));
    EXPECT_TRUE(matches_decoded(g, exit_record(0xFFFF'FFFFu, ES_FLAG_SVM)));
  }
  EventFilter bad;
  const auto r = set_reason(bad, "nfp");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("unknown reason 'nfp'"), std::string::npos) << r.error();
}

TEST(SvmNames, EventLineOfAnSvmPageFaultInterceptShowsExitinfo2) {
  // #PF intercept: EXITINFO1 = the error code, EXITINFO2 = the faulting address (APM 15.12).
  Event ev;
  ev.rec = exit_record(0x4E, ES_FLAG_SVM);
  ev.rec.qualification = 0x6;
  ev.rec.aux64 = 0x7f0000002000;
  ev.rec.rip = 0x7f0000001000;
  EXPECT_EQ(describe_event_fields(ev), "PF excp qual=0x6 exitinfo2=0x7f0000002000 rip=0x7f0000001000");
  ev.rec.flags = 0;  // the same words as a VMX exit: reason 78, and aux64 is no VMX field
  EXPECT_EQ(describe_event_fields(ev), "reason 78 qual=0x6 rip=0x7f0000001000");
}

TEST(SvmNames, InspectorShowsTheVmcbFieldsOfAnSvmExit) {
  Event ev;
  ev.rec = exit_record(0x400, ES_FLAG_SVM);
  ev.rec.id = 7;
  ev.rec.qualification = 0x1'0000'0006ull;  // EXITINFO1: write, user, final translation
  ev.rec.aux64 = 0xfee00000;                // EXITINFO2: the faulting GPA
  ev.rec.guest_phys = 0xfee00000;
  ev.rec.idt_vectoring_info = 0x80000030;  // EXITINTINFO: IRQ 0x30 being delivered
  EXPECT_NE(inspect_title(ev).find("VM_EXIT npf"), std::string::npos) << inspect_title(ev);
  std::string all;
  for (const InspectField& f : inspect_event(ev)) all += f.label + ": " + f.value + "\n";
  EXPECT_NE(all.find("Exit reason: npf (SVM exit code 0x400)"), std::string::npos) << all;
  EXPECT_NE(all.find("EXITINFO1: 0x100000006 = W not-present user final"), std::string::npos) << all;
  EXPECT_NE(all.find("EXITINFO2: 0xfee00000"), std::string::npos) << all;
  EXPECT_NE(all.find("EXITINTINFO: 0x80000030 = IRQ 0x30"), std::string::npos) << all;
  EXPECT_EQ(all.find("VM-exit interruption info"), std::string::npos) << all;  // no VMCS field on SVM
}

}  // namespace
}  // namespace es::replay
