#include "render/timeline_painter.h"

#include <QFontMetricsF>
#include <QPainterPath>
#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <unordered_map>

#include "replay/format.h"

namespace es::render {

namespace {

// A qualitative palette with enough contrast on white (Tableau 10 + extras).
constexpr std::array<QRgb, 12> kPalette = {0x4e79a7, 0xf28e2b, 0xe15759, 0x76b7b2, 0x59a14f, 0xedc948,
                                           0xb07aa1, 0xff9da7, 0x9c755f, 0x17becf, 0x8c564b, 0x7f7f7f};
const QColor kInjection(0x1f, 0x3a, 0x93);
const QColor kDelivery(0x2c, 0xa0, 0x2c);
const QColor kDecision(0x70, 0x70, 0x70);
const QColor kRaise(0xff, 0x7f, 0x0e);
const QColor kViolation(0xd6, 0x27, 0x28);
const QColor kChain(0xc0, 0x10, 0x80);
const QColor kCursor(0x00, 0x00, 0x00);

// Row of each kind inside a lane, as a fraction of the lane height (marks of one instant
// stack vertically, so a chain's arcs stay visible even when its events share a timestamp).
double kind_row(uint16_t kind) {
  switch (kind) {
    case ES_KIND_RAISE: return 0.20;
    case ES_KIND_DECISION: return 0.36;
    case ES_KIND_VM_ENTRY:
    case ES_KIND_NESTED_ENTRY: return 0.52;
    case ES_KIND_VM_EXIT:
    case ES_KIND_NESTED_EXIT: return 0.66;
    case ES_KIND_DELIVERY: return 0.84;
    default: return 0.92;
  }
}

bool is_exit(uint16_t kind) { return kind == ES_KIND_VM_EXIT || kind == ES_KIND_NESTED_EXIT; }

uint64_t nice_step(uint64_t span, int ticks) {
  const double raw = static_cast<double>(span) / std::max(1, ticks);
  double mag = std::pow(10.0, std::floor(std::log10(std::max(raw, 1.0))));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) return std::max<uint64_t>(1, static_cast<uint64_t>(m * mag));
  return std::max<uint64_t>(1, static_cast<uint64_t>(10 * mag));
}

void triangle(QPainter& p, QPointF c, double r, bool down) {
  QPolygonF t;
  if (down)
    t << QPointF(c.x() - r, c.y() - r) << QPointF(c.x() + r, c.y() - r) << QPointF(c.x(), c.y() + r);
  else
    t << QPointF(c.x() - r, c.y() + r) << QPointF(c.x() + r, c.y() + r) << QPointF(c.x(), c.y() - r);
  p.drawPolygon(t);
}

void diamond(QPainter& p, QPointF c, double r) {
  QPolygonF d;
  d << QPointF(c.x(), c.y() - r) << QPointF(c.x() + r, c.y()) << QPointF(c.x(), c.y() + r) << QPointF(c.x() - r, c.y());
  p.drawPolygon(d);
}

}  // namespace

QColor exit_reason_color(uint32_t full_reason) {
  const uint16_t basic = replay::basic_exit_reason(full_reason);
  // Fixed colours for the reasons this tool is about, the palette for the rest.
  switch (basic) {
    case 48: return QColor(0xe1, 0x57, 0x59);  // EPT_VIOLATION
    case 0: return QColor(0x4e, 0x79, 0xa7);   // EXCEPTION_NMI
    case 1: return QColor(0xf2, 0x8e, 0x2b);   // EXTERNAL_INTERRUPT
    case 30: return QColor(0x76, 0xb7, 0xb2);  // IO_INSTRUCTION
    case 12: return QColor(0x9c, 0x75, 0x5f);  // HLT
    case 7: return QColor(0xed, 0xc9, 0x48);   // INTERRUPT_WINDOW
    case 2: return QColor(0x00, 0x00, 0x00);   // TRIPLE_FAULT
    default: return QColor::fromRgb(kPalette[basic % kPalette.size()]);
  }
}

