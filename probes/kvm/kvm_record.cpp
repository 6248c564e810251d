#include "probes/kvm/kvm_record.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <unordered_map>

#include "probes/kvm/kvm_loader.h"
#include "probes/recorder/recorder.h"
#include "replay/import/kvm_linker.h"
#include "schema/sqlite_db.h"

namespace es::kvm {

namespace {

std::atomic<bool> g_stop{false};
extern "C" void on_kvm_stop_signal(int) { g_stop.store(true); }

uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);  // bpf_ktime_get_ns()'s clock
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}


// The invoking user when run through sudo: the recording and the workload are theirs.
struct SudoUser {
  bool present = false;
  uid_t uid = 0;
  gid_t gid = 0;
};
SudoUser sudo_user() {
  SudoUser u;
  const char* su = std::getenv("SUDO_UID");
  const char* sg = std::getenv("SUDO_GID");
  if (!su || !sg || ::geteuid() != 0) return u;
  char* e1 = nullptr;
  char* e2 = nullptr;
  const unsigned long uid = std::strtoul(su, &e1, 10);
  const unsigned long gid = std::strtoul(sg, &e2, 10);
  if (*e1 || *e2 || uid == 0) return u;
  u.present = true;
  u.uid = static_cast<uid_t>(uid);
  u.gid = static_cast<gid_t>(gid);
  return u;
}

// Drops to `u` for good (groups, gid, then uid). Error: errno text.
Result<void> drop_to(const SudoUser& u) {
  if (!u.present) return {};
  const passwd* pw = ::getpwuid(u.uid);
  if (pw ? ::initgroups(pw->pw_name, u.gid) != 0 : ::setgroups(0, nullptr) != 0)
    return Error{std::string("setting the groups of uid ") + std::to_string(u.uid) + " failed: " + std::strerror(errno)};
  if (::setgid(u.gid) != 0 || ::setuid(u.uid) != 0)
    return Error{std::string("dropping privileges to uid ") + std::to_string(u.uid) + " failed: " + std::strerror(errno)};
  return {};
}

// The workload of `-- CMD ARGS`: forked at once, held on a pipe until the probes are attached.
class Workload {
 public:
  ~Workload() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
    if (release_fd_ >= 0) ::close(release_fd_);
  }
  Result<void> start(const std::vector<std::string>& argv, const SudoUser& user) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return Error{std::string("pipe: ") + std::strerror(errno)};
    pid_ = ::fork();
    if (pid_ < 0) return Error{std::string("cannot start the command (fork: ") + std::strerror(errno) + ")"};
    if (pid_ == 0) {
      ::close(fds[1]);
      char go = 0;
      if (::read(fds[0], &go, 1) != 1) ::_exit(127);  // the recorder gave up
      if (!drop_to(user)) ::_exit(127);
      std::vector<char*> av;
      for (const std::string& a : argv) av.push_back(const_cast<char*>(a.c_str()));
      av.push_back(nullptr);
      ::execvp(av[0], av.data());
      std::fprintf(stderr, "exitscope record: cannot run '%s': %s\n", av[0], std::strerror(errno));
      ::_exit(127);
    }
    ::close(fds[0]);
    release_fd_ = fds[1];
    return {};
  }
  void release() {
    if (release_fd_ < 0) return;
    const char go = 1;
    (void)!::write(release_fd_, &go, 1);
    ::close(release_fd_);
    release_fd_ = -1;
  }
  pid_t pid() const { return pid_; }
  // True once it has exited; `status` = its exit code (128 + signal).
  bool exited(int& status) {
    if (pid_ <= 0) return false;
    if (reaped_) {
      status = status_;
      return true;
    }
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) != pid_) return false;
    reaped_ = true;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    status = status_;
    return true;
  }

 private:
  pid_t pid_ = -1;
  int release_fd_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// vCPU of each event: the event's own vcpu_id, else what an earlier event of the same thread
