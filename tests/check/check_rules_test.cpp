// Each checker rule on a hand-built recording that breaks it, and a near miss that must not
// trigger it. Every recording is a real SQLite file written by the recorder with the live
// checker attached; the offline check must find what the live checker recorded.
#include <gtest/gtest.h>

#include "hv/arch/controls.h"
#include "hv/arch/exceptions.h"
#include "tests/check/check_support.h"

namespace es {
namespace {

using arch::BasicExitReason;
using check::RuleId;
using test::Emitter;

constexpr uint64_t kIfSet = arch::rflags::kFixed1 | arch::rflags::kIF;  // 0x202

uint32_t nmi() { return arch::EntryIntrInfo::make(2, arch::InterruptionType::Nmi).raw(); }

uint64_t entry(Emitter& em, uint32_t word, uint64_t origin, uint64_t cause, uint32_t interruptibility, uint64_t rflags,
               uint16_t kind = ES_KIND_VM_ENTRY, uint8_t level = 1) {
  es_record r{};
  r.kind = kind;
  r.level = level;
  r.intr_info = word;
  r.origin = origin;
  r.cause = cause;
  r.rip = 0x1000;
  r.aux = interruptibility;
  r.aux64 = rflags;
  return em.emit(r);
}

uint64_t exit_at(Emitter& em, BasicExitReason reason, uint32_t vectoring, uint64_t origin, uint64_t cause, uint64_t rip,
                 uint64_t gpa, uint16_t kind = ES_KIND_VM_EXIT, uint8_t level = 1) {
  es_record r{};
  r.kind = kind;
  r.level = level;
  r.reason = test::exit_reason(reason);
  r.idt_vectoring_info = vectoring;
  r.origin = origin;
  r.cause = cause;
  r.rip = rip;
  r.guest_phys = gpa;
  return em.emit(r);
}

// The live checker wrote exactly what `exitscope check` finds.
void expect_live_equals_offline(const test::Checked& c) { EXPECT_EQ(test::keys(c.recorded), test::keys(c.offline)); }

// --- exit-ext-int-with-vectoring -----------------------------------------------------------

TEST(CheckRulesTest, ExternalInterruptExitWithValidVectoringIsReported) {
  uint64_t root = 0, bad = 0, nested_bad = 0;
  auto c = test::record_and_check("ext_int.db", [&](Emitter& em) {
    root = em.raise(test::irq(0x20));
    const uint64_t e = entry(em, test::irq(0x20), root, root, 0, kIfSet);
    bad = exit_at(em, BasicExitReason::ExternalInterrupt, test::vectoring_irq(0x20), root, e, 0x1000, 0);
    // The nested form: L0 exits to L1 with EXTERNAL_INTERRUPT while L2's delivery was pending.
    nested_bad = exit_at(em, BasicExitReason::ExternalInterrupt, test::vectoring_irq(0x20), root, bad, 0x1000, 0,
                         ES_KIND_NESTED_EXIT, 2);
    em.run_end(ES_END_LIMIT);
  });
  const auto v = test::of_rule(c.offline, RuleId::ExitExtIntWithVectoring);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].events, std::vector<uint64_t>{bad});
  EXPECT_EQ(v[0].chain, root);
  EXPECT_EQ(v[1].events, std::vector<uint64_t>{nested_bad});
  EXPECT_EQ(v[1].level, 2);
  EXPECT_NE(v[0].explanation.find("28.2.4"), std::string::npos) << v[0].explanation;
  EXPECT_NE(v[0].explanation.find("unexpected, valid vectoring info"), std::string::npos);
  expect_live_equals_offline(c);
}

TEST(CheckRulesTest, ExternalInterruptExitWithoutVectoringAndEptExitWithVectoringAreFine) {
  auto c = test::record_and_check("ext_int_ok.db", [&](Emitter& em) {
    const uint64_t root = em.raise(test::irq(0x20));
    const uint64_t e = entry(em, test::irq(0x20), root, root, 0, kIfSet);
    exit_at(em, BasicExitReason::EptViolation, test::vectoring_irq(0x20), root, e, 0x1000, 0x9000);
    exit_at(em, BasicExitReason::ExternalInterrupt, 0, 0, e, 0x1000, 0);
    em.run_end(ES_END_LIMIT);
  });
  EXPECT_TRUE(c.offline.empty());
  EXPECT_TRUE(c.recorded.empty());
}

// --- injected-twice --------------------------------------------------------------------------

TEST(CheckRulesTest, EventDeliveredTwiceAndReinjectedAfterDeliveryAreReported) {
  uint64_t root = 0, first = 0, second = 0, late_entry = 0;
  auto c = test::record_and_check("twice.db", [&](Emitter& em) {
    root = em.raise(test::irq(0x20));
    const uint64_t e = entry(em, test::irq(0x20), root, root, 0, kIfSet);
    first = em.delivery(test::irq(0x20), root, e);
    // A hypervisor that requeued the IRQ although its delivery completed.
    late_entry = entry(em, test::irq(0x20), root, first, 0, kIfSet);
    second = em.delivery(test::irq(0x20), root, late_entry);
    em.run_end(ES_END_GUEST_EXIT);
  });
  const auto v = test::of_rule(c.offline, RuleId::InjectedTwice);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].events, (std::vector<uint64_t>{first, late_entry}));  // the entry after the delivery
  EXPECT_EQ(v[1].events, (std::vector<uint64_t>{first, second}));      // the second delivery
  EXPECT_EQ(v[1].chain, root);
  EXPECT_EQ(c.offline.size(), 2u);
  expect_live_equals_offline(c);
}

