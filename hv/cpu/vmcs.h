// VMCS storage: one slot per field of the arch table, values kept at the field's width.
// The raw value is the truth; typed views (arch/event_info.h ...) decode it.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "hv/arch/vmcs.h"

namespace es::hv {

namespace vmcs_detail {
// Dense slot lookup without a switch: the encoding's width [14:13], type [11:10] and index
// [5:1] (every field of the table has index < 32) form a 9-bit key into a table built at
// compile time from the same X-macro. Keeps VMCS access on the exit path O(1).
constexpr unsigned slot_key(uint32_t enc) {
  return (((enc >> 13) & 3) << 7) | (((enc >> 10) & 3) << 5) | ((enc >> 1) & 0x1F);
}
constexpr bool slot_key_fits(uint32_t enc) { return ((enc >> 1) & 0x1FF) < 32 && (enc & 0x1000) == 0; }
inline constexpr auto kSlots = [] {
  std::array<uint16_t, 512> t{};
  for (auto& x : t) x = 0xFFFF;
  uint16_t i = 0;
#define X(name, enc) t[slot_key(enc)] = i++;
#include "hv/arch/vmcs_fields.def"
#undef X
  return t;
}();
constexpr bool all_fields_fit() {
#define X(name, enc) \
  if (!slot_key_fits(enc)) return false;
#include "hv/arch/vmcs_fields.def"
#undef X
  return true;
}
static_assert(all_fields_fit(), "a VMCS field index no longer fits the slot key: widen slot_key");
}  // namespace vmcs_detail

class Vmcs {
 public:
  uint64_t read(arch::VmcsField f) const { return values_[index(f)]; }
  uint32_t read32(arch::VmcsField f) const { return static_cast<uint32_t>(values_[index(f)]); }
  void write(arch::VmcsField f, uint64_t v) { values_[index(f)] = v & arch::vmcs_width_mask(arch::vmcs_width(f)); }
  void set_bits(arch::VmcsField f, uint64_t bits) { write(f, read(f) | bits); }
  void clear_bits(arch::VmcsField f, uint64_t bits) { write(f, read(f) & ~bits); }
  bool test_bits(arch::VmcsField f, uint64_t bits) const { return (read(f) & bits) == bits; }

  // VMREAD / VMWRITE by raw encoding (nested VMX emulation). Handles the "high" access type
  // of 64-bit fields. False for an encoding the table does not know.
  bool read_encoding(uint32_t encoding, uint64_t& out) const;
  bool write_encoding(uint32_t encoding, uint64_t v);

  void clear() { values_.fill(0); }

  // Copies the whole guest-state area from `other` (nested VMX: vmcs12 -> vmcs02 at a nested
  // VM entry, vmcs02 -> vmcs12 at a nested VM exit).
  void copy_guest_state_from(const Vmcs& other) {
    for (const arch::VmcsField f : guest_state_fields()) write(f, other.read(f));
  }

 private:
  static const std::vector<arch::VmcsField>& guest_state_fields() {
    static const std::vector<arch::VmcsField> kFields = [] {
      std::vector<arch::VmcsField> v;
      for (uint32_t enc : arch::kVmcsEncodings)
        if (arch::vmcs_type(enc) == arch::VmcsType::GuestState) v.push_back(static_cast<arch::VmcsField>(enc));
      return v;
    }();
    return kFields;
  }
  static constexpr std::size_t index(arch::VmcsField f) {
    return vmcs_detail::kSlots[vmcs_detail::slot_key(static_cast<uint32_t>(f))];
  }
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
  if (high)
    write(*f, (read(*f) & 0xFFFF'FFFFull) | (v << 32));
  else
    write(*f, v);
  return true;
}

}  // namespace es::hv
