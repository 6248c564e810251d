#include "gui/timeline_widget.h"

#include <QHelpEvent>
#include <QKeyEvent>
#include <QToolTip>
#include <QMouseEvent>
#include <QPainter>
#include <QWheelEvent>
#include <algorithm>
#include <cmath>

#include "replay/format.h"

namespace es::gui {

TimelineWidget::TimelineWidget(QWidget* parent) : QWidget(parent) {
  setObjectName(QStringLiteral("timeline"));
  setFocusPolicy(Qt::ClickFocus);
  setMouseTracking(false);
  setMinimumHeight(200);
}

void TimelineWidget::invalidate() {
  scene_valid_ = false;
  update();
}

void TimelineWidget::set_document(render::Document* doc) {
  doc_ = doc;
  chain_ = 0;
  cursor_.reset();
  if (doc_) {
    // Start on the first events (a window of ~2000 events), not the whole session: the first
    // frame of a huge recording stays cheap and shows real marks.
    const auto& sp = doc_->span();
    from_ = sp.first_time_ns;
    to_ = sp.last_time_ns > from_ ? sp.last_time_ns : from_ + 1;
    if (sp.count > 2000) {
      auto ev = replay::events_from_id(doc_->recording(), sp.first_id + 2000, 1);
      if (ev && !ev->empty()) to_ = std::max<uint64_t>(from_ + 1, ev->front().rec.time_ns);
    }
  }
  invalidate();
}

void TimelineWidget::set_chain(uint64_t chain_id) {
  if (chain_id == chain_) return;
  chain_ = chain_id;
  invalidate();
}

void TimelineWidget::set_cursor(const replay::Event& ev) {
  cursor_ = ev.rec.id;
  const uint64_t t = ev.rec.time_ns;
  if (t < from_ || t > to_) {
    const uint64_t w = to_ - from_;
    from_ = t > w / 2 ? t - w / 2 : 0;
    to_ = from_ + w;
  }
  invalidate();
}

void TimelineWidget::set_window(uint64_t from_ns, uint64_t to_ns) {
  from_ = from_ns;
  to_ = std::max(to_ns, from_ns + 1);
  invalidate();
}

const TimelineScene& TimelineWidget::scene() {
  if (!scene_valid_) {
    scene_ = doc_ ? doc_->scene(from_, to_, chain_ ? std::optional<uint64_t>(chain_) : std::nullopt, cursor_)
                  : TimelineScene{};
    scene_valid_ = true;
  }
  return scene_;
}

void TimelineWidget::fit_all() {
  if (!doc_) return;
  from_ = doc_->span().first_time_ns;
  to_ = std::max(doc_->span().last_time_ns, from_ + 1);
  invalidate();
}

void TimelineWidget::fit_chain() {
  if (!doc_ || !chain_) return fit_all();
  const auto extent = doc_->chain_extent(chain_);
  if (!extent) return fit_all();
  const auto [a, b] = *extent;
  const uint64_t margin = std::max<uint64_t>((b - a) / 4, 100);
  from_ = a > margin ? a - margin : 0;
  to_ = b + margin;
  invalidate();
}

void TimelineWidget::zoom(double factor, double anchor_x) {
  const auto l = painter_.layout(rect(), scene());
  const double f = std::clamp((anchor_x - l.lanes.left()) / std::max(1.0, l.lanes.width()), 0.0, 1.0);
  const double w = static_cast<double>(to_ - from_);
  const double nw = std::clamp(w * factor, 10.0, 1e15);
  const double anchor = static_cast<double>(from_) + f * w;
  const double nf = std::max(0.0, anchor - f * nw);
  from_ = static_cast<uint64_t>(nf);
  to_ = from_ + std::max<uint64_t>(10, static_cast<uint64_t>(nw));
  invalidate();
}

// The toolbar / keyboard zoom keeps what the user is looking at in view: the current event if
// it is in the window, else the selected chain's middle, else the window's centre. (Around the
// centre, zooming in from "Fit all" lost the chain.) The wheel zooms around the mouse.
double TimelineWidget::zoom_anchor_x() {
  const auto l = painter_.layout(rect(), scene());
  const TimelineScene& s = scene();
  auto in_window = [&](uint64_t t) { return t >= from_ && t <= to_; };
  if (cursor_) {
    for (const auto* list : {&s.chain, &s.events})
      for (const replay::Event& e : *list)
        if (e.rec.id == *cursor_ && in_window(e.rec.time_ns)) return TimelinePainter::x_of(l, s, e.rec.time_ns);
  }
  if (!s.chain.empty()) {
    const uint64_t a = s.chain.front().rec.time_ns, b = s.chain.back().rec.time_ns;
    const uint64_t mid = a + (b > a ? (b - a) / 2 : 0);
    if (in_window(mid)) return TimelinePainter::x_of(l, s, mid);
  }
  return l.lanes.center().x();
}

void TimelineWidget::zoom_in() { zoom(0.5, zoom_anchor_x()); }
void TimelineWidget::zoom_out() { zoom(2.0, zoom_anchor_x()); }

bool TimelineWidget::event(QEvent* e) {
  if (e->type() != QEvent::ToolTip) return QWidget::event(e);
  // Hover on a mark: what it is, as the event table and the inspector would say it.
  auto* help = static_cast<QHelpEvent*>(e);
  const TimelineScene& s = scene();
  const replay::Event* found = nullptr;
  if (auto id = painter_.hit(rect(), s, help->pos())) {
    for (const auto* list : {&s.chain, &s.violations, &s.events})
      for (const replay::Event& ev : *list)
        if (!found && ev.rec.id == *id) found = &ev;
  }
  if (found)
    QToolTip::showText(help->globalPos(), QString::fromStdString(replay::mark_tooltip(*found)), this);
  else
    QToolTip::hideText();
  return true;
}

void TimelineWidget::paintEvent(QPaintEvent*) {
  QPainter p(this);
  painter_.paint(p, rect(), scene());
}

void TimelineWidget::wheelEvent(QWheelEvent* e) {
  const double steps = e->angleDelta().y() / 120.0;
  if (steps != 0) zoom(std::pow(0.8, steps), e->position().x());
  e->accept();
}

void TimelineWidget::mousePressEvent(QMouseEvent* e) {
  if (e->button() != Qt::LeftButton) return;
  const auto l = painter_.layout(rect(), scene());
  if (l.overview.contains(e->position())) {
    // Jump: centre the window on the clicked session time.
    const double f = (e->position().x() - l.overview.left()) / std::max(1.0, l.overview.width());
    const auto& s = scene();
    const uint64_t t =
        s.session_from_ns + static_cast<uint64_t>(f * static_cast<double>(s.session_to_ns - s.session_from_ns));
    const uint64_t w = to_ - from_;
    from_ = t > w / 2 ? t - w / 2 : 0;
    to_ = from_ + w;
    invalidate();
    return;
  }
  dragging_ = true;
  moved_ = false;
  drag_start_ = e->position();
  drag_from_ = from_;
  drag_to_ = to_;
}

void TimelineWidget::mouseMoveEvent(QMouseEvent* e) {
  if (!dragging_) return;
  const double dx = e->position().x() - drag_start_.x();
  if (std::abs(dx) > 3) moved_ = true;
  if (!moved_) return;
  const auto l = painter_.layout(rect(), scene_);
  const double per_px = static_cast<double>(drag_to_ - drag_from_) / std::max(1.0, l.lanes.width());
  const double shift = -dx * per_px;
  const double nf = std::max(0.0, static_cast<double>(drag_from_) + shift);
  from_ = static_cast<uint64_t>(nf);
  to_ = from_ + (drag_to_ - drag_from_);
  invalidate();
}

void TimelineWidget::mouseReleaseEvent(QMouseEvent* e) {
  if (!dragging_) return;
  dragging_ = false;
  if (!moved_) {
    if (auto id = painter_.hit(rect(), scene(), e->position())) emit event_clicked(*id);
  }
}

void TimelineWidget::keyPressEvent(QKeyEvent* e) {
  switch (e->key()) {
    case Qt::Key_Plus:
    case Qt::Key_Equal: zoom_in(); break;
    case Qt::Key_Minus: zoom_out(); break;
    case Qt::Key_Left:
      set_window(from_ - std::min(from_, (to_ - from_) / 4), to_ - std::min(from_, (to_ - from_) / 4));
      break;
    case Qt::Key_Right: set_window(from_ + (to_ - from_) / 4, to_ + (to_ - from_) / 4); break;
    default: QWidget::keyPressEvent(e);
  }
}

}  // namespace es::gui
