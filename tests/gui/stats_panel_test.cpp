// The statistics panel (View > Statistics) and the histogram pictures, offscreen, on real
// recordings made here by the built exitscope. The expected figures come from `exitscope stats
// --format json` on the same recording (the panel must show what the CLI says) and the exits a
// click must select from SQL written here (an exit's time runs to the next VM entry of the same
// vCPU and level, as KVM's kvm_exit -> kvm_entry).
#include <sqlite3.h>

#include <QAction>
#include <QComboBox>
#include <QDir>
#include <QDockWidget>
#include <QFile>
#include <QHeaderView>
#include <QImage>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QStandardPaths>
#include <QTableView>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTextDocument>
#include <QtTest>

#include "gui/main_window.h"
#include "gui/stats_histogram.h"
#include "gui/stats_panel.h"
#include "replay/stats.h"

#include <QLabel>
#include <QProgressBar>
#include <QPushButton>

using es::gui::MainWindow;
using es::gui::StatsPanel;

namespace {

struct Run {
  int code = -1;
  QByteArray out;
  QString err;
};

Run run(const QString& program, const QStringList& args) {
  QProcess p;
  p.start(program, args);
  p.waitForFinished(180000);
  return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, p.readAllStandardOutput(),
          QString::fromUtf8(p.readAllStandardError())};
}

// Integer rows of an SQL query on the recording.
std::vector<std::vector<qint64>> sql(const QString& path, const QString& query) {
  std::vector<std::vector<qint64>> rows;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.toUtf8().constData(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return rows;
  }
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, query.toUtf8().constData(), -1, &st, nullptr) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {
      std::vector<qint64> r;
      for (int c = 0; c < sqlite3_column_count(st); ++c) r.push_back(sqlite3_column_int64(st, c));
      rows.push_back(std::move(r));
    }
  } else {
    qWarning("%s: %s", sqlite3_errmsg(db), qPrintable(query));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rows;
}

// Exit ids with their exit-to-entry time (NULL -> -1), VM exits (kind 1) to the next VM entry (kind 2).
QString exit_times_sql(const QString& where) {
  return QStringLiteral(
             "SELECT x.id, COALESCE((SELECT n.time_ns FROM events n WHERE n.kind = 2 AND n.vcpu = x.vcpu AND n.level = "
             "x.level "
             "AND n.id > x.id ORDER BY n.id LIMIT 1) - x.time_ns, -1) FROM events x WHERE x.kind = 1 AND (%1) ORDER BY "
             "x.id")
      .arg(where);
}

// "1.234us", as `stats` prints a time, from ns (or "unknown").
QString us(const QJsonValue& v) {
  if (v.isNull()) return QStringLiteral("unknown");
  const qint64 ns = v.toInteger();
  return QStringLiteral("%1.%2us").arg(ns / 1000).arg(ns % 1000, 3, 10, QLatin1Char('0'));
}

}  // namespace

class StatsPanelTest : public QObject {
  Q_OBJECT

 private:
  QTemporaryDir dir_;
  QString timer_db_, nested_db_;

  QString record(const QString& scenario) {
    const QString path = dir_.filePath(scenario + QStringLiteral(".db"));
    const Run r = run(QStringLiteral(ES_EXITSCOPE_BIN), {"record", "--scenario", scenario, "-o", path, "--force"});
    if (r.code != 0) qWarning("record %s failed: %s", qPrintable(scenario), qPrintable(r.err));
    return path;
  }

  QJsonObject stats_json(const QString& db) {
    const Run r =
        run(QStringLiteral(ES_EXITSCOPE_BIN), {"stats", db, "--format", "json", "--histogram", "--slowest", "20"});
    if (r.code != 0) qWarning("stats failed: %s", qPrintable(r.err));
    return QJsonDocument::fromJson(r.out).object();
  }

