#include <cstdio>
#include <unordered_map>

#include "hv/arch/event_info.h"
#include "replay/chains.h"
#include "replay/cli/args.h"
#include "replay/cli/commands.h"
#include "replay/format.h"
#include "replay/names.h"
#include "replay/recording.h"

namespace es::cli {

namespace {
constexpr std::string_view kName = "chains";
constexpr OptionSpec kOptions[] = {
    {"chain", "N", "only chain N (its root event id)"},
    {"outcome", "O", "only chains with this outcome (delivered, lost, \"triple fault\", ...)"},
};

std::string chain_title(const replay::Chain& c) {
  std::string s = arch::describe(arch::EntryIntrInfo(c.event_word));
  if (!c.root_found) s += " (root #" + std::to_string(c.id) + " not recorded)";
  return s;
}

const replay::Event* find_event(const replay::Chain& c, uint64_t id) {
  for (const auto& e : c.events)
    if (e.rec.id == id) return &e;
  return nullptr;
}

void print_chain(const replay::Chain& c, const std::unordered_map<uint64_t, const replay::Chain*>& by_id) {
  const es_record* first = c.root_found ? &c.root.rec : &c.events.front().rec;
  std::printf("chain %llu: %s  L%u vcpu%u  t=%s%s\n", static_cast<unsigned long long>(c.id), chain_title(c).c_str(),
              first->level, first->vcpu, replay::format_time(first->time_ns).c_str(),
              c.inferred ? "  [inferred links]" : "");
  if (c.interrupts_chain) {
    auto it = by_id.find(c.interrupts_chain);
    std::printf("  interrupts chain %llu (%s): raised during its delivery\n",
                static_cast<unsigned long long>(c.interrupts_chain),
                it == by_id.end() ? "?" : chain_title(*it->second).c_str());
  }
  for (const auto& ev : c.events) std::printf("    %s\n", replay::format_event(ev).c_str());
  for (uint64_t id : c.interruptions) {
    const replay::Event* e = find_event(c, id);
    if (!e) continue;
    std::string q = replay::qualification_text(e->rec.reason, e->rec.qualification);
    std::printf("  interrupted: #%llu %s%s%s during delivery of %s\n", static_cast<unsigned long long>(id),
                replay::exit_reason_text(e->rec.reason).c_str(), q.empty() ? "" : " ", q.empty() ? "" : ("[" + q + "]").c_str(),
                arch::describe(arch::IdtVectoringInfo(e->rec.idt_vectoring_info)).c_str());
  }
  for (uint64_t id : c.decisions) {
    const replay::Event* e = find_event(c, id);
    if (!e) continue;
    switch (e->rec.reason) {
      case ES_DECISION_REQUEUE_FROM_VECTORING:
      case ES_DECISION_INJECT_REINJECTED:
      case ES_DECISION_DROP_FROM_VECTORING:
      case ES_DECISION_CANCEL_INJECTION:
      case ES_DECISION_INJECT_NEW:
      case ES_DECISION_REFLECT_TO_L1:
      case ES_DECISION_SHUTDOWN:
      case ES_DECISION_DISCARD:
        std::printf("  decision:    #%llu %s\n", static_cast<unsigned long long>(id),
                    replay::describe_event_fields(*e).c_str());
        break;
      default: break;
    }
  }
  for (uint64_t other : c.interrupted_by) {
    auto it = by_id.find(other);
    std::printf("  interrupted by chain %llu (%s, %s)\n", static_cast<unsigned long long>(other),
                it == by_id.end() ? "?" : chain_title(*it->second).c_str(),
                it == by_id.end() ? "?" : std::string(replay::to_string(it->second->outcome)).c_str());
  }
  if (c.outcome_event)
    std::printf("  outcome:     %s (#%llu)\n\n", std::string(replay::to_string(c.outcome)).c_str(),
                static_cast<unsigned long long>(c.outcome_event));
  else
    std::printf("  outcome:     %s\n\n", std::string(replay::to_string(c.outcome)).c_str());
}

}  // namespace

int cmd_chains(int argc, char** argv) {
  auto args = parse_args(kName, argc, argv, kOptions);
  if (!args) return usage_error(kName, args.error());
  if (args->help) {
    std::fputs(usage_text(kName, "DB [OPTIONS]",
                          "Explain the event chains of the recording DB. A chain is every event with the same\n"
                          "origin (the record that raised the original event). For each chain: the original\n"
                          "event, its events indented, the VM exits that interrupted its delivery (with their\n"
                          "IDT-vectoring info), what was requeued / reinjected / dropped, chains it interrupted\n"
                          "or was interrupted by, and the outcome: delivered, promoted to #DF, triple fault,\n"
                          "dropped by policy, pending at end, or lost.",
                          kOptions)
                   .c_str(),
               stdout);
    return 0;
  }
  if (args->positional.size() != 1)
    return usage_error(kName, args->positional.empty() ? "missing the recording file (DB)"
                                                       : "expects exactly one recording file");
  std::optional<uint64_t> only;
  if (auto v = args->get("chain")) {
    only = replay::parse_uint(*v);
    if (!only) return usage_error(kName, "option '--chain' needs a chain id (a number), not '" + *v + "'");
  }
  std::optional<std::string> outcome = args->get("outcome");
  if (outcome) {
    bool known = false;
    for (auto o : {replay::Outcome::Delivered, replay::Outcome::PromotedToDf, replay::Outcome::TripleFault,
                   replay::Outcome::DroppedByPolicy, replay::Outcome::PendingAtEnd, replay::Outcome::Lost})
      known = known || replay::to_string(o) == *outcome;
    if (!known)
      return usage_error(kName, "unknown outcome '" + *outcome +
                                    "' for '--outcome' (delivered, promoted to #DF, triple fault, dropped by policy, "
                                    "pending at end, lost)");
  }
  auto rec = replay::Recording::open(args->positional[0]);
  if (!rec) {
    std::fprintf(stderr, "exitscope chains: %s\n", rec.error().c_str());
    return 2;
  }
  auto chains = replay::load_chains(*rec);
  if (!chains) {
    std::fprintf(stderr, "exitscope chains: %s\n", chains.error().c_str());
    return 2;
  }
  std::unordered_map<uint64_t, const replay::Chain*> by_id;
  for (const auto& c : *chains) by_id[c.id] = &c;
  size_t shown = 0;
  for (const auto& c : *chains) {
    if (only && c.id != *only) continue;
    if (outcome && replay::to_string(c.outcome) != *outcome) continue;
    print_chain(c, by_id);
    ++shown;
  }
  if (only && shown == 0) {
    std::fprintf(stderr, "exitscope chains: no chain %llu in '%s'; run 'exitscope chains %s' to list them.\n",
                 static_cast<unsigned long long>(*only), rec->path().c_str(), rec->path().c_str());
    return 2;
  }
  if (shown == 0) std::printf("no chains\n");
  return 0;
}

}  // namespace es::cli
