// Nested VMX scenarios: L0 runs L2 for L1 (the same vmm code on L0's emulated VMX). Each
// test asserts the chain across levels a nested-KVM developer would check.
#include <gtest/gtest.h>

#include "hv/arch/exceptions.h"
#include "tests/vmm/record_log.h"

namespace es::test {
namespace {

using arch::BasicExitReason;
using arch::IdtVectoringInfo;
using arch::InterruptionType;

bool is_nested_exit(const es_record& r, BasicExitReason reason) {
  return r.kind == ES_KIND_NESTED_EXIT && arch::ExitReason(r.reason).basic() == reason;
}

std::vector<es_record> l0_decisions(const RecordLog& log, uint32_t reason) {
  return log.where(
      [&](const es_record& r) { return r.kind == ES_KIND_DECISION && r.reason == reason && r.hv_level == 0; });
}
std::vector<es_record> l1_decisions(const RecordLog& log, uint32_t reason) {
  return log.where(
      [&](const es_record& r) { return r.kind == ES_KIND_DECISION && r.reason == reason && r.hv_level == 1; });
}

// Seed "nested VMX interrupt injection while IDT-vectoring is valid": L1's interrupt comes due
// while L2 is delivering an IRQ L1 injected (interrupted by an EPT violation L0 handles). L0
// must finish that delivery first (immediate exit), so L1 never sees EXTERNAL_INTERRUPT with
// valid IDT-vectoring (Vol. 3C 28.2.4: an external-interrupt exit never carries it).
TEST(NestedIrqVectoringTest, L0FinishesL2DeliveryBeforeExternalInterruptExitToL1) {
  const RecordLog log = run_scenario("nested-irq-vectoring");
  ASSERT_TRUE(EndedCleanly(log));
  const auto ext = log.where([](const es_record& r) { return is_nested_exit(r, BasicExitReason::ExternalInterrupt); });
  ASSERT_GE(ext.size(), 1u) << "L1's interrupt never reached it";
  for (const auto& e : ext) EXPECT_FALSE(IdtVectoringInfo(e.idt_vectoring_info).valid()) << "nested exit #" << e.id;
  // The collision really happened: L0 requeued L2's IRQ from its EPT violation and asked for
  // an immediate exit, and the IRQ was delivered before the nested exit.
  const auto imm = l0_decisions(log, ES_DECISION_IMMEDIATE_EXIT);
  ASSERT_EQ(imm.size(), 1u);
  const auto requeue = l0_decisions(log, ES_DECISION_REQUEUE_FROM_VECTORING);
  ASSERT_EQ(requeue.size(), 1u);
  EXPECT_EQ(requeue[0].intr_info, irq(0x20));
  EXPECT_EQ(requeue[0].level, 2);
  const auto deliveries =
      log.where([](const es_record& r) { return r.kind == ES_KIND_DELIVERY && r.intr_info == irq(0x20); });
  ASSERT_EQ(deliveries.size(), 1u);
  EXPECT_EQ(deliveries[0].level, 2);
  EXPECT_EQ(deliveries[0].origin, requeue[0].origin);
  EXPECT_GT(deliveries[0].id, imm[0].id);
  EXPECT_LT(deliveries[0].id, ext.back().id);
  // L1 did not have to requeue anything: the delivery completed before it got control.
  EXPECT_TRUE(l1_decisions(log, ES_DECISION_REQUEUE_FROM_VECTORING).empty());
}

// --bug exit-with-vectoring: the old behaviour the seed thread fixed. L1 gets
// EXTERNAL_INTERRUPT with IDT-vectoring = the IRQ still being delivered, requeues it itself.
TEST(NestedIrqVectoringTest, BugSwitchExitsToL1WithValidVectoring) {
  const RecordLog log =
      run_scenario("nested-irq-vectoring", {}, [](hv::VmmConfig& l0) { l0.bug_exit_with_vectoring = true; });
  ASSERT_TRUE(EndedCleanly(log));
  const auto bad = log.where([](const es_record& r) {
    return is_nested_exit(r, BasicExitReason::ExternalInterrupt) && IdtVectoringInfo(r.idt_vectoring_info).valid();
  });
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(IdtVectoringInfo(bad[0].idt_vectoring_info).vector(), 0x20);
  EXPECT_TRUE(l0_decisions(log, ES_DECISION_IMMEDIATE_EXIT).empty());
  const auto l1_requeue = l1_decisions(log, ES_DECISION_REQUEUE_FROM_VECTORING);
  ASSERT_EQ(l1_requeue.size(), 1u);
  EXPECT_EQ(l1_requeue[0].origin, bad[0].origin);
}

// An EPT violation in L0's EPT during L2's delivery of an event L1 injected: L0 handles it and
// reinjects into L2 itself; L1 never sees the exit.
TEST(NestedEptReinjectTest, L0HandlesItsEptViolationAndReinjectsIntoL2) {
  const RecordLog log = run_scenario("nested-ept-reinject");
  ASSERT_TRUE(EndedCleanly(log));
  const auto vexit = log.where(
      [](const es_record& r) { return r.kind == ES_KIND_VM_EXIT && IdtVectoringInfo(r.idt_vectoring_info).valid(); });
  ASSERT_EQ(vexit.size(), 1u);
  EXPECT_EQ(arch::ExitReason(vexit[0].reason).basic(), BasicExitReason::EptViolation);
  EXPECT_EQ(vexit[0].level, 2);
  const uint64_t origin = vexit[0].origin;
  // L1 injected it (its chain starts with L1's decisions) ...
  const auto l1_inject = l1_decisions(log, ES_DECISION_INJECT_NEW);
  ASSERT_EQ(l1_inject.size(), 1u);
  EXPECT_EQ(l1_inject[0].origin, origin);
  // ... L0 kept the exit, requeued and reinjected ...
  const auto chain = log.chain(origin);
  auto has = [&](uint32_t reason, uint8_t hv) {
    for (const auto& r : chain)
      if (r.kind == ES_KIND_DECISION && r.reason == reason && r.hv_level == hv) return true;
    return false;
  };
  EXPECT_TRUE(has(ES_DECISION_HANDLE_IN_L0, 0));
  EXPECT_TRUE(has(ES_DECISION_REQUEUE_FROM_VECTORING, 0));
  EXPECT_TRUE(has(ES_DECISION_EPT_MAP, 0));
  EXPECT_TRUE(has(ES_DECISION_INJECT_REINJECTED, 0));
  EXPECT_FALSE(has(ES_DECISION_REQUEUE_FROM_VECTORING, 1));
  // ... and L1 never saw an exit for it.
  EXPECT_TRUE(log.where([](const es_record& r) { return is_nested_exit(r, BasicExitReason::EptViolation); }).empty());
  EXPECT_EQ(log.where([&](const es_record& r) { return r.kind == ES_KIND_DELIVERY && r.origin == origin; }).size(), 1u);
}

// L2 #PF intercepted by L1 during delivery of an IRQ L1 injected: L1 gets EXCEPTION_NMI with
// the #PF and IDT-vectoring = the IRQ, fixes the page and reinjects the IRQ.
TEST(NestedExceptionReflectTest, L1GetsPageFaultWithIrqInVectoringAndReinjects) {
  const RecordLog log = run_scenario("nested-exception-reflect");
  ASSERT_TRUE(EndedCleanly(log));
  const auto pf_exits =
      log.where([](const es_record& r) { return is_nested_exit(r, BasicExitReason::ExceptionOrNmi); });
  ASSERT_EQ(pf_exits.size(), 2u);
  EXPECT_EQ(arch::ExitIntrInfo(pf_exits[0].intr_info).vector(), arch::kPF);
  ASSERT_TRUE(IdtVectoringInfo(pf_exits[0].idt_vectoring_info).valid());
  EXPECT_EQ(IdtVectoringInfo(pf_exits[0].idt_vectoring_info).vector(), 0x20);
  // The second #PF is at an instruction, no delivery in progress.
  EXPECT_FALSE(IdtVectoringInfo(pf_exits[1].idt_vectoring_info).valid());
  const uint64_t origin = pf_exits[0].origin;
  const auto requeue = l1_decisions(log, ES_DECISION_REQUEUE_FROM_VECTORING);
  ASSERT_EQ(requeue.size(), 1u);
  EXPECT_EQ(requeue[0].origin, origin);
  EXPECT_EQ(l1_decisions(log, ES_DECISION_FIX_PAGE_FAULT).size(), 2u);
  const auto reinject = l1_decisions(log, ES_DECISION_INJECT_REINJECTED);
  ASSERT_EQ(reinject.size(), 1u);
  EXPECT_EQ(reinject[0].origin, origin);
  const auto nentry = log.where([&](const es_record& r) {
    return r.kind == ES_KIND_NESTED_ENTRY && r.intr_info == irq(0x20) && r.id > reinject[0].id;
  });
  ASSERT_GE(nentry.size(), 1u);
  EXPECT_EQ(log.where([&](const es_record& r) { return r.kind == ES_KIND_DELIVERY && r.origin == origin; }).size(), 1u);
}

// A physical NMI while L2 handles its own NMI: an NMI exit that L0 keeps and hands to its
// host; L2 gets exactly its own NMI, L1 never sees the physical one.
TEST(NmiExitHostTest, PhysicalNmiGoesToL0HostNotToL1OrL2) {
  const RecordLog log = run_scenario("nmi-exit-host");
  ASSERT_TRUE(EndedCleanly(log));
  const auto nmi_exits = log.where([](const es_record& r) {
    return r.kind == ES_KIND_VM_EXIT && arch::ExitReason(r.reason).basic() == BasicExitReason::ExceptionOrNmi &&
           arch::ExitIntrInfo(r.intr_info).type() == InterruptionType::Nmi;
  });
  ASSERT_EQ(nmi_exits.size(), 1u);
  EXPECT_EQ(nmi_exits[0].level, 2);
  const auto host = l0_decisions(log, ES_DECISION_HOST_NMI);
  ASSERT_EQ(host.size(), 1u);
  EXPECT_EQ(host[0].cause, nmi_exits[0].id);
  EXPECT_TRUE(log.where([](const es_record& r) { return is_nested_exit(r, BasicExitReason::ExceptionOrNmi); }).empty());
  const auto l2_nmis = log.where([](const es_record& r) {
    return r.kind == ES_KIND_DELIVERY && arch::EntryIntrInfo(r.intr_info).type() == InterruptionType::Nmi;
  });
  ASSERT_EQ(l2_nmis.size(), 1u);
  // The physical NMI arrived inside L2's NMI handler, i.e. after L2's NMI delivery.
  EXPECT_GT(nmi_exits[0].id, l2_nmis[0].id);
}

// FRED "VMX nested-exception support": ExitIntrInfo bit 13 is set exactly when the exit's
// exception was raised during another event's delivery (it mirrors IDT-vectoring's valid bit),
// in the silicon's exits and in what L1 receives.
TEST(FredNestedExceptionTest, Bit13MirrorsIdtVectoringValid) {
  const RecordLog log = run_scenario("fred-nested-exception");
  ASSERT_TRUE(EndedCleanly(log));
  size_t with = 0, without = 0;
  for (const auto& r : log.records) {
    if (r.kind != ES_KIND_VM_EXIT && r.kind != ES_KIND_NESTED_EXIT) continue;
    if (arch::ExitReason(r.reason).basic() != BasicExitReason::ExceptionOrNmi) continue;
    const arch::ExitIntrInfo info(r.intr_info);
    EXPECT_EQ(info.nested_exception(), IdtVectoringInfo(r.idt_vectoring_info).valid()) << "record #" << r.id;
    (info.nested_exception() ? with : without)++;
  }
  EXPECT_GE(with, 2u);     // the silicon's exit and L1's nested exit for the #PF during delivery
  EXPECT_GE(without, 2u);  // the same for the #PF at an instruction
  // Without the feature the bit is never set.
  const RecordLog plain = run_scenario("nested-exception-reflect");
  for (const auto& r : plain.records) {
    if (r.kind == ES_KIND_VM_EXIT || r.kind == ES_KIND_NESTED_EXIT) {
      EXPECT_FALSE(arch::ExitIntrInfo(r.intr_info).nested_exception()) << "record #" << r.id;
    }
  }
}

// Seed "async_pf: force a nested vmexit if the injected #PF is async_pf": an asynchronous #PF
// for L2 while L1 intercepts #PF is a nested VM exit to L1 (qualification = the token), never
// an injection into L2; --bug async-pf-into-l2 injects it and L2's handler sees the token.
TEST(NestedAsyncPfTest, AsyncPageFaultBecomesNestedExitToL1) {
  const RecordLog log = run_scenario("nested-async-pf");
  ASSERT_TRUE(EndedCleanly(log));
  EXPECT_NE(log.result.console.find("handler ran 0x0000000000000000"), std::string::npos) << log.result.console;
  const auto raise = log.where([](const es_record& r) {
    return r.kind == ES_KIND_RAISE && arch::EntryIntrInfo(r.intr_info).vector() == arch::kPF && r.hv_level == 0;
  });
  ASSERT_EQ(raise.size(), 1u);
  const uint64_t token = raise[0].guest_linear;
  EXPECT_EQ(raise[0].guest_phys, 0x600000u);
  const auto exits = log.where([](const es_record& r) { return is_nested_exit(r, BasicExitReason::ExceptionOrNmi); });
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(arch::ExitIntrInfo(exits[0].intr_info).vector(), arch::kPF);
  EXPECT_EQ(exits[0].qualification, token);
  EXPECT_EQ(exits[0].origin, raise[0].id);
  EXPECT_FALSE(IdtVectoringInfo(exits[0].idt_vectoring_info).valid());
  EXPECT_TRUE(log.where([](const es_record& r) {
                   return r.kind == ES_KIND_DELIVERY && arch::EntryIntrInfo(r.intr_info).vector() == arch::kPF;
                 })
                  .empty());
}

TEST(NestedAsyncPfTest, BugSwitchInjectsTheAsyncPageFaultIntoL2) {
  const RecordLog log = run_scenario("nested-async-pf", {}, [](hv::VmmConfig& l0) { l0.bug_async_pf_into_l2 = true; });
  ASSERT_TRUE(EndedCleanly(log));
  EXPECT_NE(log.result.console.find("handler ran 0x0000000000000001"), std::string::npos) << log.result.console;
  EXPECT_TRUE(log.where([](const es_record& r) { return is_nested_exit(r, BasicExitReason::ExceptionOrNmi); }).empty());
  const auto delivered = log.where([](const es_record& r) {
    return r.kind == ES_KIND_DELIVERY && arch::EntryIntrInfo(r.intr_info).vector() == arch::kPF && r.level == 2;
  });
  ASSERT_EQ(delivered.size(), 1u);
  EXPECT_EQ(delivered[0].guest_linear, 0x1001u);  // L2 got a token where it expects a fault address
}

}  // namespace
}  // namespace es::test
