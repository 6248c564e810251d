#include "session/hv_session.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>

#include "exitscope/record.h"
#include "hv/vmm/machine.h"
#include "hv/vmm/policy.h"
#include "hv/vmm/scenarios.h"
#include "exitscope/probe_bus.h"
#include "probes/recorder/recorder.h"
#include "replay/chain_steps.h"
#include "replay/check/live_checker.h"

namespace es::session {

namespace {

// Known hypervisor bugs the model can reproduce, each from a seed thread or an issue; the nested
// ones live in L0's nested VMX, the others in every level's hypervisor.
struct Bug {
  const char* name;
  bool hv::VmmConfig::*flag;
  bool nested_only;
};
constexpr Bug kBugs[] = {{"exit-with-vectoring", &hv::VmmConfig::bug_exit_with_vectoring, true},
                         {"async-pf-into-l2", &hv::VmmConfig::bug_async_pf_into_l2, true},
                         {"ignore-nmi-unblocking", &hv::VmmConfig::bug_ignore_nmi_unblocking, false}};

const Bug* find_bug(const std::string& name) {
  for (const Bug& b : kBugs)
    if (name == b.name) return &b;
  return nullptr;
}

hv::Machine* g_running = nullptr;
extern "C" void on_stop_signal(int) {
  if (g_running) g_running->request_stop();
}

// Ctrl-C / SIGTERM stop the run from the moment the machine exists, before the recording is
// even opened (a signal then makes run() end at once, "stopped", with the recording finished;
// before, a Ctrl-C between the session row and the run killed the process, exit 130, as
// reliability.Stops.SigintStopsAGuestThatNeverExits caught under load); the previous handlers
// come back after the run, or however the session ends.
class StopSignals {
 public:
  StopSignals() = default;
  ~StopSignals() { restore(); }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  void install(hv::Machine& m) {
    g_running = &m;
    old_int_ = std::signal(SIGINT, on_stop_signal);
    old_term_ = std::signal(SIGTERM, on_stop_signal);
    installed_ = true;
  }
  // After the run: a signal during the recording's finish ends the process as before.
  void restore() {
    if (!installed_) return;
    std::signal(SIGINT, old_int_);
    std::signal(SIGTERM, old_term_);
    g_running = nullptr;
    installed_ = false;
  }

