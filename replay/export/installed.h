// What comes with exitscope, found from the running executable (/proc/self/exe), so a build tree
// and an installed tree work alike: the GUI program beside it, the picture module that draws
// svg / png (render_module.h) in ../lib/exitscope/. And whether there is a display for the GUI.
#pragma once

#include <string>

namespace es::exporter {

// "<directory of this executable>/exitscope-gui" (whether or not it exists).
std::string gui_binary_path();
// "<directory of this executable>/../lib/exitscope/exitscope-render.so" (whether or not it exists).
std::string render_module_path();
// DISPLAY or WAYLAND_DISPLAY is set (and not empty).
bool have_display();

}  // namespace es::exporter
