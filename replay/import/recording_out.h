// The recording an import writes: DB.partial through the Recorder, renamed to DB only once
// complete, so a failed or interrupted import leaves nothing behind (internal to replay/import).
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "exitscope/record.h"
#include "probes/recorder/recorder.h"
#include "probes/recorder/session_info.h"
#include "schema/result.h"

namespace es::import {

class PartialRecording {
 public:
  // Refuses an existing DB unless `force`; removes a stale DB.partial.
  static Result<PartialRecording> create(const std::string& db, const recorder::SessionStart& info, bool force);

  void add(const es_record& r) { rec_->on_record(r); }
  void add(const es_record* r, size_t n) { rec_->on_records(r, n); }

  // Session facts only known at the end of a streamed import; empty fields stay as written.
  struct SessionUpdate {
    std::string host, kernel, config_json, guest_hash;
  };
  // Finishes the recording (indexes, chains, complete flag), applies `update`, renames
  // DB.partial to DB. On error DB.partial is removed.
  Result<void> commit(const recorder::RunEnd& end, const SessionUpdate& update = {});

  PartialRecording(PartialRecording&&) noexcept = default;
  PartialRecording& operator=(PartialRecording&&) noexcept = default;
  ~PartialRecording();  // without commit(): DB.partial is removed

 private:
  PartialRecording() = default;
  std::string db_, partial_;
  bool force_ = false;
  std::unique_ptr<recorder::Recorder> rec_;
};

// The SHA-256 of an imported file (recorder::hash_file), computed on its own thread while the
// import reads the file and writes the records; the session gets it at commit
// (SessionUpdate::guest_hash). Start it after any fork: a child copies only the forking thread.
class FileHasher {
 public:
  explicit FileHasher(std::string file)
      : thread_([this, f = std::move(file)] {
          if (auto h = recorder::hash_file(f)) hash_ = *h;
        }) {}
  FileHasher(const FileHasher&) = delete;
  FileHasher& operator=(const FileHasher&) = delete;
  ~FileHasher() {
    if (thread_.joinable()) thread_.join();
  }
  // "sha256:<hex>", or "" when the file could not be read; waits for the thread.
  const std::string& hash() {
    if (thread_.joinable()) thread_.join();
    return hash_;
  }

 private:
  std::string hash_;
  std::thread thread_;  // last: started once hash_ exists
};

// Removes PATH and its -wal / -shm / -journal files, ignoring errors.
void remove_db_files(const std::string& path);

}  // namespace es::import
