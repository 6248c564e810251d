// Fuzzes every value a recording holds, not its bytes (issue #17): the input is a recipe for a
// well-formed SQLite recording whose header and rows are hostile, which fuzz_recording_open's
// byte mutations rarely reach without breaking the file first. The recording is built, then
// opened and read the way `exitscope info`, `events`, `chains`, `diff` and the GUI's first frame
// read it, with every session string printed through the terminal escaper and the JSON in
// config_json parsed by the import summary.
//
// Input (little-endian; missing bytes read as 0, so any input is a recipe):
//   u8   flags: bit 0 = schema v1 (else the current schema), bit 1 = tables rebuilt without
//        their constraints (a sender's file need not have ours), bit 2 = no sessions row
//   i32  PRAGMA user_version written last (any value: negative, newer, 0)
//   the sessions row: one Value per column, in the table's column order
//   u8 n, then n rows of schema_history (v2), of events (n <= 64), of code, of chains, and of
//   chain_events, each row one Value per column, in that order
// Value: u8 tag: 0 NULL, 1 i64 (8 bytes), 2 text (u8 length, bytes), 3 blob (u8 length, bytes),
//        4 real (8 bytes), 5.. the integer tag - 6 (so -1 .. 249 take one byte).
// Seeds (fuzz/corpus/fuzz_recording_fields) are hostile headers and rows written to this layout;
// tests/reliability/untrusted_file_test.cpp runs the same kinds of files through the binary.
#include <sqlite3.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "replay/browse.h"
#include "replay/chains.h"
#include "replay/format.h"
#include "replay/import/text_import.h"
#include "replay/inspect.h"
#include "replay/recording.h"
#include "schema/migrations.h"
#include "schema/sqlite_db.h"

namespace {

class Recipe {
 public:
  Recipe(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  uint8_t u8() { return p_ < n_ ? d_[p_++] : 0; }
  uint64_t u64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{u8()} << (8 * i);
    return v;
  }
  int32_t i32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{u8()} << (8 * i);
    return static_cast<int32_t>(v);
  }
  std::string bytes() {
    const size_t len = u8();
    std::string s;
    for (size_t i = 0; i < len && p_ < n_; ++i) s += static_cast<char>(d_[p_++]);
    return s;
  }
  // Binds the next Value to parameter i of st.
  void bind_value(es::db::Stmt& st, int i) {
    const uint8_t tag = u8();
    switch (tag) {
      case 0: st.bind_null(i); break;
      case 1: st.bind(i, static_cast<int64_t>(u64())); break;
      case 2: st.bind(i, std::string_view(bytes())); break;
      case 3: {
        const std::string b = bytes();
        st.bind_blob(i, b.data(), static_cast<int>(b.size()));
        break;
      }
      case 4: {
        const uint64_t bits = u64();
        double v;
        std::memcpy(&v, &bits, sizeof v);
        sqlite3_bind_double(st.get(), i, v);
        break;
      }
      default: st.bind(i, int64_t{tag} - 6); break;
    }
  }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t p_ = 0;
};

std::string temp_dir() {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/es-fuzz-fields-" + std::to_string(::getpid());
}

std::vector<std::string> columns(es::db::Db& db, const std::string& table) {
  std::vector<std::string> out;
  auto st = db.prepare("SELECT name FROM pragma_table_info('" + table + "')");
  if (!st) return out;
  while (st->step() == SQLITE_ROW) out.push_back(st->col_text(0));
  return out;
}

// Inserts `rows` rows into `table`, one recipe Value per column.
void insert_rows(es::db::Db& db, Recipe& in, const std::string& table, size_t rows) {
  const std::vector<std::string> cols = columns(db, table);
  if (cols.empty()) return;
  std::string sql = "INSERT OR IGNORE INTO " + table + " (";
  for (size_t i = 0; i < cols.size(); ++i) sql += (i ? ", " : "") + cols[i];
  sql += ") VALUES (";
  for (size_t i = 0; i < cols.size(); ++i) sql += i ? ", ?" : "?";
  sql += ")";
  auto st = db.prepare(sql);
  if (!st) return;
  for (size_t r = 0; r < rows; ++r) {
    st->reset();
    for (size_t i = 0; i < cols.size(); ++i) in.bind_value(*st, static_cast<int>(i + 1));
    (void)st->step();
  }
}

