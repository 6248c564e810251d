// `exitscope import FILE -o DB`: KVM trace text (raw ftrace, trace-cmd report, perf script, a
// trace pasted into mail) into a recording (replay/import).
#include <cstdio>
#include <cstring>
#include <vector>

#include "probes/recorder/session_info.h"
#include "replay/cli/args.h"
#include "replay/cli/commands.h"
#include "replay/import/text_import.h"

namespace es::cli {

namespace {
constexpr std::string_view kName = "import";
constexpr OptionSpec kOptions[] = {
    {"output", "DB", "the recording to write (also -o DB)"},
    {"force", "", "replace DB if it exists"},
    {"format", "NAME", "ftrace | trace-cmd | perf | auto (default: detected from the content)"},
    {"quiet", "", "do not print the summary"},
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
    std::fputs(usage_text(kName, "FILE -o DB [--force] [--format ftrace|trace-cmd|perf|auto]",
                          "Import a KVM trace in text form into the recording DB: the raw ftrace 'trace' file,\n"
                          "'trace-cmd report' or 'perf script' output, or lines pasted into mail (quote marks,\n"
                          "trimmed prefixes and wrapped lines are understood). Every kernel era's print format\n"
                          "of kvm_exit, kvm_entry, kvm_inj_virq, kvm_inj_exception, the nested tracepoints and\n"
                          "kvm_page_fault / pio / msr / emulate_insn / apic_accept_irq / eoi is read, VMX and\n"
                          "SVM. Where the text does not say which era it is, the assumption is stored in the\n"
                          "session (see 'exitscope info') and the records concerned are marked inferred.\n"
                          "Lines not understood are counted and listed by number, never dropped silently.\n"
                          "DB is written as DB.partial and renamed once complete.",
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
    return usage_error(kName, "unknown --format '" + *f + "'; use ftrace, trace-cmd, perf or auto");
  opt.force = args->has("force");
  opt.command_line = "exitscope " + recorder::join_command_line(argc, argv);
  auto stats = import::import_text_file(args->positional[0], *output, opt);
  if (!stats) {
    std::fprintf(stderr, "exitscope import: %s\n", stats.error().c_str());
    return 2;
  }
  if (!args->has("quiet")) {
    std::printf("imported %s (%s, %s): %llu lines, %llu KVM events, %llu other events, %llu records -> %s\n",
                args->positional[0].c_str(), stats->format.c_str(), stats->vendor.c_str(),
                static_cast<unsigned long long>(stats->lines), static_cast<unsigned long long>(stats->kvm_events),
                static_cast<unsigned long long>(stats->other_events), static_cast<unsigned long long>(stats->records),
                output->c_str());
    std::printf("kernel:   %s\n", stats->era.c_str());
    if (stats->unparsed) {
      std::string list;
      for (uint64_t n : stats->unparsed_lines) list += (list.empty() ? "" : ", ") + std::to_string(n);
      std::printf("unparsed: %llu lines (%s%s)\n", static_cast<unsigned long long>(stats->unparsed), list.c_str(),
                  stats->unparsed > stats->unparsed_lines.size() ? ", ..." : "");
    }
    for (const std::string& a : stats->assumptions) std::printf("assumed:  %s\n", a.c_str());
  }
  return 0;
}

}  // namespace es::cli
