#include "schema/session_row.h"

namespace es::schema {

namespace {

constexpr std::string_view kStart =
    "INSERT INTO sessions (id, source, scenario, guest_path, guest_hash, policy, tool_version, host, kernel, "
    "command_line, config_json, started_at, complete) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,0)";

constexpr std::string_view kEnd =
    "UPDATE sessions SET ended_at = ?, complete = 1, end_reason = ?, end_detail = ?, event_count = ?, "
    "exit_count = ?, records_dropped = ?, source_dropped = ? WHERE id = ?";

constexpr std::string_view kDrops = "UPDATE sessions SET records_dropped = ?, source_dropped = ? WHERE id = ?";

// NULLIF / COALESCE: an empty argument keeps the column.
constexpr std::string_view kSummary =
    "UPDATE sessions SET host = COALESCE(NULLIF(?1, ''), host), kernel = COALESCE(NULLIF(?2, ''), kernel), "
    "config_json = COALESCE(NULLIF(?3, ''), config_json), guest_hash = COALESCE(NULLIF(?4, ''), guest_hash)";

constexpr std::string_view kSelect =
    "SELECT id, source, scenario, guest_path, guest_hash, policy, tool_version, host, kernel, command_line, "
    "config_json, started_at, ended_at, complete, end_reason, end_detail, event_count, exit_count, "
    "records_dropped, source_dropped FROM sessions ORDER BY id LIMIT 1";

}  // namespace

std::string_view session_start_sql() { return kStart; }

void bind_session_start(db::Stmt& s, const SessionRow& row) {
  s.bind(1, row.id);
  s.bind(2, row.source);
  s.bind(3, row.scenario);
  s.bind(4, row.guest_path);
  s.bind(5, row.guest_hash);
  s.bind(6, row.policy);
  s.bind(7, row.tool_version);
  s.bind(8, row.host);
  s.bind(9, row.kernel);
  s.bind(10, row.command_line);
  s.bind(11, row.config_json);
  s.bind(12, row.started_at);
}

std::string_view session_end_sql() { return kEnd; }

void bind_session_end(db::Stmt& s, const SessionRow& row) {
  s.bind(1, row.ended_at);
  if (row.end_reason)
    s.bind(2, int64_t{*row.end_reason});
  else
    s.bind_null(2);
  s.bind(3, row.end_detail);
  s.bind_u64(4, row.event_count);
  s.bind_u64(5, row.exit_count);
  s.bind_u64(6, row.records_dropped);
  s.bind_u64(7, row.source_dropped);
  s.bind(8, row.id);
}

std::string_view session_drops_sql() { return kDrops; }

void bind_session_drops(db::Stmt& s, const SessionRow& row) {
  s.bind_u64(1, row.records_dropped);
  s.bind_u64(2, row.source_dropped);
  s.bind(3, row.id);
}

std::string_view session_summary_sql() { return kSummary; }

void bind_session_summary(db::Stmt& s, std::string_view host, std::string_view kernel, std::string_view config_json,
                          std::string_view guest_hash) {
  s.bind(1, host);
  s.bind(2, kernel);
  s.bind(3, config_json);
  s.bind(4, guest_hash);
}

std::string_view session_select_sql() { return kSelect; }

void read_session_row(const db::Stmt& s, SessionRow& row) {
  row.id = s.col_i64(0);
  row.source = s.col_text(1);
  row.scenario = s.col_text(2);
  row.guest_path = s.col_text(3);
  row.guest_hash = s.col_text(4);
  row.policy = s.col_text(5);
  row.tool_version = s.col_text(6);
  row.host = s.col_text(7);
  row.kernel = s.col_text(8);
  row.command_line = s.col_text(9);
  row.config_json = s.col_text(10);
  row.started_at = s.col_text(11);
  row.ended_at = s.col_text(12);
  row.complete = s.col_i64(13) != 0;
  row.end_reason.reset();
  if (!s.col_null(14)) row.end_reason = static_cast<uint32_t>(s.col_i64(14));
  row.end_detail = s.col_text(15);
  row.event_count = s.col_u64(16);
  row.exit_count = s.col_u64(17);
  row.records_dropped = s.col_u64(18);
  row.source_dropped = s.col_u64(19);
}

}  // namespace es::schema
