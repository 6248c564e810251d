// The GUI on real recordings (recorded here with the built exitscope), offscreen: stepping a
// chain with the keyboard, the filter box, the chain filters, the error dialog for a bad
// file, a screenshot, and the svg / png exports (GUI and CLI).
#include <QAbstractItemModel>
#include <QApplication>
#include <QComboBox>
#include <QDir>
#include <QFile>
#include <QImage>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QProcess>
#include <QRegularExpression>
#include <QStatusBar>
#include <QStandardPaths>
#include <QTableView>
#include <QTemporaryDir>
#include <QXmlStreamReader>
#include <QtTest>

#include "gui/main_window.h"
#include "gui/timeline_widget.h"

using es::gui::MainWindow;

namespace {

struct Run {
  int code = -1;
  QString out, err;
};

Run run(const QString& program, const QStringList& args,
        const QProcessEnvironment& env = QProcessEnvironment::systemEnvironment()) {
  QProcess p;
  p.setProcessEnvironment(env);
  p.start(program, args);
  p.waitForFinished(180000);
  return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, QString::fromUtf8(p.readAllStandardOutput()),
          QString::fromUtf8(p.readAllStandardError())};
}

QByteArray slurp(const QString& path) {
  QFile f(path);
  return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

}  // namespace

class GuiTest : public QObject {
  Q_OBJECT

 private:
  QTemporaryDir dir_;
  QString irq_db_, pf_db_, nested_db_;

  QString record(const QString& scenario) {
    const QString path = dir_.filePath(scenario + QStringLiteral(".db"));
    const Run r = run(QStringLiteral(ES_EXITSCOPE_BIN), {"record", "--scenario", scenario, "-o", path, "--force"});
    if (r.code != 0) qWarning("record %s failed: %s", qPrintable(scenario), qPrintable(r.err));
    return path;
  }

  // A main window on `db`, shown and active, 1280x800.
  std::unique_ptr<MainWindow> window(const QString& db) {
    auto w = std::make_unique<MainWindow>();
    w->resize(1280, 800);
    w->show();
    w->activateWindow();
    if (!QTest::qWaitForWindowActive(w.get())) qWarning("window not active");
    if (!w->open_file(db)) qWarning("could not open %s", qPrintable(db));
    return w;
  }

  static QString kind_at(MainWindow& w, int row) {
    auto* t = w.findChild<QTableView*>(QStringLiteral("event_table"));
    return t->model()->index(row, 4).data().toString();
  }

 private slots:
  void initTestCase() {
    QStandardPaths::setTestModeEnabled(true);
    QVERIFY(dir_.isValid());
    irq_db_ = record(QStringLiteral("irq-ept-reinject"));
    pf_db_ = record(QStringLiteral("pf-during-irq"));
    nested_db_ = record(QStringLiteral("nested-irq-vectoring"));
    QVERIFY(QFile::exists(irq_db_));
    QVERIFY(QFile::exists(nested_db_));
    QVERIFY(QFile::exists(pf_db_));
  }

