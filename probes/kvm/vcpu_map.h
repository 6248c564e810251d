// The vCPU of each event of a live KVM recording (probes/kvm/kvm_record.h).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <unordered_map>

#include "kvmtrace/event.h"

namespace es::kvm {

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

}  // namespace es::kvm
