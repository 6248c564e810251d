// The "silicon": a deterministic software model of one logical processor in VMX non-root
// operation, running real x86-64 guest code.
//
// The vmm (hv/vmm) drives it exactly as a hypervisor drives VMLAUNCH/VMRESUME: it fills a
// Vmcs, calls vm_entry(), and gets control back at the next VM exit with the VMCS
// exit-information fields and guest-state area written as the SDM specifies (Vol. 3C ch. 27
// "VM Entries", ch. 28 "VM Exits", ch. 26 "VMX Non-Root Operation"; Vol. 3A ch. 6
// "Interrupt and Exception Handling").
//
// State ownership: the guest-state area of the VMCS (RIP, RSP, RFLAGS, CRs, segments,
// descriptor tables, interruptibility, activity state, pending debug exceptions) is loaded at
// entry and saved at exit. The other general-purpose registers are not in the VMCS; like
// KVM's vcpu->arch.regs they live in GuestGprs, owned by the vmm and passed to vm_entry().
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "hv/arch/exit_reason.h"
#include "hv/cpu/memory.h"
#include "hv/cpu/vmcs.h"
#include "hv/cpu/vmx_cpu.h"
#include "exitscope/probe_bus.h"

namespace es::hv {

struct GuestGprs {
  enum : unsigned { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };
  uint64_t r[16] = {};  // r[RSP] is ignored: RSP lives in the VMCS guest-state area
  // CR2 is not part of the VMCS either (Vol. 3C 28.3 / 27.3: VM transitions do not save or
  // load it); the hypervisor keeps the guest's value and loads it before entry, which is how
  // a #PF injected with a fault address reaches the guest. Loaded at vm_entry(), saved at exit.
  uint64_t cr2 = 0;
};

struct CpuConfig {
  uint64_t insn_ns = 1;               // simulated time per retired instruction
  uint64_t transition_ns = 100;       // simulated cost of one VM entry and of one VM exit
  bool nested_exception_bit = false;  // FRED "VMX nested-exception support": set ExitIntrInfo bit 13
};

// Why vm_entry() returned.
enum class StopReason : uint8_t {
  VmExit,         // a VM exit happened; the VMCS holds its information
  EntryFailed,    // VM entry failed a check: VmInstructionError set (VMfailValid), nothing entered
  InsnLimit,      // the per-call instruction budget ran out in non-root operation (no VM exit)
  InternalError,  // the model cannot go on (unimplemented instruction, access outside host
                  // memory); an ES_KIND_INTERNAL_ERROR record was emitted
  Stopped,        // EntryContext::stop was set (Ctrl-C, SIGTERM): the guest stopped at an
                  // instruction boundary in non-root operation, no VM exit (like InsnLimit)
};

// Causal context the vmm hands to an entry, so records link into chains.
struct EntryContext {
  uint64_t cause = 0;          // record id of the decision that led to this entry (0 = none)
  uint64_t origin = 0;         // chain root of the injected event, if VmEntryIntrInfo is valid
  uint64_t max_insns = ~0ull;  // budget for this call
  // Polled every kStopCheckInsns guest instructions (and while halted): a guest that never
  // exits (`jmp $` with --max-insns 0) still stops when a signal handler sets it. Null = never.
  const std::atomic<bool>* stop = nullptr;
};

// How often the interpreter loop looks at EntryContext::stop: a relaxed load every 4096
// instructions costs nothing measurable and answers a signal within well under a millisecond.
inline constexpr uint64_t kStopCheckInsns = 4096;

// What the last vm_entry() produced, beyond the VMCS fields.
struct ExitRecordInfo {
  StopReason stop = StopReason::VmExit;
  arch::ExitReason reason{};
  uint64_t entry_id = 0;           // ES_KIND_VM_ENTRY record id
  uint64_t exit_id = 0;            // ES_KIND_VM_EXIT record id
  uint64_t vectoring_origin = 0;   // chain root of the event in IDT-vectoring info (if valid)
  uint64_t exit_event_origin = 0;  // chain root of the event in VM-exit interruption info (if valid)
  uint64_t insns_retired = 0;      // in this call
};

class Cpu final : public VmxCpu {
 public:
  Cpu(HostMemory& mem, probes::ProbeBus& bus, CpuConfig cfg = {});
  ~Cpu() override;
  Cpu(const Cpu&) = delete;
  Cpu& operator=(const Cpu&) = delete;

  // VMLAUNCH / VMRESUME. Checks the VM-entry event-injection fields (Vol. 3C 27.2.1.3
  // "Checks on VM-Entry Control Fields") and the guest state the model depends on; on
  // failure returns EntryFailed with VmInstructionError = 7 ("VM entry with invalid control
  // field(s)") or an exit with reason 33 | bit 31 for invalid guest state. Then loads guest
  // state, delivers the injected event (27.6 "Event Injection") and runs guest code until a
  // VM exit, the instruction budget or an internal error.
  ExitRecordInfo vm_entry(Vmcs& vmcs, GuestGprs& gprs, const EntryContext& ctx) override;

  // ---- the outside world (host-side stimuli) ----
  // A host external interrupt with `vector` becomes pending at simulated time `at_ns`
  // (one outstanding deadline; a later call replaces it; at_ns = ~0 cancels). It causes an
  // EXTERNAL_INTERRUPT exit if external-interrupt exiting is set (vector in ExitIntrInfo when
  // "acknowledge interrupt on exit"), otherwise it is delivered through the guest IDT when
  // RFLAGS.IF = 1 and nothing blocks it.
  void set_host_interrupt(uint64_t at_ns, uint8_t vector) override;
  // A host NMI is pending now: NMI exit (reason 0, type NMI) if NMI exiting is set, otherwise
  // delivered to the guest when not blocked.
  void raise_host_nmi() override;

  // ---- time ----
  uint64_t now_ns() const override;
  void advance_time(uint64_t ns) override;  // hypervisor work, halted time

  // ---- record context ----
  void set_record_context(uint16_t vcpu, uint8_t level, uint8_t hv_level);

  // ---- guest memory as seen through the VMCS's EPT and the guest's paging (for the vmm:
  // emulation, nested VMX, tests). Walks exactly as the CPU would but raises nothing.
  // Returns false if the translation fails. ----
  bool read_guest_phys(const Vmcs& vmcs, uint64_t gpa, void* out, uint64_t len) const;
  bool write_guest_phys(const Vmcs& vmcs, uint64_t gpa, const void* in, uint64_t len);
  bool translate_linear(const Vmcs& vmcs, uint64_t gva, uint64_t& gpa_out) const;

  // EPT structures changed (entries added / removed) or the guest's TLB must be flushed
  // (INVEPT / INVVPID emulation): drop cached translations and decoded instructions.
  void flush_caches() override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace es::hv
