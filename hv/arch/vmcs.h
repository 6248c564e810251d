// VMCS field encodings and their decoded properties.
// Vol. 3C 25.11.2 "VMREAD, VMWRITE, and Encodings of VMCS Fields":
//   [0]     access type (0 = full, 1 = high 32 bits of a 64-bit field)
//   [9:1]   index
//   [11:10] type  (0 control, 1 VM-exit information / read-only data, 2 guest state, 3 host state)
//   [12]    reserved (0)
//   [14:13] width (0 16-bit, 1 64-bit, 2 32-bit, 3 natural width)
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace es::arch {

enum class VmcsField : uint32_t {
#define X(name, enc) name = (enc),
#include "hv/arch/vmcs_fields.def"
#undef X
};

// Dense index of every field in the table, for array-backed VMCS storage.
enum class VmcsIndex : uint16_t {
#define X(name, enc) name,
#include "hv/arch/vmcs_fields.def"
#undef X
  Count
};
inline constexpr std::size_t kVmcsFieldCount = static_cast<std::size_t>(VmcsIndex::Count);

enum class VmcsWidth : uint8_t { Bits16 = 0, Bits64 = 1, Bits32 = 2, Natural = 3 };
enum class VmcsType : uint8_t { Control = 0, ReadOnly = 1, GuestState = 2, HostState = 3 };

constexpr VmcsWidth vmcs_width(uint32_t encoding) { return static_cast<VmcsWidth>((encoding >> 13) & 3); }
constexpr VmcsType vmcs_type(uint32_t encoding) { return static_cast<VmcsType>((encoding >> 10) & 3); }
constexpr bool vmcs_high_access(uint32_t encoding) { return (encoding & 1) != 0; }
constexpr VmcsWidth vmcs_width(VmcsField f) { return vmcs_width(static_cast<uint32_t>(f)); }
constexpr VmcsType vmcs_type(VmcsField f) { return vmcs_type(static_cast<uint32_t>(f)); }

// Mask of the bits a field holds (natural width = 64 bits in 64-bit mode).
constexpr uint64_t vmcs_width_mask(VmcsWidth w) {
  switch (w) {
    case VmcsWidth::Bits16: return 0xFFFFull;
    case VmcsWidth::Bits32: return 0xFFFF'FFFFull;
    case VmcsWidth::Bits64:
    case VmcsWidth::Natural: return ~0ull;
  }
  return 0;
}

constexpr VmcsIndex vmcs_index(VmcsField f) {
  switch (f) {
#define X(name, enc)    \
  case VmcsField::name: \
    return VmcsIndex::name;
#include "hv/arch/vmcs_fields.def"
#undef X
  }
  return VmcsIndex::Count;
}

// Encodings in table order (namespace scope: built once, not per call).
inline constexpr uint32_t kVmcsEncodings[] = {
#define X(name, enc) (enc),
#include "hv/arch/vmcs_fields.def"
#undef X
};

constexpr VmcsField vmcs_field_at(VmcsIndex i) {
  return static_cast<VmcsField>(kVmcsEncodings[static_cast<std::size_t>(i)]);
}

// Field named in the table for a raw encoding (full access only), if any.
std::optional<VmcsField> vmcs_field_from_encoding(uint32_t encoding);
// Generated from the table: "GuestRip", ...; "?" for an encoding not in the table.
std::string_view to_string(VmcsField f);

}  // namespace es::arch
