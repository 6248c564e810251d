#include "schema/migrations.h"

#include <sys/resource.h>
#include <sys/statvfs.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <system_error>

#include "schema/event_row.h"

extern const unsigned char es_schema_v1[];
extern const unsigned long es_schema_v1_size;
extern const unsigned char es_schema_indexes[];
extern const unsigned long es_schema_indexes_size;
extern const unsigned char es_schema_time_index[];
extern const unsigned long es_schema_time_index_size;
extern const unsigned char es_schema_v2[];
extern const unsigned long es_schema_v2_size;
extern const unsigned char es_schema_v3[];
extern const unsigned long es_schema_v3_size;
extern const unsigned char es_schema_v4[];
extern const unsigned long es_schema_v4_size;
extern const unsigned char es_schema_v5[];
extern const unsigned long es_schema_v5_size;

#ifndef ES_TOOL_VERSION
#define ES_TOOL_VERSION "unknown"
#endif

namespace es::schema {

std::string_view v1_sql() { return {reinterpret_cast<const char*>(es_schema_v1), es_schema_v1_size}; }
std::string_view indexes_sql() { return {reinterpret_cast<const char*>(es_schema_indexes), es_schema_indexes_size}; }
std::string_view time_index_sql() {
  return {reinterpret_cast<const char*>(es_schema_time_index), es_schema_time_index_size};
}
std::string_view v2_sql() { return {reinterpret_cast<const char*>(es_schema_v2), es_schema_v2_size}; }
std::string_view v3_sql() { return {reinterpret_cast<const char*>(es_schema_v3), es_schema_v3_size}; }
std::string_view v4_sql() { return {reinterpret_cast<const char*>(es_schema_v4), es_schema_v4_size}; }
std::string_view v5_sql() { return {reinterpret_cast<const char*>(es_schema_v5), es_schema_v5_size}; }

namespace {

struct MigrationStep {
  int from;
  std::string_view (*sql)();
};
// Step i migrates version i to i+1. Append new steps (v1 -> v2 ...) here; never edit old ones.
constexpr std::array<MigrationStep, kSchemaVersion> kSteps = {{
    {0, &v1_sql},
    {1, &v2_sql},
    {2, &v3_sql},
    {3, &v4_sql},
    {4, &v5_sql},
}};
static_assert(kSteps.size() == kSchemaVersion, "one migration step per schema version");

std::string quote_path(const std::string& path) { return "'" + path + "'"; }

// Number of tables in the file; fails on a file that is not a SQLite database.
Result<int64_t> table_count(db::Db& db) {
  auto n = db.query_int("SELECT count(*) FROM sqlite_schema WHERE type = 'table'");
  if (!n) return make_error(describe_sqlite_error(db.path(), "reading", db.errcode(), n.error()));
  return n;
}

Result<int> read_version(db::Db& db) {
  auto tables = table_count(db);
  if (!tables) return make_error(tables.error());
  auto v = db.query_int("PRAGMA user_version");
  if (!v) return make_error(describe_sqlite_error(db.path(), "reading", db.errcode(), v.error()));
  // The header's user_version is whatever the file says: a recording mailed by a stranger
  // can hold any 32-bit value. Only 0..kSchemaVersion may index kSteps (migrate) or name a
  // schema; anything below 0 is no version exitscope ever wrote.
  if (*v < 0 || *v > INT32_MAX)
    return make_error(quote_path(db.path()) + " has schema version " + std::to_string(*v) +
                      " in its header, which no exitscope writes; the file is damaged or not an exitscope "
                      "recording (re-record it or ask its sender for the original).");
  const int version = static_cast<int>(*v);
  if (version > kSchemaVersion)
    return make_error(quote_path(db.path()) + " uses exitscope schema v" + std::to_string(version) +
                      ", newer than this build understands (v" + std::to_string(kSchemaVersion) +
                      "); open it with a newer exitscope.");
  if (version == 0 && *tables > 0)
    return make_error(quote_path(db.path()) +
                      " is a SQLite database but not an exitscope recording; pass a file written by "
                      "'exitscope record'.");
  return version;
}

}  // namespace

namespace {

// SQLite's message can quote the file's own names ("malformed database schema (NAME)"), so
// it is the file's text: its C0 controls, DEL and UTF-8 C1 controls become '?' before it
// reaches a terminal (RELIABILITY.md, "Files from strangers").
std::string terminal_safe_message(std::string_view m) {
  std::string out;
  out.reserve(m.size());
  for (size_t i = 0; i < m.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(m[i]);
    if (c < 0x20 || c == 0x7f) {
      out += '?';
    } else if (c == 0xc2 && i + 1 < m.size() && static_cast<unsigned char>(m[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(m[i + 1]) < 0xa0) {
      out += '?';
      ++i;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace

std::string describe_sqlite_error(const std::string& path, std::string_view what, int code, std::string_view sqlite_msg,
                                  int sys_errno) {
  const std::string msg = terminal_safe_message(sqlite_msg);
  // Out of space shows up as SQLITE_FULL or as an I/O error whose errno says why.
  if (sys_errno == EFBIG)
    return "file size limit reached while " + std::string(what) + " " + quote_path(path) + " (" + std::strerror(EFBIG) +
           "; see 'ulimit -f'); raise the limit or write elsewhere.";
  if ((code & 0xFF) == SQLITE_FULL || sys_errno == ENOSPC)
    return "disk full while " + std::string(what) + " " + quote_path(path) + " (" + std::strerror(ENOSPC) +
           "); free space and retry.";
  if (sys_errno == EDQUOT)
    return "disk quota exceeded while " + std::string(what) + " " + quote_path(path) + " (" + std::strerror(EDQUOT) +
           "); free space within your quota and retry.";
  if ((code & 0xFF) == SQLITE_IOERR && sys_errno != 0)
    return "I/O error while " + std::string(what) + " " + quote_path(path) + ": " + msg + " (" +
           std::strerror(sys_errno) + "); check the disk and retry.";
  switch (code & 0xFF) {
    case SQLITE_NOTADB:
      return quote_path(path) +
             " is not a SQLite database (or is encrypted); pass a recording written by "
             "'exitscope record'.";
    case SQLITE_CORRUPT: return quote_path(path) + " is corrupt (" + msg + "); re-record it or restore a backup copy.";
    case SQLITE_CANTOPEN:
      return "cannot open " + quote_path(path) + " (" + msg + "); check that the path exists and is accessible.";
    case SQLITE_READONLY:
    case SQLITE_PERM: return "cannot write " + quote_path(path) + " (" + msg + "); choose a writable location.";
    default: return "error while " + std::string(what) + " " + quote_path(path) + ": " + msg + ".";
  }
}

namespace {

// SQLite reports errno as the thread's errno when the error reaches the connection, which a
// later system call may have changed (or cleared). For a write error without one, look at
// the two usual causes directly: the file size limit and a full filesystem.
int infer_write_errno(const std::string& path) {
  namespace fs = std::filesystem;
  rlimit lim{};
  if (getrlimit(RLIMIT_FSIZE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-journal"}) {
      const auto size = fs::file_size(path + suffix, ec);
      if (!ec && size + 65536 >= lim.rlim_cur) return EFBIG;
    }
  }
  std::string dir = fs::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  struct statvfs vfs {};
  if (statvfs(dir.c_str(), &vfs) == 0 && static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize < 65536) return ENOSPC;
  return 0;
}

}  // namespace

std::string describe_sqlite_error(db::Db& db, std::string_view what) {
  int sys_errno = db.system_errno();
  const int primary = db.errcode() & 0xFF;
  if ((primary == SQLITE_IOERR || primary == SQLITE_FULL) && sys_errno != ENOSPC && sys_errno != EFBIG &&
      sys_errno != EDQUOT)
    if (const int inferred = infer_write_errno(db.path())) sys_errno = inferred;
  return describe_sqlite_error(db.path(), what, db.errcode(), db.errmsg(), sys_errno);
}

Result<int> check_readable(db::Db& db) {
  auto v = read_version(db);
  if (!v) return v;
  if (*v == 0)
    return make_error(quote_path(db.path()) +
                      " is empty, not an exitscope recording; pass a file written by "
                      "'exitscope record'.");
  // A v1 file must have the tables replay reads.
  auto have = db.query_int(
      "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('sessions', 'events', 'code')");
  if (!have) return make_error(describe_sqlite_error(db.path(), "reading", db.errcode(), have.error()));
  if (*have != 3)
    return make_error(quote_path(db.path()) + " has user_version " + std::to_string(*v) +
                      " but lacks the exitscope tables; it is not an exitscope recording.");
  return v;
}

Result<void> migrate(db::Db& db, const std::string& source_file) {
  auto v = read_version(db);
  if (!v) return make_error(v.error());
  const int start = *v;
  if (start == kSchemaVersion) return {};
  // A finished recording has its indexes; the v4 step rebuilds the events table (and with it
  // its indexes), so the current set is built again after the steps. (events_origin: every
  // finished recording has it; events_time only one whose times do not follow its ids.)
  auto indexed = db.query_int("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'events_origin'");
  if (!indexed) return make_error(describe_sqlite_error(db.path(), "reading", db.errcode(), indexed.error()));
  // The v4 step packs five columns with es_pack_extra (schema/event_row.cpp).
  if (auto f = register_event_row_functions(db); !f) return f;
  for (int version = start; version < kSchemaVersion; ++version) {
    if (version < 0 || static_cast<size_t>(version) >= kSteps.size())  // read_version refuses these
      return make_error(quote_path(db.path()) + " has no migration step from schema v" + std::to_string(version) + ".");
    const MigrationStep& step = kSteps[static_cast<size_t>(version)];
    std::string sql = "BEGIN IMMEDIATE;\n";
    sql += step.sql();
    // An existing recording being upgraded says so (schema_history exists from v2 on); a new
    // file created at the current version has no history.
    const bool note = start > 0 && version + 1 >= 2;
    if (note) {
      char when[32];
      const std::time_t now = std::time(nullptr);
      std::tm tm{};
      gmtime_r(&now, &tm);
      std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
      auto quote = [](const std::string& text) {
        std::string q = "'";
        for (char c : text) q += c == '\'' ? std::string("''") : std::string(1, c);
        return q + "'";
      };
      sql += "\nINSERT INTO schema_history (version, from_version, migrated_at, tool_version, source_file) VALUES (" +
             std::to_string(version + 1) + ", " + std::to_string(version) + ", " + quote(when) + ", " +
             quote(ES_TOOL_VERSION) + ", " + quote(source_file) + ");";
    }
    sql += "\nCOMMIT;";
    if (auto r = db.exec(sql); !r) {
      const std::string msg = describe_sqlite_error(db.path(), "migrating schema v" + std::to_string(step.from) + " of",
                                                    db.errcode(), r.error(), db.system_errno());
      (void)db.exec("ROLLBACK");
      return make_error(msg);
    }
  }
  if (start > 0 && *indexed > 0) return create_indexes(db);
  return {};
}

namespace {

// Removes `path` if it is a regular file (a stale copy of ours); refuses anything else there
// (a device, FIFO, symlink or directory, e.g. from an unpacked archive): never unlinked.
Result<void> remove_if_ours(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto st = fs::symlink_status(path, ec);
  if (!fs::exists(st)) return {};
  if (!fs::is_regular_file(st))
    return make_error(quote_path(path) +
                      " exists and is not a regular file; exitscope replaces only files it can have written: move it "
                      "away or choose another name.");
  fs::remove(path, ec);
  if (ec) return make_error("cannot remove " + quote_path(path) + " (" + ec.message() + "); remove it yourself.");
  return {};
}

}  // namespace

Result<void> migrate_copy(db::Db& src, const std::string& dest) {
  namespace fs = std::filesystem;
  const std::string partial = dest + ".partial";
  std::error_code ec;
  // Only a regular file is ever renamed over (RELIABILITY.md, "Files from strangers").
  {
    const auto st = fs::symlink_status(dest, ec);
    if (fs::exists(st) && !fs::is_regular_file(st))
      return make_error(quote_path(dest) +
                        " exists and is not a regular file; exitscope replaces only files it can have written: move "
                        "it away or choose another name.");
  }
  for (const char* suffix : {"", "-journal", "-wal", "-shm"})
    if (auto r = remove_if_ours(partial + suffix); !r) return r;
  {
    auto out = db::Db::open(partial, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (!out) return make_error(describe_sqlite_error(partial, "creating", SQLITE_CANTOPEN, out.error()));
    sqlite3_backup* b = sqlite3_backup_init(out->get(), "main", src.get(), "main");
    if (!b) {
      const std::string msg = describe_sqlite_error(*out, "copying " + quote_path(src.path()) + " to");
      out->close();
      fs::remove(partial, ec);
      return make_error(msg);
    }
    const int rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) {
      // The failure is on the reading side (a corrupt original) or the writing side (full disk).
      const std::string msg = out->errcode() != SQLITE_OK
                                  ? describe_sqlite_error(*out, "copying " + quote_path(src.path()) + " to")
                                  : describe_sqlite_error(src.path(), "copying", rc, sqlite3_errstr(rc));
      out->close();
      fs::remove(partial, ec);
      return make_error(msg);
    }
    std::string source = src.path();
    if (auto abs = fs::absolute(source, ec); !ec) source = abs.lexically_normal().string();
    if (auto r = migrate(*out, source); !r) {
      out->close();
      fs::remove(partial, ec);
      return make_error(r.error());
    }
  }
  fs::rename(partial, dest, ec);
  if (ec) {
    // The reason first: remove() clears `ec`, and its "Success" was the reason shown (issue #17).
    const std::string why = ec.message();
    fs::remove(partial, ec);
    return make_error("cannot create " + quote_path(dest) + " (" + why + "); choose a writable location.");
  }
  return {};
}

Result<bool> scan_time_sorted(db::Db& db) {
  auto st = db.prepare("SELECT time_ns FROM events ORDER BY id");
  if (!st) return make_error(describe_sqlite_error(db, "reading"));
  bool first = true;
  int64_t last = 0;
  int rc;
  while ((rc = st->step()) == SQLITE_ROW) {
    const int64_t t = st->col_i64(0);
    if (!first && t < last) return false;
    first = false;
    last = t;
  }
  if (rc != SQLITE_DONE) return make_error(describe_sqlite_error(db, "reading"));
  return true;
}

Result<void> create_indexes(db::Db& db, const std::function<void()>& after_each, std::optional<bool> time_sorted) {
  if (!time_sorted) {
    auto scanned = scan_time_sorted(db);
    if (!scanned) return make_error(scanned.error());
    time_sorted = *scanned;
  }
  // Each CREATE INDEX scans the table and sorts its keys. With SQLite's default 2 MB cache the
  // sorter spills to many small temporary files; a larger cache lets it sort bigger runs in
  // memory, and two sorter threads share the work (~30 % less time on 1.2 M events, BENCHMARKS.md
  // "KVM recorder"). The sorter keeps up to a cache-sized list per thread plus the one being
  // filled, besides the page cache itself: about 4 x the cache at a size where the lists fill.
  // 256 MiB made that 1.16 GB at 100 M events; 64 MiB keeps it near 270 MB for the same CPU
  // within ~10 % (BENCHMARKS.md "File size and memory: schema v4"). The cache size and the
  // threads are put back after.
  const auto cache = db.query_int("PRAGMA cache_size");
  (void)db.exec("PRAGMA cache_size = -65536");
  (void)db.exec("PRAGMA threads = 2");
  std::string error;
  // The fact (schema/time_index.sql), then the indexes; the time index only where the times do
  // not follow the ids (and not kept where they do: a file indexed by an older build).
  std::string sql =
      "CREATE TABLE IF NOT EXISTS event_order (time_sorted INTEGER NOT NULL);\n"
      "DELETE FROM event_order;\n"
      "INSERT INTO event_order (time_sorted) VALUES (" +
      std::string(*time_sorted ? "1" : "0") + ");\n";
  sql += indexes_sql();
  if (*time_sorted)
    sql += "DROP INDEX IF EXISTS events_time;\n";
  else
    sql += time_index_sql();
  const char* next = sql.c_str();
  while (error.empty() && *next) {
    sqlite3_stmt* st = nullptr;
    const char* tail = nullptr;
    if (sqlite3_prepare_v2(db.get(), next, -1, &st, &tail) != SQLITE_OK) {
      error = describe_sqlite_error(db, "indexing");
      break;
    }
    next = tail;
    if (!st) continue;  // whitespace or a comment
    const int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
      error = describe_sqlite_error(db, "indexing");
    else if (after_each)
      after_each();
  }
  if (cache) (void)db.exec("PRAGMA cache_size = " + std::to_string(*cache));
  // And no sorter threads for what the connection runs next (the chains table's statements).
  (void)db.exec("PRAGMA threads = 0");
  if (!error.empty()) return make_error(error);
  return {};
}

}  // namespace es::schema
