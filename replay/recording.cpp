#include "replay/recording.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "hv/arch/event_info.h"
#include "hv/arch/exit_reason.h"
#include "hv/arch/svm.h"
#include "replay/chains.h"
#include "replay/names.h"
#include "schema/event_row.h"
#include "schema/kind_reason.h"
#include "schema/migrations.h"

namespace es::replay {

namespace {

std::string quote_path(const std::string& p) { return "'" + p + "'"; }

std::function<void(const std::string&)>& notice_handler() {
  static std::function<void(const std::string&)> fn = [](const std::string& text) {
    std::fprintf(stderr, "note: %s\n", text.c_str());
  };
  return fn;
}

std::string absolute_path(const std::string& p) {
  std::error_code ec;
  auto abs = std::filesystem::absolute(p, ec);
  return ec ? p : abs.lexically_normal().string();
}

// A copy made earlier is reused when it is a current recording migrated from this very
// file and is newer than it.
bool reusable_copy(const std::string& copy, const std::string& original) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(copy, ec)) return false;
  const auto copy_time = fs::last_write_time(copy, ec);
  if (ec) return false;
  const auto original_time = fs::last_write_time(original, ec);
  if (ec || copy_time < original_time) return false;
  auto db = db::Db::open(copy, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
  if (!db) return false;
  auto v = schema::check_readable(*db);
  if (!v || *v != schema::kSchemaVersion) return false;
  auto st = db->prepare("SELECT source_file FROM schema_history ORDER BY version LIMIT 1");
  return st && st->step() == SQLITE_ROW && st->col_text(0) == absolute_path(original);
}

// Opens a migrated copy of the older-schema recording open in `old_db`; says where in `notice`.
Result<db::Db> open_migrated_copy(const std::string& path, db::Db& old_db, int old_version, std::string& notice) {
  namespace fs = std::filesystem;
  std::string copy = migrated_copy_path(path);
  bool reused = reusable_copy(copy, path);
  // A migration step that fails on the file's own tables (SQLITE_ERROR, described as "error
  // while migrating ...", e.g. a v2 file whose user_version says 1) is no matter of where the
  // copy goes: say what is wrong with the file instead of asking for a writable NEW.db.
  auto content_problem = [&](const std::string& error) -> std::optional<std::string> {
    if (error.rfind("error while migrating", 0) != 0) return std::nullopt;
    return quote_path(path) + " says it uses schema v" + std::to_string(old_version) +
           " (PRAGMA user_version), but its tables do not fit that version: " + error +
           " It was changed after exitscope wrote it; re-record it, or restore the file as exitscope wrote it.";
  };
  if (!reused) {
    auto made = schema::migrate_copy(old_db, copy);
    if (!made) {
      if (auto content = content_problem(made.error())) return make_error(*content);
      // Read-only media or directory: fall back to the temp directory, named after the
      // original's full path so two old.db files do not share a copy.
      std::error_code ec;
      const fs::path tmp_dir = fs::temp_directory_path(ec) / "exitscope-migrated";
      fs::create_directories(tmp_dir, ec);
      const std::string abs = absolute_path(path);
      const std::string tmp_copy =
          (tmp_dir / (std::to_string(std::hash<std::string>{}(abs)) + "-" + fs::path(copy).filename().string()))
              .string();
      reused = reusable_copy(tmp_copy, path);
      if (!reused) {
        if (auto again = schema::migrate_copy(old_db, tmp_copy); !again) {
          if (auto content = content_problem(again.error())) return make_error(*content);
          return make_error(quote_path(path) + " uses schema v" + std::to_string(old_version) +
                            " and needs migrating to v" + std::to_string(schema::kSchemaVersion) +
                            ", but no copy could be written: " + made.error() + " Run 'exitscope migrate " + path +
                            " -o NEW.db' with a writable NEW.db.");
        }
      }
      copy = tmp_copy;
    }
  }
  // A copy just made also gets what a recording of this build stores beyond the schema's
  // columns: the chains' figures and the exit index `stats` reads (store_chain_figures). A
  // failure here leaves a sound copy whose readers walk its chains instead.
  if (!reused)
    if (auto rw = db::Db::open(copy, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX); rw) (void)store_chain_figures(*rw);
  auto db = db::Db::open(copy, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
  if (!db) return make_error(schema::describe_sqlite_error(copy, "opening", SQLITE_CANTOPEN, db.error()));
  if (auto v = schema::check_readable(*db); !v) return make_error(v.error());
  notice = quote_path(path) + " uses the older schema v" + std::to_string(old_version) + "; reading " +
           (reused ? "its migrated copy " : "a migrated copy ") + quote_path(copy) + " (schema v" +
           std::to_string(schema::kSchemaVersion) + "). The original is unchanged; 'exitscope migrate " + path +
           " --in-place' upgrades it instead.";
  return db;
}

// ---- files that are sound but need a write before they can be read (issue #17) ----
// A kill during the recorder's final journal-mode switch leaves a hot rollback journal
// (PATH-journal): SQLite must roll it back before anyone reads, which a read-only connection
// cannot do (SQLITE_READONLY_ROLLBACK, "attempt to write a readonly database"). A recording
// left in WAL mode (a reader was open when it finished, or it was killed) needs PATH-wal /
// PATH-shm, which cannot be created on read-only media (SQLITE_CANTOPEN). Either way nothing
// is damaged: with write access the file is recovered in place (what any writer would do);
// without it a private copy in the temp directory is recovered and read, the original untouched.

bool exists_nonempty(const std::string& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec) && std::filesystem::file_size(p, ec) > 0 && !ec;
}

// Bytes 18-19 of the header are 2 for a WAL-mode database (SQLite file format, 1.3.3).
bool header_says_wal(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char h[20] = {};
  in.read(h, sizeof h);
  return in.gcount() == 20 && h[18] == 2 && h[19] == 2;
}

// Opens `path` read-write, makes SQLite roll back a hot journal / replay the WAL by reading,
// and leaves the file self-contained (journal_mode=DELETE). Error = SQLite's message.
Result<void> recover_in_place(const std::string& path) {
  auto rw = db::Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);
  if (!rw) return make_error(rw.error());
  if (auto n = rw->query_int("SELECT count(*) FROM sqlite_schema"); !n) return make_error(n.error());
  if (header_says_wal(path)) {
    auto mode = rw->prepare("PRAGMA journal_mode=DELETE");
    if (!mode) return make_error(mode.error());
    if (mode->step() != SQLITE_ROW) return make_error(rw->errmsg());
  }
  return {};
}

