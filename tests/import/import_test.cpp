// exitscope import: every fixture imported for real (a SQLite file on disk, read back through
// replay/), checked field by field as a KVM developer reading the trace would.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"
#include "hv/arch/exit_reason.h"
#include "replay/chains.h"
#include "replay/import/kvm_linker.h"
#include "replay/import/text_import.h"
#include "replay/import/trace_text.h"
#include "replay/recording.h"
#include "tests/support/cli_run.h"

namespace es::test {
namespace {

using arch::BasicExitReason;
using arch::EntryIntrInfo;
using arch::InterruptionType;

std::string fixture(const std::string& name) { return std::string(ES_IMPORT_DATA) + "/" + name; }

struct Imported {
  std::string db;
  import::ImportStats stats;
  std::vector<es_record> events;  // by id
  std::string config_json;
  std::vector<es_record> of_kind(uint16_t kind) const {
    std::vector<es_record> v;
    for (const es_record& r : events)
      if (r.kind == kind) v.push_back(r);
    return v;
  }
};

Imported import_fixture(const std::string& name, import::FormatChoice f = import::FormatChoice::Auto) {
  Imported im;
  im.db = process_tmp(name + ".db");
  import::ImportOptions opt;
  opt.force = true;
  opt.format = f;
  auto st = import::import_text_file(fixture(name), im.db, opt);
  EXPECT_TRUE(st) << (st ? "" : st.error());
  if (!st) return im;
  im.stats = *st;
  auto rec = replay::Recording::open(im.db);
  EXPECT_TRUE(rec) << (rec ? "" : rec.error());
  if (!rec) return im;
  auto ok = replay::query_events(rec->db(), "", {}, [&](const replay::Event& e) {
    im.events.push_back(e.rec);
    return true;
  });
  EXPECT_TRUE(ok);
  auto s = rec->session();
  EXPECT_TRUE(s);
  if (s) {
    EXPECT_EQ(s->source, "import");
    EXPECT_TRUE(s->complete);
    im.config_json = s->config_json;
  }
  return im;
}

uint32_t irq_word(uint8_t v) { return EntryIntrInfo::make(v, InterruptionType::ExternalInterrupt).raw(); }

TEST(ImportFormats, OldVmxInfoPairIsExitInterruptionInfo) {
  const Imported im = import_fixture("old_vmx.txt");
  EXPECT_EQ(im.stats.format, "ftrace");
  EXPECT_EQ(im.stats.unparsed, 0u);
  const auto exits = im.of_kind(ES_KIND_VM_EXIT);
  ASSERT_EQ(exits.size(), 3u);
  EXPECT_EQ(exits[0].reason, static_cast<uint32_t>(BasicExitReason::ExternalInterrupt));
  EXPECT_EQ(exits[0].intr_info, 0x800000ecu);  // "info 0 800000ec": info2 = exit interruption info before 5.10
  EXPECT_EQ(exits[0].idt_vectoring_info, 0u);
  EXPECT_EQ(exits[0].rip, 0xffffffff81001000ull);
  EXPECT_EQ(exits[1].reason, static_cast<uint32_t>(BasicExitReason::EptViolation));
  EXPECT_EQ(exits[1].qualification, 0x181u);
  EXPECT_EQ(exits[1].guest_phys, 0xfee00000u);  // from the kvm_page_fault that follows
  EXPECT_EQ(exits[2].intr_info, 0x80000b0eu);
  for (const es_record& e : exits) {
    EXPECT_EQ(e.vcpu, 0);  // thread 4242 named vCPU 0 by its kvm_entry lines
    EXPECT_EQ(e.flags & ES_FLAG_SVM, 0u);
  }
  const auto d = im.of_kind(ES_KIND_DECISION);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].reason, static_cast<uint32_t>(ES_DECISION_INJECT_NEW));
  EXPECT_EQ(d[0].intr_info, irq_word(236));  // "irq 236": decimal before 5.19
  EXPECT_EQ(d[1].intr_info, EntryIntrInfo::make(14, InterruptionType::HardwareException, true).raw());
  EXPECT_EQ(d[1].intr_error, 2u);
  EXPECT_NE(im.config_json.find("before Linux 5.10"), std::string::npos);
}

