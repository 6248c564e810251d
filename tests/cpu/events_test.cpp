// Event delivery, VM-entry injection and VM-exit information, each test named after the
// rule it checks with the SDM section (Intel SDM edition with VMX in Vol. 3C ch. 25-29:
// 26 "VMX Non-Root Operation", 27 "VM Entries", 28 "VM Exits"; Vol. 3A ch. 6 "Interrupt and
// Exception Handling").
#include "cpu_test_guests.h"
#include "tests/cpu/harness.h"

namespace es::hv::test {
namespace {

using arch::BasicExitReason;
using arch::EntryIntrInfo;
using arch::ExitIntrInfo;
using arch::IdtVectoringInfo;
using arch::InterruptionType;
namespace intr = arch::interruptibility;

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

struct KernelVm : TestVm {
  explicit KernelVm(uint64_t scenario, CpuConfig cfg = {}) : TestVm(cpu_guest_kernel, cpu_guest_kernel_size, cfg) {
    gprs_.r[GuestGprs::RBX] = scenario;
    entry_rip = rip();
  }
  void inject(EntryIntrInfo e, uint32_t error = 0, uint32_t len = 0) {
    vmcs_.write(VmcsField::VmEntryIntrInfo, e.raw());
    vmcs_.write(VmcsField::VmEntryExceptionErrorCode, error);
    vmcs_.write(VmcsField::VmEntryInstructionLen, len);
  }
  void set_proc(uint32_t bits, bool on = true) {
    on ? vmcs_.set_bits(VmcsField::CpuBasedVmExecControl, bits)
       : vmcs_.clear_bits(VmcsField::CpuBasedVmExecControl, bits);
  }
  void set_pin(uint32_t bits, bool on = true) {
    on ? vmcs_.set_bits(VmcsField::PinBasedVmExecControl, bits)
       : vmcs_.clear_bits(VmcsField::PinBasedVmExecControl, bits);
  }
  uint32_t exit_info() const { return vmcs_.read32(VmcsField::VmExitIntrInfo); }
  uint32_t vectoring() const { return vmcs_.read32(VmcsField::IdtVectoringInfo); }
  uint64_t qual() const { return vmcs_.read(VmcsField::ExitQualification); }
  uint64_t entry_rip = 0;
};

// ------------------------------------------------------------------ 27.2.1.3 entry checks

TEST(EntryChecks, InvalidInjectionFieldsFailWithError7_27_2_1_3) {
  // Vol. 3C 27.2.1.3 "Checks on VM-Entry Control Fields" (event injection).
  struct Case {
    uint32_t info;
    uint32_t len;
    uint32_t error;
    const char* what;
  };
  const Case cases[] = {
      {EntryIntrInfo::make(3, InterruptionType::Nmi).raw(), 0, 0, "NMI with vector != 2"},
      {EntryIntrInfo::make(0x20, InterruptionType::Reserved1).raw(), 0, 0, "reserved type 1"},
      {EntryIntrInfo::make(40, InterruptionType::HardwareException).raw(), 0, 0, "hardware exception vector > 31"},
      {EntryIntrInfo::make(arch::kBP, InterruptionType::HardwareException, true).raw(), 0, 0, "error code for #BP"},
      {EntryIntrInfo::make(arch::kGP, InterruptionType::HardwareException, false).raw(), 0, 0,
       "#GP without error code"},
      {EntryIntrInfo::make(0x20, InterruptionType::ExternalInterrupt, true).raw(), 0, 0, "error code for IRQ"},
      {EntryIntrInfo::make(0x20, InterruptionType::ExternalInterrupt).raw() | (1u << 20), 0, 0, "reserved bit 20"},
      {EntryIntrInfo::make(0x80, InterruptionType::SoftwareInterrupt).raw(), 0, 0, "INT n with length 0"},
      {EntryIntrInfo::make(3, InterruptionType::SoftwareException).raw(), 16, 0, "INT3 with length 16"},
      {EntryIntrInfo::make(1, InterruptionType::PrivilegedSoftwareException).raw(), 0, 0, "INT1 with length 0"},
      {EntryIntrInfo::make(arch::kGP, InterruptionType::HardwareException, true).raw(), 0, 0x10000,
       "error code bits 31:16"},
  };
  for (const Case& c : cases) {
    KernelVm vm(kSpin);
    vm.vmcs_.write(VmcsField::VmEntryIntrInfo, c.info);
    vm.vmcs_.write(VmcsField::VmEntryInstructionLen, c.len);
    vm.vmcs_.write(VmcsField::VmEntryExceptionErrorCode, c.error);
    const auto e = vm.run();
    EXPECT_EQ(e.stop, StopReason::EntryFailed) << c.what;
    EXPECT_EQ(vm.vmcs_.read(VmcsField::VmInstructionError), 7u) << c.what;
    EXPECT_EQ(vm.rip(), vm.entry_rip) << c.what;
    EXPECT_TRUE(vm.log_.of_kind(ES_KIND_VM_ENTRY).empty()) << c.what;
  }
  // The valid counterparts enter.
  KernelVm ok(kSpin);
  ok.inject(EntryIntrInfo::make(3, InterruptionType::SoftwareException), 0, 1);
  EXPECT_EQ(ok.run().stop, StopReason::VmExit);
}

TEST(EntryChecks, ExternalInterruptWithIfClearFailsGuestState_27_3_1_5) {
  // Vol. 3C 27.3.1.5 "Checks on Guest Non-Register State": injecting an external interrupt
  // needs RFLAGS.IF = 1 -> VM-entry failure, exit reason 33 with bit 31.
  KernelVm vm(kSpin);
  vm.inject(EntryIntrInfo::make(0x20, InterruptionType::ExternalInterrupt));
  const auto e = vm.run();
  ASSERT_EQ(e.stop, StopReason::VmExit);
  EXPECT_EQ(vm.vmcs_.read32(VmcsField::VmExitReason), 33u | 0x8000'0000u);
  EXPECT_TRUE(e.reason.entry_failure());
}

// ------------------------------------------------------------------ 27.6 event injection

TEST(Injection, ExternalInterruptDeliveredAsIfAfterEntry_27_6) {
  // Vol. 3C 27.6 "Event Injection"; Vol. 3A 6.14.2 "64-Bit Mode Stack Frame".
  KernelVm vm(kSpin);
  vm.vmcs_.write(VmcsField::GuestRflags, 0x202);
  vm.vmcs_.write(VmcsField::GuestRsp, 0x6FFF8);  // misaligned: the frame is 16-byte aligned
  vm.inject(EntryIntrInfo::make(0x20, InterruptionType::ExternalInterrupt));
  EntryContext ctx;
  ctx.cause = 4242;
  ctx.origin = 777;
  vm.run(ctx);
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, 0x20u);
  EXPECT_EQ(vm.r64(frame(0x20)), 0x6FFF0u - 40);  // aligned down to 0x6FFF0, 5 qwords
  EXPECT_EQ(vm.r64(frame(0x20) + 0x08), vm.entry_rip);
  EXPECT_EQ(vm.r64(frame(0x20) + 0x10), kGuestCodeSel);
  EXPECT_EQ(vm.r64(frame(0x20) + 0x18), 0x202u);
  EXPECT_EQ(vm.r64(frame(0x20) + 0x20), 0x6FFF8u);
  EXPECT_EQ(vm.r64(frame(0x20) + 0x28), kGuestDataSel);
  EXPECT_EQ(vm.r64(frame(0x20) + 0x3C) & 0x200, 0u) << "interrupt gate clears IF";
  // Records: entry -> delivery (cause entry, origin from the vmm) -> exit.
  const auto entries = vm.log_.of_kind(ES_KIND_VM_ENTRY);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].intr_info, EntryIntrInfo::make(0x20, InterruptionType::ExternalInterrupt).raw());
  EXPECT_EQ(entries[0].cause, 4242u);
  EXPECT_EQ(entries[0].origin, 777u);
  const auto del = vm.log_.of_kind(ES_KIND_DELIVERY);
  ASSERT_EQ(del.size(), 1u);
  EXPECT_EQ(del[0].cause, entries[0].id);
  EXPECT_EQ(del[0].origin, 777u);
  EXPECT_EQ(del[0].aux64, vm.entry_rip);
  EXPECT_EQ(del[0].intr_info, entries[0].intr_info);
  EXPECT_TRUE(vm.log_.of_kind(ES_KIND_RAISE).empty()) << "an injected event is the vmm's chain, not a new one";
  EXPECT_EQ(vm.vmcs_.read32(VmcsField::VmEntryIntrInfo) >> 31, 0u) << "28.2.5: valid bit cleared at exit";
}

