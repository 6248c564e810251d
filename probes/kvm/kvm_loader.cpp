#include "probes/kvm/kvm_loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <fstream>
#include <mutex>
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
  char buf[1024];
  const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  std::lock_guard<std::mutex> g(g_log_mu);
  g_log += buf;
  if (g_log.size() > 8192) g_log.erase(0, g_log.size() - 8192);
  return n;
}

std::string last_libbpf_line() {
  std::lock_guard<std::mutex> g(g_log_mu);
  std::string s = g_log;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  const size_t nl = s.rfind('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

std::string uname_release() {
  struct utsname u{};
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
    default: return nullptr;
  }
}

// `reason` without its "<event> on kernel <release>: " head, to join two reasons in one sentence.
std::string without_head(const std::string& reason, const std::string& head) {
  return reason.rfind(head, 0) == 0 ? reason.substr(head.size()) : reason;
}

std::string load_error(int err, const std::string& kernel, const char* what) {
  const std::string why = last_libbpf_line();
  if (err == -EPERM || err == -EACCES)
    return "the kernel refused to load the BPF programs (permission denied): root with CAP_BPF and "
           "CAP_PERFMON is needed, and a lockdown or seccomp policy may forbid BPF" +
           (why.empty() ? std::string() : " (libbpf: " + why + ")");
  return std::string("the kernel refused to load exitscope's ") + what + " on kernel " + kernel + " (" +
         std::strerror(-err) + (why.empty() ? std::string() : "; libbpf: " + why) +
         "); is BPF (CONFIG_BPF_SYSCALL, CONFIG_BPF_EVENTS) enabled?";
}

}  // namespace

bool parse_attach_method(std::string_view name, AttachMethod& out) {
  if (name == "auto") out = AttachMethod::Auto;
  else if (name == "tp") out = AttachMethod::Tp;
  else if (name == "tp_btf") out = AttachMethod::TpBtf;
  else return false;
  return true;
}

void KvmProbes::SkelDeleter::operator()(kvm_bpf* s) const { kvm_bpf__destroy(s); }
void KvmProbes::BtfSkelDeleter::operator()(kvm_btf_bpf* s) const { kvm_btf_bpf__destroy(s); }
void KvmProbes::LinkDeleter::operator()(bpf_link* l) const { bpf_link__destroy(l); }
void KvmProbes::RingDeleter::operator()(ring_buffer* r) const { ring_buffer__free(r); }

uint64_t ring_bytes_for_cpus(unsigned cpus) {
  const uint64_t want = (16ull << 20) * (cpus ? cpus : 1);
  uint64_t n = 16ull << 20;
  while (n < want && n < (512ull << 20)) n <<= 1;  // BPF ring buffers are a power of two in size
  return n;
}

Result<EventLayout> load_layout(const std::string& tracefs, int event, const std::string& release) {
  const std::string name(kEventNames[static_cast<size_t>(event)]);
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
  ring_.reset();
  links_.clear();
  btf_skel_.reset();
  skel_.reset();
}

