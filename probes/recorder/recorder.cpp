#include "probes/recorder/recorder.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <thread>

#include "probes/recorder/output_file.h"
#include "schema/event_row.h"
#include "schema/migrations.h"
#include "schema/session_row.h"

#ifndef ES_TOOL_VERSION
#define ES_TOOL_VERSION "unknown"
#endif

namespace es::recorder {

namespace {

std::string quote_path(const std::string& p) { return "'" + p + "'"; }

constexpr uint64_t kDefaultWalRestartBytes = 64ull << 20;

// The WAL size past which the writer forces a RESTART checkpoint (checkpoint_if_large).
// EXITSCOPE_WAL_RESTART_BYTES (a positive byte count, at least 64 KiB) overrides the 64 MiB
// default: the reliability test uses it to show the bound on a recording of tens of MB rather
// than of gigabytes (RELIABILITY.md "WAL growth with readers"). Anything else is ignored.
uint64_t wal_restart_bytes() {
  static const uint64_t bytes = [] {
    const char* v = std::getenv("EXITSCOPE_WAL_RESTART_BYTES");
    if (!v || !*v) return kDefaultWalRestartBytes;
    char* end = nullptr;
    const unsigned long long n = std::strtoull(v, &end, 10);
    return (*end == '\0' && n >= (64ull << 10)) ? static_cast<uint64_t>(n) : kDefaultWalRestartBytes;
  }();
  return bytes;
}

// Removes the old recording at `path` and its -wal / -shm / -journal files before a --force
// replaces it. Only regular files are removed: anything else is not ours to unlink.
Result<void> remove_existing(const std::string& path) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    const std::string p = path + suffix;
    const auto st = std::filesystem::symlink_status(p, ec);
    if (!std::filesystem::exists(st)) continue;
    if (std::filesystem::is_directory(st))
      return make_error(quote_path(p) + " is a directory; choose a file name for the recording.");
    if (!std::filesystem::is_regular_file(st))
      return make_error("cannot replace " + quote_path(p) +
                        ": it is not a regular file, and exitscope removes only files it can have written; remove it "
                        "yourself or choose another name.");
    std::filesystem::remove(p, ec);
    if (ec)
      return make_error("cannot replace " + quote_path(p) + " (" + ec.message() +
                        "); remove it yourself or choose another name.");
  }
  return {};
}

}  // namespace

Recorder::Recorder(std::string path, db::Db db, RecorderOptions options)
    : path_(std::move(path)), db_(std::move(db)), options_(options) {
  options_.batch_size = std::max<size_t>(options_.batch_size, 1);
  options_.max_queued = std::max(options_.max_queued, options_.batch_size);
  front_.reserve(options_.max_queued);
  back_.reserve(options_.max_queued);
  if (!options_.steps.no_chains()) steps_ = options_.steps.factory()(db_);
}