TEST(Injection, SoftwareInterruptPushesRipPlusEntryInstructionLength_27_6_1) {
  KernelVm vm(kSpin);
  vm.inject(EntryIntrInfo::make(0x80, InterruptionType::SoftwareInterrupt), 0, 2);
  vm.run();
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, 0x80u);
  EXPECT_EQ(vm.r64(frame(0x80) + 0x08), vm.entry_rip + 2);
  EXPECT_EQ(vm.log_.of_kind(ES_KIND_DELIVERY)[0].aux64, vm.entry_rip + 2);
}

TEST(Injection, HardwareExceptionPushesErrorCode_27_6_1) {
  KernelVm vm(kSpin);
  vm.inject(EntryIntrInfo::make(arch::kGP, InterruptionType::HardwareException, true), 0x1234);
  vm.run();
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, static_cast<uint64_t>(arch::kGP));
  EXPECT_EQ(vm.r64(frame(arch::kGP) + 0x08), 0x1234u);
  EXPECT_EQ(vm.r64(frame(arch::kGP) + 0x10), vm.entry_rip);
}

TEST(Injection, InjectedEventWakesHltActivityState_27_6_2) {
  KernelVm vm(kSpin);
  vm.vmcs_.write(VmcsField::GuestActivityState, static_cast<uint64_t>(arch::ActivityState::Hlt));
  vm.vmcs_.write(VmcsField::GuestRflags, 0x202);
  vm.inject(EntryIntrInfo::make(0x30, InterruptionType::ExternalInterrupt));
  vm.run();
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, 0x30u);
  EXPECT_EQ(vm.vmcs_.read32(VmcsField::GuestActivityState), 0u);
}

TEST(Injection, InjectedNmiSetsVirtualNmiBlocking_27_6_1) {
  KernelVm vm(kSpin);
  vm.inject(EntryIntrInfo::make(2, InterruptionType::Nmi));
  EntryContext ctx;
  ctx.max_insns = 10;  // the NMI handler's mark exits first
  auto e = vm.run(ctx);
  ASSERT_EQ(e.stop, StopReason::VmExit);
  EXPECT_EQ(vm.exit_port(), kPortMark);
  EXPECT_TRUE(vm.vmcs_.read32(VmcsField::GuestInterruptibilityInfo) & intr::kBlockingByNmi);
}

// ------------------------------------------------------------------ 6.14 delivery

TEST(IdtDelivery, BadGateTypeRaisesGpWithIdtErrorCode_6_14_1) {
  KernelVm vm(kInt21);
  vm.w64(kIdt + 0x21 * 16, (vm.r64(kIdt + 0x21 * 16) & ~(0xFull << 40)) | (0xCull << 40));  // call gate type
  vm.run();
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, static_cast<uint64_t>(arch::kGP));
  EXPECT_EQ(vm.r64(frame(arch::kGP) + 0x08), 0x21u * 8 + 2);  // IDT bit, EXT = 0 for INT n
}

TEST(IdtDelivery, NotPresentGateRaisesNp_6_14_1) {
  KernelVm vm(kInt21);
  vm.set_gate(0x21, 0x10000, 3, 0, false, /*present=*/false);
  vm.run();
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, static_cast<uint64_t>(arch::kNP));
  EXPECT_EQ(vm.r64(frame(arch::kNP) + 0x08), 0x21u * 8 + 2);
}

