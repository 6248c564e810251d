// exitscope gui: open a recording in the Qt GUI. The CLI stays Qt-free: it execs
// `exitscope-gui`, installed next to it, after checking there is a display to open on.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "replay/cli/args.h"
#include "replay/cli/commands.h"
#include "replay/cli/startup.h"
#include "replay/export/installed.h"
#include "replay/recording.h"

namespace es::cli {

namespace {
constexpr std::string_view kName = "gui";
constexpr std::span<const OptionSpec> kOptions{};
}  // namespace

int cmd_gui(int argc, char** argv) {
  const CommandSpec kSpec{kName,
                          "[DB]",
                          "Open the recording DB in the exitscope GUI (exitscope-gui, installed next to\n"
                          "exitscope): timeline lanes per vCPU and guest level, chain list, event table,\n"
                          "inspector, stepping by event / chain / cause / effect (Help > Keyboard shortcuts).\n"
                          "Needs a display (DISPLAY or WAYLAND_DISPLAY). Without one, export a picture instead:\n"
                          "  exitscope export DB --format svg -o timeline.svg",
                          kOptions,
                          {0, 1, "", "expects at most one recording file"}};
  auto args = start_command(kSpec, argc, argv);
  if (!args) return args.exit_code;
  const std::string gui = exporter::gui_binary_path();
  if (::access(gui.c_str(), X_OK) != 0) {
    std::fprintf(stderr,
                 "exitscope gui: the GUI '%s' is not installed next to exitscope; build it with 'cmake --build "
                 "BUILD --target exitscope-gui' (needs qt6-base-dev and qt6-svg-dev, see ./run).\n",
                 gui.c_str());
    return 2;
  }
  if (!exporter::have_display() && !std::getenv("QT_QPA_PLATFORM")) {
    std::fprintf(stderr,
                 "exitscope gui: no display (DISPLAY and WAYLAND_DISPLAY are unset); run it in a desktop session or "
                 "over 'ssh -X', or export a picture with 'exitscope export DB --format svg -o FILE'.\n");
    return 2;
  }
  if (!args->positional.empty()) {
    // Checked here so a bad file gets the CLI's one-line error, not only a dialog.
    auto rec = open_recording(kName, args->positional[0]);
    if (!rec) return 2;
  }
  std::vector<std::string> av = {gui};
  for (const std::string& p : args->positional) av.push_back(p);
  std::vector<char*> argv_exec;
  for (std::string& a : av) argv_exec.push_back(a.data());
  argv_exec.push_back(nullptr);
  ::execv(gui.c_str(), argv_exec.data());
  std::fprintf(stderr, "exitscope gui: could not start '%s'; check that it is executable.\n", gui.c_str());
  return 2;
}

}  // namespace es::cli
