// Import of trace-cmd trace.dat files (file format versions 6 and 7) into a recording, through
// libtracecmd (records of all CPUs merged in time order) and libtraceevent (each event's fields,
// found by name in the format the file carries). Qt-free.
//
//   auto layout = es::import::read_trace_dat_layout(bytes, "trace.dat");   // header walk, no I/O
//   auto parsed = es::import::parse_trace_dat("trace.dat", {});           // records in memory
//   auto stats = es::import::import_trace_dat_file("trace.dat", "out.db", {});  // the whole import
//
// Every record becomes an es::import::TraceLine built from its fields, then goes through the
// KvmEventLinker like a line of trace text. Which fields a KVM event has tells the kernel era
// exactly as its print format does (kvm_exit with or without intr_info / error_code / vcpu_id,
// kvm_inj_virq with or without soft / reinjected, kvm_entry with or without intr_info ...).
// Records of other events are kept as CONTEXT; records whose event is not in the file's formats
// or is shorter than its format are counted and listed by record index.
//
// Bad input: before libtracecmd sees the file, its header, option sections and CPU data index
// are walked and every offset and size checked against the file size, so a truncated or
// corrupt file is refused with one sentence (libtracecmd maps CPU data past the end of a
// truncated file and would crash on it). What the walk cannot check (the event format texts,
// the ring-buffer pages) is first read in a child process (TraceDatOptions::isolate).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "replay/import/text_import.h"
#include "schema/result.h"

namespace es::import {

// True if `head` starts with trace-cmd's magic "\x17\x08\x44tracing".
bool is_trace_dat(std::string_view head);

// What the header of a trace.dat says.
struct TraceDatLayout {
  unsigned version = 0;  // 6 or 7
  bool big_endian = false;
  unsigned long_size = 0;  // 4 or 8 (the traced user space)
  uint32_t page_size = 0;
  std::string compression;      // v7: "zstd 1.5.4", "none"; v6: ""
  std::string uname;            // UNAME option: "Linux host 6.1.0-18-amd64 #1 SMP ... x86_64"; "" if absent
  std::string tracer;           // VERSION option: the trace-cmd that wrote it; "" if absent
  std::string clock;            // trace clock of the top buffer ("local", "x86-tsc"); "" if not said
  uint32_t cpus = 0;            // CPUs in the top buffer's CPU data index
  uint64_t cpu_data_bytes = 0;  // size of all CPU data (in the file: compressed if compressed)
  bool latency = false;         // a latency-tracer text buffer instead of event records
  bool options_checked = true;  // false: a compressed option section could not be checked
};

// Walks the header, sections, options and CPU data index of `bytes` (a whole trace.dat) and
// checks every offset and size. Errors: one sentence naming `name`, the offset and what to do.
Result<TraceDatLayout> read_trace_dat_layout(std::string_view bytes, std::string_view name);

struct TraceDatOptions {
  ImportOptions import;
  // Called now and then while records are read (not at all for small files): records read so
  // far and the fraction of the CPU data done (0..1, or -1 when compressed data hides it).
  std::function<void(uint64_t records, double fraction)> progress;
  // Read the file once in a child process before reading it for real: libtraceevent and
  // libtracecmd can crash on corrupt event formats or trace data inside a file that passed the
  // header walk; isolated, that is an error sentence instead. Costs a second decode (not the
  // SQLite part). Fuzzers that want to see such crashes set it false.
  bool isolate = true;
};

// Reads a whole trace.dat into linked records in memory (no database). Errors: one sentence.
Result<ParsedTrace> parse_trace_dat(const std::string& file, const TraceDatOptions& options);
// The same for the file's bytes (written to an in-memory file first): for tests and fuzzing.
Result<ParsedTrace> parse_trace_dat_bytes(std::string_view bytes, const TraceDatOptions& options,
                                          std::string_view name = "trace.dat");

// Reads FILE and writes DB as DB.partial, renamed to DB once complete (records are streamed to
// the recorder as they settle, so memory stays bounded for large files). A failed import leaves
// nothing behind. Errors: one sentence naming the file and what to do.
Result<ImportStats> import_trace_dat_file(const std::string& file, const std::string& db,
                                          const TraceDatOptions& options);

}  // namespace es::import
