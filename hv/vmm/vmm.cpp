#include "hv/vmm/vmm.h"

#include <algorithm>
#include <bit>
#include <utility>
#include <cstring>

#include "hv/arch/controls.h"
#include "hv/arch/exceptions.h"
#include "hv/arch/exit_qualification.h"
#include "hv/cpu/guest_state.h"
#include "hv/vmm/guest_abi.h"
#include "hv/vmm/loader.h"
#include "hv/vmm/nested/nested_vmx.h"

namespace es::hv {

using arch::BasicExitReason;
using arch::EntryIntrInfo;
using arch::InterruptionType;
using arch::VmcsField;

namespace {
constexpr uint64_t kHostMemory = 64ull << 20;  // guest RAM + L0 structures
constexpr uint64_t kRamHpa = 16ull << 20;      // guest RAM lives at [16 MiB, 32 MiB) of host memory
}  // namespace

Vmm::Vmm(probes::ProbeBus& bus, VmmConfig cfg) : bus_(bus), cfg_(std::move(cfg)), policy_(make_policy(cfg_.policy)) {
  if (!policy_) policy_ = make_policy("default");
  own_mem_ = std::make_unique<HostMemory>(kHostMemory);
  mem_ = own_mem_.get();
  silicon_ = std::make_unique<Cpu>(*mem_, bus_, cfg_.cpu);
  cpu_ = silicon_.get();
  ram_hpa_ = kRamHpa;
  mem_->reserve_below(ram_hpa_ + guest_abi::kRamSize);
  ept_.emplace(*mem_);
  level_ = 1;
  hv_level_ = 0;
  install_handlers();
  silicon_->set_record_context(/*vcpu=*/0, level_, hv_level_);
}

Vmm::Vmm(probes::ProbeBus& bus, VmmConfig cfg, Vmm& l0)
    : bus_(bus), cfg_(std::move(cfg)), policy_(make_policy(cfg_.policy)), l0_(&l0) {
  if (!policy_) policy_ = make_policy("default");
  mem_ = l0.mem_;
  ram_hpa_ = l0.ram_hpa_;  // L1's guest-physical memory is L0's guest RAM; L2 lives in it
  cpu_ = l0.attach_l1();
  level_ = 2;
  hv_level_ = 1;
  install_handlers();
}

void Vmm::install_handlers() {
  handlers_.fill(&Vmm::unexpected_exit);
  auto set = [&](BasicExitReason r, ExitHandler h) { handlers_[static_cast<uint16_t>(r)] = h; };
  set(BasicExitReason::ExceptionOrNmi, &Vmm::handle_exception_or_nmi);
  set(BasicExitReason::ExternalInterrupt, &Vmm::handle_external_interrupt);
  set(BasicExitReason::TripleFault, &Vmm::handle_triple_fault);
  set(BasicExitReason::InterruptWindow, &Vmm::handle_interrupt_window);
  set(BasicExitReason::NmiWindow, &Vmm::handle_nmi_window);
  set(BasicExitReason::Cpuid, &Vmm::handle_cpuid);
  set(BasicExitReason::Hlt, &Vmm::handle_hlt);
  set(BasicExitReason::Vmcall, &Vmm::handle_vmcall);
  set(BasicExitReason::IoInstruction, &Vmm::handle_io_instruction);
  set(BasicExitReason::MsrRead, &Vmm::handle_msr_read);
  set(BasicExitReason::MsrWrite, &Vmm::handle_msr_write);
  set(BasicExitReason::EptViolation, &Vmm::handle_ept_violation);
}

Vmm::~Vmm() = default;

bool Vmm::load(std::span<const uint8_t> image, std::string& error) {
  LoadedImage img;
  if (!load_guest_image(image, *mem_, ram_hpa_, img, error)) return false;
  build_guest_environment(*mem_, ram_hpa_, img.entry, vmcs01_);
  if (ept_) {
    init_l0_controls(vmcs01_, ept_->eptp());
  } else {
    // L1 gives L2 its own guest-physical memory directly (no EPT of its own): L0's EPT backs it.
    init_l0_controls(vmcs01_, 0);
    vmcs01_.clear_bits(VmcsField::SecondaryVmExecControl, arch::proc_ctl2::kEnableEpt);
  }
  vmcs01_.write(VmcsField::ExceptionBitmap, cfg_.exception_bitmap);
  gprs_.r[GuestGprs::RDI] = cfg_.guest_arg;
  if (!populate_ept()) {
    error = "host memory for EPT tables ran out";
    return false;
  }
  return true;
}

// --eager-ept: map all guest RAM up front instead of on first touch.
bool Vmm::populate_ept() {
  if (!cfg_.eager_ept || !ept_) return true;
  for (uint64_t gpa = 0; gpa < guest_abi::kRamSize; gpa += HostMemory::kPageSize)
    if (!ept_->map_page(gpa, ram_hpa_ + gpa)) return false;
  return true;
}

// ---------------------------------------------------------------- records

es_record Vmm::base_record(uint16_t kind) const {
  es_record r{};
  r.version = ES_RECORD_VERSION;
  r.kind = kind;
  r.level = guest_mode_ ? 2 : level_;  // in guest mode L0 decides about L2
  r.hv_level = hv_level_;
  r.vcpu = 0;
  r.time_ns = cpu_->now_ns();
  r.rip = cur_->read(VmcsField::GuestRip);
  return r;
}

uint64_t Vmm::decide(uint32_t reason, uint64_t cause, uint64_t origin, uint32_t intr_info, uint32_t error, uint64_t gpa,
                     uint32_t aux, uint64_t aux64) {
  const uint64_t id = bus_.next_id();
  if (bus_.enabled(ES_KIND_DECISION)) {
    es_record r = base_record(ES_KIND_DECISION);
    r.id = id;
    r.reason = reason;
    r.cause = cause;
    r.origin = origin;
    r.intr_info = intr_info;
    r.intr_error = error;
    r.guest_phys = gpa;
    r.aux = aux;
    r.aux64 = aux64;
    bus_.emit(r);
  }
  last_decision_ = id;
  return id;
}

// Console records carry the guest's bytes as written, newlines included, up to 16 a record;
// a chunk ends at a newline or when full, so replay joins them and splits lines on '\n'.
void Vmm::console_byte(uint8_t c) {
  result_.console.push_back(static_cast<char>(c));
  console_line_.push_back(static_cast<char>(c));
  if (c == '\n' || console_line_.size() == sizeof(es_record::bytes)) flush_console();
}

void Vmm::flush_console() {
  if (console_line_.empty()) return;
  if (bus_.enabled(ES_KIND_CONSOLE)) {
    es_record r = base_record(ES_KIND_CONSOLE);
    r.aux = static_cast<uint32_t>(console_line_.size());
    std::memcpy(r.bytes, console_line_.data(), console_line_.size());
    bus_.emit(r);
  }
  console_line_.clear();
}

void Vmm::dump_vmcs(uint64_t cause) {
  // KVM's dump_vmcs: every non-zero field as a context record (aux = encoding, aux64 = value).
  if (!bus_.enabled(ES_KIND_CONTEXT)) return;
  for (size_t i = 0; i < arch::kVmcsFieldCount; ++i) {
    const auto f = arch::vmcs_field_at(static_cast<arch::VmcsIndex>(i));
    const uint64_t v = cur_->read(f);
    if (v == 0) continue;
    es_record r = base_record(ES_KIND_CONTEXT);
    r.cause = cause;
    r.aux = static_cast<uint32_t>(f);
    r.aux64 = v;
    bus_.emit(r);
  }
}

void Vmm::end_run(uint32_t reason, uint64_t cause, std::string message) {
  running_ = false;
  result_.end_reason = reason;
  if (!message.empty()) result_.message = std::move(message);
  if (bus_.enabled(ES_KIND_RUN_END)) {
    es_record r = base_record(ES_KIND_RUN_END);
    r.reason = reason;
    r.cause = cause;
    r.aux = result_.guest_exit_code;
    r.aux64 = result_.exits;
    bus_.emit(r);
  }
}

// ---------------------------------------------------------------- event sources

// A source raised `info`: the root of a new chain. Returns its record id (= the chain).
uint64_t Vmm::emit_raise(EntryIntrInfo info, uint64_t cause) {
  const uint64_t id = bus_.next_id();
  if (bus_.enabled(ES_KIND_RAISE)) {
    es_record r = base_record(ES_KIND_RAISE);
    r.id = id;
    r.cause = cause;
    r.origin = id;
    r.intr_info = info.raw();
    bus_.emit(r);
  }
  return id;
}

void Vmm::raise_irq(uint8_t vector, uint64_t cause) {
  const EntryIntrInfo info = EntryIntrInfo::make(vector, InterruptionType::ExternalInterrupt);
  const uint64_t id = emit_raise(info, cause);
  if (ev_.irr[vector / 64] & (1ull << (vector % 64))) {
    // The virtual interrupt controller holds one request per vector: a second edge before the
    // first is taken coalesces with it, as on a local APIC (IRR is a bit, not a counter).
    decide(ES_DECISION_DISCARD, id, id, info.raw(), 0, 0, /*aux: coalesced*/ 1);
    return;
  }
  set_irr(vector, id);
  decide(ES_DECISION_QUEUE_IRQ, id, id, info.raw());
  ev_.deferred_noted = false;
}

void Vmm::raise_nmi(uint64_t cause) {
  const EntryIntrInfo info = EntryIntrInfo::make(arch::kNMI, InterruptionType::Nmi);
  const uint64_t id = emit_raise(info, cause);
  // KVM process_nmi(): at most two NMIs outstanding (one being handled or injected, one
  // latched); further NMIs collapse, as they do on hardware (Vol. 3A 6.7.1).
  const bool in_progress = ev_.nmi_injected.has_value() || (cur_->read32(VmcsField::GuestInterruptibilityInfo) &
                                                            arch::interruptibility::kBlockingByNmi);
  const unsigned limit = in_progress ? 1 : 2;
  if (ev_.nmi_pending >= limit) {
    decide(ES_DECISION_DISCARD, id, id, info.raw(), 0, 0, /*aux: NMI collapsed*/ 2);
    return;
  }
  ev_.nmi_origins[ev_.nmi_pending++] = id;
  decide(ES_DECISION_QUEUE_NMI, id, id, info.raw());
  ev_.deferred_noted = false;
}

void Vmm::queue_exception(const QueuedEvent& e, uint64_t cause) {
  // KVM kvm_multiple_exception(): a new exception while another is pending or was requeued
  // merges by the double-fault table (Vol. 3A Table 6-5).
  QueuedEvent ev = e;
  if (ev_.exception) {
    const auto first = arch::exception_class(ev_.exception->info.vector());
    const auto second = arch::exception_class(ev.info.vector());
    switch (arch::fault_during_delivery(first, second)) {
      case arch::FaultDuringDelivery::DoubleFault:
        ev = QueuedEvent{EntryIntrInfo::make(arch::kDF, InterruptionType::HardwareException, true), 0, 0, 0,
                         ev_.exception->origin};
        break;
      case arch::FaultDuringDelivery::TripleFault: {
        const uint64_t d = decide(ES_DECISION_SHUTDOWN, cause, ev_.exception->origin, ev.info.raw());
        end_run(ES_END_TRIPLE_FAULT, d, "a fault while delivering #DF shut the guest down (triple fault)");
        return;
      }
      case arch::FaultDuringDelivery::Serial: break;
    }
  }
  ev_.exception = ev;
  ev_.exception_injected = false;
  decide(ES_DECISION_QUEUE_EXCEPTION, cause, ev.origin, ev.info.raw(), ev.error_code, 0, 0, ev.cr2);
}

// This hypervisor's own interrupt sources (its timer, port 0x45's one-shot) share the one
// host-interrupt deadline of the CPU it runs on: program the earliest.
void Vmm::arm_host_interrupt() {
  const uint64_t timer_at = timer_period_ns_ ? timer_deadline_ : ~0ull;
  if (self_irq_at_ <= timer_at)
    cpu_->set_host_interrupt(self_irq_at_, guest_abi::kSelfIrqVector);
  else
    cpu_->set_host_interrupt(timer_at, guest_abi::kHostTimerVector);
}

void Vmm::timer_fire(uint64_t cause) {
  timer_deadline_ += timer_period_ns_;
  if (timer_deadline_ <= cpu_->now_ns()) timer_deadline_ = cpu_->now_ns() + timer_period_ns_;
  raise_irq(timer_vector_, cause);
  arm_host_interrupt();
}

// ---------------------------------------------------------------- complete / inject

// Vol. 3C 28.2.4 "Information for VM Exits That Occur During Event Delivery" and KVM's
// __vmx_complete_interrupts(): whatever the last entry injected is no longer "in flight";
// if the exit interrupted a delivery, the vectored event goes back to the queue.
void Vmm::complete_interrupts(const ExitRecordInfo& exit) {
  // An IRQ / NMI left "injected" because a pending exception outranked it at the last entry
  // did not reach the guest, and KVM clears it here: record that it is lost.
  if (ev_.interrupt_injected && !(last_injected_ && last_injected_->origin == ev_.interrupt_injected->origin))
    decide(ES_DECISION_DISCARD, exit.exit_id, ev_.interrupt_injected->origin, ev_.interrupt_injected->info.raw(), 0, 0,
           /*aux: outranked by exception*/ 3);
  if (ev_.nmi_injected && !(last_injected_ && last_injected_->origin == ev_.nmi_injected->origin))
    decide(ES_DECISION_DISCARD, exit.exit_id, ev_.nmi_injected->origin, ev_.nmi_injected->info.raw(), 0, 0, 3);
  ev_.nmi_injected.reset();
  ev_.interrupt_injected.reset();
  // An exception in flight was either delivered or is back in IDT-vectoring info below.
  if (ev_.exception && ev_.exception_injected) ev_.exception.reset();
  last_injected_.reset();
  cur_->write(VmcsField::VmEntryIntrInfo, 0);

  const arch::IdtVectoringInfo vec(cur_->read32(VmcsField::IdtVectoringInfo));
  if (!vec.valid()) return;
  QueuedEvent q;
  q.info = arch::to_reinjection(vec);
  q.error_code = cur_->read32(VmcsField::IdtVectoringErrorCode);
  q.origin = exit.vectoring_origin;
  if (arch::type_has_instruction_length(vec.type())) q.instr_len = cur_->read32(VmcsField::VmExitInstructionLen);
  if (!policy_->requeue(vec)) {
    decide(ES_DECISION_DROP_FROM_VECTORING, exit.exit_id, q.origin, q.info.raw(), q.error_code);
    return;
  }
  switch (vec.type()) {
    case InterruptionType::Nmi:
      // The NMI never reached its handler: NMIs are not blocked by it (KVM vmx_set_nmi_mask(false)).
      ev_.nmi_injected = q;
      cur_->clear_bits(VmcsField::GuestInterruptibilityInfo, arch::interruptibility::kBlockingByNmi);
      break;
    case InterruptionType::HardwareException:
    case InterruptionType::SoftwareException:
    case InterruptionType::PrivilegedSoftwareException:
      if (q.info.vector() == arch::kPF) q.cr2 = gprs_cur_->cr2;
      ev_.exception = q;
      ev_.exception_injected = true;
      break;
    case InterruptionType::ExternalInterrupt:
    case InterruptionType::SoftwareInterrupt: ev_.interrupt_injected = q; break;
    default: break;
  }
  decide(ES_DECISION_REQUEUE_FROM_VECTORING, exit.exit_id, q.origin, q.info.raw(), q.error_code, 0, q.instr_len);
}

// "NMI unblocking due to IRET": the exit is due to a fault, EPT violation (or EPT
// misconfiguration) on an IRET that had already removed (virtual-)NMI blocking (Vol. 3C 27.3
// "Saving Guest State": the saved interruptibility state has it clear). The IRET will be
// executed again, so the NMI handler is still running: blocking by NMI must be set again
// before the guest resumes (Vol. 3C 31.7.1.2 "Resuming Guest Software after Handling an
// Exception"), or a pending NMI is delivered at the IRET, inside its handler. KVM:
// vmx_recover_nmi_blocking() for exception / NMI exits, handle_ept_violation() for EPT.
// The bit is reported in exit interruption info bit 12 (28.2.2) or EPT-violation
// qualification bit 12 (Table 28-7), and is undefined - so not acted on - when IDT-vectoring
// info is valid, for #DF, and when NMI exiting = 1 with virtual NMIs = 0 (then IRET leaves
// blocking alone, Vol. 3C 26.3).
void Vmm::recover_nmi_blocking(const ExitRecordInfo& exit) {
  if (cfg_.bug_ignore_nmi_unblocking) return;
  const uint32_t pin = cur_->read32(VmcsField::PinBasedVmExecControl);
  if ((pin & arch::pin_ctl::kNmiExiting) && !(pin & arch::pin_ctl::kVirtualNmis)) return;
  if (arch::IdtVectoringInfo(cur_->read32(VmcsField::IdtVectoringInfo)).valid()) return;
  const arch::ExitIntrInfo info(cur_->read32(VmcsField::VmExitIntrInfo));
  const uint64_t qual = cur_->read(VmcsField::ExitQualification);
  bool unblocked = false;
  switch (exit.reason.basic()) {
    case BasicExitReason::ExceptionOrNmi:
      unblocked = info.valid() && info.nmi_unblocking_due_to_iret() && info.vector() != arch::kDF;
      break;
    case BasicExitReason::EptViolation: unblocked = arch::EptViolationQual(qual).nmi_unblocking_due_to_iret(); break;
    default: break;
  }
  if (!unblocked) return;
  cur_->set_bits(VmcsField::GuestInterruptibilityInfo, arch::interruptibility::kBlockingByNmi);
  // An NMI this hypervisor holds pending keeps waiting because of this: it joins its chain.
  decide(ES_DECISION_RESTORE_NMI_BLOCKING, exit.exit_id, ev_.nmi_pending ? ev_.nmi_origins[0] : 0, info.raw(), 0, 0, 0,
         qual);
}

// Undo an injection written to the VMCS but never entered (KVM vmx_cancel_injection):
// the VM-entry fields go back to the queue as if they had been found in IDT-vectoring info.
void Vmm::cancel_injection() {
  if (!last_injected_) return;
  const QueuedEvent e = *last_injected_;
  cur_->write(VmcsField::VmEntryIntrInfo, 0);
  last_injected_.reset();
  decide(ES_DECISION_CANCEL_INJECTION, last_decision_, e.origin, e.info.raw(), e.error_code);
}

bool Vmm::nmi_allowed() const {
  // KVM vmx_nmi_blocked(): STI, MOV SS or NMI blocking (virtual-NMI blocking with virtual NMIs).
  using namespace arch::interruptibility;
  return (cur_->read32(VmcsField::GuestInterruptibilityInfo) & (kBlockingBySti | kBlockingByMovSs | kBlockingByNmi)) ==
         0;
}

bool Vmm::interrupt_allowed() const {
  using namespace arch::interruptibility;
  return (cur_->read(VmcsField::GuestRflags) & arch::rflags::kIF) &&
         (cur_->read32(VmcsField::GuestInterruptibilityInfo) & (kBlockingBySti | kBlockingByMovSs)) == 0;
}

// Highest pending vector first, as a local APIC prioritizes (Vol. 3A 11.8.3).
int Vmm::highest_pending_irq() const {
  for (int w = 3; w >= 0; --w)
    if (ev_.irr[w]) return w * 64 + 63 - std::countl_zero(ev_.irr[w]);
  return -1;
}

void Vmm::set_irr(uint8_t vector, uint64_t origin) {
  ev_.irr[vector / 64] |= 1ull << (vector % 64);
  ev_.irr_origin[vector] = origin;
}

uint64_t Vmm::take_irr(uint8_t vector) {
  ev_.irr[vector / 64] &= ~(1ull << (vector % 64));
  return std::exchange(ev_.irr_origin[vector], 0);
}

void Vmm::inject(const QueuedEvent& e, uint32_t decision) {
  // Vol. 3C 27.6 "Event Injection" via the VM-entry fields (26.8.3).
  cur_->write(VmcsField::VmEntryIntrInfo, e.info.raw());
  cur_->write(VmcsField::VmEntryExceptionErrorCode, e.error_code);
  cur_->write(VmcsField::VmEntryInstructionLen, e.instr_len);
  if (e.info.type() == InterruptionType::HardwareException && e.info.vector() == arch::kPF) gprs_cur_->cr2 = e.cr2;
  last_injected_ = e;
  inject_origin_ = e.origin;
  halted_ = false;
  decide(decision, last_decision_, e.origin, e.info.raw(), e.error_code, 0, e.instr_len, e.cr2);
}

// KVM kvm_check_and_inject_events(): first re-inject what an exit interrupted (an exception,
// else an NMI, else an IRQ) — unless a new exception is pending, which outranks an NMI/IRQ
// reinjection because it arose while that event was being delivered; then new events by
// priority: exception, NMI, IRQ; a blocked event opens its window instead.
void Vmm::check_and_inject_events() {
  // A nested VM entry already merged L1's injection into vmcs02: nothing of L0's goes on top
  // of it (KVM: no event injection while nested_run_pending).
  if (cur_->read32(VmcsField::VmEntryIntrInfo) & arch::detail::kValidBit) return;
  bool injected = false;
  inject_origin_ = 0;
  if (ev_.exception && ev_.exception_injected) {
    inject(*ev_.exception, ES_DECISION_INJECT_REINJECTED);
    injected = true;
  } else if (ev_.exception) {
    // new exception: injected below
  } else if (ev_.nmi_injected) {
    inject(*ev_.nmi_injected, ES_DECISION_INJECT_REINJECTED);
    injected = true;
  } else if (ev_.interrupt_injected) {
    inject(*ev_.interrupt_injected, ES_DECISION_INJECT_REINJECTED);
    injected = true;
  }
  if (!injected && ev_.exception) {
    inject(*ev_.exception, ES_DECISION_INJECT_NEW);
    ev_.exception_injected = true;  // from now on it is in flight
    injected = true;
  }
  if (!injected && ev_.nmi_pending) {
    if (nmi_allowed()) {
      QueuedEvent q{EntryIntrInfo::make(arch::kNMI, InterruptionType::Nmi), 0, 0, 0, ev_.nmi_origins[0]};
      ev_.nmi_origins[0] = ev_.nmi_origins[1];
      ev_.nmi_origins[1] = 0;
      --ev_.nmi_pending;
      ev_.nmi_injected = q;
      inject(q, ES_DECISION_INJECT_NEW);
      injected = true;
      ev_.deferred_noted = false;
    } else if (!ev_.deferred_noted) {
      decide(ES_DECISION_DEFER_BLOCKED, last_decision_, ev_.nmi_origins[0],
             EntryIntrInfo::make(arch::kNMI, InterruptionType::Nmi).raw(), 0, 0,
             cur_->read32(VmcsField::GuestInterruptibilityInfo));
      ev_.deferred_noted = true;
    }
  }
  const int irq = highest_pending_irq();
  if (!injected && irq >= 0 && !ev_.nmi_pending) {
    if (interrupt_allowed()) {
      const uint8_t vector = static_cast<uint8_t>(irq);
      QueuedEvent q{EntryIntrInfo::make(vector, InterruptionType::ExternalInterrupt), 0, 0, 0, take_irr(vector)};
      ev_.interrupt_injected = q;
      inject(q, ES_DECISION_INJECT_NEW);
      injected = true;
      ev_.deferred_noted = false;
    } else if (!ev_.deferred_noted) {
      decide(ES_DECISION_DEFER_BLOCKED, last_decision_, ev_.irr_origin[irq],
             EntryIntrInfo::make(static_cast<uint8_t>(irq), InterruptionType::ExternalInterrupt).raw(), 0, 0,
             cur_->read32(VmcsField::GuestInterruptibilityInfo));
      ev_.deferred_noted = true;
    }
  }
  // Windows for what is still pending (Vol. 3C 26.7.5 / 26.7.6 "Interrupt-Window Exiting and
  // Virtual-Interrupt Delivery", "NMI-Window Exiting").
  const bool want_nmi_window = ev_.nmi_pending > 0;
  const int pending_irq = highest_pending_irq();
  const bool want_irq_window = pending_irq >= 0;
  if (want_nmi_window != ev_.nmi_window_open) {
    ev_.nmi_window_open = want_nmi_window;
    if (want_nmi_window) {
      cur_->set_bits(VmcsField::CpuBasedVmExecControl, arch::proc_ctl::kNmiWindowExiting);
      decide(ES_DECISION_OPEN_NMI_WINDOW, last_decision_, ev_.nmi_origins[0]);
    } else {
      cur_->clear_bits(VmcsField::CpuBasedVmExecControl, arch::proc_ctl::kNmiWindowExiting);
    }
  }
  if (want_irq_window != ev_.irq_window_open) {
    ev_.irq_window_open = want_irq_window;
    if (want_irq_window) {
      cur_->set_bits(VmcsField::CpuBasedVmExecControl, arch::proc_ctl::kInterruptWindowExiting);
      decide(ES_DECISION_OPEN_IRQ_WINDOW, last_decision_, ev_.irr_origin[pending_irq]);
    } else {
      cur_->clear_bits(VmcsField::CpuBasedVmExecControl, arch::proc_ctl::kInterruptWindowExiting);
    }
  }
}

// ---------------------------------------------------------------- exit handlers

void Vmm::skip_instruction() {
  cur_->write(VmcsField::GuestRip, cur_->read(VmcsField::GuestRip) + cur_->read32(VmcsField::VmExitInstructionLen));
  // Vol. 3A 6.8.3: completing an instruction ends STI / MOV SS blocking.
  cur_->clear_bits(VmcsField::GuestInterruptibilityInfo,
                   arch::interruptibility::kBlockingBySti | arch::interruptibility::kBlockingByMovSs);
}

bool Vmm::handle_exception_or_nmi(const ExitRecordInfo& exit) {
  const arch::ExitIntrInfo info(cur_->read32(VmcsField::VmExitIntrInfo));
  if (info.type() == InterruptionType::Nmi) {
    // A host NMI arrived while the guest ran (NMI exiting): it belongs to the host; L0 hands
    // it to its own NMI handler (KVM handle_exception_nmi_irqoff -> vmx_do_nmi_irqoff).
    decide(ES_DECISION_HOST_NMI, exit.exit_id, exit.exit_event_origin, info.raw());
    return true;
  }
  if (cfg_.fix_intercepted_pf && info.vector() == arch::kPF && info.type() == InterruptionType::HardwareException) {
    // A shadow-paging hypervisor's #PF: the fault is ours to fix (map the 2-MiB page of the
    // guest's page tables that holds the address), then the guest retries. Nothing is injected.
    const uint64_t cr2 = cur_->read(VmcsField::ExitQualification);
    const uint64_t pde = (cr2 & ~((2ull << 20) - 1)) | arch::pte::kPresent | arch::pte::kWrite | arch::pte::kUser |
                         arch::pte::kLargePage;
    mem_->write<uint64_t>(ram_hpa_ + guest_abi::kPd + ((cr2 >> 21) & 0x1FF) * 8, pde);
    cpu_->flush_caches();
    decide(ES_DECISION_FIX_PAGE_FAULT, exit.exit_id, exit.exit_event_origin, info.raw(),
           cur_->read32(VmcsField::VmExitIntrErrorCode), 0, 0, cr2);
    return true;
  }
  // An exception this hypervisor intercepts through the exception bitmap: it is the
  // guest's, reflect it.
  QueuedEvent q;
  q.info = EntryIntrInfo::make(info.vector(), info.type(), info.error_code_valid());
  q.error_code = cur_->read32(VmcsField::VmExitIntrErrorCode);
  q.origin = exit.exit_event_origin;
  if (info.vector() == arch::kPF) q.cr2 = cur_->read(VmcsField::ExitQualification);
  if (arch::type_has_instruction_length(info.type())) q.instr_len = cur_->read32(VmcsField::VmExitInstructionLen);
  queue_exception(q, exit.exit_id);
  return running_;
}

bool Vmm::handle_external_interrupt(const ExitRecordInfo& exit) {
  const arch::ExitIntrInfo info(cur_->read32(VmcsField::VmExitIntrInfo));
  // Acknowledge-on-exit gave us the vector (Vol. 3C 28.2.2). The hypervisor's timer drives
  // the guest's virtual timer; port 0x45's one-shot is just taken; anything else is the host's.
  const uint64_t now = cpu_->now_ns();
  bool handled = false;
  if (self_irq_at_ != ~0ull && now >= self_irq_at_) {
    self_irq_at_ = ~0ull;
    decide(ES_DECISION_EMULATE, exit.exit_id, 0, info.raw(), 0, 0, /*aux: vector*/ guest_abi::kSelfIrqVector);
    handled = true;
  }
  if (timer_period_ns_ && now >= timer_deadline_) {
    timer_fire(exit.exit_id);
    handled = true;
  }
  if (!handled) decide(ES_DECISION_EMULATE, exit.exit_id, 0, info.raw(), 0, 0, info.vector());
  arm_host_interrupt();
  return true;
}

bool Vmm::handle_triple_fault(const ExitRecordInfo& exit) {
  const uint64_t d = decide(ES_DECISION_SHUTDOWN, exit.exit_id, exit.exit_event_origin);
  end_run(ES_END_TRIPLE_FAULT, d, "the guest triple-faulted (a fault while delivering #DF); the VM was shut down");
  return false;
}

bool Vmm::handle_interrupt_window(const ExitRecordInfo&) {
  // The window is now open; check_and_inject_events() will inject and close it.
  return true;
}

bool Vmm::handle_nmi_window(const ExitRecordInfo&) { return true; }

bool Vmm::handle_cpuid(const ExitRecordInfo& exit) {
  auto& r = gprs_cur_->r;
  const uint32_t leaf = static_cast<uint32_t>(r[GuestGprs::RAX]);
  // A small, fixed CPUID: vendor "exitscopeHV " at leaf 0x40000000, basic leaves zero.
  if (leaf == 0x4000'0000) {
    r[GuestGprs::RAX] = 0x4000'0000;
    r[GuestGprs::RBX] = 0x74697865;  // "exit"
    r[GuestGprs::RCX] = 0x706f6373;  // "scop"
    r[GuestGprs::RDX] = 0x20564865;  // "eHV "
  } else {
    r[GuestGprs::RAX] = r[GuestGprs::RBX] = r[GuestGprs::RCX] = r[GuestGprs::RDX] = 0;
  }
  decide(ES_DECISION_EMULATE, exit.exit_id, 0, 0, 0, 0, leaf);
  skip_instruction();
  return true;
}

bool Vmm::handle_hlt(const ExitRecordInfo& exit) {
  skip_instruction();
  halted_ = true;
  decide(ES_DECISION_HALT, exit.exit_id, 0);
  return true;
}

bool Vmm::handle_vmcall(const ExitRecordInfo& exit) {
  gprs_cur_->r[GuestGprs::RAX] = ~0ull;  // -KVM_ENOSYS style: no hypercalls in this L0
  decide(ES_DECISION_EMULATE, exit.exit_id, 0);
  skip_instruction();
  return true;
}

bool Vmm::handle_io_instruction(const ExitRecordInfo& exit) {
  const arch::IoQual q(cur_->read(VmcsField::ExitQualification));
  auto& rax = gprs_cur_->r[GuestGprs::RAX];
  const uint64_t mask = q.size() == 1 ? 0xFF : q.size() == 2 ? 0xFFFF : 0xFFFF'FFFF;
  const uint32_t value = static_cast<uint32_t>(rax & mask);
  skip_instruction();
  if (q.string()) {
    const uint64_t d = decide(ES_DECISION_UNEXPECTED_EXIT, exit.exit_id, 0, 0, 0, 0, q.port());
    end_run(ES_END_INTERNAL_ERROR, d, "the guest used a string I/O instruction, which this L0 does not emulate");
    return false;
  }
  if (q.in()) {
    uint32_t in = 0xFFFF'FFFF;
    if (q.port() == guest_abi::kPortSerialStatus) in = 0x60;
    rax = (rax & ~mask) | (in & mask);
    decide(ES_DECISION_EMULATE, exit.exit_id, 0, 0, 0, 0, q.port(), in & mask);
    return true;
  }
  decide(ES_DECISION_EMULATE, exit.exit_id, 0, 0, 0, 0, q.port(), value);
  switch (q.port()) {
    case guest_abi::kPortSerial: console_byte(static_cast<uint8_t>(value)); break;
    case guest_abi::kPortExit:
      result_.guest_exit_code = value & 0xFF;
      flush_console();
      end_run(ES_END_GUEST_EXIT, exit.exit_id);
      return false;
    case guest_abi::kPortTimerPeriod:
      timer_period_ns_ = value;
      timer_deadline_ = cpu_->now_ns() + value;
      arm_host_interrupt();
      break;
    case guest_abi::kPortSelfIrq:
      self_irq_at_ = cpu_->now_ns() + value;
      arm_host_interrupt();
      break;
    case guest_abi::kPortMachineNmi: cpu_->raise_host_nmi(); break;
    case guest_abi::kPortTimerVector: timer_vector_ = static_cast<uint8_t>(value); break;
    case guest_abi::kPortNmi:
      for (uint32_t i = 0; i < (value & 0xFF); ++i) raise_nmi(exit.exit_id);
      break;
    case guest_abi::kPortIrq: raise_irq(static_cast<uint8_t>(value), exit.exit_id); break;
    default: break;  // unclaimed port: writes are ignored, as on a PC
  }
  return true;
}

bool Vmm::handle_msr_read(const ExitRecordInfo& exit) {
  gprs_cur_->r[GuestGprs::RAX] = 0;
  gprs_cur_->r[GuestGprs::RDX] = 0;
  decide(ES_DECISION_EMULATE, exit.exit_id, 0, 0, 0, 0, static_cast<uint32_t>(gprs_cur_->r[GuestGprs::RCX]));
  skip_instruction();
  return true;
}

bool Vmm::handle_msr_write(const ExitRecordInfo& exit) {
  decide(ES_DECISION_EMULATE, exit.exit_id, 0, 0, 0, 0, static_cast<uint32_t>(gprs_cur_->r[GuestGprs::RCX]));
  skip_instruction();
  return true;
}

bool Vmm::handle_ept_violation(const ExitRecordInfo& exit) {
  if (!ept_) return unexpected_exit(exit);  // an L1 without EPT never gets one
  const uint64_t gpa = cur_->read(VmcsField::GuestPhysicalAddress);
  if (gpa >= guest_abi::kRamSize) {
    const uint64_t d = decide(ES_DECISION_UNEXPECTED_EXIT, exit.exit_id, exit.vectoring_origin, 0, 0, gpa);
    end_run(ES_END_INTERNAL_ERROR, d,
            "the guest accessed guest-physical address " + std::to_string(gpa) +
                ", outside its 16 MiB of RAM, and this L0 has no device there");
    return false;
  }
  const uint64_t page = gpa & ~(HostMemory::kPageSize - 1);
  // Lazy EPT population (KVM's tdp_page_fault): back the page and let the guest retry. An
  // event whose delivery was interrupted was requeued by complete_interrupts().
  if (!ept_->map_page(page, ram_hpa_ + page)) {
    const uint64_t d = decide(ES_DECISION_UNEXPECTED_EXIT, exit.exit_id, 0, 0, 0, gpa);
    end_run(ES_END_INTERNAL_ERROR, d, "host memory for EPT tables ran out");
    return false;
  }
  cpu_->flush_caches();
  decide(ES_DECISION_EPT_MAP, exit.exit_id, exit.vectoring_origin, 0, 0, page);
  return true;
}

bool Vmm::unexpected_exit(const ExitRecordInfo& exit) {
  // KVM's unexpected_vmexit(): record the raw reason and stop; never index past the table.
  const uint64_t d = decide(ES_DECISION_UNEXPECTED_EXIT, exit.exit_id, 0, 0, 0, 0, exit.reason.raw());
  dump_vmcs(d);
  end_run(ES_END_INTERNAL_ERROR, d,
          "unexpected VM exit reason " + std::to_string(exit.reason.raw()) + " (no handler in this L0)");
  return false;
}

bool Vmm::halt_until_event() {
  // KVM kvm_vcpu_halt(): the vCPU sleeps until an event it can take arrives.
  for (;;) {
    const bool irq_ready = highest_pending_irq() >= 0 && (cur_->read(VmcsField::GuestRflags) & arch::rflags::kIF);
    if (ev_.nmi_pending || irq_ready || ev_.exception) {
      halted_ = false;
      return true;
    }
    if (!timer_period_ns_) {
      flush_console();
      end_run(ES_END_HALTED, last_decision_, "the guest halted with no timer running and nothing pending");
      return false;
    }
    if (timer_deadline_ > cpu_->now_ns()) cpu_->advance_time(timer_deadline_ - cpu_->now_ns());
    timer_fire(last_decision_);
  }
}

// ---------------------------------------------------------------- run loop

RunResult Vmm::run() {
  running_ = true;
  result_ = RunResult{};
  while (running_) {
    if (stop_.load(std::memory_order_relaxed)) {
      flush_console();
      end_run(ES_END_STOPPED, last_decision_);
      break;
    }
    if (halted_ && !halt_until_event()) break;
    check_and_inject_events();
    if (!running_) break;
    if (cfg_.max_exits && result_.exits >= cfg_.max_exits) {
      cancel_injection();
      flush_console();
      end_run(ES_END_LIMIT, last_decision_, "stopped after --max-exits " + std::to_string(cfg_.max_exits));
      break;
    }
    EntryContext ctx;
    ctx.cause = last_decision_;
    ctx.origin = inject_origin_;
    ctx.stop = &stop_;
    ctx.max_insns = cfg_.max_insns ? (cfg_.max_insns > result_.insns ? cfg_.max_insns - result_.insns : 0) : ~0ull;
    if (ctx.max_insns == 0) {
      cancel_injection();
      flush_console();
      end_run(ES_END_LIMIT, last_decision_, "stopped after --max-insns " + std::to_string(cfg_.max_insns));
      break;
    }
    const ExitRecordInfo exit = cpu_->vm_entry(vmcs01_, gprs_, ctx);
    result_.insns += exit.insns_retired;
    if (!l0_ && exit.stop == StopReason::VmExit) ++silicon_exits_;
    switch (exit.stop) {
      case StopReason::VmExit: break;
      case StopReason::EntryFailed: {
        const uint64_t d =
            decide(ES_DECISION_UNEXPECTED_EXIT, exit.entry_id, 0, 0, 0, 0, cur_->read32(VmcsField::VmInstructionError));
        dump_vmcs(d);
        flush_console();
        end_run(ES_END_INTERNAL_ERROR, d,
                "VM entry failed with VM-instruction error " +
                    std::to_string(cur_->read32(VmcsField::VmInstructionError)) + "; the VMCS is in the recording");
        continue;
      }
      case StopReason::InsnLimit:
        flush_console();
        end_run(ES_END_LIMIT, last_decision_, "stopped after --max-insns " + std::to_string(cfg_.max_insns));
        continue;
      case StopReason::Stopped:  // a guest that was not exiting: the same end as a stop between exits
        flush_console();
        end_run(ES_END_STOPPED, last_decision_);
        continue;
      case StopReason::InternalError:
        flush_console();
        dump_vmcs(last_decision_);
        end_run(ES_END_INTERNAL_ERROR, last_decision_,
                "the CPU model stopped (see the internal-error record: an unimplemented instruction or a bad access)");
        continue;
    }
    ++result_.exits;
    complete_interrupts(exit);
    recover_nmi_blocking(exit);
    const uint16_t basic = exit.reason.basic_number();
    const ExitHandler h =
        (!exit.reason.entry_failure() && basic < handlers_.size()) ? handlers_[basic] : &Vmm::unexpected_exit;
    if (!(this->*h)(exit)) break;
    cpu_->advance_time(cfg_.exit_handling_ns);
  }
  flush_console();
  result_.end_time_ns = cpu_->now_ns();
  return result_;
}

}  // namespace es::hv