 private:
  void (*old_int_)(int) = SIG_DFL;
  void (*old_term_)(int) = SIG_DFL;
  bool installed_ = false;
};

// The guest's L0 and (nested) L1 configurations for `r`; `r` already checked.
struct Configs {
  hv::VmmConfig l0;
  std::optional<hv::VmmConfig> l1;
};
Configs make_configs(const HvRequest& r, const hv::Scenario* sc) {
  Configs c;
  if (sc) {
    c.l0 = sc->config;
    c.l1 = sc->l1;
  } else if (r.nested) {
    c.l1 = hv::VmmConfig{};
  }
  hv::VmmConfig& guest_hv = c.l1 ? *c.l1 : c.l0;
  if (!r.policy.empty()) {
    c.l0.policy = r.policy;
    if (c.l1) c.l1->policy = r.policy;
  }
  if (r.max_exits) guest_hv.max_exits = *r.max_exits;
  if (r.max_insns) guest_hv.max_insns = *r.max_insns;
  if (r.guest_arg) guest_hv.guest_arg = *r.guest_arg;
  c.l0.max_insns = guest_hv.max_insns;
  if (r.eager_ept) c.l0.eager_ept = true;
  guest_hv.exception_bitmap |= r.intercept;
  if (const Bug* b = r.bug.empty() ? nullptr : find_bug(r.bug)) {
    c.l0.*(b->flag) = true;
    if (!b->nested_only && c.l1) (*c.l1).*(b->flag) = true;
  }
  return c;
}

Result<std::vector<uint8_t>> read_guest(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return Error{"cannot read guest file '" + path + "': " + std::strerror(errno) + "; check the path."};
  const std::streamoff size = f.tellg();
  std::vector<uint8_t> image(size > 0 ? static_cast<size_t>(size) : 0);
  f.seekg(0);
  if (size > 0 && !f.read(reinterpret_cast<char*>(image.data()), size))
    return Error{"cannot read guest file '" + path + "'; is it a regular file?"};
  return image;
}

}  // namespace

std::string hv_bug_names() {
  std::string names;
  for (const Bug& b : kBugs) names += (names.empty() ? "" : ", ") + std::string(b.name);
  return names;
}

Result<HvStoredConfig> check_hv_request(const HvRequest& r) {
  if (!r.scenario.empty() && !r.guest_path.empty()) return Error{"give either --scenario or --guest, not both"};
  if (r.scenario.empty() && r.guest_path.empty()) return Error{"missing --scenario NAME or --guest FILE"};
  const hv::Scenario* sc = nullptr;
  if (!r.scenario.empty()) {
    sc = hv::find_scenario(r.scenario);
    if (!sc) return Error{"unknown scenario '" + r.scenario + "' (list them with 'exitscope scenarios')"};
    if (r.nested) return Error{"--nested is for --guest FILE; scenarios choose their own nesting"};
  }
  if (!r.policy.empty() && !hv::make_policy(r.policy)) {
    std::string names;
    for (auto& pol : hv::all_policies()) names += (names.empty() ? "" : ", ") + std::string(pol->name());
    return Error{"unknown policy '" + r.policy + "' (known: " + names + ")"};
  }
  const bool nested = sc ? sc->l1.has_value() : r.nested;
  if (!r.bug.empty()) {
    const Bug* b = find_bug(r.bug);
    if (!b) return Error{"unknown --bug '" + r.bug + "' (known: " + hv_bug_names() + ")"};
    if (b->nested_only && !nested) return Error{"--bug " + r.bug + " needs a nested run (L2 under L1)"};
  }
  const Configs c = make_configs(r, sc);
  const hv::VmmConfig& guest_hv = c.l1 ? *c.l1 : c.l0;
  return HvStoredConfig{.max_exits = guest_hv.max_exits,
                        .max_insns = guest_hv.max_insns,
                        .guest_arg = guest_hv.guest_arg,
                        .eager_ept = c.l0.eager_ept,
                        .exception_bitmap = guest_hv.exception_bitmap,
                        .nested = c.l1.has_value(),
                        .bug = r.bug};
}

// Declared in the order they are built; destroyed in reverse: the checker's host unloads it
// before the checker goes, the recorder closes before your plugins' host, and the machine and
// its bus outlive everything attached to them.
struct HvSession::Parts {
  HvStoredConfig config;
  std::string what;
  std::string output;
  probes::ProbeBus bus;
  std::unique_ptr<hv::Machine> vmm;
  StopSignals stop_signals;
  std::unique_ptr<probes::PluginHost> user_plugins;
  std::unique_ptr<recorder::Recorder> rec;
  std::unique_ptr<check::LiveChecker> checker;
  std::unique_ptr<probes::PluginHost> plugins;  // the checker's host
  bool ran = false;
  bool unloaded = false;
};

HvSession::HvSession(std::unique_ptr<Parts> parts) : p_(std::move(parts)) {}
// Parts go in reverse order; your plugins' host unloads them (at-exit callbacks) if the caller
// did not.
HvSession::~HvSession() = default;

Result<std::unique_ptr<HvSession>> HvSession::open(const HvRequest& r) {
  auto config = check_hv_request(r);
  if (!config) return Error{config.error()};
  auto p = std::make_unique<Parts>();
  p->config = *config;
  p->output = r.output;
  const hv::Scenario* sc = r.scenario.empty() ? nullptr : hv::find_scenario(r.scenario);
  std::vector<uint8_t> image;
  recorder::SessionStart info;
  if (sc) {
    image.assign(sc->guest.begin(), sc->guest.end());
    info.scenario = std::string(sc->name);
    info.guest_path = "builtin:" + std::string(sc->name);
    p->what = r.scenario;
  } else {
    auto read = read_guest(r.guest_path);
    if (!read) return Error{read.error()};
    image = std::move(*read);
    info.guest_path = r.guest_path;
    p->what = r.guest_path;
  }
  info.guest_hash = "sha256:" + recorder::sha256_hex(image.data(), image.size());
  const Configs c = make_configs(r, sc);
  info.source = recorder::Source::Hv;
  info.policy = c.l0.policy;
  info.command_line = r.command_line;
  info.config_json = to_json(p->config);

  p->vmm = std::make_unique<hv::Machine>(p->bus, c.l0, c.l1);
  std::string error;
  if (!p->vmm->load(image, error)) return Error{"cannot load guest '" + info.guest_path + "': " + error + "."};
  hv::Machine& vmm = *p->vmm;
  if (r.stop_on_signals) p->stop_signals.install(vmm);
  // Your plugins load before the recording exists: one that cannot load stops the session with
  // nothing recorded. Subscribed before the recorder, they see each record first; one that
  // crashes is switched off and the run stopped, the record it crashed on still recorded.
  p->user_plugins = std::make_unique<probes::PluginHost>(p->bus);
  if (auto l = p->user_plugins->load_all(r.plugins); !l) return Error{l.error()};
  p->user_plugins->set_crash_note("; the run is stopped there and the recording closed with everything before it");
  p->user_plugins->set_on_crash([&vmm] { vmm.request_stop(); });
  auto rec = recorder::Recorder::open(r.output, info, r.force, {.steps = replay::chain_steps()});
  if (!rec) return Error{rec.error()};
  p->rec = std::move(*rec);
  p->rec->attach(p->bus);
  p->rec->set_on_write_error([&vmm] { vmm.request_stop(); });  // disk full: stop, keep what is committed
  // The invariant checker runs live as a built-in plugin; its violations land in the recording
  // as ES_KIND_VIOLATION records (replay/check/live_checker.h).
  p->checker = std::make_unique<check::LiveChecker>(p->bus);
  p->plugins = std::make_unique<probes::PluginHost>(p->bus);
  if (r.check)
    if (auto i = p->checker->install(*p->plugins); !i) return Error{i.error()};
  return std::unique_ptr<HvSession>(new HvSession(std::move(p)));
}

const HvStoredConfig& HvSession::config() const { return p_->config; }
const std::string& HvSession::what() const { return p_->what; }
void HvSession::request_stop() { p_->vmm->request_stop(); }

Result<HvResult> HvSession::run() {
  if (p_->ran) return Error{"this session has already run"};
  p_->ran = true;
  hv::Machine& vmm = *p_->vmm;
  const hv::RunResult r = vmm.run();
  p_->stop_signals.restore();
  p_->checker->finish();  // end-of-run rules (event-lost) emit before the recorder finishes
  // The session stores the reason code and, when there is more to say, one sentence.
  recorder::RunEnd end{r.end_reason, r.message, 0};
  const auto crash = p_->user_plugins->crash();
  if (crash) end = {ES_END_STOPPED, crash->describe() + "; the run was stopped there", 0};
  if (auto fin = p_->rec->finish(end); !fin) return Error{fin.error()};
  HvResult out;
  out.end_reason = end.end_reason;
  out.end_detail = end.detail;
  out.plugin_crashed = crash.has_value();
  if (r.end_reason == ES_END_GUEST_EXIT && !crash) out.guest_exit_code = r.guest_exit_code;
  out.events = p_->rec->stats().written;
  // "VM exits" means what 'exitscope info' counts under that name: every VM_EXIT record, an exit
  // of the guest to L0 (the silicon's exits). Nested, L1 handles only those L0 reflects
  // (NESTED_EXIT records, r.exits there): kept apart, so the two numbers never disagree
  // unlabelled (issue #20 item 9).
  out.vm_exits = vmm.top().silicon_exits();
  if (vmm.nested()) out.reflected_to_l1 = r.exits;
  out.insns = r.insns;
  out.simulated_ns = r.end_time_ns;
  out.console = r.console;
  out.violations = p_->checker->violation_count();
  out.output = p_->output;
  return out;
}

bool HvSession::unload_plugins() {
  if (!p_->unloaded) {
    p_->user_plugins->unload_all();
    p_->unloaded = true;
  }
  return p_->user_plugins->crash().has_value();
}

}  // namespace es::session
