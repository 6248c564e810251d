// A recording opened for reading: session summary, filtered event iteration.
// Never aborts on bad input: every failure is a Result with one sentence naming the file.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "exitscope/record.h"
#include "schema/result.h"
#include "schema/session_row.h"
#include "schema/sqlite_db.h"

namespace es::replay {

// One events row. `rec` holds every column as the recorder received it; rec.bytes holds the
// instruction bytes (ES_FLAG_BYTES_VALID, from the code table) or the console text.
struct Event {
  es_record rec{};
  int64_t code_id = 0;  // 0 = none
};

// A recording's session as Recording::session() reads it: the sessions row (schema/session_row.h)
// plus what the events say. event_count is the number of rows in events (counted, valid for
// incomplete sessions too), not the column the recorder writes at finish.
struct SessionSummary : schema::SessionRow {
  uint64_t first_time_ns = 0, last_time_ns = 0;
  std::vector<std::pair<uint16_t, uint64_t>> counts_by_kind;   // kind, count
  std::vector<std::pair<uint32_t, uint64_t>> exits_by_reason;  // full exit reason, count (most first)
  // VM exits with ES_FLAG_SVM (AMD recordings), by SVM exit code; exits_by_reason then holds
  // the others only. Name them with replay::exit_reason_text(code, ES_FLAG_SVM).
  std::vector<std::pair<uint32_t, uint64_t>> svm_exits_by_reason;
  std::vector<std::pair<uint32_t, uint64_t>> decisions_by_reason;  // ES_DECISION_*, count
  std::vector<uint16_t> vcpus;
};

// Records that never reached the file (sessions.records_dropped / source_dropped). The
// recorder stores the counts so far with every committed batch, so an incomplete (killed)
// session reports what was dropped up to its last commit; a finished one, every drop.
struct DropCounts {
  uint64_t recorder = 0;  // the recorder's queue was full (drop mode) or rows were rejected
  uint64_t source = 0;    // lost before the recorder (e.g. the KVM BPF ring buffer was full)
  uint64_t total() const { return recorder + source; }
};

// Which events to return; unset members match everything.
struct EventFilter {
  std::optional<uint16_t> kind;
  // --reason: a name resolves to an exit reason (VM_EXIT / NESTED_EXIT: the VMX basic reason
  // of VMX exits, the SVM exit code of exits with ES_FLAG_SVM) or a decision (DECISION); a
  // number matches the basic exit reason / SVM exit code of exits or the reason of any other kind.
  std::optional<uint16_t> exit_reason;
  std::optional<uint32_t> svm_exit_code;
  std::optional<uint32_t> decision;
  std::optional<uint32_t> reason_number;
  std::optional<uint8_t> vector;  // valid intr_info or IDT-vectoring info with this vector
  std::optional<uint16_t> vcpu;
  std::optional<uint8_t> level;
  std::optional<uint64_t> chain;  // events.origin
  // Only events in no chain (origin 0). Read by a scan of the table, not through the origin
  // index: in a whole recording most rows match, and an index walk adds a lookup per row.
  bool outside_chains = false;
  std::optional<uint64_t> from_ns, to_ns;  // inclusive time window
  std::optional<uint64_t> limit;
};

// Resolves a --reason argument; error sentence if neither an exit reason nor a decision.
Result<void> set_reason(EventFilter& f, std::string_view text);

// Instruction bytes by code id (the code table: one row per distinct instruction seen at an exit
// RIP, small next to events), loaded once per recording for whole-recording reads.
class CodeCache {
 public:
  Result<void> load(db::Db& db);
  std::string_view bytes(int64_t id) const {
    auto it = bytes_.find(id);
    return it == bytes_.end() ? std::string_view() : std::string_view(it->second);
  }

 private:
  std::unordered_map<int64_t, std::string> bytes_;
  bool loaded_ = false;
};

// Where Recording::open puts the migrated copy of an older-schema recording: beside it, as
// <name without .db>.v<current schema>.db (e.g. old.db -> old.v3.db).
std::string migrated_copy_path(const std::string& path);

// Receives the one-line notice Recording::open gives when it reads a migrated copy instead
// of the file asked for. The default prints "note: ..." to stderr; the GUI or a test may
// replace it (an empty function silences it).
void set_open_notice_handler(std::function<void(const std::string&)> fn);

class Recording {
 public:
  // Read-only open. Errors: missing file, not a SQLite file, not an exitscope recording,
  // newer schema, corrupt. A recording of an older schema is never modified: it is copied
  // to migrated_copy_path(path) (or, if that directory is not writable, to the temp
  // directory), the copy is migrated and opened, and the notice handler says so. A copy
  // made earlier is reused while it is newer than the original.
  static Result<Recording> open(const std::string& path);