Result<std::unique_ptr<Recorder>> Recorder::open(const std::string& path, const SessionStart& info, bool force,
                                                 RecorderOptions options) {
  std::error_code ec;
  if (path.empty()) return make_error("no recording file given; name the .db file to write.");
  // Before anything is created: a recording without its chains must be asked for (issue #19).
  if (options.steps.missing())
    return make_error("cannot record " + quote_path(path) +
                      ": the recorder was given an empty chain-steps factory, so the recording would have no chains; "
                      "pass replay::chain_steps(), or recorder::kNoChains for a recording without chains.");
  // Where the recording goes (RELIABILITY.md, "Files from strangers"): a SQLite file cannot be
  // a stream, a symlink's file is replaced and the link kept, and a recording another process
  // is still writing (it holds a flock on its file) is never replaced.
  auto target = inspect_output(path);
  if (!target) return make_error(target.error());
  if (target->kind == OutputKind::Stream) return make_error(stream_refusal(path, target->what));
  const std::string file = target->path;
  if (target->kind == OutputKind::Regular) {
    if (const std::string holder = lock_holder(file); !holder.empty())
      return make_error(in_progress_sentence(file, holder));
    if (!force)
      return make_error("recording " + quote_path(path) +
                        " already exists; pass --force to overwrite it or choose another name.");
  }
  if (auto r = remove_existing(file); !r) return make_error(r.error());
  const auto parent = std::filesystem::path(file).parent_path();
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec))
    return make_error("cannot create recording " + quote_path(file) + ": directory " + quote_path(parent.string()) +
                      " does not exist; create it or choose another path.");
  // Created here (O_EXCL) and locked before SQLite opens it: held until the recorder is destroyed.
  auto lock = RecordingLock::create(file);
  if (!lock) return make_error(lock.error());

  if (const char* q = std::getenv(kTestQueueEnv); q && *q) {
    const unsigned long n = std::strtoul(q, nullptr, 10);
    if (n > 0) {
      options.drop_when_full = true;
      options.batch_size = options.max_queued = n;
    }
  }
  // NOMUTEX: the connection is used by one thread at a time (open() here, then only the writer
  // thread, then finish() after joining it), so SQLite's per-call locking is pure cost.
  auto opened = db::Db::open(file, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX);
  if (!opened)
    return make_error("cannot create recording " + quote_path(file) + " (" + opened.error() +
                      "); check that the directory is writable.");
  db::Db db = std::move(opened).value();
  // 8 KiB pages (the default is 4 KiB): SQLite writing the same rows and indexes took 5 - 14 %
  // less CPU (BENCHMARKS.md "8 KiB pages"), the file the same size. Set before the first write,
  // the only time it can be; the automatic checkpoint is counted in pages, so 500 keeps it at
  // the 4 MB of WAL it ran at with 4 KiB pages.
  if (auto r = db.exec("PRAGMA page_size=8192"); !r)
    return make_error(schema::describe_sqlite_error(path, "configuring", db.errcode(), r.error()));
  // journal_mode=WAL is the first write: an unwritable location fails here.
  auto mode = db.prepare("PRAGMA journal_mode=WAL");
  if (!mode || mode->step() != SQLITE_ROW)
    return make_error("cannot create recording " + quote_path(path) + " (" + db.errmsg() +
                      "); check that the directory is writable.");
  mode = db::Stmt();
  // The WAL file is cut back to this size whenever it restarts (checkpoint_if_large).
  if (auto r = db.exec(std::string("PRAGMA synchronous=") + (options.not_yet_users_file ? "OFF" : "NORMAL") +
                       "; PRAGMA journal_size_limit=" + std::to_string(wal_restart_bytes()) +
                       "; PRAGMA wal_autocheckpoint=500");
      !r)
    return make_error(schema::describe_sqlite_error(path, "configuring", db.errcode(), r.error()));
  if (auto r = schema::migrate(db); !r) return make_error(r.error());

  // The session row exists from the start with complete = 0: a crash leaves an
  // incomplete session, not an anonymous pile of events.
  auto [host, kernel] = host_and_kernel();
  schema::SessionRow row;
  row.source = to_string(info.source);
  row.scenario = info.scenario;
  row.guest_path = info.guest_path;
  row.guest_hash = info.guest_hash;
  row.policy = info.policy;
  row.tool_version = info.tool_version.empty() ? std::string(ES_TOOL_VERSION) : info.tool_version;
  row.host = info.host.empty() ? host : info.host;
  row.kernel = info.kernel.empty() ? kernel : info.kernel;
  row.command_line = info.command_line;
  row.config_json = info.config_json.empty() ? std::string("{}") : info.config_json;
  row.started_at = iso8601_utc(info.started_at);
  auto ins = db.prepare(schema::session_start_sql());
  if (!ins) return make_error(schema::describe_sqlite_error(path, "writing", db.errcode(), ins.error()));
  schema::bind_session_start(*ins, row);
  if (ins->step() != SQLITE_DONE)
    return make_error(schema::describe_sqlite_error(path, "writing", db.errcode(), db.errmsg()));
  ins = db::Stmt();

  std::unique_ptr<Recorder> rec(new Recorder(file, std::move(db), options));
  rec->lock_ = std::move(lock).value();
  if (auto r = rec->prepare_statements(); !r) return make_error(r.error());
  rec->writer_ = std::thread([r = rec.get()] { r->writer_main(); });
  return rec;
}