TEST(ImportFormats, Vmx510ChainIrqEptViolationVectoringReinjectedEntry) {
  const Imported im = import_fixture("vmx_510.txt");
  EXPECT_EQ(im.stats.format, "trace-cmd");
  EXPECT_EQ(im.stats.out_of_order, 1u);  // host CPUs interleaved: sorted by timestamp
  const auto exits = im.of_kind(ES_KIND_VM_EXIT);
  ASSERT_EQ(exits.size(), 3u);
  EXPECT_EQ(exits[0].vcpu, 1);  // HLT on vCPU 1 sorted before vCPU 0's EPT violation
  EXPECT_EQ(exits[0].reason, static_cast<uint32_t>(BasicExitReason::Hlt));
  const es_record& ept = exits[1];
  EXPECT_EQ(ept.reason, static_cast<uint32_t>(BasicExitReason::EptViolation));
  EXPECT_EQ(ept.qualification, 0x182u);
  EXPECT_EQ(ept.idt_vectoring_info, 0x800000ecu);  // info2 = IDT-vectoring on VMX 5.10+
  EXPECT_EQ(ept.intr_info, 0u);
  EXPECT_EQ(ept.guest_phys, 0xa01ff8u);
  EXPECT_EQ(ept.vcpu, 0);
  EXPECT_EQ(ept.time_ns, 20'000u);  // relative to the first line
  ASSERT_NE(ept.origin, 0u);

  auto rec = replay::Recording::open(im.db);
  ASSERT_TRUE(rec);
  auto chains = replay::load_chains(*rec);
  ASSERT_TRUE(chains);
  const replay::Chain* c = nullptr;
  for (const auto& ch : *chains)
    if (ch.id == ept.origin) c = &ch;
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->event_word, irq_word(0xec));
  std::vector<uint16_t> kinds;
  for (const auto& e : c->events) kinds.push_back(e.rec.kind);
  EXPECT_EQ(kinds, (std::vector<uint16_t>{ES_KIND_RAISE, ES_KIND_DECISION, ES_KIND_VM_ENTRY, ES_KIND_VM_EXIT,
                                          ES_KIND_DECISION, ES_KIND_VM_ENTRY, ES_KIND_DELIVERY}));
  EXPECT_EQ(c->events[4].rec.reason, static_cast<uint32_t>(ES_DECISION_INJECT_REINJECTED));
  EXPECT_NE(c->events[4].rec.flags & ES_FLAG_INFERRED, 0u);  // "irq 236" never says [reinjected]
  EXPECT_EQ(c->events[4].rec.cause, ept.id);
  EXPECT_EQ(c->events[5].rec.intr_info, irq_word(0xec));
  EXPECT_EQ(c->outcome, replay::Outcome::ReinjectedThenDelivered);
  EXPECT_TRUE(c->inferred);
}

TEST(ImportFormats, Linux614EntryPrintsInjectionAndReinjectedFlag) {
  const Imported im = import_fixture("vmx_614.txt");
  const auto d = im.of_kind(ES_KIND_DECISION);
  ASSERT_EQ(d.size(), 2u);
  for (const es_record& r : d) {
    EXPECT_EQ(r.reason, static_cast<uint32_t>(ES_DECISION_INJECT_REINJECTED));
    EXPECT_EQ(r.flags & ES_FLAG_INFERRED, 0u);  // the kernel printed [reinjected]
  }
  EXPECT_EQ(d[1].intr_info, EntryIntrInfo::make(13, InterruptionType::HardwareException, true).raw());
  const auto entries = im.of_kind(ES_KIND_VM_ENTRY);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].intr_info, 0x80000020u);
  EXPECT_EQ(entries[0].flags & ES_FLAG_INFERRED, 0u);  // printed by kvm_entry (6.14+)
  EXPECT_NE(entries[1].flags & ES_FLAG_IMMEDIATE_EXIT, 0u);
  const auto exits = im.of_kind(ES_KIND_VM_EXIT);
  ASSERT_EQ(exits.size(), 3u);
  EXPECT_EQ(exits[1].intr_info, 0x80000b0eu);  // #PF exit interruption info
  EXPECT_EQ(exits[1].intr_error, 2u);
  EXPECT_EQ(exits[1].idt_vectoring_info, 0x80000b0du);  // while delivering #GP
  // IRQ 0x20 delivered (the next exit reports #GP instead), #GP delivered (HLT reports nothing).
  const auto delivered = im.of_kind(ES_KIND_DELIVERY);
  ASSERT_EQ(delivered.size(), 2u);
  EXPECT_EQ(delivered[0].intr_info, 0x80000020u);
  EXPECT_EQ(delivered[1].intr_info, EntryIntrInfo::make(13, InterruptionType::HardwareException, true).raw());
  EXPECT_NE(im.config_json.find("6.14+"), std::string::npos);
}

TEST(ImportFormats, SvmReasonsAndMeanings) {
  const Imported im = import_fixture("svm.txt");
  EXPECT_EQ(im.stats.vendor, "svm");
  const auto exits = im.of_kind(ES_KIND_VM_EXIT);
  ASSERT_EQ(exits.size(), 4u);
  for (const es_record& e : exits) EXPECT_NE(e.flags & ES_FLAG_SVM, 0u);
  EXPECT_EQ(exits[0].reason, 0x400u);                   // npf
  EXPECT_EQ(exits[0].guest_phys, 0xfee00000u);          // info2 = the NPF's GPA
  EXPECT_EQ(exits[0].qualification, 0x100000006u);      // info1 = EXITINFO1
  EXPECT_EQ(exits[0].idt_vectoring_info, 0x80000030u);  // intr_info = EXITINTINFO, the interrupted event
  EXPECT_EQ(exits[0].intr_info, 0u);
  EXPECT_EQ(exits[1].reason, 0x60u);  // intr
  EXPECT_EQ(exits[2].reason, 0x4eu);  // "PF excp" = 0x40 + 14
  EXPECT_EQ(exits[3].reason, 0x7bu);  // EXIT_IOIO
  const auto d = im.of_kind(ES_KIND_DECISION);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].reason, static_cast<uint32_t>(ES_DECISION_INJECT_REINJECTED));
  EXPECT_EQ(d[0].origin, exits[0].origin);
}

