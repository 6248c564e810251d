// VM-exit reason, Vol. 3C 28.2.1 "Basic VM-Exit Information" (Table "Format of Exit Reason"):
//   [15:0]  basic exit reason
//   [16]    always cleared to 0
//   [26:17] reserved (0)
//   [27]    VM exit incident to enclave mode
//   [28]    pending MTF VM exit
//   [29]    VM exit from VMX root operation
//   [30]    reserved (0)
//   [31]    VM-entry failure
// The full 32-bit word is kept; the basic reason is a view.
#pragma once

#include <cstdint>
#include <string_view>

namespace es::arch {

enum class BasicExitReason : uint16_t {
#define X(name, num, text) name = (num),
#include "hv/arch/exit_reasons.def"
#undef X
};

// One past the highest basic exit reason in the table; bounds dispatch tables.
inline constexpr uint16_t kExitReasonLimit = 78;

class ExitReason {
 public:
  static constexpr uint32_t kBasicMask = 0xFFFF;
  static constexpr uint32_t kEnclaveMode = 1u << 27;
  static constexpr uint32_t kPendingMtf = 1u << 28;
  static constexpr uint32_t kFromVmxRoot = 1u << 29;
  static constexpr uint32_t kEntryFailure = 1u << 31;
  static constexpr uint32_t kReservedMask = 0x4000'0000u | 0x07FE'0000u | (1u << 16);

  constexpr ExitReason() = default;
  constexpr explicit ExitReason(uint32_t raw) : raw_(raw) {}
  constexpr explicit ExitReason(BasicExitReason basic, uint32_t flags = 0)
      : raw_(static_cast<uint32_t>(basic) | flags) {}

  constexpr uint32_t raw() const { return raw_; }
  constexpr uint16_t basic_number() const { return static_cast<uint16_t>(raw_ & kBasicMask); }
  constexpr BasicExitReason basic() const { return static_cast<BasicExitReason>(basic_number()); }
  constexpr bool entry_failure() const { return (raw_ & kEntryFailure) != 0; }
  constexpr bool enclave_mode() const { return (raw_ & kEnclaveMode) != 0; }
  constexpr bool pending_mtf() const { return (raw_ & kPendingMtf) != 0; }
  constexpr bool from_vmx_root() const { return (raw_ & kFromVmxRoot) != 0; }
  constexpr bool reserved_bits_clear() const { return (raw_ & kReservedMask) == 0; }
  constexpr bool is(BasicExitReason b) const { return basic() == b; }
  constexpr bool operator==(const ExitReason&) const = default;

 private:
  uint32_t raw_ = 0;
};
static_assert(sizeof(ExitReason) == 4);

// True if the basic reason number is one the SDM defines.
bool is_known_exit_reason(uint16_t basic);
// KVM's trace name ("EPT_VIOLATION"), or empty for an undefined number.
std::string_view exit_reason_name(uint16_t basic);
// Parses a KVM trace name (case-insensitive, with or without "EXIT_REASON_"); -1 if unknown.
int exit_reason_from_name(std::string_view name);

}  // namespace es::arch
