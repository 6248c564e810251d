#include "hv/vmm/policy.h"

namespace es::hv {
namespace {

class KvmPolicy final : public ReinjectionPolicy {
 public:
  std::string_view name() const override { return "default"; }
  std::string_view description() const override {
    return "requeue every event found in IDT-vectoring info, as KVM's __vmx_complete_interrupts does";
  }
  bool requeue(arch::IdtVectoringInfo) const override { return true; }
};

class DropHwExceptionsPolicy final : public ReinjectionPolicy {
 public:
  std::string_view name() const override { return "drop-hw-exceptions"; }
  std::string_view description() const override {
    return "do not requeue hardware exceptions from IDT-vectoring info; rely on the CPU regenerating them";
  }
  bool requeue(arch::IdtVectoringInfo v) const override {
    return v.type() != arch::InterruptionType::HardwareException;
  }
};

}  // namespace

std::vector<std::unique_ptr<ReinjectionPolicy>> all_policies() {
  std::vector<std::unique_ptr<ReinjectionPolicy>> v;
  v.push_back(std::make_unique<KvmPolicy>());
  v.push_back(std::make_unique<DropHwExceptionsPolicy>());
  return v;
}

std::unique_ptr<ReinjectionPolicy> make_policy(std::string_view name) {
  for (auto& p : all_policies())
    if (p->name() == name) return std::move(p);
  return nullptr;
}

}  // namespace es::hv
