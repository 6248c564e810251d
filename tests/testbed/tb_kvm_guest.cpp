// tb-kvm-guest: the /dev/kvm programs of the real-KVM test bed (tests/testbed/README.md), one
// real-mode guest per scenario, linked statically so the emulated machine needs nothing else.
//
//   tb-kvm-guest pio | irq | irq-npf | npf | triple | loop | mmio
//
// Prints "pid P", one line per exit to user space ("out PORT VALUE", "in PORT", "mmio write
// GPA VALUE", "mmio read GPA" (answered 0x5C), "irq VECTOR" when KVM_INTERRUPT was issued, "hlt",
// "shutdown"), then "done SCENARIO". Exit status 0 when
// the guest ended as the scenario expects (HLT, or KVM_EXIT_SHUTDOWN for triple), 1 when it
// did something else, 2 for a bad argument, 3 when /dev/kvm cannot be used.
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "tb_guest_blobs.h"
#include "tests/support/kvm_vm.h"

namespace {

// 64 KiB at GPA 0. The runner writes only the pages it must (IVT page, code page): KVM maps
// guest pages into the NPT on first guest access, and prefetches only pages already present
// in the host page tables, so page 0xE000 (the stacks at 0xF000) is unmapped until the guest
// touches it.
constexpr std::size_t kMemSize = 0x10000;
constexpr std::uint16_t kLoadAddr = 0x1000;
constexpr std::uint16_t kStackSelAddr = 0x0FFC;
constexpr std::uint32_t kIrqVector = 0x20;

int fail(const char* what) {
  std::fprintf(stderr, "tb-kvm-guest: %s: %s\n", what, std::strerror(errno));
  return 3;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string scenario = argc == 2 ? argv[1] : "";
  const unsigned char* blob = nullptr;
  unsigned long blob_size = 0;
  std::uint16_t stack_sel = 0x8000;
  bool inject_irq = false, expect_shutdown = false;
  if (scenario == "pio") {
    blob = tb_guest_blobs_tb_pio, blob_size = tb_guest_blobs_tb_pio_size;
  } else if (scenario == "irq" || scenario == "irq-npf") {
    blob = tb_guest_blobs_tb_irq, blob_size = tb_guest_blobs_tb_irq_size;
    inject_irq = true;
    if (scenario == "irq-npf") stack_sel = 0xF000;
  } else if (scenario == "npf") {
    blob = tb_guest_blobs_tb_npf, blob_size = tb_guest_blobs_tb_npf_size;
  } else if (scenario == "loop") {  // perf_kvm.sh's workload: ~600 io exits from one VM
    blob = tb_guest_blobs_tb_loop, blob_size = tb_guest_blobs_tb_loop_size;
  } else if (scenario == "mmio") {  // a write and a read of GPA 0x20000 (no memslot): KVM_EXIT_MMIO
    blob = tb_guest_blobs_tb_mmio, blob_size = tb_guest_blobs_tb_mmio_size;
  } else if (scenario == "triple") {
    blob = tb_guest_blobs_tb_triple, blob_size = tb_guest_blobs_tb_triple_size;
    expect_shutdown = true;
  } else {
    std::fprintf(stderr, "tb-kvm-guest: give one scenario: pio, irq, irq-npf, npf, triple, loop or mmio\n");
    return 2;
  }

  es::test::RealModeVm m;
  if (const char* step =
          es::test::create_real_mode_vm(kMemSize, kLoadAddr, blob, blob_size, MAP_PRIVATE | MAP_NORESERVE, m))
    return fail(step);
  const int vcpu = m.vcpu;
  kvm_run* run = m.run;
  m.mem[kStackSelAddr] = static_cast<unsigned char>(stack_sel & 0xFF);
  m.mem[kStackSelAddr + 1] = static_cast<unsigned char>(stack_sel >> 8);

  std::printf("pid %d\n", static_cast<int>(::getpid()));
  bool irq_pending = false;
  for (int exits = 0; exits < 2000; ++exits) {
    // KVM_INTERRUPT only when KVM says the guest can take it (IF=1, no shadow, nothing being
    // injected); otherwise ask for an interrupt-window exit (Documentation/virt/kvm/api.rst).
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
      case KVM_EXIT_HLT: std::printf("hlt\ndone %s\n", scenario.c_str()); return expect_shutdown ? 1 : 0;
      case KVM_EXIT_SHUTDOWN: std::printf("shutdown\ndone %s\n", scenario.c_str()); return expect_shutdown ? 0 : 1;
      case KVM_EXIT_IRQ_WINDOW_OPEN: std::printf("irq-window\n"); break;
      case KVM_EXIT_IO: {
        auto* data = reinterpret_cast<unsigned char*>(run) + run->io.data_offset;
        if (run->io.direction == KVM_EXIT_IO_OUT) {
          std::printf("out 0x%x 0x%x\n", run->io.port, data[0]);
          // The first OUT (value 1) of the irq guests is where the IRQ is raised.
          if (inject_irq && data[0] == 1) irq_pending = true;
        } else {
          data[0] = 0x5A;
          std::printf("in 0x%x\n", run->io.port);
        }
        break;
      }
      case KVM_EXIT_MMIO:
        if (run->mmio.is_write) {
          std::printf("mmio write 0x%llx 0x%x\n", static_cast<unsigned long long>(run->mmio.phys_addr),
                      run->mmio.data[0]);
        } else {
          std::memset(run->mmio.data, 0, sizeof run->mmio.data);
          run->mmio.data[0] = 0x5C;
          std::printf("mmio read 0x%llx\n", static_cast<unsigned long long>(run->mmio.phys_addr));
        }
        break;
      default: std::printf("unexpected exit %u\n", run->exit_reason); return 1;
    }
  }
  std::printf("too many exits\n");
  return 1;
}
