// One line of KVM trace text (raw ftrace `trace`, `trace-cmd report`, `perf script`, or lines
// pasted into mail) parsed into its fields, for every kernel era's print format of the x86
// KVM tracepoints (arch/x86/kvm/trace.h). Qt-free, allocation-free per line, bounds-checked:
// any byte sequence is safe input.
//
// What the text tells and what it does not:
//   - the line prefix ("comm-pid [cpu] flags  secs.usecs:", perf's "comm pid [cpu] secs:
//     kvm:event:", or nothing at all) gives time, host CPU, thread id and, for QEMU's vCPU
//     threads named "CPU n/KVM", the vCPU;
//   - the body is the tracepoint's TP_printk output; which fields it has tells the era
//     (ExitFormat), the reason name tells the vendor (VMX names are upper case, SVM's lower
//     case or EXIT_*).
#pragma once

#include <cstdint>
#include <string_view>

namespace es::import {

// The tracepoints the importer understands; Other = any other "name:" event line.
enum class TraceEvent : uint8_t {
  None,
  Exit,                // kvm_exit
  Entry,               // kvm_entry
  InjVirq,             // kvm_inj_virq
  InjException,        // kvm_inj_exception
  PageFault,           // kvm_page_fault
  NestedVmexit,        // kvm_nested_vmexit (an L2 exit seen by L0)
  NestedVmexitInject,  // kvm_nested_vmexit_inject (the exit reflected to L1)
  NestedIntrVmexit,    // kvm_nested_intr_vmexit
  EmulateInsn,         // kvm_emulate_insn
  Pio,                 // kvm_pio
  Msr,                 // kvm_msr
  ApicAcceptIrq,       // kvm_apic_accept_irq
  Eoi,                 // kvm_eoi
  Other,               // another tracepoint (sched_switch, kvm_fpu, ...), kept as context
  // Added after Other so the values above stay what the live KVM recorder already uses.
  UserspaceExit,       // kvm_userspace_exit (KVM_RUN returns to the VMM: KVM_EXIT_IO, _HLT, ...)
  Mmio,                // kvm_mmio
  NestedVmenter,       // kvm_nested_vmenter (kvm_nested_vmrun before 5.12): L1's VMRUN / VMLAUNCH
                       // emulated; rip = L2's RIP, a = the VMCB / VMCS12 address, b = L1's RIP,
                       // c = int_ctl, event_word = the injection L1 asked for (EVENTINJ / vmcs12)
};
std::string_view to_string(TraceEvent e);
// The KVM tracepoint by its name ("kvm_exit" -> Exit); None if it is not one of the above.
// The one name table for text, trace.dat and live sources.
TraceEvent kvm_event_from_name(std::string_view name);

// kvm_exit / kvm_nested_vmexit print formats, oldest first.
enum class ExitFormat : uint8_t {
  None,
  ReasonRipOnly,  // "reason X rip 0x..." (no info fields; very old, or trimmed)
  InfoPair,       // "reason X rip 0x... info 181 0": info1 info2 in hex without 0x (before 5.10 on VMX)
  Info1Info2,     // "... info1 0x... info2 0x..." without intr_info (era not certain)
  IntrInfo,       // "... info1 0x... info2 0x... intr_info 0x... error_code 0x..." (5.10+)
};
std::string_view to_string(ExitFormat f);

// Where the line prefix came from (format detection uses it).
enum class PrefixStyle : uint8_t {
  None,       // no prefix: the event name starts the line (mail paste)
  TimeOnly,   // "secs.usecs: kvm_exit: ..."
  Ftrace,     // "comm-pid [cpu] flags secs.usecs: event:" (ftrace / trace-cmd report)
  Perf,       // "comm pid [cpu] secs.usecs: kvm:event:" (perf script)
};

struct TraceLine {
  TraceEvent event = TraceEvent::None;
  PrefixStyle prefix = PrefixStyle::None;
  bool has_time = false;
  bool has_cpu_flags = false;  // ftrace's irq-flags column ("d..1") was present
  uint64_t time_ns = 0;        // trace clock, absolute
  int32_t host_cpu = -1;
  int32_t pid = -1;            // thread id from the prefix; -1 unknown
  int32_t task_vcpu = -1;      // from a "CPU n/KVM" thread name; -1 unknown
  int32_t vcpu = -1;           // from the body ("vcpu 3"); -1 unknown