TEST(IdtDelivery, IntNWithGateDplBelowCplRaisesGp_6_12_1_1) {
  KernelVm vm(kUser);
  const uint64_t lo = vm.r64(kIdt + 0x80 * 16);
  const uint64_t handler = (lo & 0xFFFF) | (((lo >> 48) & 0xFFFF) << 16);
  vm.set_gate(0x80, handler, 0);
  vm.run();
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, static_cast<uint64_t>(arch::kGP));
  EXPECT_EQ(vm.r64(frame(arch::kGP) + 0x08), 0x80u * 8 + 2);
  EXPECT_EQ(vm.r64(frame(arch::kGP) + 0x18), kGuestUserCodeSel) << "#GP delivered from CPL 3";
  EXPECT_EQ(vm.r64(frame(arch::kGP)), kKernelStack - 48) << "stack switched to TSS.RSP0";
}

TEST(IdtDelivery, PrivilegeChangeSwitchesToTssRsp0AndIretReturnsToUser_6_14_4) {
  KernelVm vm(kUser);
  auto e = vm.run();
  vm.expect_done();
  (void)e;
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, 0x80u);
  // Frame on the RSP0 stack: RIP, CS (user), RFLAGS, RSP (user), SS (user).
  EXPECT_EQ(vm.r64(frame(0x80)), kKernelStack - 40);
  EXPECT_EQ(vm.r64(frame(0x80) + 0x10), kGuestUserCodeSel);
  EXPECT_EQ(vm.r64(frame(0x80) + 0x20), 0x60000u);
  EXPECT_EQ(vm.r64(frame(0x80) + 0x28), kGuestUserDataSel);
  EXPECT_EQ(vm.r64(0x80F80), 0x60000u) << "user code ran on the user stack";
  EXPECT_EQ(vm.vmcs_.read(VmcsField::GuestSsSelector), 0u) << "SS = null selector with RPL = new CPL";
}

TEST(IdtDelivery, IstStackUsedForDoubleFaultGate_6_14_5) {
  KernelVm vm(kSpin);
  vm.inject(EntryIntrInfo::make(arch::kDF, InterruptionType::HardwareException, true), 0);
  vm.run();
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, 0x08u);
  EXPECT_EQ(vm.r64(frame(8)), kIstStack - 48);
}

TEST(IdtDelivery, TrapGateKeepsIfInterruptGateClearsIt_6_12_1_3) {
  for (uint8_t v : {0x30, 0x31}) {
    KernelVm vm(kSpin);
    vm.vmcs_.write(VmcsField::GuestRflags, 0x202);
    vm.inject(EntryIntrInfo::make(v, InterruptionType::ExternalInterrupt));
    vm.run();
    vm.expect_done();
    EXPECT_EQ((vm.r64(frame(v) + 0x3C) & 0x200) != 0, v == 0x31) << int(v);
  }
}

// ------------------------------------------------------------------ 28.2.4 / 6.15 faults during delivery

TEST(IdtVectoring, InterceptedPageFaultDuringIrqDeliveryRecordsIrq_28_2_4) {
  KernelVm vm(kSpin);
  vm.vmcs_.write(VmcsField::GuestRflags, 0x202);
  vm.vmcs_.write(VmcsField::ExceptionBitmap, 1u << arch::kPF);
  vm.set_pte(kKernelStack - 8, 0);  // the stack page is not present in guest paging
  vm.inject(EntryIntrInfo::make(0x20, InterruptionType::ExternalInterrupt));
  EntryContext ctx;
  ctx.origin = 55;
  const auto e = vm.run(ctx);
  ASSERT_EQ(e.stop, StopReason::VmExit);
  EXPECT_EQ(vm.basic_reason(), 0u);
  EXPECT_EQ(vm.exit_info(), ExitIntrInfo::make(arch::kPF, InterruptionType::HardwareException, true).raw());
  EXPECT_EQ(vm.vmcs_.read32(VmcsField::VmExitIntrErrorCode), arch::pf_error::kWrite);  // not present, supervisor write
  EXPECT_EQ(vm.qual(), kKernelStack - 8);
  EXPECT_EQ(vm.vectoring(), IdtVectoringInfo::make(0x20, InterruptionType::ExternalInterrupt).raw());
  EXPECT_EQ(vm.rip(), vm.entry_rip);
  EXPECT_EQ(vm.rsp(), kKernelStack) << "nothing committed";
  EXPECT_EQ(e.vectoring_origin, 55u);
  const es_record* x = vm.log_.last(ES_KIND_VM_EXIT);
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->origin, 55u) << "origin = vectoring event's chain";
  const es_record* raise = vm.log_.by_id(x->cause);
  ASSERT_NE(raise, nullptr);
  EXPECT_EQ(raise->kind, ES_KIND_RAISE);
  EXPECT_EQ(raise->cause, e.entry_id) << "#PF arose while delivering the injected IRQ";
  EXPECT_EQ(raise->guest_linear, kKernelStack - 8);
}

TEST(IdtVectoring, PageFaultDuringDeliveryNotInterceptedIsDeliveredWithCr2_6_15) {
  KernelVm vm(kSpin);
  vm.vmcs_.write(VmcsField::GuestRflags, 0x202);
  // Gate 0x20 on IST1; IST1 stack page not present -> #PF during the IRQ delivery; the #PF
  // handler (no IST) runs on the current stack.
  const uint64_t lo = vm.r64(kIdt + 0x20 * 16);
  vm.w64(kIdt + 0x20 * 16, lo | (1ull << 32));
  vm.set_pte(kIstStack - 8, 0);
  vm.inject(EntryIntrInfo::make(0x20, InterruptionType::ExternalInterrupt));
  vm.run();
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, static_cast<uint64_t>(arch::kPF));
  EXPECT_EQ(vm.r64(frame(arch::kPF) + 0x38) & 0xFFFFFFFF, kIstStack - 8) << "CR2";
  EXPECT_EQ(vm.r64(frame(arch::kPF) + 0x10), vm.entry_rip) << "#PF returns to the interrupted RIP";
}

