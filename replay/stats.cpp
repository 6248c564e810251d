#include "replay/stats.h"

#include <algorithm>
#include <cstdio>
#include <future>
#include <map>
#include <tuple>
#include <unordered_map>

#include "hv/arch/event_info.h"
#include "hv/arch/exit_qualification.h"
#include "hv/arch/exit_reason.h"
#include "hv/arch/svm.h"
#include "replay/format.h"
#include "schema/migrations.h"

namespace es::replay {

namespace {

constexpr uint64_t kUnknownValue = UINT64_MAX;

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// The few columns an exit / entry needs, not the whole row.
struct Row {
  uint64_t id = 0;
  uint16_t kind = 0;
  uint8_t level = 0;
  uint16_t vcpu = 0;
  uint64_t time_ns = 0;
  uint32_t reason = 0, flags = 0;
  uint64_t qualification = 0, guest_phys = 0;
  uint32_t intr_error = 0;  // read for --by mmio only (kvm_mmio's type)
};

bool is_svm(uint32_t flags) { return (flags & ES_FLAG_SVM) != 0; }

bool is_io_exit(const Row& r) {
  return is_svm(r.flags) ? r.reason == static_cast<uint32_t>(arch::SvmExitCode::Ioio)
                         : arch::ExitReason(r.reason).is(arch::BasicExitReason::IoInstruction);
}
bool is_gpa_exit(const Row& r) {
  if (is_svm(r.flags)) return r.reason == static_cast<uint32_t>(arch::SvmExitCode::Npf);
  const arch::ExitReason x(r.reason);
  return x.is(arch::BasicExitReason::EptViolation) || x.is(arch::BasicExitReason::EptMisconfig);
}
bool is_msr_exit(const Row& r) {
  if (is_svm(r.flags)) return r.reason == static_cast<uint32_t>(arch::SvmExitCode::Msr);
  const arch::ExitReason x(r.reason);
  return x.is(arch::BasicExitReason::MsrRead) || x.is(arch::BasicExitReason::MsrWrite);
}
// RDMSR or WRMSR: the VMX reason says it; SVM's EXITINFO1 is 0 for RDMSR, 1 for WRMSR (APM
// Vol. 2 15.11 "MSR Intercepts").
bool msr_write(const Row& r) {
  return is_svm(r.flags) ? (r.qualification & 1) != 0 : arch::ExitReason(r.reason).is(arch::BasicExitReason::MsrWrite);
}

struct Pending {
  Row exit;
  std::optional<uint64_t> msr;        // from a kvm_msr record between the exit and its entry
  std::optional<uint64_t> mmio = {};  // the GPA of the first kvm_mmio record between them
  bool mmio_write = false;            // that record's type is a write (ES_CONTEXT_MMIO: intr_error 2)
};

// The exit-to-entry times of a group as value -> number of exits with it: the median and p99
// are exact (nearest rank over every timed exit) while memory grows with the number of distinct
// times, not of exits (a recording of the hv model has a handful per exit reason; a KVM trace's
// ns clock at most one per exit).
using Durations = std::unordered_map<uint64_t, uint64_t>;

// A group of exits and the durations of its timed ones.
struct Acc {
  ExitRow row;
  Durations durations;
};

void add(Acc& a, std::optional<uint64_t> d) {
  ++a.row.lat.count;
  if (d) ++a.durations[*d];
}

// Groups by (level, a, b) where a and b are what the view keys a row by. The key's text is made
// once, when the group is.
class Table {
 public:
  // The group and whether it was just made (the caller names it then).
  std::pair<Acc*, bool> at(uint8_t level, uint32_t a, uint64_t b) {
    const Key k{level, a, b};
    if (last_ < accs_.size() && last_key_ == k) return {&accs_[last_], false};
    auto [it, fresh] = index_.try_emplace(k, accs_.size());
    if (fresh) accs_.emplace_back();
    last_ = it->second;
    last_key_ = k;
    return {&accs_[it->second], fresh};
  }
  std::vector<Acc>& accs() { return accs_; }

