#include "hv/cpu/guest_state.h"

#include "hv/arch/controls.h"

namespace es::hv {

using arch::VmcsField;

namespace {
// Access-rights format of the VMCS, Vol. 3C 25.4.1 "Guest Register State" (Table 25-2):
// [3:0] type [4] S [6:5] DPL [7] P [12] AVL [13] L [14] D/B [15] G [16] unusable.
constexpr uint32_t kArCode64Dpl0 = 0xB | (1u << 4) | (0u << 5) | (1u << 7) | (1u << 13) | (1u << 15);
constexpr uint32_t kArData = 0x3 | (1u << 4) | (1u << 7) | (1u << 14) | (1u << 15);
constexpr uint32_t kArTss64Busy = 0xB | (1u << 7);
constexpr uint32_t kArUnusable = 1u << 16;

// Segment descriptor (8 bytes) from its parts, Vol. 3A 3.4.5 "Segment Descriptors".
constexpr uint64_t descriptor(uint64_t base, uint32_t limit, uint32_t type, bool s, unsigned dpl, bool l, bool db,
                              bool g) {
  return (limit & 0xFFFFull) | ((base & 0xFFFFFFull) << 16) | (static_cast<uint64_t>(type & 0xF) << 40) |
         (static_cast<uint64_t>(s) << 44) | (static_cast<uint64_t>(dpl & 3) << 45) | (1ull << 47) |
         (static_cast<uint64_t>((limit >> 16) & 0xF) << 48) | (static_cast<uint64_t>(l) << 53) |
         (static_cast<uint64_t>(db) << 54) | (static_cast<uint64_t>(g) << 55) | (((base >> 24) & 0xFFull) << 56);
}
}  // namespace

void standard_gdt(const GuestLayout& l, uint64_t out[7]) {
  out[0] = 0;
  out[1] = descriptor(0, 0xFFFFF, 0xB, true, 0, true, false, true);           // 0x08 code64 DPL0
  out[2] = descriptor(0, 0xFFFFF, 0x3, true, 0, false, true, true);           // 0x10 data DPL0
  out[3] = descriptor(0, 0xFFFFF, 0x3, true, 3, false, true, true);           // 0x18 data DPL3
  out[4] = descriptor(0, 0xFFFFF, 0xB, true, 3, true, false, true);           // 0x20 code64 DPL3
  out[5] = descriptor(l.tss_base, 0x67, 0xB, false, 0, false, false, false);  // 0x28 TSS (busy)
  out[6] = l.tss_base >> 32;                                                  // TSS upper half
}

void init_long_mode_guest_state(Vmcs& v, const GuestLayout& l) {
  v.write(VmcsField::GuestCr0,
          arch::cr0::kPE | (1ull << 4) /*ET*/ | (1ull << 5) /*NE*/ | arch::cr0::kWP | arch::cr0::kPG);
  v.write(VmcsField::GuestCr3, l.cr3);
  v.write(VmcsField::GuestCr4, arch::cr4::kPAE);
  v.write(VmcsField::GuestIa32Efer, arch::efer::kLME | arch::efer::kLMA | arch::efer::kNXE);
  v.write(VmcsField::GuestRip, l.rip);
  v.write(VmcsField::GuestRsp, l.rsp);
  v.write(VmcsField::GuestRflags, arch::rflags::kFixed1);
  v.write(VmcsField::GuestCsSelector, kGuestCodeSel);
  v.write(VmcsField::GuestCsBase, 0);
  v.write(VmcsField::GuestCsLimit, 0xFFFF'FFFF);
  v.write(VmcsField::GuestCsArBytes, kArCode64Dpl0);
  const VmcsField data_sel[] = {VmcsField::GuestSsSelector, VmcsField::GuestDsSelector, VmcsField::GuestEsSelector,
                                VmcsField::GuestFsSelector, VmcsField::GuestGsSelector};
  const VmcsField data_ar[] = {VmcsField::GuestSsArBytes, VmcsField::GuestDsArBytes, VmcsField::GuestEsArBytes,
                               VmcsField::GuestFsArBytes, VmcsField::GuestGsArBytes};
  const VmcsField data_lim[] = {VmcsField::GuestSsLimit, VmcsField::GuestDsLimit, VmcsField::GuestEsLimit,
                                VmcsField::GuestFsLimit, VmcsField::GuestGsLimit};
  for (int i = 0; i < 5; ++i) {
    v.write(data_sel[i], kGuestDataSel);
    v.write(data_ar[i], kArData);
    v.write(data_lim[i], 0xFFFF'FFFF);
  }
  v.write(VmcsField::GuestLdtrSelector, 0);
  v.write(VmcsField::GuestLdtrArBytes, kArUnusable);
  v.write(VmcsField::GuestTrSelector, kGuestTssSel);
  v.write(VmcsField::GuestTrBase, l.tss_base);
  v.write(VmcsField::GuestTrLimit, 0x67);
  v.write(VmcsField::GuestTrArBytes, kArTss64Busy);
  v.write(VmcsField::GuestGdtrBase, l.gdt_base);
  v.write(VmcsField::GuestGdtrLimit, l.gdt_limit);
  v.write(VmcsField::GuestIdtrBase, l.idt_base);
  v.write(VmcsField::GuestIdtrLimit, l.idt_limit);
  v.write(VmcsField::GuestInterruptibilityInfo, 0);
  v.write(VmcsField::GuestActivityState, static_cast<uint64_t>(arch::ActivityState::Active));
  v.write(VmcsField::GuestPendingDbgExceptions, 0);
  v.write(VmcsField::VmcsLinkPointer, ~0ull);
  v.write(VmcsField::GuestDr7, 0x400);
}

void init_l0_controls(Vmcs& v, uint64_t eptp) {
  using namespace arch;
  v.write(VmcsField::PinBasedVmExecControl,
          pin_ctl::kExternalInterruptExiting | pin_ctl::kNmiExiting | pin_ctl::kVirtualNmis);
  v.write(VmcsField::CpuBasedVmExecControl,
          proc_ctl::kHltExiting | proc_ctl::kUnconditionalIoExiting | proc_ctl::kActivateSecondaryControls);
  v.write(VmcsField::SecondaryVmExecControl, proc_ctl2::kEnableEpt);
  v.write(VmcsField::EptPointer, eptp);
  v.write(VmcsField::VmExitControls,
          exit_ctl::kHostAddressSpaceSize | exit_ctl::kAckInterruptOnExit | exit_ctl::kSaveEfer | exit_ctl::kLoadEfer);
  v.write(VmcsField::VmEntryControls, entry_ctl::kIa32eModeGuest | entry_ctl::kLoadEfer);
  v.write(VmcsField::ExceptionBitmap, 0);
  v.write(VmcsField::VmEntryIntrInfo, 0);
}

}  // namespace es::hv
