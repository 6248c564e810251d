#include "gui/main_window.h"

#include <QAction>
#include <QApplication>
#include <QComboBox>
#include <QDialog>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMenuBar>
#include <QMessageBox>
#include <QSettings>
#include <QSignalBlocker>
#include <QScrollBar>
#include <QSplitter>
#include <QStatusBar>
#include <QTabWidget>
#include <QTableView>
#include <QTextBrowser>
#include <QTimer>
#include <QToolBar>
#include <QVBoxLayout>
#include <algorithm>
#include <cstdio>

#include "gui/chain_list_model.h"
#include "gui/event_table_model.h"
#include "gui/stats_panel.h"
#include "gui/timeline_widget.h"
#include "render/image.h"
#include "replay/export/export.h"
#include "replay/format.h"
#include "replay/inspect.h"
#include "replay/names.h"
#include "replay/query.h"
#include "replay/summary.h"

namespace es::gui {

namespace {

struct StepAction {
  const char* name;
  const char* text;
  const char* keys;
  const char* help;
  void (MainWindow::*slot)();
};

constexpr StepAction kSteps[] = {
    {"prev_event", "\xe2\x97\x80 Event", "Shift+N", "previous event (row above in the event table)",
     &MainWindow::prev_event},
    {"next_event", "Event \xe2\x96\xb6", "N", "next event (row below in the event table)", &MainWindow::next_event},
    {"prev_in_chain", "\xe2\x97\x80 In chain", "Shift+C", "previous event of the current chain",
     &MainWindow::prev_in_chain},
    {"next_in_chain", "In chain \xe2\x96\xb6", "C", "next event of the current chain", &MainWindow::next_in_chain},
    {"prev_chain", "\xe2\x97\x80 Chain", "[", "previous chain (in the chain list)", &MainWindow::prev_chain},
    {"next_chain", "Chain \xe2\x96\xb6", "]", "next chain (in the chain list)", &MainWindow::next_chain},
    {"jump_to_cause", "\xe2\x86\x91 Cause", "U", "jump to the event that caused this one", &MainWindow::jump_to_cause},
    {"jump_to_effect", "Effect \xe2\x86\x93", "E", "jump to the first event this one caused",
     &MainWindow::jump_to_effect},
};

struct TypeChoice {
  const char* label;
  int type;  // -1 = any
};
constexpr TypeChoice kTypes[] = {{"any type", -1},    {"IRQ", 0},   {"NMI", 2},
                                 {"HW exception", 3}, {"INT n", 4}, {"privileged SW exc", 5},
                                 {"SW exception", 6}};

QString html_escape(const std::string& s) { return QString::fromStdString(s).toHtmlEscaped(); }

}  // namespace

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
  setObjectName(QStringLiteral("main_window"));
  setWindowTitle(QStringLiteral("exitscope"));
  build_ui();
  build_menus();
  resize(1280, 800);
}

MainWindow::~MainWindow() = default;

