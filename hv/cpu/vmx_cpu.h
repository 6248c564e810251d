// "A VMX CPU" as a hypervisor sees it: VMLAUNCH/VMRESUME, the host's interrupt sources, and
// time. At L0 it is the silicon (hv/cpu/cpu.h); at L1 it is L0's emulation of VMX
// (hv/vmm: nested VM entry builds vmcs02 from vmcs01 + vmcs12, a nested VM exit fills
// vmcs12). The same vmm code runs on either.
#pragma once

#include <cstdint>

#include "hv/cpu/vmcs.h"

namespace es::hv {

struct GuestGprs;
struct EntryContext;
struct ExitRecordInfo;

class VmxCpu {
 public:
  virtual ~VmxCpu() = default;
  // VMLAUNCH / VMRESUME on `vmcs` until the next VM exit (see Cpu::vm_entry).
  virtual ExitRecordInfo vm_entry(Vmcs& vmcs, GuestGprs& gprs, const EntryContext& ctx) = 0;
  // An interrupt for this hypervisor (its timer) becomes pending at `at_ns` (~0 cancels).
  virtual void set_host_interrupt(uint64_t at_ns, uint8_t vector) = 0;
  // An NMI for this hypervisor's host is pending now.
  virtual void raise_host_nmi() = 0;
  virtual uint64_t now_ns() const = 0;
  virtual void advance_time(uint64_t ns) = 0;
  // The guest's memory mappings changed (EPT edits): drop cached translations.
  virtual void flush_caches() = 0;
};

}  // namespace es::hv
