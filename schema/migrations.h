// Schema versions and migrations. The schema version lives in PRAGMA user_version; each
// step migrates version N to N+1 (step 0 creates v1 from an empty file). A file with a newer
// version than this build knows is refused. An older one is never changed behind the user's
// back: readers migrate a copy (migrate_copy, replay::Recording::open) and only
// `exitscope migrate --in-place` migrates the original (migrate on a writable handle).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "schema/result.h"
#include "schema/sqlite_db.h"

namespace es::schema {

inline constexpr int kSchemaVersion = 5;

// SQL text embedded at build time from schema/v1.sql .. v5.sql, indexes.sql
// (the current index set) and time_index.sql (the time index, for recordings not in time order).
std::string_view v1_sql();
std::string_view indexes_sql();
std::string_view time_index_sql();
std::string_view v2_sql();
std::string_view v3_sql();
std::string_view v4_sql();
std::string_view v5_sql();

// Reads user_version and verifies the file is an exitscope recording this build can read
// (does not modify it). Returns the file's schema version. Errors are one sentence naming
// `db.path()`: not a SQLite database, not an exitscope recording, newer schema, corrupt.
Result<int> check_readable(db::Db& db);

// Brings a writable database to kSchemaVersion: an empty file gets the current schema, an
// older exitscope file is migrated step by step (each step and its schema_history row in one
// transaction, so a failure leaves the file at the last complete version). `source_file` is
// recorded in schema_history ('' = migrated in place). A finished recording (one that had its
// indexes) gets the current index set after the steps (create_indexes). Same refusals as above.
Result<void> migrate(db::Db& db, const std::string& source_file = "");

// Copies the recording open in `src` (read-only is fine; WAL content not yet checkpointed
// included) to `dest` with SQLite's online backup and migrates the copy to kSchemaVersion.
// `dest` is written as `dest`.partial and renamed once complete, so it is either a whole,
// current recording or absent; an existing `dest` is replaced. `src` is not modified.
Result<void> migrate_copy(db::Db& src, const std::string& dest);

// Builds the indexes (end of a recording; idempotent), one statement (one transaction) at a
// time; `after_each`, if given, runs after each index is committed (the recorder checkpoints
// there, so readers open during the finish do not make the WAL hold every index at once).
// `time_sorted`: whether time_ns never decreases in id order over every events row, as the
// writer saw it; nullopt (the writer cannot tell, a migrated file) reads the table once in id
// order to find out. The answer is stored in event_order (schema/time_index.sql) and the time
// index built only when it is false.
Result<void> create_indexes(db::Db& db, const std::function<void()>& after_each = {},
                            std::optional<bool> time_sorted = std::nullopt);

// Whether time_ns never decreases in id order over every events row: one read of (id, time_ns)
// in id order, stopped at the first decrease. The same signed comparison SQL makes.
Result<bool> scan_time_sorted(db::Db& db);

// One sentence for a SQLite failure on `path` while doing `what` (maps NOTADB / CORRUPT /
// READONLY / CANTOPEN / FULL to advice). `sys_errno` (db::Db::system_errno) names the cause
// of an I/O error: disk full, file size limit, quota.
std::string describe_sqlite_error(const std::string& path, std::string_view what, int code, std::string_view sqlite_msg,
                                  int sys_errno = 0);
// The same for the last failure on `db` (its path, extended code, message and errno).
std::string describe_sqlite_error(db::Db& db, std::string_view what);

}  // namespace es::schema