void MainWindow::build_ui() {
  timeline_ = new TimelineWidget;
  connect(timeline_, &TimelineWidget::event_clicked, this, [this](quint64 id) { go_to_event(id); });

  // Chains tab: filter row + lazy list.
  auto* chains_page = new QWidget;
  auto* cl = new QVBoxLayout(chains_page);
  cl->setContentsMargins(2, 2, 2, 2);
  auto* frow = new QGridLayout;  // two rows of two: the filters do not set the list's width
  chain_vector_ = new QLineEdit;
  chain_vector_->setObjectName(QStringLiteral("chain_vector"));
  chain_vector_->setPlaceholderText(QStringLiteral("vector"));
  chain_vector_->setMinimumWidth(64);
  chain_vector_->setMaximumWidth(80);
  chain_type_ = new QComboBox;
  chain_type_->setObjectName(QStringLiteral("chain_type"));
  for (const TypeChoice& t : kTypes) chain_type_->addItem(QString::fromLatin1(t.label), t.type);
  chain_outcome_ = new QComboBox;
  chain_outcome_->setObjectName(QStringLiteral("chain_outcome"));
  chain_outcome_->addItem(QStringLiteral("any outcome"));
  for (replay::Outcome o : replay::kAllOutcomes)
    chain_outcome_->addItem(QString::fromStdString(std::string(replay::to_string(o))));
  chain_level_ = new QComboBox;
  chain_level_->setObjectName(QStringLiteral("chain_level"));
  chain_level_->addItem(QStringLiteral("any level"), 0);
  chain_level_->addItem(QStringLiteral("L1"), 1);
  chain_level_->addItem(QStringLiteral("L2"), 2);
  // The combos do not widen the chain list to their longest item ("delivered after
  // reinjection"): the list keeps the width its columns need and the popup shows full names.
  for (QComboBox* c : {chain_type_, chain_outcome_, chain_level_}) {
    c->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    c->setMinimumContentsLength(6);
  }
  frow->addWidget(chain_vector_, 0, 0);
  frow->addWidget(chain_type_, 0, 1);
  frow->addWidget(chain_outcome_, 1, 0);
  frow->addWidget(chain_level_, 1, 1);
  cl->addLayout(frow);
  connect(chain_vector_, &QLineEdit::editingFinished, this, &MainWindow::chain_filter_changed);
  for (QComboBox* c : {chain_type_, chain_outcome_, chain_level_})
    connect(c, &QComboBox::currentIndexChanged, this, &MainWindow::chain_filter_changed);
  chains_ = new ChainListModel(this);
  chain_view_ = new QTableView;
  chain_view_->setObjectName(QStringLiteral("chain_table"));
  chain_view_->setModel(chains_);
  chain_view_->setSelectionBehavior(QAbstractItemView::SelectRows);
  chain_view_->setSelectionMode(QAbstractItemView::SingleSelection);
  chain_view_->verticalHeader()->hide();
  chain_view_->verticalHeader()->setDefaultSectionSize(20);
  chain_view_->horizontalHeader()->setStretchLastSection(true);
  chain_view_->setColumnWidth(0, 60);
  chain_view_->setColumnWidth(1, 90);
  chain_view_->setColumnWidth(2, 44);
  chain_view_->setColumnWidth(3, 52);
  cl->addWidget(chain_view_);
  connect(chain_view_->selectionModel(), &QItemSelectionModel::currentRowChanged, this, [this](const QModelIndex& cur) {
    if (cur.isValid()) select_chain_row(cur.row());
  });

  violations_ = new QListWidget;
  violations_->setObjectName(QStringLiteral("violations"));
  connect(violations_, &QListWidget::currentRowChanged, this, [this](int row) {
    if (row < 0 || !doc_) return;
    go_to_event(violations_->item(row)->data(Qt::UserRole).toULongLong());
  });
  auto* tabs = new QTabWidget;
  tabs->setObjectName(QStringLiteral("left_tabs"));
  tabs->addTab(chains_page, QStringLiteral("Chains"));
  tabs->addTab(violations_, QStringLiteral("Violations"));

  // Events: filter box + lazy table.
  auto* events_page = new QWidget;
  auto* el = new QVBoxLayout(events_page);
  el->setContentsMargins(2, 2, 2, 2);
  filter_ = new QLineEdit;
  filter_->setObjectName(QStringLiteral("filter_box"));
  filter_->setPlaceholderText(
      QStringLiteral("filter: reason:EPT_VIOLATION vector:0x20 level:1 chain:17 kind:exit vcpu:0"));
  filter_->setClearButtonEnabled(true);
  connect(filter_, &QLineEdit::returnPressed, this, [this] { apply_query(filter_->text()); });
  filter_error_ = new QLabel;
  filter_error_->setObjectName(QStringLiteral("filter_error"));
  filter_error_->setStyleSheet(QStringLiteral("color: #b00000"));
  filter_error_->setWordWrap(true);
  filter_error_->hide();
  events_ = new EventTableModel(this);
  event_view_ = new QTableView;
  event_view_->setObjectName(QStringLiteral("event_table"));
  event_view_->setModel(events_);
  event_view_->setSelectionBehavior(QAbstractItemView::SelectRows);
  event_view_->setSelectionMode(QAbstractItemView::SingleSelection);
  event_view_->verticalHeader()->hide();
  event_view_->verticalHeader()->setDefaultSectionSize(20);
  event_view_->horizontalHeader()->setStretchLastSection(true);
  event_view_->setSortingEnabled(true);
  event_view_->sortByColumn(0, Qt::AscendingOrder);
  event_view_->setColumnWidth(0, 60);
  event_view_->setColumnWidth(1, 92);
  event_view_->setColumnWidth(2, 56);
  event_view_->setColumnWidth(3, 44);
  event_view_->setColumnWidth(4, 90);
  event_view_->setWordWrap(false);
  el->addWidget(filter_);
  el->addWidget(filter_error_);
  el->addWidget(event_view_);
  connect(event_view_->selectionModel(), &QItemSelectionModel::currentRowChanged, this, [this](const QModelIndex& cur) {
    if (!cur.isValid()) return;
    if (auto e = events_->event_at(cur.row())) set_cursor(*e, true);
  });

  inspector_ = new QTextBrowser;
  inspector_->setObjectName(QStringLiteral("inspector"));
  inspector_->setOpenLinks(false);
  connect(inspector_, &QTextBrowser::anchorClicked, this, [this](const QUrl& url) {
    if (url.scheme() == QLatin1String("event")) go_to_event(url.path().toULongLong());
  });

  auto* bottom = new QSplitter(Qt::Horizontal);
  bottom->setObjectName(QStringLiteral("bottom_splitter"));
  bottom->addWidget(tabs);
  bottom->addWidget(events_page);
  bottom->addWidget(inspector_);
  bottom->setSizes({270, 600, 410});
  auto* vertical = new QSplitter(Qt::Vertical);
  vertical->addWidget(timeline_);
  vertical->addWidget(bottom);
  vertical->setSizes({330, 470});
  setCentralWidget(vertical);

  auto* bar = addToolBar(QStringLiteral("Step"));
  bar->setObjectName(QStringLiteral("step_toolbar"));
  for (const StepAction& s : kSteps) {
    auto* a = new QAction(QString::fromUtf8(s.text), this);
    a->setObjectName(QString::fromLatin1(s.name));
    a->setShortcut(QKeySequence(QString::fromLatin1(s.keys)));
    a->setToolTip(QStringLiteral("%1 (%2)").arg(QString::fromLatin1(s.help), QString::fromLatin1(s.keys)));
    connect(a, &QAction::triggered, this, s.slot);
    bar->addAction(a);
    addAction(a);
  }
  bar->addSeparator();
  auto view_action = [&](const char* name, const QString& text, const QKeySequence& keys, auto slot) {
    auto* a = new QAction(text, this);
    a->setObjectName(QString::fromLatin1(name));
    a->setShortcut(keys);
    connect(a, &QAction::triggered, timeline_, slot);
    bar->addAction(a);
    addAction(a);
  };
  view_action("zoom_in", QStringLiteral("Zoom +"), QKeySequence(Qt::Key_Plus), &TimelineWidget::zoom_in);
  view_action("zoom_out", QStringLiteral("Zoom -"), QKeySequence(Qt::Key_Minus), &TimelineWidget::zoom_out);
  view_action("fit_all", QStringLiteral("Fit all"), QKeySequence(Qt::Key_F), &TimelineWidget::fit_all);
  view_action("fit_chain", QStringLiteral("Fit chain"), QKeySequence(QStringLiteral("Shift+F")),
              &TimelineWidget::fit_chain);
  auto* focus_filter = new QAction(this);
  focus_filter->setShortcuts({QKeySequence(QStringLiteral("Ctrl+L")), QKeySequence(Qt::Key_Slash)});
  connect(focus_filter, &QAction::triggered, this, [this] {
    filter_->setFocus();
    filter_->selectAll();
  });
  addAction(focus_filter);
  // Records that never reached the recording (full recorder queue, BPF ring buffer): shown
  // for as long as the recording is open, since the timeline has gaps where they were.
  auto* drops = new QLabel(this);
  drops->setObjectName(QStringLiteral("drops_label"));
  drops->setStyleSheet(QStringLiteral("color: #b00000; font-weight: bold"));
  drops->hide();
  statusBar()->addPermanentWidget(drops);
  statusBar()->showMessage(QStringLiteral("Open a recording with File > Open (Ctrl+O)."));

  stats_ = new StatsPanel;
  auto* dock = new QDockWidget(QStringLiteral("Statistics"), this);
  dock->setObjectName(QStringLiteral("stats_dock"));
  dock->setWidget(stats_);
  addDockWidget(Qt::BottomDockWidgetArea, dock);
  dock->hide();
  connect(stats_, &StatsPanel::exits_selected, this, &MainWindow::show_exits);
  connect(stats_, &StatsPanel::chain_selected, this, [this](quint64 id) { open_chain(id); });
}

