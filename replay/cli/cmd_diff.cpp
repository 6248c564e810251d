// `exitscope diff A.db B.db`: where two recordings of the same guest diverge.
#include <cstdio>

#include "replay/cli/args.h"
#include "replay/cli/commands.h"
#include "replay/cli/startup.h"
#include "replay/diff/diff.h"
#include "replay/format.h"
#include "replay/names.h"
#include "replay/recording.h"

namespace es::cli {

namespace {
constexpr std::string_view kName = "diff";
constexpr OptionSpec kOptions[] = {
    {"context", "N", "events of context before and after the first difference (default 3)"},
    {"chains-only", "", "skip the event comparison; list only chains whose outcome or length differs"},
};

void print_header(char side, const diff::Side& s) {
  // Session strings come from the files: escaped so a recording cannot drive the terminal.
  std::printf("%c: %s  scenario %s  policy %s  %llu events", side, replay::terminal_safe(s.path).c_str(),
              s.session.scenario.empty() ? "-" : replay::terminal_safe(s.session.scenario).c_str(),
              s.session.policy.empty() ? "-" : replay::terminal_safe(s.session.policy).c_str(),
              static_cast<unsigned long long>(s.compared_events));
  if (s.violations)
    std::printf("  %llu violation%s", static_cast<unsigned long long>(s.violations), s.violations == 1 ? "" : "s");
  std::printf("\n");
}

void print_context(char side, const std::vector<replay::Event>& evs, size_t at) {
  std::printf("  %c:\n", side);
  for (size_t i = 0; i < evs.size(); ++i)
    // format_event already escapes console text (the only text an event carries).
    std::printf("  %s %s\n", i == at ? ">" : " ", replay::format_event(evs[i]).c_str());
  if (at == evs.size()) std::printf("  > (end of recording)\n");
}

std::string story_text(const diff::ChainStory& s) {
  std::string ids;
  for (uint64_t id : s.chain_ids) ids += (ids.empty() ? "" : "+") + std::to_string(id);
  return s.story + " (" + std::to_string(s.event_count) + " events, chain" + (s.chain_ids.size() > 1 ? "s " : " ") +
         ids + ")";
}
}  // namespace

int cmd_diff(int argc, char** argv) {
  const CommandSpec kSpec{kName,
                          "A.db B.db [--context N] [--chains-only]",
                          "Compare two recordings of the same guest (e.g. one scenario under two reinjection\n"
                          "policies). Prints one line per recording (scenario, policy), the first event where the\n"
                          "normalized sequences differ with context from both sides (kind, level, vCPU, reason,\n"
                          "event words, instruction length, RIP, qualification and GPA are compared; ids, causes,\n"
                          "origins, times and checker violations are not), then the chains whose outcome or\n"
                          "number of events differ, matched by original event, level, root RIP and ordinal; a\n"
                          "story's unit repeated three times or more is written once with its count, \"(EPT_VIOLATION\n"
                          "-> reinjected) x 79780\", and a long story shows its first and last parts.\n"
                          "Exit status: 0 identical, 1 different, 2 bad input.",
                          kOptions,
                          {2, 2, "needs two recordings (A.db B.db)", "expects exactly two recording files"}};
  auto args = start_command(kSpec, argc, argv);
  if (!args) return args.exit_code;
  diff::DiffOptions options;
  if (auto v = args->get("context")) {
    const auto n = replay::parse_uint(*v);
    if (!n || *n > 1000)
      return usage_error(kName, "option '--context' needs a number of events 0..1000, not '" + *v + "'");
    options.context = static_cast<size_t>(*n);
  }
  options.chains_only = args->has("chains-only");
  auto a = open_recording(kName, args->positional[0]);
  if (!a) return 2;
  auto b = open_recording(kName, args->positional[1]);
  if (!b) return 2;
  auto res = diff::diff_recordings(*a, *b, options);
  if (!res) {
    std::fprintf(stderr, "exitscope diff: %s\n", res.error().c_str());
    return 2;
  }
  print_header('A', res->a);
  print_header('B', res->b);
  if (!options.chains_only) {
    if (res->first) {
      const diff::Divergence& d = *res->first;
      std::printf("\nfirst difference at event %llu of the compared sequences:\n",
                  static_cast<unsigned long long>(d.index + 1));
      print_context('A', d.a, d.a_at);
      print_context('B', d.b, d.b_at);
    } else {
      std::printf("\nevents: identical (%llu compared)\n", static_cast<unsigned long long>(res->a.compared_events));
    }
  }
  if (res->chains.empty()) {
    std::printf("\nchains: same outcomes and lengths\n");
  } else {
    std::printf("\nchains that differ (%zu):\n", res->chains.size());
    for (const diff::ChainDifference& c : res->chains) {
      std::printf("  %s:\n", replay::terminal_safe(diff::describe_key(c.key)).c_str());
      std::printf("    A %s\n", c.a ? replay::terminal_safe(story_text(*c.a)).c_str() : "(no such chain)");
      std::printf("    B %s\n", c.b ? replay::terminal_safe(story_text(*c.b)).c_str() : "(no such chain)");
      if (c.a && c.b && c.a->story == c.b->story && c.a->steps_hash != c.b->steps_hash)
        std::printf("    (the two differ in the steps the \"...\" leaves out)\n");
    }
  }
  return res->identical() ? 0 : 1;
}

}  // namespace es::cli
