// Import of KVM trace TEXT (raw ftrace `trace`, `trace-cmd report`, `perf script`, lines pasted
// into mail) into a recording. Qt-free.
//
//   auto parsed = es::import::parse_trace_text(text, {}, "trace.txt");   // no I/O
//   auto stats = es::import::import_text_file("trace.txt", "out.db", {}); // the whole import
//
// Mapping: kvm_exit -> VM_EXIT, kvm_entry ->
// VM_ENTRY, kvm_inj_virq / kvm_inj_exception -> DECISION (INJECT_REINJECTED / INJECT_NEW),
// kvm_nested_vmexit -> the L2 exit (level 2), kvm_nested_vmexit_inject -> DECISION
// REFLECT_TO_L1 + NESTED_EXIT, everything else -> CONTEXT (reason = ImportContext, aux = line
// number). Chains: every injected or IDT-vectoring event gets a chain root (a RAISE marked
// ES_FLAG_INFERRED: a trace never shows where an event came from); the exits that find it in
// IDT-vectoring info, its reinjections and entries join the chain; a delivery is inferred when
// the next exit on that vCPU no longer reports it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "exitscope/record.h"
#include "probes/recorder/session_info.h"
#include "schema/result.h"

namespace es::import {

enum class FormatChoice : uint8_t { Auto, Ftrace, TraceCmd, Perf, TraceDat };
// "auto", "ftrace", "trace-cmd", "perf", "trace.dat"; false if unknown.
bool parse_format_choice(std::string_view s, FormatChoice& out);

// ES_KIND_CONTEXT reasons of imported lines (aux = the line number in the file): the record
// ABI's ES_CONTEXT_* (exitscope/record.h), which replay decodes.
enum ImportContext : uint32_t {
  kContextOtherEvent = ES_CONTEXT_OTHER_EVENT,  // any other tracepoint line
  kContextPageFault = ES_CONTEXT_PAGE_FAULT,    // kvm_page_fault: guest_phys = address, intr_error = error code
  kContextEmulateInsn =
      ES_CONTEXT_EMULATE_INSN,   // kvm_emulate_insn: rip, bytes[0..aux) (ES_FLAG_BYTES_VALID), intr_error = 1 if failed
  kContextPio = ES_CONTEXT_PIO,  // kvm_pio: qualification = port, aux64 = value, intr_error = 1 if write
  kContextMsr = ES_CONTEXT_MSR,  // kvm_msr: qualification = MSR index, aux64 = data, intr_error = 1 if write
  kContextApicAcceptIrq =
      ES_CONTEXT_APIC_ACCEPT_IRQ,  // kvm_apic_accept_irq: qualification = APIC id, intr_info = the IRQ
  kContextEoi = ES_CONTEXT_EOI,    // kvm_eoi: qualification = APIC id, intr_info = the IRQ
  kContextMmio = ES_CONTEXT_MMIO,  // kvm_mmio (live KVM recordings, probes/kvm/kvm_decode.h)
  kContextUserspaceExit =
      ES_CONTEXT_USERSPACE_EXIT,  // kvm_userspace_exit (live KVM recordings, probes/kvm/kvm_decode.h)
};
// kContextMmio: guest_phys = GPA, aux64 = value, instr_len = length, intr_error = type (0
// unsatisfied read, 1 read, 2 write). kContextUserspaceExit: qualification = KVM_EXIT_* reason,
// intr_error = errno (negative: "restart" / "error" printed instead of a reason).

struct ImportOptions {
  FormatChoice format = FormatChoice::Auto;
  bool force = false;        // replace an existing DB
  std::string command_line;  // stored in the session
  // Text import: called while the records are written (records so far, fraction 0..1), about
  // every 1 %; empty = no progress.
  std::function<void(uint64_t records, double fraction)> progress;
  // Called with every record as it is handed to the recording (import --plugin feeds its
  // plugins from here); empty = none.
  std::function<void(const es_record&)> observer;
  // Text: told, in a sentence, when the import has to read the text again (the progress starts
  // over); empty = not told.
  std::function<void(const std::string&)> notice;
  // Text: learn the whole text before linking any line (the single pass's fallback; tests
  // compare the two). Also ES_IMPORT_TWO_PASS=1.
  bool two_passes = false;
};

struct ImportStats {
  std::string format;                    // detected (or forced): "ftrace", "trace-cmd", "perf", "mail", "trace.dat v7"
  uint64_t lines = 0;                    // physical lines in the file (trace.dat: records)
  uint64_t kvm_events = 0;               // KVM tracepoint lines understood
  uint64_t other_events = 0;             // other tracepoint lines kept as CONTEXT
  uint64_t comment_lines = 0;            // blank, '#' and header lines
  uint64_t joined_lines = 0;             // continuation lines joined to the line they wrap
  uint64_t quoted_lines = 0;             // lines that had mail quote marks
  uint64_t unparsed = 0;                 // lines (records) not understood (never dropped silently)
  std::vector<uint64_t> unparsed_lines;  // their numbers (trace.dat: record indexes), the first kMaxListedLines
  // What was skipped and why, and what was repaired, one sentence each ("3 lines (7, 9, 12):
  // not trace text (prose, other logs)"); kept in the session, shown by import and info.
  std::vector<std::string> skipped;
  std::vector<std::string> repaired;
  uint64_t out_of_order = 0;             // lines older than the previous one (sorted by timestamp)
  uint64_t records = 0;                  // records written
  unsigned passes = 0;                   // text: 1 = linked while read, 2 = the whole text learned first
  std::string vendor;                    // "vmx", "svm", "mixed", "unknown"
  std::string era;                       // what the print formats say about the kernel
  std::vector<std::string> assumptions;  // where the text did not say (records ES_FLAG_INFERRED)
  // Several VMs: recorded vCPU -> VM and vCPU id, one line each (kvmtrace::TraceFacts::vcpu_map).
  std::vector<std::string> vcpu_map;

