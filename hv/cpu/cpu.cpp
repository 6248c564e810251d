// VM entry, event delivery and VM exits of the CPU model.
// SDM references are to the edition with VMX in Vol. 3C chapters 25-29 (VMCS = ch. 25,
// VMX non-root operation = ch. 26, VM entries = ch. 27, VM exits = ch. 28, EPT = ch. 29);
// the titles are edition-independent.
#include <algorithm>
#include <cstring>

#include "hv/cpu/cpu_impl.h"

namespace es::hv {

using arch::InterruptionType;
using arch::VmcsField;
namespace intr = arch::interruptibility;

Cpu::Impl::Impl(HostMemory& m, probes::ProbeBus& b, CpuConfig c)
    : mem_(m), bus_(b), cfg_(c), dcache_(kDecodeCacheSize) {
  const uint64_t pages = (m.size() + 4095) / 4096;
  page_gen_.assign(pages, 0);
  code_page_.assign(pages, 0);
}

// ---------------------------------------------------------------------------------------
// Faults thrown from inside an access.

void Cpu::Impl::raise_exc(uint8_t vector, bool has_error, uint32_t error) {
  abort_kind_ = AbortKind::Exception;
  exc_vector_ = vector;
  exc_has_error_ = has_error;
  exc_error_ = error;
  exc_has_cr2_ = false;
  throw Abort{};
}

void Cpu::Impl::raise_pf(uint64_t lin, uint32_t error) {
  abort_kind_ = AbortKind::Exception;
  exc_vector_ = arch::kPF;
  exc_has_error_ = true;
  exc_error_ = error;
  exc_has_cr2_ = true;
  exc_cr2_ = lin;
  throw Abort{};
}

void Cpu::Impl::abort_exit() {
  abort_kind_ = AbortKind::VmExit;
  exit_pending_ = true;
  throw Abort{};
}

void Cpu::Impl::abort_internal(uint32_t reason, uint64_t detail, uint64_t gpa) {
  internal_error(reason, detail, nullptr, 0, gpa);
  abort_kind_ = AbortKind::Internal;
  throw Abort{};
}

void Cpu::Impl::internal_error(uint32_t reason, uint64_t detail, const uint8_t* bytes, unsigned n, uint64_t gpa) {
  stop_internal_ = true;
  if (!bus_.enabled(ES_KIND_INTERNAL_ERROR)) {
    bus_.next_id();
    return;
  }
  es_record r = new_record(ES_KIND_INTERNAL_ERROR, 0);  // id assigned by the bus
  r.reason = reason;
  r.rip = st_.rip;
  r.aux64 = detail;
  r.guest_phys = gpa;
  r.cause = entry_id_;
  uint8_t buf[15];
  if (!bytes) {
    n = peek_insn_bytes(st_.rip, buf);
    bytes = buf;
  }
  if (n) {
    std::memcpy(r.bytes, bytes, std::min(n, 15u));
    r.aux = std::min(n, 15u);
    r.flags |= ES_FLAG_BYTES_VALID;
  }
  bus_.emit(r);
}

void Cpu::Impl::set_exit(uint32_t reason, uint64_t qual, uint32_t instr_len) {
  exit_ = {};
  exit_.reason = reason;
  exit_.qualification = qual;
  exit_.instr_len = instr_len;
  exit_pending_ = true;
}

// ---------------------------------------------------------------------------------------
// Records.

void Cpu::Impl::emit_raise(Event& ev, uint64_t cause, uint64_t origin_override) {
  ev.raise_id = bus_.next_id();
  ev.origin = origin_override ? origin_override : ev.raise_id;
  if (!bus_.enabled(ES_KIND_RAISE)) return;
  es_record r = new_record(ES_KIND_RAISE, ev.raise_id);
  r.cause = cause;
  r.origin = ev.origin;
  r.rip = st_.rip;
  r.intr_info = ev.entry_word();
  r.intr_error = ev.has_error ? ev.error : 0;
  r.instr_len = ev.instr_len;
  r.guest_linear = ev.has_cr2 ? ev.cr2 : 0;
  bus_.emit(r);
}

void Cpu::Impl::emit_delivery(const Event& ev, uint64_t handler_rip) {
  const uint64_t id = bus_.next_id();
  if (!bus_.enabled(ES_KIND_DELIVERY)) return;
  es_record r = new_record(ES_KIND_DELIVERY, id);
  r.cause = ev.raise_id;
  r.origin = ev.origin;
  r.rip = handler_rip;
  r.aux64 = ev.return_rip;
  r.intr_info = ev.entry_word();
  r.intr_error = ev.has_error ? ev.error : 0;
  r.instr_len = ev.instr_len;
  // The CR2 the handler finds: for an injected #PF it is whatever the hypervisor loaded.
  r.guest_linear = (ev.vector == arch::kPF && ev.type == InterruptionType::HardwareException) ? cr2_ : 0;
  bus_.emit(r);
}

// ---------------------------------------------------------------------------------------
// Event delivery through the 64-bit IDT, Vol. 3A 6.14 "Exception and Interrupt Handling in
// 64-bit Mode" (6.14.1 "64-Bit Mode IDT", 6.14.2 "64-Bit Mode Stack Frame", 6.14.4 "Stack
// Switching in IA-32e Mode", 6.14.5 "Interrupt Stack Table"). All state is committed only
// when every read and push succeeded, so a fault in the middle leaves the interrupted
// context intact (the VMCS guest-state area then shows the state before delivery).
void Cpu::Impl::deliver_one(const Event& ev) {
  delivering_ = true;
  // EXT bit (bit 0 of an error code caused during delivery): the event is external to the
  // program: anything but INT n / INT3 / INTO (Vol. 3A 6.13 "Error Code").
  const uint32_t ext =
      (ev.type == InterruptionType::SoftwareInterrupt || ev.type == InterruptionType::SoftwareException) ? 0 : 1;
  const uint32_t idt_ec = static_cast<uint32_t>(ev.vector) * 8 + 2 + ext;  // IDT bit set
  if (static_cast<uint64_t>(ev.vector) * 16 + 15 > st_.idtr_limit) raise_gp(idt_ec);
  const uint64_t gate_lo = read_lin(st_.idtr_base + ev.vector * 16ull, 8, false);
  const uint64_t gate_hi = read_lin(st_.idtr_base + ev.vector * 16ull + 8, 8, false);
  const unsigned gate_type = (gate_lo >> 40) & 0xF;
  const unsigned gate_dpl = (gate_lo >> 45) & 3;
  const bool gate_present = (gate_lo >> 47) & 1;
  // 6.14.1: only 64-bit interrupt (0xE) and trap (0xF) gates are valid in the IDT.
  if (gate_type != 0xE && gate_type != 0xF) raise_gp(idt_ec);
  // 6.12.1.1 "Protection of Exception- and Interrupt-Handler Procedures": INT n, INT3 and
  // INTO check gate DPL >= CPL; INT1 (privileged software exception) and hardware events do not.
  if ((ev.type == InterruptionType::SoftwareInterrupt || ev.type == InterruptionType::SoftwareException) &&
      gate_dpl < st_.cpl())
    raise_gp(idt_ec);
  if (!gate_present) raise_exc(arch::kNP, true, idt_ec);
  const uint16_t cs_sel = static_cast<uint16_t>(gate_lo >> 16);
  const uint64_t target = (gate_lo & 0xFFFF) | (((gate_lo >> 48) & 0xFFFF) << 16) | ((gate_hi & 0xFFFFFFFF) << 32);
  const unsigned ist = (gate_lo >> 32) & 7;
  if ((cs_sel & ~3u) == 0) raise_gp(ext);
  uint64_t cs_desc = 0, unused = 0;
  if (!read_descriptor(cs_sel, cs_desc, unused, false)) raise_gp((cs_sel & 0xFFFC) + ext);
  const uint32_t cs_ar = ar_from_descriptor(cs_desc);
  const unsigned cs_dpl = (cs_ar >> 5) & 3;
  // Target must be a present 64-bit code segment with DPL <= CPL.
  if (!(cs_ar & 0x10) || !(cs_ar & 0x8) || !(cs_ar & (1u << 13)) || (cs_ar & (1u << 14)) || cs_dpl > st_.cpl())
    raise_gp((cs_sel & 0xFFFC) + ext);
  if (!(cs_ar & 0x80)) raise_exc(arch::kNP, true, (cs_sel & 0xFFFC) + ext);
  const unsigned old_cpl = st_.cpl();
  const bool conforming = (cs_ar & 0x4) != 0;
  const unsigned new_cpl = conforming ? old_cpl : cs_dpl;
  uint64_t rsp = st_.gpr[4];
  // 6.14.4 / 6.14.5: stack switch on a privilege change, or always to an IST stack.
  if (ist != 0 || new_cpl < old_cpl) {
    const uint64_t off = ist != 0 ? 0x24 + (ist - 1) * 8ull : 4 + new_cpl * 8ull;
    if (off + 7 > st_.tr.limit) raise_exc(arch::kTS, true, (st_.tr.sel & 0xFFFC) + ext);
    rsp = read_lin(st_.tr.base + off, 8, false);
  }
  rsp &= ~0xFull;  // 6.14.2: the frame is 16-byte aligned
  const uint64_t old_rflags = st_.rflags;
  uint64_t frame[6];
  unsigned n = 0;
  frame[n++] = st_.seg[kSs].sel;
  frame[n++] = st_.gpr[4];
  frame[n++] = old_rflags;
  frame[n++] = st_.seg[kCs].sel;
  frame[n++] = ev.return_rip;
  if (ev.has_error) frame[n++] = ev.error;
  for (unsigned i = 0; i < n; ++i) {
    rsp -= 8;
    write_lin(rsp, 8, frame[i], false, true);
  }
  if (static_cast<uint64_t>(static_cast<int64_t>(target << 16) >> 16) != target) raise_gp(ext);
  // Commit.
  if (new_cpl != old_cpl) {
    // 6.14.4: SS is loaded with a null selector whose RPL is the new CPL.
    st_.seg[kSs].sel = static_cast<uint16_t>(new_cpl);
    st_.seg[kSs].base = 0;
    st_.seg[kSs].limit = 0xFFFFFFFF;
    st_.seg[kSs].ar = 0x3 | 0x10 | 0x80 | (new_cpl << 5) | (1u << 14) | (1u << 15);
  }
  st_.seg[kCs].sel = static_cast<uint16_t>((cs_sel & 0xFFFC) | new_cpl);
  st_.seg[kCs].base = 0;
  st_.seg[kCs].limit = 0xFFFFFFFF;
  st_.seg[kCs].ar = (cs_ar & ~0x60u) | (new_cpl << 5);
  st_.gpr[4] = rsp;
  st_.rip = target;
  // 6.12.1.3 "Flag Usage By Exception- or Interrupt-Handler Procedure": TF, NT, RF, VM
  // cleared; IF cleared through an interrupt gate.
  st_.rflags &= ~(arch::rflags::kTF | arch::rflags::kNT | arch::rflags::kRF | arch::rflags::kVM);
  if (gate_type == 0xE) st_.rflags &= ~arch::rflags::kIF;
  // Vol. 3A 6.7.1 "Handling Multiple NMIs": NMI delivery blocks NMIs until the next IRET.
  if (ev.type == InterruptionType::Nmi) st_.intr |= intr::kBlockingByNmi;
  // Delivery of an event ends STI / MOV SS blocking (Vol. 3C 25.4.2 Table 25-3).
  st_.intr &= ~(intr::kBlockingBySti | intr::kBlockingByMovSs);
  // A delivered event wakes a halted processor.
  st_.activity = static_cast<uint32_t>(arch::ActivityState::Active);
  delivering_ = false;
  emit_delivery(ev, target);
}

// Exception bitmap, Vol. 3C 26.2 "Other Causes of VM Exits" (Exceptions) and 25.6.3
// "Exception Bitmap": #PF consults the PFEC mask / match.
bool Cpu::Impl::exception_intercepted(uint8_t vector, bool, uint32_t error) const {
  if (vector >= 32) return false;
  const bool bit = (exc_bitmap_ >> vector) & 1;
  if (vector != arch::kPF) return bit;
  const bool match = (error & pfec_mask_) == pfec_match_;
  return match ? bit : !bit;
}

// Vol. 3C 28.2.4 "Information for VM Exits That Occur During Event Delivery".
void Cpu::Impl::set_vectoring(const Event& ev) {
  exit_.vectoring_info = arch::IdtVectoringInfo::make(ev.vector, ev.type, ev.has_error).raw();
  exit_.vectoring_error = ev.has_error ? ev.error : 0;
  exit_.vectoring_origin = ev.origin;
  // Software interrupts / exceptions: the VM-exit instruction-length field receives the
  // length of the instruction (or the VM-entry instruction length for an injected event).
  if (arch::type_has_instruction_length(ev.type)) exit_.instr_len = ev.instr_len;
  exit_.nmi_unblock_candidate = false;
}

// A VM exit caused by an exception (reason 0), Vol. 3C 28.2.2 "Information for VM Exits Due
// to Vectored Events". `vectoring` is the event whose delivery raised it, if any.
void Cpu::Impl::exit_for_exception(const Event& exc, const Event* vectoring) {
  exit_ = {};
  exit_.reason = static_cast<uint32_t>(arch::BasicExitReason::ExceptionOrNmi);
  const bool nested = vectoring != nullptr && cfg_.nested_exception_bit;
  exit_.intr_info = arch::ExitIntrInfo::make(exc.vector, exc.type, exc.has_error, false, nested).raw();
  exit_.intr_error = exc.has_error ? exc.error : 0;
  exit_.cause = exc.raise_id;
  exit_.exit_event_origin = exc.origin;
  if (arch::type_has_instruction_length(exc.type)) exit_.instr_len = exc.instr_len;
  // 28.2.1: for #PF the exit qualification is the linear address (CR2 is not written).
  if (exc.vector == arch::kPF && exc.type == InterruptionType::HardwareException) exit_.qualification = exc.cr2;
  if (vectoring) set_vectoring(*vectoring);
  // NMI unblocking due to IRET is undefined for #DF and with valid IDT-vectoring info.
  if (exc.vector == arch::kDF) exit_.nmi_unblock_candidate = false;
  exit_pending_ = true;
}

Event Cpu::Impl::event_from_pending_exception() {
  Event e;
  e.vector = exc_vector_;
  e.type = InterruptionType::HardwareException;
  e.has_error = exc_has_error_;
  e.error = exc_error_;
  e.has_cr2 = exc_has_cr2_;
  e.cr2 = exc_cr2_;
  return e;
}

// The delivery loop with the double-fault logic of Vol. 3A 6.15 "Interrupt 8—Double Fault
// Exception (#DF)" (Table 6-5 "Conditions for Generating a Double Fault") as modified in VMX
// non-root operation by Vol. 3C 26.2 (an exception encountered during delivery is first
// checked against the exception bitmap; if it causes a VM exit, the event being delivered
// is recorded in IDT-vectoring info, 28.2.4).
//
// `check_intercept`: the event is a new exception at an instruction (not injected, not a
// host interrupt); if the exception bitmap selects it, the event itself causes the VM exit
// and IDT-vectoring is not valid (28.2.4: "the original event causes the VM exit directly").
void Cpu::Impl::deliver_chain(Event ev, bool check_intercept) {
  if (check_intercept && exception_intercepted(ev.vector, ev.has_error, ev.error)) {
    exit_for_exception(ev, nullptr);
    abort_exit();
  }
  Event cur = ev;
  for (;;) {
    // A #PF reaching the guest writes CR2 when it is recognized (Vol. 3A 4.7); a #PF that
    // causes a VM exit leaves CR2 unchanged (Vol. 3C 28.1).
    if (cur.has_cr2) cr2_ = cur.cr2;
    abort_kind_ = AbortKind::None;
    try {
      deliver_one(cur);
      return;
    } catch (const Abort&) {
      delivering_ = false;
      if (abort_kind_ == AbortKind::VmExit) {
        // EPT violation / misconfiguration during delivery: IDT-vectoring = this event.
        set_vectoring(cur);
        if (exit_.cause == 0) exit_.cause = cur.raise_id;
        throw;
      }
      if (abort_kind_ != AbortKind::Exception) throw;
    }
    Event second = event_from_pending_exception();
    // A fault during delivery is a fault "at" the interrupted context: its handler returns
    // to the RIP the VMCS would show (the instruction for software events and faults, the
    // next instruction for interrupts), which is st_.rip since nothing was committed.
    second.return_rip = st_.rip;
    emit_raise(second, cur.raise_id);
    if (exception_intercepted(second.vector, second.has_error, second.error)) {
      exit_for_exception(second, &cur);
      abort_exit();
    }
    const arch::ExceptionClass first_class = cur.type == InterruptionType::HardwareException
                                                 ? arch::exception_class(cur.vector)
                                                 : arch::ExceptionClass::Benign;
    switch (arch::fault_during_delivery(first_class, arch::exception_class(second.vector))) {
      case arch::FaultDuringDelivery::Serial: cur = second; break;
      case arch::FaultDuringDelivery::DoubleFault: {
        // #DF(0) continues the chain whose delivery failed; its cause is the second fault.
        Event df;
        df.vector = arch::kDF;
        df.type = InterruptionType::HardwareException;
        df.has_error = true;
        df.error = 0;
        df.return_rip = second.return_rip;
        emit_raise(df, second.raise_id, cur.origin);
        // 28.2.4: a #DF that itself causes the VM exit has IDT-vectoring not valid.
        if (exception_intercepted(arch::kDF, true, 0)) {
          exit_for_exception(df, nullptr);
          abort_exit();
        }
        cur = df;
        break;
      }
      case arch::FaultDuringDelivery::TripleFault:
        // Vol. 3C 26.2 "Triple fault": VM exit reason 2; IDT-vectoring not valid (28.2.4).
        exit_ = {};
        exit_.reason = static_cast<uint32_t>(arch::BasicExitReason::TripleFault);
        exit_.cause = second.raise_id;
        exit_.exit_event_origin = cur.origin;
        exit_.nmi_unblock_candidate = false;
        abort_exit();
    }
  }
}

// ---------------------------------------------------------------------------------------
// VM entry.

// Vol. 3C 27.2.1.3 "Checks on VM-Entry Control Fields" (event injection part).
bool Cpu::Impl::check_entry_controls(Vmcs& v) {
  const arch::EntryIntrInfo e(v.read32(VmcsField::VmEntryIntrInfo));
  if (!e.valid()) return true;
  const InterruptionType t = e.type();
  if (t == InterruptionType::Reserved1) return false;
  if (t == InterruptionType::OtherEvent) return false;  // MTF pending / FRED events not supported by the model
  if (t == InterruptionType::Nmi && e.vector() != arch::kNMI) return false;
  if (t == InterruptionType::HardwareException && e.vector() > 31) return false;
  // Deliver-error-code is 1 iff (unrestricted guest = 0 or CR0.PE = 1), the type is hardware
  // exception and the vector is one that pushes an error code.
  const bool unrestricted = (v.read32(VmcsField::SecondaryVmExecControl) & arch::proc_ctl2::kUnrestrictedGuest) &&
                            (v.read32(VmcsField::CpuBasedVmExecControl) & arch::proc_ctl::kActivateSecondaryControls);
  const bool pe = (v.read(VmcsField::GuestCr0) & arch::cr0::kPE) != 0;
  const bool want_ec =
      (!unrestricted || pe) && t == InterruptionType::HardwareException && arch::exception_has_error_code(e.vector());
  if (e.deliver_error_code() != want_ec) return false;
  if (!e.reserved_bits_clear()) return false;
  if (e.deliver_error_code() && (v.read32(VmcsField::VmEntryExceptionErrorCode) & 0xFFFF0000u)) return false;
  if (arch::type_has_instruction_length(t)) {
    const uint32_t len = v.read32(VmcsField::VmEntryInstructionLen);
    if (len < 1 || len > 15) return false;
  }
  return true;
}

// The subset of Vol. 3C 27.3.1.5 "Checks on Guest Non-Register State" the model depends on.
// Returns 0 if fine, else a detail code (the entry fails with reason 33).
uint32_t Cpu::Impl::check_guest_state(Vmcs& v) {
  const uint32_t is = v.read32(VmcsField::GuestInterruptibilityInfo);
  const uint32_t act = v.read32(VmcsField::GuestActivityState);
  const uint64_t rfl = v.read(VmcsField::GuestRflags);
  if (is & intr::kReservedMask) return 1;
  if ((is & intr::kBlockingBySti) && (is & intr::kBlockingByMovSs)) return 2;
  if ((is & intr::kBlockingBySti) && !(rfl & arch::rflags::kIF)) return 3;
  if (act > static_cast<uint32_t>(arch::ActivityState::Hlt)) return 4;
  const arch::EntryIntrInfo e(v.read32(VmcsField::VmEntryIntrInfo));
  if (e.valid()) {
    if (e.type() == InterruptionType::ExternalInterrupt &&
        (!(rfl & arch::rflags::kIF) || (is & (intr::kBlockingBySti | intr::kBlockingByMovSs))))
      return 5;
    if (e.type() == InterruptionType::Nmi && (is & intr::kBlockingByMovSs)) return 6;
    if (e.type() == InterruptionType::Nmi &&
        (v.read32(VmcsField::PinBasedVmExecControl) & arch::pin_ctl::kVirtualNmis) && (is & intr::kBlockingByNmi))
      return 7;
  }
  if (!(v.read(VmcsField::GuestCr0) & arch::cr0::kPG) ||
      !(v.read32(VmcsField::VmEntryControls) & arch::entry_ctl::kIa32eModeGuest))
    return 8;  // the model runs 64-bit guests only
  return 0;
}

namespace {
// The VMCS guest-state fields of each segment register, Vol. 3C 25.4.1 "Guest Register State";
// one table for loading at VM entry and saving at VM exit.
struct SegFields {
  unsigned reg;
  VmcsField sel, base, limit, ar;
};
#define ES_SEG(i, S)                                                                         \
  {                                                                                          \
    i, VmcsField::Guest##S##Selector, VmcsField::Guest##S##Base, VmcsField::Guest##S##Limit, \
        VmcsField::Guest##S##ArBytes                                                         \
  }
constexpr SegFields kSegFields[] = {ES_SEG(kEs, Es), ES_SEG(kCs, Cs), ES_SEG(kSs, Ss),     ES_SEG(kDs, Ds),
                                    ES_SEG(kFs, Fs), ES_SEG(kGs, Gs), ES_SEG(kLdtr, Ldtr), ES_SEG(kTr, Tr)};
#undef ES_SEG
}  // namespace

void Cpu::Impl::load_guest(Vmcs& v, const GuestGprs& g) {
  std::memcpy(st_.gpr, g.r, sizeof st_.gpr);
  st_.gpr[4] = v.read(VmcsField::GuestRsp);
  // CR2 is not in the VMCS: the hypervisor's copy is loaded before entry (how an injected
  // #PF carries its fault address) and saved after exit, as KVM does around VMLAUNCH.
  cr2_ = g.cr2;
  st_.rip = v.read(VmcsField::GuestRip);
  st_.rflags = v.read(VmcsField::GuestRflags) | arch::rflags::kFixed1;
  st_.cr0 = v.read(VmcsField::GuestCr0);
  st_.cr3 = v.read(VmcsField::GuestCr3);
  st_.cr4 = v.read(VmcsField::GuestCr4);
  st_.efer = v.read(VmcsField::GuestIa32Efer);
  st_.dr7 = v.read(VmcsField::GuestDr7);
  for (const SegFields& f : kSegFields) {
    SegReg& s = st_.seg_reg(f.reg);
    s.sel = static_cast<uint16_t>(v.read(f.sel));
    s.base = v.read(f.base);
    s.limit = v.read32(f.limit);
    s.ar = v.read32(f.ar);
  }
  st_.gdtr_base = v.read(VmcsField::GuestGdtrBase);
  st_.gdtr_limit = v.read32(VmcsField::GuestGdtrLimit);
  st_.idtr_base = v.read(VmcsField::GuestIdtrBase);
  st_.idtr_limit = v.read32(VmcsField::GuestIdtrLimit);
  st_.intr = v.read32(VmcsField::GuestInterruptibilityInfo);
  st_.activity = v.read32(VmcsField::GuestActivityState);
  st_.pending_dbg = v.read(VmcsField::GuestPendingDbgExceptions);

  pin_ = v.read32(VmcsField::PinBasedVmExecControl);
  proc_ = v.read32(VmcsField::CpuBasedVmExecControl);
  proc2_ = (proc_ & arch::proc_ctl::kActivateSecondaryControls) ? v.read32(VmcsField::SecondaryVmExecControl) : 0;
  exit_ctl_ = v.read32(VmcsField::VmExitControls);
  entry_ctl_ = v.read32(VmcsField::VmEntryControls);
  exc_bitmap_ = v.read32(VmcsField::ExceptionBitmap);
  pfec_mask_ = v.read32(VmcsField::PageFaultErrorCodeMask);
  pfec_match_ = v.read32(VmcsField::PageFaultErrorCodeMatch);
  const uint64_t new_eptp = v.read(VmcsField::EptPointer);
  const bool new_ept_on = (proc2_ & arch::proc_ctl2::kEnableEpt) != 0;
  if (new_eptp != eptp_ || new_ept_on != ept_on_) {
    // A different EPT (another VMCS, nested guests): cached translations belong to the old one.
    flush_tlb();
    flush_decode();
  }
  eptp_ = new_eptp;
  ept_on_ = new_ept_on;
  cr0_mask_ = v.read(VmcsField::Cr0GuestHostMask);
  cr4_mask_ = v.read(VmcsField::Cr4GuestHostMask);
  cr0_shadow_ = v.read(VmcsField::Cr0ReadShadow);
  cr4_shadow_ = v.read(VmcsField::Cr4ReadShadow);
}

// Vol. 3C 28.3 "Saving Guest State".
void Cpu::Impl::save_guest(Vmcs& v, GuestGprs& g) {
  std::memcpy(g.r, st_.gpr, sizeof g.r);
  v.write(VmcsField::GuestRsp, st_.gpr[4]);
  g.cr2 = cr2_;
  v.write(VmcsField::GuestRip, st_.rip);
  v.write(VmcsField::GuestRflags, st_.rflags);
  v.write(VmcsField::GuestCr0, st_.cr0);
  v.write(VmcsField::GuestCr3, st_.cr3);
  v.write(VmcsField::GuestCr4, st_.cr4);
  if (exit_ctl_ & arch::exit_ctl::kSaveEfer) v.write(VmcsField::GuestIa32Efer, st_.efer);
  for (const SegFields& f : kSegFields) {
    const SegReg& s = st_.seg_reg(f.reg);
    v.write(f.sel, s.sel);
    v.write(f.base, s.base);
    v.write(f.limit, s.limit);
    v.write(f.ar, s.ar);
  }
  v.write(VmcsField::GuestGdtrBase, st_.gdtr_base);
  v.write(VmcsField::GuestGdtrLimit, st_.gdtr_limit);
  v.write(VmcsField::GuestIdtrBase, st_.idtr_base);
  v.write(VmcsField::GuestIdtrLimit, st_.idtr_limit);
  v.write(VmcsField::GuestInterruptibilityInfo, st_.intr);
  v.write(VmcsField::GuestActivityState, st_.activity);
  v.write(VmcsField::GuestPendingDbgExceptions, st_.pending_dbg);
}

// Writes the exit-information fields (Vol. 3C 28.2 "Recording VM-Exit Information and
// Updating VM-Entry Control Fields") and emits the VM_EXIT record.
void Cpu::Impl::finish_exit(ExitRecordInfo& out) {
  Vmcs& v = *vmcs_;
  PendingExit& x = exit_;
  const bool vectoring = (x.vectoring_info & arch::detail::kValidBit) != 0;
  // "NMI unblocking due to IRET" (28.2.2 for exit interruption info; Table 28-7 bit 12 for
  // EPT violations): the exit is due to a fault on IRET that removed (virtual-)NMI blocking.
  // Undefined when NMI exiting = 1 and virtual NMIs = 0, so left clear there.
  const bool nmi_bit_defined = !((pin_ & arch::pin_ctl::kNmiExiting) && !(pin_ & arch::pin_ctl::kVirtualNmis));
  if (iret_nmi_unblocked_ && x.nmi_unblock_candidate && !vectoring && nmi_bit_defined) {
    if (x.reason == static_cast<uint32_t>(arch::BasicExitReason::ExceptionOrNmi) &&
        (x.intr_info & arch::detail::kValidBit))
      x.intr_info |= arch::ExitIntrInfo::kNmiUnblockingBit;
    else if (x.reason == static_cast<uint32_t>(arch::BasicExitReason::EptViolation))
      x.qualification |= arch::EptViolationQual::kNmiUnblocking;
  }
  v.write(VmcsField::VmExitReason, x.reason);
  v.write(VmcsField::ExitQualification, x.qualification);
  v.write(VmcsField::GuestLinearAddress, x.guest_linear);
  v.write(VmcsField::GuestPhysicalAddress, x.guest_phys);
  v.write(VmcsField::VmExitIntrInfo, x.intr_info);
  v.write(VmcsField::VmExitIntrErrorCode, x.intr_error);
  v.write(VmcsField::IdtVectoringInfo, x.vectoring_info);
  v.write(VmcsField::IdtVectoringErrorCode, x.vectoring_error);
  v.write(VmcsField::VmExitInstructionLen, x.instr_len);
  // 28.2.5 (Updating VM-Entry Control Fields): the valid bit of the VM-entry
  // interruption-information field is cleared on every VM exit.
  v.write(VmcsField::VmEntryIntrInfo, v.read32(VmcsField::VmEntryIntrInfo) & ~arch::detail::kValidBit);
  now_ns_ += cfg_.transition_ns;
  out.stop = StopReason::VmExit;
  out.reason = arch::ExitReason(x.reason);
  out.vectoring_origin = vectoring ? x.vectoring_origin : 0;
  out.exit_event_origin = x.exit_event_origin;
  out.exit_id = bus_.next_id();
  if (bus_.enabled(ES_KIND_VM_EXIT)) {
    es_record r = new_record(ES_KIND_VM_EXIT, out.exit_id);
    r.reason = x.reason;
    r.qualification = x.qualification;
    r.guest_linear = x.guest_linear;
    r.guest_phys = x.guest_phys;
    r.intr_info = x.intr_info;
    r.intr_error = x.intr_error;
    r.idt_vectoring_info = x.vectoring_info;
    r.idt_vectoring_error = x.vectoring_error;
    r.instr_len = x.instr_len;
    r.rip = st_.rip;
    r.cause = x.cause ? x.cause : entry_id_;
    r.origin = vectoring ? x.vectoring_origin : x.exit_event_origin;
    uint8_t buf[15];
    const unsigned n = peek_insn_bytes(st_.rip, buf);
    if (n) {
      std::memcpy(r.bytes, buf, n);
      r.aux = n;
      r.flags |= ES_FLAG_BYTES_VALID;
    }
    bus_.emit(r);
  }
}

// Events at an instruction boundary, highest priority first (Vol. 3A 7.9 / 6.9 "Priority
// Among Concurrent Exceptions and Interrupts"; Vol. 3C 26.7.5 "Interrupt-Window Exiting and
// Virtual-Interrupt Delivery" and 26.7.6 "NMI-Window Exiting"): NMI-window exit, NMI (exit
// with NMI exiting, else delivery), interrupt-window exit, external interrupt (exit with
// external-interrupt exiting, else delivery). Returns true if something happened (an exit is
// pending, or an event was delivered and the loop must re-evaluate).
bool Cpu::Impl::boundary_events() {
  const uint32_t is = st_.intr;
  const bool movss = is & intr::kBlockingByMovSs;
  const bool shadow = is & (intr::kBlockingBySti | intr::kBlockingByMovSs);
  // NMI-window exiting: no virtual-NMI blocking and no blocking by MOV SS.
  if ((proc_ & arch::proc_ctl::kNmiWindowExiting) && !(is & intr::kBlockingByNmi) && !movss) {
    set_exit(static_cast<uint32_t>(arch::BasicExitReason::NmiWindow));
    return true;
  }
  // Vol. 3C 25.3: with NMI exiting / external-interrupt exiting, guest NMI blocking and
  // RFLAGS.IF no longer hold these events back, but blocking "for other reasons" still does:
  // an NMI waits out a MOV SS shadow, an external interrupt an STI or MOV SS shadow (Table 25-3),
  // so their VM exits come one instruction later (the sdm-movss-shadow guest sweeps this).
  if (host_nmi_pending_ && !movss) {
    if (pin_ & arch::pin_ctl::kNmiExiting) {
      // Vol. 3C 26.2: with NMI exiting an NMI causes a VM exit (not blocked by guest NMI blocking).
      host_nmi_pending_ = false;
      set_exit(static_cast<uint32_t>(arch::BasicExitReason::ExceptionOrNmi));
      exit_.intr_info = arch::ExitIntrInfo::make(arch::kNMI, InterruptionType::Nmi).raw();
      exit_.nmi_unblock_candidate = false;
      return true;
    }
    if (!(is & intr::kBlockingByNmi)) {
      host_nmi_pending_ = false;
      Event ev;
      ev.vector = arch::kNMI;
      ev.type = InterruptionType::Nmi;
      ev.return_rip = st_.rip;
      emit_raise(ev, entry_id_);
      deliver_chain(ev, false);
      return true;
    }
  }
  const bool if_open = (st_.rflags & arch::rflags::kIF) && !shadow;
  if ((proc_ & arch::proc_ctl::kInterruptWindowExiting) && if_open) {
    set_exit(static_cast<uint32_t>(arch::BasicExitReason::InterruptWindow));
    return true;
  }
  if (host_irq_at_ <= now_ns_ && !shadow) {
    if (pin_ & arch::pin_ctl::kExternalInterruptExiting) {
      // Vol. 3C 28.2.2: the vector is reported only with "acknowledge interrupt on exit";
      // the model hands the interrupt to the host either way (it is consumed).
      set_exit(static_cast<uint32_t>(arch::BasicExitReason::ExternalInterrupt));
      if (exit_ctl_ & arch::exit_ctl::kAckInterruptOnExit)
        exit_.intr_info = arch::ExitIntrInfo::make(host_irq_vector_, InterruptionType::ExternalInterrupt).raw();
      exit_.nmi_unblock_candidate = false;
      host_irq_at_ = ~0ull;
      return true;
    }
    if (if_open) {
      host_irq_at_ = ~0ull;
      Event ev;
      ev.vector = host_irq_vector_;
      ev.type = InterruptionType::ExternalInterrupt;
      ev.return_rip = st_.rip;
      emit_raise(ev, entry_id_);
      deliver_chain(ev, false);
      return true;
    }
  }
  return false;
}

Flow Cpu::Impl::step() {
  // Instruction fetch through the TLB, then the decoded-instruction cache keyed by the
  // guest-physical address of the instruction.
  const uint64_t rip = st_.rip;
  const uint64_t hpa = translate(rip, Access::Fetch, user_mode());
  const TlbEntry& t = tlb_[(rip >> 12) % kTlbSize];
  const uint64_t gpa = t.gpa_page | (rip & 0xFFF);
  const uint64_t hpage = hpa >> 12;
  DecodeCacheEntry& ce = dcache_[(gpa ^ (gpa >> 12)) % kDecodeCacheSize];
  const DecodedInsn* d;
  DecodedInsn local;
  if (ce.gpa == gpa && hpage < page_gen_.size() && ce.gen == page_gen_[hpage]) {
    d = &ce.insn;
  } else {
    uint8_t bytes[15];
    const unsigned first = std::min<unsigned>(15, 4096 - static_cast<unsigned>(rip & 0xFFF));
    std::memcpy(bytes, mem_.ptr(hpa, first), first);
    local = decode(bytes, first);
    if (local.status == DecodedInsn::Status::Truncated && first < 15) {
      // The instruction continues on the next page: fetch it (may fault there).
      const uint64_t hpa2 = translate(rip + first, Access::Fetch, user_mode());
      std::memcpy(bytes + first, mem_.ptr(hpa2, 15 - first), 15 - first);
      local = decode(bytes, 15);
      d = &local;
    } else if (first == 15 || local.status != DecodedInsn::Status::Truncated) {
      if (rip + local.len <= ((rip | 0xFFF) + 1) && hpage < page_gen_.size()) {
        ce.gpa = gpa;
        ce.gen = page_gen_[hpage];
        ce.insn = local;
        code_page_[hpage] = 1;
        d = &ce.insn;
      } else {
        d = &local;
      }
    } else {
      d = &local;
    }
    if (d->status == DecodedInsn::Status::Unsupported) {
      uint8_t b2[15];
      const unsigned n = peek_insn_bytes(rip, b2);
      internal_error(ES_ERROR_UNIMPLEMENTED_INSN, 0, b2, n);
      return Flow::Exit;
    }
  }
  if (d->status != DecodedInsn::Status::Ok) raise_ud();
  cur_insn_ = d;
  next_rip_ = rip + d->len;
  const uint32_t shadow_before = st_.intr & (intr::kBlockingBySti | intr::kBlockingByMovSs);
  const Flow f = execute(*d);
  if (f == Flow::Exit) return f;
  // Retire: STI / MOV SS blocking lasts for exactly one instruction (Table 25-3).
  st_.intr &= ~shadow_before;
  st_.rip = next_rip_;
  ++insns_;
  now_ns_ += cfg_.insn_ns;
  return f;
}

void Cpu::Impl::run(const EntryContext& ctx, bool inject) {
  try {
    if (inject) {
      // Vol. 3C 27.6 "Event Injection": the injected event is delivered after guest state is
      // loaded, as if it occurred right after entry; the exception bitmap does not apply to
      // it (27.6.1.2), only to faults encountered while delivering it.
      Vmcs& v = *vmcs_;
      const arch::EntryIntrInfo e(v.read32(VmcsField::VmEntryIntrInfo));
      Event ev;
      ev.vector = e.vector();
      ev.type = e.type();
      ev.has_error = e.deliver_error_code();
      ev.error = ev.has_error ? v.read32(VmcsField::VmEntryExceptionErrorCode) : 0;
      ev.instr_len = arch::type_has_instruction_length(ev.type)
                         ? static_cast<uint8_t>(v.read32(VmcsField::VmEntryInstructionLen))
                         : 0;
      ev.return_rip = st_.rip + ev.instr_len;
      ev.injected = true;
      ev.raise_id = entry_id_;
      ev.origin = ctx.origin;
      // 27.6.1.2: an injected NMI with virtual NMIs sets virtual-NMI blocking (done by
      // delivery for every NMI); an injected #PF does not write CR2 (the VMM sets it).
      deliver_chain(ev, false);
    }
    for (;;) {
      if (insns_ >= max_insns_) return;
      if (stop_request_ && insns_ % kStopCheckInsns == 0 && stop_request_->load(std::memory_order_relaxed)) {
        stopped_ = true;
        return;
      }
      if (boundary_events()) {
        if (exit_pending_) return;
        continue;
      }
      if (st_.activity == static_cast<uint32_t>(arch::ActivityState::Hlt)) {
        // Vol. 3C 26.6.? "HLT" activity: wait for the next event. Time jumps to the next
        // host-interrupt deadline; with nothing pending the call ends (InsnLimit) and the
        // state is saved with activity HLT.
        if (host_irq_at_ != ~0ull && !host_nmi_pending_) {
          if (host_irq_at_ > now_ns_) now_ns_ = host_irq_at_;
          // The interrupt may still be masked (IF = 0, no exiting): then nothing can wake us.
          if (!(pin_ & arch::pin_ctl::kExternalInterruptExiting) && !(st_.rflags & arch::rflags::kIF)) return;
          continue;
        }
        return;
      }
      abort_kind_ = AbortKind::None;
      Flow f;
      try {
        f = step();
      } catch (const Abort&) {
        if (abort_kind_ != AbortKind::Exception) throw;
        // An exception from the instruction: a new chain, caused by this entry.
        Event ev = event_from_pending_exception();
        ev.return_rip = st_.rip;  // faults: the faulting instruction
        emit_raise(ev, entry_id_);
        deliver_chain(ev, true);
        iret_nmi_unblocked_ = false;
        continue;
      }
      iret_nmi_unblocked_ = false;
      if (f == Flow::Exit) return;
    }
  } catch (const Abort&) {
    // exit_pending_ or stop_internal_ tells the caller what happened.
  }
}

ExitRecordInfo Cpu::Impl::vm_entry(Vmcs& v, GuestGprs& g, const EntryContext& ctx) {
  ExitRecordInfo out;
  vmcs_ = &v;
  insns_ = 0;
  max_insns_ = ctx.max_insns;
  stop_request_ = ctx.stop;
  stopped_ = false;
  exit_pending_ = false;
  stop_internal_ = false;
  iret_nmi_unblocked_ = false;
  delivering_ = false;
  exit_ = {};
  if (!check_entry_controls(v)) {
    // VMfailValid with error 7 "VM entry with invalid control field(s)" (Vol. 3C 31.4).
    v.write(VmcsField::VmInstructionError, 7);
    out.stop = StopReason::EntryFailed;
    return out;
  }
  if (const uint32_t bad = check_guest_state(v); bad != 0) {
    // Vol. 3C 27.8 "VM-Entry Failures During or After Loading Guest State": exit reason 33
    // with bit 31 set; the guest-state area is not touched.
    pin_ = v.read32(VmcsField::PinBasedVmExecControl);
    exit_ = {};
    exit_.reason = static_cast<uint32_t>(arch::BasicExitReason::InvalidGuestState) | arch::ExitReason::kEntryFailure;
    exit_.qualification = 0;
    exit_.nmi_unblock_candidate = false;
    st_.rip = v.read(VmcsField::GuestRip);
    entry_id_ = 0;
    finish_exit(out);
    out.insns_retired = 0;
    (void)bad;
    return out;
  }
  load_guest(v, g);
  const arch::EntryIntrInfo inj(v.read32(VmcsField::VmEntryIntrInfo));
  entry_id_ = bus_.next_id();
  out.entry_id = entry_id_;
  if (bus_.enabled(ES_KIND_VM_ENTRY)) {
    es_record r = new_record(ES_KIND_VM_ENTRY, entry_id_);
    r.intr_info = inj.raw();
    r.intr_error = v.read32(VmcsField::VmEntryExceptionErrorCode);
    r.instr_len = v.read32(VmcsField::VmEntryInstructionLen);
    r.rip = st_.rip;
    r.cause = ctx.cause;
    r.origin = inj.valid() ? ctx.origin : 0;
    r.aux = v.read32(VmcsField::GuestInterruptibilityInfo);
    r.aux64 = v.read(VmcsField::GuestRflags);
    bus_.emit(r);
  }
  now_ns_ += cfg_.transition_ns;
  run(ctx, inj.valid());
  out.insns_retired = insns_;
  if (stop_internal_) {
    save_guest(v, g);
    out.stop = StopReason::InternalError;
    return out;
  }
  save_guest(v, g);
  if (exit_pending_) {
    finish_exit(out);
  } else {
    out.stop = stopped_ ? StopReason::Stopped : StopReason::InsnLimit;
    v.write(VmcsField::VmEntryIntrInfo, v.read32(VmcsField::VmEntryIntrInfo) & ~arch::detail::kValidBit);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Public API.

Cpu::Cpu(HostMemory& mem, probes::ProbeBus& bus, CpuConfig cfg) : impl_(std::make_unique<Impl>(mem, bus, cfg)) {}
Cpu::~Cpu() = default;

ExitRecordInfo Cpu::vm_entry(Vmcs& vmcs, GuestGprs& gprs, const EntryContext& ctx) {
  return impl_->vm_entry(vmcs, gprs, ctx);
}

void Cpu::set_host_interrupt(uint64_t at_ns, uint8_t vector) {
  impl_->host_irq_at_ = at_ns;
  impl_->host_irq_vector_ = vector;
}
void Cpu::raise_host_nmi() { impl_->host_nmi_pending_ = true; }
uint64_t Cpu::now_ns() const { return impl_->now_ns_; }
void Cpu::advance_time(uint64_t ns) { impl_->now_ns_ += ns; }
void Cpu::set_record_context(uint16_t vcpu, uint8_t level, uint8_t hv_level) {
  impl_->vcpu_ = vcpu;
  impl_->level_ = level;
  impl_->hv_level_ = hv_level;
}

bool Cpu::read_guest_phys(const Vmcs& vmcs, uint64_t gpa, void* out, uint64_t len) const {
  const uint64_t eptp = vmcs.read(VmcsField::EptPointer);
  const bool on = (vmcs.read32(VmcsField::CpuBasedVmExecControl) & arch::proc_ctl::kActivateSecondaryControls) &&
                  (vmcs.read32(VmcsField::SecondaryVmExecControl) & arch::proc_ctl2::kEnableEpt);
  auto* dst = static_cast<uint8_t*>(out);
  while (len > 0) {
    uint64_t hpa = 0;
    if (!impl_->probe_ept(eptp, on, gpa, hpa)) return false;
    const uint64_t chunk = std::min<uint64_t>(len, 4096 - (gpa & 0xFFF));
    const uint8_t* p = impl_->mem_.ptr(hpa, chunk);
    if (!p) return false;
    std::memcpy(dst, p, chunk);
    dst += chunk;
    gpa += chunk;
    len -= chunk;
  }
  return true;
}

bool Cpu::write_guest_phys(const Vmcs& vmcs, uint64_t gpa, const void* in, uint64_t len) {
  const uint64_t eptp = vmcs.read(VmcsField::EptPointer);
  const bool on = (vmcs.read32(VmcsField::CpuBasedVmExecControl) & arch::proc_ctl::kActivateSecondaryControls) &&
                  (vmcs.read32(VmcsField::SecondaryVmExecControl) & arch::proc_ctl2::kEnableEpt);
  auto* src = static_cast<const uint8_t*>(in);
  while (len > 0) {
    uint64_t hpa = 0;
    if (!impl_->probe_ept(eptp, on, gpa, hpa)) return false;
    const uint64_t chunk = std::min<uint64_t>(len, 4096 - (gpa & 0xFFF));
    uint8_t* p = impl_->mem_.ptr(hpa, chunk);
    if (!p) return false;
    std::memcpy(p, src, chunk);
    impl_->note_write(hpa, static_cast<unsigned>(chunk));
    src += chunk;
    gpa += chunk;
    len -= chunk;
  }
  return true;
}

bool Cpu::translate_linear(const Vmcs& vmcs, uint64_t gva, uint64_t& gpa_out) const {
  const uint64_t eptp = vmcs.read(VmcsField::EptPointer);
  const bool on = (vmcs.read32(VmcsField::CpuBasedVmExecControl) & arch::proc_ctl::kActivateSecondaryControls) &&
                  (vmcs.read32(VmcsField::SecondaryVmExecControl) & arch::proc_ctl2::kEnableEpt);
  return impl_->probe_linear(vmcs.read(VmcsField::GuestCr3), eptp, on, gva, gpa_out);
}

void Cpu::flush_caches() {
  impl_->flush_tlb();
  impl_->flush_decode();
}

}  // namespace es::hv