  // kvm_exit / kvm_nested_vmexit / kvm_nested_vmexit_inject
  ExitFormat exit_format = ExitFormat::None;
  bool svm = false;            // the reason is an SVM exit code
  bool reason_known = false;   // the name (or number) was understood
  bool reason_numeric = false; // printed as a number (a code the kernel's table did not name): the
                               // vendor is not in the line; the linker takes the trace's
  uint32_t reason = 0;         // VMX: full 32-bit exit reason; SVM: exit code
  bool has_rip = false;
  uint64_t rip = 0;
  bool old_name = false;       // the reason was printed by a name KVM no longer uses (PENDING_INTERRUPT)
  bool old_nested_format = false;  // "int_info" / "int_info_err": kvm_nested_vmexit before 5.10 (and
                                   // kvm_nested_vmexit_inject on every kernel), not kvm_exit's 5.10+
                                   // "intr_info": no evidence that the kernel is 5.10+
  uint64_t info1 = 0, info2 = 0;
  bool has_info2 = false;
  bool has_intr_info = false;
  uint32_t intr_info = 0, error_code = 0;

  // kvm_inj_virq / kvm_inj_exception / kvm_entry (6.14+ prints the injected event)
  uint32_t event_word = 0;     // VM-entry interruption-information format
  uint32_t event_error = 0;
  bool reinjected = false;     // "[reinjected]" printed
  bool reinjected_printed_era = false;  // the format can print "[reinjected]" (IRQ 0x.., new exception format)
  bool immediate_exit = false; // kvm_entry "[immediate exit]"

  // context tracepoints: kvm_page_fault address / error, kvm_pio port / value / size, kvm_msr
  // index / data / #GP, kvm_apic_accept_irq apicid / vector, kvm_eoi apicid / vector,
  // kvm_userspace_exit KVM_EXIT_* reason / errno (flag: errno printed instead of a reason),
  // kvm_mmio gpa / value / length (flag: write)
  uint64_t a = 0, b = 0;
  uint32_t c = 0;
  uint32_t d = 0;              // kvm_mmio type (0 unsatisfied read, 1 read, 2 write)
  bool flag = false;           // pio / msr / mmio write; emulate_insn failed
  uint8_t bytes[16] = {};      // kvm_emulate_insn instruction bytes
  uint8_t byte_count = 0;
};

enum class LineClass : uint8_t {
  Blank,
  Comment,      // '#' lines and trace headers ("cpus=4", "version = 6", "CPU 3 is empty")
  Event,        // a KVM or other tracepoint line, parsed (TraceLine filled)
  BadEvent,     // a known KVM tracepoint whose body did not parse
  Continuation, // fields only ("0x... intr_info 0x..."): the rest of a wrapped line
  DanglingPrefix, // a prefix that ends in "secs.usecs:" with the event on the next line
  Text,         // anything else (mail prose, garbage)
};

// Removes mail quote marks ("> ", ">> ", "> > ") and the line end.
std::string_view strip_quotes(std::string_view line, bool* quoted = nullptr);

// What clean_line() repaired in one line.
struct LineRepairs {
  bool non_text = false;     // NUL, control or non-ASCII bytes (mojibake of a mailer, binary around the text)
  bool cpu_prefix = false;   // a leading "CPU 0:" / "cpu0:" tag some pastes carry (its number kept as host CPU)
  bool marker = false;       // a trailing author marker: "<-------- [1]", "<== here", "<<< this one"
  bool qp_equals = false;    // "=3D", a quoted-printable mail's '=' (no KVM format prints it)
  bool missing_field = false;  // trace-cmd's complaint about a field its kvm plugin expected:
                               // 'CAN'T FIND FIELD "rip"' / '<CANT FIND FIELD exit_code>' before the text
  int32_t host_cpu = -1;     // from the "CPU n:" tag
};
// The line as the tracer printed it: non-text bytes become blanks, a leading "CPU n:" tag, a
// trailing "<--" / "<==" / "<<<" marker and trace-cmd's "CAN'T FIND FIELD" complaints are removed,
// a quoted-printable "=3D" reads as '='. Returns `line` itself when nothing was
// changed, else a view of `buf`. Never reads outside `line`.
std::string_view clean_line(std::string_view line, std::string& buf, LineRepairs& r);

// True if the line starts with a trace prefix ("comm-pid [cpu] flags secs.usecs:" or
// "secs.usecs:") whatever follows: a line of a trace even when its event did not parse.
bool has_trace_prefix(std::string_view line);

// Classifies and parses one (already unquoted, possibly joined) line. `perf_only`: accept only
// perf's "kvm:event:" form; `prefix_required`: refuse lines without a "[cpu] time:" prefix
// (a forced --format). Never reads outside `line`.
LineClass parse_trace_line(std::string_view line, TraceLine& out, bool perf_only = false,
                           bool prefix_required = false);

// The VM-entry interruption-information word of an exception KVM injects (kvm_inj_exception):
// NMI (vector 2) its own type, #BP and #OF software exceptions (KVM's kvm_exception_is_soft()),
// every other vector a hardware exception (SDM Vol. 3C 26.2.1.3 "VM-Entry Control Fields").
uint32_t kvm_exception_word(uint8_t vector, bool deliver_error_code);

// SVM exit codes and their names: hv/arch/svm.h (arch::svm_exit_code_from_name, svm_exit_name).

}  // namespace es::import