Result<void> Recorder::prepare_statements() {
  auto ev = db_.prepare(schema::event_insert_sql());
  if (!ev) return make_error(schema::describe_sqlite_error(path_, "preparing", db_.errcode(), ev.error()));
  insert_event_ = std::move(ev).value();
  auto evs = db_.prepare(schema::event_insert_sql(kRowsPerInsert));
  if (!evs) return make_error(schema::describe_sqlite_error(path_, "preparing", db_.errcode(), evs.error()));
  insert_events_ = std::move(evs).value();
  auto code = db_.prepare("INSERT INTO code (rip, bytes) VALUES (?, ?)");
  if (!code) return make_error(schema::describe_sqlite_error(path_, "preparing", db_.errcode(), code.error()));
  insert_code_ = std::move(code).value();
  auto drops = db_.prepare(schema::session_drops_sql());
  if (!drops) return make_error(schema::describe_sqlite_error(path_, "preparing", db_.errcode(), drops.error()));
  update_drops_ = std::move(drops).value();
  return {};
}

Recorder::~Recorder() {
  detach();
  stop_writer();
}

void Recorder::bus_callback(void* self, const es_record* rec) { static_cast<Recorder*>(self)->on_record(*rec); }

void Recorder::attach(probes::ProbeBus& bus, uint32_t kind_mask) {
  detach();
  if (finished_) return;
  bus_ = &bus;
  bus_handle_ = bus.subscribe(kind_mask, &Recorder::bus_callback, this);
}

void Recorder::detach() {
  if (bus_) bus_->unsubscribe(bus_handle_);
  bus_ = nullptr;
  bus_handle_ = 0;
}

void Recorder::on_record(const es_record& rec) { on_records(&rec, 1); }

void Recorder::on_records(const es_record* recs, size_t n) {
  std::unique_lock lk(mu_);
  for (size_t i = 0; i < n; ++i) {
    if (front_.size() >= options_.max_queued) {
      if (options_.drop_when_full) {
        ++stats_.dropped;
        continue;
      }
      work_cv_.notify_one();
      space_cv_.wait(lk, [&] { return front_.size() < options_.max_queued || writer_failed_ || stop_; });
    }
    if (writer_failed_ || stop_) {
      stats_.dropped += n - i;  // counted in sessions.records_dropped
      return;
    }
    front_.push_back(recs[i]);
    if (front_.size() == options_.batch_size) work_cv_.notify_one();
  }
}

void Recorder::writer_main() {
  for (;;) {
    std::unique_lock lk(mu_);
    // A full batch, or whatever is queued once commit_interval_ms has passed: a slow source
    // (an idle guest) still reaches the file, and a killed recording loses at most that much.
    const bool woken = work_cv_.wait_for(lk, std::chrono::milliseconds(options_.commit_interval_ms), [&] {
      return front_.size() >= options_.batch_size || stop_ || flush_requested_;
    });
    if (!woken && front_.empty()) continue;
    if (front_.empty()) {
      if (stop_) return;
      flush_requested_ = false;  // everything queued before flush() is written
      flushed_cv_.notify_all();
      continue;
    }
    std::swap(front_, back_);
    lk.unlock();
    space_cv_.notify_all();
    write_batch(back_);
    back_.clear();
  }
}

int64_t Recorder::code_id_for(const es_record& rec) {
  const size_t n = std::min<size_t>(rec.aux, sizeof rec.bytes);
  if (n == 0) return 0;
  CodeKey key{};
  std::memcpy(key.data(), &rec.rip, 8);
  key[8] = static_cast<unsigned char>(n);
  std::memcpy(key.data() + 9, rec.bytes, n);
  if (auto it = code_ids_.find(key); it != code_ids_.end()) return it->second;
  insert_code_.bind_u64(1, rec.rip);
  insert_code_.bind_blob(2, rec.bytes, static_cast<int>(n));
  const int rc = insert_code_.step();
  insert_code_.reset();
  if (rc != SQLITE_DONE) return 0;
  const int64_t id = sqlite3_last_insert_rowid(db_.get());
  code_ids_.emplace(key, id);
  ++stats_.code_rows;  // writer-only field until stop; read under mu_ after join
  return id;
}

