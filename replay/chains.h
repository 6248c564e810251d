// Chain reconstruction. A chain is every event with the same `origin` (the id of its root
// record, normally the ES_KIND_RAISE that raised the original event), ordered by id. For
// each chain we report the original event, what interrupted its delivery (VM exits with
// valid IDT-vectoring info), what the hypervisor did about it (decision records) and the
// outcome. A chain whose root was caused by an event of another chain (e.g. a #PF raised
// while delivering an IRQ) is linked to it as "interrupts chain N".
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "replay/recording.h"
#include "schema/result.h"
#include "schema/sqlite_db.h"

namespace es::replay {

// What happened to a chain's original event in the end. Each outcome is something the
// architecture (or a hypervisor) does to an event; outcome_reference() gives the SDM section.
// Only DroppedByPolicy, DiscardedByHypervisor and Lost can be a hypervisor's bug (the
// checker's event-lost rule); the others are what hardware does.
//  - Delivered: the handler was reached on the first attempt.
//  - ReinjectedThenDelivered: VM exits interrupted its delivery (IDT-vectoring named it) and
//    the hypervisor reinjected it until it was delivered.
//  - PromotedToDf / TripleFault: a fault during its delivery hit the double-fault table.
//  - HandledSerially: a fault during its delivery was handled first (Table 6-5 "handle
//    exceptions serially"); the event was abandoned and the instruction that raised it
//    re-executes, raising it again (a new chain).
//  - Superseded: as HandledSerially, but for an event nothing raises again (an external
//    interrupt already acknowledged, an NMI): hardware loses it.
//  - Collapsed: an NMI arriving while one is already latched (Vol. 3A 6.7.1).
//  - Coalesced: an interrupt whose vector is already requested (one IRR bit per vector).
//  - HandledByHypervisor: the event caused a VM exit and the hypervisor consumed it there (an
//    intercepted #PF a shadow-paging hypervisor fixes, a physical NMI handed to the host): it
//    was never meant for the guest.
//  - DroppedByPolicy: the hypervisor's policy did not reinject it from IDT-vectoring info.
//  - DiscardedByHypervisor: the hypervisor threw away an event the architecture still owed.
//  - PendingAtEnd: the run stopped (limit, signal) before it could be delivered.
//  - Lost: none of the above, in a run the guest ended: it vanished.
enum class Outcome : uint8_t {
  Delivered,
  PromotedToDf,
  TripleFault,
  DroppedByPolicy,
  HandledByHypervisor,
  PendingAtEnd,
  Lost,
  ReinjectedThenDelivered,
  HandledSerially,
  Superseded,
  Collapsed,
  Coalesced,
  DiscardedByHypervisor
};
inline constexpr Outcome kAllOutcomes[] = {Outcome::Delivered,
                                           Outcome::ReinjectedThenDelivered,
                                           Outcome::PromotedToDf,
                                           Outcome::TripleFault,
                                           Outcome::HandledSerially,
                                           Outcome::Superseded,
                                           Outcome::Collapsed,
                                           Outcome::Coalesced,
                                           Outcome::HandledByHypervisor,
                                           Outcome::DroppedByPolicy,
                                           Outcome::DiscardedByHypervisor,
                                           Outcome::PendingAtEnd,
                                           Outcome::Lost};
// "delivered", "delivered after reinjection", "promoted to #DF", "triple fault", "handled serially",
// "superseded", "collapsed", "coalesced", "handled by hypervisor", "dropped by policy",
// "discarded by hypervisor", "pending at end", "lost"
std::string_view to_string(Outcome o);
// The outcome a name stands for (as stored in the chains table), if it is one.
std::optional<Outcome> outcome_from_string(std::string_view name);
// Whose virtualization a chain's records speak: a member with ES_FLAG_SVM (an AMD exit, its
// EXITINTINFO, an SVM decision) makes it Svm, a VM exit or nested entry without it Vmx; a chain
// with neither (an injected IRQ delivered at once) says neither.
enum class Vendor : uint8_t { Unknown, Vmx, Svm };
struct Chain;
// `fallback` (the recording's, recording_vendor()) for a chain that says neither.
Vendor chain_vendor(const Chain& c, Vendor fallback = Vendor::Unknown);
// Where the outcome comes from: "SDM Vol. 3A 6.15 Table 6-5 ..." (one line, no final period).
// The architecture's own part is the same on both vendors; what VMX calls IDT-vectoring info and
// VM-entry event injection (Intel SDM Vol. 3C) AMD calls EXITINTINFO and EVENTINJ (AMD APM Vol.
// 2 15.7.2, 15.20), and KVM handles them in vmx_complete_interrupts / svm_complete_interrupts:
// each vendor's chain cites its own, a chain of neither cites both.
std::string_view outcome_reference(Outcome o, Vendor v = Vendor::Unknown);
// The reference of a discard whose ES_DECISION_DISCARD record gave reason `discard_aux`
// (exitscope/discard.h): its own for an injection L0 did not hand back to L1
// (ES_DISCARD_NOT_HANDED_BACK), else outcome_reference(DiscardedByHypervisor, v).
std::string_view discard_reference(uint32_t discard_aux, Vendor v = Vendor::Unknown);
struct Chain;
// outcome_reference() for chain `c` (its vendor by chain_vendor, else `fallback`), or
// discard_reference() when a DISCARD record decided it, or Table 6-5's pair when the exit that
// showed a fault in the event's own delivery did (a discard the hypervisor made by answering it
// with neither #DF nor a reinjection).
std::string_view chain_outcome_reference(const Chain& c, Vendor fallback = Vendor::Unknown);
// The reference of a DiscardedByHypervisor outcome decided by a fault in the event's own
// delivery (no DISCARD record: the pair Table 6-5 turns into #DF, answered otherwise).
std::string_view unanswered_pair_reference();
// How many records a settled chain stays in memory after its last member, in the chain builder
// and the offline checker alike (issue #18): 65536, or the ES_SETTLE_WINDOW environment variable.
// Only a memory / read-back trade, never a different result.
size_t settle_window();
// A VM exit (or nested exit) that is the guest's triple fault, on either vendor.
bool is_triple_fault_exit(const es_record& r);
// The vector of the exception VM exit `r` reports as raised by the delivery of `event` (VM-entry
// interruption-info format), if the exit says so by any of the architecture's own evidence: its
// IDT-vectoring info names the event (SDM Vol. 3C 28.2.4), FRED's nested-exception bit 13 of the
// exit interruption info is set (Vol. 3C 28.2.2 with FRED), or a #TS / #NP / #SS / #GP error code
// has the IDT bit and indexes the event's gate (Vol. 3A 6.13 "Error Code"; the only evidence in
// traces that print no IDT-vectoring / EXITINTINFO). The exception is the exit's own event: VMX
// exit reason 0 with its interruption info, SVM exception intercept 0x40 + vector (APM Vol. 2
// 15.12, EXITINFO1 = error code). The last two kinds of evidence count only when
// `after_injection`: the exit came while an injection of the event was being delivered (its chain's
// last VM entry before the exit injected it), not as the event's own exit (a #GP raised by INT 13
// through a bad gate has the same error code as a fault delivering #GP).
std::optional<uint8_t> delivery_fault_of(const es_record& r, uint32_t event, bool after_injection);
// The outcomes a hypervisor can be blamed for (the checker's event-lost rule).
constexpr bool outcome_is_loss(Outcome o) {
  return o == Outcome::Lost || o == Outcome::DiscardedByHypervisor || o == Outcome::DroppedByPolicy;
}

struct Chain {
  uint64_t id = 0;          // = origin = root event id
  bool root_found = false;  // the root record is in the recording
  Event root;               // valid if root_found
  uint32_t event_word = 0;  // the original event, VM-entry interruption-info format
  uint32_t event_error = 0;
  // Every member, by id (root included when found); for a chain not held (members_held false)
  // only its first and last member: read the others with for_each_member.
  std::vector<Event> events;
  std::vector<uint64_t> interruptions;  // VM exits whose IDT-vectoring info was valid (held chains)
  std::vector<uint64_t> decisions;      // DECISION records in the chain (held chains)
  // A chain longer than chain_hold_limit() members, read by for_each_chain or
  // load_chain_and_links, is decided one member at a time without keeping them (issue #18: a
  // livelock's chain has millions): members_held is then false and `events`, `interruptions`
  // and `decisions` are as said above. Everything else below is the same either way.
  bool members_held = true;
  uint64_t member_count = 0;
  // The levels its members are about, in order of first appearance: the guest level and the
  // hypervisor level that saw it (replay::level_text names them "L2(L0)"; a delivery, the CPU's,
  // just "L2"), for its violation records apart.
  struct Level {
    uint8_t level = 0, hv_level = 0;
    bool delivery = false, violation = false;
    bool operator==(const Level&) const = default;
  };
  std::vector<Level> levels;
  uint32_t vectoring_exits = 0;        // members counts_as_vectoring_exit
  uint32_t reinjections = 0;           // members counts_as_reinjection
  std::optional<uint64_t> outcome_ns;  // time of outcome_event when it is a member
  Outcome outcome = Outcome::Lost;
  uint64_t outcome_event = 0;  // the event that decided the outcome (0 if none)
  // The aux of outcome_event when it is an ES_DECISION_DISCARD record: why it was discarded
  // (exitscope/discard.h), for discard_reference(); 0 otherwise. Read only with a
  // DiscardedByHypervisor outcome (a discard that made the event Superseded / HandledSerially
  // keeps its aux here too).
  uint32_t outcome_discard_aux = 0;
  // Whose words its members speak (chain_vendor), from all of them as the chain was decided:
  // ES_FLAG_SVM on any makes it Svm, else an exit or nested entry Vmx. Unknown for a chain
  // not decided by replay's builder (chain_vendor then reads `events`).
  Vendor vendor = Vendor::Unknown;
  // A VM exit of this chain that reports an exception raised by the event's own delivery
  // (delivery_fault_of), the last one, and that exception's vector: what Table 6-5 pairs the
  // event with when nothing later delivered it.
  uint64_t delivery_fault = 0;
  uint8_t delivery_fault_vector = 0;
  bool inferred = false;                 // a member link is ES_FLAG_INFERRED or the root is missing
  uint64_t interrupts_chain = 0;         // chain whose delivery this chain's root interrupted
  std::vector<uint64_t> interrupted_by;  // chains whose root was caused inside this chain
};

// How many members a chain read by for_each_chain / load_chain_and_links may hold in memory:
// 65536, or the ES_CHAIN_HOLD environment variable (bench/scale/same_output.sh compares the output
// with a limit of a few members). Only a memory / read-back trade, never a different result.
size_t chain_hold_limit();

// Chain `c`'s members in id order: from memory when held, else through the origin index of the
// recording it was read from. `fn` returning false stops the walk.
Result<void> for_each_member(db::Db& db, const Chain& c, const std::function<bool(const Event&)>& fn);
inline Result<void> for_each_member(Recording& rec, const Chain& c, const std::function<bool(const Event&)>& fn) {
  return for_each_member(rec.db(), c, fn);
}

// Builds chains from events that have origin != 0 (any order) plus the session's RUN_END
// records. `run_ended_by_limit`: the run stopped on a limit / signal (or the recording has
// no RUN_END at all), so an undelivered event is "pending at end" rather than "lost".
std::vector<Chain> build_chains(std::vector<Event> members, const std::vector<Event>& run_ends);

// Streams the chains one at a time in id order (memory: one chain plus what links chains, not
// the whole recording), for large recordings. `fn` returning false stops the walk.
Result<void> for_each_chain(db::Db& db, const std::function<bool(const Chain&)>& fn);
inline Result<void> for_each_chain(Recording& rec, const std::function<bool(const Chain&)>& fn) {
  return for_each_chain(rec.db(), fn);
}
// The same, with `unheld_member` called for every member of a chain too long to hold (its
// Chain has members_held false), in id order: those held until the walk lets them go, then each
// later one, all before that chain's `fn`. A caller that needs every member then reads them
// once: from `events` for a held chain, from this hook for the others, where for_each_member
// would read them a second time. Either returning false stops.
Result<void> for_each_chain(db::Db& db, const std::function<bool(const Event&)>& unheld_member,
                            const std::function<bool(const Chain&)>& fn);

// One chain by id, read as `WHERE origin = id` on the origin index, decided as load_chains
// decides it, followed by the chains it names (the one it interrupts, those interrupting it)
// in id order, so a caller can title them and give their outcomes. Reads only those chains'
// members and the few indexed lookups their outcome and links need (the run's end, effects
// caused by their roots, links through the cause of a root). Empty: no chain has that id.
Result<std::vector<Chain>> load_chain_and_links(db::Db& db, uint64_t id);
inline Result<std::vector<Chain>> load_chain_and_links(Recording& rec, uint64_t id) {
  return load_chain_and_links(rec.db(), id);
}

// Reads the events and builds all chains in memory (read-only; nothing is written).
Result<std::vector<Chain>> load_chains(db::Db& db);
inline Result<std::vector<Chain>> load_chains(Recording& rec) { return load_chains(rec.db()); }

// What a chain's figures in `exitscope stats` count (and the chains table's v3 columns store):
// a VM exit (L0's; a reflected exit's NESTED_EXIT repeats it for L1) whose IDT-vectoring info is
// valid, i.e. that interrupted an event's delivery (SDM Vol. 3C 28.2.4 "Information for VM Exits
// During Event Delivery"), and the hypervisor's reinjection of the event (KVM's
// vmx_complete_interrupts requeue, then injection).
bool counts_as_vectoring_exit(const es_record& r);
bool counts_as_reinjection(const es_record& r);

// The version of the rules that decide a chain's outcome and figures (MemberScan,
// conclude_outcome, finish_chain in chains.cpp). Both writers below stamp it in the chain_rules
// table (schema v3); a reader with other rules does not trust a stored outcome and walks the
// chains instead (replay/stats.cpp). Raise it with every change to those rules.
inline constexpr int kChainRulesVersion = 1;

// Rebuilds the chains table of a writable recording in one transaction, from
// the events it reads back (for a recording written without a ChainBuilder, and for a migrated
// copy of an older file whose chain rows lack the schema v3 figures).
Result<void> materialize_chains(db::Db& db);

// Brings a writable recording's stored chains up to this build (schema v3 figures decided by
// kChainRulesVersion): when it has no chain_rules stamp of this version (a file migrated from
// an older schema, whose chains table may even be empty: exitscope 0.1.0 wrote none), builds the
// indexes a finished recording has (events_exit_entry included) and rewrites the chains with
// materialize_chains. Does nothing to a recording without indexes (its writer never finished:
// readers walk its events) or with current figures. Returns whether it wrote. Cost: one walk of
// the chains (BENCHMARKS.md "Stats").
Result<bool> store_chain_figures(db::Db& db);
// Whether the chains table holds this build's figures: one chain_rules stamp of kChainRulesVersion.
Result<bool> chain_figures_current(db::Db& db);

// The chains of a recording decided while it is written (issue #18: finishing a recording read
// every chain member back, a fifth of an import's time). The recorder's writer hands over each
// row it wrote, in write order; per chain only what deciding it needs is kept (the first and
// last member, the count, the few ids the outcome rules name, the state of its delivery window),
// never its members, so memory grows with the number of chains, not of events. write() then
// fills the same chains table materialize_chains would. Its rules assume rows
// in increasing id order, as every source writes them; if they were not (or a chain's root came
// after its members, or a root's cause after the root), exact() is false and the caller uses
// materialize_chains instead. Not thread-safe: one writer thread, then finish.
class ChainBuilder {
 public:
  explicit ChainBuilder(db::Db& db);  // the recording being written (reads origins of causes)
  ~ChainBuilder();
  ChainBuilder(const ChainBuilder&) = delete;
  ChainBuilder& operator=(const ChainBuilder&) = delete;

  void add(const es_record& row);  // row.id = the row's id in events
  bool exact() const;
  // the chains table in one transaction; call after the indexes exist (a chain's members are
  // the events with its origin, found through events_origin).
  Result<void> write();

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace es::replay