TEST(CheckRulesTest, SameVectorInTwoChainsOrAtTwoLevelsIsNotInjectedTwice) {
  auto c = test::record_and_check("twice_ok.db", [&](Emitter& em) {
    for (int i = 0; i < 2; ++i) {  // two timer ticks: two chains, one delivery each
      const uint64_t root = em.raise(test::irq(0x20));
      const uint64_t e = entry(em, test::irq(0x20), root, root, 0, kIfSet);
      em.delivery(test::irq(0x20), root, e);
    }
    // One chain delivered once at L2 and once at L1 (a nested exit reflected the event to L1).
    const uint64_t root = em.raise(test::irq(0x30));
    es_record d{};
    d.kind = ES_KIND_DELIVERY;
    d.level = 2;
    d.intr_info = test::irq(0x30);
    d.origin = root;
    em.emit(d);
    em.delivery(test::irq(0x30), root, root);
    em.run_end(ES_END_GUEST_EXIT);
  });
  EXPECT_TRUE(test::of_rule(c.offline, RuleId::InjectedTwice).empty());
  EXPECT_TRUE(c.offline.empty());
}

// --- event-lost ------------------------------------------------------------------------------

// A hypervisor discards IRQ 0x20 after an EPT violation interrupted its delivery, although no
// fault raised during that delivery outranked it (unlike pf-during-irq, where the #PF does and
// the IRQ is superseded, as on hardware); the run ends normally.
void lost_irq(Emitter& em, uint64_t& root, uint64_t& last, uint32_t end, bool discard = true) {
  root = em.raise(test::irq(0x20));
  const uint64_t e = entry(em, test::irq(0x20), root, root, 0, kIfSet);
  const uint64_t x = exit_at(em, BasicExitReason::EptViolation, test::vectoring_irq(0x20), root, e, 0x1000, 0x9000);
  last = em.decision(ES_DECISION_REQUEUE_FROM_VECTORING, test::irq(0x20), root, x);
  if (discard) last = em.decision(ES_DECISION_DISCARD, test::irq(0x20), root, x);
  em.run_end(end);
}

TEST(CheckRulesTest, IrqNeverDeliveredInARunThatEndedNormallyIsLost) {
  uint64_t root = 0, last = 0;
  auto c = test::record_and_check("lost.db", [&](Emitter& em) { lost_irq(em, root, last, ES_END_GUEST_EXIT); });
  ASSERT_EQ(c.offline.size(), 1u);
  const check::Violation& v = c.offline[0];
  EXPECT_EQ(v.rule, RuleId::EventLost);
  EXPECT_EQ(v.chain, root);
  EXPECT_EQ(v.events, (std::vector<uint64_t>{root, last}));  // the root and the last event of the chain
  EXPECT_NE(v.explanation.find("IRQ 0x20"), std::string::npos) << v.explanation;
  // Emitted at finish, before the recorder finished: it is in the file.
  ASSERT_EQ(c.recorded.size(), 1u);
  expect_live_equals_offline(c);
}

// Requeued from IDT-vectoring and not yet reinjected when a limit stopped the run: it may still
// have been delivered. (A DISCARD decision would be a discard whatever ended the run.)
TEST(CheckRulesTest, UndeliveredIrqAtALimitIsPendingNotLost) {
  uint64_t root = 0, last = 0;
  auto c = test::record_and_check("pending.db", [&](Emitter& em) { lost_irq(em, root, last, ES_END_LIMIT, false); });
  EXPECT_TRUE(c.offline.empty());
  EXPECT_TRUE(c.recorded.empty());
}

// The same requeued IRQ in a run the guest ended: nothing reinjected it, nothing explains it.
TEST(CheckRulesTest, RequeuedIrqNeverReinjectedInARunThatEndedNormallyIsLost) {
  uint64_t root = 0, last = 0;
  auto c = test::record_and_check("requeued_lost.db",
                                  [&](Emitter& em) { lost_irq(em, root, last, ES_END_GUEST_EXIT, false); });
  ASSERT_EQ(c.offline.size(), 1u);
  EXPECT_EQ(c.offline[0].rule, RuleId::EventLost);
  EXPECT_EQ(c.offline[0].events, (std::vector<uint64_t>{root, last}));
  EXPECT_NE(c.offline[0].explanation.find("nothing the architecture does explains it"), std::string::npos);
}

TEST(CheckRulesTest, DeliveredCoalescedCollapsedAndPromotedEventsAreNotLost) {
  auto c = test::record_and_check("not_lost.db", [&](Emitter& em) {
    // Delivered after a reinjection (its members are released once delivered).
    const uint64_t irq = em.raise(test::irq(0x20));
    const uint64_t e = entry(em, test::irq(0x20), irq, irq, 0, kIfSet);
    const uint64_t x = exit_at(em, BasicExitReason::EptViolation, test::vectoring_irq(0x20), irq, e, 0x1000, 0x9000);
    const uint64_t re = em.decision(ES_DECISION_INJECT_REINJECTED, test::irq(0x20), irq, x);
    em.delivery(test::irq(0x20), irq, re);
    // Coalesced (one IRR bit per vector) and collapsed (NMI latch): what hardware does.
    const uint64_t irq2 = em.raise(test::irq(0x30));
    em.decision(ES_DECISION_DISCARD, test::irq(0x30), irq2, irq2, 1);
    const uint32_t nmi = arch::EntryIntrInfo::make(2, arch::InterruptionType::Nmi).raw();
    const uint64_t n = em.raise(nmi);
    em.decision(ES_DECISION_DISCARD, nmi, n, n, 2);
    // #GP promoted to #DF (the #DF chain is caused by the #GP's root and delivered).
    const uint64_t gp = em.raise(test::hw_exc(arch::kGP, true));
    const uint64_t df = em.raise(test::hw_exc(arch::kDF, true), gp);
    em.delivery(test::hw_exc(arch::kDF, true), df, df);
    em.run_end(ES_END_GUEST_EXIT);
  });
  EXPECT_TRUE(c.offline.empty()) << (c.offline.empty() ? "" : c.offline[0].explanation);
}

