// x86-64 instruction decoder for the subset the CPU model executes (64-bit mode only).
// Vol. 2A ch. 2 "Instruction Format": legacy prefixes, REX, opcode (1 or 2 bytes), ModR/M,
// SIB, displacement, immediate. The decoder knows lengths and operands; semantics live in
// the interpreter (exec.cpp). An encoding outside the subset decodes as Status::Unsupported
// (the interpreter turns that into an internal-error record, never a silent skip); an
// encoding the architecture defines as invalid in 64-bit mode decodes as Status::Invalid
// (the interpreter raises #UD, as hardware does).
#pragma once

#include <cstdint>

namespace es::hv {

struct DecodedInsn {
  enum class Status : uint8_t { Ok, Invalid, Unsupported, Truncated };
  Status status = Status::Unsupported;
  uint8_t len = 0;
  uint16_t op = 0;     // 0x00..0xFF one-byte opcode; 0x100 | b for 0F b
  uint8_t rex = 0;     // raw REX byte (0 if none)
  uint8_t opsize = 4;  // effective operand size in bytes (1, 2, 4, 8) for the instruction
  uint8_t seg = 0;     // segment override: 0 none, 4 FS, 5 GS (others ignored in 64-bit mode)
  bool p66 = false, rep = false, repne = false, lock = false;
  bool has_modrm = false;
  uint8_t mod = 0;
  uint8_t reg = 0;  // ModR/M.reg extended by REX.R (0..15); group opcode extension for groups
  uint8_t rm = 0;   // register number (mod == 3) extended by REX.B
  // Memory operand (mod != 3): base + index * scale + disp; base 16 = RIP-relative.
  int8_t base = -1, index = -1;
  uint8_t scale = 1;
  int64_t disp = 0;
  uint64_t imm = 0;   // immediate, sign-extended where the instruction sign-extends
  uint64_t imm2 = 0;  // second immediate (ENTER)
  bool mem() const { return has_modrm && mod != 3; }
  bool rex_w() const { return (rex & 8) != 0; }
};

// Decodes at most `avail` bytes of `bytes` (an instruction is at most 15 bytes).
DecodedInsn decode(const uint8_t* bytes, unsigned avail);

}  // namespace es::hv
