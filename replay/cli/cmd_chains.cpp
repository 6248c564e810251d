#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>
#include <unordered_map>

#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"
#include "replay/browse.h"
#include "replay/chains.h"
#include "replay/check/checker.h"
#include "replay/cli/args.h"
#include "replay/cli/commands.h"
#include "replay/cli/startup.h"
#include "replay/format.h"
#include "replay/names.h"
#include "replay/recording.h"
#include "replay/summary.h"

namespace es::cli {

namespace {
constexpr std::string_view kName = "chains";
constexpr OptionSpec kOptions[] = {
    {"chain", "N", "only chain N (its root event id)"},
    {"outcome", "O", "only chains with this outcome (delivered, lost, \"triple fault\", ...)"},
};

// What a chain's story says of another chain it names: its title and outcome. 16 bytes a
// chain, kept in id order, so `chains` streams a 100 M-event recording (issue #18) where it
// held every chain and member before.
struct ChainBrief {
  uint64_t id = 0;
  uint32_t event_word = 0;
  bool root_found = false;
  replay::Outcome outcome = replay::Outcome::Lost;
};
class Briefs {
 public:
  void add(const replay::Chain& c) { v_.push_back({c.id, c.event_word, c.root_found, c.outcome}); }
  void sort() {
    std::sort(v_.begin(), v_.end(), [](const ChainBrief& a, const ChainBrief& b) { return a.id < b.id; });
  }
  const ChainBrief* find(uint64_t id) const {
    auto it = std::lower_bound(v_.begin(), v_.end(), id, [](const ChainBrief& b, uint64_t x) { return b.id < x; });
    return it != v_.end() && it->id == id ? &*it : nullptr;
  }
  std::string title(uint64_t id) const {
    const ChainBrief* b = find(id);
    return b ? replay::chain_event_text(b->id, b->event_word, b->root_found) : "?";
  }

 private:
  std::vector<ChainBrief> v_;
};

// The highest chain id the story of `c` names (0: none): it can be printed once the walk in id
// order has passed that id.
uint64_t last_named(const replay::Chain& c) {
  uint64_t m = c.interrupts_chain;
  for (uint64_t other : c.interrupted_by) m = std::max(m, other);
  return m;
}

// Who an event line is about: the guest level and, for what a hypervisor observed or
// decided, that hypervisor: "L2(L0)" = about L2, seen / decided by L0; "L2(L1)" = L1's
// decision for its L2. Deliveries are the CPU's: just the level, "L2".
std::string level_tag(const es_record& r) { return replay::level_text(r); }

// "#187  0.000026176  L2(L0)  VM_EXIT        EXCEPTION_NMI ... cause=#186"
std::string event_line(const replay::Event& ev) {
  const es_record& r = ev.rec;
  const std::string_view kind = replay::kind_name(r.kind);
  char head[160];
  std::snprintf(head, sizeof head, "#%-7llu %s  %-7s %-13s ", static_cast<unsigned long long>(r.id),
                replay::format_time(r.time_ns).c_str(), level_tag(r).c_str(),
                kind.empty() ? ("kind" + std::to_string(r.kind)).c_str() : std::string(kind).c_str());
  std::string s = head;
  if (r.kind == ES_KIND_VIOLATION) {
    const check::Rule* rule = check::find_rule(r.reason);
    s += rule ? std::string(rule->name) : "rule " + std::to_string(r.reason);
    if (r.aux) s += " count=" + std::to_string(r.aux);
  } else {
    s += replay::describe_event_fields(ev);
  }
  if (r.cause) s += " cause=#" + std::to_string(r.cause);
  return s;
}

bool is_interruption(const es_record& r) {  // as replay::Chain::interruptions counts them
  return (r.kind == ES_KIND_VM_EXIT || r.kind == ES_KIND_NESTED_EXIT) &&
         arch::IdtVectoringInfo(r.idt_vectoring_info).valid();
}

// printf into a string.
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char small[512];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return {};
  if (static_cast<size_t>(n) < sizeof small) return std::string(small, static_cast<size_t>(n));
  std::string out(static_cast<size_t>(n), '\0');
  va_start(ap, fmt);
  std::vsnprintf(out.data(), out.size() + 1, fmt, ap);
  va_end(ap);
  return out;
}

// The lines of one part of a chain's story, gathered while its members are read once and printed
// after the part before it: in memory up to 1 MiB, then in a temporary file (a livelock's chain
// has millions of members, each with a line in two parts).
class Section {
 public:
  Section() = default;
  Section(const Section&) = delete;
  Section& operator=(const Section&) = delete;
  ~Section() {
    if (file_) std::fclose(file_);
  }
  void add(std::string_view line) {
    text_ += line;
    if (text_.size() >= kInMemory) spill();
  }
  // "    " + line + "\n", without the temporaries.
  void add_member(std::string_view line) {
    text_ += "    ";
    text_ += line;
    text_ += '\n';
    if (text_.size() >= kInMemory) spill();
  }
  // Empty again, for the next chain (its memory kept).
  void clear() {
    text_.clear();
    if (file_) std::fclose(file_);
    file_ = nullptr;
    failed_ = false;
  }
  Result<void> print() {
    if (file_) {
      spill();
      std::rewind(file_);
      char buf[1 << 16];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0) std::fwrite(buf, 1, n, stdout);
      if (std::ferror(file_)) failed_ = true;
    } else {
      std::fwrite(text_.data(), 1, text_.size(), stdout);
    }
    if (failed_)
      return make_error(
          "could not keep a chain's lines in a temporary file (is TMPDIR or /tmp full?); free some space and run it "
          "again.");
    return {};
  }

