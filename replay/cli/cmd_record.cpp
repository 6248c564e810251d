// `exitscope record` and `exitscope scenarios`: run a guest on the built-in VT-x core and
// record it (built only with the hypervisor, ES_HAVE_HV; otherwise they say so), or record a
// real KVM host with eBPF (`record --kvm`, probes/kvm/kvm_record.h; built with ES_HAVE_KVM).
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "probes/bus/plugin_host.h"
#include "replay/chain_steps.h"
#include "replay/cli/args.h"
#include "replay/cli/commands.h"
#include "replay/cli/output.h"
#include "replay/cli/startup.h"

#ifdef ES_HAVE_KVM
#include "probes/kvm/kvm_record.h"
#include "probes/recorder/session_info.h"
#endif

#ifdef ES_HAVE_HV
#include "hv/vmm/machine.h"
#include "hv/vmm/policy.h"
#include "hv/vmm/scenarios.h"
#include "probes/recorder/recorder.h"
#include "replay/check/live_checker.h"
#endif

namespace {

constexpr std::string_view kRecord = "record";
constexpr es::cli::OptionSpec kRecordOptions[] = {
    {"scenario", "NAME", "run a built-in scenario (see 'exitscope scenarios')"},
    {"guest", "FILE", "run your own guest: flat binary or ELF64 (hv/guests/README.md)"},
    {"output", "DB", "the recording to write (also -o DB)"},
    {"force", "", "replace DB if it exists"},
    {"policy", "NAME", "reinjection policy: default | drop-hw-exceptions"},
    {"max-exits", "N", "stop after N VM exits (nested: N exits reflected to L1)"},
    {"max-insns", "N", "stop after N guest instructions (default 200000000; 0 = no limit, Ctrl-C stops)"},
    {"arg", "N", "value the guest finds in RDI (scenario default otherwise)"},
    {"eager-ept", "", "map all guest RAM in EPT up front (no lazy EPT violations)"},
    {"intercept", "VECTORS", "extra exceptions the guest's hypervisor intercepts, e.g. 14 or 6,14"},
    {"nested", "", "run --guest FILE as L2 under an L1 hypervisor (the same vmm on L0's emulated VMX)"},
    {"bug", "NAME",
     "reproduce a known bug: exit-with-vectoring, async-pf-into-l2 (nested runs), "
     "ignore-nmi-unblocking (every level)"},
    {"no-check", "", "do not run the invariant checker live (see 'exitscope check')"},
    {"quiet", "", "do not print the guest console or the summary"},
    {"exit-code", "",
     "exit with the guest's exit code (its port 0xF4 byte), so a guest can be a test; "
     "125 if the run ended without one (limit, triple fault, halt, internal error)"},
    {"plugin", "PATH[:K=V,..]",
     "load a plugin built against exitscope/plugin.h (repeatable, also with --kvm); "
     "K=V options reach it as its arguments, e.g. es_exit_counts.so:out=exits.csv"},
    {"kvm", "", "record a real KVM host with eBPF instead (root; see below)"},
    {"pid", "PID", "--kvm: only the VMM process PID (default: every process, or the command)"},
    {"vcpu", "N", "--kvm: only vCPU N"},
    {"duration", "SECONDS", "--kvm: stop after SECONDS (default: Ctrl-C, or when the command exits)"},
    {"events", "LIST", "--kvm: tracepoints, comma-separated (kvm_exit,kvm_entry,... or exit,entry,...; default all)"},
    {"attach", "HOW",
     "--kvm: auto (default: tp where tracefs has a known format, else tp_btf where the BTF "
     "prototype is known) | tp (classic tracepoints only) | tp_btf (BTF raw tracepoints only)"},
    {"buffer-size", "MiB", "--kvm: memory for events not yet decoded and written (default 1024)"},
    {"max-lag", "SECONDS",
     "--kvm: decode and write at idle CPU priority while at most SECONDS behind, so the "
     "traced guests keep their CPUs (default 2; 0: at normal priority)"},
    {"stats", "",
     "--kvm: a table of VM exits by reason (count, rate per second, mean exit-to-entry time) and of "
     "the other KVM events, redrawn every second on a terminal like kvm_stat; the whole session's "
     "table at the end"},
};
// Not in --help: a one-page ring and a slow consumer, so a test can force ring-buffer drops.
constexpr es::cli::OptionSpec kRecordHiddenOptions[] = {
    {"test-overflow", "", "testing: 32-event rings, slow consumer"},
    {"test-slow-pipeline", "", "testing: the decoding thread sleeps 100 ms per chunk"},
};

constexpr std::string_view kScenarios = "scenarios";
constexpr es::cli::OptionSpec kScenarioOptions[] = {
    {"names", "", "print only the names"},
};

[[maybe_unused]] bool parse_u64(const std::string& s, uint64_t& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 0);
  if (errno != 0 || *end != '\0' || s[0] == '-') return false;
  out = v;
  return true;
}

