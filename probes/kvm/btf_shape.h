// The running kernel's kvm tracepoint prototypes, from BTF, and the shapes exitscope's tp_btf
// programs (probes/kvm/kvm_btf.bpf.c) are written for.
//
// A BTF-typed raw tracepoint hands its program the tracepoint's arguments (TP_PROTO), and those
// changed across kernels as the entries did: kvm_inj_virq(irq) became (vector, soft, reinjected)
// and kvm_inj_exception gained reinjected in 5.19, kvm_page_fault gained the vCPU in 6.4,
// kvm_mmio's val became a pointer in 5.2 (arch/x86/kvm/trace.h, include/trace/events/kvm.h). Each
// kernel describes them as `typedef void (*btf_trace_<event>)(void *, ARGS...)` in its BTF
// (vmlinux, or /sys/kernel/btf/kvm when KVM is a module). read_prototype() reduces ARGS to
// words ("u32", "bool", "struct kvm_vcpu *", ...); match_shape() finds the program written for
// exactly those words, or refuses the event with one sentence naming it and the kernel. A shape is
// never stretched to fit: a program reads its arguments by position, so a near miss would
// record garbage.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "probes/kvm/tracefs_format.h"
#include "schema/result.h"

struct btf;

namespace es::kvm {

// A tracepoint's arguments after the tracepoint's own `void *__data`, one word each:
// "u8".."u64" / "s8".."s64" for integers (by size and sign, through typedefs and qualifiers),
// "bool", "enum<N>" (N bytes), "void *", "struct NAME *", "ptr" (to anything else), or "?" for
// a kind exitscope does not compare.
using Prototype = std::vector<std::string>;

// "btf_trace_kvm_pio(u32, u32, u32, u32, void *)"
std::string to_string(std::string_view event, const Prototype& args);

// Reads btf_trace_<event> from `btf` (with its base when split). Error: one sentence (the typedef
// is missing, or is not a pointer to a function prototype).
Result<Prototype> read_prototype(const struct btf* btf, std::string_view event);

// The kernel's BTF: vmlinux (/sys/kernel/btf/vmlinux), and the kvm module's split BTF
// (/sys/kernel/btf/kvm) when KVM is a module.
class KernelBtf {
 public:
  // Error: one sentence saying the kernel has no BTF (CONFIG_DEBUG_INFO_BTF), so tp_btf is impossible.
  static Result<KernelBtf> load();
  // The prototype of btf_trace_<event>, from vmlinux or the kvm module.
  Result<Prototype> prototype(std::string_view event) const;

 private:
  struct Free {
    void operator()(struct btf* b) const;
  };
  std::unique_ptr<struct btf, Free> vmlinux_, kvm_;
  bool kvm_is_module_ = false;  // /sys/module/kvm/initstate: KVM is a loadable module
};

// One prototype exitscope's tp_btf programs know: the program for it and where its record words
// go in the decoder's fields.
struct BtfShape {
  int event = -1;            // ES_KVM_EV_*
  std::string_view program;  // its program in kvm_btf.bpf.c
  std::string_view era;      // kernels with this prototype, for messages ("5.19+")
  std::vector<std::string_view> args;
  std::vector<Slot> words;  // record word i (raw + 8 * i) is the decoder's field words[i]
  bool insn = false;        // kvm_emulate_insn: 15 bytes at ES_KVM_BTF_INSN_AT
};

// Every known shape, by event.
const std::vector<BtfShape>& btf_shapes();

// The shape of `event` whose arguments are exactly `args`. Error: "kvm_pio on kernel 6.1.0: ..."
// — the event cannot be recorded through tp_btf at all (kvm_exit, kvm_nested_vmexit, kvm_entry:
// their entries are computed inside the tracepoint), or its prototype is one exitscope does not know.
Result<const BtfShape*> match_shape(int event, const Prototype& args, std::string_view kernel_release);

// What the decoder reads for a record of `shape`'s program.
EventLayout btf_layout(const BtfShape& shape);

}  // namespace es::kvm
