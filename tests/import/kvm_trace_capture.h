// Makes a real trace.dat on this machine: runs es-kvm-guest (tests/kvm) under the kvm
// tracepoints, enabled in tracefs and filtered to the guest's pid, then `trace-cmd extract`
// (trace-cmd record cannot enable ftrace here; extract only reads the buffer). Used by the
// trace.dat import tests and bench/import.
//
// tracefs is global: every user of it in this project (these tests, the eBPF KVM recorder's
// tests) serializes on flock(kTracefsLock). The state touched (tracing_on, set_event_pid, the
// kvm events' enable files) is restored afterwards.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace es::test {

inline constexpr const char* kTracefsLock = "/tmp/exitscope-tracefs.lock";

struct KvmTraceCapture {
  std::string skip;          // non-empty: no capture possible here, and why (for GTEST_SKIP)
  std::string error;         // non-empty: the capture failed (a test failure)
  std::string guest_output;  // the (first) es-kvm-guest's stdout
  int guest_pid = -1;
  std::vector<std::string> outputs;  // every guest's stdout, in start order
  std::vector<int> pids;             // and its pid
};

namespace capture_detail {

inline std::string read_file(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline bool write_file(const std::string& p, const std::string& v) {
  const int fd = ::open(p.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = v.empty() || ::write(fd, v.data(), v.size()) == static_cast<ssize_t>(v.size());
  ::close(fd);
  return ok;
}

// Holds flock(kTracefsLock) while alive.
class TracefsLock {
 public:
  TracefsLock() {
    fd_ = ::open(kTracefsLock, O_CREAT | O_RDWR | O_CLOEXEC, 0666);
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~TracefsLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }
  TracefsLock(const TracefsLock&) = delete;
  TracefsLock& operator=(const TracefsLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace capture_detail

// The events a capture enables (those present in this kernel's tracefs): the kvm ones, and two
// scheduler events of the guest's own process (exec, exit) that an import keeps as context.
inline const std::vector<std::string>& capture_events() {
  static const std::vector<std::string> k = {"kvm/kvm_exit",
                                             "kvm/kvm_entry",
                                             "kvm/kvm_inj_virq",
                                             "kvm/kvm_inj_exception",
                                             "kvm/kvm_page_fault",
                                             "kvm/kvm_emulate_insn",
                                             "kvm/kvm_pio",
                                             "kvm/kvm_userspace_exit",
                                             "kvm/kvm_mmio",
                                             "sched/sched_process_exec",
                                             "sched/sched_process_exit"};
  return k;
}

// Why no capture is possible here ("" if it is): needs root, /dev/kvm, trace-cmd, tracefs and the
// kvm tracepoints. Mounts tracefs if it is not.
inline std::string capture_skip_reason() {
  namespace fs = std::filesystem;
  if (::geteuid() != 0) return "needs root: the kvm tracepoints are enabled through tracefs";
  if (::access("/dev/kvm", R_OK | W_OK) != 0) return "/dev/kvm is not usable here";
  if (std::system("command -v trace-cmd >/dev/null 2>&1") != 0) return "trace-cmd is not installed (./run installs it)";
  const std::string t = "/sys/kernel/tracing";
  if (!fs::exists(t + "/tracing_on")) ::mount("nodev", t.c_str(), "tracefs", 0, nullptr);
  if (!fs::exists(t + "/tracing_on")) return "tracefs is not mounted at " + t + " and cannot be mounted";
  for (const char* needed : {"kvm_pio", "kvm_inj_exception", "kvm_emulate_insn", "kvm_userspace_exit"})
    if (!fs::exists(t + "/events/kvm/" + needed + "/enable"))
      return std::string("this kernel has no kvm tracepoint ") + needed + " (kvm module not loaded?)";
  return {};
}

// Runs `guest_bin --loops LOOPS` traced and writes the trace (file version 7, trace-cmd's default
// compression) to `out_dat`. `buffer_kb`: ring buffer size per CPU for the run (0: as it is;
// each loop of the guest makes about 20 events, ~0.7 KB). `guests` > 1: that many guests at
// once, guest i pinned to host CPU i modulo the CPU count (their events interleave across the
// per-CPU buffers) and guest i runs LOOPS + i loops.
inline KvmTraceCapture capture_kvm_trace(const std::string& guest_bin, unsigned loops, const std::string& out_dat,
                                         unsigned buffer_kb = 0, unsigned guests = 1) {
  using capture_detail::read_file;
  using capture_detail::write_file;
  namespace fs = std::filesystem;
  KvmTraceCapture c;
  c.skip = capture_skip_reason();
  if (!c.skip.empty()) return c;
  const std::string t = "/sys/kernel/tracing";

  capture_detail::TracefsLock lock;
  const std::string was_on = read_file(t + "/tracing_on");
  const std::string was_kb = read_file(t + "/buffer_size_kb");
  const std::string was_pids = read_file(t + "/set_event_pid");
  std::vector<std::pair<std::string, std::string>> was_enabled;
  for (const std::string& e : capture_events()) {
    const std::string p = t + "/events/" + e + "/enable";
    if (fs::exists(p)) was_enabled.emplace_back(p, read_file(p));
  }
  auto restore = [&] {
    write_file(t + "/tracing_on", "0");
    for (const auto& [p, v] : was_enabled) write_file(p, v.substr(0, 1));
    write_file(t + "/set_event_pid", "");
    std::istringstream pids(was_pids);
    for (std::string pid; pids >> pid;) {
      const int fd = ::open((t + "/set_event_pid").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
      if (fd >= 0) {
        (void)!::write(fd, pid.data(), pid.size());
        ::close(fd);
      }
    }
    if (buffer_kb) write_file(t + "/buffer_size_kb", std::to_string(std::strtoul(was_kb.c_str(), nullptr, 10)));
    write_file(t + "/tracing_on", was_on.substr(0, 1));
  };

  write_file(t + "/tracing_on", "0");
  if (buffer_kb) write_file(t + "/buffer_size_kb", std::to_string(buffer_kb));
  write_file(t + "/trace", "");  // empties the ring buffer of every CPU
  // Each guest waits until its pid is in the event filter, then becomes es-kvm-guest (same pid).
  int go[2];
  if (::pipe2(go, O_CLOEXEC) != 0) {
    c.error = "pipe failed";
    restore();
    return c;
  }
  const long ncpu = std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN));
  std::vector<std::string> out_txt;
  for (unsigned g = 0; g < std::max(1u, guests); ++g) {
    out_txt.push_back(out_dat + ".guest" + std::to_string(g) + ".txt");
    const pid_t child = ::fork();
    if (child == 0) {
      char b = 0;
      ::close(go[1]);
      if (::read(go[0], &b, 1) != 1) ::_exit(126);
      if (guests > 1) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(static_cast<int>(g % static_cast<unsigned>(ncpu)), &set);
        ::sched_setaffinity(0, sizeof set, &set);
      }
      const int fd = ::open(out_txt.back().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) ::_exit(126);
      ::dup2(fd, STDOUT_FILENO);
      const std::string n = std::to_string(loops + g);  // distinct outputs per guest
      ::execl(guest_bin.c_str(), guest_bin.c_str(), "--loops", n.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    if (child < 0) break;
    c.pids.push_back(child);
  }
  ::close(go[0]);
  if (c.pids.empty()) {
    ::close(go[1]);
    c.error = "fork failed";
    restore();
    return c;
  }
  c.guest_pid = c.pids[0];
  {
    std::string pids;
    for (int pid : c.pids) pids += std::to_string(pid) + " ";
    write_file(t + "/set_event_pid", pids);
  }
  for (const auto& [p, v] : was_enabled) write_file(p, "1");
  write_file(t + "/tracing_on", "1");
  for (size_t i = 0; i < c.pids.size(); ++i) (void)!::write(go[1], "g", 1);
  ::close(go[1]);
  int worst = 0;
  for (int pid : c.pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    worst = std::max(worst, WIFEXITED(status) ? WEXITSTATUS(status) : 128);
  }
  write_file(t + "/tracing_on", "0");
  for (const std::string& o : out_txt) c.outputs.push_back(read_file(o));
  c.guest_output = c.outputs.empty() ? std::string() : c.outputs[0];
  if (worst == 3) {
    restore();
    c.skip = "es-kvm-guest cannot use /dev/kvm here: " + c.guest_output;
    return c;
  }
  if (worst != 0) {
    restore();
    c.error = "es-kvm-guest exited with " + std::to_string(worst);
    return c;
  }
  const std::string log = out_dat + ".extract.log";
  // trace-cmd writes /proc/kallsyms into the file's header before it reads the buffers, and
  // fails ("error in size of file '/proc/kallsyms'") when the file changes size meanwhile, as it
  // does whenever a BPF program is loaded or unloaded (bpf_prog_* symbols): another test of the
  // same run (ctest -j) recording with eBPF. The buffers are not read yet then: try again.
  int rc = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    fs::remove(out_dat);
    rc = std::system(("trace-cmd extract -o '" + out_dat + "' >'" + log + "' 2>&1").c_str());
    if (rc == 0 || read_file(log).find("/proc/kallsyms") == std::string::npos) break;
  }
  restore();
  if (rc != 0 || !fs::exists(out_dat)) c.error = "trace-cmd extract failed: " + read_file(log);
  return c;
}

// `trace-cmd convert`: another file version and / or compression ("none", "zstd", "any").
inline std::string convert_trace_dat(const std::string& in, const std::string& out, int version,
                                     const std::string& compression) {
  std::filesystem::remove(out);
  const std::string log = out + ".convert.log";
  std::string cmd = "trace-cmd convert --file-version " + std::to_string(version);
  if (!compression.empty()) cmd += " --compression " + compression;
  cmd += " -i '" + in + "' -o '" + out + "' >'" + log + "' 2>&1";
  if (std::system(cmd.c_str()) != 0 || !std::filesystem::exists(out))
    return "trace-cmd convert failed: " + capture_detail::read_file(log);
  return {};
}

}  // namespace es::test