Result<std::unique_ptr<KvmProbes>> KvmProbes::open(const ProbeOptions& o) {
  std::unique_ptr<KvmProbes> p(new KvmProbes());
  p->kernel_ = uname_release();
  if (::geteuid() != 0)
    return Error{"recording a KVM host attaches eBPF programs to the kernel's kvm tracepoints, which needs root: run "
                 "it with sudo (the recording will belong to you)"};
  // tracefs: needed by tp (formats, and libbpf attaches tp through its event ids). Without it,
  // auto goes on with tp_btf for every event.
  std::string tracefs = o.tracefs, tracefs_error;
  if (o.attach != AttachMethod::TpBtf && tracefs.empty()) {
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
    const std::string name(kEventNames[static_cast<size_t>(e)]);
    const std::string head = name + " on kernel " + p->kernel_ + ": ";
    std::string tp_reason;
    if (o.attach != AttachMethod::TpBtf) {
      auto l = tracefs.empty() ? Result<EventLayout>(Error{head + tracefs_error}) : load_layout(tracefs, e, p->kernel_);
      if (l) {
        AttachedEvent a;
        a.event = e;
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
  // The tp object is always loaded: it owns the ring buffer and its drop counters, even when
  // every event goes through tp_btf (then none of its programs is loaded).
  p->skel_.reset(kvm_bpf__open());
  if (!p->skel_)
    return Error{std::string("libbpf could not open the embedded BPF object (") + std::strerror(errno) +
                 "); this exitscope build is broken, rebuild it"};
  const int cpus = libbpf_num_possible_cpus();
  p->cpus_ = cpus > 0 ? static_cast<unsigned>(cpus) : 1;
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  p->ring_bytes_ = o.ring_bytes ? o.ring_bytes : ring_bytes_for_cpus(online > 0 ? static_cast<unsigned>(online) : 1);
  const uint64_t wakeup = o.wakeup_bytes == ~0ull ? p->ring_bytes_ / 4 : o.wakeup_bytes;
  p->skel_->rodata->filter_tgid = o.filter_tgid;
  p->skel_->rodata->wakeup_bytes = wakeup;
  if (int err = bpf_map__set_max_entries(p->skel_->maps.events, static_cast<uint32_t>(p->ring_bytes_)); err)
    return Error{"cannot size the BPF ring buffer to " + std::to_string(p->ring_bytes_) + " bytes (" +
                 std::strerror(-err) + ")"};
  std::array<bool, ES_KVM_EV_COUNT> by_tp{};
  for (const AttachedEvent& a : p->attached_) by_tp[static_cast<size_t>(a.event)] = a.method == "tp";
  for (int e = 0; e < ES_KVM_EV_COUNT; ++e) {
    const auto& l = p->decoder_.layouts()[static_cast<size_t>(e)];
    if (l && by_tp[static_cast<size_t>(e)]) p->skel_->rodata->copy_len[e] = l->copy_len;
    bpf_program__set_autoload(program_of(p->skel_.get(), e), by_tp[static_cast<size_t>(e)]);
  }
  if (int err = kvm_bpf__load(p->skel_.get()); err) return Error{load_error(err, p->kernel_, "BPF programs")};

  // The tp_btf object: only the program of each matched shape is loaded (a program written for
  // another era's arguments would not pass this kernel's verifier), writing into the same ring.
  const bool any_btf = std::any_of(shapes.begin(), shapes.end(), [](const BtfShape* s) { return s != nullptr; });
  if (any_btf) {
    p->btf_skel_.reset(kvm_btf_bpf__open());
    if (!p->btf_skel_)
      return Error{std::string("libbpf could not open the embedded tp_btf BPF object (") + std::strerror(errno) +
                   "); this exitscope build is broken, rebuild it"};
    kvm_btf_bpf* b = p->btf_skel_.get();
    b->rodata->filter_tgid = o.filter_tgid;
    b->rodata->wakeup_bytes = wakeup;
    if (int err = bpf_map__reuse_fd(b->maps.events, bpf_map__fd(p->skel_->maps.events)); err)
      return Error{std::string("cannot share the BPF ring buffer with the tp_btf programs (") + std::strerror(-err) + ")"};
    bpf_program* prog = nullptr;
    bpf_object__for_each_program(prog, b->obj) bpf_program__set_autoload(prog, false);
    for (const BtfShape* s : shapes) {
      if (!s) continue;
      bpf_program* sp = bpf_object__find_program_by_name(b->obj, std::string(s->program).c_str());
      if (!sp) return Error{"this exitscope build has no tp_btf program " + std::string(s->program) + "; rebuild it"};
      bpf_program__set_autoload(sp, true);
    }
    if (int err = kvm_btf_bpf__load(b); err) return Error{load_error(err, p->kernel_, "tp_btf BPF programs")};
  }
  for (const AttachedEvent& a : p->attached_) {
    const size_t i = static_cast<size_t>(a.event);
    bpf_program* prog = a.method == "tp" ? program_of(p->skel_.get(), a.event)
                                         : bpf_object__find_program_by_name(p->btf_skel_->obj,
                                                                            std::string(shapes[i]->program).c_str());
    bpf_link* l = bpf_program__attach(prog);
    if (!l) {
      const int err = errno;
      return Error{"cannot attach to " + std::string(a.method == "tp" ? "tracepoint kvm/" : "tp_btf/") +
                   std::string(kEventNames[i]) + " on kernel " + p->kernel_ + " (" + std::strerror(err) + ")"};
    }
    p->links_.emplace_back(l);
  }
  p->ring_.reset(ring_buffer__new(bpf_map__fd(p->skel_->maps.events), on_sample, p.get(), nullptr));
  if (!p->ring_) return Error{std::string("cannot map the BPF ring buffer (") + std::strerror(errno) + ")"};
  return p;
}

int KvmProbes::on_sample(void* ctx, void* data, size_t size) {
  auto* self = static_cast<KvmProbes*>(ctx);
  if (size < sizeof(es_kvm_event)) {
    ++self->malformed_;
    return 0;
  }
  es_kvm_event e;
  std::memcpy(&e, data, sizeof e);
  ++self->delivered_;
  (*self->sink_)(e);
  return 0;
}

Result<uint64_t> KvmProbes::poll(int timeout_ms, const Sink& sink) {
  if (!ring_) return uint64_t{0};
  sink_ = &sink;
  const uint64_t before = delivered_;
  // Producers wake the consumer only once a quarter of the ring is used (kvm.bpf.c), so after
  // the wait, consume whatever is there whether or not a wakeup came.
  int rc = ring_buffer__poll(ring_.get(), timeout_ms);
  if (rc >= 0 || rc == -EINTR) rc = ring_buffer__consume(ring_.get());
  sink_ = nullptr;
  if (rc < 0 && rc != -EINTR) return Error{std::string("reading the BPF ring buffer failed (") + std::strerror(-rc) + ")"};
  return delivered_ - before;
}

void KvmProbes::detach() { links_.clear(); }

std::vector<uint64_t> KvmProbes::drops_per_cpu() const {
  std::vector<uint64_t> d;
  if (!skel_ || !skel_->bss) return d;
  const unsigned n = cpus_ < ES_KVM_MAX_CPUS ? cpus_ : ES_KVM_MAX_CPUS;
  d.reserve(n);
  const bool btf = btf_skel_ && btf_skel_->bss;
  for (unsigned i = 0; i < n; ++i)
    d.push_back(__atomic_load_n(&skel_->bss->drops[i], __ATOMIC_RELAXED) +
                (btf ? __atomic_load_n(&btf_skel_->bss->drops[i], __ATOMIC_RELAXED) : 0));
  return d;
}

uint64_t KvmProbes::drops_total() const {
  uint64_t t = 0;
  for (uint64_t v : drops_per_cpu()) t += v;
  return t;
}

}  // namespace es::kvm
