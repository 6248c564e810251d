// A standard starting point for a 64-bit guest and for the L0 controls the model uses.
// Shared by the vmm's loader and by the CPU tests so both describe the same machine.
#pragma once

#include <cstdint>

#include "hv/cpu/vmcs.h"

namespace es::hv {

// Flat 64-bit protected mode with paging, CPL 0 (Vol. 3C 27.3.1 "Checks on the Guest State
// Area" is what this satisfies):
//   GDT at gdt_base: 0x08 64-bit code DPL0, 0x10 data DPL0, 0x18 data DPL3, 0x20 64-bit code
//   DPL3, 0x28 64-bit TSS (16 bytes) — the descriptors themselves are written by
//   write_standard_gdt() into guest memory; the VMCS gets the matching hidden parts.
//   CR0 = PE|PG|WP|ET|NE, CR4 = PAE (+VMXE is not visible to the guest), EFER = LME|LMA|NXE.
struct GuestLayout {
  uint64_t rip = 0;
  uint64_t rsp = 0;
  uint64_t cr3 = 0;       // guest-physical address of the PML4
  uint64_t gdt_base = 0;  // guest-linear (identity-mapped) address of the GDT
  uint16_t gdt_limit = 0x37;
  uint64_t idt_base = 0;
  uint16_t idt_limit = 0;
  uint64_t tss_base = 0;  // guest-linear address of the 64-bit TSS (104 bytes)
};

inline constexpr uint16_t kGuestCodeSel = 0x08, kGuestDataSel = 0x10, kGuestUserDataSel = 0x1B,
                          kGuestUserCodeSel = 0x23, kGuestTssSel = 0x28;

// Writes the guest-state area for the layout above.
void init_long_mode_guest_state(Vmcs& vmcs, const GuestLayout& layout);

// The 7 GDT quadwords (0x00..0x30) for the layout above, to be copied to gdt_base.
void standard_gdt(const GuestLayout& layout, uint64_t out[7]);

// L0's VM-execution, exit and entry controls: external-interrupt exiting with
// acknowledge-on-exit, NMI exiting + virtual NMIs, HLT exiting, unconditional I/O exiting,
// EPT with the given EPTP, IA-32e mode guest. Exception bitmap 0.
void init_l0_controls(Vmcs& vmcs, uint64_t eptp);

}  // namespace es::hv
