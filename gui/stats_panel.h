// The statistics panel (View > Statistics): the figures of `exitscope stats` for the open
// recording, from the same library call (replay::compute_stats): the per-reason table of VM
// exits and nested exits (sortable by any column), the exit-to-entry latency histogram, the
// event chains by kind and the slowest chains. Clicking a table row or a histogram bar lists the
// exits it counts (replay::StatsPick, the same pass again); clicking a slow chain opens it.
#pragma once

#include <QWidget>
#include <optional>
#include <vector>

#include "gui/document.h"
#include "replay/stats.h"

class QComboBox;
class QLabel;
class QTableWidget;

namespace es::gui {

class HistogramWidget;

class StatsPanel : public QWidget {
  Q_OBJECT
 public:
  enum Column { kKind, kLevel, kKey, kCount, kCountPct, kTime, kTimePct, kMin, kMax, kMean, kMedian, kP99, kColumnCount };
  explicit StatsPanel(QWidget* parent = nullptr);

  // The figures are computed when the panel is first shown with a recording (or on refresh()).
  void set_document(Document* doc);
  void refresh();
  // The figures on display (nullopt before the first computation or after a failure).
  const std::optional<replay::Stats>& stats() const { return stats_; }
  QTableWidget* exit_table() const { return exits_; }
  QTableWidget* slowest_table() const { return slowest_; }
  HistogramWidget* histogram() const { return histogram_; }
  // What clicking exit-table row `row` (as sorted now) or histogram bucket `bucket` selects.
  void pick_row(int row);
  void pick_bucket(int bucket);
  // Which histogram is drawn: 0 exit-to-entry (VM exits), 1 raise-to-delivery (chains; a bar
  // lists the chains' root records).
  void show_histogram(int which);

 signals:
  // The exits a row or bar counts (a chain bar: the chains' root records), in id order, and a
  // label ("exit EPT_VIOLATION at L1").
  void exits_selected(const QString& what, const std::vector<uint64_t>& ids);
  void chain_selected(quint64 chain_id);

 protected:
  void showEvent(QShowEvent* e) override;

 private:
  void pick(const replay::StatsPick& p, const QString& what);
  Document* doc_ = nullptr;
  bool stale_ = true;
  std::optional<replay::Stats> stats_;
  QLabel* summary_ = nullptr;
  QTableWidget* exits_ = nullptr;
  QTableWidget* chain_kinds_ = nullptr;
  QTableWidget* slowest_ = nullptr;
  HistogramWidget* histogram_ = nullptr;
  QComboBox* histogram_kind_ = nullptr;
};

}  // namespace es::gui