  void steps_through_chain_with_keyboard() {
    auto w = window(irq_db_);
    QVERIFY(w->document());
    // Opening selects the first chain and puts the cursor on its root: the IRQ being raised.
    QVERIFY(w->cursor());
    const uint64_t chain = w->cursor()->rec.origin;
    QVERIFY(chain != 0);
    QVERIFY2(w->inspector_text().contains("RAISE"), qPrintable(w->inspector_text()));
    QVERIFY(w->inspector_text().contains("IRQ 0x20"));
    auto* chains = w->findChild<QTableView*>(QStringLiteral("chain_table"));
    QCOMPARE(chains->selectionModel()->selectedRows().value(0).data().toString(), QString::number(chain));

    // C = next event in the chain, until the EPT violation that interrupted the delivery.
    int steps = 0;
    while (!w->inspector_text().contains("EPT_VIOLATION") && steps++ < 20) QTest::keyClick(w.get(), Qt::Key_C);
    const QString exit_text = w->inspector_text();
    QVERIFY2(exit_text.contains("VM_EXIT EPT_VIOLATION"), qPrintable(exit_text));
    QVERIFY2(exit_text.contains("IDT-vectoring info"), qPrintable(exit_text));
    QVERIFY2(exit_text.contains("= IRQ 0x20 (external interrupt)"), qPrintable(exit_text));
    QVERIFY2(exit_text.contains("Exit qualification"), qPrintable(exit_text));
    QVERIFY2(exit_text.contains("Instruction"), qPrintable(exit_text));  // Capstone disassembly at RIP
    const uint64_t exit_id = w->cursor()->rec.id;
    QCOMPARE(w->cursor()->rec.kind, uint16_t{ES_KIND_VM_EXIT});
    QCOMPARE(w->cursor()->rec.origin, chain);
    // The event table follows the cursor.
    auto* table = w->findChild<QTableView*>(QStringLiteral("event_table"));
    QCOMPARE(table->model()->index(table->selectionModel()->selectedRows().value(0).row(), 0).data().toString(),
             QString::number(exit_id));

    // E = jump to the effect: L0 requeues the IRQ from the IDT-vectoring info.
    QTest::keyClick(w.get(), Qt::Key_E);
    QVERIFY2(w->inspector_text().contains("REQUEUE_FROM_VECTORING"), qPrintable(w->inspector_text()));
    QCOMPARE(w->cursor()->rec.cause, exit_id);
    // U = back to the cause.
    QTest::keyClick(w.get(), Qt::Key_U);
    QCOMPARE(w->cursor()->rec.id, exit_id);
    // Shift+C = previous in chain: the VM entry that injected the IRQ.
    QTest::keyClick(w.get(), Qt::Key_C, Qt::ShiftModifier);
    QVERIFY2(w->inspector_text().contains("VM-entry interruption info"), qPrintable(w->inspector_text()));
    QVERIFY(w->cursor()->rec.id < exit_id);
    // To the end of the chain: the IRQ is delivered.
    for (int i = 0; i < 20; ++i) QTest::keyClick(w.get(), Qt::Key_C);
    QCOMPARE(w->cursor()->rec.kind, uint16_t{ES_KIND_DELIVERY});
    QVERIFY(w->inspector_text().contains("Delivered"));
    // N / Shift+N step through the table rows.
    const uint64_t at = w->cursor()->rec.id;
    QTest::keyClick(w.get(), Qt::Key_N);
    QCOMPARE(w->cursor()->rec.id, at + 1);
    QTest::keyClick(w.get(), Qt::Key_N, Qt::ShiftModifier);
    QCOMPARE(w->cursor()->rec.id, at);
    // The timeline shows the chain.
    auto* tl = w->findChild<es::gui::TimelineWidget*>(QStringLiteral("timeline"));
    QCOMPARE(tl->chain(), chain);
    QVERIFY(!tl->scene().chain.empty());
  }

