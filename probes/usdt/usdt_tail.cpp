// es-usdt-tail: the example loader for usdt_tail.bpf.c. Attaches an eBPF program to the
// `exitscope:record` USDT probe of an exitscope binary and prints every record the hv core
// delivers, as an external tracer sees it (no in-process plugin involved).
//
//   es-usdt-tail [--binary PATH] [--pid PID] [-- COMMAND ARGS...]
//
// With a COMMAND, the command is started held, the probe attached to that process only, then
// the command runs (its stdout goes to stderr) and es-usdt-tail stops once it exits (so the
// whole run is seen). With --pid it follows
// that process until it exits or Ctrl-C. Output, one line per record:
//   record ID KIND REASON VCPU LEVEL TIME_NS
// then "summary records N dropped N". Needs root (or CAP_BPF + CAP_PERFMON).
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "exitscope/names.h"
#include "exitscope/record.h"
#include "probes/usdt/usdt_tail.skel.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct SkelDeleter {
  void operator()(usdt_tail_bpf* s) const { usdt_tail_bpf__destroy(s); }
};
struct RingDeleter {
  void operator()(ring_buffer* r) const { ring_buffer__free(r); }
};
struct LinkDeleter {
  void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};

struct Counts {
  unsigned long long records = 0;
};

int on_sample(void* ctx, void* data, size_t size) {
  if (size < sizeof(es_record)) return 0;
  es_record r;
  std::memcpy(&r, data, sizeof r);
  ++static_cast<Counts*>(ctx)->records;
  const std::string_view kind = es_kind_name(r.kind);
  std::printf("record %llu %.*s 0x%x %u %u %llu\n", static_cast<unsigned long long>(r.id),
              static_cast<int>(kind.size()), kind.data(), r.reason, r.vcpu, r.level,
              static_cast<unsigned long long>(r.time_ns));
  return 0;
}

int silent_libbpf(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_WARN && std::getenv("ES_LIBBPF_DEBUG")) return std::vfprintf(stderr, fmt, args);
  return 0;
}

