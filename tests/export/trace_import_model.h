// What the two viewers of our trace-event JSON do with flow arrows, as models small enough to
// read, so a test can say which chain arrows a user would see without the viewers themselves
// (neither Perfetto's trace_processor nor Chrome's trace viewer can be installed here).
//
// Perfetto (google/perfetto, src/trace_processor/importers/json/json_trace_parser.cc,
// importers/common/slice_tracker.cc, flow_tracker.cc, sorter/trace_sorter.h):
//  - events are processed in the order (ts, phase key, position in the file): at one ts an
//    "E" comes first, then "X" slices longest first, then everything else in file order;
//  - "X", "B" and thread-scoped "i" (zero duration) open a slice on the thread track (pid,
//    tid) after popping the slices that ended before it (one ending exactly at its ts is popped
//    too, unless both are zero-length: those stack); "E" ends the latest open "B";
//  - a flow is bound to the topmost slice of the track's stack when the flow event is
//    processed; an empty stack drops it (stat flow_no_enclosing_slice). v1 flow events
//    ("s", "t", "f" with "id"; "f" with "bp":"e" binds to the enclosing slice, otherwise to the
//    next slice that begins on the track) are separate events; v2 ("bind_id" with
//    "flow_out" / "flow_in" on an "X" or "B") bind to the slice that event itself just opened.
//    flow_out alone begins a flow (a second begin: flow_duplicate_id), flow_in and flow_out
//    steps (without a begin: flow_step_without_start), flow_in alone ends it
//    (flow_end_without_start). Each step inserts one arrow (slice_out -> slice_in).
//  Checked by hand against Perfetto's own expectations: on the traces of its diff tests
//  parser/parsing test_flow_events_json_v1 and _v2 this model gives exactly their flow rows.
//
// Chrome's trace viewer (catapult, tracing/extras/importer/trace_event_importer.html):
//  - v2 flows come only from "X" events with a non-zero bind_id; they are sorted by (ts,
//    position in the file); flow_out alone is a producer, flow_in alone a consumer, both a
//    step (consumer, then producer again). A consumer with no producer is dropped with a
//    warning; a second producer while one is open is dropped with a warning. A producer
//    never consumed leaves an arrow with no end on its slice (counted here as "dangling").
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tests/export/mini_json.h"

