#include "replay/browse.h"

#include <algorithm>
#include <set>

#include "hv/arch/event_info.h"
#include "schema/migrations.h"
#include "schema/kind_reason.h"

namespace es::replay {

namespace {

Result<void> fail(Recording& rec, std::string_view msg) {
  return make_error(schema::describe_sqlite_error(rec.path(), "reading", rec.db().errcode(), msg));
}

// Runs `sql` (event_select_sql() + tail) and appends the events.
Result<void> collect(Recording& rec, const std::string& tail, const std::vector<int64_t>& binds,
                     std::vector<Event>& out) {
  std::string sql(event_select_sql());
  sql += ' ';
  sql += tail;
  auto st = rec.db().prepare(sql);
  if (!st) return fail(rec, st.error());
  for (size_t i = 0; i < binds.size(); ++i) st->bind(static_cast<int>(i + 1), binds[i]);
  int rc;
  while ((rc = st->step()) == SQLITE_ROW) out.push_back(event_from_row(*st));
  if (rc != SQLITE_DONE) return fail(rec, rec.db().errmsg());
  return {};
}

Result<std::optional<Event>> one(Recording& rec, const std::string& tail, const std::vector<int64_t>& binds) {
  std::vector<Event> v;
  if (auto r = collect(rec, tail, binds, v); !r) return make_error(r.error());
  if (v.empty()) return std::optional<Event>{};
  return std::optional<Event>(v.front());
}

// Single integer (NULL -> nullopt).
Result<std::optional<int64_t>> scalar(Recording& rec, const std::string& sql, const std::vector<int64_t>& binds = {}) {
  auto st = rec.db().prepare(sql);
  if (!st) return make_error(schema::describe_sqlite_error(rec.path(), "reading", rec.db().errcode(), st.error()));
  for (size_t i = 0; i < binds.size(); ++i) st->bind(static_cast<int>(i + 1), binds[i]);
  const int rc = st->step();
  if (rc == SQLITE_DONE) return std::optional<int64_t>{};
  if (rc != SQLITE_ROW)
    return make_error(schema::describe_sqlite_error(rec.path(), "reading", rec.db().errcode(), rec.db().errmsg()));
  if (st->col_null(0)) return std::optional<int64_t>{};
  return std::optional<int64_t>(st->col_i64(0));
}

constexpr std::string_view kChainColumns =
    "SELECT id, root_event, vector, type, level, outcome, first_event, last_event, event_count, inferred, "
    "interrupts_chain FROM chains";

ChainRow chain_from_row(const db::Stmt& s) {
  ChainRow c;
  c.id = s.col_u64(0);
  c.root_event = s.col_u64(1);
  c.vector = static_cast<uint8_t>(s.col_i64(2));
  c.type = static_cast<uint8_t>(s.col_i64(3));
  c.level = static_cast<uint8_t>(s.col_i64(4));
  c.outcome = s.col_text(5);
  c.first_event = s.col_u64(6);
  c.last_event = s.col_u64(7);
  c.event_count = s.col_u64(8);
  c.inferred = s.col_i64(9) != 0;
  c.interrupts_chain = s.col_null(10) ? 0 : s.col_u64(10);
  return c;
}

std::string chain_where(const ChainFilter& f, std::vector<int64_t>& binds, std::string& text_bind) {
  std::string w = "1";
  if (f.vector) (w += " AND vector = ?"), binds.push_back(*f.vector);
  if (f.type) (w += " AND type = ?"), binds.push_back(*f.type);
  if (f.level) (w += " AND level = ?"), binds.push_back(*f.level);
  if (f.outcome) {
    w += " AND outcome = ?";
    text_bind = *f.outcome;
  }
  return w;
}

Result<std::vector<ChainRow>> query_chains(Recording& rec, const ChainFilter& f, const std::string& extra,
                                           std::vector<int64_t> extra_binds, const std::string& order) {
  std::vector<int64_t> binds;
  std::string text;
  std::string sql = std::string(kChainColumns) + " WHERE " + chain_where(f, binds, text) + extra + " " + order;
  auto st = rec.db().prepare(sql);
  if (!st) return make_error(schema::describe_sqlite_error(rec.path(), "reading", rec.db().errcode(), st.error()));
  int i = 1;
  for (int64_t b : binds) st->bind(i++, b);
  if (f.outcome) st->bind(i++, std::string_view(text));
  for (int64_t b : extra_binds) st->bind(i++, b);
  std::vector<ChainRow> out;
  int rc;
  while ((rc = st->step()) == SQLITE_ROW) out.push_back(chain_from_row(*st));
  if (rc != SQLITE_DONE)
    return make_error(schema::describe_sqlite_error(rec.path(), "reading", rec.db().errcode(), rec.db().errmsg()));
  return out;
}

}  // namespace

Result<EventSpan> event_span(Recording& rec) {
  EventSpan s;
  auto lo = scalar(rec, "SELECT min(id) FROM events");
  if (!lo) return make_error(lo.error());
  if (!*lo) return s;
  auto hi = scalar(rec, "SELECT max(id) FROM events");
  auto times = time_span(rec.db());
  if (!times) return make_error(times.error());
  auto complete = scalar(rec, "SELECT complete FROM sessions ORDER BY id LIMIT 1");
  auto stored = scalar(rec, "SELECT event_count FROM sessions ORDER BY id LIMIT 1");
  for (auto* r : {&hi, &complete, &stored})
    if (!*r) return make_error(r->error());
  s.first_id = static_cast<uint64_t>(**lo);
  s.last_id = static_cast<uint64_t>(hi->value_or(**lo));
  s.first_time_ns = times->first;
  s.last_time_ns = times->second;
  // The stored count is the file's word: trusted only where it can be true (ids are distinct
  // integers, so at most last - first + 1 of them); otherwise counted (issue #17).
  const bool ordered = s.last_id >= s.first_id;
  if (complete->value_or(0) != 0 && stored->value_or(0) > 0 && ordered &&
      static_cast<uint64_t>(**stored) - 1 <= s.last_id - s.first_id) {
    s.count = static_cast<uint64_t>(**stored);
  } else {
    auto n = scalar(rec, "SELECT count(*) FROM events");
    if (!n) return make_error(n.error());
    s.count = static_cast<uint64_t>(n->value_or(0));
  }
  s.dense = s.count == s.last_id - s.first_id + 1;
  return s;
}

Result<std::vector<Event>> events_from_id(Recording& rec, uint64_t first_id, uint64_t max) {
  std::vector<Event> out;
  out.reserve(static_cast<size_t>(std::min<uint64_t>(max, 4096)));
  if (auto r = collect(rec, "WHERE e.id >= ? ORDER BY e.id LIMIT ?",
                       {static_cast<int64_t>(first_id), static_cast<int64_t>(max)}, out);
      !r)
    return make_error(r.error());
  return out;
}

Result<std::vector<uint64_t>> matching_ids(Recording& rec, const EventFilter& f) {
  std::vector<uint64_t> ids;
  auto r = rec.for_each_event(f, [&](const Event& e) {
    ids.push_back(e.rec.id);
    return true;
  });
  if (!r) return make_error(r.error());
  return ids;
}

Result<std::vector<uint64_t>> ids_by_time(Recording& rec) {
  auto order = time_order_sql(rec.db());  // id order on a sorted recording, else events_time
  if (!order) return make_error(order.error());
  auto st = rec.db().prepare("SELECT id FROM events ORDER BY " + *order);
  if (!st) return make_error(schema::describe_sqlite_error(rec.path(), "reading", rec.db().errcode(), st.error()));
  std::vector<uint64_t> ids;
  int rc;
  while ((rc = st->step()) == SQLITE_ROW) ids.push_back(st->col_u64(0));
  if (rc != SQLITE_DONE)
    return make_error(schema::describe_sqlite_error(rec.path(), "reading", rec.db().errcode(), rec.db().errmsg()));
  return ids;
}

Result<std::optional<Event>> step_event(Recording& rec, uint64_t id, bool forward, std::optional<uint64_t> chain) {
  std::string tail = forward ? "WHERE e.id > ?" : "WHERE e.id < ?";
  std::vector<int64_t> binds{static_cast<int64_t>(id)};
  if (chain) {
    tail += " AND e.origin = ?";
    binds.push_back(static_cast<int64_t>(*chain));
  }
  tail += forward ? " ORDER BY e.id LIMIT 1" : " ORDER BY e.id DESC LIMIT 1";
  return one(rec, tail, binds);
}

Result<std::optional<Event>> first_effect(Recording& rec, uint64_t id) {
  // `e.cause != 0`: the term the partial events_cause index is built on (schema/indexes.sql).
  return one(rec, "WHERE e.cause = ? AND e.cause != 0 ORDER BY e.id LIMIT 1", {static_cast<int64_t>(id)});
}

Result<std::vector<Event>> effects(Recording& rec, uint64_t id, uint64_t max) {
  std::vector<Event> out;
  if (auto r = collect(rec, "WHERE e.cause = ? AND e.cause != 0 ORDER BY e.id LIMIT ?",
                       {static_cast<int64_t>(id), static_cast<int64_t>(max)}, out);
      !r)
    return make_error(r.error());
  return out;
}

std::string lane_label(const Lane& l) {
  // The events' level notation (format.h level_text): "L2(L0)" and "L2(L1)" alike.
  return "vCPU " + std::to_string(l.vcpu) + " \xc2\xb7 L" + std::to_string(l.level) + "(L" +
         std::to_string(l.hv_level) + ")";
}

Lane lane_of(const es_record& r) {
  Lane l{r.vcpu, r.level, r.hv_level};
  if ((r.kind == ES_KIND_NESTED_EXIT || r.kind == ES_KIND_DELIVERY) && r.level >= 1)
    l.hv_level = static_cast<uint8_t>(r.level - 1);
  return l;
}

Result<std::vector<Lane>> lanes(Recording& rec, const EventSpan& span, uint64_t exact_below, uint64_t samples) {
  std::set<Lane> found;
  auto add_rows = [&](const std::string& sql, const std::vector<int64_t>& binds) -> Result<void> {
    auto st = rec.db().prepare(sql);
    if (!st) return fail(rec, st.error());
    for (size_t i = 0; i < binds.size(); ++i) st->bind(static_cast<int>(i + 1), binds[i]);
    int rc;
    while ((rc = st->step()) == SQLITE_ROW)
      found.insert(Lane{static_cast<uint16_t>(st->col_i64(0)), static_cast<uint8_t>(st->col_i64(1)),
                        static_cast<uint8_t>(st->col_i64(2))});
    if (rc != SQLITE_DONE) return fail(rec, rec.db().errmsg());
    return {};
  };
  if (span.count == 0) return std::vector<Lane>{};
  if (span.count < exact_below) {
    if (auto r = add_rows("SELECT DISTINCT vcpu, level, hv_level FROM events", {}); !r) return make_error(r.error());
    return std::vector<Lane>(found.begin(), found.end());
  }
  // vCPUs: an index skip over events_vcpu (one O(log n) lookup per vCPU). That index holds the
  // vCPUs other than 0 (schema/indexes.sql); vCPU 0 is there if any row says so (a scan to the
  // first such row: the first row of a recording that has vCPU 0, the whole table of one that
  // has not).
  std::vector<uint16_t> vcpus;
  auto zero = scalar(rec, "SELECT EXISTS (SELECT 1 FROM events WHERE vcpu = 0)");
  if (!zero) return make_error(zero.error());
  if (zero->value_or(0)) vcpus.push_back(0);
  for (int64_t v = vcpus.empty() ? -1 : 0;;) {
    auto next = scalar(rec, "SELECT min(vcpu) FROM events WHERE vcpu > ? AND vcpu != 0", {v});
    if (!next) return make_error(next.error());
    if (!*next) break;
    // A vcpu that is text or real in a hostile file reads as an integer not above v: stop
    // there instead of asking for the same row forever (found by fuzz_recording_fields).
    if (**next <= v || vcpus.size() > 0xFFFF) break;
    v = **next;
    vcpus.push_back(static_cast<uint16_t>(v));
  }
  std::set<std::pair<uint8_t, uint8_t>> levels;  // (guest level, deciding hypervisor)
  const uint64_t n = std::max<uint64_t>(1, samples);
  const uint64_t width = span.last_id - span.first_id + 1;
  auto st = rec.db().prepare("SELECT level, hv_level FROM events WHERE id >= ? ORDER BY id LIMIT 1");
  if (!st) return make_error(fail(rec, st.error()).error());
  for (uint64_t i = 0; i < n; ++i) {
    st->reset();
    st->bind(1, static_cast<int64_t>(span.first_id + width * i / n));
    if (st->step() == SQLITE_ROW)
      levels.insert({static_cast<uint8_t>(st->col_i64(0)), static_cast<uint8_t>(st->col_i64(1))});
  }
  // Chain roots carry the level of every chain (a short L2 episode shows up here).
  if (auto s = rec.db().prepare("SELECT DISTINCT level FROM chains"); s) {
    while (s->step() == SQLITE_ROW) levels.insert({static_cast<uint8_t>(s->col_i64(0)), uint8_t{0}});
  }
  for (uint16_t v : vcpus)
    for (auto [l, hv] : levels) found.insert(Lane{v, l, hv});
  return std::vector<Lane>(found.begin(), found.end());
}

Result<WindowEvents> window_events(Recording& rec, uint64_t from_ns, uint64_t to_ns, uint64_t max_events,
                                   std::optional<uint16_t> vcpu) {
  WindowEvents w;
  // The id range of the window: a binary search by id on a sorted recording, else events_time.
  auto lo = first_id_at_or_after(rec.db(), from_ns);
  auto hi = last_id_at_or_before(rec.db(), to_ns);
  if (!lo) return make_error(lo.error());
  if (!hi) return make_error(hi.error());
  if (!*lo || !*hi || **hi < **lo) return w;
  const uint64_t a = static_cast<uint64_t>(**lo), b = static_cast<uint64_t>(**hi);
  w.approx_count = b - a + 1;
  // Unary '+' keeps SQLite on the rowid range: the time / vcpu indexes would scan the window.
  std::string filter = " AND +e.time_ns >= ? AND +e.time_ns <= ?";
  std::vector<int64_t> fb{static_cast<int64_t>(from_ns), static_cast<int64_t>(to_ns)};
  if (vcpu) {
    filter += " AND +e.vcpu = ?";
    fb.push_back(*vcpu);
  }
  if (w.approx_count <= max_events) {
    std::vector<int64_t> binds{static_cast<int64_t>(a), static_cast<int64_t>(b)};
    binds.insert(binds.end(), fb.begin(), fb.end());
    if (auto r = collect(rec, "WHERE e.id >= ? AND e.id <= ?" + filter + " ORDER BY e.id", binds, w.events); !r)
      return make_error(r.error());
    return w;
  }
  w.exact = false;
  std::string sql(event_select_sql());
  sql += " WHERE e.id >= ?" + filter + " ORDER BY e.id LIMIT 1";
  auto st = rec.db().prepare(sql);
  if (!st) return make_error(fail(rec, st.error()).error());
  w.events.reserve(static_cast<size_t>(max_events));
  uint64_t last = 0;
  for (uint64_t i = 0; i < max_events; ++i) {
    const uint64_t id = a + (b - a) * i / max_events;
    if (id <= last && last != 0) continue;
    st->reset();
    st->bind(1, static_cast<int64_t>(id));
    for (size_t k = 0; k < fb.size(); ++k) st->bind(static_cast<int>(k + 2), fb[k]);
    if (st->step() == SQLITE_ROW) {
      Event e = event_from_row(*st);
      if (e.rec.id > b) break;
      if (e.rec.id == last) continue;
      last = e.rec.id;
      w.events.push_back(std::move(e));
    }
  }
  return w;
}

std::string chain_row_event_text(const ChainRow& c) {
  return arch::describe_event(arch::detail::make(c.vector, static_cast<arch::InterruptionType>(c.type & 7), false));
}

ChainRow chain_row_of(const Chain& c) {
  ChainRow r;
  r.id = c.id;
  r.root_event = c.id;
  const arch::EntryIntrInfo w(c.event_word);
  r.vector = w.vector();
  r.type = static_cast<uint8_t>(w.type());
  const es_record& first = c.root_found ? c.root.rec : c.events.front().rec;
  r.level = first.level;
  r.outcome = std::string(to_string(c.outcome));
  r.first_event = c.events.front().rec.id;
  r.last_event = c.events.back().rec.id;
  r.event_count = c.member_count ? c.member_count : c.events.size();
  r.inferred = c.inferred;
  r.interrupts_chain = c.interrupts_chain;
  return r;
}

Result<bool> chains_materialized(Recording& rec) {
  auto n = scalar(rec, "SELECT id FROM chains LIMIT 1");
  if (!n) return make_error(n.error());
  return n->has_value();
}

Result<std::vector<uint64_t>> chain_ids(Recording& rec, const ChainFilter& f) {
  std::vector<int64_t> binds;
  std::string text;
  auto st = rec.db().prepare("SELECT id FROM chains WHERE " + chain_where(f, binds, text) + " ORDER BY id");
  if (!st) return make_error(schema::describe_sqlite_error(rec.path(), "reading", rec.db().errcode(), st.error()));
  int i = 1;
  for (int64_t b : binds) st->bind(i++, b);
  if (f.outcome) st->bind(i++, std::string_view(text));
  std::vector<uint64_t> ids;
  int rc;
  while ((rc = st->step()) == SQLITE_ROW) ids.push_back(st->col_u64(0));
  if (rc != SQLITE_DONE)
    return make_error(schema::describe_sqlite_error(rec.path(), "reading", rec.db().errcode(), rec.db().errmsg()));
  return ids;
}

Result<std::vector<ChainRow>> chain_rows(Recording& rec, const ChainFilter& f, uint64_t first_id, uint64_t max) {
  return query_chains(rec, f, " AND id >= ?", {static_cast<int64_t>(first_id)},
                      "ORDER BY id LIMIT " + std::to_string(max));
}

Result<std::optional<ChainRow>> chain_row(Recording& rec, uint64_t id) {
  auto v = query_chains(rec, {}, " AND id = ?", {static_cast<int64_t>(id)}, "");
  if (!v) return make_error(v.error());
  if (v->empty()) return std::optional<ChainRow>{};
  return std::optional<ChainRow>(v->front());
}

Result<std::optional<ChainRow>> step_chain(Recording& rec, uint64_t id, bool forward, const ChainFilter& f) {
  auto v = query_chains(rec, f, forward ? " AND id > ?" : " AND id < ?", {static_cast<int64_t>(id)},
                        forward ? "ORDER BY id LIMIT 1" : "ORDER BY id DESC LIMIT 1");
  if (!v) return make_error(v.error());
  if (v->empty()) return std::optional<ChainRow>{};
  return std::optional<ChainRow>(v->front());
}

Vendor recording_vendor(Recording& rec) {
  auto flags = scalar(rec, "SELECT flags FROM events WHERE " + schema::kind_range_sql() + " LIMIT 1",
                      {schema::kind_first_key(ES_KIND_VM_EXIT), schema::kind_last_key(ES_KIND_VM_EXIT)});
  if (!flags || !*flags) return Vendor::Unknown;
  return (**flags & ES_FLAG_SVM) ? Vendor::Svm : Vendor::Vmx;
}

std::string row_outcome_reference(Recording& rec, const ChainRow& row, Vendor v) {
  const auto o = outcome_from_string(row.outcome);
  if (!o) return {};
  if (*o != Outcome::DiscardedByHypervisor) return std::string(outcome_reference(*o, v));
  // The chain's outcome is its last discard's (replay/chains), when no later fact outranked it.
  // Through events_origin within the chain's id range ('+' keeps SQLite off events_kind_reason,
  // which would walk every DISCARD of the recording from the newest back).
  const auto d = one(rec,
                     "WHERE e.origin = ? AND e.id BETWEEN ? AND ? AND +e.kind = ? AND +e.reason = ? "
                     "ORDER BY e.id DESC LIMIT 1",
                     {static_cast<int64_t>(row.id), static_cast<int64_t>(row.first_event),
                      static_cast<int64_t>(row.last_event), ES_KIND_DECISION, ES_DECISION_DISCARD});
  if (d && *d) return std::string(discard_reference((*d)->rec.aux, v));
  // No DISCARD record: the chain builder decided the discard from an exit showing a fault in the
  // event's own delivery (replay/chains conclude_outcome takes a DISCARD first when there is one).
  return d ? std::string(unanswered_pair_reference()) : std::string(discard_reference(0, v));
}

Result<std::vector<Event>> chain_members(Recording& rec, uint64_t id) {
  std::vector<Event> out;
  if (auto r = collect(rec, "WHERE e.origin = ? ORDER BY e.id", {static_cast<int64_t>(id)}, out); !r)
    return make_error(r.error());
  return out;
}

namespace {
// Whether chain `id` has more than `max` members: at most max + 1 entries of events_origin.
Result<bool> chain_longer_than(Recording& rec, uint64_t id, uint64_t max) {
  auto n = scalar(rec, "SELECT count(*) FROM (SELECT 1 FROM events WHERE origin = ? LIMIT ?)",
                  {static_cast<int64_t>(id), static_cast<int64_t>(max + 1)});
  if (!n) return make_error(n.error());
  return n->value_or(0) > static_cast<int64_t>(max);
}
}  // namespace

Result<ChainMarks> chain_marks(Recording& rec, uint64_t id, uint64_t from_ns, uint64_t to_ns, uint64_t max_members) {
  ChainMarks m;
  auto longer = chain_longer_than(rec, id, max_members);
  if (!longer) return make_error(longer.error());
  if (!*longer) {
    auto all = chain_members(rec, id);
    if (!all) return make_error(all.error());
    m.members = std::move(all).value();
    for (const Event& e : m.members) m.in_window += e.rec.time_ns >= from_ns && e.rec.time_ns <= to_ns;
    return m;
  }
  m.whole = false;
  auto first = one(rec, "WHERE e.origin = ? ORDER BY e.origin, e.id LIMIT 1", {static_cast<int64_t>(id)});
  if (!first) return make_error(first.error());
  if (!*first) return m;
  m.members.push_back(**first);
  // The window's id range (as window_events finds it), then the chain's members in it.
  auto lo = first_id_at_or_after(rec.db(), from_ns);
  auto hi = last_id_at_or_before(rec.db(), to_ns);
  if (!lo) return make_error(lo.error());
  if (!hi) return make_error(hi.error());
  if (!*lo || !*hi || **hi < **lo) return m;
  const uint64_t a = std::max<uint64_t>(**lo, (**first).rec.id + 1), b = **hi;
  if (b < a) {
    m.in_window = (**first).rec.time_ns >= from_ns && (**first).rec.time_ns <= to_ns;
    return m;
  }
  const std::string range = "WHERE e.origin = ? AND e.id >= ? AND e.id <= ? AND +e.time_ns >= ? AND +e.time_ns <= ?";
  const std::vector<int64_t> binds{static_cast<int64_t>(id), static_cast<int64_t>(a), static_cast<int64_t>(b),
                                   static_cast<int64_t>(from_ns), static_cast<int64_t>(to_ns)};
  auto n = scalar(rec, "SELECT count(*) FROM (SELECT 1 FROM events e " + range + " LIMIT ?)",
                  {binds[0], binds[1], binds[2], binds[3], binds[4], static_cast<int64_t>(max_members + 1)});
  if (!n) return make_error(n.error());
  m.in_window =
      static_cast<uint64_t>(n->value_or(0)) + ((**first).rec.time_ns >= from_ns && (**first).rec.time_ns <= to_ns);
  if (static_cast<uint64_t>(n->value_or(0)) <= max_members) {
    if (auto r = collect(rec, range + " ORDER BY e.origin, e.id", binds, m.members); !r) return make_error(r.error());
    return m;
  }
  // More than max_members in the window: the first member at or after each of max_members
  // evenly spaced ids of the range (a density picture, as window_events draws a dense window).
  m.exact = false;
  std::string sql(event_select_sql());
  sql += " WHERE e.origin = ? AND e.id >= ? AND +e.time_ns >= ? AND +e.time_ns <= ? ORDER BY e.origin, e.id LIMIT 1";
  auto st = rec.db().prepare(sql);
  if (!st) return make_error(fail(rec, st.error()).error());
  uint64_t last = 0;
  for (uint64_t i = 0; i < max_members; ++i) {
    const uint64_t at = a + (b - a) * i / max_members;
    if (at <= last) continue;
    st->reset();
    st->bind(1, static_cast<int64_t>(id));
    st->bind(2, static_cast<int64_t>(at));
    st->bind(3, static_cast<int64_t>(from_ns));
    st->bind(4, static_cast<int64_t>(to_ns));
    if (st->step() != SQLITE_ROW) break;
    Event e = event_from_row(*st);
    if (e.rec.id > b) break;
    last = e.rec.id;
    m.members.push_back(std::move(e));
  }
  return m;
}

Result<std::optional<std::pair<uint64_t, uint64_t>>> chain_time_extent(Recording& rec, uint64_t id,
                                                                       uint64_t max_members) {
  using Extent = std::optional<std::pair<uint64_t, uint64_t>>;
  auto longer = chain_longer_than(rec, id, max_members);
  if (!longer) return make_error(longer.error());
  if (!*longer) {
    auto all = chain_members(rec, id);
    if (!all) return make_error(all.error());
    if (all->empty()) return Extent{};
    uint64_t lo = all->front().rec.time_ns, hi = lo;
    for (const Event& e : *all) {
      lo = std::min<uint64_t>(lo, e.rec.time_ns);
      hi = std::max<uint64_t>(hi, e.rec.time_ns);
    }
    return Extent{{lo, hi}};
  }
  auto first = one(rec, "WHERE e.origin = ? ORDER BY e.origin, e.id LIMIT 1", {static_cast<int64_t>(id)});
  auto last = one(rec, "WHERE e.origin = ? ORDER BY e.origin DESC, e.id DESC LIMIT 1", {static_cast<int64_t>(id)});
  if (!first) return make_error(first.error());
  if (!last) return make_error(last.error());
  if (!*first || !*last) return Extent{};
  const uint64_t a = (**first).rec.time_ns, b = (**last).rec.time_ns;
  return Extent{{std::min(a, b), std::max(a, b)}};
}

Result<std::vector<Event>> violations(Recording& rec, uint64_t max) {
  std::vector<Event> out;
  if (auto r = collect(rec, "WHERE " + schema::kind_range_sql("e") + " ORDER BY e.id LIMIT ?",
                       {schema::kind_first_key(ES_KIND_VIOLATION), schema::kind_last_key(ES_KIND_VIOLATION),
                        static_cast<int64_t>(max)},
                       out);
      !r)
    return make_error(r.error());
  return out;
}

}  // namespace es::replay
