#include "render/image.h"

#include <QBuffer>
#include <QFileInfo>
#include <QImage>
#include <QPainter>
#include <QSvgGenerator>
#include <algorithm>

namespace es::render {

QByteArray render_scene(const TimelineScene& scene, QSize size, const QString& format) {
  QByteArray bytes;
  QBuffer buf(&bytes);
  buf.open(QIODevice::WriteOnly);
  TimelinePainter painter;
  if (format == QLatin1String("svg")) {
    QSvgGenerator gen;
    gen.setOutputDevice(&buf);
    gen.setSize(size);
    gen.setViewBox(QRect(QPoint(0, 0), size));
    gen.setTitle(scene.title.isEmpty() ? QStringLiteral("exitscope timeline") : scene.title);
    gen.setDescription(QStringLiteral("exitscope timeline: lanes per vCPU and guest level"));
    QPainter p(&gen);
    painter.paint(p, QRectF(QPointF(0, 0), QSizeF(size)), scene);
    p.end();
  } else {
    QImage img(size, QImage::Format_ARGB32);
    img.fill(Qt::white);
    {
      QPainter p(&img);
      painter.paint(p, QRectF(QPointF(0, 0), QSizeF(size)), scene);
    }
    img.save(&buf, "PNG");
  }
  return bytes;
}

QSize default_image_size(const Document& doc, const ImageOptions& opt) {
  size_t lanes = 0;
  for (const replay::Lane& l : doc.lanes())
    if (!opt.vcpu || l.vcpu == *opt.vcpu) ++lanes;
  const int h = opt.height > 0 ? opt.height : std::max(360, 200 + 100 * static_cast<int>(std::max<size_t>(lanes, 1)));
  return QSize(opt.width > 0 ? opt.width : 1600, h);
}

QByteArray render_timeline(Document& doc, const ImageOptions& opt, QString& error) {
  uint64_t from = doc.span().first_time_ns, to = std::max(doc.span().last_time_ns, from + 1);
  QString title = QStringLiteral("exitscope: ") + QFileInfo(doc.path()).fileName();
  if (opt.chain) {
    auto row = replay::chain_row(doc.recording(), *opt.chain);
    const auto extent = doc.chain_extent(*opt.chain);
    if (!extent) {
      error = QStringLiteral("no chain %1 in '%2'; run 'exitscope chains %2' to list the chains.")
                  .arg(*opt.chain)
                  .arg(doc.path());
      return {};
    }
    const auto [a, b] = *extent;
    const uint64_t margin = std::max<uint64_t>((b - a) / 5, 100);
    from = a > margin ? a - margin : 0;
    to = b + margin;
    title += QStringLiteral(", chain %1").arg(*opt.chain);
    if (row && *row)
      title += QStringLiteral(": ") + QString::fromStdString(replay::chain_row_event_text(**row)) +
               QStringLiteral(", ") + QString::fromStdString((*row)->outcome);
  }
  if (opt.from_ns) from = *opt.from_ns;
  if (opt.to_ns) to = *opt.to_ns;
  if (to <= from) to = from + 1;
  if (opt.vcpu) title += QStringLiteral(", vCPU %1").arg(*opt.vcpu);
  TimelineScene scene = doc.scene(from, to, opt.chain, std::nullopt, opt.vcpu);
  scene.title = title;
  return render_scene(scene, default_image_size(doc, opt), opt.format);
}

QByteArray render_histogram(Document& doc, HistogramKind kind, const replay::StatsOptions& opt, QSize size,
                            const QString& format, QString& error) {
  replay::StatsOptions o = opt;
  o.chains = kind == HistogramKind::Chain;
  auto st = replay::compute_stats(doc.recording(), o);
  if (!st) {
    error = QString::fromStdString(st.error());
    return {};
  }
  const HistogramPicture h = histogram_picture(*st, kind, QFileInfo(doc.path()).fileName());
  QByteArray bytes;
  QBuffer buf(&bytes);
  buf.open(QIODevice::WriteOnly);
  const QRectF area(QPointF(0, 0), QSizeF(size));
  if (format == QLatin1String("svg")) {
    QSvgGenerator gen;
    gen.setOutputDevice(&buf);
    gen.setSize(size);
    gen.setViewBox(QRect(QPoint(0, 0), size));
    gen.setTitle(h.title);
    gen.setDescription(QStringLiteral("exitscope latency histogram"));
    QPainter p(&gen);
    paint_histogram(p, area, h);
  } else {
    QImage img(size, QImage::Format_ARGB32);
    img.fill(Qt::white);
    {
      QPainter p(&img);
      paint_histogram(p, area, h);
    }
    img.save(&buf, "PNG");
  }
  return bytes;
}

QByteArray render_image(const QString& db, const ImageOptions& opt, QString& error) {
  auto doc = Document::open(db, error);
  if (!doc) return {};
  if (opt.histogram.isEmpty()) return render_timeline(*doc, opt, error);
  if (opt.chain) {
    error = QStringLiteral("'--histogram' and '--chain' do not go together.");
    return {};
  }
  replay::StatsOptions so;
  so.vcpu = opt.vcpu;
  so.from_ns = opt.from_ns;
  so.to_ns = opt.to_ns;
  const QSize size(opt.width > 0 ? opt.width : 1000, opt.height > 0 ? opt.height : 560);
  return render_histogram(*doc, opt.histogram == QLatin1String("exit") ? HistogramKind::Exit : HistogramKind::Chain, so,
                          size, opt.format, error);
}

}  // namespace es::render