// said, else QEMU's "CPU n/KVM" thread name, else one vCPU per thread in order of appearance
// (noted in the session).
class VcpuMap {
 public:
  int32_t resolve(const import::TraceLine& t, uint32_t tgid) {
    const int32_t tid = t.pid;
    if (t.vcpu >= 0) {
      by_tid_[tid] = t.vcpu;
      return t.vcpu;
    }
    if (auto it = by_tid_.find(tid); it != by_tid_.end()) return it->second;
    int32_t v = from_comm(tgid, tid);
    if (v < 0) {
      guessed_ = true;
      v = next_guess_++;
    }
    by_tid_[tid] = v;
    return v;
  }
  bool guessed() const { return guessed_; }

 private:
  static int32_t from_comm(uint32_t tgid, int32_t tid) {
    std::ifstream in("/proc/" + std::to_string(tgid) + "/task/" + std::to_string(tid) + "/comm");
    std::string comm;
    if (!in || !std::getline(in, comm)) return -1;
    unsigned n = 0;
    char tail[8] = {};
    if (std::sscanf(comm.c_str(), "CPU %u/%7s", &n, tail) == 2 && std::strcmp(tail, "KVM") == 0 && n < 0xFFFF)
      return static_cast<int32_t>(n);
    return -1;
  }
  std::unordered_map<int32_t, int32_t> by_tid_;
  int32_t next_guess_ = 0;
  bool guessed_ = false;
};

// What the formats say about the kernel's era (arch/x86/kvm/trace.h history).
std::string formats_era(const KvmProbes& p) {
  const auto& ls = p.decoder().layouts();
  std::string s;
  auto add = [&](const std::string& x) { s += (s.empty() ? "" : "; ") + x; };
  if (const auto& l = ls[ES_KVM_EV_EXIT])
    add(l->has(kIntrInfo) ? "kvm_exit has intr_info/error_code (5.10+: info2 = IDT-vectoring info)"
                          : "kvm_exit without intr_info (before 5.10: info2 = VM-exit interruption info)");
  if (const auto& l = ls[ES_KVM_EV_ENTRY])
    add(l->has(kIntrInfo) ? "kvm_entry has the injected event (6.14+)"
                          : l->has(kImmediateExit) ? "kvm_entry has immediate_exit (6.9+)" : "kvm_entry: vcpu and rip only");
  if (const auto& l = ls[ES_KVM_EV_INJ_VIRQ])
    add(l->has(kReinjected) ? "kvm_inj_* have reinjected (5.19+)" : "kvm_inj_* without reinjected (before 5.19: inferred)");
  return s;
}

std::string config_json(const KvmProbes& p, const RecordOptions& o, int64_t pid, const std::vector<uint64_t>* drops,
                        const import::ImportStats* linked, bool vcpu_guessed, uint64_t undecodable) {
  std::string j = "{\"kvm\": {\"kernel\": \"" + import::json_escape(p.kernel_release()) + "\", \"events\": [";
  bool first = true;
  for (const AttachedEvent& a : p.attached()) {
    j += std::string(first ? "" : ", ") + "{\"name\": \"" + std::string(kEventNames[static_cast<size_t>(a.event)]) +
         "\", \"attach\": \"" + a.method + "\"";
    if (!a.optional_missing.empty()) {
      j += ", \"fields_missing\": [";
      for (size_t i = 0; i < a.optional_missing.size(); ++i)
        j += std::string(i ? ", " : "") + "\"" + import::json_escape(a.optional_missing[i]) + "\"";
      j += "]";
    }
    j += "}";
    first = false;
  }
  j += "], \"refused\": [";
  for (size_t i = 0; i < p.refused().size(); ++i) j += std::string(i ? ", " : "") + "\"" + import::json_escape(p.refused()[i]) + "\"";
  j += "], \"ring_bytes\": " + std::to_string(p.ring_bytes()) + ", \"pid\": " + std::to_string(pid) +
       ", \"vcpu\": " + std::to_string(o.vcpu) + ", \"duration_s\": " + std::to_string(o.duration_s);
  if (drops) {
    uint64_t total = 0;
    j += ", \"drops_per_cpu\": [";
    for (size_t i = 0; i < drops->size(); ++i) {
      j += std::string(i ? ", " : "") + std::to_string((*drops)[i]);
      total += (*drops)[i];
    }
    j += "], \"drops\": " + std::to_string(total);
  }
  if (linked) {
    const std::string vendor = linked->vendor == "unknown" ? "no VM exits seen" : linked->vendor;
    j += ", \"vendor\": \"" + import::json_escape(vendor) + "\", \"era\": \"" + import::json_escape(formats_era(p)) +
         "\", \"assumptions\": [";
    std::vector<std::string> as = linked->assumptions;
    if (vcpu_guessed) as.push_back("some threads name no vCPU: one vCPU per thread, numbered in order of appearance");
    for (size_t i = 0; i < as.size(); ++i) j += std::string(i ? ", " : "") + "\"" + import::json_escape(as[i]) + "\"";
    j += "], \"undecodable\": " + std::to_string(undecodable);
  }
  return j + "}}";
}