void MainWindow::show_exits(const QString& what, const std::vector<uint64_t>& ids) {
  if (!doc_) return;
  filter_->clear();
  filter_error_->hide();
  events_->set_ids(ids);
  status(QStringLiteral("%1 %2 in the event table (Enter in the empty filter box shows every event)")
             .arg(ids.size())
             .arg(what));
  if (!ids.empty()) go_to_event(ids.front());
}

void MainWindow::open_chain(uint64_t id) {
  if (!doc_) return;
  const int row = chains_->row_of(id);
  if (row >= 0)
    select_chain_row(row);
  else
    go_to_event(id);
}

void MainWindow::build_menus() {
  QMenu* file = menuBar()->addMenu(QStringLiteral("&File"));
  QAction* open = file->addAction(QStringLiteral("&Open..."), this, [this] {
    const QString p = QFileDialog::getOpenFileName(this, QStringLiteral("Open recording"), QString(),
                                                   QStringLiteral("exitscope recordings (*.db);;All files (*)"));
    if (!p.isEmpty()) open_file(p);
  });
  open->setShortcut(QKeySequence::Open);
  recent_menu_ = file->addMenu(QStringLiteral("Open &Recent"));
  rebuild_recent_menu();
  QMenu* exp = file->addMenu(QStringLiteral("&Export"));
  const std::pair<const char*, const char*> kExports[] = {
      {"png-view", "Current view as PNG..."}, {"svg", "Timeline as SVG..."}, {"png", "Timeline as PNG..."},
      {"text", "Text (mailing list)..."},     {"markdown", "Markdown..."},   {"perfetto", "Perfetto trace..."},
      {"chrome", "Chrome trace JSON..."}};
  for (const auto& [kind, label] : kExports) {
    const QString k = QString::fromLatin1(kind);
    exp->addAction(QString::fromLatin1(label), this, [this, k] { export_dialog(k); });
  }
  file->addSeparator();
  QAction* quit = file->addAction(QStringLiteral("&Quit"), this, &QWidget::close);
  quit->setShortcut(QKeySequence::Quit);

  QMenu* go = menuBar()->addMenu(QStringLiteral("&Go"));
  for (QAction* a : findChildren<QAction*>())
    for (const StepAction& s : kSteps)
      if (a->objectName() == QLatin1String(s.name)) go->addAction(a);

  QMenu* view = menuBar()->addMenu(QStringLiteral("&View"));
  if (auto* dock = findChild<QDockWidget*>(QStringLiteral("stats_dock"))) {
    QAction* a = dock->toggleViewAction();
    a->setObjectName(QStringLiteral("show_stats"));
    a->setShortcut(QKeySequence(QStringLiteral("Ctrl+T")));
    view->addAction(a);
  }

  QMenu* help = menuBar()->addMenu(QStringLiteral("&Help"));
  help->addAction(QStringLiteral("&Keyboard shortcuts"), this, [this] {
    auto* d = new QDialog(this);
    d->setObjectName(QStringLiteral("shortcuts_dialog"));
    d->setAttribute(Qt::WA_DeleteOnClose);
    d->setWindowTitle(QStringLiteral("Keyboard shortcuts"));
    auto* l = new QVBoxLayout(d);
    auto* t = new QTextBrowser;
    t->setHtml(shortcuts_html());
    l->addWidget(t);
    d->resize(520, 480);
    d->show();
  });
  help->addAction(QStringLiteral("&About"), this, [this] {
    QMessageBox::about(this, QStringLiteral("exitscope"),
                       QStringLiteral("exitscope: VM exits, IDT-vectoring and event injection, replayed."));
  });
}

