#include "probes/kvm/kvm_record.h"

#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "probes/kvm/kvm_loader.h"
#include "probes/kvm/live_stats.h"
#include "probes/recorder/recorder.h"
#include "kvmtrace/linker.h"
#include "schema/sqlite_db.h"

namespace es::kvm {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_signals{0};  // a second Ctrl-C while the backlog is written abandons it
extern "C" void on_kvm_stop_signal(int) {
  g_signals.fetch_add(1);
  g_stop.store(true);
}

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
    return Error{std::string("setting the groups of uid ") + std::to_string(u.uid) +
                 " failed: " + std::strerror(errno)};
  if (::setgid(u.gid) != 0 || ::setuid(u.uid) != 0)
    return Error{std::string("dropping privileges to uid ") + std::to_string(u.uid) +
                 " failed: " + std::strerror(errno)};
  return {};
}

// Raw ring-buffer events waiting for the pipeline thread, in chunks. The ring's consumer never
// blocks here: beyond `max_events` a chunk is dropped and counted (stored with the ring's drops).
class Spool {
 public:
  static constexpr size_t kChunk = 4096;
  explicit Spool(uint64_t max_events) : max_(std::max<uint64_t>(max_events, kChunk)) { cur_.reserve(kChunk); }

  // Consumer side (one thread).
  void push(const es_kvm_event& e) {
    cur_.push_back(e);
    if (cur_.size() == kChunk) publish();
  }
  void publish() {
    if (cur_.empty()) return;
    std::lock_guard lk(mu_);
    pushed_ += cur_.size();
    if (backlog_ + cur_.size() > max_) {
      dropped_ += cur_.size();
      cur_.clear();
      return;
    }
    backlog_ += cur_.size();
    chunks_.push_back(std::move(cur_));
    if (!free_.empty()) {
      cur_ = std::move(free_.back());
      free_.pop_back();
    } else {
      cur_ = {};
      cur_.reserve(kChunk);
    }
    cv_.notify_one();
  }
  void close() {
    std::lock_guard lk(mu_);
    closed_ = true;
    cv_.notify_one();
  }
  // Drops every waiting chunk (counted); returns how many events that was.
  uint64_t abandon() {
    std::lock_guard lk(mu_);
    uint64_t n = 0;
    for (const auto& c : chunks_) n += c.size();
    chunks_.clear();
    backlog_ -= n;
    abandoned_ += n;
    return n;
  }

  // Pipeline side (one thread): the next chunk into `out` (whose old buffer is recycled);
  // false once closed and empty. done(n) after processing it.
  bool pop(std::vector<es_kvm_event>& out) {
    std::unique_lock lk(mu_);
    if (out.capacity() && free_.size() < 64) {
      out.clear();
      free_.push_back(std::move(out));
    }
    cv_.wait(lk, [&] { return !chunks_.empty() || closed_; });
    if (chunks_.empty()) return false;
    out = std::move(chunks_.front());
    chunks_.pop_front();
    return true;
  }
  void done(size_t n) {
    std::lock_guard lk(mu_);
    backlog_ -= n;
  }

  uint64_t backlog() const {  // events handed over and not yet processed
    std::lock_guard lk(mu_);
    return backlog_;
  }
  uint64_t oldest_ns() const {  // time of the oldest waiting event, 0 if none
    std::lock_guard lk(mu_);
    return chunks_.empty() ? 0 : chunks_.front().front().time_ns;
  }
  uint64_t pushed() const {
    std::lock_guard lk(mu_);
    return pushed_;
  }
  uint64_t dropped() const {  // full
    std::lock_guard lk(mu_);
    return dropped_;
  }
  uint64_t abandoned() const {
    std::lock_guard lk(mu_);
    return abandoned_;
  }
  uint64_t capacity() const { return max_; }

 private:
  const uint64_t max_;
  std::vector<es_kvm_event> cur_;  // the consumer's chunk being filled
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<es_kvm_event>> chunks_;
  std::vector<std::vector<es_kvm_event>> free_;
  uint64_t backlog_ = 0, pushed_ = 0, dropped_ = 0, abandoned_ = 0;
  bool closed_ = false;
};

