// Reinjection policy: what L0 does with an event found in IDT-vectoring information after a
// VM exit. This is the plugin point the seed thread "must a hardware exception reported in
// IDT-vectoring information be reinjected?" asks about: run the same guest under two
// policies and `exitscope diff` the recordings.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hv/arch/event_info.h"

namespace es::hv {

class ReinjectionPolicy {
 public:
  virtual ~ReinjectionPolicy() = default;
  virtual std::string_view name() const = 0;
  virtual std::string_view description() const = 0;
  // True: requeue the event for reinjection (KVM's __vmx_complete_interrupts).
  // False: drop it and let the CPU regenerate it when the guest re-executes the instruction.
  virtual bool requeue(arch::IdtVectoringInfo vectoring) const = 0;
};

// "default": requeue everything, as KVM does.
// "drop-hw-exceptions": hardware exceptions (type 3) are not requeued; everything else is.
std::unique_ptr<ReinjectionPolicy> make_policy(std::string_view name);
std::vector<std::unique_ptr<ReinjectionPolicy>> all_policies();

}  // namespace es::hv
