// The Qt-free side of the GUI: find `exitscope-gui` next to the running binary, tell whether
// a display is available, and run the GUI's headless exporter for the svg / png formats
// (the timeline is drawn by the GUI's painter; this library never links Qt).
#pragma once

#include <string>
#include <string_view>

#include "replay/export/export.h"
#include "schema/result.h"

namespace es::exporter {

// "<directory of this executable>/exitscope-gui" (whether or not it exists).
std::string gui_binary_path();
// DISPLAY or WAYLAND_DISPLAY is set (and not empty).
bool have_display();

// Runs `exitscope-gui --export FORMAT DB -o - [--chain N] [--from NS] [--to NS] [--vcpu N]
// [--histogram exit|chain]`
// with QT_QPA_PLATFORM=offscreen when there is no display, and copies its output to ctx.out.
Result<void> export_via_gui(ExportContext& ctx, std::string_view format);
Result<void> export_svg(ExportContext& ctx);
Result<void> export_png(ExportContext& ctx);

}  // namespace es::exporter