 private:
  using Key = std::tuple<uint8_t, uint32_t, uint64_t>;
  std::map<Key, size_t> index_;
  std::vector<Acc> accs_;
  size_t last_ = SIZE_MAX;  // consecutive exits mostly fall in the same group
  Key last_key_{};
};

Latency summarize(const Durations& d, uint64_t count) {
  Latency l;
  l.count = count;
  if (d.empty()) return l;
  std::vector<std::pair<uint64_t, uint64_t>> sorted(d.begin(), d.end());
  std::sort(sorted.begin(), sorted.end());
  for (const auto& [v, n] : sorted) {
    l.timed += n;
    l.total_ns += v * n;
  }
  l.min_ns = sorted.front().first;
  l.max_ns = sorted.back().first;
  l.mean_ns = l.total_ns / l.timed;
  // Nearest rank (as nearest_rank()): the smallest time with at least p percent at or below it.
  auto rank_value = [&](unsigned p) {
    uint64_t rank = (p * l.timed + 99) / 100;
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (const auto& [v, n] : sorted) {
      seen += n;
      if (seen >= rank) return v;
    }
    return sorted.back().first;
  };
  l.median_ns = rank_value(50);
  l.p99_ns = rank_value(99);
  return l;
}

std::vector<ExitRow> finish(Table& t, Durations* all) {
  std::vector<ExitRow> rows;
  for (Acc& a : t.accs()) {
    if (all)
      for (const auto& [v, n] : a.durations) (*all)[v] += n;
    a.row.lat = summarize(a.durations, a.row.lat.count);
    a.durations = Durations{};
    rows.push_back(std::move(a.row));
  }
  return rows;
}

// The ids of the chains a --from / --to window can count (see compute_stats), or nullopt when
// the whole walk is the better read: no window, no origin / cause index (a recording whose writer
// never finished), a window over more than a quarter of the recording's ids, or more chains in
// it than reading them one by one pays for.
constexpr uint64_t kScopedChainCostInEvents = 256;

Result<std::optional<std::vector<uint64_t>>> chain_ids_in_window(db::Db& db, const StatsOptions& opt) {
  using Out = std::optional<std::vector<uint64_t>>;
  if (!opt.from_ns && !opt.to_ns) return Out{};
  auto fail = [&]() {
    return make_error(schema::describe_sqlite_error(db.path(), "reading", db.errcode(), db.errmsg()));
  };
  // The time edges need the time index or a recording whose times follow its ids.
  auto indexed = db.query_int(
      "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('events_origin', 'events_cause', "
      "'events_time')");
  if (!indexed) return fail();
  auto sorted = time_sorted(db);
  if (!sorted) return make_error(sorted.error());
  if (*indexed != 3 && !(*indexed == 2 && *sorted)) return Out{};
  // Two subqueries: SQLite answers a lone min() or max() from the rowid b-tree, both together by a scan.
  auto span = db.prepare("SELECT (SELECT min(id) FROM events), (SELECT max(id) FROM events)");
  if (!span) return fail();
  if (span->step() != SQLITE_ROW) return fail();
  const uint64_t first_id = span->col_u64(0), last_id = span->col_u64(1);
  uint64_t lo = first_id, hi = last_id;
  if (opt.from_ns) {
    auto v = first_id_at_or_after(db, *opt.from_ns);
    if (!v) return make_error(v.error());
    if (!*v) return Out{std::vector<uint64_t>{}};  // nothing at or after `from`
    lo = **v;
  }
  if (opt.to_ns) {
    auto v = last_id_at_or_before(db, *opt.to_ns);
    if (!v) return make_error(v.error());
    if (!*v) return Out{std::vector<uint64_t>{}};  // nothing up to `to`
    hi = **v;
  }
  if (hi < lo) return Out{std::vector<uint64_t>{}};
  if ((hi - lo) > (last_id - first_id) / 4) return Out{};
  auto st = db.prepare("SELECT DISTINCT origin FROM events WHERE origin BETWEEN ? AND ? ORDER BY origin");
  if (!st) return fail();
  st->bind_u64(1, std::max<uint64_t>(lo, 1));
  st->bind_u64(2, hi);
  std::vector<uint64_t> ids;
  for (;;) {
    const int rc = st->step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return fail();
    ids.push_back(st->col_u64(0));
    // Reading a chain alone (load_chain_and_links: a dozen indexed statements) costs about what
    // the whole walk spends on 250 events (BENCHMARKS.md "Stats": 1.1 ms a chain against 4.3 us
    // an event, 4.2 M events): past that many chains the whole walk is cheaper.
    if (ids.size() * kScopedChainCostInEvents > last_id - first_id) return Out{};
  }
  return Out{std::move(ids)};
}

}  // namespace

unsigned histogram_bucket(uint64_t ns) {
  unsigned b = 0;
  while (ns >= 2) {
    ns >>= 1;
    ++b;
  }
  return b;
}

std::string short_duration(uint64_t ns) {
  char buf[32];
  if (ns >= 1'000'000'000 && ns % 1'000'000'000 == 0)
    std::snprintf(buf, sizeof buf, "%llus", static_cast<unsigned long long>(ns / 1'000'000'000));
  else if (ns >= 1'000'000)
    std::snprintf(buf, sizeof buf, "%.1fms", static_cast<double>(ns) / 1e6);
  else if (ns >= 1'000)
    std::snprintf(buf, sizeof buf, "%.1fus", static_cast<double>(ns) / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%lluns", static_cast<unsigned long long>(ns));
  return buf;
}

std::string duration_us(std::optional<uint64_t> ns) {
  if (!ns) return "unknown";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%llu.%03lluus", static_cast<unsigned long long>(*ns / 1000),
                static_cast<unsigned long long>(*ns % 1000));
  return buf;
}

std::string percent_text(uint64_t part, uint64_t whole) {
  if (whole == 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return buf;
}

uint64_t nearest_rank(const std::vector<uint64_t>& sorted, unsigned p) {
  // rank = ceil(p / 100 * n), 1-based.
  const uint64_t n = sorted.size();
  uint64_t rank = (p * n + 99) / 100;
  if (rank == 0) rank = 1;
  return sorted[rank - 1];
}

void sort_rows(std::vector<ExitRow>& rows, StatsSort by) {
  auto metric = [by](const ExitRow& r) -> uint64_t {
    switch (by) {
      case StatsSort::Count: return r.lat.count;
      case StatsSort::Time: return r.lat.total_ns;
      case StatsSort::Max: return r.lat.max_ns.value_or(0);
      case StatsSort::Mean: return r.lat.mean_ns.value_or(0);
    }
    return 0;
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const ExitRow& a, const ExitRow& b) {
    const uint64_t ma = metric(a), mb = metric(b);
    if (ma != mb) return ma > mb;
    if (a.lat.count != b.lat.count) return a.lat.count > b.lat.count;
    return std::tie(a.level, a.key) < std::tie(b.level, b.key);
  });
}

namespace {

// The exit pass's statement. A recording indexed by this build has events_exit_entry
// (schema/indexes.sql), a partial covering index of exactly the rows and columns read here,
// in id order: the pass reads it instead of the whole events table (a tenth of the pages; issue
// #21, BENCHMARKS.md "Stats"). Its WHERE must name the index's condition word for word. Older or
// unfinished recordings lack it: the table is read in rowid order then ('+kind' keeps SQLite
// from collecting the kind index's rows into a sort), or for one vCPU through events_vcpu.
std::string exit_pass_sql(bool covering, const StatsOptions& opt, std::vector<int64_t>& binds) {
  // The qualification (port, SVM MSR direction, kvm_msr's MSR) and GPA only for the views that
  // key by them: every column read costs a share of the pass.
  std::string sql = "SELECT id, kind, level, vcpu, time_ns, reason, flags";
  if (opt.by != StatsBy::Reason) sql += ", qualification, guest_phys";
  if (opt.by == StatsBy::Mmio) sql += ", intr_error";
  sql += " FROM events ";
  if (covering) {
    static_assert(ES_KIND_VM_EXIT == 1 && ES_KIND_VM_ENTRY == 2 && ES_KIND_NESTED_EXIT == 6 &&
                      ES_KIND_NESTED_ENTRY == 12 && ES_KIND_CONTEXT == 11 && ES_CONTEXT_MSR == 260,
                  "events_exit_entry's condition (schema/indexes.sql) names these kinds by number");
    sql += "INDEXED BY events_exit_entry WHERE ";
    // The whole condition in every view: SQLite then tests nothing per row (a part of it would be
    // tested); the few kvm_msr rows it brings are skipped below unless the view is --by msr.
    sql += "(kind = 1 OR kind = 2 OR kind = 6 OR kind = 12 OR (kind = 11 AND reason = 260))";
  } else {
    sql += "WHERE (+kind IN (?, ?, ?, ?)";
    for (int k : {ES_KIND_VM_EXIT, ES_KIND_VM_ENTRY, ES_KIND_NESTED_EXIT, ES_KIND_NESTED_ENTRY}) binds.push_back(k);
    if (opt.by == StatsBy::Msr || opt.by == StatsBy::Mmio) {
      sql += " OR (+kind = ? AND reason = ?)";
      binds.push_back(ES_KIND_CONTEXT);
      binds.push_back(opt.by == StatsBy::Msr ? ES_CONTEXT_MSR : ES_CONTEXT_MMIO);
    }
    sql += ")";
  }
  if (opt.vcpu) {
    // `vcpu != 0`: the partial events_vcpu's condition (schema/indexes.sql).
    sql += *opt.vcpu != 0 ? " AND vcpu = ? AND vcpu != 0" : " AND vcpu = ?";
    binds.push_back(*opt.vcpu);
  }
  if (opt.level) {
    sql += " AND level = ?";
    binds.push_back(*opt.level);
  }
  return sql;
}

// Whether the chains table holds the figures the chain pass needs, decided by this build's rules:
// schema v3 columns written with a chain_rules stamp equal to kChainRulesVersion. Otherwise the
// sentence saying why the chains are walked instead.
Result<std::optional<std::string>> stored_chains_unusable(db::Db& db) {
  using Out = std::optional<std::string>;
  auto has = db.query_int("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'chain_rules'");
  if (!has) return make_error(schema::describe_sqlite_error(db.path(), "reading", db.errcode(), has.error()));
  const std::string walk = "the chain figures come from reading every chain's events (slower on a large recording)";
  if (*has == 0) return Out{"'" + db.path() + "' has no stored chain figures (schema before v3): " + walk + "."};
  auto st = db.prepare("SELECT min(version), max(version), count(*) FROM chain_rules");
  if (!st) return make_error(schema::describe_sqlite_error(db.path(), "reading", db.errcode(), st.error()));
  if (st->step() != SQLITE_ROW)
    return make_error(schema::describe_sqlite_error(db.path(), "reading", db.errcode(), db.errmsg()));
  if (st->col_i64(2) == 0)
    return Out{"'" + db.path() +
               "' stores no chain figures (a recording whose writer stopped before its chains, or "
               "one migrated from schema v2 without them): " +
               walk + " ('exitscope migrate " + db.path() + " --in-place' stores them)."};
  if (st->col_i64(2) != 1 || st->col_i64(0) != kChainRulesVersion)
    return Out{"'" + db.path() + "' stores chain outcomes decided by chain rules v" + std::to_string(st->col_i64(1)) +
               ", this exitscope's are v" + std::to_string(kChainRulesVersion) + ": " + walk +
               ", so the outcomes are this build's ('exitscope migrate " + db.path() + " --in-place' stores them)."};
  return Out{};
}

// The chain figures: chains by the kind of their original event, the raise -> delivery
// histogram, the slowest chains, the picked chains' ids (StatsPick::Table::ChainHistogram).
struct ChainPart {
  std::vector<ChainKindRow> kinds;
  std::vector<uint64_t> histogram, picked;
  std::vector<SlowChain> slowest;
  uint64_t chains = 0;
  std::string notice;
};

// Reads them from the chains table's stored figures, or (`unusable` says why) walks the chains.
// `tick(chain id)` is called now and then; false cancels.
Result<ChainPart> chain_part(db::Db& db, const StatsOptions& opt, const std::optional<std::string>& unusable,
                             const std::function<bool(uint64_t)>& tick) {
  ChainPart out;
  bool cancelled = false;
  auto read_error = [&](std::string_view msg) {
    return make_error(schema::describe_sqlite_error(db.path(), "reading", db.errcode(), msg));
  };
  // Chains by the kind of their original event: raise -> delivery, exits and reinjections on
  // the way (the chain's IDT-vectoring interruptions, SDM Vol. 3C 27.2.4 "Information for VM
  // Exits During Event Delivery", and KVM's reinjection of them). Memory: one row per kind and
  // the few slowest chains, whichever way the chains are read.
  std::map<uint32_t, size_t> kind_index;
  std::vector<SlowChain> slow;
  uint64_t chains_seen = 0;
  // Once N are kept, the Nth's time: a later chain no slower than it cannot enter (chains come
  // in id order, and a tie goes to the lower id).
  std::optional<uint64_t> slow_floor;
  auto keep_slowest = [&](bool final) {
    if (!final && slow.size() < 4 * opt.slowest_chains + 64) return;
    std::sort(slow.begin(), slow.end(), [](const SlowChain& a, const SlowChain& b) {
      return a.time_ns != b.time_ns ? a.time_ns > b.time_ns : a.id < b.id;
    });
    if (slow.size() > opt.slowest_chains) slow.resize(opt.slowest_chains);
    if (!slow.empty() && slow.size() == opt.slowest_chains) slow_floor = slow.back().time_ns;
  };
  // One chain's figures, however they were read: `first_member` is its root record's id (its first
  // member's when the root is missing), `raise_ns` that record's time, `delivered_ns` the time of
  // the delivery that decided a delivered outcome.
  auto count_chain = [&](uint64_t chain_id, uint64_t first_member, uint32_t event_word, uint64_t raise_ns,
                         std::optional<uint64_t> delivered_ns, Outcome outcome, uint64_t vectoring_exits,
                         uint64_t reinjections) {
    ++out.chains;
    const arch::EntryIntrInfo word(event_word);
    // [10:8] type, [7:0] vector: the error-code bit does not make another kind.
    const uint32_t key_word = word.valid() ? (event_word & 0x7FF) : UINT32_MAX;
    auto [it, fresh] = kind_index.try_emplace(key_word, out.kinds.size());
    if (fresh) {
      ChainKindRow row;
      row.event_word = event_word;
      row.key = word.valid() ? arch::describe_event(event_word) : std::string("unknown event");
      out.kinds.push_back(row);
    }
    ChainKindRow& k = out.kinds[it->second];
    ++k.count;
    k.exits += vectoring_exits;
    k.reinjections += reinjections;
    const bool delivered = outcome == Outcome::Delivered || outcome == Outcome::ReinjectedThenDelivered;
    if (delivered && delivered_ns && *delivered_ns >= raise_ns) {
      const uint64_t d = *delivered_ns - raise_ns;
      ++k.delivered;
      k.total_ns += d;
      k.min_ns = std::min(k.min_ns.value_or(d), d);
      k.max_ns = std::max(k.max_ns.value_or(d), d);
      const unsigned bucket = histogram_bucket(d);
      if (out.histogram.size() <= bucket) out.histogram.resize(bucket + 1);
      ++out.histogram[bucket];
      if (opt.pick && opt.pick->table == StatsPick::Table::ChainHistogram && opt.pick->bucket == bucket)
        out.picked.push_back(first_member);
      // Keep only the slowest few: a partial sort now and then bounds the memory.
      if (opt.slowest_chains > 0 && !(slow_floor && d <= *slow_floor)) {
        slow.push_back({chain_id, k.key, d, vectoring_exits, reinjections, outcome});
        keep_slowest(false);
      }
    }
  };

  if (!unusable) {
    // The chains table (schema v3): one row a chain with its figures, decided when the recording
    // was written by the same rules as the walk below (kChainRulesVersion), so no member is read.
    std::string csql =
        "SELECT id, first_event, event_word, raise_ns, delivered_ns, outcome, vectoring_exits, reinjections FROM "
        "chains "
        "WHERE 1";
    std::vector<int64_t> cb;
    if (opt.vcpu) {
      csql += " AND vcpu = ?";
      cb.push_back(*opt.vcpu);
    }
    if (opt.level) {
      csql += " AND level = ?";
      cb.push_back(*opt.level);
    }
    if (opt.from_ns) {
      csql += " AND raise_ns >= ?";
      cb.push_back(static_cast<int64_t>(*opt.from_ns));
    }
    if (opt.to_ns) {
      csql += " AND raise_ns <= ?";
      cb.push_back(static_cast<int64_t>(*opt.to_ns));
    }
    std::string last_outcome_name;
    std::optional<Outcome> last_outcome;
    auto cs = db.prepare(csql + " ORDER BY id");
    if (!cs) return read_error(cs.error());
    for (size_t i = 0; i < cb.size(); ++i) cs->bind(static_cast<int>(i + 1), cb[i]);
    for (;;) {
      const int rc = cs->step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return read_error(db.errmsg());
      const uint64_t id = cs->col_u64(0);
      if (++chains_seen % 4096 == 0 && !tick(id)) return make_error(kStatsCancelled);
      // Outcome names repeat: compare with the last one before looking the name up.
      const std::string_view name = cs->col_bytes(5);
      if (name != last_outcome_name) {
        last_outcome_name.assign(name);
        last_outcome = outcome_from_string(name);
      }
      const auto outcome = last_outcome;
      if (!outcome)
        return make_error(
            "'" + db.path() + "' has chain " + std::to_string(id) +
            " with an outcome this exitscope does "
            "not know; the file is damaged or was written by another version (re-record or re-import it).");
      count_chain(id, cs->col_u64(1), static_cast<uint32_t>(cs->col_i64(2)), cs->col_u64(3),
                  cs->col_null(4) ? std::nullopt : std::optional<uint64_t>(cs->col_u64(4)), *outcome, cs->col_u64(6),
                  cs->col_u64(7));
    }
  } else {
    out.notice = *unusable;
    auto visit = [&](const Chain& c) {
      if (++chains_seen % 1024 == 0 && !tick(c.id)) {
        cancelled = true;
        return false;
      }
      if (c.events.empty()) return true;
      const es_record& first = c.root_found ? c.root.rec : c.events.front().rec;
      if (opt.vcpu && first.vcpu != *opt.vcpu) return true;
      if (opt.level && first.level != *opt.level) return true;
      if (opt.from_ns && first.time_ns < *opt.from_ns) return true;
      if (opt.to_ns && first.time_ns > *opt.to_ns) return true;
      count_chain(c.id, first.id, c.event_word, first.time_ns, c.outcome_ns, c.outcome, c.vectoring_exits,
                  c.reinjections);
      return true;
    };
    // A time window reads only the chains it can count, as the exit pass reads only its rows: a
    // chain counts by its raise (its root record, whose id is the chain's id), and ids follow time
    // (see above), so its id lies between the window's first and last ids. Each such chain is read
    // and decided through the origin index (load_chain_and_links, as `chains --chain N`); a window
    // over a large part of the recording walks it whole instead, cheaper per chain. A chain whose
    // root record is missing (dropped) counts by its first recorded member, which only the whole
    // walk finds when that member is inside the window and the missing root before it.
    auto scoped = chain_ids_in_window(db, opt);
    if (!scoped) return make_error(scoped.error());
    if (*scoped) {
      for (uint64_t id : **scoped) {
        auto chains = load_chain_and_links(db, id);
        if (!chains) return make_error(chains.error());
        if (!chains->empty() && chains->front().id == id) visit(chains->front());
        if (cancelled) return make_error(kStatsCancelled);
      }
    } else {
      auto walked = for_each_chain(db, visit);
      if (!walked) return make_error(walked.error());
      if (cancelled) return make_error(kStatsCancelled);
    }
  }
  for (ChainKindRow& k : out.kinds)
    if (k.delivered) k.mean_ns = k.total_ns / k.delivered;
  std::stable_sort(out.kinds.begin(), out.kinds.end(),
                   [](const ChainKindRow& a, const ChainKindRow& b) { return a.count > b.count; });
  keep_slowest(true);
  out.slowest = std::move(slow);
  return out;
}

}  // namespace

Result<Stats> compute_stats(Recording& rec, const StatsOptions& opt) {
  db::Db& db = rec.db();
  Stats out;
  out.by = opt.by;
  auto read_error = [&](std::string_view msg) {
    return make_error(schema::describe_sqlite_error(db.path(), "reading", db.errcode(), msg));
  };

  // The chain figures are stored (schema v3) or walked; stored ones are read on a second
  // connection while this thread makes the exit pass (both are mostly SQLite's own work: on two
  // cores the slower pass alone sets the time, BENCHMARKS.md "Stats"). Not with a progress
  // callback, which is called on the computing thread only.
  std::optional<std::string> unusable;
  if (opt.chains) {
    auto u = stored_chains_unusable(db);
    if (!u) return make_error(u.error());
    unusable = *u;
  }
  std::optional<std::future<Result<ChainPart>>> concurrent;
  if (opt.chains && !unusable && !opt.progress)
    if (auto second = db::Db::open(db.path(), SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX); second)
      concurrent = std::async(std::launch::async, [conn = std::move(second).value(), &opt]() mutable {
        return chain_part(conn, opt, std::nullopt, [](uint64_t) { return true; });
      });

  // One pass in id order over exits and entries (and kvm_msr records for --by msr).
  auto covering =
      db.query_int("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'events_exit_entry'");
  if (!covering) return read_error(covering.error());
  std::vector<int64_t> binds;
  // kvm_mmio records are not in the covering index (it keeps only what the default views read):
  // --by mmio reads the table.
  bool use_index = *covering == 1 && opt.by != StatsBy::Mmio;
  std::string sql = exit_pass_sql(use_index, opt, binds);
  // Entries before the window close no exit inside it; entries after `to` may. The window's
  // first row comes from first_id_at_or_after (a binary search by id on a sorted recording,
  // else the events_time index), and the scan starts there (an id range of the
  // covering index, the rowid or events_vcpu) instead of reading the rows before it. This, and
  // the stop past `to` below, rely on ids following time, as every source writes them: hv's
  // clock, imports sorted by time (replay/import), live KVM's per-CPU rings merged in time
  // order (probes/kvm).
  if (opt.from_ns) {
    auto first = first_id_at_or_after(db, *opt.from_ns);
    if (!first) return make_error(first.error());
    sql += " AND id >= ? AND time_ns >= ?";
    binds.push_back(*first ? static_cast<int64_t>(**first) : INT64_MAX);
    binds.push_back(static_cast<int64_t>(*opt.from_ns));
  }
  sql += (opt.vcpu && !use_index) ? " ORDER BY vcpu, id" : " ORDER BY id";
  auto st = db.prepare(sql);
  if (!st && use_index) {
    // An index of that name whose condition is not this build's (SQLite: "no query solution"):
    // read the table instead.
    std::vector<int64_t> table_binds;
    std::string table_sql = exit_pass_sql(false, opt, table_binds);
    if (opt.from_ns) {
      table_sql += " AND id >= ? AND time_ns >= ?";
      table_binds.insert(table_binds.end(), binds.end() - 2, binds.end());
    }
    table_sql += opt.vcpu ? " ORDER BY vcpu, id" : " ORDER BY id";
    use_index = false;
    binds = std::move(table_binds);
    st = db.prepare(table_sql);
  }
  if (!st) return read_error(st.error());
  for (size_t i = 0; i < binds.size(); ++i) st->bind(static_cast<int>(i + 1), binds[i]);

  // Progress: by id through [first, last] (ids follow time; a share of the ids is a share of
  // the rows read), the exit pass first.
  uint64_t first_id = 0, last_id = 0;
  if (opt.progress) {
    auto span = db.prepare("SELECT (SELECT min(id) FROM events), (SELECT max(id) FROM events)");
    if (span && span->step() == SQLITE_ROW) {
      first_id = span->col_u64(0);
      last_id = span->col_u64(1);
    }
  }
  const double exit_share = opt.chains ? 0.5 : 1.0;
  auto share_of = [&](uint64_t id) {
    return last_id > first_id ? static_cast<double>(std::clamp(id, first_id, last_id) - first_id) /
                                    static_cast<double>(last_id - first_id)
                              : 1.0;
  };
  uint64_t rows_read = 0;
  constexpr uint64_t kProgressEvery = 4096;

  Table exits, nested, vcpus, levels;
  // Exits waiting for their entry, by (vCPU, level, nested): in practice one a slot, so memory
  // is one small vector per slot (kept, cleared, not freed, between exits).
  std::unordered_map<uint32_t, std::vector<Pending>> pending;
  size_t pending_count = 0;
  auto slot = [](const Row& r, bool nested_kind) {
    return (static_cast<uint32_t>(r.vcpu) << 9) | (static_cast<uint32_t>(r.level) << 1) | (nested_kind ? 1u : 0u);
  };
  auto in_window = [&](const Row& r) { return !(opt.to_ns && r.time_ns > *opt.to_ns); };
  auto selected = [&](const Row& r) {
    if (!in_window(r)) return false;
    if (opt.reason) {
      es_record probe{};
      probe.kind = r.kind;
      probe.reason = r.reason;
      probe.flags = r.flags;
      if (!matches_decoded(*opt.reason, probe)) return false;
    }
    return true;
  };
  // Groups an exit once its time is known (or known to be unknown).
  auto settle = [&](const Pending& p, std::optional<uint64_t> d) {
    const Row& x = p.exit;
    if (x.kind == ES_KIND_NESTED_EXIT) {
      if (opt.by != StatsBy::Reason) return;
      auto [a, fresh] = nested.at(x.level, x.flags & ES_FLAG_SVM, x.reason);
      if (fresh) {
        a->row.key = exit_reason_text(x.reason, x.flags);
        a->row.level = x.level;
        a->row.reason = x.reason;
        a->row.flags = x.flags & ES_FLAG_SVM;
      }
      add(*a, d);
      if (opt.pick && opt.pick->table == StatsPick::Table::NestedExits && opt.pick->level == x.level &&
          opt.pick->key == a->row.key)
        out.picked.push_back(x.id);
      return;
    }
    if (auto [v, fresh] = vcpus.at(0, 0, x.vcpu); true) {
      if (fresh) {
        v->row.key = "vcpu " + std::to_string(x.vcpu);
        v->row.value = x.vcpu;
      }
      add(*v, d);
    }
    if (auto [l, fresh] = levels.at(x.level, 0, 0); true) {
      if (fresh) {
        l->row.key = "L" + std::to_string(x.level);
        l->row.level = x.level;
        l->row.value = x.level;
      }
      add(*l, d);
    }
    Acc* a = nullptr;
    bool fresh = false;
    switch (opt.by) {
      case StatsBy::Reason:
        std::tie(a, fresh) = exits.at(x.level, x.flags & ES_FLAG_SVM, x.reason);
        if (fresh) {
          a->row.key = exit_reason_text(x.reason, x.flags);
          a->row.reason = x.reason;
          a->row.flags = x.flags & ES_FLAG_SVM;
        }
        break;
      case StatsBy::Port: {
        if (!is_io_exit(x)) return;
        // The same bits on both vendors: [31:16] port.
        const uint16_t port =
            is_svm(x.flags) ? arch::SvmIoInfo(x.qualification).port() : arch::IoQual(x.qualification).port();
        std::tie(a, fresh) = exits.at(x.level, 0, port);
        if (fresh) {
          a->row.key = "port " + hex(port);
          a->row.value = port;
        }
        break;
      }
      case StatsBy::Page: {
        if (!is_gpa_exit(x)) return;
        const uint64_t page = x.guest_phys & ~0xFFFull;
        std::tie(a, fresh) = exits.at(x.level, 0, page);
        if (fresh) {
          a->row.key = "page " + hex(page);
          a->row.value = page;
        }
        break;
      }
      case StatsBy::Msr: {
        if (!is_msr_exit(x)) return;
        const bool wr = msr_write(x);
        const uint64_t msr = p.msr.value_or(kUnknownValue);
        std::tie(a, fresh) = exits.at(x.level, wr ? 1 : 0, msr);
        if (fresh) {
          a->row.key = std::string("msr ") + (p.msr ? hex(msr) : "unknown") + (wr ? " wr" : " rd");
          a->row.value = msr;
        }
        break;
      }
      case StatsBy::Mmio: {
        if (!p.mmio) return;
        std::tie(a, fresh) = exits.at(x.level, p.mmio_write ? 1 : 0, *p.mmio);
        if (fresh) {
          a->row.key = "mmio " + hex(*p.mmio) + (p.mmio_write ? " wr" : " rd");
          a->row.value = *p.mmio;
        }
        break;
      }
    }
    a->row.level = x.level;
    add(*a, d);
    if (opt.pick) {
      const StatsPick& want = *opt.pick;
      if ((want.table == StatsPick::Table::Exits && want.level == x.level && want.key == a->row.key) ||
          (want.table == StatsPick::Table::Histogram && d && histogram_bucket(*d) == want.bucket))
        out.picked.push_back(x.id);
    }
  };

  for (;;) {
    const int rc = st->step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return read_error(db.errmsg());
    Row r;
    r.id = st->col_u64(0);
    if (opt.progress && ++rows_read % kProgressEvery == 0 && !opt.progress(exit_share * share_of(r.id)))
      return make_error(kStatsCancelled);
    r.kind = static_cast<uint16_t>(st->col_i64(1));
    r.level = static_cast<uint8_t>(st->col_i64(2));
    r.vcpu = static_cast<uint16_t>(st->col_i64(3));
    r.time_ns = st->col_u64(4);
    r.reason = static_cast<uint32_t>(st->col_i64(5));
    r.flags = static_cast<uint32_t>(st->col_i64(6));
    if (opt.by != StatsBy::Reason) {
      r.qualification = st->col_u64(7);
      r.guest_phys = st->col_u64(8);
      if (opt.by == StatsBy::Mmio) r.intr_error = static_cast<uint32_t>(st->col_i64(9));
    }
    // Past the window with every exit in it settled: nothing later can change the figures.
    if (opt.to_ns && r.time_ns > *opt.to_ns && pending_count == 0) break;
    switch (r.kind) {
      case ES_KIND_VM_EXIT:
      case ES_KIND_NESTED_EXIT:
        if (selected(r)) {
          pending[slot(r, r.kind == ES_KIND_NESTED_EXIT)].push_back({r, std::nullopt});
          ++pending_count;
        }
        // The chain table is not narrowed by --reason: nor is this count, which speaks of it.
        if (r.kind == ES_KIND_VM_EXIT && (r.flags & ES_FLAG_VECTORING_UNKNOWN) && in_window(r))
          ++out.exits_without_vectoring;
        break;
      case ES_KIND_VM_ENTRY:
      case ES_KIND_NESTED_ENTRY: {
        const bool nested_kind = r.kind == ES_KIND_NESTED_ENTRY;
        ++(nested_kind ? out.nested_entries : out.entries);
        auto it = pending.find(slot(r, nested_kind));
        if (it == pending.end() || it->second.empty()) break;
        for (const Pending& p : it->second)
          // A trace clock that went backwards gives no time rather than a wrapped one.
          settle(p, r.time_ns >= p.exit.time_ns ? std::optional<uint64_t>(r.time_ns - p.exit.time_ns) : std::nullopt);
        pending_count -= it->second.size();
        it->second.clear();
        break;
      }
      case ES_KIND_CONTEXT: {
        if (opt.by == StatsBy::Mmio && r.reason == ES_CONTEXT_MMIO) {
          // kvm_mmio follows the exit whose emulation made the access, on the same vCPU, before the
          // entry (a read's completion after KVM_EXIT_MMIO too: the first record decides).
          auto it = pending.find(slot(r, false));
          if (it != pending.end() && !it->second.empty() && !it->second.back().mmio) {
            it->second.back().mmio = r.guest_phys;
            it->second.back().mmio_write = r.intr_error == 2;  // KVM_TRACE_MMIO_WRITE
          }
          break;
        }
        if (opt.by != StatsBy::Msr) break;
        // kvm_msr follows the exit it belongs to on the same vCPU, before the entry.
        auto it = pending.find(slot(r, false));
        if (it != pending.end() && !it->second.empty() && is_msr_exit(it->second.back().exit) && !it->second.back().msr)
          it->second.back().msr = r.qualification;
        break;
      }
      default: break;
    }
  }
  st = db::Stmt();
  // Exits no entry followed: counted, time unknown. In id order, as the rows came.
  std::vector<Pending> rest;
  for (auto& [k, v] : pending) rest.insert(rest.end(), v.begin(), v.end());
  pending.clear();
  std::sort(rest.begin(), rest.end(), [](const Pending& a, const Pending& b) { return a.exit.id < b.exit.id; });
  for (const Pending& p : rest) settle(p, std::nullopt);

  Durations all_exit_durations, all_nested_durations;
  out.exits = finish(exits, &all_exit_durations);
  out.nested_exits = finish(nested, &all_nested_durations);
  out.by_vcpu = finish(vcpus, nullptr);
  out.by_level = finish(levels, nullptr);
  uint64_t exit_count = 0, nested_count = 0;
  for (const ExitRow& r : out.exits) exit_count += r.lat.count;
  for (const ExitRow& r : out.nested_exits) nested_count += r.lat.count;
  for (const auto& [d, n] : all_exit_durations) {
    const unsigned b = histogram_bucket(d);
    if (out.histogram.size() <= b) out.histogram.resize(b + 1);
    out.histogram[b] += n;
  }
  std::sort(out.picked.begin(), out.picked.end());
  out.all_exits = summarize(all_exit_durations, exit_count);
  out.all_nested = summarize(all_nested_durations, nested_count);
  std::sort(out.by_vcpu.begin(), out.by_vcpu.end(),
            [](const ExitRow& a, const ExitRow& b) { return a.value < b.value; });
  std::sort(out.by_level.begin(), out.by_level.end(),
            [](const ExitRow& a, const ExitRow& b) { return a.level < b.level; });

  if (!opt.chains) {
    if (opt.progress) opt.progress(1.0);
    return out;
  }
  std::optional<Result<ChainPart>> part;
  if (concurrent) {
    part.emplace(concurrent->get());
  } else {
    part.emplace(chain_part(db, opt, unusable, [&](uint64_t id) {
      return !opt.progress || opt.progress(exit_share + (1 - exit_share) * share_of(id));
    }));
  }
  if (!*part) return make_error(part->error());
  ChainPart& chains = **part;
  if (opt.progress) opt.progress(1.0);
  out.chain_kinds = std::move(chains.kinds);
  out.chain_histogram = std::move(chains.histogram);
  out.slowest = std::move(chains.slowest);
  out.chains = chains.chains;
  out.notice = std::move(chains.notice);
  out.picked.insert(out.picked.end(), chains.picked.begin(), chains.picked.end());
  std::sort(out.picked.begin(), out.picked.end());
  return out;
}

}  // namespace es::replay