  void filter_box_filters_events() {
    auto w = window(irq_db_);
    auto* box = w->findChild<QLineEdit*>(QStringLiteral("filter_box"));
    auto* table = w->findChild<QTableView*>(QStringLiteral("event_table"));
    const int all = table->model()->rowCount();
    box->setFocus();
    QTest::keyClicks(box, QStringLiteral("reason:EPT_VIOLATION vector:0x20"));
    QTest::keyClick(box, Qt::Key_Return);
    // One exit in this scenario hits EPT during IRQ 0x20's delivery.
    QCOMPARE(table->model()->rowCount(), 1);
    QCOMPARE(kind_at(*w, 0), QStringLiteral("VM_EXIT"));
    QVERIFY(table->model()->index(0, 5).data().toString().startsWith("EPT_VIOLATION"));
    QVERIFY(table->model()->index(0, 5).data().toString().contains("vectoring=IRQ 0x20"));
    // kind:exit keeps only exits.
    box->clear();
    QTest::keyClicks(box, QStringLiteral("kind:exit"));
    QTest::keyClick(box, Qt::Key_Return);
    const int exits = table->model()->rowCount();
    QVERIFY(exits > 10 && exits < all);
    for (int r = 0; r < exits; r += 7) QCOMPARE(kind_at(*w, r), QStringLiteral("VM_EXIT"));
    // An unknown key is a clear error and leaves the table as it was.
    box->clear();
    QTest::keyClicks(box, QStringLiteral("colour:red"));
    QTest::keyClick(box, Qt::Key_Return);
    auto* err = w->findChild<QLabel*>(QStringLiteral("filter_error"));
    QVERIFY(err->isVisible());
    QVERIFY2(err->text().contains("unknown query key 'colour'"), qPrintable(err->text()));
    QCOMPARE(table->model()->rowCount(), exits);
    // Empty = every event again.
    box->clear();
    QTest::keyClick(box, Qt::Key_Return);
    QCOMPARE(table->model()->rowCount(), all);
    QVERIFY(!err->isVisible());
  }

  void chain_list_filters() {
    auto w = window(pf_db_);
    auto* chains = w->findChild<QTableView*>(QStringLiteral("chain_table"));
    const int all = chains->model()->rowCount();
    QVERIFY2(all >= 2, "pf-during-irq has an IRQ chain and a #PF chain");
    auto* vector = w->findChild<QLineEdit*>(QStringLiteral("chain_vector"));
    vector->setText(QStringLiteral("14"));
    QMetaObject::invokeMethod(vector, "editingFinished");
    QVERIFY(chains->model()->rowCount() >= 1);
    for (int r = 0; r < chains->model()->rowCount(); ++r)
      QCOMPARE(chains->model()->index(r, 1).data().toString().left(3), QStringLiteral("#PF"));
    vector->setText(QStringLiteral("0x20"));
    QMetaObject::invokeMethod(vector, "editingFinished");
    QCOMPARE(chains->model()->rowCount(), 2);
    // The first IRQ is superseded (the #PF raised during its delivery is handled first and
    // nothing raises the IRQ again, Table 6-5, as on hardware); the next one is delivered after
    // a reinjection.
    QCOMPARE(chains->model()->index(0, 4).data().toString(), QStringLiteral("superseded"));
    QCOMPARE(chains->model()->index(1, 4).data().toString(), QStringLiteral("delivered after reinjection"));
    auto* outcome = w->findChild<QComboBox*>(QStringLiteral("chain_outcome"));
    outcome->setCurrentText(QStringLiteral("superseded"));
    QCOMPARE(chains->model()->rowCount(), 1);
    QCOMPARE(chains->model()->index(0, 1).data().toString(), QStringLiteral("IRQ 0x20"));
  }

  void corrupt_file_shows_error_dialog() {
    MainWindow w;
    w.show();
    const QString bad = dir_.filePath(QStringLiteral("not_a_recording.db"));
    {
      QFile f(bad);
      QVERIFY(f.open(QIODevice::WriteOnly));
      f.write("this is not a recording\n");
    }
    QVERIFY(!w.open_file(bad));
    auto* box = w.findChild<QMessageBox*>(QStringLiteral("open_error"));
    QVERIFY(box);
    QVERIFY(box->isVisible());
    QVERIFY2(box->informativeText().contains("is not a SQLite database"), qPrintable(box->informativeText()));
    QVERIFY(box->informativeText().contains("not_a_recording.db"));
    box->close();
    QTest::qWait(10);
    // A truncated recording: an error naming the file, no crash, nothing open.
    const QString cut = dir_.filePath(QStringLiteral("truncated.db"));
    QByteArray bytes = slurp(irq_db_);
    QVERIFY(bytes.size() > 8192);
    {
      QFile f(cut);
      QVERIFY(f.open(QIODevice::WriteOnly));
      f.write(bytes.left(4096));
    }
    const bool opened = w.open_file(cut);
    if (!opened) {
      auto* box2 = w.findChild<QMessageBox*>(QStringLiteral("open_error"));
      QVERIFY(box2);
      QVERIFY2(box2->informativeText().contains("truncated.db"), qPrintable(box2->informativeText()));
      box2->close();
    }
    QVERIFY(!opened);
    QVERIFY(!w.document());
  }