#ifdef ES_HAVE_HV
es::hv::Machine* g_running = nullptr;
extern "C" void on_stop_signal(int) {
  if (g_running) g_running->request_stop();
}

// Ctrl-C / SIGTERM stop the run from the moment the machine exists, before the recording is
// even opened (a signal then makes run() end at once, "stopped", with the recording finished;
// before, a Ctrl-C between the session row and the run killed the process, exit 130, as
// reliability.Stops.SigintStopsAGuestThatNeverExits caught under load); the previous handlers
// come back after the run, or however the command returns.
struct StopSignals {
  explicit StopSignals(es::hv::Machine& m) {
    g_running = &m;
    old_int = std::signal(SIGINT, on_stop_signal);
    old_term = std::signal(SIGTERM, on_stop_signal);
  }
  ~StopSignals() { restore(); }
  // After the run: a signal during the recording's finish ends the process as before.
  void restore() {
    if (!g_running) return;
    std::signal(SIGINT, old_int);
    std::signal(SIGTERM, old_term);
    g_running = nullptr;
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  void (*old_int)(int) = SIG_DFL;
  void (*old_term)(int) = SIG_DFL;
};

const char* end_reason_text(uint32_t r) {
  switch (r) {
    case ES_END_GUEST_EXIT: return "guest exit";
    case ES_END_LIMIT: return "limit reached";
    case ES_END_TRIPLE_FAULT: return "triple fault";
    case ES_END_INTERNAL_ERROR: return "internal error";
    case ES_END_STOPPED: return "stopped by signal";
    case ES_END_HALTED: return "guest halted for good";
    default: return "?";
  }
}
#endif

}  // namespace

