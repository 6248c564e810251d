// The KVM linker (replay/import/kvm_linker.cpp) on the sequences real KVM produces that it used
// to get wrong, each written as Linux 6.1's ftrace prints it on AMD (the test bed's kernel) and
// each expectation written from the KVM source / AMD APM before the run:
//   - an injection KVM cancels before VMRUN and injects again (issue #16);
//   - an event whose delivery escalates to a shutdown (issue #14);
// The trace text goes through the real parser and linker, the chains through replay's
// build_chains, as `exitscope import` and `exitscope chains` do.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"
#include "hv/arch/svm.h"
#include "replay/chains.h"
#include "replay/import/text_import.h"

namespace es::test {
namespace {

using arch::EntryIntrInfo;
using arch::InterruptionType;
using replay::Outcome;

struct Linked {
  std::vector<es_record> records;
  std::vector<replay::Chain> chains;
  std::vector<es_record> of_kind(uint16_t kind) const {
    std::vector<es_record> v;
    for (const es_record& r : records)
      if (r.kind == kind) v.push_back(r);
    return v;
  }
  const replay::Chain* chain(uint64_t id) const {
    for (const auto& c : chains)
      if (c.id == id) return &c;
    return nullptr;
  }
};

// Lines "TIME: EVENT: BODY" of one vCPU thread, as a 6.1 tracefs instance prints them.
Linked link(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& l : lines) text += "    tb-kvm-guest-156     [000] .....     " + l + "\n";
  Linked out;
  auto parsed = import::parse_trace_text(text, {}, "t.txt");
  EXPECT_TRUE(parsed) << (parsed ? "" : parsed.error());
  if (!parsed) return out;
  out.records = parsed->records;
  std::vector<replay::Event> events;
  for (const es_record& r : out.records) events.push_back(replay::Event{r, 0});
  out.chains = replay::build_chains(std::move(events), {});
  return out;
}

std::string exit_line(const char* time, const char* reason, const char* rip, const char* intr_info) {
  return std::string(time) + ": kvm_exit: vcpu 0 reason " + reason + " rip " + rip +
         " info1 0x0000000100000006 info2 0x000000000000effe intr_info " + intr_info + " error_code 0x00000000";
}

uint32_t irq(uint8_t v) { return EntryIntrInfo::make(v, InterruptionType::ExternalInterrupt).raw(); }
uint32_t exc(uint8_t v) { return EntryIntrInfo::make(v, InterruptionType::HardwareException).raw(); }

// Chains whose original event is `word`.
std::vector<const replay::Chain*> chains_of(const Linked& l, uint32_t word) {
  std::vector<const replay::Chain*> v;
  for (const auto& c : l.chains)
    if (EntryIntrInfo(c.event_word).valid() && EntryIntrInfo(c.event_word).vector() == EntryIntrInfo(word).vector() &&
        EntryIntrInfo(c.event_word).type() == EntryIntrInfo(word).type())
      v.push_back(&c);
  return v;
}

// KVM 6.1 vcpu_enter_guest(): after kvm_check_and_inject_events() wrote EVENTINJ, a late
// request / signal takes the cancel_injection path; svm_cancel_injection() copies EVENTINJ to
// EXITINTINFO and svm_complete_interrupts() requeues IRQ 0x20 as injected, so the next entry
// attempt injects it again with "[reinjected]" and no kvm_entry between the two kvm_inj_virq.
// One event, one chain: cancel then inject again, delivered at the entry (the next exit no
// longer reports it in EXITINTINFO, APM Vol. 2 15.7.2).
TEST(KvmLinkerCancel, IrqCancelledBeforeVmrunAndInjectedAgainIsOneDeliveredChain_Issue16) {
  const Linked l = link({
      "9.319594: kvm_inj_virq: IRQ 0x20 [reinjected]",
      "9.319700: kvm_inj_virq: IRQ 0x20 [reinjected]",
      "9.319781: kvm_entry: vcpu 0, rip 0x102a",
      exit_line("9.319878", "io", "0x1041", "0x00000000"),
  });
  const auto irqs = chains_of(l, irq(0x20));
  ASSERT_EQ(irqs.size(), 1u) << "the second injection started a chain of its own";
  EXPECT_EQ(irqs[0]->outcome, Outcome::Delivered) << replay::to_string(irqs[0]->outcome);
  // Both injections in it, and the cancellation between them, said as inferred (ftrace has no
  // cancel event).
  const auto d = l.of_kind(ES_KIND_DECISION);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[1].reason, static_cast<uint32_t>(ES_DECISION_CANCEL_INJECTION));
  EXPECT_NE(d[1].flags & ES_FLAG_INFERRED, 0u);
  EXPECT_EQ(d[1].intr_info, irq(0x20));
  EXPECT_EQ(d[1].cause, d[0].id);
  EXPECT_EQ(d[2].reason, static_cast<uint32_t>(ES_DECISION_INJECT_REINJECTED));
  EXPECT_EQ(d[2].cause, d[1].id);
  for (const es_record& r : d) EXPECT_EQ(r.origin, irqs[0]->id);
  // The kvm_inj_virq count stays what ftrace shows: two INJECT_* decisions.
  EXPECT_EQ(d[0].reason, static_cast<uint32_t>(ES_DECISION_INJECT_REINJECTED));
}