TEST(ImportFormats, MailPasteQuotesWrappedLinesAndProse) {
  const Imported im = import_fixture("mail.txt");
  EXPECT_EQ(im.stats.format, "mail");
  EXPECT_EQ(im.stats.kvm_events, 5u);
  EXPECT_EQ(im.stats.joined_lines, 2u);  // a wrapped kvm_exit, a prefix on its own line
  EXPECT_EQ(im.stats.unparsed, 5u);      // greeting, prose, a dmesg line, sign-off
  EXPECT_EQ(im.stats.unparsed_lines, (std::vector<uint64_t>{1, 3, 5, 14, 15}));
  const auto exits = im.of_kind(ES_KIND_VM_EXIT);
  ASSERT_EQ(exits.size(), 2u);
  EXPECT_EQ(exits[0].idt_vectoring_info, 0x800000ecu);  // from the wrapped continuation line
  const auto d = im.of_kind(ES_KIND_DECISION);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].reason, static_cast<uint32_t>(ES_DECISION_INJECT_REINJECTED));
  EXPECT_EQ(d[0].cause, exits[0].id);
  const auto entries = im.of_kind(ES_KIND_VM_ENTRY);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].rip, 0xffffffff81000106ull);  // its prefix was on the line before
  EXPECT_EQ(entries[1].time_ns, 100'000u);
}

// A format=flowed mailer breaks a line after a blank and goes on on the next line (RFC 3676 4.2).
// Expected from the join rules (text_import.cpp): a KVM line cut before its values and an event
// line that ends in a blank take the next line when the two together parse as an event; prose
// after an event line does not (the joined line would not parse) and stays a skipped line.
TEST(ImportFormats, FlowedWrapsJoinAndProseAfterAnEventStaysOut) {
  const std::string text =
      "CPU 0/KVM-7 [001] 100.000100: kvm_exit: reason \n"                 // 1: cut before its values
      "EXTERNAL_INTERRUPT rip 0x1000 info 0 800000ec\n"                   // 2
      "CPU 0/KVM-7 [001] 100.000110: kvm_inj_virq: IRQ 0xec \n"           // 3: an event alone
      "[reinjected]\n"                                                    // 4: ... that goes on
      "CPU 0/KVM-7 [001] 100.000120: kvm_entry: vcpu 0 \n"                // 5: an event, a blank
      "and then the guest hung\n"                                         // 6: prose
      "CPU 0/KVM-7 [001] 100.000130: kvm_exit: reason HLT rip 0x1001 \n"  // 7
      "info 0 0\n";                                                       // 8
  auto parsed = import::parse_trace_text(text, {}, "flowed.txt");
  ASSERT_TRUE(parsed) << parsed.error();
  const import::ImportStats& st = parsed->stats;
  EXPECT_EQ(st.lines, 8u);
  EXPECT_EQ(st.kvm_events, 4u);  // two exits, the injection, the entry
  EXPECT_EQ(st.joined_lines, 3u);
  EXPECT_EQ(st.unparsed_lines, (std::vector<uint64_t>{6}));
  std::vector<es_record> exits, decisions, entries;
  for (const es_record& r : parsed->records) {
    if (r.kind == ES_KIND_VM_EXIT) exits.push_back(r);
    if (r.kind == ES_KIND_DECISION) decisions.push_back(r);
    if (r.kind == ES_KIND_VM_ENTRY) entries.push_back(r);
  }
  ASSERT_EQ(exits.size(), 2u);
  EXPECT_EQ(exits[0].reason, static_cast<uint32_t>(BasicExitReason::ExternalInterrupt));
  EXPECT_EQ(exits[0].rip, 0x1000u);  // from line 2
  EXPECT_EQ(exits[1].reason, static_cast<uint32_t>(BasicExitReason::Hlt));
  EXPECT_EQ(exits[1].rip, 0x1001u);
  ASSERT_EQ(decisions.size(), 1u);
  EXPECT_EQ(decisions[0].reason, static_cast<uint32_t>(ES_DECISION_INJECT_REINJECTED));  // line 4's flag
  ASSERT_EQ(entries.size(), 1u);
}

TEST(ImportFormats, PerfScript) {
  const Imported im = import_fixture("perf.txt");
  EXPECT_EQ(im.stats.format, "perf");
  EXPECT_EQ(im.stats.other_events, 1u);  // sched_switch kept as context
  const auto exits = im.of_kind(ES_KIND_VM_EXIT);
  ASSERT_EQ(exits.size(), 3u);
  EXPECT_EQ(exits[1].vcpu, 1);
  EXPECT_EQ(exits[1].reason, static_cast<uint32_t>(BasicExitReason::Cpuid));
  EXPECT_EQ(exits[0].idt_vectoring_info, 0x800000ecu);
  const auto ctx = im.of_kind(ES_KIND_CONTEXT);
  ASSERT_EQ(ctx.size(), 1u);
  EXPECT_EQ(ctx[0].reason, static_cast<uint32_t>(import::kContextOtherEvent));
  EXPECT_EQ(ctx[0].aux, 5u);  // its line number
}