QString format_axis_time(uint64_t ns, uint64_t step) {
  struct Unit {
    uint64_t scale;
    const char* name;
  };
  static constexpr Unit kUnits[] = {{1'000'000'000, "s"}, {1'000'000, "ms"}, {1'000, "\xc2\xb5s"}, {1, "ns"}};
  const Unit* u = &kUnits[3];
  for (const Unit& c : kUnits)
    if (step * 10 >= c.scale) {
      u = &c;
      break;
    }
  // Enough decimals to tell ticks apart.
  int decimals = 0;
  for (uint64_t s = step; decimals < 3 && s < u->scale * 10 && s % u->scale != 0; s *= 10) ++decimals;
  return QString::number(static_cast<double>(ns) / static_cast<double>(u->scale), 'f', decimals) + " " +
         QString::fromUtf8(u->name);
}

TimelinePainter::Layout TimelinePainter::layout(const QRectF& r, const TimelineScene& s) const {
  Layout l;
  double y = r.top() + 4;
  if (!s.title.isEmpty()) {
    l.title = QRectF(r.left() + 6, y, r.width() - 12, 20);
    y += 22;
  }
  l.label_width = kLabelWidth;
  l.overview = QRectF(r.left() + kLabelWidth, y, r.width() - kLabelWidth - 10, 26);
  y += 34;
  const double legend_h = 40, axis_h = 26;
  const double lanes_h = std::max(20.0, r.bottom() - y - legend_h - axis_h - 4);
  l.lanes = QRectF(r.left() + kLabelWidth, y, r.width() - kLabelWidth - 10, lanes_h);
  l.lane_height = s.lanes.empty() ? lanes_h : std::min(200.0, lanes_h / static_cast<double>(s.lanes.size()));
  if (!s.lanes.empty()) l.lanes.setHeight(l.lane_height * static_cast<double>(s.lanes.size()));
  l.axis = QRectF(l.lanes.left(), l.lanes.bottom(), l.lanes.width(), axis_h);
  l.legend = QRectF(r.left() + 6, l.axis.bottom() + 2, r.width() - 12, legend_h);
  return l;
}

double TimelinePainter::x_of(const Layout& l, const TimelineScene& s, uint64_t t) {
  const double span = static_cast<double>(s.to_ns - s.from_ns);
  return l.lanes.left() + (static_cast<double>(t) - static_cast<double>(s.from_ns)) / span * l.lanes.width();
}

uint64_t TimelinePainter::time_at(const Layout& l, const TimelineScene& s, double x) {
  const double f = (x - l.lanes.left()) / std::max(1.0, l.lanes.width());
  const double t = static_cast<double>(s.from_ns) + f * static_cast<double>(s.to_ns - s.from_ns);
  return t <= 0 ? 0 : static_cast<uint64_t>(t);
}

int TimelinePainter::lane_index(const TimelineScene& s, const es_record& r) {
  const replay::Lane want = replay::lane_of(r);
  for (size_t i = 0; i < s.lanes.size(); ++i)
    if (s.lanes[i] == want) return static_cast<int>(i);
  for (size_t i = 0; i < s.lanes.size(); ++i)
    if (s.lanes[i].holds(r)) return static_cast<int>(i);
  return -1;
}

QPointF TimelinePainter::mark_pos(const Layout& l, const TimelineScene& s, const es_record& r) const {
  const int lane = lane_index(s, r);
  const double top = l.lanes.top() + std::max(0, lane) * l.lane_height;
  return QPointF(x_of(l, s, r.time_ns), top + kind_row(r.kind) * l.lane_height);
}

void TimelinePainter::paint(QPainter& p, const QRectF& r, const TimelineScene& s) const {
  const Layout l = layout(r, s);
  p.save();
  p.setRenderHint(QPainter::Antialiasing, true);
  p.fillRect(r, Qt::white);
  QFont font = p.font();
  font.setPixelSize(12);
  p.setFont(font);
  if (!s.title.isEmpty()) {
    QFont bold = font;
    bold.setBold(true);
    bold.setPixelSize(14);
    p.setFont(bold);
    p.setPen(Qt::black);
    p.drawText(l.title, Qt::AlignLeft | Qt::AlignVCenter, s.title);
    p.setFont(font);
  }
  paint_overview(p, l, s);
  paint_lanes(p, l, s);
  p.save();
  p.setClipRect(l.lanes.adjusted(-6, 0, 6, 0));
  paint_marks(p, l, s);
  paint_chain(p, l, s);
  p.restore();
  paint_axis(p, l, s);
  paint_legend(p, l, s);
  p.restore();
}

