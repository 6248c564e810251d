// Decoding of the raw events the BPF probes copy (probes/kvm/kvm_event.h) into kvmtrace's
// KvmEvent (kvmtrace/event.h), at the field offsets of the running kernel
// (probes/kvm/tracefs_format.h), so live KVM records go through the same linker as trace text
// and trace.dat.
//
// The linker turns the context events (kvm_pio, kvm_mmio, kvm_emulate_insn, ...) into CONTEXT
// records as for imports (ES_CONTEXT_* in exitscope/record.h).
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "exitscope/record.h"
#include "probes/kvm/kvm_event.h"
#include "probes/kvm/tracefs_format.h"
#include "kvmtrace/event.h"

namespace es::kvm {

class Decoder {
 public:
  using Layouts = std::array<std::optional<EventLayout>, ES_KVM_EV_COUNT>;
  explicit Decoder(Layouts layouts) : layouts_(std::move(layouts)) {}

  // Fills `t` (vcpu: the body's vCPU or -1; pid = thread id; the time is e.time_ns). False for an event id without a
  // layout (never attached), which the caller counts as undecodable.
  bool decode(const es_kvm_event& e, kvmtrace::KvmEvent& t) const;

  const Layouts& layouts() const { return layouts_; }

 private:
  Layouts layouts_;
};

}  // namespace es::kvm
