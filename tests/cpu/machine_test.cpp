// Instruction-caused VM exits (Vol. 3C 26.1 "Instructions That Cause VM Exits"), paging and
// EPT faults (Vol. 3A 4.7 "Page-Fault Exceptions", Vol. 3C 29.3.3 "EPT-Induced VM Exits"),
// caches and instruction semantics.
#include "cpu_test_guests.h"
#include "tests/cpu/harness.h"

namespace es::hv::test {
namespace {

using arch::BasicExitReason;
constexpr uint64_t frame(unsigned v) { return 0x80000 + v * 0x40; }
enum Scenario : uint64_t {
  kSpin,
  kStiSpin,
  kInt80,
  kInt3,
  kInt1,
  kInto,
  kUd2,
  kLockReg,
  kUser,
  kExits,
  kStiShadow,
  kMovSs,
  kHlt,
  kCr0,
  kCr3InvlpgRdtsc,
  kWriteRo,
  kReadPt2,
  kSmc,
  kUnimpl,
  kInPorts,
  kReadUnmapped,
  kNxFetch,
  kInt21,
  kAlu
};
struct Vm : TestVm {
  explicit Vm(uint64_t s) : TestVm(cpu_guest_kernel, cpu_guest_kernel_size) { gprs_.r[GuestGprs::RBX] = s; }
  uint64_t qual() const { return vmcs_.read(VmcsField::ExitQualification); }
  uint64_t len() const { return vmcs_.read(VmcsField::VmExitInstructionLen); }
};

TEST(InstructionExits, CpuidRdmsrWrmsrVmcallExitWithLengths_26_1_2) {
  Vm vm(kExits);
  const uint32_t want[] = {10, 31, 32, 18};
  for (uint32_t r : want) {
    vm.run();
    ASSERT_EQ(vm.basic_reason(), r);
    EXPECT_EQ(vm.len(), r == 18 ? 3u : 2u);
    vm.skip_insn();
  }
  vm.run();
  vm.expect_done();
}

TEST(InstructionExits, IoBitmapsSelectPorts_25_6_4) {
  Vm vm(kInPorts);
  const uint64_t bitmap_a = vm.mem_.alloc_page(), bitmap_b = vm.mem_.alloc_page();
  vm.vmcs_.write(VmcsField::IoBitmapA, bitmap_a);
  vm.vmcs_.write(VmcsField::IoBitmapB, bitmap_b);
  vm.vmcs_.clear_bits(VmcsField::CpuBasedVmExecControl, arch::proc_ctl::kUnconditionalIoExiting);
  vm.vmcs_.set_bits(VmcsField::CpuBasedVmExecControl, arch::proc_ctl::kUseIoBitmaps);
  vm.mem_.write<uint8_t>(bitmap_a + 0x80 / 8, 1u << (0x80 % 8));
  vm.mem_.write<uint8_t>(bitmap_a + kPortDone / 8, 1u << (kPortDone % 8));
  vm.run();
  ASSERT_EQ(vm.basic_reason(), 30u);
  const arch::IoQual q(vm.qual());
  EXPECT_EQ(q.port(), 0x80);
  EXPECT_TRUE(q.in());
  EXPECT_TRUE(q.immediate());
  vm.skip_insn();
  vm.run();
  vm.expect_done();  // port 0x81 did not exit
}

TEST(InstructionExits, Cr0WriteExitsOnlyWhenOwnedBitDiffersFromShadow_25_6_6) {
  Vm vm(kCr0);
  vm.vmcs_.write(VmcsField::Cr0GuestHostMask, arch::cr0::kWP);
  vm.vmcs_.write(VmcsField::Cr0ReadShadow, arch::cr0::kWP);
  vm.run();
  ASSERT_EQ(vm.basic_reason(), 28u);
  const arch::CrAccessQual q(vm.qual());
  EXPECT_EQ(q.cr(), 0u);
  EXPECT_EQ(q.access_type(), arch::CrAccessType::MovToCr);
  EXPECT_EQ(q.gpr(), 1u);  // rcx
  EXPECT_EQ(vm.len(), 3u);
  EXPECT_EQ(vm.r64(0x80F00) & arch::cr0::kWP, arch::cr0::kWP) << "MOV from CR0 reads the shadow for owned bits";
}

TEST(InstructionExits, Cr3LoadInvlpgRdtscExiting_26_1_3) {
  Vm vm(kCr3InvlpgRdtsc);
  vm.vmcs_.set_bits(VmcsField::CpuBasedVmExecControl,
                    arch::proc_ctl::kCr3LoadExiting | arch::proc_ctl::kInvlpgExiting | arch::proc_ctl::kRdtscExiting);
  vm.run();
  ASSERT_EQ(vm.basic_reason(), 28u);
  EXPECT_EQ(arch::CrAccessQual(vm.qual()).cr(), 3u);
  vm.skip_insn();
  vm.run();
  ASSERT_EQ(vm.basic_reason(), 14u);
  EXPECT_EQ(vm.qual(), 0x81000u);
  vm.skip_insn();
  vm.run();
  ASSERT_EQ(vm.basic_reason(), 16u);
  EXPECT_EQ(vm.len(), 2u);
}

TEST(PageFault, WriteToReadOnlyPageWithWpRaisesPfWithErrorCodeAndCr2_4_7) {
  Vm vm(kWriteRo);
  vm.set_pte(0x90000, 0x90000 | arch::pte::kPresent | arch::pte::kUser);
  vm.run();
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, arch::kPF);
  EXPECT_EQ(vm.r64(frame(arch::kPF) + 0x08), arch::pf_error::kPresent | arch::pf_error::kWrite);
  EXPECT_EQ(vm.r64(frame(arch::kPF) + 0x38) & 0xFFFFFFFF, 0x90000u);
  const es_record* raise = vm.log_.last(ES_KIND_RAISE);
  ASSERT_NE(raise, nullptr);
  EXPECT_EQ(raise->guest_linear, 0x90000u);
  EXPECT_EQ(vm.log_.last(ES_KIND_DELIVERY)->guest_linear, 0x90000u);
}

TEST(PageFault, NxFetchSetsInstructionFetchBit_4_7) {
  Vm vm(kNxFetch);
  vm.set_pte(0x91000, 0x91000 | arch::pte::kPresent | arch::pte::kWrite | arch::pte::kNoExecute);
  vm.run();
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, arch::kPF);
  EXPECT_EQ(vm.r64(frame(arch::kPF) + 0x08), arch::pf_error::kPresent | arch::pf_error::kFetch);
  EXPECT_EQ(vm.r64(frame(arch::kPF) + 0x10), 0x91000u);
}

