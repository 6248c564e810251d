#include "gui/stats_panel.h"

#include <QComboBox>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QSplitter>
#include <QTableWidget>
#include <QTimer>
#include <QVBoxLayout>
#include <atomic>

#include "gui/stats_histogram.h"
#include "replay/chains.h"

namespace es::gui {

// One computation on the worker thread. The worker owns its own Recording (SQLite connections
// are not shared between threads here); it writes `result` and then sets `done` (release), the
// GUI thread reads `result` only after seeing `done` (acquire).
struct StatsJob {
  std::string path;
  replay::StatsOptions opt;
  std::atomic<bool> cancel{false};
  std::atomic<int> permille{0};
  std::atomic<bool> done{false};
  std::optional<Result<replay::Stats>> result;
};

namespace {

// A cell that sorts by a number (Qt::UserRole) when it has one, by its text otherwise: "1.234us"
// and "12.50" must sort as times and shares, and "unknown" (no number, -1) below every time.
class Cell : public QTableWidgetItem {
 public:
  Cell(const QString& text, std::optional<int64_t> key) : QTableWidgetItem(text) {
    setFlags(Qt::ItemIsSelectable | Qt::ItemIsEnabled);
    if (key) setData(Qt::UserRole, QVariant::fromValue<qlonglong>(*key));
  }
  bool operator<(const QTableWidgetItem& o) const override {
    const QVariant a = data(Qt::UserRole), b = o.data(Qt::UserRole);
    if (a.isValid() || b.isValid()) return (a.isValid() ? a.toLongLong() : -1) < (b.isValid() ? b.toLongLong() : -1);
    return text() < o.text();
  }
};

QString qs(const std::string& s) { return QString::fromStdString(s); }

Cell* num_cell(uint64_t v) {
  auto* c = new Cell(QString::number(v), static_cast<int64_t>(v));
  c->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
  return c;
}
Cell* time_cell(std::optional<uint64_t> ns) {
  auto* c =
      new Cell(qs(replay::duration_us(ns)), ns ? std::optional<int64_t>(static_cast<int64_t>(*ns)) : std::nullopt);
  c->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
  return c;
}
// Shares sort by basis points.
Cell* pct_cell(uint64_t part, uint64_t whole, bool known = true) {
  const bool ok = known && whole;
  auto* c = new Cell(ok ? qs(replay::percent_text(part, whole)) : QStringLiteral("-"),
                     ok ? std::optional<int64_t>(static_cast<int64_t>(part * 10000 / whole)) : std::nullopt);
  c->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
  return c;
}

QTableWidget* make_table(const char* name, const QStringList& headers) {
  auto* t = new QTableWidget(0, static_cast<int>(headers.size()));
  t->setObjectName(QString::fromLatin1(name));
  t->setHorizontalHeaderLabels(headers);
  t->setSelectionBehavior(QAbstractItemView::SelectRows);
  t->setSelectionMode(QAbstractItemView::SingleSelection);
  t->setEditTriggers(QAbstractItemView::NoEditTriggers);
  t->verticalHeader()->hide();
  t->verticalHeader()->setDefaultSectionSize(20);
  t->horizontalHeader()->setStretchLastSection(true);
  t->setWordWrap(false);
  return t;
}

constexpr int kTableRole = Qt::UserRole + 1;  // on the kKind cell: StatsPick::Table
constexpr int kKeyRole = Qt::UserRole + 2;    // on the kKind cell: the row's key

}  // namespace

StatsPanel::StatsPanel(QWidget* parent) : QWidget(parent) {
  setObjectName(QStringLiteral("stats_panel"));
  auto* v = new QVBoxLayout(this);
  v->setContentsMargins(4, 4, 4, 4);
  summary_ = new QLabel(QStringLiteral("No recording is open."));
  summary_->setObjectName(QStringLiteral("stats_summary"));
  summary_->setWordWrap(true);
  summary_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  v->addWidget(summary_);
  auto* busy_row = new QHBoxLayout;
  progress_ = new QProgressBar;
  progress_->setObjectName(QStringLiteral("stats_progress"));
  progress_->setRange(0, 1000);
  progress_->setTextVisible(true);
  progress_->hide();
  action_ = new QPushButton(QStringLiteral("Cancel"));
  action_->setObjectName(QStringLiteral("stats_action"));
  action_->hide();
  connect(action_, &QPushButton::clicked, this, [this] {
    if (busy())
      cancel();
    else
      refresh();
  });
  busy_row->addWidget(progress_, 1);
  busy_row->addWidget(action_);
  v->addLayout(busy_row);
  poll_ = new QTimer(this);
  poll_->setInterval(50);
  connect(poll_, &QTimer::timeout, this, &StatsPanel::poll);

  exits_ = make_table("stats_table", {QStringLiteral("Kind"), QStringLiteral("Level"), QStringLiteral("Reason"),
                                      QStringLiteral("Count"), QStringLiteral("Count %"), QStringLiteral("Time"),
                                      QStringLiteral("Time %"), QStringLiteral("Min"), QStringLiteral("Max"),
                                      QStringLiteral("Mean"), QStringLiteral("Median"), QStringLiteral("P99")});
  exits_->setSortingEnabled(true);
  exits_->setToolTip(
      QStringLiteral("Exit-to-entry time per exit reason, as 'exitscope stats'. Click a header to sort, "
                     "a row to list its exits in the event table."));
  connect(exits_, &QTableWidget::cellClicked, this, [this](int row, int) { pick_row(row); });
  histogram_ = new HistogramWidget;
  connect(histogram_, &HistogramWidget::bucket_clicked, this, &StatsPanel::pick_bucket);
  histogram_kind_ = new QComboBox;
  histogram_kind_->setObjectName(QStringLiteral("stats_histogram_kind"));
  histogram_kind_->addItem(QStringLiteral("Exit-to-entry time (VM exits)"));
  histogram_kind_->addItem(QStringLiteral("Raise-to-delivery time (event chains)"));
  connect(histogram_kind_, &QComboBox::currentIndexChanged, this, &StatsPanel::show_histogram);
  auto* hist_page = new QWidget;
  auto* hl = new QVBoxLayout(hist_page);
  hl->setContentsMargins(0, 0, 0, 0);
  hl->addWidget(histogram_kind_);
  hl->addWidget(histogram_, 1);

  auto* top = new QSplitter(Qt::Horizontal);
  top->addWidget(exits_);
  top->addWidget(hist_page);
  top->setSizes({820, 380});

  chain_kinds_ =
      make_table("stats_chain_kinds", {QStringLiteral("Event"), QStringLiteral("Chains"), QStringLiteral("Delivered"),
                                       QStringLiteral("Min"), QStringLiteral("Mean"), QStringLiteral("Max"),
                                       QStringLiteral("Exits"), QStringLiteral("Reinjected")});
  chain_kinds_->setSortingEnabled(true);
  chain_kinds_->setToolTip(
      QStringLiteral("Raise-to-delivery time per kind of event; exits = VM exits during its "
                     "delivery (IDT-vectoring)."));
  slowest_ =
      make_table("stats_slowest", {QStringLiteral("Chain"), QStringLiteral("Event"), QStringLiteral("Time"),
                                   QStringLiteral("Exits"), QStringLiteral("Reinjections"), QStringLiteral("Outcome")});
  slowest_->setToolTip(QStringLiteral("The slowest delivered chains; click one to open it."));
  connect(slowest_, &QTableWidget::cellClicked, this, [this](int row, int) {
    if (auto* it = slowest_->item(row, 0)) emit chain_selected(it->data(Qt::UserRole).toULongLong());
  });
  auto* bottom = new QSplitter(Qt::Horizontal);
  bottom->addWidget(chain_kinds_);
  bottom->addWidget(slowest_);
  bottom->setSizes({560, 500});

  auto* split = new QSplitter(Qt::Vertical);
  split->addWidget(top);
  split->addWidget(bottom);
  split->setSizes({380, 200});
  v->addWidget(split, 1);
}

StatsPanel::~StatsPanel() { stop_worker(); }

void StatsPanel::stop_worker() {
  if (job_) job_->cancel = true;
  if (worker_.joinable()) worker_.join();
  job_.reset();
  done_ = nullptr;
  if (poll_) poll_->stop();
  if (progress_) progress_->hide();
}

void StatsPanel::start(replay::StatsOptions opt, const QString& doing,
                       std::function<void(Result<replay::Stats>)> done) {
  stop_worker();
  auto job = std::make_shared<StatsJob>();
  job->path = doc_->recording().path();
  job->opt = std::move(opt);
  job_ = job;
  done_ = std::move(done);
  worker_ = std::thread([job] {
    auto rec = replay::Recording::open(job->path);
    if (!rec) {
      job->result.emplace(make_error(rec.error()));
    } else {
      job->opt.progress = [&job = *job](double f) {
        job.permille.store(static_cast<int>(f * 1000), std::memory_order_relaxed);
        return !job.cancel.load(std::memory_order_relaxed);
      };
      job->result.emplace(replay::compute_stats(*rec, job->opt));
    }
    job->done.store(true, std::memory_order_release);
  });
  progress_->setValue(0);
  progress_->setFormat(doing + QStringLiteral(" %p%"));
  progress_->show();
  action_->setText(QStringLiteral("Cancel"));
  action_->show();
  poll_->start();
}

void StatsPanel::poll() {
  if (!job_) {
    poll_->stop();
    return;
  }
  progress_->setValue(job_->permille.load(std::memory_order_relaxed));
  if (!job_->done.load(std::memory_order_acquire)) return;
  worker_.join();
  auto job = std::move(job_);
  auto done = std::move(done_);
  done_ = nullptr;
  poll_->stop();
  progress_->hide();
  action_->hide();
  if (done && job->result) done(std::move(*job->result));
}

void StatsPanel::cancel() {
  if (!job_) return;
  const bool figures = !stats_;
  stop_worker();
  if (figures) {
    summary_->setText(QStringLiteral("Statistics cancelled: nothing was computed. Press Compute to start again."));
    action_->setText(QStringLiteral("Compute"));
    action_->show();
    stale_ = false;
  } else {
    action_->hide();
    summary_->setText(summary_text_);
  }
}

void StatsPanel::set_document(render::Document* doc) {
  stop_worker();
  action_->hide();
  doc_ = doc;
  stats_.reset();
  stale_ = true;
  exits_->setRowCount(0);
  chain_kinds_->setRowCount(0);
  slowest_->setRowCount(0);
  histogram_->set_picture({});
  summary_->setText(doc ? QStringLiteral("Computing...") : QStringLiteral("No recording is open."));
  if (doc && isVisible()) refresh();
}

void StatsPanel::showEvent(QShowEvent* e) {
  QWidget::showEvent(e);
  if (doc_ && stale_) refresh();
}

void StatsPanel::refresh() {
  if (!doc_) return;
  stale_ = false;
  replay::StatsOptions opt;
  opt.slowest_chains = 20;
  stats_.reset();
  summary_->setText(
      QStringLiteral("Computing the statistics of %1...").arg(QFileInfo(doc_->path()).fileName().toHtmlEscaped()));
  start(opt, QStringLiteral("Computing"), [this](Result<replay::Stats> st) {
    if (!st) {
      summary_->setText(QStringLiteral("Cannot compute the statistics: %1").arg(qs(st.error())));
      action_->setText(QStringLiteral("Compute"));
      action_->show();
      return;
    }
    show_figures(std::move(st).value());
  });
}

void StatsPanel::show_figures(replay::Stats figures) {
  stats_ = std::move(figures);
  const replay::Stats& s = *stats_;

  exits_->setSortingEnabled(false);
  exits_->setRowCount(0);
  auto add_rows = [&](const std::vector<replay::ExitRow>& rows, const replay::Latency& all,
                      replay::StatsPick::Table t) {
    for (const replay::ExitRow& r : rows) {
      const int row = exits_->rowCount();
      exits_->insertRow(row);
      auto* kind = new Cell(
          t == replay::StatsPick::Table::Exits ? QStringLiteral("exit") : QStringLiteral("nested exit"), std::nullopt);
      kind->setData(kTableRole, static_cast<int>(t));
      kind->setData(kKeyRole, qs(r.key));
      exits_->setItem(row, kKind, kind);
      auto* level = new Cell(QStringLiteral("L%1").arg(r.level), int64_t{r.level});
      exits_->setItem(row, kLevel, level);
      exits_->setItem(row, kKey, new Cell(qs(r.key), std::nullopt));
      const replay::Latency& l = r.lat;
      exits_->setItem(row, kCount, num_cell(l.count));
      exits_->setItem(row, kCountPct, pct_cell(l.count, all.count));
      exits_->setItem(row, kTime, time_cell(l.timed ? std::optional<uint64_t>(l.total_ns) : std::nullopt));
      exits_->setItem(row, kTimePct, pct_cell(l.total_ns, all.total_ns, l.timed != 0));
      exits_->setItem(row, kMin, time_cell(l.min_ns));
      exits_->setItem(row, kMax, time_cell(l.max_ns));
      exits_->setItem(row, kMean, time_cell(l.mean_ns));
      exits_->setItem(row, kMedian, time_cell(l.median_ns));
      exits_->setItem(row, kP99, time_cell(l.p99_ns));
    }
  };
  add_rows(s.exits, s.all_exits, replay::StatsPick::Table::Exits);
  add_rows(s.nested_exits, s.all_nested, replay::StatsPick::Table::NestedExits);
  exits_->setSortingEnabled(true);
  exits_->sortItems(kCount, Qt::DescendingOrder);
  exits_->resizeColumnsToContents();

  chain_kinds_->setSortingEnabled(false);
  chain_kinds_->setRowCount(0);
  for (const replay::ChainKindRow& k : s.chain_kinds) {
    const int row = chain_kinds_->rowCount();
    chain_kinds_->insertRow(row);
    chain_kinds_->setItem(row, 0, new Cell(qs(k.key), std::nullopt));
    chain_kinds_->setItem(row, 1, num_cell(k.count));
    chain_kinds_->setItem(row, 2, num_cell(k.delivered));
    chain_kinds_->setItem(row, 3, time_cell(k.min_ns));
    chain_kinds_->setItem(row, 4, time_cell(k.mean_ns));
    chain_kinds_->setItem(row, 5, time_cell(k.max_ns));
    chain_kinds_->setItem(row, 6, num_cell(k.exits));
    chain_kinds_->setItem(row, 7, num_cell(k.reinjections));
  }
  chain_kinds_->setSortingEnabled(true);
  chain_kinds_->resizeColumnsToContents();

  slowest_->setRowCount(0);
  for (const replay::SlowChain& c : s.slowest) {
    const int row = slowest_->rowCount();
    slowest_->insertRow(row);
    auto* id = num_cell(c.id);
    id->setData(Qt::UserRole, QVariant::fromValue<qulonglong>(c.id));
    slowest_->setItem(row, 0, id);
    slowest_->setItem(row, 1, new Cell(qs(c.key), std::nullopt));
    slowest_->setItem(row, 2, time_cell(c.time_ns));
    slowest_->setItem(row, 3, num_cell(c.exits));
    slowest_->setItem(row, 4, num_cell(c.reinjections));
    const std::string_view outcome = replay::to_string(c.outcome);
    slowest_->setItem(row, 5,
                      new Cell(QString::fromUtf8(outcome.data(), static_cast<int>(outcome.size())), std::nullopt));
  }
  slowest_->resizeColumnsToContents();

  show_histogram(histogram_kind_->currentIndex());

  QString text = QStringLiteral("<b>%1</b>: %2 VM exits, %3 with a known exit-to-entry time totalling %4")
                     .arg(QFileInfo(doc_->path()).fileName().toHtmlEscaped())
                     .arg(s.all_exits.count)
                     .arg(s.all_exits.timed)
                     .arg(qs(replay::duration_us(s.all_exits.timed ? std::optional<uint64_t>(s.all_exits.total_ns)
                                                                   : std::nullopt)));
  if (s.all_nested.count) text += QStringLiteral("; %1 nested exits (L2 -> L1)").arg(s.all_nested.count);
  text += QStringLiteral("; %1 event chains.").arg(s.chains);
  if (s.entries == 0 && s.all_exits.count)
    text += QStringLiteral(" <span style='color:#b00000'>No VM entry records: every time is unknown.</span>");
  if (s.all_exits.count != s.all_exits.timed && s.all_exits.timed)
    text += s.all_exits.count - s.all_exits.timed == 1
                ? QStringLiteral(" 1 exit has no later entry: its time is unknown and left out.")
                : QStringLiteral(" %1 exits have no later entry: their time is unknown and left out.")
                      .arg(s.all_exits.count - s.all_exits.timed);
  if (doc_->drops().total())
    text += QStringLiteral(
                " <span style='color:#b00000'>%1 records were dropped while recording: these figures "
                "have gaps.</span>")
                .arg(doc_->drops().total());
  // The sentence `stats` prints on stderr when the chain figures were walked instead of read
  // (a recording without this build's stored chain figures): why, and how to get them stored.
  if (!s.notice.empty())
    text += QStringLiteral(" <span style='color:#805000'>%1</span>").arg(qs(s.notice).toHtmlEscaped());
  summary_text_ = text;
  summary_->setText(text);
}

void StatsPanel::pick_row(int row) {
  const QTableWidgetItem* kind = exits_->item(row, kKind);
  const QTableWidgetItem* level = exits_->item(row, kLevel);
  if (!kind || !level) return;
  replay::StatsPick p;
  p.table = static_cast<replay::StatsPick::Table>(kind->data(kTableRole).toInt());
  p.level = static_cast<uint8_t>(level->data(Qt::UserRole).toInt());
  p.key = kind->data(kKeyRole).toString().toStdString();
  pick(p, QStringLiteral("%1 %2 at L%3").arg(kind->text(), kind->data(kKeyRole).toString()).arg(p.level));
}

void StatsPanel::show_histogram(int which) {
  if (!stats_) {
    histogram_->set_picture({});
    return;
  }
  histogram_->set_picture(
      histogram_picture(*stats_, which == 1 ? HistogramKind::Chain : HistogramKind::Exit, QString()));
}

void StatsPanel::pick_bucket(int bucket) {
  if (bucket < 0) return;
  replay::StatsPick p;
  const bool chains = histogram_kind_->currentIndex() == 1;
  p.table = chains ? replay::StatsPick::Table::ChainHistogram : replay::StatsPick::Table::Histogram;
  p.bucket = static_cast<unsigned>(bucket);
  pick(p, QStringLiteral("%1 taking [%2, %3)")
              .arg(chains ? QStringLiteral("roots of chains") : QStringLiteral("exits"),
                   qs(replay::short_duration(replay::histogram_from_ns(p.bucket))),
                   qs(replay::short_duration(replay::histogram_to_ns(p.bucket)))));
}

void StatsPanel::pick(const replay::StatsPick& p, const QString& what) {
  if (!doc_ || !stats_) return;  // no click before the figures: they are what was clicked
  replay::StatsOptions opt;
  opt.chains = p.table == replay::StatsPick::Table::ChainHistogram;
  opt.pick = p;
  start(opt, QStringLiteral("Listing %1").arg(what), [this, what](Result<replay::Stats> st) {
    if (!st) {
      summary_->setText(QStringLiteral("Cannot list the exits: %1").arg(qs(st.error())));
      return;
    }
    emit exits_selected(what, st->picked);
  });
}

}  // namespace es::gui