// Runs the pipeline and writer threads at SCHED_IDLE (sched(7): only on a CPU with nothing else
// to run) while the backlog is younger than `max_lag_s` and under half the spool, and at normal
// priority otherwise, with hysteresis (back to idle under half the lag and a quarter of the
// spool). Decoding and SQLite cost ~3 µs per event; on a host whose CPUs the guests use, this
// does that work later instead of beside them (BENCHMARKS.md, "KVM recorder").
// Returning from SCHED_IDLE needs RLIMIT_NICE >= 20 once root is dropped (allow_return_from_idle).
class Yielder {
 public:
  Yielder(double max_lag_s, uint64_t spool_capacity, std::vector<pthread_t> threads)
      : max_lag_ns_(max_lag_s > 0 ? static_cast<uint64_t>(max_lag_s * 1e9) : 0),
        capacity_(spool_capacity),
        threads_(std::move(threads)) {
    if (max_lag_ns_ && !set(true)) {
      note_ = "priority control unavailable; decoding runs beside the guests";
      max_lag_ns_ = 0;
    }
  }
  void update(uint64_t backlog, uint64_t oldest_ns, uint64_t now) {
    if (!max_lag_ns_) return;
    const uint64_t lag = oldest_ns && now > oldest_ns ? now - oldest_ns : 0;
    if (idle_ && (lag > max_lag_ns_ || backlog > capacity_ / 2)) {
      if (!set(false)) {  // cannot return from idle: stay there rather than lose track
        note_ = "could not raise the pipeline's priority again";
        return;
      }
      ++raised_;
    } else if (!idle_ && lag < max_lag_ns_ / 2 && backlog < capacity_ / 4) {
      (void)set(true);
    }
  }
  void finish() {
    if (idle_) (void)set(false);
  }
  std::string summary() const {
    if (!note_.empty()) return note_;
    if (!max_lag_ns_) return "decoding beside the guests (--max-lag 0)";
    return "decoding at idle priority, up to " + std::to_string(max_lag_ns_ / 1000000) + " ms behind; raised " +
           std::to_string(raised_) + " time(s)";
  }

 private:
  bool set(bool idle) {
    sched_param sp{};
    for (pthread_t t : threads_)
      if (::pthread_setschedparam(t, idle ? SCHED_IDLE : SCHED_OTHER, &sp) != 0) return false;
    idle_ = idle;
    return true;
  }
  uint64_t max_lag_ns_;
  uint64_t capacity_;
  std::vector<pthread_t> threads_;
  bool idle_ = false;
  uint64_t raised_ = 0;
  std::string note_;
};

// Lets this process leave SCHED_IDLE again after dropping root: an unprivileged thread may go
// back to SCHED_OTHER only at a nice value RLIMIT_NICE allows (sched(7)); 20 allows nice 0 and
// nothing higher. Called as root, before drop_to().
void allow_return_from_idle() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NICE, &rl) != 0 || rl.rlim_cur >= 20) return;
  rl.rlim_cur = 20;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 20) rl.rlim_max = 20;
  (void)::setrlimit(RLIMIT_NICE, &rl);
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