void TimelinePainter::paint_overview(QPainter& p, const Layout& l, const TimelineScene& s) const {
  const QRectF o = l.overview;
  p.setPen(QColor(0x55, 0x55, 0x55));
  p.drawText(QRectF(o.left() - l.label_width, o.top(), l.label_width - 8, o.height()),
             Qt::AlignRight | Qt::AlignVCenter, QStringLiteral("session"));
  p.fillRect(o, QColor(0xf3, 0xf3, 0xf3));
  // Density of the sampled session in 1-pixel-ish columns, exits darker.
  const int cols = std::max(1, static_cast<int>(o.width() / 2));
  std::vector<int> all(static_cast<size_t>(cols), 0), exits(static_cast<size_t>(cols), 0);
  const double span = static_cast<double>(s.session_to_ns - s.session_from_ns);
  for (const replay::Event& e : s.overview) {
    const double f = (static_cast<double>(e.rec.time_ns) - static_cast<double>(s.session_from_ns)) / span;
    const int c = std::clamp(static_cast<int>(f * cols), 0, cols - 1);
    ++all[static_cast<size_t>(c)];
    if (is_exit(e.rec.kind)) ++exits[static_cast<size_t>(c)];
  }
  const int peak = std::max(1, *std::max_element(all.begin(), all.end()));
  const double cw = o.width() / cols;
  for (int c = 0; c < cols; ++c) {
    if (!all[static_cast<size_t>(c)]) continue;
    const double h = std::max(2.0, (o.height() - 4) * all[static_cast<size_t>(c)] / peak);
    p.fillRect(QRectF(o.left() + c * cw, o.bottom() - 2 - h, cw, h), QColor(0x9d, 0xb4, 0xd0));
    const double he = (o.height() - 4) * exits[static_cast<size_t>(c)] / peak;
    if (he > 0) p.fillRect(QRectF(o.left() + c * cw, o.bottom() - 2 - he, cw, he), QColor(0x4e, 0x79, 0xa7));
  }
  for (const replay::Event& v : s.violations) {
    const double f = (static_cast<double>(v.rec.time_ns) - static_cast<double>(s.session_from_ns)) / span;
    p.fillRect(QRectF(o.left() + f * o.width() - 1, o.top(), 2, o.height()), kViolation);
  }
  // The current window.
  const double x0 =
      o.left() + (static_cast<double>(s.from_ns) - static_cast<double>(s.session_from_ns)) / span * o.width();
  const double x1 =
      o.left() + (static_cast<double>(s.to_ns) - static_cast<double>(s.session_from_ns)) / span * o.width();
  QRectF view(QPointF(std::clamp(x0, o.left(), o.right()), o.top()),
              QPointF(std::clamp(x1, o.left(), o.right()), o.bottom()));
  if (view.width() < 3) view.adjust(-1.5, 0, 1.5, 0);
  p.setPen(QPen(QColor(0x20, 0x20, 0x20), 1.5));
  p.setBrush(QColor(0x20, 0x40, 0x80, 40));
  p.drawRect(view);
  p.setBrush(Qt::NoBrush);
  p.setPen(QColor(0xbb, 0xbb, 0xbb));
  p.drawRect(o);
}

void TimelinePainter::paint_lanes(QPainter& p, const Layout& l, const TimelineScene& s) const {
  QFont bold = p.font();
  bold.setBold(true);
  for (size_t i = 0; i < s.lanes.size(); ++i) {
    const QRectF lane(l.lanes.left(), l.lanes.top() + static_cast<double>(i) * l.lane_height, l.lanes.width(),
                      l.lane_height);
    p.fillRect(lane, i % 2 ? QColor(0xfa, 0xfa, 0xfa) : QColor(0xf0, 0xf4, 0xf8));
    p.setPen(QColor(0xcc, 0xcc, 0xcc));
    p.drawLine(lane.bottomLeft(), lane.bottomRight());
    p.setPen(Qt::black);
    p.setFont(bold);
    p.drawText(QRectF(l.lanes.left() - l.label_width + 4, lane.top(), l.label_width - 12, lane.height()),
               Qt::AlignRight | Qt::AlignVCenter | Qt::TextWordWrap,
               QString::fromStdString(replay::lane_label(s.lanes[i])));
  }
  QFont f = bold;
  f.setBold(false);
  p.setFont(f);
  if (s.lanes.empty()) {
    p.setPen(Qt::darkGray);
    p.drawText(l.lanes, Qt::AlignCenter, QStringLiteral("no events"));
  }
  // Violations: a red band across the lane at their time.
  for (const replay::Event& v : s.violations) {
    if (v.rec.time_ns < s.from_ns || v.rec.time_ns > s.to_ns) continue;
    const int lane = lane_index(s, v.rec);
    const double top = l.lanes.top() + std::max(0, lane) * l.lane_height;
    const double x = x_of(l, s, v.rec.time_ns);
    p.fillRect(QRectF(x - 3, top, 6, l.lane_height), QColor(0xd6, 0x27, 0x28, 70));
  }
}

