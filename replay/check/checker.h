// The invariant checker: a streaming state machine over es_records that reports event
// handling no correct VT-x hypervisor (or CPU) produces. Qt-free; used offline (iterate a
// recording, `exitscope check`) and live (a built-in probe plugin, replay/check/live_checker.h).
//
// Usage:
//   es::check::Checker c;            // or Checker({.only = {RuleId::EventLost}})
//   for (each record in id order) c.feed(rec);
//   c.finish();                      // rules that need the end of the run (event-lost)
//   for (const Violation& v : c.violations()) ...
//
// Rules are one table (checker.cpp, kRules): id, name, description, a per-record function
// and an optional end-of-run function. Adding a rule = one entry in exitscope/violations.def
// (id, ABI name, RuleId, name, description), one kRules entry and one function. Rule ids are
// stable: they are stored as the reason of ES_KIND_VIOLATION records; never renumber, only
// append.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "exitscope/record.h"
#include "replay/chains.h"

namespace es::check {

// The ABI's rule table (exitscope/violations.def) is the only one: the ids stored in recordings
// (ES_VIOLATION_*), these enumerators, the names and descriptions all come from it.
enum class RuleId : uint32_t {
#define ES_VIOLATION(id, name, rule, rule_name, description) rule = ES_VIOLATION_##name,
#include "exitscope/violations.def"
#undef ES_VIOLATION
};

struct Rule {
  RuleId id;
  std::string_view name;         // "exit-ext-int-with-vectoring"
  std::string_view description;  // one line, for --help / listings
};

// Every rule, in id order.
std::span<const Rule> rules();
const Rule* find_rule(std::string_view name);
const Rule* find_rule(uint32_t id);
// "exit-ext-int-with-vectoring, injected-twice, ..."
std::string rule_name_list();

// Exits in one chain with valid IDT-vectoring, same basic reason, RIP and GPA, no delivery
// in between: this many or more is a reinjection loop. Three repetitions already show a
// livelock: excerpts pasted in real bug reports hold 5 to 7 (issue #15).
inline constexpr uint32_t kReinjectionLoopThreshold = 3;
// Identical VM exits (no IDT-vectoring) on one vCPU and level with nothing in between that
// shows progress: this many or more is a no-progress loop.
inline constexpr uint32_t kNoProgressLoopThreshold = 3;
// no-progress-cycle: repeating units of this many VM exits are looked for (a unit of 1 is
// no-progress-loop's). A cycle is reported when the vCPU has come round to the unit's first exit
// kNoProgressLoopThreshold times: 2 * unit + 1 exits (for a unit of 1 that is the loop rule's 3).
inline constexpr uint32_t kCycleMinUnit = 2;
inline constexpr uint32_t kCycleMaxUnit = 4;

struct Violation {
  RuleId rule{};
  uint64_t chain = 0;                  // chain (origin) concerned; 0 = none
  std::vector<uint64_t> events;        // offending event ids; the last is where it was detected
  uint32_t count = 0;                  // reinjection-loop, no-progress-loop, no-progress-cycle: exits in the loop;
                                       // otherwise 0
  uint32_t unit = 0;                   // no-progress-cycle: exits in the repeating unit; otherwise 0
  uint64_t first_ns = 0, last_ns = 0;  // time span of the offending events
  uint8_t level = 0, hv_level = 0;
  uint16_t vcpu = 0;
  std::string explanation;  // one sentence citing the SDM or KVM
};

// The ES_KIND_VIOLATION record of a violation: reason = rule id, cause = the detecting
// event (events.back()), origin = chain, aux = count, aux64 = the first offending event when
// there are two (e.g. the first delivery / the first exit of the loop / the chain root),
// time = last_ns, level / hv_level / vcpu of the detecting event. id is left 0.
es_record to_record(const Violation& v);

struct CheckOptions {
  std::vector<RuleId> only;  // empty = every rule
  // The members of chain `chain` with ids below `before`, in id order, from the recording being
  // checked; false if they cannot be read. With it, a settled chain that has had no member for a
  // while leaves memory (issue #18: memory O(open chains + window), not O(chains)) and is read
  // back here if a later member of it comes; without it every chain's state stays for the whole
  // run unless forget_to_disk.
  std::function<bool(uint64_t chain, uint64_t before, std::vector<es_record>& out)> chain_history = {};
  // Records a settled chain stays after its last member before it is forgotten; 0 = the default
  // (65536, or the ES_SETTLE_WINDOW environment variable). Memory against read-backs only.
  size_t settle_window = 0;
  // Without chain_history: settled chains leave memory as with it, their state (what a read-back
  // of their members would rebuild) kept in a private temporary database on disk instead. The
  // live checker sets it (it has no recording to read back); if the temporary database cannot
  // be made, every chain stays in memory as before.
  bool forget_to_disk = false;
  // From a recording whose chains table holds this build's figures (replay::chain_figures_current:
  // every chain's outcome decided by replay/chains' rules while it was written): the stored
  // outcome of chain `id`, and, where that is a loss, the chain as replay/chains reads it back
  // (`lost`). With it, event-lost keeps no chain members (a livelock's one chain of millions of
  // records held them all: issue #18, `check` of a 100 M-line import); false if it cannot be read.
  std::function<bool(uint64_t id, std::optional<replay::Chain>& lost)> lost_chain = {};
};

class Checker {
 public:
  explicit Checker(CheckOptions options = {});
  ~Checker();
  Checker(Checker&&) noexcept;
  Checker& operator=(Checker&&) noexcept;

  // Feeds one record (any kind; ES_KIND_VIOLATION records are ignored, so a recording that
  // already holds the live checker's findings checks the same). Records must come in id
  // order, as the probe bus emits them and as recordings store them.
  void feed(const es_record& r);
  // End of the run: reports what needs it (lost events, a reinjection loop still running).
  // Call once, after the last feed.
  void finish();

  const std::vector<Violation>& violations() const;
  bool enabled(RuleId id) const;
  // Memory (issue #18): chains whose state is held now; settled chains forgotten so far, and
  // how many of those came back because a later member came.
  size_t chains_held() const;
  uint64_t chains_forgotten() const;
  uint64_t chains_recalled() const;

  struct State;  // per-chain and per-rule state (checker.cpp)

 private:
  std::unique_ptr<State> st_;
};

}  // namespace es::check
