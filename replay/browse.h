// Queries for browsing a recording interactively (the GUI's lazy event table and chain
// list, its timeline window, stepping) without loading it whole: every function here reads
// a bounded number of rows through an index (events' rowid, events_time, events_origin,
// events_cause, chains' rowid), so a 10 M-event recording opens and steps as fast as a small
// one. Qt-free; the CLI can use all of it too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "replay/chains.h"
#include "replay/recording.h"
#include "schema/result.h"

namespace es::replay {

// The extent of a recording, from O(log n) lookups (no full scan).
struct EventSpan {
  uint64_t first_id = 0, last_id = 0;  // 0 / 0 when there are no events
  uint64_t count = 0;                  // sessions.event_count when the session is complete, else counted
  uint64_t first_time_ns = 0, last_time_ns = 0;
  bool dense = false;  // ids are exactly first_id..last_id (row r = first_id + r)
};
Result<EventSpan> event_span(Recording& rec);

// Up to `max` events with id >= first_id, by id.
Result<std::vector<Event>> events_from_id(Recording& rec, uint64_t first_id, uint64_t max);

// Ids of every event matching the filter, by id (the filtered event table).
Result<std::vector<uint64_t>> matching_ids(Recording& rec, const EventFilter& f);
// Ids of every event ordered by (time_ns, id) (the table sorted by time), through events_time.
Result<std::vector<uint64_t>> ids_by_time(Recording& rec);

// The next (forward) or previous event after `id`; with `chain`, only events of that chain.
Result<std::optional<Event>> step_event(Recording& rec, uint64_t id, bool forward,
                                        std::optional<uint64_t> chain = std::nullopt);
// The first event caused by `id` (lowest id with cause = id), through events_cause.
Result<std::optional<Event>> first_effect(Recording& rec, uint64_t id);
// Every event caused by `id`, by id (at most `max`).
Result<std::vector<Event>> effects(Recording& rec, uint64_t id, uint64_t max = 64);

// A timeline lane: one per (vCPU, guest level, deciding hypervisor) present in the recording,
// so a nested run shows L2 as L0 sees it (the silicon, L0's decisions) apart from L1's view
// (nested exits and entries' decisions), and chains cross between them.
struct Lane {
  uint16_t vcpu = 0;
  uint8_t level = 1;
  uint8_t hv_level = 0;
  bool operator==(const Lane&) const = default;
  bool operator<(const Lane& o) const {
    if (vcpu != o.vcpu) return vcpu < o.vcpu;
    if (level != o.level) return level < o.level;
    return hv_level < o.hv_level;
  }
  bool holds(const es_record& r) const { return r.vcpu == vcpu && r.level == level && r.hv_level == hv_level; }
};
// "vCPU 0 · L1(L0)", "vCPU 0 · L2(L1)"
std::string lane_label(const Lane& l);
// The lane a record is drawn in (GUI timeline, SVG / PNG, Perfetto tracks): the lane of the
// hypervisor that recorded it, except where the record is about the guest level as its own
// hypervisor sees it. A NESTED_EXIT is L2 leaving to L1 (L0 emulates that VM exit for L1,
// SDM Vol. 3C 27 "VM Exits" as L1 sees them): it belongs with L1's view of L2, L2(L1), where
// the NESTED_ENTRY back into L2 is. A DELIVERY happens in the guest it is delivered to, through
// that guest's IDT (Vol. 3A 6.12): it belongs with that level as its own hypervisor (level - 1)
// sees it, L2(L1) for L2, L1(L0) for L1, whichever hypervisor's VM entry injected it.
Lane lane_of(const es_record& r);
// The lanes of the recording, sorted. Exact for recordings up to `exact_below` events; above
// that, from the vcpus table (or an index skip over vcpu) crossed with the levels found in
// `samples` evenly spaced events and in the chains table.
Result<std::vector<Lane>> lanes(Recording& rec, const EventSpan& span, uint64_t exact_below = 200'000,
                                uint64_t samples = 4096);

// Events to draw for the time window [from_ns, to_ns]: every event when the window holds at
// most `max_events` (exact = true), else `max_events` events spread evenly over the window's
// id range (exact = false; a density picture). Ids must grow with time for the range to be
// right, which holds per recording session (the recorder assigns ids in time order).
struct WindowEvents {
  std::vector<Event> events;
  bool exact = true;
  uint64_t approx_count = 0;  // events in the window (id range size)
};
Result<WindowEvents> window_events(Recording& rec, uint64_t from_ns, uint64_t to_ns, uint64_t max_events,
                                   std::optional<uint16_t> vcpu = std::nullopt);

// One row of the chains table (materialized by the recorder / `materialize_chains`).
struct ChainRow {
  uint64_t id = 0, root_event = 0, first_event = 0, last_event = 0, event_count = 0, interrupts_chain = 0;
  uint8_t vector = 0, type = 0, level = 1;
  bool inferred = false;
  std::string outcome;  // "delivered", "promoted to #DF", ...
};
// "IRQ 0x20" / "#PF" / "NMI" for a chain row.
std::string chain_row_event_text(const ChainRow& c);
// The row materialize_chains stores for a chain built in memory (load_chains; a recording written
// without a chains table): vector [7:0] and type [10:8] of its event word, which is in VM-entry
// interruption-information format (SDM Vol. 3C 25.8.3), the level of its root (of its first member
// when the root is missing), first / last member, count, outcome name, inferred mark, link.
ChainRow chain_row_of(const Chain& c);

struct ChainFilter {
  std::optional<uint8_t> vector, type, level;
  std::optional<std::string> outcome;  // as in ChainRow::outcome
};
// True when the recording has a materialized chains table with rows; else chains can only be
// built in memory with load_chains (recordings written with chain materialization off).
Result<bool> chains_materialized(Recording& rec);
// Ids of the chains matching the filter, by id.
Result<std::vector<uint64_t>> chain_ids(Recording& rec, const ChainFilter& f);
// Up to `max` chain rows with id >= first_id matching the filter, by id.
Result<std::vector<ChainRow>> chain_rows(Recording& rec, const ChainFilter& f, uint64_t first_id, uint64_t max);
Result<std::optional<ChainRow>> chain_row(Recording& rec, uint64_t id);
// The chain after / before chain `id` (by id), matching the filter.
Result<std::optional<ChainRow>> step_chain(Recording& rec, uint64_t id, bool forward, const ChainFilter& f = {});
// Whose VM exits the recording holds (the first VM exit's ES_FLAG_SVM, one index seek): what
// outcome_reference() cites for a chain read as a row, without its members. Unknown without exits
// (or when the file cannot say: it only chooses which manual a sentence cites).
Vendor recording_vendor(Recording& rec);
// What a chain read as a row cites for its outcome, as `chains` does (chain_outcome_reference):
// outcome_reference(), but for a discard the reason its last DISCARD record gives
// (discard_reference; the chain's entries in events_origin from its last member back to that
// record). Empty for a row whose
// outcome is no outcome's name.
std::string row_outcome_reference(Recording& rec, const ChainRow& row, Vendor v);
// The members of chain `id` by id (root included), through events_origin.
Result<std::vector<Event>> chain_members(Recording& rec, uint64_t id);

// A chain's members to draw for the time window [from_ns, to_ns] (GUI timeline, SVG / PNG; issue
// #18: a livelock's chain has millions of members, which the timeline held and drew on every
// repaint). A chain of at most `max_members` members: all of them, in or out of the window
// (exact; an arc may come from a member outside it). A longer one: its first member (the chain's
// name is drawn beside it), then its members in the window, all of them when at most
// `max_members`, else `max_members` spread evenly over the window's id range (exact = false).
// Reads at most about 2 * max_members index entries whatever the chain's length.
struct ChainMarks {
  std::vector<Event> members;  // by id
  bool exact = true;
  bool whole = true;       // every member of the chain (not only those in the window)
  uint64_t in_window = 0;  // members in the window (at least, when not exact)
};
Result<ChainMarks> chain_marks(Recording& rec, uint64_t id, uint64_t from_ns, uint64_t to_ns, uint64_t max_members);
// The times of a chain's first and last member in time (the timeline's "fit chain"): over every
// member for a chain of at most `max_members` members, else the times of its first and last member
// by id (ids follow time within a recording session). nullopt: no such chain.
Result<std::optional<std::pair<uint64_t, uint64_t>>> chain_time_extent(Recording& rec, uint64_t id,
                                                                       uint64_t max_members);

// Checker findings (ES_KIND_VIOLATION records), by id, at most `max`.
Result<std::vector<Event>> violations(Recording& rec, uint64_t max = 10'000);

}  // namespace es::replay
