// kvmtrace/ on its own, with no source around it: the field mapping of every source
// (fields.h), the names KVM prints (names.h) and the one rule for what an exit's info fields
// mean by vendor and era (decode.h). Each expectation is written from the SDM / APM / KVM's
// arch/x86/kvm/trace.h before the run.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>

#include "kvmtrace/decode.h"
#include "kvmtrace/era.h"
#include "kvmtrace/event.h"
#include "kvmtrace/fields.h"
#include "kvmtrace/names.h"

namespace {

using namespace es::kvmtrace;

KvmEvent exit_event(Isa isa, uint32_t reason, ExitFormat format) {
  KvmEvent e;
  e.event = Tracepoint::Exit;
  e.exit.isa = isa;
  e.exit.reason = reason;
  e.exit.format = format;
  return e;
}

// SDM Vol. 3C 28.2.4: on a 5.10+ kernel kvm_exit's info2 is the IDT-vectoring information and
// intr_info the VM-exit interruption information; an EPT violation while delivering IRQ 0xec.
TEST(KvmtraceDecodeExit, Vmx510InfoTwoIsIdtVectoring_28_2_4) {
  KvmEvent e = exit_event(Isa::Vmx, 48, ExitFormat::IntrInfo);
  e.rip = 0xffffffff81000000;
  e.exit.info1 = 0x181;
  e.exit.info2 = 0x800000ec;
  e.exit.intr_info = 0;
  e.exit.error_code = 0;
  const DecodedExit d = decode_exit(e, false, InfoPairMeaning::Undecided, false);
  EXPECT_FALSE(d.svm);
  EXPECT_EQ(d.reason, 48u);
  EXPECT_EQ(d.qualification, 0x181u);
  EXPECT_EQ(d.idt_vectoring_info, 0x800000ecu);
  EXPECT_EQ(d.exit_intr_info, 0u);
  EXPECT_EQ(d.rip, 0xffffffff81000000u);
  EXPECT_FALSE(d.inferred);
}

// Before 5.10 ("info A B"), info2 is the VM-exit interruption information (SDM 28.2.2); from
// 5.10 the same two numbers (trace-cmd's plugin) carry IDT-vectoring: the trace's evidence picks.
TEST(KvmtraceDecodeExit, VmxInfoPairFollowsTheTracesEvidence_28_2_2) {
  KvmEvent e = exit_event(Isa::Vmx, 0, ExitFormat::InfoPair);
  e.exit.info2 = 0x80000b0e;  // #PF, hardware exception, error code valid
  DecodedExit d = decode_exit(e, false, InfoPairMeaning::ExitIntrInfo, false);
  EXPECT_EQ(d.exit_intr_info, 0x80000b0eu);
  EXPECT_FALSE(d.idt_vectoring_info);
  EXPECT_FALSE(d.inferred);
  d = decode_exit(e, false, InfoPairMeaning::Undecided, false);  // nothing told: the older meaning
  EXPECT_EQ(d.exit_intr_info, 0x80000b0eu);
  d = decode_exit(e, false, InfoPairMeaning::IdtVectoring, true);
  EXPECT_EQ(d.idt_vectoring_info, 0x80000b0eu);
  EXPECT_FALSE(d.exit_intr_info);
  EXPECT_TRUE(d.inferred) << "a trace that contradicts itself marks every such exit inferred";
}

// "info1 0x.. info2 0x.." without intr_info: the 5.10+ labels cut off; info2 is taken as
// IDT-vectoring and said so. No info fields at all: neither word is known, and no RIP stays none.
TEST(KvmtraceDecodeExit, CutOrMissingInfoFieldsAreAssumedOrUnknown) {
  KvmEvent e = exit_event(Isa::Vmx, 48, ExitFormat::Info1Info2);
  e.exit.info2 = 0x80000020;
  DecodedExit d = decode_exit(e, false, InfoPairMeaning::Undecided, false);
  EXPECT_EQ(d.idt_vectoring_info, 0x80000020u);
  EXPECT_TRUE(d.inferred);
  EXPECT_TRUE(d.assumed_info2_vectoring);
  d = decode_exit(exit_event(Isa::Vmx, 12, ExitFormat::ReasonRipOnly), false, InfoPairMeaning::Undecided, false);
  EXPECT_FALSE(d.idt_vectoring_info);
  EXPECT_FALSE(d.exit_intr_info);
  EXPECT_FALSE(d.rip) << "no RIP in the event: unknown, not 0";
}

// AMD APM Vol. 2 15.7.2 / Appendix C: an NPF (0x400) has the GPA in EXITINFO2 and a 64-bit error
// code in EXITINFO1 (bit 32: the guest's final translation); EXITINTINFO (#PF being delivered,
// type 3 with EV and its error code) becomes the records' IDT-vectoring word, same layout.
TEST(KvmtraceDecodeExit, SvmNpfKeepsGpaFullErrorCodeAndExitIntInfo_APM_15_7_2) {
  KvmEvent e = exit_event(Isa::Svm, 0x400, ExitFormat::IntrInfo);
  e.exit.info1 = 0x100000004ull;
  e.exit.info2 = 0xfee00000;
  e.exit.intr_info = 0x80000b0e;
  e.exit.error_code = 2;
  const DecodedExit d = decode_exit(e, true, InfoPairMeaning::Undecided, false);
  EXPECT_TRUE(d.svm);
  EXPECT_EQ(d.qualification, 0x100000004ull);
  EXPECT_EQ(d.guest_phys, 0xfee00000u);
  EXPECT_EQ(d.exit_info2, 0xfee00000u);
  EXPECT_EQ(d.idt_vectoring_info, 0x80000b0eu);
  EXPECT_EQ(d.idt_vectoring_error, 2u);
  EXPECT_FALSE(d.exit_intr_info) << "SVM has no VM-exit interruption information";
}

// APM 15.20: SVM reports INT3 as an exception (type 3); KVM requeues it as a software exception,
// VMX type 6 (SDM Vol. 3C 25.8.3), without an error code.
TEST(KvmtraceDecodeExit, SvmInt3InExitIntInfoIsASoftwareException_25_8_3) {
  KvmEvent e = exit_event(Isa::Svm, 0x400, ExitFormat::IntrInfo);
  e.exit.intr_info = 0x80000303;
  e.exit.error_code = 0;
  const DecodedExit d = decode_exit(e, true, InfoPairMeaning::Undecided, false);
  EXPECT_EQ(d.idt_vectoring_info, 0x80000603u);
}

TEST(KvmtraceNames, ExitNamesOfBothVendorsAndEveryEra) {
  ExitName n = exit_reason_from_kvm_name("EPT_VIOLATION", "");
  EXPECT_EQ(n.isa, Isa::Vmx);
  EXPECT_EQ(n.reason, 48u);
  n = exit_reason_from_kvm_name("npf", "");
  EXPECT_EQ(n.isa, Isa::Svm);
  EXPECT_EQ(n.reason, 0x400u);
  n = exit_reason_from_kvm_name("interrupt", "");  // SVM_EXIT_INTR, 0x60
  EXPECT_EQ(n.isa, Isa::Svm);
  EXPECT_EQ(n.reason, 0x60u);
  n = exit_reason_from_kvm_name("EXIT_EXCP_GP", "");  // trace-cmd's kvm plugin: 0x40 + 13
  EXPECT_EQ(n.isa, Isa::Svm);
  EXPECT_EQ(n.reason, 0x4du);
  n = exit_reason_from_kvm_name("PF", "excp");  // KVM's two-word name: 0x40 + 14
  EXPECT_EQ(n.isa, Isa::Svm);
  EXPECT_EQ(n.reason, 0x4eu);
  EXPECT_EQ(n.tokens, 2u);
  n = exit_reason_from_kvm_name("PENDING_INTERRUPT", "");  // renamed INTERRUPT_WINDOW in 5.6
  EXPECT_EQ(n.isa, Isa::Vmx);
  EXPECT_EQ(n.reason, 7u);
  EXPECT_TRUE(n.old_name);
  n = exit_reason_from_kvm_name("0x4d", "");  // a number carries no vendor
  EXPECT_EQ(n.isa, Isa::Unknown);
  EXPECT_EQ(n.reason, 0x4du);
  n = exit_reason_from_kvm_name("NOT_A_REASON", "");
  EXPECT_FALSE(n.reason);
  uint32_t bits = 0;
  EXPECT_TRUE(vmx_reason_flags_from_name("FAILED_VMENTRY", bits));
  EXPECT_EQ(bits, 0x80000000u);  // SDM 28.2.1: bit 31, VM-entry failure
  EXPECT_FALSE(vmx_reason_flags_from_name("rip", bits));
  EXPECT_EQ(exception_vector_from_name("#gp"), 13);
  EXPECT_EQ(exception_vector_from_name("#XX"), -1);
  EXPECT_EQ(tracepoint_from_name("kvm_nested_vmrun"), Tracepoint::NestedVmenter);  // before 5.12
  EXPECT_EQ(tracepoint_from_name("sched_switch"), Tracepoint::None);
}

// Fields by name, as a trace.dat record or a live event has them.
struct Fields {
  std::array<uint64_t, kFieldCount> v{};
  std::array<bool, kFieldCount> present{};
  void set(Field f, uint64_t x) { v[f] = x, present[f] = true; }
  bool has(Field f) const { return present[f]; }
  uint64_t get(Field f) const { return present[f] ? v[f] : 0; }
  size_t bytes(Field, uint8_t*, size_t) const { return 0; }
};

// kvm_page_fault's error code is u64 since 6.4 (PFERR_GUEST_FINAL is bit 32): kept whole; a
// page fault without guest_rip has no RIP (unknown), and a kvm_entry without intr_info (before
// 6.14) says nothing of an injection.
TEST(KvmtraceFields, SixtyFourBitErrorCodeAndUnknownsStayUnknown) {
  Fields f;
  f.set(fFaultAddress, 0x7f0000);
  f.set(fErrorCode, 0x100000006ull);
  KvmEvent e;
  ASSERT_TRUE(fill_from_fields(Tracepoint::PageFault, f, e));
  EXPECT_EQ(e.page_fault().error_code, 0x100000006ull);
  EXPECT_FALSE(e.rip);
  Fields entry;
  entry.set(fVcpuId, 1);
  entry.set(fRip, 0x1000);
  KvmEvent en;
  ASSERT_TRUE(fill_from_fields(Tracepoint::Entry, entry, en));
  EXPECT_EQ(en.vcpu, 1);
  EXPECT_EQ(en.rip, 0x1000u);
  EXPECT_FALSE(en.injected);
}

// kvm_inj_exception without has_error (older kernels): whether #GP delivers an error code is the
// vector's architectural property (SDM Vol. 3A 6.13): VM-entry word vector 13, type 3, bit 11.
TEST(KvmtraceFields, InjectedExceptionWithoutHasErrorUsesTheArchitecture_6_13) {
  Fields f;
  f.set(fException, 13);
  f.set(fErrorCode, 0x18);
  KvmEvent e;
  ASSERT_TRUE(fill_from_fields(Tracepoint::InjException, f, e));
  ASSERT_TRUE(e.injected);
  EXPECT_EQ(e.injected->word, 0x80000b0du);
  EXPECT_EQ(e.injected->error_code, 0x18u);
  EXPECT_FALSE(e.injected->reinjected_printed_era) << "no reinjected field: an era that cannot say it";
  Fields no_exception;
  EXPECT_FALSE(fill_from_fields(Tracepoint::InjException, no_exception, e))
      << "the vector is what it cannot do without";
}

// kvm_exit's isa (KVM_ISA_SVM = 2) picks the vendor; without the field (old kernels) VMX.
TEST(KvmtraceFields, ExitVendorFromIsaAndEraFromFields) {
  Fields f;
  f.set(fExitReason, 0x400);
  f.set(fIsa, kIsaSvm);
  f.set(fInfo1, 1);
  f.set(fInfo2, 2);
  KvmEvent e;
  ASSERT_TRUE(fill_from_fields(Tracepoint::Exit, f, e));
  EXPECT_EQ(e.exit.isa, Isa::Svm);
  EXPECT_EQ(e.exit.format, ExitFormat::InfoPair);
  EXPECT_FALSE(e.exit.intr_info);
  f.set(fIntrInfo, 0);
  f.set(fErrorCode, 0);
  ASSERT_TRUE(fill_from_fields(Tracepoint::Exit, f, e));
  EXPECT_EQ(e.exit.format, ExitFormat::IntrInfo);
  Fields old;
  old.set(fExitReason, 48);
  KvmEvent o;
  ASSERT_TRUE(fill_from_fields(Tracepoint::Exit, old, o));
  EXPECT_EQ(o.exit.isa, Isa::Vmx);
  EXPECT_EQ(o.exit.format, ExitFormat::ReasonRipOnly);
}

// Issue #15: the era from the event formats alone, by the fields arch/x86/kvm/trace.h gained
// (kvmtrace/era.cpp cites them): intr_info in kvm_exit 5.10, reinjected in kvm_inj_virq /
// kvm_inj_exception 6.0 (not 5.19), intr_info in kvm_entry 6.14. Debian's 6.1 (the test bed's
// kernel) has kvm_exit intr_info, kvm_entry immediate_exit and reinjected: "Linux 6.0+".
TEST(KvmtraceEraFromFormats, FieldsGivenTheKernelTheyCameIn_Issue15) {
  const auto era = [](bool exit_intr, bool exit_info2, bool reinjected, bool entry_intr, bool immediate) {
    EraEvidence e;
    e.note_format(Tracepoint::Exit,
                  [&](Field f) { return (f == fIntrInfo && exit_intr) || (f == fInfo2 && exit_info2); });
    e.note_format(Tracepoint::Entry,
                  [&](Field f) { return (f == fIntrInfo && entry_intr) || (f == fImmediateExit && immediate); });
    e.note_format(Tracepoint::InjVirq, [&](Field f) { return f == fReinjected && reinjected; });
    return e.formats_era();
  };
  const std::string debian61 = era(true, true, true, false, true);
  EXPECT_EQ(debian61.rfind("Linux 6.0+ (from the event formats: ", 0), 0u) << debian61;
  EXPECT_NE(debian61.find("kvm_entry has immediate_exit"), std::string::npos) << debian61;
  EXPECT_EQ(era(true, true, false, false, false).rfind("Linux 5.10+ ", 0), 0u);
  EXPECT_EQ(era(false, true, false, false, false).rfind("before Linux 5.10 ", 0), 0u);
  EXPECT_EQ(era(true, true, true, true, true).rfind("Linux 6.14+ ", 0), 0u);
  EXPECT_EQ(EraEvidence().formats_era(), "unknown (no kvm_exit event format)");
  // The print formats say the same: "[reinjected]" is a 6.0+ kernel's.
  EraEvidence printed;
  KvmEvent virq;
  virq.event = Tracepoint::InjVirq;
  virq.injected = Injection{0x80000020, 0, true, true};
  printed.note(virq);
  TraceFacts facts;
  printed.describe(false, facts);
  EXPECT_EQ(facts.era.rfind("Linux 6.0+ ", 0), 0u) << facts.era;
}

}  // namespace
