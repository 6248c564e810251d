// `exitscope record` and `exitscope scenarios`: run a guest on the built-in VT-x core and
// record it (built only with the hypervisor, ES_HAVE_HV; otherwise they say so), or record a
// real KVM host with eBPF (`record --kvm`; built with ES_HAVE_KVM). This file parses the flags
// into a session request, prints, and chooses the exit code; the session layer records
// (session/hv_session.h, session/kvm_session.h).
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include "probes/bus/plugin_host.h"
#include "probes/recorder/session_info.h"
#include "replay/cli/args.h"
#include "replay/cli/commands.h"
#include "replay/cli/output.h"
#include "replay/cli/startup.h"

#ifdef ES_HAVE_KVM
#include <unistd.h>

#include "probes/kvm/kvm_record.h"
#include "session/kvm_session.h"
#endif

#ifdef ES_HAVE_HV
#include "exitscope/record.h"
#include "hv/vmm/scenarios.h"
#include "replay/names.h"
#include "session/hv_session.h"
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
    {"vcpu", "N", "--kvm: only vCPU N (the VM's own id: of every VM unless --pid)"},
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

#ifdef ES_HAVE_KVM
// What `record --kvm` says while it records: notices and the summary on stderr / stdout, on a
// terminal a status line (or, with --stats, kvm_stat's table) redrawn once a second.
class KvmPrinter : public es::kvm::RecordObserver {
 public:
  KvmPrinter(bool quiet, bool stats) : quiet_(quiet), stats_(stats), tty_(::isatty(2) == 1) {}

  void attached(const std::vector<std::string>& refused, const std::vector<std::string>& not_tp) override {
    if (quiet_) return;
    for (const std::string& r : refused) std::fprintf(stderr, "exitscope record: not recording %s\n", r.c_str());
    for (const std::string& w : not_tp)
      std::fprintf(stderr, "exitscope record: through tp_btf, not tp: %s\n", w.c_str());
  }
  void started(size_t tracepoints, const std::string& output, int64_t pid) override {
    if (quiet_) return;
    std::fprintf(stderr, "recording %zu kvm tracepoints into %s%s ...\n", tracepoints, output.c_str(),
                 pid > 0 ? (" (pid " + std::to_string(pid) + ")").c_str() : " (every process)");
  }
  void every_second(const es::kvm::Progress& p) override {
    const uint64_t since = last_ns_ ? last_ns_ : p.now_ns - p.elapsed_ns;
    if (p.stats && tty_) {
      // kvm_stat's screen: the table redrawn in place once a second (cursor up over the last one).
      const std::string t = p.stats->table(p.now_ns, p.elapsed_ns);
      if (live_lines_) std::fprintf(stderr, "\x1b[%dA\x1b[J", live_lines_);
      std::fputs(t.c_str(), stderr);
      live_lines_ = static_cast<int>(std::count(t.begin(), t.end(), '\n'));
    } else if (!p.stats && !quiet_ && tty_ && p.now_ns > since) {
      const double rate = static_cast<double>(p.seen - last_seen_) * 1e9 / static_cast<double>(p.now_ns - since);
      std::fprintf(stderr, "\r%llu events, %.0f events/s, %llu dropped, %llu buffered   ",
                   static_cast<unsigned long long>(p.seen), rate, static_cast<unsigned long long>(p.dropped),
                   static_cast<unsigned long long>(p.buffered));
    }
    last_ns_ = p.now_ns;
    last_seen_ = p.seen;
  }
  void writing_backlog(uint64_t buffered) override {
    if (quiet_ || !tty_) return;
    std::fprintf(stderr, "%swriting the %llu buffered events ...   ", shown_ ? "\r" : "\n",
                 static_cast<unsigned long long>(buffered));
    shown_ = true;
  }
  void abandoned(uint64_t events) override {
    if (quiet_) return;
    std::fprintf(stderr, "%sinterrupted: %llu buffered events not written (counted as dropped)\n", shown_ ? "\n" : "",
                 static_cast<unsigned long long>(events));
  }
  void backlog_written() override {
    if (!quiet_ && tty_ && !stats_) std::fputc('\n', stderr);
  }
  void indexing() override {
    if (!quiet_ && tty_) std::fputs("indexing the recording and linking its chains ...\n", stderr);
  }
  void finished(const es::kvm::RecordResult& r) override {
    const uint64_t dropped = r.ring_dropped + r.buffer_dropped + r.abandoned;
    if (!quiet_)
      std::fprintf(
          stdout, "recorded %llu kvm events (%llu records) into %s: %s; %llu dropped by the ring buffer%s%s%s%s\n",
          static_cast<unsigned long long>(r.kvm_events), static_cast<unsigned long long>(r.records), r.output.c_str(),
          r.end_detail.c_str(), static_cast<unsigned long long>(r.ring_dropped),
          r.buffer_dropped ? (", " + std::to_string(r.buffer_dropped) + " more with the buffer full").c_str() : "",
          r.abandoned ? (", " + std::to_string(r.abandoned) + " buffered not written").c_str() : "",
          r.filtered ? (", " + std::to_string(r.filtered) + " of other vCPUs skipped").c_str() : "",
          dropped ? " (a larger ring or --buffer-size, or fewer --events would help)" : "");
    // --stats: the whole session's table, also where no terminal showed it live.
    if (!r.stats_table.empty()) std::fputs(("\nKVM events by reason, whole session: " + r.stats_table).c_str(), stdout);
    for (const std::string& w : r.warnings) std::fprintf(stderr, "exitscope record: warning: %s\n", w.c_str());
  }

