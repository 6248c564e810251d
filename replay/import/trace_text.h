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

#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "kvmtrace/event.h"

namespace es::import {

// The tracepoints and their named fields: kvmtrace/event.h, the layer below every KVM source.
using TraceEvent = kvmtrace::Tracepoint;
using kvmtrace::ExitFormat;
using kvmtrace::kvm_exception_word;
using kvmtrace::to_string;
inline TraceEvent kvm_event_from_name(std::string_view name) { return kvmtrace::tracepoint_from_name(name); }

// Where the line prefix came from (format detection uses it).
enum class PrefixStyle : uint8_t {
  None,      // no prefix: the event name starts the line (mail paste)
  TimeOnly,  // "secs.usecs: kvm_exit: ..."
  Ftrace,    // "comm-pid [cpu] flags secs.usecs: event:" (ftrace / trace-cmd report)
  Perf,      // "comm pid [cpu] secs.usecs: kvm:event:" (perf script)
};

// One line: the event with its fields by name (kvmtrace::KvmEvent), and what only the text tells.
struct TraceLine : kvmtrace::KvmEvent {
  PrefixStyle prefix = PrefixStyle::None;
  bool has_time = false;
  bool has_cpu_flags = false;  // ftrace's irq-flags column ("d..1") was present
  uint64_t time_ns = 0;        // trace clock, absolute
  bool old_name = false;       // the exit reason was printed by a name KVM no longer uses (PENDING_INTERRUPT)
};

enum class LineClass : uint8_t {
  Blank,
  Comment,         // '#' lines and trace headers ("cpus=4", "version = 6", "CPU 3 is empty")
  Event,           // a KVM or other tracepoint line, parsed (TraceLine filled)
  BadEvent,        // a known KVM tracepoint whose body did not parse
  Continuation,    // fields only ("0x... intr_info 0x..."): the rest of a wrapped line
  DanglingPrefix,  // a prefix that ends in "secs.usecs:" with the event on the next line
  Text,            // anything else (mail prose, garbage)
};

// Where the run of spaces (' ' only) that starts at `i` ends: 8 bytes at a time (ftrace prints
// the task name right-aligned in 16 columns, so most trace lines start with several blanks and
// every scan of the line skips them).
inline size_t skip_spaces(std::string_view s, size_t i) {
  constexpr uint64_t kSpaces = 0x2020202020202020ULL;
  for (uint64_t w = 0; i + 8 <= s.size(); i += 8) {
    std::memcpy(&w, s.data() + i, 8);
    // The first byte that is no space: the lowest nonzero byte of the difference (little endian).
    if (w == kSpaces) continue;
    if constexpr (std::endian::native == std::endian::little)
      return i + static_cast<size_t>(std::countr_zero(w ^ kSpaces)) / 8;
    break;
  }
  while (i < s.size() && s[i] == ' ') ++i;
  return i;
}
// The number of blanks (' ' and '\t') that start `s`.
inline size_t leading_blanks(std::string_view s) {
  size_t i = skip_spaces(s, 0);
  while (i < s.size() && s[i] == '\t') i = skip_spaces(s, i + 1);
  return i;
}

// Removes mail quote marks ("> ", ">> ", "> > ") and the line end.
std::string_view strip_quotes(std::string_view line, bool* quoted = nullptr);

// What clean_line() repaired in one line.
struct LineRepairs {
  bool non_text = false;       // NUL, control or non-ASCII bytes (mojibake of a mailer, binary around the text)
  bool cpu_prefix = false;     // a leading "CPU 0:" / "cpu0:" tag some pastes carry (its number kept as host CPU)
  bool marker = false;         // a trailing author marker: "<-------- [1]", "<== here", "<<< this one"
  bool qp_equals = false;      // "=3D", a quoted-printable mail's '=' (no KVM format prints it)
  bool missing_field = false;  // trace-cmd's complaint about a field its kvm plugin expected:
                               // 'CAN'T FIND FIELD "rip"' / '<CANT FIND FIELD exit_code>' before the text
  int32_t host_cpu = -1;       // from the "CPU n:" tag
};
// The line as the tracer printed it: non-text bytes become blanks, a leading "CPU n:" tag, a
// trailing "<--" / "<==" / "<<<" marker and trace-cmd's "CAN'T FIND FIELD" complaints are removed,
// a quoted-printable "=3D" reads as '='. Returns `line` itself when nothing was
// changed, else a view of `buf`. Never reads outside `line`.
std::string_view clean_line(std::string_view line, std::string& buf, LineRepairs& r);

// True if the line starts with a trace prefix ("comm-pid [cpu] flags secs.usecs:" or
// "secs.usecs:") whatever follows: a line of a trace even when its event did not parse.
bool has_trace_prefix(std::string_view line);

// True when `line` can only be the rest of a wrapped line: parse_trace_line would class it
// Continuation or Text (never Blank, Comment, Event, BadEvent or DanglingPrefix) and
// has_trace_prefix is false, whatever the flags. It has no ':' (every event, prefix and
// header but "cpus=", "version = " and "CPU n is empty" has one), is not blank, is no comment
// and no such header. One memchr for most lines; the import joins such a line to a pending
// one without classifying it on its own (issue #15).
bool continues_a_line(std::string_view line);

// True when parse_trace_line classes `line` Comment: a '#' line or a trace header.
bool is_comment_line(std::string_view line);

// Classifies and parses one (already unquoted, possibly joined) line. `perf_only`: accept only
// perf's "kvm:event:" form; `prefix_required`: refuse lines without a "[cpu] time:" prefix
// (a forced --format). Never reads outside `line`.
LineClass parse_trace_line(std::string_view line, TraceLine& out, bool perf_only = false, bool prefix_required = false);

// SVM exit codes and their names: hv/arch/svm.h (arch::svm_exit_code_from_name, svm_exit_name).

}  // namespace es::import