bool writable_here(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(absolute_path(path)).parent_path();
  return ::access(path.c_str(), W_OK) == 0 && ::access(parent.c_str(), W_OK) == 0;
}

// Recovers `path` (see above) after a read-only open failed with `code`; on success
// `path_out` is the file to read (the original or the recovered copy) and `notice` says which.
Result<void> recover_for_reading(const std::string& path, int code, std::string& path_out, std::string& notice) {
  namespace fs = std::filesystem;
  const bool hot_journal = exists_nonempty(path + "-journal");
  const bool wal = header_says_wal(path);
  // Not SQLITE_BUSY: that is a live writer (a recording in progress), never to be touched.
  const bool recoverable = (code & 0xFF) == SQLITE_READONLY || (code & 0xFF) == SQLITE_CANTOPEN;
  if (!recoverable || (!hot_journal && !wal)) return make_error(std::string());  // not this case: SQLite's error stands
  const std::string what = hot_journal
                               ? "an unfinished rollback journal ('" + path + "-journal', left by a killed writer)"
                               : "WAL mode, without the -wal / -shm files SQLite needs beside it";
  if (writable_here(path)) {
    if (auto r = recover_in_place(path); r) {
      path_out = path;
      notice = quote_path(path) + " had " + what + "; recovered in place (nothing committed was lost), it is now one " +
               "self-contained file.";
      return {};
    }
  }
  std::error_code ec;
  const fs::path dir = fs::temp_directory_path(ec) / "exitscope-recovered";
  fs::create_directories(dir, ec);
  const std::string copy =
      (dir / (std::to_string(std::hash<std::string>{}(absolute_path(path))) + "-" + fs::path(path).filename().string()))
          .string();
  for (const char* suffix : {"", "-journal", "-wal", "-shm"}) fs::remove(copy + suffix, ec);
  for (const char* suffix : {"", "-journal", "-wal"}) {
    if (!fs::exists(path + suffix, ec)) continue;
    fs::copy_file(path + suffix, copy + suffix, fs::copy_options::overwrite_existing, ec);
    // The copy keeps the original's mode: SQLite must write it to recover it.
    if (!ec) fs::permissions(copy + suffix, fs::perms::owner_read | fs::perms::owner_write, ec);
    if (ec)
      return make_error(quote_path(path) + " has " + what + " and cannot be recovered in place (read-only), nor " +
                        "copied to " + quote_path(copy) + " (" + ec.message() + "); copy it with its -journal / -wal " +
                        "files to a writable directory and open the copy.");
  }
  if (auto r = recover_in_place(copy); !r)
    return make_error(quote_path(path) + " has " + what + " and its copy " + quote_path(copy) +
                      " could not be recovered (" + r.error() + "); copy it with its -journal / -wal files to a " +
                      "writable directory and open the copy.");
  path_out = copy;
  notice = quote_path(path) + " has " + what + " and is read-only; reading a recovered copy " + quote_path(copy) +
           " (the original is unchanged).";
  return {};
}

// The events columns (schema/event_row.h, the one place that knows them), then the instruction
// bytes from `code` and the console text.
const std::string& event_columns_sql() {
  static const std::string sql = "SELECT " + std::string(schema::event_row_columns()) +
                                 ", c.bytes, e.text FROM events e LEFT JOIN code c ON c.id = e.code_id";
  return sql;
}
// The same columns without the join: the bytes come from a CodeCache; the text follows the row.
const std::string& event_columns_no_code_sql() {
  static const std::string sql = "SELECT " + std::string(schema::event_row_columns()) + ", e.text FROM events e";
  return sql;
}
constexpr int kBytesColumn = schema::kEventRowColumns;  // c.bytes, or e.text without the join
constexpr int kTextColumn = schema::kEventRowColumns + 1;

Event row_to_event(const db::Stmt& s) {
  Event ev;
  es_record& r = ev.rec;
  ev.code_id = schema::read_event_row(s, r);
  const std::string_view bytes = !s.col_null(kBytesColumn) ? s.col_bytes(kBytesColumn) : s.col_bytes(kTextColumn);
  // Most events have neither instruction bytes nor text: an empty view's data() may be null,
  // and memcpy from null is undefined even for 0 bytes (found by fuzz_recording_open).
  if (!bytes.empty()) std::memcpy(r.bytes, bytes.data(), std::min(bytes.size(), sizeof r.bytes));
  return ev;
}

