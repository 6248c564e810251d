// The timeline view: render/'s TimelinePainter on a widget (the drawing of the SVG / PNG
// exports), with zoom (wheel around the mouse, +/- around the current event or chain), pan
// (drag), fit-all, click-to-select, a tooltip on every mark and click-on-overview to jump.
// Reloads its scene from the Document only when the window, chain or cursor changes.
#pragma once

#include <QWidget>
#include <optional>

#include "render/document.h"
#include "render/timeline_painter.h"

namespace es::gui {

using render::TimelinePainter;
using render::TimelineScene;

class TimelineWidget : public QWidget {
  Q_OBJECT
 public:
  explicit TimelineWidget(QWidget* parent = nullptr);
  void set_document(render::Document* doc);
  void set_chain(uint64_t chain_id);
  // Moves the cursor; scrolls the window (same zoom) when the event is outside it.
  void set_cursor(const replay::Event& ev);
  void set_window(uint64_t from_ns, uint64_t to_ns);
  uint64_t from_ns() const { return from_; }
  uint64_t to_ns() const { return to_; }
  uint64_t chain() const { return chain_; }
  const TimelineScene& scene();

 public slots:
  void zoom_in();
  void zoom_out();
  void fit_all();
  // Zooms to the selected chain (with a margin), or fits all without one.
  void fit_chain();

 signals:
  void event_clicked(quint64 id);

 protected:
  bool event(QEvent* e) override;  // tooltips on marks
  void paintEvent(QPaintEvent*) override;
  void wheelEvent(QWheelEvent*) override;
  void mousePressEvent(QMouseEvent*) override;
  void mouseMoveEvent(QMouseEvent*) override;
  void mouseReleaseEvent(QMouseEvent*) override;
  void keyPressEvent(QKeyEvent*) override;
  QSize sizeHint() const override { return {900, 320}; }

 private:
  void zoom(double factor, double anchor_x);
  double zoom_anchor_x();
  void invalidate();
  render::Document* doc_ = nullptr;
  TimelinePainter painter_;
  TimelineScene scene_;
  bool scene_valid_ = false;
  uint64_t from_ = 0, to_ = 1;
  uint64_t chain_ = 0;
  std::optional<uint64_t> cursor_;
  bool dragging_ = false, moved_ = false;
  QPointF drag_start_;
  uint64_t drag_from_ = 0, drag_to_ = 0;
};

}  // namespace es::gui