 private:
  static constexpr size_t kInMemory = size_t{1} << 20;
  void spill() {
    if (!file_ && !failed_) file_ = std::tmpfile();
    if (!file_ || std::fwrite(text_.data(), 1, text_.size(), file_) != text_.size()) failed_ = true;
    text_.clear();
  }
  std::string text_;
  std::FILE* file_ = nullptr;
  bool failed_ = false;
};

// The parts of a chain's story its members give, gathered from one read of them in id order: the
// member lines (printed at once when `direct`, else kept in a Section until the header is out),
// then, in Sections, the interruptions, decisions and nested transitions, and the raises a fault
// escalation lists.
class ChainBody {
 public:
  explicit ChainBody(bool direct) : direct_(direct) {}

  void add(const replay::Event& ev) {
    const es_record& r = ev.rec;
    if (direct_)
      std::printf("    %s\n", event_line(ev).c_str());
    else
      members_.add_member(event_line(ev));
    if (is_interruption(r)) {
      std::string q = replay::qualification_text(r.reason, r.flags, r.qualification);
      interrupted_.add(
          format("  interrupted: #%llu %s%s%s%s during delivery of %s  [%s]\n", static_cast<unsigned long long>(r.id),
                 r.kind == ES_KIND_NESTED_EXIT ? "nested exit " : "", replay::exit_reason_text(r).c_str(),
                 q.empty() ? "" : " ", q.empty() ? "" : ("[" + q + "]").c_str(),
                 arch::describe(arch::IdtVectoringInfo(r.idt_vectoring_info)).c_str(), level_tag(r).c_str()));
    }
    const bool only_raises_before = only_raises_;
    only_raises_ = only_raises_ && r.kind == ES_KIND_RAISE;
    if (r.kind == ES_KIND_DECISION) {
      switch (r.reason) {
        case ES_DECISION_REQUEUE_FROM_VECTORING:
        case ES_DECISION_INJECT_REINJECTED:
        case ES_DECISION_DROP_FROM_VECTORING:
        case ES_DECISION_CANCEL_INJECTION:
        case ES_DECISION_INJECT_NEW:
        case ES_DECISION_REFLECT_TO_L1:
        case ES_DECISION_SHUTDOWN:
        case ES_DECISION_DISCARD:
        case ES_DECISION_HANDLE_IN_L0:
        case ES_DECISION_IMMEDIATE_EXIT:
          decided_.add(format("  decision:    #%llu %s  [%s]\n", static_cast<unsigned long long>(r.id),
                              replay::describe_event_fields(ev).c_str(), level_tag(r).c_str()));
          if (replay::first_injection_called_reinjection(r, only_raises_before))
            decided_.add("               " + std::string(replay::first_injection_called_reinjection_note()) + "\n");
          else if (replay::reinjected_without_exit(r, last_injection_.id == r.cause ? &last_injection_ : nullptr))
            decided_.add("               " + std::string(replay::reinjected_without_exit_note()) + "\n");
          if (r.reason == ES_DECISION_INJECT_NEW || r.reason == ES_DECISION_INJECT_REINJECTED) last_injection_ = r;
          break;
        default: break;
      }
    }
    // Nested transitions: L0's emulated exits from L2 to L1 and L1's entries into L2.
    if (r.kind == ES_KIND_NESTED_EXIT) {
      transitions_.add(format("  nested exit: #%llu L%u -> L%u: %s  [%s]\n", static_cast<unsigned long long>(r.id),
                              r.level, r.level > 0 ? r.level - 1 : 0, replay::describe_event_fields(ev).c_str(),
                              level_tag(r).c_str()));
    } else if (r.kind == ES_KIND_NESTED_ENTRY) {
      transitions_.add(format("  nested entry: #%llu L%u -> L%u: %s  [%s]\n", static_cast<unsigned long long>(r.id),
                              r.level > 0 ? r.level - 1 : 0, r.level, replay::describe_event_fields(ev).c_str(),
                              level_tag(r).c_str()));
    } else if (r.kind == ES_KIND_VIOLATION) {
      const check::Rule* rule = check::find_rule(r.reason);
      transitions_.add(format("  violation:   %s at #%llu (run 'exitscope check' for the explanation)\n",
                              rule ? std::string(rule->name).c_str() : ("rule " + std::to_string(r.reason)).c_str(),
                              static_cast<unsigned long long>(r.cause)));
    }
    if (r.kind == ES_KIND_RAISE) {
      if (raises_.size() < kMaxRaises)
        raises_.emplace_back(r.id,
                             arch::describe(arch::EntryIntrInfo(r.intr_info)) + " (#" + std::to_string(r.id) + ")");
      else
        raises_cut_ = true;
    }
  }

