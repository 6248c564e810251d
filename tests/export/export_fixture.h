// The recording the export tests share, written with the real Recorder through a ProbeBus:
//   vcpu0 L1: HLT exit (instruction bytes f4); the timer raises IRQ 0x20; L0 injects it; the
//     delivery's stack push hits an EPT violation (IDT-vectoring IRQ 0x20); L0 requeues it,
//     maps the page, reinjects it; it is delivered; an OUT to the serial port; console text.
//   vcpu0 L2: a CPUID exit from L2 that L0 reflects to L1 (nested exit to L1).
//   vcpu1 L1: the guest's #PF (CR2 0x7000) injected and delivered; then a #GP whose delivery
//     faults into #DF and a triple fault: TRIPLE_FAULT exit (no entry after it), shutdown.
#pragma once

#include <cstdint>
#include <string>

#include "exitscope/record.h"
#include "hv/arch/exceptions.h"
#include "probes/recorder/recorder.h"
#include "replay/chain_steps.h"
#include "tests/probes/test_support.h"

namespace es::test {

struct ExportFixture {
  std::string path;
  uint64_t irq_chain = 0, pf_chain = 0, gp_chain = 0, df_chain = 0;
  uint64_t ept_exit = 0, tf_exit = 0;
};

class Script {
 public:
  explicit Script(probes::ProbeBus& bus) : bus_(bus) {}
  uint64_t emit(es_record r, uint64_t dt = 100) {
    time_ += dt;
    r.time_ns = time_;
    if (r.level == 0) r.level = level_;
    r.hv_level = hv_level_;
    r.vcpu = vcpu_;
    bus_.emit(r);
    return r.id;
  }
  void on(uint16_t vcpu, uint8_t level = 1, uint8_t hv_level = 0) {
    vcpu_ = vcpu;
    level_ = level;
    hv_level_ = hv_level;
  }
  uint64_t raise(uint32_t word, uint64_t cause, uint32_t error = 0, uint64_t rip = 0) {
    es_record r{};
    r.kind = ES_KIND_RAISE;
    r.id = bus_.next_id();
    r.origin = r.id;
    r.cause = cause;
    r.intr_info = word;
    r.intr_error = error;
    r.rip = rip;
    return emit(r);
  }
  uint64_t decision(uint32_t reason, uint32_t word, uint64_t origin, uint64_t cause, uint64_t gpa = 0,
                    uint32_t error = 0) {
    es_record r{};
    r.kind = ES_KIND_DECISION;
    r.reason = reason;
    r.intr_info = word;
    r.intr_error = error;
    r.guest_phys = gpa;
    r.origin = origin;
    r.cause = cause;
    return emit(r, 0);
  }
  uint64_t entry(uint32_t word, uint64_t origin, uint64_t cause, uint64_t rip, uint32_t error = 0) {
    es_record r{};
    r.kind = ES_KIND_VM_ENTRY;
    r.intr_info = word;
    r.intr_error = error;
    r.origin = origin;
    r.cause = cause;
    r.rip = rip;
    return emit(r);
  }
  uint64_t vm_exit(uint32_t reason, uint64_t qual, uint32_t vectoring, uint64_t origin, uint64_t cause, uint64_t rip,
                   uint64_t gpa = 0, uint64_t gla = 0, std::string_view bytes = {}, uint32_t len = 0) {
    es_record r{};
    r.kind = ES_KIND_VM_EXIT;
    r.reason = reason;
    r.qualification = qual;
    r.idt_vectoring_info = vectoring;
    r.guest_phys = gpa;
    r.guest_linear = gla;
    r.origin = origin;
    r.cause = cause;
    r.rip = rip;
    r.instr_len = len;
    if (!bytes.empty()) {
      r.flags |= ES_FLAG_BYTES_VALID;
      r.aux = static_cast<uint32_t>(bytes.size());
      for (size_t i = 0; i < bytes.size() && i < sizeof r.bytes; ++i) r.bytes[i] = static_cast<uint8_t>(bytes[i]);
    }
    return emit(r);
  }
  uint64_t delivery(uint32_t word, uint64_t origin, uint64_t cause, uint64_t rip, uint64_t cr2 = 0,
                    uint32_t error = 0) {
    es_record r{};
    r.kind = ES_KIND_DELIVERY;
    r.intr_info = word;
    r.intr_error = error;
    r.origin = origin;
    r.cause = cause;
    r.rip = rip;
    r.guest_linear = cr2;
    return emit(r);
  }
  uint64_t simple(uint16_t kind, uint32_t reason, uint64_t cause, uint64_t dt = 0) {
    es_record r{};
    r.kind = kind;
    r.reason = reason;
    r.cause = cause;
    return emit(r, dt);
  }
  uint64_t console(std::string_view text) {
    es_record r{};
    r.kind = ES_KIND_CONSOLE;
    r.aux = static_cast<uint32_t>(text.size() < 16 ? text.size() : 16);
    for (uint32_t i = 0; i < r.aux; ++i) r.bytes[i] = static_cast<uint8_t>(text[i]);
    return emit(r, 10);
  }

