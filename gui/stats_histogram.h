// The latency histogram as a widget in the stats panel, drawn by render/'s paint_histogram (the
// picture `exitscope export --format svg|png --histogram exit|chain` writes); click a bar to pick
// its bucket.
#pragma once

#include <QPoint>
#include <QWidget>

#include "render/histogram.h"

namespace es::gui {

using render::histogram_picture;
using render::HistogramKind;
using render::HistogramPicture;

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