void TimelinePainter::paint_marks(QPainter& p, const Layout& l, const TimelineScene& s) const {
  const double h = l.lane_height;
  const double r = std::clamp(h * 0.07, 3.0, 6.0);
  // Many events per pixel: draw each pixel column / kind / lane once (same picture, far fewer shapes).
  const bool dense = s.events.size() > static_cast<size_t>(l.lanes.width()) * 2;
  std::unordered_map<uint64_t, bool> drawn;
  // An exit is drawn as a box from the exit to the next entry of its lane (the time the
  // hypervisor held the vCPU, as Perfetto draws a slice); the entry's x, by exit id.
  std::unordered_map<uint64_t, double> exit_end;
  {
    std::unordered_map<int, const es_record*> open;  // lane -> its last exit without an entry yet
    for (const replay::Event& e : s.events) {
      const int lane = lane_index(s, e.rec);
      if (lane < 0) continue;
      const bool nested = e.rec.kind == ES_KIND_NESTED_EXIT || e.rec.kind == ES_KIND_NESTED_ENTRY;
      const int key = lane * 2 + (nested ? 1 : 0);
      if (is_exit(e.rec.kind)) {
        open[key] = &e.rec;
      } else if (e.rec.kind == ES_KIND_VM_ENTRY || e.rec.kind == ES_KIND_NESTED_ENTRY) {
        if (auto it = open.find(key); it != open.end() && it->second) {
          exit_end[it->second->id] = x_of(l, s, e.rec.time_ns);
          it->second = nullptr;
        }
      }
    }
  }
  for (const replay::Event& e : s.events) {
    const es_record& rec = e.rec;
    const int lane = lane_index(s, rec);
    if (lane < 0) continue;
    const QPointF c = mark_pos(l, s, rec);
    if (dense) {
      const uint64_t key =
          (static_cast<uint64_t>(c.x()) << 24) ^ (static_cast<uint64_t>(lane) << 8) ^
          (is_exit(rec.kind) ? uint64_t{replay::basic_exit_reason(rec.reason)} << 32 : uint64_t{rec.kind} << 40);
      if (!drawn.emplace(key, true).second) continue;
    }
    const double top = l.lanes.top() + lane * h;
    if (is_exit(rec.kind)) {
      p.setPen(Qt::NoPen);
      p.setBrush(exit_reason_color(rec.reason));
      const auto end = exit_end.find(rec.id);
      const double x1 = end != exit_end.end() ? std::max(end->second, c.x() + 3) : c.x() + 3;
      p.drawRect(QRectF(c.x() - 1.5, top + 0.56 * h, x1 - c.x() + 1.5, 0.22 * h));
    } else if (replay::injects_event(rec)) {
      p.setPen(QPen(Qt::white, 0.5));
      p.setBrush(kInjection);
      triangle(p, c, r, true);
    } else if (rec.kind == ES_KIND_DELIVERY) {
      p.setPen(QPen(Qt::white, 0.5));
      p.setBrush(kDelivery);
      p.drawEllipse(c, r, r);
    } else if (rec.kind == ES_KIND_RAISE) {
      p.setPen(QPen(Qt::white, 0.5));
      p.setBrush(kRaise);
      diamond(p, c, r);
    } else if (rec.kind == ES_KIND_DECISION) {
      p.setPen(QPen(kDecision, 1));
      p.drawLine(QPointF(c.x(), c.y() - r * 0.8), QPointF(c.x(), c.y() + r * 0.8));
    } else if (rec.kind == ES_KIND_VM_ENTRY || rec.kind == ES_KIND_NESTED_ENTRY) {
      p.setPen(QPen(QColor(0xa0, 0xa0, 0xc0), 1));
      p.drawLine(QPointF(c.x(), c.y() - r * 0.6), QPointF(c.x(), c.y() + r * 0.6));
    } else if (rec.kind != ES_KIND_VIOLATION) {
      p.setPen(QPen(QColor(0xb0, 0xb0, 0xb0), 1));
      p.drawPoint(c);
    }
  }
  for (const replay::Event& v : s.violations) {
    if (v.rec.time_ns < s.from_ns || v.rec.time_ns > s.to_ns) continue;
    const int lane = lane_index(s, v.rec);
    const QPointF c(x_of(l, s, v.rec.time_ns), l.lanes.top() + std::max(0, lane) * h + 0.1 * h + r);
    p.setPen(QPen(Qt::white, 0.5));
    p.setBrush(kViolation);
    triangle(p, c, r * 1.3, false);
  }
  p.setBrush(Qt::NoBrush);
  if (s.sampled) {
    p.setPen(QColor(0x60, 0x60, 0x60));
    p.drawText(l.lanes.adjusted(4, 2, -4, -2), Qt::AlignRight | Qt::AlignTop,
               QStringLiteral("sampled: %1 of ~%2 events drawn; zoom in for every event")
                   .arg(s.events.size())
                   .arg(s.window_count));
  }
  if (s.chain_sampled) {  // a chain too long to draw whole (replay::chain_marks), one line lower
    p.setPen(kChain.darker(130));
    const double line = QFontMetricsF(p.font()).height();
    p.drawText(l.lanes.adjusted(4, 2 + (s.sampled ? line : 0), -4, -2), Qt::AlignRight | Qt::AlignTop,
               QStringLiteral("chain %1 sampled: %2 of at least %3 members in view drawn; zoom in for every member")
                   .arg(s.chain_id)
                   .arg(s.chain.size())
                   .arg(s.chain_in_window));
  }
}

