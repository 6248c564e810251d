// AMD SVM facts: intercept exit codes and the event-injection words, AMD64 Architecture
// Programmer's Manual Vol. 2 (24593), chapter 15 "Secure Virtual Machine" and Appendix C.
// Facts only, like the VMX headers beside this one: the raw word is kept, views sit on top.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "hv/arch/event_info.h"

namespace es::arch {

// EXITCODE of the VMCB control area (offset 0x70), Appendix C "SVM Intercept Exit Codes". A
// 64-bit field whose negative values (-1 VMEXIT_INVALID ...) say VMRUN failed; recordings keep
// the low 32 bits, as KVM's kvm_exit does, so -1 is 0xffffffff.
enum class SvmExitCode : uint32_t {
#define X(name, code, text, macro, apm) name = (code),
#include "hv/arch/svm_exit_codes.def"
#undef X
};

inline constexpr uint32_t kSvmExitExcpBase = 0x040;  // 0x40 + vector, through 0x5f
inline constexpr uint32_t kSvmExitExcpLast = 0x05f;

// True if the code is in the table (APM Appendix C, or a GHCB VMGEXIT event KVM prints).
bool is_known_svm_exit_code(uint32_t code);
// KVM's trace name ("npf", "io", "hypercall", "GP excp"), or empty for a code not in the table.
std::string_view svm_exit_name(uint32_t code);
// Any spelling of an exit code, case-insensitive: KVM's name ("interrupt", "PF excp"), the kernel
// macro with or without its prefix ("SVM_EXIT_NPF", "EXIT_EXCP_GP" as trace-cmd's plugin prints,
// "IOIO"), the APM mnemonic ("VMEXIT_IOIO", "VMEXIT_EXCP13", "VMEXIT_INVALID"). nullopt if none.
std::optional<uint32_t> svm_exit_code_from_name(std::string_view name);
// Exception vector of an exception-intercept code (0x40..0x5f), nullopt for any other code.
constexpr std::optional<uint8_t> svm_exit_exception_vector(uint32_t code) {
  if (code < kSvmExitExcpBase || code > kSvmExitExcpLast) return std::nullopt;
  return static_cast<uint8_t>(code - kSvmExitExcpBase);
}

// Event types of EVENTINJ / EXITINTINFO [10:8], APM 15.20 "Event Injection". Not the VMX
// numbering: SVM has no privileged / software-exception types (INT3 and INTO are type 3), and
// 1, 5, 6, 7 are reserved (VMRUN fails with an illegal type).
enum class SvmEventType : uint8_t {
  Intr = 0,  // external or virtual interrupt (INTR)
  Nmi = 2,
  Exception = 3,  // fault or trap, INT3 / INTO included
  SoftInt = 4,    // software interrupt (INTn)
};
std::string_view to_string(SvmEventType t);

// EVENTINJ (VMCB offset 0xa8, what the hypervisor injects at the next VMRUN) and EXITINTINFO
// (offset 0x88, the event whose delivery the #VMEXIT interrupted) share one format, APM 15.20
// "Event Injection" and 15.7.2 "Intercepts During IDT Interrupt Delivery":
//   [7:0]   VECTOR
//   [10:8]  TYPE (SvmEventType)
//   [11]    EV: ERRORCODE is pushed
//   [30:12] reserved
//   [31]    V: valid
//   [63:32] ERRORCODE
// The raw 64-bit word is kept; recordings carry the low half and the error code in separate
// 32-bit fields (es_record idt_vectoring_info / idt_vectoring_error), hence from_parts().
class SvmEventInfo {
 public:
  static constexpr uint64_t kVectorMask = 0xFF;  // [7:0]
  static constexpr unsigned kTypeShift = 8;      // [10:8]
  static constexpr uint64_t kTypeMask = 0x7ull << 8;
  static constexpr uint64_t kErrorValidBit = 1ull << 11;     // [11] EV
  static constexpr uint64_t kValidBit = 1ull << 31;          // [31] V
  static constexpr uint64_t kReservedMask = 0x7FFF'F000ull;  // [30:12]
  static constexpr unsigned kErrorCodeShift = 32;            // [63:32]

  constexpr SvmEventInfo() = default;
  constexpr explicit SvmEventInfo(uint64_t raw) : raw_(raw) {}
  static constexpr SvmEventInfo from_parts(uint32_t low, uint32_t error_code) {
    return SvmEventInfo(low | (static_cast<uint64_t>(error_code) << kErrorCodeShift));
  }
  static constexpr SvmEventInfo make(uint8_t vector, SvmEventType type, std::optional<uint32_t> error_code = {}) {
    return SvmEventInfo(kValidBit | vector | (static_cast<uint64_t>(type) << kTypeShift) |
                        (error_code ? kErrorValidBit | (static_cast<uint64_t>(*error_code) << kErrorCodeShift) : 0));
  }

  constexpr uint64_t raw() const { return raw_; }
  constexpr uint32_t low() const { return static_cast<uint32_t>(raw_); }
  constexpr bool valid() const { return (raw_ & kValidBit) != 0; }
  constexpr uint8_t vector() const { return static_cast<uint8_t>(raw_ & kVectorMask); }
  constexpr uint8_t type_bits() const { return static_cast<uint8_t>((raw_ & kTypeMask) >> kTypeShift); }
  // The type, or nullopt for a reserved encoding (1, 5, 6, 7).
  constexpr std::optional<SvmEventType> type() const {
    switch (type_bits()) {
      case 0: return SvmEventType::Intr;
      case 2: return SvmEventType::Nmi;
      case 3: return SvmEventType::Exception;
      case 4: return SvmEventType::SoftInt;
      default: return std::nullopt;
    }
  }
  constexpr bool error_code_valid() const { return (raw_ & kErrorValidBit) != 0; }
  constexpr uint32_t error_code() const { return static_cast<uint32_t>(raw_ >> kErrorCodeShift); }
  constexpr bool reserved_bits_clear() const { return (raw_ & kReservedMask) == 0; }
  constexpr bool operator==(const SvmEventInfo&) const = default;

