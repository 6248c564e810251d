// tb-pm-guest: the test bed's protected-mode /dev/kvm programs (tests/testbed/README.md). One
// vCPU in 32-bit protected mode with paging (a 4 MiB identity page) runs a flat image at 0x1000.
// Linked statically, like tb-kvm-guest, to run inside the emulated machine.
//
//   tb-pm-guest nested | escalate
//
//   nested    a tiny hypervisor (L1) of the vendor KVM offers its guests, running an L2:
//             tb_nested_l1.asm on SVM (VMRUN; needs kvm_amd nested=1), tb_nested_vmx_l1.asm on
//             VMX (VMXON, VMLAUNCH / VMRESUME; needs kvm_intel nested=1); each .asm says what
//             each step should show.
//   escalate  tb_escalate.asm: #UD whose delivery hits an NPF, is reinjected and escalates to a
//             shutdown.
//
// Prints "pid P", one line per exit to user space ("l1-exit CODE" for each #VMEXIT code or VMX
// exit reason L1 reports on port 0x10, "l1-info VALUE" for what it adds on port 0x12 (VMX: the
// exit interruption info of an exception exit), "l1-vmfail ERROR" for a VMX instruction that
// failed (port 0x11), "out 0xe9 VALUE" for the guest's port writes, "irq 0x20" when
// KVM_INTERRUPT was issued, "hlt", "shutdown"), then "done SCENARIO". Exit status 0 when the
// guest ended as the scenario expects (nested: L1 halted after L2's HLT with the expected
// sequence; escalate: KVM_EXIT_SHUTDOWN after the first write), 1 otherwise, 2 for a bad
// argument, 3 when /dev/kvm cannot be used, 4 when KVM offers neither SVM nor VMX to its
// guests (nested).
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "hv/arch/vmcs.h"
#include "tb_guest_blobs.h"

namespace {

// 1 MiB at GPA 0, MAP_PRIVATE | MAP_NORESERVE: only the pages written here are in the host's
// page tables, so KVM maps the others (L2's stack page 0x1F000) on their first guest access.
constexpr std::size_t kMemSize = 0x100000;
constexpr std::uint32_t kL1Load = 0x1000;
constexpr std::uint32_t kGdt = 0x4000, kIdt = 0x4800, kVmcb = 0x6000, kPageDir = 0x9000;
constexpr std::uint32_t kL2Rip = 0x3000, kL2Stack = 0x20000, kL1Stack = 0x8000;
constexpr std::uint32_t kIrqVector = 0x20;
// VMX: L1's VMXON region is at 0x5000, its VMCS at 0x6000 (kVmcb), the fields it writes at 0xA000.
constexpr std::uint32_t kVmcsFields = 0xA000;

// struct kvm_cpuid2's header. In C++ the uapi header's __DECLARE_FLEX_ARRAY wraps `entries` in a
// struct beside an empty one, which C++ sizes 1 byte: sizeof(kvm_cpuid2) becomes 12 instead of 8
// and so do the size bits of the ioctl numbers, which KVM then refuses (EINVAL). The numbers
// are made here from the 8-byte header the kernel expects (Documentation/virt/kvm/api.rst).
struct CpuidHeader {
  std::uint32_t nent;
  std::uint32_t padding;
};
static_assert(sizeof(CpuidHeader) == 8);
const unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
const unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
// struct kvm_msrs's header, for the same reason.
struct MsrsHeader {
  std::uint32_t nmsrs;
  std::uint32_t pad;
};
static_assert(sizeof(MsrsHeader) == 8);
const unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);

int fail(const char* what) {
  std::fprintf(stderr, "tb-pm-guest: %s: %s\n", what, std::strerror(errno));
  return 3;
}

