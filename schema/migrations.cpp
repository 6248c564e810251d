#include "schema/migrations.h"

#include <array>

extern const unsigned char es_schema_v1[];
extern const unsigned long es_schema_v1_size;
extern const unsigned char es_schema_v1_indexes[];
extern const unsigned long es_schema_v1_indexes_size;

namespace es::schema {

std::string_view v1_sql() { return {reinterpret_cast<const char*>(es_schema_v1), es_schema_v1_size}; }
std::string_view v1_indexes_sql() {
  return {reinterpret_cast<const char*>(es_schema_v1_indexes), es_schema_v1_indexes_size};
}

namespace {

struct MigrationStep {
  int from;
  std::string_view (*sql)();
};
// Step i migrates version i to i+1. Append new steps (v1 -> v2 ...) here; never edit old ones.
constexpr std::array<MigrationStep, kSchemaVersion> kSteps = {{
    {0, &v1_sql},
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

std::string describe_sqlite_error(const std::string& path, std::string_view what, int code,
                                  std::string_view sqlite_msg) {
  const std::string msg(sqlite_msg);
  switch (code & 0xFF) {
    case SQLITE_NOTADB:
      return quote_path(path) + " is not a SQLite database (or is encrypted); pass a recording written by "
                            "'exitscope record'.";
    case SQLITE_CORRUPT:
      return quote_path(path) + " is corrupt (" + msg + "); re-record it or restore a backup copy.";
    case SQLITE_CANTOPEN:
      return "cannot open " + quote_path(path) + " (" + msg + "); check that the path exists and is accessible.";
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return "cannot write " + quote_path(path) + " (" + msg + "); choose a writable location.";
    case SQLITE_FULL:
      return "disk full while " + std::string(what) + " " + quote_path(path) + "; free space and retry.";
    default:
      return "error while " + std::string(what) + " " + quote_path(path) + ": " + msg + ".";
  }
}

Result<int> check_readable(db::Db& db) {
  auto v = read_version(db);
  if (!v) return v;
  if (*v == 0)
    return make_error(quote_path(db.path()) + " is empty, not an exitscope recording; pass a file written by "
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

Result<void> migrate(db::Db& db) {
  auto v = read_version(db);
  if (!v) return make_error(v.error());
  for (int version = *v; version < kSchemaVersion; ++version) {
    const MigrationStep& step = kSteps[static_cast<size_t>(version)];
    std::string sql = "BEGIN IMMEDIATE;\n";
    sql += step.sql();
    sql += "\nCOMMIT;";
    if (auto r = db.exec(sql); !r) {
      (void)db.exec("ROLLBACK");
      return make_error(describe_sqlite_error(db.path(),
                                              "migrating schema v" + std::to_string(step.from) + " of", db.errcode(),
                                              r.error()));
    }
  }
  return {};
}

Result<void> create_indexes(db::Db& db) {
  if (auto r = db.exec(v1_indexes_sql()); !r)
    return make_error(describe_sqlite_error(db.path(), "indexing", db.errcode(), r.error()));
  return {};
}

}  // namespace es::schema