 private:
  uint64_t raw_ = 0;
};
static_assert(sizeof(SvmEventInfo) == 8);

// The same event as the VMX-style VM-entry interruption information the records use (Intel
// SDM Vol. 3C 26.8.3): vector, [11] deliver-error-code and [31] valid sit at the same bits; the
// type is renumbered. INT3 / INTO, which SVM reports as exceptions (type 3, vector 3 / 4),
// become VMX software exceptions (type 6), as KVM's svm_complete_interrupts requeues them as soft
// exceptions (kvm_exception_is_soft). The error code stays in its own field. An invalid word, or
// one with a reserved type, gives an invalid (zero) word: nothing to reinject.
constexpr EntryIntrInfo to_vmx_entry(SvmEventInfo e) {
  if (!e.valid()) return EntryIntrInfo{};
  const auto t = e.type();
  if (!t) return EntryIntrInfo{};
  InterruptionType vt = InterruptionType::ExternalInterrupt;
  switch (*t) {
    case SvmEventType::Intr: vt = InterruptionType::ExternalInterrupt; break;
    case SvmEventType::Nmi: vt = InterruptionType::Nmi; break;
    case SvmEventType::Exception:
      vt = (e.vector() == 3 || e.vector() == 4) ? InterruptionType::SoftwareException
                                                : InterruptionType::HardwareException;
      break;
    case SvmEventType::SoftInt: vt = InterruptionType::SoftwareInterrupt; break;
  }
  return EntryIntrInfo::make(e.vector(), vt, e.error_code_valid());
}

// "IRQ 0x30", "#PF err=0x6", "NMI", "INT 0x80"; "-" when not valid. Built from to_vmx_entry.
std::string describe(SvmEventInfo e);

// EXITINFO1 of an IOIO intercept (exit code 0x7b), APM 15.10.2 "IN and OUT Behavior":
//   [0] TYPE (1 = IN), [2] STR, [3] REP, [4] SZ8, [5] SZ16, [6] SZ32, [7] A16, [8] A32, [9] A64,
//   [12:10] SEG, [31:16] PORT.
class SvmIoInfo {
 public:
  constexpr explicit SvmIoInfo(uint64_t raw) : raw_(raw) {}
  constexpr uint64_t raw() const { return raw_; }
  constexpr bool in() const { return (raw_ & 1) != 0; }
  constexpr bool string() const { return (raw_ & (1u << 2)) != 0; }
  constexpr bool rep() const { return (raw_ & (1u << 3)) != 0; }
  // Operand size in bytes from SZ8 / SZ16 / SZ32 (one-hot); 0 if none is set.
  constexpr unsigned size() const {
    return (raw_ & (1u << 4)) ? 1 : (raw_ & (1u << 5)) ? 2 : (raw_ & (1u << 6)) ? 4 : 0;
  }
  constexpr uint16_t port() const { return static_cast<uint16_t>((raw_ >> 16) & 0xFFFF); }

 private:
  uint64_t raw_;
};

// EXITINFO1 of a nested page fault (exit code 0x400), APM 15.25.6 "Nested versus Guest Page
// Faults, Fault Ordering": the #PF error code bits in [31:0] (P, RW, US, RSV, ID), and
//   [32] the fault happened translating the final guest-physical address,
//   [33] the fault happened on a guest page-table access (the guest's own walk).
// EXITINFO2 is the faulting guest-physical address.
class SvmNpfInfo {
 public:
  constexpr explicit SvmNpfInfo(uint64_t raw) : raw_(raw) {}
  constexpr uint64_t raw() const { return raw_; }
  constexpr bool present() const { return (raw_ & 1) != 0; }
  constexpr bool write() const { return (raw_ & (1u << 1)) != 0; }
  constexpr bool user() const { return (raw_ & (1u << 2)) != 0; }
  constexpr bool reserved_bit() const { return (raw_ & (1u << 3)) != 0; }
  constexpr bool fetch() const { return (raw_ & (1u << 4)) != 0; }
  constexpr bool final_translation() const { return (raw_ & (1ull << 32)) != 0; }
  constexpr bool page_table_walk() const { return (raw_ & (1ull << 33)) != 0; }
  // SEV-SNP's bits of the same error code (AMD APM Vol. 2, SEV-SNP nested page faults; KVM's
  // PFERR_GUEST_RMP / ENC / SIZEM / VMPL, bits 31, 34, 35, 36): the RMP check failed, the access
  // was to encrypted (C-bit) memory, the RMP and nested page sizes differ, a VMPL check failed.
  constexpr bool rmp_check() const { return (raw_ & (1ull << 31)) != 0; }
  constexpr bool encrypted() const { return (raw_ & (1ull << 34)) != 0; }
  constexpr bool size_mismatch() const { return (raw_ & (1ull << 35)) != 0; }
  constexpr bool vmpl_check() const { return (raw_ & (1ull << 36)) != 0; }

 private:
  uint64_t raw_;
};

// "in 0x70 size 1", "rep outs 0x3f8 size 1"; and "W not-present final" / "X present user page
// walk" for an NPF. Appended to `out`, as the VMX describe_to functions do.
void describe_to(std::string& out, SvmIoInfo q);
void describe_to(std::string& out, SvmNpfInfo q);

}  // namespace es::arch
