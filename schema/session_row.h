// The one conversion of the sessions table's row (schema/v1.sql, table sessions; issue #19):
// the struct holding its columns as stored, the statements that write them (the start fields
// when a recording opens, the end fields when it finishes, the drop counts while it runs, the
// summary an importer or a live KVM recording stores afterwards) and the read of a row. The
// recorder's writer and replay's reader use these, so a change of the sessions table is this
// file's .cpp and a migration step, nothing else.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "schema/sqlite_db.h"

namespace es::schema {

// One sessions row, every column as stored. Text columns that are NULL (ended_at and
// end_detail until the recording finishes, or any column of a file written by another tool)
// read as ''.
struct SessionRow {
  int64_t id = 1;  // 1 in a file written by the recorder (one session per file)
  // Written when the recording opens.
  std::string source;        // "hv", "kvm", "import"
  std::string scenario;      // scenario name or a free label, '' if none
  std::string guest_path;    // guest image as given by the user, '' if none
  std::string guest_hash;    // "sha256:<64 hex>", '' if none
  std::string policy;        // reinjection policy name, '' if none
  std::string tool_version;  // exitscope version that wrote the recording
  std::string host;          // uname: sysname nodename release version machine
  std::string kernel;        // uname release
  std::string command_line;  // the command line that started the recording
  std::string config_json = "{}";
  std::string started_at;  // ISO 8601 UTC
  // Written when the recording finishes; complete = false, NULL / 0 until then.
  std::string ended_at;  // ISO 8601 UTC
  bool complete = false;
  std::optional<uint32_t> end_reason;  // ES_END_*
  std::string end_detail;              // one line: why the run ended
  uint64_t event_count = 0;            // rows written to events
  uint64_t exit_count = 0;             // events of kind ES_KIND_VM_EXIT
  // Written while recording and when it finishes.
  uint64_t records_dropped = 0;  // records the recorder could not keep
  uint64_t source_dropped = 0;   // records the source lost before the recorder

  bool operator==(const SessionRow&) const = default;
};

// "INSERT INTO sessions (...)" of the start fields (and id) with complete = 0, for
// bind_session_start.
std::string_view session_start_sql();
void bind_session_start(db::Stmt& s, const SessionRow& row);

// "UPDATE sessions SET ..." of the end fields and drop counts, complete = 1, of row.id, for
// bind_session_end.
std::string_view session_end_sql();
void bind_session_end(db::Stmt& s, const SessionRow& row);

// "UPDATE sessions SET records_dropped, source_dropped" of row.id, for bind_session_drops.
std::string_view session_drops_sql();
void bind_session_drops(db::Stmt& s, const SessionRow& row);

// "UPDATE sessions SET host, kernel, config_json, guest_hash" of every row, for
// bind_session_summary: what an importer learns from the trace (and the input's hash, computed
// while it is read), or a live KVM recording once it has stopped. An empty field keeps the
// stored value.
std::string_view session_summary_sql();
void bind_session_summary(db::Stmt& s, std::string_view host, std::string_view kernel, std::string_view config_json,
                          std::string_view guest_hash = {});

// "SELECT <every column> FROM sessions ORDER BY id LIMIT 1" (the file's session), for
// read_session_row.
std::string_view session_select_sql();
// Reads the current row of a statement prepared from session_select_sql() into `row`.
void read_session_row(const db::Stmt& s, SessionRow& row);

}  // namespace es::schema
