#include "probes/kvm/kvm_loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include "probes/kvm/kvm.skel.h"

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

}  // namespace

void KvmProbes::SkelDeleter::operator()(kvm_bpf* s) const { kvm_bpf__destroy(s); }
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
  skel_.reset();
}

Result<std::unique_ptr<KvmProbes>> KvmProbes::open(const ProbeOptions& o) {
  std::unique_ptr<KvmProbes> p(new KvmProbes());
  p->kernel_ = uname_release();
  if (::geteuid() != 0)
    return Error{"recording a KVM host attaches eBPF programs to the kernel's kvm tracepoints, which needs root: run "
                 "it with sudo (the recording will belong to you)"};
  std::string tracefs = o.tracefs;
  if (tracefs.empty()) {
    auto t = find_tracefs();
    if (!t) return Error{t.error()};
    tracefs = *t;
  }
  std::vector<int> wanted = o.events;
  if (wanted.empty())
    for (int e = 0; e < ES_KVM_EV_COUNT; ++e) wanted.push_back(e);
  Decoder::Layouts layouts;
  for (int e : wanted) {
    auto l = load_layout(tracefs, e, p->kernel_);
    if (!l) {
      if (o.events_explicit) return Error{l.error()};
      p->refused_.push_back(l.error());
      continue;
    }
    AttachedEvent a;
    a.event = e;
    a.method = "tp";
    a.optional_missing = l->optional_missing;
    p->attached_.push_back(std::move(a));
    layouts[static_cast<size_t>(e)] = std::move(*l);
  }
  if (p->attached_.empty())
    return Error{"none of the kvm tracepoints asked for can be recorded on kernel " + p->kernel_ + ": " +
                 (p->refused_.empty() ? std::string("none asked") : p->refused_.front())};
  p->decoder_ = Decoder(std::move(layouts));

  libbpf_set_print(libbpf_log);
  {
    std::lock_guard<std::mutex> g(g_log_mu);
    g_log.clear();
  }
  p->skel_.reset(kvm_bpf__open());
  if (!p->skel_)
    return Error{std::string("libbpf could not open the embedded BPF object (") + std::strerror(errno) +
                 "); this exitscope build is broken, rebuild it"};
  const int cpus = libbpf_num_possible_cpus();
  p->cpus_ = cpus > 0 ? static_cast<unsigned>(cpus) : 1;
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  p->ring_bytes_ = o.ring_bytes ? o.ring_bytes : ring_bytes_for_cpus(online > 0 ? static_cast<unsigned>(online) : 1);
  p->skel_->rodata->filter_tgid = o.filter_tgid;
  p->skel_->rodata->wakeup_bytes = o.wakeup_bytes == ~0ull ? p->ring_bytes_ / 4 : o.wakeup_bytes;
  if (int err = bpf_map__set_max_entries(p->skel_->maps.events, static_cast<uint32_t>(p->ring_bytes_)); err)
    return Error{"cannot size the BPF ring buffer to " + std::to_string(p->ring_bytes_) + " bytes (" +
                 std::strerror(-err) + ")"};
  for (int e = 0; e < ES_KVM_EV_COUNT; ++e)
    if (const auto& l = p->decoder_.layouts()[static_cast<size_t>(e)]) p->skel_->rodata->copy_len[e] = l->copy_len;
  for (int e = 0; e < ES_KVM_EV_COUNT; ++e)
    bpf_program__set_autoload(program_of(p->skel_.get(), e), p->decoder_.layouts()[static_cast<size_t>(e)].has_value());
  if (int err = kvm_bpf__load(p->skel_.get()); err) {
    const std::string why = last_libbpf_line();
    if (err == -EPERM || err == -EACCES)
      return Error{"the kernel refused to load the BPF programs (permission denied): root with CAP_BPF and "
                   "CAP_PERFMON is needed, and a lockdown or seccomp policy may forbid BPF" +
                   (why.empty() ? std::string() : " (libbpf: " + why + ")")};
    return Error{"the kernel refused to load exitscope's BPF programs on kernel " + p->kernel_ + " (" +
                 std::strerror(-err) + (why.empty() ? std::string() : "; libbpf: " + why) +
                 "); is BPF (CONFIG_BPF_SYSCALL, CONFIG_BPF_EVENTS) enabled?"};
  }
  for (const AttachedEvent& a : p->attached_) {
    bpf_link* l = bpf_program__attach(program_of(p->skel_.get(), a.event));
    if (!l) {
      const int err = errno;
      return Error{"cannot attach to tracepoint kvm/" + std::string(kEventNames[static_cast<size_t>(a.event)]) +
                   " on kernel " + p->kernel_ + " (" + std::strerror(err) + ")"};
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
  for (unsigned i = 0; i < n; ++i) d.push_back(__atomic_load_n(&skel_->bss->drops[i], __ATOMIC_RELAXED));
  return d;
}

uint64_t KvmProbes::drops_total() const {
  uint64_t t = 0;
  for (uint64_t v : drops_per_cpu()) t += v;
  return t;
}

}  // namespace es::kvm
