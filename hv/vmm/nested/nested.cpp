// L0's half of nested VMX: the Vmm member functions that run L2 for L1.
//
// Vocabulary as in KVM: vmcs12 is L1's VMCS for L2 (L1's vmcs01_), vmcs02 the one L0 really
// runs L2 with, vmcs01 L0's own. L0 keeps one event queue; in guest mode it holds L2's
// events, exactly as KVM's vcpu->arch does while is_guest_mode().
#include <cstring>

#include "hv/arch/controls.h"
#include "hv/arch/exceptions.h"
#include "hv/cpu/guest_state.h"
#include "hv/vmm/guest_abi.h"
#include "hv/vmm/nested/nested_vmx.h"
#include "hv/vmm/vmm.h"

namespace es::hv {

using arch::BasicExitReason;
using arch::InterruptionType;
using arch::VmcsField;

VmxCpu* Vmm::attach_l1() {
  // L0's own controls, merged into every vmcs02 (no L1 guest runs on vmcs01 itself: L1 is the
  // native vmm code; its guest L2 runs on vmcs02).
  init_l0_controls(vmcs01_, ept_->eptp());
  vmcs01_.write(VmcsField::ExceptionBitmap, cfg_.exception_bitmap);
  populate_ept();  // out of host memory shows up later as an EPT-violation internal error
  nested_ = std::make_unique<NestedVmx>(*this);
  return nested_.get();
}

// KVM prepare_vmcs02(): L2's guest state and L1's wishes from vmcs12, what L0 itself needs
// from vmcs01 (its interrupt and NMI exiting, its EPT, acknowledge-on-exit).
void Vmm::prepare_vmcs02(const Vmcs& v12) {
  vmcs02_.clear();
  vmcs02_.copy_guest_state_from(v12);
  vmcs02_.write(VmcsField::PinBasedVmExecControl,
                vmcs01_.read(VmcsField::PinBasedVmExecControl) | v12.read(VmcsField::PinBasedVmExecControl));
  vmcs02_.write(VmcsField::CpuBasedVmExecControl,
                v12.read(VmcsField::CpuBasedVmExecControl) | arch::proc_ctl::kActivateSecondaryControls);
  vmcs02_.write(VmcsField::SecondaryVmExecControl, arch::proc_ctl2::kEnableEpt);
  vmcs02_.write(VmcsField::EptPointer, ept_->eptp());
  vmcs02_.write(VmcsField::ExceptionBitmap,
                vmcs01_.read(VmcsField::ExceptionBitmap) | v12.read(VmcsField::ExceptionBitmap));
  vmcs02_.write(VmcsField::PageFaultErrorCodeMask, v12.read(VmcsField::PageFaultErrorCodeMask));
  vmcs02_.write(VmcsField::PageFaultErrorCodeMatch, v12.read(VmcsField::PageFaultErrorCodeMatch));
  vmcs02_.write(VmcsField::VmExitControls, vmcs01_.read(VmcsField::VmExitControls));
  vmcs02_.write(VmcsField::VmEntryControls, v12.read(VmcsField::VmEntryControls));
  // The event L1 injects travels in vmcs02's VM-entry fields (nested VM entry merges them).
  vmcs02_.write(VmcsField::VmEntryIntrInfo, v12.read(VmcsField::VmEntryIntrInfo));
  vmcs02_.write(VmcsField::VmEntryExceptionErrorCode, v12.read(VmcsField::VmEntryExceptionErrorCode));
  vmcs02_.write(VmcsField::VmEntryInstructionLen, v12.read(VmcsField::VmEntryInstructionLen));
}

ExitRecordInfo Vmm::nested_vm_entry(Vmcs& v12, GuestGprs& gprs12, const EntryContext& ctx) {
  const arch::EntryIntrInfo inj(v12.read32(VmcsField::VmEntryIntrInfo));
  nested_entry_id_ = bus_.next_id();
  if (bus_.enabled(ES_KIND_NESTED_ENTRY)) {
    es_record r{};
    r.kind = ES_KIND_NESTED_ENTRY;
    r.id = nested_entry_id_;
    r.level = 2;
    r.hv_level = 1;
    r.time_ns = silicon_->now_ns();
    r.rip = v12.read(VmcsField::GuestRip);
    r.intr_info = inj.raw();
    r.intr_error = v12.read32(VmcsField::VmEntryExceptionErrorCode);
    r.instr_len = v12.read32(VmcsField::VmEntryInstructionLen);
    r.cause = ctx.cause;
    r.origin = inj.valid() ? ctx.origin : 0;
    r.aux = v12.read32(VmcsField::GuestInterruptibilityInfo);
    r.aux64 = v12.read(VmcsField::GuestRflags);
    // What L1 intercepts while L2 runs: the checker holds L0's own injections into L2 against it.
    r.qualification = v12.read32(VmcsField::ExceptionBitmap);
    r.guest_linear = v12.read32(VmcsField::PageFaultErrorCodeMask) |
                     (static_cast<uint64_t>(v12.read32(VmcsField::PageFaultErrorCodeMatch)) << 32);
    bus_.emit(r);
  }
  prepare_vmcs02(v12);
  vmcs12_ = &v12;
  cur_ = &vmcs02_;
  gprs_cur_ = &gprs12;
  guest_mode_ = true;
  silicon_->set_record_context(0, /*level=*/2, /*hv_level=*/0);
  last_decision_ = nested_entry_id_;
  // L1's injection is now in flight on vmcs02: if an exit L0 handles interrupts its
  // delivery, L0's complete_interrupts requeues it for L2 (KVM: vmx_complete_interrupts in
  // guest mode), and L1 never hears of it.
  last_injected_.reset();
  inject_origin_ = 0;
  if (inj.valid()) {
    QueuedEvent e;
    e.info = inj;
    e.error_code = v12.read32(VmcsField::VmEntryExceptionErrorCode);
    e.instr_len = v12.read32(VmcsField::VmEntryInstructionLen);
    e.cr2 = gprs12.cr2;
    e.origin = ctx.origin;
    last_injected_ = e;
    inject_origin_ = ctx.origin;
  }
  running_ = true;  // L0 has no run loop of its own when nested: it runs for each nested entry
  ExitRecordInfo out = run_l2(ctx.max_insns, ctx.stop);
  guest_mode_ = false;
  cur_ = &vmcs01_;
  gprs_cur_ = &gprs_;
  vmcs12_ = nullptr;
  silicon_->set_record_context(0, level_, hv_level_);
  return out;
}

bool Vmm::l1_interrupt_due() const { return l1_irq_at_ != ~0ull && silicon_->now_ns() >= l1_irq_at_; }

// An event for L2 that L0 holds in flight: injected into vmcs02 and not yet entered, or
// requeued from IDT-vectoring by complete_interrupts.
bool Vmm::l2_event_in_flight() const {
  return (vmcs02_.read32(VmcsField::VmEntryIntrInfo) & arch::detail::kValidBit) || ev_.exception.has_value() ||
         ev_.nmi_injected.has_value() || ev_.interrupt_injected.has_value();
}

// KVM nested_vmx_reflect_vmexit() / nested_vmx_l1_wants_exit(): does vmcs12 ask for this exit?
bool Vmm::l1_wants_exit(const ExitRecordInfo& exit) const {
  const Vmcs& v12 = *vmcs12_;
  const uint32_t pin12 = v12.read32(VmcsField::PinBasedVmExecControl);
  const uint32_t proc12 = v12.read32(VmcsField::CpuBasedVmExecControl);
  switch (exit.reason.basic()) {
    case BasicExitReason::ExceptionOrNmi: {
      const arch::ExitIntrInfo info(vmcs02_.read32(VmcsField::VmExitIntrInfo));
      if (info.type() == InterruptionType::Nmi) return false;  // a physical NMI is the host's
      if (!(v12.read32(VmcsField::ExceptionBitmap) & (1u << info.vector()))) return false;
      if (info.vector() == arch::kPF) {
        // Vol. 3C 26.2 "Other Causes of VM Exits": #PF is selected by the error-code
        // mask/match when its bitmap bit is set.
        const uint32_t err = vmcs02_.read32(VmcsField::VmExitIntrErrorCode);
        const uint32_t mask = v12.read32(VmcsField::PageFaultErrorCodeMask);
        const uint32_t match = v12.read32(VmcsField::PageFaultErrorCodeMatch);
        return (err & mask) == match;
      }
      return true;
    }
    case BasicExitReason::ExternalInterrupt:
      return l1_interrupt_due() && (pin12 & arch::pin_ctl::kExternalInterruptExiting);
    case BasicExitReason::TripleFault: return true;
    case BasicExitReason::InterruptWindow: return proc12 & arch::proc_ctl::kInterruptWindowExiting;
    case BasicExitReason::NmiWindow: return proc12 & arch::proc_ctl::kNmiWindowExiting;
    case BasicExitReason::Hlt: return proc12 & arch::proc_ctl::kHltExiting;
    case BasicExitReason::IoInstruction: return proc12 & arch::proc_ctl::kUnconditionalIoExiting;
    case BasicExitReason::EptViolation:
    case BasicExitReason::EptMisconfig: return false;  // L1 does not use EPT: L0's own tables
    default: return true;                              // CPUID, VMCALL, MSRs, ...: always L1's
  }
}

// KVM nested_vmx_vmexit() with prepare_vmcs12() and vmcs12_save_pending_event().
ExitRecordInfo Vmm::nested_vm_exit(arch::ExitReason reason, uint64_t qualification, uint32_t exit_intr_info,
                                   uint32_t exit_intr_error, uint32_t instr_len, uint64_t cause,
                                   uint64_t exit_event_origin) {
  Vmcs& v12 = *vmcs12_;
  // An event still in flight for L2 is handed to L1 in vmcs12's IDT-vectoring field, and L0
  // forgets it: it is L1's to reinject (Vol. 3C 28.2.4 semantics, as KVM emulates them).
  std::optional<QueuedEvent> pending;
  if (vmcs02_.read32(VmcsField::VmEntryIntrInfo) & arch::detail::kValidBit) {
    pending = last_injected_;  // written to vmcs02, never entered
    if (pending)
      decide(ES_DECISION_CANCEL_INJECTION, last_decision_, pending->origin, pending->info.raw(), pending->error_code);
    vmcs02_.write(VmcsField::VmEntryIntrInfo, 0);
  } else if (ev_.exception && ev_.exception_injected) {
    pending = ev_.exception;
  } else if (ev_.nmi_injected) {
    pending = ev_.nmi_injected;
  } else if (ev_.interrupt_injected) {
    pending = ev_.interrupt_injected;
  }
  ev_.exception.reset();
  ev_.exception_injected = false;
  ev_.nmi_injected.reset();
  ev_.interrupt_injected.reset();
  last_injected_.reset();
  const arch::IdtVectoringInfo vec = pending ? arch::to_idt_vectoring(pending->info) : arch::IdtVectoringInfo{};
  const uint64_t vectoring_origin = pending ? pending->origin : 0;

  v12.copy_guest_state_from(vmcs02_);
  v12.write(VmcsField::VmExitReason, reason.raw());
  v12.write(VmcsField::ExitQualification, qualification);
  v12.write(VmcsField::VmExitIntrInfo, exit_intr_info);
  v12.write(VmcsField::VmExitIntrErrorCode, exit_intr_error);
  v12.write(VmcsField::IdtVectoringInfo, vec.raw());
  v12.write(VmcsField::IdtVectoringErrorCode, pending ? pending->error_code : 0);
  v12.write(VmcsField::VmExitInstructionLen,
            pending && arch::type_has_instruction_length(vec.type()) ? pending->instr_len : instr_len);
  v12.write(VmcsField::GuestLinearAddress, vmcs02_.read(VmcsField::GuestLinearAddress));
  v12.write(VmcsField::GuestPhysicalAddress, vmcs02_.read(VmcsField::GuestPhysicalAddress));
  // Vol. 3C 28.2: every VM exit clears the valid bit of the VM-entry interruption info.
  v12.clear_bits(VmcsField::VmEntryIntrInfo, arch::detail::kValidBit);
  if (reason.is(BasicExitReason::ExternalInterrupt)) l1_irq_at_ = ~0ull;  // acknowledged

  const uint64_t id = bus_.next_id();
  if (bus_.enabled(ES_KIND_NESTED_EXIT)) {
    es_record r{};
    r.kind = ES_KIND_NESTED_EXIT;
    r.id = id;
    r.level = 2;
    r.hv_level = 0;
    r.time_ns = silicon_->now_ns();
    r.reason = reason.raw();
    r.qualification = qualification;
    r.intr_info = exit_intr_info;
    r.intr_error = exit_intr_error;
    r.idt_vectoring_info = vec.raw();
    r.idt_vectoring_error = pending ? pending->error_code : 0;
    r.instr_len = static_cast<uint32_t>(v12.read(VmcsField::VmExitInstructionLen));
    r.rip = v12.read(VmcsField::GuestRip);
    r.guest_linear = v12.read(VmcsField::GuestLinearAddress);
    r.guest_phys = v12.read(VmcsField::GuestPhysicalAddress);
    r.cause = cause;
    r.origin = vec.valid() ? vectoring_origin : exit_event_origin;
    bus_.emit(r);
  }
  ExitRecordInfo out;
  out.stop = StopReason::VmExit;
  out.reason = reason;
  out.entry_id = nested_entry_id_;
  out.exit_id = id;
  out.vectoring_origin = vectoring_origin;
  out.exit_event_origin = exit_event_origin;
  return out;
}

// Pass a silicon exit of L2 to L1 as it is.
ExitRecordInfo Vmm::reflect(const ExitRecordInfo& exit) {
  decide(ES_DECISION_REFLECT_TO_L1, exit.exit_id,
         exit.vectoring_origin ? exit.vectoring_origin : exit.exit_event_origin, 0, 0, 0, exit.reason.raw());
  uint32_t exit_intr = vmcs02_.read32(VmcsField::VmExitIntrInfo);
  if (exit.reason.is(BasicExitReason::ExternalInterrupt)) {
    // The interrupt is L1's (its timer): with acknowledge-on-exit in vmcs12 L1 gets its vector.
    const bool ack = vmcs12_->read32(VmcsField::VmExitControls) & arch::exit_ctl::kAckInterruptOnExit;
    exit_intr = ack ? arch::ExitIntrInfo::make(l1_irq_vector_, InterruptionType::ExternalInterrupt).raw() : 0;
  }
  return nested_vm_exit(exit.reason, vmcs02_.read(VmcsField::ExitQualification), exit_intr,
                        vmcs02_.read32(VmcsField::VmExitIntrErrorCode), vmcs02_.read32(VmcsField::VmExitInstructionLen),
                        exit.exit_id, exit.exit_event_origin);
}

// Seed "async_pf: force a nested vmexit if the injected #PF is async_pf": L2 touched a page
// the host swapped out. KVM does not block the vCPU; it tells the guest with an asynchronous
// #PF (CR2 = a token) and brings the page in meanwhile. While L2 runs and L1 intercepts #PF,
// that #PF is L1's business (it manages L2's memory): it becomes a nested VM exit to L1, not
// an injection into L2 (KVM nested_vmx_check_exception for async_page_fault).
std::optional<ExitRecordInfo> Vmm::async_page_fault(const ExitRecordInfo& exit) {
  async_pf_sent_ = true;
  constexpr uint64_t kToken = 0x1001;  // KVM's token: (async-PF id << 12) | vCPU id
  const uint64_t gpa = vmcs02_.read(VmcsField::GuestPhysicalAddress) & ~(HostMemory::kPageSize - 1);
  const arch::EntryIntrInfo pf = arch::EntryIntrInfo::make(arch::kPF, InterruptionType::HardwareException, true);
  const uint64_t raise = bus_.next_id();
  if (bus_.enabled(ES_KIND_RAISE)) {
    es_record r = base_record(ES_KIND_RAISE);
    r.id = raise;
    r.cause = exit.exit_id;
    r.origin = raise;
    r.intr_info = pf.raw();
    r.guest_linear = kToken;
    r.guest_phys = gpa;
    bus_.emit(r);
  }
  // The swap-in completes while the guest does something else: the page is there for its retry.
  ept_->map_page(gpa, ram_hpa_ + gpa);
  silicon_->flush_caches();
  decide(ES_DECISION_EPT_MAP, raise, raise, 0, 0, gpa);
  const Vmcs& v12 = *vmcs12_;
  const uint32_t error_code = 0;  // what KVM injects with an async #PF
  const bool l1_intercepts =
      (v12.read32(VmcsField::ExceptionBitmap) & (1u << arch::kPF)) &&
      (error_code & v12.read32(VmcsField::PageFaultErrorCodeMask)) == v12.read32(VmcsField::PageFaultErrorCodeMatch);
  if (l1_intercepts && !cfg_.bug_async_pf_into_l2) {
    const uint64_t d = decide(ES_DECISION_REFLECT_TO_L1, raise, raise, pf.raw(), 0, 0,
                              static_cast<uint32_t>(BasicExitReason::ExceptionOrNmi), kToken);
    return nested_vm_exit(arch::ExitReason(BasicExitReason::ExceptionOrNmi), kToken,
                          arch::ExitIntrInfo::make(arch::kPF, InterruptionType::HardwareException, true).raw(), 0, 0, d,
                          raise);
  }
  // L1 does not intercept #PF (or the old bug): inject it into L2, CR2 = the token.
  QueuedEvent q;
  q.info = pf;
  q.cr2 = kToken;
  q.origin = raise;
  queue_exception(q, raise);
  return std::nullopt;
}

// An L2 exit L0 keeps: its own EPT, a physical NMI, its own kick, a window it opened.
bool Vmm::handle_in_l0(const ExitRecordInfo& exit) {
  decide(ES_DECISION_HANDLE_IN_L0, exit.exit_id, exit.vectoring_origin ? exit.vectoring_origin : exit.exit_event_origin,
         0, 0, 0, exit.reason.raw());
  switch (exit.reason.basic()) {
    case BasicExitReason::EptViolation: return handle_ept_violation(exit);
    case BasicExitReason::ExceptionOrNmi: return handle_exception_or_nmi(exit);
    case BasicExitReason::ExternalInterrupt:
    case BasicExitReason::InterruptWindow:
    case BasicExitReason::NmiWindow: return true;
    default: return unexpected_exit(exit);
  }
}

// L0's run loop while L1's guest runs (KVM: vcpu_run in guest mode + vmx_check_nested_events).
ExitRecordInfo Vmm::run_l2(uint64_t max_insns, const std::atomic<bool>* stop) {
  uint64_t insns = 0;
  for (;;) {
    // Exits L0 keeps (EPT violations, ...) never reach L1's loop: a stop is seen here too.
    if (stop && stop->load(std::memory_order_relaxed)) {
      ExitRecordInfo out;
      out.stop = StopReason::Stopped;
      out.insns_retired = insns;
      return out;
    }
    if (l1_interrupt_due() &&
        (vmcs12_->read32(VmcsField::PinBasedVmExecControl) & arch::pin_ctl::kExternalInterruptExiting)) {
      if (!l2_event_in_flight() || cfg_.bug_exit_with_vectoring) {
        // Exit to L1 now. With an event still in flight this is the old, wrong behaviour:
        // EXTERNAL_INTERRUPT with valid IDT-vectoring, which hardware never produces.
        const bool ack = vmcs12_->read32(VmcsField::VmExitControls) & arch::exit_ctl::kAckInterruptOnExit;
        const uint32_t info =
            ack ? arch::ExitIntrInfo::make(l1_irq_vector_, InterruptionType::ExternalInterrupt).raw() : 0;
        const uint64_t d = decide(ES_DECISION_REFLECT_TO_L1, last_decision_, 0, info, 0, 0,
                                  static_cast<uint32_t>(BasicExitReason::ExternalInterrupt));
        ExitRecordInfo out = nested_vm_exit(arch::ExitReason(BasicExitReason::ExternalInterrupt), 0, info, 0, 0, d, 0);
        out.insns_retired = insns;
        return out;
      }
      // Seed "nested VMX interrupt injection while IDT-vectoring is valid": finish L2's
      // vectored delivery first — re-enter L2 with the event and an immediate exit — and exit
      // to L1 with EXTERNAL_INTERRUPT afterwards (KVM: KVM_REQ_IMMEDIATE_EXIT).
      if (!immediate_exit_) {
        const std::optional<QueuedEvent>& in_flight = ev_.exception      ? ev_.exception
                                                      : ev_.nmi_injected ? ev_.nmi_injected
                                                                         : ev_.interrupt_injected;
        decide(ES_DECISION_IMMEDIATE_EXIT, last_decision_, in_flight ? in_flight->origin : 0,
               in_flight ? in_flight->info.raw() : 0, 0, 0, l1_irq_vector_);
        immediate_exit_ = true;
      }
    }
    check_and_inject_events();
    if (!running_) {
      ExitRecordInfo out;
      out.stop = StopReason::InternalError;
      out.insns_retired = insns;
      return out;
    }
    // The silicon's single host-interrupt deadline serves L1's timer and L0's kick.
    silicon_->set_host_interrupt(immediate_exit_ ? silicon_->now_ns() : l1_irq_at_, l1_irq_vector_);
    EntryContext ctx;
    ctx.cause = last_decision_;
    ctx.origin = inject_origin_;
    ctx.max_insns = max_insns > insns ? max_insns - insns : 0;
    ctx.stop = stop;
    if (ctx.max_insns == 0) {
      ExitRecordInfo out;
      out.stop = StopReason::InsnLimit;
      out.insns_retired = insns;
      return out;
    }
    const ExitRecordInfo exit = silicon_->vm_entry(vmcs02_, *gprs_cur_, ctx);
    insns += exit.insns_retired;
    immediate_exit_ = false;
    inject_origin_ = 0;
    if (exit.stop != StopReason::VmExit) {
      ExitRecordInfo out = exit;
      out.insns_retired = insns;
      return out;
    }
    ++silicon_exits_;
    complete_interrupts(exit);
    // An exit L0 keeps (its EPT violations, its #PF fixes, windows it opened) resumes L2 from
    // here: L0 restores NMI blocking in vmcs02 itself. An exit reflected to L1 reaches vmcs12
    // as the silicon saved it (blocking clear, bit 12 set) and L1's own handler restores it.
    // KVM's vmx_recover_nmi_blocking runs before the reflect decision, so its L1 finds
    // blocking already set in vmcs12; L2 resumes the same either way.
    if (!l1_wants_exit(exit)) recover_nmi_blocking(exit);
    if (exit.reason.is(BasicExitReason::EptViolation) && !async_pf_sent_ && cfg_.async_pf_gpa != ~0ull &&
        (vmcs02_.read(VmcsField::GuestPhysicalAddress) >> 12) == (cfg_.async_pf_gpa >> 12)) {
      if (auto out = async_page_fault(exit)) {
        out->insns_retired = insns;
        return *out;
      }
      silicon_->advance_time(cfg_.exit_handling_ns);
      continue;
    }
    if (l1_wants_exit(exit)) {
      ExitRecordInfo out = reflect(exit);
      out.insns_retired = insns;
      return out;
    }
    if (!handle_in_l0(exit)) {
      ExitRecordInfo out;
      out.stop = StopReason::InternalError;
      out.insns_retired = insns;
      return out;
    }
    silicon_->advance_time(cfg_.exit_handling_ns);
  }
}

}  // namespace es::hv
