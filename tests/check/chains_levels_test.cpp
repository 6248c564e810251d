// `exitscope chains` across levels on a hand-built nested chain:
//   L1 injects IRQ 0x30 into L2 (NESTED_ENTRY) -> L0 enters L2 -> L2's delivery hits an EPT
//   violation (L0 exit with IDT-vectoring) -> reflected: NESTED_EXIT to L1 with the IRQ in
//   vmcs12's IDT-vectoring -> L1 requeues and reinjects (hv_level 1) -> NESTED_ENTRY -> L0
//   enters L2 -> delivered in L2.
#include <gtest/gtest.h>

#include "replay/chains.h"
#include "tests/check/check_support.h"
#include "tests/support/cli_run.h"

namespace es {
namespace {

using arch::BasicExitReason;

struct Nested {
  uint64_t root = 0, l0_exit = 0, nested_exit = 0, requeue = 0, reinject = 0, nested_entry = 0, delivery = 0;
};

es_record at(uint16_t kind, uint8_t level, uint8_t hv_level, uint64_t origin, uint64_t cause) {
  es_record r{};
  r.kind = kind;
  r.level = level;
  r.hv_level = hv_level;
  r.origin = origin;
  r.cause = cause;
  r.rip = 0x401000;
  return r;
}

void nested_chain(test::Emitter& em, Nested& n) {
  const uint32_t irq = test::irq(0x30);
  // L1's device raises the IRQ for L2: the chain root, origin = its own id.
  es_record raise = at(ES_KIND_RAISE, 2, 1, 0, 0);
  raise.id = test::current_bus()->next_id();
  raise.origin = raise.id;
  raise.intr_info = irq;
  n.root = em.emit(raise);
  es_record d = at(ES_KIND_DECISION, 2, 1, n.root, n.root);
  d.reason = ES_DECISION_INJECT_NEW;
  d.intr_info = irq;
  const uint64_t inject = em.emit(d);
  es_record ne = at(ES_KIND_NESTED_ENTRY, 2, 1, n.root, inject);
  ne.intr_info = irq;
  const uint64_t nentry1 = em.emit(ne);
  es_record e = at(ES_KIND_VM_ENTRY, 2, 0, n.root, nentry1);
  e.intr_info = irq;
  e.aux64 = 0x202;
  const uint64_t entry1 = em.emit(e);
  es_record x = at(ES_KIND_VM_EXIT, 2, 0, n.root, entry1);
  x.reason = test::exit_reason(BasicExitReason::EptViolation);
  x.qualification = 0x182;
  x.idt_vectoring_info = test::vectoring_irq(0x30);
  x.guest_phys = 0x7000;
  n.l0_exit = em.emit(x);
  es_record reflect = at(ES_KIND_DECISION, 2, 0, n.root, n.l0_exit);
  reflect.reason = ES_DECISION_REFLECT_TO_L1;
  reflect.intr_info = irq;
  const uint64_t refl = em.emit(reflect);
  es_record nx = at(ES_KIND_NESTED_EXIT, 2, 0, n.root, refl);
  nx.reason = test::exit_reason(BasicExitReason::EptViolation);
  nx.idt_vectoring_info = test::vectoring_irq(0x30);
  nx.guest_phys = 0x7000;
  n.nested_exit = em.emit(nx);
  es_record rq = at(ES_KIND_DECISION, 2, 1, n.root, n.nested_exit);
  rq.reason = ES_DECISION_REQUEUE_FROM_VECTORING;
  rq.intr_info = irq;
  n.requeue = em.emit(rq);
  es_record ri = at(ES_KIND_DECISION, 2, 1, n.root, n.requeue);
  ri.reason = ES_DECISION_INJECT_REINJECTED;
  ri.intr_info = irq;
  n.reinject = em.emit(ri);
  es_record ne2 = at(ES_KIND_NESTED_ENTRY, 2, 1, n.root, n.reinject);
  ne2.intr_info = irq;
  n.nested_entry = em.emit(ne2);
  es_record e2 = at(ES_KIND_VM_ENTRY, 2, 0, n.root, n.nested_entry);
  e2.intr_info = irq;
  e2.aux64 = 0x202;
  const uint64_t entry2 = em.emit(e2);
  es_record dl = at(ES_KIND_DELIVERY, 2, 0, n.root, entry2);
  dl.intr_info = irq;
  n.delivery = em.emit(dl);
  em.run_end(ES_END_GUEST_EXIT);
}

TEST(ChainsAcrossLevelsTest, NestedReflectAndL1ReinjectionShowLevelsAndDeciders) {
  Nested n;
  auto c = test::record_and_check("nested_chain.db", [&](test::Emitter& em) { nested_chain(em, n); });
  // A correct nested reinjection: one delivery, nothing for the checker.
  EXPECT_TRUE(c.offline.empty()) << c.offline[0].explanation;

  const test::CliRun r = test::run_cli("chains '" + c.path + "' --chain " + std::to_string(n.root));
  ASSERT_EQ(r.code, 0) << r.err;
  // Every event line is marked with the level and the deciding hypervisor.
  EXPECT_NE(r.out.find("#" + std::to_string(n.l0_exit) + " "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("L2(L0)  VM_EXIT"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("L2(L0)  NESTED_EXIT"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("L2(L1)  NESTED_ENTRY"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("L2      DELIVERY"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("across levels: L2(L1), L2(L0), L2"), std::string::npos) << r.out;
  // Both interruptions: L0's exit and the nested exit reflected to L1.
  EXPECT_NE(r.out.find("interrupted: #" + std::to_string(n.l0_exit) + " EPT_VIOLATION"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("interrupted: #" + std::to_string(n.nested_exit) + " nested exit EPT_VIOLATION"),
            std::string::npos)
      << r.out;
  // L1's decisions, marked as L1's.
  EXPECT_NE(r.out.find("decision:    #" + std::to_string(n.requeue) + " REQUEUE_FROM_VECTORING IRQ 0x30  [L2(L1)]"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("decision:    #" + std::to_string(n.reinject) + " INJECT_REINJECTED IRQ 0x30  [L2(L1)]"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("REFLECT_TO_L1 IRQ 0x30  [L2(L0)]"), std::string::npos) << r.out;
  // The nested transitions.
  EXPECT_NE(r.out.find("nested exit: #" + std::to_string(n.nested_exit) + " L2 -> L1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("nested entry: #" + std::to_string(n.nested_entry) + " L1 -> L2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("outcome:     delivered after reinjection (#" + std::to_string(n.delivery) + ")"),
            std::string::npos)
      << r.out;
}

TEST(ChainsAcrossLevelsTest, L1ReinjectingAnEventL2AlreadyReceivedIsInjectedTwice) {
  Nested n;
  uint64_t bad = 0;
  auto c = test::record_and_check("nested_twice.db", [&](test::Emitter& em) {
    nested_chain(em, n);
    es_record again = at(ES_KIND_NESTED_ENTRY, 2, 1, n.root, n.delivery);
    again.intr_info = test::irq(0x30);
    bad = em.emit(again);
  });
  const auto v = test::of_rule(c.offline, check::RuleId::InjectedTwice);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].events, (std::vector<uint64_t>{n.delivery, bad}));
  EXPECT_EQ(v[0].level, 2);
  EXPECT_EQ(v[0].hv_level, 1);
  EXPECT_EQ(test::keys(c.recorded), test::keys(c.offline));
}

}  // namespace
}  // namespace es
