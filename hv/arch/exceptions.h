// Exception vectors and classes.
// Vol. 3A 6.3.1 "Exceptions and Interrupts" (Table 6-1 "Protected-Mode Exceptions and
// Interrupts"); Vol. 3A 6.15 Interrupt 8 (Table 6-4 "Interrupt and Exception Classes" and
// Table 6-5 "Conditions for Generating a Double Fault").
#pragma once

#include <cstdint>
#include <string_view>

namespace es::arch {

// The vectors in rows and the case labels of one class on one line, as SDM Tables 6-4 / 6-5.
// clang-format off
enum Vector : uint8_t {
  kDE = 0, kDB = 1, kNMI = 2, kBP = 3, kOF = 4, kBR = 5, kUD = 6, kNM = 7, kDF = 8,
  kCSO = 9, kTS = 10, kNP = 11, kSS = 12, kGP = 13, kPF = 14, kMF = 16, kAC = 17,
  kMC = 18, kXM = 19, kVE = 20, kCP = 21,
};
// clang-format on

enum class ExceptionClass : uint8_t { Benign, Contributory, PageFault, DoubleFault };

// Table 6-4. #CP (21) is contributory in editions that define CET; #VE (20) is in the
// page-fault class. Everything that is not an exception (NMI, INTR) is benign.
// clang-format off
constexpr ExceptionClass exception_class(uint8_t vector) {
  switch (vector) {
    case kDE: case kTS: case kNP: case kSS: case kGP: case kCP: return ExceptionClass::Contributory;
    case kPF: case kVE: return ExceptionClass::PageFault;
    case kDF: return ExceptionClass::DoubleFault;
    default: return ExceptionClass::Benign;
  }
}
// clang-format on

// What the processor does when `second` is detected while delivering `first`
// (Table 6-5). Serial = handle the second exception (the first is abandoned or re-raised
// when the handler returns); DoubleFault = deliver #DF(0); TripleFault = shutdown.
enum class FaultDuringDelivery : uint8_t { Serial, DoubleFault, TripleFault };
constexpr FaultDuringDelivery fault_during_delivery(ExceptionClass first, ExceptionClass second) {
  // Vol. 3A 6.15 "Interrupt 8": a contributory or page-fault exception while calling the #DF
  // handler shuts the processor down (triple fault).
  if (first == ExceptionClass::DoubleFault)
    return second == ExceptionClass::Benign ? FaultDuringDelivery::Serial : FaultDuringDelivery::TripleFault;
  if (first == ExceptionClass::Contributory && second == ExceptionClass::Contributory)
    return FaultDuringDelivery::DoubleFault;
  if (first == ExceptionClass::PageFault &&
      (second == ExceptionClass::Contributory || second == ExceptionClass::PageFault))
    return FaultDuringDelivery::DoubleFault;
  return FaultDuringDelivery::Serial;
}

// Exceptions that push an error code in protected / long mode (Table 6-1).
// clang-format off
constexpr bool exception_has_error_code(uint8_t vector) {
  switch (vector) {
    case kDF: case kTS: case kNP: case kSS: case kGP: case kPF: case kAC: case kCP: return true;
    default: return false;
  }
}
// clang-format on

// "#PF", "#GP", ...; "NMI" for 2; empty for a vector without a mnemonic.
std::string_view exception_mnemonic(uint8_t vector);

// #PF error code bits, Vol. 3A 4.7 "Page-Fault Exceptions".
namespace pf_error {
constexpr uint32_t kPresent = 1u << 0;      // P: 0 = non-present page, 1 = protection violation
constexpr uint32_t kWrite = 1u << 1;        // W/R
constexpr uint32_t kUser = 1u << 2;         // U/S
constexpr uint32_t kReservedBit = 1u << 3;  // RSVD
constexpr uint32_t kFetch = 1u << 4;        // I/D
}  // namespace pf_error

}  // namespace es::arch