  // A main window on `db` with the statistics dock shown (View > Statistics).
  std::unique_ptr<MainWindow> window(const QString& db) {
    auto w = std::make_unique<MainWindow>();
    w->resize(1280, 900);
    w->show();
    if (!QTest::qWaitForWindowExposed(w.get())) qWarning("window not exposed");
    if (!w->open_file(db)) qWarning("could not open %s", qPrintable(db));
    if (auto* a = w->findChild<QAction*>(QStringLiteral("show_stats"))) a->trigger();
    // The figures are computed on the panel's worker thread and shown from the event loop.
    if (!QTest::qWaitFor([&] { return !w->stats_panel()->busy(); }, 60000)) qWarning("statistics still computing");
    return w;
  }

  // What a click selects arrives from the worker thread, through the event loop.
  static void settle(MainWindow& w) {
    if (!QTest::qWaitFor([&] { return !w.stats_panel()->busy(); }, 60000)) qWarning("statistics still computing");
  }
  static int event_rows(MainWindow& w) {
    settle(w);
    return w.findChild<QTableView*>(QStringLiteral("event_table"))->model()->rowCount();
  }
  static std::vector<qint64> event_ids(MainWindow& w) {
    settle(w);
    auto* m = w.findChild<QTableView*>(QStringLiteral("event_table"))->model();
    std::vector<qint64> ids;
    for (int r = 0; r < m->rowCount(); ++r) ids.push_back(m->index(r, 0).data().toLongLong());
    return ids;
  }

 private slots:
  void initTestCase() {
    QStandardPaths::setTestModeEnabled(true);
    QVERIFY(dir_.isValid());
    timer_db_ = record(QStringLiteral("timer-irq"));
    nested_db_ = record(QStringLiteral("nested-irq-vectoring"));
    QVERIFY(QFile::exists(timer_db_));
    QVERIFY(QFile::exists(nested_db_));
  }

  // Every row of `stats --format json` (exits and nested exits) is a row of the panel with the
  // same texts; the histogram has the same buckets; the chain tables the same chains.
  void panel_figures_equal_stats_json() {
    for (const QString& db : {timer_db_, nested_db_}) {
      auto w = window(db);
      StatsPanel* panel = w->stats_panel();
      QVERIFY(panel->isVisible());
      QVERIFY(panel->stats());
      const QJsonObject doc = stats_json(db);
      QVERIFY(!doc.isEmpty());
      QTableWidget* t = panel->exit_table();
      int expected_rows = 0;
      for (const char* table : {"exits", "nested_exits"}) {
        const QString kind =
            QLatin1String(table) == QLatin1String("exits") ? QStringLiteral("exit") : QStringLiteral("nested exit");
        for (const QJsonValue& v : doc[QLatin1String(table)].toObject()[QStringLiteral("rows")].toArray()) {
          const QJsonObject r = v.toObject();
          ++expected_rows;
          int row = -1;
          for (int i = 0; i < t->rowCount(); ++i)
            if (t->item(i, StatsPanel::kKind)->text() == kind &&
                t->item(i, StatsPanel::kLevel)->text() ==
                    QStringLiteral("L%1").arg(r[QStringLiteral("level")].toInt()) &&
                t->item(i, StatsPanel::kKey)->text() == r[QStringLiteral("key")].toString())
              row = i;
          const QString what = kind + QLatin1Char(' ') + r[QStringLiteral("key")].toString();
          QVERIFY2(row >= 0, qPrintable("no panel row for " + what));
          QCOMPARE(t->item(row, StatsPanel::kCount)->text(), QString::number(r[QStringLiteral("count")].toInteger()));
          QCOMPARE(t->item(row, StatsPanel::kCountPct)->text(),
                   QString::number(r[QStringLiteral("count_pct")].toDouble(), 'f', 2));
          QCOMPARE(t->item(row, StatsPanel::kTime)->text(), us(r[QStringLiteral("time_ns")]));
          QCOMPARE(t->item(row, StatsPanel::kMin)->text(), us(r[QStringLiteral("min_ns")]));
          QCOMPARE(t->item(row, StatsPanel::kMax)->text(), us(r[QStringLiteral("max_ns")]));
          QCOMPARE(t->item(row, StatsPanel::kMean)->text(), us(r[QStringLiteral("mean_ns")]));
          QCOMPARE(t->item(row, StatsPanel::kMedian)->text(), us(r[QStringLiteral("median_ns")]));
          QCOMPARE(t->item(row, StatsPanel::kP99)->text(), us(r[QStringLiteral("p99_ns")]));
        }
      }
      QVERIFY(expected_rows > 0);
      QCOMPARE(t->rowCount(), expected_rows);
      if (db == nested_db_)
        QVERIFY2(!doc[QStringLiteral("nested_exits")].toObject()[QStringLiteral("rows")].toArray().isEmpty(),
                 "the nested scenario should have nested exits");
      const QJsonArray hist = doc[QStringLiteral("histogram")].toArray();
      const auto& buckets = panel->histogram()->picture().buckets;
      QCOMPARE(buckets.size(), static_cast<size_t>(hist.size()));
      for (qsizetype i = 0; i < hist.size(); ++i)
        QCOMPARE(static_cast<qint64>(buckets[static_cast<size_t>(i)]),
                 hist[i].toObject()[QStringLiteral("count")].toInteger());
      const QJsonArray slowest = doc[QStringLiteral("chains")].toObject()[QStringLiteral("slowest")].toArray();
      QCOMPARE(panel->slowest_table()->rowCount(), static_cast<int>(slowest.size()));
      for (qsizetype i = 0; i < slowest.size(); ++i)
        QCOMPARE(panel->slowest_table()->item(static_cast<int>(i), 0)->text(),
                 QString::number(slowest[i].toObject()[QStringLiteral("chain")].toInteger()));
    }
  }