  // Empty again for the next chain's members (buffers kept).
  void clear() {
    for (Section* part : {&members_, &interrupted_, &decided_, &transitions_}) part->clear();
    only_raises_ = true;
    last_injection_ = es_record{};
    raises_.clear();
    raises_cut_ = false;
  }

  // The member lines (unless printed already), then the interruptions, decisions, transitions.
  Result<void> print() {
    if (!direct_)
      if (auto p = members_.print(); !p) return p;
    for (Section* part : {&interrupted_, &decided_, &transitions_})
      if (auto p = part->print(); !p) return p;
    return {};
  }
  // Its raises for a fault escalation's story (false: more than kMaxRaises, not all kept).
  bool raises(std::vector<std::pair<uint64_t, std::string>>& out) const {
    out = raises_;
    return !raises_cut_;
  }

 private:
  static constexpr size_t kMaxRaises = 4096;
  bool direct_;
  Section members_, interrupted_, decided_, transitions_;
  bool only_raises_ = true;     // every member so far is a RAISE
  es_record last_injection_{};  // the chain's last INJECT_NEW / INJECT_REINJECTED so far (id 0: none)
  std::vector<std::pair<uint64_t, std::string>> raises_;
  bool raises_cut_ = false;
};

// A chain's story. `body`: its members' parts, gathered while for_each_chain read the members
// (one read); without it they are read here (for_each_member: from memory, or for a chain too
// long to hold through the origin index), the member lines going straight out. Either way a
// livelock's chain of millions of members prints in bounded memory (issue #18).
Result<void> print_chain(replay::Recording& rec, const replay::Chain& c, const Briefs& by_id, replay::Vendor vendor,
                         ChainBody* body = nullptr) {
  std::vector<std::string> tags;  // the levels / deciders this chain crossed, in order of appearance
  bool nested = false;
  for (const auto& l : c.levels) {
    if (std::string t = replay::level_text(l.level, l.hv_level, l.delivery);
        !l.violation && std::find(tags.begin(), tags.end(), t) == tags.end())
      tags.push_back(std::move(t));
    nested = nested || l.level >= 2 || l.hv_level >= 1;
  }
  std::string list;
  for (const auto& t : tags) list += (list.empty() ? "" : ", ") + t;
  const es_record* first = c.root_found ? &c.root.rec : &c.events.front().rec;
  std::printf("chain %llu: %s  L%u vcpu%u  t=%s%s\n", static_cast<unsigned long long>(c.id),
              replay::chain_event_text(c).c_str(), first->level, first->vcpu,
              replay::format_time(first->time_ns).c_str(), c.inferred ? "  [inferred links]" : "");
  if (nested) std::printf("  across levels: %s\n", list.c_str());
  if (c.interrupts_chain) {
    std::printf("  interrupts chain %llu (%s): raised during its delivery\n",
                static_cast<unsigned long long>(c.interrupts_chain), by_id.title(c.interrupts_chain).c_str());
  }
  std::optional<ChainBody> read_here;
  if (!body) {
    read_here.emplace(true);
    body = &*read_here;
    auto read = replay::for_each_member(rec, c, [&](const replay::Event& ev) {
      body->add(ev);
      return true;
    });
    if (!read) return read;
  }
  if (auto p = body->print(); !p) return p;
  // Fault escalation's steps (its raises), told only when the chain tells one.
  const bool escalation = !c.interrupted_by.empty() &&
                          (c.outcome == replay::Outcome::PromotedToDf || c.outcome == replay::Outcome::TripleFault);
  std::vector<std::pair<uint64_t, std::string>> steps;
  if (escalation && !body->raises(steps)) {
    steps.clear();
    auto read = replay::for_each_member(rec, c, [&](const replay::Event& ev) {
      if (ev.rec.kind == ES_KIND_RAISE)
        steps.emplace_back(
            ev.rec.id, arch::describe(arch::EntryIntrInfo(ev.rec.intr_info)) + " (#" + std::to_string(ev.rec.id) + ")");
      return true;
    });
    if (!read) return read;
  }
  // Fault escalation as one story (Vol. 3A 6.15 Table 6-5): the event, each fault raised during
  // its delivery, the #DF it became, in the order they happened, and how it ended.
  if (escalation) {
    for (uint64_t other : c.interrupted_by) {
      steps.emplace_back(other, by_id.title(other) + " (chain " + std::to_string(other) + ")");
    }
    std::sort(steps.begin(), steps.end());
    std::string line;
    for (const auto& [id, text] : steps) line += text + " -> ";
    line += std::string(replay::to_string(c.outcome));
    std::printf("  escalation:  %s\n", line.c_str());
  }
  // A VM exit that showed a fault in this event's own delivery (replay::delivery_fault_of), and
  // what Table 6-5 (Vol. 3A 6.15) makes of the pair: the owed #DF is the point of a discard.
  // (Not when the event was delivered all the same: the hypervisor took that fault itself, a
  // shadow-paging #PF, and reinjected the event.)
  if (c.delivery_fault && c.outcome != replay::Outcome::Delivered &&
      c.outcome != replay::Outcome::ReinjectedThenDelivered) {
    const arch::EntryIntrInfo event(c.event_word);
    const auto first_class = event.type() == arch::InterruptionType::HardwareException
                                 ? arch::exception_class(static_cast<uint8_t>(event.vector()))
                                 : arch::ExceptionClass::Benign;
    const auto pair = arch::fault_during_delivery(first_class, arch::exception_class(c.delivery_fault_vector));
    const char* owed = pair == arch::FaultDuringDelivery::DoubleFault   ? "the pair owes #DF"
                       : pair == arch::FaultDuringDelivery::TripleFault ? "a fault delivering #DF: shutdown"
                                                                        : "handled serially";
    std::printf("  delivery fault: #%llu %s raised by its delivery (Table 6-5: %s)\n",
                static_cast<unsigned long long>(c.delivery_fault),
                std::string(arch::exception_mnemonic(c.delivery_fault_vector)).c_str(), owed);
  }
  for (uint64_t other : c.interrupted_by) {
    const ChainBrief* b = by_id.find(other);
    std::printf("  interrupted by chain %llu (%s, %s)\n", static_cast<unsigned long long>(other),
                by_id.title(other).c_str(), b ? std::string(replay::to_string(b->outcome)).c_str() : "?");
  }
  if (c.outcome_event)
    std::printf("  outcome:     %s (#%llu)\n", std::string(replay::to_string(c.outcome)).c_str(),
                static_cast<unsigned long long>(c.outcome_event));
  else
    std::printf("  outcome:     %s\n", std::string(replay::to_string(c.outcome)).c_str());
  std::printf("               %s\n\n", std::string(replay::chain_outcome_reference(c, vendor)).c_str());
  return {};
}

}  // namespace