void TimelinePainter::paint_chain(QPainter& p, const Layout& l, const TimelineScene& s) const {
  const double h = l.lane_height;
  const double r = std::clamp(h * 0.07, 3.0, 6.0);
  if (!s.chain.empty()) {
    std::unordered_map<uint64_t, const replay::Event*> by_id;
    for (const replay::Event& e : s.chain) by_id[e.rec.id] = &e;
    // One arc per causal link inside the chain (cause -> effect), else to the previous member.
    p.setBrush(Qt::NoBrush);
    const replay::Event* prev = nullptr;
    for (const replay::Event& e : s.chain) {
      const replay::Event* from = prev;
      if (auto it = by_id.find(e.rec.cause); it != by_id.end()) from = it->second;
      prev = &e;
      if (!from || lane_index(s, e.rec) < 0 || lane_index(s, from->rec) < 0) continue;
      const QPointF a = mark_pos(l, s, from->rec), b = mark_pos(l, s, e.rec);
      QPainterPath path(a);
      const double dx = b.x() - a.x(), dy = b.y() - a.y();
      // Bulge up for links forward in time, sideways for links at one instant.
      const double bulge = std::abs(dx) < 4 ? 18 : std::min(40.0, 0.25 * std::abs(dx) + 8);
      const QPointF ctrl = std::abs(dx) < 4 ? QPointF(a.x() + bulge, (a.y() + b.y()) / 2)
                                            : QPointF((a.x() + b.x()) / 2, std::min(a.y(), b.y()) - bulge);
      path.quadTo(ctrl, b);
      p.setPen(QPen(kChain, 2));
      p.drawPath(path);
      // Arrow head at the effect.
      const double ang = std::atan2(b.y() - ctrl.y(), b.x() - ctrl.x());
      QPolygonF head;
      head << b << QPointF(b.x() - 7 * std::cos(ang - 0.45), b.y() - 7 * std::sin(ang - 0.45))
           << QPointF(b.x() - 7 * std::cos(ang + 0.45), b.y() - 7 * std::sin(ang + 0.45));
      p.setBrush(kChain);
      p.setPen(Qt::NoPen);
      p.drawPolygon(head);
      p.setBrush(Qt::NoBrush);
      (void)dy;
    }
    // Rings on the members so they stand out from other marks.
    p.setPen(QPen(kChain, 1.5));
    for (const replay::Event& e : s.chain)
      if (lane_index(s, e.rec) >= 0) p.drawEllipse(mark_pos(l, s, e.rec), r + 2.5, r + 2.5);
    QRectF chain_label;  // the members' labels keep clear of it
    // The chain's name beside its first member.
    const replay::Event& first = s.chain.front();
    if (lane_index(s, first.rec) >= 0) {
      const QPointF a = mark_pos(l, s, first.rec);
      p.setPen(kChain);
      QFont f = p.font();
      f.setBold(true);
      p.save();
      p.setFont(f);
      // Left of its first member, so the member labels to the right keep their place.
      const QString name = QStringLiteral("chain %1").arg(s.chain_id);
      const double w = QFontMetricsF(f).horizontalAdvance(name);
      const QPointF at(std::max(l.lanes.left() + 2, a.x() - r - 8 - w), a.y() + QFontMetricsF(f).ascent() / 2 - 1);
      p.drawText(at, name);
      chain_label = QRectF(at.x(), at.y() - QFontMetricsF(f).ascent(), w, QFontMetricsF(f).height());
      p.restore();
    }
    // Labels on the members where they fit (zoomed in, and in SVG / PNG exports): what each is,
    // with its reason and vector, so the picture reads without the GUI. A label that would
    // overlap one already drawn is left out; decisions only when there is room to spare.
    QFont small = p.font();
    small.setPixelSize(10);
    p.save();
    p.setFont(small);
    const QFontMetricsF fm(small);
    std::vector<QRectF> placed;
    if (!chain_label.isEmpty()) placed.push_back(chain_label);
    for (int pass = 0; pass < 2; ++pass) {
      for (const replay::Event& e : s.chain) {
        if (lane_index(s, e.rec) < 0 || (e.rec.kind == ES_KIND_DECISION) != (pass == 1)) continue;
        if (e.rec.kind == ES_KIND_VM_ENTRY && !replay::injects_event(e.rec)) continue;
        const QPointF c = mark_pos(l, s, e.rec);
        const QString text = QString::fromStdString(replay::mark_label(e.rec));
        const QRectF box(c.x() + r + 4, c.y() - fm.height() / 2, fm.horizontalAdvance(text) + 2, fm.height());
        if (box.right() > l.lanes.right() + 4) continue;
        bool clash = false;
        for (const QRectF& q : placed) clash = clash || q.adjusted(-2, 0, 2, 0).intersects(box);
        if (clash) continue;
        placed.push_back(box);
        p.fillRect(box, QColor(255, 255, 255, 200));
        p.setPen(kChain.darker(130));
        p.drawText(box, Qt::AlignLeft | Qt::AlignVCenter, text);
      }
    }
    p.restore();
  }
  if (s.cursor) {
    const replay::Event* cur = nullptr;
    for (const replay::Event& e : s.chain)
      if (e.rec.id == *s.cursor) cur = &e;
    for (const replay::Event& e : s.events)
      if (!cur && e.rec.id == *s.cursor) cur = &e;
    if (cur && lane_index(s, cur->rec) >= 0) {
      const QPointF c = mark_pos(l, s, cur->rec);
      p.setPen(QPen(QColor(0, 0, 0, 90), 1, Qt::DashLine));
      p.drawLine(QPointF(c.x(), l.lanes.top()), QPointF(c.x(), l.lanes.bottom()));
      p.setPen(QPen(kCursor, 2.5));
      p.drawEllipse(c, r + 5, r + 5);
    }
  }
}