namespace {

#ifdef ES_HAVE_KVM
// `record --kvm`: the options that apply, checked here; the recording is probes/kvm's.
int record_kvm_command(const es::cli::Args& args, const std::vector<std::string>& command,
                       const std::vector<es::probes::PluginSpec>& plugins, int argc, char** argv) {
  using namespace es::cli;
  for (const char* hv_only : {"scenario", "guest", "policy", "max-exits", "max-insns", "arg", "eager-ept", "intercept",
                              "nested", "bug", "no-check", "exit-code"})
    if (args.has(hv_only))
      return usage_error(kRecord, std::string("--") + hv_only + " is for the built-in hypervisor, not --kvm");
  if (!args.positional.empty())
    return usage_error(kRecord, "unexpected argument '" + args.positional[0] + "' (put a command after '--')");
  es::kvm::RecordOptions o;
  const auto output = args.get("output");
  if (!output || output->empty()) return usage_error(kRecord, "missing -o DB (the recording to write)");
  o.output = *output;
  o.force = args.has("force");
  o.quiet = args.has("quiet");
  o.stats = args.has("stats");
  o.test_overflow = args.has("test-overflow");
  o.test_slow_pipeline = args.has("test-slow-pipeline");
  o.command = command;
  uint64_t v = 0;
  if (auto p = args.get("pid")) {
    if (!parse_u64(*p, v) || v == 0 || v > 0x7FFFFFFF)
      return usage_error(kRecord, "--pid needs a process id, not '" + *p + "'");
    if (!command.empty()) return usage_error(kRecord, "give either --pid or a command after '--', not both");
    if (::kill(static_cast<pid_t>(v), 0) != 0 && errno == ESRCH)
      return usage_error(kRecord, "--pid " + *p + ": no such process");
    o.pid = static_cast<int64_t>(v);
  }
  if (auto p = args.get("vcpu")) {
    if (!parse_u64(*p, v) || v > 0xFFFF)
      return usage_error(kRecord, "--vcpu needs a vCPU number 0..65535, not '" + *p + "'");
    o.vcpu = static_cast<int32_t>(v);
  }
  if (auto p = args.get("duration")) {
    char* end = nullptr;
    const double d = std::strtod(p->c_str(), &end);
    if (p->empty() || *end != '\0' || !(d > 0) || d > 1e7)
      return usage_error(kRecord, "--duration needs a positive number of seconds, not '" + *p + "'");
    o.duration_s = d;
  }
  if (auto p = args.get("buffer-size")) {
    if (!parse_u64(*p, v) || v < 1 || v > (1u << 20))
      return usage_error(kRecord, "--buffer-size needs a size in MiB, 1..1048576, not '" + *p + "'");
    o.buffer_bytes = v << 20;
  }
  if (auto p = args.get("max-lag")) {
    char* end = nullptr;
    const double d = std::strtod(p->c_str(), &end);
    if (p->empty() || *end != '\0' || !(d >= 0) || d > 1e6)
      return usage_error(kRecord, "--max-lag needs a number of seconds (0 or more), not '" + *p + "'");
    o.max_lag_s = d;
  }
  if (auto p = args.get("attach")) {
    if (*p != "auto" && *p != "tp" && *p != "tp_btf")
      return usage_error(kRecord, "--attach takes auto, tp or tp_btf, not '" + *p + "'");
    o.attach = *p;
  }
  if (auto p = args.get("events")) {
    size_t pos = 0;
    while (pos <= p->size()) {
      const size_t comma = std::min(p->find(',', pos), p->size());
      const std::string name = p->substr(pos, comma - pos);
      if (name.empty())
        return usage_error(kRecord, "--events takes tracepoint names separated by commas, not '" + *p + "'");
      if (es::kvm::parse_event_name(name) < 0)
        return usage_error(kRecord,
                           "--events: unknown tracepoint '" + name + "' (kvm_exit, kvm_entry, kvm_inj_virq, ...)");
      o.events.push_back(name);
      pos = comma + 1;
    }
  }
  o.plugins = plugins;
  o.steps = es::replay::chain_steps();
  o.command_line = es::recorder::join_command_line(argc, argv);
  return es::kvm::record_kvm(o);
}
#endif

}  // namespace

