// Helpers shared by the probes / replay / cli tests: temporary recording paths under the
// build tree and a builder that emits hand-made record sequences through a real ProbeBus.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "exitscope/record.h"
#include "tests/support/tmp.h"
#include "hv/arch/event_info.h"
#include "hv/arch/exit_reason.h"
#include "exitscope/probe_bus.h"

namespace es::test {

// A fresh path (old file and its -wal / -shm removed) in ES_TEST_TMPDIR.
inline std::string temp_db(const std::string& name) {
  const std::string p = process_tmp(name);
  for (const char* s : {"", "-wal", "-shm", "-journal"}) std::filesystem::remove(p + s);
  return p;
}

inline uint32_t irq(uint8_t v) { return arch::EntryIntrInfo::make(v, arch::InterruptionType::ExternalInterrupt).raw(); }
inline uint32_t hw_exc(uint8_t v, bool err = false) {
  return arch::EntryIntrInfo::make(v, arch::InterruptionType::HardwareException, err).raw();
}
inline uint32_t vectoring_irq(uint8_t v) {
  return arch::IdtVectoringInfo::make(v, arch::InterruptionType::ExternalInterrupt).raw();
}
inline uint32_t vectoring_exc(uint8_t v, bool err = false) {
  return arch::IdtVectoringInfo::make(v, arch::InterruptionType::HardwareException, err).raw();
}
inline uint32_t exit_reason(arch::BasicExitReason b) { return arch::ExitReason(b).raw(); }

// Emits records with increasing time through a ProbeBus; each call returns the record id.
class Emitter {
 public:
  explicit Emitter(probes::ProbeBus& bus) : bus_(bus) {}

  uint64_t emit(es_record r) {
    r.time_ns = (time_ += 100);
    if (r.level == 0) r.level = 1;
    bus_.emit(r);
    return r.id;
  }
  // A chain root: origin = its own id.
  uint64_t raise(uint32_t word, uint64_t cause = 0, uint32_t error = 0) {
    es_record r{};
    r.kind = ES_KIND_RAISE;
    r.id = bus_.next_id();
    r.origin = r.id;
    r.cause = cause;
    r.intr_info = word;
    r.intr_error = error;
    return emit(r);
  }
  uint64_t decision(uint32_t reason, uint32_t word, uint64_t origin, uint64_t cause, uint32_t aux = 0) {
    es_record r{};
    r.kind = ES_KIND_DECISION;
    r.reason = reason;
    r.aux = aux;
    r.intr_info = word;
    r.origin = origin;
    r.cause = cause;
    return emit(r);
  }
  uint64_t entry(uint32_t word, uint64_t origin, uint64_t cause) {
    es_record r{};
    r.kind = ES_KIND_VM_ENTRY;
    r.intr_info = word;
    r.origin = origin;
    r.cause = cause;
    r.rip = 0x1000;
    return emit(r);
  }
  uint64_t vm_exit(uint32_t reason, uint64_t qual, uint32_t exit_intr, uint32_t vectoring, uint64_t origin,
                   uint64_t cause, uint64_t gpa = 0) {
    es_record r{};
    r.kind = ES_KIND_VM_EXIT;
    r.reason = reason;
    r.qualification = qual;
    r.intr_info = exit_intr;
    r.idt_vectoring_info = vectoring;
    r.guest_phys = gpa;
    r.origin = origin;
    r.cause = cause;
    r.rip = 0x1000;
    return emit(r);
  }
  uint64_t delivery(uint32_t word, uint64_t origin, uint64_t cause) {
    es_record r{};
    r.kind = ES_KIND_DELIVERY;
    r.intr_info = word;
    r.origin = origin;
    r.cause = cause;
    return emit(r);
  }
  uint64_t run_end(uint32_t reason, uint64_t cause = 0) {
    es_record r{};
    r.kind = ES_KIND_RUN_END;
    r.reason = reason;
    r.cause = cause;
    return emit(r);
  }
  uint64_t console(std::string_view text) {
    es_record r{};
    r.kind = ES_KIND_CONSOLE;
    r.aux = static_cast<uint32_t>(text.size() < 16 ? text.size() : 16);
    for (uint32_t i = 0; i < r.aux; ++i) r.bytes[i] = static_cast<uint8_t>(text[i]);
    return emit(r);
  }

 private:
  probes::ProbeBus& bus_;
  uint64_t time_ = 0;
};

}  // namespace es::test
