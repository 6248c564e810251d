#include "hv/vmm/scenarios.h"

#include "hv_guest_blobs.h"

namespace es::hv {

namespace {
std::span<const uint8_t> blob(const unsigned char* p, unsigned long n) { return {p, static_cast<size_t>(n)}; }

VmmConfig config(uint32_t exception_bitmap = 0, uint64_t arg = 0) {
  VmmConfig c;
  c.exception_bitmap = exception_bitmap;
  c.guest_arg = arg;
  return c;
}

// L1 as KVM runs a nested guest by default: L2's external interrupts, NMIs, HLT and I/O exit
// to it (the same controls L0 uses), no EPT of its own.
VmmConfig l1_config(uint32_t exception_bitmap = 0, bool fix_pf = false, uint64_t arg = 0) {
  VmmConfig c = config(exception_bitmap, arg);
  c.fix_intercepted_pf = fix_pf;
  return c;
}

VmmConfig with_async_pf(VmmConfig c, uint64_t gpa) {
  c.async_pf_gpa = gpa;
  return c;
}

// L0 intercepts #PF and fixes the guest's page tables itself (a shadow-paging hypervisor).
VmmConfig with_fix_pf(VmmConfig c) {
  c.fix_intercepted_pf = true;
  return c;
}

VmmConfig with_nested_exception_bit(VmmConfig c) {
  c.cpu.nested_exception_bit = true;
  return c;
}
}  // namespace

const std::vector<Scenario>& scenarios() {
  static const std::vector<Scenario> kAll = {
      {"timer-irq", "periodic timer IRQs wake an idle HLT loop (RDI = ticks to wait for; --arg 0 runs until a limit)",
       blob(es_guest_timer_irq, es_guest_timer_irq_size), config(0, 20), std::nullopt},
      {"irq-ept-reinject",
       "IRQ 0x20's delivery hits an EPT violation on its IST stack; L0 maps the page and reinjects the IRQ",
       blob(es_guest_irq_ept_reinject, es_guest_irq_ept_reinject_size), config(), std::nullopt},
      {"guest-pf", "the guest's own #PF handler maps 2-MiB pages on demand; L0 only populates EPT",
       blob(es_guest_guest_pf, es_guest_guest_pf_size), config(), std::nullopt},
      {"pf-during-irq",
       "guest #PF while delivering IRQ 0x20 (L0 intercepts #PF): #PF reflected, it outranks the IRQ's reinjection "
       "and the IRQ is superseded, as on hardware (Table 6-5: handled serially, nothing raises the IRQ again)",
       blob(es_guest_pf_during_irq, es_guest_pf_during_irq_size), config(1u << 14), std::nullopt},
      {"double-fault", "#GP with a not-present gate raises #NP during delivery: contributory + contributory = #DF",
       blob(es_guest_double_fault, es_guest_double_fault_size), config(), std::nullopt},
      {"triple-fault", "a fault while delivering #DF shuts the guest down: TRIPLE_FAULT exit, L0 ends the VM",
       blob(es_guest_triple_fault, es_guest_triple_fault_size), config(), std::nullopt},
      {"softint-ept",
       "INT 0x80 and INT3 deliveries hit EPT violations: reinjected as types 4 and 6 with the instruction length",
       blob(es_guest_softint_ept, es_guest_softint_ept_size), config(), std::nullopt},
      {"nmi-blocking", "an NMI raised inside the NMI handler waits for IRET: L0 opens an NMI window",
       blob(es_guest_nmi_blocking, es_guest_nmi_blocking_size), config(), std::nullopt},
      {"nmi-iret-ept",
       "the NMI handler's IRETQ faults on an EPT violation (NMI unblocking due to IRET) with a second NMI pending: "
       "L0 sets blocking by NMI again, the second NMI is delivered after the IRETQ completes",
       blob(es_guest_nmi_iret, es_guest_nmi_iret_size), config(0, 0), std::nullopt},
      {"nmi-iret-pf",
       "the NMI handler's IRETQ raises a #PF L0 intercepts and fixes (exit interruption info bit 12) with a second "
       "NMI pending: L0 sets blocking by NMI again, the second NMI waits for the IRETQ",
       blob(es_guest_nmi_iret, es_guest_nmi_iret_size), with_fix_pf(config(1u << 14, 1)), std::nullopt},
      {"exception-vectoring-policy",
       "a #PF whose delivery hits an EPT violation while a tick comes due: reinjected (default) its handler runs; "
       "dropped (drop-hw-exceptions) the tick's handler removes its cause and the guest never sees it",
       blob(es_guest_exception_vectoring_policy, es_guest_exception_vectoring_policy_size), config(), std::nullopt},
      {"nested-irq-vectoring",
       "L2's delivery of an IRQ L1 injected hits L0's EPT while L1 has an interrupt due: L0 finishes the delivery "
       "(immediate exit) before exiting to L1 with EXTERNAL_INTERRUPT (--bug exit-with-vectoring: the old way)",
       blob(es_guest_nested_irq_vectoring, es_guest_nested_irq_vectoring_size), config(), l1_config()},
      {"nested-async-pf",
       "an asynchronous #PF (KVM async_pf) meant for L2 while L1 intercepts #PF becomes a nested VM exit to L1, "
       "not an injection into L2 (--bug async-pf-into-l2: the old way)",
       blob(es_guest_nested_async_pf, es_guest_nested_async_pf_size), with_async_pf(config(), 0x600000),
       l1_config(1u << 14, /*fix_pf=*/true)},
      {"nested-ept-reinject",
       "L2's delivery of an IRQ L1 injected hits an EPT violation in L0's EPT: L0 maps and reinjects into L2, "
       "L1 never sees the exit",
       blob(es_guest_irq_ept_reinject, es_guest_irq_ept_reinject_size), config(), l1_config()},
      {"nested-exception-reflect",
       "L2 #PF intercepted by L1 while delivering an IRQ L1 injected: L1 gets the exit with the IRQ in "
       "IDT-vectoring, fixes the page and reinjects the IRQ",
       blob(es_guest_nested_exception_reflect, es_guest_nested_exception_reflect_size), config(),
       l1_config(1u << 14, /*fix_pf=*/true)},
      {"nmi-exit-host",
       "a physical NMI while L2 handles its own NMI: NMI exiting hands it to L0's host, not to L1 or L2, and "
       "L2's NMI blocking does not hold it",
       blob(es_guest_nmi_exit_host, es_guest_nmi_exit_host_size), config(), l1_config()},
      {"fred-nested-exception",
       "as nested-exception-reflect with FRED's VMX nested-exception support: exit interruption info bit 13 is set "
       "exactly when the exit's exception was raised during another event's delivery",
       blob(es_guest_nested_exception_reflect, es_guest_nested_exception_reflect_size),
       with_nested_exception_bit(config()), l1_config(1u << 14, /*fix_pf=*/true)},
      {"nested-nmi-iret-ept",
       "nmi-iret-ept as L2: L0 handles the EPT violation on L2's IRETQ itself and sets blocking by NMI in vmcs02, so "
       "L1's NMI window opens only after the IRETQ",
       blob(es_guest_nmi_iret, es_guest_nmi_iret_size), config(), l1_config(0, false, 0)},
      {"nested-nmi-iret-pf",
       "nmi-iret-pf as L2: the #PF on L2's IRETQ is reflected to L1 with exit interruption info bit 12; L1 fixes the "
       "page and sets blocking by NMI before resuming L2",
       blob(es_guest_nmi_iret, es_guest_nmi_iret_size), config(), l1_config(1u << 14, /*fix_pf=*/true, 1)},
      // Guests written from the SDM for what the architecture itself does to an event (no
      // hypervisor bug in any of them: `check` finds nothing); each runs as L2 with --nested.
      {"sdm-gp-pf-serial",
       "a #PF while delivering #GP is handled serially (Table 6-5): the #GP is abandoned, its instruction "
       "re-executes and raises it again",
       blob(es_guest_sdm_gp_pf_serial, es_guest_sdm_gp_pf_serial_size), config(), std::nullopt},
      {"sdm-int-gate-gp",
       "INT 0x81 at CPL 3 through a DPL-0 gate raises #GP during its delivery (SDM 6.12.1.1); the handler opens "
       "the gate and INT 0x81 re-executes",
       blob(es_guest_sdm_int_gate_gp, es_guest_sdm_int_gate_gp_size), config(), std::nullopt},
      {"sdm-irq-coalesced", "two requests for IRQ 0x30 while IF = 0 coalesce in one IRR bit (SDM 11.8.4): one delivery",
       blob(es_guest_sdm_irq_coalesced, es_guest_sdm_irq_coalesced_size), config(), std::nullopt},
      {"sdm-table-6-5",
       "a fault during another's delivery, by Table 6-5 row (--arg 0 #UD+#NP, 1 #UD+#PF: serial; 2 #PF+#NP, 3 "
       "#PF+#PF: #DF)",
       blob(es_guest_sdm_table_6_5, es_guest_sdm_table_6_5_size), config(0, 0), std::nullopt},
      {"sdm-soft-events",
       "INT 0x80, o16 INT 0x80, INT3, INT 3 (CD 03) and INT1, each delivery hitting EPT: reinjected with its type "
       "(4 / 6 / 5) and instruction length (2, 3, 1, 2, 1)",
       blob(es_guest_sdm_soft_events, es_guest_sdm_soft_events_size), config(), std::nullopt},
      {"sdm-sti-shadow",
       "IRQ 0x30 pending while IF = 0 is taken after the instruction STI shadows, and STI; HLT halts first (SDM "
       "6.8.3, Table 25-3)",
       blob(es_guest_sdm_sti_shadow, es_guest_sdm_sti_shadow_size), config(), std::nullopt},
      {"sdm-movss-shadow",
       "the hypervisor's interrupt swept one ns at a time over MOV SS shadows: its VM exit never lands between "
       "MOV SS and the next instruction (SDM 6.8.3, 25.3, Table 25-3)",
       blob(es_guest_sdm_movss_shadow, es_guest_sdm_movss_shadow_size), config(), std::nullopt},
      {"sdm-nmi-collapse", "three NMIs at once: one delivered, one latched until IRET, one collapsed (SDM 6.7.1)",
       blob(es_guest_sdm_nmi_collapse, es_guest_sdm_nmi_collapse_size), config(), std::nullopt},
  };
  return kAll;
}

const Scenario* find_scenario(std::string_view name) {
  for (const Scenario& s : scenarios())
    if (s.name == name) return &s;
  return nullptr;
}

}  // namespace es::hv
