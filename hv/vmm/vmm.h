// The L0 hypervisor: drives the CPU model the way KVM drives VMX.
//
// After every VM exit it completes interrupts (requeues the IDT-vectoring event through the
// reinjection policy, KVM's __vmx_complete_interrupts), runs the exit handler (dispatch
// table indexed by basic exit reason, bounds-checked; unknown reasons go to
// unexpected_exit()), lets its devices act, then checks and injects events with KVM's
// priority (kvm_check_and_inject_events) and re-enters. Every decision is an
// ES_KIND_DECISION record with a reason code.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "hv/arch/event_info.h"
#include "hv/arch/exit_reason.h"
#include "hv/cpu/cpu.h"
#include "hv/cpu/ept_builder.h"
#include "hv/cpu/vmx_cpu.h"
#include "hv/vmm/policy.h"
#include "exitscope/probe_bus.h"

namespace es::hv {

struct VmmConfig {
  std::string policy = "default";
  bool eager_ept = false;            // map all guest RAM in EPT up front instead of on demand
  uint32_t exception_bitmap = 0;     // exceptions L0 intercepts (bit n = vector n)
  uint64_t max_exits = 0;            // 0 = no limit
  uint64_t max_insns = 200'000'000;  // guest instructions; 0 = no limit
  uint64_t guest_arg = 0;            // RDI at guest entry
  uint64_t exit_handling_ns = 200;   // simulated time per handled exit
  CpuConfig cpu;
  // Nested VMX (L0 side). Reproduces the old KVM behaviour of seed thread "nested VMX
  // interrupt injection while IDT-vectoring is valid": exit to L1 with EXTERNAL_INTERRUPT
  // while an event for L2 is still being delivered (IDT-vectoring valid).
  bool bug_exit_with_vectoring = false;
  // L1 side: an intercepted #PF is L1's own business (it fixes L2's page tables, as a
  // shadow-paging hypervisor would) instead of being reflected into L2.
  bool fix_intercepted_pf = false;
  // L0: this guest-physical page (of L2) is "swapped out" on the host: its first touch gets
  // an asynchronous #PF (KVM async_pf: CR2 = a token, the page comes in meanwhile) instead of
  // a synchronous fault-in. ~0 = none.
  uint64_t async_pf_gpa = ~0ull;
  // L0: reproduces the bug of seed thread "async_pf: force a nested vmexit if the injected #PF
  // is async_pf": inject the async #PF into L2 even though L1 intercepts #PF.
  bool bug_async_pf_into_l2 = false;
  // Reproduces issue #14 item 3: ignore "NMI unblocking due to IRET" and resume the guest
  // without blocking by NMI, so a pending NMI is injected at the re-executed IRET, inside
  // the handler of the NMI it returns from.
  bool bug_ignore_nmi_unblocking = false;
};

struct RunResult {
  uint32_t end_reason = ES_END_GUEST_EXIT;  // ES_END_*
  uint32_t guest_exit_code = 0;
  uint64_t exits = 0;
  uint64_t insns = 0;
  uint64_t end_time_ns = 0;
  std::string console;  // everything the guest wrote to the serial port
  std::string message;  // for ES_END_INTERNAL_ERROR / TRIPLE_FAULT: one sentence
};

// One event in the software queue (KVM's kvm_queued_exception / kvm_queued_interrupt).
struct QueuedEvent {
  arch::EntryIntrInfo info;  // vector, type, deliver-error-code, valid
  uint32_t error_code = 0;
  uint32_t instr_len = 0;  // software interrupts / exceptions
  uint64_t cr2 = 0;        // payload of a #PF
  uint64_t origin = 0;     // chain root
};

class NestedVmx;

class Vmm {
 public:
  // L0: owns the machine (host memory, the silicon, EPT); its guest is L1 (level 1).
  Vmm(probes::ProbeBus& bus, VmmConfig cfg);
  // L1: a guest hypervisor, the same code, running on the VMX that `l0` emulates; its guest
  // is L2 (level 2); its decisions are recorded with hv_level 1. Memory is L0's guest RAM.
  Vmm(probes::ProbeBus& bus, VmmConfig cfg, Vmm& l0);
  ~Vmm();

  // Loads the image and builds the guest environment. False with a one-sentence error.
  bool load(std::span<const uint8_t> image, std::string& error);
  RunResult run();
  void request_stop() { stop_.store(true, std::memory_order_relaxed); }

  const ReinjectionPolicy& policy() const { return *policy_; }
  Cpu& silicon() { return *l0().silicon_; }
  Vmcs& vmcs() { return vmcs01_; }
  uint8_t guest_level() const { return level_; }
  uint64_t silicon_exits() const { return l0().silicon_exits_; }

 private:
  using ExitHandler = bool (Vmm::*)(const ExitRecordInfo&);  // false = the run ends

  // KVM's per-vCPU event state (vcpu->arch.exception / nmi_* / interrupt).
  struct EventState {
    std::optional<QueuedEvent> exception;  // pending (new) or injected (requeued)
    bool exception_injected = false;       // true: requeued from IDT-vectoring, reinject first
    std::optional<QueuedEvent> nmi_injected;
    std::optional<QueuedEvent> interrupt_injected;  // requeued IRQ / soft interrupt
    std::array<uint64_t, 256> irr_origin{};         // chain of each pending IRQ vector
    std::array<uint64_t, 4> irr{};                  // pending vectors, one bit each (a local APIC's IRR)
    unsigned nmi_pending = 0;
    std::array<uint64_t, 2> nmi_origins{};
    bool irq_window_open = false, nmi_window_open = false;
    bool deferred_noted = false;
  };

