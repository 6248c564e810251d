#include "replay/export/gui_forward.h"

#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <vector>

namespace es::exporter {

std::string gui_binary_path() {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "exitscope-gui";
  return (self.parent_path() / "exitscope-gui").string();
}

bool have_display() {
  for (const char* var : {"DISPLAY", "WAYLAND_DISPLAY"}) {
    const char* v = std::getenv(var);
    if (v && *v) return true;
  }
  return false;
}

Result<void> export_via_gui(ExportContext& ctx, std::string_view format) {
  const std::string gui = gui_binary_path();
  if (::access(gui.c_str(), X_OK) != 0)
    return make_error("the " + std::string(format) + " format is drawn by the GUI, but '" + gui +
                      "' is not installed; build it (cmake --build BUILD --target exitscope-gui, needs qt6-base-dev "
                      "and qt6-svg-dev) or use text, markdown or perfetto.");
  std::vector<std::string> args = {gui, "--export", std::string(format), ctx.recording.path(), "-o", "-"};
  const ExportOptions& o = ctx.options;
  if (o.chain) args.insert(args.end(), {"--chain", std::to_string(*o.chain)});
  if (o.from_ns) args.insert(args.end(), {"--from", std::to_string(*o.from_ns)});
  if (o.to_ns) args.insert(args.end(), {"--to", std::to_string(*o.to_ns)});
  if (o.vcpu) args.insert(args.end(), {"--vcpu", std::to_string(*o.vcpu)});
  if (o.histogram) args.insert(args.end(), {"--histogram", *o.histogram});
  int fds[2];
  if (::pipe(fds) != 0) return make_error("could not start '" + gui + "' (pipe failed).");
  const bool offscreen = !have_display() && !std::getenv("QT_QPA_PLATFORM");
  // Qt warns on stderr when XDG_RUNTIME_DIR is unset (a root shell, CI) and then uses
  // /tmp/runtime-$USER: give it that directory, private as the spec requires, without the warning.
  if (!std::getenv("XDG_RUNTIME_DIR")) {
    const std::string dir = "/tmp/runtime-" + std::to_string(::getuid());
    struct stat st {};
    if (::mkdir(dir.c_str(), 0700) == 0 ||
        (::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::getuid() && (st.st_mode & 077) == 0))
      ::setenv("XDG_RUNTIME_DIR", dir.c_str(), 0);
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return make_error("could not start '" + gui + "' (fork failed).");
  }
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    if (offscreen) ::setenv("QT_QPA_PLATFORM", "offscreen", 1);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(gui.c_str(), argv.data());
    _exit(127);
  }
  ::close(fds[1]);
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    ctx.out.put(std::string_view(buf, static_cast<size_t>(n)));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return make_error("'" + gui + "' could not draw the " + std::string(format) +
                      (o.histogram ? " histogram" : " timeline") + " (see its message above).");
  return {};
}

Result<void> export_svg(ExportContext& ctx) { return export_via_gui(ctx, "svg"); }
Result<void> export_png(ExportContext& ctx) { return export_via_gui(ctx, "png"); }

}  // namespace es::exporter
