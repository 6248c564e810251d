// The latency histogram as a picture: log2 time buckets (replay::histogram_from_ns / _to_ns, the
// buckets of `exitscope stats --histogram`) on the x axis, counts on the y axis. One painter for
// the GUI's stats panel and for `exitscope export --format svg|png --histogram exit|chain`.
#pragma once

#include <QPainter>
#include <QPointF>
#include <QRectF>
#include <QString>
#include <cstdint>
#include <optional>
#include <vector>

#include "replay/stats.h"

namespace es::render {

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
// A point inside bucket `bucket`'s bar (its centre, just above the x axis) when drawn into `r`;
// nullopt when the bucket is not drawn.
std::optional<QPointF> histogram_bar_foot(const QRectF& r, const HistogramPicture& h, int bucket);

// Which histogram `exitscope export --histogram` draws.
enum class HistogramKind : uint8_t { Exit, Chain };
// The picture of a recording's figures (replay::compute_stats, as `stats` computes them).
HistogramPicture histogram_picture(const replay::Stats& s, HistogramKind kind, const QString& recording);

}  // namespace es::render
