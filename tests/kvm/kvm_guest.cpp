// es-kvm-guest: runs tests/kvm/kvm_guest.asm, a real-mode guest, through /dev/kvm, and prints
// what the guest did, so a test can compare a `record --kvm` or trace-cmd recording with it.
//
//   es-kvm-guest [--loops N] [--quiet]
//
// Output (one line each): "pid P", "out PORT VALUE" per port write, "in PORT" per port read,
// "hlt", then "summary loops N outs N ins N". Exit status 0 when the guest halted as expected,
// 2 for a bad flag, 3 when /dev/kvm cannot be used (the message says why).
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "es_kvm_guest_blob.h"
#include "tests/support/kvm_vm.h"

namespace {

constexpr std::size_t kMemSize = 0x10000;    // 64 KiB of guest memory at GPA 0
constexpr std::uint16_t kLoadAddr = 0x1000;  // kvm_guest.asm's org
constexpr std::uint16_t kLoopsAddr = 0x0FFE;

int fail(const char* what) {
  std::fprintf(stderr, "es-kvm-guest: %s: %s\n", what, std::strerror(errno));
  return 3;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned long loops = 3;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--loops" && i + 1 < argc) {
      char* end = nullptr;
      loops = std::strtoul(argv[++i], &end, 0);
      if (*end != '\0' || loops == 0 || loops > 0xFFFF) {
        std::fprintf(stderr, "es-kvm-guest: --loops takes 1..65535, not '%s'\n", argv[i]);
        return 2;
      }
    } else if (a == "--quiet") {
      quiet = true;
    } else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: es-kvm-guest [--loops N] [--quiet]\n"
          "Runs a real-mode guest through /dev/kvm: per loop an OUT to port 0xE9, a UD2\n"
          "(#UD, handled by the guest), an IN from port 0xEA; then OUT 0xEB and HLT.\n");
      return 0;
    } else {
      std::fprintf(stderr, "es-kvm-guest: unknown argument '%s' (try --help)\n", a.c_str());
      return 2;
    }
  }

  es::test::RealModeVm m;
  if (const char* step = es::test::create_real_mode_vm(kMemSize, kLoadAddr, es_kvm_guest_blob_kvm_guest,
                                                       es_kvm_guest_blob_kvm_guest_size, MAP_SHARED, m)) {
    if (step == es::test::kKvmApiVersionMismatch) {
      std::fprintf(stderr, "es-kvm-guest: /dev/kvm has an unexpected API version\n");
      return 3;
    }
    return fail(step);
  }
  const int vcpu = m.vcpu;
  kvm_run* run = m.run;
  m.mem[kLoopsAddr] = static_cast<unsigned char>(loops & 0xFF);
  m.mem[kLoopsAddr + 1] = static_cast<unsigned char>(loops >> 8);

  std::printf("pid %d\n", static_cast<int>(::getpid()));
  unsigned long outs = 0, ins = 0;
  for (;;) {
    if (::ioctl(vcpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR) continue;
      return fail("KVM_RUN");
    }
    if (run->exit_reason == KVM_EXIT_HLT) {
      if (!quiet) std::printf("hlt\n");
      break;
    }
    if (run->exit_reason != KVM_EXIT_IO) {
      std::fprintf(stderr, "es-kvm-guest: unexpected KVM exit %u\n", run->exit_reason);
      return 1;
    }
    auto* data = reinterpret_cast<unsigned char*>(run) + run->io.data_offset;
    if (run->io.direction == KVM_EXIT_IO_OUT) {
      ++outs;
      if (!quiet) std::printf("out 0x%x 0x%x\n", run->io.port, data[0]);
    } else {
      ++ins;
      data[0] = 0x5A;
      if (!quiet) std::printf("in 0x%x\n", run->io.port);
    }
  }
  std::printf("summary loops %lu outs %lu ins %lu\n", loops, outs, ins);
  return 0;
}