// trace-cmd report of a real trace.dat from this machine's kernel (6.18): the events KVM's
// real-mode emulation produces, kvm_emulate_insn through trace-cmd's kvm plugin ("... FAIL"), and
// kvm_inj_exception as libtraceevent's "[FAILED TO PARSE] exception=6 has_error=0 ..." fields.
TEST(ImportFormats, TraceCmdReportWithFailedToParseFields) {
  const Imported im = import_fixture("tracecmd_618_emulated.txt");
  EXPECT_EQ(im.stats.format, "trace-cmd");
  EXPECT_EQ(im.stats.unparsed, 0u);
  // The two #UD KVM injected, one per loop of the guest.
  const auto decisions = im.of_kind(ES_KIND_DECISION);
  ASSERT_EQ(decisions.size(), 2u);
  for (const es_record& d : decisions) {
    const EntryIntrInfo w(d.intr_info);
    EXPECT_EQ(w.vector(), arch::kUD);
    EXPECT_EQ(w.type(), InterruptionType::HardwareException);
    EXPECT_FALSE(w.deliver_error_code());
    EXPECT_EQ(d.reason, static_cast<uint32_t>(ES_DECISION_INJECT_NEW));
  }
  // Port I/O in order, userspace exits, and the UD2 bytes with the emulation failure.
  std::vector<std::tuple<uint64_t, uint64_t, bool>> pio;
  unsigned io = 0, hlt = 0, ud2_failed = 0;
  for (const es_record& e : im.of_kind(ES_KIND_CONTEXT)) {
    if (e.reason == import::kContextPio) pio.emplace_back(e.qualification, e.aux64, e.intr_error == 1);
    if (e.reason == import::kContextUserspaceExit) (e.qualification == 2 ? io : hlt) += 1;
    if (e.reason == import::kContextEmulateInsn && e.rip == 0x101d) {
      EXPECT_TRUE(e.flags & ES_FLAG_BYTES_VALID);
      ASSERT_EQ(e.aux, 2u);
      EXPECT_EQ(e.bytes[0], 0x0f);
      EXPECT_EQ(e.bytes[1], 0x0b);
      ud2_failed += e.intr_error;
    }
  }
  const std::vector<std::tuple<uint64_t, uint64_t, bool>> expected = {
      {0xe9, 0x0, true}, {0xea, 0x5a, false}, {0xe9, 0x1, true}, {0xea, 0x5a, false}, {0xeb, 0xe5, true}};
  EXPECT_EQ(pio, expected);
  EXPECT_EQ(io, 5u);
  EXPECT_EQ(hlt, 1u);
  EXPECT_EQ(ud2_failed, 2u);
  // Each #UD delivered: the emulator's next instruction is the handler's first, 0x102c (the
  // guest's IVT entry 6; SDM Vol. 3C 27.6.1: delivered before the guest's next instruction).
  const auto deliveries = im.of_kind(ES_KIND_DELIVERY);
  ASSERT_EQ(deliveries.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(deliveries[i].origin, decisions[i].origin);
    EXPECT_EQ(deliveries[i].rip, 0x102cu);
    EXPECT_TRUE(deliveries[i].flags & ES_FLAG_INFERRED);
  }
}

