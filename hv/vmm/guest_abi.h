// The guest contract: what a guest program finds when it starts and how it talks to the
// machine. Documented for users in hv/guests/README.md; the NASM side is hv/guests/guest.inc.
// Keep the three in step.
#pragma once

#include <cstdint>

namespace es::hv::guest_abi {

constexpr uint64_t kRamSize = 16ull << 20;  // guest-physical RAM [0, 16 MiB)
constexpr uint64_t kPml4 = 0x1000;          // loader-built page tables
constexpr uint64_t kPdpt = 0x2000;
constexpr uint64_t kPd = 0x3000;
constexpr uint64_t kIdentityMapped = 8ull << 20;  // [0, 8 MiB) mapped with 2 MiB pages, RW, U
constexpr uint64_t kGdt = 0x4000;                 // GDT: 0x08 code64, 0x10 data, 0x18 udata, 0x20 ucode64, 0x28 TSS
constexpr uint64_t kTss = 0x4100;                 // 64-bit TSS: RSP0 = kBootStackTop, IST slots 0
constexpr uint64_t kBootStackTop = 0x9F000;       // initial RSP
constexpr uint64_t kImageBase = 0x100000;         // flat binaries load and start here

// I/O ports.
constexpr uint16_t kPortSerial = 0x3F8;        // OUT: one console byte
constexpr uint16_t kPortSerialStatus = 0x3FD;  // IN: 0x60 (transmitter empty)
constexpr uint16_t kPortExit = 0xF4;           // OUT al: end the run, al = guest exit code
constexpr uint16_t kPortTimerPeriod = 0x40;    // OUT eax: periodic timer period in ns (0 = stop)
constexpr uint16_t kPortTimerVector = 0x43;    // OUT al: vector the timer raises (default 0x20)
constexpr uint16_t kPortNmi = 0x41;            // OUT al: raise al NMIs now
constexpr uint16_t kPortIrq = 0x42;            // OUT al: raise IRQ with vector al now
constexpr uint16_t kPortSelfIrq = 0x45;        // OUT al: an interrupt for the hypervisor itself in al ns
constexpr uint16_t kPortMachineNmi = 0x46;     // OUT: an NMI on the physical CPU (belongs to L0's host)
constexpr uint8_t kDefaultTimerVector = 0x20;
constexpr uint8_t kHostTimerVector = 0xEC;  // the hypervisor's own timer (LOCAL_TIMER_VECTOR on Linux)
constexpr uint8_t kSelfIrqVector = 0xED;    // port 0x45's interrupt for the hypervisor

}  // namespace es::hv::guest_abi