int cmd_record(int argc, char** argv) {
  using namespace es::cli;
  // Everything after "--" is the command to run (--kvm).
  std::vector<char*> av;
  std::vector<std::string> command;
  bool after_dashes = false;
  for (int i = 0; i < argc; ++i) {
    if (after_dashes)
      command.emplace_back(argv[i]);
    else if (i > 0 && std::strcmp(argv[i], "--") == 0)
      after_dashes = true;
    else
      av.push_back(argv[i]);
  }
  // --plugin may be given several times: taken out before the one-value-per-name parser.
  auto plugin_values = es::probes::take_plugin_options(av);
  if (!plugin_values) return usage_error(kRecord, plugin_values.error());
  std::vector<es::probes::PluginSpec> plugin_specs;
  for (const std::string& v : *plugin_values) {
    auto spec = es::probes::parse_plugin_spec(v);
    if (!spec) return usage_error(kRecord, spec.error());
    plugin_specs.push_back(std::move(*spec));
  }
  const CommandSpec kSpec{kRecord,
                          "(--scenario NAME | --guest FILE) -o DB [--plugin PATH[:K=V,...]]... [options]\n"
                          "       exitscope record --kvm -o DB [--pid PID] [--vcpu N] [--duration S] [--events LIST]\n"
                          "                                  [--attach auto|tp|tp_btf] [-- CMD ARGS...]",
                          "Run a guest on the built-in software VT-x core under the L0 hypervisor (or as L2\n"
                          "under an L1 hypervisor on L0's emulated VMX) and record\n"
                          "every VM exit, IDT-vectoring record, injection decision and delivery into DB.\n"
                          "The run ends when the guest writes its exit code to port 0xF4, at a limit, on a\n"
                          "triple fault, or on Ctrl-C (everything recorded so far is kept). The summary and\n"
                          "'exitscope info' show the guest's exit code; with --exit-code this command exits\n"
                          "with it (125 if the guest never wrote one), so a guest that checks itself is a test.\n"
                          "Otherwise it exits 0, or 1 if the model could not finish the run.\n"
                          "\n"
                          "With --kvm, record a real KVM host instead: eBPF programs on the kernel's kvm\n"
                          "tracepoints (kvm_exit, kvm_entry, kvm_inj_virq, kvm_inj_exception, kvm_nested_*,\n"
                          "kvm_page_fault, kvm_emulate_insn, kvm_pio, kvm_mmio, kvm_msr, kvm_userspace_exit,\n"
                          "kvm_apic_accept_irq, kvm_eoi), decoded at the offsets of the running kernel's\n"
                          "tracefs formats and linked into chains (an event tracefs cannot give goes through\n"
                          "tp_btf where the kernel's BTF prototype is one exitscope knows; see --attach).\n"
                          "Needs root (run with sudo: privileges drop once attached and DB belongs to you).\n"
                          "Give a command after '--' to run it (as you) and record it and the processes it\n"
                          "starts (sh -c \"qemu ...\" works) until it exits, like 'perf kvm record'.\n"
                          "Stops on Ctrl-C / SIGTERM or --duration; ring-buffer drops are\n"
                          "counted per CPU and stored in DB. Events are decoded and written at idle CPU\n"
                          "priority while that stays within --max-lag, so the guests keep their CPUs; what is\n"
                          "buffered is written before it exits.\n"
                          "\n"
                          "--plugin loads your own plugin (a shared object built against\n"
                          "probes/include/exitscope/plugin.h; README 'Writing a plugin'), in the order given,\n"
                          "before DB is created: one that cannot be loaded or refuses its options stops the\n"
                          "command with nothing recorded. Its record callbacks see every record as it is made\n"
                          "(with --kvm, as it is decoded). A plugin that crashes is named, switched off, the\n"
                          "run is stopped and DB is closed with everything recorded before (end reason\n"
                          "STOPPED, the crash as its detail; exit code 1).",
                          kRecordOptions,
                          {0, SIZE_MAX, "", ""},  // none: checked below, each mode with its own sentence
                          /*short_output=*/true,
                          kRecordHiddenOptions};
  auto args = start_command(kSpec, static_cast<int>(av.size()), av.data());
  if (!args) return args.exit_code;
  if (args->has("kvm")) {
#ifdef ES_HAVE_KVM
    return record_kvm_command(*args, command, plugin_specs, argc, argv);
#else
    std::fprintf(stderr, "exitscope record: this build has no KVM recorder (libbpf, clang or bpftool were missing).\n");
    return 2;
#endif
  }
  if (!command.empty()) return usage_error(kRecord, "a command after '--' is for --kvm");
  for (const char* kvm_only : {"pid", "vcpu", "duration", "events", "attach", "buffer-size", "max-lag", "test-overflow",
                               "test-slow-pipeline", "stats"})
    if (args->has(kvm_only)) return usage_error(kRecord, std::string("--") + kvm_only + " is for --kvm");
#ifndef ES_HAVE_HV
  std::fprintf(stderr, "exitscope record: this build has no hypervisor core (hv/cpu missing).\n");
  return 2;
#else
  if (!args->positional.empty()) return usage_error(kRecord, "unexpected argument '" + args->positional[0] + "'");
  const auto scenario_name = args->get("scenario");
  const auto guest_path = args->get("guest");
  if (scenario_name && guest_path) return usage_error(kRecord, "give either --scenario or --guest, not both");
  if (!scenario_name && !guest_path) return usage_error(kRecord, "missing --scenario NAME or --guest FILE");
  const auto output = args->get("output");
  if (!output || output->empty()) return usage_error(kRecord, "missing -o DB (the recording to write)");
  if (auto plan =
          plan_output(*output, guest_path ? std::vector{*guest_path} : std::vector<std::string>{}, true, "guest file");
      !plan) {
    std::fprintf(stderr, "exitscope record: %s\n", plan.error().c_str());
    return 2;
  }

  es::hv::VmmConfig l0_cfg;
  std::optional<es::hv::VmmConfig> l1_cfg;
  std::vector<uint8_t> image;
  es::recorder::SessionInfo info;
  if (scenario_name) {
    const es::hv::Scenario* sc = es::hv::find_scenario(*scenario_name);
    if (!sc) {
      // "nested_irq_vectoring" for "nested-irq-vectoring": the names use dashes.
      std::vector<std::string_view> names;
      for (const auto& s : es::hv::scenarios()) names.push_back(s.name);
      std::string dashed = *scenario_name;
      std::replace(dashed.begin(), dashed.end(), '_', '-');
      const std::string near = es::cli::closest_name(dashed, names);
      return usage_error(kRecord, "unknown scenario '" + *scenario_name + "'" +
                                      (near.empty() ? std::string() : " (did you mean '" + near + "'?)") +
                                      " (list them with 'exitscope scenarios')");
    }
    l0_cfg = sc->config;
    l1_cfg = sc->l1;
    image.assign(sc->guest.begin(), sc->guest.end());
    info.scenario = std::string(sc->name);
    info.guest_path = "builtin:" + std::string(sc->name);
    info.guest_hash = "sha256:" + es::recorder::sha256_hex(image.data(), image.size());
  } else {
    // Type and size before opening (issue #17): a FIFO blocks the open, a directory or a huge
    // file would be read into memory. Guest RAM is 16 MiB (hv/guests/README.md); 256 MiB leaves
    // room for an ELF's symbols and debug sections.
    constexpr uint64_t kMaxGuestFile = 256ull << 20;
    if (auto checked = check_input_file(*guest_path, "guest file", kMaxGuestFile); !checked) {
      std::fprintf(stderr, "exitscope record: %s\n", checked.error().c_str());
      return 2;
    }
    std::ifstream f(*guest_path, std::ios::binary | std::ios::ate);
    if (!f) {
      std::fprintf(stderr, "exitscope record: cannot read guest file '%s': %s; check the path.\n", guest_path->c_str(),
                   std::strerror(errno));
      return 2;
    }
    const std::streamoff size = f.tellg();
    image.resize(size > 0 ? static_cast<size_t>(size) : 0);
    f.seekg(0);
    if (size > 0 && !f.read(reinterpret_cast<char*>(image.data()), size)) {
      std::fprintf(stderr, "exitscope record: cannot read guest file '%s'; is it a regular file?\n",
                   guest_path->c_str());
      return 2;
    }
    info.guest_path = *guest_path;
    info.guest_hash = "sha256:" + es::recorder::sha256_hex(image.data(), image.size());
    if (args->has("nested")) l1_cfg = es::hv::VmmConfig{};
  }
  if (scenario_name && args->has("nested"))
    return usage_error(kRecord, "--nested is for --guest FILE; scenarios choose their own nesting");
  // The guest's own hypervisor (L1 when nested) takes the limits, its argument and its
  // intercepts; the policy applies to every level.
  es::hv::VmmConfig& cfg = l1_cfg ? *l1_cfg : l0_cfg;
  if (auto p = args->get("policy")) {
    if (!es::hv::make_policy(*p)) {
      std::string names;
      for (auto& pol : es::hv::all_policies()) names += (names.empty() ? "" : ", ") + std::string(pol->name());
      return usage_error(kRecord, "unknown policy '" + *p + "' (known: " + names + ")");
    }
    l0_cfg.policy = *p;
    if (l1_cfg) l1_cfg->policy = *p;
  }
  struct NumOpt {
    const char* name;
    uint64_t* dst;
  } nums[] = {{"max-exits", &cfg.max_exits}, {"max-insns", &cfg.max_insns}, {"arg", &cfg.guest_arg}};
  for (auto& n : nums)
    if (auto v = args->get(n.name))
      if (!parse_u64(*v, *n.dst))
        return usage_error(kRecord, std::string("--") + n.name + " needs a non-negative number, not '" + *v + "'");
  l0_cfg.max_insns = cfg.max_insns;
  if (args->has("eager-ept")) l0_cfg.eager_ept = true;
  if (auto v = args->get("intercept")) {
    std::string list = *v;
    size_t pos = 0;
    while (pos <= list.size()) {
      const size_t comma = std::min(list.find(',', pos), list.size());
      uint64_t vec = 0;
      if (!parse_u64(list.substr(pos, comma - pos), vec) || vec > 31)
        return usage_error(kRecord,
                           "--intercept takes exception vectors 0..31 separated by commas, not '" + list + "'");
      cfg.exception_bitmap |= 1u << vec;
      pos = comma + 1;
    }
  }
  if (auto b = args->get("bug")) {
    // Known hypervisor bugs the model can reproduce, each from a seed thread or an issue; the
    // nested ones live in L0's nested VMX, the others in every level's hypervisor.
    struct Bug {
      const char* name;
      bool es::hv::VmmConfig::*flag;
      bool nested_only;
    } const kBugs[] = {{"exit-with-vectoring", &es::hv::VmmConfig::bug_exit_with_vectoring, true},
                       {"async-pf-into-l2", &es::hv::VmmConfig::bug_async_pf_into_l2, true},
                       {"ignore-nmi-unblocking", &es::hv::VmmConfig::bug_ignore_nmi_unblocking, false}};
    const Bug* bug = nullptr;
    std::string names;
    for (const Bug& k : kBugs) {
      if (*b == k.name) bug = &k;
      names += (names.empty() ? "" : ", ") + std::string(k.name);
    }
    if (!bug) return usage_error(kRecord, "unknown --bug '" + *b + "' (known: " + names + ")");
    if (bug->nested_only && !l1_cfg) return usage_error(kRecord, "--bug " + *b + " needs a nested run (L2 under L1)");
    l0_cfg.*(bug->flag) = true;
    if (!bug->nested_only && l1_cfg) (*l1_cfg).*(bug->flag) = true;
  }
  info.source = es::recorder::Source::Hv;
  info.policy = l0_cfg.policy;
  info.command_line = es::recorder::join_command_line(argc, argv);
  info.config_json =
      "{\"max_exits\":" + std::to_string(cfg.max_exits) + ",\"max_insns\":" + std::to_string(cfg.max_insns) +
      ",\"guest_arg\":" + std::to_string(cfg.guest_arg) + ",\"eager_ept\":" + (l0_cfg.eager_ept ? "true" : "false") +
      ",\"exception_bitmap\":" + std::to_string(cfg.exception_bitmap) + ",\"nested\":" + (l1_cfg ? "true" : "false") +
      ",\"bug\":\"" + args->get("bug").value_or("") + "\"}";

  es::probes::ProbeBus bus;
  es::hv::Machine vmm(bus, l0_cfg, l1_cfg);
  std::string error;
  if (!vmm.load(image, error)) {
    std::fprintf(stderr, "exitscope record: cannot load guest '%s': %s.\n", info.guest_path.c_str(), error.c_str());
    return 2;
  }
  StopSignals stop_signals(vmm);
  // Your plugins load before the recording exists: one that cannot load stops the command with
  // nothing recorded. Subscribed before the recorder, they see each record first; one that
  // crashes is switched off and the run stopped, the record it crashed on still recorded.
  es::probes::PluginHost user_plugins(bus);
  if (auto l = user_plugins.load_all(plugin_specs); !l) {
    std::fprintf(stderr, "exitscope record: %s\n", l.error().c_str());
    return 2;
  }
  user_plugins.set_crash_note("; the run is stopped there and the recording closed with everything before it");
  user_plugins.set_on_crash([&vmm] { vmm.request_stop(); });
  auto rec = es::recorder::Recorder::open(*output, info, args->has("force"), {.steps = es::replay::chain_steps()});
  if (!rec) {
    std::fprintf(stderr, "exitscope record: %s\n", rec.error().c_str());
    return 2;
  }
  (*rec)->attach(bus);
  (*rec)->set_on_write_error([&vmm] { vmm.request_stop(); });  // disk full: stop, keep what is committed
  // The invariant checker runs live as a built-in plugin; its violations land in the
  // recording as ES_KIND_VIOLATION records (replay/check/live_checker.h).
  es::check::LiveChecker checker(bus);
  es::probes::PluginHost plugins(bus);  // unloads the checker before `checker` goes away
  if (!args->has("no-check"))
    if (auto c = checker.install(plugins); !c) {
      std::fprintf(stderr, "exitscope record: %s\n", c.error().c_str());
      return 2;
    }
  const bool quiet = args->has("quiet");
  if (!quiet)
    std::fprintf(stderr, "recording %s into %s ...\n", scenario_name ? scenario_name->c_str() : guest_path->c_str(),
                 output->c_str());
  const es::hv::RunResult r = vmm.run();
  stop_signals.restore();
  checker.finish();  // end-of-run rules (event-lost) emit before the recorder finishes
  // The session stores the reason code and, when there is more to say, one sentence.
  es::recorder::RunEnd end{r.end_reason, r.message, 0};
  const auto crash = user_plugins.crash();
  if (crash) end = {ES_END_STOPPED, crash->describe() + "; the run was stopped there", 0};
  auto fin = (*rec)->finish(end);
  if (!fin) {
    std::fprintf(stderr, "exitscope record: %s\n", fin.error().c_str());
    return 2;
  }
  if (!quiet) {
    if (!r.console.empty()) std::fprintf(stdout, "%s%s", r.console.c_str(), r.console.back() == '\n' ? "" : "\n");
    const auto st = (*rec)->stats();
    // "VM exits" means what 'exitscope info' counts under that name: every VM_EXIT record, an
    // exit of the guest to L0 (the silicon's exits). Nested, L1 handles only those L0 reflects
    // (NESTED_EXIT records, r.exits there): said beside it, so the two numbers never disagree
    // unlabelled (issue #20 item 9).
    const uint64_t exits = vmm.top().silicon_exits();
    const std::string reflected = vmm.nested() ? " (" + std::to_string(r.exits) + " reflected to L1)" : std::string();
    std::fprintf(stdout, "recorded %llu events, %llu VM exits%s, %llu guest instructions, %.3f ms simulated: %s\n",
                 static_cast<unsigned long long>(st.written), static_cast<unsigned long long>(exits), reflected.c_str(),
                 static_cast<unsigned long long>(r.insns), static_cast<double>(r.end_time_ns) / 1e6,
                 (std::string(crash ? "stopped" : end_reason_text(end.end_reason)) +
                  (end.detail.empty() ? "" : ": " + end.detail))
                     .c_str());
    if (r.end_reason == ES_END_GUEST_EXIT && !crash) std::fprintf(stdout, "guest exit code: %u\n", r.guest_exit_code);
  }
  if (const size_t n = checker.violation_count(); n > 0)
    std::fprintf(stderr, "checker: %zu violation%s; run 'exitscope check %s' for details\n", n, n == 1 ? "" : "s",
                 output->c_str());
  // Your plugins' at-exit callbacks (their own output) run now, after the recording is closed.
  user_plugins.unload_all();
  // --exit-code: the guest's verdict is the process's (a guest that never gave one, 125, as
  // 'git bisect run' reads "cannot tell"); a plugin crash outranks it.
  if (user_plugins.crash()) return 1;
  if (args->has("exit-code"))
    return r.end_reason == ES_END_GUEST_EXIT ? static_cast<int>(r.guest_exit_code & 0xFF) : 125;
  // A run the model could not finish, or one a plugin crashed in (even at exit), is still a
  // recording; say so through the exit code.
  return r.end_reason == ES_END_INTERNAL_ERROR ? 1 : 0;
#endif
}

