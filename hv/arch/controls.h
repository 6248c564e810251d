// VM-execution, VM-exit and VM-entry control bits, guest non-register state, and EPT
// structure bits. Vol. 3C chapter 25 "Virtual-Machine Control Structures":
// 25.6.1 "Pin-Based VM-Execution Controls", 25.6.2 "Processor-Based VM-Execution
// Controls", 25.7.1 "VM-Exit Controls", 25.8.1 "VM-Entry Controls", 25.4.2 "Guest
// Non-Register State"; Vol. 3C 29.3 "The Extended Page Table Mechanism (EPT)".
#pragma once

#include <cstdint>

namespace es::arch {

namespace pin_ctl {  // Table 25-5
constexpr uint32_t kExternalInterruptExiting = 1u << 0;
constexpr uint32_t kNmiExiting = 1u << 3;
constexpr uint32_t kVirtualNmis = 1u << 5;
constexpr uint32_t kPreemptionTimer = 1u << 6;
constexpr uint32_t kPostedInterrupts = 1u << 7;
}  // namespace pin_ctl

namespace proc_ctl {  // Table 25-6 (primary)
constexpr uint32_t kInterruptWindowExiting = 1u << 2;
constexpr uint32_t kUseTscOffsetting = 1u << 3;
constexpr uint32_t kHltExiting = 1u << 7;
constexpr uint32_t kInvlpgExiting = 1u << 9;
constexpr uint32_t kMwaitExiting = 1u << 10;
constexpr uint32_t kRdpmcExiting = 1u << 11;
constexpr uint32_t kRdtscExiting = 1u << 12;
constexpr uint32_t kCr3LoadExiting = 1u << 15;
constexpr uint32_t kCr3StoreExiting = 1u << 16;
constexpr uint32_t kCr8LoadExiting = 1u << 19;
constexpr uint32_t kCr8StoreExiting = 1u << 20;
constexpr uint32_t kUseTprShadow = 1u << 21;
constexpr uint32_t kNmiWindowExiting = 1u << 22;
constexpr uint32_t kMovDrExiting = 1u << 23;
constexpr uint32_t kUnconditionalIoExiting = 1u << 24;
constexpr uint32_t kUseIoBitmaps = 1u << 25;
constexpr uint32_t kMonitorTrapFlag = 1u << 27;
constexpr uint32_t kUseMsrBitmaps = 1u << 28;
constexpr uint32_t kMonitorExiting = 1u << 29;
constexpr uint32_t kPauseExiting = 1u << 30;
constexpr uint32_t kActivateSecondaryControls = 1u << 31;
}  // namespace proc_ctl

namespace proc_ctl2 {  // Table 25-7 (secondary)
constexpr uint32_t kVirtualizeApicAccesses = 1u << 0;
constexpr uint32_t kEnableEpt = 1u << 1;
constexpr uint32_t kDescriptorTableExiting = 1u << 2;
constexpr uint32_t kEnableRdtscp = 1u << 3;
constexpr uint32_t kEnableVpid = 1u << 5;
constexpr uint32_t kWbinvdExiting = 1u << 6;
constexpr uint32_t kUnrestrictedGuest = 1u << 7;
}  // namespace proc_ctl2

namespace exit_ctl {  // Table 25-13
constexpr uint32_t kSaveDebugControls = 1u << 2;
constexpr uint32_t kHostAddressSpaceSize = 1u << 9;
constexpr uint32_t kAckInterruptOnExit = 1u << 15;
constexpr uint32_t kSaveEfer = 1u << 20;
constexpr uint32_t kLoadEfer = 1u << 21;
}  // namespace exit_ctl

namespace entry_ctl {  // Table 25-15
constexpr uint32_t kLoadDebugControls = 1u << 2;
constexpr uint32_t kIa32eModeGuest = 1u << 9;
constexpr uint32_t kLoadEfer = 1u << 15;
}  // namespace entry_ctl

namespace interruptibility {  // Table 25-3 "Format of Interruptibility State"
constexpr uint32_t kBlockingBySti = 1u << 0;
constexpr uint32_t kBlockingByMovSs = 1u << 1;
constexpr uint32_t kBlockingBySmi = 1u << 2;
constexpr uint32_t kBlockingByNmi = 1u << 3;
constexpr uint32_t kEnclaveInterruption = 1u << 4;
constexpr uint32_t kReservedMask = ~0x1Fu;
}  // namespace interruptibility

enum class ActivityState : uint32_t { Active = 0, Hlt = 1, Shutdown = 2, WaitForSipi = 3 };

namespace ept {  // Vol. 3C 29.3.2 "EPT Translation Mechanism", Tables 29-1..29-6
constexpr uint64_t kRead = 1ull << 0;
constexpr uint64_t kWrite = 1ull << 1;
constexpr uint64_t kExecute = 1ull << 2;
constexpr uint64_t kMemTypeShift = 3;  // [5:3] leaf memory type
constexpr uint64_t kIgnorePat = 1ull << 6;
constexpr uint64_t kLargePage = 1ull << 7;  // PDPTE (1 GiB) / PDE (2 MiB)
constexpr uint64_t kAccessed = 1ull << 8;
constexpr uint64_t kDirty = 1ull << 9;
constexpr uint64_t kUserExecute = 1ull << 10;
constexpr uint64_t kAddrMask = 0x000F'FFFF'FFFF'F000ull;
constexpr uint64_t kMemTypeWb = 6;
// EPTP, Table 25-9: [2:0] memory type, [5:3] page-walk length - 1, [6] enable A/D.
constexpr uint64_t make_eptp(uint64_t pml4_hpa, bool ad = false) {
  return (pml4_hpa & kAddrMask) | kMemTypeWb | (3ull << 3) | (ad ? 1ull << 6 : 0);
}
}  // namespace ept

// Guest paging-structure bits used by the CPU model's walk, Vol. 3A 4.5 "4-Level Paging".
namespace pte {
constexpr uint64_t kPresent = 1ull << 0;
constexpr uint64_t kWrite = 1ull << 1;
constexpr uint64_t kUser = 1ull << 2;
constexpr uint64_t kAccessed = 1ull << 5;
constexpr uint64_t kDirty = 1ull << 6;
constexpr uint64_t kLargePage = 1ull << 7;
constexpr uint64_t kNoExecute = 1ull << 63;
constexpr uint64_t kAddrMask = 0x000F'FFFF'FFFF'F000ull;
}  // namespace pte

// Control-register and RFLAGS bits the model uses.
namespace cr0 {
constexpr uint64_t kPE = 1ull << 0, kWP = 1ull << 16, kPG = 1ull << 31;
}
namespace cr4 {
constexpr uint64_t kPAE = 1ull << 5, kPGE = 1ull << 7, kVMXE = 1ull << 13;
}
namespace efer {
constexpr uint64_t kSCE = 1ull << 0, kLME = 1ull << 8, kLMA = 1ull << 10, kNXE = 1ull << 11;
}
namespace rflags {
constexpr uint64_t kCF = 1ull << 0, kFixed1 = 1ull << 1, kPF = 1ull << 2, kAF = 1ull << 4, kZF = 1ull << 6,
                   kSF = 1ull << 7, kTF = 1ull << 8, kIF = 1ull << 9, kDF = 1ull << 10, kOF = 1ull << 11,
                   kNT = 1ull << 14, kRF = 1ull << 16, kVM = 1ull << 17, kAC = 1ull << 18;
}

}  // namespace es::arch