// A row of event_columns_no_code_sql(): the same fields, with fewer calls into SQLite per row (a whole
// recording read is about half SQLite's column decoding): code_id NULL reads as 0, and the text
// is fetched only when it is not NULL (most events have none).
void row_to_event_no_code(const db::Stmt& s, Event& ev) {
  es_record& r = ev.rec;
  ev.code_id = schema::read_event_row(s, r);
  if (!s.col_null(kBytesColumn)) {
    const std::string_view text = s.col_bytes(kBytesColumn);
    if (!text.empty()) std::memcpy(r.bytes, text.data(), std::min(text.size(), sizeof r.bytes));
  }
}

}  // namespace

std::string migrated_copy_path(const std::string& path) {
  std::filesystem::path p(path);
  const std::string stem = p.extension() == ".db" ? p.stem().string() : p.filename().string();
  return (p.parent_path() / (stem + ".v" + std::to_string(schema::kSchemaVersion) + ".db")).string();
}

void set_open_notice_handler(std::function<void(const std::string&)> fn) { notice_handler() = std::move(fn); }

std::string_view event_select_sql() { return event_columns_sql(); }
Event event_from_row(const db::Stmt& s) { return row_to_event(s); }

Result<void> CodeCache::load(db::Db& db) {
  if (loaded_) return {};
  auto st = db.prepare("SELECT id, bytes FROM code");
  if (!st) return make_error(schema::describe_sqlite_error(db.path(), "reading", db.errcode(), st.error()));
  int rc;
  while ((rc = st->step()) == SQLITE_ROW) bytes_.emplace(st->col_i64(0), st->col_blob(1));
  if (rc != SQLITE_DONE)
    return make_error(schema::describe_sqlite_error(db.path(), "reading", db.errcode(), db.errmsg()));
  loaded_ = true;
  return {};
}

Result<void> query_events(db::Db& db, const std::string& where, const std::vector<int64_t>& binds,
                          const std::function<bool(const Event&)>& fn, const char* order_by, const CodeCache* code) {
  std::string sql(code ? event_columns_no_code_sql() : event_columns_sql());
  if (!where.empty()) sql += " WHERE " + where;
  sql += " ORDER BY ";
  sql += order_by;
  auto st = db.prepare(sql);
  if (!st) return make_error(schema::describe_sqlite_error(db.path(), "reading", db.errcode(), st.error()));
  for (size_t i = 0; i < binds.size(); ++i) st->bind(static_cast<int>(i + 1), binds[i]);
  for (;;) {
    const int rc = st->step();
    if (rc == SQLITE_DONE) return {};
    if (rc != SQLITE_ROW)
      return make_error(schema::describe_sqlite_error(db.path(), "reading", db.errcode(), db.errmsg()));
    if (!code) {
      if (!fn(row_to_event(*st))) return {};
      continue;
    }
    Event ev;
    row_to_event_no_code(*st, ev);
    if (ev.code_id) {
      const std::string_view b = code->bytes(ev.code_id);  // empty (data() may be null) if unknown
      if (!b.empty()) std::memcpy(ev.rec.bytes, b.data(), std::min(b.size(), sizeof ev.rec.bytes));
    }
    if (!fn(ev)) return {};
  }
}

Result<void> set_reason(EventFilter& f, std::string_view text) {
  if (auto n = parse_uint(text)) {
    f.reason_number = static_cast<uint32_t>(*n);
    return {};
  }
  // A name may be a VMX exit reason and an SVM exit code at once ("HLT" / "hlt", "CPUID" /
  // "cpuid"): then it selects both vendors' exits. A decision name outranks an SVM-only name
  // ("shutdown" is ES_DECISION_SHUTDOWN; the SVM exit is SVM_EXIT_SHUTDOWN or 0x7f).
  const std::optional<uint32_t> svm = arch::svm_exit_code_from_name(text);
  if (const int r = arch::exit_reason_from_name(text); r >= 0) {
    f.exit_reason = static_cast<uint16_t>(r);
    f.svm_exit_code = svm;
    return {};
  }
  if (auto d = parse_decision(text)) {
    f.decision = *d;
    return {};
  }
  if (svm) {
    f.svm_exit_code = *svm;
    return {};
  }
  return make_error("unknown reason '" + std::string(text) +
                    "'; give an exit reason name (e.g. EPT_VIOLATION, or npf on AMD), a decision name (e.g. "
                    "INJECT_REINJECTED) or a number.");
}