// This machine's kernel (6.18) under load: a #UD injected, the vCPU task preempted for 12 ms
// before entering, the same #UD injected again "[reinjected]" (tests/data/import/
// host_618_ud_cancelled_reinjected.txt has the source and the reading, written before the first
// import). Five #UD events, five chains, each delivered at the handler; the reinjected one stays
// in its chain, said by the kernel.
TEST(ImportFormats, AnInjectionCancelledByPreemptionIsOneChainOnAHostWithoutEntries) {
  const Imported im = import_fixture("host_618_ud_cancelled_reinjected.txt");
  EXPECT_EQ(im.stats.unparsed, 0u);
  const auto decisions = im.of_kind(ES_KIND_DECISION);
  ASSERT_EQ(decisions.size(), 6u);
  std::vector<uint64_t> chains;
  for (const es_record& d : decisions) {
    EXPECT_EQ(EntryIntrInfo(d.intr_info).vector(), arch::kUD);
    if (d.reason == ES_DECISION_INJECT_NEW) chains.push_back(d.origin);
  }
  ASSERT_EQ(chains.size(), 5u);
  EXPECT_EQ(decisions[3].reason, static_cast<uint32_t>(ES_DECISION_INJECT_REINJECTED));
  EXPECT_EQ(decisions[3].origin, decisions[2].origin);
  EXPECT_FALSE(decisions[3].flags & ES_FLAG_INFERRED);  // the kernel said it
  EXPECT_TRUE(im.of_kind(ES_KIND_DELIVERY).size() == 5u);
  const CliRun r = run_cli("chains '" + im.db + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  size_t delivered = 0;
  for (size_t at = r.out.find("outcome:     delivered"); at != std::string::npos;
       at = r.out.find("outcome:     delivered", at + 1))
    ++delivered;
  EXPECT_EQ(delivered, 5u) << r.out;
  EXPECT_EQ(r.out.find("pending at end"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("INJECT_REINJECTED #UD"), std::string::npos) << r.out;
  // Said once, under that decision: why KVM injected it again with nothing in between.
  const size_t note = r.out.find("with no VM entry or exit recorded since its last injection");
  EXPECT_NE(note, std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("with no VM entry or exit recorded", note + 1), std::string::npos) << r.out;
  const CliRun c = run_cli("check '" + im.db + "'");
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.out.find("no violations"), std::string::npos) << c.out;
}

// Other tracepoints' lines go to their thread's vCPU, whichever line names it and wherever it
// falls (the fixture's header has the expected reading).
TEST(ImportFormats, OtherTracepointLinesTakeTheirThreadsVcpu) {
  const Imported im = import_fixture("other_tracepoints_take_their_threads_vcpu.txt");
  std::vector<uint16_t> vcpus;
  for (const es_record& c : im.of_kind(ES_KIND_CONTEXT))
    if (c.reason == import::kContextOtherEvent) vcpus.push_back(c.vcpu);
  EXPECT_EQ(vcpus, (std::vector<uint16_t>{1, 0, 0}));
  EXPECT_EQ(im.stats.unparsed, 0u);
}

// A run of other tracepoints' lines longer than the importer's hand-out batch (4096 lines) is
// still one row.
TEST(ImportFormats, ALongRunOfOtherTracepointLinesIsOneRow) {
  const std::string path = process_tmp("long_run.txt");
  {
    std::ofstream t(path);
    t << " qemu-1 [000] 10.000000: kvm_entry: vcpu 0, rip 0x1000\n";
    for (int i = 0; i < 10000; ++i) t << " qemu-1 [000] 10.000001: rcu_utilization: Start context switch\n";
    t << " qemu-1 [000] 10.000002: kvm_entry: vcpu 0, rip 0x1000\n";
  }
  import::ImportOptions opt;
  opt.force = true;
  const std::string db = process_tmp("long_run.db");
  auto st = import::import_text_file(path, db, opt);
  ASSERT_TRUE(st) << st.error();
  EXPECT_EQ(st->other_events, 10000u);
  auto rec = replay::Recording::open(db);
  ASSERT_TRUE(rec) << rec.error();
  auto rows = rec->db().query_int("SELECT count(*) FROM events WHERE kind = " + std::to_string(ES_KIND_CONTEXT) +
                                  " AND reason = " + std::to_string(ES_CONTEXT_OTHER_EVENT));
  ASSERT_TRUE(rows);
  EXPECT_EQ(*rows, 1);
}

TEST(ImportFormats, NestedExitReflectedToL1) {
  const Imported im = import_fixture("nested.txt");
  const auto exits = im.of_kind(ES_KIND_VM_EXIT);
  ASSERT_EQ(exits.size(), 2u);
  EXPECT_EQ(exits[0].level, 2);  // kvm_nested_vmexit: the exit came from L2
  EXPECT_EQ(exits[1].level, 1);
  const auto nested = im.of_kind(ES_KIND_NESTED_EXIT);
  ASSERT_EQ(nested.size(), 1u);
  EXPECT_EQ(nested[0].level, 2);
  EXPECT_EQ(nested[0].reason, static_cast<uint32_t>(BasicExitReason::EptViolation));
  EXPECT_EQ(nested[0].qualification, 0x181u);
  EXPECT_EQ(nested[0].idt_vectoring_info, 0x80000030u);  // vmcs12's IDT-vectoring field
  const auto d = im.of_kind(ES_KIND_DECISION);
  ASSERT_EQ(d.size(), 2u);
  for (const es_record& r : d) {
    EXPECT_EQ(r.reason, static_cast<uint32_t>(ES_DECISION_REFLECT_TO_L1));
    EXPECT_EQ(r.level, 2);
  }
  EXPECT_EQ(d[0].cause, exits[0].id);
  EXPECT_EQ(nested[0].cause, d[0].id);
}

TEST(ImportParse, EveryEraOfTheTracepoints) {
  import::TraceLine t;
  using import::LineClass;
  EXPECT_EQ(import::parse_trace_line("kvm_nested_vmexit: rip 2000 reason EPT_VIOLATION info1 181 info2 80000030 "
                                     "int_info 0 int_info_err 0",
                                     t),
            LineClass::Event);
  EXPECT_EQ(t.exit.info2, 0x80000030u);
  EXPECT_EQ(import::parse_trace_line("kvm_exit: reason EPT_VIOLATION FAILED_VMENTRY rip 0x1 info1 0x0 info2 0x0 "
                                     "intr_info 0x0 error_code 0x0",
                                     t),
            LineClass::Event);
  EXPECT_EQ(t.exit.reason, 48u | arch::ExitReason::kEntryFailure);
  EXPECT_EQ(import::parse_trace_line("kvm_inj_virq: Soft/INTn 0x80 [reinjected]", t), LineClass::Event);
  ASSERT_TRUE(t.injected);
  EXPECT_EQ(t.injected->word, EntryIntrInfo::make(0x80, InterruptionType::SoftwareInterrupt).raw());
  EXPECT_TRUE(t.injected->reinjected);
  EXPECT_EQ(import::parse_trace_line("kvm_page_fault: address fee00000 error_code 181", t), LineClass::Event);
  EXPECT_EQ(t.page_fault().address, 0xfee00000u);
  EXPECT_EQ(import::parse_trace_line("kvm_pio: pio_write at 0x70 size 1 count 1 val 0x8f", t), LineClass::Event);
  EXPECT_EQ(t.pio().port, 0x70u);
  EXPECT_EQ(t.pio().value, 0x8fu);
  EXPECT_EQ(import::parse_trace_line("kvm_msr: msr_read c0000080 = 0xd01 (#GP)", t), LineClass::Event);
  EXPECT_TRUE(t.msr().gp_fault);
  EXPECT_EQ(import::parse_trace_line("kvm_apic_accept_irq: apicid 1 vec 236 (Fixed|edge)", t), LineClass::Event);
  EXPECT_EQ(t.apic().vector, 236u);
  EXPECT_EQ(import::parse_trace_line("kvm_userspace_exit: reason KVM_EXIT_MMIO (6)", t), LineClass::Event);
  EXPECT_EQ(t.event, import::TraceEvent::UserspaceExit);
  EXPECT_EQ(t.userspace_exit().reason, 6u);
  EXPECT_EQ(import::parse_trace_line("kvm_userspace_exit: reason restart (4)", t), LineClass::Event);
  EXPECT_TRUE(t.userspace_exit().errno_printed());  // -errno printed instead of a reason
  EXPECT_EQ(t.userspace_exit().error, -4);
  EXPECT_EQ(import::parse_trace_line("kvm_mmio: mmio write len 4 gpa 0xfee000b0 val 0x0", t), LineClass::Event);
  EXPECT_EQ(t.event, import::TraceEvent::Mmio);
  EXPECT_EQ(t.mmio().gpa, 0xfee000b0u);
  EXPECT_EQ(t.mmio().len, 4u);
  EXPECT_EQ(t.mmio().type, 2u);
  EXPECT_EQ(import::parse_trace_line("kvm_mmio: mmio unsatisfied-read len 8 gpa 0xd0000000 val 0x0", t),
            LineClass::Event);
  EXPECT_EQ(t.mmio().type, 0u);
  // libtraceevent's fallback when it cannot format an event: the fields, by name.
  EXPECT_EQ(import::parse_trace_line("kvm_inj_exception: [FAILED TO PARSE] exception=14 has_error=1 error_code=2 "
                                     "reinjected=1",
                                     t),
            LineClass::Event);
  ASSERT_TRUE(t.injected);
  EXPECT_EQ(t.injected->word, EntryIntrInfo::make(arch::kPF, InterruptionType::HardwareException, true).raw());
  EXPECT_EQ(t.injected->error_code, 2u);
  EXPECT_TRUE(t.injected->reinjected);
  EXPECT_TRUE(t.injected->reinjected_printed_era);
  EXPECT_EQ(import::parse_trace_line("kvm_emulate_insn: [FAILED TO PARSE] rip=0x101d csbase=0 len=2 "
                                     "insn=ARRAY[0f, 0b, 00, 00, 00, 00, 00, 00, 00, 00, 00, 00, 00, 00, 00] flags=0 "
                                     "failed=1",
                                     t),
            LineClass::Event);
  EXPECT_EQ(t.rip, 0x101du);
  ASSERT_EQ(t.emulate().byte_count, 2u);
  EXPECT_EQ(t.emulate().bytes[1], 0x0b);
  EXPECT_TRUE(t.emulate().failed);
  EXPECT_EQ(import::parse_trace_line("kvm_inj_exception: [FAILED TO PARSE] exception=zz", t), LineClass::BadEvent);
  EXPECT_EQ(import::parse_trace_line("kvm_exit: reason NOT_A_REASON rip 0x1", t), LineClass::BadEvent);
  EXPECT_EQ(import::parse_trace_line("kvm_inj_virq: irq 999", t), LineClass::BadEvent);
  // Fuzz-minded: every prefix of a long line parses without reading past it.
  const std::string line =
      " CPU 0/KVM-7001 [000] d..2. 300.000100: kvm_exit: vcpu 0 reason EPT_VIOLATION rip "
      "0x401000 info1 0x182 info2 0x80000020 intr_info 0x0 error_code 0x0";
  for (size_t n = 0; n <= line.size(); ++n) {
    const std::string cut = line.substr(0, n);
    (void)import::parse_trace_line(cut, t);
  }
}

TEST(ImportCheck, ReinjectionLivelockIsFlaggedWithCountAndSpan) {
  const Imported im = import_fixture("livelock.txt");
  const CliRun r = run_cli("check '" + im.db + "' --rule reinjection-loop");
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("reinjection-loop"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("count 10"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("from 0.000020000 to 0.000380000 s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("gpa 0xa01ff8"), std::string::npos) << r.out;
}

TEST(ImportCheck, AdvancingAddressesAreNotALivelock) {
  const Imported im = import_fixture("advancing.txt");
  const CliRun r = run_cli("check '" + im.db + "' --rule reinjection-loop");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("reinjection-loop:"), std::string::npos) << r.out;
}

TEST(ImportCli, ImportsAndInfoShowsUnparsedLines) {
  const std::string db = process_tmp("cli_mail.db");
  std::filesystem::remove(db);
  CliRun r = run_cli("import '" + fixture("mail.txt") + "' -o '" + db + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("unparsed: 5 lines (1, 3, 5, 14, 15)"), std::string::npos) << r.out;
  r = run_cli("import '" + fixture("mail.txt") + "' -o '" + db + "'");
  EXPECT_EQ(r.code, 2);  // exists, no --force
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  r = run_cli("info '" + db + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("5 unparsed (lines 1, 3, 5, 14, 15)"), std::string::npos) << r.out;
  r = run_cli("import '" + fixture("old_vmx.txt") + "' -o '" + db + "' --force --format perf");
  EXPECT_EQ(r.code, 2);  // forced perf on an ftrace file: no perf lines
  EXPECT_NE(r.err.find("in the perf format"), std::string::npos) << r.err;
  r = run_cli("import '" + fixture("old_vmx.txt") + "' -o '" + db + "' --format bogus");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--format"), std::string::npos) << r.err;
}

// Long imports show progress: --progress (or a terminal) prints "importing: N records, P %" on
// stderr while the records are written, cleared at the end; --quiet prints none.
TEST(ImportCli, TextImportShowsProgressWhenAsked) {
  const std::string db = process_tmp("progress.db");
  std::filesystem::remove(db);
  CliRun r = run_cli("import '" + fixture("vmx_510.txt") + "' -o '" + db + "' --progress");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("importing: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("100 %"), std::string::npos) << r.err;
  r = run_cli("import '" + fixture("vmx_510.txt") + "' -o '" + db + "' --force --quiet");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
}

void expect_refused(const std::string& input, const std::string& words) {
  const std::string db = process_tmp("bad.db");
  std::filesystem::remove(db);
  const CliRun r = run_cli("import '" + input + "' -o '" + db + "'");
  EXPECT_EQ(r.code, 2) << input;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;  // one sentence
  EXPECT_NE(r.err.find(words), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(db));
  EXPECT_FALSE(std::filesystem::exists(db + ".partial"));
}

TEST(ImportCli, BadInputExitsTwoWithOneSentenceAndNoFile) {
  const std::string empty = process_tmp("empty.txt");
  std::ofstream(empty).close();
  expect_refused(empty, "is empty");
  const std::string garbage = process_tmp("garbage.bin");
  {
    std::ofstream g(garbage, std::ios::binary);
    for (int i = 0; i < 4096; ++i) g.put(static_cast<char>((i * 7919) & 0xff));
  }
  expect_refused(garbage, "binary data");
  const std::string dat = process_tmp("trace.dat");
  {
    std::ofstream g(dat, std::ios::binary);
    g.write("\x17\x08\x44tracing6\0\0\x08\0\x10\0\0", 18);  // a v6 header cut after the page size
  }
  expect_refused(dat, "is truncated or corrupt: it ends at byte 18 inside the header_page section");
  const std::string prose = process_tmp("prose.txt");
  std::ofstream(prose) << "just some text\nwithout any trace\n";
  expect_refused(prose, "no KVM trace events");
  expect_refused(process_tmp("does-not-exist.txt"), "cannot read");
}

}  // namespace
}  // namespace es::test

namespace es::test {
namespace {

// Live sources (the eBPF recorder) hand records out while events still arrive: take_settled()
// after every event must give exactly what the whole-file import gives, for every fixture.
TEST(ImportLinker, StreamingGivesTheSameRecordsAsTheWholeImport) {
  for (const char* name : {"vmx_510.txt", "vmx_614.txt", "old_vmx.txt", "svm.txt", "nested.txt", "perf.txt",
                           "livelock.txt", "advancing.txt"}) {
    SCOPED_TRACE(name);
    std::ifstream f(fixture(name));
    const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto whole = import::parse_trace_text(text, {}, name);
    ASSERT_TRUE(whole) << whole.error();

    // The same lines, one at a time, through a fresh linker (these fixtures name their vCPUs, so
    // the whole import's thread -> vCPU first pass changes nothing).
    import::KvmEventLinker linker;
    std::vector<es_record> streamed;
    size_t max_batch = 0;
    uint64_t t0 = UINT64_MAX, line_no = 0;
    std::vector<std::pair<import::TraceLine, uint64_t>> lines;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      ++line_no;
      import::TraceLine t;
      if (import::parse_trace_line(std::string_view(text).substr(pos, nl - pos), t) == import::LineClass::Event) {
        lines.emplace_back(t, line_no);
        if (t.has_time) t0 = std::min(t0, t.time_ns);
      }
      pos = nl + 1;
    }
    // Live sources deliver in time order; the whole import sorts interleaved host CPUs the same way.
    std::stable_sort(lines.begin(), lines.end(), [](auto& a, auto& b) { return a.first.time_ns < b.first.time_ns; });
    for (const auto& [t, n] : lines) {
      const size_t before = streamed.size();
      linker.add(t, t.time_ns - t0, n);
      linker.take_settled(streamed);
      max_batch = std::max(max_batch, streamed.size() - before);
    }
    linker.take_all(streamed);
    ASSERT_EQ(streamed.size(), whole->records.size());
    for (size_t i = 0; i < streamed.size(); ++i) {
      SCOPED_TRACE(i);
      EXPECT_EQ(0, std::memcmp(&streamed[i], &whole->records[i], sizeof(es_record)));
    }
    // Records really flow out as they settle: nothing waits for the end but the last open exit.
    EXPECT_LT(max_batch, 8u);
  }
}

}  // namespace
}  // namespace es::test

namespace es::test {
namespace {

// After an exit with IRQ 0xec in IDT-vectoring info, a 5.19+ kernel's next "IRQ 0xec" line
// says whether KVM reinjected that IRQ: with "[reinjected]" it continues the chain (observed,
// not inferred) to its delivery; without, it is a new IRQ in a new chain and the interrupted
// one is never delivered.
TEST(ImportLinker, ReinjectedFlagOfNewKernelsDecidesWhetherTheChainContinues) {
  auto lines = [](const char* inj) {
    return std::string(
               "CPU 0/KVM-7 [001] 100.000100: kvm_inj_virq: IRQ 0xec\n"
               "CPU 0/KVM-7 [001] 100.000110: kvm_entry: vcpu 0, rip 0x1000\n"
               "CPU 0/KVM-7 [001] 100.000120: kvm_exit: vcpu 0 reason EPT_VIOLATION rip 0x1000 info1 "
               "0x0000000000000182 info2 0x00000000800000ec intr_info 0x00000000 error_code 0x00000000\n"
               "CPU 0/KVM-7 [001] 100.000130: kvm_inj_virq: ") +
           inj +
           "\n"
           "CPU 0/KVM-7 [001] 100.000140: kvm_entry: vcpu 0, rip 0x1000\n"
           "CPU 0/KVM-7 [001] 100.000150: kvm_exit: vcpu 0 reason HLT rip 0x1001 info1 0x0000000000000000 info2 "
           "0x0000000000000000 intr_info 0x00000000 error_code 0x00000000\n";
  };
  for (const bool reinjected : {true, false}) {
    SCOPED_TRACE(reinjected);
    auto parsed = import::parse_trace_text(lines(reinjected ? "IRQ 0xec [reinjected]" : "IRQ 0xec"), {}, "t.txt");
    ASSERT_TRUE(parsed) << parsed.error();
    std::vector<es_record> decisions;
    uint64_t exit_origin = 0;
    for (const es_record& r : parsed->records) {
      if (r.kind == ES_KIND_DECISION) decisions.push_back(r);
      if (r.kind == ES_KIND_VM_EXIT && r.idt_vectoring_info) exit_origin = r.origin;
    }
    ASSERT_EQ(decisions.size(), 2u);
    ASSERT_NE(exit_origin, 0u);
    EXPECT_EQ(decisions[0].origin, exit_origin);
    const es_record& second = decisions[1];
    if (reinjected) {
      EXPECT_EQ(second.reason, static_cast<uint32_t>(ES_DECISION_INJECT_REINJECTED));
      EXPECT_EQ(second.origin, exit_origin);
      EXPECT_EQ(second.flags & ES_FLAG_INFERRED, 0u);  // the kernel said so
    } else {
      EXPECT_EQ(second.reason, static_cast<uint32_t>(ES_DECISION_INJECT_NEW));
      EXPECT_NE(second.origin, exit_origin);
    }
    std::vector<replay::Event> events;
    for (const es_record& r : parsed->records) events.push_back(replay::Event{r, 0});
    const auto chains = replay::build_chains(std::move(events), {});
    const replay::Chain* first = nullptr;
    for (const auto& c : chains)
      if (c.id == exit_origin) first = &c;
    ASSERT_NE(first, nullptr);
    // A trace ends anywhere: an event not delivered by then is pending, not provably lost.
    EXPECT_EQ(first->outcome, reinjected ? replay::Outcome::ReinjectedThenDelivered : replay::Outcome::PendingAtEnd)
        << replay::to_string(first->outcome);
  }
}

}  // namespace
}  // namespace es::test

// Issue #18: a clean line skips clean_line() after one vector scan (16 bytes, then 8, then
// single bytes). A byte no tracer prints must be seen wherever it falls in the line: in every
// column from the first to the last, the line reads as with a blank there, and the import says
// how many lines it repaired.
namespace es::test {
namespace {
TEST(ImportRepairs, ANonTextByteInAnyColumnIsReadAsABlank) {
  const Imported clean = import_fixture("vmx_510.txt");
  ASSERT_FALSE(clean.events.empty());
  std::ifstream in(fixture("vmx_510.txt"));
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  size_t longest = 0;
  for (const std::string& l : lines) longest = std::max(longest, l.size());
  for (size_t col = 0; col < longest; ++col) {
    // The first blank at or after `col` of every trace line becomes a non-breaking space (UTF-8).
    std::string text;
    uint64_t changed = 0;
    for (const std::string& l : lines) {
      const size_t b = l.find(' ', col);
      if (l.empty() || l[0] == '#' || b == std::string::npos) {
        text += l + "\n";
        continue;
      }
      text += l.substr(0, b) + "\xc2\xa0" + l.substr(b + 1) + "\n";
      ++changed;
    }
    if (changed == 0) continue;
    const std::string name = "nbsp_col" + std::to_string(col) + ".txt";
    const std::string path = process_tmp(name);
    std::ofstream(path, std::ios::binary) << text;
    import::ImportOptions opt;
    opt.force = true;
    const std::string db = process_tmp(name + ".db");
    auto st = import::import_text_file(path, db, opt);
    ASSERT_TRUE(st) << "column " << col << ": " << (st ? "" : st.error());
    const std::string said = std::to_string(changed) + (changed == 1 ? " line" : " lines") + ": non-text bytes";
    EXPECT_TRUE(std::any_of(st->repaired.begin(), st->repaired.end(),
                            [&](const std::string& r) { return r.rfind(said, 0) == 0; }))
        << "column " << col << ": expected '" << said << "'";
    auto rec = replay::Recording::open(db);
    ASSERT_TRUE(rec) << (rec ? "" : rec.error());
    std::vector<es_record> got;
    ASSERT_TRUE(replay::query_events(rec->db(), "", {}, [&](const replay::Event& e) {
      got.push_back(e.rec);
      return true;
    }));
    ASSERT_EQ(got.size(), clean.events.size()) << "column " << col;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].kind, clean.events[i].kind) << "column " << col << ", event " << i;
      EXPECT_EQ(got[i].vcpu, clean.events[i].vcpu) << "column " << col << ", event " << i;
      EXPECT_EQ(got[i].reason, clean.events[i].reason) << "column " << col << ", event " << i;
      EXPECT_EQ(got[i].time_ns, clean.events[i].time_ns) << "column " << col << ", event " << i;
      EXPECT_EQ(got[i].rip, clean.events[i].rip) << "column " << col << ", event " << i;
      EXPECT_EQ(got[i].idt_vectoring_info, clean.events[i].idt_vectoring_info) << "column " << col << ", event " << i;
    }
  }
}
}  // namespace
}  // namespace es::test
