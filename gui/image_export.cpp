#include "gui/image_export.h"

#include <QFile>
#include <cstdio>

#include "render/image.h"
#include "replay/names.h"

namespace es::gui {

int export_command(const QStringList& args) {
  auto fail = [](const QString& msg) {
    std::fprintf(stderr, "exitscope-gui --export: %s\n", msg.toLocal8Bit().constData());
    return 2;
  };
  render::ImageOptions opt;
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
  const QByteArray bytes = render::render_image(db, opt, error);
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
