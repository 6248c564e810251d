// The opcode switches keep the SDM opcode map's rows (several case labels on one line), which
// clang-format would split one label per line: the file is left unformatted.
// clang-format off
#include "hv/cpu/decoder.h"

namespace es::hv {

namespace {

// Operand attributes of an opcode (Vol. 2D Appendix A "Opcode Map").
enum : uint32_t {
  kModrm = 1u << 0,
  kIb = 1u << 1,     // imm8 (sign-extended unless kImmZx)
  kIw = 1u << 2,     // imm16
  kIz = 1u << 3,     // imm16/32 by operand size, sign-extended to 64
  kIv = 1u << 4,     // imm16/32/64 (MOV r, imm)
  kIwIb = 1u << 5,   // ENTER
  kByte = 1u << 6,   // byte operand size
  kD64 = 1u << 7,    // default operand size 64 (stack / near branches)
  kInvalid = 1u << 8,   // #UD in 64-bit mode
  kSupported = 1u << 9,
  kImmZx = 1u << 10,    // imm8 zero-extended (I/O port, INT n)
  kF64 = 1u << 11,      // operand size forced to 64 (near branches, ignore 66 too)
};

uint32_t one_byte_attrs(uint8_t op) {
  const uint8_t lo = op & 7;
  if (op < 0x40 && (op & 7) < 6) {  // ALU block: 00-05, 08-0D, ...
    switch (lo) {
      case 0: case 2: return kSupported | kModrm | kByte;
      case 1: case 3: return kSupported | kModrm;
      case 4: return kSupported | kIb | kByte;
      case 5: return kSupported | kIz;
    }
  }
  if (op < 0x40) {
    // 06/07/0E/16/17/1E/1F push/pop seg, 27/2F/37/3F DAA..AAS: invalid in 64-bit mode.
    // 26/2E/36/3E are prefixes (handled before), 0F is the escape.
    return kInvalid;
  }
  if (op >= 0x50 && op <= 0x5F) return kSupported | kD64;
  if (op >= 0x70 && op <= 0x7F) return kSupported | kIb | kF64;
  if (op >= 0x91 && op <= 0x97) return kSupported;
  if (op >= 0xB0 && op <= 0xB7) return kSupported | kIb | kByte;
  if (op >= 0xB8 && op <= 0xBF) return kSupported | kIv;
  switch (op) {
    case 0x60: case 0x61: case 0x62: case 0xD4: case 0xD5: case 0xD6: case 0xCE: case 0x9A: case 0xEA:
    case 0xC4: case 0xC5: case 0x82:
      // PUSHA/POPA/BOUND/AAM/AAD/SALC/INTO/far CALL/far JMP/LES/LDS (VEX not supported) / 82 alias.
      return (op == 0xC4 || op == 0xC5) ? 0u : kInvalid;
    case 0x63: return kSupported | kModrm;                 // MOVSXD
    case 0x68: return kSupported | kIz | kD64;
    case 0x69: return kSupported | kModrm | kIz;
    case 0x6A: return kSupported | kIb | kD64;
    case 0x6B: return kSupported | kModrm | kIb;
    case 0x80: return kSupported | kModrm | kIb | kByte;
    case 0x81: return kSupported | kModrm | kIz;
    case 0x83: return kSupported | kModrm | kIb;
    case 0x84: case 0x86: case 0x88: case 0x8A: return kSupported | kModrm | kByte;
    case 0x85: case 0x87: case 0x89: case 0x8B: case 0x8D: return kSupported | kModrm;
    case 0x8C: case 0x8E: return kSupported | kModrm;
    case 0x8F: return kSupported | kModrm | kD64;
    case 0x90: return kSupported;
    case 0x98: case 0x99: return kSupported;
    case 0x9C: case 0x9D: return kSupported | kD64;
    case 0x9E: case 0x9F: return kSupported;  // SAHF / LAHF
    case 0xA4: case 0xAA: case 0xAC: return kSupported | kByte;  // MOVSB / STOSB / LODSB
    case 0xA5: case 0xAB: case 0xAD: return kSupported;
    case 0xA8: return kSupported | kIb | kByte;
    case 0xA9: return kSupported | kIz;
    case 0xC0: return kSupported | kModrm | kIb | kByte | kImmZx;
    case 0xC1: return kSupported | kModrm | kIb | kImmZx;
    case 0xC2: return kSupported | kIw | kF64;
    case 0xC3: return kSupported | kF64;
    case 0xC6: return kSupported | kModrm | kIb | kByte;
    case 0xC7: return kSupported | kModrm | kIz;
    case 0xC8: return kSupported | kIwIb | kD64;
    case 0xC9: return kSupported | kD64;
    case 0xCC: return kSupported;
    case 0xCD: return kSupported | kIb | kImmZx;
    case 0xCF: return kSupported;
    case 0xD0: case 0xD2: return kSupported | kModrm | kByte;
    case 0xD1: case 0xD3: return kSupported | kModrm;
    case 0xE2: return kSupported | kIb | kF64;
    case 0xE4: case 0xE6: return kSupported | kIb | kImmZx | kByte;
    case 0xE5: case 0xE7: return kSupported | kIb | kImmZx;
    case 0xE8: case 0xE9: return kSupported | kIz | kF64;
    case 0xEB: return kSupported | kIb | kF64;
    case 0xEC: case 0xEE: return kSupported | kByte;
    case 0xED: case 0xEF: return kSupported;
    case 0xF1: case 0xF4: case 0xF5: return kSupported;
    case 0xF6: return kSupported | kModrm | kByte;  // immediate for /0 /1 added by the decoder
    case 0xF7: return kSupported | kModrm;
    case 0xF8: case 0xF9: case 0xFA: case 0xFB: case 0xFC: case 0xFD: return kSupported;
    case 0xFE: return kSupported | kModrm | kByte;
    case 0xFF: return kSupported | kModrm;
    default: return 0;
  }
}

uint32_t two_byte_attrs(uint8_t op) {
  if (op >= 0x40 && op <= 0x4F) return kSupported | kModrm;   // CMOVcc
  if (op >= 0x80 && op <= 0x8F) return kSupported | kIz | kF64;  // Jcc rel32
  if (op >= 0x90 && op <= 0x9F) return kSupported | kModrm | kByte;  // SETcc
  if (op >= 0xC8 && op <= 0xCF) return kSupported;  // BSWAP
  switch (op) {
    case 0x00: case 0x01: return kSupported | kModrm;  // group 6 / group 7
    case 0x05: return kSupported;                      // SYSCALL (#UD: EFER.SCE = 0 model)
    case 0x0B: return kSupported;                      // UD2
    case 0x1F: return kSupported | kModrm;             // NOP r/m
    case 0x20: case 0x22: return kSupported | kModrm;  // MOV from/to CR
    case 0x30: case 0x31: case 0x32: return kSupported;
    case 0xA2: return kSupported;
    case 0xA3: case 0xAB: case 0xB3: return kSupported | kModrm;  // BT/BTS/BTR r/m, r
    case 0xAF: return kSupported | kModrm;
    case 0xB6: case 0xBE: return kSupported | kModrm;  // byte source, operand size from prefixes
    case 0xB7: case 0xBF: return kSupported | kModrm;
    case 0xBA: return kSupported | kModrm | kIb | kImmZx;  // group 8
    case 0xBC: case 0xBD: return kSupported | kModrm;  // BSF / BSR
    default: return 0;
  }
}

// LOCK is legal only on these read-modify-write instructions with a memory destination
// (Vol. 2B "LOCK—Assert LOCK# Signal Prefix"); anything else is #UD.
bool lockable(const DecodedInsn& d) {
  if (!d.mem()) return false;
  const uint16_t op = d.op;
  if (op < 0x40 && (op & 7) < 2 && (op & 0x38) != 0x38) return true;  // ADD..XOR r/m, r (not CMP)
  switch (op) {
    case 0x80: case 0x81: case 0x83: return d.reg != 7;
    case 0x86: case 0x87: return true;
    case 0xF6: case 0xF7: return d.reg == 2 || d.reg == 3;
    case 0xFE: case 0xFF: return d.reg <= 1;
    case 0x1AB: case 0x1B3: return true;
    case 0x1BA: return d.reg >= 5;
    default: return false;
  }
}

}  // namespace

DecodedInsn decode(const uint8_t* b, unsigned avail) {
  DecodedInsn d;
  const unsigned max = avail < 15 ? avail : 15;
  unsigned i = 0;
  auto need = [&](unsigned n) { return i + n <= max; };
  auto fail_len = [&]() {
    d.status = avail < 15 ? DecodedInsn::Status::Truncated : DecodedInsn::Status::Invalid;  // >15 bytes: #GP in hw, #UD here
    d.len = static_cast<uint8_t>(max);
    return d;
  };
  // Legacy prefixes, then an optional REX immediately before the opcode.
  for (;;) {
    if (!need(1)) return fail_len();
    const uint8_t p = b[i];
    if (p == 0x66) d.p66 = true;
    else if (p == 0xF3) { d.rep = true; d.repne = false; }
    else if (p == 0xF2) { d.repne = true; d.rep = false; }
    else if (p == 0xF0) d.lock = true;
    else if (p == 0x2E || p == 0x3E || p == 0x26 || p == 0x36) { /* null segment overrides in 64-bit mode */ }
    else if (p == 0x64) d.seg = 4;
    else if (p == 0x65) d.seg = 5;
    else if (p == 0x67) { d.status = DecodedInsn::Status::Unsupported; ++i; d.len = static_cast<uint8_t>(i); return d; }
    else break;
    ++i;
  }
  if ((b[i] & 0xF0) == 0x40) {
    d.rex = b[i++];
    if (!need(1)) return fail_len();
  }
  uint32_t attrs;
  if (b[i] == 0x0F) {
    ++i;
    if (!need(1)) return fail_len();
    d.op = static_cast<uint16_t>(0x100 | b[i]);
    attrs = two_byte_attrs(b[i]);
  } else {
    d.op = b[i];
    attrs = one_byte_attrs(b[i]);
  }
  ++i;
  if (attrs & kInvalid) {
    d.status = DecodedInsn::Status::Invalid;
    d.len = static_cast<uint8_t>(i);
    return d;
  }
  if (!(attrs & kSupported)) {
    d.status = DecodedInsn::Status::Unsupported;
    d.len = static_cast<uint8_t>(i);
    return d;
  }
  // Operand size, Vol. 2A 2.2.1.2 "More on REX Prefix Fields" / Table 3-4.
  if (attrs & kByte) d.opsize = 1;
  else if (attrs & kF64) d.opsize = 8;
  else if (attrs & kD64) d.opsize = d.p66 ? 2 : 8;
  else d.opsize = d.rex_w() ? 8 : (d.p66 ? 2 : 4);

  if (attrs & kModrm) {
    if (!need(1)) return fail_len();
    const uint8_t m = b[i++];
    d.has_modrm = true;
    d.mod = m >> 6;
    d.reg = static_cast<uint8_t>(((m >> 3) & 7) | ((d.rex & 4) ? 8 : 0));
    const uint8_t rm = m & 7;
    // MOV to/from CR ignores mod (always register operands), Vol. 2B "MOV—Move to/from Control Registers".
    if (d.op == 0x120 || d.op == 0x122) d.mod = 3;
    if (d.mod == 3) {
      d.rm = static_cast<uint8_t>(rm | ((d.rex & 1) ? 8 : 0));
    } else {
      if (rm == 4) {
        if (!need(1)) return fail_len();
        const uint8_t sib = b[i++];
        d.scale = static_cast<uint8_t>(1u << (sib >> 6));
        const uint8_t idx = static_cast<uint8_t>(((sib >> 3) & 7) | ((d.rex & 2) ? 8 : 0));
        d.index = idx == 4 ? -1 : static_cast<int8_t>(idx);
        const uint8_t base = sib & 7;
        if (base == 5 && d.mod == 0) {
          d.base = -1;
          if (!need(4)) return fail_len();
          d.disp = static_cast<int32_t>(b[i] | b[i + 1] << 8 | b[i + 2] << 16 | static_cast<uint32_t>(b[i + 3]) << 24);
          i += 4;
        } else {
          d.base = static_cast<int8_t>(base | ((d.rex & 1) ? 8 : 0));
        }
      } else if (rm == 5 && d.mod == 0) {
        d.base = 16;  // RIP-relative, Vol. 2A 2.2.1.6
        if (!need(4)) return fail_len();
        d.disp = static_cast<int32_t>(b[i] | b[i + 1] << 8 | b[i + 2] << 16 | static_cast<uint32_t>(b[i + 3]) << 24);
        i += 4;
      } else {
        d.base = static_cast<int8_t>(rm | ((d.rex & 1) ? 8 : 0));
      }
      if (d.mod == 1) {
        if (!need(1)) return fail_len();
        d.disp = static_cast<int8_t>(b[i++]);
      } else if (d.mod == 2) {
        if (!need(4)) return fail_len();
        d.disp = static_cast<int32_t>(b[i] | b[i + 1] << 8 | b[i + 2] << 16 | static_cast<uint32_t>(b[i + 3]) << 24);
        i += 4;
      }
    }
    // Group 3: TEST r/m, imm has an immediate, the other members do not.
    if ((d.op == 0xF6 || d.op == 0xF7) && (d.reg & 7) <= 1) attrs |= (d.op == 0xF6) ? kIb : kIz;
  }
  auto imm_bytes = [&](unsigned n, bool sign) -> bool {
    if (!need(n)) return false;
    uint64_t v = 0;
    for (unsigned k = 0; k < n; ++k) v |= static_cast<uint64_t>(b[i + k]) << (8 * k);
    if (sign && n < 8) {
      const uint64_t sbit = 1ull << (8 * n - 1);
      v = (v ^ sbit) - sbit;
    }
    i += n;
    d.imm = v;
    return true;
  };
  if (attrs & kIb) {
    if (!imm_bytes(1, !(attrs & kImmZx))) return fail_len();
  } else if (attrs & kIw) {
    if (!imm_bytes(2, false)) return fail_len();
  } else if (attrs & kIz) {
    const bool is_branch = (attrs & kF64) != 0;
    if (!imm_bytes(d.opsize == 2 && !is_branch ? 2 : 4, true)) return fail_len();
  } else if (attrs & kIv) {
    if (!imm_bytes(d.opsize == 8 ? 8 : d.opsize, false)) return fail_len();
  } else if (attrs & kIwIb) {
    if (!imm_bytes(2, false)) return fail_len();
    const uint64_t first = d.imm;
    if (!imm_bytes(1, false)) return fail_len();
    d.imm2 = d.imm;
    d.imm = first;
  }
  d.len = static_cast<uint8_t>(i);
  d.status = DecodedInsn::Status::Ok;
  if (d.lock && !lockable(d)) d.status = DecodedInsn::Status::Invalid;
  // Register-only forms that are #UD with a memory operand and vice versa.
  if ((d.op == 0x8D) && !d.mem()) d.status = DecodedInsn::Status::Invalid;  // LEA with register source
  return d;
}

}  // namespace es::hv