void TimelinePainter::paint_axis(QPainter& p, const Layout& l, const TimelineScene& s) const {
  const QRectF a = l.axis;
  p.setPen(Qt::black);
  p.drawLine(a.topLeft(), a.topRight());
  const uint64_t span = s.to_ns - s.from_ns;
  const int ticks = std::max(2, static_cast<int>(a.width() / 110));
  const uint64_t step = nice_step(span, ticks);
  const uint64_t first = (s.from_ns + step - 1) / step * step;
  for (uint64_t t = first; t <= s.to_ns; t += step) {
    const double x = x_of(l, s, t);
    p.setPen(QColor(0xdd, 0xdd, 0xdd));
    p.drawLine(QPointF(x, l.lanes.top()), QPointF(x, l.lanes.bottom()));
    p.setPen(Qt::black);
    p.drawLine(QPointF(x, a.top()), QPointF(x, a.top() + 5));
    // Centred under its tick, but never left of the axis (the "time" label is there).
    const QString label = format_axis_time(t, step);
    const double w = QFontMetricsF(p.font()).horizontalAdvance(label) + 2;
    const double left = std::max(x - w / 2, a.left() + 1);
    p.drawText(QRectF(left, a.top() + 5, w, a.height() - 5), Qt::AlignLeft | Qt::AlignTop, label);
    if (t > UINT64_MAX - step) break;
  }
  p.setPen(QColor(0x55, 0x55, 0x55));
  p.drawText(QRectF(a.left() - l.label_width, a.top() + 5, l.label_width - 8, a.height() - 5),
             Qt::AlignRight | Qt::AlignTop, QStringLiteral("time"));
}