void Recorder::write_batch(std::vector<es_record>& batch) {
  if (batch.empty()) return;
  uint64_t written = 0, rejected = 0, exits = 0;
  std::string error;
  if (auto r = db_.exec("BEGIN"); !r) {
    error = schema::describe_sqlite_error(db_, "writing");
  } else {
    // What the writer keeps of each row stored with id `id`.
    auto stored = [&](const es_record& rec, int64_t id) {
      ++written;
      if (rec.kind == ES_KIND_VM_EXIT) ++exits;
      // Signed, as SQL compares the stored columns.
      const auto time = static_cast<int64_t>(rec.time_ns);
      if (id < last_id_) ids_in_order_ = false;
      if (time < last_time_) times_in_order_ = false;
      last_id_ = id;
      last_time_ = time;
      if (rec.vcpu >= vcpus_.size()) vcpus_.resize(size_t{rec.vcpu} + 1);
      VcpuSpan& v = vcpus_[rec.vcpu];
      v.first = std::min(v.first, id);
      v.last = std::max(v.last, id);
      ++v.count;
      if (steps_) {
        if (rec.id) {
          steps_->on_row(rec);
        } else {
          es_record row = rec;
          row.id = static_cast<uint64_t>(id);
          steps_->on_row(row);
        }
      }
    };
    auto code_id = [&](const es_record& rec) { return (rec.flags & ES_FLAG_BYTES_VALID) ? code_id_for(rec) : 0; };
    // One row by itself: stored, or a duplicate id (counted; the rest of the batch is kept), or
    // the error that stops the batch (false).
    auto store_one = [&](const es_record& rec) {
      db::Stmt& s = insert_event_;
      schema::bind_event_row(s, rec, code_id(rec), row_scratch_[0]);
      const int rc = s.step();
      s.rewind();  // bind_event_row binds every parameter
      if (rc == SQLITE_DONE) {
        stored(rec, rec.id ? static_cast<int64_t>(rec.id) : sqlite3_last_insert_rowid(db_.get()));
      } else if ((rc & 0xFF) == SQLITE_CONSTRAINT) {
        ++rejected;
      } else {
        error = schema::describe_sqlite_error(db_, "writing");
        return false;
      }
      return true;
    };
    // kRowsPerInsert rows at a time through one statement where they carry their ids (a row
    // without one gets its id from SQLite, read back one row at a time).
    size_t i = 0;
    while (i < batch.size()) {
      const size_t n = std::min(kRowsPerInsert, batch.size() - i);
      const bool together = n == kRowsPerInsert && std::all_of(batch.begin() + static_cast<std::ptrdiff_t>(i),
                                                               batch.begin() + static_cast<std::ptrdiff_t>(i + n),
                                                               [](const es_record& x) { return x.id != 0; });
      if (!together) {
        if (!store_one(batch[i])) break;
        ++i;
        continue;
      }
      for (size_t k = 0; k < n; ++k)
        schema::bind_event_row(insert_events_, k, batch[i + k], code_id(batch[i + k]), row_scratch_[k]);
      const int rc = insert_events_.step();
      insert_events_.rewind();
      if (rc == SQLITE_DONE) {
        for (size_t k = 0; k < n; ++k) stored(batch[i + k], static_cast<int64_t>(batch[i + k].id));
      } else if ((rc & 0xFF) == SQLITE_CONSTRAINT) {
        // A duplicate id among them: SQLite backed out the whole statement (the transaction
        // goes on), so they are stored one by one, each duplicate counted.
        bool ok = true;
        for (size_t k = 0; k < n && ok; ++k) ok = store_one(batch[i + k]);
        if (!ok) break;
      } else {
        error = schema::describe_sqlite_error(db_, "writing");
        break;
      }
      i += n;
    }
    // The drop counts so far go into the same transaction, so a killed recording keeps them.
    uint64_t records_dropped = 0;
    {
      std::lock_guard lk(mu_);
      records_dropped = stats_.dropped + rejected;
    }
    const uint64_t source_dropped = source_dropped_.load(std::memory_order_relaxed);
    if (error.empty() && (records_dropped != stored_records_dropped_ || source_dropped != stored_source_dropped_)) {
      schema::SessionRow drops;
      drops.records_dropped = records_dropped;
      drops.source_dropped = source_dropped;
      schema::bind_session_drops(update_drops_, drops);
      const int rc = update_drops_.step();
      update_drops_.reset();
      if (rc != SQLITE_DONE) error = schema::describe_sqlite_error(db_, "writing");
    }
    if (error.empty()) {
      if (auto c = db_.exec("COMMIT"); !c) error = schema::describe_sqlite_error(db_, "writing");
    }
    if (error.empty()) {
      stored_records_dropped_ = records_dropped;
      stored_source_dropped_ = source_dropped;
      checkpoint_if_large();
    }
    if (!error.empty()) (void)db_.exec("ROLLBACK");
  }
  std::function<void()> notify;
  {
    std::lock_guard lk(mu_);
    if (error.empty()) {
      stats_.written += written;
      stats_.dropped += rejected;
      exit_count_ += exits;
      ++stats_.batches;
    } else {
      stats_.dropped += batch.size();
      if (!writer_failed_) {
        writer_error_ = error;
        notify = std::move(on_write_error_);  // once
      }
      writer_failed_ = true;
      space_cv_.notify_all();
      flushed_cv_.notify_all();
    }
  }
  if (notify) notify();
}

