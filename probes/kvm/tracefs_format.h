// The running kernel's layout of the kvm tracepoints, from tracefs
// (/sys/kernel/tracing/events/kvm/<event>/format), and what exitscope needs of each.
//
// Every kernel era moved these fields (kvm_exit gained intr_info / error_code in 5.10 and
// vcpu_id / requests later, kvm_inj_virq's `irq` became `vector` + `soft` + `reinjected` in
// 5.19, kvm_entry gained immediate_exit in 6.9 and intr_info / error_code in 6.14;
// arch/x86/kvm/trace.h). The BPF side copies raw entry bytes (probes/kvm/kvm_event.h); this
// file says where each field is on this kernel, or refuses the event with one sentence naming
// it and the kernel release when a field exitscope needs is missing or has a size it does not
// know. Never guesses an offset.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "probes/kvm/kvm_event.h"
#include "schema/result.h"

namespace es::kvm {

// One "field:TYPE NAME; offset:N; size:N; signed:N;" line of a format file.
struct FormatField {
  std::string type;  // "unsigned int", "u64", "__u8" ...
  std::string name;  // "exit_reason", "insn" (array brackets removed)
  uint32_t offset = 0;
  uint32_t size = 0;
  bool is_signed = false;
  uint32_t array_len = 0;  // N of "NAME[N]", 0 for a scalar
};

struct EventFormat {
  std::string name;                 // "kvm_exit"
  uint32_t id = 0;                  // "ID: N"
  std::vector<FormatField> fields;  // event fields, common_* excluded
  std::string print_fmt;
  const FormatField* find(std::string_view field) const;
};

// Parses a tracefs format file's text. Error: one sentence naming `source` and the line.
Result<EventFormat> parse_format(std::string_view text, std::string_view source);

// The tracepoints exitscope attaches to, indexed by ES_KVM_EV_*.
inline constexpr std::array<std::string_view, ES_KVM_EV_COUNT> kEventNames = {"kvm_exit",
                                                                              "kvm_entry",
                                                                              "kvm_inj_virq",
                                                                              "kvm_inj_exception",
                                                                              "kvm_nested_vmexit",
                                                                              "kvm_nested_vmexit_inject",
                                                                              "kvm_nested_intr_vmexit",
                                                                              "kvm_page_fault",
                                                                              "kvm_emulate_insn",
                                                                              "kvm_pio",
                                                                              "kvm_mmio",
                                                                              "kvm_msr",
                                                                              "kvm_userspace_exit",
                                                                              "kvm_apic_accept_irq",
                                                                              "kvm_eoi",
                                                                              "kvm_nested_vmenter"};
// The name an event's tracepoint had on older kernels ("" if it kept its name): SVM's emulated
// VMRUN was kvm_nested_vmrun until Linux 5.12 made it kvm_nested_vmenter, shared with nVMX
// (arch/x86/kvm/trace.h). The recorder attaches whichever the kernel has.
std::string_view older_event_name(int event);
// ES_KVM_EV_* of a name (also an older name), -1 if not one of ours.
int event_index(std::string_view name);

// The fields the decoder reads (a union over every event; each event uses some).
enum Slot : uint8_t {
  kVcpu,
  kReason,
  kRip,
  kIsa,
  kInfo1,
  kInfo2,
  kIntrInfo,
  kErrorCode,
  kImmediateExit,
  kVector,
  kSoft,
  kReinjected,
  kException,
  kHasError,
  kAddress,
  kLen,
  kInsn,
  kFailed,
  kRw,
  kPort,
  kSize,
  kCount,
  kVal,
  kType,
  kGpa,
  kWrite,
  kEcx,
  kData,
  kErrno,
  kApicid,
  kDm,
  kTm,
  kVmcb,
  kNestedRip,
  kIntCtl,
  kEventInj,
  kSlotCount
};

// Where a field sits in es_kvm_event.raw on this kernel.
struct FieldLoc {
  bool present = false;
  bool is_signed = false;
  uint16_t offset = 0;  // into raw[] (entry offset - ES_KVM_RAW_BASE)
  uint16_t size = 0;
};

struct EventLayout {
  int event = -1;          // ES_KVM_EV_*
  std::string tracepoint;  // the kernel's name for it ("kvm_nested_vmrun" before 5.12)
  std::array<FieldLoc, kSlotCount> at{};
  std::vector<std::string> optional_missing;  // optional fields this kernel lacks (names)
  uint32_t copy_len = 0;  // entry bytes after the common header the probe copies (<= ES_KVM_RAW_MAX)
  bool has(Slot s) const { return at[s].present; }
};

// Checks `fmt` against what the decoder needs for `event`. Error: "kvm_exit on kernel 6.18.1:
// ... ; exitscope does not know this layout and does not record it (leave it out with
// --events)".
Result<EventLayout> resolve_layout(int event, const EventFormat& fmt, std::string_view kernel_release);

// Reads a field of an event copied by the BPF program (zero / sign extended).
uint64_t read_u64(const es_kvm_event& e, const FieldLoc& f);

// The tracefs directory holding events/kvm ("/sys/kernel/tracing" or the debugfs path); mounts
// tracefs on /sys/kernel/tracing when neither is there. Error: one sentence saying what is
// missing (tracefs, the kvm tracepoints).
Result<std::string> find_tracefs();

}  // namespace es::kvm
