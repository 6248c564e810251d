#include <cstdio>
#include <optional>

#include "replay/browse.h"
#include "replay/chains.h"
#include "replay/cli/args.h"
#include "replay/cli/commands.h"
#include "replay/cli/startup.h"
#include "replay/format.h"
#include "replay/inspect.h"
#include "replay/names.h"
#include "replay/query.h"
#include "replay/recording.h"

namespace es::cli {

namespace {
constexpr std::string_view kName = "events";
constexpr OptionSpec kOptions[] = {
    {"kind", "K", "only this kind (VM_EXIT, VM_ENTRY, DELIVERY, DECISION, RAISE, ... or a number)"},
    {"reason", "R",
     "exit reason (EPT_VIOLATION, 48; on AMD npf, io, 'GP excp', EXIT_NPF, 0x400), decision (INJECT_REINJECTED) or "
     "number"},
    {"vector", "V", "events whose interruption info or IDT-vectoring info has vector V (0x20, 14)"},
    {"vcpu", "N", "only vCPU N"},
    {"level", "L", "only guest level L (1 = L1, 2 = L2)"},
    {"chain", "N", "only events of chain N (its root event id)"},
    {"from", "T", "from session time T (ns, or with a unit: 1.5us, 20ms, 2s)"},
    {"to", "T", "up to session time T (inclusive)"},
    {"limit", "N", "print at most N events"},
    {"query", "Q", "filter query as in the GUI's filter box: 'reason:EPT_VIOLATION vector:0x20 level:1 kind:exit'"},
    {"verbose", "", "after each line, every field decoded as the GUI's inspector shows it (SDM wording)"},
};

}  // namespace

int cmd_events(int argc, char** argv) {
  const CommandSpec kSpec{kName, "DB [OPTIONS]",
                          "List the events of the recording DB, one decoded line each:\n"
                          "  #ID  TIME(s)  LEVEL(HV LEVEL)  vcpuN  KIND  decoded fields  cause=#ID origin=#ID\n"
                          "Hardware words (exit reason, qualification, interruption and IDT-vectoring info)\n"
                          "are decoded; cause is the event that caused this one, origin the chain root.\n"
                          "If records were dropped while recording, a first line starting with '#' says how many.",
                          kOptions};
  auto args = start_command(kSpec, argc, argv);
  if (!args) return args.exit_code;
  replay::EventFilter f;
  if (auto q = args->get("query")) {
    // The query sets the filter first; the other options narrow it further.
    auto parsed = replay::parse_query(*q);
    if (!parsed) return usage_error(kName, "--query: " + parsed.error().substr(0, parsed.error().size() - 1));
    f = *parsed;
  }
  int rc = 0;
  if (auto k = args->get("kind")) {
    f.kind = replay::parse_kind(*k);
    if (!f.kind)
      return usage_error(kName, "unknown kind '" + *k + "' for '--kind' (one of " + replay::kind_name_list() + ")");
  }
  if (auto r = args->get("reason")) {
    if (auto ok = replay::set_reason(f, *r); !ok)
      return usage_error(kName, ok.error().substr(0, ok.error().size() - 1));
  }
  std::optional<uint64_t> v;
  if (!number_option(kName, *args, "vector", 255, v, rc)) return rc;
  if (v) f.vector = static_cast<uint8_t>(*v);
  v.reset();
  if (!number_option(kName, *args, "vcpu", 65535, v, rc)) return rc;
  if (v) f.vcpu = static_cast<uint16_t>(*v);
  v.reset();
  if (!number_option(kName, *args, "level", 255, v, rc)) return rc;
  if (v) f.level = static_cast<uint8_t>(*v);
  if (!number_option(kName, *args, "chain", UINT64_MAX, f.chain, rc)) return rc;
  if (!number_option(kName, *args, "limit", UINT64_MAX, f.limit, rc)) return rc;
  if (!time_option(kName, *args, "from", f.from_ns, rc) || !time_option(kName, *args, "to", f.to_ns, rc)) return rc;

  auto rec = open_recording(kName, args->positional[0]);
  if (!rec) return 2;
  // Events the recording never got are not in the list: say so first, with the counts
  // `exitscope info` shows, so a pasted listing carries the warning with it.
  auto drops = rec->drop_counts();
  if (!drops) {
    std::fprintf(stderr, "exitscope events: %s\n", drops.error().c_str());
    return 2;
  }
  if (drops->total())
    std::printf(
        "# %llu records were dropped while recording (%llu by the recorder, %llu by the source): "
        "this list has gaps.\n",
        static_cast<unsigned long long>(drops->total()), static_cast<unsigned long long>(drops->recorder),
        static_cast<unsigned long long>(drops->source));
  const bool verbose = args->has("verbose");
  std::optional<replay::Vendor> vendor;  // which vendor's sections an outcome cites (read once)
  uint64_t count = 0;
  // Decisions name what their detail is by the exit that caused them: the exits of this
  // listing are remembered; a filtered listing that left the exit out reads it by id.
  replay::CauseExits exits;
  constexpr uint64_t kMaxLookups = 4096;
  uint64_t lookups = 0;
  auto cause_of = [&](const replay::Event& ev) -> const replay::CauseExit* {
    if (ev.rec.kind != ES_KIND_DECISION || !ev.rec.cause) return nullptr;
    if (const replay::CauseExit* c = exits.cause_of(ev)) return c;
    // A lookup per decision costs a query: a long filtered listing names the first few
    // thousand and prints the rest as "detail=" rather than run for minutes.
    if (ev.rec.reason != ES_DECISION_EMULATE || lookups >= kMaxLookups) return nullptr;
    ++lookups;
    auto e = rec->event(ev.rec.cause);
    if (!e || !*e) return nullptr;
    exits.see(**e);
    return exits.cause_of(ev);
  };
  auto r = rec->for_each_event(f, [&](const replay::Event& ev) {
    exits.see(ev);
    const replay::CauseExit* cause = cause_of(ev);
    std::printf("%s\n", replay::format_event(ev, cause).c_str());
    if (verbose) {
      for (const replay::InspectField& field : replay::inspect_event(ev, cause))
        std::printf("      %-28s %s\n", (field.label + ":").c_str(), replay::terminal_safe(field.value).c_str());
      // A chain's root also says how the chain ended, as `chains` names it (issue #14: every
      // outcome with its SDM section, in `events` too), from the recording's chains table.
      if (ev.rec.origin != 0 && ev.rec.origin == ev.rec.id) {
        auto row = replay::chain_row(*rec, ev.rec.id);
        if (row && *row) {
          if (!vendor) vendor = replay::recording_vendor(*rec);
          const std::string ref = replay::row_outcome_reference(*rec, **row, *vendor);
          std::printf("      %-28s %s%s%s\n", "Outcome:", (*row)->outcome.c_str(), ref.empty() ? "" : ": ",
                      ref.c_str());
        }
      }
    }
    ++count;
    return true;
  });
  if (!r) {
    std::fflush(stdout);
    std::fprintf(stderr, "exitscope events: %s\n", r.error().c_str());
    return 2;
  }
  if (count == 0) std::fprintf(stderr, "exitscope events: no event matches.\n");
  return 0;
}

}  // namespace es::cli