void TimelinePainter::paint_legend(QPainter& p, const Layout& l, const TimelineScene& s) const {
  // The exits in view, one legend entry per name: replay's vendor-aware name (an SVM exit code
  // and a VMX exit reason of the same number are different exits) -> full reason for the colour.
  std::map<std::string, uint32_t> reasons;
  for (const replay::Event& e : s.events)
    if (is_exit(e.rec.kind)) reasons.emplace(replay::exit_reason_text(e.rec), e.rec.reason);
  for (const replay::Event& e : s.chain)
    if (is_exit(e.rec.kind)) reasons.emplace(replay::exit_reason_text(e.rec), e.rec.reason);
  QFontMetricsF fm(p.font());
  double x = l.legend.left();
  double y = l.legend.top() + 4;
  const double row = 17;
  auto advance = [&](double w) {
    if (x + w > l.legend.right()) {
      x = l.legend.left();
      y += row;
    }
  };
  auto text = [&](const QString& t) {
    p.setPen(Qt::black);
    p.drawText(QPointF(x, y + 11), t);
    x += fm.horizontalAdvance(t) + 14;
  };
  const double r = 4.5;
  auto marker = [&](const QString& label, auto draw) {
    advance(16 + fm.horizontalAdvance(label) + 14);
    draw(QPointF(x + 6, y + 7));
    x += 16;
    text(label);
  };
  marker(QStringLiteral("injection"), [&](QPointF c) {
    p.setPen(Qt::NoPen);
    p.setBrush(kInjection);
    triangle(p, c, r, true);
  });
  marker(QStringLiteral("delivery"), [&](QPointF c) {
    p.setPen(Qt::NoPen);
    p.setBrush(kDelivery);
    p.drawEllipse(c, r, r);
  });
  marker(QStringLiteral("raise"), [&](QPointF c) {
    p.setPen(Qt::NoPen);
    p.setBrush(kRaise);
    diamond(p, c, r);
  });
  marker(QStringLiteral("decision"), [&](QPointF c) {
    p.setPen(QPen(kDecision, 1));
    p.drawLine(QPointF(c.x(), c.y() - r), QPointF(c.x(), c.y() + r));
  });
  marker(QStringLiteral("chain"), [&](QPointF c) {
    p.setPen(QPen(kChain, 2));
    p.setBrush(Qt::NoBrush);
    p.drawLine(QPointF(c.x() - 6, c.y() + 3), QPointF(c.x() + 6, c.y() - 3));
  });
  marker(QStringLiteral("violation"), [&](QPointF c) {
    p.setPen(Qt::NoPen);
    p.setBrush(kViolation);
    triangle(p, c, r, false);
  });
  if (!reasons.empty()) {
    advance(200);
    text(QStringLiteral("exits (a box lasts until the entry):"));
  }
  for (const auto& [name, full_reason] : reasons) {
    const QString label = QString::fromStdString(name);
    const uint32_t full = full_reason;  // a structured binding cannot be captured before C++20's P1091 (clang 14)
    marker(label, [&](QPointF c) {
      p.setPen(Qt::NoPen);
      p.setBrush(exit_reason_color(full));
      p.drawRect(QRectF(c.x() - 2, c.y() - 6, 4, 12));
    });
  }
  p.setBrush(Qt::NoBrush);
}

std::optional<uint64_t> TimelinePainter::hit(const QRectF& r, const TimelineScene& s, const QPointF& pos) const {
  const Layout l = layout(r, s);
  std::optional<uint64_t> best;
  double best_d = 10.0;
  auto consider = [&](const replay::Event& e, double bias) {
    if (lane_index(s, e.rec) < 0) return;
    const QPointF c = mark_pos(l, s, e.rec);
    const double d = std::hypot(c.x() - pos.x(), (c.y() - pos.y()) * 0.5) - bias;
    if (d < best_d) {
      best_d = d;
      best = e.rec.id;
    }
  };
  for (const replay::Event& e : s.chain) consider(e, 2.0);
  for (const replay::Event& e : s.violations) consider(e, 1.0);
  for (const replay::Event& e : s.events) consider(e, 0.0);
  return best;
}

}  // namespace es::render