QString MainWindow::shortcuts_html() {
  QString h = QStringLiteral("<h3>Keyboard shortcuts</h3><table cellpadding=3>");
  for (const StepAction& s : kSteps)
    h += QStringLiteral("<tr><td><b>%1</b></td><td>%2</td></tr>")
             .arg(QString::fromLatin1(s.keys), QString::fromLatin1(s.help));
  const char* kOther[][2] = {{"+ / -", "zoom the timeline in / out (also the mouse wheel)"},
                             {"drag", "pan the timeline; Left / Right with the timeline focused"},
                             {"F", "fit the whole session"},
                             {"Shift+F", "fit the current chain"},
                             {"click", "select the event under the mouse; click the overview strip to jump"},
                             {"Ctrl+L or /", "edit the filter (Enter applies, empty shows every event)"},
                             {"Ctrl+T", "statistics: exit reasons, latency histogram, slowest chains"},
                             {"Up / Down", "move in the focused table"},
                             {"Ctrl+O", "open a recording"}};
  for (const auto& o : kOther)
    h += QStringLiteral("<tr><td><b>%1</b></td><td>%2</td></tr>")
             .arg(QString::fromLatin1(o[0]), QString::fromLatin1(o[1]));
  return h + QStringLiteral("</table>");
}

void MainWindow::status(const QString& text) { statusBar()->showMessage(text); }

