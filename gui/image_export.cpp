#include "gui/image_export.h"

#include <QBuffer>
#include <QFile>
#include <QFileInfo>
#include <QImage>
#include <QPainter>
#include <QSvgGenerator>
#include <cstdio>

#include "gui/stats_histogram.h"
#include "replay/names.h"

namespace es::gui {

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
    const auto& members = doc.chain_members(*opt.chain);
    if (members.empty()) {
      error = QStringLiteral("no chain %1 in '%2'; run 'exitscope chains %2' to list the chains.")
                  .arg(*opt.chain)
                  .arg(doc.path());
      return {};
    }
    uint64_t a = members.front().rec.time_ns, b = a;
    for (const auto& e : members) {
      a = std::min<uint64_t>(a, e.rec.time_ns);
      b = std::max<uint64_t>(b, e.rec.time_ns);
    }
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

int export_command(const QStringList& args) {
  auto fail = [](const QString& msg) {
    std::fprintf(stderr, "exitscope-gui --export: %s\n", msg.toLocal8Bit().constData());
    return 2;
  };
  ImageOptions opt;
  opt.width = 0;  // the picture's own default (1600 for a timeline, 1000 for a histogram)
  QString db, output;
  if (args.isEmpty()) return fail(QStringLiteral("missing the format (svg or png)."));
  opt.format = args[0];
  if (opt.format != QLatin1String("svg") && opt.format != QLatin1String("png"))
    return fail(QStringLiteral("unknown format '%1'; use svg or png.").arg(opt.format));
  for (int i = 1; i < args.size(); ++i) {
    const QString& a = args[i];
    auto value = [&](QString& out) {
      if (i + 1 >= args.size()) return false;
      out = args[++i];
      return true;
    };
    QString v;
    if (a == QLatin1String("-o") || a == QLatin1String("--output")) {
      if (!value(output)) return fail(QStringLiteral("'%1' needs a file name or '-'.").arg(a));
    } else if (a == QLatin1String("--chain") || a == QLatin1String("--vcpu") || a == QLatin1String("--width") ||
               a == QLatin1String("--height")) {
      if (!value(v)) return fail(QStringLiteral("'%1' needs a number.").arg(a));
      auto n = replay::parse_uint(v.toStdString());
      if (!n) return fail(QStringLiteral("'%1' needs a number, not '%2'.").arg(a, v));
      if (a == QLatin1String("--chain"))
        opt.chain = *n;
      else if (a == QLatin1String("--vcpu"))
        opt.vcpu = static_cast<uint16_t>(*n);
      else if (*n < 64 || *n > 16384)
        return fail(QStringLiteral("'%1' must be between 64 and 16384 pixels.").arg(a));
      else
        (a == QLatin1String("--width") ? opt.width : opt.height) = static_cast<int>(*n);
    } else if (a == QLatin1String("--histogram")) {
      if (!value(opt.histogram) || (opt.histogram != QLatin1String("exit") && opt.histogram != QLatin1String("chain")))
        return fail(QStringLiteral("'--histogram' needs exit or chain."));
    } else if (a == QLatin1String("--from") || a == QLatin1String("--to")) {
      if (!value(v)) return fail(QStringLiteral("'%1' needs a time.").arg(a));
      auto ns = replay::parse_time_ns(v.toStdString());
      if (!ns) return fail(QStringLiteral("'%1' needs a time such as 1500, 1.5us, 20ms or 2s, not '%2'.").arg(a, v));
      (a == QLatin1String("--from") ? opt.from_ns : opt.to_ns) = *ns;
    } else if (a.startsWith(QLatin1Char('-')) && a != QLatin1String("-")) {
      return fail(QStringLiteral("unknown option '%1'.").arg(a));
    } else if (db.isEmpty()) {
      db = a;
    } else {
      return fail(QStringLiteral("expects one recording file, got '%1' too.").arg(a));
    }
  }
  if (db.isEmpty()) return fail(QStringLiteral("missing the recording file (DB)."));
  if (output.isEmpty()) return fail(QStringLiteral("missing '-o FILE' ('-' for standard output)."));
  QString error;
  auto doc = Document::open(db, error);
  if (!doc) return fail(error);
  QByteArray bytes;
  if (!opt.histogram.isEmpty()) {
    if (opt.chain) return fail(QStringLiteral("'--histogram' and '--chain' do not go together."));
    replay::StatsOptions so;
    so.vcpu = opt.vcpu;
    so.from_ns = opt.from_ns;
    so.to_ns = opt.to_ns;
    const QSize size(opt.width > 0 ? opt.width : 1000, opt.height > 0 ? opt.height : 560);
    bytes = render_histogram(*doc, opt.histogram == QLatin1String("exit") ? HistogramKind::Exit : HistogramKind::Chain,
                             so, size, opt.format, error);
  } else {
    bytes = render_timeline(*doc, opt, error);
  }
  if (bytes.isEmpty()) return fail(error.isEmpty() ? QStringLiteral("could not draw the picture.") : error);
  QFile out;
  const bool ok = output == QLatin1String("-") ? out.open(stdout, QIODevice::WriteOnly)
                                               : (out.setFileName(output), out.open(QIODevice::WriteOnly));
  if (!ok)
    return fail(QStringLiteral("cannot write '%1'; check that its directory exists and is writable.").arg(output));
  if (out.write(bytes) != bytes.size()) return fail(QStringLiteral("could not write '%1' (disk full?).").arg(output));
  out.flush();
  return 0;
}

}  // namespace es::gui