int cmd_scenarios(int argc, char** argv) {
  using namespace es::cli;
  const CommandSpec kSpec{kScenarios,
                          "[--names]",
                          "List the built-in scenarios: a guest program plus the L0 configuration that makes\n"
                          "it show one behaviour, with a one-line description of the rule it shows.",
                          kScenarioOptions,
                          {0, 0, "", "takes no arguments"}};
  auto args = start_command(kSpec, argc, argv);
  if (!args) return args.exit_code;
#ifndef ES_HAVE_HV
  std::fprintf(stderr, "exitscope scenarios: this build has no hypervisor core (hv/cpu missing).\n");
  return 2;
#else
  int width = 0;  // the longest name: descriptions start in one column
  for (const auto& s : es::hv::scenarios()) width = std::max(width, static_cast<int>(s.name.size()));
  for (const auto& s : es::hv::scenarios()) {
    if (args->has("names"))
      std::printf("%.*s\n", static_cast<int>(s.name.size()), s.name.data());
    else
      std::printf("%-*.*s  %.*s%s\n", width, static_cast<int>(s.name.size()), s.name.data(),
                  static_cast<int>(s.description.size()), s.description.data(),
                  s.name == es::hv::kDefaultScenario ? " [default]" : "");
  }
  return 0;
#endif
}
