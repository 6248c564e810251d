#include "hv/vmm/loader.h"

#include <cstdio>
#include <cstring>

#include "hv/arch/controls.h"
#include "hv/cpu/guest_state.h"
#include "hv/vmm/guest_abi.h"

namespace es::hv {

namespace {

template <typename T>
bool read_at(std::span<const uint8_t> b, uint64_t off, T& out) {
  if (off > b.size() || sizeof(T) > b.size() - off) return false;
  std::memcpy(&out, b.data() + off, sizeof(T));
  return true;
}

// ELF64 header and program header offsets (System V gABI); only what the loader needs.
constexpr uint16_t kEtExec = 2, kEmX86_64 = 62;
constexpr uint32_t kPtLoad = 1;

bool load_elf64(std::span<const uint8_t> img, HostMemory& mem, uint64_t ram_hpa, LoadedImage& out, std::string& error) {
  uint8_t ident_class = img[4], ident_data = img[5];
  uint16_t type = 0, machine = 0, phentsize = 0, phnum = 0;
  uint64_t entry = 0, phoff = 0;
  if (ident_class != 2 || ident_data != 1 || !read_at(img, 16, type) || !read_at(img, 18, machine) ||
      !read_at(img, 24, entry) || !read_at(img, 32, phoff) || !read_at(img, 54, phentsize) ||
      !read_at(img, 56, phnum)) {
    error = "it is an ELF file but not a little-endian ELF64 image";
    return false;
  }
  if (type != kEtExec || machine != kEmX86_64) {
    error = "it is an ELF file but not an x86-64 executable (ET_EXEC, EM_X86_64)";
    return false;
  }
  if (phentsize < 56 || phnum == 0) {
    error = "its ELF program header table is missing or malformed";
    return false;
  }
  out.lowest = ~0ull;
  out.highest = 0;
  unsigned loaded = 0;
  for (uint16_t i = 0; i < phnum; ++i) {
    const uint64_t ph = phoff + static_cast<uint64_t>(i) * phentsize;
    uint32_t p_type = 0;
    uint64_t p_offset = 0, p_paddr = 0, p_filesz = 0, p_memsz = 0;
    if (!read_at(img, ph, p_type) || !read_at(img, ph + 8, p_offset) || !read_at(img, ph + 24, p_paddr) ||
        !read_at(img, ph + 32, p_filesz) || !read_at(img, ph + 40, p_memsz)) {
      error = "its ELF program header table runs past the end of the file (truncated?)";
      return false;
    }
    if (p_type != kPtLoad) continue;
    if (p_filesz > p_memsz || p_offset > img.size() || p_filesz > img.size() - p_offset) {
      error = "an ELF PT_LOAD segment runs past the end of the file (truncated?)";
      return false;
    }
    if (p_paddr < guest_abi::kImageBase || p_memsz > guest_abi::kRamSize || p_paddr > guest_abi::kRamSize - p_memsz) {
      // Name the segment and where it is: the usual one is GNU ld's first segment (ELF header
      // and program headers) put a page below .text by `ld -Ttext=0x100000`.
      char where[160];
      std::snprintf(where, sizeof where, "ELF PT_LOAD segment %u (program header %u) at 0x%llx..0x%llx", loaded, i,
                    static_cast<unsigned long long>(p_paddr), static_cast<unsigned long long>(p_paddr + p_memsz));
      error = std::string(where) + " lies outside guest RAM [1 MiB, 16 MiB) = [0x100000, 0x1000000)";
      if (p_paddr < guest_abi::kImageBase)
        error +=
            "; if it holds the ELF headers (ld -Ttext puts them below .text), link with "
            "'ld -Ttext-segment=0x100000 -e start' (hv/guests/README.md)";
      return false;
    }
    mem.copy_in(ram_hpa + p_paddr, img.data() + p_offset, p_filesz);
    std::memset(mem.ptr(ram_hpa + p_paddr + p_filesz, p_memsz - p_filesz), 0, p_memsz - p_filesz);
    out.lowest = std::min(out.lowest, p_paddr);
    out.highest = std::max(out.highest, p_paddr + p_memsz);
    ++loaded;
  }
  if (loaded == 0) {
    error = "its ELF image has no PT_LOAD segment";
    return false;
  }
  if (entry < out.lowest || entry >= out.highest) {
    error = "its ELF entry point is outside the loaded segments";
    return false;
  }
  out.entry = entry;
  out.format = "elf64";
  return true;
}

}  // namespace

bool load_guest_image(std::span<const uint8_t> img, HostMemory& mem, uint64_t ram_hpa, LoadedImage& out,
                      std::string& error) {
  if (img.empty()) {
    error = "it is empty";
    return false;
  }
  if (img.size() >= 4 && img[0] == 0x7F && img[1] == 'E' && img[2] == 'L' && img[3] == 'F') {
    if (img.size() < 64) {
      error = "it starts like an ELF file but is shorter than an ELF64 header (truncated?)";
      return false;
    }
    return load_elf64(img, mem, ram_hpa, out, error);
  }
  if (img.size() > guest_abi::kIdentityMapped - guest_abi::kImageBase) {
    error = "a flat binary must fit between 1 MiB and 8 MiB (7 MiB at most)";
    return false;
  }
  mem.copy_in(ram_hpa + guest_abi::kImageBase, img.data(), img.size());
  out.entry = guest_abi::kImageBase;
  out.lowest = guest_abi::kImageBase;
  out.highest = guest_abi::kImageBase + img.size();
  out.format = "flat";
  return true;
}

void build_guest_environment(HostMemory& mem, uint64_t ram, uint64_t entry, Vmcs& vmcs) {
  using namespace guest_abi;
  // Vol. 3A 4.5 "4-Level Paging": PML4[0] -> PDPT, PDPT[0] -> PD, PD[i] = 2-MiB pages.
  const uint64_t flags = arch::pte::kPresent | arch::pte::kWrite | arch::pte::kUser;
  mem.write<uint64_t>(ram + kPml4, kPdpt | flags);
  mem.write<uint64_t>(ram + kPdpt, kPd | flags);
  for (uint64_t i = 0; i < kIdentityMapped / (2ull << 20); ++i)
    mem.write<uint64_t>(ram + kPd + i * 8, (i << 21) | flags | arch::pte::kLargePage);

  GuestLayout layout;
  layout.rip = entry;
  layout.rsp = kBootStackTop;
  layout.cr3 = kPml4;
  layout.gdt_base = kGdt;
  layout.tss_base = kTss;
  uint64_t gdt[7];
  standard_gdt(layout, gdt);
  mem.copy_in(ram + kGdt, gdt, sizeof gdt);
  // 64-bit TSS, Vol. 3A 8.7 "Task Management in 64-bit Mode": RSP0 at offset 4, IST1..7 at 36.
  mem.write<uint64_t>(ram + kTss + 4, kBootStackTop);
  mem.write<uint16_t>(ram + kTss + 102, 104);  // I/O map base beyond the limit: no bitmap
  init_long_mode_guest_state(vmcs, layout);
}

}  // namespace es::hv
