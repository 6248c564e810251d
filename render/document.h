// An open recording as the pictures see it: the replay::Recording plus what every view shares
// (extent, lanes, violations, the chain table state) and the timeline scene builder used by
// the GUI's widget and by the SVG / PNG exports alike. All data comes from es_replay; Qt only
// for its strings.
#pragma once

#include <QString>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "render/timeline_painter.h"
#include "replay/browse.h"
#include "replay/recording.h"

namespace es::render {

class Document {
 public:
  // Opens the recording; on failure returns nullptr and sets `error` to the replay library's sentence.
  static std::unique_ptr<Document> open(const QString& path, QString& error);

  replay::Recording& recording() { return rec_; }
  const replay::EventSpan& span() const { return span_; }
  const std::vector<replay::Lane>& lanes() const { return lanes_; }
  const std::vector<replay::Event>& violations() const { return violations_; }
  bool chains_materialized() const { return chains_materialized_; }
  // Records lost while recording (the session's drop counts).
  const replay::DropCounts& drops() const { return drops_; }
  // What opening it noted (an older schema read through a migrated copy); empty if nothing.
  const QString& open_notice() const { return open_notice_; }
  QString path() const { return QString::fromStdString(rec_.path()); }

  std::optional<replay::Event> event(uint64_t id);
  // The times of a chain's first and last member in time (replay::chain_time_extent); nullopt if
  // there is no such chain.
  std::optional<std::pair<uint64_t, uint64_t>> chain_extent(uint64_t chain_id);
  // A chain of at most this many members is drawn whole; a longer one by its members in view,
  // sampled to this many (replay::chain_marks).
  static constexpr uint64_t kChainMarks = 4096;

  // Builds the scene for [from_ns, to_ns]: marks (at most max_marks, sampled above that),
  // the chain's members for arcs, violations, the overview of the whole session.
  TimelineScene scene(uint64_t from_ns, uint64_t to_ns, std::optional<uint64_t> chain, std::optional<uint64_t> cursor,
                      std::optional<uint16_t> vcpu = std::nullopt, uint64_t max_marks = 20000);

 private:
  explicit Document(replay::Recording rec) : rec_(std::move(rec)) {}
  QString open_notice_;
  replay::Recording rec_;
  replay::EventSpan span_;
  std::vector<replay::Lane> lanes_;
  std::vector<replay::Event> violations_;
  std::vector<replay::Event> overview_;
  bool chains_materialized_ = false;
  replay::DropCounts drops_;
  // The last chain drawn whole (at most kChainMarks members), kept for the next repaint.
  uint64_t cached_chain_ = 0;
  std::vector<replay::Event> cached_members_;
};

}  // namespace es::render