// The drop-hw-exceptions policy leaves a #PF found in IDT-vectoring info unreinjected: the
// guest never sees an exception it would have seen on hardware (Vol. 3C 28.2.4).
TEST(CheckRulesTest, AnExceptionDroppedFromIdtVectoringIsLost) {
  uint64_t pf = 0;
  auto c = test::record_and_check("dropped.db", [&](Emitter& em) {
    pf = em.raise(test::hw_exc(arch::kPF, true));
    const uint64_t x =
        exit_at(em, BasicExitReason::EptViolation, test::vectoring_exc(arch::kPF, true), pf, pf, 0x2000, 0x4000);
    em.decision(ES_DECISION_DROP_FROM_VECTORING, test::hw_exc(arch::kPF, true), pf, x);
    em.run_end(ES_END_GUEST_EXIT);
  });
  ASSERT_EQ(c.offline.size(), 1u);
  EXPECT_EQ(c.offline[0].rule, RuleId::EventLost);
  EXPECT_EQ(c.offline[0].chain, pf);
  EXPECT_NE(c.offline[0].explanation.find("not reinjected"), std::string::npos) << c.offline[0].explanation;
  expect_live_equals_offline(c);
}

// --- reinjection-loop ------------------------------------------------------------------------

TEST(CheckRulesTest, TenExitsAtTheSameRipAndGpaWithoutDeliveryAreAReinjectionLoop) {
  uint64_t root = 0, first = 0, last = 0;
  auto c = test::record_and_check("loop.db", [&](Emitter& em) {
    root = em.raise(test::irq(0x20));
    uint64_t cause = root;
    for (int i = 0; i < 10; ++i) {
      const uint64_t e = entry(em, test::irq(0x20), root, cause, 0, kIfSet);
      last = exit_at(em, BasicExitReason::EptViolation, test::vectoring_irq(0x20), root, e, 0x1000, 0x9000);
      if (i == 0) first = last;
      cause = em.decision(ES_DECISION_INJECT_REINJECTED, test::irq(0x20), root, last);
    }
    em.run_end(ES_END_LIMIT);  // stopped by a limit: loop still running, reported at finish
  });
  const auto v = test::of_rule(c.offline, RuleId::ReinjectionLoop);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].count, 10u);
  EXPECT_EQ(v[0].chain, root);
  EXPECT_EQ(v[0].events, (std::vector<uint64_t>{first, last}));
  EXPECT_LT(v[0].first_ns, v[0].last_ns);
  EXPECT_NE(v[0].explanation.find("rip 0x1000 gpa 0x9000"), std::string::npos) << v[0].explanation;
  EXPECT_EQ(c.offline.size(), 1u);
  expect_live_equals_offline(c);
  ASSERT_EQ(c.recorded.size(), 1u);
  EXPECT_EQ(c.recorded[0].count, 10u);  // aux = count
}

TEST(CheckRulesTest, LoopEndedByDeliveryIsReportedWithItsCountOnce) {
  auto c = test::record_and_check("loop_delivered.db", [&](Emitter& em) {
    const uint64_t root = em.raise(test::irq(0x20));
    uint64_t cause = root;
    for (int i = 0; i < 8; ++i) {
      const uint64_t e = entry(em, test::irq(0x20), root, cause, 0, kIfSet);
      cause = exit_at(em, BasicExitReason::EptViolation, test::vectoring_irq(0x20), root, e, 0x1000, 0x9000);
    }
    em.delivery(test::irq(0x20), root, cause);
    em.run_end(ES_END_GUEST_EXIT);
  });
  const auto v = test::of_rule(c.offline, RuleId::ReinjectionLoop);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].count, 8u);
  expect_live_equals_offline(c);
}

TEST(CheckRulesTest, RepeatedExitsThatMakeProgressOrStayBelowThresholdAreNotALoop) {
  auto c = test::record_and_check("loop_ok.db", [&](Emitter& em) {
    // Advancing RIP: 12 exits, each one instruction further.
    const uint64_t a = em.raise(test::irq(0x20));
    for (uint64_t i = 0; i < 12; ++i)
      exit_at(em, BasicExitReason::EptViolation, test::vectoring_irq(0x20), a, a, 0x1000 + 3 * i, 0x9000);
    em.delivery(test::irq(0x20), a, a);
    // Advancing GPA: 12 exits, each on the next page (the handler maps one page per exit).
    const uint64_t b = em.raise(test::irq(0x21));
    for (uint64_t i = 0; i < 12; ++i)
      exit_at(em, BasicExitReason::EptViolation, test::vectoring_irq(0x21), b, b, 0x1000, 0x9000 + 0x1000 * i);
    em.delivery(test::irq(0x21), b, b);
    // Same RIP and GPA, but only twice (below kReinjectionLoopThreshold = 3), then delivered.
    const uint64_t d = em.raise(test::irq(0x22));
    for (int i = 0; i < 2; ++i)
      exit_at(em, BasicExitReason::EptViolation, test::vectoring_irq(0x22), d, d, 0x1000, 0x9000);
    em.delivery(test::irq(0x22), d, d);
    // 2 + delivery + 2: the delivery in between is progress.
    const uint64_t f = em.raise(test::irq(0x23));
    for (int i = 0; i < 5; ++i) {
      if (i == 2)
        em.delivery(test::irq(0x23), f, f);
      else
        exit_at(em, BasicExitReason::EptViolation, test::vectoring_irq(0x23), f, f, 0x1000, 0x9000);
    }
    em.run_end(ES_END_GUEST_EXIT);
  });
  EXPECT_TRUE(test::of_rule(c.offline, RuleId::ReinjectionLoop).empty());
  EXPECT_TRUE(c.offline.empty()) << c.offline[0].explanation;
}

// --- no-progress-loop ------------------------------------------------------------------------

// A synchronous exit (no IDT-vectoring) at `rip`, then the VM entry that resumes at `resume`.
uint64_t exit_and_resume(Emitter& em, BasicExitReason reason, uint64_t rip, uint64_t gpa, uint64_t qual,
                         uint64_t resume, uint8_t level = 1, uint32_t flags = 0) {
  es_record x{};
  x.kind = ES_KIND_VM_EXIT;
  x.level = level;
  x.flags = flags;
  x.reason = test::exit_reason(reason);
  x.rip = rip;
  x.guest_phys = gpa;
  x.qualification = qual;
  const uint64_t id = em.emit(x);
  es_record e{};
  e.kind = ES_KIND_VM_ENTRY;
  e.level = level;
  e.rip = resume;
  e.flags = flags;
  e.cause = id;
  em.emit(e);
  return id;
}

