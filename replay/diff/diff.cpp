#include "replay/diff/diff.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

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

// A member's step in its chain's story: an interruption of the event's delivery, or what a
// hypervisor did about it; empty for the other members.
std::string step_of(const es_record& r) {
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
  return step;
}

// Writes a story as its steps arrive, in memory bounded by the parts it shows: a unit of up to
// kMaxUnit steps that repeats at once (twice) starts a run, which every further whole repetition
// extends; a run of three or more is one part, "(A -> B) x N". Greedy (the shortest unit that
// repeats wins), so a story is always written the same way for the same steps. Parts past
// kStoryShown keep the first ones and the last kTail.
class StoryWriter {
 public:
  void push(const std::string& step) {
    ++steps_;
    for (unsigned char ch : step) hash_ = (hash_ ^ ch) * 0x100000001b3ull;  // FNV-1a
    hash_ = (hash_ ^ 0x1f) * 0x100000001b3ull;                              // step separator
    last_ = step;
    feed(step);
  }
  const std::string& last() const { return last_; }

  void finish_into(ChainStory& st) {
    if (run_) {
      std::vector<std::string> after(run_->unit.begin(), run_->unit.begin() + static_cast<std::ptrdiff_t>(partial_));
      emit(std::move(*run_));
      for (std::string& p : after) emit({{std::move(p)}, 1});
    }
    run_.reset();
    partial_ = 0;
    for (std::string& p : raw_) emit({{std::move(p)}, 1});
    raw_.clear();
    std::string out;
    auto add = [&](const std::string& part) { out += (out.empty() ? "" : " -> ") + part; };
    for (const Part& p : head_) add(text(p));
    if (omitted_steps_) add("... (" + std::to_string(omitted_steps_) + " steps) ...");
    for (const Part& p : tail_) add(text(p));
    st.story = std::move(out);
    st.steps = steps_;
    st.steps_hash = hash_;
  }

 private:
  static constexpr size_t kMaxUnit = 4, kTail = 8;
  struct Part {
    std::vector<std::string> unit;
    uint64_t count = 1;
  };

  static std::string text(const Part& p) {
    std::string unit;
    for (const std::string& s : p.unit) unit += (unit.empty() ? "" : " -> ") + s;
    if (p.count >= 3) return (p.unit.size() > 1 ? "(" + unit + ")" : unit) + " x " + std::to_string(p.count);
    std::string out = unit;
    for (uint64_t i = 1; i < p.count; ++i) out += " -> " + unit;
    return out;
  }

  void feed(const std::string& step) {
    if (run_) {
      if (step == run_->unit[partial_]) {
        if (++partial_ == run_->unit.size()) {
          ++run_->count;
          partial_ = 0;
        }
        return;
      }
      // The run ends here: what followed its last whole unit is read again, unit by unit.
      std::vector<std::string> again(run_->unit.begin(), run_->unit.begin() + static_cast<std::ptrdiff_t>(partial_));
      again.push_back(step);
      emit(std::move(*run_));
      run_.reset();
      partial_ = 0;
      for (const std::string& s : again) feed(s);
      return;
    }
    raw_.push_back(step);
    const size_t n = raw_.size();
    for (size_t k = 1; k <= kMaxUnit && 2 * k <= n; ++k) {
      if (!std::equal(raw_.end() - static_cast<std::ptrdiff_t>(2 * k), raw_.end() - static_cast<std::ptrdiff_t>(k),
                      raw_.end() - static_cast<std::ptrdiff_t>(k)))
        continue;
      for (size_t i = 0; i + 2 * k < n; ++i) emit({{std::move(raw_[i])}, 1});
      run_ = Part{{raw_.end() - static_cast<std::ptrdiff_t>(k), raw_.end()}, 2};
      raw_.clear();
      return;
    }
    if (raw_.size() > 2 * kMaxUnit) {  // too old to start a run
      emit({{std::move(raw_.front())}, 1});
      raw_.erase(raw_.begin());
    }
  }

  void emit(Part p) {
    if (head_.size() < ChainStory::kStoryShown - kTail) {
      head_.push_back(std::move(p));
      return;
    }
    tail_.push_back(std::move(p));
    if (tail_.size() > kTail) {
      omitted_steps_ += tail_.front().unit.size() * tail_.front().count;
      tail_.pop_front();
    }
  }

  uint64_t steps_ = 0;
  uint64_t hash_ = 0xcbf29ce484222325ull;
  std::string last_;
  std::vector<std::string> raw_;  // steps not in a run yet (at most 2 * kMaxUnit)
  std::optional<Part> run_;       // the run being extended
  size_t partial_ = 0;            // steps after the run's last whole unit (its first ones)
  std::vector<Part> head_;
  std::deque<Part> tail_;
  uint64_t omitted_steps_ = 0;
};

