// Instruction semantics (Vol. 2 instruction reference pages, 64-bit mode) and the
// instruction-caused VM exits of Vol. 3C 26.1.2 / 26.1.3 "Instructions That Cause VM Exits
// Unconditionally / Conditionally". Privilege checks that the SDM gives priority over VM
// exits (26.1.1 "Relative Priority of Faults and VM Exits": CPL, IOPL) come first.
// The opcode switches keep the SDM opcode map's rows (several case labels on one line), which
// clang-format would split one label per line: the file is left unformatted.
// clang-format off
#include <cstring>

#include "hv/cpu/cpu_impl.h"

namespace es::hv {

using arch::InterruptionType;
using arch::BasicExitReason;
namespace rf = arch::rflags;

namespace {
constexpr uint64_t kStatusFlags = rf::kCF | rf::kPF | rf::kAF | rf::kZF | rf::kSF | rf::kOF;
constexpr uint64_t size_mask(unsigned size) { return size == 8 ? ~0ull : (1ull << (size * 8)) - 1; }
constexpr uint64_t sign_bit(unsigned size) { return 1ull << (size * 8 - 1); }
constexpr uint64_t sx(uint64_t v, unsigned size) {
  if (size == 8) return v;
  const uint64_t s = sign_bit(size);
  v &= size_mask(size);
  return (v ^ s) - s;
}
constexpr bool parity(uint64_t v) { return (__builtin_popcount(static_cast<unsigned>(v & 0xFF)) & 1) == 0; }
constexpr bool canonical(uint64_t a) { return static_cast<uint64_t>(static_cast<int64_t>(a << 16) >> 16) == a; }
constexpr uint32_t reason(BasicExitReason r) { return static_cast<uint32_t>(r); }
}  // namespace

uint64_t Cpu::Impl::reg_read(unsigned r, unsigned size, bool rex) const {
  if (size == 1) {
    if (!rex && r >= 4 && r < 8) return (st_.gpr[r - 4] >> 8) & 0xFF;
    return st_.gpr[r] & 0xFF;
  }
  return st_.gpr[r] & size_mask(size);
}

void Cpu::Impl::reg_write(unsigned r, unsigned size, uint64_t v, bool rex) {
  switch (size) {
    case 1:
      if (!rex && r >= 4 && r < 8) st_.gpr[r - 4] = (st_.gpr[r - 4] & ~0xFF00ull) | ((v & 0xFF) << 8);
      else st_.gpr[r] = (st_.gpr[r] & ~0xFFull) | (v & 0xFF);
      break;
    case 2: st_.gpr[r] = (st_.gpr[r] & ~0xFFFFull) | (v & 0xFFFF); break;
    case 4: st_.gpr[r] = v & 0xFFFFFFFFull; break;  // 32-bit results zero-extend (Vol. 1 3.4.1.1)
    default: st_.gpr[r] = v; break;
  }
}

uint64_t Cpu::Impl::ea(const DecodedInsn& d) const {
  uint64_t a = static_cast<uint64_t>(d.disp);
  if (d.base == 16) a += next_rip_;
  else if (d.base >= 0) a += st_.gpr[d.base];
  if (d.index >= 0) a += st_.gpr[d.index] * d.scale;
  if (d.seg == 4) a += st_.seg[kFs].base;
  else if (d.seg == 5) a += st_.seg[kGs].base;
  return a;
}

uint64_t Cpu::Impl::rm_read(const DecodedInsn& d, unsigned size) {
  if (d.mod == 3) return reg_read(d.rm, size, d.rex != 0);
  return read_lin(ea(d), size, user_mode());
}

void Cpu::Impl::rm_write(const DecodedInsn& d, unsigned size, uint64_t v) {
  if (d.mod == 3) reg_write(d.rm, size, v, d.rex != 0);
  else write_lin(ea(d), size, v & size_mask(size), user_mode());
}

void Cpu::Impl::push64(uint64_t v) {
  write_lin(st_.gpr[4] - 8, 8, v, user_mode(), true);
  st_.gpr[4] -= 8;
}

uint64_t Cpu::Impl::pop64() {
  const uint64_t v = read_lin(st_.gpr[4], 8, user_mode(), true);
  st_.gpr[4] += 8;
  return v;
}

void Cpu::Impl::set_szp(uint64_t res, unsigned size) {
  res &= size_mask(size);
  st_.rflags &= ~(rf::kSF | rf::kZF | rf::kPF);
  if (res == 0) st_.rflags |= rf::kZF;
  if (res & sign_bit(size)) st_.rflags |= rf::kSF;
  if (parity(res)) st_.rflags |= rf::kPF;
}

// Condition codes, Vol. 1 Appendix B "EFLAGS Condition Codes".
bool Cpu::Impl::cond(unsigned cc) const {
  const uint64_t f = st_.rflags;
  const bool cf = f & rf::kCF, zf = f & rf::kZF, sf = f & rf::kSF, of = f & rf::kOF, pf = f & rf::kPF;
  bool r = false;
  switch (cc >> 1) {
    case 0: r = of; break;
    case 1: r = cf; break;
    case 2: r = zf; break;
    case 3: r = cf || zf; break;
    case 4: r = sf; break;
    case 5: r = pf; break;
    case 6: r = sf != of; break;
    case 7: r = zf || (sf != of); break;
  }
  return (cc & 1) ? !r : r;
}

// ADD OR ADC SBB AND SUB XOR CMP (opcode bits 5:3 / group-1 extension).
uint64_t Cpu::Impl::alu(unsigned op, uint64_t a, uint64_t b, unsigned size) {
  const uint64_t m = size_mask(size), s = sign_bit(size);
  a &= m;
  b &= m;
  const uint64_t c = (st_.rflags & rf::kCF) ? 1 : 0;
  uint64_t res = 0;
  uint64_t fl = 0;
  switch (op) {
    case 0: case 2: {  // ADD, ADC
      const uint64_t cin = op == 2 ? c : 0;
      const unsigned __int128 wide = static_cast<unsigned __int128>(a) + b + cin;
      res = static_cast<uint64_t>(wide) & m;
      if (size == 8 ? (wide >> 64) != 0 : (static_cast<uint64_t>(wide) >> (size * 8)) != 0) fl |= rf::kCF;
      if ((a ^ res) & (b ^ res) & s) fl |= rf::kOF;
      if ((a ^ b ^ res) & 0x10) fl |= rf::kAF;
      break;
    }
    case 3: case 5: case 7: {  // SBB, SUB, CMP
      const uint64_t cin = op == 3 ? c : 0;
      res = (a - b - cin) & m;
      if (static_cast<unsigned __int128>(b) + cin > a) fl |= rf::kCF;
      if ((a ^ b) & (a ^ res) & s) fl |= rf::kOF;
      if ((a ^ b ^ res) & 0x10) fl |= rf::kAF;
      break;
    }
    case 1: res = a | b; break;
    case 4: res = a & b; break;
    case 6: res = a ^ b; break;
  }
  st_.rflags = (st_.rflags & ~kStatusFlags) | fl;
  set_szp(res, size);
  return res;
}

// Group 2 shifts and rotates, Vol. 2B "SAL/SAR/SHL/SHR", Vol. 2B "RCL/RCR/ROL/ROR".
uint64_t Cpu::Impl::shift(unsigned op, uint64_t a, unsigned count, unsigned size) {
  const unsigned bits = size * 8;
  const uint64_t m = size_mask(size);
  a &= m;
  count &= (size == 8) ? 63 : 31;
  if (count == 0) return a;
  uint64_t res = a;
  bool cf = false, of = false;
  switch (op) {
    case 0: {  // ROL
      const unsigned c = count % bits;
      res = c ? ((a << c) | (a >> (bits - c))) & m : a;
      cf = res & 1;
      of = ((res & sign_bit(size)) != 0) != cf;
      st_.rflags = (st_.rflags & ~(rf::kCF | rf::kOF)) | (cf ? rf::kCF : 0) | (of ? rf::kOF : 0);
      return res;
    }
    case 1: {  // ROR
      const unsigned c = count % bits;
      res = c ? ((a >> c) | (a << (bits - c))) & m : a;
      cf = (res & sign_bit(size)) != 0;
      of = cf != (((res >> (bits - 2)) & 1) != 0);
      st_.rflags = (st_.rflags & ~(rf::kCF | rf::kOF)) | (cf ? rf::kCF : 0) | (of ? rf::kOF : 0);
      return res;
    }
    case 4: case 6:  // SHL / SAL
      res = count >= bits ? 0 : (a << count) & m;
      cf = count <= bits ? ((a >> (bits - count)) & 1) != 0 : false;
      of = ((res & sign_bit(size)) != 0) != cf;
      break;
    case 5:  // SHR
      res = count >= bits ? 0 : a >> count;
      cf = ((a >> (count - 1)) & 1) != 0;
      of = (a & sign_bit(size)) != 0;
      break;
    case 7: {  // SAR
      const int64_t sa = static_cast<int64_t>(sx(a, size));
      res = static_cast<uint64_t>(sa >> (count >= bits ? bits - 1 : count)) & m;
      cf = ((sa >> (count - 1 >= bits ? bits - 1 : count - 1)) & 1) != 0;
      of = false;
      break;
    }
    default: return a;  // RCL/RCR are filtered out by the caller
  }
  st_.rflags = (st_.rflags & ~(rf::kCF | rf::kOF | rf::kAF)) | (cf ? rf::kCF : 0) | (of ? rf::kOF : 0);
  set_szp(res, size);
  return res;
}

// GDT descriptor read (implicit supervisor access, Vol. 3A 4.6 "Access Rights"). LDT
// selectors are not supported by the model (no guest uses an LDT): treated as out of limit.
bool Cpu::Impl::read_descriptor(uint16_t sel, uint64_t& lo, uint64_t& hi, bool need_hi) {
  if (sel & 4) return false;
  const uint64_t off = sel & 0xFFF8u;
  if (off + (need_hi ? 15 : 7) > st_.gdtr_limit) return false;
  lo = read_lin(st_.gdtr_base + off, 8, false);
  if (need_hi) hi = read_lin(st_.gdtr_base + off + 8, 8, false);
  return true;
}

// MOV Sreg, r/m (Vol. 2B "MOV—Move", protected-mode segment load checks).
void Cpu::Impl::load_data_segment(unsigned sreg, uint16_t sel) {
  const unsigned cpl = st_.cpl();
  SegReg& s = st_.seg[sreg];
  if ((sel & ~3u) == 0) {
    if (sreg == kSs) {
      // 64-bit mode allows a null SS only at CPL < 3 with RPL = CPL.
      if (cpl == 3 || (sel & 3) != cpl) raise_gp(0);
      s.sel = sel;
      s.base = 0;
      s.ar = (s.ar & ~0x60u) | (cpl << 5) | (1u << 16);
      return;
    }
    s.sel = sel;
    s.base = 0;
    s.limit = 0;
    s.ar = 1u << 16;  // unusable
    return;
  }
  uint64_t d = 0, hi = 0;
  if (!read_descriptor(sel, d, hi, false)) raise_gp(sel & 0xFFFC);
  const uint32_t ar = ar_from_descriptor(d);
  const unsigned dpl = (ar >> 5) & 3, rpl = sel & 3;
  const bool code = ar & 8;
  if (!(ar & 0x10)) raise_gp(sel & 0xFFFC);  // system descriptor
  if (sreg == kSs) {
    if (rpl != cpl || dpl != cpl || code || !(ar & 2)) raise_gp(sel & 0xFFFC);
    if (!(ar & 0x80)) raise_exc(arch::kSS, true, sel & 0xFFFC);
  } else {
    if (code && !(ar & 2)) raise_gp(sel & 0xFFFC);  // execute-only code
    if ((!code || !(ar & 4)) && (rpl > dpl || cpl > dpl)) raise_gp(sel & 0xFFFC);
    if (!(ar & 0x80)) raise_exc(arch::kNP, true, sel & 0xFFFC);
  }
  s.sel = sel;
  s.base = base_from_descriptor(d);
  s.limit = limit_from_descriptor(d);
  s.ar = ar;
}

// IN / OUT: CPL > IOPL -> #GP(0) before any VM exit (the model has no TSS I/O bitmap:
// every guest port access needs CPL <= IOPL). VM exits per Vol. 3C 26.1.3 "I/O
// instructions" with unconditional I/O exiting or the I/O bitmaps (25.6.4).
Flow Cpu::Impl::io_instruction(const DecodedInsn& d, uint16_t port, unsigned size, bool in, bool imm) {
  const unsigned iopl = (st_.rflags >> 12) & 3;
  if (st_.cpl() > iopl) raise_gp(0);
  bool exits = false;
  if (proc_ & arch::proc_ctl::kUseIoBitmaps) {
    for (unsigned p = port; p < port + size; ++p) {
      const unsigned pp = p & 0xFFFF;
      const uint64_t bm = vmcs_->read(pp < 0x8000 ? arch::VmcsField::IoBitmapA : arch::VmcsField::IoBitmapB);
      uint8_t byte = 0;
      if (!mem_.read(bm + (pp & 0x7FFF) / 8, byte)) abort_internal(ES_ERROR_BAD_MEMORY, bm, 0);
      if (((byte >> (pp & 7)) & 1) || p > 0xFFFF) exits = true;
    }
  } else if (proc_ & arch::proc_ctl::kUnconditionalIoExiting) {
    exits = true;
  }
  if (exits) {
    set_exit(reason(BasicExitReason::IoInstruction), arch::IoQual::make(port, size, in, false, false, imm).raw(), d.len);
    return Flow::Exit;
  }
  if (in) reg_write(0, size, ~0ull, false);  // nothing decodes the port: floating bus
  return Flow::Next;
}

// MOV to/from control registers, Vol. 3C 26.1.3 (CR0/CR4 guest/host masks and read
// shadows, 25.6.6; CR3-load/store exiting with CR3-target values, 25.6.7; CR8 exiting).
Flow Cpu::Impl::mov_cr(const DecodedInsn& d, bool to_cr) {
  if (st_.cpl() != 0) raise_gp(0);
  const unsigned cr = d.reg;
  const unsigned gpr = d.rm;
  using arch::CrAccessQual;
  using arch::CrAccessType;
  auto cr_exit = [&]() {
    set_exit(reason(BasicExitReason::CrAccess),
             CrAccessQual::make_mov(cr, to_cr ? CrAccessType::MovToCr : CrAccessType::MovFromCr, gpr).raw(), d.len);
    return Flow::Exit;
  };
  if (to_cr) {
    const uint64_t v = st_.gpr[gpr];
    switch (cr) {
      case 0:
        if ((v ^ cr0_shadow_) & cr0_mask_) return cr_exit();
        if (v >> 32) raise_gp(0);
        if (!(v & arch::cr0::kPG) || !(v & arch::cr0::kPE)) raise_gp(0);  // leaving long mode: not modelled
        st_.cr0 = (v & ~cr0_mask_) | (st_.cr0 & cr0_mask_);
        flush_tlb();
        return Flow::Next;
      case 2: cr2_ = v; return Flow::Next;
      case 3: {
        if (proc_ & arch::proc_ctl::kCr3LoadExiting) {
          const uint32_t n = vmcs_->read32(arch::VmcsField::Cr3TargetCount);
          const arch::VmcsField targets[4] = {arch::VmcsField::Cr3TargetValue0, arch::VmcsField::Cr3TargetValue1,
                                              arch::VmcsField::Cr3TargetValue2, arch::VmcsField::Cr3TargetValue3};
          bool hit = false;
          for (uint32_t i = 0; i < n && i < 4; ++i) hit = hit || vmcs_->read(targets[i]) == v;
          if (!hit) return cr_exit();
        }
        if (v & 0xFFF0'0000'0000'0000ull) raise_gp(0);
        st_.cr3 = v;
        flush_tlb();
        return Flow::Next;
      }
      case 4:
        if ((v ^ cr4_shadow_) & cr4_mask_) return cr_exit();
        if (!(v & arch::cr4::kPAE)) raise_gp(0);
        st_.cr4 = (v & ~cr4_mask_) | (st_.cr4 & cr4_mask_);
        flush_tlb();
        return Flow::Next;
      case 8:
        if (proc_ & arch::proc_ctl::kCr8LoadExiting) return cr_exit();
        if (v & ~0xFull) raise_gp(0);
        cr8_ = v;
        return Flow::Next;
      default: raise_ud();
    }
  }
  uint64_t v = 0;
  switch (cr) {
    case 0: v = (st_.cr0 & ~cr0_mask_) | (cr0_shadow_ & cr0_mask_); break;
    case 2: v = cr2_; break;
    case 3:
      if (proc_ & arch::proc_ctl::kCr3StoreExiting) return cr_exit();
      v = st_.cr3;
      break;
    case 4: v = (st_.cr4 & ~cr4_mask_) | (cr4_shadow_ & cr4_mask_); break;
    case 8:
      if (proc_ & arch::proc_ctl::kCr8StoreExiting) return cr_exit();
      v = cr8_;
      break;
    default: raise_ud();
  }
  st_.gpr[gpr] = v;
  return Flow::Next;
}

// IRETQ in 64-bit mode (Vol. 2A "IRET/IRETD/IRETQ", IA-32e mode branch). NMI unblocking per
// Vol. 3C 26.3 "Changes to Instruction Behavior in VMX Non-Root Operation" (IRET): with
// NMI exiting = 0 IRET unblocks NMIs; with virtual NMIs it removes virtual-NMI blocking;
// with NMI exiting = 1 and virtual NMIs = 0 it leaves blocking alone.
Flow Cpu::Impl::iret(const DecodedInsn& d) {
  if (!d.rex_w()) return Flow::Halt;  // IRETD / IRET (16): outside the subset, reported by the caller
  namespace intr = arch::interruptibility;
  const bool nmi_exiting = pin_ & arch::pin_ctl::kNmiExiting, vnmi = pin_ & arch::pin_ctl::kVirtualNmis;
  if ((!nmi_exiting || vnmi) && (st_.intr & intr::kBlockingByNmi)) {
    st_.intr &= ~intr::kBlockingByNmi;
    iret_nmi_unblocked_ = true;
  }
  const bool user = user_mode();
  const uint64_t rsp = st_.gpr[4];
  const uint64_t new_rip = read_lin(rsp, 8, user, true);
  const uint16_t new_cs = static_cast<uint16_t>(read_lin(rsp + 8, 8, user, true));
  const uint64_t new_rflags = read_lin(rsp + 16, 8, user, true);
  const uint64_t new_rsp = read_lin(rsp + 24, 8, user, true);
  const uint16_t new_ss = static_cast<uint16_t>(read_lin(rsp + 32, 8, user, true));
  const unsigned cpl = st_.cpl();
  const unsigned rpl = new_cs & 3;
  if ((new_cs & ~3u) == 0 || rpl < cpl) raise_gp(new_cs & 0xFFFC);
  uint64_t cs_desc = 0, hi = 0;
  if (!read_descriptor(new_cs, cs_desc, hi, false)) raise_gp(new_cs & 0xFFFC);
  const uint32_t cs_ar = ar_from_descriptor(cs_desc);
  const unsigned cs_dpl = (cs_ar >> 5) & 3;
  if (!(cs_ar & 0x10) || !(cs_ar & 8) || !(cs_ar & (1u << 13))) raise_gp(new_cs & 0xFFFC);
  if ((cs_ar & 4) ? cs_dpl > rpl : cs_dpl != rpl) raise_gp(new_cs & 0xFFFC);
  if (!(cs_ar & 0x80)) raise_exc(arch::kNP, true, new_cs & 0xFFFC);
  if (!canonical(new_rip)) raise_gp(0);
  SegReg ss;
  if ((new_ss & ~3u) == 0) {
    if (rpl == 3 || (new_ss & 3) != rpl) raise_gp(0);
    ss.sel = new_ss;
    ss.base = 0;
    ss.limit = 0xFFFFFFFF;
    ss.ar = 0x3 | 0x10 | 0x80 | (rpl << 5) | (1u << 14) | (1u << 15);
  } else {
    uint64_t ss_desc = 0;
    if (!read_descriptor(new_ss, ss_desc, hi, false)) raise_gp(new_ss & 0xFFFC);
    const uint32_t ss_ar = ar_from_descriptor(ss_desc);
    if ((new_ss & 3) != rpl || ((ss_ar >> 5) & 3) != rpl || (ss_ar & 8) || !(ss_ar & 2) || !(ss_ar & 0x10))
      raise_gp(new_ss & 0xFFFC);
    if (!(ss_ar & 0x80)) raise_exc(arch::kSS, true, new_ss & 0xFFFC);
    ss.sel = new_ss;
    ss.base = base_from_descriptor(ss_desc);
    ss.limit = limit_from_descriptor(ss_desc);
    ss.ar = ss_ar;
  }
  // RFLAGS image: IOPL only at CPL 0, IF only when CPL <= IOPL (Vol. 2A IRET "Operation").
  uint64_t mask = rf::kCF | rf::kPF | rf::kAF | rf::kZF | rf::kSF | rf::kTF | rf::kDF | rf::kOF | rf::kNT | rf::kRF |
                  rf::kAC | (1ull << 21);
  const unsigned iopl = (st_.rflags >> 12) & 3;
  if (cpl == 0) mask |= 0x3000;
  if (cpl <= iopl) mask |= rf::kIF;
  st_.rflags = (st_.rflags & ~mask) | (new_rflags & mask) | rf::kFixed1;
  st_.seg[kCs].sel = new_cs;
  st_.seg[kCs].base = 0;
  st_.seg[kCs].limit = limit_from_descriptor(cs_desc);
  st_.seg[kCs].ar = cs_ar;
  st_.seg[kSs] = ss;
  st_.gpr[4] = new_rsp;
  next_rip_ = new_rip;
  return Flow::Next;
}

// INT n (type 4), INT3 (type 6), INT1 (type 5): an event generated by the instruction
// itself, delivered with the return RIP after the instruction.
Flow Cpu::Impl::software_event(const DecodedInsn& d, uint8_t vector, InterruptionType type) {
  Event ev;
  ev.vector = vector;
  ev.type = type;
  ev.instr_len = d.len;
  ev.return_rip = st_.rip + d.len;
  emit_raise(ev, entry_id_);
  // INT3 / INT1 are exceptions and consult the exception bitmap; INT n does not.
  deliver_chain(ev, type != InterruptionType::SoftwareInterrupt);
  next_rip_ = st_.rip;
  return Flow::Next;
}

Flow Cpu::Impl::execute(const DecodedInsn& d) {
  const bool rex = d.rex != 0;
  const unsigned os = d.opsize;
  const bool user = user_mode();
  const unsigned cpl = st_.cpl();
  auto unimplemented = [&]() {
    uint8_t b[15];
    const unsigned n = peek_insn_bytes(st_.rip, b);
    internal_error(ES_ERROR_UNIMPLEMENTED_INSN, d.op, b, n);
    return Flow::Exit;
  };
  const uint16_t op = d.op;
  // ALU block 00-3F.
  if (op < 0x40) {
    const unsigned aop = (op >> 3) & 7;
    switch (op & 7) {
      case 0: case 1: {  // r/m, r
        const unsigned sz = (op & 1) ? os : 1;
        const uint64_t a = rm_read(d, sz), b = reg_read(d.reg, sz, rex);
        const uint64_t r = alu(aop, a, b, sz);
        if (aop != 7) rm_write(d, sz, r);
        return Flow::Next;
      }
      case 2: case 3: {  // r, r/m
        const unsigned sz = (op & 1) ? os : 1;
        const uint64_t a = reg_read(d.reg, sz, rex), b = rm_read(d, sz);
        const uint64_t r = alu(aop, a, b, sz);
        if (aop != 7) reg_write(d.reg, sz, r, rex);
        return Flow::Next;
      }
      case 4: case 5: {  // AL/rAX, imm
        const unsigned sz = (op & 1) ? os : 1;
        const uint64_t r = alu(aop, reg_read(0, sz, rex), d.imm, sz);
        if (aop != 7) reg_write(0, sz, r, rex);
        return Flow::Next;
      }
    }
    return unimplemented();
  }
  if (op >= 0x50 && op <= 0x57) {
    if (os != 8) return unimplemented();
    push64(st_.gpr[(op & 7) | ((d.rex & 1) ? 8 : 0)]);
    return Flow::Next;
  }
  if (op >= 0x58 && op <= 0x5F) {
    if (os != 8) return unimplemented();
    const uint64_t v = pop64();
    st_.gpr[(op & 7) | ((d.rex & 1) ? 8 : 0)] = v;
    return Flow::Next;
  }
  if (op >= 0x70 && op <= 0x7F) {
    if (cond(op & 0xF)) next_rip_ += d.imm;
    return Flow::Next;
  }
  if (op >= 0x91 && op <= 0x97) {
    const unsigned r = (op & 7) | ((d.rex & 1) ? 8 : 0);
    const uint64_t a = reg_read(0, os, rex), b = reg_read(r, os, rex);
    reg_write(0, os, b, rex);
    reg_write(r, os, a, rex);
    return Flow::Next;
  }
  if (op >= 0xB0 && op <= 0xB7) {
    reg_write((op & 7) | ((d.rex & 1) ? 8 : 0), 1, d.imm, rex);
    return Flow::Next;
  }
  if (op >= 0xB8 && op <= 0xBF) {
    reg_write((op & 7) | ((d.rex & 1) ? 8 : 0), os, d.imm, rex);
    return Flow::Next;
  }
  if (op >= 0x140 && op <= 0x14F) {  // CMOVcc: the source is read whatever the condition
    const uint64_t v = rm_read(d, os);
    if (cond(op & 0xF)) reg_write(d.reg, os, v, rex);
    else if (os == 4) reg_write(d.reg, 4, reg_read(d.reg, 4, rex), rex);
    return Flow::Next;
  }
  if (op >= 0x180 && op <= 0x18F) {
    if (cond(op & 0xF)) next_rip_ += d.imm;
    return Flow::Next;
  }
  if (op >= 0x190 && op <= 0x19F) {
    rm_write(d, 1, cond(op & 0xF) ? 1 : 0);
    return Flow::Next;
  }
  if (op >= 0x1C8 && op <= 0x1CF) {  // BSWAP
    const unsigned r = (op & 7) | ((d.rex & 1) ? 8 : 0);
    if (os == 8) st_.gpr[r] = __builtin_bswap64(st_.gpr[r]);
    else if (os == 4) reg_write(r, 4, __builtin_bswap32(static_cast<uint32_t>(st_.gpr[r])), rex);
    else return unimplemented();
    return Flow::Next;
  }
  switch (op) {
    case 0x63: {  // MOVSXD
      const uint64_t v = rm_read(d, 4);
      reg_write(d.reg, os, os == 8 ? sx(v, 4) : v, rex);
      return Flow::Next;
    }
    case 0x68: case 0x6A:
      if (os != 8) return unimplemented();
      push64(d.imm);
      return Flow::Next;
    case 0x69: case 0x6B: case 0x1AF: {  // IMUL r, r/m(, imm)
      const int64_t a = static_cast<int64_t>(sx(rm_read(d, os), os));
      const int64_t b = op == 0x1AF ? static_cast<int64_t>(sx(reg_read(d.reg, os, rex), os)) : static_cast<int64_t>(d.imm);
      const __int128 full = static_cast<__int128>(a) * b;
      const uint64_t r = static_cast<uint64_t>(full) & size_mask(os);
      const bool ovf = static_cast<__int128>(static_cast<int64_t>(sx(r, os))) != full;
      reg_write(d.reg, os, r, rex);
      st_.rflags = (st_.rflags & ~(rf::kCF | rf::kOF)) | (ovf ? rf::kCF | rf::kOF : 0);
      set_szp(r, os);
      return Flow::Next;
    }
    case 0x80: case 0x81: case 0x83: {
      const uint64_t r = alu(d.reg & 7, rm_read(d, os), d.imm, os);
      if ((d.reg & 7) != 7) rm_write(d, os, r);
      return Flow::Next;
    }
    case 0x84: case 0x85:
      alu(4, rm_read(d, os), reg_read(d.reg, os, rex), os);
      return Flow::Next;
    case 0x86: case 0x87: {
      const uint64_t a = rm_read(d, os), b = reg_read(d.reg, os, rex);
      rm_write(d, os, b);
      reg_write(d.reg, os, a, rex);
      return Flow::Next;
    }
    case 0x88: case 0x89: rm_write(d, os, reg_read(d.reg, os, rex)); return Flow::Next;
    case 0x8A: case 0x8B: reg_write(d.reg, os, rm_read(d, os), rex); return Flow::Next;
    case 0x8C: {  // MOV r/m, Sreg
      const unsigned sr = d.reg & 7;
      if (sr >= 6) raise_ud();
      const uint64_t sel = st_.seg[sr].sel;
      if (d.mod == 3) reg_write(d.rm, os == 2 ? 2 : os, sel, rex);
      else write_lin(ea(d), 2, sel, user);
      return Flow::Next;
    }
    case 0x8D: reg_write(d.reg, os, ea(d) - ((d.seg == 4) ? st_.seg[kFs].base : (d.seg == 5) ? st_.seg[kGs].base : 0), rex); return Flow::Next;
    case 0x8E: {  // MOV Sreg, r/m
      const unsigned sr = d.reg & 7;
      if (sr == kCs || sr >= 6) raise_ud();
      load_data_segment(sr, static_cast<uint16_t>(rm_read(d, 2)));
      // Vol. 3A 6.8.3: a MOV to SS inhibits interrupts on the next boundary, whatever it loaded
      // (a null SS at CPL 0 in 64-bit mode too: the shadow belongs to the instruction).
      if (sr == kSs) st_.intr |= arch::interruptibility::kBlockingByMovSs;
      return Flow::Next;
    }
    case 0x8F: {
      if ((d.reg & 7) != 0 || os != 8) return unimplemented();
      // POP r/m: RSP is incremented before the destination address is computed.
      const uint64_t v = read_lin(st_.gpr[4], 8, user, true);
      const uint64_t old = st_.gpr[4];
      st_.gpr[4] += 8;
      try {
        rm_write(d, 8, v);
      } catch (const Abort&) {
        st_.gpr[4] = old;
        throw;
      }
      return Flow::Next;
    }
    case 0x90:
      if (d.rex & 1) {  // XCHG r8, rAX
        const uint64_t a = reg_read(0, os, rex), b = reg_read(8, os, rex);
        reg_write(0, os, b, rex);
        reg_write(8, os, a, rex);
        return Flow::Next;
      }
      if (d.rep && (proc_ & arch::proc_ctl::kPauseExiting)) {  // PAUSE, Vol. 3C 26.1.3
        set_exit(reason(BasicExitReason::PauseInstruction), 0, d.len);
        return Flow::Exit;
      }
      return Flow::Next;
    case 0x98:
      if (os == 8) st_.gpr[0] = sx(st_.gpr[0], 4);
      else if (os == 4) reg_write(0, 4, sx(st_.gpr[0], 2), rex);
      else reg_write(0, 2, sx(st_.gpr[0], 1), rex);
      return Flow::Next;
    case 0x99:
      reg_write(2, os, (reg_read(0, os, rex) & sign_bit(os)) ? ~0ull : 0, rex);
      return Flow::Next;
    case 0x9C:  // PUSHFQ: RF and VM are cleared in the image
      if (os != 8) return unimplemented();
      push64(st_.rflags & ~(rf::kRF | rf::kVM));
      return Flow::Next;
    case 0x9D: {  // POPFQ, Vol. 2B "POPF/POPFD/POPFQ"
      if (os != 8) return unimplemented();
      const uint64_t v = pop64();
      uint64_t mask = rf::kCF | rf::kPF | rf::kAF | rf::kZF | rf::kSF | rf::kTF | rf::kDF | rf::kOF | rf::kNT | rf::kAC |
                      (1ull << 21);
      const unsigned iopl = (st_.rflags >> 12) & 3;
      if (cpl == 0) mask |= 0x3000;
      if (cpl <= iopl) mask |= rf::kIF;
      st_.rflags = ((st_.rflags & ~mask) | (v & mask) | rf::kFixed1) & ~rf::kRF;
      return Flow::Next;
    }
    case 0x9E:
      st_.rflags = (st_.rflags & ~0xD5ull) | (reg_read(4, 1, false) & 0xD5);
      return Flow::Next;
    case 0x9F:
      reg_write(4, 1, (st_.rflags & 0xD5) | 2, false);
      return Flow::Next;
    case 0xA4: case 0xA5: case 0xAA: case 0xAB: case 0xAC: case 0xAD: {  // MOVS / STOS / LODS (+REP)
      if (d.repne) return unimplemented();
      const int64_t step = (st_.rflags & rf::kDF) ? -static_cast<int64_t>(os) : os;
      const bool rep = d.rep;
      while (!rep || st_.gpr[1] != 0) {
        if (op == 0xA4 || op == 0xA5) {
          const uint64_t v = read_lin(st_.gpr[6], os, user);
          write_lin(st_.gpr[7], os, v, user);
          st_.gpr[6] += step;
          st_.gpr[7] += step;
        } else if (op == 0xAA || op == 0xAB) {
          write_lin(st_.gpr[7], os, reg_read(0, os, rex), user);
          st_.gpr[7] += step;
        } else {
          reg_write(0, os, read_lin(st_.gpr[6], os, user), rex);
          st_.gpr[6] += step;
        }
        if (!rep) break;
        --st_.gpr[1];
      }
      return Flow::Next;
    }
    case 0xA8: case 0xA9: alu(4, reg_read(0, os, rex), d.imm, os); return Flow::Next;
    case 0xC0: case 0xC1: case 0xD0: case 0xD1: case 0xD2: case 0xD3: {
      const unsigned sop = d.reg & 7;
      if (sop == 2 || sop == 3) return unimplemented();  // RCL / RCR
      const unsigned count = (op == 0xC0 || op == 0xC1) ? static_cast<unsigned>(d.imm)
                             : (op == 0xD0 || op == 0xD1) ? 1u : static_cast<unsigned>(st_.gpr[1] & 0xFF);
      const uint64_t v = rm_read(d, os);
      rm_write(d, os, shift(sop, v, count, os));
      return Flow::Next;
    }
    case 0xC2: case 0xC3: {
      const uint64_t target = pop64();
      if (!canonical(target)) {
        st_.gpr[4] -= 8;
        raise_gp(0);
      }
      if (op == 0xC2) st_.gpr[4] += d.imm;
      next_rip_ = target;
      return Flow::Next;
    }
    case 0xC6: case 0xC7:
      if ((d.reg & 7) != 0) raise_ud();
      rm_write(d, os, d.imm);
      return Flow::Next;
    case 0xC8: {  // ENTER imm16, 0
      if (d.imm2 != 0 || os != 8) return unimplemented();
      push64(st_.gpr[5]);
      st_.gpr[5] = st_.gpr[4];
      st_.gpr[4] -= d.imm;
      return Flow::Next;
    }
    case 0xC9: {  // LEAVE
      const uint64_t v = read_lin(st_.gpr[5], 8, user, true);
      st_.gpr[4] = st_.gpr[5] + 8;
      st_.gpr[5] = v;
      return Flow::Next;
    }
    case 0xCC: return software_event(d, arch::kBP, InterruptionType::SoftwareException);
    case 0xCD: return software_event(d, static_cast<uint8_t>(d.imm), InterruptionType::SoftwareInterrupt);
    case 0xF1: return software_event(d, arch::kDB, InterruptionType::PrivilegedSoftwareException);
    case 0xCF: {
      const Flow f = iret(d);
      if (f == Flow::Halt) return unimplemented();
      return f;
    }
    case 0xE2:  // LOOP rel8 (64-bit address size: RCX)
      if (--st_.gpr[1] != 0) next_rip_ += d.imm;
      return Flow::Next;
    case 0xE4: case 0xE5: case 0xE6: case 0xE7:
      return io_instruction(d, static_cast<uint16_t>(d.imm), op & 1 ? (os == 2 ? 2 : 4) : 1, op < 0xE6, true);
    case 0xEC: case 0xED: case 0xEE: case 0xEF:
      return io_instruction(d, static_cast<uint16_t>(st_.gpr[2]), op & 1 ? (os == 2 ? 2 : 4) : 1, op < 0xEE, false);
    case 0xE8: {
      push64(next_rip_);
      next_rip_ += d.imm;
      return Flow::Next;
    }
    case 0xE9: case 0xEB: next_rip_ += d.imm; return Flow::Next;
    case 0xF4:  // HLT, Vol. 3C 26.1.3 "HLT exiting"
      if (cpl != 0) raise_gp(0);
      if (proc_ & arch::proc_ctl::kHltExiting) {
        set_exit(reason(BasicExitReason::Hlt), 0, d.len);
        return Flow::Exit;
      }
      st_.activity = static_cast<uint32_t>(arch::ActivityState::Hlt);
      return Flow::Next;
    case 0xF5: st_.rflags ^= rf::kCF; return Flow::Next;
    case 0xF6: case 0xF7: {
      const unsigned g = d.reg & 7;
      const uint64_t v = rm_read(d, os);
      switch (g) {
        case 0: case 1: alu(4, v, d.imm, os); return Flow::Next;
        case 2: rm_write(d, os, ~v); return Flow::Next;
        case 3: {
          const uint64_t r = alu(5, 0, v, os);
          rm_write(d, os, r);
          return Flow::Next;
        }
        case 4: case 5: {  // MUL / IMUL (one operand)
          bool ovf;
          if (os == 1) {
            const uint64_t al = st_.gpr[0] & 0xFF;
            uint64_t r;
            if (g == 4) {
              r = al * v;
              ovf = (r >> 8) != 0;
            } else {
              const int64_t sr = static_cast<int64_t>(sx(al, 1)) * static_cast<int64_t>(sx(v, 1));
              r = static_cast<uint64_t>(sr) & 0xFFFF;
              ovf = sr != static_cast<int64_t>(sx(r, 1));
            }
            reg_write(0, 2, r, rex);
          } else {
            uint64_t lo, hi;
            if (g == 4) {
              const unsigned __int128 r = static_cast<unsigned __int128>(reg_read(0, os, rex)) * v;
              lo = static_cast<uint64_t>(r) & size_mask(os);
              hi = os == 8 ? static_cast<uint64_t>(r >> 64) : (static_cast<uint64_t>(r) >> (os * 8)) & size_mask(os);
              ovf = hi != 0;
            } else {
              const __int128 r = static_cast<__int128>(static_cast<int64_t>(sx(reg_read(0, os, rex), os))) *
                                 static_cast<int64_t>(sx(v, os));
              lo = static_cast<uint64_t>(r) & size_mask(os);
              hi = os == 8 ? static_cast<uint64_t>(r >> 64) : (static_cast<uint64_t>(r >> (os * 8))) & size_mask(os);
              ovf = static_cast<__int128>(static_cast<int64_t>(sx(lo, os))) != r;
            }
            reg_write(0, os, lo, rex);
            reg_write(2, os, hi, rex);
          }
          st_.rflags = (st_.rflags & ~(rf::kCF | rf::kOF)) | (ovf ? rf::kCF | rf::kOF : 0);
          return Flow::Next;
        }
        case 6: case 7: {  // DIV / IDIV: #DE on a zero divisor or a quotient that does not fit
          if ((v & size_mask(os)) == 0) raise_exc(arch::kDE);
          if (os == 1) {
            const uint64_t ax = st_.gpr[0] & 0xFFFF;
            if (g == 6) {
              const uint64_t q = ax / v, r = ax % v;
              if (q > 0xFF) raise_exc(arch::kDE);
              reg_write(0, 2, (r << 8) | q, rex);
            } else {
              const int64_t n = static_cast<int64_t>(sx(ax, 2)), dv = static_cast<int64_t>(sx(v, 1));
              const int64_t q = n / dv, r = n % dv;
              if (q > 127 || q < -128) raise_exc(arch::kDE);
              reg_write(0, 2, ((static_cast<uint64_t>(r) & 0xFF) << 8) | (static_cast<uint64_t>(q) & 0xFF), rex);
            }
            return Flow::Next;
          }
          const unsigned bits = os * 8;
          if (g == 6) {
            const unsigned __int128 n = (static_cast<unsigned __int128>(reg_read(2, os, rex)) << bits) | reg_read(0, os, rex);
            const unsigned __int128 q = n / v, r = n % v;
            if (q >> bits) raise_exc(arch::kDE);
            reg_write(0, os, static_cast<uint64_t>(q), rex);
            reg_write(2, os, static_cast<uint64_t>(r), rex);
          } else {
            const unsigned __int128 un = (static_cast<unsigned __int128>(reg_read(2, os, rex)) << bits) | reg_read(0, os, rex);
            __int128 n = static_cast<__int128>(un);
            if (bits < 64) n = static_cast<__int128>(static_cast<int64_t>(sx(static_cast<uint64_t>(un), os * 2)));
            const __int128 dv = static_cast<int64_t>(sx(v, os));
            if (n == (static_cast<__int128>(1) << 127) && dv == -1) raise_exc(arch::kDE);
            const __int128 q = n / dv, r = n % dv;
            const __int128 lim = static_cast<__int128>(1) << (bits - 1);
            if (q >= lim || q < -lim) raise_exc(arch::kDE);
            reg_write(0, os, static_cast<uint64_t>(q), rex);
            reg_write(2, os, static_cast<uint64_t>(r), rex);
          }
          return Flow::Next;
        }
      }
      return unimplemented();
    }
    case 0xF8: st_.rflags &= ~rf::kCF; return Flow::Next;
    case 0xF9: st_.rflags |= rf::kCF; return Flow::Next;
    case 0xFA: case 0xFB: {  // CLI / STI: CPL <= IOPL (no VME/PVI in 64-bit mode)
      if (cpl > ((st_.rflags >> 12) & 3)) raise_gp(0);
      if (op == 0xFA) {
        st_.rflags &= ~rf::kIF;
      } else {
        // Vol. 3C 25.4.2 Table 25-3: STI that sets IF blocks interrupts for one instruction.
        if (!(st_.rflags & rf::kIF) && !(st_.intr & arch::interruptibility::kBlockingByMovSs))
          st_.intr |= arch::interruptibility::kBlockingBySti;
        st_.rflags |= rf::kIF;
      }
      return Flow::Next;
    }
    case 0xFC: st_.rflags &= ~rf::kDF; return Flow::Next;
    case 0xFD: st_.rflags |= rf::kDF; return Flow::Next;
    case 0xFE: case 0xFF: {
      const unsigned g = d.reg & 7;
      if (g <= 1) {  // INC / DEC keep CF
        const uint64_t cf = st_.rflags & rf::kCF;
        const uint64_t r = alu(g == 0 ? 0 : 5, rm_read(d, os), 1, os);
        st_.rflags = (st_.rflags & ~rf::kCF) | cf;
        rm_write(d, os, r);
        return Flow::Next;
      }
      if (op == 0xFE) raise_ud();
      switch (g) {
        case 2: {  // CALL r/m64
          const uint64_t target = rm_read(d, 8);
          if (!canonical(target)) raise_gp(0);
          push64(next_rip_);
          next_rip_ = target;
          return Flow::Next;
        }
        case 4: {
          const uint64_t target = rm_read(d, 8);
          if (!canonical(target)) raise_gp(0);
          next_rip_ = target;
          return Flow::Next;
        }
        case 6: push64(rm_read(d, 8)); return Flow::Next;
        case 7: raise_ud();
        default: return unimplemented();  // far CALL / JMP
      }
    }
    // ---- two-byte opcodes ----
    case 0x100: {  // group 6
      const unsigned g = d.reg & 7;
      if (g != 3) return unimplemented();
      // LTR, Vol. 2A "LTR—Load Task Register".
      if (cpl != 0) raise_gp(0);
      const uint16_t sel = static_cast<uint16_t>(rm_read(d, 2));
      if ((sel & ~3u) == 0) raise_gp(0);
      uint64_t lo = 0, hi = 0;
      if (!read_descriptor(sel, lo, hi, true)) raise_gp(sel & 0xFFFC);
      const uint32_t ar = ar_from_descriptor(lo);
      if ((ar & 0x1F) != 0x9) raise_gp(sel & 0xFFFC);  // available 64-bit TSS
      if (!(ar & 0x80)) raise_exc(arch::kNP, true, sel & 0xFFFC);
      write_lin(st_.gdtr_base + (sel & 0xFFF8u), 8, lo | (2ull << 40), false);  // mark busy
      st_.tr.sel = sel;
      st_.tr.base = base_from_descriptor(lo) | ((hi & 0xFFFFFFFF) << 32);
      st_.tr.limit = limit_from_descriptor(lo);
      st_.tr.ar = ar | 2;
      return Flow::Next;
    }
    case 0x101: {  // group 7
      const unsigned g = d.reg & 7;
      if (d.mod == 3) {
        if (g == 0 && (d.rm & 7) == 1) {  // VMCALL: always a VM exit in non-root operation
          set_exit(reason(BasicExitReason::Vmcall), 0, d.len);
          return Flow::Exit;
        }
        return unimplemented();
      }
      const uint64_t a = ea(d);
      switch (g) {
        case 0: case 1:  // SGDT / SIDT (no descriptor-table exiting in the model)
          write_lin(a, 2, g == 0 ? st_.gdtr_limit : st_.idtr_limit, user);
          write_lin(a + 2, 8, g == 0 ? st_.gdtr_base : st_.idtr_base, user);
          return Flow::Next;
        case 2: case 3: {  // LGDT / LIDT
          if (cpl != 0) raise_gp(0);
          const uint64_t lim = read_lin(a, 2, user), base = read_lin(a + 2, 8, user);
          if (!canonical(base)) raise_gp(0);
          if (g == 2) {
            st_.gdtr_limit = static_cast<uint32_t>(lim);
            st_.gdtr_base = base;
          } else {
            st_.idtr_limit = static_cast<uint32_t>(lim);
            st_.idtr_base = base;
          }
          return Flow::Next;
        }
        case 7:  // INVLPG, Vol. 3C 26.1.3 "INVLPG exiting" (qualification = linear address)
          if (cpl != 0) raise_gp(0);
          if (proc_ & arch::proc_ctl::kInvlpgExiting) {
            set_exit(reason(BasicExitReason::Invlpg), a, d.len);
            return Flow::Exit;
          }
          tlb_[(a >> 12) % kTlbSize].tag = ~0ull;
          return Flow::Next;
        default: return unimplemented();
      }
    }
    case 0x105:  // SYSCALL: EFER.SCE is never set by the model (MSR writes exit)
      if (!(st_.efer & arch::efer::kSCE)) raise_ud();
      return unimplemented();
    case 0x10B: raise_ud();  // UD2
    case 0x11F: return Flow::Next;  // NOP r/m (no memory access)
    case 0x120: return mov_cr(d, false);
    case 0x122: return mov_cr(d, true);
    case 0x130: case 0x132:  // WRMSR / RDMSR: every MSR access exits (no MSR bitmaps in the model)
      if (cpl != 0) raise_gp(0);
      set_exit(reason(op == 0x132 ? BasicExitReason::MsrRead : BasicExitReason::MsrWrite), 0, d.len);
      return Flow::Exit;
    case 0x131: {  // RDTSC
      if ((st_.cr4 & (1ull << 2)) && cpl != 0) raise_gp(0);  // CR4.TSD
      if (proc_ & arch::proc_ctl::kRdtscExiting) {
        set_exit(reason(BasicExitReason::Rdtsc), 0, d.len);
        return Flow::Exit;
      }
      uint64_t tsc = now_ns_;
      if (proc_ & arch::proc_ctl::kUseTscOffsetting) tsc += vmcs_->read(arch::VmcsField::TscOffset);
      st_.gpr[0] = tsc & 0xFFFFFFFF;
      st_.gpr[2] = tsc >> 32;
      return Flow::Next;
    }
    case 0x1A2:  // CPUID: unconditional VM exit (Vol. 3C 26.1.2)
      set_exit(reason(BasicExitReason::Cpuid), 0, d.len);
      return Flow::Exit;
    case 0x1A3: case 0x1AB: case 0x1B3: case 0x1BA: {  // BT / BTS / BTR (register bit offsets only for memory)
      const unsigned g = op == 0x1BA ? (d.reg & 7) : (op == 0x1A3 ? 4 : op == 0x1AB ? 5 : 6);
      if (g < 4 || g == 7) return g == 7 ? unimplemented() : (raise_ud(), Flow::Next);
      uint64_t bit = op == 0x1BA ? d.imm : reg_read(d.reg, os, rex);
      DecodedInsn dd = d;
      if (d.mem() && op != 0x1BA) {
        const int64_t off = static_cast<int64_t>(sx(bit, os));
        dd.disp += (off >> 3) & ~static_cast<int64_t>(os - 1);
        bit = static_cast<uint64_t>(off) & (os * 8 - 1);
      }
      bit &= os * 8 - 1;
      const uint64_t v = rm_read(dd, os);
      st_.rflags = (st_.rflags & ~rf::kCF) | (((v >> bit) & 1) ? rf::kCF : 0);
      if (g == 5) rm_write(dd, os, v | (1ull << bit));
      else if (g == 6) rm_write(dd, os, v & ~(1ull << bit));
      return Flow::Next;
    }
    case 0x1B6: reg_write(d.reg, os, rm_read(d, 1), rex); return Flow::Next;
    case 0x1B7: reg_write(d.reg, os, rm_read(d, 2), rex); return Flow::Next;
    case 0x1BE: reg_write(d.reg, os, sx(rm_read(d, 1), 1), rex); return Flow::Next;
    case 0x1BF: reg_write(d.reg, os, sx(rm_read(d, 2), 2), rex); return Flow::Next;
    case 0x1BC: case 0x1BD: {
      const uint64_t v = rm_read(d, os) & size_mask(os);
      if (v == 0) {
        st_.rflags |= rf::kZF;
        return Flow::Next;
      }
      st_.rflags &= ~rf::kZF;
      reg_write(d.reg, os, op == 0x1BC ? static_cast<uint64_t>(__builtin_ctzll(v)) : 63u - __builtin_clzll(v), rex);
      return Flow::Next;
    }
    default: return unimplemented();
  }
}

}  // namespace es::hv
