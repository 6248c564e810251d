// SVG / PNG pictures of the timeline, drawn by TimelinePainter: File > Export in the GUI and
// `exitscope-gui --export svg|png` (what `exitscope export --format svg|png` runs).
#pragma once

#include <QByteArray>
#include <QSize>
#include <QString>
#include <QStringList>
#include <optional>

#include "gui/document.h"

namespace es::gui {

struct ImageOptions {
  QString format = QStringLiteral("svg");  // "svg" or "png"
  std::optional<uint64_t> chain, from_ns, to_ns;
  std::optional<uint16_t> vcpu;
  int width = 1600;
  int height = 0;     // 0 = from the number of lanes
  QString histogram;  // "exit" or "chain": the latency histogram (stats_histogram.h) instead of the timeline
};

QByteArray render_scene(const TimelineScene& scene, QSize size, const QString& format);
// The scene for the options: the window (default: the chain's span with a margin, else the
// whole session), the chain's arcs, the vCPU's lanes. Error sentence in `error` on failure.
QByteArray render_timeline(Document& doc, const ImageOptions& opt, QString& error);
QSize default_image_size(const Document& doc, const ImageOptions& opt);

// `exitscope-gui --export FORMAT DB -o FILE [--chain N] [--from T] [--to T] [--vcpu N]
// [--width W] [--height H]`; args exclude the program name. Returns the exit code (0, or 2
// with one sentence on stderr).
int export_command(const QStringList& args);

}  // namespace es::gui
