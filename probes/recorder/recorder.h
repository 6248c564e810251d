// The recorder: a built-in probe-bus subscriber that writes every record into a SQLite
// recording (schema/v1.sql).
//
// Threading: the producer (the thread calling ProbeBus::emit) copies each record into the
// front buffer under a mutex; a writer thread swaps the buffers and writes the back buffer
// in one transaction with one reused prepared INSERT. When the writer falls behind, the
// producer blocks (default, deterministic for the hv source) or, with
// RecorderOptions::drop_when_full, drops and counts (sessions.records_dropped): never silent.
//
// Typical use (the hv runner):
//   auto rec = es::recorder::Recorder::open(path, info, force, {.steps = es::replay::chain_steps()});
//   if (!rec) { print(rec.error()); return 2; }
//   (*rec)->attach(bus);
//   ... run ...
//   if (auto r = (*rec)->finish({ES_END_GUEST_EXIT, "guest exited"}); !r) print(r.error());
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "exitscope/record.h"
#include "exitscope/probe_bus.h"
#include "probes/recorder/output_file.h"
#include "probes/recorder/record_steps.h"
#include "probes/recorder/session_info.h"
#include "schema/event_row.h"
#include "schema/result.h"
#include "schema/sqlite_db.h"

namespace es::recorder {

// Test hook: ES_RECORDER_TEST_QUEUE=N in the environment makes every Recorder::open use drop
// mode with a queue (and batch) of N records, so tests can force a queue overflow end to end
// through the real `exitscope record` (tests/reliability). Not for users: drops lose events.
inline constexpr const char* kTestQueueEnv = "ES_RECORDER_TEST_QUEUE";

// Has no default (steps has none): every caller says which steps its recording runs.
struct RecorderOptions {
  size_t batch_size = 16384;           // records per transaction
  size_t max_queued = 65536;           // front-buffer bound; the producer blocks (or drops) beyond it
  bool drop_when_full = false;         // false: block the producer; true: drop and count
  unsigned commit_interval_ms = 1000;  // commit what is queued at least this often
  // Run beside the writing: every row to steps->on_row, then steps->finish() in finish(). What
  // fills the chains table is replay's (replay::chain_steps(): chains decided
  // while the rows are written, a read-back only if rows came out of id order); the caller
  // passes it in; recorder::kNoChains: rows, indexes and the session only. No default.
  RecordStepsChoice steps;
  // false: the caller removes the file when finish() fails (an import's DB.partial), so the
  // error names the cause only and does not say the committed events are kept there.
  bool kept_on_failure = true;
  // true: the file is not the user's yet (an import's DB.partial, renamed to DB only after
  // finish()): while writing, synchronous=OFF (no fsync at WAL checkpoints; a killed process
  // still leaves every committed batch readable, only an OS crash could not, and such a file is
  // never renamed), then finish() switches to synchronous=NORMAL before its final checkpoint,
  // so the file is on disk before it becomes DB. false (record): synchronous=NORMAL throughout.
  bool not_yet_users_file = false;
};

struct RecorderStats {
  uint64_t written = 0;    // rows in events
  uint64_t dropped = 0;    // records not written (queue full in drop mode, rejected rows, writer error)
  uint64_t batches = 0;    // transactions committed
  uint64_t code_rows = 0;  // distinct (rip, bytes)
};

class Recorder {
 public:
  // Creates `path` (refused if it exists unless `force`, which replaces it), applies the
  // schema, writes the sessions row with complete = 0 and starts the writer thread.
  // Errors: one sentence naming the file and what to do. `options.steps` is required (the
  // chains, or recorder::kNoChains); an empty factory there is refused before the file is made.
  static Result<std::unique_ptr<Recorder>> open(const std::string& path, const SessionStart& info, bool force,
                                                RecorderOptions options);

  // Subscribes to `bus` for `kind_mask` (bit k = ES_KIND k). The bus must outlive the
  // recorder or the recorder must be finished first. One bus at a time.
  void attach(probes::ProbeBus& bus, uint32_t kind_mask = probes::kAllKinds);
  void detach();

  // Queues one record (copied). Also the entry point for sources that do not use a bus
  // (importers). Thread-safe; a record with id 0 gets the next free row id.
  void on_record(const es_record& rec);
  // Queues n records under one lock (sources that produce batches: the KVM recorder, imports).
  void on_records(const es_record* recs, size_t n);

  // Blocks until every record queued so far is committed to the file (the session stays
  // incomplete). Useful before reading a recording that is still being written.
  Result<void> flush();

  // Detaches, writes everything queued, builds indexes, runs the caller's finish step
  // (RecorderOptions::steps: chains), then marks the session complete with the end reason, end
  // time and counts. Call once.
  Result<void> finish(const RunEnd& end);

