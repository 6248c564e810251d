// Fuzzes opening a recording: the bytes become a file on disk, opened with replay's
// Recording API, then read the way `exitscope info`, `events`, `chains` and the GUI's first
// frame read it. Recordings get attached to bug reports and copied around: a corrupt SQLite
// file, a foreign database or a wrong schema must give one error, never a crash or a hang.
//
// Seeds (fuzz/corpus/fuzz_recording_open) are tiny real recordings (page size 512, schema v1
// and v2) so the mutations start from a valid schema and reach the queries and the migration
// of older files (copy + migrate), not only the header check.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "replay/browse.h"
#include "replay/chains.h"
#include "replay/format.h"
#include "replay/inspect.h"
#include "replay/recording.h"

namespace {

// A directory of its own: opening an older-schema input writes a migrated copy beside it.
std::string temp_dir() {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/es-fuzz-recording-" + std::to_string(::getpid());
}

void read_like_the_cli(es::replay::Recording& rec) {
  // info
  if (auto s = rec.session(); s) (void)s->event_count;
  (void)rec.console_lines();
  // events (all of them, bounded), decoded and inspected
  es::replay::EventFilter f;
  f.limit = 2000;
  (void)rec.for_each_event(f, [](const es::replay::Event& ev) {
    (void)es::replay::format_event(ev);
    (void)es::replay::inspect_event(ev);
    return true;
  });
  es::replay::EventFilter by_vector;
  by_vector.vector = 0x20;
  by_vector.limit = 100;
  (void)rec.events(by_vector);
  // chains (built from causal links: cycles and dangling links must not hang or crash)
  uint64_t chains = 0;
  (void)es::replay::for_each_chain(rec, [&](const es::replay::Chain&) { return ++chains < 2000; });
  // the GUI's first frame: span, lanes, one window, the chain list
  if (auto span = es::replay::event_span(rec); span) {
    (void)es::replay::lanes(rec, *span);
    (void)es::replay::window_events(rec, span->first_time_ns, span->last_time_ns, 500);
    if (span->first_id) {
      (void)es::replay::step_event(rec, span->first_id, true);
      (void)es::replay::effects(rec, span->first_id);
    }
  }
  if (auto rows = es::replay::chain_rows(rec, {}, 0, 50); rows)
    for (const auto& row : *rows) {
      (void)es::replay::chain_row_event_text(row);
      (void)es::replay::chain_members(rec, row.id);
    }
  (void)es::replay::violations(rec, 100);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = temp_dir();
  static const std::string path = dir + "/input.db";
  static const bool ready = [] {
    es::replay::set_open_notice_handler({});  // "reading a migrated copy" on every old input
    std::filesystem::create_directories(dir);
    return true;
  }();
  (void)ready;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  {
    auto rec = es::replay::Recording::open(path);
    if (rec) {
      read_like_the_cli(*rec);
    } else if (rec.error().empty()) {
      __builtin_trap();  // a refusal always says why
    }
  }
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) std::filesystem::remove(entry.path(), ec);
  return 0;
}
