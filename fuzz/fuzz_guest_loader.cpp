// Fuzzes the guest image loader (hv/vmm/loader.h): flat binaries and ELF64 files a user
// passes to `exitscope record --guest`. Any bytes are loaded or refused with one sentence;
// what is loaded lies inside guest RAM and the entry point inside what was loaded.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "hv/cpu/vmcs.h"
#include "hv/vmm/guest_abi.h"
#include "hv/vmm/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Guest RAM at a non-zero host address, as the Machine places it; allocated once (16 MiB).
  constexpr uint64_t kRamHpa = 1ull << 20;
  static es::hv::HostMemory mem(kRamHpa + es::hv::guest_abi::kRamSize);
  es::hv::LoadedImage img;
  std::string error;
  if (es::hv::load_guest_image(std::span<const uint8_t>(data, size), mem, kRamHpa, img, error)) {
    if (!error.empty()) __builtin_trap();
    if (img.lowest > img.highest || img.highest > es::hv::guest_abi::kRamSize) __builtin_trap();
    if (img.format != "flat" && img.format != "elf64") __builtin_trap();
    if (img.entry < img.lowest || img.entry >= img.highest) __builtin_trap();
    static es::hv::Vmcs vmcs;
    es::hv::build_guest_environment(mem, kRamHpa, img.entry, vmcs);
  } else if (error.empty()) {
    __builtin_trap();  // a refusal always says why
  }
  return 0;
}