// vCPU id of each event: the event's own vcpu_id, else what an earlier event of the same thread
// said, else QEMU's "CPU n/KVM" thread name, else one vCPU per thread in order of appearance
// within its process (noted in the session). The id is the VM's own: the linker numbers
// (process, id) pairs (issue #16).
class VcpuMap {
 public:
  int32_t resolve(const kvmtrace::KvmEvent& t, uint32_t tgid) {
    const int32_t tid = t.pid;
    if (t.vcpu >= 0) {
      by_tid_[tid] = t.vcpu;
      return t.vcpu;
    }
    if (auto it = by_tid_.find(tid); it != by_tid_.end()) return it->second;
    int32_t v = from_comm(tgid, tid);
    if (v < 0) {
      guessed_ = true;
      v = next_guess_[tgid]++;
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
  std::unordered_map<uint32_t, int32_t> next_guess_;  // per process
  bool guessed_ = false;
};

}  // namespace

// What the running kernel's formats say about its era: kvmtrace::EraEvidence::formats_era(), the
// rule the trace.dat importer applies to a file's formats too (issue #15).
std::string formats_era(const Decoder& d) {
  kvmtrace::EraEvidence era;
  const auto& ls = d.layouts();
  const auto note = [&](int ev, kvmtrace::Tracepoint tp) {
    const auto& l = ls[static_cast<size_t>(ev)];
    if (!l) return;
    era.note_format(tp, [&](kvmtrace::Field f) {
      switch (f) {
        case kvmtrace::fIntrInfo: return l->has(kIntrInfo);
        case kvmtrace::fInfo2: return l->has(kInfo2);
        case kvmtrace::fImmediateExit: return l->has(kImmediateExit);
        case kvmtrace::fReinjected: return l->has(kReinjected);
        default: return false;
      }
    });
  };
  note(ES_KVM_EV_EXIT, kvmtrace::Tracepoint::Exit);
  note(ES_KVM_EV_ENTRY, kvmtrace::Tracepoint::Entry);
  note(ES_KVM_EV_INJ_VIRQ, kvmtrace::Tracepoint::InjVirq);
  note(ES_KVM_EV_INJ_EXCEPTION, kvmtrace::Tracepoint::InjException);
  return era.formats_era();
}

namespace {

std::string config_json(const KvmProbes& p, const RecordOptions& o, uint64_t buffer_bytes, int64_t pid,
                        const std::vector<uint64_t>* drops, const kvmtrace::TraceFacts* linked, bool vcpu_guessed,
                        uint64_t undecodable, uint64_t spool_dropped = 0, uint64_t abandoned = 0,
                        const std::string& scheduling = {}) {
  std::string j = "{\"kvm\": {\"kernel\": \"" + recorder::json_escape(p.kernel_release()) + "\", \"events\": [";
  bool first = true;
  for (const AttachedEvent& a : p.attached()) {
    j += std::string(first ? "" : ", ") + "{\"name\": \"" + a.tracepoint + "\", \"attach\": \"" + a.method + "\"";
    if (!a.prototype.empty()) j += ", \"prototype\": \"" + recorder::json_escape(a.prototype) + "\"";
    if (!a.why.empty()) j += ", \"not_tp\": \"" + recorder::json_escape(a.why) + "\"";
    if (!a.optional_missing.empty()) {
      j += ", \"fields_missing\": [";
      for (size_t i = 0; i < a.optional_missing.size(); ++i)
        j += std::string(i ? ", " : "") + "\"" + recorder::json_escape(a.optional_missing[i]) + "\"";
      j += "]";
    }
    j += "}";
    first = false;
  }
  j += "], \"refused\": [";
  for (size_t i = 0; i < p.refused().size(); ++i)
    j += std::string(i ? ", " : "") + "\"" + recorder::json_escape(p.refused()[i]) + "\"";
  j += "], \"ring_bytes\": " + std::to_string(p.ring_bytes()) + ", \"ring_slots\": " + std::to_string(p.ring_slots()) +
       ", \"ring_cpus\": " + std::to_string(p.cpus()) + ", \"pid\": " + std::to_string(pid) +
       ", \"vcpu\": " + std::to_string(o.vcpu) + ", \"duration_s\": " + std::to_string(o.duration_s) +
       ", \"buffer_bytes\": " + std::to_string(buffer_bytes);
  if (!scheduling.empty()) j += ", \"scheduling\": \"" + recorder::json_escape(scheduling) + "\"";
  if (drops) {
    uint64_t total = 0;
    j += ", \"drops_per_cpu\": [";
    for (size_t i = 0; i < drops->size(); ++i) {
      j += std::string(i ? ", " : "") + std::to_string((*drops)[i]);
      total += (*drops)[i];
    }
    j += "], \"drops\": " + std::to_string(total) + ", \"buffer_drops\": " + std::to_string(spool_dropped) +
         ", \"abandoned\": " + std::to_string(abandoned);
  }
  if (linked) {
    const std::string vendor = linked->vendor == "unknown" ? "no VM exits seen" : linked->vendor;
    j += ", \"vendor\": \"" + recorder::json_escape(vendor) + "\", \"era\": \"" +
         recorder::json_escape(formats_era(p.decoder())) + "\", \"assumptions\": [";
    std::vector<std::string> as = linked->assumptions;
    if (vcpu_guessed)
      as.push_back(
          "some threads name no vCPU: one vCPU per thread, numbered in order of appearance within their process");
    for (size_t i = 0; i < as.size(); ++i) j += std::string(i ? ", " : "") + "\"" + recorder::json_escape(as[i]) + "\"";
    j += "], \"undecodable\": " + std::to_string(undecodable);
    if (!linked->vcpu_map.empty()) {  // several VMs (issue #16): which VM each recorded vCPU is
      j += ", \"vcpu_map\": [";
      for (size_t i = 0; i < linked->vcpu_map.size(); ++i)
        j += std::string(i ? ", " : "") + "\"" + recorder::json_escape(linked->vcpu_map[i]) + "\"";
      j += "]";
    }
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
  if (!parse_attach_method(o.attach, po.attach))
    return fail("--attach takes auto, tp or tp_btf, not '" + o.attach + "'");
  if (o.test_overflow) {
    po.ring_slots = 32;
  }
  // Plugins run no code as root: they are loaded once privileges are dropped (so what they
  // write belongs to you), before the recording is created. A missing or non-ELF plugin file is
  // reported here, before anything is attached.
  for (const probes::PluginSpec& s : o.plugins)
    if (auto c = probes::PluginHost::check_file(s.path); !c) return fail(c.error());
  probes::ProbeBus plugin_bus;  // fed from the pipeline thread only
  probes::PluginHost plugins(plugin_bus);
  if (::geteuid() != 0)
    return fail(
        "recording a KVM host attaches eBPF programs to the kernel's kvm tracepoints, which needs root: "
        "run it with sudo (the recording will belong to you)");
  const SudoUser user = sudo_user();

  Workload workload;
  int64_t pid = o.pid;
  if (!o.command.empty()) {
    if (auto w = workload.start(o.command, user); !w) return fail(w.error());
    pid = workload.pid();
  }
  po.filter_tgid = pid > 0 ? static_cast<uint32_t>(pid) : 0;
  po.follow_children = !o.command.empty();  // `-- sh -c "qemu ..."`: the VMM is the command's child
  auto probes = KvmProbes::open(po);
  if (!probes) return fail(probes.error());
  KvmProbes& p = **probes;
  if (!o.quiet)
    for (const std::string& r : p.refused()) std::fprintf(stderr, "exitscope record: not recording %s\n", r.c_str());
  if (!o.quiet)
    for (const AttachedEvent& a : p.attached())
      if (!a.why.empty()) std::fprintf(stderr, "exitscope record: through tp_btf, not tp: %s\n", a.why.c_str());

  // Attached: from here on nothing needs root.
  allow_return_from_idle();
  if (auto d = drop_to(user); !d) return fail(d.error());
  if (auto l = plugins.load_all(o.plugins); !l) return fail(l.error());  // nothing recorded yet
  plugins.set_crash_note("; the recording is stopped and closed with everything decoded before");
  plugins.set_on_crash([] { g_stop.store(true); });
  const bool plugged = plugins.size() > 0;

  recorder::SessionInfo info;
  info.source = recorder::Source::Kvm;
  info.guest_path = !o.command.empty() ? o.command.front() : pid > 0 ? "pid " + std::to_string(pid) : "all KVM guests";
  info.command_line = o.command_line;
  info.config_json = config_json(p, o, o.buffer_bytes, pid, nullptr, nullptr, false, 0);
  recorder::RecorderOptions ropt{.steps = o.steps};  // an empty o.steps is refused by open()
  // A deeper queue (256 Ki records, 32 MiB) than the hv source's: bursts wait here rather than
  // in the ring, whose overflow loses events.
  ropt.max_queued = 1u << 18;
  auto rec = recorder::Recorder::open(o.output, info, o.force, ropt);
  if (!rec) return fail(rec.error());

  g_stop.store(false);
  g_signals.store(0);
  struct sigaction sa {};
  sa.sa_handler = on_kvm_stop_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {
  }, old_term{};
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);

  // The spool: at most a quarter of this machine's memory, whatever --buffer-size says.
  uint64_t buffer_bytes = o.buffer_bytes;
  if (const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE); pages > 0 && page > 0)
    buffer_bytes = std::min<uint64_t>(buffer_bytes, static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 4);
  Spool spool(buffer_bytes / sizeof(es_kvm_event));
  // Two threads besides the recorder's writer: this one drains the ring into the spool (a copy
  // per event, cheap enough to keep up with any guest), the pipeline thread decodes, links and
  // hands records to the recorder. The pipeline and the writer run at SCHED_IDLE while the
  // backlog is small (Yielder), so on a busy host the traced guests keep their CPUs.
  kvmtrace::Linker linker;
  VcpuMap vcpus;
  uint64_t kvm_events = 0, filtered = 0, undecodable = 0;  // the pipeline's; read after join()
  const uint64_t t0 = monotonic_ns();
  const Decoder& dec = p.decoder();
  recorder::Recorder& recr = **rec;
  LiveStats live;  // --stats: fed the records the pipeline hands to the recorder
  live.set_start(t0);
  std::thread pipeline([&] {
    std::vector<es_kvm_event> chunk;
    std::vector<es_record> batch;
    while (spool.pop(chunk)) {
      for (const es_kvm_event& e : chunk) {
        kvmtrace::KvmEvent t;
        if (!dec.decode(e, t)) {
          ++undecodable;
          continue;
        }
        ++kvm_events;
        // The VM is the process (issue #16): the linker numbers (tgid, vCPU id) pairs.
        t.tgid = static_cast<int32_t>(e.tgid);
        // kvm_apic_accept_irq / kvm_eoi name their vCPU by apicid (the linker places them), and
        // an I/O thread that sends an interrupt must not become a vCPU of its own.
        const bool apic = t.event == kvmtrace::Tracepoint::ApicAcceptIrq || t.event == kvmtrace::Tracepoint::Eoi;
        if (!apic) t.vcpu = vcpus.resolve(t, e.tgid);
        if (o.vcpu >= 0 && (apic ? static_cast<int32_t>(t.apic().apicid) : t.vcpu) != o.vcpu) {
          ++filtered;
          continue;
        }
        linker.add(t, e.time_ns > t0 ? e.time_ns - t0 : 0);  // no line number: recorded live
      }
      spool.done(chunk.size());
      if (o.test_slow_pipeline) ::usleep(100 * 1000);
      batch.clear();
      linker.take_settled(batch);
      if (o.stats) live.add(batch.data(), batch.size());
      if (plugged)
        for (es_record r : batch) plugin_bus.emit(r);  // a copy: the bus stamps version / id
      recr.on_records(batch.data(), batch.size());
    }
    batch.clear();
    linker.take_all(batch);
    if (o.stats) live.add(batch.data(), batch.size());
    if (plugged)
      for (es_record r : batch) plugin_bus.emit(r);
    recr.on_records(batch.data(), batch.size());
  });
  Yielder yielder(o.max_lag_s, spool.capacity(), {pipeline.native_handle(), recr.writer_thread()});
  KvmProbes::Sink sink = [&](const es_kvm_event& e) { spool.push(e); };