struct Mem {
  unsigned char* p;
  void u16(std::uint32_t a, std::uint16_t v) const { std::memcpy(p + a, &v, 2); }
  void u32(std::uint32_t a, std::uint32_t v) const { std::memcpy(p + a, &v, 4); }
  void u64(std::uint32_t a, std::uint64_t v) const { std::memcpy(p + a, &v, 8); }
  // VMCB segment register (APM Vol. 2 Appendix B, Table B-2): selector, attrib (the descriptor's
  // type / S / DPL / P / AVL / L / D / G bits packed into 12), limit, base.
  void seg(std::uint32_t a, std::uint16_t sel, std::uint16_t attrib, std::uint32_t limit, std::uint64_t base) const {
    u16(a, sel);
    u16(a + 2, attrib);
    u32(a + 4, limit);
    u64(a + 8, base);
  }
  // 32-bit interrupt gate, present, DPL 0, selector 0x08 (SDM Vol. 3A 6.11).
  void gate(int vector, std::uint32_t handler) const {
    const std::uint32_t a = kIdt + 8 * static_cast<std::uint32_t>(vector);
    u16(a, handler & 0xFFFF);
    u16(a + 2, 0x08);
    p[a + 4] = 0;
    p[a + 5] = 0x8E;
    u16(a + 6, static_cast<std::uint16_t>(handler >> 16));
  }
};

// L2's state and L1's intercepts in the VMCB (APM Vol. 2 Appendix B, "Layout of VMCB").
void write_vmcb(const Mem& m) {
  const std::uint32_t v = kVmcb, s = kVmcb + 0x400;
  m.u32(v + 0x008, 1u << 6);                     // exception intercepts: #UD
  m.u32(v + 0x00C, (1u << 18) | (1u << 24));     // CPUID, HLT (not INTR, not IOIO_PROT)
  m.u32(v + 0x010, 1u << 0);                     // VMRUN (must be intercepted, 15.5.1)
  m.u64(v + 0x040, 0x10000);                     // IOPM_BASE_PA (not used: no IOIO intercept)
  m.u64(v + 0x048, 0x14000);                     // MSRPM_BASE_PA (not used: no MSR intercept)
  m.u32(v + 0x058, 1);                           // guest ASID (0 is the host's)
  m.seg(s + 0x000, 0x10, 0xC93, 0xFFFFFFFF, 0);  // ES: data, flat
  m.seg(s + 0x010, 0x08, 0xC9B, 0xFFFFFFFF, 0);  // CS: code, 32-bit, flat
  m.seg(s + 0x020, 0x10, 0xC93, 0xFFFFFFFF, 0);  // SS
  m.seg(s + 0x030, 0x10, 0xC93, 0xFFFFFFFF, 0);  // DS
  m.seg(s + 0x040, 0x10, 0xC93, 0xFFFFFFFF, 0);  // FS
  m.seg(s + 0x050, 0x10, 0xC93, 0xFFFFFFFF, 0);  // GS
  m.seg(s + 0x060, 0, 0, 0x17, kGdt);            // GDTR
  m.seg(s + 0x070, 0, 0x82, 0, 0);               // LDTR
  m.seg(s + 0x080, 0, 0, 0x7FF, kIdt);           // IDTR
  m.seg(s + 0x090, 0, 0x8B, 0x67, 0);            // TR: busy 32-bit TSS
  m.p[s + 0x0CB] = 0;                            // CPL
  m.u64(s + 0x0D0, 1u << 12);                    // EFER.SVME (15.5.1: VMRUN fails without it)
  m.u64(s + 0x148, 0);                           // CR4
  m.u64(s + 0x150, 0);                           // CR3
  m.u64(s + 0x158, 0x11);                        // CR0: PE | ET, no paging
  m.u64(s + 0x160, 0x400);                       // DR7
  m.u64(s + 0x168, 0xFFFF0FF0);                  // DR6
  m.u64(s + 0x170, 0x202);                       // RFLAGS: IF
  m.u64(s + 0x178, kL2Rip);                      // RIP
  m.u64(s + 0x1D8, kL2Stack);                    // RSP
  m.u64(s + 0x268, 0x0007040600070406ull);       // G_PAT (power-on value)
}

// The VMX capability MSRs KVM gives its guest (SDM Vol. 3D Appendix A.3-A.5): bits 31:0 are the
// allowed 0-settings (a 1 there must be 1), bits 63:32 the allowed 1-settings.
struct VmxCaps {
  std::uint64_t pinbased = 0, procbased = 0, exit = 0, entry = 0;
};

