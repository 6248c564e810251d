// Test harness for the CPU model: a real 64-bit guest in HostMemory.
//
// Guest-physical layout (identity-mapped guest-linear = guest-physical, 4-KiB pages for
// the first 4 MiB so tests can change single pages):
//   0x1000 PML4, 0x2000 PDPT, 0x3000 PD, 0x4000/0x5000 PTs (0..4 MiB)
//   0x8000 GDT, 0x8100 TSS, 0x9000 IDT, 0xE000 default vector stubs
//   0x10000 guest code (NASM blob, see guests/common.inc)
//   0x50000 IST1 stack top, 0x60000 user stack top, 0x70000 kernel stack top (TSS.RSP0)
//   0x80000.. scratch data
// Guest-physical 0 is host-physical kGuestBase (EPT maps with an offset so a GPA/HPA
// mix-up cannot pass unnoticed).
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "hv/arch/controls.h"
#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"
#include "hv/arch/exit_qualification.h"
#include "hv/arch/exit_reason.h"
#include "hv/cpu/cpu.h"
#include "hv/cpu/ept_builder.h"
#include "hv/cpu/guest_state.h"

namespace es::hv::test {

using arch::VmcsField;

inline constexpr uint64_t kGuestBase = 0x100000;
inline constexpr uint64_t kGuestSize = 4ull << 20;
inline constexpr uint64_t kPml4 = 0x1000, kPdpt = 0x2000, kPd = 0x3000, kPt0 = 0x4000;
inline constexpr uint64_t kGdt = 0x8000, kTss = 0x8100, kIdt = 0x9000, kStubs = 0xE000;
inline constexpr uint64_t kCode = 0x10000;
inline constexpr uint64_t kIstStack = 0x50000, kUserStack = 0x60000, kKernelStack = 0x70000;
inline constexpr uint64_t kScratch = 0x80000;
inline constexpr uint16_t kPortDone = 0xE0, kPortMark = 0xE1, kPortUnexpected = 0xF0;

struct RecordLog {
  std::vector<es_record> recs;
  static void cb(void* user, const es_record* r) { static_cast<RecordLog*>(user)->recs.push_back(*r); }
  std::vector<es_record> of_kind(uint16_t kind) const {
    std::vector<es_record> out;
    for (const auto& r : recs)
      if (r.kind == kind) out.push_back(r);
    return out;
  }
  const es_record* by_id(uint64_t id) const {
    for (const auto& r : recs)
      if (r.id == id) return &r;
    return nullptr;
  }
  const es_record* last(uint16_t kind) const {
    for (auto it = recs.rbegin(); it != recs.rend(); ++it)
      if (it->kind == kind) return &*it;
    return nullptr;
  }
};

class TestVm {
 public:
  explicit TestVm(const unsigned char* blob, unsigned long size, CpuConfig cfg = {}, bool record = true)
      : mem_(64ull << 20), ept_(mem_), cpu_(mem_, bus_, cfg) {
    mem_.reserve_below(kGuestBase + kGuestSize);
    for (uint64_t gpa = 0; gpa < kGuestSize; gpa += 4096) ept_.map_page(gpa, kGuestBase + gpa);
    // Guest paging: identity map 0..4 MiB with 4-KiB pages, all present, writable, user.
    using namespace arch::pte;
    w64(kPml4, kPdpt | kPresent | kWrite | kUser);
    w64(kPdpt, kPd | kPresent | kWrite | kUser);
    for (uint64_t i = 0; i < 2; ++i) w64(kPd + i * 8, (kPt0 + i * 0x1000) | kPresent | kWrite | kUser);
    for (uint64_t p = 0; p < 1024; ++p) w64(kPt0 + p * 8, (p << 12) | kPresent | kWrite | kUser);
    GuestLayout l;
    l.rip = 0;
    l.rsp = kKernelStack;
    l.cr3 = kPml4;
    l.gdt_base = kGdt;
    l.idt_base = kIdt;
    l.idt_limit = 0xFFF;
    l.tss_base = kTss;
    init_long_mode_guest_state(vmcs_, l);
    init_l0_controls(vmcs_, ept_.eptp());
    uint64_t gdt[7];
    standard_gdt(l, gdt);
    for (int i = 0; i < 7; ++i) w64(kGdt + i * 8, gdt[i]);
    w64(kTss + 4, kKernelStack);  // RSP0
    w64(kTss + 0x24, kIstStack);  // IST1
    // Default stubs: mov eax, v ; out 0xF0, al ; hlt ; jmp $-1
    for (unsigned v = 0; v < 256; ++v) {
      const uint64_t a = kStubs + v * 16;
      const uint8_t stub[] = {0xB8, static_cast<uint8_t>(v), 0, 0, 0, 0xE6, kPortUnexpected, 0xF4, 0xEB, 0xFD};
      write(a, stub, sizeof stub);
      set_gate(v, a, 0);
    }
    write(kCode, blob, size);
    const uint64_t entry = r64(kCode);
    uint64_t table = r64(kCode + 8);
    for (int i = 0; i < 256 && r64(table) != ~0ull; ++i, table += 24) {
      const uint64_t flags = r64(table + 16);
      set_gate(static_cast<unsigned>(r64(table)), r64(table + 8), flags & 3, (flags >> 4) & 7, (flags >> 8) & 1);
    }
    vmcs_.write(VmcsField::GuestRip, entry);
    if (record) bus_.subscribe(probes::kAllKinds, &RecordLog::cb, &log_);
  }

