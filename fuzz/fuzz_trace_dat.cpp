// Fuzzes the trace-cmd trace.dat reader (replay/import/trace_dat.h): the header / option /
// CPU-index walk that guards libtracecmd, then the whole parse through libtracecmd and
// libtraceevent into linked records. A trace.dat attached to a bug report is untrusted
// input: any bytes give records or one error, never a crash or a hang.
//
// Seeds (fuzz/corpus/fuzz_trace_dat): es-kvm-guest traced under the kvm tracepoints, cut down
// to the kvm event formats and one page of records (v6 uncompressed, v7 zstd).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "replay/import/trace_dat.h"

// libtracecmd mallocs sizes it reads from the file. For an impossible size glibc returns NULL
// and libtracecmd refuses the file (the import says so in one sentence: tests/reliability,
// trace_dat_huge_allocation.dat); ASan's allocator aborts instead unless told to act like glibc.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto layout = es::import::read_trace_dat_layout(bytes, "fuzz.dat");
  if (!layout) {
    if (layout.error().empty()) __builtin_trap();  // a refusal always says why
    return 0;
  }
  es::import::TraceDatOptions options;
  auto parsed = es::import::parse_trace_dat_bytes(bytes, options, "fuzz.dat");
  if (parsed) {
    uint64_t id = 0;
    for (const es_record& r : parsed->records)
      if (r.id != ++id || r.cause >= r.id) __builtin_trap();  // ids 1..N, links only backwards
  } else if (parsed.error().empty()) {
    __builtin_trap();
  }
  return 0;
}
