// Per-process temporary files for tests: CTest runs test cases as parallel processes, so a
// fixed path would be shared between them. Needs ES_TEST_TMPDIR defined by the test target.
//
// Cleanup: ES_TEST_TMPDIR/<pid>/ is removed when the test process exits normally and every
// test passed; when a test failed it is kept (the path is printed) so the files can be looked
// at. Directories left by processes that died without cleaning up (killed, crashed, or a
// failed run kept) are swept by the next test process once they are a day old, so a build
// directory does not fill up over weeks of runs.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace es::test {

namespace detail {

inline pid_t& tmp_owner_pid() {
  static pid_t pid = 0;
  return pid;
}

inline std::string process_tmp_dir_path() { return std::string(ES_TEST_TMPDIR) + "/" + std::to_string(::getpid()); }

inline void remove_process_tmp() {
  // Only the process that created the directory removes it (not a forked child exiting).
  if (tmp_owner_pid() != ::getpid()) return;
  const std::string dir = process_tmp_dir_path();
  const ::testing::UnitTest* ut = ::testing::UnitTest::GetInstance();
  if (ut && ut->failed_test_count() > 0) {
    std::fprintf(stderr, "test files kept for inspection in %s (remove it when done)\n", dir.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// Removes ES_TEST_TMPDIR/<pid> directories of processes that no longer run and that were
// last touched more than a day ago.
inline void sweep_stale_tmp() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (fs::directory_iterator it(ES_TEST_TMPDIR, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const long pid = std::strtol(name.c_str(), nullptr, 10);
    if (pid <= 0 || pid == ::getpid() || ::kill(static_cast<pid_t>(pid), 0) == 0) continue;
    std::error_code tec;
    const auto mtime = fs::last_write_time(it->path(), tec);
    if (tec || now - mtime < std::chrono::hours(24)) continue;
    fs::remove_all(it->path(), tec);
  }
}

}  // namespace detail

// ES_TEST_TMPDIR/<pid>, created on first use (and its removal at exit registered).
inline std::string process_tmp_dir() {
  const std::string dir = detail::process_tmp_dir_path();
  if (detail::tmp_owner_pid() != ::getpid()) {
    detail::tmp_owner_pid() = ::getpid();
    detail::sweep_stale_tmp();
    std::atexit(&detail::remove_process_tmp);
  }
  std::filesystem::create_directories(dir);
  return dir;
}

// ES_TEST_TMPDIR/<pid>/name, the directory created.
inline std::string process_tmp(const std::string& name) { return process_tmp_dir() + "/" + name; }

}  // namespace es::test
