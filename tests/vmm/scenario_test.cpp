// One test per scenario, named after the behaviour it shows, asserting the chain a KVM
// developer would check in the recording: which exit interrupted which delivery, what L0
// requeued and reinjected, and what finally reached the guest.
#include <gtest/gtest.h>

#include <cstring>

#include "hv/arch/exceptions.h"
#include "hv/arch/exit_qualification.h"
#include "tests/vmm/record_log.h"

namespace es::test {
namespace {

using arch::BasicExitReason;
using arch::IdtVectoringInfo;
using arch::InterruptionType;

// Vol. 3C 28.2.4: an EPT violation while pushing the IRQ's frame reports the IRQ in
// IDT-vectoring info; KVM requeues it (__vmx_complete_interrupts) and reinjects it.
TEST(IdtVectoringReinjectTest, IrqDeliveryEptViolationIsRequeuedAndReinjected) {
  const RecordLog log = run_scenario("irq-ept-reinject");
  ASSERT_TRUE(EndedCleanly(log));
  EXPECT_NE(log.result.console.find("IRQ 0x20 delivered"), std::string::npos);

  const auto raises = log.where([](const es_record& r) { return r.kind == ES_KIND_RAISE && r.intr_info == irq(0x20); });
  ASSERT_EQ(raises.size(), 1u);
  const uint64_t origin = raises[0].id;

  const auto vectoring_exits = log.where(
      [&](const es_record& r) { return r.kind == ES_KIND_VM_EXIT && IdtVectoringInfo(r.idt_vectoring_info).valid(); });
  ASSERT_EQ(vectoring_exits.size(), 1u);
  const es_record& ex = vectoring_exits[0];
  EXPECT_EQ(arch::ExitReason(ex.reason).basic(), BasicExitReason::EptViolation);
  const IdtVectoringInfo vec(ex.idt_vectoring_info);
  EXPECT_EQ(vec.vector(), 0x20);
  EXPECT_EQ(vec.type(), InterruptionType::ExternalInterrupt);
  EXPECT_EQ(ex.origin, origin);
  // The push is a data write to the stack page 0x7E000 through a translated linear address.
  const arch::EptViolationQual q(ex.qualification);
  EXPECT_TRUE(q.write());
  EXPECT_TRUE(q.linear_address_valid());
  EXPECT_EQ(ex.guest_phys & ~0xFFFull, 0x7E000u);

  const auto chain = log.chain(origin);
  auto find_after = [&](size_t from, auto pred) {
    for (size_t i = from; i < chain.size(); ++i)
      if (pred(chain[i])) return i;
    return chain.size();
  };
  const size_t i_exit = find_after(0, [&](const es_record& r) { return r.id == ex.id; });
  const size_t i_requeue = find_after(i_exit, [](const es_record& r) {
    return r.kind == ES_KIND_DECISION && r.reason == ES_DECISION_REQUEUE_FROM_VECTORING;
  });
  const size_t i_map = find_after(i_requeue, [](const es_record& r) {
    return r.kind == ES_KIND_DECISION && r.reason == ES_DECISION_EPT_MAP && r.guest_phys == 0x7E000;
  });
  const size_t i_reinject = find_after(i_map, [](const es_record& r) {
    return r.kind == ES_KIND_DECISION && r.reason == ES_DECISION_INJECT_REINJECTED && r.intr_info == irq(0x20);
  });
  const size_t i_entry =
      find_after(i_reinject, [](const es_record& r) { return r.kind == ES_KIND_VM_ENTRY && r.intr_info == irq(0x20); });
  const size_t i_delivery =
      find_after(i_entry, [](const es_record& r) { return r.kind == ES_KIND_DELIVERY && r.intr_info == irq(0x20); });
  EXPECT_LT(i_exit, chain.size());
  EXPECT_LT(i_requeue, chain.size()) << "no requeue after the vectoring exit";
  EXPECT_LT(i_map, chain.size()) << "no EPT map of the stack page in the chain";
  EXPECT_LT(i_reinject, chain.size()) << "no reinjection";
  EXPECT_LT(i_entry, chain.size()) << "no VM entry injecting the IRQ again";
  EXPECT_LT(i_delivery, chain.size()) << "IRQ never delivered";
  // Exactly one delivery: the reinjection did not double the IRQ.
  EXPECT_EQ(log.where([](const es_record& r) { return r.kind == ES_KIND_DELIVERY && r.intr_info == irq(0x20); }).size(),
            1u);
}

// Software interrupts found in IDT-vectoring keep their type and the VM-exit instruction
// length; reinjection uses it as the VM-entry instruction length (Vol. 3C 28.2.4, 27.6.1.1),
// so the return RIP pushed is the instruction after INT n / INT3 (the guest checks it).
TEST(SoftIntEptTest, SoftwareEventsReinjectedWithInstructionLength) {
  const RecordLog log = run_scenario("softint-ept");
  ASSERT_TRUE(EndedCleanly(log));
  const auto vexits = log.where(
      [](const es_record& r) { return r.kind == ES_KIND_VM_EXIT && IdtVectoringInfo(r.idt_vectoring_info).valid(); });
  ASSERT_EQ(vexits.size(), 2u);
  EXPECT_EQ(IdtVectoringInfo(vexits[0].idt_vectoring_info).vector(), 0x80);
  EXPECT_EQ(IdtVectoringInfo(vexits[0].idt_vectoring_info).type(), InterruptionType::SoftwareInterrupt);
  EXPECT_EQ(vexits[0].instr_len, 2u);
  EXPECT_EQ(IdtVectoringInfo(vexits[1].idt_vectoring_info).vector(), arch::kBP);
  EXPECT_EQ(IdtVectoringInfo(vexits[1].idt_vectoring_info).type(), InterruptionType::SoftwareException);
  EXPECT_EQ(vexits[1].instr_len, 1u);
  const auto entries = log.where(
      [](const es_record& r) { return r.kind == ES_KIND_VM_ENTRY && arch::EntryIntrInfo(r.intr_info).valid(); });
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(arch::EntryIntrInfo(entries[0].intr_info).type(), InterruptionType::SoftwareInterrupt);
  EXPECT_EQ(entries[0].instr_len, 2u);
  EXPECT_EQ(arch::EntryIntrInfo(entries[1].intr_info).type(), InterruptionType::SoftwareException);
  EXPECT_EQ(entries[1].instr_len, 1u);
}

// The guest's own #PF handler: no VM exit for the faults (EPT mode, #PF not intercepted);
// each #PF is raised and delivered inside the guest with CR2 = the touched address.
TEST(GuestPfTest, GuestHandlesItsOwnPageFaultsWithoutExits) {
  const RecordLog log = run_scenario("guest-pf");
  ASSERT_TRUE(EndedCleanly(log));
  EXPECT_TRUE(log.exits(BasicExitReason::ExceptionOrNmi).empty());
  const auto pf_deliveries = log.where([](const es_record& r) {
    return r.kind == ES_KIND_DELIVERY && arch::EntryIntrInfo(r.intr_info).vector() == arch::kPF;
  });
  ASSERT_EQ(pf_deliveries.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(pf_deliveries[i].guest_linear, 0x800000u + 0x200000u * i);
    EXPECT_EQ(pf_deliveries[i].intr_error & arch::pf_error::kPresent, 0u);  // not present
    EXPECT_NE(pf_deliveries[i].intr_error & arch::pf_error::kWrite, 0u);    // a write
  }
}

// Guest #PF during IRQ delivery with #PF intercepted: exit 0 with the #PF in the exit
// interruption info and the IRQ in IDT-vectoring; the #PF is reflected, outranks the IRQ's
// reinjection (KVM kvm_check_and_inject_events) and the IRQ is lost, as on hardware.
TEST(PfDuringIrqTest, ReflectedPageFaultOutranksIrqWhichIsLost) {
  const RecordLog log = run_scenario("pf-during-irq");
  ASSERT_TRUE(EndedCleanly(log));
  EXPECT_NE(log.result.console.find("first IRQ lost"), std::string::npos) << log.result.console;
  const auto pf_exits = log.exits(BasicExitReason::ExceptionOrNmi);
  ASSERT_GE(pf_exits.size(), 1u);
  const es_record& ex = pf_exits[0];
  EXPECT_EQ(arch::ExitIntrInfo(ex.intr_info).vector(), arch::kPF);
  EXPECT_TRUE(arch::ExitIntrInfo(ex.intr_info).error_code_valid());
  ASSERT_TRUE(IdtVectoringInfo(ex.idt_vectoring_info).valid());
  EXPECT_EQ(IdtVectoringInfo(ex.idt_vectoring_info).vector(), 0x20);
  EXPECT_EQ(ex.qualification & ~0xFFFull, 0x800000u);  // CR2: a push into the unmapped IST page
  const uint64_t irq_origin = ex.origin;
  const auto requeue = log.where([&](const es_record& r) {
    return r.kind == ES_KIND_DECISION && r.reason == ES_DECISION_REQUEUE_FROM_VECTORING && r.origin == irq_origin;
  });
  ASSERT_EQ(requeue.size(), 1u);
  const auto injected_pf = log.where([](const es_record& r) {
    return r.kind == ES_KIND_DECISION && r.reason == ES_DECISION_INJECT_NEW &&
           arch::EntryIntrInfo(r.intr_info).vector() == arch::kPF;
  });
  ASSERT_EQ(injected_pf.size(), 1u);
  EXPECT_EQ(injected_pf[0].aux64, ex.qualification);  // the #PF carries CR2 to the guest
  const auto discarded = log.decisions(ES_DECISION_DISCARD);
  ASSERT_EQ(discarded.size(), 1u);
  EXPECT_EQ(discarded[0].origin, irq_origin);
  // The first IRQ never reaches its handler; the second one does.
  const auto deliveries =
      log.where([](const es_record& r) { return r.kind == ES_KIND_DELIVERY && r.intr_info == irq(0x20); });
  ASSERT_EQ(deliveries.size(), 1u);
  EXPECT_NE(deliveries[0].origin, irq_origin);
}

// Vol. 3A 6.15 Table 6-5: #NP while delivering #GP (contributory, contributory) -> #DF,
// which keeps the chain of the #GP.
TEST(DoubleFaultPromotionTest, ContributoryDuringContributoryDeliversDoubleFault) {
  const RecordLog log = run_scenario("double-fault");
  ASSERT_TRUE(EndedCleanly(log));
  const auto gp = log.where([](const es_record& r) {
    return r.kind == ES_KIND_RAISE && arch::EntryIntrInfo(r.intr_info).vector() == arch::kGP;
  });
  ASSERT_EQ(gp.size(), 1u);
  const auto df = log.where([](const es_record& r) {
    return r.kind == ES_KIND_DELIVERY && arch::EntryIntrInfo(r.intr_info).vector() == arch::kDF;
  });
  ASSERT_EQ(df.size(), 1u);
  EXPECT_EQ(df[0].origin, gp[0].origin) << "#DF must stay in the #GP's chain";
  EXPECT_EQ(df[0].intr_error, 0u);
  EXPECT_TRUE(log.exits(BasicExitReason::TripleFault).empty());
}

// A fault while delivering #DF: shutdown -> TRIPLE_FAULT exit with IDT-vectoring not valid
// (Vol. 3C 28.2.4); L0 ends the VM and says so.
TEST(TripleFaultEventTest, FaultDuringDoubleFaultDeliveryExitsWithTripleFault) {
  const RecordLog log = run_scenario("triple-fault");
  EXPECT_EQ(log.result.end_reason, static_cast<uint32_t>(ES_END_TRIPLE_FAULT)) << log.result.message;
  const auto tf = log.exits(BasicExitReason::TripleFault);
  ASSERT_EQ(tf.size(), 1u);
  EXPECT_FALSE(IdtVectoringInfo(tf[0].idt_vectoring_info).valid());
  EXPECT_EQ(log.decisions(ES_DECISION_SHUTDOWN).size(), 1u);
  const auto gp = log.where([](const es_record& r) {
    return r.kind == ES_KIND_RAISE && arch::EntryIntrInfo(r.intr_info).vector() == arch::kGP;
  });
  ASSERT_EQ(gp.size(), 1u);
  EXPECT_EQ(tf[0].origin, gp[0].origin) << "the triple fault ends the #GP's chain";
  EXPECT_EQ(log.of_kind(ES_KIND_RUN_END).size(), 1u);
}

// Vol. 3A 6.7.1: an NMI raised inside the NMI handler is held until IRET; L0 sees NMIs
// blocked, opens an NMI window, and injects after the NMI-window exit.
TEST(NmiBlockingTest, SecondNmiWaitsForIret) {
  const RecordLog log = run_scenario("nmi-blocking");
  ASSERT_TRUE(EndedCleanly(log));
  const auto deliveries = log.where([](const es_record& r) {
    return r.kind == ES_KIND_DELIVERY && arch::EntryIntrInfo(r.intr_info).type() == InterruptionType::Nmi;
  });
  ASSERT_EQ(deliveries.size(), 2u);
  EXPECT_GE(log.decisions(ES_DECISION_OPEN_NMI_WINDOW).size(), 1u);
  const auto window_exits = log.exits(BasicExitReason::NmiWindow);
  ASSERT_GE(window_exits.size(), 1u);
  EXPECT_GT(window_exits[0].id, deliveries[0].id);
  EXPECT_LT(window_exits[0].id, deliveries[1].id);
  // The window opened only after the handler's IRETQ: the exit's RIP is outside the handler,
  // i.e. not the RIP of the first delivery's handler range (the guest also checks nesting).
  EXPECT_NE(window_exits[0].rip, deliveries[0].rip);
}

// Timer ticks wake HLT: each tick is a host timer exit, a raised IRQ, an injection and a
// delivery; nothing is injected twice or lost.
TEST(TimerIrqTest, EveryTickWakesHltAndIsDeliveredOnce) {
  const RecordLog log = run_scenario("timer-irq", [](hv::VmmConfig& c) { c.guest_arg = 10; });
  ASSERT_TRUE(EndedCleanly(log));
  const auto raised = log.where([](const es_record& r) { return r.kind == ES_KIND_RAISE && r.intr_info == irq(0x20); });
  const auto delivered =
      log.where([](const es_record& r) { return r.kind == ES_KIND_DELIVERY && r.intr_info == irq(0x20); });
  ASSERT_GE(delivered.size(), 10u);
  for (const auto& d : delivered) {
    size_t same = 0;
    for (const auto& d2 : delivered) same += d2.origin == d.origin;
    EXPECT_EQ(same, 1u) << "IRQ chain " << d.origin << " delivered twice";
  }
  EXPECT_LE(raised.size(), delivered.size() + 1);
  EXPECT_GE(log.decisions(ES_DECISION_HALT).size(), 10u);
}

// Two recordings of the same scenario are identical, record for record.
TEST(DeterminismTest, EveryScenarioRecordsTheSameEventsTwice) {
  for (const auto& s : hv::scenarios()) {
    const RecordLog a = run_scenario(s.name);
    const RecordLog b = run_scenario(s.name);
    ASSERT_EQ(a.records.size(), b.records.size()) << s.name;
    for (size_t i = 0; i < a.records.size(); ++i)
      ASSERT_EQ(std::memcmp(&a.records[i], &b.records[i], sizeof(es_record)), 0) << s.name << " record " << i;
    EXPECT_GT(a.records.size(), 10u) << s.name;
  }
}

// The drop policy only concerns hardware exceptions: an IRQ in IDT-vectoring info is
// requeued under both policies, and the two runs reach the same guest-visible end.
TEST(PolicyTest, BothPoliciesRequeueInterruptsFromVectoring) {
  const RecordLog kvm = run_scenario("pf-during-irq");
  const RecordLog drop = run_scenario("pf-during-irq", [](hv::VmmConfig& c) { c.policy = "drop-hw-exceptions"; });
  ASSERT_TRUE(EndedCleanly(kvm));
  ASSERT_TRUE(EndedCleanly(drop));
  // The vectoring event there is an IRQ: both policies requeue it.
  EXPECT_EQ(drop.decisions(ES_DECISION_DROP_FROM_VECTORING).size(), 0u);
  EXPECT_EQ(drop.decisions(ES_DECISION_REQUEUE_FROM_VECTORING).size(),
            kvm.decisions(ES_DECISION_REQUEUE_FROM_VECTORING).size());
  EXPECT_GE(drop.decisions(ES_DECISION_REQUEUE_FROM_VECTORING).size(), 1u);
  EXPECT_EQ(drop.result.console, kvm.result.console);
}

// Seed "must a hardware exception reported in IDT-vectoring info be reinjected?": a #PF whose
// delivery hits an EPT violation while a timer tick comes due. Reinjected, the guest's #PF
// handler runs; dropped, the tick is taken first, its handler removes the fault's cause, the
// instruction no longer faults, and the #PF the guest architecturally took is never delivered.
TEST(PolicyTest, DroppingAHardwareExceptionFromVectoringLosesItWhenItsCauseGoesAway) {
  const RecordLog kvm = run_scenario("exception-vectoring-policy");
  const RecordLog drop =
      run_scenario("exception-vectoring-policy", [](hv::VmmConfig& c) { c.policy = "drop-hw-exceptions"; });
  ASSERT_TRUE(EndedCleanly(kvm));
  ASSERT_TRUE(EndedCleanly(drop));
  EXPECT_NE(kvm.result.console.find("#PF handler ran 0x0000000000000001"), std::string::npos) << kvm.result.console;
  EXPECT_NE(drop.result.console.find("#PF handler ran 0x0000000000000000"), std::string::npos) << drop.result.console;
  // The precondition: the #PF is in IDT-vectoring info of an EPT violation under both policies.
  for (const RecordLog* log : {&kvm, &drop}) {
    const auto v = log->where([](const es_record& r) {
      return r.kind == ES_KIND_VM_EXIT && IdtVectoringInfo(r.idt_vectoring_info).valid() &&
             IdtVectoringInfo(r.idt_vectoring_info).vector() == arch::kPF;
    });
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(arch::ExitReason(v[0].reason).basic(), BasicExitReason::EptViolation);
  }
  EXPECT_EQ(kvm.decisions(ES_DECISION_DROP_FROM_VECTORING).size(), 0u);
  const auto dropped = drop.decisions(ES_DECISION_DROP_FROM_VECTORING);
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(arch::EntryIntrInfo(dropped[0].intr_info).vector(), arch::kPF);
  auto pf_deliveries = [](const RecordLog& log) {
    return log
        .where([](const es_record& r) {
          return r.kind == ES_KIND_DELIVERY && arch::EntryIntrInfo(r.intr_info).vector() == arch::kPF;
        })
        .size();
  };
  EXPECT_EQ(pf_deliveries(kvm), 1u);
  EXPECT_EQ(pf_deliveries(drop), 0u);
}

TEST(LimitsTest, MaxExitsStopsTheRunAndSaysSo) {
  const RecordLog log = run_scenario("timer-irq", [](hv::VmmConfig& c) {
    c.guest_arg = 0;
    c.max_exits = 50;
  });
  EXPECT_EQ(log.result.end_reason, static_cast<uint32_t>(ES_END_LIMIT));
  EXPECT_EQ(log.result.exits, 50u);
  EXPECT_EQ(log.of_kind(ES_KIND_VM_EXIT).size(), 50u);
}

// KVM vmx_cancel_injection(): an injection written to the VM-entry fields but never entered
// (here the run stops at --max-exits right after the reinjection was decided) is taken back
// and recorded, so the chain shows the IRQ was still pending, not delivered or lost.
TEST(CancelInjectionTest, LimitAfterReinjectionCancelsIt) {
  const RecordLog full = run_scenario("irq-ept-reinject");
  const auto vexit = full.where(
      [](const es_record& r) { return r.kind == ES_KIND_VM_EXIT && IdtVectoringInfo(r.idt_vectoring_info).valid(); });
  ASSERT_EQ(vexit.size(), 1u);
  uint64_t exits_until_vectoring = 0;
  for (const auto& r : full.records) {
    if (r.kind == ES_KIND_VM_EXIT) ++exits_until_vectoring;
    if (r.id == vexit[0].id) break;
  }
  const RecordLog cut =
      run_scenario("irq-ept-reinject", [&](hv::VmmConfig& c) { c.max_exits = exits_until_vectoring; });
  EXPECT_EQ(cut.result.end_reason, static_cast<uint32_t>(ES_END_LIMIT));
  const auto cancels = cut.decisions(ES_DECISION_CANCEL_INJECTION);
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_EQ(cancels[0].intr_info, irq(0x20));
  EXPECT_EQ(cancels[0].origin, vexit[0].origin);
  EXPECT_TRUE(cut.where([](const es_record& r) { return r.kind == ES_KIND_DELIVERY; }).empty());
  // Only the first injection entered (and hit the EPT violation); the reinjection did not.
  EXPECT_EQ(cut.where([](const es_record& r) { return r.kind == ES_KIND_VM_ENTRY && r.intr_info == irq(0x20); }).size(),
            1u);
}

}  // namespace
}  // namespace es::test
