// exitscope-gui [DB] | exitscope-gui --export svg|png DB -o FILE [...]
#include <QApplication>
#include <QStringList>
#include <cstdio>

#include "gui/image_export.h"
#include "gui/main_window.h"

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  QApplication::setOrganizationName(QStringLiteral("exitscope"));
  QApplication::setApplicationName(QStringLiteral("exitscope-gui"));
  QStringList args = QApplication::arguments();
  args.removeFirst();
  if (!args.isEmpty() && (args[0] == QLatin1String("--help") || args[0] == QLatin1String("-h"))) {
    std::printf(
        "Usage: exitscope-gui [DB]\n"
        "       exitscope-gui --export svg|png DB -o FILE [--chain N] [--from T] [--to T] [--vcpu N]\n"
        "                     [--width W] [--height H] [--histogram exit|chain]\n\n"
        "The exitscope GUI (usually started with 'exitscope gui DB'). --export draws the timeline\n"
        "without a window (set QT_QPA_PLATFORM=offscreen when there is no display); with\n"
        "--histogram, the latency histogram of 'exitscope stats --histogram' instead.\n");
    return 0;
  }
  if (!args.isEmpty() && args[0] == QLatin1String("--export")) return es::gui::export_command(args.mid(1));
  if (args.size() > 1) {
    std::fprintf(stderr, "exitscope-gui: expects at most one recording file; run 'exitscope-gui --help'.\n");
    return 2;
  }
  es::gui::MainWindow w;
  w.show();
  if (!args.isEmpty()) w.open_file(args[0]);
  return app.exec();
}
