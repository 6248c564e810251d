// One recording of the built-in VT-x core (hv/): a built-in scenario or your own guest image,
// alone under L0 or nested as L2 under an L1 hypervisor. It wires the machine, your plugins,
// the recorder with replay's chain steps and the live invariant checker, and hands back what
// happened as values; it prints nothing and chooses no exit code (the CLI does, replay/cli).
//
//   auto config = es::session::check_hv_request(request);     // a bad setting: one sentence
//   auto s = es::session::HvSession::open(request);            // guest loaded, recording created
//   ... say "recording ..." ...
//   auto result = (*s)->run();                                 // the recording is complete
//   ... print result ...
//   bool crashed = (*s)->unload_plugins();                     // your plugins' at-exit output
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "probes/bus/plugin_host.h"
#include "schema/result.h"
#include "session/config.h"

namespace es::session {

struct HvRequest {
  std::string scenario;    // a built-in scenario (hv/vmm/scenarios.h), or
  std::string guest_path;  // your own guest: a flat binary or an ELF64 (hv/guests/README.md)
  bool nested = false;     // guest_path as L2 under an L1 hypervisor (scenarios choose their own)
  std::string policy;      // reinjection policy of every level; "" keeps the scenario's
  // The guest's own hypervisor (L1 when nested) takes the limits, the argument and the intercepts.
  std::optional<uint64_t> max_exits, max_insns, guest_arg;
  bool eager_ept = false;                   // L0 maps all guest RAM in EPT up front
  uint32_t intercept = 0;                   // exception vectors added to the guest's hypervisor's bitmap
  std::string bug;                          // a known bug to reproduce (hv_bug_names()), "" for none
  bool check = true;                        // run the invariant checker live (replay/check/live_checker.h)
  bool stop_on_signals = true;              // SIGINT / SIGTERM stop the run (the recording is kept)
  std::vector<probes::PluginSpec> plugins;  // loaded in order before the recording exists
  std::string output;                       // the recording to write
  bool force = false;                       // replace `output` if it exists
  std::string command_line;                 // for the session row
};

// "exit-with-vectoring, async-pf-into-l2, ignore-nmi-unblocking": the bugs `bug` may name.
std::string hv_bug_names();

// The settings a recording of `request` stores in its session row, or one sentence naming the
// setting that is wrong (unknown scenario or policy, a nested-only bug on a run that is not
// nested, --nested with a scenario, neither or both of scenario and guest_path).
Result<HvStoredConfig> check_hv_request(const HvRequest& request);

struct HvResult {
  uint32_t end_reason = 0;  // ES_END_* as stored in the session (STOPPED when a plugin crashed)
  std::string end_detail;   // the sentence stored beside it, "" if none
  bool plugin_crashed = false;
  std::optional<uint32_t> guest_exit_code;  // the guest's port 0xF4 byte, when it ended the run
  uint64_t events = 0;                      // rows written to the events table
  uint64_t vm_exits = 0;                    // VM_EXIT records: exits of the guest to L0 (the silicon's)
  std::optional<uint64_t> reflected_to_l1;  // nested: exits L0 reflected to L1 (NESTED_EXIT records)
  uint64_t insns = 0;                       // guest instructions executed
  uint64_t simulated_ns = 0;                // the model's clock at the end
  std::string console;                      // what the guest wrote to its serial port
  size_t violations = 0;                    // invariant checker violations (0 without the checker)
  std::string output;                       // the recording
};

class HvSession {
 public:
  // Checks the request, reads and loads the guest, loads your plugins, creates the recording
  // and installs the checker. Error (one sentence): the request's, a guest that cannot be read
  // or loaded, a plugin that cannot load, a recording that cannot be created; nothing recorded.
  static Result<std::unique_ptr<HvSession>> open(const HvRequest& request);
  ~HvSession();
  HvSession(const HvSession&) = delete;
  HvSession& operator=(const HvSession&) = delete;

  // The stored configuration and the scenario name or guest path being recorded.
  const HvStoredConfig& config() const;
  const std::string& what() const;

  // Runs the guest to its end and completes the recording. Error: the recording could not be
  // finished (everything committed before stays readable). Call once.
  Result<HvResult> run();
  // Thread-safe: ends the run as soon as possible (end reason STOPPED).
  void request_stop();
  // Unloads your plugins (their at-exit callbacks run now, after the recording is complete).
  // True if one of them crashed during the run or at unload.
  bool unload_plugins();

 private:
  struct Parts;
  explicit HvSession(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> p_;
};

}  // namespace es::session