TEST(PageFault, PfecMaskMatchSelectsInterceptedFaults_25_6_3) {
  // Bitmap bit 14 = 1, mask = P, match = 0: only not-present faults exit.
  {
    Vm vm(kReadUnmapped);
    vm.vmcs_.write(VmcsField::ExceptionBitmap, 1u << arch::kPF);
    vm.vmcs_.write(VmcsField::PageFaultErrorCodeMask, arch::pf_error::kPresent);
    vm.vmcs_.write(VmcsField::PageFaultErrorCodeMatch, 0);
    vm.run();
    EXPECT_EQ(vm.basic_reason(), 0u);
    EXPECT_EQ(vm.qual(), 0x400000u);
    EXPECT_EQ(vm.vmcs_.read32(VmcsField::VmExitIntrErrorCode), 0u);
  }
  {
    Vm vm(kWriteRo);
    vm.set_pte(0x90000, 0x90000 | arch::pte::kPresent);
    vm.vmcs_.write(VmcsField::ExceptionBitmap, 1u << arch::kPF);
    vm.vmcs_.write(VmcsField::PageFaultErrorCodeMask, arch::pf_error::kPresent);
    vm.vmcs_.write(VmcsField::PageFaultErrorCodeMatch, 0);
    vm.run();
    vm.expect_done();  // protection fault: delivered to the guest
    EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, arch::kPF);
  }
}

TEST(Ept, ViolationOnDataReadHasTranslatedAccessQualification_28_2_1) {
  Vm vm(kReadPt2);
  vm.ept_unmap(0x200000);
  vm.run();
  ASSERT_EQ(vm.basic_reason(), 48u);
  const arch::EptViolationQual q(vm.qual());
  EXPECT_TRUE(q.read());
  EXPECT_FALSE(q.write());
  EXPECT_TRUE(q.linear_address_valid());
  EXPECT_TRUE(q.translated_access());
  EXPECT_EQ(vm.vmcs_.read(VmcsField::GuestPhysicalAddress), 0x200000u);
  EXPECT_EQ(vm.vmcs_.read(VmcsField::GuestLinearAddress), 0x200000u);
  EXPECT_EQ(vm.len(), 0u);
  EXPECT_EQ(vm.vmcs_.read32(VmcsField::IdtVectoringInfo) >> 31, 0u);
}