bool MainWindow::open_file(const QString& path) {
  QString error;
  auto doc = render::Document::open(path, error);
  if (!doc) {
    auto* box = new QMessageBox(QMessageBox::Critical, QStringLiteral("Cannot open recording"),
                                QStringLiteral("Cannot open the recording."), QMessageBox::Ok, this);
    box->setObjectName(QStringLiteral("open_error"));
    box->setInformativeText(error);
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->open();
    status(error);
    return false;
  }
  cursor_.reset();
  doc_ = std::move(doc);
  timeline_->set_document(doc_.get());
  events_->set_document(doc_.get());
  chains_->set_document(doc_.get());
  stats_->set_document(doc_.get());
  filter_->clear();
  filter_error_->hide();
  violations_->clear();
  for (const replay::Event& v : doc_->violations()) {
    const std::string_view rule = replay::violation_rule_name(v.rec.reason);
    auto* item =
        new QListWidgetItem(QStringLiteral("#%1 %2 at %3 s: cause #%4")
                                .arg(v.rec.id)
                                .arg(rule.empty() ? QStringLiteral("rule %1").arg(v.rec.reason)
                                                  : QString::fromUtf8(rule.data(), static_cast<int>(rule.size())))
                                .arg(QString::fromStdString(replay::format_time(v.rec.time_ns)))
                                .arg(v.rec.cause));
    item->setData(Qt::UserRole, QVariant::fromValue<quint64>(v.rec.id));
    item->setForeground(QColor(0xb0, 0x00, 0x00));
    violations_->addItem(item);
  }
  if (auto* tabs = findChild<QTabWidget*>(QStringLiteral("left_tabs")))
    tabs->setTabText(1, QStringLiteral("Violations (%1)").arg(doc_->violations().size()));
  setWindowTitle(QStringLiteral("exitscope \xe2\x80\x94 %1").arg(QFileInfo(path).fileName()));
  // Columns sized to what they hold; the chain list gets the width its columns need (not a
  // third of the window while the events' Details column is cut), the events the rest.
  chain_view_->resizeColumnsToContents();
  for (int c = 0; c + 1 < events_->columnCount(); ++c) event_view_->resizeColumnToContents(c);
  if (auto* bottom = findChild<QSplitter*>(QStringLiteral("bottom_splitter"))) {
    const QList<int> sizes = bottom->sizes();
    int total = 0;
    for (int v : sizes) total += v;
    if (total > 0 && sizes.size() == 3) {
      // What the columns need (the last one stretches, so the header's length is the view's).
      // Frame, margins and the vertical scroll bar a long list shows.
      int need = 12 + chain_view_->verticalScrollBar()->sizeHint().width();
      const int cols = chains_->columnCount();
      for (int c = 0; c < cols; ++c)
        need += c + 1 < cols ? chain_view_->columnWidth(c)
                             : static_cast<QAbstractItemView*>(chain_view_)->sizeHintForColumn(c);
      // Up to a third of the width, so that the Outcome column ("delivered after reinjection") is
      // read whole at the default size, not through its tooltip; the inspector gives the room
      // (its fields wrap), the event table keeps the most.
      const int chains_w = std::clamp(need, 160, total / 3);
      const int inspector_w = std::min(sizes[2], std::max(total / 4 - (chains_w - total / 4), total / 5));
      bottom->setSizes({chains_w, total - chains_w - inspector_w, inspector_w});
    }
  }
  const replay::DropCounts& dropped = doc_->drops();
  if (auto* drops = findChild<QLabel*>(QStringLiteral("drops_label"))) {
    drops->setVisible(dropped.total() > 0);
    drops->setText(QStringLiteral("%1 records dropped").arg(dropped.total()));
    drops->setToolTip(QStringLiteral("%1 records were dropped while recording (%2 by the recorder's full queue, "
                                     "%3 by the source): the timeline and the event table have gaps.")
                          .arg(dropped.total())
                          .arg(dropped.recorder)
                          .arg(dropped.source));
  }
  status(QStringLiteral("%1: %2 events, %3 chains, %4 lanes%5")
             .arg(QFileInfo(path).fileName())
             .arg(doc_->span().count)
             .arg(chains_->rowCount())
             .arg(doc_->lanes().size())
             .arg(dropped.total() ? QStringLiteral(", %1 records dropped while recording").arg(dropped.total())
                                  : QString()) +
         (doc_->open_notice().isEmpty() ? QString() : QStringLiteral(" \xe2\x80\x94 ") + doc_->open_notice()));
  add_recent(QFileInfo(path).absoluteFilePath());
  // Start on the first chain when there is one, else on the first event.
  if (chains_->rowCount() > 0)
    select_chain_row(0);
  else if (doc_->span().count)
    go_to_event(doc_->span().first_id);
  update_inspector();
  return true;
}

