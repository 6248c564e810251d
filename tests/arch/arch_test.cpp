// hv/arch: pinned SDM constants, decoding from encodings, round trips, reserved bits, the
// double-fault table (Vol. 3A 6.15 Table 6-5) and the qualification decoders.
#include <gtest/gtest.h>

#include <set>

#include "hv/arch/controls.h"
#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"
#include "hv/arch/exit_qualification.h"
#include "hv/arch/exit_reason.h"
#include "hv/arch/vmcs.h"
#include "hv/cpu/vmcs.h"

namespace es::arch {
namespace {

TEST(VmcsField, PinnedSdmEncodings_AppendixB) {
  EXPECT_EQ(static_cast<uint32_t>(VmcsField::VmEntryIntrInfo), 0x4016u);
  EXPECT_EQ(static_cast<uint32_t>(VmcsField::VmExitIntrInfo), 0x4404u);
  EXPECT_EQ(static_cast<uint32_t>(VmcsField::IdtVectoringInfo), 0x4408u);
  EXPECT_EQ(static_cast<uint32_t>(VmcsField::IdtVectoringErrorCode), 0x440Au);
  EXPECT_EQ(static_cast<uint32_t>(VmcsField::EptPointer), 0x201Au);
  EXPECT_EQ(static_cast<uint32_t>(VmcsField::VmExitReason), 0x4402u);
  EXPECT_EQ(static_cast<uint32_t>(VmcsField::ExitQualification), 0x6400u);
  EXPECT_EQ(static_cast<uint32_t>(VmcsField::GuestPhysicalAddress), 0x2400u);
  EXPECT_EQ(static_cast<uint32_t>(VmcsField::GuestLinearAddress), 0x640Au);
  EXPECT_EQ(static_cast<uint32_t>(VmcsField::VmExitInstructionLen), 0x440Cu);
  EXPECT_EQ(static_cast<uint32_t>(VmcsField::VmEntryInstructionLen), 0x401Au);
  EXPECT_EQ(static_cast<uint32_t>(VmcsField::GuestInterruptibilityInfo), 0x4824u);
  EXPECT_EQ(static_cast<uint32_t>(VmcsField::GuestActivityState), 0x4826u);
  EXPECT_EQ(static_cast<uint32_t>(VmcsField::GuestRip), 0x681Eu);
  EXPECT_EQ(static_cast<uint32_t>(VmcsField::ExceptionBitmap), 0x4004u);
  EXPECT_EQ(static_cast<uint32_t>(VmcsField::PinBasedVmExecControl), 0x4000u);
  EXPECT_EQ(static_cast<uint32_t>(VmcsField::CpuBasedVmExecControl), 0x4002u);
}

TEST(VmcsField, WidthAndTypeDecodedFromEncoding_25_11_2) {
  EXPECT_EQ(vmcs_width(VmcsField::GuestCsSelector), VmcsWidth::Bits16);
  EXPECT_EQ(vmcs_width(VmcsField::EptPointer), VmcsWidth::Bits64);
  EXPECT_EQ(vmcs_width(VmcsField::VmExitIntrInfo), VmcsWidth::Bits32);
  EXPECT_EQ(vmcs_width(VmcsField::GuestRip), VmcsWidth::Natural);
  EXPECT_EQ(vmcs_type(VmcsField::PinBasedVmExecControl), VmcsType::Control);
  EXPECT_EQ(vmcs_type(VmcsField::VmExitReason), VmcsType::ReadOnly);
  EXPECT_EQ(vmcs_type(VmcsField::GuestRip), VmcsType::GuestState);
  EXPECT_EQ(vmcs_type(VmcsField::HostRip), VmcsType::HostState);
  EXPECT_TRUE(vmcs_high_access(0x201B));
  EXPECT_FALSE(vmcs_high_access(0x201A));
}

TEST(VmcsField, EveryTableNameRoundTripsAndSlotsAreDense) {
  std::set<std::string_view> names;
  std::set<std::size_t> slots;
  hv::Vmcs v;
  for (std::size_t i = 0; i < kVmcsFieldCount; ++i) {
    const VmcsField f = vmcs_field_at(static_cast<VmcsIndex>(i));
    EXPECT_EQ(vmcs_index(f), static_cast<VmcsIndex>(i));
    auto back = vmcs_field_from_encoding(static_cast<uint32_t>(f));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, f);
    const auto name = to_string(f);
    EXPECT_NE(name, "?");
    EXPECT_TRUE(names.insert(name).second) << name;
    // The model's O(1) slot lookup agrees with the table index.
    v.write(f, 0x1234 + i);
  }
  for (std::size_t i = 0; i < kVmcsFieldCount; ++i) {
    const VmcsField f = vmcs_field_at(static_cast<VmcsIndex>(i));
    EXPECT_EQ(v.read(f), (0x1234 + i) & vmcs_width_mask(vmcs_width(f))) << to_string(f);
  }
  EXPECT_FALSE(vmcs_field_from_encoding(0x7FFE).has_value());
}

TEST(VmcsStorage, HighAccessOf64BitFields_25_11_2) {
  hv::Vmcs v;
  ASSERT_TRUE(v.write_encoding(0x201A, 0x1111'2222'3333'4444ull));
  uint64_t hi = 0;
  ASSERT_TRUE(v.read_encoding(0x201B, hi));
  EXPECT_EQ(hi, 0x1111'2222u);
  EXPECT_FALSE(v.read_encoding(0x4017, hi)) << "no high access for a 32-bit field";
  v.write(VmcsField::VmExitIntrInfo, ~0ull);
  EXPECT_EQ(v.read(VmcsField::VmExitIntrInfo), 0xFFFF'FFFFull);
}

TEST(ExitReason, NamesRoundTripAndFlagsDecode_AppendixC) {
  unsigned known = 0;
  for (uint16_t r = 0; r < kExitReasonLimit; ++r) {
    if (!is_known_exit_reason(r)) continue;
    ++known;
    EXPECT_EQ(exit_reason_from_name(exit_reason_name(r)), r);
    EXPECT_EQ(exit_reason_from_name(std::string("exit_reason_") + std::string(exit_reason_name(r))), r);
  }
  EXPECT_GT(known, 60u);
  EXPECT_EQ(exit_reason_name(48), "EPT_VIOLATION");
  EXPECT_EQ(exit_reason_from_name("bogus"), -1);
  const ExitReason e(0x8000'0021u);
  EXPECT_TRUE(e.entry_failure());
  EXPECT_EQ(e.basic(), BasicExitReason::InvalidGuestState);
  EXPECT_TRUE(e.reserved_bits_clear());
  EXPECT_FALSE(ExitReason(1u << 16).reserved_bits_clear());
}

TEST(EventWords, EveryTypeRoundTripsInAllThreeWords_26_8_3_28_2_2_28_2_4) {
  for (unsigned t = 0; t < 8; ++t) {
    const auto type = static_cast<InterruptionType>(t);
    for (bool ec : {false, true}) {
      const auto e = EntryIntrInfo::make(0x2A, type, ec);
      EXPECT_TRUE(e.valid());
      EXPECT_EQ(e.type(), type);
      EXPECT_EQ(e.vector(), 0x2A);
      EXPECT_EQ(e.deliver_error_code(), ec);
      EXPECT_TRUE(e.reserved_bits_clear());
      const auto x = ExitIntrInfo::make(0x2A, type, ec, true, true);
      EXPECT_EQ(x.type(), type);
      EXPECT_TRUE(x.nmi_unblocking_due_to_iret());
      EXPECT_TRUE(x.nested_exception());
      EXPECT_TRUE(x.reserved_bits_clear());
      const auto v = IdtVectoringInfo::make(0x2A, type, ec);
      EXPECT_EQ(to_idt_vectoring(to_reinjection(v)), v);
      EXPECT_EQ(to_reinjection(v), e);
      EXPECT_FALSE(to_string(type).empty());
    }
  }
}

TEST(EventWords, ReservedBitsDetectedPerWord) {
  EXPECT_FALSE(EntryIntrInfo(0x8000'1020u).reserved_bits_clear()) << "entry: bit 12 reserved";
  EXPECT_TRUE(ExitIntrInfo(0x8000'1020u).reserved_bits_clear()) << "exit: bit 12 = NMI unblocking";
  EXPECT_TRUE(ExitIntrInfo(0x8000'2020u).reserved_bits_clear()) << "exit: bit 13 = nested exception";
  EXPECT_FALSE(ExitIntrInfo(0x8000'4020u).reserved_bits_clear());
  EXPECT_TRUE(IdtVectoringInfo(0x8000'1020u).reserved_bits_clear()) << "vectoring: bit 12 undefined, not reserved";
  EXPECT_FALSE(IdtVectoringInfo(0x8000'2020u).reserved_bits_clear());
  // Reinjection drops the undefined bit.
  EXPECT_EQ(to_reinjection(IdtVectoringInfo(0x8000'1B0Eu)).raw(), 0x8000'0B0Eu);
  EXPECT_FALSE(to_reinjection(IdtVectoringInfo(0x0000'0B0Eu)).valid());
  EXPECT_EQ(describe(IdtVectoringInfo::make(0x20, InterruptionType::ExternalInterrupt)), "IRQ 0x20");
}

TEST(DoubleFaultTable, AllClassPairs_6_15_Table6_5) {
  using C = ExceptionClass;
  using F = FaultDuringDelivery;
  const C classes[] = {C::Benign, C::Contributory, C::PageFault, C::DoubleFault};
  // Rows: first; columns: second (Benign, Contributory, PageFault, DoubleFault).
  const F want[4][4] = {
      {F::Serial, F::Serial, F::Serial, F::Serial},
      {F::Serial, F::DoubleFault, F::Serial, F::Serial},
      {F::Serial, F::DoubleFault, F::DoubleFault, F::Serial},
      {F::Serial, F::TripleFault, F::TripleFault, F::TripleFault},
  };
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) EXPECT_EQ(fault_during_delivery(classes[a], classes[b]), want[a][b]) << a << "," << b;
  for (uint8_t v : {kDE, kTS, kNP, kSS, kGP}) EXPECT_EQ(exception_class(v), C::Contributory);
  EXPECT_EQ(exception_class(kPF), C::PageFault);
  EXPECT_EQ(exception_class(kDF), C::DoubleFault);
  for (uint8_t v : {kDB, kNMI, kBP, kOF, kBR, kUD, kNM, kMF, kAC, kMC, kXM}) EXPECT_EQ(exception_class(v), C::Benign);
  for (uint8_t v : {kDF, kTS, kNP, kSS, kGP, kPF, kAC}) EXPECT_TRUE(exception_has_error_code(v));
  for (uint8_t v : {kDE, kDB, kBP, kUD, kNMI}) EXPECT_FALSE(exception_has_error_code(v));
}

TEST(Qualifications, EptViolationIoAndCrAccessDecode_28_2_1) {
  const EptViolationQual e(EptViolationQual::kWrite | EptViolationQual::kReadable | EptViolationQual::kLinearValid |
                           EptViolationQual::kNmiUnblocking);
  EXPECT_TRUE(e.write());
  EXPECT_FALSE(e.read());
  EXPECT_TRUE(e.readable());
  EXPECT_TRUE(e.entry_present());
  EXPECT_TRUE(e.linear_address_valid());
  EXPECT_FALSE(e.translated_access());
  EXPECT_TRUE(e.nmi_unblocking_due_to_iret());
  EXPECT_TRUE(e.reserved_bits_clear());
  EXPECT_FALSE(EptViolationQual(1ull << 20).reserved_bits_clear());
  const auto io = IoQual::make(0x3F8, 4, true, false, true, true);
  EXPECT_EQ(io.raw(), 0x3F8'0000ull | 3 | 8 | 32 | 64);
  EXPECT_EQ(io.port(), 0x3F8);
  EXPECT_EQ(io.size(), 4u);
  EXPECT_TRUE(io.in() && io.rep() && io.immediate() && !io.string());
  EXPECT_EQ(describe(io), "rep in 0x3f8 size 4 imm");
  const auto cr = CrAccessQual::make_mov(4, CrAccessType::MovFromCr, 11);
  EXPECT_EQ(cr.raw(), 0xB14u);
  EXPECT_EQ(cr.cr(), 4u);
  EXPECT_EQ(cr.gpr(), 11u);
  EXPECT_EQ(describe(cr), "mov from cr4 to r11");
  EXPECT_FALSE(CrAccessQual(0x80).reserved_bits_clear());
}

}  // namespace
}  // namespace es::arch
