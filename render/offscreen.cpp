#include "render/offscreen.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace es::render {

void provide_runtime_dir() {
  if (std::getenv("XDG_RUNTIME_DIR")) return;
  const std::string dir = "/tmp/runtime-" + std::to_string(::getuid());
  struct stat st {};
  if (::mkdir(dir.c_str(), 0700) == 0 ||
      (::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::getuid() && (st.st_mode & 077) == 0))
    ::setenv("XDG_RUNTIME_DIR", dir.c_str(), 0);
}

}  // namespace es::render
