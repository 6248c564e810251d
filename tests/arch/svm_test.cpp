// hv/arch/svm.h: SVM exit codes pinned to AMD APM Vol. 2 Appendix C "SVM Intercept Exit Codes",
// names to the strings KVM's kvm_exit prints (arch/x86/include/uapi/asm/svm.h SVM_EXIT_REASONS)
// and to trace-cmd's kvm plugin ("EXIT_EXCP_GP"); EVENTINJ / EXITINTINFO to APM 15.20.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "hv/arch/svm.h"

namespace es::arch {
namespace {

TEST(SvmExitCode, PinnedCodesCarryKvmsNames_AppendixC) {
  // Expected values written from the APM table and the kernel's SVM_EXIT_REASONS.
  EXPECT_EQ(static_cast<uint32_t>(SvmExitCode::Npf), 0x400u);
  EXPECT_EQ(static_cast<uint32_t>(SvmExitCode::Ioio), 0x7Bu);
  EXPECT_EQ(static_cast<uint32_t>(SvmExitCode::Vmmcall), 0x81u);
  EXPECT_EQ(static_cast<uint32_t>(SvmExitCode::ExcpUd), 0x46u);
  EXPECT_EQ(static_cast<uint32_t>(SvmExitCode::ExcpGp), 0x4Du);
  EXPECT_EQ(static_cast<uint32_t>(SvmExitCode::Intr), 0x60u);
  EXPECT_EQ(static_cast<uint32_t>(SvmExitCode::Vmgexit), 0x403u);
  EXPECT_EQ(static_cast<uint32_t>(SvmExitCode::Invalid), 0xFFFF'FFFFu);
  EXPECT_EQ(svm_exit_name(0x400), "npf");
  EXPECT_EQ(svm_exit_name(0x7B), "io");
  EXPECT_EQ(svm_exit_name(0x81), "hypercall");
  EXPECT_EQ(svm_exit_name(0x46), "UD excp");
  EXPECT_EQ(svm_exit_name(0x4D), "GP excp");
  EXPECT_EQ(svm_exit_name(0x4E), "PF excp");
  EXPECT_EQ(svm_exit_name(0x53), "XF excp");  // #XM, vector 19: KVM prints XF
  EXPECT_EQ(svm_exit_name(0x60), "interrupt");
  EXPECT_EQ(svm_exit_name(0x61), "nmi");
  EXPECT_EQ(svm_exit_name(0x64), "vintr");
  EXPECT_EQ(svm_exit_name(0x69), "read_rt");  // KVM's spelling, sic
  EXPECT_EQ(svm_exit_name(0x78), "hlt");
  EXPECT_EQ(svm_exit_name(0x7C), "msr");
  EXPECT_EQ(svm_exit_name(0x7F), "shutdown");
  EXPECT_EQ(svm_exit_name(0x401), "avic_incomplete_ipi");
  EXPECT_EQ(svm_exit_name(0x402), "avic_unaccelerated_access");
  EXPECT_EQ(svm_exit_name(0xA6), "idle-halt");
  EXPECT_EQ(svm_exit_name(0x8000'0010u), "vmgexit_page_state_change");
  EXPECT_EQ(svm_exit_name(0xFFFF'FFFFu), "invalid_guest_state");
  // Codes Appendix C leaves unassigned have no name.
  EXPECT_TRUE(svm_exit_name(0xA7).empty());
  EXPECT_TRUE(svm_exit_name(0x3FF).empty());
  EXPECT_FALSE(is_known_svm_exit_code(0x404));
}

TEST(SvmExitCode, EveryCrDrAndExceptionInterceptIsNamed_AppendixC) {
  // 0x00-0x0f CR reads, 0x10-0x1f CR writes, 0x20-0x3f DR reads / writes, 0x40-0x5f exceptions.
  for (uint32_t c = 0; c <= 0x5F; ++c) EXPECT_TRUE(is_known_svm_exit_code(c)) << std::hex << c;
  EXPECT_EQ(svm_exit_name(0x00), "read_cr0");
  EXPECT_EQ(svm_exit_name(0x13), "write_cr3");
  EXPECT_EQ(svm_exit_name(0x27), "read_dr7");
  EXPECT_EQ(svm_exit_name(0x37), "write_dr7");
  for (uint32_t v = 0; v < 32; ++v) EXPECT_EQ(svm_exit_exception_vector(0x40 + v), v);
  EXPECT_FALSE(svm_exit_exception_vector(0x60));
  EXPECT_FALSE(svm_exit_exception_vector(0x3F));
}

TEST(SvmExitCode, EverySpellingOfEveryEraParses) {
  struct Case {
    const char* text;
    uint32_t code;
  };
  const Case cases[] = {
      // KVM's print names, any case.
      {"npf", 0x400},
      {"NPF", 0x400},
      {"io", 0x7B},
      {"hypercall", 0x81},
      {"interrupt", 0x60},
      {"UD excp", 0x46},
      {"ud excp", 0x46},
      {"GP_excp", 0x4D},
      {"GP excp", 0x4D},
      {"invalid_guest_state", 0xFFFF'FFFFu},
      // Kernel macros, with and without SVM_EXIT_.
      {"SVM_EXIT_NPF", 0x400},
      {"SVM_EXIT_IOIO", 0x7B},
      {"SVM_EXIT_VMMCALL", 0x81},
      {"SVM_EXIT_INTR", 0x60},
      {"SVM_EXIT_ERR", 0xFFFF'FFFFu},
      {"intr", 0x60},
      {"ioio", 0x7B},
      {"vmmcall", 0x81},
      {"SVM_VMGEXIT_PSC", 0x8000'0010u},
      // trace-cmd's kvm plugin (libtraceevent plugin_kvm.c): "EXIT_" + macro, and lower case.
      {"EXIT_EXCP_GP", 0x4D},
      {"EXIT_EXCP_UD", 0x46},
      {"EXIT_NPF", 0x400},
      {"EXIT_IOIO", 0x7B},
      {"EXIT_MSR", 0x7C},
      {"EXIT_INTR", 0x60},
      {"EXIT_ERR", 0xFFFF'FFFFu},
      {"exit_npf", 0x400},
      {"EXIT_READ_CR0", 0x00},
      {"EXIT_WRITE_DR7", 0x37},
      // APM mnemonics.
      {"VMEXIT_NPF", 0x400},
      {"VMEXIT_IOIO", 0x7B},
      {"VMEXIT_EXCP13", 0x4D},
      {"VMEXIT_CR0_READ", 0x00},
      {"VMEXIT_INVALID", 0xFFFF'FFFFu},
      {"VMEXIT_AVIC_NOACCEL", 0x402},
      {"VMEXIT_VMGEXIT", 0x403},
  };
  for (const Case& c : cases) {
    const auto code = svm_exit_code_from_name(c.text);
    ASSERT_TRUE(code) << c.text;
    EXPECT_EQ(*code, c.code) << c.text;
  }
  // VMX names and nonsense are not SVM exit codes.
  for (const char* bad : {"EPT_VIOLATION", "EXTERNAL_INTERRUPT", "EXIT_REASON_HLT", "bogus", "", "excp", "EXIT_"})
    EXPECT_FALSE(svm_exit_code_from_name(bad)) << bad;
}

TEST(SvmExitCode, NamesRoundTripAndNoSpellingNamesTwoCodes) {
  std::set<std::string> seen;
  unsigned known = 0;
  for (uint64_t c = 0; c <= 0xFFFF'FFFFull; c = (c == 0x500            ? 0x8000'0000ull
                                                 : c == 0x8001'0000ull ? 0xFFFF'FFF0ull
                                                                       : c + 1)) {
    const std::string_view n = svm_exit_name(static_cast<uint32_t>(c));
    if (n.empty()) continue;
    ++known;
    const auto back = svm_exit_code_from_name(n);
    ASSERT_TRUE(back) << n;
    EXPECT_EQ(*back, c) << n;
    std::string upper;
    for (char ch : n) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    EXPECT_TRUE(seen.insert(upper).second) << "two codes named " << n;
  }
  EXPECT_GT(known, 170u);
}

TEST(SvmExitCode, KernelMacroAndApmSpellingsOfEveryEntryLeadBackToIt) {
  struct Row {
    uint32_t code;
    std::string_view macro, apm;
  };
  static constexpr Row kRows[] = {
#define X(enumerator, code, text, macro, apm) {code, macro, apm},
#include "hv/arch/svm_exit_codes.def"
#undef X
  };
  for (const Row& r : kRows) {
    if (!r.macro.empty()) {
      EXPECT_EQ(svm_exit_code_from_name("SVM_EXIT_" + std::string(r.macro)), r.code) << r.macro;
      EXPECT_EQ(svm_exit_code_from_name("EXIT_" + std::string(r.macro)), r.code) << r.macro;
    }
    if (!r.apm.empty()) {
      EXPECT_EQ(svm_exit_code_from_name("VMEXIT_" + std::string(r.apm)), r.code) << r.apm;
    }
  }
}

TEST(SvmEventInfo, FieldsAndPinnedWords_15_20) {
  // #PF with error code 6: V | EV | type 3 << 8 | 14, ERRORCODE in [63:32].
  const auto pf = SvmEventInfo::make(14, SvmEventType::Exception, 6u);
  EXPECT_EQ(pf.raw(), 0x0000'0006'8000'0B0Eull);
  EXPECT_TRUE(pf.valid());
  EXPECT_EQ(pf.vector(), 14);
  EXPECT_EQ(pf.type(), SvmEventType::Exception);
  EXPECT_TRUE(pf.error_code_valid());
  EXPECT_EQ(pf.error_code(), 6u);
  EXPECT_EQ(pf.low(), 0x8000'0B0Eu);
  EXPECT_EQ(SvmEventInfo::from_parts(0x8000'0B0Eu, 6), pf);
  EXPECT_TRUE(pf.reserved_bits_clear());
  EXPECT_FALSE(SvmEventInfo(pf.raw() | (1ull << 12)).reserved_bits_clear());
  EXPECT_FALSE(SvmEventInfo(pf.raw() | (1ull << 30)).reserved_bits_clear());
  EXPECT_EQ(SvmEventInfo::make(0x30, SvmEventType::Intr).raw(), 0x8000'0030ull);
  EXPECT_EQ(SvmEventInfo::make(2, SvmEventType::Nmi).raw(), 0x8000'0202ull);
  EXPECT_EQ(SvmEventInfo::make(0x80, SvmEventType::SoftInt).raw(), 0x8000'0480ull);
  for (uint8_t reserved : {1, 5, 6, 7}) EXPECT_FALSE(SvmEventInfo(0x8000'0000ull | (reserved << 8)).type());
}

TEST(SvmEventInfo, ConvertsToTheVmxEntryWordTheRecordsUse_15_20_26_8_3) {
  // Same vector / EV / V bits; INT3 and INTO become VMX software exceptions (type 6).
  EXPECT_EQ(to_vmx_entry(SvmEventInfo::make(14, SvmEventType::Exception, 6u)).raw(), 0x8000'0B0Eu);
  EXPECT_EQ(to_vmx_entry(SvmEventInfo::make(13, SvmEventType::Exception, 0u)).raw(), 0x8000'0B0Du);
  EXPECT_EQ(to_vmx_entry(SvmEventInfo::make(0x30, SvmEventType::Intr)).raw(), 0x8000'0030u);
  EXPECT_EQ(to_vmx_entry(SvmEventInfo::make(2, SvmEventType::Nmi)).raw(), 0x8000'0202u);
  EXPECT_EQ(to_vmx_entry(SvmEventInfo::make(0x80, SvmEventType::SoftInt)).raw(), 0x8000'0480u);
  EXPECT_EQ(to_vmx_entry(SvmEventInfo::make(3, SvmEventType::Exception)).raw(), 0x8000'0603u);
  EXPECT_EQ(to_vmx_entry(SvmEventInfo::make(4, SvmEventType::Exception)).raw(), 0x8000'0604u);
  EXPECT_EQ(to_vmx_entry(SvmEventInfo::make(6, SvmEventType::Exception)).type(), InterruptionType::HardwareException);
  // Not valid, or a reserved type: nothing to reinject.
  EXPECT_FALSE(to_vmx_entry(SvmEventInfo(0x0000'0B0Eull)).valid());
  EXPECT_FALSE(to_vmx_entry(SvmEventInfo(0x8000'0520ull)).valid());
  EXPECT_EQ(describe(SvmEventInfo::make(14, SvmEventType::Exception, 6u)), "#PF err=0x6");
  EXPECT_EQ(describe(SvmEventInfo::make(0x30, SvmEventType::Intr)), "IRQ 0x30");
  EXPECT_EQ(describe(SvmEventInfo{}), "-");
}

// EXITINFO1 of an NPF, expected from APM 15.25.6 (P / RW / US / RSV / ID in [4:0], [32] final
// translation, [33] the guest's own walk) and SEV-SNP's bits 31 (RMP), 34 (encrypted), 35 (RMP
// page size), 36 (VMPL) as KVM names them (PFERR_GUEST_*). 0x1680000007 is the word a real
// SEV-SNP host printed ten times (tests/data/import/real/github_2024_sev_snp_vmpl_npf_rip0_repeat.txt).
TEST(SvmNpfInfo, EveryErrorCodeBitIsSaid_15_25_6) {
  auto said = [](uint64_t raw) {
    std::string s;
    describe_to(s, SvmNpfInfo(raw));
    return s;
  };
  EXPECT_EQ(said(0x1680000007ull), "W present user page walk rmp encrypted vmpl");
  EXPECT_EQ(said(0x100000014ull), "X not-present user final");
  EXPECT_EQ(said(0x800000000ull), "R not-present rmp-size");
  EXPECT_EQ(said(0x9ull), "R present rsvd");
}

}  // namespace
}  // namespace es::arch