void Recorder::set_on_write_error(std::function<void()> fn) {
  std::lock_guard lk(mu_);
  on_write_error_ = std::move(fn);
}

Result<void> Recorder::flush() {
  std::unique_lock lk(mu_);
  if (stop_) return {};
  flush_requested_ = true;
  work_cv_.notify_one();
  flushed_cv_.wait(lk, [&] { return !flush_requested_ || writer_failed_ || stop_; });
  if (writer_failed_) return make_error(writer_error_);
  return {};
}

void Recorder::stop_writer() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  space_cv_.notify_all();
  flushed_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

RecorderStats Recorder::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

Result<void> Recorder::finish(const RunEnd& end) {
  if (finished_) return make_error("recording " + quote_path(path_) + " is already finished.");
  finished_ = true;
  detach();
  stop_writer();
  // Earlier batches are committed (one transaction each) and the session row says
  // incomplete until the end: after any failure the file stays readable. Say so in the same
  // breath as the cause.
  auto stopped = [&](const std::string& cause) {
    if (!options_.kept_on_failure) return make_error("recording stopped: " + cause);
    return make_error("recording stopped: " + cause + " The " + std::to_string(stats_.written) +
                      " events committed before are kept in " + quote_path(path_) +
                      " (the session is marked incomplete).");
  };
  if (writer_failed_) return stopped(writer_error_);

  // From here on what is written must reach the disk before the caller renames the file (the
  // final checkpoint syncs the WAL and the database file with NORMAL).
  if (options_.not_yet_users_file) (void)db_.exec("PRAGMA synchronous=NORMAL");
  // Rows written in id order with times never decreasing need no time index; rows out of id
  // order (a source with its own ids) leave it to one read of the table (create_indexes).
  std::optional<bool> time_sorted;
  if (ids_in_order_) time_sorted = times_in_order_;
  if (auto r = schema::create_indexes(
          db_, [this] { checkpoint_if_large(); }, time_sorted);
      !r)
    return stopped(r.error());
  if (steps_) {
    // The caller's finish step (replay's chains), after the indexes it may read through.
    auto r = steps_->finish();
    steps_.reset();
    if (!r) return stopped(r.error());
  }
  auto up = db_.prepare(schema::session_end_sql());
  if (!up) return stopped(schema::describe_sqlite_error(db_, "finishing"));
  schema::SessionRow row;
  row.ended_at = iso8601_utc(std::chrono::system_clock::now());
  row.end_reason = end.end_reason;
  row.end_detail = end.detail;
  row.event_count = stats_.written;
  row.exit_count = exit_count_;
  row.records_dropped = stats_.dropped;
  row.source_dropped = end.source_dropped;
  schema::bind_session_end(*up, row);
  // The vcpus rows the writer counted: what `SELECT vcpu, min(id), max(id), count(*) FROM events
  // GROUP BY vcpu` returns, since every stored row passed through write_batch.
  auto vcpu_row = db_.prepare(
      "INSERT OR REPLACE INTO vcpus (vcpu, first_event, last_event, event_count) "
      "VALUES (?, ?, ?, ?)");
  if (!vcpu_row) return stopped(schema::describe_sqlite_error(db_, "finishing"));
  auto write_vcpus = [&] {
    for (size_t vcpu = 0; vcpu < vcpus_.size(); ++vcpu) {
      const VcpuSpan& v = vcpus_[vcpu];
      if (v.count == 0) continue;
      vcpu_row->bind(1, static_cast<int64_t>(vcpu));
      vcpu_row->bind(2, v.first);
      vcpu_row->bind(3, v.last);
      vcpu_row->bind_u64(4, v.count);
      const int rc = vcpu_row->step();
      vcpu_row->reset();
      if (rc != SQLITE_DONE) return false;
    }
    return true;
  };
  if (auto r = db_.exec("BEGIN"); !r) return stopped(schema::describe_sqlite_error(db_, "finishing"));
  if (up->step() != SQLITE_DONE || !write_vcpus() || !db_.exec("COMMIT")) {
    std::string msg = schema::describe_sqlite_error(db_, "finishing");
    (void)db_.exec("ROLLBACK");
    return stopped(msg);
  }
  up = db::Stmt();
  vcpu_row = db::Stmt();
  update_drops_ = db::Stmt();
  insert_event_ = db::Stmt();
  insert_events_ = db::Stmt();
  insert_code_ = db::Stmt();
  make_self_contained();
  return {};
}

