// The latency histogram as a picture: log2 time buckets (replay::histogram_from_ns / _to_ns, the
// buckets of `exitscope stats --histogram`) on the x axis, counts on the y axis. One painter for
// the stats panel's widget and for `exitscope export --format svg|png --histogram exit|chain`.
#pragma once

#include <QPainter>
#include <QRectF>
#include <QString>
#include <QWidget>
#include <cstdint>
#include <vector>

#include "gui/document.h"
#include "replay/stats.h"

namespace es::gui {

struct HistogramPicture {
  QString title;                  // top line: what is counted and in which recording
  QString x_label;                // "exit-to-entry time (VM exit -> next VM entry), log2 buckets"
  QString y_label;                // "VM exits"
  std::vector<uint64_t> buckets;  // replay::Stats::histogram or ::chain_histogram
  int highlight = -1;             // a bucket drawn selected, -1 = none
};

// Draws the histogram into `r`: bars from the first to the last non-empty bucket, bucket
// edges under the bars, count ticks on the left, both axes labelled with their units.
void paint_histogram(QPainter& p, const QRectF& r, const HistogramPicture& h);
// The bucket whose bar (or the column above it) is under `pos` when drawn into `r`, or -1.
int histogram_bucket_at(const QRectF& r, const HistogramPicture& h, QPointF pos);

// Which histogram `exitscope export --histogram` draws.
enum class HistogramKind : uint8_t { Exit, Chain };
// The histogram of a recording (figures from replay::compute_stats, as `stats` computes them),
// as SVG or PNG bytes; `error` gets one sentence on failure.
QByteArray render_histogram(Document& doc, HistogramKind kind, const replay::StatsOptions& opt, QSize size,
                            const QString& format, QString& error);
HistogramPicture histogram_picture(const replay::Stats& s, HistogramKind kind, const QString& recording);

// The histogram as a widget: click a bar to pick its bucket.
class HistogramWidget : public QWidget {
  Q_OBJECT
 public:
  explicit HistogramWidget(QWidget* parent = nullptr);
  void set_picture(HistogramPicture h);
  const HistogramPicture& picture() const { return h_; }
  // Where bucket i's bar is drawn (its centre), for tests that click it; null point if none.
  QPoint bar_center(int bucket) const;

 signals:
  void bucket_clicked(int bucket);

 protected:
  void paintEvent(QPaintEvent*) override;
  void mousePressEvent(QMouseEvent*) override;
  QSize sizeHint() const override { return {520, 260}; }

 private:
  HistogramPicture h_;
};

}  // namespace es::gui
