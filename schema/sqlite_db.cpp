#include "schema/sqlite_db.h"

namespace es::db {

namespace {

// SQLite's memory statistics (sqlite3_memory_used, sqlite3_status: exitscope reads none) take a
// global mutex around every allocation and free (issue #18: ~1.5 % of an import's CPU, the
// anchor's as much). Turned off once, before the first connection initializes SQLite;
// sqlite3_config refuses (SQLITE_MISUSE, nothing changed) if something in this process has
// initialized it already.
void memory_statistics_off() {
  static const int once = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)once;
}

}  // namespace

Result<Db> Db::open(const std::string& path, int flags) {
  memory_statistics_off();
  sqlite3* h = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &h, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = h ? sqlite3_errmsg(h) : sqlite3_errstr(rc);
    if (h) sqlite3_close_v2(h);
    return make_error(msg);
  }
  sqlite3_extended_result_codes(h, 1);
  sqlite3_busy_timeout(h, 5000);
  Db db;
  db.h_ = h;
  db.path_ = path;
  return db;
}

Result<void> Db::exec(std::string_view sql) {
  const std::string s(sql);
  char* err = nullptr;
  if (sqlite3_exec(h_, s.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : errmsg();
    sqlite3_free(err);
    return make_error(msg);
  }
  return {};
}

Result<Stmt> Db::prepare(std::string_view sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(h_, sql.data(), static_cast<int>(sql.size()), &s, nullptr) != SQLITE_OK) {
    if (s) sqlite3_finalize(s);
    return make_error(errmsg());
  }
  return Stmt(s);
}

Result<int64_t> Db::query_int(std::string_view sql) {
  auto st = prepare(sql);
  if (!st) return make_error(st.error());
  const int rc = st->step();
  if (rc == SQLITE_ROW) return st->col_i64(0);
  if (rc == SQLITE_DONE) return int64_t{0};
  return make_error(errmsg());
}

void Db::close() {
  if (h_) sqlite3_close_v2(h_);
  h_ = nullptr;
}

}  // namespace es::db
