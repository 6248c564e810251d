#include "replay/chains.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"
#include "hv/arch/exit_reason.h"
#include "schema/migrations.h"

namespace es::replay {

std::string_view to_string(Outcome o) {
  switch (o) {
    case Outcome::Delivered: return "delivered";
    case Outcome::PromotedToDf: return "promoted to #DF";
    case Outcome::TripleFault: return "triple fault";
    case Outcome::DroppedByPolicy: return "dropped by policy";
    case Outcome::PendingAtEnd: return "pending at end";
    case Outcome::Lost: return "lost";
  }
  return "lost";
}

namespace {

bool is_exit(const es_record& r) { return r.kind == ES_KIND_VM_EXIT || r.kind == ES_KIND_NESTED_EXIT; }

// Same event = same vector and interruption type.
bool same_event(arch::EntryIntrInfo a, arch::EntryIntrInfo b) {
  return a.valid() && b.valid() && a.vector() == b.vector() && a.type() == b.type();
}

bool is_double_fault(arch::EntryIntrInfo e) {
  return e.valid() && e.vector() == arch::kDF && e.type() == arch::InterruptionType::HardwareException;
}

// Records that end another event's life by effect, keyed by the id of their cause: a #DF
// raised because this chain's exception hit the double-fault table, or a triple-fault exit
// caused by it (Vol. 3A 6.15 Table 6-5). Such a chain has no delivery of its own.
struct Effects {
  std::unordered_map<uint64_t, uint64_t> double_fault_by_cause;
  std::unordered_map<uint64_t, uint64_t> triple_fault_by_cause;
};

void decide_outcome(Chain& c, const std::unordered_map<uint64_t, uint64_t>& origin_of,
                    const std::vector<Event>& run_ends, const Effects& effects) {
  const arch::EntryIntrInfo original(c.event_word);
  uint64_t delivered = 0, dropped = 0, promoted = 0, triple = 0;
  if (c.root_found) {
    if (auto it = effects.triple_fault_by_cause.find(c.id); it != effects.triple_fault_by_cause.end())
      triple = it->second;
    if (auto it = effects.double_fault_by_cause.find(c.id);
        it != effects.double_fault_by_cause.end() && !is_double_fault(original))
      promoted = it->second;
  }
  for (const Event& ev : c.events) {
    const es_record& r = ev.rec;
    if (is_exit(r) && arch::ExitReason(r.reason).is(arch::BasicExitReason::TripleFault) && !triple) triple = r.id;
    if (r.kind == ES_KIND_DELIVERY && same_event(arch::EntryIntrInfo(r.intr_info), original)) delivered = r.id;
    if ((r.kind == ES_KIND_DELIVERY || r.kind == ES_KIND_RAISE) && r.id != c.id &&
        is_double_fault(arch::EntryIntrInfo(r.intr_info)) && !is_double_fault(original) && !promoted)
      promoted = r.id;
    if (r.kind == ES_KIND_DECISION && r.reason == ES_DECISION_DROP_FROM_VECTORING) dropped = r.id;
  }
  for (const Event& end : run_ends) {
    if (end.rec.reason != ES_END_TRIPLE_FAULT || triple) continue;
    const auto it = origin_of.find(end.rec.cause);
    if (end.rec.origin == c.id || (it != origin_of.end() && it->second == c.id)) triple = end.rec.id;
  }
  if (triple) {
    c.outcome = Outcome::TripleFault;
    c.outcome_event = triple;
  } else if (promoted) {
    c.outcome = Outcome::PromotedToDf;
    c.outcome_event = promoted;
  } else if (delivered && delivered > dropped) {
    c.outcome = Outcome::Delivered;
    c.outcome_event = delivered;
  } else if (dropped) {
    c.outcome = Outcome::DroppedByPolicy;
    c.outcome_event = dropped;
  } else {
    // Ended by a limit / signal, or no RUN_END at all (the recording stopped first): the
    // event may still have been delivered later, so it is pending, not lost.
    bool stopped_early = run_ends.empty();
    for (const Event& end : run_ends)
      if (end.rec.reason == ES_END_LIMIT || end.rec.reason == ES_END_STOPPED) stopped_early = true;
    c.outcome = stopped_early ? Outcome::PendingAtEnd : Outcome::Lost;
    c.outcome_event = 0;
  }
}

}  // namespace

std::vector<Chain> build_chains(std::vector<Event> members, const std::vector<Event>& run_ends) {
  std::sort(members.begin(), members.end(), [](const Event& a, const Event& b) { return a.rec.id < b.rec.id; });
  std::unordered_map<uint64_t, uint64_t> origin_of;  // event id -> chain id
  std::map<uint64_t, Chain> by_id;
  Effects effects;
  for (Event& ev : members) {
    origin_of[ev.rec.id] = ev.rec.origin;
    if (ev.rec.cause != 0) {
      if (ev.rec.kind == ES_KIND_RAISE && is_double_fault(arch::EntryIntrInfo(ev.rec.intr_info)))
        effects.double_fault_by_cause.emplace(ev.rec.cause, ev.rec.id);
      if (is_exit(ev.rec) && arch::ExitReason(ev.rec.reason).is(arch::BasicExitReason::TripleFault))
        effects.triple_fault_by_cause.emplace(ev.rec.cause, ev.rec.id);
    }
    Chain& c = by_id[ev.rec.origin];
    c.id = ev.rec.origin;
    c.events.push_back(std::move(ev));
  }
  for (auto& [id, c] : by_id) {
    for (const Event& ev : c.events) {
      const es_record& r = ev.rec;
      if (r.id == c.id) {
        c.root_found = true;
        c.root = ev;
      }
      if (r.flags & ES_FLAG_INFERRED) c.inferred = true;
      if (is_exit(r) && arch::IdtVectoringInfo(r.idt_vectoring_info).valid()) c.interruptions.push_back(r.id);
      if (r.kind == ES_KIND_DECISION) c.decisions.push_back(r.id);
    }
    if (!c.root_found) c.inferred = true;
    // The original event: the root's word; without a root, the first member naming an event.
    if (c.root_found) {
      c.event_word = c.root.rec.intr_info;
      c.event_error = c.root.rec.intr_error;
    }
    if (!arch::EntryIntrInfo(c.event_word).valid()) {
      for (const Event& ev : c.events) {
        if (is_exit(ev.rec) && arch::IdtVectoringInfo(ev.rec.idt_vectoring_info).valid()) {
          c.event_word = arch::to_reinjection(arch::IdtVectoringInfo(ev.rec.idt_vectoring_info)).raw();
          c.event_error = ev.rec.idt_vectoring_error;
          break;
        }
        if (!is_exit(ev.rec) && arch::EntryIntrInfo(ev.rec.intr_info).valid()) {
          c.event_word = ev.rec.intr_info;
          c.event_error = ev.rec.intr_error;
          break;
        }
      }
    }
    decide_outcome(c, origin_of, run_ends, effects);
  }
  // Link: the root's cause lies in another chain.
  for (auto& [id, c] : by_id) {
    if (!c.root_found || c.root.rec.cause == 0) continue;
    const auto it = origin_of.find(c.root.rec.cause);
    if (it == origin_of.end() || it->second == c.id) continue;
    c.interrupts_chain = it->second;
    by_id[it->second].interrupted_by.push_back(c.id);
  }
  std::vector<Chain> out;
  out.reserve(by_id.size());
  for (auto& [id, c] : by_id) out.push_back(std::move(c));
  return out;
}

Result<std::vector<Chain>> load_chains(db::Db& db) {
  std::vector<Event> members, run_ends;
  auto r = query_events(db, "e.origin != 0", {}, [&](const Event& e) {
    members.push_back(e);
    return true;
  });
  if (!r) return make_error(r.error());
  r = query_events(db, "e.kind = ?", {ES_KIND_RUN_END}, [&](const Event& e) {
    run_ends.push_back(e);
    return true;
  });
  if (!r) return make_error(r.error());
  return build_chains(std::move(members), run_ends);
}

Result<void> materialize_chains(db::Db& db) {
  auto chains = load_chains(db);
  if (!chains) return make_error(chains.error());
  auto fail = [&](std::string_view msg) {
    std::string m = schema::describe_sqlite_error(db.path(), "writing chains of", db.errcode(), msg);
    (void)db.exec("ROLLBACK");
    return make_error(m);
  };
  if (auto b = db.exec("BEGIN; DELETE FROM chain_events; DELETE FROM chains;"); !b) return fail(b.error());
  auto ins_chain = db.prepare(
      "INSERT INTO chains (id, root_event, vector, type, level, outcome, first_event, last_event, event_count, "
      "inferred, interrupts_chain) VALUES (?,?,?,?,?,?,?,?,?,?,?)");
  if (!ins_chain) return fail(ins_chain.error());
  auto ins_member = db.prepare("INSERT INTO chain_events (chain_id, event_id) VALUES (?, ?)");
  if (!ins_member) return fail(ins_member.error());
  for (const Chain& c : *chains) {
    const arch::EntryIntrInfo word(c.event_word);
    db::Stmt& s = *ins_chain;
    s.bind_u64(1, c.id);
    s.bind_u64(2, c.id);
    s.bind(3, int64_t{word.vector()});
    s.bind(4, static_cast<int64_t>(word.type()));
    s.bind(5, int64_t{c.root_found ? c.root.rec.level : c.events.front().rec.level});
    s.bind(6, to_string(c.outcome));
    s.bind_u64(7, c.events.front().rec.id);
    s.bind_u64(8, c.events.back().rec.id);
    s.bind(9, static_cast<int64_t>(c.events.size()));
    s.bind(10, int64_t{c.inferred ? 1 : 0});
    if (c.interrupts_chain) s.bind_u64(11, c.interrupts_chain);
    else s.bind_null(11);
    if (s.step() != SQLITE_DONE) return fail(db.errmsg());
    s.reset();
    for (const Event& ev : c.events) {
      ins_member->bind_u64(1, c.id);
      ins_member->bind_u64(2, ev.rec.id);
      if (ins_member->step() != SQLITE_DONE) return fail(db.errmsg());
      ins_member->reset();
    }
  }
  ins_chain = db::Stmt();
  ins_member = db::Stmt();
  if (auto cm = db.exec("COMMIT"); !cm) return fail(cm.error());
  return {};
}

}  // namespace es::replay
