#include "replay/export/installed.h"

#include <cstdlib>
#include <filesystem>

#include "replay/export/render_module.h"

namespace es::exporter {

namespace {

// The directory of the running executable; empty when /proc cannot say.
std::filesystem::path program_dir() {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : self.parent_path();
}

}  // namespace

std::string gui_binary_path() {
  const std::filesystem::path dir = program_dir();
  return dir.empty() ? "exitscope-gui" : (dir / "exitscope-gui").string();
}

std::string render_module_path() {
  const std::filesystem::path dir = program_dir();
  return (dir.empty() ? std::filesystem::path(ES_RENDER_MODULE_NAME)
                      : (dir.parent_path() / "lib" / "exitscope" / ES_RENDER_MODULE_NAME).lexically_normal())
      .string();
}

bool have_display() {
  for (const char* var : {"DISPLAY", "WAYLAND_DISPLAY"}) {
    const char* v = std::getenv(var);
    if (v && *v) return true;
  }
  return false;
}

}  // namespace es::exporter
