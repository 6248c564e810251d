// What the recorder runs for its caller beside writing rows: a per-row step on the writer thread
// and a finish step. The recorder sits below replay/ (DESIGN.md "Layers"; issue #19): it never
// includes replay/, so the chains replay/ builds while a recording is written reach it through
// this interface, from the caller (replay::chain_steps(), replay/chain_steps.h, passed in by
// `exitscope record`, `record --kvm`, `import` and the tests).
#pragma once

#include <functional>
#include <memory>
#include <utility>

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

// "This recording gets no chains": rows, indexes and the session only. For the recorder's own
// tests and benchmarks, and for a caller that builds the chains later by reading the file back.
struct NoChains {
  explicit constexpr NoChains() = default;
};
inline constexpr NoChains kNoChains{};

// What a Recorder runs beside writing (RecorderOptions::steps): the caller's factory
// (replay::chain_steps()) or kNoChains, said explicitly. There is no default: a Recorder opened
// without steps used to write a recording with no chains and say nothing (issue #19), so now it
// does not compile, and a factory that is empty (a std::function never set, say a
// KvmRecordOptions::steps nobody filled in) is refused by Recorder::open with one sentence.
class RecordStepsChoice {
 public:
  RecordStepsChoice(RecordStepsFactory factory) : factory_(std::move(factory)) {}  // NOLINT: implicit on purpose
  RecordStepsChoice(NoChains) : no_chains_(true) {}                                // NOLINT: implicit on purpose

  bool no_chains() const { return no_chains_; }
  // Empty only when neither a working factory nor kNoChains was given (Recorder::open refuses it).
  bool missing() const { return !no_chains_ && !factory_; }
  const RecordStepsFactory& factory() const { return factory_; }

 private:
  RecordStepsFactory factory_;
  bool no_chains_ = false;
};

}  // namespace es::recorder