void MainWindow::add_recent(const QString& path) {
  QSettings s;
  QStringList list = s.value(QStringLiteral("recent_files")).toStringList();
  list.removeAll(path);
  list.prepend(path);
  while (list.size() > 10) list.removeLast();
  s.setValue(QStringLiteral("recent_files"), list);
  rebuild_recent_menu();
}

void MainWindow::rebuild_recent_menu() {
  recent_menu_->clear();
  const QStringList list = QSettings().value(QStringLiteral("recent_files")).toStringList();
  for (const QString& p : list) recent_menu_->addAction(p, this, [this, p] { open_file(p); });
  recent_menu_->setEnabled(!list.isEmpty());
}

uint64_t MainWindow::current_chain() const {
  return cursor_ && cursor_->rec.origin ? cursor_->rec.origin : timeline_->chain();
}

void MainWindow::go_to_event(uint64_t id) {
  if (!doc_) return;
  if (auto e = doc_->event(id)) set_cursor(*e);
}

void MainWindow::set_cursor(const replay::Event& ev, bool from_table) {
  cursor_ = ev;
  if (ev.rec.origin) {
    timeline_->set_chain(ev.rec.origin);
    const int row = chains_->row_of(ev.rec.origin);
    if (row >= 0 && chain_view_->currentIndex().row() != row) {
      QSignalBlocker block(chain_view_->selectionModel());
      chain_view_->selectRow(row);
      chain_view_->scrollTo(chains_->index(row, 0));
    }
  }
  timeline_->set_cursor(ev);
  if (!from_table) {
    const int row = events_->row_of(ev.rec.id);
    QSignalBlocker block(event_view_->selectionModel());
    if (row >= 0) {
      event_view_->selectRow(row);
      // Deferred as well: right after opening, the view is not laid out yet.
      event_view_->scrollTo(events_->index(row, 0), QAbstractItemView::EnsureVisible);
      QTimer::singleShot(0, event_view_, [this, row] {
        event_view_->scrollTo(events_->index(row, 0), QAbstractItemView::PositionAtCenter);
      });
    } else {
      event_view_->clearSelection();
    }
  }
  update_inspector();
}

void MainWindow::update_inspector() {
  if (!doc_ || !cursor_) {
    inspector_->setHtml(QStringLiteral("<p>No event selected.</p>"));
    return;
  }
  const replay::Event& ev = *cursor_;
  QString h = QStringLiteral("<h3 style='margin:2px'>%1</h3><table cellspacing=0 cellpadding=2>")
                  .arg(html_escape(replay::inspect_title(ev)));
  // A decision's detail is named by the exit it answered (port, CPUID leaf, MSR).
  std::optional<replay::CauseExit> cause;
  if (ev.rec.kind == ES_KIND_DECISION && ev.rec.cause)
    if (auto c = doc_->event(ev.rec.cause)) cause = replay::cause_exit(*c);
  for (const replay::InspectField& f : replay::inspect_event(ev, cause ? &*cause : nullptr)) {
    QString value = html_escape(f.value);
    if (f.link) value = QStringLiteral("<a href='event:%1'>%2</a>").arg(f.link).arg(value);
    if (f.label == "Instruction") value = QStringLiteral("<code>%1</code>").arg(value);
    h += QStringLiteral("<tr><td valign=top style='color:#555; padding-right:8px'>%1</td><td>%2</td></tr>")
             .arg(html_escape(f.label), value);
  }
  if (auto eff = replay::effects(doc_->recording(), ev.rec.id, 16); eff && !eff->empty()) {
    QStringList links;
    for (const replay::Event& e : *eff)
      links << QStringLiteral("<a href='event:%1'>#%1 %2</a>")
                   .arg(e.rec.id)
                   .arg(QString::fromUtf8(replay::kind_name(e.rec.kind).data(),
                                          static_cast<int>(replay::kind_name(e.rec.kind).size())));
    h += QStringLiteral("<tr><td valign=top style='color:#555'>Effects</td><td>%1</td></tr>")
             .arg(links.join(QStringLiteral(", ")));
  }
  h += QStringLiteral("</table>");
  // KVM's [reinjected] on an interrupt's first injection (replay/summary.h): said here as in
  // `exitscope chains`. The chain's members before the decision, up to the first that is not a
  // RAISE (one or two index entries, whatever the chain's length).
  if (ev.rec.origin && replay::first_injection_called_reinjection(ev.rec, true)) {
    auto other = doc_->recording().db().query_int(
        "SELECT count(*) FROM (SELECT 1 FROM events WHERE origin = " + std::to_string(ev.rec.origin) + " AND id < " +
        std::to_string(ev.rec.id) + " AND kind != " + std::to_string(ES_KIND_RAISE) + " LIMIT 1)");
    if (other && *other == 0)
      h += QStringLiteral("<p><i>%1.</i></p>")
               .arg(html_escape(std::string(replay::first_injection_called_reinjection_note())));
  }
  // And an injection KVM calls [reinjected] straight after the previous one (replay/summary.h).
  if (ev.rec.kind == ES_KIND_DECISION && ev.rec.reason == ES_DECISION_INJECT_REINJECTED && ev.rec.cause) {
    if (auto before = doc_->event(ev.rec.cause); before && replay::reinjected_without_exit(ev.rec, &before->rec))
      h += QStringLiteral("<p><i>%1.</i></p>").arg(html_escape(std::string(replay::reinjected_without_exit_note())));
  }
  if (ev.rec.origin) {
    if (auto row = replay::chain_row(doc_->recording(), ev.rec.origin); row && *row) {
      h += QStringLiteral("<p><b>Chain %1</b>: %2, %3 events, %4</p>")
               .arg((*row)->id)
               .arg(html_escape(replay::chain_row_event_text(**row)))
               .arg((*row)->event_count)
               .arg(html_escape((*row)->outcome));
      // Where the outcome comes from (the SDM / APM section `exitscope chains` cites).
      if (const std::string ref =
              replay::row_outcome_reference(doc_->recording(), **row, replay::recording_vendor(doc_->recording()));
          !ref.empty())
        h += QStringLiteral("<p style='color:#555'>%1.</p>").arg(html_escape(ref));
    }
  }
  inspector_->setHtml(h);
}