// An EPT violation whose mapping is never installed: the same exit at one RIP and GPA, each
// entry back at the faulting instruction (a fault-like exit leaves RIP there, SDM 27.1). Five
// repetitions, then the run is stopped: reported once with the count, the unit and the span.
TEST(CheckRulesTest, TheSameEptViolationAgainAndAgainIsANoProgressLoop) {
  uint64_t first = 0, last = 0;
  auto c = test::record_and_check("no_progress.db", [&](Emitter& em) {
    for (int i = 0; i < 5; ++i) {
      last = exit_and_resume(em, BasicExitReason::EptViolation, 0x401000, 0x7f000, 0x181, 0x401000);
      if (i == 0) first = last;
    }
    em.run_end(ES_END_STOPPED);
  });
  const auto v = test::of_rule(c.offline, RuleId::NoProgressLoop);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].count, 5u);
  EXPECT_EQ(v[0].events, (std::vector<uint64_t>{first, last}));
  EXPECT_NE(v[0].explanation.find("5 identical VM exits on vcpu 0"), std::string::npos) << v[0].explanation;
  EXPECT_NE(v[0].explanation.find("EPT_VIOLATION"), std::string::npos) << v[0].explanation;
  EXPECT_NE(v[0].explanation.find("gpa=0x7f000"), std::string::npos) << v[0].explanation;
  EXPECT_EQ(c.offline.size(), 1u);
  expect_live_equals_offline(c);
}

// An excerpt cut just after an exit starts with its kvm_page_fault (traced by KVM's EPT /
// NPF handler after the exit): with two more identical exits, that is three repetitions.
TEST(CheckRulesTest, AKvmPageFaultBeforeTheFirstExitStandsForTheExitTheExcerptCut) {
  auto c = test::record_and_check("cut_pf.db", [&](Emitter& em) {
    es_record pf{};
    pf.kind = ES_KIND_CONTEXT;
    pf.reason = ES_CONTEXT_PAGE_FAULT;
    pf.rip = 0x401000;
    pf.guest_phys = 0x7f000;
    em.emit(pf);
    es_record e{};
    e.kind = ES_KIND_VM_ENTRY;
    e.rip = 0x401000;
    em.emit(e);
    for (int i = 0; i < 2; ++i) exit_and_resume(em, BasicExitReason::EptViolation, 0x401000, 0x7f000, 0x181, 0x401000);
    em.run_end(ES_END_STOPPED);
  });
  const auto v = test::of_rule(c.offline, RuleId::NoProgressLoop);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].count, 3u);
  // Without the leading kvm_page_fault, two exits are not yet a loop.
  auto d = test::record_and_check("two_exits.db", [&](Emitter& em) {
    for (int i = 0; i < 2; ++i) exit_and_resume(em, BasicExitReason::EptViolation, 0x401000, 0x7f000, 0x181, 0x401000);
    em.run_end(ES_END_STOPPED);
  });
  EXPECT_TRUE(test::of_rule(d.offline, RuleId::NoProgressLoop).empty());
}

// Not loops: the same RIP with advancing GPAs (a handler touching new pages), an I/O exit at one
// RIP whose entries resume past the instruction (a guest polling a port), host interrupts while
// the guest spins at one RIP, two repetitions only, and repetitions split by a delivery.
TEST(CheckRulesTest, ExitsThatShowProgressAreNotANoProgressLoop) {
  auto c = test::record_and_check("progress.db", [&](Emitter& em) {
    for (uint64_t i = 0; i < 6; ++i)
      exit_and_resume(em, BasicExitReason::EptViolation, 0x401000, 0x7f000 + 0x1000 * i, 0x181, 0x401000);
    for (int i = 0; i < 6; ++i) exit_and_resume(em, BasicExitReason::IoInstruction, 0x402000, 0, 0x600048, 0x402001);
    for (int i = 0; i < 6; ++i) exit_and_resume(em, BasicExitReason::ExternalInterrupt, 0x403000, 0, 0, 0x403000);
    for (int i = 0; i < 2; ++i) exit_and_resume(em, BasicExitReason::EptViolation, 0x404000, 0x9000, 0x182, 0x404000);
    const uint64_t irq = em.raise(test::irq(0x20));
    em.delivery(test::irq(0x20), irq, irq);
    for (int i = 0; i < 2; ++i) exit_and_resume(em, BasicExitReason::EptViolation, 0x404000, 0x9000, 0x182, 0x404000);
    em.run_end(ES_END_GUEST_EXIT);
  });
  EXPECT_TRUE(test::of_rule(c.offline, RuleId::NoProgressLoop).empty()) << c.offline[0].explanation;
}

// An L2 I/O exit L1 never completes: L0 sees it again and again at level 2 (its own exits at
// level 1 in between do not break the run of another level).
TEST(CheckRulesTest, AnL2ExitReExecutedForeverIsALoopAtLevelTwo) {
  auto c = test::record_and_check("no_progress_l2.db", [&](Emitter& em) {
    for (int i = 0; i < 4; ++i) {
      exit_and_resume(em, BasicExitReason::IoInstruction, 0x200000, 0, 0x700048, 0x200000, 2);
      exit_and_resume(em, BasicExitReason::Vmresume, 0x300000 + 3 * static_cast<uint64_t>(i), 0, 0,
                      0x300003 + 3 * static_cast<uint64_t>(i), 1);
    }
    em.run_end(ES_END_LIMIT);
  });
  const auto v = test::of_rule(c.offline, RuleId::NoProgressLoop);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].count, 4u);
  EXPECT_EQ(v[0].level, 2u);
}