// Reads IA32_VMX_PINBASED_CTLS, _PROCBASED_CTLS, _EXIT_CTLS and _ENTRY_CTLS (0x481-0x484) of the
// vCPU. The non-"TRUE" MSRs: their default-1 bits (CR3-load / -store exiting, save / load debug
// controls) are harmless here and keep L1 independent of IA32_VMX_BASIC[55].
bool read_vmx_caps(int vcpu, VmxCaps& caps) {
  constexpr std::uint32_t kIndex[] = {0x481, 0x482, 0x483, 0x484};
  std::vector<unsigned char> buf(sizeof(MsrsHeader) + 4 * sizeof(kvm_msr_entry));
  auto* hdr = reinterpret_cast<MsrsHeader*>(buf.data());
  hdr->nmsrs = 4;
  for (unsigned i = 0; i < 4; ++i) {
    kvm_msr_entry e{};
    e.index = kIndex[i];
    std::memcpy(buf.data() + sizeof(MsrsHeader) + i * sizeof e, &e, sizeof e);
  }
  if (::ioctl(vcpu, kGetMsrs, hdr) != 4) return false;
  std::uint64_t v[4];
  for (unsigned i = 0; i < 4; ++i) {
    kvm_msr_entry e;
    std::memcpy(&e, buf.data() + sizeof(MsrsHeader) + i * sizeof e, sizeof e);
    v[i] = e.data;
  }
  caps = {v[0], v[1], v[2], v[3]};
  return true;
}

// A control word with the bits L1 wants, within what the capability MSR allows; false when it
// does not allow one of them.
bool control(std::uint64_t cap, std::uint32_t want, std::uint32_t& out) {
  const auto allowed0 = static_cast<std::uint32_t>(cap), allowed1 = static_cast<std::uint32_t>(cap >> 32);
  out = (want | allowed0) & allowed1;
  return (want & ~allowed1) == 0;
}

