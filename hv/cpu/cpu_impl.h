// Internal state of the CPU model (Cpu::Impl). Not part of the public API.
//
// Control flow inside the model:
//  * Instruction-caused VM exits (OUT, CPUID, HLT, ...) return Flow::Exit from execute():
//    the hot path throws nothing.
//  * Faults found deep inside an access (a #PF in a page walk, an EPT violation on a stack
//    push during delivery, an access outside host memory) throw Abort after recording what
//    happened in abort_; the instruction or the delivery that caught it decides what the
//    architecture does next (deliver, double fault, VM exit with IDT-vectoring info).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "hv/arch/controls.h"
#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"
#include "hv/arch/exit_qualification.h"
#include "hv/arch/exit_reason.h"
#include "hv/cpu/cpu.h"
#include "hv/cpu/decoder.h"

namespace es::hv {

enum SegIndex : unsigned { kEs = 0, kCs = 1, kSs = 2, kDs = 3, kFs = 4, kGs = 5, kSegCount = 6 };
// Beyond the data/code segments: the system segment registers, for tables over all eight.
inline constexpr unsigned kLdtr = kSegCount, kTr = kSegCount + 1;

struct SegReg {
  uint16_t sel = 0;
  uint64_t base = 0;
  uint32_t limit = 0;
  uint32_t ar = 0;  // VMCS access-rights format, Vol. 3C 25.4.1 Table 25-2
};

struct GuestRegs {
  uint64_t gpr[16] = {};
  uint64_t rip = 0, rflags = 2;
  uint64_t cr0 = 0, cr3 = 0, cr4 = 0, efer = 0, dr7 = 0x400;
  SegReg seg[kSegCount];
  SegReg ldtr, tr;
  // kEs..kGs, kLdtr, kTr.
  SegReg& seg_reg(unsigned i) { return i < kSegCount ? seg[i] : i == kLdtr ? ldtr : tr; }
  const SegReg& seg_reg(unsigned i) const { return i < kSegCount ? seg[i] : i == kLdtr ? ldtr : tr; }
  uint64_t gdtr_base = 0, idtr_base = 0;
  uint32_t gdtr_limit = 0, idtr_limit = 0;
  uint32_t intr = 0;      // interruptibility state, Table 25-3
  uint32_t activity = 0;  // arch::ActivityState
  uint64_t pending_dbg = 0;
  unsigned cpl() const { return (seg[kSs].ar >> 5) & 3; }  // Vol. 3C 25.4.1: CPL = SS.DPL
};

// An event travelling through the guest IDT.
struct Event {
  uint8_t vector = 0;
  arch::InterruptionType type = arch::InterruptionType::HardwareException;
  bool has_error = false;
  uint32_t error = 0;
  uint8_t instr_len = 0;    // software interrupts / exceptions: length of the instruction
  uint64_t return_rip = 0;  // RIP pushed on the handler's stack
  bool has_cr2 = false;     // #PF: faulting linear address
  uint64_t cr2 = 0;
  uint64_t origin = 0;    // chain root record id
  uint64_t raise_id = 0;  // record that introduced this event (RAISE or VM_ENTRY)
  bool injected = false;
  uint32_t entry_word() const { return arch::EntryIntrInfo::make(vector, type, has_error).raw(); }
};

struct Abort {};  // thrown; details in Cpu::Impl::abort_

enum class AbortKind : uint8_t { None, Exception, VmExit, Internal };

// Exit information being assembled for the VMCS (Vol. 3C 28.2 "Recording VM-Exit Information").
struct PendingExit {
  uint32_t reason = 0;
  uint64_t qualification = 0;
  uint64_t guest_linear = 0;
  uint64_t guest_phys = 0;
  uint32_t intr_info = 0;
  uint32_t intr_error = 0;
  uint32_t vectoring_info = 0;
  uint32_t vectoring_error = 0;
  uint32_t instr_len = 0;
  uint64_t cause = 0;
  uint64_t exit_event_origin = 0;
  uint64_t vectoring_origin = 0;
  bool nmi_unblock_candidate = true;  // the exit may carry "NMI unblocking due to IRET"
};

enum class Access : uint8_t { Read, Write, Fetch };

struct TlbEntry {
  uint64_t tag = ~0ull;  // linear page number
  uint64_t hpa_page = 0;
  uint64_t gpa_page = 0;
  uint8_t perm = 0;
};
namespace tlb_perm {
constexpr uint8_t kUser = 1, kWritable = 2, kNx = 4, kDirty = 8, kEptR = 16, kEptW = 32, kEptX = 64;
}

struct DecodeCacheEntry {
  uint64_t gpa = ~0ull;
  uint32_t gen = 0;
  DecodedInsn insn;
};

enum class Flow : uint8_t { Next, Exit, Halt };

struct Cpu::Impl {
  Impl(HostMemory& m, probes::ProbeBus& b, CpuConfig c);