namespace {

// The reason part of matches_decoded: --reason / reason: terms.
bool matches_reason(const EventFilter& f, const es_record& r) {
  const bool is_exit = r.kind == ES_KIND_VM_EXIT || r.kind == ES_KIND_NESTED_EXIT;
  // SVM exits (ES_FLAG_SVM) carry the whole exit code; VMX exits the basic reason in [15:0].
  const bool svm = (r.flags & ES_FLAG_SVM) != 0;
  if (f.exit_reason || f.svm_exit_code) {
    const bool hit = is_exit && (svm ? f.svm_exit_code && r.reason == *f.svm_exit_code
                                     : f.exit_reason && arch::ExitReason(r.reason).basic_number() == *f.exit_reason);
    if (!hit) return false;
  }
  if (f.decision && !(r.kind == ES_KIND_DECISION && r.reason == *f.decision)) return false;
  if (f.reason_number) {
    const uint32_t exit_number = svm ? r.reason : arch::ExitReason(r.reason).basic_number();
    const bool hit = is_exit ? exit_number == *f.reason_number : r.reason == *f.reason_number;
    if (!hit) return false;
  }
  return true;
}

bool has_reason_term(const EventFilter& f) { return f.exit_reason || f.svm_exit_code || f.decision || f.reason_number; }

// A reason term decodes the reason column (a VMX exit's basic reason is its [15:0], an SVM exit
// is told by its flags), so it is no single SQL value. The (kind, reason) pairs it can match are
// read from the events_kind_reason index instead, one seek per distinct pair present (a
// recording has tens to hundreds), and become `<key> IN (...)` of their keys on that index
// (schema/kind_reason.h); matches_decoded still decides each row read. nullopt: too many distinct pairs to be
// worth it (then the reason is checked on every row, as before).
constexpr size_t kMaxReasonPairs = 4096;

Result<std::optional<std::vector<std::pair<uint16_t, uint32_t>>>> reason_pairs(db::Db& db, const EventFilter& f) {
  auto fail = [&](std::string_view msg) {
    return make_error(schema::describe_sqlite_error(db.path(), "reading", db.errcode(), msg));
  };
  // One seek per step on the index's key ((kind << 32) | reason, schema/kind_reason.h): the next
  // key present, within the filter's kind when it names one.
  auto next = db.prepare("SELECT " + schema::kind_reason_key_sql() + " AS k FROM events WHERE " +
                         schema::kind_reason_key_sql() + " BETWEEN ? AND ? ORDER BY k LIMIT 1");
  if (!next) return fail(next.error());
  const int64_t last = f.kind ? schema::kind_last_key(*f.kind) : schema::kind_last_key(0xFFFF);
  std::vector<std::pair<uint16_t, uint32_t>> out;
  int64_t from = f.kind ? schema::kind_first_key(*f.kind) : 0;
  for (size_t steps = 0; from <= last; ++steps) {
    if (steps > kMaxReasonPairs) return std::optional<std::vector<std::pair<uint16_t, uint32_t>>>();
    next->bind(1, from);
    next->bind(2, last);
    const int rc = next->step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return fail(db.errmsg());
    const int64_t key = next->col_i64(0);
    next->reset();
    // A hostile file's text or out-of-range kind reads as a key below the last: never ask again.
    if (key < from) break;
    from = key + 1;
    es_record r{};
    r.kind = schema::key_kind(key);
    r.reason = schema::key_reason(key);
    if (f.kind && r.kind != *f.kind) continue;
    bool hit = matches_reason(f, r);
    r.flags = ES_FLAG_SVM;
    hit = hit || matches_reason(f, r);
    if (hit) out.emplace_back(r.kind, r.reason);
  }
  return std::optional(std::move(out));
}

}  // namespace

bool matches_decoded(const EventFilter& f, const es_record& r) {
  if (!matches_reason(f, r)) return false;
  const bool is_exit = r.kind == ES_KIND_VM_EXIT || r.kind == ES_KIND_NESTED_EXIT;
  if (f.vector) {
    // Exits carry VM-exit interruption info; every other kind the VM-entry format. Both
    // share the vector / valid layout, but decode through the right view anyway.
    bool hit = false;
    if (is_exit) {
      const arch::ExitIntrInfo info(r.intr_info);
      hit = info.valid() && info.vector() == *f.vector;
    } else {
      const arch::EntryIntrInfo info(r.intr_info);
      hit = info.valid() && info.vector() == *f.vector;
    }
    const arch::IdtVectoringInfo vec(r.idt_vectoring_info);
    hit = hit || (is_exit && vec.valid() && vec.vector() == *f.vector);
    if (!hit) return false;
  }
  return true;
}