void usage(std::FILE* f) {
  std::fprintf(f,
               "usage: es-usdt-tail [--binary PATH] [--pid PID] [-- COMMAND ARGS...]\n"
               "Attaches an eBPF program to exitscope's USDT probe exitscope:record and prints every\n"
               "record the hv core delivers: 'record ID KIND REASON VCPU LEVEL TIME_NS'.\n"
               "  --binary PATH  the exitscope binary to attach to (default: exitscope beside this program)\n"
               "  --pid PID      follow that running process only, until it exits or Ctrl-C\n"
               "  -- COMMAND     attach, run COMMAND, stop when it exits\n"
               "Needs root (or CAP_BPF and CAP_PERFMON).\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string binary;
  pid_t pid = -1;
  std::vector<char*> command;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") {
      for (int j = i + 1; j < argc; ++j) command.push_back(argv[j]);
      break;
    } else if (a == "--binary" && i + 1 < argc) {
      binary = argv[++i];
    } else if (a == "--pid" && i + 1 < argc) {
      char* end = nullptr;
      const long v = std::strtol(argv[++i], &end, 10);
      if (*end || v <= 0) {
        std::fprintf(stderr, "es-usdt-tail: --pid takes a process id, not '%s'\n", argv[i]);
        return 2;
      }
      pid = static_cast<pid_t>(v);
    } else if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "es-usdt-tail: unknown argument '%s' (try --help)\n", a.c_str());
      return 2;
    }
  }
  if (command.empty() && pid < 0) {
    std::fprintf(stderr, "es-usdt-tail: give --pid PID or -- COMMAND (try --help)\n");
    return 2;
  }
  if (binary.empty()) {
    std::error_code ec;
    binary = (std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "exitscope").string();
  }
  if (!std::filesystem::exists(binary)) {
    std::fprintf(stderr, "es-usdt-tail: no exitscope binary at '%s'; pass --binary PATH\n", binary.c_str());
    return 2;
  }

  // With a COMMAND: fork it first, held on a pipe until the probe is attached to it alone
  // (other exitscope processes on the machine are not traced), then let it exec.
  pid_t child = -1;
  int go[2] = {-1, -1};
  if (!command.empty()) {
    if (::pipe2(go, O_CLOEXEC) != 0) {
      std::fprintf(stderr, "es-usdt-tail: pipe: %s\n", std::strerror(errno));
      return 3;
    }
    command.push_back(nullptr);
    child = ::fork();
    if (child == 0) {
      ::close(go[1]);
      char c = 0;
      if (::read(go[0], &c, 1) != 1) std::_Exit(126);  // the parent gave up
      ::dup2(STDERR_FILENO, STDOUT_FILENO);            // our stdout carries only the records
      ::execvp(command[0], command.data());
      std::fprintf(stderr, "es-usdt-tail: cannot run '%s': %s\n", command[0], std::strerror(errno));
      std::_Exit(127);
    }
    ::close(go[0]);
    if (child < 0) {
      std::fprintf(stderr, "es-usdt-tail: fork: %s\n", std::strerror(errno));
      return 3;
    }
    pid = child;
  }
  // Whatever happens below, a held child is released or reaped, never left waiting.
  auto abandon_child = [&] {
    if (child > 0) {
      ::close(go[1]);
      ::waitpid(child, nullptr, 0);
    }
  };

  libbpf_set_print(silent_libbpf);
  std::unique_ptr<usdt_tail_bpf, SkelDeleter> skel(usdt_tail_bpf__open_and_load());
  if (!skel) {
    const int e = errno;
    abandon_child();
    std::fprintf(stderr, "es-usdt-tail: the kernel refused the BPF program (%s); run as root%s\n", std::strerror(e),
                 e == EPERM || e == EACCES ? " or with CAP_BPF and CAP_PERFMON" : "");
    return 3;
  }
  std::unique_ptr<bpf_link, LinkDeleter> link(
      bpf_program__attach_usdt(skel->progs.on_record, pid, binary.c_str(), "exitscope", "record", nullptr));
  if (!link) {
    const int e = errno;
    abandon_child();
    std::fprintf(stderr,
                 "es-usdt-tail: cannot attach to exitscope:record in '%s' (%s); is it an exitscope "
                 "binary built with USDT sites?\n",
                 binary.c_str(), std::strerror(e));
    return 3;
  }
  Counts counts;
  std::unique_ptr<ring_buffer, RingDeleter> ring(
      ring_buffer__new(bpf_map__fd(skel->maps.records), on_sample, &counts, nullptr));
  if (!ring) {
    const int e = errno;
    abandon_child();
    std::fprintf(stderr, "es-usdt-tail: cannot open the ring buffer (%s)\n", std::strerror(e));
    return 3;
  }

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  if (child > 0) {
    const char c = 1;
    if (::write(go[1], &c, 1) != 1) {
      std::fprintf(stderr, "es-usdt-tail: cannot start the command: %s\n", std::strerror(errno));
      return 3;
    }
    ::close(go[1]);
  }
  int child_status = 0;
  while (!g_stop) {
    ring_buffer__poll(ring.get(), 100);
    if (child > 0) {
      if (::waitpid(child, &child_status, WNOHANG) == child) break;
    } else if (::kill(pid, 0) != 0 && errno == ESRCH) {
      break;
    }
  }
  while (ring_buffer__consume(ring.get()) > 0) {
  }
  std::printf("summary records %llu dropped %llu\n", counts.records,
              static_cast<unsigned long long>(skel->bss->dropped));
  std::fflush(stdout);
  if (child > 0 && !(WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0)) {
    std::fprintf(stderr, "es-usdt-tail: the command failed (status %d)\n", child_status);
    return 1;
  }
  return 0;
}