// --- no-progress-cycle -----------------------------------------------------------------------

// The Hyper-V-on-KVM hang, by hand: L1 VMRESUMEs (an exit at L1 that completes: L0 enters L2
// elsewhere), L2 takes a preemption-timer exit before running anything (re-entered at the same
// RIP: not completed), again and again. Unit of 2 exits; reported once the vCPU has come round
// to the unit's start a third time (5 exits), with the unit, the count and the span.
uint64_t l2_timer_turn(Emitter& em, uint64_t l1_rip, uint64_t l2_rip) {
  const uint64_t first = exit_and_resume(em, BasicExitReason::Vmresume, l1_rip, 0, 0, l2_rip, 1);
  exit_and_resume(em, BasicExitReason::PreemptionTimer, l2_rip, 0, 0, l2_rip, 2);
  return first;
}

TEST(CheckRulesTest, TwoExitsTakenInTurnWithoutProgressAreANoProgressCycle) {
  uint64_t first = 0, last = 0;
  auto c = test::record_and_check("cycle.db", [&](Emitter& em) {
    first = l2_timer_turn(em, 0x3000, 0x2000);
    l2_timer_turn(em, 0x3000, 0x2000);
    last = exit_and_resume(em, BasicExitReason::Vmresume, 0x3000, 0, 0, 0x2000, 1);
    em.run_end(ES_END_STOPPED);
  });
  const auto v = test::of_rule(c.offline, RuleId::NoProgressCycle);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].count, 5u);
  EXPECT_EQ(v[0].unit, 2u);
  EXPECT_EQ(v[0].events, (std::vector<uint64_t>{first, last}));
  EXPECT_NE(v[0].explanation.find("5 VM exits on vcpu 0 go round the same 2 exits"), std::string::npos)
      << v[0].explanation;
  EXPECT_NE(v[0].explanation.find("\"VMRESUME rip=0x3000\" at L1 -> \"PREEMPTION_TIMER rip=0x2000\" at L2"),
            std::string::npos)
      << v[0].explanation;
  EXPECT_TRUE(test::of_rule(c.offline, RuleId::NoProgressLoop).empty());
  expect_live_equals_offline(c);
  // Two turns without the start of a third are not yet a cycle.
  auto d = test::record_and_check("cycle_short.db", [&](Emitter& em) {
    l2_timer_turn(em, 0x3000, 0x2000);
    l2_timer_turn(em, 0x3000, 0x2000);
    em.run_end(ES_END_STOPPED);
  });
  EXPECT_TRUE(test::of_rule(d.offline, RuleId::NoProgressCycle).empty());
}

// Units of 3 and 4 exits; a unit that is a shorter one repeated (A B A B) is reported once, as
// the shorter one; identical exits (A A A) are no-progress-loop's, not a cycle.
TEST(CheckRulesTest, ACycleIsReportedOnceByItsShortestUnit) {
  auto c = test::record_and_check("cycle_units.db", [&](Emitter& em) {
    for (int turn = 0; turn < 3; ++turn) {  // unit of 3, re-entered at each exit's RIP
      exit_and_resume(em, BasicExitReason::EptViolation, 0x1000, 0x5000, 0x181, 0x1000);
      exit_and_resume(em, BasicExitReason::IoInstruction, 0x1100, 0, 0x600048, 0x1100);
      exit_and_resume(em, BasicExitReason::Cpuid, 0x1200, 0, 0, 0x1200);
    }
    const uint64_t irq = em.raise(test::irq(0x20));
    em.delivery(test::irq(0x20), irq, irq);  // progress: ends it
    for (int turn = 0; turn < 4; ++turn) {   // A B A B ...: a unit of 2, not of 4
      exit_and_resume(em, BasicExitReason::EptViolation, 0x2000, 0x6000, 0x181, 0x2000);
      exit_and_resume(em, BasicExitReason::MsrRead, 0x2100, 0, 0, 0x2100);
    }
    em.delivery(test::irq(0x20), irq, irq);
    for (int turn = 0; turn < 3; ++turn) {  // a unit of 4
      exit_and_resume(em, BasicExitReason::EptViolation, 0x3000, 0x7000, 0x181, 0x3000);
      exit_and_resume(em, BasicExitReason::EptViolation, 0x3000, 0x7000, 0x181, 0x3000);
      exit_and_resume(em, BasicExitReason::MsrWrite, 0x3100, 0, 0, 0x3100);
      exit_and_resume(em, BasicExitReason::Cpuid, 0x3200, 0, 0, 0x3200);
    }
    em.run_end(ES_END_STOPPED);
  });
  const auto v = test::of_rule(c.offline, RuleId::NoProgressCycle);
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].unit, 3u);
  EXPECT_EQ(v[0].count, 9u);
  EXPECT_EQ(v[1].unit, 2u);
  EXPECT_EQ(v[1].count, 8u);
  EXPECT_EQ(v[2].unit, 4u);
  EXPECT_EQ(v[2].count, 12u);
  expect_live_equals_offline(c);
}

