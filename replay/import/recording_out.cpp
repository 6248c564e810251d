#include "replay/import/recording_out.h"

#include <filesystem>
#include <system_error>

#include "probes/recorder/output_file.h"
#include "replay/chain_steps.h"
#include "schema/session_row.h"
#include "schema/sqlite_db.h"

namespace es::import {

void remove_db_files(const std::string& p) {
  std::error_code ec;
  // Only regular files: a FIFO, device or symlink under one of these names is not ours to
  // unlink (RELIABILITY.md, "Files from strangers"); the Recorder then refuses it by name.
  for (const char* s : {"", "-wal", "-shm", "-journal"})
    if (std::filesystem::is_regular_file(std::filesystem::symlink_status(p + s, ec)))
      std::filesystem::remove(p + s, ec);
}

Result<PartialRecording> PartialRecording::create(const std::string& db, const recorder::SessionStart& info,
                                                  bool force) {
  std::error_code ec;
  if (std::filesystem::exists(db, ec) && !force)
    return Error{"recording '" + db + "' already exists; pass --force to overwrite it or choose another name."};
  PartialRecording p;
  p.db_ = db;
  p.partial_ = db + ".partial";
  p.force_ = force;
  remove_db_files(p.partial_);
  recorder::RecorderOptions options{.steps = replay::chain_steps()};
  options.kept_on_failure = false;    // a failed import removes DB.partial (commit)
  options.not_yet_users_file = true;  // renamed to DB only once finished (commit)
  auto rec = recorder::Recorder::open(p.partial_, info, true, options);
  if (!rec) return Error{rec.error()};
  p.rec_ = std::move(*rec);
  return p;
}

PartialRecording::~PartialRecording() {
  if (!rec_) return;
  rec_.reset();
  remove_db_files(partial_);
}

Result<void> PartialRecording::commit(const recorder::RunEnd& end, const SessionUpdate& update) {
  auto fail = [&](std::string msg) -> Result<void> {
    rec_.reset();
    remove_db_files(partial_);
    return Error{msg + " Nothing was imported: '" + partial_ + "' was removed and '" + db_ + "' " +
                 (std::filesystem::exists(db_) ? "was left as it was." : "was not created.")};
  };
  if (auto fin = rec_->finish(end); !fin) return fail(fin.error());
  rec_.reset();
  if (!update.host.empty() || !update.kernel.empty() || !update.config_json.empty() || !update.guest_hash.empty()) {
    auto db = db::Db::open(partial_, SQLITE_OPEN_READWRITE);
    if (!db) return fail("cannot reopen '" + partial_ + "' to store the import's summary: " + db.error() + ".");
    auto st = db->prepare(schema::session_summary_sql());
    if (!st) return fail("cannot store the import's summary in '" + partial_ + "': " + st.error() + ".");
    schema::bind_session_summary(*st, update.host, update.kernel, update.config_json, update.guest_hash);
    if (st->step() != SQLITE_DONE)
      return fail("cannot store the import's summary in '" + partial_ + "': " + db->errmsg() + ".");
  }
  std::error_code ec;
  // A recording started on DB while this import ran holds its lock: never renamed over.
  if (const std::string holder = recorder::lock_holder(db_); !holder.empty())
    return fail(recorder::in_progress_sentence(db_, holder));
  if (force_) remove_db_files(db_);
  std::filesystem::rename(partial_, db_, ec);
  if (ec) {
    remove_db_files(partial_);
    return Error{"cannot rename '" + partial_ + "' to '" + db_ + "': " + ec.message() + "; check the directory."};
  }
  for (const char* s : {"-wal", "-shm", "-journal"}) std::filesystem::remove(partial_ + s, ec);
  return {};
}

}  // namespace es::import