namespace {

// PRAGMA journal_mode=DELETE; true if the file left WAL mode.
bool switch_to_delete_mode(db::Db& db) {
  (void)db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  auto mode = db.prepare("PRAGMA journal_mode=DELETE");
  return mode && mode->step() == SQLITE_ROW && mode->col_text(0) == "delete";
}

}  // namespace

// A finished recording is one self-contained file (no -wal / -shm beside it), readable from
// read-only media and safe to attach to a bug report (issue #17). Leaving WAL mode needs every
// other connection closed: a reader open at this moment (exitscope info, the GUI, sqlite3)
// makes the switch fail. Short readers are waited for; if one stays, the finished recording is
// written once more as a new rollback-mode file (VACUUM INTO) and renamed over PATH. The
// readers keep the old file (their descriptors, their -wal / -shm) until they close it.
// Best effort: the recording is already complete and readable whatever happens here.
void Recorder::make_self_contained() {
  namespace fs = std::filesystem;
  sqlite3_busy_timeout(db_.get(), 100);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  for (;;) {
    if (switch_to_delete_mode(db_)) return;
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const std::string tmp = path_ + ".finishing";
  std::error_code ec;
  if (fs::symlink_status(tmp, ec).type() == fs::file_type::regular) fs::remove(tmp, ec);
  auto lock = RecordingLock::create(tmp);  // empty, locked like the recording: VACUUM INTO fills it
  if (!lock) return;
  auto vacuum = db_.prepare("VACUUM INTO ?");
  if (!vacuum) return (void)fs::remove(tmp, ec);
  vacuum->bind(1, tmp);
  if (vacuum->step() != SQLITE_DONE) return (void)fs::remove(tmp, ec);
  vacuum = db::Stmt();
  // The old -wal / -shm go first: a reader opening PATH after the rename must never find them
  // beside the new file (SQLite would apply the old file's WAL frames to it). One opening the
  // old file in between reads it as of the last checkpoint, which TRUNCATE / the switch made
  // as complete as the readers allowed.
  // They are moved aside, not removed, until the rename succeeded: frames a reader kept from
  // being checkpointed are still the old file's.
  db_.close();
  bool moved = true;
  for (const char* suffix : {"-wal", "-shm"}) {
    if (!fs::exists(path_ + suffix, ec)) continue;
    fs::rename(path_ + suffix, tmp + "-old" + suffix, ec);
    moved = moved && !ec;
  }
  if (moved) fs::rename(tmp, path_, ec);
  if (!moved || ec) {
    for (const char* suffix : {"-wal", "-shm"}) fs::rename(tmp + "-old" + suffix, path_ + suffix, ec);
    fs::remove(tmp, ec);
    return;
  }
  for (const char* suffix : {"-wal", "-shm"}) fs::remove(tmp + "-old" + suffix, ec);
  lock_ = std::move(lock).value();  // the new file is the recording now
}

// Readers during a recording (info, events, the GUI polling) keep SQLite's automatic PASSIVE
// checkpoints from ever restarting the WAL, so it grew to 595 MB where 21 MB sufficed. Past
// wal_restart_bytes() (64 MiB) a RESTART checkpoint waits briefly for the readers' current transactions
// (they are short) so the next commit writes the WAL from its start again, and
// journal_size_limit (set at open) truncates the file then. A reader that holds its
// transaction longer only delays this to a later batch.
void Recorder::checkpoint_if_large() {
  std::error_code ec;
  const auto wal = std::filesystem::file_size(path_ + "-wal", ec);
  if (ec || wal < wal_restart_bytes()) return;
  sqlite3_busy_timeout(db_.get(), 200);
  (void)sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_RESTART, nullptr, nullptr);
  sqlite3_busy_timeout(db_.get(), 5000);
}

}  // namespace es::recorder