// The same for an exception KVM reinjects from EXITINTINFO after an NPF during its delivery
// (svm_complete_interrupts -> kvm_requeue_exception), then cancels and injects again: the
// chain stays one and ends "delivered after reinjection".
TEST(KvmLinkerCancel, ReinjectedExceptionCancelledAndInjectedAgainStaysReinjectedThenDelivered_Issue16) {
  const Linked l = link({
      exit_line("10.953433", "npf", "0x101b", "0x80000300"),
      "10.953676: kvm_inj_exception: #DE [reinjected]",
      "10.953800: kvm_inj_exception: #DE [reinjected]",
      "10.954069: kvm_entry: vcpu 0, rip 0x101b",
      exit_line("10.954139", "io", "0x102f", "0x00000300"),
  });
  const auto de = chains_of(l, exc(arch::kDE));
  ASSERT_EQ(de.size(), 1u);
  EXPECT_EQ(de[0]->outcome, Outcome::ReinjectedThenDelivered) << replay::to_string(de[0]->outcome);
  EXPECT_EQ(l.of_kind(ES_KIND_DELIVERY).size(), 1u);
}

// A kernel that prints "[reinjected]" and does not on the second line injects a NEW event of
// the same vector (KVM requeues a cancelled injection as injected, always "[reinjected]"): that
// is not a cancellation, the first stays where it was.
TEST(KvmLinkerCancel, ASecondInjectionTheKernelCallsNewIsNotACancellation) {
  const Linked l = link({
      "9.319594: kvm_inj_virq: IRQ 0x20",
      "9.319700: kvm_inj_virq: IRQ 0x20",
      "9.319781: kvm_entry: vcpu 0, rip 0x102a",
  });
  for (const es_record& r : l.of_kind(ES_KIND_DECISION))
    EXPECT_NE(r.reason, static_cast<uint32_t>(ES_DECISION_CANCEL_INJECTION));
  EXPECT_EQ(chains_of(l, irq(0x20)).size(), 2u);
}

// Escalation on real KVM (the test bed's triple-fault guests): #UD intercepted (SVM always
// intercepts #UD), KVM fails to emulate and injects #UD; its delivery hits an unmapped page:
// NPF with EXITINTINFO = #UD; KVM reinjects it (cancelled once and injected again on the way);
// the delivery faults (#GP: vector beyond the IDT limit), #GP with #UD... the pair raises #DF,
// #DF's delivery faults too: shutdown (APM Vol. 2 8.2.9, SDM Vol. 3A 6.15 "Interrupt 8"), exit
// code 0x7f. EXITINTINFO at the shutdown names the event whose delivery started it (as QEMU's
// SVM writes it). One chain, from #UD to the triple fault; nothing in it was delivered.
TEST(KvmLinkerEscalation, UdNpfReinjectedThenShutdownIsOneTripleFaultChain_Issue14) {
  const Linked l = link({
      exit_line("12.000100", "UD excp", "0x1010", "0x00000000"),
      "12.000200: kvm_emulate_insn: 0:1010:0f 0b (real) failed",
      "12.000300: kvm_inj_exception: #UD",
      "12.000400: kvm_entry: vcpu 0, rip 0x1010",
      exit_line("12.000500", "npf", "0x1010", "0x80000306"),
      "12.000600: kvm_inj_exception: #UD [reinjected]",
      "12.000650: kvm_inj_exception: #UD [reinjected]",
      "12.000700: kvm_entry: vcpu 0, rip 0x1010",
      exit_line("12.000800", "shutdown", "0x1010", "0x80000306"),
      "12.000900: kvm_userspace_exit: reason KVM_EXIT_SHUTDOWN (8)",
  });
  const auto ud = chains_of(l, exc(arch::kUD));
  ASSERT_EQ(ud.size(), 1u) << "the #UD's delivery was split into chains";
  EXPECT_EQ(ud[0]->outcome, Outcome::TripleFault) << replay::to_string(ud[0]->outcome);
  EXPECT_TRUE(l.of_kind(ES_KIND_DELIVERY).empty()) << "a delivery was inferred at the shutdown";
  // The shutdown exit is the chain's outcome event.
  const auto exits = l.of_kind(ES_KIND_VM_EXIT);
  ASSERT_EQ(exits.size(), 3u);
  EXPECT_EQ(exits[2].reason, static_cast<uint32_t>(arch::SvmExitCode::Shutdown));
  EXPECT_EQ(ud[0]->outcome_event, exits[2].id);
  EXPECT_EQ(exits[2].origin, ud[0]->id);
}