Result<Recording> Recording::open(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return make_error("recording " + quote_path(path) + " does not exist; check the path.");
  if (std::filesystem::is_directory(path, ec))
    return make_error(quote_path(path) + " is a directory, not a recording; pass the .db file.");
  // By type before any open: opening a FIFO for reading blocks until a writer comes (issue #17).
  if (const auto type = std::filesystem::status(path, ec).type(); type != std::filesystem::file_type::regular)
    return make_error(quote_path(path) + " is " +
                      (type == std::filesystem::file_type::fifo        ? "a FIFO (named pipe)"
                       : type == std::filesystem::file_type::character ? "a character device"
                       : type == std::filesystem::file_type::block     ? "a block device"
                       : type == std::filesystem::file_type::socket    ? "a socket"
                                                                       : "not a regular file") +
                      ", not a recording; a recording is a regular .db file: pass that file.");
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) return make_error("cannot read " + quote_path(path) + "; check its permissions.");
    char header[16] = {};
    in.read(header, sizeof header);
    if (in.gcount() == 0)
      return make_error(quote_path(path) +
                        " is empty, not an exitscope recording; pass a file written by "
                        "'exitscope record'.");
    if (in.gcount() < 16 || std::memcmp(header, "SQLite format 3", 16) != 0)
      return make_error(quote_path(path) +
                        " is not a SQLite database; pass a recording written by "
                        "'exitscope record'.");
  }
  // One thread per connection: no per-call SQLite mutex (it showed in every column read).
  auto db = db::Db::open(path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
  std::string notice;
  Result<int> version = make_error(std::string());
  if (db) version = schema::check_readable(*db);
  if (!db || !version) {
    const int code = db ? db->errcode() : SQLITE_CANTOPEN;
    std::string readable;
    if (auto r = recover_for_reading(path, code, readable, notice); r) {
      db = db::Db::open(readable, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
      if (db) version = schema::check_readable(*db);
    } else if (!r.error().empty()) {
      return make_error(r.error());
    }
  }
  if (!db) return make_error(schema::describe_sqlite_error(path, "opening", SQLITE_CANTOPEN, db.error()));
  if (!version) return make_error(version.error());
  if (*version < schema::kSchemaVersion) {
    std::string migrated;
    auto copy = open_migrated_copy(path, *db, *version, migrated);
    if (!copy) return make_error(copy.error());
    notice += (notice.empty() ? "" : " ") + migrated;
    db = std::move(copy).value();
  }
  // A quick structural check of the events table catches most corruption up front;
  // anything later still comes back as a Result.
  auto n = db->query_int("SELECT count(*) FROM sessions");
  if (!n) return make_error(schema::describe_sqlite_error(path, "reading", db->errcode(), n.error()));
  if (*n == 0)
    return make_error(quote_path(path) + " holds no session; it is not a usable exitscope recording (re-record it).");
  if (!notice.empty() && notice_handler()) notice_handler()(notice);
  return Recording(std::move(db).value());
}

Result<SessionSummary> Recording::session(Detail detail) {
  SessionSummary s;
  auto fail = [&](std::string_view msg) {
    return make_error(schema::describe_sqlite_error(path(), "reading", db_.errcode(), msg));
  };
  {
    auto st = db_.prepare(schema::session_select_sql());
    if (!st) return fail(st.error());
    if (st->step() != SQLITE_ROW) return fail(db_.errmsg());
    schema::read_session_row(*st, s);
  }
  s.event_count = 0;  // counted below
  if (detail == Detail::Summary) {
    // count(*) without WHERE is SQLite's btree count: it sums the cell counts of the smallest
    // index's pages instead of visiting every entry.
    auto n = db_.query_int("SELECT count(*) FROM events");
    if (!n) return fail(n.error());
    s.event_count = static_cast<uint64_t>(*n);
  } else {
    // Counts from the narrow events_kind_reason index, not a scan of every row: per key, in key
    // order (the index's), summed here per kind (a GROUP BY kind would sort the keys again).
    const std::string key = schema::kind_reason_key_sql();
    auto st = db_.prepare("SELECT " + key + ", count(*) FROM events GROUP BY " + key);
    if (!st) return fail(st.error());
    int rc;
    while ((rc = st->step()) == SQLITE_ROW) {
      const uint64_t count = st->col_u64(1);
      const uint16_t kind = schema::key_kind(st->col_i64(0));
      if (s.counts_by_kind.empty() || s.counts_by_kind.back().first != kind) s.counts_by_kind.emplace_back(kind, 0);
      s.counts_by_kind.back().second += count;
      s.event_count += count;
    }
    if (rc != SQLITE_DONE) return fail(db_.errmsg());
  }
  // The time extent: two O(log n) lookups (the first and last row of a sorted recording, else
  // the time index).
  if (s.event_count) {
    auto span = time_span(db_);
    if (!span) return make_error(span.error());
    s.first_time_ns = span->first;
    s.last_time_ns = span->second;
  }
  if (detail == Detail::Summary) return s;
  auto by_reason = [&](int kind, auto& out) -> Result<void> {
    // The index alone answers it: the key holds the reason.
    const std::string key = schema::kind_reason_key_sql();
    auto st = db_.prepare("SELECT " + key + " & 4294967295 AS r, count(*) AS n FROM events WHERE " +
                          schema::kind_range_sql() + " GROUP BY " + key + " ORDER BY n DESC, r");
    if (!st) return fail(st.error());
    st->bind(1, schema::kind_first_key(static_cast<uint16_t>(kind)));
    st->bind(2, schema::kind_last_key(static_cast<uint16_t>(kind)));
    int rc;
    while ((rc = st->step()) == SQLITE_ROW) out.emplace_back(static_cast<uint32_t>(st->col_i64(0)), st->col_u64(1));
    if (rc != SQLITE_DONE) return fail(db_.errmsg());
    return {};
  };
  if (auto r = by_reason(ES_KIND_VM_EXIT, s.exits_by_reason); !r) return make_error(r.error());
  // SVM exit codes and VMX exit reasons are different numberings (ES_FLAG_SVM). One exit row (the
  // index's first) decides whether the recording is an SVM one (a VMX recording keeps the
  // index-only count above); an SVM one is counted again by (reason, vendor), which reads the
  // rows and so also splits a mixed recording whose first exit is SVM.
  if (!s.exits_by_reason.empty()) {
    auto first = db_.prepare("SELECT flags FROM events WHERE " + schema::kind_range_sql() + " LIMIT 1");
    if (!first) return fail(first.error());
    first->bind(1, schema::kind_first_key(ES_KIND_VM_EXIT));
    first->bind(2, schema::kind_last_key(ES_KIND_VM_EXIT));
    const int rc0 = first->step();
    if (rc0 != SQLITE_ROW && rc0 != SQLITE_DONE) return fail(db_.errmsg());
    if (rc0 == SQLITE_ROW && (first->col_i64(0) & ES_FLAG_SVM)) {
      s.exits_by_reason.clear();
      const std::string svm_bit = std::to_string(ES_FLAG_SVM);
      auto st = db_.prepare("SELECT reason, flags & " + svm_bit + " AS svm, count(*) AS n FROM events WHERE " +
                            schema::kind_range_sql() + " GROUP BY reason, svm ORDER BY n DESC, reason");
      if (!st) return fail(st.error());
      st->bind(1, schema::kind_first_key(ES_KIND_VM_EXIT));
      st->bind(2, schema::kind_last_key(ES_KIND_VM_EXIT));
      int rc;
      while ((rc = st->step()) == SQLITE_ROW)
        (st->col_i64(1) ? s.svm_exits_by_reason : s.exits_by_reason)
            .emplace_back(static_cast<uint32_t>(st->col_i64(0)), st->col_u64(2));
      if (rc != SQLITE_DONE) return fail(db_.errmsg());
    }
  }
  if (auto r = by_reason(ES_KIND_DECISION, s.decisions_by_reason); !r) return make_error(r.error());
  {
    // The distinct vCPUs in order: a skip through events_vcpu, which holds the vCPUs other than 0
    // (schema/indexes.sql; one O(log n) lookup each), and vCPU 0 if any row has it (a scan to
    // the first such row). A DISTINCT would read the whole table.
    auto zero = db_.query_int("SELECT EXISTS (SELECT 1 FROM events WHERE vcpu = 0)");
    if (!zero) return fail(zero.error());
    auto first = db_.prepare("SELECT min(vcpu) FROM events WHERE vcpu != 0");
    auto next = db_.prepare("SELECT min(vcpu) FROM events WHERE vcpu > ? AND vcpu != 0");
    if (!first) return fail(first.error());
    if (!next) return fail(next.error());
    std::vector<int64_t> found;
    int rc = first->step();
    db::Stmt* at = &*first;
    while (rc == SQLITE_ROW && !at->col_null(0)) {
      const int64_t v = at->col_i64(0);
      // A vcpu that is text or real in a hostile file reads as an integer not above the last:
      // stop there instead of asking for the same row forever.
      if ((!found.empty() && v <= found.back()) || found.size() > 0xFFFF) break;
      found.push_back(v);
      next->reset();
      next->bind(1, v);
      rc = next->step();
      at = &*next;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail(db_.errmsg());
    if (*zero) found.insert(std::lower_bound(found.begin(), found.end(), int64_t{0}), int64_t{0});
    for (int64_t v : found) s.vcpus.push_back(static_cast<uint16_t>(v));
  }
  return s;
}

Result<DropCounts> Recording::drop_counts() {
  auto st = db_.prepare(schema::session_select_sql());
  if (!st) return make_error(schema::describe_sqlite_error(path(), "reading", db_.errcode(), st.error()));
  DropCounts d;
  const int rc = st->step();
  if (rc == SQLITE_ROW) {
    schema::SessionRow row;
    schema::read_session_row(*st, row);
    d.recorder = row.records_dropped;
    d.source = row.source_dropped;
  } else if (rc != SQLITE_DONE) {
    return make_error(schema::describe_sqlite_error(path(), "reading", db_.errcode(), db_.errmsg()));
  }
  return d;
}

Result<std::vector<std::string>> Recording::console_lines() {
  std::string text;
  auto st = db_.prepare("SELECT text FROM events WHERE " + schema::kind_range_sql() + " ORDER BY id");
  if (!st) return make_error(schema::describe_sqlite_error(path(), "reading", db_.errcode(), st.error()));
  st->bind(1, schema::kind_first_key(ES_KIND_CONSOLE));
  st->bind(2, schema::kind_last_key(ES_KIND_CONSOLE));
  int rc;
  while ((rc = st->step()) == SQLITE_ROW) text += st->col_text(0);
  if (rc != SQLITE_DONE)
    return make_error(schema::describe_sqlite_error(path(), "reading", db_.errcode(), db_.errmsg()));
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    const size_t nl = text.find('\n', start);
    if (nl == std::string::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    std::string line = text.substr(start, nl - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = nl + 1;
  }
  return lines;
}

Result<std::string> Recording::filter_sql(const EventFilter& f, std::vector<int64_t>& binds) {
  std::string where;
  auto add = [&](const char* clause, int64_t v) {
    if (!where.empty()) where += " AND ";
    where += clause;
    binds.push_back(v);
  };
  // A kind is a range of events_kind_reason's keys (schema/kind_reason.h).
  const std::string kind_range = schema::kind_range_sql("e");
  auto add_kind = [&](uint16_t kind) {
    if (!where.empty()) where += " AND ";
    where += kind_range;
    binds.push_back(schema::kind_first_key(kind));
    binds.push_back(schema::kind_last_key(kind));
  };
  if (f.kind) add_kind(*f.kind);
  // `e.vcpu != 0`: the partial events_vcpu's condition (schema/indexes.sql); vCPU 0 is a scan.
  if (f.vcpu) add(*f.vcpu != 0 ? "e.vcpu = ? AND e.vcpu != 0" : "e.vcpu = ?", *f.vcpu);
  if (f.level) add("e.level = ?", *f.level);
  // Schema v4 stores origin NULL for an event in no chain (schema/v4.sql).
  if (f.chain && *f.chain != 0) add("e.origin = ?", static_cast<int64_t>(*f.chain));
  if (f.outside_chains || (f.chain && *f.chain == 0)) {
    if (!where.empty()) where += " AND ";
    where += "e.origin IS NULL";
  }
  if (f.from_ns || f.to_ns) {
    // An id range on a sorted recording, else the time terms on events_time (time_window_sql).
    auto window = time_window_sql(db_, f.from_ns, f.to_ns, "e");
    if (!window) return make_error(window.error());
    if (!where.empty()) where += " AND ";
    where += *window;
  }
  // A recording whose writer never finished has no indexes (they are built at the end): there
  // each seek of the pair listing would be a scan, so the reason is checked on every row.
  auto indexed =
      db_.query_int("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'events_kind_reason'");
  if (!indexed) return make_error(schema::describe_sqlite_error(path(), "reading", db_.errcode(), indexed.error()));
  if (has_reason_term(f) && *indexed == 0) {
    if (f.decision) add_kind(ES_KIND_DECISION);
  } else if (has_reason_term(f)) {
    auto pairs = reason_pairs(db_, f);
    if (!pairs) return make_error(pairs.error());
    if (!*pairs) {
      // Too many distinct pairs to list: narrow by kind only where the term implies one.
      if (f.decision) add_kind(ES_KIND_DECISION);
    } else if ((*pairs)->empty()) {
      if (!where.empty()) where += " AND ";
      where += "0";  // no (kind, reason) in this recording can match
    } else {
      // The pairs' keys: one equality seek each on events_kind_reason.
      const auto& list = **pairs;
      std::string in;
      for (const auto& [kind, reason] : list) {
        in += in.empty() ? "?" : ", ?";
        binds.push_back(schema::kind_reason_key(kind, reason));
      }
      if (!where.empty()) where += " AND ";
      where += schema::kind_reason_key_sql("e") + (list.size() == 1 ? " = " + in : " IN (" + in + ")");
    }
  }
  if (f.vector) {
    // No index holds the vector, but SQLite tests it on the raw words before a row is
    // decoded: valid bit [31] and vector [7:0] sit in the same place in all three formats (SDM
    // Vol. 3C tables "Format of the VM-Entry Interruption-Information Field", "... VM-Exit
    // Interruption-Information Field", "... IDT-Vectoring Information Field"); IDT-vectoring
    // info counts only for exits, as in matches_decoded.
    const int64_t word = int64_t{0x80000000u | *f.vector};
    if (!where.empty()) where += " AND ";
    where += "((e.intr_info & 2147483903) = ? OR (e.kind IN (?, ?) AND (e.idt_vectoring_info & 2147483903) = ?))";
    binds.push_back(word);
    binds.push_back(ES_KIND_VM_EXIT);
    binds.push_back(ES_KIND_NESTED_EXIT);
    binds.push_back(word);
  }
  return where;
}

Result<void> Recording::for_each_event(const EventFilter& f, const std::function<bool(const Event&)>& fn) {
  if (f.limit && *f.limit == 0) return {};
  std::vector<int64_t> binds;
  auto where = filter_sql(f, binds);
  if (!where) return make_error(where.error());
  uint64_t emitted = 0;
  // Whole-recording reads take the instruction bytes from memory instead of a join per row.
  const CodeCache* code = nullptr;
  if (!f.limit) {
    if (auto r = code_->load(db_); !r) return r;
    code = code_.get();
  }
  // Terms SQL cannot say exactly (decoded reasons) are checked on the rows SQL narrowed to.
  return query_events(
      db_, *where, binds,
      [&](const Event& ev) {
        if (!matches_decoded(f, ev.rec)) return true;
        if (!fn(ev)) return false;
        ++emitted;
        return !(f.limit && emitted >= *f.limit);
      },
      "e.id", code);
}

Result<std::vector<Event>> Recording::events(const EventFilter& f) {
  std::vector<Event> out;
  auto r = for_each_event(f, [&](const Event& e) {
    out.push_back(e);
    return true;
  });
  if (!r) return make_error(r.error());
  return out;
}

Result<std::optional<Event>> Recording::event(uint64_t id) {
  std::optional<Event> out;
  auto r = query_events(db_, "e.id = ?", {static_cast<int64_t>(id)}, [&](const Event& e) {
    out = e;
    return false;
  });
  if (!r) return make_error(r.error());
  return out;
}

namespace {

Error read_error(db::Db& db) { return make_error(schema::describe_sqlite_error(db, "reading")); }

// What a binary search over a sorted recording found: `trusted` false for ids exitscope never
// writes (below 1, or the largest rowid: the search's arithmetic stays inside 1 .. max - 1); then
// the caller asks SQL instead.
struct Search {
  bool trusted = false;
  std::optional<int64_t> id;
};

// The lowest id whose time_ns is >= t (> t when `strict`), on a recording that says its times
// follow its ids: a binary search of the id range, one rowid probe per step (the first row at or
// after the middle id; ids need not be dense). Exact only on rows that are sorted: the word is
// trusted as the writer's (schema::create_indexes computes it), as the rest of the file is.
Result<Search> search_sorted(db::Db& db, int64_t t, bool strict) {
  auto pass = [&](int64_t time) { return strict ? time > t : time >= t; };
  // Two subqueries: SQLite answers a lone min() or max() from the rowid b-tree.
  auto span = db.prepare("SELECT (SELECT min(id) FROM events), (SELECT max(id) FROM events)");
  if (!span || span->step() != SQLITE_ROW) return read_error(db);
  if (span->col_null(0)) return Search{true, std::nullopt};  // no events
  const int64_t min_id = span->col_i64(0), max_id = span->col_i64(1);
  if (min_id < 1 || max_id == INT64_MAX) return Search{};
  auto probe = db.prepare("SELECT id, time_ns FROM events WHERE id >= ? ORDER BY id LIMIT 1");
  if (!probe) return read_error(db);
  std::optional<int64_t> found;
  int64_t lo = min_id, hi = max_id;  // the answer, if any, is the first passing row in [lo, hi]
  while (lo <= hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    probe->reset();
    probe->bind(1, mid);
    const int rc = probe->step();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return read_error(db);
    if (rc == SQLITE_DONE || probe->col_i64(0) > hi) {
      hi = mid - 1;  // no row in [mid, hi]
      continue;
    }
    const int64_t id = probe->col_i64(0);
    if (pass(probe->col_i64(1))) {
      found = id;
      hi = id - 1;
    } else {
      lo = id + 1;
    }
  }
  return Search{true, found};
}

// The highest id whose time_ns is <= t on a sorted recording: the row before the first one past t.
Result<Search> search_sorted_last(db::Db& db, int64_t t) {
  auto past = search_sorted(db, t, true);
  if (!past) return make_error(past.error());
  if (!past->trusted) return *past;
  auto st = db.prepare(past->id ? "SELECT id FROM events WHERE id < ? ORDER BY id DESC LIMIT 1"
                                : "SELECT max(id) FROM events WHERE ? IS NOT NULL");
  if (!st) return read_error(db);
  st->bind(1, past->id.value_or(0));
  const int rc = st->step();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return read_error(db);
  if (rc == SQLITE_DONE || st->col_null(0)) return Search{true, std::nullopt};
  return Search{true, st->col_i64(0)};
}

// One id (or none) by `sql` with one time bound.
Result<std::optional<uint64_t>> id_by_time(db::Db& db, const char* sql, int64_t t) {
  auto st = db.prepare(sql);
  if (!st) return read_error(db);
  st->bind(1, t);
  const int rc = st->step();
  if (rc == SQLITE_DONE || (rc == SQLITE_ROW && st->col_null(0))) return std::optional<uint64_t>{};
  if (rc != SQLITE_ROW) return read_error(db);
  return std::optional<uint64_t>(st->col_u64(0));
}

std::optional<uint64_t> as_id(const std::optional<int64_t>& v) {
  if (!v) return std::nullopt;
  return static_cast<uint64_t>(*v);
}

}  // namespace

Result<bool> time_sorted(db::Db& db) {
  auto has = db.query_int("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'event_order'");
  if (!has) return make_error(schema::describe_sqlite_error(db.path(), "reading", db.errcode(), has.error()));
  if (*has == 0) return false;
  // One row saying 1, as schema::create_indexes writes it; anything else is "not known".
  auto st = db.prepare("SELECT count(*), min(time_sorted IS 1) FROM event_order");
  if (!st || st->step() != SQLITE_ROW) return read_error(db);
  return st->col_i64(0) == 1 && st->col_i64(1) == 1;
}

Result<std::optional<uint64_t>> first_id_at_or_after(db::Db& db, uint64_t t_ns) {
  const auto t = static_cast<int64_t>(t_ns);  // as SQL compares the bound value
  auto sorted = time_sorted(db);
  if (!sorted) return make_error(sorted.error());
  if (*sorted) {
    auto s = search_sorted(db, t, false);
    if (!s) return make_error(s.error());
    if (s->trusted) return as_id(s->id);
  }
  return id_by_time(db, "SELECT id FROM events WHERE time_ns >= ? ORDER BY time_ns, id LIMIT 1", t);
}

Result<std::optional<uint64_t>> last_id_at_or_before(db::Db& db, uint64_t t_ns) {
  const auto t = static_cast<int64_t>(t_ns);
  auto sorted = time_sorted(db);
  if (!sorted) return make_error(sorted.error());
  if (*sorted) {
    auto s = search_sorted_last(db, t);
    if (!s) return make_error(s.error());
    if (s->trusted) return as_id(s->id);
  }
  return id_by_time(db, "SELECT id FROM events WHERE time_ns <= ? ORDER BY time_ns DESC, id DESC LIMIT 1", t);
}

Result<std::string> time_window_sql(db::Db& db, std::optional<uint64_t> from_ns, std::optional<uint64_t> to_ns,
                                    const std::string& alias) {
  const std::string p = alias.empty() ? "" : alias + ".";
  std::string terms;
  auto add = [&](const std::string& term) { terms += (terms.empty() ? "" : " AND ") + term; };
  if (from_ns) add(p + "time_ns >= " + std::to_string(static_cast<int64_t>(*from_ns)));
  if (to_ns) add(p + "time_ns <= " + std::to_string(static_cast<int64_t>(*to_ns)));
  if (!from_ns && !to_ns) return terms;
  auto sorted = time_sorted(db);
  if (!sorted) return make_error(sorted.error());
  if (!*sorted) return terms;
  // The id range the time terms select; the time terms stay (exact on any file).
  std::string ids;
  if (from_ns) {
    auto s = search_sorted(db, static_cast<int64_t>(*from_ns), false);
    if (!s) return make_error(s.error());
    if (!s->trusted) return terms;
    ids = s->id ? p + "id >= " + std::to_string(*s->id) : "0";
  }
  if (to_ns && ids != "0") {
    auto s = search_sorted_last(db, static_cast<int64_t>(*to_ns));
    if (!s) return make_error(s.error());
    if (!s->trusted) return terms;
    ids += (ids.empty() ? "" : " AND ") + (s->id ? p + "id <= " + std::to_string(*s->id) : std::string("0"));
  }
  return ids + " AND " + terms;
}

Result<std::pair<uint64_t, uint64_t>> time_span(db::Db& db) {
  auto sorted = time_sorted(db);
  if (!sorted) return make_error(sorted.error());
  // Sorted: the first and the last row's times (two rowid seeks); else min / max (events_time,
  // or a scan each).
  auto st = db.prepare(*sorted ? "SELECT (SELECT time_ns FROM events ORDER BY id LIMIT 1), "
                                 "(SELECT time_ns FROM events ORDER BY id DESC LIMIT 1)"
                               : "SELECT (SELECT min(time_ns) FROM events), (SELECT max(time_ns) FROM events)");
  if (!st || st->step() != SQLITE_ROW) return read_error(db);
  return std::pair<uint64_t, uint64_t>(st->col_u64(0), st->col_u64(1));
}

Result<std::string> time_order_sql(db::Db& db, const std::string& alias) {
  const std::string p = alias.empty() ? "" : alias + ".";
  auto sorted = time_sorted(db);
  if (!sorted) return make_error(sorted.error());
  return *sorted ? p + "id" : p + "time_ns, " + p + "id";
}

}  // namespace es::replay