TEST(DoubleFault, ContributoryDuringContributoryPromotes_6_15_Table6_5) {
  KernelVm vm(kSpin);
  vm.set_gate(arch::kGP, 0x10000, 0, 0, false, /*present=*/false);  // #GP delivery -> #NP
  vm.inject(EntryIntrInfo::make(arch::kGP, InterruptionType::HardwareException, true), 0);
  EntryContext ctx;
  ctx.origin = 99;
  vm.run(ctx);
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, 0x08u);
  EXPECT_EQ(vm.r64(frame(8) + 0x08), 0u) << "#DF error code 0";
  // Records: RAISE(#NP) caused by the entry, RAISE(#DF) caused by #NP, origin = injected chain.
  const auto raises = vm.log_.of_kind(ES_KIND_RAISE);
  ASSERT_EQ(raises.size(), 2u);
  EXPECT_EQ(raises[0].intr_info & 0xFF, arch::kNP);
  EXPECT_EQ(raises[0].origin, raises[0].id);
  EXPECT_EQ(raises[1].intr_info & 0xFF, arch::kDF);
  EXPECT_EQ(raises[1].cause, raises[0].id);
  EXPECT_EQ(raises[1].origin, 99u);
  const auto del = vm.log_.of_kind(ES_KIND_DELIVERY);
  ASSERT_EQ(del.size(), 1u);
  EXPECT_EQ(del[0].origin, 99u);
  EXPECT_EQ(del[0].cause, raises[1].id);
}

TEST(DoubleFault, PageFaultDuringPageFaultPromotes_6_15_Table6_5) {
  KernelVm vm(kSpin);
  vm.set_pte(kKernelStack - 8, 0);  // #PF delivery needs the stack -> #PF -> #DF on IST1
  vm.inject(EntryIntrInfo::make(arch::kPF, InterruptionType::HardwareException, true), 0);
  vm.run();
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, 0x08u);
}

TEST(DoubleFault, BenignThenContributoryIsSerial_6_15_Table6_5) {
  KernelVm vm(kSpin);
  vm.vmcs_.write(VmcsField::GuestRflags, 0x202);
  vm.set_gate(0x20, 0x10000, 0, 0, false, /*present=*/false);
  vm.inject(EntryIntrInfo::make(0x20, InterruptionType::ExternalInterrupt));
  vm.run();
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, static_cast<uint64_t>(arch::kNP));
  EXPECT_EQ(vm.r64(frame(arch::kNP) + 0x08), 0x20u * 8 + 2 + 1) << "EXT = 1 for an external interrupt";
}

TEST(DoubleFault, InterceptedDoubleFaultHasNoIdtVectoring_28_2_4) {
  KernelVm vm(kSpin);
  vm.vmcs_.write(VmcsField::ExceptionBitmap, 1u << arch::kDF);
  vm.set_gate(arch::kGP, 0x10000, 0, 0, false, false);
  vm.inject(EntryIntrInfo::make(arch::kGP, InterruptionType::HardwareException, true), 0);
  EntryContext ctx;
  ctx.origin = 31;
  const auto e = vm.run(ctx);
  ASSERT_EQ(e.stop, StopReason::VmExit);
  EXPECT_EQ(vm.basic_reason(), 0u);
  EXPECT_EQ(vm.exit_info(), ExitIntrInfo::make(arch::kDF, InterruptionType::HardwareException, true).raw());
  EXPECT_EQ(vm.vmcs_.read32(VmcsField::VmExitIntrErrorCode), 0u);
  EXPECT_EQ(vm.vectoring() >> 31, 0u) << "a #DF that causes the exit directly: IDT-vectoring not valid";
  EXPECT_EQ(e.exit_event_origin, 31u);
  EXPECT_EQ(vm.log_.last(ES_KIND_VM_EXIT)->origin, 31u);
}

TEST(IdtVectoring, InterceptedFaultDuringDoubleFaultDeliveryRecordsDf_28_2_4) {
  KernelVm vm(kSpin);
  vm.vmcs_.write(VmcsField::ExceptionBitmap, 1u << arch::kNP);
  vm.set_gate(arch::kDF, 0x10000, 0, 1, false, false);
  vm.inject(EntryIntrInfo::make(arch::kDF, InterruptionType::HardwareException, true), 0);
  vm.run();
  EXPECT_EQ(vm.basic_reason(), 0u);
  EXPECT_EQ(vm.exit_info() & 0xFF, arch::kNP);
  EXPECT_EQ(vm.vectoring(), IdtVectoringInfo::make(arch::kDF, InterruptionType::HardwareException, true).raw());
}

TEST(TripleFault, FaultDuringDoubleFaultDelivery_6_15_28_2_4) {
  KernelVm vm(kSpin);
  vm.set_gate(arch::kGP, 0x10000, 0, 0, false, false);
  vm.set_gate(arch::kDF, 0x10000, 0, 1, false, false);
  vm.inject(EntryIntrInfo::make(arch::kGP, InterruptionType::HardwareException, true), 0);
  EntryContext ctx;
  ctx.origin = 1234;
  const auto e = vm.run(ctx);
  ASSERT_EQ(e.stop, StopReason::VmExit);
  EXPECT_EQ(vm.basic_reason(), static_cast<uint32_t>(BasicExitReason::TripleFault));
  EXPECT_EQ(vm.vectoring() >> 31, 0u);
  EXPECT_EQ(vm.exit_info() >> 31, 0u);
  EXPECT_EQ(e.exit_event_origin, 1234u) << "the triple fault continues the injected chain";
  EXPECT_EQ(vm.log_.last(ES_KIND_VM_EXIT)->origin, 1234u);
}

// ------------------------------------------------------------------ EPT during delivery

