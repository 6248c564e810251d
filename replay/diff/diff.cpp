#include "replay/diff/diff.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>

#include "hv/arch/event_info.h"
#include "replay/format.h"

namespace es::diff {

namespace {

constexpr size_t kBatch = 4096;

// Reads the compared events of a recording in id order, a batch at a time.
class Pager {
 public:
  explicit Pager(replay::Recording& rec) : rec_(rec) {}
  // The next event, or nullopt at the end. Error: the recording cannot be read.
  Result<std::optional<replay::Event>> next() {
    if (pos_ == batch_.size()) {
      if (done_) return std::optional<replay::Event>{};
      batch_.clear();
      pos_ = 0;
      auto r = replay::query_events(rec_.db(), "e.id > ? AND e.kind != ?",
                                    {static_cast<int64_t>(last_id_), int64_t{ES_KIND_VIOLATION}},
                                    [&](const replay::Event& e) {
                                      batch_.push_back(e);
                                      return batch_.size() < kBatch;
                                    });
      if (!r) return make_error(r.error());
      if (batch_.size() < kBatch) done_ = true;
      if (batch_.empty()) return std::optional<replay::Event>{};
      last_id_ = batch_.back().rec.id;
    }
    return std::optional<replay::Event>(batch_[pos_++]);
  }