  // Called once, from the writer thread, when a batch cannot be written (disk full, file
  // size limit, I/O error). Nothing more can be recorded after that, so the caller stops its
  // source here (e.g. hv::Machine::request_stop, which is thread-safe); finish() then
  // returns the error. Keep it short: it runs on the writer thread.
  void set_on_write_error(std::function<void()> fn);

  // What the source lost so far (ring-buffer drops, ...). Stored with the next committed batch,
  // so a recording that is killed still says how much its source had dropped by then;
  // finish() stores RunEnd::source_dropped.
  void set_source_dropped(uint64_t n) { source_dropped_.store(n, std::memory_order_relaxed); }

  // Counters so far (exact after finish()).
  RecorderStats stats() const;
  const std::string& path() const { return path_; }
  // The writer thread, for a caller that schedules it (record --kvm lowers its priority while
  // the traced guests need the CPU).
  std::thread::native_handle_type writer_thread() { return writer_.native_handle(); }

  // Without finish(): detaches, writes what is queued and leaves the session incomplete.
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

 private:
  Recorder(std::string path, db::Db db, RecorderOptions options);
  Result<void> prepare_statements();
  void writer_main();
  void write_batch(std::vector<es_record>& batch);
  int64_t code_id_for(const es_record& rec);
  void stop_writer();
  void make_self_contained();
  void checkpoint_if_large();
  static void bus_callback(void* self, const es_record* rec);

  std::string path_;
  RecordingLock lock_;  // flock on path_ while recording: released after db_ is closed
  db::Db db_;
  RecorderOptions options_;
  db::Stmt insert_event_;
  // The rows of a batch go kRowsPerInsert at a time through one multi-row INSERT: SQLite writing
  // the same rows took 4 - 8 % less time than with one statement a row (BENCHMARKS.md "Rows
  // stored 32 to a statement"; one step, one reset and one program start per 32 rows).
  static constexpr size_t kRowsPerInsert = 32;
  db::Stmt insert_events_;
  db::Stmt insert_code_;
  // Key: the 8-byte rip, the count of instruction bytes, the bytes (zero after them): a fixed
  // array, so a lookup allocates nothing (one per exit with bytes).
  using CodeKey = std::array<unsigned char, 8 + 1 + sizeof(es_record::bytes)>;
  struct CodeKeyHash {
    size_t operator()(const CodeKey& k) const noexcept {
      return std::hash<std::string_view>()(std::string_view(reinterpret_cast<const char*>(k.data()), k.size()));
    }
  };
  std::unordered_map<CodeKey, int64_t, CodeKeyHash> code_ids_;
  // Writer thread: the extra blobs of the rows being stored (bound without a copy until the step).
  std::array<schema::EventRowScratch, kRowsPerInsert> row_scratch_;
  std::unique_ptr<RecordSteps> steps_;  // the caller's (options.steps): writer thread, then finish(); null: kNoChains

  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // writer waits: batch ready / stop
  std::condition_variable space_cv_;  // producer waits: front buffer below max_queued
  std::vector<es_record> front_;      // filled by producers
  std::vector<es_record> back_;       // written by the writer
  bool stop_ = false;
  bool flush_requested_ = false;
  std::condition_variable flushed_cv_;  // flush() waits: the writer drained the queue
  bool writer_failed_ = false;
  std::string writer_error_;
  std::function<void()> on_write_error_;
  RecorderStats stats_;
  uint64_t exit_count_ = 0;
  std::atomic<uint64_t> source_dropped_{0};
  uint64_t stored_source_dropped_ = 0, stored_records_dropped_ = 0;  // writer thread: last stored
  // Writer thread: whether the rows stored so far came in id order (ids_in_order_) and, if so,
  // with time_ns never decreasing (times_in_order_): finish() tells create_indexes, which then
  // needs no time index (schema/time_index.sql). Out of id order: it reads the table to decide.
  bool ids_in_order_ = true, times_in_order_ = true;
  int64_t last_id_ = INT64_MIN, last_time_ = INT64_MIN;  // of the last row stored; none yet: below any
  // Writer thread: the vcpus table's rows (schema/v1.sql), counted as rows are stored (index =
  // es_record.vcpu) instead of a GROUP BY over the whole events table at finish (issue #18: that
  // scan and its sort were 12 % of a trace.dat import's CPU). finish() writes the vCPUs with events.
  struct VcpuSpan {
    int64_t first = INT64_MAX, last = INT64_MIN;
    uint64_t count = 0;
  };
  std::vector<VcpuSpan> vcpus_;
  db::Stmt update_drops_;
  std::thread writer_;

  probes::ProbeBus* bus_ = nullptr;
  int bus_handle_ = 0;
  bool finished_ = false;
};

}  // namespace es::recorder