// sessions.config_json once the recording is complete (the recorder writes it at open).
Result<void> update_config(const std::string& path, const std::string& json) {
  auto db = db::Db::open(path, SQLITE_OPEN_READWRITE);
  if (!db) return Error{"cannot reopen '" + path + "' to store the drop counts: " + db.error()};
  auto st = db->prepare("UPDATE sessions SET config_json = ? WHERE id = 1");
  if (!st) return Error{"cannot store the drop counts in '" + path + "': " + st.error()};
  st->bind(1, json);
  if (st->step() != SQLITE_DONE) return Error{"cannot store the drop counts in '" + path + "': " + db->errmsg()};
  return {};
}

}  // namespace

int parse_event_name(std::string_view name) {
  if (int e = event_index(name); e >= 0) return e;
  if (name.substr(0, 4) != "kvm_") return event_index("kvm_" + std::string(name));
  return -1;
}

int record_kvm(const RecordOptions& o) {
  auto fail = [](const std::string& msg) {
    std::fprintf(stderr, "exitscope record: %s\n", msg.c_str());
    return 2;
  };
  ProbeOptions po;
  for (const std::string& n : o.events) {
    const int e = parse_event_name(n);
    if (e < 0) {
      std::string known;
      for (std::string_view k : kEventNames) known += (known.empty() ? "" : ", ") + std::string(k);
      return fail("unknown tracepoint '" + n + "' in --events (known: " + known + ")");
    }
    po.events.push_back(e);
  }
  po.events_explicit = !o.events.empty();
  if (o.test_overflow) {
    po.ring_bytes = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    po.wakeup_bytes = 0;
  }
  if (::geteuid() != 0)
    return fail("recording a KVM host attaches eBPF programs to the kernel's kvm tracepoints, which needs root: "
                "run it with sudo (the recording will belong to you)");
  const SudoUser user = sudo_user();

  Workload workload;
  int64_t pid = o.pid;
  if (!o.command.empty()) {
    if (auto w = workload.start(o.command, user); !w) return fail(w.error());
    pid = workload.pid();
  }
  po.filter_tgid = pid > 0 ? static_cast<uint32_t>(pid) : 0;
  auto probes = KvmProbes::open(po);
  if (!probes) return fail(probes.error());
  KvmProbes& p = **probes;
  if (!o.quiet)
    for (const std::string& r : p.refused()) std::fprintf(stderr, "exitscope record: not recording %s\n", r.c_str());

  // Attached: from here on nothing needs root.
  if (auto d = drop_to(user); !d) return fail(d.error());

  recorder::SessionInfo info;
  info.source = recorder::Source::Kvm;
  info.guest_path = !o.command.empty() ? o.command.front() : pid > 0 ? "pid " + std::to_string(pid) : "all KVM guests";
  info.command_line = o.command_line;
  info.config_json = config_json(p, o, pid, nullptr, nullptr, false, 0);
  recorder::RecorderOptions ropt;
  // A deeper queue (256 Ki records, 32 MiB) than the hv source's: bursts wait here rather than
  // in the ring, whose overflow loses events.
  ropt.max_queued = 1u << 18;
  auto rec = recorder::Recorder::open(o.output, info, o.force, ropt);
  if (!rec) return fail(rec.error());

  g_stop.store(false);
  struct sigaction sa{};
  sa.sa_handler = on_kvm_stop_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int{}, old_term{};
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);

  import::KvmEventLinker linker;
  VcpuMap vcpus;
  std::vector<es_record> batch;
  uint64_t seq = 0, kvm_events = 0, filtered = 0, undecodable = 0, written = 0;
  const uint64_t t0 = monotonic_ns();
  auto hand_out = [&](bool all) {
    batch.clear();
    if (all) linker.take_all(batch);
    else linker.take_settled(batch);
    (*rec)->on_records(batch.data(), batch.size());
    written += batch.size();
  };
  const Decoder& dec = p.decoder();
  KvmProbes::Sink sink = [&](const es_kvm_event& e) {
    import::TraceLine t;
    if (!dec.decode(e, t)) {
      ++undecodable;
      return;
    }
    ++kvm_events;
    t.vcpu = vcpus.resolve(t, e.tgid);
    if (o.vcpu >= 0 && t.vcpu != o.vcpu) {
      ++filtered;
      return;
    }
    // line_no = the event's index in the recording (CONTEXT records keep it in aux).
    linker.add(t, e.time_ns > t0 ? e.time_ns - t0 : 0);  // no line number: recorded live
    ++seq;
  };

  workload.release();
  const bool tty = ::isatty(2) == 1;
  if (!o.quiet)
    std::fprintf(stderr, "recording %zu kvm tracepoints into %s%s ...\n", p.attached().size(), o.output.c_str(),
                 pid > 0 ? (" (pid " + std::to_string(pid) + ")").c_str() : " (every process)");
  const uint64_t deadline = o.duration_s > 0 ? t0 + static_cast<uint64_t>(o.duration_s * 1e9) : 0;
  uint64_t last_report = t0, last_events = 0;
  int workload_status = 0;
  bool workload_done = false;
  std::string end_detail = "stopped by signal";
  std::string error;
  while (true) {
    auto n = p.poll(o.test_overflow ? 0 : 50, sink);
    if (!n) {
      error = n.error();
      break;
    }
    hand_out(false);
    if (o.test_overflow) ::usleep(100 * 1000);  // a consumer too slow for a one-page ring
    const uint64_t now = monotonic_ns();
    if (!o.quiet && tty && now - last_report >= 1000000000ull) {
      const double rate = static_cast<double>(kvm_events - last_events) * 1e9 / static_cast<double>(now - last_report);
      std::fprintf(stderr, "\r%llu events, %.0f events/s, %llu dropped   ", static_cast<unsigned long long>(kvm_events),
                   rate, static_cast<unsigned long long>(p.drops_total()));
      last_report = now;
      last_events = kvm_events;
    }
    if (g_stop.load()) break;
    if (deadline && now >= deadline) {
      end_detail = "duration reached";
      break;
    }
    if (workload.exited(workload_status)) {
      workload_done = true;
      end_detail = "workload exited with status " + std::to_string(workload_status);
      break;
    }
  }
  // Stop producing, then drain everything already in the ring.
  p.detach();
  for (int i = 0; i < 1000 && error.empty(); ++i) {
    auto n = p.poll(0, sink);
    if (!n) error = n.error();
    if (!n || *n == 0) break;
  }
  hand_out(true);
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  if (!o.quiet && tty) std::fputc('\n', stderr);

  const std::vector<uint64_t> drops = p.drops_per_cpu();
  uint64_t dropped = 0;
  for (uint64_t d : drops) dropped += d;
  import::ImportStats linked;
  linker.describe(linked);
  const std::string json = config_json(p, o, pid, &drops, &linked, vcpus.guessed(), undecodable);
  const uint32_t end_reason = workload_done ? ES_END_GUEST_EXIT : ES_END_STOPPED;
  if (!error.empty()) end_detail = error;
  auto fin = (*rec)->finish({end_reason, end_detail, dropped});
  const auto stats = (*rec)->stats();
  rec->reset();
  if (!fin) return fail(fin.error());
  if (auto u = update_config(o.output, json); !u) return fail(u.error());
  if (!error.empty()) return fail(error + "; everything read before it is in " + o.output);
  if (!o.quiet) {
    std::fprintf(stdout,
                 "recorded %llu kvm events (%llu records) into %s: %s; %llu dropped by the ring buffer%s%s\n",
                 static_cast<unsigned long long>(kvm_events), static_cast<unsigned long long>(stats.written),
                 o.output.c_str(), end_detail.c_str(), static_cast<unsigned long long>(dropped),
                 filtered ? (", " + std::to_string(filtered) + " of other vCPUs skipped").c_str() : "",
                 dropped ? " (a larger ring or fewer --events would help)" : "");
  }
  if (workload_done && workload_status != 0) return 1;
  return 0;
}