 private:
  const bool quiet_, stats_, tty_;
  uint64_t last_ns_ = 0, last_seen_ = 0;
  int live_lines_ = 0;  // --stats on a terminal: lines of the table on screen
  bool shown_ = false;  // the "writing the buffered events" line is on screen
};

// `record --kvm`: the options that apply, checked here; the session records (session/kvm_session.h).
int record_kvm_command(const es::cli::Args& args, const std::vector<std::string>& command,
                       const std::vector<es::probes::PluginSpec>& plugins, int argc, char** argv) {
  using namespace es::cli;
  for (const char* hv_only : {"scenario", "guest", "policy", "max-exits", "max-insns", "arg", "eager-ept", "intercept",
                              "nested", "bug", "no-check", "exit-code"})
    if (args.has(hv_only))
      return usage_error(kRecord, std::string("--") + hv_only + " is for the built-in hypervisor, not --kvm");
  if (!args.positional.empty())
    return usage_error(kRecord, "unexpected argument '" + args.positional[0] + "' (put a command after '--')");
  es::session::KvmRequest o;
  const auto output = args.get("output");
  if (!output || output->empty()) return usage_error(kRecord, "missing -o DB (the recording to write)");
  o.output = *output;
  o.force = args.has("force");
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
  o.command_line = es::recorder::join_command_line(argc, argv);
  KvmPrinter printer(args.has("quiet"), o.stats);
  auto r = es::session::record_kvm(o, printer);
  if (!r) {
    std::fprintf(stderr, "exitscope record: %s\n", r.error().c_str());
    return 2;
  }
  // Recorded; 1 when the command after '--' failed or a plugin crashed.
  return r->workload_failed || r->plugin_crashed ? 1 : 0;
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
  // The flags become a session request (session/hv_session.h); the session layer checks its
  // settings, records, and answers with values this command prints and turns into an exit code.
  es::session::HvRequest req;
  req.scenario = args->get("scenario").value_or("");
  req.guest_path = args->get("guest").value_or("");
  if (!req.scenario.empty() && !req.guest_path.empty())
    return usage_error(kRecord, "give either --scenario or --guest, not both");
  if (req.scenario.empty() && req.guest_path.empty())
    return usage_error(kRecord, "missing --scenario NAME or --guest FILE");
  req.output = args->get("output").value_or("");
  if (req.output.empty()) return usage_error(kRecord, "missing -o DB (the recording to write)");
  if (auto plan =
          plan_output(req.output, req.guest_path.empty() ? std::vector<std::string>{} : std::vector{req.guest_path},
                      true, "guest file");
      !plan) {
    std::fprintf(stderr, "exitscope record: %s\n", plan.error().c_str());
    return 2;
  }
  if (!req.scenario.empty() && !es::hv::find_scenario(req.scenario)) {
    // "nested_irq_vectoring" for "nested-irq-vectoring": the names use dashes.
    std::vector<std::string_view> names;
    for (const auto& s : es::hv::scenarios()) names.push_back(s.name);
    std::string dashed = req.scenario;
    std::replace(dashed.begin(), dashed.end(), '_', '-');
    const std::string near = es::cli::closest_name(dashed, names);
    return usage_error(kRecord, "unknown scenario '" + req.scenario + "'" +
                                    (near.empty() ? std::string() : " (did you mean '" + near + "'?)") +
                                    " (list them with 'exitscope scenarios')");
  }
  if (!req.guest_path.empty()) {
    // Type and size before opening (issue #17): a FIFO blocks the open, a directory or a huge
    // file would be read into memory. Guest RAM is 16 MiB (hv/guests/README.md); 256 MiB leaves
    // room for an ELF's symbols and debug sections.
    constexpr uint64_t kMaxGuestFile = 256ull << 20;
    if (auto checked = check_input_file(req.guest_path, "guest file", kMaxGuestFile); !checked) {
      std::fprintf(stderr, "exitscope record: %s\n", checked.error().c_str());
      return 2;
    }
  }
  req.nested = args->has("nested");
  req.policy = args->get("policy").value_or("");
  for (auto [name, dst] :
       {std::pair{"max-exits", &req.max_exits}, {"max-insns", &req.max_insns}, {"arg", &req.guest_arg}})
    if (auto v = args->get(name)) {
      uint64_t n = 0;
      if (!parse_u64(*v, n))
        return usage_error(kRecord, std::string("--") + name + " needs a non-negative number, not '" + *v + "'");
      *dst = n;
    }
  req.eager_ept = args->has("eager-ept");
  if (auto v = args->get("intercept")) {
    const std::string& list = *v;
    size_t pos = 0;
    while (pos <= list.size()) {
      const size_t comma = std::min(list.find(',', pos), list.size());
      uint64_t vec = 0;
      if (!parse_u64(list.substr(pos, comma - pos), vec) || vec > 31)
        return usage_error(kRecord,
                           "--intercept takes exception vectors 0..31 separated by commas, not '" + list + "'");
      req.intercept |= 1u << vec;
      pos = comma + 1;
    }
  }
  req.bug = args->get("bug").value_or("");
  req.check = !args->has("no-check");
  req.plugins = plugin_specs;
  req.force = args->has("force");
  req.command_line = es::recorder::join_command_line(argc, argv);
  // The settings the session refuses (a policy or bug it does not know, a bug that needs nesting).
  if (auto c = es::session::check_hv_request(req); !c) return usage_error(kRecord, c.error());

  auto session = es::session::HvSession::open(req);
  if (!session) {
    std::fprintf(stderr, "exitscope record: %s\n", session.error().c_str());
    return 2;
  }
  const bool quiet = args->has("quiet");
  if (!quiet) std::fprintf(stderr, "recording %s into %s ...\n", (*session)->what().c_str(), req.output.c_str());
  auto run = (*session)->run();
  if (!run) {
    std::fprintf(stderr, "exitscope record: %s\n", run.error().c_str());
    return 2;
  }
  const es::session::HvResult& r = *run;
  if (!quiet) {
    if (!r.console.empty()) std::fprintf(stdout, "%s%s", r.console.c_str(), r.console.back() == '\n' ? "" : "\n");
    const std::string reflected =
        r.reflected_to_l1 ? " (" + std::to_string(*r.reflected_to_l1) + " reflected to L1)" : std::string();
    std::fprintf(
        stdout, "recorded %llu events, %llu VM exits%s, %llu guest instructions, %.3f ms simulated: %s\n",
        static_cast<unsigned long long>(r.events), static_cast<unsigned long long>(r.vm_exits), reflected.c_str(),
        static_cast<unsigned long long>(r.insns), static_cast<double>(r.simulated_ns) / 1e6,
        (std::string(es::replay::end_reason_name(r.end_reason)) + (r.end_detail.empty() ? "" : ": " + r.end_detail))
            .c_str());
    if (r.guest_exit_code) std::fprintf(stdout, "guest exit code: %u\n", *r.guest_exit_code);
  }
  if (r.violations > 0)
    std::fprintf(stderr, "checker: %zu violation%s; run 'exitscope check %s' for details\n", r.violations,
                 r.violations == 1 ? "" : "s", req.output.c_str());
  // Your plugins' at-exit callbacks (their own output) run now, after the recording is closed.
  // --exit-code: the guest's verdict is the process's (a guest that never gave one, 125, as
  // 'git bisect run' reads "cannot tell"); a plugin crash, during the run or at exit, outranks it.
  if ((*session)->unload_plugins()) return 1;
  if (args->has("exit-code")) return r.guest_exit_code ? static_cast<int>(*r.guest_exit_code & 0xFF) : 125;
  // A run the model could not finish is still a recording; say so through the exit code.
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
