// A one-vCPU KVM virtual machine in real mode with a flat image at `load_addr`, its stack at
// 0x8000, CS = SS = 0: what the /dev/kvm test programs share (tests/kvm/kvm_guest.cpp,
// tests/testbed/tb_kvm_guest.cpp). Header-only and libc-only: the test bed's program is linked
// statically to run inside the emulated machine.
#pragma once

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace es::test {

struct RealModeVm {
  int kvm = -1, vm = -1, vcpu = -1;
  unsigned char* mem = nullptr;  // guest memory at GPA 0
  kvm_run* run = nullptr;
};

// Returned when /dev/kvm speaks another API version than this program was built for.
inline constexpr const char* kKvmApiVersionMismatch = "KVM_GET_API_VERSION";

// Creates the VM; nullptr on success, else the step that failed (errno says why).
// `mmap_flags`: MAP_SHARED or MAP_PRIVATE (with MAP_NORESERVE ...), always anonymous.
inline const char* create_real_mode_vm(std::size_t mem_size, std::uint16_t load_addr, const unsigned char* image,
                                       std::size_t image_size, int mmap_flags, RealModeVm& out) {
  out.kvm = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (out.kvm < 0) return "cannot open /dev/kvm";
  if (::ioctl(out.kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) return kKvmApiVersionMismatch;
  out.vm = ::ioctl(out.kvm, KVM_CREATE_VM, 0);
  if (out.vm < 0) return "KVM_CREATE_VM";
  void* mem = ::mmap(nullptr, mem_size, PROT_READ | PROT_WRITE, mmap_flags | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return "mmap guest memory";
  out.mem = static_cast<unsigned char*>(mem);
  std::memcpy(out.mem + load_addr, image, image_size);
  kvm_userspace_memory_region region{};
  region.slot = 0;
  region.guest_phys_addr = 0;
  region.memory_size = mem_size;
  region.userspace_addr = reinterpret_cast<std::uintptr_t>(mem);
  if (::ioctl(out.vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) return "KVM_SET_USER_MEMORY_REGION";
  // No KVM_CREATE_IRQCHIP: the interrupt controller, if any, is the program (KVM_INTERRUPT).
  out.vcpu = ::ioctl(out.vm, KVM_CREATE_VCPU, 0);
  if (out.vcpu < 0) return "KVM_CREATE_VCPU";
  const int run_size = ::ioctl(out.kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size <= 0) return "KVM_GET_VCPU_MMAP_SIZE";
  void* run = ::mmap(nullptr, static_cast<std::size_t>(run_size), PROT_READ | PROT_WRITE, MAP_SHARED, out.vcpu, 0);
  if (run == MAP_FAILED) return "mmap kvm_run";
  out.run = static_cast<kvm_run*>(run);
  kvm_sregs sregs{};
  if (::ioctl(out.vcpu, KVM_GET_SREGS, &sregs) < 0) return "KVM_GET_SREGS";
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  sregs.ss.base = 0;
  sregs.ss.selector = 0;
  if (::ioctl(out.vcpu, KVM_SET_SREGS, &sregs) < 0) return "KVM_SET_SREGS";
  kvm_regs regs{};
  regs.rip = load_addr;
  regs.rsp = 0x8000;
  regs.rflags = 0x2;
  if (::ioctl(out.vcpu, KVM_SET_REGS, &regs) < 0) return "KVM_SET_REGS";
  return nullptr;
}

}  // namespace es::test