std::vector<std::string> describe_kvm_config(std::string_view j) {
  std::vector<std::string> out;
  if (j.find("{\"kvm\":") == std::string_view::npos) return out;
  auto str = [&](std::string_view key) -> std::string {
    const std::string k = "\"" + std::string(key) + "\": \"";
    const size_t b = j.find(k);
    if (b == std::string_view::npos) return {};
    const size_t s = b + k.size();
    size_t e = s;
    while (e < j.size() && j[e] != '"') e += j[e] == '\\' ? 2 : 1;
    return std::string(j.substr(s, std::min(e, j.size()) - s));
  };
  auto list = [&](std::string_view key) -> std::string {
    const std::string k = "\"" + std::string(key) + "\": [";
    const size_t b = j.find(k);
    if (b == std::string_view::npos) return {};
    const size_t e = j.find(']', b + k.size());
    return std::string(j.substr(b + k.size(), (e == std::string_view::npos ? j.size() : e) - b - k.size()));
  };
  auto num = [&](std::string_view key) -> std::string {
    const std::string k = "\"" + std::string(key) + "\": ";
    const size_t b = j.find(k);
    if (b == std::string_view::npos) return {};
    size_t e = b + k.size();
    while (e < j.size() && ((j[e] >= '0' && j[e] <= '9') || j[e] == '-')) ++e;
    return std::string(j.substr(b + k.size(), e - b - k.size()));
  };
  out.push_back("kernel " + str("kernel") + (str("vendor").empty() ? "" : ", " + str("vendor")) +
                (str("era").empty() ? "" : ", " + str("era")));
  // "events": [{"name": "kvm_exit", "attach": "tp"}, ...] -> "kvm_exit (tp), ..."
  std::string ev;
  const std::string evs = list("events");
  for (size_t pos = 0; (pos = evs.find("\"name\": \"", pos)) != std::string::npos;) {
    pos += 9;
    const size_t e = evs.find('"', pos);
    const std::string name = evs.substr(pos, e - pos);
    const size_t a = evs.find("\"attach\": \"", e);
    std::string how = "?";
    if (a != std::string::npos) how = evs.substr(a + 11, evs.find('"', a + 11) - a - 11);
    ev += (ev.empty() ? "" : ", ") + name + " (" + how + ")";
    pos = e;
  }
  out.push_back("attached " + ev);
  const std::string refused = list("refused");
  if (!refused.empty()) out.push_back("refused " + refused);
  const std::string drops = num("drops");
  out.push_back("ring " + num("ring_bytes") + " bytes; " +
                (drops.empty() ? std::string("drops unknown (the recording did not finish)")
                               : drops + " dropped (per CPU: " + list("drops_per_cpu") + ")"));
  return out;
}

}  // namespace es::kvm
