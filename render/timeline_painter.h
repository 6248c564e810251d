// Draws a timeline onto any QPainter: the GUI widget, a QImage (PNG export) and a
// QSvgGenerator (SVG export) all use this one class, so a picture in a bug report looks like
// the GUI. Layout, top to bottom: title, overview strip of the whole session with the
// current window, one lane per (vCPU, guest level) with exits / injections / deliveries /
// decisions / raises, the selected chain as arcs between cause and effect, violations, the
// time axis, the legend. Deterministic: the same scene and size give the same drawing.
// Every word on it and every decoded bit comes from replay/ (format.h, browse.h).
#pragma once

#include <QColor>
#include <QPainter>
#include <QRectF>
#include <QString>
#include <optional>
#include <vector>

#include "replay/browse.h"
#include "replay/recording.h"

namespace es::render {

struct TimelineScene {
  uint64_t from_ns = 0, to_ns = 1;                  // the window drawn
  uint64_t session_from_ns = 0, session_to_ns = 1;  // the whole session (overview strip)
  std::vector<replay::Lane> lanes;
  std::vector<replay::Event> events;      // marks in the window, by id
  bool sampled = false;                   // events is an even sample of a denser window
  bool chain_sampled = false;             // chain holds an even sample of its members in the window
  uint64_t chain_in_window = 0;           // the chain's members in the window (at least, when sampled)
  uint64_t window_count = 0;              // events in the window (approximate when sampled)
  uint64_t chain_id = 0;                  // the selected chain (0 = none)
  std::vector<replay::Event> chain;       // its members, by id
  std::vector<replay::Event> violations;  // checker findings
  std::vector<replay::Event> overview;    // an even sample of the whole session
  std::optional<uint64_t> cursor;         // the current event
  QString title;                          // drawn above the overview when not empty
};

// "1.500 µs" style duration / time text with the unit chosen from `step` (ns, µs, ms, s).
QString format_axis_time(uint64_t ns, uint64_t step);
// The colour of an exit reason (a fixed palette indexed by the basic reason).
QColor exit_reason_color(uint32_t full_reason);

class TimelinePainter {
 public:
  struct Layout {
    QRectF title, overview, lanes, axis, legend;
    double label_width = 0, lane_height = 0;
  };
  static constexpr double kLabelWidth = 118;

  Layout layout(const QRectF& r, const TimelineScene& s) const;
  void paint(QPainter& p, const QRectF& r, const TimelineScene& s) const;

  // x of a time in the lanes area; time of an x.
  static double x_of(const Layout& l, const TimelineScene& s, uint64_t t);
  static uint64_t time_at(const Layout& l, const TimelineScene& s, double x);
  // The event mark under `pos` (within a few pixels), preferring chain members.
  std::optional<uint64_t> hit(const QRectF& r, const TimelineScene& s, const QPointF& pos) const;
  // The row of s.lanes a record is drawn in, -1 if none: its replay::lane_of lane (a nested
  // exit and a delivery in L2(L1)), or where it was recorded when the scene lacks that lane.
  static int lane_index(const TimelineScene& s, const es_record& r);

 private:
  QPointF mark_pos(const Layout& l, const TimelineScene& s, const es_record& r) const;
  void paint_overview(QPainter& p, const Layout& l, const TimelineScene& s) const;
  void paint_lanes(QPainter& p, const Layout& l, const TimelineScene& s) const;
  void paint_marks(QPainter& p, const Layout& l, const TimelineScene& s) const;
  void paint_chain(QPainter& p, const Layout& l, const TimelineScene& s) const;
  void paint_axis(QPainter& p, const Layout& l, const TimelineScene& s) const;
  void paint_legend(QPainter& p, const Layout& l, const TimelineScene& s) const;
};

}  // namespace es::render
