// `exitscope import FILE -o DB`: a trace-cmd trace.dat (v6, v7) or KVM trace text (raw ftrace,
// trace-cmd report, perf script, a trace pasted into mail) into a recording (replay/import).
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "probes/bus/plugin_host.h"
#include "probes/recorder/session_info.h"
#include "replay/cli/args.h"
#include "replay/cli/commands.h"
#include "replay/cli/output.h"
#include "replay/cli/startup.h"
#include "replay/import/text_import.h"
#include "session/import_session.h"

namespace es::cli {

namespace {
constexpr std::string_view kName = "import";
constexpr OptionSpec kOptions[] = {
    {"output", "DB", "the recording to write (also -o DB)"},
    {"force", "", "replace DB if it exists"},
    {"format", "NAME", "trace.dat | ftrace | trace-cmd | perf | auto (default: detected from the content)"},
    {"progress", "", "show progress on stderr (default: only when stderr is a terminal)"},
    {"quiet", "", "do not print the summary nor progress"},
    {"plugin", "PATH[:K=V,..]",
     "load a plugin built against exitscope/plugin.h that sees every imported record "
     "(repeatable); K=V options reach it as its arguments"},
};
}  // namespace

int cmd_import(int argc, char** argv) {
  std::vector<char*> av(argv, argv + argc);
  // --plugin may be given several times: taken out before the one-value-per-name parser.
  auto plugin_values = probes::take_plugin_options(av);
  if (!plugin_values) return usage_error(kName, plugin_values.error());
  std::vector<probes::PluginSpec> plugin_specs;
  for (const std::string& v : *plugin_values) {
    auto spec = probes::parse_plugin_spec(v);
    if (!spec) return usage_error(kName, spec.error());
    plugin_specs.push_back(std::move(*spec));
  }
  const CommandSpec kSpec{kName,
                          "FILE -o DB [--force] [--format trace.dat|ftrace|trace-cmd|perf|auto] [--progress]\n"
                          "       [--plugin PATH[:K=V,...]]...",
                          "Import a KVM trace into the recording DB: a trace-cmd trace.dat (file versions 6 and\n"
                          "7, compressed or not, read through libtracecmd: all CPUs merged in time order, each\n"
                          "event decoded from its fields), the raw ftrace 'trace' file, 'trace-cmd report' or\n"
                          "'perf script' output, or lines pasted into mail (quote marks, trimmed prefixes and\n"
                          "wrapped lines are understood). The format is detected from the content (trace.dat by\n"
                          "its magic bytes). Every kernel era's format of kvm_exit, kvm_entry, kvm_inj_virq,\n"
                          "kvm_inj_exception, the nested tracepoints and kvm_page_fault / pio / msr / mmio /\n"
                          "emulate_insn / userspace_exit / apic_accept_irq / eoi is read, VMX and SVM. Where the\n"
                          "trace does not say which era it is, the assumption is stored in the session (see\n"
                          "'exitscope info') and the records concerned are marked inferred. Other events are\n"
                          "kept as context. Lines (trace.dat: records) not understood are counted and listed by\n"
                          "number, never dropped silently. A truncated or corrupt trace.dat is refused with the\n"
                          "reason. DB is written as DB.partial and renamed once complete.\n"
                          "\n"
                          "Making a trace.dat of a KVM guest:  trace-cmd record -e kvm -P PID  (or enable\n"
                          "events/kvm in tracefs, run the guest, then 'trace-cmd extract -o trace.dat').\n"
                          "\n"
                          "--plugin loads your own plugin (README 'Writing a plugin') before DB is created; one\n"
                          "that cannot be loaded stops the import with nothing written. Its record callbacks see\n"
                          "every record in the order it is written. A plugin that crashes is named and switched\n"
                          "off; the import goes on and DB is complete (exit code 1).",
                          kOptions,
                          {1, 1, "missing the trace file (FILE)", "expects exactly one trace file"},
                          /*short_output=*/true};
  auto args = start_command(kSpec, static_cast<int>(av.size()), av.data());
  if (!args) return args.exit_code;
  const auto output = args->get("output");
  if (!output || output->empty()) return usage_error(kName, "missing -o DB (the recording to write)");
  // A trace must be a regular file: a FIFO would block the open forever (issue #17).
  if (auto checked = check_input_file(args->positional[0], "trace file"); !checked) {
    std::fprintf(stderr, "exitscope import: %s\n", checked.error().c_str());
    return 2;
  }
  // Not the trace itself, not a device or pipe, not a recording in progress (replay/cli/output.h).
  auto plan = plan_output(*output, {args->positional[0]}, true, "trace file");
  if (!plan) {
    std::fprintf(stderr, "exitscope import: %s\n", plan.error().c_str());
    return 2;
  }
  es::session::ImportRequest req;
  req.file = args->positional[0];
  req.output = plan->path;
  if (auto f = args->get("format"); f && !import::parse_format_choice(*f, req.format))
    return usage_error(kName, "unknown --format '" + *f + "'; use trace.dat, ftrace, trace-cmd, perf or auto");
  req.force = args->has("force");
  req.command_line = "exitscope " + recorder::join_command_line(argc, argv);
  req.plugins = plugin_specs;
  const bool quiet = args->has("quiet");
  bool progress_shown = false;
  if (!quiet && (args->has("progress") || ::isatty(STDERR_FILENO))) {
    req.progress = [&](uint64_t records, double fraction) {
      if (fraction >= 0)
        std::fprintf(stderr, "\rimporting: %llu records, %.0f %%   ", static_cast<unsigned long long>(records),
                     fraction * 100);
      else
        std::fprintf(stderr, "\rimporting: %llu records   ", static_cast<unsigned long long>(records));
      std::fflush(stderr);
      progress_shown = true;
    };
    req.notice = [&](const std::string& what) {
      std::fprintf(stderr, "\r\033[Kimporting: %s\n", what.c_str());
      std::fflush(stderr);
    };
  }
  // The session (session/import_session.h) loads your plugins before the recording exists and
  // unloads them (their at-exit callbacks) after it is complete and printed.
  auto session = es::session::ImportSession::open(req);
  if (!session) {
    std::fprintf(stderr, "exitscope import: %s\n", session.error().c_str());
    return 2;
  }
  auto stats = (*session)->run();
  if (progress_shown) std::fputs("\r\033[K", stderr);
  if (!stats) {
    std::fprintf(stderr, "exitscope import: %s\n", stats.error().c_str());
    return 2;
  }
  if (!quiet) {
    const bool dat_file = stats->file_version != 0;
    std::printf("imported %s (%s, %s): %llu %s, %llu KVM events, %llu other events, %llu records -> %s\n",
                args->positional[0].c_str(), stats->format.c_str(), stats->vendor.c_str(),
                static_cast<unsigned long long>(stats->lines), dat_file ? "trace records" : "lines",
                static_cast<unsigned long long>(stats->kvm_events),
                static_cast<unsigned long long>(stats->other_events), static_cast<unsigned long long>(stats->records),
                output->c_str());
    std::printf("kernel:   %s\n", stats->era.c_str());
    if (dat_file)
      std::printf("host:     %s, %u CPUs%s%s\n",
                  stats->uname.empty() ? "(the file does not say)" : stats->uname.c_str(), stats->cpus,
                  stats->clock.empty() ? "" : ", clock ", stats->clock.c_str());
    if (stats->lost_events)
      std::printf("lost:     %llu events (the kernel's ring buffer overwrote them before they were read)\n",
                  static_cast<unsigned long long>(stats->lost_events));
    if (stats->unparsed) {
      std::string list;
      for (uint64_t n : stats->unparsed_lines) list += (list.empty() ? "" : ", ") + std::to_string(n);
      std::printf("%s %llu %s (%s%s)\n",
                  dat_file ? "undecodable:" : "unparsed:", static_cast<unsigned long long>(stats->unparsed),
                  dat_file ? "records" : "lines", list.c_str(),
                  stats->unparsed > stats->unparsed_lines.size() ? ", ..." : "");
    }
    for (const std::string& a : stats->skipped) std::printf("skipped:  %s\n", a.c_str());
    for (const std::string& a : stats->repaired) std::printf("repaired: %s\n", a.c_str());
    for (const std::string& a : stats->assumptions) std::printf("assumed:  %s\n", a.c_str());
  }
  return (*session)->unload_plugins() ? 1 : 0;
}

}  // namespace es::cli
