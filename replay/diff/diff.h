// Where two recordings of the same guest diverge (e.g. the same scenario under two
// reinjection policies). Qt-free.
//
// 1. The normalized event sequences are compared in id order: kind, level, hv_level, vcpu,
//    reason, intr_info, intr_error, idt_vectoring_info, instr_len, rip, qualification,
//    guest_phys. Ids, causes, origins and times are not compared (they shift as soon as one
//    side records one more event), nor are ES_KIND_VIOLATION records (derived, not observed).
// 2. Chains are matched by (original event word, level, root RIP, ordinal among chains with
//    the same three), and those whose story (what happened to the event) or event count
//    differ are listed. A chain dropped by policy and the chain of the same event the CPU
//    then raised again at the same RIP (its regeneration: Vol. 3C 28.2.4, a hardware
//    exception not reinjected recurs when the instruction is re-executed) are one entry.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "replay/chains.h"
#include "replay/recording.h"
#include "schema/result.h"

namespace es::diff {

struct NormalizedEvent {
  uint16_t kind = 0;
  uint8_t level = 0, hv_level = 0;
  uint16_t vcpu = 0;
  uint32_t reason = 0, intr_info = 0, intr_error = 0, idt_vectoring_info = 0, instr_len = 0;
  uint64_t rip = 0, qualification = 0, guest_phys = 0;
  bool operator==(const NormalizedEvent&) const = default;
};
NormalizedEvent normalize(const es_record& r);
// False for records the comparison skips (ES_KIND_VIOLATION).
bool is_compared(const es_record& r);

struct ChainKey {
  uint32_t event_word = 0;  // VM-entry interruption-info format
  uint8_t level = 0;
  uint64_t rip = 0;  // the root's RIP
  // False when the root was inferred (a trace never shows where an event came from): its RIP
  // is not known, and `rip` (0) is not shown.
  bool rip_known = true;
  uint32_t ordinal = 0;  // among chains with the same word, level and RIP, in id order
  auto operator<=>(const ChainKey&) const = default;
};

// One chain, or a chain dropped by policy followed by its regenerations.
struct ChainStory {
  ChainKey key;
  std::vector<uint64_t> chain_ids;
  replay::Outcome outcome = replay::Outcome::Lost;  // of the last chain
  size_t event_count = 0;                           // events of all its chains (violations not counted)
  // "EPT_VIOLATION -> dropped by policy -> regenerated -> delivered". A unit of up to four steps
  // repeated three times or more in a row is written once with its count, "(EPT_VIOLATION ->
  // reinjected) x 79780 -> lost" (a livelock's chain is one such unit), and a story of more
  // than kStoryShown parts keeps its first and last ones around "... (N steps) ...".
  std::string story;
  uint64_t steps = 0;       // steps of the whole story
  uint64_t steps_hash = 0;  // of the whole sequence of steps: two stories are equal when it,
                            // `steps` and `story` are
  static constexpr size_t kStoryShown = 32;
};

struct ChainDifference {
  ChainKey key;
  std::optional<ChainStory> a, b;  // nullopt: no such chain on that side
};

struct Divergence {
  uint64_t index = 0;               // position in the normalized sequences (0-based)
  std::vector<replay::Event> a, b;  // context: up to N events before, the differing one, N after
  size_t a_at = 0, b_at = 0;        // index of the differing event in a / b (== size: that side ended)
};

struct Side {
  std::string path;
  replay::SessionSummary session;
  uint64_t compared_events = 0;
  uint64_t violations = 0;  // ES_KIND_VIOLATION records
};

struct DiffOptions {
  size_t context = 3;
  bool chains_only = false;  // skip the event comparison
};

struct DiffResult {
  Side a, b;
  std::optional<Divergence> first;  // nullopt: sequences identical (or not compared)
  std::vector<ChainDifference> chains;
  bool identical() const { return !first && chains.empty(); }
};

Result<DiffResult> diff_recordings(replay::Recording& a, replay::Recording& b, const DiffOptions& options = {});

// The stories of a recording's chains (regenerations folded in), in key order. Reads the chains
// one at a time (replay::for_each_chain) and a chain's members as it goes: a livelock's chain of
// millions of members is not held, and its story is a few parts long.
Result<std::vector<ChainStory>> chain_stories(replay::Recording& rec);

// "#PF at rip 0x100036 (L1)" (+ " [2]" for ordinal 2); "IRQ 0xd1 (L1, root's RIP not traced)".
std::string describe_key(const ChainKey& k);

}  // namespace es::diff