// Not cycles: two RIPs taken in turn with advancing GPAs (a copy loop touching new pages),
// advancing RIPs, a guest polling two ports in turn (every exit completed: entries past the
// instruction), turns split by a newly injected event, and exits whose RIP the trace does not say.
TEST(CheckRulesTest, ProgressIsNeverANoProgressCycle) {
  auto c = test::record_and_check("no_cycle.db", [&](Emitter& em) {
    for (uint64_t i = 0; i < 8; ++i) {
      exit_and_resume(em, BasicExitReason::EptViolation, 0x1000, 0x10000 + 0x1000 * i, 0x181, 0x1000);
      exit_and_resume(em, BasicExitReason::EptViolation, 0x1010, 0x80000 + 0x1000 * i, 0x182, 0x1010);
    }
    for (uint64_t i = 0; i < 8; ++i) {
      exit_and_resume(em, BasicExitReason::Cpuid, 0x2000 + 0x10 * i, 0, 0, 0x2000 + 0x10 * i);
      exit_and_resume(em, BasicExitReason::MsrRead, 0x2008 + 0x10 * i, 0, 0, 0x2008 + 0x10 * i);
    }
    for (int i = 0; i < 8; ++i) {
      exit_and_resume(em, BasicExitReason::IoInstruction, 0x3000, 0, 0x600048, 0x3001);
      exit_and_resume(em, BasicExitReason::IoInstruction, 0x3010, 0, 0x610048, 0x3011);
    }
    for (int i = 0; i < 8; ++i) {
      exit_and_resume(em, BasicExitReason::Hlt, 0x4000, 0, 0, 0x4000);
      exit_and_resume(em, BasicExitReason::MsrWrite, 0x4100, 0, 0, 0x4100);
      const uint64_t irq = em.raise(test::irq(0x30));
      em.decision(ES_DECISION_INJECT_NEW, test::irq(0x30), irq, irq);
    }
    for (int i = 0; i < 8; ++i) {  // a RIP not said is flagged so (a printed 0 is a RIP like any other)
      exit_and_resume(em, BasicExitReason::Hlt, 0, 0, 0, 0, 1, ES_FLAG_RIP_UNKNOWN);
      exit_and_resume(em, BasicExitReason::MsrWrite, 0x5100, 0, 0, 0x5100);
    }
    em.run_end(ES_END_STOPPED);
  });
  EXPECT_TRUE(test::of_rule(c.offline, RuleId::NoProgressCycle).empty())
      << (c.offline.empty() ? "" : c.offline[0].explanation);
}

// Linear in the records: bench/check/check_bench.cpp measures the loop rules per record at 400 k and
// 4 M records (speed is a benchmark's business, not a test's).

// --- nmi-while-blocked -----------------------------------------------------------------------

TEST(CheckRulesTest, NmiInjectedWhileBlockedByNmiIsReported) {
  uint64_t bad = 0, nested_bad = 0;
  auto c = test::record_and_check("nmi.db", [&](Emitter& em) {
    const uint64_t root = em.raise(nmi());
    bad = entry(em, nmi(), root, root, arch::interruptibility::kBlockingByNmi, kIfSet);
    nested_bad = entry(em, nmi(), root, bad, arch::interruptibility::kBlockingByNmi, kIfSet, ES_KIND_NESTED_ENTRY, 2);
    em.run_end(ES_END_LIMIT);
  });
  const auto v = test::of_rule(c.offline, RuleId::NmiWhileBlocked);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].events, std::vector<uint64_t>{bad});
  EXPECT_EQ(v[1].events, std::vector<uint64_t>{nested_bad});
  EXPECT_NE(v[0].explanation.find("27.3.1.5"), std::string::npos) << v[0].explanation;
  EXPECT_EQ(c.offline.size(), 2u);
  expect_live_equals_offline(c);
}

TEST(CheckRulesTest, NmiWithoutBlockingAndIrqWithNmiBlockingAreFine) {
  auto c = test::record_and_check("nmi_ok.db", [&](Emitter& em) {
    const uint64_t n = em.raise(nmi());
    entry(em, nmi(), n, n, arch::interruptibility::kBlockingBySti, kIfSet);  // STI blocking does not block NMIs
    em.delivery(nmi(), n, n);
    const uint64_t i = em.raise(test::irq(0x20));
    entry(em, test::irq(0x20), i, i, arch::interruptibility::kBlockingByNmi, kIfSet);
    em.delivery(test::irq(0x20), i, i);
    em.run_end(ES_END_GUEST_EXIT);
  });
  EXPECT_TRUE(c.offline.empty()) << c.offline[0].explanation;
}

// --- irq-window-closed -----------------------------------------------------------------------

TEST(CheckRulesTest, IrqInjectedWithIfClearOrStiOrMovSsBlockingIsReported) {
  uint64_t if_clear = 0, sti = 0, mov_ss = 0;
  auto c = test::record_and_check("irq_window.db", [&](Emitter& em) {
    const uint64_t root = em.raise(test::irq(0x20));
    if_clear = entry(em, test::irq(0x20), root, root, 0, arch::rflags::kFixed1);
    sti = entry(em, test::irq(0x20), root, if_clear, arch::interruptibility::kBlockingBySti, kIfSet);
    mov_ss = entry(em, test::irq(0x20), root, sti, arch::interruptibility::kBlockingByMovSs, kIfSet,
                   ES_KIND_NESTED_ENTRY, 2);
    em.run_end(ES_END_LIMIT);
  });
  const auto v = test::of_rule(c.offline, RuleId::IrqWindowClosed);
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].events, std::vector<uint64_t>{if_clear});
  EXPECT_NE(v[0].explanation.find("RFLAGS.IF = 0"), std::string::npos) << v[0].explanation;
  EXPECT_EQ(v[1].events, std::vector<uint64_t>{sti});
  EXPECT_NE(v[1].explanation.find("blocking by STI"), std::string::npos) << v[1].explanation;
  EXPECT_EQ(v[2].events, std::vector<uint64_t>{mov_ss});
  EXPECT_NE(v[2].explanation.find("blocking by MOV SS"), std::string::npos) << v[2].explanation;
  EXPECT_EQ(c.offline.size(), 3u);
  expect_live_equals_offline(c);
}

TEST(CheckRulesTest, IrqWithOpenWindowExceptionsWithIfClearAndUnrecordedRflagsAreFine) {
  auto c = test::record_and_check("irq_window_ok.db", [&](Emitter& em) {
    const uint64_t i = em.raise(test::irq(0x20));
    entry(em, test::irq(0x20), i, i, 0, kIfSet);
    em.delivery(test::irq(0x20), i, i);
    // Exceptions are not subject to IF (Vol. 3A 6.8.1).
    const uint64_t p = em.raise(test::hw_exc(arch::kPF, true));
    entry(em, test::hw_exc(arch::kPF, true), p, p, arch::interruptibility::kBlockingBySti, arch::rflags::kFixed1);
    em.delivery(test::hw_exc(arch::kPF, true), p, p);
    // A source that did not record RFLAGS (bit 1 clear): nothing to judge.
    const uint64_t k = em.raise(test::irq(0x21));
    entry(em, test::irq(0x21), k, k, 0, 0);
    em.delivery(test::irq(0x21), k, k);
    em.run_end(ES_END_GUEST_EXIT);
  });
  EXPECT_TRUE(c.offline.empty()) << c.offline[0].explanation;
}

