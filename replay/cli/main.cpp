// exitscope: record, replay and explain VM exits, IDT-vectoring and event injection.
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "replay/cli/args.h"

#include "replay/cli/commands.h"

namespace {

struct Command {
  std::string_view name;
  std::string_view summary;
  int (*run)(int argc, char** argv);
};

constexpr Command kCommands[] = {
    {"record", "run a guest scenario on the built-in VT-x model and record it", &cmd_record},
    {"scenarios", "list the built-in guest scenarios", &cmd_scenarios},
    {"info", "summarize a recording: session, counts, exits by reason, console output", &es::cli::cmd_info},
    {"events", "list decoded events, filtered by kind, reason, vector, vCPU, level, chain, time", &es::cli::cmd_events},
    {"chains", "explain event chains: original event, interruptions, reinjections, outcome", &es::cli::cmd_chains},
    {"stats", "where the guest's time goes: exits by reason / vCPU / level with exit-to-entry times, chain latency",
     &es::cli::cmd_stats},
    {"export", "export a recording, a chain or a window as text, Markdown, a Perfetto trace, Chrome JSON, SVG or PNG",
     &es::cli::cmd_export},
    {"check", "check a recording against VT-x / KVM event invariants; exit 1 on violations", &es::cli::cmd_check},
    {"diff", "compare two recordings of the same guest: first divergence, chain outcome differences",
     &es::cli::cmd_diff},
    {"import", "import a KVM trace (trace-cmd trace.dat; ftrace, trace-cmd report, perf script or mail-pasted text)",
     &es::cli::cmd_import},
    {"gui", "open a recording in the GUI (timeline, chains, events, inspector, stepping)", &es::cli::cmd_gui},
    {"migrate", "migrate a recording of an older schema, as a copy (default) or in place", &es::cli::cmd_migrate},
};

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: exitscope COMMAND [ARGS...]\n\n"
               "Records every VM exit, IDT-vectoring record and event-injection decision of a VT-x\n"
               "hypervisor into SQLite, and replays / explains them.\n\nCommands:\n");
  for (const Command& c : kCommands)
    std::fprintf(out, "  %-10.*s %.*s\n", static_cast<int>(c.name.size()), c.name.data(),
                 static_cast<int>(c.summary.size()), c.summary.data());
  std::fprintf(out, "\nRun 'exitscope COMMAND --help' for the options of a command.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  const std::string_view cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    print_usage(stdout);
    return 0;
  }
  if (cmd == "--version") {
    std::printf("exitscope %s\n", ES_TOOL_VERSION);
    return 0;
  }
  for (const Command& c : kCommands)
    if (c.name == cmd) return c.run(argc - 1, argv + 1);
  std::vector<std::string_view> names;
  for (const Command& c : kCommands) names.push_back(c.name);
  const std::string near = es::cli::closest_name(cmd, names);
  std::fprintf(stderr, "exitscope: unknown command '%.*s'%s; run 'exitscope --help' for the list of commands.\n",
               static_cast<int>(cmd.size()), cmd.data(),
               near.empty() ? "" : (" (did you mean '" + near + "'?)").c_str());
  return 2;
}