TEST(IdtVectoring, EptViolationOnStackPushDuringIrqDelivery_28_2_4) {
  KernelVm vm(kSpin);
  vm.vmcs_.write(VmcsField::GuestRflags, 0x202);
  vm.ept_unmap(kKernelStack - 0x1000);
  const auto irq = EntryIntrInfo::make(0x20, InterruptionType::ExternalInterrupt);
  vm.inject(irq);
  EntryContext ctx;
  ctx.origin = 500;
  auto e = vm.run(ctx);
  ASSERT_EQ(e.stop, StopReason::VmExit);
  EXPECT_EQ(vm.basic_reason(), 48u);
  const arch::EptViolationQual q(vm.qual());
  EXPECT_TRUE(q.write());
  EXPECT_FALSE(q.read());
  EXPECT_FALSE(q.entry_present());
  EXPECT_TRUE(q.linear_address_valid());
  EXPECT_TRUE(q.translated_access());
  EXPECT_EQ(vm.vmcs_.read(VmcsField::GuestPhysicalAddress), kKernelStack - 8);
  EXPECT_EQ(vm.vmcs_.read(VmcsField::GuestLinearAddress), kKernelStack - 8);
  EXPECT_EQ(vm.vectoring(), IdtVectoringInfo::make(0x20, InterruptionType::ExternalInterrupt).raw());
  EXPECT_EQ(e.vectoring_origin, 500u);
  EXPECT_EQ(vm.log_.last(ES_KIND_VM_EXIT)->origin, 500u);
  EXPECT_TRUE(vm.log_.of_kind(ES_KIND_DELIVERY).empty());
  // The vmm maps the page and reinjects from IDT-vectoring: the IRQ is delivered.
  vm.ept_map(kKernelStack - 0x1000);
  vm.inject(arch::to_reinjection(IdtVectoringInfo(vm.vectoring())));
  e = vm.run(ctx);
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, 0x20u);
  EXPECT_EQ(vm.r64(frame(0x20) + 0x08), vm.entry_rip);
}

TEST(IdtVectoring, EptViolationOnIdtRead_28_2_4) {
  KernelVm vm(kSpin);
  vm.ept_unmap(kIdt);
  vm.inject(EntryIntrInfo::make(2, InterruptionType::Nmi));
  vm.run();
  EXPECT_EQ(vm.basic_reason(), 48u);
  const arch::EptViolationQual q(vm.qual());
  EXPECT_TRUE(q.read());
  EXPECT_TRUE(q.translated_access());
  EXPECT_EQ(vm.vmcs_.read(VmcsField::GuestPhysicalAddress), kIdt + 2 * 16);
  EXPECT_EQ(vm.vectoring(), IdtVectoringInfo::make(2, InterruptionType::Nmi).raw());
  EXPECT_FALSE(vm.vmcs_.read32(VmcsField::GuestInterruptibilityInfo) & intr::kBlockingByNmi)
      << "NMI blocking starts only when delivery completes";
}

TEST(IdtVectoring, EptViolationOnGdtReadDuringDelivery_28_2_4) {
  KernelVm vm(kSpin);
  vm.ept_unmap(kGdt);
  vm.inject(EntryIntrInfo::make(arch::kUD, InterruptionType::HardwareException));
  vm.run();
  EXPECT_EQ(vm.basic_reason(), 48u);
  EXPECT_EQ(vm.vmcs_.read(VmcsField::GuestPhysicalAddress), kGdt + kGuestCodeSel);
  EXPECT_EQ(vm.vectoring(), IdtVectoringInfo::make(arch::kUD, InterruptionType::HardwareException).raw());
}

TEST(IdtVectoring, EptViolationOnTssReadDuringDelivery_28_2_4) {
  KernelVm vm(kSpin);
  vm.ept_unmap(kTss & ~0xFFFull);  // TSS shares the GDT page: the GDT read faults first
  vm.ept_map(kGdt & ~0xFFFull);
  // Move the TSS to its own page.
  vm.vmcs_.write(VmcsField::GuestTrBase, 0xA000);
  vm.w64(0xA000 + 0x24, kIstStack);
  vm.ept_unmap(0xA000);
  vm.inject(EntryIntrInfo::make(arch::kDF, InterruptionType::HardwareException, true), 0);
  vm.run();
  EXPECT_EQ(vm.basic_reason(), 48u);
  EXPECT_EQ(vm.vmcs_.read(VmcsField::GuestPhysicalAddress), 0xA024u);
  EXPECT_EQ(vm.vectoring(), IdtVectoringInfo::make(arch::kDF, InterruptionType::HardwareException, true).raw());
  EXPECT_EQ(vm.vmcs_.read32(VmcsField::IdtVectoringErrorCode), 0u);
}

TEST(IdtVectoring, NotValidOnHandlerFetch_28_2_4) {
  KernelVm vm(kSpin);
  vm.set_gate(0x40, 0x200000, 0);  // handler in its own page, not mapped in EPT
  vm.ept_unmap(0x200000);
  vm.inject(EntryIntrInfo::make(0x40, InterruptionType::ExternalInterrupt));
  vm.vmcs_.write(VmcsField::GuestRflags, 0x202);
  const auto e = vm.run();
  ASSERT_EQ(e.stop, StopReason::VmExit);
  EXPECT_EQ(vm.basic_reason(), 48u);
  EXPECT_TRUE(arch::EptViolationQual(vm.qual()).fetch());
  EXPECT_EQ(vm.vectoring() >> 31, 0u) << "delivery completed before the fetch";
  EXPECT_EQ(vm.rip(), 0x200000u);
  EXPECT_EQ(vm.rsp(), kKernelStack - 40);
  EXPECT_EQ(vm.log_.of_kind(ES_KIND_DELIVERY).size(), 1u);
}

// ------------------------------------------------------------------ software events

