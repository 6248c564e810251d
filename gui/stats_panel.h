// The statistics panel (View > Statistics): the figures of `exitscope stats` for the open
// recording, from the same library call (replay::compute_stats): the per-reason table of VM
// exits and nested exits (sortable by any column), the exit-to-entry latency histogram, the
// event chains by kind and the slowest chains. Clicking a table row or a histogram bar lists the
// exits it counts (replay::StatsPick, the same pass again); clicking a slow chain opens it.
// Both passes run on a worker thread with their own connection to the recording (18 s on 4.2 M
// events blocked the window): a progress bar and a Cancel button show meanwhile, the window stays
// live, and the figures are those of the same call made on the GUI thread.
#pragma once

#include <QWidget>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "render/document.h"
#include "replay/stats.h"

class QComboBox;
class QLabel;
class QProgressBar;
class QPushButton;
class QTableWidget;
class QTimer;

namespace es::gui {

class HistogramWidget;
struct StatsJob;

class StatsPanel : public QWidget {
  Q_OBJECT
 public:
  enum Column {
    kKind,
    kLevel,
    kKey,
    kCount,
    kCountPct,
    kTime,
    kTimePct,
    kMin,
    kMax,
    kMean,
    kMedian,
    kP99,
    kColumnCount
  };
  explicit StatsPanel(QWidget* parent = nullptr);
  ~StatsPanel() override;

  // The figures are computed when the panel is first shown with a recording (or on refresh()).
  void set_document(render::Document* doc);
  void refresh();
  // A computation (the figures, or the exits a click selects) is running on the worker thread.
  bool busy() const { return job_ != nullptr; }
  // Stops it: its result is dropped (figures: "cancelled", and Compute starts them again).
  void cancel();
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
  // Runs compute_stats(opt) on the worker; `done` gets its result on the GUI thread.
  void start(replay::StatsOptions opt, const QString& doing, std::function<void(Result<replay::Stats>)> done);
  void stop_worker();
  void poll();
  void show_figures(replay::Stats s);
  render::Document* doc_ = nullptr;
  std::shared_ptr<StatsJob> job_;
  std::thread worker_;
  std::function<void(Result<replay::Stats>)> done_;
  QTimer* poll_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QPushButton* action_ = nullptr;  // Cancel while busy; Compute after a cancel or failure
  bool stale_ = true;
  std::optional<replay::Stats> stats_;
  QLabel* summary_ = nullptr;
  QString summary_text_;  // the figures' summary, back after a cancelled click
  QTableWidget* exits_ = nullptr;
  QTableWidget* chain_kinds_ = nullptr;
  QTableWidget* slowest_ = nullptr;
  HistogramWidget* histogram_ = nullptr;
  QComboBox* histogram_kind_ = nullptr;
};

}  // namespace es::gui
