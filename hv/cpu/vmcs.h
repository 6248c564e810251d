// VMCS storage: one slot per field of the arch table, values kept at the field's width.
// The raw value is the truth; typed views (arch/event_info.h ...) decode it.
#pragma once

#include <array>
#include <cstdint>

#include "hv/arch/vmcs.h"

namespace es::hv {

class Vmcs {
 public:
  uint64_t read(arch::VmcsField f) const { return values_[index(f)]; }
  uint32_t read32(arch::VmcsField f) const { return static_cast<uint32_t>(values_[index(f)]); }
  void write(arch::VmcsField f, uint64_t v) {
    values_[index(f)] = v & arch::vmcs_width_mask(arch::vmcs_width(f));
  }
  void set_bits(arch::VmcsField f, uint64_t bits) { write(f, read(f) | bits); }
  void clear_bits(arch::VmcsField f, uint64_t bits) { write(f, read(f) & ~bits); }
  bool test_bits(arch::VmcsField f, uint64_t bits) const { return (read(f) & bits) == bits; }

  // VMREAD / VMWRITE by raw encoding (nested VMX emulation). Handles the "high" access type
  // of 64-bit fields. False for an encoding the table does not know.
  bool read_encoding(uint32_t encoding, uint64_t& out) const;
  bool write_encoding(uint32_t encoding, uint64_t v);

  void clear() { values_.fill(0); }

 private:
  static constexpr std::size_t index(arch::VmcsField f) { return static_cast<std::size_t>(arch::vmcs_index(f)); }
  std::array<uint64_t, arch::kVmcsFieldCount> values_{};
};

inline bool Vmcs::read_encoding(uint32_t encoding, uint64_t& out) const {
  const bool high = arch::vmcs_high_access(encoding);
  auto f = arch::vmcs_field_from_encoding(encoding & ~1u);
  if (!f || (high && arch::vmcs_width(*f) != arch::VmcsWidth::Bits64)) return false;
  out = high ? (read(*f) >> 32) : read(*f);
  return true;
}

inline bool Vmcs::write_encoding(uint32_t encoding, uint64_t v) {
  const bool high = arch::vmcs_high_access(encoding);
  auto f = arch::vmcs_field_from_encoding(encoding & ~1u);
  if (!f || (high && arch::vmcs_width(*f) != arch::VmcsWidth::Bits64)) return false;
  if (high) write(*f, (read(*f) & 0xFFFF'FFFFull) | (v << 32));
  else write(*f, v);
  return true;
}

}  // namespace es::hv
