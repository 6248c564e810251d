// `record --kvm --stats`: a kvm_stat-like table of what the recorder is decoding, refreshed
// once a second on a terminal (one table at the end elsewhere). Fed with the records the
// pipeline already hands to the recorder (no SQLite read, no second decode): per exit reason
// and level the count, the rate per second since the last table and the mean exit-to-entry time
// (VM exit -> next VM entry of the same vCPU and level, as `exitscope stats`); nested exits
// apart; injections and reinjections; the other KVM tracepoints (kvm_pio, kvm_msr, kvm_userspace_exit ...) counted by name,
// since they fire even where kvm_exit does not.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "exitscope/record.h"

namespace es::kvm {

class LiveStats {
 public:
  // The pipeline thread, once per batch: a lock and a map update per record.
  void add(const es_record* records, size_t n);
  // The table since the start (counts, means) with rates over the time since the previous
  // call (or since set_start on the first), or over the whole session (`elapsed_ns`, the
  // session's age) with `whole_session`. Main thread.
  std::string table(uint64_t now_ns, uint64_t elapsed_ns, bool whole_session = false);
  void set_start(uint64_t start_ns) { last_ns_ = start_ns; }

 private:
  // [33:32] group (0 VM exit, 1 nested exit, 2 other event, 3 injection), [41:34] level,
  // [42] SVM, [31:0] reason: one integer, so a record costs one hash lookup.
  using Key = uint64_t;
  static Key key(uint64_t group, uint64_t level, uint64_t svm, uint64_t reason) {
    return (group << 32) | (level << 34) | ((svm ? 1ull : 0ull) << 42) | reason;
  }
  struct Pending {
    Key key = 0;
    uint64_t time_ns = 0;
    bool valid = false;
  };
  struct Row {
    uint64_t count = 0, timed = 0, total_ns = 0, shown = 0;
  };
  std::mutex mu_;
  std::unordered_map<Key, Row> rows_;
  // The exit waiting for its entry, by (vCPU, level, nested).
  std::unordered_map<uint32_t, Pending> pending_;
  uint64_t last_ns_ = 0;
};

}  // namespace es::kvm