// The VMCS fields L1 writes before VMLAUNCH (tb_nested_vmx_l1.asm; L1 adds its CR0 / CR3 / CR4,
// RSP and exit handler): (encoding, value) pairs at kVmcsFields ending with 0xFFFFFFFF. L2 runs
// in 32-bit protected mode with paging on L1's page directory; its state must pass SDM Vol. 3C
// 26.3.1 "Checks on the Guest State Area" without unrestricted guest (26.3.1.2: accessed code /
// data segments, TR a busy 32-bit TSS, LDTR unusable, CR0 / CR4 within the FIXED MSRs).
// Returns the control words for the runner to print, or an empty string when KVM refuses one.
std::string write_vmcs_fields(const Mem& m, const VmxCaps& caps) {
  using es::arch::VmcsField;
  std::uint32_t pin = 0, proc = 0, exit_ctl = 0, entry_ctl = 0;
  // Processor-based: HLT exiting [7], unconditional I/O exiting [24]; no I/O or MSR bitmaps, no
  // secondary controls (so no EPT and no unrestricted guest for L2).
  if (!control(caps.pinbased, 0, pin) || !control(caps.procbased, (1u << 7) | (1u << 24), proc) ||
      !control(caps.exit, 0, exit_ctl) || !control(caps.entry, 0, entry_ctl))
    return "";
  std::uint32_t a = kVmcsFields;
  auto field = [&](std::uint32_t encoding, std::uint32_t value) {
    m.u32(a, encoding);
    m.u32(a + 4, value);
    a += 8;
  };
  auto f = [&](VmcsField name, std::uint32_t value) { field(static_cast<std::uint32_t>(name), value); };
  f(VmcsField::PinBasedVmExecControl, pin);
  f(VmcsField::CpuBasedVmExecControl, proc);
  f(VmcsField::VmExitControls, exit_ctl);    // host address-space size 0: L1 is 32-bit
  f(VmcsField::VmEntryControls, entry_ctl);  // IA-32e mode guest 0
  f(VmcsField::ExceptionBitmap, 1u << 6);    // #UD
  // 64-bit field from 32-bit code: the full encoding, then the high half (access type 1, 25.11.2).
  f(VmcsField::VmcsLinkPointer, 0xFFFFFFFF);
  field(static_cast<std::uint32_t>(VmcsField::VmcsLinkPointer) + 1, 0xFFFFFFFF);
  // L2's guest state: flat code 0x08 / data 0x10 (access rights: type, S, DPL, P, D/B, G;
  // 24.4.1), TR 0x18 busy 32-bit TSS, LDTR unusable [16].
  const VmcsField sel[] = {VmcsField::GuestEsSelector, VmcsField::GuestCsSelector, VmcsField::GuestSsSelector,
                           VmcsField::GuestDsSelector, VmcsField::GuestFsSelector, VmcsField::GuestGsSelector};
  const VmcsField lim[] = {VmcsField::GuestEsLimit, VmcsField::GuestCsLimit, VmcsField::GuestSsLimit,
                           VmcsField::GuestDsLimit, VmcsField::GuestFsLimit, VmcsField::GuestGsLimit};
  const VmcsField ar[] = {VmcsField::GuestEsArBytes, VmcsField::GuestCsArBytes, VmcsField::GuestSsArBytes,
                          VmcsField::GuestDsArBytes, VmcsField::GuestFsArBytes, VmcsField::GuestGsArBytes};
  for (int i = 0; i < 6; ++i) {
    const bool code = sel[i] == VmcsField::GuestCsSelector;
    f(sel[i], code ? 0x08 : 0x10);
    f(lim[i], 0xFFFFFFFF);
    f(ar[i], code ? 0xC09B : 0xC093);
  }
  f(VmcsField::GuestLdtrArBytes, 1u << 16);
  f(VmcsField::GuestTrSelector, 0x18);
  f(VmcsField::GuestTrLimit, 0x67);
  f(VmcsField::GuestTrArBytes, 0x8B);
  f(VmcsField::GuestGdtrBase, kGdt);
  f(VmcsField::GuestGdtrLimit, 0x1F);
  f(VmcsField::GuestIdtrBase, kIdt);
  f(VmcsField::GuestIdtrLimit, 0x7FF);
  f(VmcsField::GuestCr0, 0x80000031);  // PG | NE | ET | PE (IA32_VMX_CR0_FIXED0 without unrestricted guest)
  f(VmcsField::GuestCr3, kPageDir);
  f(VmcsField::GuestCr4, 0x2010);  // VMXE (IA32_VMX_CR4_FIXED0) | PSE (the 4 MiB page)
  f(VmcsField::GuestDr7, 0x400);
  f(VmcsField::GuestRip, kL2Rip);
  f(VmcsField::GuestRsp, kL2Stack);
  f(VmcsField::GuestRflags, 0x202);  // IF: an injected external interrupt needs it (26.3.1.4)
  // L1's host state (27.5 "Loading Host State"); CR0 / CR3 / CR4, RSP, RIP are L1's to write.
  f(VmcsField::HostCsSelector, 0x08);
  for (VmcsField h : {VmcsField::HostEsSelector, VmcsField::HostSsSelector, VmcsField::HostDsSelector,
                      VmcsField::HostFsSelector, VmcsField::HostGsSelector})
    f(h, 0x10);
  f(VmcsField::HostTrSelector, 0x18);  // must not be 0 (26.2.3)
  f(VmcsField::HostGdtrBase, kGdt);
  f(VmcsField::HostIdtrBase, kIdt);
  field(0xFFFFFFFF, 0);
  char words[128];
  std::snprintf(words, sizeof words, "vmcs12 controls: pin 0x%x proc 0x%x exit 0x%x entry 0x%x", pin, proc, exit_ctl,
                entry_ctl);
  return words;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string scenario = argc == 2 ? argv[1] : "";
  if (scenario != "nested" && scenario != "escalate") {
    std::fprintf(stderr, "tb-pm-guest: give one scenario: nested or escalate\n");
    return 2;
  }
  const bool nested = scenario == "nested";
  const int kvm = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) return fail("cannot open /dev/kvm");
  if (::ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) return fail("KVM_GET_API_VERSION");

  // The vCPU sees SVM or VMX only if KVM offers it (kvm_amd / kvm_intel nested=1) and the CPUID
  // says so; `nested` runs the L1 of the vendor offered.
  constexpr int kEntries = 100;  // KVM 6.1 offers fewer than 100 leaves
  std::vector<unsigned char> buf(sizeof(CpuidHeader) + kEntries * sizeof(kvm_cpuid_entry2));
  auto* cpuid = reinterpret_cast<CpuidHeader*>(buf.data());
  cpuid->nent = kEntries;
  if (::ioctl(kvm, kGetSupportedCpuid, cpuid) < 0) return fail("KVM_GET_SUPPORTED_CPUID");
  bool svm = false, vmx = false;
  for (unsigned i = 0; i < cpuid->nent; ++i) {
    kvm_cpuid_entry2 e;
    std::memcpy(&e, buf.data() + sizeof(CpuidHeader) + i * sizeof e, sizeof e);
    if (e.function == 0x80000001) svm = (e.ecx >> 2) & 1;  // CPUID Fn8000_0001 ECX[2] SVM
    if (e.function == 1) vmx = (e.ecx >> 5) & 1;           // CPUID.01H:ECX[5] VMX
  }
  if (nested && !svm && !vmx) {
    std::fprintf(
        stderr, "tb-pm-guest: KVM offers neither SVM nor VMX to its guests (load kvm_amd / kvm_intel with nested=1)\n");
    return 4;
  }
  const bool nested_vmx = nested && vmx && !svm;

  const int vm = ::ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) return fail("KVM_CREATE_VM");
  void* mem = ::mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return fail("mmap guest memory");
  const Mem m{static_cast<unsigned char*>(mem)};
  if (nested_vmx)
    std::memcpy(m.p + kL1Load, tb_guest_blobs_tb_nested_vmx_l1, tb_guest_blobs_tb_nested_vmx_l1_size);
  else if (nested)
    std::memcpy(m.p + kL1Load, tb_guest_blobs_tb_nested_l1, tb_guest_blobs_tb_nested_l1_size);
  else
    std::memcpy(m.p + kL1Load, tb_guest_blobs_tb_escalate, tb_guest_blobs_tb_escalate_size);
  // L2's GDT: null, code 0x08, data 0x10 (flat, 4 GiB), VMX: a 32-bit TSS 0x18 (L2's and L1's
  // TR selector); its IDT: IRQ 0x20, IRQ 0x21, #UD.
  m.u64(kGdt + 0x08, 0x00CF9B000000FFFFull);
  m.u64(kGdt + 0x10, 0x00CF93000000FFFFull);
  if (nested_vmx) m.u64(kGdt + 0x18, 0x00008B0000000067ull);
  m.gate(0x20, 0x3100);
  m.gate(0x21, 0x3200);
  m.gate(6, 0x3300);
  if (!nested_vmx) write_vmcb(m);
  m.u32(kPageDir, 0x83);  // L1's paging: one 4 MiB identity page (PS | RW | P)

  kvm_userspace_memory_region region{};
  region.memory_size = kMemSize;
  region.userspace_addr = reinterpret_cast<std::uintptr_t>(mem);
  if (::ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) return fail("KVM_SET_USER_MEMORY_REGION");
  const int vcpu = ::ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) return fail("KVM_CREATE_VCPU");
  if (::ioctl(vcpu, kSetCpuid2, cpuid) < 0) return fail("KVM_SET_CPUID2");
  std::string controls;
  if (nested_vmx) {
    // KVM fills the vCPU's VMX capability MSRs once its CPUID has VMX (vmx_vcpu_after_set_cpuid).
    VmxCaps caps;
    if (!read_vmx_caps(vcpu, caps)) return fail("KVM_GET_MSRS (IA32_VMX_*_CTLS)");
    controls = write_vmcs_fields(m, caps);
    if (controls.empty()) {
      std::printf("tb-pm-guest: KVM's IA32_VMX_PROCBASED_CTLS allows no HLT or unconditional I/O exiting (0x%llx)\n",
                  static_cast<unsigned long long>(caps.procbased));
      return 1;
    }
  }

  const int run_size = ::ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size <= 0) return fail("KVM_GET_VCPU_MMAP_SIZE");
  void* run_mem = ::mmap(nullptr, static_cast<std::size_t>(run_size), PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run_mem == MAP_FAILED) return fail("mmap kvm_run");
  auto* run = static_cast<kvm_run*>(run_mem);

  kvm_sregs sregs{};
  if (::ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) return fail("KVM_GET_SREGS");
  kvm_segment cs{};
  cs.limit = 0xFFFFFFFF;
  cs.selector = 0x08;
  cs.type = 11;
  cs.present = 1;
  cs.db = 1;
  cs.s = 1;
  cs.g = 1;
  kvm_segment ds = cs;
  ds.selector = 0x10;
  ds.type = 3;
  sregs.cs = cs;
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = ds;
  sregs.cr3 = kPageDir;
  sregs.cr4 |= 0x10;  // PSE
  if (nested_vmx)
    sregs.cr0 = 0x80000031;  // PG | NE | ET | PE: VMXON needs CR0 within IA32_VMX_CR0_FIXED0 (PE, NE, PG)
  else
    sregs.cr0 |= 0x80000001;  // PG | PE
  if (::ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) return fail("KVM_SET_SREGS");
  kvm_regs regs{};
  regs.rip = kL1Load;
  regs.rsp = kL1Stack;
  regs.rflags = 0x2;
  if (::ioctl(vcpu, KVM_SET_REGS, &regs) < 0) return fail("KVM_SET_REGS");

  std::printf("pid %d\n", static_cast<int>(::getpid()));
  if (nested) std::printf("nested %s\n", nested_vmx ? "vmx" : "svm");
  if (!controls.empty()) std::printf("%s\n", controls.c_str());
  std::string l1_exits, l2_out;
  bool irq_pending = false;
  for (int exits = 0; exits < 1000; ++exits) {
    run->request_interrupt_window = 0;
    if (irq_pending) {
      if (run->ready_for_interrupt_injection) {
        kvm_interrupt irq{};
        irq.irq = kIrqVector;
        if (::ioctl(vcpu, KVM_INTERRUPT, &irq) < 0) return fail("KVM_INTERRUPT");
        std::printf("irq 0x%x\n", kIrqVector);
        irq_pending = false;
      } else {
        run->request_interrupt_window = 1;
      }
    }
    if (::ioctl(vcpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR) continue;
      return fail("KVM_RUN");
    }
    switch (run->exit_reason) {
      case KVM_EXIT_HLT: {
        std::printf("hlt\ndone %s\n", scenario.c_str());
        if (!nested) return 1;
        // SVM: L1 saw CPUID, #UD, HLT; L2 wrote 0x21 (L1's IRQ), 1, 0x20 (L0's IRQ), 6 (#UD), 2.
        // VMX (basic exit reasons, SDM Vol. 3D Appendix C): CPUID (0xa), I/O (0x1e) for the
        // IRQ 0x21 handler's write and L2's 1, the #UD exception (0, interruption info
        // 0x80000306), I/O for the #UD handler's 6 and L2's 2, HLT (0xc); L1 wrote each value.
        const char* want_l1 = nested_vmx ? "a 1e 1e 0 info=80000306 1e 1e c " : "72 46 78 ";
        const char* want_l2 = nested_vmx ? "21 1 6 2 " : "21 1 20 6 2 ";
        const bool as_expected = l1_exits == want_l1 && l2_out == want_l2;
        if (!as_expected)
          std::printf("unexpected: l1 exits '%s', l2 port writes '%s'\n", l1_exits.c_str(), l2_out.c_str());
        return as_expected ? 0 : 1;
      }
      case KVM_EXIT_IRQ_WINDOW_OPEN: std::printf("irq-window\n"); break;
      case KVM_EXIT_IO: {
        const auto* data = reinterpret_cast<unsigned char*>(run) + run->io.data_offset;
        std::uint32_t value = 0;
        std::memcpy(&value, data, run->io.size <= 4 ? run->io.size : 4);
        char hex[24];
        std::snprintf(hex, sizeof hex, "%x ", value);
        if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == 0x10) {
          std::printf("l1-exit 0x%x\n", value);
          l1_exits += hex;
        } else if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == 0x12) {
          std::printf("l1-info 0x%x\n", value);
          l1_exits += "info=" + std::string(hex);
        } else if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == 0x11) {
          // SDM Vol. 3C 30.4 "VM Instruction Error Numbers"; 0xffffffff: VMfailInvalid.
          std::printf("l1-vmfail 0x%x\n", value);
          return 1;
        } else if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == 0xE9) {
          std::printf("out 0xe9 0x%x\n", value);
          l2_out += hex;
          if (value == 1 && nested && !nested_vmx) irq_pending = true;  // SVM: L2's write of 1 raises IRQ 0x20
        } else {
          std::printf("unexpected port 0x%x\n", run->io.port);
          return 1;
        }
        break;
      }
      case KVM_EXIT_SHUTDOWN:
        std::printf("shutdown\ndone %s\n", scenario.c_str());
        return !nested && l2_out == "1 " ? 0 : 1;
      default:
        std::printf("unexpected exit %u (hardware reason 0x%llx)\n", run->exit_reason,
                    static_cast<unsigned long long>(run->fail_entry.hardware_entry_failure_reason));
        return 1;
    }
  }
  std::printf("too many exits\n");
  return 1;
}