// --- options, table, bus -------------------------------------------------------------------------

// --- l1-intercept-bypassed -----------------------------------------------------------------

es_record nested_entry(uint32_t exception_bitmap, uint32_t pfec_mask, uint32_t pfec_match) {
  es_record r{};
  r.kind = ES_KIND_NESTED_ENTRY;
  r.level = 2;
  r.hv_level = 1;
  r.qualification = exception_bitmap;
  r.guest_linear = pfec_mask | (static_cast<uint64_t>(pfec_match) << 32);
  return r;
}

uint64_t decide(Emitter& em, uint32_t decision, uint8_t vector, uint32_t error, uint8_t hv_level) {
  es_record r{};
  r.kind = ES_KIND_DECISION;
  r.reason = decision;
  r.level = 2;
  r.hv_level = hv_level;
  r.intr_info = arch::EntryIntrInfo::make(vector, arch::InterruptionType::HardwareException,
                                          arch::exception_has_error_code(vector))
                    .raw();
  r.intr_error = error;
  return em.emit(r);
}

TEST(CheckRulesTest, ExceptionL1InterceptsInjectedIntoL2ByL0IsReportedNearMissesAreNot) {
  uint64_t gp_entry = 0, bad_gp = 0, pf_entry = 0, bad_pf = 0;
  auto c = test::record_and_check("l1-intercept.db", [&](Emitter& em) {
    gp_entry = em.emit(nested_entry((1u << 13) | (1u << 14), 0, 0));  // L1 intercepts #GP and #PF
    bad_gp = decide(em, ES_DECISION_INJECT_NEW, 13, 0, 0);            // L0 injects #GP into L2: bypass
    decide(em, ES_DECISION_INJECT_NEW, 6, 0, 0);                      // #UD: L1 does not intercept it
    decide(em, ES_DECISION_INJECT_REINJECTED, 13, 0, 0);              // finishing an interrupted delivery
    decide(em, ES_DECISION_INJECT_NEW, 13, 0, 1);                     // L1's own injection into L2
    // #PF with error-code mask 1 / match 1: bit 14 decides only when (error & 1) == 1, else the
    // opposite (SDM 25.6.3); error 0 is not intercepted, error 1 is.
    pf_entry = em.emit(nested_entry(1u << 14, 1, 1));
    decide(em, ES_DECISION_INJECT_NEW, 14, 0, 0);
    bad_pf = decide(em, ES_DECISION_INJECT_NEW, 14, 1, 0);
    es_record nested_exit{};
    nested_exit.kind = ES_KIND_NESTED_EXIT;
    nested_exit.level = 2;
    em.emit(nested_exit);
    decide(em, ES_DECISION_INJECT_NEW, 14, 1, 0);  // L2 no longer runs
    em.run_end(ES_END_LIMIT);
  });
  const auto v = test::of_rule(c.offline, RuleId::L1InterceptBypassed);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].events, (std::vector<uint64_t>{gp_entry, bad_gp}));
  EXPECT_EQ(v[1].events, (std::vector<uint64_t>{pf_entry, bad_pf}));
  EXPECT_NE(v[0].explanation.find("#GP"), std::string::npos) << v[0].explanation;
  EXPECT_NE(v[0].explanation.find("25.6.3"), std::string::npos) << v[0].explanation;
  EXPECT_EQ(c.offline.size(), 2u);
  expect_live_equals_offline(c);
}

TEST(CheckRulesTest, OnlyTheSelectedRuleRuns) {
  uint64_t root = 0, last = 0;
  check::CheckOptions only_window;
  only_window.only = {RuleId::IrqWindowClosed};
  auto c = test::record_and_check(
      "only.db", [&](Emitter& em) { lost_irq(em, root, last, ES_END_GUEST_EXIT); }, only_window);
  EXPECT_TRUE(c.offline.empty());
  EXPECT_TRUE(c.recorded.empty());
}

TEST(CheckRulesTest, RuleTableHasStableIdsAndUniqueNames) {
  const auto rules = check::rules();
  ASSERT_EQ(rules.size(), 10u);
  const char* names[] = {"exit-ext-int-with-vectoring",
                         "injected-twice",
                         "event-lost",
                         "reinjection-loop",
                         "nmi-while-blocked",
                         "irq-window-closed",
                         "l1-intercept-bypassed",
                         "no-progress-loop",
                         "nmi-unblocking-ignored",
                         "no-progress-cycle"};
  for (uint32_t i = 0; i < 10; ++i) {
    EXPECT_EQ(static_cast<uint32_t>(rules[i].id), i + 1);
    EXPECT_EQ(rules[i].name, names[i]);
    EXPECT_EQ(check::find_rule(names[i]), &rules[i]);
    EXPECT_EQ(check::find_rule(i + 1), &rules[i]);
    EXPECT_FALSE(rules[i].description.empty());
  }
  EXPECT_EQ(check::find_rule("no-such-rule"), nullptr);
  EXPECT_EQ(check::find_rule(99u), nullptr);
}