  const std::string& path() const { return db_.path(); }
  // What session() reads. Summary: the sessions row, the event count and the time extent (an
  // export's header), a few page reads. Full adds counts_by_kind, exits_by_reason,
  // decisions_by_reason and vcpus, each an index scan over every event.
  enum class Detail { Summary, Full };
  Result<SessionSummary> session(Detail detail = Detail::Full);
  // Only the drop counts of the session (one row read; session() also counts every event).
  Result<DropCounts> drop_counts();
  // Concatenated ES_KIND_CONSOLE text split into lines (a partial last line included).
  Result<std::vector<std::string>> console_lines();
  // Calls fn for each matching event in id order; fn returns false to stop.
  Result<void> for_each_event(const EventFilter& f, const std::function<bool(const Event&)>& fn);
  Result<std::vector<Event>> events(const EventFilter& f);
  // The SQL (after WHERE, aliases e and c as in event_select_sql) that for_each_event narrows
  // `f` to, its values appended to `binds`. Every term but the decoded ones is exact and on
  // an index where one exists: kind / reason on events_kind_reason, vcpu on events_vcpu,
  // from / to an id range (time_window_sql), chain on events_origin; matches_decoded() decides
  // the rest.
  Result<std::string> filter_sql(const EventFilter& f, std::vector<int64_t>& binds);
  Result<std::optional<Event>> event(uint64_t id);

  db::Db& db() { return db_; }

 private:
  explicit Recording(db::Db db) : db_(std::move(db)) {}
  db::Db db_;
  std::unique_ptr<CodeCache> code_ = std::make_unique<CodeCache>();
};

// Shared by Recording and chain materialization: SELECT over events joined with code.
// `where` is SQL after WHERE (may be empty); binds are int64 values for its '?'s.
Result<void> query_events(db::Db& db, const std::string& where, const std::vector<int64_t>& binds,
                          const std::function<bool(const Event&)>& fn, const char* order_by = "e.id",
                          const CodeCache* code = nullptr);

// The SELECT (columns of events joined with code, aliases e and c, no WHERE) that
// event_from_row reads; for queries with their own WHERE / ORDER BY / LIMIT (replay/browse.cpp).
std::string_view event_select_sql();
Event event_from_row(const db::Stmt& s);

// Time edges (issue #18). A recording whose writer saw time_ns never decrease in id order says
// so (the event_order table, schema/time_index.sql) and has no time index: there a time edge is
// the id edge found by a binary search of rowid probes (`... WHERE id >= ? ORDER BY id LIMIT 1`,
// about log2(ids) of them: 27 at 100 M events), and time order is id order. Any other recording
// (an older build's, an unfinished one, live KVM out of time order, a stranger's) is answered by
// SQL on time_ns: its events_time index if it has one, else a scan. Never a binary search on the
// mere absence of the index: only on the word the writer stored (a file that forges it over
// unsorted rows gets the answers of a binary search, as any forged column gets its own).
//
// Whether the recording says its times follow its ids.
Result<bool> time_sorted(db::Db& db);
// The event a time window starts at: the lowest (time_ns, id) with time_ns >= t (on a sorted
// recording the lowest id with time_ns >= t); nullopt when there is none.
Result<std::optional<uint64_t>> first_id_at_or_after(db::Db& db, uint64_t t_ns);
// The event a window ends at: the highest (time_ns, id) with time_ns <= t; nullopt when none.
Result<std::optional<uint64_t>> last_id_at_or_before(db::Db& db, uint64_t t_ns);
// SQL terms (joined by AND, none if both are unset) for from_ns <= time_ns <= to_ns on the
// events table named `alias` ("e", or "" for the bare table): the time terms, and on a sorted
// recording the id range they select too, so SQLite reads that range of the rowid b-tree.
Result<std::string> time_window_sql(db::Db& db, std::optional<uint64_t> from_ns, std::optional<uint64_t> to_ns,
                                    const std::string& alias = "");
// The first and last time of the recording (min / max of time_ns; 0, 0 when empty).
Result<std::pair<uint64_t, uint64_t>> time_span(db::Db& db);
// "ORDER BY" terms for time order (time_ns, id): "id" alone on a sorted recording.
Result<std::string> time_order_sql(db::Db& db, const std::string& alias = "");

// True if the event matches the decoded parts of the filter (reason, vector).
bool matches_decoded(const EventFilter& f, const es_record& r);

}  // namespace es::replay