  // complete / inject
  void complete_interrupts(const ExitRecordInfo& exit);
  void recover_nmi_blocking(const ExitRecordInfo& exit);
  void check_and_inject_events();
  void inject(const QueuedEvent& e, uint32_t decision);
  void cancel_injection();
  bool nmi_allowed() const;
  bool interrupt_allowed() const;
  int highest_pending_irq() const;
  void set_irr(uint8_t vector, uint64_t origin);
  uint64_t take_irr(uint8_t vector);

  // sources
  uint64_t emit_raise(arch::EntryIntrInfo info, uint64_t cause);
  void raise_irq(uint8_t vector, uint64_t cause);
  void raise_nmi(uint64_t cause);
  void queue_exception(const QueuedEvent& e, uint64_t cause);
  void timer_fire(uint64_t cause);

  // exit handlers (named after the enumerator)
  bool handle_exception_or_nmi(const ExitRecordInfo&);
  bool handle_external_interrupt(const ExitRecordInfo&);
  bool handle_triple_fault(const ExitRecordInfo&);
  bool handle_interrupt_window(const ExitRecordInfo&);
  bool handle_nmi_window(const ExitRecordInfo&);
  bool handle_cpuid(const ExitRecordInfo&);
  bool handle_hlt(const ExitRecordInfo&);
  bool handle_vmcall(const ExitRecordInfo&);
  bool handle_io_instruction(const ExitRecordInfo&);
  bool handle_msr_read(const ExitRecordInfo&);
  bool handle_msr_write(const ExitRecordInfo&);
  bool handle_ept_violation(const ExitRecordInfo&);
  bool unexpected_exit(const ExitRecordInfo&);
  void skip_instruction();
  bool halt_until_event();

  void install_handlers();
  bool populate_ept();

  // nested VMX, L0 side (hv/vmm/nested/nested.cpp)
  friend class NestedVmx;
  VmxCpu* attach_l1();
  Vmm& l0() { return l0_ ? *l0_ : *this; }
  const Vmm& l0() const { return l0_ ? *l0_ : *this; }
  ExitRecordInfo nested_vm_entry(Vmcs& vmcs12, GuestGprs& gprs12, const EntryContext& ctx);
  void prepare_vmcs02(const Vmcs& vmcs12);
  ExitRecordInfo run_l2(uint64_t max_insns, const std::atomic<bool>* stop);
  bool l1_wants_exit(const ExitRecordInfo& exit) const;
  bool l1_interrupt_due() const;
  bool l2_event_in_flight() const;
  ExitRecordInfo nested_vm_exit(arch::ExitReason reason, uint64_t qualification, uint32_t exit_intr_info,
                                uint32_t exit_intr_error, uint32_t instr_len, uint64_t cause,
                                uint64_t exit_event_origin);
  ExitRecordInfo reflect(const ExitRecordInfo& exit);
  std::optional<ExitRecordInfo> async_page_fault(const ExitRecordInfo& exit);
  bool handle_in_l0(const ExitRecordInfo& exit);
  void arm_host_interrupt();

  // records
  uint64_t decide(uint32_t reason, uint64_t cause, uint64_t origin, uint32_t intr_info = 0, uint32_t error = 0,
                  uint64_t gpa = 0, uint32_t aux = 0, uint64_t aux64 = 0);
  es_record base_record(uint16_t kind) const;
  void console_byte(uint8_t c);
  void flush_console();
  void dump_vmcs(uint64_t cause);
  void end_run(uint32_t reason, uint64_t cause, std::string message = {});

  probes::ProbeBus& bus_;
  VmmConfig cfg_;
  std::unique_ptr<ReinjectionPolicy> policy_;
  Vmm* l0_ = nullptr;                    // set on an L1: the hypervisor below
  std::unique_ptr<HostMemory> own_mem_;  // L0 only
  HostMemory* mem_ = nullptr;
  std::unique_ptr<Cpu> silicon_;       // L0 only
  std::unique_ptr<NestedVmx> nested_;  // L0 only: the VMX it emulates for L1
  VmxCpu* cpu_ = nullptr;              // what this hypervisor runs its guest on
  std::optional<EptBuilder> ept_;      // L0 only
  uint8_t level_ = 1, hv_level_ = 0;   // record levels: guest level, deciding hypervisor
  Vmcs vmcs01_;                        // this hypervisor's VMCS for its guest (L1's is "vmcs12")
  GuestGprs gprs_;
  Vmcs* cur_ = &vmcs01_;  // VMCS of the guest being run: vmcs01, or vmcs02 in guest mode
  GuestGprs* gprs_cur_ = &gprs_;
  uint64_t ram_hpa_ = 0;
  // L0 in guest mode (running L2 for L1)
  bool guest_mode_ = false;
  Vmcs vmcs02_;
  Vmcs* vmcs12_ = nullptr;
  uint64_t nested_entry_id_ = 0;
  uint64_t l1_irq_at_ = ~0ull;  // L1's pending host interrupt (its timer)
  uint8_t l1_irq_vector_ = 0;
  bool immediate_exit_ = false;
  bool async_pf_sent_ = false;
  uint64_t silicon_exits_ = 0;
  uint64_t self_irq_at_ = ~0ull;  // port 0x45: a one-shot interrupt for this hypervisor
  EventState ev_;
  std::optional<QueuedEvent> last_injected_;  // what the last entry injected
  uint64_t last_decision_ = 0;                // cause for the next VM entry
  uint64_t inject_origin_ = 0;
  bool halted_ = false;
  bool running_ = false;
  // devices
  uint64_t timer_period_ns_ = 0, timer_deadline_ = 0;
  uint8_t timer_vector_ = 0x20;
  std::string console_line_;
  RunResult result_;
  std::atomic<bool> stop_{false};
  std::array<ExitHandler, arch::kExitReasonLimit> handlers_{};
};

}  // namespace es::hv
