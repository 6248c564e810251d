// One KVM tracepoint event with its fields by name, whatever carried it: a line of trace text,
// a trace.dat record (libtraceevent) or a live eBPF record. The x86 KVM tracepoints are those of
// arch/x86/kvm/trace.h (and include/trace/events/kvm.h for kvm_mmio / kvm_userspace_exit); what
// each field means is said next to it, by vendor (VMX / SVM) where the two differ. A field a
// source did not have is std::nullopt, never 0.
//
// This layer (kvmtrace/) sits below probes/ and replay/: it includes only the record ABI
// (probes/include/exitscope/) and hv/arch's typed hardware words. The layering test
// (tests/layering/check_includes.sh) enforces it.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>

namespace es::kvmtrace {

// The tracepoints the decoder understands; Other = any other tracepoint, kept as context.
// The values are stable (Other sits before the later additions on purpose).
enum class Tracepoint : uint8_t {
  None,
  Exit,                // kvm_exit
  Entry,               // kvm_entry
  InjVirq,             // kvm_inj_virq
  InjException,        // kvm_inj_exception
  PageFault,           // kvm_page_fault
  NestedVmexit,        // kvm_nested_vmexit (an L2 exit seen by L0)
  NestedVmexitInject,  // kvm_nested_vmexit_inject (the exit reflected to L1)
  NestedIntrVmexit,    // kvm_nested_intr_vmexit (SVM only)
  EmulateInsn,         // kvm_emulate_insn
  Pio,                 // kvm_pio
  Msr,                 // kvm_msr
  ApicAcceptIrq,       // kvm_apic_accept_irq
  Eoi,                 // kvm_eoi
  Other,               // another tracepoint (sched_switch, kvm_fpu, ...), kept as context
  UserspaceExit,       // kvm_userspace_exit (KVM_RUN returns to the VMM: KVM_EXIT_IO, _HLT, ...)
  Mmio,                // kvm_mmio
  NestedVmenter,       // kvm_nested_vmenter (kvm_nested_vmrun before 5.12): L1's VMRUN / VMLAUNCH
};
std::string_view to_string(Tracepoint e);
// The tracepoint by its name ("kvm_exit" -> Exit, "kvm_nested_vmrun" -> NestedVmenter); None if it
// is not one of the above. The one name table for text, trace.dat and live sources.
Tracepoint tracepoint_from_name(std::string_view name);

// kvm_exit / kvm_nested_vmexit fields (or print formats), oldest first: the kernel's era.
enum class ExitFormat : uint8_t {
  None,
  ReasonRipOnly,  // reason and rip only (very old, or trimmed)
  InfoPair,  // info1 info2 without intr_info: before 5.10 (text "info 181 0": also trace-cmd's kvm plugin on every kernel)
  Info1Info2,  // text "info1 0x.. info2 0x.." labels without intr_info (cut off: era not certain)
  IntrInfo,    // info1 info2 intr_info error_code (5.10+)
};
std::string_view to_string(ExitFormat f);

// arch/x86/kvm/trace.h: KVM_ISA_VMX 1, KVM_ISA_SVM 2 (kvm_exit's `isa`). Unknown: the event does
// not say (an exit reason printed as a bare number); the linker takes the trace's vendor.
enum class Isa : uint8_t { Unknown, Vmx, Svm };
inline constexpr uint64_t kIsaVmx = 1;
inline constexpr uint64_t kIsaSvm = 2;

// kvm_exit / kvm_nested_vmexit / kvm_nested_vmexit_inject, as the tracepoint has them. Which of
// info2 / intr_info is the IDT-vectoring info depends on vendor and era: decode_exit()
// (kvmtrace/decode.h) says, never the reader of these fields.
struct ExitFields {
  ExitFormat format = ExitFormat::None;
  Isa isa = Isa::Unknown;
  // VMX: the full 32-bit exit reason (basic reason + flags, SDM Vol. 3C 28.2.1 "Basic VM-Exit
  // Information"); SVM: the EXITCODE (AMD APM Vol. 2 Appendix C "SVM Intercept Exit Codes").
  std::optional<uint32_t> reason;
  // VMX: exit qualification; SVM: EXITINFO1.
  std::optional<uint64_t> info1;
  // VMX: IDT-vectoring info (5.10+) or VM-exit interruption info (before 5.10); SVM: EXITINFO2
  // (an NPF's faulting GPA).
  std::optional<uint64_t> info2;
  // VMX: VM-exit interruption info (5.10+); SVM: EXITINTINFO (exit_int_info, the interrupted
  // event; APM Vol. 2 15.7.2).
  std::optional<uint32_t> intr_info;
  std::optional<uint32_t> error_code;  // of intr_info (VMX exit interruption error code / SVM exit_int_info_err)
  // "int_info" / "int_info_err" names: kvm_nested_vmexit before 5.10 (and kvm_nested_vmexit_inject
  // on every kernel), not kvm_exit's 5.10+ "intr_info": no evidence that the kernel is 5.10+.
  bool old_nested_format = false;

