// The configuration a live KVM recording stores ({"kvm": {...}}, probes/kvm/kvm_record.h) as
// `exitscope info` reads it: the text recordings made before nlohmann-json wrote it, and the
// stored form it writes now (the same text: ", " and ": " separators, keys in the same order).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "probes/kvm/kvm_record.h"

namespace {

// As the recorder wrote it at the end of a recording, before this change (string concatenation
// in probes/kvm/kvm_record.cpp): every key a finished recording has.
const std::string kFinished =
    R"j({"kvm": {"kernel": "6.1.0-18-amd64", "events": [{"name": "kvm_exit", "attach": "tp", )j"
    R"j("prototype": "btf_trace_kvm_exit(struct kvm_vcpu *, u32)"}, {"name": "kvm_pio", "attach": "tp_btf", )j"
    R"j("not_tp": "no tracefs format", "fields_missing": ["guest_rip", "a ] in \"quotes\""]}], )j"
    R"j("refused": ["kvm_eoi: not on this kernel"], "ring_bytes": 4194304, "ring_slots": 65536, "ring_cpus": 2, )j"
    R"j("pid": -1, "vcpu": -1, "duration_s": 1.000000, "buffer_bytes": 1073741824, )j"
    R"j("scheduling": "decoding at idle priority, up to 2000 ms behind; raised 0 time(s)", )j"
    R"j("drops_per_cpu": [0, 3], "drops": 3, "buffer_drops": 5, "abandoned": 0, "vendor": "VMX", "era": "6.x", )j"
    R"j("assumptions": ["x"], "undecodable": 0, "vcpu_map": ["vCPU 0 = pid 7001 vCPU 0"]}})j";

// As written when the recording is created (no drops yet, no vendor): a recording killed
// before its end keeps this one.
const std::string kAtOpen =
    R"j({"kvm": {"kernel": "6.1.0", "events": [{"name": "kvm_exit", "attach": "tp"}], "refused": [], )j"
    R"j("ring_bytes": 4194304, "pid": 42, "vcpu": -1, "duration_s": 0.000000, "buffer_bytes": 1048576}})j";

TEST(KvmConfig, InfoLinesOfAFinishedRecordingWrittenBeforeNlohmannJson) {
  const std::vector<std::string> want = {
      "kernel 6.1.0-18-amd64, VMX, 6.x",
      "attached kvm_exit (tp), kvm_pio (tp_btf)",
      R"(refused "kvm_eoi: not on this kernel")",
      "rings 4194304 bytes (65536 records on each of 2 CPUs); 3 dropped (per CPU: 0, 3)",
      "buffer 1073741824 bytes; 5 dropped full; decoding at idle priority, up to 2000 ms behind; raised 0 time(s)",
  };
  EXPECT_EQ(es::kvm::describe_kvm_config(kFinished), want);
}

TEST(KvmConfig, InfoLinesOfAnUnfinishedRecording) {
  const std::vector<std::string> want = {
      "kernel 6.1.0",
      "attached kvm_exit (tp)",
      "ring 4194304 bytes; drops unknown (the recording did not finish)",
      "buffer 1048576 bytes",
  };
  EXPECT_EQ(es::kvm::describe_kvm_config(kAtOpen), want);
}

TEST(KvmConfig, OtherSourcesHaveNoKvmLines) {
  EXPECT_TRUE(es::kvm::describe_kvm_config("{}").empty());
  EXPECT_TRUE(es::kvm::describe_kvm_config(R"({"max_exits":12,"nested":false})").empty());
  EXPECT_TRUE(es::kvm::describe_kvm_config(R"({"import": {"file": "t.dat"}})").empty());
}

// The writer (nlohmann-json) stores the same text, key for key, separator for separator; only a
// double is written shortest ("1.0", not "1.000000"). Read back, it gives the same lines.
TEST(KvmConfig, WrittenAsRecordingsOnDiskHaveIt) {
  es::kvm::KvmStoredConfig c;
  c.kernel = "6.1.0-18-amd64";
  c.events = {{"kvm_exit", "tp", "btf_trace_kvm_exit(struct kvm_vcpu *, u32)", "", {}},
              {"kvm_pio", "tp_btf", "", "no tracefs format", {"guest_rip", "a ] in \"quotes\""}}};
  c.refused = {"kvm_eoi: not on this kernel"};
  c.ring_bytes = 4194304;
  c.ring_slots = 65536;
  c.ring_cpus = 2;
  c.duration_s = 1;
  c.buffer_bytes = 1073741824;
  c.scheduling = "decoding at idle priority, up to 2000 ms behind; raised 0 time(s)";
  c.drops_per_cpu = std::vector<uint64_t>{0, 3};
  c.buffer_drops = 5;
  c.linked = true;
  c.vendor = "VMX";
  c.era = "6.x";
  c.assumptions = {"x"};
  c.vcpu_map = {"vCPU 0 = pid 7001 vCPU 0"};
  std::string want = kFinished;
  want.replace(want.find("1.000000"), 8, "1.0");
  const std::string text = es::kvm::to_json(c);
  EXPECT_EQ(text, want);
  EXPECT_EQ(es::kvm::describe_kvm_config(text), es::kvm::describe_kvm_config(kFinished));
}

// A damaged KVM configuration (a recording someone sent) is said in one line, never a crash.
TEST(KvmConfig, DamagedJsonIsOneLine) {
  EXPECT_EQ(es::kvm::describe_kvm_config(R"({"kvm": {"kernel": "\)"),
            std::vector<std::string>{"configuration unreadable (its JSON is damaged)"});
  const auto odd = es::kvm::describe_kvm_config(R"({"kvm": {"drops_per_cpu": [-1, "x"], "ring_bytes": "big"}})");
  ASSERT_FALSE(odd.empty());
  EXPECT_EQ(odd[0], "kernel ");
}

}  // namespace
