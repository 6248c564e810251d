// The configuration a live KVM recording stores in its session row, {"kvm": {...}}, written
// and read through nlohmann-json (probes/kvm/kvm_record.h writes it; `exitscope info` reads it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace es::kvm {

// What a live KVM recording stores in its session row, {"kvm": {...}}: written when the
// recording is created (the settings), and again at its end with the drops and what the linker
// found. Keys in this order, as every KVM recording on disk has them.
struct KvmStoredConfig {
  struct Event {
    std::string name;                         // "kvm_exit"
    std::string attach;                       // "tp" | "tp_btf"
    std::string prototype;                    // its BTF prototype, "" if unknown
    std::string not_tp;                       // why tp_btf and not tp, "" if tp
    std::vector<std::string> fields_missing;  // optional fields this kernel's event lacks
  };
  std::string kernel;  // uname release
  std::vector<Event> events;
  std::vector<std::string> refused;  // events not recorded, one sentence each
  uint64_t ring_bytes = 0, ring_slots = 0, ring_cpus = 0;
  int64_t pid = -1;
  int32_t vcpu = -1;
  double duration_s = 0;
  uint64_t buffer_bytes = 0;
  std::string scheduling;  // the Yielder's summary, "" until the end
  // At the end of the recording:
  std::optional<std::vector<uint64_t>> drops_per_cpu;  // "drops" is their sum
  uint64_t buffer_drops = 0, abandoned = 0;
  // What the linker found (at the end):
  bool linked = false;
  std::string vendor;  // "VMX" | "SVM" | "no VM exits seen"
  std::string era;
  std::vector<std::string> assumptions;
  uint64_t undecodable = 0;
  std::vector<std::string> vcpu_map;  // several VMs: which VM each recorded vCPU is
};

// The stored JSON text (nlohmann-json), with ", " and ": " between items as recordings have it.
std::string to_json(const KvmStoredConfig& config);

// Lines for `exitscope info` from a session's config_json (read with nlohmann-json); empty if
// it is not a KVM recording, one line saying so if its KVM part is not valid JSON.
std::vector<std::string> describe_kvm_config(std::string_view config_json);

}  // namespace es::kvm
