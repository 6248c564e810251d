#include "render/histogram.h"

#include <algorithm>
#include <cmath>

namespace es::render {

namespace {

// Where the plot goes inside `r` and which buckets it shows.
struct Layout {
  QRectF plot;
  size_t first = 0, last = 0;  // shown buckets [first, last]
  bool empty = true;
  double bar_w = 0;
};

Layout plot_layout(const QRectF& r, const HistogramPicture& h) {
  Layout l;
  l.plot =
      QRectF(r.left() + 78, r.top() + 40, std::max(10.0, r.width() - 78 - 40), std::max(10.0, r.height() - 40 - 64));
  size_t first = 0;
  while (first < h.buckets.size() && h.buckets[first] == 0) ++first;
  if (first == h.buckets.size()) return l;
  size_t last = h.buckets.size() - 1;
  while (last > first && h.buckets[last] == 0) --last;
  l.first = first;
  l.last = last;
  l.empty = false;
  // At most 120 px a bar: one or two buckets would otherwise fill the plot.
  l.bar_w = std::min(120.0, l.plot.width() / static_cast<double>(last - first + 1));
  return l;
}

// A count axis step of 1, 2 or 5 times a power of ten giving at most about 5 ticks.
uint64_t tick_step(uint64_t peak) {
  uint64_t step = 1;
  for (;;) {
    for (uint64_t m : {1, 2, 5})
      if (peak / (step * m) <= 5) return step * m;
    step *= 10;
  }
}

QString label(uint64_t ns) { return QString::fromStdString(replay::short_duration(ns)); }

}  // namespace

void paint_histogram(QPainter& p, const QRectF& r, const HistogramPicture& h) {
  p.save();
  p.setRenderHint(QPainter::Antialiasing, false);
  p.fillRect(r, Qt::white);
  const Layout l = plot_layout(r, h);
  QFont font = p.font();
  font.setPixelSize(12);
  p.setFont(font);
  const QColor ink(0x20, 0x20, 0x20), grid(0xe0, 0xe0, 0xe0);
  QFont bold = font;
  bold.setBold(true);
  bold.setPixelSize(13);
  p.setFont(bold);
  p.setPen(ink);
  p.drawText(QRectF(r.left() + 8, r.top() + 6, r.width() - 16, 24), Qt::AlignLeft | Qt::AlignVCenter, h.title);
  p.setFont(font);
  // x axis label under the bucket edges; y axis label turned along the axis.
  const QRectF x_box(r.left() + 8, r.bottom() - 24, r.width() - 16, 20);
  p.drawText(x_box, Qt::AlignHCenter | Qt::AlignVCenter,
             p.fontMetrics().elidedText(h.x_label, Qt::ElideRight, static_cast<int>(x_box.width())));
  p.save();
  p.translate(r.left() + 14, l.plot.center().y());
  p.rotate(-90);
  p.drawText(QRectF(-l.plot.height() / 2, -10, l.plot.height(), 20), Qt::AlignCenter, h.y_label);
  p.restore();
  if (l.empty) {
    p.setPen(QColor(0x70, 0x70, 0x70));
    p.drawText(l.plot, Qt::AlignCenter, QStringLiteral("no time known: nothing to draw"));
    p.drawRect(l.plot);
    p.restore();
    return;
  }
  uint64_t peak = 1;
  for (size_t i = l.first; i <= l.last; ++i) peak = std::max(peak, h.buckets[i]);
  const uint64_t step = tick_step(peak);
  const uint64_t top = (peak + step - 1) / step * step;
  auto y_of = [&](uint64_t n) {
    return l.plot.bottom() - l.plot.height() * static_cast<double>(n) / static_cast<double>(top);
  };
  // Count ticks and grid lines.
  for (uint64_t n = 0; n <= top; n += step) {
    const double y = y_of(n);
    p.setPen(grid);
    p.drawLine(QPointF(l.plot.left(), y), QPointF(l.plot.right(), y));
    p.setPen(ink);
    p.drawLine(QPointF(l.plot.left() - 4, y), QPointF(l.plot.left(), y));
    p.drawText(QRectF(l.plot.left() - 62, y - 9, 56, 18), Qt::AlignRight | Qt::AlignVCenter, QString::number(n));
  }
  // Bars, each with its count above it.
  const size_t n_bars = l.last - l.first + 1;
  for (size_t i = l.first; i <= l.last; ++i) {
    const double x = l.plot.left() + l.bar_w * static_cast<double>(i - l.first);
    const QRectF bar(x + 1, y_of(h.buckets[i]), std::max(1.0, l.bar_w - 2), l.plot.bottom() - y_of(h.buckets[i]));
    const bool hl = static_cast<int>(i) == h.highlight;
    p.fillRect(bar, hl ? QColor(0xe0, 0x80, 0x10) : QColor(0x3a, 0x6e, 0xa5));
    if (h.buckets[i] && l.bar_w >= 22) {
      p.setPen(ink);
      p.drawText(QRectF(x, bar.top() - 16, l.bar_w, 14), Qt::AlignHCenter | Qt::AlignBottom,
                 QString::number(h.buckets[i]));
    }
  }
  // Bucket edges: every edge while they fit (about 44 px a label), else every k-th.
  const size_t every = std::max<size_t>(1, static_cast<size_t>(std::ceil(44.0 / std::max(1.0, l.bar_w))));
  p.setPen(ink);
  for (size_t k = 0; k <= n_bars; k += every) {
    const double x = l.plot.left() + l.bar_w * static_cast<double>(k);
    p.drawLine(QPointF(x, l.plot.bottom()), QPointF(x, l.plot.bottom() + 4));
    p.drawText(QRectF(x - 30, l.plot.bottom() + 5, 60, 16), Qt::AlignHCenter | Qt::AlignTop,
               label(replay::histogram_from_ns(l.first + k)));
  }
  p.drawLine(l.plot.bottomLeft(), l.plot.bottomRight());
  p.drawLine(l.plot.bottomLeft(), l.plot.topLeft());
  p.restore();
}

int histogram_bucket_at(const QRectF& r, const HistogramPicture& h, QPointF pos) {
  const Layout l = plot_layout(r, h);
  if (l.empty || pos.x() < l.plot.left() || pos.x() >= l.plot.right() || pos.y() < l.plot.top() ||
      pos.y() > l.plot.bottom())
    return -1;
  const size_t i = l.first + static_cast<size_t>((pos.x() - l.plot.left()) / l.bar_w);
  return i <= l.last ? static_cast<int>(i) : -1;
}

std::optional<QPointF> histogram_bar_foot(const QRectF& r, const HistogramPicture& h, int bucket) {
  const Layout l = plot_layout(r, h);
  if (l.empty || bucket < static_cast<int>(l.first) || bucket > static_cast<int>(l.last)) return std::nullopt;
  const double x = l.plot.left() + l.bar_w * (static_cast<double>(bucket - static_cast<int>(l.first)) + 0.5);
  return QPointF(x, l.plot.bottom() - 2);
}

HistogramPicture histogram_picture(const replay::Stats& s, HistogramKind kind, const QString& recording) {
  HistogramPicture h;
  uint64_t n = 0;
  if (kind == HistogramKind::Exit) {
    h.buckets = s.histogram;
    for (uint64_t b : h.buckets) n += b;
    h.title = QStringLiteral("Exit-to-entry time: %1 VM exits with a known time").arg(n);
    h.x_label = QStringLiteral("time outside the guest, exit -> entry (log2 buckets; ns, us, ms)");
    h.y_label = QStringLiteral("VM exits");
  } else {
    h.buckets = s.chain_histogram;
    for (uint64_t b : h.buckets) n += b;
    h.title = QStringLiteral("Raise-to-delivery time: %1 delivered event chains").arg(n);
    h.x_label = QStringLiteral("raise -> delivery time (log2 buckets; ns, us, ms)");
    h.y_label = QStringLiteral("event chains");
  }
  if (!recording.isEmpty()) h.title += QString::fromUtf8(" \xe2\x80\x94 ") + recording;
  return h;
}

}  // namespace es::render
