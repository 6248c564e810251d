// The three 32-bit event words of the VMCS, each with its own type because their bits
// 11..13 differ. All three share [7:0] vector, [10:8] interruption type, [31] valid.
//
//  VM-entry interruption-information field (0x4016), Vol. 3C 26.8.3 / 25.8.3
//  "VM-Entry Controls for Event Injection":
//    [11] deliver error code; [30:12] reserved (must be 0, checked at VM entry).
//  VM-exit interruption-information field (0x4404), Vol. 3C 28.2.2 "Information for VM
//  Exits Due to Vectored Events":
//    [11] error code valid; [12] NMI unblocking due to IRET; [13] nested exception
//    (FRED "VMX nested-exception support": mirrors the valid bit of IDT-vectoring info);
//    [30:14] reserved.
//  IDT-vectoring information field (0x4408), Vol. 3C 28.2.4 "Information for VM Exits
//  That Occur During Event Delivery":
//    [11] error code valid; [12] undefined; [30:13] reserved.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace es::arch {

// Interruption types, Vol. 3C 26.8.3 Table "Format of the VM-Entry Interruption-Information Field".
enum class InterruptionType : uint8_t {
  ExternalInterrupt = 0,
  Reserved1 = 1,
  Nmi = 2,
  HardwareException = 3,
  SoftwareInterrupt = 4,            // INT n
  PrivilegedSoftwareException = 5,  // INT1 (ICEBP)
  SoftwareException = 6,            // INT3, INTO
  OtherEvent = 7,                   // MTF (vector 0) / FRED syscall
};
std::string_view to_string(InterruptionType t);
// Types whose delivery depends on an instruction length (VM-entry / VM-exit instruction length fields).
constexpr bool type_has_instruction_length(InterruptionType t) {
  return t == InterruptionType::SoftwareInterrupt || t == InterruptionType::PrivilegedSoftwareException ||
         t == InterruptionType::SoftwareException;
}

namespace detail {
constexpr uint32_t kVectorMask = 0xFF;  // [7:0]
constexpr uint32_t kTypeShift = 8;      // [10:8]
constexpr uint32_t kTypeMask = 0x7u << 8;
constexpr uint32_t kErrorCodeBit = 1u << 11;  // [11]
constexpr uint32_t kValidBit = 1u << 31;      // [31]
constexpr uint32_t make(uint8_t vector, InterruptionType type, bool error_code) {
  return kValidBit | vector | (static_cast<uint32_t>(type) << kTypeShift) | (error_code ? kErrorCodeBit : 0);
}
}  // namespace detail

// Common read-only view; not constructible by itself.
template <typename Derived>
class EventWordBase {
 public:
  constexpr uint32_t raw() const { return raw_; }
  constexpr bool valid() const { return (raw_ & detail::kValidBit) != 0; }
  constexpr uint8_t vector() const { return static_cast<uint8_t>(raw_ & detail::kVectorMask); }
  constexpr InterruptionType type() const {
    return static_cast<InterruptionType>((raw_ & detail::kTypeMask) >> detail::kTypeShift);
  }
  constexpr bool error_code_bit() const { return (raw_ & detail::kErrorCodeBit) != 0; }
  constexpr bool reserved_bits_clear() const { return (raw_ & Derived::kReservedMask) == 0; }
  constexpr bool operator==(const EventWordBase&) const = default;

 protected:
  constexpr EventWordBase() = default;
  constexpr explicit EventWordBase(uint32_t raw) : raw_(raw) {}
  uint32_t raw_ = 0;
};

// VM-entry interruption information (what the hypervisor injects).
class EntryIntrInfo : public EventWordBase<EntryIntrInfo> {
 public:
  static constexpr uint32_t kReservedMask = 0x7FFF'F000u;  // [30:12]
  constexpr EntryIntrInfo() = default;
  constexpr explicit EntryIntrInfo(uint32_t raw) : EventWordBase(raw) {}
  static constexpr EntryIntrInfo make(uint8_t vector, InterruptionType type, bool deliver_error_code = false) {
    return EntryIntrInfo(detail::make(vector, type, deliver_error_code));
  }
  constexpr bool deliver_error_code() const { return error_code_bit(); }
};
static_assert(sizeof(EntryIntrInfo) == 4);

