// The libbpf loader of probes/kvm/kvm.bpf.c and kvm_btf.bpf.c: picks, per event, how to attach
// on the running kernel, refuses the events it cannot record faithfully, loads the chosen
// programs with their settings, attaches them and consumes the ring buffer. Every libbpf object
// (the skeletons, each link, the ring buffer) is owned by an RAII handle; destroying the
// KvmProbes detaches all.
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
struct ring_buffer;

namespace es::kvm {

enum class AttachMethod { Auto, Tp, TpBtf };
// "auto" / "tp" / "tp_btf"; false if none.
bool parse_attach_method(std::string_view name, AttachMethod& out);

struct ProbeOptions {
  AttachMethod attach = AttachMethod::Auto;  // Tp / TpBtf: only that method (for tests and comparisons)
  std::vector<int> events;         // ES_KVM_EV_* wanted; empty = all
  bool events_explicit = false;    // the user named them: an unknown layout is an error, not a warning
  uint32_t filter_tgid = 0;        // 0: every process
  uint64_t ring_bytes = 0;         // 0: by CPU count (ring_bytes_for_cpus)
  uint64_t wakeup_bytes = ~0ull;   // ~0: a quarter of the ring; 0: wake the consumer per event
  std::string tracefs;             // "" : find (and mount) tracefs
};

struct AttachedEvent {
  int event = -1;                  // ES_KVM_EV_*
  std::string method;              // "tp" (tp/kvm/<event>) or "tp_btf" (tp_btf/<event>)
  std::string prototype;           // the kernel's BTF prototype, "btf_trace_kvm_pio(u32, ...)" ("" without BTF)
  std::string why;                 // tp_btf chosen by auto: why not tp ("kvm_pio on kernel ...: ...")
  std::vector<std::string> optional_missing;  // fields this kernel's format / prototype lacks (older era)
};

// The ring size for `cpus` online CPUs: 16 MiB per CPU (~150 k events each), a power of two, 16..512 MiB.
uint64_t ring_bytes_for_cpus(unsigned cpus);

// Reads <tracefs>/events/kvm/<name>/format and resolves its layout.
Result<EventLayout> load_layout(const std::string& tracefs, int event, const std::string& kernel_release);

class KvmProbes {
 public:
  // Error: one sentence saying what is missing (root, tracefs, kvm, BPF support) or naming the
  // refused event and the kernel.
  static Result<std::unique_ptr<KvmProbes>> open(const ProbeOptions& options);
  ~KvmProbes();
  KvmProbes(const KvmProbes&) = delete;
  KvmProbes& operator=(const KvmProbes&) = delete;

  using Sink = std::function<void(const es_kvm_event&)>;
  // Waits up to `timeout_ms` for data, then consumes everything waiting. Returns the number of
  // events handed to `sink`, or an error.
  Result<uint64_t> poll(int timeout_ms, const Sink& sink);
  // Detaches every program (no new events); the ring keeps what is already in it.
  void detach();

  std::vector<uint64_t> drops_per_cpu() const;  // ring-buffer reservations that failed, by CPU
  uint64_t drops_total() const;
  const Decoder& decoder() const { return decoder_; }
  const std::vector<AttachedEvent>& attached() const { return attached_; }
  const std::vector<std::string>& refused() const { return refused_; }  // one sentence each
  uint64_t ring_bytes() const { return ring_bytes_; }
  const std::string& kernel_release() const { return kernel_; }
  uint64_t malformed() const { return malformed_; }  // ring records of the wrong size (never expected)

 private:
  KvmProbes() : decoder_({}) {}
  struct SkelDeleter { void operator()(kvm_bpf* s) const; };
  struct BtfSkelDeleter { void operator()(kvm_btf_bpf* s) const; };
  struct LinkDeleter { void operator()(bpf_link* l) const; };
  struct RingDeleter { void operator()(ring_buffer* r) const; };
  static int on_sample(void* ctx, void* data, size_t size);

  std::unique_ptr<kvm_bpf, SkelDeleter> skel_;          // tp programs; owns the ring buffer map
  std::unique_ptr<kvm_btf_bpf, BtfSkelDeleter> btf_skel_;  // tp_btf programs (only when some are chosen)
  std::vector<std::unique_ptr<bpf_link, LinkDeleter>> links_;
  std::unique_ptr<ring_buffer, RingDeleter> ring_;
  Decoder decoder_;
  std::vector<AttachedEvent> attached_;
  std::vector<std::string> refused_;
  uint64_t ring_bytes_ = 0;
  std::string kernel_;
  unsigned cpus_ = 0;
  const Sink* sink_ = nullptr;  // valid during poll()
  uint64_t delivered_ = 0, malformed_ = 0;
};

}  // namespace es::kvm