  // A recording whose chain outcomes were decided by other chain rules (its chain_rules stamp
  // differs from this build's): `stats` walks the chains and says so on stderr; the panel shows
  // the same sentence under its figures (before this test it said nothing).
  void panel_says_when_the_chain_figures_are_walked() {
    const QString db = dir_.filePath(QStringLiteral("other-rules.db"));
    QFile::remove(db);
    QVERIFY(QFile::copy(timer_db_, db));
    sqlite3* h = nullptr;
    QCOMPARE(sqlite3_open(db.toUtf8().constData(), &h), SQLITE_OK);
    QCOMPARE(sqlite3_exec(h, "UPDATE chain_rules SET version = 999", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(h);
    const Run cli = run(QStringLiteral(ES_EXITSCOPE_BIN), {"stats", db});
    QCOMPARE(cli.code, 0);
    const QString prefix = QStringLiteral("exitscope stats: ");
    QVERIFY2(cli.err.startsWith(prefix), qPrintable(cli.err));
    const QString sentence = cli.err.mid(prefix.size()).trimmed();
    QVERIFY2(sentence.contains(QStringLiteral("chain rules v999")), qPrintable(sentence));
    auto w = window(db);
    auto* summary = w->stats_panel()->findChild<QLabel*>(QStringLiteral("stats_summary"));
    QVERIFY(summary);
    QTextDocument plain;
    plain.setHtml(summary->text());
    QVERIFY2(plain.toPlainText().contains(sentence), qPrintable(summary->text()));
    // The file with this build's stamp says nothing of the kind.
    auto fresh = window(timer_db_);
    auto* fresh_summary = fresh->stats_panel()->findChild<QLabel*>(QStringLiteral("stats_summary"));
    QVERIFY(fresh_summary);
    QVERIFY2(!fresh_summary->text().contains(QStringLiteral("chain rules")), qPrintable(fresh_summary->text()));
  }

  // Clicking the Count header sorts by count as numbers (ascending, then descending); the mean
  // column sorts "unknown" below every time.
  void table_sorts_numerically() {
    auto w = window(timer_db_);
    QTableWidget* t = w->stats_panel()->exit_table();
    QVERIFY(t->rowCount() >= 2);
    for (int pass = 0; pass < 2; ++pass) {
      QTest::mouseClick(t->horizontalHeader()->viewport(), Qt::LeftButton, {},
                        QPoint(t->horizontalHeader()->sectionViewportPosition(StatsPanel::kCount) + 5, 5));
      const bool asc = t->horizontalHeader()->sortIndicatorOrder() == Qt::AscendingOrder;
      for (int i = 1; i < t->rowCount(); ++i) {
        const qint64 a = t->item(i - 1, StatsPanel::kCount)->text().toLongLong(),
                     b = t->item(i, StatsPanel::kCount)->text().toLongLong();
        QVERIFY2(asc ? a <= b : a >= b, qPrintable(QStringLiteral("row %1: %2 then %3").arg(i).arg(a).arg(b)));
      }
    }
  }

  // Clicking a row lists exactly that reason's exits at that level in the event table (SQL: VM
  // exits of that reason and level); the cursor goes to the first.
  void clicking_a_row_selects_its_exits() {
    auto w = window(timer_db_);
    QTableWidget* t = w->stats_panel()->exit_table();
    int row = -1;
    for (int i = 0; i < t->rowCount(); ++i)
      if (t->item(i, StatsPanel::kKey)->text() == QLatin1String("HLT")) row = i;
    QVERIFY2(row >= 0, "timer-irq should exit on HLT");
    const QRect cell = t->visualItemRect(t->item(row, StatsPanel::kKey));
    QTest::mouseClick(t->viewport(), Qt::LeftButton, {}, cell.center());
    const auto expect = sql(
        timer_db_, exit_times_sql(QStringLiteral("x.reason = 12 AND x.level = 1")));  // 12 = HLT (SDM Vol. 3C App. C)
    QVERIFY(!expect.empty());
    std::vector<qint64> ids;
    for (const auto& r : expect) ids.push_back(r[0]);
    QCOMPARE(event_ids(*w), ids);
    QCOMPARE(event_rows(*w), t->item(row, StatsPanel::kCount)->text().toInt());
    QVERIFY(w->cursor());
    QCOMPARE(static_cast<qint64>(w->cursor()->rec.id), ids.front());
    // An empty filter shows every event again.
    QVERIFY(w->apply_query(QString()).isEmpty());
    QVERIFY(event_rows(*w) > static_cast<int>(ids.size()));
  }

  // Clicking a histogram bar lists the exits whose exit-to-entry time falls in its bucket (SQL).
  void clicking_a_bar_selects_its_exits() {
    auto w = window(timer_db_);
    auto* hist = w->stats_panel()->histogram();
    const auto& buckets = hist->picture().buckets;
    // The highest non-empty bucket: the slow exits a user would look at.
    int b = static_cast<int>(buckets.size()) - 1;
    while (b >= 0 && buckets[static_cast<size_t>(b)] == 0) --b;
    QVERIFY(b >= 0);
    const QPoint at = hist->bar_center(b);
    QVERIFY(!at.isNull());
    QTest::mouseClick(hist, Qt::LeftButton, {}, at);
    const qint64 lo = b == 0 ? 0 : (qint64{1} << b), hi = qint64{1} << (b + 1);
    std::vector<qint64> ids;
    for (const auto& r : sql(timer_db_, exit_times_sql(QStringLiteral("1"))))
      if (r[1] >= lo && r[1] < hi) ids.push_back(r[0]);
    QCOMPARE(static_cast<qint64>(ids.size()), static_cast<qint64>(buckets[static_cast<size_t>(b)]));
    QCOMPARE(event_ids(*w), ids);
    QCOMPARE(hist->picture().highlight, b);
  }

  // The raise-to-delivery histogram (the combo box) has `stats`'s chain buckets; clicking its
  // highest bar lists the root (RAISE) records of exactly the chains delivered in that bucket's
  // time (SQL: last DELIVERY of the chain minus its RAISE; timer-irq delivers every tick).
  void clicking_a_chain_bar_lists_its_chains() {
    auto w = window(timer_db_);
    auto* kind = w->stats_panel()->findChild<QComboBox*>(QStringLiteral("stats_histogram_kind"));
    QVERIFY(kind);
    kind->setCurrentIndex(1);
    auto* hist = w->stats_panel()->histogram();
    const auto& buckets = hist->picture().buckets;
    const QJsonArray expect =
        stats_json(timer_db_)[QStringLiteral("chains")].toObject()[QStringLiteral("histogram")].toArray();
    QCOMPARE(buckets.size(), static_cast<size_t>(expect.size()));
    for (qsizetype i = 0; i < expect.size(); ++i)
      QCOMPARE(static_cast<qint64>(buckets[static_cast<size_t>(i)]),
               expect[i].toObject()[QStringLiteral("count")].toInteger());
    int b = static_cast<int>(buckets.size()) - 1;
    while (b >= 0 && buckets[static_cast<size_t>(b)] == 0) --b;
    QVERIFY(b >= 0);
    QTest::mouseClick(hist, Qt::LeftButton, {}, hist->bar_center(b));
    const qint64 lo = b == 0 ? 0 : (qint64{1} << b), hi = qint64{1} << (b + 1);
    std::vector<qint64> ids;
    for (const auto& r :
         sql(timer_db_, QStringLiteral("SELECT r.id, (SELECT MAX(v.time_ns) FROM events v WHERE v.kind = 3 AND "
                                       "v.origin = r.id) - r.time_ns FROM events r WHERE r.kind = 5 AND "
                                       "r.origin = r.id ORDER BY r.id")))
      if (r[1] >= lo && r[1] < hi) ids.push_back(r[0]);
    QVERIFY(!ids.empty());
    QCOMPARE(event_ids(*w), ids);
  }

  // A slow chain opens: the chain list selects it and the cursor is on its first event.
  void clicking_a_slow_chain_opens_it() {
    auto w = window(timer_db_);
    QTableWidget* s = w->stats_panel()->slowest_table();
    QVERIFY(s->rowCount() >= 2);
    const int row = 1;  // not the first chain, which opening the recording selects already
    const quint64 chain = s->item(row, 0)->text().toULongLong();
    QTest::mouseClick(s->viewport(), Qt::LeftButton, {}, s->visualItemRect(s->item(row, 1)).center());
    QCOMPARE(static_cast<quint64>(w->current_chain()), chain);
    QVERIFY(w->cursor());
    QCOMPARE(static_cast<quint64>(w->cursor()->rec.origin), chain);
  }

  // Issue #21: on 4.2 M events the panel blocked the window for 18 s. Expected now: showing the
  // panel returns at once with the computation running on a worker (busy, no figures yet); the
  // event loop runs meanwhile (the progress bar advances between 0 and 100 %); Cancel stops it
  // with nothing shown and a Compute button; Compute gives figures identical to compute_stats
  // called directly on the same recording. A 140 k-event recording (timer-irq, 20000 ticks)
  // takes long enough (about half a second here) to be seen in progress.
  void computes_off_the_gui_thread_with_progress_and_cancel() {
    const QString db = dir_.filePath(QStringLiteral("big.db"));
    // 1.4 M events: large enough that the figures take longer than the first progress signal
    // (since stats reads the covering exit index and the stored chain rows, 140 k took ~20 ms).
    const Run r = run(QStringLiteral(ES_EXITSCOPE_BIN), {"record", "--scenario", "timer-irq", "--arg", "200000",
                                                         "--quiet", "--no-check", "-o", db, "--force"});
    QCOMPARE(r.code, 0);
    auto w = std::make_unique<MainWindow>();
    w->resize(1280, 900);
    w->show();
    QVERIFY(QTest::qWaitForWindowExposed(w.get()));
    QVERIFY(w->open_file(db));
    StatsPanel* panel = w->stats_panel();
    auto* bar = panel->findChild<QProgressBar*>(QStringLiteral("stats_progress"));
    auto* action = panel->findChild<QPushButton*>(QStringLiteral("stats_action"));
    QVERIFY(bar && action);
    w->findChild<QAction*>(QStringLiteral("show_stats"))->trigger();
    QVERIFY(panel->busy());
    QVERIFY(!panel->stats());
    QVERIFY(bar->isVisible());
    QCOMPARE(action->text(), QStringLiteral("Cancel"));
    // The window's event loop runs while the worker computes: progress arrives through it.
    QTRY_VERIFY_WITH_TIMEOUT(bar->value() > 0 || !panel->busy(), 30000);
    QVERIFY2(panel->busy(), "the figures were done before any progress was shown");
    QVERIFY(bar->value() < 1000);
    QDir().mkpath(QStringLiteral(ES_SCREENSHOT_DIR));
    QVERIFY(w->grab().toImage().save(QStringLiteral(ES_SCREENSHOT_DIR "/stats_computing.png")));
    QTest::mouseClick(action, Qt::LeftButton);
    QVERIFY(!panel->busy());
    QVERIFY(!panel->stats());
    QVERIFY(!bar->isVisible());
    QCOMPARE(action->text(), QStringLiteral("Compute"));
    QVERIFY(panel->findChild<QLabel*>(QStringLiteral("stats_summary"))->text().contains(QStringLiteral("cancelled")));
    QTest::qWait(100);
    QVERIFY(!panel->stats());  // a cancelled result never lands
    QTest::mouseClick(action, Qt::LeftButton);
    QVERIFY(panel->busy());
    QTRY_VERIFY_WITH_TIMEOUT(!panel->busy(), 60000);
    QVERIFY(panel->stats());
    // The same call on this thread.
    auto rec = es::replay::Recording::open(db.toStdString());
    QVERIFY(rec);
    es::replay::StatsOptions opt;
    opt.slowest_chains = 20;
    auto direct = es::replay::compute_stats(*rec, opt);
    QVERIFY(direct);
    const es::replay::Stats& a = *panel->stats();
    const es::replay::Stats& b = *direct;
    auto same_rows = [](const std::vector<es::replay::ExitRow>& x, const std::vector<es::replay::ExitRow>& y) {
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        const auto &p = x[i].lat, &q = y[i].lat;
        if (x[i].key != y[i].key || x[i].level != y[i].level || p.count != q.count || p.timed != q.timed ||
            p.total_ns != q.total_ns || p.min_ns != q.min_ns || p.max_ns != q.max_ns || p.mean_ns != q.mean_ns ||
            p.median_ns != q.median_ns || p.p99_ns != q.p99_ns)
          return false;
      }
      return true;
    };
    QVERIFY(!a.exits.empty());
    QVERIFY(same_rows(a.exits, b.exits));
    QVERIFY(same_rows(a.nested_exits, b.nested_exits));
    QVERIFY(same_rows(a.by_vcpu, b.by_vcpu));
    QCOMPARE(a.histogram, b.histogram);
    QCOMPARE(a.chain_histogram, b.chain_histogram);
    QCOMPARE(a.chains, b.chains);
    QCOMPARE(a.entries, b.entries);
    QCOMPARE(a.chain_kinds.size(), b.chain_kinds.size());
    for (size_t i = 0; i < a.chain_kinds.size(); ++i) {
      QCOMPARE(a.chain_kinds[i].key, b.chain_kinds[i].key);
      QCOMPARE(a.chain_kinds[i].count, b.chain_kinds[i].count);
      QCOMPARE(a.chain_kinds[i].total_ns, b.chain_kinds[i].total_ns);
    }
    QCOMPARE(a.slowest.size(), b.slowest.size());
    for (size_t i = 0; i < a.slowest.size(); ++i) QCOMPARE(a.slowest[i].id, b.slowest[i].id);
    QCOMPARE(panel->exit_table()->rowCount(), static_cast<int>(a.exits.size() + a.nested_exits.size()));
  }

  // Screenshots for a human to look at: the panel docked in the main window and alone.
  void screenshot_stats_panel() {
    auto w = window(nested_db_);
    QTest::qWait(50);
    QDir().mkpath(QStringLiteral(ES_SCREENSHOT_DIR));
    QVERIFY(w->grab().toImage().save(QStringLiteral(ES_SCREENSHOT_DIR "/stats_dock.png")));
    auto w2 = window(timer_db_);
    auto* dock = w2->findChild<QDockWidget*>(QStringLiteral("stats_dock"));
    dock->setFloating(true);
    dock->resize(1200, 700);
    QTest::qWait(50);
    const QImage img = w2->stats_panel()->grab().toImage();
    QVERIFY(img.width() >= 600);
    QVERIFY(img.save(QStringLiteral(ES_SCREENSHOT_DIR "/stats_panel.png")));
  }

  // `exitscope export --format svg|png --histogram exit|chain`: an SVG whose text names the axes
  // and the counts of `stats`, a PNG of the default size; the binary rules of other exports.
  void histogram_export_svg_and_png() {
    const QString svg = dir_.filePath(QStringLiteral("h.svg")), png = dir_.filePath(QStringLiteral("h.png"));
    Run r = run(QStringLiteral(ES_EXITSCOPE_BIN),
                {"export", timer_db_, "--format", "svg", "--histogram", "exit", "-o", svg});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QFile f(svg);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QString text = QString::fromUtf8(f.readAll());
    QVERIFY2(text.contains(QStringLiteral("VM exits")), "the y axis names what it counts");
    QVERIFY2(text.contains(QStringLiteral("log2 buckets; ns, us, ms")), "the x axis names its unit");
    const QJsonObject doc = stats_json(timer_db_);
    QVERIFY(text.contains(QStringLiteral("%1 VM exits with a known time")
                              .arg(doc[QStringLiteral("exits")].toObject()[QStringLiteral("timed")].toInteger())));
    // --from / --to select the exits as `stats` does: the title counts the window's timed exits.
    const QString half = dir_.filePath(QStringLiteral("half.svg"));
    r = run(QStringLiteral(ES_EXITSCOPE_BIN), {"stats", timer_db_, "--format", "json", "--to", "1ms"});
    const qint64 timed_to_1ms = QJsonDocument::fromJson(r.out)
                                    .object()[QStringLiteral("exits")]
                                    .toObject()[QStringLiteral("timed")]
                                    .toInteger();
    QVERIFY(timed_to_1ms < doc[QStringLiteral("exits")].toObject()[QStringLiteral("timed")].toInteger());
    r = run(QStringLiteral(ES_EXITSCOPE_BIN),
            {"export", timer_db_, "--format", "svg", "--histogram", "exit", "--to", "1ms", "-o", half});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QFile hf(half);
    QVERIFY(hf.open(QIODevice::ReadOnly));
    QVERIFY(
        QString::fromUtf8(hf.readAll()).contains(QStringLiteral("%1 VM exits with a known time").arg(timed_to_1ms)));
    r = run(QStringLiteral(ES_EXITSCOPE_BIN),
            {"export", timer_db_, "--format", "png", "--histogram", "chain", "-o", png});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    const QImage img(png);
    QCOMPARE(img.size(), QSize(1000, 560));
    QDir().mkpath(QStringLiteral(ES_SCREENSHOT_DIR));
    QVERIFY(img.save(QStringLiteral(ES_SCREENSHOT_DIR "/chain_histogram.png")));
    // An existing file is replaced only with --force, as every export.
    r = run(QStringLiteral(ES_EXITSCOPE_BIN),
            {"export", timer_db_, "--format", "png", "--histogram", "chain", "-o", png});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains(QStringLiteral("--force")), qPrintable(r.err));
    // Wrong combinations get one sentence each.
    r = run(QStringLiteral(ES_EXITSCOPE_BIN), {"export", timer_db_, "--format", "text", "--histogram", "exit"});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains(QStringLiteral("svg")), qPrintable(r.err));
    r = run(QStringLiteral(ES_EXITSCOPE_BIN), {"export", timer_db_, "--format", "svg", "--histogram", "latency"});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains(QStringLiteral("exit or chain")), qPrintable(r.err));
  }
};

QTEST_MAIN(StatsPanelTest)
#include "stats_panel_test.moc"