// VM-exit interruption information (the event that caused an exit, reason 0 or 1).
class ExitIntrInfo : public EventWordBase<ExitIntrInfo> {
 public:
  static constexpr uint32_t kNmiUnblockingBit = 1u << 12;    // [12]
  static constexpr uint32_t kNestedExceptionBit = 1u << 13;  // [13]
  static constexpr uint32_t kReservedMask = 0x7FFF'C000u;    // [30:14]
  constexpr ExitIntrInfo() = default;
  constexpr explicit ExitIntrInfo(uint32_t raw) : EventWordBase(raw) {}
  static constexpr ExitIntrInfo make(uint8_t vector, InterruptionType type, bool error_code_valid = false,
                                     bool nmi_unblocking = false, bool nested_exception = false) {
    return ExitIntrInfo(detail::make(vector, type, error_code_valid) | (nmi_unblocking ? kNmiUnblockingBit : 0) |
                        (nested_exception ? kNestedExceptionBit : 0));
  }
  constexpr bool error_code_valid() const { return error_code_bit(); }
  constexpr bool nmi_unblocking_due_to_iret() const { return (raw_ & kNmiUnblockingBit) != 0; }
  constexpr bool nested_exception() const { return (raw_ & kNestedExceptionBit) != 0; }
};
static_assert(sizeof(ExitIntrInfo) == 4);

// IDT-vectoring information (the event whose delivery was interrupted by the exit).
class IdtVectoringInfo : public EventWordBase<IdtVectoringInfo> {
 public:
  static constexpr uint32_t kUndefinedBit = 1u << 12;      // [12] undefined: ignored by reserved check
  static constexpr uint32_t kReservedMask = 0x7FFF'E000u;  // [30:13]
  constexpr IdtVectoringInfo() = default;
  constexpr explicit IdtVectoringInfo(uint32_t raw) : EventWordBase(raw) {}
  static constexpr IdtVectoringInfo make(uint8_t vector, InterruptionType type, bool error_code_valid = false) {
    return IdtVectoringInfo(detail::make(vector, type, error_code_valid));
  }
  constexpr bool error_code_valid() const { return error_code_bit(); }
};
static_assert(sizeof(IdtVectoringInfo) == 4);

// The explicit conversion KVM's __vmx_complete_interrupts relies on: the event recorded in
// IDT-vectoring info, re-expressed as a VM-entry injection of the same event (vector, type,
// error-code flag). Undefined bit 12 and any reserved bits are dropped. Vol. 3C 28.2.4 and
// 26.8.3: the two words share vector/type/bit 11 layout precisely so this is possible.
constexpr EntryIntrInfo to_reinjection(IdtVectoringInfo v) {
  return v.valid() ? EntryIntrInfo::make(v.vector(), v.type(), v.error_code_valid()) : EntryIntrInfo{};
}
// The reverse direction, used by a nested VM exit when the event L1 injected did not reach L2
// (cancelled injection reported to L1 in vmcs12's IDT-vectoring field, Vol. 3C 28.2.4 / KVM
// vmcs12_save_pending_event).
constexpr IdtVectoringInfo to_idt_vectoring(EntryIntrInfo e) {
  return e.valid() ? IdtVectoringInfo::make(e.vector(), e.type(), e.deliver_error_code()) : IdtVectoringInfo{};
}

// "IRQ 0x20", "#PF(err)", "NMI", "INT 0x80", "#BP" ... ; "-" when not valid.
std::string describe_event(uint32_t vector_type_valid_word);
std::string describe(EntryIntrInfo e);
std::string describe(ExitIntrInfo e);
std::string describe(IdtVectoringInfo v);
// The same text appended to `out` (no temporary string): exports decode every event of a
// recording straight into their output buffer.
void describe_event_to(std::string& out, uint32_t vector_type_valid_word);
void describe_to(std::string& out, EntryIntrInfo e);
void describe_to(std::string& out, ExitIntrInfo e);
void describe_to(std::string& out, IdtVectoringInfo v);

}  // namespace es::arch