  HostMemory& mem_;
  probes::ProbeBus& bus_;
  CpuConfig cfg_;

  // ---- architectural state while in non-root operation ----
  GuestRegs st_;
  uint64_t cr2_ = 0;  // not part of the VMCS; persists like the hardware register
  uint64_t cr8_ = 0;
  Vmcs* vmcs_ = nullptr;
  // Cached controls for this entry.
  uint32_t pin_ = 0, proc_ = 0, proc2_ = 0, exit_ctl_ = 0, entry_ctl_ = 0, exc_bitmap_ = 0;
  uint32_t pfec_mask_ = 0, pfec_match_ = 0;
  uint64_t eptp_ = 0;
  bool ept_on_ = false;
  uint64_t cr0_mask_ = 0, cr4_mask_ = 0, cr0_shadow_ = 0, cr4_shadow_ = 0;

  // ---- outside world ----
  uint64_t now_ns_ = 0;
  uint64_t host_irq_at_ = ~0ull;
  uint8_t host_irq_vector_ = 0;
  bool host_nmi_pending_ = false;

  // ---- record context ----
  uint16_t vcpu_ = 0;
  uint8_t level_ = 1, hv_level_ = 0;

  // ---- per-entry bookkeeping ----
  uint64_t entry_id_ = 0;
  uint64_t insns_ = 0, max_insns_ = 0;
  const std::atomic<bool>* stop_request_ = nullptr;  // EntryContext::stop of this entry
  bool stopped_ = false;                             // the run loop saw it set
  uint64_t next_rip_ = 0;
  const DecodedInsn* cur_insn_ = nullptr;
  AbortKind abort_kind_ = AbortKind::None;
  // Exception raised (abort_kind_ == Exception)
  uint8_t exc_vector_ = 0;
  bool exc_has_error_ = false;
  uint32_t exc_error_ = 0;
  bool exc_has_cr2_ = false;
  uint64_t exc_cr2_ = 0;
  PendingExit exit_;
  bool exit_pending_ = false;
  bool stop_internal_ = false;
  bool iret_nmi_unblocked_ = false;  // IRET in progress removed (virtual-)NMI blocking
  bool delivering_ = false;          // event delivery in progress (implicit supervisor accesses)

  // ---- caches ----
  static constexpr unsigned kTlbSize = 256;
  std::array<TlbEntry, kTlbSize> tlb_{};
  static constexpr unsigned kDecodeCacheSize = 4096;
  std::vector<DecodeCacheEntry> dcache_;
  std::vector<uint32_t> page_gen_;  // per host page: bumped on writes to pages holding cached code
  std::vector<uint8_t> code_page_;  // per host page: decoded instructions cached from it

  // ---- entry / exit (cpu.cpp) ----
  ExitRecordInfo vm_entry(Vmcs& vmcs, GuestGprs& gprs, const EntryContext& ctx);
  bool check_entry_controls(Vmcs& v);
  uint32_t check_guest_state(Vmcs& v);
  void load_guest(Vmcs& v, const GuestGprs& g);
  void save_guest(Vmcs& v, GuestGprs& g);
  void run(const EntryContext& ctx, bool inject);
  bool boundary_events();
  Flow step();
  void finish_exit(ExitRecordInfo& out);
  void internal_error(uint32_t reason, uint64_t detail, const uint8_t* bytes, unsigned n, uint64_t gpa = 0);

  // ---- events (cpu.cpp) ----
  void deliver_chain(Event ev, bool check_intercept);
  void deliver_one(const Event& ev);
  bool exception_intercepted(uint8_t vector, bool has_error, uint32_t error) const;
  void exit_for_exception(const Event& exc, const Event* vectoring);
  void set_vectoring(const Event& ev);
  void emit_raise(Event& ev, uint64_t cause, uint64_t origin_override = 0);
  void emit_delivery(const Event& ev, uint64_t handler_rip);
  // A record of `kind` stamped with this CPU's context (vCPU, levels) and the current time.
  es_record new_record(uint16_t kind, uint64_t id) const {
    es_record r{};
    r.kind = kind;
    r.id = id;
    r.vcpu = vcpu_;
    r.level = level_;
    r.hv_level = hv_level_;
    r.time_ns = now_ns_;
    return r;
  }
  Event event_from_pending_exception();
  void set_exit(uint32_t reason, uint64_t qual = 0, uint32_t instr_len = 0);

