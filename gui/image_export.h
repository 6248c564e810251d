// `exitscope-gui --export svg|png`: the pictures of render/image.h written to a file from the
// GUI program's command line (`exitscope export --format svg|png` draws the same in its own
// process, through the module exitscope-render.so).
#pragma once

#include <QStringList>

namespace es::gui {

// `exitscope-gui --export FORMAT DB -o FILE [--chain N] [--from T] [--to T] [--vcpu N]
// [--width W] [--height H] [--histogram exit|chain]`; args exclude the program name. Returns the
// exit code (0, or 2 with one sentence on stderr).
int export_command(const QStringList& args);

}  // namespace es::gui
