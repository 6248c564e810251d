#include "gui/stats_histogram.h"

#include <QMouseEvent>
#include <QPainter>

namespace es::gui {

HistogramWidget::HistogramWidget(QWidget* parent) : QWidget(parent) {
  setObjectName(QStringLiteral("stats_histogram"));
  setMinimumSize(320, 200);
  setCursor(Qt::PointingHandCursor);
  setToolTip(QStringLiteral("Click a bar to list its exits in the event table."));
}

void HistogramWidget::set_picture(HistogramPicture h) {
  h_ = std::move(h);
  update();
}

QPoint HistogramWidget::bar_center(int bucket) const {
  const auto at = render::histogram_bar_foot(QRectF(rect()), h_, bucket);
  return at ? at->toPoint() : QPoint();
}

void HistogramWidget::paintEvent(QPaintEvent*) {
  QPainter p(this);
  render::paint_histogram(p, QRectF(rect()), h_);
}

void HistogramWidget::mousePressEvent(QMouseEvent* e) {
  const int b = render::histogram_bucket_at(QRectF(rect()), h_, e->position());
  if (b < 0 || h_.buckets[static_cast<size_t>(b)] == 0) return;
  h_.highlight = b;
  update();
  emit bucket_clicked(b);
}

}  // namespace es::gui
