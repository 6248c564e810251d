// `exitscope import FILE -o DB`: a trace-cmd trace.dat (v6, v7) or KVM trace text (raw ftrace,
// trace-cmd report, perf script, a trace pasted into mail) into a recording (replay/import).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "probes/recorder/session_info.h"
#include "replay/cli/args.h"
#include "replay/cli/commands.h"
#include "replay/import/import_file.h"

namespace es::cli {

namespace {
constexpr std::string_view kName = "import";
constexpr OptionSpec kOptions[] = {
    {"output", "DB", "the recording to write (also -o DB)"},
    {"force", "", "replace DB if it exists"},
    {"format", "NAME", "trace.dat | ftrace | trace-cmd | perf | auto (default: detected from the content)"},
    {"progress", "", "show progress on stderr (default: only when stderr is a terminal)"},
    {"quiet", "", "do not print the summary nor progress"},
};
}  // namespace

int cmd_import(int argc, char** argv) {
  std::vector<char*> av(argv, argv + argc);
  static char kOutput[] = "--output";
  for (auto& a : av)
    if (std::strcmp(a, "-o") == 0) a = kOutput;
  auto args = parse_args(kName, static_cast<int>(av.size()), av.data(), kOptions);
  if (!args) return usage_error(kName, args.error());
  if (args->help) {
    std::fputs(usage_text(kName, "FILE -o DB [--force] [--format trace.dat|ftrace|trace-cmd|perf|auto] [--progress]",
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
                          "events/kvm in tracefs, run the guest, then 'trace-cmd extract -o trace.dat').",
                          kOptions)
                   .c_str(),
               stdout);
    return 0;
  }
  if (args->positional.size() != 1)
    return usage_error(kName, args->positional.empty() ? "missing the trace file (FILE)" : "expects exactly one trace file");
  const auto output = args->get("output");
  if (!output || output->empty()) return usage_error(kName, "missing -o DB (the recording to write)");
  import::ImportOptions opt;
  if (auto f = args->get("format"); f && !import::parse_format_choice(*f, opt.format))
    return usage_error(kName, "unknown --format '" + *f + "'; use trace.dat, ftrace, trace-cmd, perf or auto");
  opt.force = args->has("force");
  opt.command_line = "exitscope " + recorder::join_command_line(argc, argv);
  import::TraceDatOptions dat;
  dat.import = opt;
  const bool quiet = args->has("quiet");
  bool progress_shown = false;
  if (!quiet && (args->has("progress") || ::isatty(STDERR_FILENO))) {
    dat.progress = [&](uint64_t records, double fraction) {
      if (fraction >= 0)
        std::fprintf(stderr, "\rimporting: %llu records, %.0f %%   ", static_cast<unsigned long long>(records),
                     fraction * 100);
      else
        std::fprintf(stderr, "\rimporting: %llu records   ", static_cast<unsigned long long>(records));
      std::fflush(stderr);
      progress_shown = true;
    };
  }
  auto stats = import::import_file(args->positional[0], *output, dat);
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
      std::printf("host:     %s, %u CPUs%s%s\n", stats->uname.empty() ? "(the file does not say)" : stats->uname.c_str(),
                  stats->cpus, stats->clock.empty() ? "" : ", clock ", stats->clock.c_str());
    if (stats->lost_events)
      std::printf("lost:     %llu events (the kernel's ring buffer overwrote them before they were read)\n",
                  static_cast<unsigned long long>(stats->lost_events));
    if (stats->unparsed) {
      std::string list;
      for (uint64_t n : stats->unparsed_lines) list += (list.empty() ? "" : ", ") + std::to_string(n);
      std::printf("%s %llu %s (%s%s)\n", dat_file ? "undecodable:" : "unparsed:",
                  static_cast<unsigned long long>(stats->unparsed), dat_file ? "records" : "lines", list.c_str(),
                  stats->unparsed > stats->unparsed_lines.size() ? ", ..." : "");
    }
    for (const std::string& a : stats->skipped) std::printf("skipped:  %s\n", a.c_str());
    for (const std::string& a : stats->repaired) std::printf("repaired: %s\n", a.c_str());
    for (const std::string& a : stats->assumptions) std::printf("assumed:  %s\n", a.c_str());
  }
  return 0;
}

}  // namespace es::cli