QString MainWindow::inspector_text() const { return inspector_->toPlainText(); }

void MainWindow::select_chain_row(int row) {
  const uint64_t id = chains_->id_at(row);
  if (!id || !doc_) return;
  {
    QSignalBlocker block(chain_view_->selectionModel());
    chain_view_->selectRow(row);
  }
  timeline_->set_chain(id);
  const replay::ChainRow* c = chains_->row(row);
  const uint64_t first = c ? (c->first_event ? c->first_event : c->root_event) : id;
  timeline_->fit_chain();
  go_to_event(first);
}

void MainWindow::chain_filter_changed() {
  replay::ChainFilter f;
  const QString v = chain_vector_->text().trimmed();
  if (!v.isEmpty()) {
    auto n = replay::parse_uint(v.toStdString());
    if (!n || *n > 255) {
      status(QStringLiteral("chain filter: vector '%1' is not a number up to 255 (e.g. 0x20 or 14).").arg(v));
      return;
    }
    f.vector = static_cast<uint8_t>(*n);
  }
  if (const int t = chain_type_->currentData().toInt(); t >= 0) f.type = static_cast<uint8_t>(t);
  if (chain_outcome_->currentIndex() > 0) f.outcome = chain_outcome_->currentText().toStdString();
  if (const int l = chain_level_->currentData().toInt(); l > 0) f.level = static_cast<uint8_t>(l);
  chains_->set_filter(f);
  status(QStringLiteral("%1 chains match").arg(chains_->rowCount()));
}

QString MainWindow::apply_query(const QString& text) {
  if (!doc_) return QStringLiteral("no recording is open.");
  if (text.trimmed().isEmpty()) {
    events_->set_filter(std::nullopt);
    filter_error_->hide();
  } else {
    auto f = replay::parse_query(text.toStdString());
    if (!f) {
      filter_error_->setText(QString::fromStdString(f.error()));
      filter_error_->show();
      return QString::fromStdString(f.error());
    }
    filter_error_->hide();
    events_->set_filter(*f);
  }
  status(QStringLiteral("%1 events match").arg(events_->rowCount()));
  if (cursor_) {
    const int row = events_->row_of(cursor_->rec.id);
    if (row >= 0) {
      QSignalBlocker block(event_view_->selectionModel());
      event_view_->selectRow(row);
    } else if (events_->rowCount() > 0) {
      event_view_->selectRow(0);  // moves the cursor to the first match
    }
  }
  return {};
}

void MainWindow::next_event() {
  if (!doc_) return;
  if (!cursor_) return go_to_event(doc_->span().first_id);
  const int row = events_->row_of(cursor_->rec.id);
  if (row >= 0) {
    if (row + 1 < events_->rowCount()) event_view_->selectRow(row + 1);
    return;
  }
  if (auto e = replay::step_event(doc_->recording(), cursor_->rec.id, true); e && *e) set_cursor(**e);
}

void MainWindow::prev_event() {
  if (!doc_ || !cursor_) return;
  const int row = events_->row_of(cursor_->rec.id);
  if (row >= 0) {
    if (row > 0) event_view_->selectRow(row - 1);
    return;
  }
  if (auto e = replay::step_event(doc_->recording(), cursor_->rec.id, false); e && *e) set_cursor(**e);
}

