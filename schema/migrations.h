// Schema versions and migrations. The schema version lives in PRAGMA user_version; each
// step migrates version N to N+1 (step 0 creates v1 from an empty file). A file with a newer
// version than this build knows is refused, an older one is migrated on a writable open.
#pragma once

#include <string>
#include <string_view>

#include "schema/result.h"
#include "schema/sqlite_db.h"

namespace es::schema {

inline constexpr int kSchemaVersion = 1;

// SQL text embedded at build time from schema/v1.sql and schema/v1_indexes.sql.
std::string_view v1_sql();
std::string_view v1_indexes_sql();

// Reads user_version and verifies the file is an exitscope recording this build can read
// (does not modify it). Returns the file's schema version. Errors are one sentence naming
// `db.path()`: not a SQLite database, not an exitscope recording, newer schema, corrupt.
Result<int> check_readable(db::Db& db);

// Brings a writable database to kSchemaVersion: an empty file gets v1, an older exitscope
// file is migrated step by step (each step in one transaction). Same refusals as above.
Result<void> migrate(db::Db& db);

// Builds the indexes (end of a recording; idempotent).
Result<void> create_indexes(db::Db& db);

// One sentence for a SQLite failure on `path` while doing `what` (maps NOTADB / CORRUPT /
// READONLY / CANTOPEN to advice).
std::string describe_sqlite_error(const std::string& path, std::string_view what, int code,
                                  std::string_view sqlite_msg);

}  // namespace es::schema
