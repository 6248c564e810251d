// What drawing off-screen needs from the process before Qt starts (render/module.cpp and
// `exitscope-gui --export`).
#pragma once

namespace es::render {

// Qt warns on stderr when XDG_RUNTIME_DIR is unset (a root shell, CI) and then uses
// /tmp/runtime-$USER: sets XDG_RUNTIME_DIR to that directory, created private as the XDG base
// directory spec requires, so there is no warning. A directory owned by someone else or open to
// others is left alone (and Qt warns).
void provide_runtime_dir();

}  // namespace es::render
