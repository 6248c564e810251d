// RAII ownership of SQLite handles (a connection and a prepared statement).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "schema/result.h"

namespace es::db {

// A prepared statement; finalized on destruction. Column / bind indexes as in SQLite
// (bind from 1, columns from 0).
class Stmt {
 public:
  Stmt() = default;
  explicit Stmt(sqlite3_stmt* s) : s_(s) {}
  Stmt(Stmt&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stmt& operator=(Stmt&& o) noexcept {
    if (this != &o) {
      reset_handle();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { reset_handle(); }

  sqlite3_stmt* get() const { return s_; }
  explicit operator bool() const { return s_ != nullptr; }

  void bind(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  void bind_u64(int i, uint64_t v) { sqlite3_bind_int64(s_, i, static_cast<int64_t>(v)); }
  void bind(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void bind_blob(int i, const void* p, int n) { sqlite3_bind_blob(s_, i, p, n, SQLITE_TRANSIENT); }
  void bind_null(int i) { sqlite3_bind_null(s_, i); }

  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(s_); }
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  // Ready to step again with the same bindings: for a caller that binds every parameter each
  // time (clearing them is a pass over every parameter, 1 % of an import's CPU).
  void rewind() { sqlite3_reset(s_); }

  int64_t col_i64(int c) const { return sqlite3_column_int64(s_, c); }
  uint64_t col_u64(int c) const { return static_cast<uint64_t>(sqlite3_column_int64(s_, c)); }
  bool col_null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  std::string col_text(int c) const {
    const auto* p = sqlite3_column_text(s_, c);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s_, c)))
             : std::string();
  }
  // The column's bytes (blob or text) without a copy; valid until the next step / reset.
  std::string_view col_bytes(int c) const {
    const void* p = sqlite3_column_blob(s_, c);
    return p ? std::string_view(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s_, c)))
             : std::string_view();
  }
  std::string col_blob(int c) const {
    const void* p = sqlite3_column_blob(s_, c);
    return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s_, c)))
             : std::string();
  }

 private:
  void reset_handle() {
    if (s_) sqlite3_finalize(s_);
    s_ = nullptr;
  }
  sqlite3_stmt* s_ = nullptr;
};

// A connection; closed on destruction.
class Db {
 public:
  Db() = default;
  Db(Db&& o) noexcept : h_(std::exchange(o.h_, nullptr)), path_(std::move(o.path_)) {}
  Db& operator=(Db&& o) noexcept {
    if (this != &o) {
      close();
      h_ = std::exchange(o.h_, nullptr);
      path_ = std::move(o.path_);
    }
    return *this;
  }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db() { close(); }

  // flags: SQLITE_OPEN_* (SQLITE_OPEN_NOMUTEX is not added; callers serialize anyway).
  // Returns SQLite's message on failure (the caller turns it into a sentence).
  static Result<Db> open(const std::string& path, int flags);

  sqlite3* get() const { return h_; }
  const std::string& path() const { return path_; }
  std::string errmsg() const { return h_ ? sqlite3_errmsg(h_) : "no database"; }
  int errcode() const { return h_ ? sqlite3_extended_errcode(h_) : SQLITE_MISUSE; }
  // errno of the last failed system call SQLite made (ENOSPC, EFBIG, ...), 0 if none.
  int system_errno() const { return h_ ? sqlite3_system_errno(h_) : 0; }

  // Runs one or more statements without results; error = SQLite's message.
  Result<void> exec(std::string_view sql);
  Result<Stmt> prepare(std::string_view sql);
  // First column of the first row as an integer (e.g. PRAGMA user_version).
  Result<int64_t> query_int(std::string_view sql);
  void close();

 private:
  sqlite3* h_ = nullptr;
  std::string path_;
};

}  // namespace es::db
