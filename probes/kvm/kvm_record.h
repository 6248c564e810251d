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
//
// Its parts: spool.h (the raw events waiting for the pipeline, and its priority), workload.h
// (sudo's user, the privilege drop, the workload's fork), vcpu_map.h (each event's vCPU),
// kvm_config.h (the stored configuration). It prints nothing: the caller's RecordObserver is
// told what happens and the result says how it ended (replay/cli/cmd_record.cpp prints).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "probes/bus/plugin_host.h"
#include "probes/kvm/kvm_config.h"
#include "probes/kvm/kvm_decode.h"
#include "probes/kvm/live_stats.h"
#include "probes/recorder/record_steps.h"
#include "schema/result.h"

namespace es::kvm {

struct RecordOptions {
  std::string output;  // -o DB
  bool force = false;
  int64_t pid = -1;                         // --pid: only this process (the VMM)
  int32_t vcpu = -1;                        // --vcpu: only this vCPU
  double duration_s = 0;                    // --duration: stop after this long (0: no limit)
  std::vector<std::string> events;          // --events: tracepoint names ("kvm_exit" or "exit"); empty = all
  std::string attach = "auto";              // --attach: auto | tp | tp_btf (probes/kvm/kvm_loader.h)
  std::vector<std::string> command;         // -- CMD ARGS: run it, record it, stop when it exits
  uint64_t buffer_bytes = 1ull << 30;       // --buffer-size: raw events waiting to be decoded and written
  double max_lag_s = 2;                     // --max-lag: decode at idle priority up to this far behind (0: never)
  bool stats = false;                       // --stats: a per-reason table (live_stats.h), in every_second()
                                            // and, for the whole session, in RecordResult::stats_table
  bool test_overflow = false;               // hidden: 32-record rings, slow consumer (tests the drop count)
  bool test_slow_pipeline = false;          // hidden: the pipeline sleeps per chunk (tests a full --buffer-size)
  std::string command_line;                 // for the session row
  std::vector<probes::PluginSpec> plugins;  // --plugin: loaded before anything is attached
  recorder::RecordStepsFactory steps;       // the recorder's steps (chains: replay::chain_steps()), from the caller
};

// What a finished recording holds, for the caller to print (the recorder prints nothing).
struct RecordResult {
  std::string output;                 // the recording
  uint32_t end_reason = 0;            // ES_END_GUEST_EXIT when the workload exited, else ES_END_STOPPED
  std::string end_detail;             // "duration reached", "workload exited with status 3", a plugin's crash ...
  uint64_t kvm_events = 0;            // tracepoint events decoded
  uint64_t records = 0;               // rows written to the events table
  uint64_t ring_dropped = 0;          // lost in the BPF ring buffers (all CPUs)
  uint64_t buffer_dropped = 0;        // lost with the spool (--buffer-size) full
  uint64_t abandoned = 0;             // buffered, not written: interrupted again while writing the backlog
  uint64_t filtered = 0;              // events of other vCPUs than --vcpu
  bool workload_failed = false;       // the command after '--' exited with a status other than 0
  bool plugin_crashed = false;        // a --plugin crashed, during the recording or at unload
  std::string stats_table;            // --stats: the whole session's table
  std::vector<std::string> warnings;  // sentences worth saying (e.g. nothing was recorded)
};

// Progress of a running recording, about once a second.
struct Progress {
  uint64_t now_ns = 0;         // CLOCK_MONOTONIC
  uint64_t elapsed_ns = 0;     // since the start
  uint64_t seen = 0;           // events taken from the rings so far
  uint64_t dropped = 0;        // lost so far (rings and a full spool)
  uint64_t buffered = 0;       // taken, not yet decoded and written
  LiveStats* stats = nullptr;  // --stats: the table being filled (LiveStats::table)
};

// Told what happens while recording, on the thread that called record_kvm(); every call has a
// default that says nothing. The CLI prints from here (replay/cli/cmd_record.cpp).
class RecordObserver {
 public:
  virtual ~RecordObserver() = default;
  // Probes attached: the events not recorded (one sentence each) and why some went through
  // tp_btf rather than tp.
  virtual void attached(const std::vector<std::string>& /*refused*/, const std::vector<std::string>& /*not_tp*/) {}
  // The recording exists and the workload runs; `pid` > 0 when one process is traced.
  virtual void started(size_t /*tracepoints*/, const std::string& /*output*/, int64_t /*pid*/) {}
  virtual void every_second(const Progress&) {}
  // Stopped: `buffered` events still to write (called every 200 ms until none are left).
  virtual void writing_backlog(uint64_t /*buffered*/) {}
  // Interrupted again while writing: `events` buffered are dropped.
  virtual void abandoned(uint64_t /*events*/) {}
  virtual void backlog_written() {}  // every buffered event is decoded and handed to the recorder
  virtual void indexing() {}         // the recorder builds the indexes and the chains
  // The recording is complete; your plugins' at-exit callbacks run after this returns.
  virtual void finished(const RecordResult&) {}
};

// Runs the recording. Error: one sentence (nothing attached without root, a probe or the
// recording refused, ...; after the recording started, what is written is kept and said so).
Result<RecordResult> record_kvm(const RecordOptions& options, RecordObserver& observer);

// "kvm_exit" / "exit" -> ES_KVM_EV_*; -1 if unknown.
int parse_event_name(std::string_view name);

// The kernel era the decoder's event formats say (the running kernel's tracefs formats, or the
// tp_btf shapes): kvmtrace::EraEvidence::formats_era(), the same rule as a trace.dat's formats.
std::string formats_era(const Decoder& decoder);

}  // namespace es::kvm