bool build(const std::string& path, Recipe& in) {
  const uint8_t flags = in.u8();
  const int32_t user_version = in.i32();
  auto db = es::db::Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (!db) return false;
  // No fsync and no journal while building (an fsync per row made it 3 inputs/s); one
  // transaction for the rows.
  (void)db->exec("PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY;");
  if (flags & 1) {
    if (!db->exec(es::schema::v1_sql())) return false;
  } else if (!es::schema::migrate(*db)) {
    return false;
  }
  const char* tables[] = {"sessions", "schema_history", "events", "code", "chains", "chain_events"};
  if (flags & 2)
    for (const char* t : tables) {
      const std::string n(t);
      if (columns(*db, n).empty()) continue;
      (void)db->exec("CREATE TABLE x_" + n + " AS SELECT * FROM " + n + "; DROP TABLE " + n + "; ALTER TABLE x_" + n +
                     " RENAME TO " + n + ";");
    }
  (void)db->exec("BEGIN");
  if (!(flags & 4)) insert_rows(*db, in, "sessions", 1);
  insert_rows(*db, in, "schema_history", in.u8() % 8);
  insert_rows(*db, in, "events", in.u8() % 65);
  insert_rows(*db, in, "code", in.u8() % 8);
  insert_rows(*db, in, "chains", in.u8() % 16);
  insert_rows(*db, in, "chain_events", in.u8() % 32);
  (void)db->exec("COMMIT");
  (void)db->exec("PRAGMA user_version = " + std::to_string(user_version));
  return true;
}

void read_like_the_cli(es::replay::Recording& rec) {
  // info: every string escaped, the import summary parsed from config_json
  if (auto s = rec.session(); s) {
    for (const std::string* text :
         {&s->source, &s->scenario, &s->guest_path, &s->guest_hash, &s->policy, &s->tool_version, &s->host, &s->kernel,
          &s->command_line, &s->started_at, &s->ended_at, &s->end_detail})
      (void)es::replay::terminal_safe(*text);
    (void)es::replay::terminal_safe(es::import::describe_import_config(s->config_json));
    for (auto [reason, n] : s->exits_by_reason) (void)es::replay::exit_reason_text(reason, 0);
    for (auto [reason, n] : s->svm_exits_by_reason) (void)es::replay::exit_reason_text(reason, ES_FLAG_SVM);
  }
  if (auto lines = rec.console_lines(); lines)
    for (const std::string& l : *lines) (void)es::replay::terminal_safe(l);
  (void)rec.drop_counts();
  es::replay::EventFilter f;
  f.limit = 200;
  (void)rec.for_each_event(f, [](const es::replay::Event& ev) {
    (void)es::replay::format_event(ev);
    (void)es::replay::inspect_event(ev);
    return true;
  });
  (void)rec.events({});
  uint64_t chains = 0;
  (void)es::replay::for_each_chain(rec, [&](const es::replay::Chain&) { return ++chains < 200; });
  if (auto span = es::replay::event_span(rec); span) {
    (void)es::replay::lanes(rec, *span);
    (void)es::replay::window_events(rec, span->first_time_ns, span->last_time_ns, 100);
    if (span->first_id) {
      (void)es::replay::step_event(rec, span->first_id, true);
      (void)es::replay::effects(rec, span->first_id);
    }
  }
  if (auto rows = es::replay::chain_rows(rec, {}, 0, 20); rows)
    for (const auto& row : *rows) {
      (void)es::replay::chain_row_event_text(row);
      (void)es::replay::chain_members(rec, row.id);
    }
  (void)es::replay::violations(rec, 20);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = temp_dir();
  static const std::string path = dir + "/input.db";
  static const bool ready = [] {
    es::replay::set_open_notice_handler({});
    std::filesystem::create_directories(dir);
    return true;
  }();
  (void)ready;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) std::filesystem::remove(entry.path(), ec);
  Recipe in(data, size);
  if (!build(path, in)) return 0;
  {
    auto rec = es::replay::Recording::open(path);
    if (rec) {
      read_like_the_cli(*rec);
    } else if (rec.error().empty()) {
      __builtin_trap();  // a refusal always says why
    }
  }
  return 0;
}