TEST(Ept, AccessedFlagWriteToReadOnlyPagingStructureIsPagingStructureAccess_28_2_1) {
  Vm vm(kReadPt2);
  vm.set_pte(0x200000, 0x200000 | arch::pte::kPresent | arch::pte::kWrite);  // A = 0
  vm.ept_map(0x5000, arch::ept::kRead);                                      // the PT for 2..4 MiB is read-only in EPT
  vm.run();
  ASSERT_EQ(vm.basic_reason(), 48u);
  const arch::EptViolationQual q(vm.qual());
  EXPECT_TRUE(q.write());
  EXPECT_TRUE(q.readable());
  EXPECT_FALSE(q.writable());
  EXPECT_TRUE(q.linear_address_valid());
  EXPECT_FALSE(q.translated_access()) << "bit 8 = 0: access to a paging-structure entry";
  EXPECT_EQ(vm.vmcs_.read(VmcsField::GuestPhysicalAddress), 0x5000u);
  EXPECT_EQ(vm.vmcs_.read(VmcsField::GuestLinearAddress), 0x200000u);
}

TEST(Ept, WriteWithoutReadIsMisconfiguration_29_3_3_1) {
  Vm vm(kReadPt2);
  vm.ept_map(0x200000, arch::ept::kWrite);
  vm.run();
  EXPECT_EQ(vm.basic_reason(), 49u);
  EXPECT_EQ(vm.vmcs_.read(VmcsField::GuestPhysicalAddress), 0x200000u);
}

TEST(Paging, AccessedAndDirtyFlagsSetByWrites_4_8) {
  Vm vm(kWriteRo);
  vm.set_pte(0x90000, 0x90000 | arch::pte::kPresent | arch::pte::kWrite);
  vm.run();
  vm.expect_done();
  EXPECT_EQ(vm.pte(0x90000) & (arch::pte::kAccessed | arch::pte::kDirty), arch::pte::kAccessed | arch::pte::kDirty);
  EXPECT_EQ(vm.r64(0x90000), 1u);
}

TEST(DecodeCache, SelfModifyingCodeExecutesNewBytes) {
  Vm vm(kSmc);
  vm.run();
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, 0x55u);
}

TEST(Interpreter, UnimplementedInstructionEndsRunWithInternalError) {
  Vm vm(kUnimpl);
  const auto e = vm.run();
  EXPECT_EQ(e.stop, StopReason::InternalError);
  const es_record* r = vm.log_.last(ES_KIND_INTERNAL_ERROR);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->reason, static_cast<uint32_t>(ES_ERROR_UNIMPLEMENTED_INSN));
  EXPECT_EQ(r->flags & ES_FLAG_BYTES_VALID, ES_FLAG_BYTES_VALID);
  EXPECT_EQ(r->bytes[0], 0xD9);
  EXPECT_EQ(r->bytes[1], 0xE8);
  EXPECT_EQ(*vm.host(r->rip), 0xD9);
  EXPECT_EQ(vm.rip(), r->rip);
}

TEST(Interpreter, ArithmeticAndStringResults) {
  Vm vm(kAlu);
  vm.run();
  vm.expect_done();
  EXPECT_EQ(vm.r64(0x80E00), static_cast<uint64_t>(-35));
  EXPECT_EQ(vm.r64(0x80E08), arch::rflags::kCF | arch::rflags::kZF | arch::rflags::kPF | arch::rflags::kAF);
  EXPECT_EQ(vm.r64(0x80E10), ~0ull);
  EXPECT_EQ(vm.r64(0x80E18), (6ull << 32) | 142);
  EXPECT_EQ(vm.r64(0x80E20), 254u);
  EXPECT_EQ(vm.r64(0x80E28), 55u);
  EXPECT_EQ(vm.r64(0x80E30), 1u);
  uint64_t v = 0x0123456789ABCDEFull;
  v = (v << 8) | (v >> 56);
  EXPECT_EQ(vm.r64(0x80E38), __builtin_bswap64(v));
  EXPECT_EQ(vm.r64(0x80E40), 0x5A5A5A5A5A5A5A5Aull);
}

TEST(Api, TranslateAndGuestPhysAccessWalkWithoutSideEffects) {
  Vm vm(kSpin);
  uint64_t gpa = 0;
  ASSERT_TRUE(vm.cpu_.translate_linear(vm.vmcs_, 0x12345, gpa));
  EXPECT_EQ(gpa, 0x12345u);
  EXPECT_FALSE(vm.cpu_.translate_linear(vm.vmcs_, 0x400000, gpa));
  const uint64_t v = 0xDEADBEEF;
  ASSERT_TRUE(vm.cpu_.write_guest_phys(vm.vmcs_, 0x81000, &v, 8));
  EXPECT_EQ(vm.r64(0x81000), v);
  uint64_t back = 0;
  ASSERT_TRUE(vm.cpu_.read_guest_phys(vm.vmcs_, 0x81000, &back, 8));
  EXPECT_EQ(back, v);
  vm.ept_unmap(0x81000);
  EXPECT_FALSE(vm.cpu_.read_guest_phys(vm.vmcs_, 0x81000, &back, 8));
}

}  // namespace
}  // namespace es::hv::test
