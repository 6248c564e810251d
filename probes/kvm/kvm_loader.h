// The libbpf loader of probes/kvm/kvm.bpf.c and kvm_btf.bpf.c: picks, per event, how to attach
// on the running kernel, refuses the events it cannot record faithfully, loads the chosen
// programs with their settings, attaches them and reads the per-CPU rings (kvm_ring.bpf.h),
// merging them in time order. Every libbpf object (the skeletons, each link) and the rings'
// mappings are owned by RAII handles; destroying the KvmProbes detaches all.
//
// The choice per event (ProbeOptions::attach, `record --kvm --attach`):
//   tp      classic tracepoint, when tracefs has the event's format and tracefs_format.h knows its
//           layout (the default: the trace entry, with every field TP_fast_assign computed);
//   tp_btf  BTF-typed raw tracepoint, when tracefs is not there or its format is unknown but the
//           kernel's BTF prototype btf_trace_<event> is a shape btf_shape.h knows (not for
//           kvm_exit, kvm_nested_vmexit, kvm_entry: their fields are computed inside the
//           tracepoint). raw_tp is not offered: without BTF nothing says what the arguments are;
//   refused with one sentence naming the event, the kernel and why, when neither fits.
//
//   auto p = es::kvm::KvmProbes::open(opts);           // needs root (or CAP_BPF + CAP_PERFMON)
//   if (!p) { print(p.error()); return 2; }
//   (*p)->poll(100, [&](const es_kvm_event& e) { ... });
//   (*p)->detach(); (*p)->poll(0, ...);                 // drain what is left
//   auto drops = (*p)->drops_per_cpu();
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "probes/kvm/kvm_decode.h"
#include "probes/kvm/kvm_event.h"
#include "probes/kvm/tracefs_format.h"
#include "schema/result.h"

struct kvm_bpf;
struct kvm_btf_bpf;
struct bpf_link;

namespace es::kvm {

enum class AttachMethod { Auto, Tp, TpBtf };
// "auto" / "tp" / "tp_btf"; false if none.
bool parse_attach_method(std::string_view name, AttachMethod& out);

struct ProbeOptions {
  AttachMethod attach = AttachMethod::Auto;  // Tp / TpBtf: only that method (for tests and comparisons)
  std::vector<int> events;                   // ES_KVM_EV_* wanted; empty = all
  bool events_explicit = false;              // the user named them: an unknown layout is an error, not a warning
  uint32_t filter_tgid = 0;                  // 0: every process
  bool follow_children = false;              // with filter_tgid: also the processes it starts (sched_process_fork)
  uint32_t ring_slots = 0;  // records per CPU ring, rounded down to a power of two; 0: ring_slots_for_cpus
  std::string tracefs;      // "" : find (and mount) tracefs
};

struct AttachedEvent {
  int event = -1;          // ES_KVM_EV_*
  std::string tracepoint;  // its name on this kernel ("kvm_nested_vmrun" before 5.12)
  std::string method;      // "tp" (tp/kvm/<event>) or "tp_btf" (tp_btf/<event>)
  std::string prototype;   // the kernel's BTF prototype, "btf_trace_kvm_pio(u32, ...)" ("" without BTF)
  std::string why;         // tp_btf chosen by auto: why not tp ("kvm_pio on kernel ...: ...")
  std::vector<std::string> optional_missing;  // fields this kernel's format / prototype lacks (older era)
};

// Records per CPU ring for `cpus` possible CPUs: a power of two filling at most 16 MiB per CPU
// (131 072 records, ~65 ms of the fastest KVM event stream measured here) and 512 MiB in all; at
// least 64.
uint32_t ring_slots_for_cpus(unsigned cpus);

// Reads <tracefs>/events/kvm/<name>/format and resolves its layout (name: `tracepoint`, or the
// event's name today when empty).
Result<EventLayout> load_layout(const std::string& tracefs, int event, const std::string& kernel_release,
                                std::string_view tracepoint = {});

class KvmProbes {
 public:
  // Error: one sentence saying what is missing (root, tracefs, kvm, BPF support) or naming the
  // refused event and the kernel.
  static Result<std::unique_ptr<KvmProbes>> open(const ProbeOptions& options);
  ~KvmProbes();
  KvmProbes(const KvmProbes&) = delete;
  KvmProbes& operator=(const KvmProbes&) = delete;

  using Sink = std::function<void(const es_kvm_event&)>;
  // Sleeps up to `timeout_ms` (at most 10 ms, none while a ring is a quarter full or after a
  // signal), then hands `sink` every record waiting in the rings in time order: a record is
  // handed on once no CPU can still publish an older one (records are at most kInFlightNs old
  // when published). Returns the number handed on.
  Result<uint64_t> poll(int timeout_ms, const Sink& sink);
  // Detaches every program (no new events); the rings keep what is already in them, and the
  // next poll() hands all of it on.
  void detach();

  std::vector<uint64_t> drops_per_cpu() const;  // records lost per CPU (its ring full, or nested)
  uint64_t drops_total() const;
  const Decoder& decoder() const { return decoder_; }
  const std::vector<AttachedEvent>& attached() const { return attached_; }
  const std::vector<std::string>& refused() const { return refused_; }                          // one sentence each
  uint64_t ring_bytes() const { return uint64_t{ring_slots_} * cpus_ * sizeof(es_kvm_event); }  // all rings
  uint32_t ring_slots() const { return ring_slots_; }                                           // records per CPU ring
  unsigned cpus() const { return cpus_; }                                                       // rings (possible CPUs)
  const std::string& kernel_release() const { return kernel_; }
  // A record older than this (its timestamp to its publication) can come out of order.
  static constexpr uint64_t kInFlightNs = 2'000'000;

 private:
  KvmProbes() : decoder_({}) {}
  struct SkelDeleter {
    void operator()(kvm_bpf* s) const;
  };
  struct BtfSkelDeleter {
    void operator()(kvm_btf_bpf* s) const;
  };
  struct LinkDeleter {
    void operator()(bpf_link* l) const;
  };
  struct Mapping {  // an mmap of a BPF array map
    void* addr = nullptr;
    size_t bytes = 0;
    Mapping() = default;
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping();
  };

  std::unique_ptr<kvm_bpf, SkelDeleter> skel_;             // tp programs; owns the rings' maps
  std::unique_ptr<kvm_btf_bpf, BtfSkelDeleter> btf_skel_;  // tp_btf programs (only when some are chosen)
  std::vector<std::unique_ptr<bpf_link, LinkDeleter>> links_;
  Mapping ring_map_, ctl_map_;   // the rings' records and their es_kvm_ring_ctl
  std::vector<uint64_t> taken_;  // per CPU: records handed on (the tail we store)
  bool detached_ = false;        // no producer left: hand everything on
  bool behind_ = false;          // the last poll left a ring a quarter full
  Decoder decoder_;
  std::vector<AttachedEvent> attached_;
  std::vector<std::string> refused_;
  uint32_t ring_slots_ = 0;
  std::string kernel_;
  unsigned cpus_ = 0;
};

}  // namespace es::kvm
