// Exit-qualification decoders, Vol. 3C 28.2.1 "Basic VM-Exit Information".
#pragma once

#include <cstdint>
#include <string>

namespace es::arch {

// EPT violation, Table 28-7 "Exit Qualification for EPT Violations":
//   [0] data read  [1] data write  [2] instruction fetch
//   [3] readable   [4] writable    [5] executable (supervisor-mode executable with MBEC)
//   [6] user-mode executable (MBEC)
//   [7] guest linear address valid
//   [8] if [7]: 1 = access to the translated linear address, 0 = access to a paging-structure entry
//   [9] user-mode linear address [10] read/write page [11] execute-disable (advanced EPT exit info)
//   [12] NMI unblocking due to IRET
//   [13] shadow-stack access  [14] supervisor shadow-stack  [15] guest-paging verification
//   [16] asynchronous to instruction execution
class EptViolationQual {
 public:
  static constexpr uint64_t kRead = 1ull << 0, kWrite = 1ull << 1, kFetch = 1ull << 2;
  static constexpr uint64_t kReadable = 1ull << 3, kWritable = 1ull << 4, kExecutable = 1ull << 5;
  static constexpr uint64_t kUserExecutable = 1ull << 6;
  static constexpr uint64_t kLinearValid = 1ull << 7, kTranslatedAccess = 1ull << 8;
  static constexpr uint64_t kUserLinear = 1ull << 9, kRwPage = 1ull << 10, kXdPage = 1ull << 11;
  static constexpr uint64_t kNmiUnblocking = 1ull << 12;
  static constexpr uint64_t kShadowStack = 1ull << 13, kSupervisorShadowStack = 1ull << 14;
  static constexpr uint64_t kPagingVerification = 1ull << 15, kAsynchronous = 1ull << 16;
  static constexpr uint64_t kDefinedMask = (1ull << 17) - 1;

  constexpr EptViolationQual() = default;
  constexpr explicit EptViolationQual(uint64_t raw) : raw_(raw) {}
  constexpr uint64_t raw() const { return raw_; }
  constexpr bool read() const { return raw_ & kRead; }
  constexpr bool write() const { return raw_ & kWrite; }
  constexpr bool fetch() const { return raw_ & kFetch; }
  constexpr bool readable() const { return raw_ & kReadable; }
  constexpr bool writable() const { return raw_ & kWritable; }
  constexpr bool executable() const { return raw_ & kExecutable; }
  constexpr bool entry_present() const { return raw_ & (kReadable | kWritable | kExecutable | kUserExecutable); }
  constexpr bool linear_address_valid() const { return raw_ & kLinearValid; }
  // Only meaningful when linear_address_valid().
  constexpr bool translated_access() const { return raw_ & kTranslatedAccess; }
  constexpr bool nmi_unblocking_due_to_iret() const { return raw_ & kNmiUnblocking; }
  // Bits 9-11 (advanced VM-exit information for EPT violations): defined only when bits 7 and 8
  // are set and the processor reports the feature; a processor without it leaves them 0, so only
  // a nonzero triple says anything. User-mode linear address, read/write page, execute-disable page.
  constexpr bool advanced_info() const {
    return linear_address_valid() && translated_access() && (raw_ & (kUserLinear | kRwPage | kXdPage));
  }
  constexpr bool user_linear() const { return raw_ & kUserLinear; }
  constexpr bool rw_page() const { return raw_ & kRwPage; }
  constexpr bool xd_page() const { return raw_ & kXdPage; }
  constexpr bool reserved_bits_clear() const { return (raw_ & ~kDefinedMask) == 0; }
  constexpr bool operator==(const EptViolationQual&) const = default;