namespace es::test::viewer {

struct Arrow {
  uint64_t flow = 0;          // the JSON id / bind_id
  uint64_t from = 0, to = 0;  // args.id of the slices it links (0: a slice without one)
  std::string from_name, to_name;
};

struct Import {
  std::vector<Arrow> arrows;          // in the order the importer made them
  std::map<std::string, int> errors;  // stat or warning name -> count
};

// "12.345" (µs, as we write them) -> 12345 ns, exactly.
inline int64_t ts_ns(const json::Value& v) {
  const std::string& t = v.text;
  int64_t whole = 0, frac = 0;
  size_t i = 0;
  for (; i < t.size() && t[i] != '.'; ++i) whole = whole * 10 + (t[i] - '0');
  int digits = 0;
  if (i < t.size())
    for (++i; i < t.size() && digits < 3; ++i, ++digits) frac = frac * 10 + (t[i] - '0');
  for (; digits < 3; ++digits) frac *= 10;
  return whole * 1000 + frac;
}

// A number, or a string id as Perfetto reads one (hex, "0x" optional).
inline uint64_t num(const json::Value* v) {
  if (!v || v->text.empty()) return 0;
  if (v->type == json::Value::Type::String) return static_cast<uint64_t>(std::stoull(v->text, nullptr, 16));
  return static_cast<uint64_t>(std::stoull(v->text));
}
inline std::string text(const json::Value& e, const char* key) {
  const json::Value* v = e.find(key);
  return v ? v->text : std::string();
}
inline bool flag(const json::Value& e, const char* key) {
  const json::Value* v = e.find(key);
  return v && v->type == json::Value::Type::Bool && v->b;
}
inline uint64_t event_id(const json::Value& e) {
  const json::Value* a = e.find("args");
  return a ? num(a->find("id")) : 0;
}

// Perfetto's JSON importer, as far as slices and flows go.
inline Import perfetto_import(const json::Value& root) {
  Import out;
  const json::Value* evs = root.find("traceEvents");
  if (!evs) return out;
  struct Item {
    int64_t ts, key;
    size_t pos;
  };
  std::vector<Item> order;
  for (size_t i = 0; i < evs->items.size(); ++i) {
    const json::Value& e = evs->items[i];
    const std::string ph = text(e, "ph");
    if (ph == "M" || !e.find("ts")) continue;
    int64_t key = std::numeric_limits<int64_t>::max();
    if (ph == "E") key = std::numeric_limits<int64_t>::min();
    if (ph == "X") key -= e.find("dur") ? ts_ns(*e.find("dur")) : 0;
    order.push_back({ts_ns(*e.find("ts")), key, i});
  }
  std::sort(order.begin(), order.end(),
            [](const Item& a, const Item& b) { return std::tie(a.ts, a.key, a.pos) < std::tie(b.ts, b.key, b.pos); });

  struct Slice {
    int64_t ts, dur;
    uint64_t id;
    std::string name;
  };
  std::vector<Slice> slices;
  constexpr int64_t kPending = -1;  // a "B" slice whose "E" has not come
  using Track = std::pair<uint64_t, uint64_t>;
  std::map<Track, std::vector<size_t>> stacks;
  std::map<std::string, size_t> open_flow;                                 // flow key -> slice it is bound to
  std::map<Track, std::vector<std::pair<std::string, uint64_t>>> pending;  // "f" without bp "e"
  auto error = [&](const char* what) { ++out.errors[what]; };
  auto topmost = [&](const Track& t) -> std::optional<size_t> {
    auto it = stacks.find(t);
    if (it == stacks.end() || it->second.empty()) return std::nullopt;
    return it->second.back();
  };
  auto arrow = [&](uint64_t flow, size_t a, size_t b) {
    const size_t from = slices[a].ts > slices[b].ts ? b : a, to = from == a ? b : a;
    out.arrows.push_back({flow, slices[from].id, slices[to].id, slices[from].name, slices[to].name});
  };
  auto begin = [&](const std::string& key, size_t s) {
    if (!open_flow.emplace(key, s).second) error("flow_duplicate_id");
  };
  auto step = [&](const std::string& key, uint64_t flow, size_t s) {
    auto it = open_flow.find(key);
    if (it == open_flow.end()) return error("flow_step_without_start");
    arrow(flow, it->second, s);
    it->second = s;
  };
  auto end = [&](const std::string& key, uint64_t flow, size_t s) {
    auto it = open_flow.find(key);
    if (it == open_flow.end()) return error("flow_end_without_start");
    arrow(flow, it->second, s);
  };

  for (const Item& item : order) {
    const json::Value& e = evs->items[item.pos];
    const std::string ph = text(e, "ph");
    const Track track{num(e.find("pid")), num(e.find("tid"))};
    const bool thread_instant = (ph == "i" || ph == "I") && (text(e, "s").empty() || text(e, "s") == "t");
    std::vector<size_t>& stack = stacks[track];
    // SliceTracker::MaybeCloseStack: pop what ended before a slice starting at ts with `dur`
    // (kPending for a "B" / "E"); an open ("B") slice is never popped here.
    auto close_stack = [&](int64_t dur) {
      bool overlap = false, open_above = false;
      for (int i = static_cast<int>(stack.size()) - 1; i >= 0; --i) {
        const Slice& s = slices[stack[static_cast<size_t>(i)]];
        if (s.dur == kPending) {
          open_above = true;
          continue;
        }
        const int64_t s_end = s.ts + s.dur;
        if (open_above) {
          if (item.ts > s_end) {
            error("misplaced_end_event");
            stack.resize(static_cast<size_t>(i));
            open_above = false;
          }
          continue;
        }
        if (s_end < item.ts || (s_end == item.ts && !(s.dur == 0 && dur == 0))) {
          stack.pop_back();
          continue;
        }
        if (dur != kPending && item.ts < s_end && item.ts + dur > s_end) overlap = true;
      }
      if (overlap) error("slice_spill_overlapping_complete_event");
    };
    if (ph == "E") {
      close_stack(kPending);
      for (int i = static_cast<int>(stack.size()) - 1; i >= 0; --i) {
        Slice& s = slices[stack[static_cast<size_t>(i)]];
        if (s.dur != kPending) continue;
        s.dur = item.ts - s.ts;
        if (static_cast<size_t>(i) == stack.size() - 1) stack.pop_back();
        break;
      }
      continue;
    }
    if (ph == "X" || ph == "B" || thread_instant) {
      const int64_t dur = ph == "B" ? kPending : ph == "X" && e.find("dur") ? ts_ns(*e.find("dur")) : 0;
      close_stack(dur);
      slices.push_back({item.ts, dur, event_id(e), text(e, "name")});
      const size_t id = slices.size() - 1;
      stack.push_back(id);
      if (auto p = pending.find(track); p != pending.end()) {
        for (const auto& [key, flow] : p->second) end(key, flow, id);
        pending.erase(p);
      }
      if ((ph == "X" || ph == "B") && e.find("bind_id")) {
        const uint64_t flow = num(e.find("bind_id"));
        const std::string key = "v2:" + std::to_string(flow);
        const bool in = flag(e, "flow_in"), out_ = flag(e, "flow_out");
        if (in && out_)
          step(key, flow, id);
        else if (out_)
          begin(key, id);
        else if (in)
          end(key, flow, id);
        else
          error("flow_without_direction");
      }
      continue;
    }
    if (ph == "s" || ph == "t" || ph == "f") {
      if (!e.find("id")) {
        error("flow_invalid_id");
        continue;
      }
      const uint64_t flow = num(e.find("id"));
      const std::string key = "v1:" + std::to_string(flow) + ":" + text(e, "cat") + ":" + text(e, "name");
      if (ph == "f" && text(e, "bp") != "e") {
        pending[track].emplace_back(key, flow);
        continue;
      }
      const auto top = topmost(track);
      if (!top) {
        error("flow_no_enclosing_slice");
        continue;
      }
      if (ph == "s")
        begin(key, *top);
      else if (ph == "t")
        step(key, flow, *top);
      else
        end(key, flow, *top);
    }
  }
  return out;
}

// Chrome's trace viewer, v2 flows only (we write no v1 flow events; any is an error here).
inline Import chrome_import(const json::Value& root) {
  Import out;
  const json::Value* evs = root.find("traceEvents");
  if (!evs) return out;
  struct Flow {
    int64_t ts;
    size_t pos;
    const json::Value* e;
  };
  std::vector<Flow> flows;
  for (size_t i = 0; i < evs->items.size(); ++i) {
    const json::Value& e = evs->items[i];
    const std::string ph = text(e, "ph");
    if (ph == "s" || ph == "t" || ph == "f") ++out.errors["v1 flow event (not modelled)"];
    if (ph == "X" && num(e.find("bind_id")) != 0) flows.push_back({ts_ns(*e.find("ts")), i, &e});
  }
  std::stable_sort(flows.begin(), flows.end(), [](const Flow& a, const Flow& b) { return a.ts < b.ts; });
  std::map<uint64_t, uint64_t> producer;  // bind_id -> args.id of the producing slice
  std::map<uint64_t, std::string> producer_name;
  std::map<uint64_t, bool> open;
  std::map<uint64_t, bool> consumed;  // the latest producer got its consumer
  for (const Flow& f : flows) {
    const uint64_t id = num(f.e->find("bind_id")), slice = event_id(*f.e);
    const bool in = flag(*f.e, "flow_in"), out_ = flag(*f.e, "flow_out");
    if (!in && !out_) {
      ++out.errors["flow_slice_parse_error"];
      continue;
    }
    auto produce = [&] {
      if (producer.count(id) && open[id]) {
        ++out.errors["flow_slice_start_error"];
        return false;
      }
      producer[id] = slice;
      producer_name[id] = text(*f.e, "name");
      consumed[id] = false;
      open[id] = true;
      return true;
    };
    if (out_ && !in) {
      produce();
      continue;
    }
    if (!producer.count(id)) {
      ++out.errors["flow_slice_ordering_error"];
      continue;
    }
    out.arrows.push_back({id, producer[id], slice, producer_name[id], text(*f.e, "name")});
    consumed[id] = true;
    open[id] = false;
    if (out_) produce();
  }
  for (const auto& [id, done] : consumed)
    if (!done) ++out.errors["dangling producer (an arrow with no end)"];
  return out;
}

}  // namespace es::test::viewer
