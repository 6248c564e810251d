// SVG / PNG pictures of the timeline (TimelinePainter) and of the latency histograms
// (paint_histogram): the GUI's File > Export, `exitscope-gui --export` and, through the module
// exitscope-render.so (module.cpp), `exitscope export --format svg|png`. The same recording and
// options give the same bytes.
#pragma once

#include <QByteArray>
#include <QSize>
#include <QString>
#include <optional>

#include "render/document.h"
#include "render/histogram.h"
#include "replay/stats.h"

namespace es::render {

struct ImageOptions {
  QString format = QStringLiteral("svg");  // "svg" or "png"
  std::optional<uint64_t> chain, from_ns, to_ns;
  std::optional<uint16_t> vcpu;
  int width = 1600;   // 0 = the picture's own default (1600 for a timeline, 1000 for a histogram)
  int height = 0;     // 0 = from the number of lanes (timeline), 560 (histogram)
  QString histogram;  // "exit" or "chain": the latency histogram (histogram.h) instead of the timeline
};

QByteArray render_scene(const TimelineScene& scene, QSize size, const QString& format);
// The scene for the options: the window (default: the chain's span with a margin, else the
// whole session), the chain's arcs, the vCPU's lanes. Error sentence in `error` on failure.
QByteArray render_timeline(Document& doc, const ImageOptions& opt, QString& error);
QSize default_image_size(const Document& doc, const ImageOptions& opt);
// The histogram of a recording (figures from replay::compute_stats, as `stats` computes them),
// as SVG or PNG bytes; `error` gets one sentence on failure.
QByteArray render_histogram(Document& doc, HistogramKind kind, const replay::StatsOptions& opt, QSize size,
                            const QString& format, QString& error);
// Opens the recording `db` and draws what the options ask for: the histogram when
// opt.histogram is set (opt.chain must not be), else the timeline. Empty bytes and one sentence
// in `error` on failure.
QByteArray render_image(const QString& db, const ImageOptions& opt, QString& error);

}  // namespace es::render
