// tb-pm-guest: the test bed's protected-mode /dev/kvm programs (tests/testbed/README.md). One
// vCPU in 32-bit protected mode with paging (a 4 MiB identity page) runs a flat image at 0x1000.
// Linked statically, like tb-kvm-guest, to run inside the emulated machine.
//
//   tb-pm-guest nested | escalate
//
//   nested    tb_nested_l1.asm: a tiny SVM hypervisor (L1) that VMRUNs an L2 (needs kvm_amd
//             nested=1); the .asm says what each step should show.
//   escalate  tb_escalate.asm: #UD whose delivery hits an NPF, is reinjected and escalates to a
//             shutdown.
//
// Prints "pid P", one line per exit to user space ("l1-exit CODE" for each #VMEXIT code L1
// reports on port 0x10, "out 0xe9 VALUE" for the guest's port writes, "irq 0x20" when
// KVM_INTERRUPT was issued, "hlt", "shutdown"), then "done SCENARIO". Exit status 0 when the
// guest ended as the scenario expects (nested: L1 halted after L2's HLT with the expected
// sequence; escalate: KVM_EXIT_SHUTDOWN after the first write), 1 otherwise, 2 for a bad
// argument, 3 when /dev/kvm cannot be used, 4 when KVM offers no SVM to its guests (nested).
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

#include "tb_guest_blobs.h"

namespace {

// 1 MiB at GPA 0, MAP_PRIVATE | MAP_NORESERVE: only the pages written here are in the host's
// page tables, so KVM maps the others (L2's stack page 0x1F000) on their first guest access.
constexpr std::size_t kMemSize = 0x100000;
constexpr std::uint32_t kL1Load = 0x1000;
constexpr std::uint32_t kGdt = 0x4000, kIdt = 0x4800, kVmcb = 0x6000, kPageDir = 0x9000;
constexpr std::uint32_t kL2Rip = 0x3000, kL2Stack = 0x20000, kL1Stack = 0x8000;
constexpr std::uint32_t kIrqVector = 0x20;

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
  m.u32(v + 0x008, 1u << 6);                   // exception intercepts: #UD
  m.u32(v + 0x00C, (1u << 18) | (1u << 24));   // CPUID, HLT (not INTR, not IOIO_PROT)
  m.u32(v + 0x010, 1u << 0);                   // VMRUN (must be intercepted, 15.5.1)
  m.u64(v + 0x040, 0x10000);                   // IOPM_BASE_PA (not used: no IOIO intercept)
  m.u64(v + 0x048, 0x14000);                   // MSRPM_BASE_PA (not used: no MSR intercept)
  m.u32(v + 0x058, 1);                         // guest ASID (0 is the host's)
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
  const int vm = ::ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) return fail("KVM_CREATE_VM");
  void* mem = ::mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return fail("mmap guest memory");
  const Mem m{static_cast<unsigned char*>(mem)};
  if (nested) std::memcpy(m.p + kL1Load, tb_guest_blobs_tb_nested_l1, tb_guest_blobs_tb_nested_l1_size);
  else std::memcpy(m.p + kL1Load, tb_guest_blobs_tb_escalate, tb_guest_blobs_tb_escalate_size);
  // L2's GDT: null, code 0x08, data 0x10 (flat, 4 GiB); its IDT: IRQ 0x20, IRQ 0x21, #UD.
  m.u64(kGdt + 0x08, 0x00CF9B000000FFFFull);
  m.u64(kGdt + 0x10, 0x00CF93000000FFFFull);
  m.gate(0x20, 0x3100);
  m.gate(0x21, 0x3200);
  m.gate(6, 0x3300);
  write_vmcb(m);
  m.u32(kPageDir, 0x83);  // L1's paging: one 4 MiB identity page (PS | RW | P)

  kvm_userspace_memory_region region{};
  region.memory_size = kMemSize;
  region.userspace_addr = reinterpret_cast<std::uintptr_t>(mem);
  if (::ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) return fail("KVM_SET_USER_MEMORY_REGION");
  const int vcpu = ::ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) return fail("KVM_CREATE_VCPU");

  // The vCPU sees SVM only if KVM offers it (kvm_amd nested=1) and the CPUID says so.
  constexpr int kEntries = 100;  // KVM 6.1 offers fewer than 100 leaves
  std::vector<unsigned char> buf(sizeof(CpuidHeader) + kEntries * sizeof(kvm_cpuid_entry2));
  auto* cpuid = reinterpret_cast<CpuidHeader*>(buf.data());
  cpuid->nent = kEntries;
  if (::ioctl(kvm, kGetSupportedCpuid, cpuid) < 0) return fail("KVM_GET_SUPPORTED_CPUID");
  bool svm = false;
  for (unsigned i = 0; i < cpuid->nent; ++i) {
    kvm_cpuid_entry2 e;
    std::memcpy(&e, buf.data() + sizeof(CpuidHeader) + i * sizeof e, sizeof e);
    if (e.function == 0x80000001) svm = (e.ecx >> 2) & 1;  // CPUID Fn8000_0001 ECX[2] SVM
  }
  if (!svm && nested) {
    std::fprintf(stderr, "tb-pm-guest: KVM offers no SVM to its guests (kvm_amd nested=0?)\n");
    return 4;
  }
  if (::ioctl(vcpu, kSetCpuid2, cpuid) < 0) return fail("KVM_SET_CPUID2");

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
  sregs.cr4 |= 0x10;               // PSE
  sregs.cr0 |= 0x80000001;         // PG | PE
  if (::ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) return fail("KVM_SET_SREGS");
  kvm_regs regs{};
  regs.rip = kL1Load;
  regs.rsp = kL1Stack;
  regs.rflags = 0x2;
  if (::ioctl(vcpu, KVM_SET_REGS, &regs) < 0) return fail("KVM_SET_REGS");

  std::printf("pid %d\n", static_cast<int>(::getpid()));
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
        // L1 saw CPUID, #UD, HLT; L2 wrote 0x21 (L1's IRQ), 1, 0x20 (L0's IRQ), 6 (#UD), 2.
        const bool as_expected = l1_exits == "72 46 78 " && l2_out == "21 1 20 6 2 ";
        if (!as_expected)
          std::printf("unexpected: l1 exits '%s', l2 port writes '%s'\n", l1_exits.c_str(), l2_out.c_str());
        return as_expected ? 0 : 1;
      }
      case KVM_EXIT_IRQ_WINDOW_OPEN: std::printf("irq-window\n"); break;
      case KVM_EXIT_IO: {
        const auto* data = reinterpret_cast<unsigned char*>(run) + run->io.data_offset;
        char hex[8];
        std::snprintf(hex, sizeof hex, "%x ", data[0]);
        if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == 0x10) {
          std::printf("l1-exit 0x%x\n", data[0]);
          l1_exits += hex;
        } else if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == 0xE9) {
          std::printf("out 0xe9 0x%x\n", data[0]);
          l2_out += hex;
          if (data[0] == 1) irq_pending = true;  // L2's first write: raise IRQ 0x20
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
