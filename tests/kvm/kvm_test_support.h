// Shared by the `record --kvm` tests: whether this machine can record, whether a refusal was the
// machine's (then the test skips with it), the per-test fixture, and a recorder started in the
// background whose stderr is kept.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "tests/support/cli_run.h"

namespace es::test::kvm {

// Why this machine cannot run the recording tests, or "" if it can.
inline std::string cannot_record() {
  if (::geteuid() != 0) return "recording a KVM host needs root (run the tests as root)";
  const int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return "/dev/kvm is not usable here";
  ::close(fd);
  return {};
}

// The recorder refused for a reason of the machine (no BPF, no tracepoint): skip with it.
inline bool refused_by_machine(int code, const std::string& err) {
  return code == 2 &&
         (err.find("refused to load") != std::string::npos || err.find("no kvm tracepoints") != std::string::npos ||
          err.find("tracefs") != std::string::npos || err.find("needs root") != std::string::npos);
}
inline bool refused_by_machine(const CliRun& r) { return refused_by_machine(r.code, r.err); }

class KvmFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = cannot_record();
    if (!why.empty()) GTEST_SKIP() << why;
  }
  // A fresh path in this process's temp directory.
  std::string db(const std::string& name) {
    const std::string p = process_tmp(name);
    std::remove(p.c_str());
    return p;
  }
};

// `exitscope ARGS...` started in the background, stdout to /dev/null (or `out_path`), stderr
// kept in `err_path`.
struct Background {
  pid_t pid = -1;
  std::string err_path;
  int status = 0;
  bool reaped = false;

  Background(const std::vector<std::string>& args, const std::string& err_file,
             const std::string& out_path = "/dev/null")
      : err_path(err_file) {
    pid = ::fork();
    if (pid == 0) {
      const int o = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int e = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (o < 0 || e < 0) ::_exit(126);
      ::dup2(o, 1);
      ::dup2(e, 2);
      std::vector<char*> av{const_cast<char*>("exitscope")};
      for (const std::string& a : args) av.push_back(const_cast<char*>(a.c_str()));
      av.push_back(nullptr);
      ::execv(ES_EXITSCOPE_BIN, av.data());
      ::_exit(127);
    }
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  std::string err() const { return slurp(err_path); }
  // True once it has exited (status kept).
  bool exited() {
    if (!reaped && pid > 0 && ::waitpid(pid, &status, WNOHANG) == pid) reaped = true;
    return reaped;
  }
  // Until it says "recording ..." (attached); false if it ended or 10 s passed first.
  bool wait_attached() {
    for (int i = 0; i < 400; ++i) {
      if (err().find("recording ") != std::string::npos) return true;
      if (exited()) return false;
      ::usleep(25 * 1000);
    }
    return false;
  }
  int wait() {
    if (!reaped && pid > 0 && ::waitpid(pid, &status, 0) == pid) reaped = true;
    return status;
  }
  void kill(int sig) {
    if (!reaped && pid > 0) ::kill(pid, sig);
  }
  ~Background() {
    if (!reaped && pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
  }
};

}  // namespace es::test::kvm