void MainWindow::next_in_chain() {
  if (!doc_ || !cursor_ || !current_chain()) return;
  if (auto e = replay::step_event(doc_->recording(), cursor_->rec.id, true, current_chain()); e && *e)
    set_cursor(**e);
  else
    status(QStringLiteral("last event of chain %1").arg(current_chain()));
}

void MainWindow::prev_in_chain() {
  if (!doc_ || !cursor_ || !current_chain()) return;
  if (auto e = replay::step_event(doc_->recording(), cursor_->rec.id, false, current_chain()); e && *e)
    set_cursor(**e);
  else
    status(QStringLiteral("first event of chain %1").arg(current_chain()));
}

void MainWindow::next_chain() {
  if (!doc_ || chains_->rowCount() == 0) return;
  const int row = current_chain() ? chains_->row_of(current_chain()) : -1;
  if (row + 1 < chains_->rowCount()) select_chain_row(row + 1);
}

void MainWindow::prev_chain() {
  if (!doc_ || chains_->rowCount() == 0) return;
  const int row = current_chain() ? chains_->row_of(current_chain()) : chains_->rowCount();
  if (row > 0) select_chain_row(row - 1);
}

void MainWindow::jump_to_cause() {
  if (!doc_ || !cursor_) return;
  if (cursor_->rec.cause)
    go_to_event(cursor_->rec.cause);
  else
    status(QStringLiteral("event #%1 has no recorded cause").arg(cursor_->rec.id));
}

void MainWindow::jump_to_effect() {
  if (!doc_ || !cursor_) return;
  if (auto e = replay::first_effect(doc_->recording(), cursor_->rec.id); e && *e)
    set_cursor(**e);
  else
    status(QStringLiteral("event #%1 caused no recorded event").arg(cursor_->rec.id));
}

QString MainWindow::export_to(const QString& kind, const QString& path) {
  if (!doc_) return QStringLiteral("no recording is open.");
  if (kind == QLatin1String("png-view") || kind == QLatin1String("svg") || kind == QLatin1String("png")) {
    QByteArray bytes;
    QString error;
    if (kind == QLatin1String("png-view")) {
      bytes = render::render_scene(timeline_->scene(), timeline_->size(), QStringLiteral("png"));
    } else {
      render::ImageOptions opt;
      opt.format = kind;
      opt.from_ns = timeline_->from_ns();
      opt.to_ns = timeline_->to_ns();
      if (timeline_->chain()) opt.chain = timeline_->chain();
      bytes = render::render_timeline(*doc_, opt, error);
    }
    QFile f(path);
    if (bytes.isEmpty() || !f.open(QIODevice::WriteOnly) || f.write(bytes) != bytes.size())
      return error.isEmpty() ? QStringLiteral("cannot write '%1'; check that it is writable.").arg(path) : error;
    return {};
  }
  const exporter::ExportFormat* format = exporter::find_export_format(kind.toStdString());
  if (!format) return QStringLiteral("unknown export format '%1'.").arg(kind);
  std::FILE* file = std::fopen(path.toLocal8Bit().constData(), "wb");
  if (!file) return QStringLiteral("cannot write '%1'; check that its directory exists and is writable.").arg(path);
  Result<void> r;
  {
    exporter::ExportOptions opt;
    exporter::Output out(file);
    r = exporter::run_export(doc_->recording(), *format, opt, out);
  }
  std::fclose(file);
  return r ? QString() : QString::fromStdString(r.error());
}

void MainWindow::export_dialog(const QString& kind) {
  if (!doc_) return;
  const QString ext = kind == QLatin1String("png-view")   ? QStringLiteral("png")
                      : kind == QLatin1String("text")     ? QStringLiteral("txt")
                      : kind == QLatin1String("markdown") ? QStringLiteral("md")
                      : kind == QLatin1String("perfetto") ? QStringLiteral("pftrace")
                      : kind == QLatin1String("chrome")   ? QStringLiteral("json")
                                                          : kind;
  const QString base = QFileInfo(doc_->path()).completeBaseName();
  const QString p = QFileDialog::getSaveFileName(this, QStringLiteral("Export"), base + QLatin1Char('.') + ext);
  if (p.isEmpty()) return;
  const QString err = export_to(kind, p);
  if (!err.isEmpty())
    QMessageBox::warning(this, QStringLiteral("Export failed"), err);
  else
    status(QStringLiteral("exported %1").arg(p));
}

}  // namespace es::gui
