// The main window: timeline on top; chains / violations, the event table with its filter box,
// and the inspector below; step actions in a toolbar with keyboard shortcuts. Every view
// follows one cursor (the current event).
#pragma once

#include <QMainWindow>
#include <memory>
#include <optional>

#include "render/document.h"

class QAction;
class QComboBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QMenu;
class QTableView;
class QTextBrowser;

namespace es::gui {

class ChainListModel;
class EventTableModel;
class StatsPanel;
class TimelineWidget;

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;

  // Opens a recording; on failure shows the "open_error" dialog (non-blocking) naming the
  // problem and keeps the current recording. Returns success.
  bool open_file(const QString& path);
  render::Document* document() const { return doc_.get(); }
  std::optional<replay::Event> cursor() const { return cursor_; }
  uint64_t current_chain() const;
  void go_to_event(uint64_t id);
  // Applies a filter query (as typed in the filter box); returns the error sentence or "".
  QString apply_query(const QString& text);
  // Writes an export without a file dialog: "png-view", "svg", "png", "text", "markdown", "perfetto", "chrome".
  QString export_to(const QString& kind, const QString& path);
  QString inspector_text() const;
  // View > Statistics (stats_panel.h): lists `ids` in the event table, cursor on the first.
  StatsPanel* stats_panel() const { return stats_; }
  void show_exits(const QString& what, const std::vector<uint64_t>& ids);
  // Selects chain `id` (its row in the chain list) and moves the cursor to its first event.
  void open_chain(uint64_t id);
  static QString shortcuts_html();

 public slots:
  void next_event();
  void prev_event();
  void next_in_chain();
  void prev_in_chain();
  void next_chain();
  void prev_chain();
  void jump_to_cause();
  void jump_to_effect();

 private:
  void build_ui();
  void build_menus();
  void set_cursor(const replay::Event& ev, bool from_table = false);
  void update_inspector();
  void select_chain_row(int row);
  void chain_filter_changed();
  void add_recent(const QString& path);
  void rebuild_recent_menu();
  void export_dialog(const QString& kind);
  void status(const QString& text);

  std::unique_ptr<render::Document> doc_;
  std::optional<replay::Event> cursor_;
  TimelineWidget* timeline_ = nullptr;
  ChainListModel* chains_ = nullptr;
  EventTableModel* events_ = nullptr;
  QTableView* chain_view_ = nullptr;
  QTableView* event_view_ = nullptr;
  QTextBrowser* inspector_ = nullptr;
  QLineEdit* filter_ = nullptr;
  QLabel* filter_error_ = nullptr;
  QListWidget* violations_ = nullptr;
  QLineEdit* chain_vector_ = nullptr;
  QComboBox* chain_type_ = nullptr;
  QComboBox* chain_outcome_ = nullptr;
  QComboBox* chain_level_ = nullptr;
  QMenu* recent_menu_ = nullptr;
  StatsPanel* stats_ = nullptr;
};

}  // namespace es::gui