  // trace.dat only (file_version 0 for text)
  unsigned file_version = 0;  // 6, 7
  std::string uname;          // the traced host's uname, "" if the file does not say
  uint32_t cpus = 0;          // CPUs in the file's CPU data index
  std::string clock;          // trace clock
  uint64_t lost_events = 0;   // events the kernel's ring buffer overwrote before they were read
};
inline constexpr size_t kMaxListedLines = 20;

struct ParsedTrace {
  std::vector<es_record> records;  // ids 1..N in time order, chains linked
  ImportStats stats;
  std::string config_json;  // {"import": {...}} for the session row
};

// Parses trace text. What can be repaired is (wrapped lines, mail quotes, "CPU n:" tags,
// trailing markers, non-text bytes); lines that cannot are skipped and counted by reason (a last
// line cut mid-record among them). Error (one sentence naming `name`) only when nothing usable
// is left: no KVM event in it (binary data, prose, another tracer's output).
Result<ParsedTrace> parse_trace_text(std::string_view text, const ImportOptions& options, std::string_view name);

// Reads FILE, parses it and writes DB: first DB.partial, renamed to DB only once complete, so
// a failed import leaves nothing behind. Errors: one sentence naming the file and what to do.
Result<ImportStats> import_text_file(const std::string& file, const std::string& db, const ImportOptions& options);

// The session's config_json of an import: {"import": {"file": ..., "format": ..., counts,
// vendor, era, assumptions[, trace.dat facts]}}, written and read with nlohmann-json
// (import_config.cpp).
std::string import_config_json(const ImportStats& s, std::string_view file);

// For `exitscope info` from a session's config_json, "" if it is not an import. First line:
// "trace.txt (ftrace, vmx), 1200 lines: 1100 KVM events, 90 other, 3 unparsed (lines 7, 9, 12)";
// then, each on its own line indented to follow "import:     ", the kernel era, the trace.dat
// facts (host kernel, CPUs, clock, lost events) and every assumption. A damaged JSON gives the
// one line "configuration unreadable (its JSON is damaged)", as a KVM recording's does.
std::string describe_import_config(std::string_view config_json);

// The "vcpu_map" list of a session's config_json (an import's or a live KVM recording's): one
// line per recorded vCPU, "vcpu 1 = VM 2 (pid 4321) vcpu 0"; empty when the events came from one VM.
std::vector<std::string> describe_vcpu_map(std::string_view config_json);

}  // namespace es::import
