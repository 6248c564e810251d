// Per-process temporary files for tests: CTest runs test cases as parallel processes, so a
// fixed path would be shared between them. Needs ES_TEST_TMPDIR defined by the test target.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace es::test {

// ES_TEST_TMPDIR/<pid>/name, the directory created.
inline std::string process_tmp(const std::string& name) {
  const std::string dir = std::string(ES_TEST_TMPDIR) + "/" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  return dir + "/" + name;
}

}  // namespace es::test