TEST(SoftwareInterrupt, IntNDeliveryExitRecordsInstructionLength_28_2_4) {
  KernelVm vm(kInt80);
  vm.ept_unmap(kKernelStack - 0x1000);
  const auto e = vm.run();
  ASSERT_EQ(e.stop, StopReason::VmExit);
  EXPECT_EQ(vm.basic_reason(), 48u);
  EXPECT_EQ(vm.vectoring(), IdtVectoringInfo::make(0x80, InterruptionType::SoftwareInterrupt).raw());
  EXPECT_EQ(vm.vmcs_.read(VmcsField::VmExitInstructionLen), 2u);
  uint8_t b[2];
  std::memcpy(b, vm.host(vm.rip()), 2);
  EXPECT_EQ(b[0], 0xCD) << "RIP is the INT instruction";
  const es_record* x = vm.log_.last(ES_KIND_VM_EXIT);
  const es_record* raise = vm.log_.by_id(x->cause);
  ASSERT_NE(raise, nullptr);
  EXPECT_EQ(raise->intr_info, EntryIntrInfo::make(0x80, InterruptionType::SoftwareInterrupt).raw());
  EXPECT_EQ(x->origin, raise->id);
}

TEST(SoftwareException, Int3InterceptedExitsType6WithLength_28_2_2) {
  KernelVm vm(kInt3);
  vm.vmcs_.write(VmcsField::ExceptionBitmap, 1u << arch::kBP);
  vm.run();
  EXPECT_EQ(vm.basic_reason(), 0u);
  EXPECT_EQ(vm.exit_info(), ExitIntrInfo::make(3, InterruptionType::SoftwareException).raw());
  EXPECT_EQ(vm.vmcs_.read(VmcsField::VmExitInstructionLen), 1u);
  EXPECT_EQ(*vm.host(vm.rip()), 0xCC);
  EXPECT_EQ(vm.vectoring() >> 31, 0u) << "the event itself caused the exit";
}

TEST(SoftwareException, Int3NotInterceptedPushesNextRip_6_14) {
  KernelVm vm(kInt3);
  vm.run();
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, 3u);
  EXPECT_EQ(*vm.host(vm.r64(frame(3) + 0x08) - 1), 0xCC);
}

TEST(PrivilegedSoftwareException, Int1InterceptedExitsType5_28_2_2) {
  KernelVm vm(kInt1);
  vm.vmcs_.write(VmcsField::ExceptionBitmap, 1u << arch::kDB);
  vm.run();
  EXPECT_EQ(vm.basic_reason(), 0u);
  EXPECT_EQ(vm.exit_info(), ExitIntrInfo::make(1, InterruptionType::PrivilegedSoftwareException).raw());
  EXPECT_EQ(vm.vmcs_.read(VmcsField::VmExitInstructionLen), 1u);
}

TEST(InvalidOpcode, IntoUd2AndLockOnRegisterRaiseUd_Vol2) {
  for (uint64_t s : {kInto, kUd2, kLockReg}) {
    KernelVm vm(s);
    vm.run();
    vm.expect_done();
    EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, 6u) << s;
  }
}

// ------------------------------------------------------------------ NMI

TEST(Nmi, BlockedUntilIret_6_7_1) {
  KernelVm vm(kSpin);
  vm.set_pin(arch::pin_ctl::kNmiExiting | arch::pin_ctl::kVirtualNmis, false);
  vm.cpu_.raise_host_nmi();
  EntryContext ctx;
  ctx.max_insns = 50;
  auto e = vm.run(ctx);
  ASSERT_EQ(vm.exit_port(), kPortMark);  // first NMI handler running
  EXPECT_TRUE(vm.vmcs_.read32(VmcsField::GuestInterruptibilityInfo) & intr::kBlockingByNmi);
  vm.cpu_.raise_host_nmi();  // second NMI arrives inside the handler: held until IRET
  vm.skip_insn();
  const uint64_t frame_rsp = vm.r64(frame(2));
  e = vm.run(ctx);
  ASSERT_EQ(e.stop, StopReason::VmExit);
  EXPECT_EQ(vm.exit_port(), kPortMark) << "second NMI delivered after IRET";
  EXPECT_EQ(e.insns_retired, 7u) << "pop, cmp, jne, iretq of the first handler then mov, push, mov of the second";
  EXPECT_EQ(vm.r64(frame(2)), frame_rsp);
  const auto raises = vm.log_.of_kind(ES_KIND_RAISE);
  ASSERT_EQ(raises.size(), 2u);
  EXPECT_EQ(raises[0].intr_info, EntryIntrInfo::make(2, InterruptionType::Nmi).raw());
  EXPECT_NE(raises[0].origin, raises[1].origin);
}

