// Loads a guest image into guest RAM and builds the entry state of the guest contract.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "hv/cpu/memory.h"
#include "hv/cpu/vmcs.h"

namespace es::hv {

struct LoadedImage {
  uint64_t entry = 0;
  uint64_t lowest = 0, highest = 0;  // guest-physical extent of what was loaded
  std::string format;                // "flat" or "elf64"
};

// Detects ELF64 (x86-64, ET_EXEC, PT_LOAD segments inside RAM) or treats the bytes as a
// flat binary loaded at guest_abi::kImageBase. On error returns false with a one-sentence
// message in `error` (no partial state is kept by the caller).
bool load_guest_image(std::span<const uint8_t> image, HostMemory& mem, uint64_t ram_hpa, LoadedImage& out,
                      std::string& error);

// Page tables, GDT and TSS of the guest contract, written into guest RAM; then the VMCS
// guest-state area (RIP = entry, RSP = boot stack, CR3 = PML4).
void build_guest_environment(HostMemory& mem, uint64_t ram_hpa, uint64_t entry, Vmcs& vmcs);

}  // namespace es::hv
