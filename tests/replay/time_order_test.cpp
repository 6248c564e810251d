// Time edges on recordings without a time index (issue #18, schema/time_index.sql): a recording
// written with time_ns never decreasing in id order says so (event_order) and has no events_time;
// its windows are id ranges found by binary search. A recording out of time order keeps the
// index, and a stranger's unsorted file without index or word is scanned: the same answers,
// never those of a binary search over rows that are not sorted.
//
// Expected outcomes, written before running (times by id; a window [from, to] holds the events
// with from <= time_ns <= to; the first event of a window is the lowest (time, id) at or after
// `from`, the last the highest (time, id) at or before `to`):
//   sorted   1:10 2:20 3:20 4:40 5:50  (a tie at 20)
//     first >= 20 -> 2, last <= 20 -> 3, first >= 25 -> 4, last <= 45 -> 4, first >= 0 -> 1,
//     last <= 100 -> 5, first >= 60 -> none, last <= 5 -> none; window [20, 40] = {2, 3, 4};
//     time order = id order; span 10 .. 50.
//   unsorted 1:10 2:50 3:20 4:40 5:30
//     first >= 25 -> 5 (time 30), last <= 45 -> 4 (time 40), first >= 60 -> none,
//     last <= 5 -> none; window [20, 40] = {3, 4, 5}; time order 1, 3, 5, 4, 2; span 10 .. 50.
//     (A binary search would answer 4 for first >= 25, and [20, 40] would be ids 3..4.)
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "probes/recorder/recorder.h"
#include "replay/browse.h"
#include "replay/query.h"
#include "replay/recording.h"
#include "tests/probes/test_support.h"