TEST(Nmi, HostNmiCausesExitWithNmiExiting_26_2) {
  KernelVm vm(kSpin);
  vm.cpu_.raise_host_nmi();
  const auto e = vm.run();
  ASSERT_EQ(e.stop, StopReason::VmExit);
  EXPECT_EQ(vm.basic_reason(), 0u);
  EXPECT_EQ(vm.exit_info(), 0x8000'0202u);
  EXPECT_EQ(vm.vectoring() >> 31, 0u);
  EXPECT_EQ(e.exit_event_origin, 0u);
}

TEST(Nmi, NmiWindowExitAfterIretRemovesVirtualNmiBlocking_26_7_6) {
  KernelVm vm(kSpin);
  vm.inject(EntryIntrInfo::make(2, InterruptionType::Nmi));
  vm.set_proc(arch::proc_ctl::kNmiWindowExiting);
  auto e = vm.run_to_exit();
  ASSERT_EQ(e.stop, StopReason::VmExit);
  EXPECT_EQ(vm.basic_reason(), static_cast<uint32_t>(BasicExitReason::NmiWindow));
  EXPECT_EQ(vm.rip(), vm.entry_rip) << "window opens at the instruction IRET returns to";
  EXPECT_EQ(vm.marks_.size(), 1u);
  EXPECT_EQ(vm.vmcs_.read32(VmcsField::GuestInterruptibilityInfo) & intr::kBlockingByNmi, 0u);
}

TEST(Nmi, UnblockingBitOnFaultingIretException_28_2_3) {
  KernelVm vm(kSpin);
  vm.w64(0x80FF0, 1);  // NMI handler IRETs from an unmapped stack
  vm.vmcs_.write(VmcsField::ExceptionBitmap, 1u << arch::kPF);
  vm.inject(EntryIntrInfo::make(2, InterruptionType::Nmi));
  const auto e = vm.run_to_exit();
  ASSERT_EQ(e.stop, StopReason::VmExit);
  EXPECT_EQ(vm.basic_reason(), 0u);
  EXPECT_EQ(vm.exit_info() & 0xFF, arch::kPF);
  EXPECT_TRUE(ExitIntrInfo(vm.exit_info()).nmi_unblocking_due_to_iret());
  EXPECT_EQ(vm.vmcs_.read32(VmcsField::GuestInterruptibilityInfo) & intr::kBlockingByNmi, 0u)
      << "blocking removed before the exit";
}

TEST(Nmi, UnblockingBitInEptViolationQualification_28_2_3) {
  KernelVm vm(kSpin);
  vm.w64(0x80FF0, 1);
  // Map 0x400000 in guest paging (PD entry 2 -> a PT at 0x6000), but not in EPT.
  vm.w64(kPd + 2 * 8, 0x6000 | 7);
  vm.w64(0x6000, 0x400000 | 7);
  vm.ept_unmap(0x400000);
  vm.inject(EntryIntrInfo::make(2, InterruptionType::Nmi));
  vm.run_to_exit();
  EXPECT_EQ(vm.basic_reason(), 48u);
  EXPECT_TRUE(arch::EptViolationQual(vm.qual()).nmi_unblocking_due_to_iret());
}

// ------------------------------------------------------------------ interruptibility and windows

TEST(Interruptibility, StiBlocksInterruptWindowForOneInstruction_26_7_5) {
  KernelVm vm(kStiShadow);
  vm.set_proc(arch::proc_ctl::kInterruptWindowExiting);
  const auto e = vm.run();
  ASSERT_EQ(e.stop, StopReason::VmExit);
  EXPECT_EQ(vm.basic_reason(), 7u);
  // Scenario: jmp, cli, mov al, sti, nop (shadow) -> exit before the second nop.
  EXPECT_EQ(e.insns_retired, 5u);
  EXPECT_EQ(*vm.host(vm.rip()), 0x90);
  EXPECT_EQ(vm.vmcs_.read32(VmcsField::GuestInterruptibilityInfo) & intr::kBlockingBySti, 0u);
}

TEST(Interruptibility, MovSsBlockingSavedAtExitAndHonouredAtEntry_25_4_2) {
  KernelVm vm(kMovSs);
  vm.run();
  ASSERT_EQ(vm.basic_reason(), 30u);
  EXPECT_EQ(vm.exit_port(), 0xE2);
  EXPECT_EQ(vm.vmcs_.read32(VmcsField::GuestInterruptibilityInfo), intr::kBlockingByMovSs);
  // Re-enter at the instruction after the OUT with blocking by MOV SS still in the VMCS: a
  // pending NMI waits one instruction.
  KernelVm vm2(kSpin);
  vm2.set_pin(arch::pin_ctl::kNmiExiting | arch::pin_ctl::kVirtualNmis, false);
  vm2.vmcs_.write(VmcsField::GuestInterruptibilityInfo, intr::kBlockingByMovSs);
  vm2.cpu_.raise_host_nmi();
  EntryContext ctx;
  ctx.max_insns = 1;
  const auto e = vm2.run(ctx);
  EXPECT_EQ(e.stop, StopReason::InsnLimit) << "one instruction runs in the shadow";
  EXPECT_EQ(e.insns_retired, 1u);
  vm2.run();
  EXPECT_EQ(vm2.exit_port(), kPortMark) << "then the NMI is delivered";
}

TEST(Interruptibility, StiBlockingSavedWhenNextInstructionExits_25_4_2) {
  KernelVm vm(kStiShadow);
  // Make the instruction after STI an OUT.
  const uint8_t out_e3[] = {0xE6, 0xE3};
  KernelVm probe(kStiShadow);
  probe.set_proc(arch::proc_ctl::kInterruptWindowExiting);
  probe.run();
  const uint64_t second_nop = probe.rip();
  vm.write(second_nop - 1, out_e3, 2);  // overwrite the shadow nop (and the 2nd nop) with OUT
  vm.run();
  EXPECT_EQ(vm.exit_port(), 0xE3);
  EXPECT_EQ(vm.vmcs_.read32(VmcsField::GuestInterruptibilityInfo), intr::kBlockingBySti);
}

TEST(InterruptWindow, ExitRightAfterEntryWhenOpen_26_7_5) {
  KernelVm vm(kSpin);
  vm.vmcs_.write(VmcsField::GuestRflags, 0x202);
  vm.set_proc(arch::proc_ctl::kInterruptWindowExiting);
  const auto e = vm.run();
  EXPECT_EQ(vm.basic_reason(), 7u);
  EXPECT_EQ(e.insns_retired, 0u);
  EXPECT_EQ(vm.rip(), vm.entry_rip);
  EXPECT_EQ(vm.vmcs_.read(VmcsField::VmExitInstructionLen), 0u);
}

TEST(InterruptWindow, HasPriorityOverPendingExternalInterrupt_26_7_5) {
  KernelVm vm(kSpin);
  vm.vmcs_.write(VmcsField::GuestRflags, 0x202);
  vm.set_proc(arch::proc_ctl::kInterruptWindowExiting);
  vm.cpu_.set_host_interrupt(0, 0x30);
  vm.run();
  EXPECT_EQ(vm.basic_reason(), 7u);
  vm.set_proc(arch::proc_ctl::kInterruptWindowExiting, false);
  vm.run();
  EXPECT_EQ(vm.basic_reason(), 1u);
}

TEST(ExternalInterrupt, ExitWithAcknowledgeReportsVector_28_2_2) {
  KernelVm vm(kSpin);
  vm.cpu_.set_host_interrupt(vm.cpu_.now_ns() + 500, 0x31);
  const auto e = vm.run();
  ASSERT_EQ(e.stop, StopReason::VmExit);
  EXPECT_EQ(vm.basic_reason(), 1u);
  EXPECT_EQ(vm.exit_info(), ExitIntrInfo::make(0x31, InterruptionType::ExternalInterrupt).raw());
  EXPECT_GE(e.insns_retired, 300u) << "the interrupt arrives at its deadline, not before";
}

TEST(ExternalInterrupt, ExitWithoutAcknowledgeHasInvalidInfo_28_2_2) {
  KernelVm vm(kSpin);
  vm.vmcs_.clear_bits(VmcsField::VmExitControls, arch::exit_ctl::kAckInterruptOnExit);
  vm.cpu_.set_host_interrupt(0, 0x31);
  vm.run();
  EXPECT_EQ(vm.basic_reason(), 1u);
  EXPECT_EQ(vm.exit_info() >> 31, 0u);
}

TEST(ExternalInterrupt, DeliveredThroughGuestIdtWithoutExiting_6_14) {
  KernelVm vm(kStiSpin);
  vm.set_pin(arch::pin_ctl::kExternalInterruptExiting, false);
  vm.cpu_.set_host_interrupt(vm.cpu_.now_ns() + 200, 0x30);
  const auto e = vm.run();
  vm.expect_done();
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, 0x30u);
  const auto raises = vm.log_.of_kind(ES_KIND_RAISE);
  ASSERT_EQ(raises.size(), 1u);
  EXPECT_EQ(raises[0].origin, raises[0].id) << "a host interrupt starts its own chain";
  EXPECT_EQ(raises[0].cause, e.entry_id);
  const auto del = vm.log_.of_kind(ES_KIND_DELIVERY);
  ASSERT_EQ(del.size(), 1u);
  EXPECT_EQ(del[0].cause, raises[0].id);
  EXPECT_EQ(del[0].origin, raises[0].id);
}

