#include "cpu_test_guests.h"
#include "tests/cpu/harness.h"

namespace es::hv::test {
namespace {

TEST(Smoke, OutLoopExitsWithIoQualification) {
  TestVm vm(cpu_guest_out_loop, cpu_guest_out_loop_size);
  auto e = vm.run();
  ASSERT_EQ(e.stop, StopReason::VmExit);
  EXPECT_EQ(vm.basic_reason(), 30u);
  const arch::IoQual q(vm.vmcs_.read(VmcsField::ExitQualification));
  EXPECT_EQ(q.port(), 0x3F8);
  EXPECT_FALSE(q.in());
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(vm.vmcs_.read(VmcsField::VmExitInstructionLen), 1u);
  EXPECT_EQ(vm.reg(GuestGprs::RAX) & 0xFF, 'x');
  const uint64_t out_rip = vm.rip();
  vm.skip_insn();
  e = vm.run();
  ASSERT_EQ(e.stop, StopReason::VmExit);
  EXPECT_EQ(vm.rip(), out_rip);  // jmp back to the same OUT
  EXPECT_EQ(e.insns_retired, 1u);
  const auto exits = vm.log_.of_kind(ES_KIND_VM_EXIT);
  ASSERT_EQ(exits.size(), 2u);
  EXPECT_EQ(exits[1].cause, e.entry_id);
  EXPECT_EQ(exits[1].bytes[0], 0xEE);
  EXPECT_EQ(exits[1].flags & ES_FLAG_BYTES_VALID, ES_FLAG_BYTES_VALID);
}

}  // namespace
}  // namespace es::hv::test
