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
}  // namespace

const std::vector<Scenario>& scenarios() {
  static const std::vector<Scenario> kAll = {
      {"timer-irq", "periodic timer IRQs wake an idle HLT loop (RDI = ticks to wait for; --arg 0 runs until a limit)",
       blob(es_guest_timer_irq, es_guest_timer_irq_size), config(0, 20)},
      {"irq-ept-reinject",
       "IRQ 0x20's delivery hits an EPT violation on its IST stack; L0 maps the page and reinjects the IRQ",
       blob(es_guest_irq_ept_reinject, es_guest_irq_ept_reinject_size), config()},
      {"guest-pf", "the guest's own #PF handler maps 2-MiB pages on demand; L0 only populates EPT",
       blob(es_guest_guest_pf, es_guest_guest_pf_size), config()},
      {"pf-during-irq",
       "guest #PF while delivering IRQ 0x20 (L0 intercepts #PF): #PF reflected, it outranks the IRQ's reinjection "
       "and the IRQ is lost, as on hardware",
       blob(es_guest_pf_during_irq, es_guest_pf_during_irq_size), config(1u << 14)},
      {"double-fault", "#GP with a not-present gate raises #NP during delivery: contributory + contributory = #DF",
       blob(es_guest_double_fault, es_guest_double_fault_size), config()},
      {"triple-fault", "a fault while delivering #DF shuts the guest down: TRIPLE_FAULT exit, L0 ends the VM",
       blob(es_guest_triple_fault, es_guest_triple_fault_size), config()},
      {"softint-ept",
       "INT 0x80 and INT3 deliveries hit EPT violations: reinjected as types 4 and 6 with the instruction length",
       blob(es_guest_softint_ept, es_guest_softint_ept_size), config()},
      {"nmi-blocking", "an NMI raised inside the NMI handler waits for IRET: L0 opens an NMI window",
       blob(es_guest_nmi_blocking, es_guest_nmi_blocking_size), config()},
  };
  return kAll;
}

const Scenario* find_scenario(std::string_view name) {
  for (const Scenario& s : scenarios())
    if (s.name == name) return &s;
  return nullptr;
}

}  // namespace es::hv