  // Records dropped while recording (forced with the recorder's test hook: drop mode, a
  // one-record queue) are shown in the status bar for as long as the recording is open.
  void shows_dropped_records() {
    const QString lossy = dir_.filePath(QStringLiteral("lossy.db"));
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("ES_RECORDER_TEST_QUEUE"), QStringLiteral("1"));
    const Run r = run(QStringLiteral(ES_EXITSCOPE_BIN),
                      {"record", "--scenario", "timer-irq", "--arg", "0", "--max-exits", "20000", "--no-check",
                       "--quiet", "--force", "-o", lossy},
                      env);
    QCOMPARE(r.code, 0);
    const Run info = run(QStringLiteral(ES_EXITSCOPE_BIN), {"info", "--no-console", lossy});
    const QRegularExpressionMatch m =
        QRegularExpression(QStringLiteral("dropped: +([0-9]+) by the recorder")).match(info.out);
    QVERIFY2(m.hasMatch(), qPrintable(info.out));
    const QString dropped = m.captured(1);
    QVERIFY2(dropped != QStringLiteral("0"), "a one-record queue in drop mode must overflow");

    auto w = window(lossy);
    auto* label = w->findChild<QLabel*>(QStringLiteral("drops_label"));
    QVERIFY(label);
    QVERIFY(label->isVisible());
    QCOMPARE(label->text(), dropped + QStringLiteral(" records dropped"));
    QVERIFY2(label->toolTip().contains(dropped + QStringLiteral(" by the recorder")), qPrintable(label->toolTip()));
    QVERIFY2(w->statusBar()->currentMessage().contains(dropped + QStringLiteral(" records dropped while recording")),
             qPrintable(w->statusBar()->currentMessage()));
    // A recording without drops hides it again.
    QVERIFY(w->open_file(irq_db_));
    QVERIFY(!label->isVisible());
  }

  // A schema v1 recording opens through a migrated copy; the window's status bar says so (the
  // terminal may not be visible), and the original is left unchanged.
  void older_schema_is_noted_in_the_status_bar() {
    const QString old = dir_.filePath(QStringLiteral("old-v1.db"));
    QFile::remove(old);
    QVERIFY(QFile::copy(QStringLiteral(ES_TEST_DATA_DIR "/schema/v1_irq_ept_reinject.db"), old));
    QFile f(old);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QByteArray before = f.readAll();
    f.close();
    auto w = window(old);
    const QString msg = w->statusBar()->currentMessage();
    QVERIFY2(msg.contains(QStringLiteral("old-v1.db: 38 events")), qPrintable(msg));
    QVERIFY2(msg.contains(QStringLiteral("uses the older schema v1; reading a migrated copy")), qPrintable(msg));
    QVERIFY(f.open(QIODevice::ReadOnly));
    QCOMPARE(f.readAll(), before);
    // A current recording says nothing of the kind.
    QVERIFY(w->open_file(irq_db_));
    QVERIFY2(!w->statusBar()->currentMessage().contains(QStringLiteral("older schema")),
             qPrintable(w->statusBar()->currentMessage()));
  }

  void screenshot_main_window() {
    auto w = window(irq_db_);
    // Show the chain with the EPT violation selected.
    for (int i = 0; i < 20 && !w->inspector_text().contains("EPT_VIOLATION"); ++i) QTest::keyClick(w.get(), Qt::Key_C);
    QTest::qWait(50);
    QDir().mkpath(QStringLiteral(ES_SCREENSHOT_DIR));
    const QString path = QStringLiteral(ES_SCREENSHOT_DIR "/main_window.png");
    const QImage img = w->grab().toImage();
    QCOMPARE(img.size(), QSize(1280, 800));
    QVERIFY(img.save(path));
    auto w2 = window(pf_db_);
    QTest::qWait(50);
    QVERIFY(w2->grab().toImage().save(QStringLiteral(ES_SCREENSHOT_DIR "/pf_during_irq.png")));
  }

  // The nested scenario: L2's lane, the chain crossing L1's and L0's decisions, the inspector
  // on the EPT violation L0 took during L2's delivery of the IRQ L1 injected.
  void screenshot_nested_scenario() {
    auto w = window(nested_db_);
    for (int i = 0; i < 30 && !w->inspector_text().contains("EPT_VIOLATION"); ++i) QTest::keyClick(w.get(), Qt::Key_C);
    QVERIFY2(w->inspector_text().contains("EPT_VIOLATION"), qPrintable(w->inspector_text()));
    QVERIFY2(w->inspector_text().contains("IRQ 0x20"), qPrintable(w->inspector_text()));
    QVERIFY(w->cursor());
    QCOMPARE(int{w->cursor()->rec.level}, 2);
    QTest::qWait(50);
    QDir().mkpath(QStringLiteral(ES_SCREENSHOT_DIR));
    const QImage img = w->grab().toImage();
    QCOMPARE(img.size(), QSize(1280, 800));
    QVERIFY(img.save(QStringLiteral(ES_SCREENSHOT_DIR "/nested_irq_vectoring.png")));
  }

  void svg_export_is_valid_and_deterministic() {
    const QString a = dir_.filePath("a.svg"), b = dir_.filePath("b.svg");
    Run r = run(QStringLiteral(ES_EXITSCOPE_BIN), {"export", irq_db_, "--format", "svg", "-o", a});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    r = run(QStringLiteral(ES_EXITSCOPE_BIN), {"export", irq_db_, "--format", "svg", "-o", b});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    const QByteArray svg = slurp(a);
    QCOMPARE(svg, slurp(b));
    QXmlStreamReader xml(svg);
    QString text;
    bool root_svg = false;
    while (!xml.atEnd()) {
      xml.readNext();
      if (xml.isStartElement() && xml.name() == QLatin1String("svg")) root_svg = true;
      if (xml.isCharacters()) text += xml.text().toString() + QLatin1Char('\n');
    }
    QVERIFY2(!xml.hasError(), qPrintable(xml.errorString()));
    QVERIFY(root_svg);
    for (const char* s : {"vCPU 0 \xc2\xb7 L1", "injection", "delivery", "EPT_VIOLATION", "IO_INSTRUCTION", "time"})
      QVERIFY2(text.contains(QString::fromUtf8(s)), s);
    // --chain draws its arcs and names it.
    const QString c = dir_.filePath("chain.svg");
    const Run chains = run(QStringLiteral(ES_EXITSCOPE_BIN), {"chains", irq_db_});
    const QString id = chains.out.section(QLatin1Char(' '), 1, 1).remove(QLatin1Char(':'));
    r = run(QStringLiteral(ES_EXITSCOPE_BIN), {"export", irq_db_, "--format", "svg", "--chain", id, "-o", c});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY(slurp(c).contains(QStringLiteral("chain %1").arg(id).toUtf8()));
    // A bad chain: exit 2, one sentence, no file.
    r = run(QStringLiteral(ES_EXITSCOPE_BIN),
            {"export", irq_db_, "--format", "svg", "--chain", "999999", "-o", dir_.filePath("none.svg")});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("no chain 999999"), qPrintable(r.err));
    QVERIFY(!QFile::exists(dir_.filePath("none.svg")));
  }

  void png_export_has_requested_size_and_is_deterministic() {
    const QString a = dir_.filePath("a.png"), b = dir_.filePath("b.png"), s = dir_.filePath("sized.png");
    Run r = run(QStringLiteral(ES_EXITSCOPE_BIN), {"export", pf_db_, "--format", "png", "-o", a});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    r = run(QStringLiteral(ES_EXITSCOPE_BIN), {"export", pf_db_, "--format", "png", "-o", b});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY(!slurp(a).isEmpty());
    QCOMPARE(slurp(a), slurp(b));
    QImage img(a);
    QVERIFY(!img.isNull());
    QCOMPARE(img.width(), 1600);
    r = run(QStringLiteral(ES_GUI_BIN), {"--export", "png", pf_db_, "-o", s, "--width", "1000", "--height", "420"});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QCOMPARE(QImage(s).size(), QSize(1000, 420));
    // Bad size: exit 2 with a sentence naming the flag.
    r = run(QStringLiteral(ES_GUI_BIN), {"--export", "png", pf_db_, "-o", s, "--width", "5"});
    QCOMPARE(r.code, 2);
    QVERIFY(r.err.contains("--width"));
  }

  void gui_command_explains_missing_display_or_binary() {
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.remove(QStringLiteral("DISPLAY"));
    env.remove(QStringLiteral("WAYLAND_DISPLAY"));
    env.remove(QStringLiteral("QT_QPA_PLATFORM"));
    Run r = run(QStringLiteral(ES_EXITSCOPE_BIN), {"gui", irq_db_}, env);
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("no display") && r.err.contains("--format svg"), qPrintable(r.err));
    QCOMPARE(r.err.count(QLatin1Char('\n')), 1);
    // exitscope without exitscope-gui beside it.
    const QString lone = dir_.filePath("bin/exitscope");
    QDir().mkpath(dir_.filePath("bin"));
    QFile::remove(lone);
    QVERIFY(QFile::copy(QStringLiteral(ES_EXITSCOPE_BIN), lone));
    QFile::setPermissions(lone, QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
    r = run(lone, {"gui", irq_db_});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("is not installed next to exitscope") && r.err.contains("exitscope-gui"),
             qPrintable(r.err));
    r = run(lone, {"export", irq_db_, "--format", "svg", "-o", dir_.filePath("lone.svg")});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("exitscope-gui"), qPrintable(r.err));
    QVERIFY(!QFile::exists(dir_.filePath("lone.svg")));
  }

  void events_query_option() {
    Run r =
        run(QStringLiteral(ES_EXITSCOPE_BIN), {"events", irq_db_, "--query", "reason:EPT_VIOLATION kind:exit vcpu:0"});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    const QStringList lines = r.out.split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    QVERIFY(lines.size() >= 5);
    for (const QString& l : lines) QVERIFY2(l.contains("VM_EXIT") && l.contains("EPT_VIOLATION"), qPrintable(l));
    r = run(QStringLiteral(ES_EXITSCOPE_BIN), {"events", irq_db_, "--query", "speed:fast"});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.err.contains("unknown query key 'speed'") && r.err.contains("reason"), qPrintable(r.err));
    QCOMPARE(r.err.count(QLatin1Char('\n')), 1);
  }

  void lazy_table_and_sort() {
    auto w = window(irq_db_);
    auto* table = w->findChild<QTableView*>(QStringLiteral("event_table"));
    auto* m = table->model();
    const int n = m->rowCount();
    QCOMPARE(static_cast<uint64_t>(n), w->document()->span().count);
    QCOMPARE(m->index(0, 0).data().toString(), QStringLiteral("1"));
    QCOMPARE(m->index(n - 1, 0).data().toString(), QString::number(w->document()->span().last_id));
    m->sort(0, Qt::DescendingOrder);
    QCOMPARE(m->index(0, 0).data().toString(), QString::number(w->document()->span().last_id));
    m->sort(1, Qt::AscendingOrder);
    QCOMPARE(m->rowCount(), n);
    for (int r = 1; r < n; r += 13) QVERIFY(m->index(r - 1, 1).data().toString() <= m->index(r, 1).data().toString());
  }
};

QTEST_MAIN(GuiTest)
#include "gui_test.moc"