int cmd_chains(int argc, char** argv) {
  const CommandSpec kSpec{kName, "DB [OPTIONS]",
                          "Explain the event chains of the recording DB. A chain is every event with the same\n"
                          "origin (the record that raised the original event). For each chain: the original\n"
                          "event, its events indented, the VM exits that interrupted its delivery (with their\n"
                          "IDT-vectoring info), what was requeued / reinjected / dropped, chains it interrupted\n"
                          "or was interrupted by (a chain raised while this one's delivery was in progress), and\n"
                          "the outcome with the SDM section it comes from: delivered; delivered after reinjection;\n"
                          "promoted to #DF; triple fault; handled serially (a fault in its delivery went first,\n"
                          "re-execution raises it again); superseded (the same, for an IRQ / NMI nothing raises\n"
                          "again); collapsed (NMI); coalesced (IRQ); handled by hypervisor (an intercepted event\n"
                          "it consumed); dropped by policy; discarded by hypervisor; pending at end; or lost.\n"
                          "Only the last three can be a hypervisor's bug ('exitscope check' reports them).",
                          kOptions};
  auto args = start_command(kSpec, argc, argv);
  if (!args) return args.exit_code;
  std::optional<uint64_t> only;
  if (auto v = args->get("chain")) {
    only = replay::parse_uint(*v);
    if (!only) return usage_error(kName, "option '--chain' needs a chain id (a number), not '" + *v + "'");
  }
  std::optional<std::string> outcome = args->get("outcome");
  if (outcome) {
    bool known = false;
    for (auto o : replay::kAllOutcomes) known = known || replay::to_string(o) == *outcome;
    if (!known) {
      std::string names;
      for (auto o : replay::kAllOutcomes) names += (names.empty() ? "" : ", ") + std::string(replay::to_string(o));
      return usage_error(kName, "unknown outcome '" + *outcome + "' for '--outcome' (" + names + ")");
    }
  }
  auto rec = open_recording(kName, args->positional[0]);
  if (!rec) return 2;
  size_t shown = 0;
  Briefs briefs;
  // Which vendor's sections a chain without exits cites: the recording's (one index seek).
  const replay::Vendor vendor = replay::recording_vendor(*rec);
  auto wanted = [&](const replay::Chain& c) { return !outcome || replay::to_string(c.outcome) == *outcome; };
  auto fail = [&](const std::string& error) {
    std::fflush(stdout);
    std::fprintf(stderr, "exitscope chains: %s\n", error.c_str());
    return 2;
  };
  if (only) {
    // --chain N reads that chain and the chains it names, not the whole recording.
    auto chains = replay::load_chain_and_links(*rec, *only);
    if (!chains) return fail(chains.error());
    for (const auto& c : *chains) briefs.add(c);
    briefs.sort();
    for (const auto& c : *chains) {
      if (c.id != *only || !wanted(c)) continue;
      if (auto p = print_chain(*rec, c, briefs, vendor); !p) return fail(p.error());
      ++shown;
    }
    if (shown == 0) {
      std::fprintf(stderr, "exitscope chains: no chain %llu in '%s'; run 'exitscope chains %s' to list them.\n",
                   static_cast<unsigned long long>(*only), rec->path().c_str(), rec->path().c_str());
      return 2;
    }
  } else {
    // Every chain, streamed in id order (memory: the chains not yet printed, 16 bytes for each
    // one seen). A chain that names a later one (a chain raised during its delivery) waits
    // until the walk has read it, so its title and outcome are known.
    std::deque<replay::Chain> waiting;
    std::string failure;
    auto print = [&](const replay::Chain& c, ChainBody* body) {
      if (!wanted(c) || !failure.empty()) return;
      if (auto p = print_chain(*rec, c, briefs, vendor, body); !p)
        failure = p.error();
      else
        ++shown;
    };
    auto print_ready = [&](uint64_t seen_up_to) {
      while (!waiting.empty() && last_named(waiting.front()) <= seen_up_to) {
        print(waiting.front(), nullptr);
        waiting.pop_front();
      }
    };
    // A chain too long to hold would be read twice, to decide it, then to print it. Without
    // --outcome (every chain printed) its body is gathered from the walk's own read instead
    // (for_each_chain's hook for the members of such chains) and printed after its header; a
    // held chain prints from the walk's memory, and one that has to wait for a later one is
    // read again when printed. With --outcome most chains are not printed: nothing is gathered.
    std::optional<ChainBody> body;
    uint64_t body_of = 0;
    std::function<bool(const replay::Event&)> gather;
    if (!outcome)
      gather = [&](const replay::Event& ev) {
        if (ev.rec.origin != body_of) {
          if (!body) body.emplace(false);
          body->clear();
          body_of = ev.rec.origin;
        }
        body->add(ev);
        return true;
      };
    auto walked = replay::for_each_chain(rec->db(), gather, [&](const replay::Chain& c) {
      briefs.add(c);
      print_ready(c.id);
      if (waiting.empty() && last_named(c) <= c.id)
        print(c, !c.members_held && body_of == c.id ? &*body : nullptr);
      else
        waiting.push_back(c);
      return failure.empty();
    });
    if (!walked) return fail(walked.error());
    print_ready(UINT64_MAX);
    if (!failure.empty()) return fail(failure);
  }
  if (shown == 0) std::printf("no chains\n");
  return 0;
}

}  // namespace es::cli