 private:
  probes::ProbeBus& bus_;
  uint64_t time_ = 0;
  uint16_t vcpu_ = 0;
  uint8_t level_ = 1, hv_level_ = 0;
};

inline ExportFixture make_export_recording(const std::string& name) {
  using arch::BasicExitReason;
  ExportFixture fx;
  fx.path = temp_db(name);
  recorder::SessionStart info;
  info.scenario = "export-golden";
  info.guest_path = "guests/a-rather-long-directory-name-for-the-image/irq-ept-reinject-with-a-long-name.bin";
  info.guest_hash = "sha256:5f1d7c0e9a3b2c4d6e8f00112233445566778899aabbccddeeff001122334455";
  info.policy = "kvm";
  info.tool_version = "test";
  info.host = "Linux testhost 6.1.0-test #1 SMP x86_64";
  info.kernel = "6.1.0-test";
  info.command_line = "export-test";
  info.started_at = std::chrono::system_clock::time_point{};
  auto rec = recorder::Recorder::open(fx.path, info, false, {.steps = es::replay::chain_steps()});
  if (!rec) return fx;
  probes::ProbeBus bus;
  (*rec)->attach(bus);
  Script s(bus);
  const uint32_t ept = exit_reason(BasicExitReason::EptViolation);

  // vcpu0, L1: HLT, the timer IRQ and its EPT violation during delivery.
  s.on(0);
  const uint64_t e0 = s.entry(0, 0, 0, 0x100000);
  const uint64_t hlt = s.vm_exit(exit_reason(BasicExitReason::Hlt), 0, 0, 0, e0, 0x100040, 0, 0, "\xf4", 1);
  const uint64_t halt = s.decision(ES_DECISION_HALT, 0, 0, hlt);
  fx.irq_chain = s.raise(irq(0x20), halt);
  s.decision(ES_DECISION_QUEUE_IRQ, irq(0x20), fx.irq_chain, fx.irq_chain);
  const uint64_t inj = s.decision(ES_DECISION_INJECT_NEW, irq(0x20), fx.irq_chain, fx.irq_chain);
  const uint64_t entry1 = s.entry(irq(0x20), fx.irq_chain, inj, 0x100041);
  // Stack push of the delivery: write, translated linear address valid (qualification 0x182).
  fx.ept_exit = s.vm_exit(ept, 0x182, vectoring_irq(0x20), fx.irq_chain, entry1, 0x100041, 0x7eff8, 0x7eff8);
  s.decision(ES_DECISION_REQUEUE_FROM_VECTORING, irq(0x20), fx.irq_chain, fx.ept_exit);
  const uint64_t map = s.decision(ES_DECISION_EPT_MAP, 0, fx.irq_chain, fx.ept_exit, 0x7e000);
  const uint64_t re = s.decision(ES_DECISION_INJECT_REINJECTED, irq(0x20), fx.irq_chain, map);
  const uint64_t entry2 = s.entry(irq(0x20), fx.irq_chain, re, 0x100041);
  s.delivery(irq(0x20), fx.irq_chain, entry2, 0x100200);
  const uint64_t io = s.vm_exit(exit_reason(BasicExitReason::IoInstruction), 0x3f80000, 0, 0, entry2, 0x100210, 0, 0,
                                "\xee\x48\xff\xc6", 1);
  const uint64_t emu = s.decision(ES_DECISION_EMULATE, 0, 0, io);
  s.console("tick | 1\n");
  s.entry(0, 0, emu, 0x100211);

  // vcpu0, L2: CPUID from L2, reflected to L1 (a nested exit).
  s.on(0, 2, 0);
  const uint64_t cpuid = s.vm_exit(exit_reason(BasicExitReason::Cpuid), 0, 0, 0, 0, 0x200000, 0, 0, "\x0f\xa2", 2);
  const uint64_t refl = s.decision(ES_DECISION_REFLECT_TO_L1, 0, 0, cpuid);
  s.on(0, 2, 1);
  es_record nested{};
  nested.kind = ES_KIND_NESTED_EXIT;
  nested.reason = exit_reason(BasicExitReason::Cpuid);
  nested.rip = 0x200000;
  nested.instr_len = 2;
  nested.cause = refl;
  s.emit(nested);
  s.on(0, 2, 0);
  s.entry(0, 0, refl, 0x200002);

  // vcpu1, L1: the guest's #PF, injected and delivered.
  s.on(1);
  const uint64_t v1 = s.entry(0, 0, 0, 0x300000);
  fx.pf_chain = s.raise(hw_exc(arch::kPF, true), v1, 0x2, 0x300010);
  s.decision(ES_DECISION_QUEUE_EXCEPTION, hw_exc(arch::kPF, true), fx.pf_chain, fx.pf_chain, 0, 0x2);
  const uint64_t pinj = s.decision(ES_DECISION_INJECT_NEW, hw_exc(arch::kPF, true), fx.pf_chain, fx.pf_chain, 0, 0x2);
  const uint64_t pent = s.entry(hw_exc(arch::kPF, true), fx.pf_chain, pinj, 0x300010, 0x2);
  s.delivery(hw_exc(arch::kPF, true), fx.pf_chain, pent, 0x301000, 0x7000, 0x2);

  // vcpu1, L1: #GP -> #DF during delivery -> triple fault.
  fx.gp_chain = s.raise(hw_exc(arch::kGP, true), 0, 0, 0x300020);
  const uint64_t ginj = s.decision(ES_DECISION_INJECT_NEW, hw_exc(arch::kGP, true), fx.gp_chain, fx.gp_chain);
  const uint64_t gent = s.entry(hw_exc(arch::kGP, true), fx.gp_chain, ginj, 0x300020);
  fx.df_chain = s.raise(hw_exc(arch::kDF, true), gent);
  fx.tf_exit = s.vm_exit(exit_reason(BasicExitReason::TripleFault), 0, 0, fx.gp_chain, gent, 0x300020);
  s.decision(ES_DECISION_SHUTDOWN, 0, fx.gp_chain, fx.tf_exit);
  s.simple(ES_KIND_RUN_END, ES_END_TRIPLE_FAULT, fx.tf_exit, 100);
  auto fin = (*rec)->finish({ES_END_TRIPLE_FAULT, "triple fault on vcpu1"});
  if (!fin) fx.path.clear();
  return fx;
}

}  // namespace es::test
