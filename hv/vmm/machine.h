// A machine to run a guest on: L0 alone, or L0 with an L1 hypervisor (the same vmm code on
// L0's emulated VMX) whose guest is L2. Whoever runs a scenario or a user's guest builds one.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>

#include "hv/vmm/scenarios.h"
#include "hv/vmm/vmm.h"

namespace es::hv {

class Machine {
 public:
  // With `l1`, the guest runs as L2 under an L1 configured by it.
  Machine(probes::ProbeBus& bus, const VmmConfig& l0, const std::optional<VmmConfig>& l1 = std::nullopt)
      : l0_(std::make_unique<Vmm>(bus, l0)) {
    if (l1) l1_ = std::make_unique<Vmm>(bus, *l1, *l0_);
  }
  // The hypervisor that runs the guest image: L1 when nested, else L0.
  Vmm& top() { return l1_ ? *l1_ : *l0_; }
  Vmm& l0() { return *l0_; }
  bool nested() const { return l1_ != nullptr; }
  bool load(std::span<const uint8_t> image, std::string& error) { return top().load(image, error); }
  RunResult run() { return top().run(); }
  void request_stop() { top().request_stop(); }

 private:
  std::unique_ptr<Vmm> l0_;
  std::unique_ptr<Vmm> l1_;
};

}  // namespace es::hv
