// `exitscope check DB`: run the invariant checker over a recording.
#include <cstdint>
#include <cstdio>
#include <unordered_map>
#include <unordered_set>

#include "hv/arch/event_info.h"
#include "replay/chains.h"
#include "replay/check/check_recording.h"
#include "replay/cli/args.h"
#include "replay/cli/commands.h"
#include "replay/cli/startup.h"
#include "replay/names.h"
#include "replay/recording.h"

namespace es::cli {

namespace {
constexpr std::string_view kName = "check";
constexpr OptionSpec kOptions[] = {
    {"rule", "NAME", "run only this rule (repeatable as NAME,NAME)"},
    {"list-rules", "", "list the rules and exit"},
};

std::string ids_text(const std::vector<uint64_t>& ids) {
  std::string s;
  for (uint64_t id : ids) s += (s.empty() ? "#" : " #") + std::to_string(id);
  return s.empty() ? "-" : s;
}
}  // namespace

int cmd_check(int argc, char** argv) {
  std::string desc =
      "Check the recording DB against the event-handling invariants of VT-x and KVM and\n"
      "print every violation: the rule, one sentence citing the SDM or KVM, the offending\n"
      "event ids and the chain. Exit status: 0 no violation, 1 violations found, 2 bad input.\n"
      "The same checks run live during 'exitscope record' (unless --no-check).\n\nRules:\n";
  for (const check::Rule& r : check::rules())
    desc += "  " + std::string(r.name) + std::string(r.name.size() < 28 ? 28 - r.name.size() : 1, ' ') +
            std::string(r.description) + "\n";
  desc.pop_back();
  // No DB is needed for --list-rules: the count is checked below, after it.
  const CommandSpec spec{kName, "DB [--rule NAME]", desc, kOptions, {0, SIZE_MAX, "", ""}};
  auto args = start_command(spec, argc, argv);
  if (!args) return args.exit_code;
  if (args->has("list-rules")) {
    for (const check::Rule& r : check::rules())
      std::printf("%-28.*s %.*s\n", static_cast<int>(r.name.size()), r.name.data(),
                  static_cast<int>(r.description.size()), r.description.data());
    return 0;
  }
  if (args->positional.size() != 1)
    return usage_error(kName, args->positional.empty() ? kOneRecording.missing : kOneRecording.too_many);
  check::CheckOptions options;
  if (auto v = args->get("rule")) {
    std::string list = *v;
    size_t pos = 0;
    while (pos <= list.size()) {
      const size_t comma = std::min(list.find(',', pos), list.size());
      const std::string name = list.substr(pos, comma - pos);
      const check::Rule* rule = check::find_rule(name);
      if (!rule)
        return usage_error(kName, "unknown rule '" + name + "' for '--rule' (known: " + check::rule_name_list() + ")");
      options.only.push_back(rule->id);
      pos = comma + 1;
    }
  }
  auto rec = open_recording(kName, args->positional[0]);
  if (!rec) return 2;
  auto found = check::check_recording(*rec, options);
  if (!found) {
    std::fprintf(stderr, "exitscope check: %s\n", found.error().c_str());
    return 2;
  }
  // The chain's original event, to name it.
  // Only the chains the violations name are read (issue #18: every chain and member of the
  // recording was loaded for this): a few through the origin index, many in one streamed walk.
  std::unordered_map<uint64_t, uint32_t> chain_word;
  std::unordered_set<uint64_t> named;
  for (const check::Violation& v : *found)
    if (v.chain) named.insert(v.chain);
  // A recording that holds this build's chain figures (replay::chain_figures_current: the
  // writer's chain builder stored every row with these rules) gives each word from its chains
  // row, one lookup by id; reading the chain and its links for it read every member again (a
  // reinjection livelock is one chain of the whole recording: half of `check`'s time).
  bool stored = false;
  if (auto current = replay::chain_figures_current(rec->db()); current && *current) {
    if (auto st = rec->db().prepare("SELECT event_word FROM chains WHERE id = ?")) {
      stored = true;
      for (uint64_t id : named) {
        st->bind_u64(1, id);
        if (st->step() == SQLITE_ROW) chain_word[id] = static_cast<uint32_t>(st->col_u64(0));
        st->reset();
      }
    }
  }
  if (!stored && named.size() <= 64) {
    for (uint64_t id : named) {
      auto chains = replay::load_chain_and_links(*rec, id);
      if (chains && !chains->empty() && chains->front().id == id) chain_word[id] = chains->front().event_word;
    }
  } else if (!stored) {
    (void)replay::for_each_chain(*rec, [&](const replay::Chain& c) {
      if (named.count(c.id)) chain_word[c.id] = c.event_word;
      return chain_word.size() < named.size();
    });
  }
  const size_t rules_run = options.only.empty() ? check::rules().size() : options.only.size();
  for (const check::Violation& v : *found) {
    const check::Rule* rule = check::find_rule(static_cast<uint32_t>(v.rule));
    std::string chain = "-";
    if (v.chain) {
      chain = std::to_string(v.chain);
      if (auto it = chain_word.find(v.chain); it != chain_word.end() && arch::EntryIntrInfo(it->second).valid())
        chain += " (" + arch::describe(arch::EntryIntrInfo(it->second)) + ")";
    }
    std::printf("%.*s: chain %s, events %s, t=%s", static_cast<int>(rule->name.size()), rule->name.data(),
                chain.c_str(), ids_text(v.events).c_str(), replay::format_time(v.last_ns).c_str());
    if (v.count) std::printf(", count %u", v.count);
    std::printf("\n  %s\n\n", v.explanation.c_str());
  }
  if (found->empty())
    std::printf("no violations (%zu rule%s checked)\n", rules_run, rules_run == 1 ? "" : "s");
  else
    std::printf("%zu violation%s (%zu rule%s checked)\n", found->size(), found->size() == 1 ? "" : "s", rules_run,
                rules_run == 1 ? "" : "s");
  return found->empty() ? 0 : 1;
}

}  // namespace es::cli
