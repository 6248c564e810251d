// What the recorder runs for its caller beside writing rows: a per-row step on the writer thread
// and a finish step. The recorder sits below replay/ (DESIGN.md "Layers"; issue #19): it never
// includes replay/, so the chains replay/ builds while a recording is written reach it through
// this interface, from the caller (replay::chain_steps(), replay/chain_steps.h, passed in by
// `exitscope record`, `record --kvm`, `import` and the tests).
#pragma once

#include <functional>
#include <memory>

#include "exitscope/record.h"
#include "schema/result.h"
#include "schema/sqlite_db.h"

namespace es::recorder {

class RecordSteps {
 public:
  virtual ~RecordSteps() = default;
  // Writer thread, for every row just inserted into events, in insertion order; row.id is the
  // row's id (the source's, or the one SQLite assigned). Runs inside the batch's transaction on
  // the recorder's connection: it may read the file (rows of this batch included), but must not
  // write, begin or commit.
  virtual void on_row(const es_record& row) = 0;
  // Recorder::finish(), after every row is written and the indexes exist, before the session
  // is marked complete. May write its own tables in its own transactions. An error stops the
  // finish: the session stays incomplete and the error names the cause.
  virtual Result<void> finish() = 0;
};

// Makes the steps of one recording; `db` is the recorder's connection to the file being written,
// valid until the steps are destroyed (the recorder destroys them before it closes the file).
// Called once, from Recorder::open, on the caller's thread.
using RecordStepsFactory = std::function<std::unique_ptr<RecordSteps>(db::Db& db)>;

}  // namespace es::recorder