 private:
  uint64_t raw_ = 0;
};

// I/O instruction, Table 28-5 "Exit Qualification for I/O Instructions":
//   [2:0] size of access - 1 (0 = 1 byte, 1 = 2 bytes, 3 = 4 bytes)
//   [3] direction (0 = OUT, 1 = IN)  [4] string instruction  [5] REP prefixed
//   [6] operand encoding (0 = DX, 1 = immediate)  [15:7] reserved  [31:16] port
class IoQual {
 public:
  constexpr IoQual() = default;
  constexpr explicit IoQual(uint64_t raw) : raw_(raw) {}
  static constexpr IoQual make(uint16_t port, unsigned size, bool in, bool string = false, bool rep = false,
                               bool immediate = false) {
    return IoQual((static_cast<uint64_t>(size - 1) & 7) | (in ? 1ull << 3 : 0) | (string ? 1ull << 4 : 0) |
                  (rep ? 1ull << 5 : 0) | (immediate ? 1ull << 6 : 0) | (static_cast<uint64_t>(port) << 16));
  }
  constexpr uint64_t raw() const { return raw_; }
  constexpr unsigned size() const { return static_cast<unsigned>(raw_ & 7) + 1; }
  constexpr bool in() const { return raw_ & (1ull << 3); }
  constexpr bool string() const { return raw_ & (1ull << 4); }
  constexpr bool rep() const { return raw_ & (1ull << 5); }
  constexpr bool immediate() const { return raw_ & (1ull << 6); }
  constexpr uint16_t port() const { return static_cast<uint16_t>(raw_ >> 16); }
  constexpr bool reserved_bits_clear() const { return (raw_ & 0xFF80ull) == 0 && (raw_ >> 32) == 0; }
  constexpr bool operator==(const IoQual&) const = default;

 private:
  uint64_t raw_ = 0;
};

// Control-register access, Table 28-3 "Exit Qualification for Control-Register Accesses":
//   [3:0] CR number  [5:4] access type (0 MOV to CR, 1 MOV from CR, 2 CLTS, 3 LMSW)
//   [6] LMSW operand type (0 register, 1 memory)  [7] reserved
//   [11:8] general-purpose register (MOV CR)  [15:12] reserved  [31:16] LMSW source data
enum class CrAccessType : uint8_t { MovToCr = 0, MovFromCr = 1, Clts = 2, Lmsw = 3 };
class CrAccessQual {
 public:
  constexpr CrAccessQual() = default;
  constexpr explicit CrAccessQual(uint64_t raw) : raw_(raw) {}
  static constexpr CrAccessQual make_mov(unsigned cr, CrAccessType type, unsigned gpr) {
    return CrAccessQual((cr & 0xF) | (static_cast<uint64_t>(type) << 4) | (static_cast<uint64_t>(gpr & 0xF) << 8));
  }
  constexpr uint64_t raw() const { return raw_; }
  constexpr unsigned cr() const { return static_cast<unsigned>(raw_ & 0xF); }
  constexpr CrAccessType access_type() const { return static_cast<CrAccessType>((raw_ >> 4) & 3); }
  constexpr bool lmsw_memory_operand() const { return raw_ & (1ull << 6); }
  constexpr unsigned gpr() const { return static_cast<unsigned>((raw_ >> 8) & 0xF); }
  constexpr uint16_t lmsw_source() const { return static_cast<uint16_t>(raw_ >> 16); }
  constexpr bool reserved_bits_clear() const { return (raw_ & 0xF080ull) == 0 && (raw_ >> 32) == 0; }
  constexpr bool operator==(const CrAccessQual&) const = default;

 private:
  uint64_t raw_ = 0;
};

// Human-readable decodes ("R- (page walk) gla", "out 0x3f8 size 1", "mov to cr3 from rax").
std::string describe(EptViolationQual q);
std::string describe(IoQual q);
std::string describe(CrAccessQual q);
// The same texts appended to `out`.
void describe_to(std::string& out, EptViolationQual q);
void describe_to(std::string& out, IoQual q);
void describe_to(std::string& out, CrAccessQual q);

}  // namespace es::arch
