// The VMX that L0 emulates for L1: L1's VMLAUNCH/VMRESUME becomes a nested VM entry
// (vmcs02 built from vmcs01 + vmcs12, L2 run on the silicon), and L1 gets control back at a
// nested VM exit (vmcs12's exit fields filled). L1's timer is an interrupt L0 delivers as an
// EXTERNAL_INTERRUPT exit from L2. Modelled on KVM's arch/x86/kvm/vmx/nested.c.
#pragma once

#include "hv/cpu/vmx_cpu.h"
#include "hv/vmm/vmm.h"

namespace es::hv {

class NestedVmx final : public VmxCpu {
 public:
  explicit NestedVmx(Vmm& l0) : l0_(l0) {}
  ExitRecordInfo vm_entry(Vmcs& vmcs12, GuestGprs& gprs, const EntryContext& ctx) override {
    return l0_.nested_vm_entry(vmcs12, gprs, ctx);
  }
  void set_host_interrupt(uint64_t at_ns, uint8_t vector) override {
    l0_.l1_irq_at_ = at_ns;
    l0_.l1_irq_vector_ = vector;
  }
  // A physical NMI: it belongs to L0's host whoever asks for it.
  void raise_host_nmi() override { l0_.silicon_->raise_host_nmi(); }
  uint64_t now_ns() const override { return l0_.silicon_->now_ns(); }
  void advance_time(uint64_t ns) override { l0_.silicon_->advance_time(ns); }
  void flush_caches() override { l0_.silicon_->flush_caches(); }

 private:
  Vmm& l0_;
};

}  // namespace es::hv
