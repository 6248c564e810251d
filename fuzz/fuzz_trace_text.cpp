// Fuzzes the KVM trace text importer: whole-text parsing (format detection, mail quoting,
// continuation joining, chain linking) and the single-line parser it is built on. A trace
// pasted into a bug report is untrusted input: any input gets records or one error, never a
// crash, a hang or undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "replay/import/text_import.h"
#include "replay/import/trace_text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  // Every format choice: auto-detection and the forced parsers take different paths.
  for (auto format : {es::import::FormatChoice::Auto, es::import::FormatChoice::Ftrace,
                      es::import::FormatChoice::TraceCmd, es::import::FormatChoice::Perf}) {
    es::import::ImportOptions options;
    options.format = format;
    auto parsed = es::import::parse_trace_text(text, options, "fuzz.txt");
    if (parsed) {
      // Records must come out numbered 1..N and link only backwards (chains are built on that).
      uint64_t id = 0;
      for (const es_record& r : parsed->records) {
        if (r.id != ++id) __builtin_trap();
        if (r.cause >= r.id || r.origin > r.id) __builtin_trap();
      }
      (void)es::import::describe_import_config(parsed->config_json);
    }
  }

  // The line parser on each line alone, in both modes.
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view line = text.substr(start, nl - start);
    es::import::TraceLine out;
    (void)es::import::parse_trace_line(line, out, false, false);
    es::import::TraceLine perf;
    (void)es::import::parse_trace_line(line, perf, true, true);
    start = nl + 1;
  }
  return 0;
}