 private:
  replay::Recording& rec_;
  std::vector<replay::Event> batch_;
  size_t pos_ = 0;
  uint64_t last_id_ = 0;
  bool done_ = false;
};

std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

// One chain's steps: interruptions and what the hypervisors did about them.
void append_steps(const replay::Chain& c, std::vector<std::string>& steps) {
  for (const replay::Event& ev : c.events) {
    const es_record& r = ev.rec;
    std::string step;
    if ((r.kind == ES_KIND_VM_EXIT || r.kind == ES_KIND_NESTED_EXIT) &&
        arch::IdtVectoringInfo(r.idt_vectoring_info).valid()) {
      step = replay::exit_reason_text(r);
      if (r.kind == ES_KIND_NESTED_EXIT) step = "nested exit " + step;
    } else if (r.kind == ES_KIND_DECISION) {
      switch (r.reason) {
        case ES_DECISION_INJECT_REINJECTED: step = "reinjected"; break;
        case ES_DECISION_DROP_FROM_VECTORING: step = "dropped by policy"; break;
        case ES_DECISION_DISCARD: step = "discarded"; break;
        case ES_DECISION_CANCEL_INJECTION: step = "cancelled"; break;
        case ES_DECISION_REFLECT_TO_L1: step = "reflected to L1"; break;
        default: break;
      }
      if (!step.empty() && r.hv_level > 0) step += " by L" + std::to_string(r.hv_level);
    }
    if (!step.empty()) steps.push_back(step);
  }
  // The story already shows each reinjection: end it with "delivered".
  const std::string outcome(replay::to_string(
      c.outcome == replay::Outcome::ReinjectedThenDelivered ? replay::Outcome::Delivered : c.outcome));
  if (steps.empty() || steps.back() != outcome) steps.push_back(outcome);
}

size_t compared_count(const replay::Chain& c) {
  return static_cast<size_t>(
      std::count_if(c.events.begin(), c.events.end(), [](const replay::Event& e) { return is_compared(e.rec); }));
}

uint8_t chain_level(const replay::Chain& c) { return c.root_found ? c.root.rec.level : c.events.front().rec.level; }
uint64_t chain_rip(const replay::Chain& c) { return c.root_found ? c.root.rec.rip : c.events.front().rec.rip; }

}  // namespace

NormalizedEvent normalize(const es_record& r) {
  NormalizedEvent n;
  n.kind = r.kind;
  n.level = r.level;
  n.hv_level = r.hv_level;
  n.vcpu = r.vcpu;
  n.reason = r.reason;
  n.intr_info = r.intr_info;
  n.intr_error = r.intr_error;
  n.idt_vectoring_info = r.idt_vectoring_info;
  n.instr_len = r.instr_len;
  n.rip = r.rip;
  n.qualification = r.qualification;
  n.guest_phys = r.guest_phys;
  return n;
}

bool is_compared(const es_record& r) { return r.kind != ES_KIND_VIOLATION; }

std::string describe_key(const ChainKey& k) {
  std::string s = arch::describe(arch::EntryIntrInfo(k.event_word)) + " at rip " + hex(k.rip) + " (L" +
                  std::to_string(k.level) + ")";
  if (k.ordinal) s += " [" + std::to_string(k.ordinal) + "]";
  return s;
}

std::vector<ChainStory> chain_stories(const std::vector<replay::Chain>& chains) {
  // chains come in id order (build_chains); fold each dropped chain's regeneration into it.
  std::vector<bool> absorbed(chains.size(), false);
  std::map<ChainKey, ChainStory> out;
  std::map<std::tuple<uint32_t, uint8_t, uint64_t>, uint32_t> ordinals;
  for (size_t i = 0; i < chains.size(); ++i) {
    if (absorbed[i]) continue;
    const replay::Chain* c = &chains[i];
    const auto base = std::make_tuple(c->event_word, chain_level(*c), chain_rip(*c));
    ChainStory st;
    st.key = {c->event_word, chain_level(*c), chain_rip(*c), ordinals[base]++};
    std::vector<std::string> steps;
    size_t at = i;
    for (;;) {
      st.chain_ids.push_back(c->id);
      st.event_count += compared_count(*c);
      append_steps(*c, steps);
      st.outcome = c->outcome;
      if (c->outcome != replay::Outcome::DroppedByPolicy) break;
      size_t next = at + 1;
      while (next < chains.size() &&
             (absorbed[next] ||
              std::make_tuple(chains[next].event_word, chain_level(chains[next]), chain_rip(chains[next])) != base))
        ++next;
      if (next == chains.size()) break;
      absorbed[next] = true;
      steps.push_back("regenerated");
      at = next;
      c = &chains[next];
    }
    for (const std::string& s : steps) st.story += (st.story.empty() ? "" : " -> ") + s;
    out.emplace(st.key, std::move(st));
  }
  std::vector<ChainStory> v;
  v.reserve(out.size());
  for (auto& [k, s] : out) v.push_back(std::move(s));
  return v;
}

Result<DiffResult> diff_recordings(replay::Recording& a, replay::Recording& b, const DiffOptions& options) {
  DiffResult res;
  for (auto [rec, side] : {std::pair{&a, &res.a}, std::pair{&b, &res.b}}) {
    side->path = rec->path();
    auto s = rec->session();
    if (!s) return make_error(s.error());
    side->session = std::move(s).value();
    for (auto [kind, n] : side->session.counts_by_kind) {
      if (kind == ES_KIND_VIOLATION)
        side->violations = n;
      else
        side->compared_events += n;
    }
  }

  if (!options.chains_only) {
    Pager pa(a), pb(b);
    std::deque<replay::Event> ring_a, ring_b;  // the last `context` equal events
    for (uint64_t index = 0;; ++index) {
      auto ea = pa.next();
      if (!ea) return make_error(ea.error());
      auto eb = pb.next();
      if (!eb) return make_error(eb.error());
      if (!*ea && !*eb) break;
      if (*ea && *eb && normalize((*ea)->rec) == normalize((*eb)->rec)) {
        ring_a.push_back(**ea);
        ring_b.push_back(**eb);
        if (ring_a.size() > options.context) {
          ring_a.pop_front();
          ring_b.pop_front();
        }
        continue;
      }
      Divergence d;
      d.index = index;
      d.a.assign(ring_a.begin(), ring_a.end());
      d.b.assign(ring_b.begin(), ring_b.end());
      d.a_at = d.a.size();
      d.b_at = d.b.size();
      for (auto [first, pager, out] : {std::tuple{&*ea, &pa, &d.a}, std::tuple{&*eb, &pb, &d.b}}) {
        if (!*first) continue;
        out->push_back(**first);
        for (size_t i = 0; i < options.context; ++i) {
          auto more = pager->next();
          if (!more) return make_error(more.error());
          if (!*more) break;
          out->push_back(**more);
        }
      }
      res.first = std::move(d);
      break;
    }
  }

  auto ca = replay::load_chains(a);
  if (!ca) return make_error(ca.error());
  auto cb = replay::load_chains(b);
  if (!cb) return make_error(cb.error());
  const std::vector<ChainStory> sa = chain_stories(*ca), sb = chain_stories(*cb);
  std::map<ChainKey, ChainDifference> diffs;
  for (const ChainStory& s : sa) diffs[s.key].a = s;
  for (const ChainStory& s : sb) diffs[s.key].b = s;
  for (auto& [key, d] : diffs) {
    d.key = key;
    if (d.a && d.b && d.a->story == d.b->story && d.a->event_count == d.b->event_count) continue;
    res.chains.push_back(std::move(d));
  }
  return res;
}

}  // namespace es::diff