  // ---- guest memory (guest-physical = guest-linear) ----
  uint8_t* host(uint64_t gpa) { return mem_.ptr(kGuestBase + gpa); }
  void write(uint64_t gpa, const void* p, size_t n) {
    std::memcpy(host(gpa), p, n);
    cpu_.flush_caches();
  }
  uint64_t r64(uint64_t gpa) const {
    uint64_t v = 0;
    mem_.read(kGuestBase + gpa, v);
    return v;
  }
  void w64(uint64_t gpa, uint64_t v) { mem_.write(kGuestBase + gpa, v); }
  uint64_t pte_addr(uint64_t gva) const { return kPt0 + (gva >> 12) * 8; }
  uint64_t pte(uint64_t gva) const { return r64(pte_addr(gva)); }
  void set_pte(uint64_t gva, uint64_t v) {
    w64(pte_addr(gva), v);
    cpu_.flush_caches();
  }
  void set_gate(unsigned vector, uint64_t handler, unsigned dpl, unsigned ist = 0, bool trap = false,
                bool present = true, uint16_t sel = kGuestCodeSel) {
    const uint64_t lo = (handler & 0xFFFF) | (static_cast<uint64_t>(sel) << 16) |
                        (static_cast<uint64_t>(ist & 7) << 32) | (static_cast<uint64_t>(trap ? 0xF : 0xE) << 40) |
                        (static_cast<uint64_t>(dpl & 3) << 45) | (static_cast<uint64_t>(present) << 47) |
                        (((handler >> 16) & 0xFFFF) << 48);
    w64(kIdt + vector * 16, lo);
    w64(kIdt + vector * 16 + 8, handler >> 32);
  }
  void ept_unmap(uint64_t gpa) {
    ept_.unmap_page(gpa);
    cpu_.flush_caches();
  }
  void ept_map(uint64_t gpa, uint64_t perms = arch::ept::kRead | arch::ept::kWrite | arch::ept::kExecute) {
    ept_.map_page(gpa, kGuestBase + gpa, perms);
    cpu_.flush_caches();
  }

  // ---- running ----
  ExitRecordInfo run(EntryContext ctx = {}) {
    if (ctx.max_insns == ~0ull) ctx.max_insns = 100000;
    last_ = cpu_.vm_entry(vmcs_, gprs_, ctx);
    return last_;
  }
  // Skips the exiting instruction (what a vmm does after emulating it).
  void skip_insn() { vmcs_.write(VmcsField::GuestRip, rip() + vmcs_.read(VmcsField::VmExitInstructionLen)); }
  // Runs until an exit that is not an OUT to kPortMark (marks are collected).
  ExitRecordInfo run_to_exit(EntryContext ctx = {}) {
    for (int i = 0; i < 1000; ++i) {
      ExitRecordInfo e = run(ctx);
      if (e.stop == StopReason::VmExit && e.reason.is(arch::BasicExitReason::IoInstruction) &&
          arch::IoQual(vmcs_.read(VmcsField::ExitQualification)).port() == kPortMark) {
        marks_.push_back(gprs_.r[GuestGprs::RAX] & 0xFF);
        skip_insn();
        ctx = {};
        continue;
      }
      return e;
    }
    return last_;
  }
  uint16_t exit_port() const { return arch::IoQual(vmcs_.read(VmcsField::ExitQualification)).port(); }
  uint32_t basic_reason() const { return vmcs_.read32(VmcsField::VmExitReason) & 0xFFFF; }
  uint64_t rip() const { return vmcs_.read(VmcsField::GuestRip); }
  uint64_t rsp() const { return vmcs_.read(VmcsField::GuestRsp); }
  uint64_t reg(unsigned r) const { return gprs_.r[r]; }
  // Expects the guest to have reached `out PORT_DONE, al`.
  void expect_done() {
    ASSERT_EQ(last_.stop, StopReason::VmExit);
    ASSERT_EQ(basic_reason(), 30u) << "exit reason " << basic_reason() << " rip " << std::hex << rip();
    if (exit_port() == kPortUnexpected)
      FAIL() << "unexpected vector " << (gprs_.r[0] & 0xFF) << " rip " << std::hex << rip();
    EXPECT_EQ(exit_port(), kPortDone);
  }

  HostMemory mem_;
  probes::ProbeBus bus_;
  EptBuilder ept_;
  Cpu cpu_;
  Vmcs vmcs_;
  GuestGprs gprs_;
  RecordLog log_;
  ExitRecordInfo last_;
  std::vector<uint64_t> marks_;
};

}  // namespace es::hv::test