// A subscriber that emits from its callback: every subscriber still sees records in id
// order, the emitting callback is not re-entered, and the nested record is not lost.
TEST(CheckRulesTest, ProbeBusDeliversRecordsEmittedFromCallbacksAfterTheCurrentOne) {
  struct Seen {
    probes::ProbeBus* bus = nullptr;
    std::vector<std::pair<uint64_t, uint16_t>> ids;
    int depth = 0, max_depth = 0;
  } emitter_side, other;
  probes::ProbeBus bus;
  emitter_side.bus = &bus;
  bus.subscribe(
      probes::kAllKinds,
      [](void* u, const es_record* r) {
        auto* s = static_cast<Seen*>(u);
        s->max_depth = std::max(s->max_depth, ++s->depth);
        s->ids.emplace_back(r->id, r->kind);
        if (r->kind == ES_KIND_VM_EXIT) {
          es_record v{};
          v.kind = ES_KIND_VIOLATION;
          v.cause = r->id;
          s->bus->emit(v);
        }
        --s->depth;
      },
      &emitter_side);
  bus.subscribe(
      probes::kAllKinds, [](void* u, const es_record* r) { static_cast<Seen*>(u)->ids.emplace_back(r->id, r->kind); },
      &other);
  es_record x{};
  x.kind = ES_KIND_VM_EXIT;
  bus.emit(x);
  es_record d{};
  d.kind = ES_KIND_DELIVERY;
  bus.emit(d);
  const std::vector<std::pair<uint64_t, uint16_t>> want = {
      {1, ES_KIND_VM_EXIT}, {2, ES_KIND_VIOLATION}, {3, ES_KIND_DELIVERY}};
  EXPECT_EQ(other.ids, want);
  EXPECT_EQ(emitter_side.ids, want);
  EXPECT_EQ(emitter_side.max_depth, 1);
}

// --- bounded memory (issue #18) --------------------------------------------------------------

// The offline checker forgets a settled chain once it has had no member for the settle window,
// and reads its members back (origin index) if one more comes. A requeue long after the
// delivery (here 300 timer chains later, a window of 16 records) must still be found, as the live
// checker, which forgets nothing, finds it (SDM Vol. 3C 28.2.4: only an event in valid
// IDT-vectoring info may be reinjected).
TEST(CheckRulesTest, ReinjectionLongAfterDeliveryIsReportedAfterTheChainWasForgotten) {
  uint64_t root = 0, first = 0, late_entry = 0, second = 0;
  check::CheckOptions small;
  small.settle_window = 16;
  auto c = test::record_and_check(
      "twice_late.db",
      [&](Emitter& em) {
        root = em.raise(test::irq(0x30));
        const uint64_t e = entry(em, test::irq(0x30), root, root, 0, kIfSet);
        first = em.delivery(test::irq(0x30), root, e);
        for (int i = 0; i < 300; ++i) {  // timer ticks, each its own chain, delivered
          const uint64_t t = em.raise(test::irq(0x20));
          const uint64_t te = entry(em, test::irq(0x20), t, t, 0, kIfSet);
          em.delivery(test::irq(0x20), t, te);
        }
        late_entry = entry(em, test::irq(0x30), root, first, 0, kIfSet);
        second = em.delivery(test::irq(0x30), root, late_entry);
        em.run_end(ES_END_GUEST_EXIT);
      },
      small);
  const auto v = test::of_rule(c.offline, RuleId::InjectedTwice);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].events, (std::vector<uint64_t>{first, late_entry}));
  EXPECT_EQ(v[1].events, (std::vector<uint64_t>{first, second}));
  EXPECT_EQ(v[1].chain, root);
  EXPECT_EQ(c.offline.size(), 2u);
  expect_live_equals_offline(c);
}

// The live checker has no recording to read a forgotten chain back from; it forgets settled
// chains into a temporary database on disk instead (issue #18). Expected, with a window of 16
// records over 300 delivered timer chains: it holds a few chains at the end, not 301; it forgot
// nearly all of them and recalled IRQ 0x30's chain when its late reinjection came; and it
// reports the same injected-twice pair the offline checker and a keep-everything checker do
// (SDM Vol. 3C 28.2.4).
TEST(CheckRulesTest, LiveCheckerForgetsSettledChainsToDiskAndReportsTheSame) {
  uint64_t root = 0, first = 0, late_entry = 0, second = 0;
  probes::ProbeBus bus;
  check::CheckOptions small;
  small.settle_window = 16;
  check::LiveChecker live(bus, small);
  check::Checker keep_all(small);  // no chain_history, no forget_to_disk: every chain stays
  bus.subscribe(
      probes::kAllKinds, [](void* u, const es_record* r) { static_cast<check::Checker*>(u)->feed(*r); }, &keep_all);
  probes::PluginHost host(bus);
  ASSERT_TRUE(live.install(host));
  Emitter em(bus);
  root = em.raise(test::irq(0x30));
  const uint64_t e = entry(em, test::irq(0x30), root, root, 0, kIfSet);
  first = em.delivery(test::irq(0x30), root, e);
  for (int i = 0; i < 300; ++i) {
    const uint64_t t = em.raise(test::irq(0x20));
    const uint64_t te = entry(em, test::irq(0x20), t, t, 0, kIfSet);
    em.delivery(test::irq(0x20), t, te);
  }
  late_entry = entry(em, test::irq(0x30), root, first, 0, kIfSet);
  second = em.delivery(test::irq(0x30), root, late_entry);
  em.run_end(ES_END_GUEST_EXIT);
  live.finish();
  keep_all.finish();
  host.unload_all();
  EXPECT_LT(live.checker().chains_held(), 20u);
  EXPECT_GT(live.checker().chains_forgotten(), 280u);
  EXPECT_EQ(live.checker().chains_recalled(), 1u);
  EXPECT_EQ(keep_all.chains_held(), 301u);
  const auto v = test::of_rule(live.violations(), RuleId::InjectedTwice);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].events, (std::vector<uint64_t>{first, late_entry}));
  EXPECT_EQ(v[1].events, (std::vector<uint64_t>{first, second}));
  EXPECT_EQ(v[1].chain, root);
  ASSERT_EQ(live.violations().size(), keep_all.violations().size());
  for (size_t i = 0; i < live.violations().size(); ++i) {
    EXPECT_EQ(live.violations()[i].rule, keep_all.violations()[i].rule);
    EXPECT_EQ(live.violations()[i].events, keep_all.violations()[i].events);
  }
}

}  // namespace
}  // namespace es