TEST(ExternalInterrupt, MaskedByIfClearWithoutExiting_6_8_1) {
  KernelVm vm(kSpin);
  vm.set_pin(arch::pin_ctl::kExternalInterruptExiting, false);
  vm.cpu_.set_host_interrupt(0, 0x30);
  EntryContext ctx;
  ctx.max_insns = 1000;
  const auto e = vm.run(ctx);
  EXPECT_EQ(e.stop, StopReason::InsnLimit);
  EXPECT_TRUE(vm.log_.of_kind(ES_KIND_DELIVERY).empty());
}

// ------------------------------------------------------------------ HLT

TEST(Hlt, ExitsWithHltExiting_26_1_3) {
  KernelVm vm(kHlt);
  vm.run();
  EXPECT_EQ(vm.basic_reason(), 12u);
  EXPECT_EQ(vm.vmcs_.read(VmcsField::VmExitInstructionLen), 1u);
  EXPECT_EQ(*vm.host(vm.rip()), 0xF4);
}

TEST(Hlt, ActivityStateHltSavedWhenInterruptExits_28_3_4) {
  KernelVm vm(kHlt);
  vm.set_proc(arch::proc_ctl::kHltExiting, false);
  const uint64_t t0 = vm.cpu_.now_ns();
  vm.cpu_.set_host_interrupt(t0 + 1'000'000, 0x30);
  const auto e = vm.run();
  ASSERT_EQ(e.stop, StopReason::VmExit);
  EXPECT_EQ(vm.basic_reason(), 1u);
  EXPECT_EQ(vm.vmcs_.read32(VmcsField::GuestActivityState), 1u);
  EXPECT_GE(vm.cpu_.now_ns(), t0 + 1'000'000);
  EXPECT_EQ(*vm.host(vm.rip() - 1), 0xF4) << "RIP is past the HLT";
}

TEST(Hlt, InterruptWindowWakesHaltedGuest_26_7_5) {
  KernelVm vm(kHlt);
  vm.set_proc(arch::proc_ctl::kHltExiting, false);
  vm.vmcs_.write(VmcsField::GuestRflags, 0x202);
  EntryContext ctx;
  auto e = vm.run(ctx);
  EXPECT_EQ(e.stop, StopReason::InsnLimit) << "halted with nothing pending";
  EXPECT_EQ(vm.vmcs_.read32(VmcsField::GuestActivityState), 1u);
  vm.set_proc(arch::proc_ctl::kInterruptWindowExiting);
  e = vm.run(ctx);
  EXPECT_EQ(vm.basic_reason(), 7u);
}

// ------------------------------------------------------------------ FRED nested-exception bit

TEST(NestedExceptionBit, MirrorsIdtVectoringValid_FredVmx) {
  CpuConfig cfg;
  cfg.nested_exception_bit = true;
  {
    KernelVm vm(kSpin, cfg);
    vm.vmcs_.write(VmcsField::GuestRflags, 0x202);
    vm.vmcs_.write(VmcsField::ExceptionBitmap, 1u << arch::kPF);
    vm.set_pte(kKernelStack - 8, 0);
    vm.inject(EntryIntrInfo::make(0x20, InterruptionType::ExternalInterrupt));
    vm.run();
    ASSERT_EQ(vm.basic_reason(), 0u);
    EXPECT_TRUE(ExitIntrInfo(vm.exit_info()).nested_exception());
    EXPECT_TRUE(IdtVectoringInfo(vm.vectoring()).valid());
  }
  {
    KernelVm vm(kReadUnmapped, cfg);
    vm.vmcs_.write(VmcsField::ExceptionBitmap, 1u << arch::kPF);
    vm.run();
    ASSERT_EQ(vm.basic_reason(), 0u);
    EXPECT_FALSE(ExitIntrInfo(vm.exit_info()).nested_exception());
    EXPECT_FALSE(IdtVectoringInfo(vm.vectoring()).valid());
  }
  {
    KernelVm vm(kSpin);  // feature off: never set
    vm.vmcs_.write(VmcsField::GuestRflags, 0x202);
    vm.vmcs_.write(VmcsField::ExceptionBitmap, 1u << arch::kPF);
    vm.set_pte(kKernelStack - 8, 0);
    vm.inject(EntryIntrInfo::make(0x20, InterruptionType::ExternalInterrupt));
    vm.run();
    EXPECT_FALSE(ExitIntrInfo(vm.exit_info()).nested_exception());
  }
}

}  // namespace
}  // namespace es::hv::test