// The same escalation where the exit at the shutdown names the #DF being delivered: the #DF
// is the pair the #DE formed (Table 6-5), kept in the #DE's chain; no delivery of #DE either.
TEST(KvmLinkerEscalation, ShutdownNamingTheDoubleFaultKeepsItInTheChain) {
  const Linked l = link({
      exit_line("12.000500", "npf", "0x1010", "0x80000300"),
      "12.000600: kvm_inj_exception: #DE [reinjected]",
      "12.000700: kvm_entry: vcpu 0, rip 0x1010",
      exit_line("12.000800", "shutdown", "0x1010", "0x80000b08"),
  });
  const auto de = chains_of(l, exc(arch::kDE));
  ASSERT_EQ(de.size(), 1u);
  EXPECT_EQ(de[0]->outcome, Outcome::TripleFault) << replay::to_string(de[0]->outcome);
  EXPECT_TRUE(l.of_kind(ES_KIND_DELIVERY).empty());
  const auto raises = l.of_kind(ES_KIND_RAISE);
  ASSERT_EQ(raises.size(), 2u);
  EXPECT_EQ(EntryIntrInfo(raises[1].intr_info).vector(), arch::kDF);
  EXPECT_EQ(raises[1].origin, de[0]->id);
  EXPECT_TRUE(chains_of(l, exc(arch::kDF)).empty());
}

// ... naming the #GP raised during the #DE's delivery: the #GP is a chain of its own that
// interrupted the #DE's delivery, and the #DE's chain ends in the triple fault with that link
// (what `chains` prints as the escalation line).
TEST(KvmLinkerEscalation, ShutdownNamingAnotherFaultLinksItAsRaisedDuringTheDelivery) {
  const Linked l = link({
      exit_line("12.000500", "npf", "0x1010", "0x80000300"),
      "12.000600: kvm_inj_exception: #DE [reinjected]",
      "12.000700: kvm_entry: vcpu 0, rip 0x1010",
      exit_line("12.000800", "shutdown", "0x1010", "0x80000b0d"),
  });
  const auto de = chains_of(l, exc(arch::kDE));
  const auto gp = chains_of(l, exc(arch::kGP));
  ASSERT_EQ(de.size(), 1u);
  ASSERT_EQ(gp.size(), 1u);
  EXPECT_EQ(de[0]->outcome, Outcome::TripleFault) << replay::to_string(de[0]->outcome);
  ASSERT_EQ(de[0]->interrupted_by.size(), 1u);
  EXPECT_EQ(de[0]->interrupted_by[0], gp[0]->id);
  EXPECT_TRUE(l.of_kind(ES_KIND_DELIVERY).empty());
}

// A shutdown exit whose EXITINTINFO is not valid right after an entry that injected #DE: still
// the end of that delivery, not its success.
TEST(KvmLinkerEscalation, ShutdownWithoutExitIntInfoAfterAnInjectionEndsThatChain) {
  const Linked l = link({
      "12.000600: kvm_inj_exception: #DE",
      "12.000700: kvm_entry: vcpu 0, rip 0x1010",
      exit_line("12.000800", "shutdown", "0x1010", "0x00000000"),
  });
  const auto de = chains_of(l, exc(arch::kDE));
  ASSERT_EQ(de.size(), 1u);
  EXPECT_EQ(de[0]->outcome, Outcome::TripleFault) << replay::to_string(de[0]->outcome);
  EXPECT_TRUE(l.of_kind(ES_KIND_DELIVERY).empty());
}

}  // namespace
}  // namespace es::test
