// GUI on a large recording: time to first frame (open + first paint of the main window),
// step latency (each step action, timed one by one), and memory (VmRSS / VmHWM).
//   bench_gui [DB]   default: records ES_BENCH_DB once with
//   exitscope record --scenario timer-irq --arg 0 --max-exits 1500000 (~10 M events)
// Runs offscreen unless a platform is set.
#include <QApplication>
#include <QElapsedTimer>
#include <QFile>
#include <QImage>
#include <QProcess>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "gui/main_window.h"
#include "gui/timeline_widget.h"

namespace {

long status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + std::string(key).size());
  return -1;
}

struct Stats {
  double median = 0, p95 = 0, max = 0;
};
Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return {};
  return {v[v.size() / 2], v[std::min(v.size() - 1, v.size() * 95 / 100)], v.back()};
}

}  // namespace

int main(int argc, char** argv) {
  if (!std::getenv("QT_QPA_PLATFORM")) setenv("QT_QPA_PLATFORM", "offscreen", 1);
  QApplication app(argc, argv);
  QString db = argc > 1 ? QString::fromLocal8Bit(argv[1]) : QStringLiteral(ES_BENCH_DB);
  if (!QFile::exists(db)) {
    std::printf("bench_gui: recording %s (timer-irq, 1.5 M exits; about a minute)...\n", qPrintable(db));
    std::fflush(stdout);
    QProcess p;
    p.setProcessChannelMode(QProcess::ForwardedChannels);
    p.start(QStringLiteral(ES_EXITSCOPE_BIN),
            {"record", "--scenario", "timer-irq", "--arg", "0", "--max-exits", "1500000", "-o", db, "--force"});
    p.waitForFinished(-1);
    if (p.exitCode() != 0) {
      std::fprintf(stderr, "bench_gui: recording failed.\n");
      return 1;
    }
  }
  const long rss_before = status_kb("VmRSS:");
  es::gui::MainWindow w;
  w.resize(1280, 800);
  w.show();
  QElapsedTimer t;
  t.start();
  if (!w.open_file(db)) {
    std::fprintf(stderr, "bench_gui: cannot open %s\n", qPrintable(db));
    return 1;
  }
  const double open_ms = static_cast<double>(t.nsecsElapsed()) / 1e6;
  const QImage frame = w.grab().toImage();  // the first complete frame
  const double first_frame_ms = static_cast<double>(t.nsecsElapsed()) / 1e6;
  std::printf("recording: %s, %llu events, %d lanes\n", qPrintable(db),
              static_cast<unsigned long long>(w.document()->span().count),
              static_cast<int>(w.document()->lanes().size()));
  std::printf("time to first frame: %.1f ms (open %.1f ms, first paint %.1f ms)\n", first_frame_ms, open_ms,
              first_frame_ms - open_ms);

  struct Step {
    const char* name;
    void (es::gui::MainWindow::*fn)();
    int count;
  };
  const Step steps[] = {{"next event", &es::gui::MainWindow::next_event, 300},
                        {"next in chain", &es::gui::MainWindow::next_in_chain, 100},
                        {"next chain", &es::gui::MainWindow::next_chain, 100},
                        {"jump to cause", &es::gui::MainWindow::jump_to_cause, 50},
                        {"previous chain", &es::gui::MainWindow::prev_chain, 50}};
  for (const Step& s : steps) {
    std::vector<double> ms;
    for (int i = 0; i < s.count; ++i) {
      QElapsedTimer st;
      st.start();
      (w.*s.fn)();
      w.repaint();  // the step's frame, painted synchronously
      ms.push_back(static_cast<double>(st.nsecsElapsed()) / 1e6);
    }
    const Stats x = stats(ms);
    std::printf("step %-15s median %.2f ms, p95 %.2f ms, max %.2f ms (%d steps, incl. repaint)\n", s.name, x.median,
                x.p95, x.max, s.count);
  }
  // Zoomed out to the whole session (sampled drawing) and back.
  {
    QElapsedTimer st;
    st.start();
    auto* tl = w.findChild<es::gui::TimelineWidget*>(QStringLiteral("timeline"));
    tl->fit_all();
    (void)tl->grab();  // forces the paint (and the sampled scene load)
    std::printf("fit all (whole session, sampled): %.1f ms\n", static_cast<double>(st.nsecsElapsed()) / 1e6);
  }
  std::printf("memory: VmRSS %.1f MB (before opening %.1f MB), VmHWM %.1f MB\n", status_kb("VmRSS:") / 1024.0,
              rss_before / 1024.0, status_kb("VmHWM:") / 1024.0);
  return frame.isNull() ? 1 : 0;
}
