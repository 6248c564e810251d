// Edits a 4-level EPT hierarchy that lives in host memory (Vol. 3C 29.3.2 "EPT Translation
// Mechanism"). Used by the vmm (lazy EPT population) and by tests that need an EPT.
// Only 4-KiB leaf mappings are created; the CPU model's walk also understands large pages.
#pragma once

#include <cstdint>
#include <optional>

#include "hv/arch/controls.h"
#include "hv/cpu/memory.h"

namespace es::hv {

class EptBuilder {
 public:
  explicit EptBuilder(HostMemory& mem) : mem_(mem), pml4_(mem.alloc_page()) {}

  bool ok() const { return pml4_ != 0; }
  uint64_t pml4_hpa() const { return pml4_; }
  uint64_t eptp() const { return arch::ept::make_eptp(pml4_); }

  // Maps the 4-KiB page at gpa to hpa with permissions (arch::ept::kRead/kWrite/kExecute).
  // Returns false when host memory for paging structures ran out.
  bool map_page(uint64_t gpa, uint64_t hpa,
                uint64_t perms = arch::ept::kRead | arch::ept::kWrite | arch::ept::kExecute) {
    const uint64_t slot = leaf_slot(gpa, /*create=*/true);
    if (slot == 0) return false;
    return mem_.write<uint64_t>(
        slot, (hpa & arch::ept::kAddrMask) | perms | (arch::ept::kMemTypeWb << arch::ept::kMemTypeShift));
  }
  bool unmap_page(uint64_t gpa) {
    const uint64_t slot = leaf_slot(gpa, /*create=*/false);
    return slot != 0 && mem_.write<uint64_t>(slot, 0);
  }
  // The leaf entry for gpa, if the hierarchy reaches one.
  std::optional<uint64_t> leaf(uint64_t gpa) const {
    const uint64_t slot = const_cast<EptBuilder*>(this)->leaf_slot(gpa, false);
    uint64_t e = 0;
    if (slot == 0 || !mem_.read(slot, e)) return std::nullopt;
    return e;
  }
  bool is_mapped(uint64_t gpa) const {
    auto e = leaf(gpa);
    return e && (*e & (arch::ept::kRead | arch::ept::kWrite | arch::ept::kExecute)) != 0;
  }

 private:
  // Host-physical address of the PTE-level slot for gpa; 0 if absent (and !create) or on OOM.
  uint64_t leaf_slot(uint64_t gpa, bool create) {
    uint64_t table = pml4_;
    for (int level = 3; level >= 1; --level) {
      const uint64_t slot = table + ((gpa >> (12 + 9 * level)) & 0x1FF) * 8;
      uint64_t e = 0;
      if (!mem_.read(slot, e)) return 0;
      if ((e & (arch::ept::kRead | arch::ept::kWrite | arch::ept::kExecute)) == 0) {
        if (!create) return 0;
        const uint64_t page = mem_.alloc_page();
        if (page == 0) return 0;
        e = page | arch::ept::kRead | arch::ept::kWrite | arch::ept::kExecute;
        mem_.write(slot, e);
      }
      table = e & arch::ept::kAddrMask;
    }
    return table + ((gpa >> 12) & 0x1FF) * 8;
  }

  HostMemory& mem_;
  uint64_t pml4_;
};

}  // namespace es::hv
