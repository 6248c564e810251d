#include "probes/kvm/kvm_loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <queue>
#include <sstream>

#include "probes/kvm/btf_shape.h"
#include "probes/kvm/kvm.skel.h"
#include "probes/kvm/kvm_btf.skel.h"

namespace es::kvm {

namespace {

// libbpf's warnings go here instead of stderr; the last ones explain a failed load.
std::mutex g_log_mu;
std::string g_log;

int libbpf_log(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (level == LIBBPF_DEBUG) return 0;
  if (std::getenv("ES_LIBBPF_DEBUG")) {  // libbpf's warnings in full, the verifier's log included
    va_list copy;
    va_copy(copy, ap);
    std::vfprintf(stderr, fmt, copy);
    va_end(copy);
  }
  // Whole: a verifier log arrives as one message of many lines, and its last lines say why.
  va_list sized;
  va_copy(sized, ap);
  const int n = std::vsnprintf(nullptr, 0, fmt, sized);
  va_end(sized);
  if (n <= 0) return n;
  std::string buf(static_cast<size_t>(n) + 1, '\0');
  std::vsnprintf(buf.data(), buf.size(), fmt, ap);
  buf.pop_back();
  std::lock_guard<std::mutex> g(g_log_mu);
  g_log += buf;
  // Large enough for a refused program's verifier log (libbpf retries a failed load with one).
  if (g_log.size() > 65536) g_log.erase(0, g_log.size() - 65536);
  return n;
}

std::string last_libbpf_line() {
  std::lock_guard<std::mutex> g(g_log_mu);
  std::string s = g_log;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  const size_t nl = s.rfind('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

void clear_libbpf_log() {
  std::lock_guard<std::mutex> g(g_log_mu);
  g_log.clear();
}

// A program the kernel refused to load, read from libbpf's log: libbpf stops an object's load at
// the first refused program and names it ("prog 'NAME': BPF program load failed: ..."), then
// prints the verifier's log between "-- BEGIN PROG LOAD LOG --" and "-- END PROG LOAD LOG --".
struct Refusal {
  std::string program;
  std::string reason;  // the verifier's last words (its error, and the line explaining it)
};

std::optional<Refusal> refusal_in_log() {
  std::string log;
  {
    std::lock_guard<std::mutex> g(g_log_mu);
    log = g_log;
  }
  const std::string mark = "': BPF program load failed";
  const size_t at = log.rfind(mark);
  if (at == std::string::npos) return std::nullopt;
  const size_t open = log.rfind("prog '", at);
  if (open == std::string::npos) return std::nullopt;
  Refusal r;
  r.program = log.substr(open + 6, at - open - 6);
  // The verifier's reason: the last lines of its log that are neither an instruction ("12: ..."),
  // a source line ("; ..."), a register state nor its closing statistics.
  const size_t begin = log.find("-- BEGIN PROG LOAD LOG --", at);
  if (begin != std::string::npos) {
    const size_t end = log.find("-- END PROG LOAD LOG --", begin);
    std::istringstream in(log.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    std::vector<std::string> said;
    for (std::string line; std::getline(in, line);) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (line.empty() || line[0] == ';' || line.rfind("--", 0) == 0 || line.rfind("libbpf:", 0) == 0 ||
          line.rfind("processed ", 0) == 0 || line.rfind("verification time", 0) == 0 ||
          line.rfind("stack depth", 0) == 0 || (line[0] >= '0' && line[0] <= '9') || line[0] == 'R')
        continue;
      said.push_back(line);
    }
    const size_t n = std::min<size_t>(said.size(), 2);
    for (size_t i = said.size() - n; i < said.size(); ++i) r.reason += (r.reason.empty() ? "" : "; ") + said[i];
  }
  if (r.reason.empty()) {  // no verifier log: libbpf's own sentence
    const size_t eol = log.find('\n', at);
    r.reason =
        log.substr(at + mark.size() + 2, eol == std::string::npos ? std::string::npos : eol - at - mark.size() - 2);
  }
  return r;
}

std::string uname_release() {
  struct utsname u {};
  return ::uname(&u) == 0 ? std::string(u.release) : std::string("(unknown)");
}

bpf_program* program_of(kvm_bpf* s, int event) {
  switch (event) {
    case ES_KVM_EV_EXIT: return s->progs.handle_kvm_exit;
    case ES_KVM_EV_ENTRY: return s->progs.handle_kvm_entry;
    case ES_KVM_EV_INJ_VIRQ: return s->progs.handle_kvm_inj_virq;
    case ES_KVM_EV_INJ_EXCEPTION: return s->progs.handle_kvm_inj_exception;
    case ES_KVM_EV_NESTED_VMEXIT: return s->progs.handle_kvm_nested_vmexit;
    case ES_KVM_EV_NESTED_VMEXIT_INJECT: return s->progs.handle_kvm_nested_vmexit_inject;
    case ES_KVM_EV_NESTED_INTR_VMEXIT: return s->progs.handle_kvm_nested_intr_vmexit;
    case ES_KVM_EV_PAGE_FAULT: return s->progs.handle_kvm_page_fault;
    case ES_KVM_EV_EMULATE_INSN: return s->progs.handle_kvm_emulate_insn;
    case ES_KVM_EV_PIO: return s->progs.handle_kvm_pio;
    case ES_KVM_EV_MMIO: return s->progs.handle_kvm_mmio;
    case ES_KVM_EV_MSR: return s->progs.handle_kvm_msr;
    case ES_KVM_EV_USERSPACE_EXIT: return s->progs.handle_kvm_userspace_exit;
    case ES_KVM_EV_APIC_ACCEPT_IRQ: return s->progs.handle_kvm_apic_accept_irq;
    case ES_KVM_EV_EOI: return s->progs.handle_kvm_eoi;
    case ES_KVM_EV_NESTED_VMENTER: return s->progs.handle_kvm_nested_vmenter;
    default: return nullptr;
  }
}

// The tp program for `event` under the tracepoint name this kernel has (older_event_name()).
bpf_program* program_for(kvm_bpf* s, int event, std::string_view tracepoint) {
  if (event == ES_KVM_EV_NESTED_VMENTER && tracepoint == older_event_name(event))
    return s->progs.handle_kvm_nested_vmrun;
  return program_of(s, event);
}

// `reason` without its "<event> on kernel <release>: " head, to join two reasons in one sentence.
std::string without_head(const std::string& reason, const std::string& head) {
  return reason.rfind(head, 0) == 0 ? reason.substr(head.size()) : reason;
}

std::string load_error(int err, const std::string& kernel, const char* what) {
  const std::string why = last_libbpf_line();
  // EACCES from BPF_PROG_LOAD is the verifier's "no", not a permission: only EPERM for a user
  // who is not root is about privileges (root's EPERM comes from lockdown or a seccomp policy).
  if (err == -EPERM && ::geteuid() != 0)
    return "the kernel refused to load the BPF programs (permission denied): root with CAP_BPF and "
           "CAP_PERFMON is needed" +
           (why.empty() ? std::string() : " (libbpf: " + why + ")");
  if (err == -EPERM)
    return std::string("the kernel refused to load exitscope's ") + what + " on kernel " + kernel +
           " although running as root (EPERM): a kernel lockdown (/sys/kernel/security/lockdown) or a seccomp "
           "policy forbids BPF here" +
           (why.empty() ? std::string() : " (libbpf: " + why + ")");
  return std::string("the kernel refused to load exitscope's ") + what + " on kernel " + kernel + " (" +
         std::strerror(-err) + (why.empty() ? std::string() : "; libbpf: " + why) +
         "); is BPF (CONFIG_BPF_SYSCALL, CONFIG_BPF_EVENTS) enabled?";
}

}  // namespace

bool parse_attach_method(std::string_view name, AttachMethod& out) {
  if (name == "auto")
    out = AttachMethod::Auto;
  else if (name == "tp")
    out = AttachMethod::Tp;
  else if (name == "tp_btf")
    out = AttachMethod::TpBtf;
  else
    return false;
  return true;
}

void KvmProbes::SkelDeleter::operator()(kvm_bpf* s) const { kvm_bpf__destroy(s); }
void KvmProbes::BtfSkelDeleter::operator()(kvm_btf_bpf* s) const { kvm_btf_bpf__destroy(s); }
void KvmProbes::LinkDeleter::operator()(bpf_link* l) const { bpf_link__destroy(l); }
KvmProbes::Mapping::~Mapping() {
  if (addr) ::munmap(addr, bytes);
}

uint32_t ring_slots_for_cpus(unsigned cpus) {
  const uint64_t per_cpu = std::min<uint64_t>(16ull << 20, (512ull << 20) / (cpus ? cpus : 1));
  const uint64_t fit = per_cpu / sizeof(es_kvm_event);
  uint32_t n = 64;
  while (uint64_t{n} * 2 <= fit) n *= 2;
  return n;
}

Result<EventLayout> load_layout(const std::string& tracefs, int event, const std::string& release,
                                std::string_view tracepoint) {
  const std::string name(tracepoint.empty() ? kEventNames[static_cast<size_t>(event)] : tracepoint);
  const std::string path = tracefs + "/events/kvm/" + name + "/format";
  std::ifstream in(path);
  if (!in) {
    if (errno == EACCES)
      return Error{"cannot read " + path + " (permission denied): recording a KVM host needs root; run it with sudo"};
    return Error{name + " on kernel " + release + ": the kernel has no such tracepoint (" + path +
                 " is missing); leave it out with --events"};
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto fmt = parse_format(ss.str(), path);
  if (!fmt) return Error{name + " on kernel " + release + ": " + fmt.error()};
  return resolve_layout(event, *fmt, release);
}

KvmProbes::~KvmProbes() {
  links_.clear();
  btf_skel_.reset();
  skel_.reset();
}

Result<std::unique_ptr<KvmProbes>> KvmProbes::open(const ProbeOptions& o) {
  std::unique_ptr<KvmProbes> p(new KvmProbes());
  p->kernel_ = uname_release();
  if (::geteuid() != 0)
    return Error{
        "recording a KVM host attaches eBPF programs to the kernel's kvm tracepoints, which needs root: run "
        "it with sudo (the recording will belong to you)"};
  // tracefs: needed by tp (formats, and libbpf attaches tp through its event ids). Without it,
  // auto goes on with tp_btf for every event.
  std::string tracefs = o.tracefs, tracefs_error;
  if ((o.attach != AttachMethod::TpBtf || (o.follow_children && o.filter_tgid)) && tracefs.empty()) {
    auto t = find_tracefs();
    if (!t) {
      if (o.attach == AttachMethod::Tp) return Error{t.error()};
      tracefs_error = t.error();
    } else {
      tracefs = *t;
    }
  }
  // libbpf's messages (also those of reading BTF) go to the log, not to the user's terminal.
  libbpf_set_print(libbpf_log);
  {
    std::lock_guard<std::mutex> g(g_log_mu);
    g_log.clear();
  }
  // BTF: for tp_btf, and for the record of each event's prototype (none without BTF).
  const Result<KernelBtf> btf = KernelBtf::load();
  std::vector<int> wanted = o.events;
  if (wanted.empty())
    for (int e = 0; e < ES_KVM_EV_COUNT; ++e) wanted.push_back(e);
  Decoder::Layouts layouts;
  std::array<const BtfShape*, ES_KVM_EV_COUNT> shapes{};
  for (int e : wanted) {
    // The event's tracepoint under the name this kernel gives it: today's, or the older name
    // (kvm_nested_vmrun before 5.12) when only that one is in tracefs or BTF.
    std::string name(kEventNames[static_cast<size_t>(e)]);
    if (const std::string_view old = older_event_name(e); !old.empty()) {
      auto has = [&](const std::string& n) {
        return (!tracefs.empty() && ::access((tracefs + "/events/kvm/" + n + "/format").c_str(), F_OK) == 0) ||
               (btf && btf->prototype(n));
      };
      if (!has(name) && has(std::string(old))) name = std::string(old);
    }
    const std::string head = name + " on kernel " + p->kernel_ + ": ";
    std::string tp_reason;
    if (o.attach != AttachMethod::TpBtf) {
      auto l = tracefs.empty() ? Result<EventLayout>(Error{head + tracefs_error})
                               : load_layout(tracefs, e, p->kernel_, name);
      if (l) {
        AttachedEvent a;
        a.event = e;
        a.tracepoint = name;
        a.method = "tp";
        if (btf) {
          if (auto proto = btf->prototype(name)) a.prototype = to_string(name, *proto);
        }
        a.optional_missing = l->optional_missing;
        p->attached_.push_back(std::move(a));
        layouts[static_cast<size_t>(e)] = std::move(*l);
        continue;
      }
      tp_reason = l.error();
    }
    std::string btf_reason;
    if (o.attach != AttachMethod::Tp) {
      auto proto = btf ? btf->prototype(name) : Result<Prototype>(Error{btf.error()});
      if (proto) {
        auto shape = match_shape(e, *proto, p->kernel_);
        if (shape) {
          AttachedEvent a;
          a.event = e;
          a.tracepoint = name;
          a.method = "tp_btf";
          a.prototype = to_string(name, *proto);
          a.why = tp_reason.substr(0, tp_reason.find("; exitscope does not know this layout"));
          EventLayout l = btf_layout(**shape);
          a.optional_missing = l.optional_missing;
          p->attached_.push_back(std::move(a));
          layouts[static_cast<size_t>(e)] = std::move(l);
          shapes[static_cast<size_t>(e)] = *shape;
          continue;
        }
        btf_reason = shape.error();
      } else {
        btf_reason = head + proto.error();
      }
    }
    // Neither: one sentence with both reasons (auto), or the forced method's.
    std::string why = tp_reason.empty() ? btf_reason
                      : btf_reason.empty()
                          ? tp_reason
                          : tp_reason + "; and tp_btf cannot replace it: " + without_head(btf_reason, head);
    if (o.events_explicit) return Error{why};
    p->refused_.push_back(std::move(why));
  }
  if (p->attached_.empty())
    return Error{"none of the kvm tracepoints asked for can be recorded on kernel " + p->kernel_ + ": " +
                 (p->refused_.empty() ? std::string("none asked") : p->refused_.front())};
  p->decoder_ = Decoder(std::move(layouts));
  // A program the verifier refuses is left out with one sentence naming it, the kernel and the
  // verifier's reason, and the object is loaded again without it (libbpf loads an object whole).
  auto tracepoint_of = [&](int event) {
    for (const AttachedEvent& a : p->attached_)
      if (a.event == event) return a.tracepoint;
    return std::string(kEventNames[static_cast<size_t>(event)]);
  };
  auto refusal_sentence = [&](int event, const char* method, const Refusal& r) {
    return tracepoint_of(event) + " on kernel " + p->kernel_ + ": the kernel's verifier refused its " + method +
           " program " + r.program + " (" + r.reason + ")";
  };
  auto leave_out = [&](int event, const char* method, const Refusal& r) {
    p->refused_.push_back(refusal_sentence(event, method, r) + "; recording the other events without it");
    p->attached_.erase(std::remove_if(p->attached_.begin(), p->attached_.end(),
                                      [&](const AttachedEvent& a) { return a.event == event; }),
                       p->attached_.end());
  };
  auto none_left = [&]() {
    return Error{"none of the kvm tracepoints asked for can be recorded on kernel " + p->kernel_ + ": " +
                 p->refused_.front()};
  };
  std::array<bool, ES_KVM_EV_COUNT> by_tp{};
  for (const AttachedEvent& a : p->attached_) by_tp[static_cast<size_t>(a.event)] = a.method == "tp";
  auto tp_program = [&](int event) { return program_for(p->skel_.get(), event, tracepoint_of(event)); };
  // Following the command's children (sched_process_fork) needs the fork entry's layout.
  uint32_t child_pid_off = 0;
  if (o.follow_children && o.filter_tgid) {
    std::string why;
    if (tracefs.empty()) {
      why = "tracefs is not available (" + tracefs_error + ")";
    } else {
      const std::string path = tracefs + "/events/sched/sched_process_fork/format";
      std::ifstream in(path);
      std::stringstream ss;
      ss << in.rdbuf();
      auto fmt = in ? parse_format(ss.str(), path) : Result<EventFormat>(Error{"cannot read " + path});
      const FormatField* f = fmt ? fmt->find("child_pid") : nullptr;
      if (f && f->size == 4 && (f->offset == 20 || f->offset == 44))
        child_pid_off = f->offset;
      else
        why = fmt ? "its sched_process_fork entry has a layout exitscope does not know" : fmt.error();
    }
    if (!child_pid_off)
      p->refused_.push_back("the processes pid " + std::to_string(o.filter_tgid) +
                            " starts, only that process itself: " + why + " on kernel " + p->kernel_);
  }
  // The tp object is always loaded: it owns the rings and their drop counters, even when
  // every event goes through tp_btf (then none of its programs is loaded).
  for (;;) {
    p->skel_.reset(kvm_bpf__open());
    if (!p->skel_)
      return Error{std::string("libbpf could not open the embedded BPF object (") + std::strerror(errno) +
                   "); this exitscope build is broken, rebuild it"};
    const int cpus = libbpf_num_possible_cpus();
    p->cpus_ = cpus > 0 ? static_cast<unsigned>(cpus) : 1;
    uint32_t slots = o.ring_slots ? o.ring_slots : ring_slots_for_cpus(p->cpus_);
    while (slots & (slots - 1)) slots &= slots - 1;  // a power of two: the slot is head % slots
    p->ring_slots_ = std::max<uint32_t>(slots, 2);
    p->skel_->rodata->filter_tgid = o.filter_tgid;
    p->skel_->rodata->follow_children = child_pid_off != 0;
    bpf_program__set_autoload(p->skel_->progs.handle_fork_pid_at_20, child_pid_off == 20);
    bpf_program__set_autoload(p->skel_->progs.handle_fork_pid_at_44, child_pid_off == 44);
    p->skel_->rodata->ring_slots = p->ring_slots_;
    if (int err = bpf_map__set_max_entries(p->skel_->maps.ring, p->cpus_ * p->ring_slots_); err)
      return Error{"cannot size the per-CPU rings to " + std::to_string(p->ring_bytes()) + " bytes (" +
                   std::strerror(-err) + ")"};
    if (int err = bpf_map__set_max_entries(p->skel_->maps.ring_ctl, p->cpus_); err)
      return Error{std::string("cannot size the rings' control map (") + std::strerror(-err) + ")"};
    for (int e = 0; e < ES_KVM_EV_COUNT; ++e) {
      const auto& l = p->decoder_.layouts()[static_cast<size_t>(e)];
      if (l && by_tp[static_cast<size_t>(e)]) p->skel_->rodata->copy_len[e] = l->copy_len;
      bpf_program__set_autoload(program_of(p->skel_.get(), e), false);
    }
    bpf_program__set_autoload(p->skel_->progs.handle_kvm_nested_vmrun, false);
    for (int e = 0; e < ES_KVM_EV_COUNT; ++e)
      if (by_tp[static_cast<size_t>(e)]) bpf_program__set_autoload(tp_program(e), true);
    clear_libbpf_log();
    const int err = kvm_bpf__load(p->skel_.get());
    if (!err) break;
    const auto r = refusal_in_log();
    int refused = -1;
    for (int e = 0; r && e < ES_KVM_EV_COUNT; ++e)
      if (by_tp[static_cast<size_t>(e)] && r->program == bpf_program__name(tp_program(e))) refused = e;
    if (refused < 0 || err == -EPERM) return Error{load_error(err, p->kernel_, "BPF programs")};
    if (o.events_explicit) return Error{refusal_sentence(refused, "tp", *r) + "; leave it out with --events"};
    leave_out(refused, "tp", *r);
    by_tp[static_cast<size_t>(refused)] = false;
    if (p->attached_.empty()) return none_left();
  }

  // The tp_btf object: only the program of each matched shape is loaded (a program written for
  // another era's arguments would not pass this kernel's verifier), writing into the same ring.
  for (;;) {
    const bool any_btf = std::any_of(shapes.begin(), shapes.end(), [](const BtfShape* s) { return s != nullptr; });
    if (!any_btf) {
      p->btf_skel_.reset();
      break;
    }
    p->btf_skel_.reset(kvm_btf_bpf__open());
    if (!p->btf_skel_)
      return Error{std::string("libbpf could not open the embedded tp_btf BPF object (") + std::strerror(errno) +
                   "); this exitscope build is broken, rebuild it"};
    kvm_btf_bpf* b = p->btf_skel_.get();
    b->rodata->filter_tgid = o.filter_tgid;
    b->rodata->follow_children = child_pid_off != 0;
    b->rodata->ring_slots = p->ring_slots_;
    int shared = bpf_map__reuse_fd(b->maps.ring, bpf_map__fd(p->skel_->maps.ring));
    if (!shared) shared = bpf_map__reuse_fd(b->maps.ring_ctl, bpf_map__fd(p->skel_->maps.ring_ctl));
    if (!shared) shared = bpf_map__reuse_fd(b->maps.es_children, bpf_map__fd(p->skel_->maps.es_children));
    if (shared)
      return Error{std::string("cannot share the per-CPU rings with the tp_btf programs (") + std::strerror(-shared) +
                   ")"};
    bpf_program* prog = nullptr;
    bpf_object__for_each_program(prog, b->obj) bpf_program__set_autoload(prog, false);
    for (const BtfShape* s : shapes) {
      if (!s) continue;
      bpf_program* sp = bpf_object__find_program_by_name(b->obj, std::string(s->program).c_str());
      if (!sp) return Error{"this exitscope build has no tp_btf program " + std::string(s->program) + "; rebuild it"};
      bpf_program__set_autoload(sp, true);
    }
    clear_libbpf_log();
    const int err = kvm_btf_bpf__load(b);
    if (!err) break;
    const auto r = refusal_in_log();
    int refused = -1;
    for (int e = 0; r && e < ES_KVM_EV_COUNT; ++e)
      if (shapes[static_cast<size_t>(e)] && r->program == shapes[static_cast<size_t>(e)]->program) refused = e;
    if (refused < 0 || err == -EPERM) return Error{load_error(err, p->kernel_, "tp_btf BPF programs")};
    if (o.events_explicit) return Error{refusal_sentence(refused, "tp_btf", *r) + "; leave it out with --events"};
    leave_out(refused, "tp_btf", *r);
    shapes[static_cast<size_t>(refused)] = nullptr;
    if (p->attached_.empty()) return none_left();
  }
  // The consumer's view of the rings: records read-only, the control words writable (tail).
  auto map = [](Mapping& m, bpf_map* bm, size_t bytes, int prot) -> bool {
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    m.bytes = (bytes + page - 1) / page * page;
    void* a = ::mmap(nullptr, m.bytes, prot, MAP_SHARED, bpf_map__fd(bm), 0);
    if (a == MAP_FAILED) return false;
    m.addr = a;
    return true;
  };
  if (!map(p->ring_map_, p->skel_->maps.ring, p->ring_bytes(), PROT_READ) ||
      !map(p->ctl_map_, p->skel_->maps.ring_ctl, sizeof(es_kvm_ring_ctl) * p->cpus_, PROT_READ | PROT_WRITE))
    return Error{std::string("cannot map the per-CPU rings (") + std::strerror(errno) + ")"};
  p->taken_.assign(p->cpus_, 0);
  for (const AttachedEvent& a : p->attached_) {
    const size_t i = static_cast<size_t>(a.event);
    bpf_program* prog =
        a.method == "tp" ? tp_program(a.event)
                         : bpf_object__find_program_by_name(p->btf_skel_->obj, std::string(shapes[i]->program).c_str());
    bpf_link* l = bpf_program__attach(prog);
    if (!l) {
      const int err = errno;
      return Error{"cannot attach to " + std::string(a.method == "tp" ? "tracepoint kvm/" : "tp_btf/") + a.tracepoint +
                   " on kernel " + p->kernel_ + " (" + std::strerror(err) + ")"};
    }
    p->links_.emplace_back(l);
  }
  if (child_pid_off) {
    bpf_link* l = bpf_program__attach(child_pid_off == 20 ? p->skel_->progs.handle_fork_pid_at_20
                                                          : p->skel_->progs.handle_fork_pid_at_44);
    if (!l)
      return Error{"cannot attach to tracepoint sched/sched_process_fork on kernel " + p->kernel_ + " (" +
                   std::strerror(errno) + ")"};
    p->links_.emplace_back(l);
  }
  return p;
}

namespace {

uint64_t monotonic_now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);  // bpf_ktime_get_ns()'s clock
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

Result<uint64_t> KvmProbes::poll(int timeout_ms, const Sink& sink) {
  if (!ring_map_.addr) return uint64_t{0};
  if (timeout_ms > 0 && !behind_ && !detached_) {
    // No wakeups come from the producers (kvm_ring.bpf.h): read the rings every 10 ms at most. A
    // ring holds at least 64 ms of the fastest stream measured (ring_slots_for_cpus).
    const long ms = std::min(timeout_ms, 10);
    timespec ts{ms / 1000, (ms % 1000) * 1000000L};
    ::nanosleep(&ts, nullptr);  // a signal ends it early
  }
  auto* ctl = static_cast<es_kvm_ring_ctl*>(ctl_map_.addr);
  const auto* rec = static_cast<const es_kvm_event*>(ring_map_.addr);
  const uint64_t mask = ring_slots_ - 1;
  // Merge the rings by timestamp. A CPU whose ring is empty may still publish a record stamped
  // up to kInFlightNs before its head was read, so nothing later than that is handed on yet;
  // once detached, nothing more can come.
  std::vector<uint64_t> head(cpus_), bound(cpus_);
  uint64_t limit = UINT64_MAX;                 // the smallest bound of the rings that are (or ran) empty
  using Next = std::pair<uint64_t, unsigned>;  // (time, cpu) of a ring's oldest record not handed on
  std::priority_queue<Next, std::vector<Next>, std::greater<Next>> next;
  auto time_at = [&](unsigned c) { return rec[uint64_t{c} * ring_slots_ + (taken_[c] & mask)].time_ns; };
  for (unsigned c = 0; c < cpus_; ++c) {
    const uint64_t read_at = monotonic_now_ns();
    head[c] = __atomic_load_n(&ctl[c].head, __ATOMIC_ACQUIRE);
    bound[c] = detached_ ? UINT64_MAX : read_at - std::min(read_at, kInFlightNs);
    if (taken_[c] < head[c])
      next.emplace(time_at(c), c);
    else
      limit = std::min(limit, bound[c]);
  }
  uint64_t handed = 0;
  std::vector<char> moved(cpus_, 0);
  while (!next.empty() && next.top().first <= limit) {
    const unsigned c = next.top().second;
    next.pop();
    es_kvm_event e;
    std::memcpy(&e, &rec[uint64_t{c} * ring_slots_ + (taken_[c] & mask)], sizeof e);
    sink(e);
    ++handed;
    moved[c] = 1;
    if (++taken_[c] < head[c])
      next.emplace(time_at(c), c);
    else
      limit = std::min(limit, bound[c]);
  }
  behind_ = false;
  for (unsigned c = 0; c < cpus_; ++c) {
    if (moved[c]) __atomic_store_n(&ctl[c].tail, taken_[c], __ATOMIC_RELEASE);
    if (head[c] - taken_[c] >= ring_slots_ / 4) behind_ = true;
  }
  return handed;
}

void KvmProbes::detach() {
  links_.clear();
  detached_ = true;
}

std::vector<uint64_t> KvmProbes::drops_per_cpu() const {
  std::vector<uint64_t> d;
  const auto* ctl = static_cast<const es_kvm_ring_ctl*>(ctl_map_.addr);
  if (!ctl) return d;
  d.reserve(cpus_);
  for (unsigned c = 0; c < cpus_; ++c) d.push_back(__atomic_load_n(&ctl[c].drops, __ATOMIC_RELAXED));
  return d;
}

uint64_t KvmProbes::drops_total() const {
  uint64_t t = 0;
  for (uint64_t v : drops_per_cpu()) t += v;
  return t;
}

}  // namespace es::kvm
