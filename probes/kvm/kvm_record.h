// `exitscope record --kvm`: records a real KVM host through the eBPF probes into a recording,
// the same schema as the hv core's. Pipeline:
//
//   KvmProbes (per-CPU rings, merged in time order) -> spool (raw events in memory, --buffer-size)
//     -> pipeline thread: Decoder (kvmtrace::KvmEvent at this kernel's offsets) -> vCPU / --vcpu filter
//     -> kvmtrace::Linker (chains) -> Recorder (SQLite, batched writer thread)
//
// The pipeline and the writer run at SCHED_IDLE while they are less than --max-lag behind and
// the spool is less than half full, so the guests being traced keep their CPUs; beyond that
// they compete at normal priority, and a full spool drops (counted with the ring's drops).
//
// Order of operations: the workload (if any) is forked and held, the probes are loaded and
// attached as root, privileges drop to SUDO_UID / SUDO_GID, the recording is created (so it
// belongs to the invoking user), then the workload is released. Stops on --duration, on
// SIGINT / SIGTERM, or when the workload exits; everything in the ring is written before the
// session is marked complete. The session's config_json gets {"kvm": {...}}: kernel, events and
// how each was attached, refused events, ring size, drops per CPU (sessions.source_dropped =
// their total).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "probes/bus/plugin_host.h"
#include "probes/kvm/kvm_decode.h"
#include "probes/recorder/record_steps.h"

namespace es::kvm {

struct RecordOptions {
  std::string output;  // -o DB
  bool force = false;
  int64_t pid = -1;                    // --pid: only this process (the VMM)
  int32_t vcpu = -1;                   // --vcpu: only this vCPU
  double duration_s = 0;               // --duration: stop after this long (0: no limit)
  std::vector<std::string> events;     // --events: tracepoint names ("kvm_exit" or "exit"); empty = all
  std::string attach = "auto";         // --attach: auto | tp | tp_btf (probes/kvm/kvm_loader.h)
  std::vector<std::string> command;    // -- CMD ARGS: run it, record it, stop when it exits
  uint64_t buffer_bytes = 1ull << 30;  // --buffer-size: raw events waiting to be decoded and written
  double max_lag_s = 2;                // --max-lag: decode at idle priority up to this far behind (0: never)
  bool quiet = false;
  bool stats = false;                       // --stats: a per-reason table, live on a terminal (live_stats.h)
  bool test_overflow = false;               // hidden: 32-record rings, slow consumer (tests the drop count)
  bool test_slow_pipeline = false;          // hidden: the pipeline sleeps per chunk (tests a full --buffer-size)
  std::string command_line;                 // for the session row
  std::vector<probes::PluginSpec> plugins;  // --plugin: loaded before anything is attached
  recorder::RecordStepsFactory steps;       // the recorder's steps (chains: replay::chain_steps()), from the caller
};

// Runs the recording. Returns the exit code (0 ok, 1 recorded but the workload failed, 2 error)
// after printing one sentence for any error.
int record_kvm(const RecordOptions& options);

// "kvm_exit" / "exit" -> ES_KVM_EV_*; -1 if unknown.
int parse_event_name(std::string_view name);

// The kernel era the decoder's event formats say (the running kernel's tracefs formats, or the
// tp_btf shapes): kvmtrace::EraEvidence::formats_era(), the same rule as a trace.dat's formats.
std::string formats_era(const Decoder& decoder);

// Lines for `exitscope info` from a session's config_json; empty if it is not a KVM recording.
std::vector<std::string> describe_kvm_config(std::string_view config_json);

}  // namespace es::kvm
