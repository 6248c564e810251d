// exitscope-gui [DB] | exitscope-gui --export svg|png DB -o FILE [...]
#include <QApplication>
#include <QStringList>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gui/image_export.h"
#include "gui/main_window.h"
#include "render/offscreen.h"

namespace {

bool has_display() {
  for (const char* v : {"DISPLAY", "WAYLAND_DISPLAY"})
    if (const char* e = std::getenv(v); e && *e) return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  // --help and a missing display are answered before QApplication exists: without a display
  // Qt's platform plugin aborts in the constructor, before a word of ours is printed.
  const std::string first = argc > 1 ? argv[1] : "";
  if (first == "--help" || first == "-h") {
    std::printf(
        "Usage: exitscope-gui [DB]\n"
        "       exitscope-gui --export svg|png DB -o FILE [--chain N] [--from T] [--to T] [--vcpu N]\n"
        "                     [--width W] [--height H] [--histogram exit|chain]\n\n"
        "The exitscope GUI (usually started with 'exitscope gui DB'). --export draws the timeline\n"
        "without a window, off-screen (no display needed), as 'exitscope export' does; with --histogram,\n"
        "the latency histogram of 'exitscope stats --histogram' instead.\n");
    return 0;
  }
  const char* platform = std::getenv("QT_QPA_PLATFORM");
  if (first == "--export") {
    // Pictures are drawn off-screen whatever the display or QT_QPA_PLATFORM say, as
    // `exitscope export` draws them (render/module.cpp): the same bytes, and no abort when
    // QT_QPA_PLATFORM names a platform that cannot start.
    ::setenv("QT_QPA_PLATFORM", "offscreen", 1);
    es::render::provide_runtime_dir();
  } else if (!has_display() && !(platform && *platform)) {
    std::fprintf(stderr,
                 "exitscope-gui: there is no display (DISPLAY and WAYLAND_DISPLAY are unset); run it in a desktop "
                 "session or with ssh -X, or draw the timeline to a file with 'exitscope export DB --format png "
                 "-o FILE.png'.\n");
    return 2;
  }
  QApplication app(argc, argv);
  QApplication::setOrganizationName(QStringLiteral("exitscope"));
  QApplication::setApplicationName(QStringLiteral("exitscope-gui"));
  QStringList args = QApplication::arguments();
  args.removeFirst();
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