  workload.release();
  const bool tty = ::isatty(2) == 1;
  if (!o.quiet)
    std::fprintf(stderr, "recording %zu kvm tracepoints into %s%s ...\n", p.attached().size(), o.output.c_str(),
                 pid > 0 ? (" (pid " + std::to_string(pid) + ")").c_str() : " (every process)");
  const uint64_t deadline = o.duration_s > 0 ? t0 + static_cast<uint64_t>(o.duration_s * 1e9) : 0;
  uint64_t last_report = t0, last_events = 0;
  int live_lines = 0;  // --stats on a terminal: lines of the table on screen
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
    spool.publish();
    if (o.test_overflow) ::usleep(100 * 1000);  // a consumer too slow for a 32-record ring
    const uint64_t now = monotonic_ns();
    yielder.update(spool.backlog(), spool.oldest_ns(), now);
    recr.set_source_dropped(p.drops_total() + spool.dropped());  // stored with the next batch
    if (o.stats && tty && now - last_report >= 1000000000ull) {
      // kvm_stat's screen: the table redrawn in place once a second (cursor up over the last one).
      const std::string t = live.table(now, now - t0);
      if (live_lines) std::fprintf(stderr, "\x1b[%dA\x1b[J", live_lines);
      std::fputs(t.c_str(), stderr);
      live_lines = static_cast<int>(std::count(t.begin(), t.end(), '\n'));
      last_report = now;
    } else if (!o.stats && !o.quiet && tty && now - last_report >= 1000000000ull) {
      const uint64_t seen = spool.pushed();
      const double rate = static_cast<double>(seen - last_events) * 1e9 / static_cast<double>(now - last_report);
      std::fprintf(stderr, "\r%llu events, %.0f events/s, %llu dropped, %llu buffered   ",
                   static_cast<unsigned long long>(seen), rate,
                   static_cast<unsigned long long>(p.drops_total() + spool.dropped()),
                   static_cast<unsigned long long>(spool.backlog()));
      last_report = now;
      last_events = seen;
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
  // A signal from here on (detaching can take a while) abandons the backlog.
  const int signals_at_stop = g_signals.load();
  // Stop producing, drain everything already in the ring, then let the pipeline finish the
  // backlog at normal priority (nothing to yield to any more).
  p.detach();
  for (int i = 0; i < 1000 && error.empty(); ++i) {
    auto n = p.poll(0, sink);
    if (!n) error = n.error();
    if (!n || *n == 0) break;
  }
  spool.publish();
  spool.close();
  yielder.finish();
  for (bool shown = false; spool.backlog() > 0;) {
    if (g_signals.load() > signals_at_stop) {  // interrupted (again): keep what is written
      const uint64_t n = spool.abandon();
      if (!o.quiet)
        std::fprintf(stderr, "%sinterrupted: %llu buffered events not written (counted as dropped)\n",
                     shown ? "\n" : "", static_cast<unsigned long long>(n));
      break;
    }
    if (!o.quiet && tty) {
      std::fprintf(stderr, "%swriting the %llu buffered events ...   ", shown ? "\r" : "\n",
                   static_cast<unsigned long long>(spool.backlog()));
      shown = true;
    }
    ::usleep(200 * 1000);
  }
  pipeline.join();
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  if (!o.quiet && tty && !o.stats) std::fputc('\n', stderr);
  const uint64_t end_ns = monotonic_ns();

  const std::vector<uint64_t> drops = p.drops_per_cpu();
  uint64_t dropped = 0;
  for (uint64_t d : drops) dropped += d;
  dropped += spool.dropped() + spool.abandoned();
  kvmtrace::TraceFacts linked;
  linker.describe(linked);
  const std::string json = config_json(p, o, buffer_bytes, pid, &drops, &linked, vcpus.guessed(), undecodable,
                                       spool.dropped(), spool.abandoned(), yielder.summary());
  uint32_t end_reason = workload_done ? ES_END_GUEST_EXIT : ES_END_STOPPED;
  if (!error.empty()) end_detail = error;
  const auto crash = plugins.crash();
  if (crash) {
    end_reason = ES_END_STOPPED;
    end_detail = crash->describe() + "; the recording was stopped there";
  }
  if (!o.quiet && tty) std::fputs("indexing the recording and linking its chains ...\n", stderr);
  auto fin = (*rec)->finish({end_reason, end_detail, dropped});
  const auto stats = (*rec)->stats();
  rec->reset();
  if (!fin) return fail(fin.error());
  if (auto u = update_config(o.output, json); !u) return fail(u.error());
  if (!error.empty()) return fail(error + "; everything read before it is in " + o.output);
  if (!o.quiet) {
    std::fprintf(
        stdout, "recorded %llu kvm events (%llu records) into %s: %s; %llu dropped by the ring buffer%s%s%s%s\n",
        static_cast<unsigned long long>(kvm_events), static_cast<unsigned long long>(stats.written), o.output.c_str(),
        end_detail.c_str(), static_cast<unsigned long long>(dropped - spool.dropped() - spool.abandoned()),
        spool.dropped() ? (", " + std::to_string(spool.dropped()) + " more with the buffer full").c_str() : "",
        spool.abandoned() ? (", " + std::to_string(spool.abandoned()) + " buffered not written").c_str() : "",
        filtered ? (", " + std::to_string(filtered) + " of other vCPUs skipped").c_str() : "",
        dropped ? " (a larger ring or --buffer-size, or fewer --events would help)" : "");
  }
  // --stats: the whole session's table (rates over all of it), also where no terminal showed it live.
  if (o.stats)
    std::fputs(("\nKVM events by reason, whole session: " + live.table(end_ns, end_ns - t0, true)).c_str(), stdout);
  // Silent nothing is the worst answer: say that the recording is empty and what was traced.
  if (kvm_events == 0)
    std::fprintf(stderr, "exitscope record: warning: no KVM events were recorded%s; %s\n",
                 !o.command.empty() ? (" from '" + o.command.front() + "'").c_str()
                 : pid > 0          ? (" from pid " + std::to_string(pid)).c_str()
                                    : "",
                 !o.command.empty() ? "it and the processes it starts were traced: did it run a guest (KVM_RUN)?"
                                    : "did a guest run (KVM_RUN) while recording, on this kernel's KVM?");
  plugins.unload_all();  // at-exit callbacks (the plugins' own output), after DB is complete
  if ((workload_done && workload_status != 0) || plugins.crash()) return 1;
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
    // To the ']' closing this list: an event's "fields_missing" nests one, strings may hold any.
    size_t e = b + k.size();
    for (int depth = 0; e < j.size(); ++e) {
      if (j[e] == '"') {
        for (++e; e < j.size() && j[e] != '"'; ++e) e += j[e] == '\\' ? 1 : 0;
      } else if (j[e] == '[') {
        ++depth;
      } else if (j[e] == ']' && depth-- == 0) {
        break;
      }
    }
    return std::string(j.substr(b + k.size(), std::min(e, j.size()) - b - k.size()));
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
  const std::string slots = num("ring_slots"), ring_cpus = num("ring_cpus");
  out.push_back((slots.empty() ? "ring " + num("ring_bytes") + " bytes; "
                               : "rings " + num("ring_bytes") + " bytes (" + slots + " records on each of " +
                                     ring_cpus + " CPUs); ") +
                (drops.empty() ? std::string("drops unknown (the recording did not finish)")
                               : drops + " dropped (per CPU: " + list("drops_per_cpu") + ")"));
  const std::string buffer = num("buffer_bytes"), buffer_drops = num("buffer_drops"), abandoned = num("abandoned");
  if (!buffer.empty())
    out.push_back(
        "buffer " + buffer + " bytes" +
        (buffer_drops.empty() || buffer_drops == "0" ? std::string() : "; " + buffer_drops + " dropped full") +
        (abandoned.empty() || abandoned == "0" ? std::string() : "; " + abandoned + " not written (interrupted)") +
        (str("scheduling").empty() ? std::string() : "; " + str("scheduling")));
  return out;
}

}  // namespace es::kvm