const es_record& chain_root(const replay::Chain& c) { return c.root_found ? c.root.rec : c.events.front().rec; }
uint8_t chain_level(const replay::Chain& c) { return chain_root(c).level; }
// An inferred root (imported traces: a trace never shows where an event came from) has no RIP.
bool chain_rip_known(const replay::Chain& c) { return !(chain_root(c).flags & ES_FLAG_INFERRED); }
uint64_t chain_rip(const replay::Chain& c) { return chain_rip_known(c) ? chain_root(c).rip : 0; }

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
  std::string s = arch::describe(arch::EntryIntrInfo(k.event_word));
  if (k.rip_known) s += " at rip " + hex(k.rip);
  s += " (L" + std::to_string(k.level) + (k.rip_known ? ")" : ", root's RIP not traced)");
  if (k.ordinal) s += " [" + std::to_string(k.ordinal) + "]";
  return s;
}

Result<std::vector<ChainStory>> chain_stories(replay::Recording& rec) {
  // Chains come in id order; a chain dropped by policy stays open until the next chain of the
  // same event, level and root RIP, its regeneration, which continues its story. A held chain's
  // steps come from its members in memory; a chain too long to hold is written from the walk's
  // own read of its members (for_each_chain's hook), and read again only when it is a
  // regeneration continuing an open story.
  using Base = std::tuple<uint32_t, uint8_t, uint64_t, bool>;
  struct Open {
    ChainStory st;
    StoryWriter w;
  };
  std::map<Base, Open> open;
  std::map<Base, uint32_t> ordinals;
  std::map<ChainKey, ChainStory> out;
  auto close = [&](std::map<Base, Open>::iterator it) {
    it->second.w.finish_into(it->second.st);
    ChainStory& st = it->second.st;
    out.emplace(st.key, std::move(st));
    open.erase(it);
  };
  auto add_steps = [](StoryWriter& w, size_t& compared, const replay::Event& ev) {
    if (is_compared(ev.rec)) ++compared;
    if (std::string step = step_of(ev.rec); !step.empty()) w.push(step);
  };
  // The chain too long to hold being read by the walk.
  uint64_t unheld_of = 0;
  StoryWriter unheld;
  size_t unheld_compared = 0;
  std::string member_error;
  auto walked = replay::for_each_chain(
      rec.db(),
      [&](const replay::Event& ev) {
        if (ev.rec.origin != unheld_of) {
          unheld_of = ev.rec.origin;
          unheld = StoryWriter{};
          unheld_compared = 0;
        }
        add_steps(unheld, unheld_compared, ev);
        return true;
      },
      [&](const replay::Chain& c) {
        const Base base{c.event_word, chain_level(c), chain_rip(c), chain_rip_known(c)};
        auto it = open.find(base);
        const bool fresh = it == open.end();
        if (fresh) {
          it = open.emplace(base, Open{}).first;
          it->second.st.key = {c.event_word, chain_level(c), chain_rip(c), chain_rip_known(c), ordinals[base]++};
        } else {
          it->second.w.push("regenerated");
        }
        Open& o = it->second;
        size_t compared = 0;
        if (c.members_held) {
          for (const replay::Event& ev : c.events) add_steps(o.w, compared, ev);
        } else if (fresh) {
          o.w = std::move(unheld);
          compared = unheld_compared;
        } else {
          auto again = replay::for_each_member(rec, c, [&](const replay::Event& ev) {
            add_steps(o.w, compared, ev);
            return true;
          });
          if (!again) {
            member_error = again.error();
            return false;
          }
        }
        o.st.chain_ids.push_back(c.id);
        o.st.event_count += compared;
        // The story already shows each reinjection: end it with "delivered".
        const std::string outcome(replay::to_string(
            c.outcome == replay::Outcome::ReinjectedThenDelivered ? replay::Outcome::Delivered : c.outcome));
        if (o.w.last() != outcome) o.w.push(outcome);
        o.st.outcome = c.outcome;
        if (c.outcome != replay::Outcome::DroppedByPolicy) close(it);
        return true;
      });
  if (!walked) return make_error(walked.error());
  if (!member_error.empty()) return make_error(member_error);
  while (!open.empty()) close(open.begin());
  std::vector<ChainStory> v;
  v.reserve(out.size());
  for (auto& [k, st] : out) v.push_back(std::move(st));
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

  auto sa = chain_stories(a);
  if (!sa) return make_error(sa.error());
  auto sb = chain_stories(b);
  if (!sb) return make_error(sb.error());
  std::map<ChainKey, ChainDifference> diffs;
  for (ChainStory& s : *sa) diffs[s.key].a = std::move(s);
  for (ChainStory& s : *sb) diffs[s.key].b = std::move(s);
  for (auto& [key, d] : diffs) {
    d.key = key;
    if (d.a && d.b && d.a->story == d.b->story && d.a->steps == d.b->steps && d.a->steps_hash == d.b->steps_hash &&
        d.a->event_count == d.b->event_count)
      continue;
    res.chains.push_back(std::move(d));
  }
  return res;
}

}  // namespace es::diff