  bool svm() const { return isa == Isa::Svm; }
};

// An event KVM injects or asks to inject, in the VM-entry interruption-information format (SDM
// Vol. 3C 25.8.3), except kvm_nested_vmenter on SVM: vmcb12's EVENTINJ as L1 wrote it (APM
// Vol. 2 15.20 "Event Injection").
struct Injection {
  uint32_t word = 0;
  uint32_t error_code = 0;
  bool reinjected = false;              // "[reinjected]" / the reinjected field was set
  bool reinjected_printed_era = false;  // the event can say "reinjected" (6.0+ format or field, kvmtrace/era.cpp)
};

struct KvmEvent {
  Tracepoint event = Tracepoint::None;
  int32_t host_cpu = -1;   // -1 unknown
  int32_t pid = -1;        // host thread id; -1 unknown
  int32_t tgid = -1;       // its process (the VMM: one VM each, issue #16); -1 unknown (trace text, trace.dat)
  int32_t task_vcpu = -1;  // from a "CPU n/KVM" thread name; -1 unknown
  int32_t vcpu = -1;       // the event's own vcpu_id; -1 unknown
  // Guest RIP: of the exit, the entry, the page fault, the emulated instruction; for
  // kvm_nested_vmenter L2's RIP (nested_rip), for kvm_nested_intr_vmexit L2's.
  std::optional<uint64_t> rip;

  ExitFields exit;  // Exit, NestedVmexit, NestedVmexitInject
  // InjVirq, InjException; Entry (6.14+ prints what KVM wrote into the VM-entry fields);
  // NestedVmenter (event_inj).
  std::optional<Injection> injected;
  bool immediate_exit = false;  // kvm_entry "[immediate exit]" (6.9+)
  // The source left lines out right before this event (a paste's "..." or "[...]" line): what
  // happened in between is not known (the linker then does not conclude from an absence there).
  bool after_elision = false;
  // Other: a tracepoint of the kvm system this decoder does not read (kvm_fpu, kvm_cpuid,
  // kvm_hypercall, ...): KVM's own activity on the vCPU, not some other subsystem's.
  bool kvm_system = false;

  // The fields of the context tracepoints: one alternative per kind, the one the event is (the
  // event's other kinds are not stored: a line costs what its kind needs). Read with page_fault(),
  // pio(), ... (an all-zero one when the event is of another kind); fill with fields<T>().
  struct PageFault {
    uint64_t address = 0;
    // All 64 bits (u64 since 6.4; AMD's NPF EXITINFO1 before): KVM's PFERR_GUEST_FINAL /
    // PFERR_GUEST_PAGE are bits 32 / 33.
    uint64_t error_code = 0;
  };
  struct EmulateInsn {
    uint8_t bytes[16] = {};
    uint8_t byte_count = 0;
    bool failed = false;
  };
  struct Pio {
    uint64_t port = 0;
    uint64_t value = 0;  // absent before 4.x: 0
    uint32_t size = 0;
    bool write = false;
  };
  struct Msr {
    uint64_t index = 0;
    uint64_t data = 0;
    bool write = false;
    bool gp_fault = false;  // "(#GP)"
  };
  struct ApicIrq {  // kvm_apic_accept_irq, kvm_eoi
    uint64_t apicid = 0;
    uint8_t vector = 0;
  };
  struct UserspaceExit {
    uint64_t reason = 0;  // KVM_EXIT_* (include/uapi/linux/kvm.h)
    int64_t error = 0;    // -errno when KVM_RUN returned an error ("restart", "error"), else 0
    bool errno_printed() const { return error < 0; }
  };
  struct Mmio {
    uint64_t gpa = 0;
    uint64_t value = 0;
    uint32_t len = 0;
    uint32_t type = 0;  // KVM_TRACE_MMIO_READ_UNSATISFIED 0, _READ 1, _WRITE 2
    bool write() const { return type == 2; }
  };
  struct NestedVmenter {
    uint64_t vmcb = 0;    // the VMCB12 / VMCS12 address L1 named
    uint64_t l1_rip = 0;  // L1's RIP (its VMRUN / VMLAUNCH)
    uint32_t int_ctl = 0;
    Isa isa = Isa::Unknown;  // "vmcb" -> SVM, "vmcs" -> VMX
  };
  std::variant<std::monostate, PageFault, EmulateInsn, Pio, Msr, ApicIrq, UserspaceExit, Mmio, NestedVmenter> context;

  const PageFault& page_fault() const { return read<PageFault>(); }
  const EmulateInsn& emulate() const { return read<EmulateInsn>(); }
  const Pio& pio() const { return read<Pio>(); }
  const Msr& msr() const { return read<Msr>(); }
  const ApicIrq& apic() const { return read<ApicIrq>(); }
  const UserspaceExit& userspace_exit() const { return read<UserspaceExit>(); }
  const Mmio& mmio() const { return read<Mmio>(); }
  const NestedVmenter& nested_vmenter() const { return read<NestedVmenter>(); }
  // The context fields of kind T to fill: made T's (all zero) unless they already are.
  template <typename T>
  T& fields() {
    if (T* p = std::get_if<T>(&context)) return *p;
    return context.template emplace<T>();
  }

 private:
  template <typename T>
  const T& read() const {
    if (const T* p = std::get_if<T>(&context)) return *p;
    static const T kNone{};
    return kNone;
  }
};

// The VM-entry interruption-information word of an exception KVM injects (kvm_inj_exception):
// NMI (vector 2) its own type, #BP and #OF software exceptions (KVM's kvm_exception_is_soft()),
// every other vector a hardware exception (SDM Vol. 3C 26.2.1.3 "VM-Entry Control Fields").
uint32_t kvm_exception_word(uint8_t vector, bool deliver_error_code);

}  // namespace es::kvmtrace