  // ---- faults thrown from deep inside ----
  [[noreturn]] void raise_exc(uint8_t vector, bool has_error = false, uint32_t error = 0);
  [[noreturn]] void raise_gp(uint32_t error = 0) { raise_exc(arch::kGP, true, error); }
  [[noreturn]] void raise_ud() { raise_exc(arch::kUD); }
  [[noreturn]] void raise_pf(uint64_t lin, uint32_t error);
  [[noreturn]] void abort_exit();
  [[noreturn]] void abort_internal(uint32_t reason, uint64_t detail, uint64_t gpa = 0);

  // ---- memory (mmu.cpp) ----
  uint64_t translate(uint64_t lin, Access acc, bool user);
  uint64_t walk(uint64_t lin, Access acc, bool user);
  uint64_t ept_translate(uint64_t gpa, Access acc, bool gla_valid, bool translated, uint64_t lin, uint8_t* perm_out);
  uint64_t read_lin(uint64_t lin, unsigned size, bool user, bool stack = false);
  void write_lin(uint64_t lin, unsigned size, uint64_t v, bool user, bool stack = false);
  void note_write(uint64_t hpa, unsigned size);
  void flush_tlb() {
    for (auto& e : tlb_) e.tag = ~0ull;
  }
  void flush_decode() {
    for (auto& e : dcache_) e.gpa = ~0ull;
  }
  // Side-effect-free walks for the public helpers and record bytes.
  bool probe_ept(uint64_t eptp, bool ept_on, uint64_t gpa, uint64_t& hpa) const;
  bool probe_linear(uint64_t cr3, uint64_t eptp, bool ept_on, uint64_t lin, uint64_t& gpa) const;
  unsigned peek_insn_bytes(uint64_t rip, uint8_t out[15]) const;

  // ---- interpreter (exec.cpp) ----
  Flow execute(const DecodedInsn& d);
  uint64_t ea(const DecodedInsn& d) const;
  uint64_t rm_read(const DecodedInsn& d, unsigned size);
  void rm_write(const DecodedInsn& d, unsigned size, uint64_t v);
  uint64_t reg_read(unsigned r, unsigned size, bool rex) const;
  void reg_write(unsigned r, unsigned size, uint64_t v, bool rex);
  void push64(uint64_t v);
  uint64_t pop64();
  bool cond(unsigned cc) const;
  uint64_t alu(unsigned op, uint64_t a, uint64_t b, unsigned size);
  uint64_t shift(unsigned op, uint64_t a, unsigned count, unsigned size);
  void set_szp(uint64_t res, unsigned size);
  void load_data_segment(unsigned sreg, uint16_t sel);
  bool read_descriptor(uint16_t sel, uint64_t& lo, uint64_t& hi, bool need_hi);
  Flow io_instruction(const DecodedInsn& d, uint16_t port, unsigned size, bool in, bool imm);
  Flow mov_cr(const DecodedInsn& d, bool to_cr);
  Flow iret(const DecodedInsn& d);
  Flow software_event(const DecodedInsn& d, uint8_t vector, arch::InterruptionType type);
  bool user_mode() const { return st_.cpl() == 3; }
};

// Segment descriptor helpers (Vol. 3A 3.4.5 "Segment Descriptors"): VMCS access-rights
// format from a descriptor's high dword.
constexpr uint32_t ar_from_descriptor(uint64_t d) { return static_cast<uint32_t>((d >> 40) & 0xF0FF); }
constexpr uint64_t base_from_descriptor(uint64_t d) { return ((d >> 16) & 0xFFFFFF) | (((d >> 56) & 0xFF) << 24); }
constexpr uint32_t limit_from_descriptor(uint64_t d) {
  uint32_t lim = static_cast<uint32_t>((d & 0xFFFF) | (((d >> 48) & 0xF) << 16));
  if (d & (1ull << 55)) lim = (lim << 12) | 0xFFF;
  return lim;
}

}  // namespace es::hv