namespace es {
namespace {

// A finished recording of five VM exits on vCPU 0 with these times, ids 1..5 in this order.
std::string make_recording(const std::string& name, const std::vector<uint64_t>& times) {
  const std::string path = test::temp_db(name);
  auto rec = recorder::Recorder::open(path, recorder::SessionStart{}, false, {.steps = recorder::kNoChains});
  EXPECT_TRUE(rec) << rec.error();
  if (!rec) return path;
  for (uint64_t t : times) {
    es_record r{};
    r.kind = ES_KIND_VM_EXIT;
    r.level = 1;
    r.time_ns = t;
    (*rec)->on_record(r);
  }
  EXPECT_TRUE((*rec)->finish({ES_END_GUEST_EXIT, "done"}));
  return path;
}

int64_t query_int(const std::string& path, const std::string& sql) {
  auto db = db::Db::open(path, SQLITE_OPEN_READONLY);
  EXPECT_TRUE(db) << db.error();
  auto v = db->query_int(sql);
  EXPECT_TRUE(v) << v.error();
  return v ? *v : -1;
}

std::optional<uint64_t> first_at(replay::Recording& rec, uint64_t t) {
  auto v = replay::first_id_at_or_after(rec.db(), t);
  EXPECT_TRUE(v) << v.error();
  return v ? *v : std::nullopt;
}

std::optional<uint64_t> last_at(replay::Recording& rec, uint64_t t) {
  auto v = replay::last_id_at_or_before(rec.db(), t);
  EXPECT_TRUE(v) << v.error();
  return v ? *v : std::nullopt;
}

// Ids `events --query QUERY` lists.
std::vector<uint64_t> ids(replay::Recording& rec, const std::string& query) {
  auto f = replay::parse_query(query);
  EXPECT_TRUE(f) << f.error();
  std::vector<uint64_t> out;
  if (!f) return out;
  auto r = rec.for_each_event(*f, [&](const replay::Event& e) {
    out.push_back(e.rec.id);
    return true;
  });
  EXPECT_TRUE(r) << r.error();
  return out;
}

std::string plan(db::Db& db, const std::string& sql, const std::vector<int64_t>& binds) {
  auto st = db.prepare("EXPLAIN QUERY PLAN " + sql);
  EXPECT_TRUE(st) << sql;
  if (!st) return {};
  for (size_t i = 0; i < binds.size(); ++i) st->bind(static_cast<int>(i + 1), binds[i]);
  std::string out;
  while (st->step() == SQLITE_ROW) out += st->col_text(3) + "\n";
  return out;
}

using Ids = std::vector<uint64_t>;

TEST(TimeOrder, SortedRecordingHasNoTimeIndexAndFindsEdgesByBinarySearch) {
  const std::string path = make_recording("time_sorted.db", {10, 20, 20, 40, 50});
  EXPECT_EQ(query_int(path, "SELECT time_sorted FROM event_order"), 1);
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'events_time'"), 0);
  auto rec = replay::Recording::open(path);
  ASSERT_TRUE(rec) << rec.error();
  auto sorted = replay::time_sorted(rec->db());
  ASSERT_TRUE(sorted) << sorted.error();
  EXPECT_TRUE(*sorted);
  EXPECT_EQ(first_at(*rec, 20), std::optional<uint64_t>(2));
  EXPECT_EQ(last_at(*rec, 20), std::optional<uint64_t>(3));
  EXPECT_EQ(first_at(*rec, 25), std::optional<uint64_t>(4));
  EXPECT_EQ(last_at(*rec, 45), std::optional<uint64_t>(4));
  EXPECT_EQ(first_at(*rec, 0), std::optional<uint64_t>(1));
  EXPECT_EQ(last_at(*rec, 100), std::optional<uint64_t>(5));
  EXPECT_EQ(first_at(*rec, 60), std::nullopt);
  EXPECT_EQ(last_at(*rec, 5), std::nullopt);
  EXPECT_EQ(ids(*rec, "from:20 to:40"), (Ids{2, 3, 4}));
  EXPECT_EQ(ids(*rec, "from:60"), Ids{});
  EXPECT_EQ(ids(*rec, "to:19"), (Ids{1}));
  auto order = replay::ids_by_time(*rec);
  ASSERT_TRUE(order) << order.error();
  EXPECT_EQ(*order, (Ids{1, 2, 3, 4, 5}));
  auto span = replay::event_span(*rec);
  ASSERT_TRUE(span) << span.error();
  EXPECT_EQ(span->first_time_ns, 10u);
  EXPECT_EQ(span->last_time_ns, 50u);
  // The window is a range of the rowid b-tree, not a scan (nor a time index: there is none).
  auto f = replay::parse_query("from:20 to:40");
  ASSERT_TRUE(f);
  std::vector<int64_t> binds;
  auto where = rec->filter_sql(*f, binds);
  ASSERT_TRUE(where) << where.error();
  const std::string p =
      plan(rec->db(), std::string(replay::event_select_sql()) + " WHERE " + *where + " ORDER BY e.id", binds);
  EXPECT_NE(p.find("SEARCH e USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"), std::string::npos) << p;
  EXPECT_EQ(p.find("SCAN e"), std::string::npos) << p;
  auto w = replay::window_events(*rec, 20, 40, 100);
  ASSERT_TRUE(w) << w.error();
  Ids got;
  for (const auto& e : w->events) got.push_back(e.rec.id);
  EXPECT_EQ(got, (Ids{2, 3, 4}));
}

// Runs `sql` on the recording at `path`, as another tool editing the file would.
void edit(const std::string& path, const char* sql) {
  auto db = db::Db::open(path, SQLITE_OPEN_READWRITE);
  ASSERT_TRUE(db) << db.error();
  ASSERT_TRUE(db->exec(sql));
}

// The recording is read as not in time order (SQL answers every time edge).
void expect_not_sorted(replay::Recording& rec) {
  auto sorted = replay::time_sorted(rec.db());
  ASSERT_TRUE(sorted) << sorted.error();
  EXPECT_FALSE(*sorted);
}

void expect_unsorted_answers(replay::Recording& rec) {
  EXPECT_EQ(first_at(rec, 25), std::optional<uint64_t>(5));
  EXPECT_EQ(last_at(rec, 45), std::optional<uint64_t>(4));
  EXPECT_EQ(first_at(rec, 60), std::nullopt);
  EXPECT_EQ(last_at(rec, 5), std::nullopt);
  EXPECT_EQ(ids(rec, "from:20 to:40"), (Ids{3, 4, 5}));
  EXPECT_EQ(ids(rec, "from:45"), (Ids{2}));
  auto order = replay::ids_by_time(rec);
  ASSERT_TRUE(order) << order.error();
  EXPECT_EQ(*order, (Ids{1, 3, 5, 4, 2}));
  auto span = replay::event_span(rec);
  ASSERT_TRUE(span) << span.error();
  EXPECT_EQ(span->first_time_ns, 10u);
  EXPECT_EQ(span->last_time_ns, 50u);
}

TEST(TimeOrder, UnsortedRecordingKeepsTheTimeIndex) {
  const std::string path = make_recording("time_unsorted.db", {10, 50, 20, 40, 30});
  EXPECT_EQ(query_int(path, "SELECT time_sorted FROM event_order"), 0);
  EXPECT_EQ(query_int(path, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'events_time'"), 1);
  auto rec = replay::Recording::open(path);
  ASSERT_TRUE(rec) << rec.error();
  expect_unsorted_answers(*rec);
}

// A stranger's file: out of time order, with neither the time index nor event_order. Not
// knowing is not sorted: every answer comes from a scan.
TEST(TimeOrder, UnsortedFileWithoutIndexOrWordIsScannedNotSearched) {
  const std::string path = make_recording("time_stranger.db", {10, 50, 20, 40, 30});
  ASSERT_NO_FATAL_FAILURE(edit(path, "DROP INDEX events_time; DROP TABLE event_order"));
  auto rec = replay::Recording::open(path);
  ASSERT_TRUE(rec) << rec.error();
  ASSERT_NO_FATAL_FAILURE(expect_not_sorted(*rec));
  expect_unsorted_answers(*rec);
}

// A source that gives its own ids may hand rows to the writer out of id order. Written in the
// order #1 #2 #5 #3 #4 at times 10 20 50 30 40: in write order the time goes back (50 -> 30), in
// id order it does not (10 20 30 40 50), and id order is what the word is about. Expected: the
// writer cannot tell, create_indexes reads the table in id order and says sorted, no time index;
// [25, 45] is #3 #4. Then the same ids with #5 at 5: sorted neither way, the index is built.
TEST(TimeOrder, RowsWrittenOutOfIdOrderAreJudgedInIdOrder) {
  auto write = [](const std::string& name, uint64_t fifth_time) {
    const std::string path = test::temp_db(name);
    auto rec = recorder::Recorder::open(path, recorder::SessionStart{}, false, {.steps = recorder::kNoChains});
    EXPECT_TRUE(rec) << rec.error();
    if (!rec) return path;
    const std::vector<std::pair<uint64_t, uint64_t>> rows = {{1, 10}, {2, 20}, {5, fifth_time}, {3, 30}, {4, 40}};
    for (auto [id, t] : rows) {
      es_record r{};
      r.id = id;
      r.kind = ES_KIND_VM_EXIT;
      r.level = 1;
      r.time_ns = t;
      (*rec)->on_record(r);
    }
    EXPECT_TRUE((*rec)->finish({ES_END_GUEST_EXIT, "done"}));
    return path;
  };
  const std::string sorted = write("time_ids_out_of_order.db", 50);
  EXPECT_EQ(query_int(sorted, "SELECT time_sorted FROM event_order"), 1);
  EXPECT_EQ(query_int(sorted, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'events_time'"), 0);
  auto rec = replay::Recording::open(sorted);
  ASSERT_TRUE(rec) << rec.error();
  EXPECT_EQ(ids(*rec, "from:25 to:45"), (Ids{3, 4}));

  const std::string unsorted = write("time_ids_out_of_order_unsorted.db", 5);
  EXPECT_EQ(query_int(unsorted, "SELECT time_sorted FROM event_order"), 0);
  EXPECT_EQ(query_int(unsorted, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'events_time'"), 1);
  auto rec2 = replay::Recording::open(unsorted);
  ASSERT_TRUE(rec2) << rec2.error();
  EXPECT_EQ(ids(*rec2, "to:10"), (Ids{1, 5}));
}

// The word 0 (a recording whose writer saw its times go back) is honoured even where the rows
// happen to be sorted: SQL answers (a scan here, the index dropped), with the same results.
TEST(TimeOrder, WordZeroIsAnsweredBySql) {
  const std::string path = make_recording("time_word.db", {10, 20, 30, 40, 50});
  ASSERT_NO_FATAL_FAILURE(edit(path, "UPDATE event_order SET time_sorted = 0"));
  auto rec = replay::Recording::open(path);
  ASSERT_TRUE(rec) << rec.error();
  ASSERT_NO_FATAL_FAILURE(expect_not_sorted(*rec));
  EXPECT_EQ(first_at(*rec, 25), std::optional<uint64_t>(3));
  EXPECT_EQ(last_at(*rec, 25), std::optional<uint64_t>(2));
  EXPECT_EQ(ids(*rec, "from:20 to:40"), (Ids{2, 3, 4}));
  auto f = replay::parse_query("from:20 to:40");
  ASSERT_TRUE(f);
  std::vector<int64_t> binds;
  auto where = rec->filter_sql(*f, binds);
  ASSERT_TRUE(where) << where.error();
  EXPECT_EQ(where->find("id >="), std::string::npos) << *where;
}

}  // namespace
}  // namespace es
