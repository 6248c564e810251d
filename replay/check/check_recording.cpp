#include "replay/check/check_recording.h"

#include <algorithm>
#include <optional>
#include <string>

namespace es::check {

Result<std::vector<Violation>> check_recording(replay::Recording& rec, const CheckOptions& options) {
  CheckOptions opts = options;
  std::string history_error;
  // A finished recording has the origin index: a forgotten chain's members are one indexed read
  // away, so the checker keeps only the chains still open (issue #18). A recording whose writer
  // never finished has no index; there every chain stays in memory, as before.
  auto indexed =
      rec.db().query_int("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'events_origin'");
  if (!indexed) return make_error(indexed.error());
  if (*indexed == 1 && !opts.chain_history) {
    opts.chain_history = [&](uint64_t chain, uint64_t before, std::vector<es_record>& out) {
      auto q = replay::query_events(rec.db(), "e.origin = ? AND e.id < ?",
                                    {static_cast<int64_t>(chain), static_cast<int64_t>(before)},
                                    [&](const replay::Event& e) {
                                      out.push_back(e.rec);
                                      return true;
                                    });
      if (!q && history_error.empty()) history_error = q.error();
      return static_cast<bool>(q);
    };
  }
  // With this build's chain figures stored, every chain's outcome is one row away: event-lost
  // keeps no members and reads back only a chain whose stored outcome is a loss.
  std::optional<db::Stmt> outcome_of;
  if (*indexed == 1 && !opts.lost_chain) {
    if (auto current = replay::chain_figures_current(rec.db()); current && *current) {
      if (auto st = rec.db().prepare("SELECT outcome FROM chains WHERE id = ?")) outcome_of = std::move(*st);
    }
  }
  if (outcome_of) {
    opts.lost_chain = [&](uint64_t id, std::optional<replay::Chain>& lost) {
      outcome_of->bind_u64(1, id);
      const int rc = outcome_of->step();
      std::optional<replay::Outcome> stored;
      if (rc == SQLITE_ROW) stored = replay::outcome_from_string(outcome_of->col_text(0));
      outcome_of->reset();
      // A chain without a row, or with an outcome this build does not name: read it back.
      if (stored && !replay::outcome_is_loss(*stored)) return true;
      auto chains = replay::load_chain_and_links(rec.db(), id);
      if (!chains) {
        if (history_error.empty()) history_error = chains.error();
        return false;
      }
      for (replay::Chain& c : *chains)
        if (c.id == id) lost = std::move(c);
      // The live checker's own violation records are members too; the checker reads none
      // (Checker::feed), so the chain's last event is its last other member, as fed.
      if (lost && !lost->members_held) {
        // A chain too long to hold keeps its first and last member only: its last other member
        // is one indexed read.
        std::optional<replay::Event> last;
        auto r = replay::query_events(
            rec.db(), "e.origin = ? AND e.kind != ?", {static_cast<int64_t>(id), ES_KIND_VIOLATION},
            [&](const replay::Event& e) {
              last = e;
              return false;
            },
            "e.origin DESC, e.id DESC");
        if (!r) {
          if (history_error.empty()) history_error = r.error();
          return false;
        }
        if (!last)
          lost.reset();
        else
          lost->events.back() = *last;
      } else if (lost) {
        auto& ev = lost->events;
        ev.erase(std::remove_if(ev.begin(), ev.end(),
                                [](const replay::Event& e) { return e.rec.kind == ES_KIND_VIOLATION; }),
                 ev.end());
        if (ev.empty()) lost.reset();
      }
      return true;
    };
  }
  Checker checker(opts);
  auto r = rec.for_each_event({}, [&](const replay::Event& e) {
    checker.feed(e.rec);
    return history_error.empty();
  });
  if (!r) return make_error(r.error());
  if (!history_error.empty()) return make_error(history_error);
  checker.finish();
  if (!history_error.empty()) return make_error(history_error);
  return checker.violations();
}

Result<std::vector<Violation>> recorded_violations(replay::Recording& rec) {
  std::vector<Violation> out;
  replay::EventFilter f;
  f.kind = ES_KIND_VIOLATION;
  auto r = rec.for_each_event(f, [&](const replay::Event& e) {
    const es_record& x = e.rec;
    Violation v;
    v.rule = static_cast<RuleId>(x.reason);
    v.chain = x.origin;
    if (x.aux64) v.events.push_back(x.aux64);
    if (x.cause) v.events.push_back(x.cause);
    v.count = x.aux;
    v.first_ns = v.last_ns = x.time_ns;
    v.level = x.level;
    v.hv_level = x.hv_level;
    v.vcpu = x.vcpu;
    const Rule* rule = find_rule(x.reason);
    v.explanation = rule ? std::string(rule->description) : "unknown rule " + std::to_string(x.reason);
    out.push_back(std::move(v));
    return true;
  });
  if (!r) return make_error(r.error());
  return out;
}

}  // namespace es::check
