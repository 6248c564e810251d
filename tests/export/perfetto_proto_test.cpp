// `export --format perfetto` writes Perfetto's protobuf trace. Perfetto's trace_processor cannot
// be installed here (no Debian or npm package; PyPI unreachable), so the file is decoded by an
// independent protobuf decoder, `protoc --decode_raw` (Debian protobuf-compiler), and read with
// the field numbers of google/perfetto's protos (protos/perfetto/trace/trace.proto,
// trace_packet.proto, track_event/track_event.proto, track_descriptor.proto,
// thread_descriptor.proto, debug_annotation.proto). Expected, from those protos and
// trace_processor's importer (track_event_event_importer.h):
//  - every TrackEvent names a track declared by an earlier TrackDescriptor, one per guest level
//    (a process) and one per lane (a thread named as the GUI's lane: "vCPU 0 · L2(L1)"), and each
//    record sits on the lane replay::lane_of gives it (a NESTED_EXIT on L2(L1));
//  - SLICE_BEGIN / SLICE_END pair up on each track, one slice per VM exit of the recording,
//    named by its exit reason;
//  - a flow id is carried only by events that make a slice (INSTANT or SLICE_BEGIN), and the
//    importer's rule (flow_ids: Begin when the id is not active, else Step; terminating_flow_ids:
//    End) links each chain's exported members one after the other, in id order: every arrow;
//  - the decoded SDM fields are debug annotations (the nested chain's EPT violation: IDT-vectoring
//    IRQ 0x20, a data write).
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "replay/browse.h"
#include "replay/chains.h"
#include "replay/recording.h"
#include "tests/support/cli_run.h"

namespace es {
namespace {

// One field of `protoc --decode_raw` output: a number or string, or a nested message.
struct Field {
  int number = 0;
  std::string value;  // scalars: as printed (strings unescaped)
  std::vector<Field> children;
  bool message = false;
  const Field* get(int n) const {
    for (const Field& f : children)
      if (f.number == n) return &f;
    return nullptr;
  }
  std::vector<const Field*> all(int n) const {
    std::vector<const Field*> v;
    for (const Field& f : children)
      if (f.number == n) v.push_back(&f);
    return v;
  }
  uint64_t u(int n, uint64_t def = 0) const {
    const Field* f = get(n);
    return f && !f->message ? std::stoull(f->value, nullptr, 0) : def;
  }
  std::string s(int n) const {
    const Field* f = get(n);
    return f && !f->message ? f->value : std::string();
  }
};

// protoc prints strings C-escaped: \ooo octal, \", \\, \n, \t, \r, \'.
std::string unescape(const std::string& q) {
  std::string out;
  for (size_t i = 1; i + 1 < q.size(); ++i) {
    if (q[i] != '\\') {
      out += q[i];
      continue;
    }
    const char c = q[++i];
    if (c >= '0' && c <= '7') {
      int v = 0, n = 0;
      while (n < 3 && i < q.size() && q[i] >= '0' && q[i] <= '7') v = v * 8 + (q[i++] - '0'), ++n;
      --i;
      out += static_cast<char>(v);
    } else if (c == 'n')
      out += '\n';
    else if (c == 't')
      out += '\t';
    else if (c == 'r')
      out += '\r';
    else
      out += c;
  }
  return out;
}

Field parse_decode_raw(const std::string& text) {
  Field root;
  root.message = true;
  std::vector<Field*> stack{&root};
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const size_t a = line.find_first_not_of(' ');
    if (a == std::string::npos) continue;
    line = line.substr(a);
    if (line == "}") {
      stack.pop_back();
      continue;
    }
    Field f;
    if (line.back() == '{') {
      f.number = std::stoi(line.substr(0, line.find(' ')));
      f.message = true;
      stack.back()->children.push_back(f);
      stack.push_back(&stack.back()->children.back());
      continue;
    }
    const size_t colon = line.find(": ");
    f.number = std::stoi(line.substr(0, colon));
    const std::string v = line.substr(colon + 2);
    f.value = !v.empty() && v[0] == '"' ? unescape(v) : v;
    stack.back()->children.push_back(f);
  }
  return root;
}

// Field numbers (perfetto protos, see the top of the file).
constexpr int kPacket = 1;
constexpr int kTimestamp = 8, kSeqId = 10, kTrackEvent = 11, kSeqFlags = 13, kTrackDescriptor = 60;
constexpr int kUuid = 1, kName = 2, kProcess = 3, kThread = 4, kParent = 5;
constexpr int kThreadName = 5, kProcessName = 6;
constexpr int kAnnotations = 4, kType = 9, kTrackUuid = 11, kEventName = 23, kFlowIds = 47, kTerminatingFlowIds = 48;
constexpr int kAnnName = 10, kAnnUint = 3, kAnnString = 6;
constexpr uint64_t kSliceBegin = 1, kSliceEnd = 2, kInstant = 3;

struct Ev {
  uint64_t ts = 0, type = 0, track = 0, id = 0;
  std::string name;
  std::vector<uint64_t> flows, terminating;
  std::map<std::string, std::string> args;
};

uint64_t fixed64_value(const std::string& printed) {
  // decode_raw prints a wire-type-1 field as 0x%016x.
  return std::stoull(printed, nullptr, 16);
}

std::string record(const std::string& scenario) {
  const std::string db = test::process_tmp("pf_" + scenario + ".db");
  const test::CliRun r = test::run_cli("record --scenario " + scenario + " --quiet -o '" + db + "' --force");
  EXPECT_EQ(r.code, 0) << r.err;
  return db;
}

struct Decoded {
  std::map<uint64_t, std::string> thread_names;  // lane track uuid -> name
  std::set<uint64_t> process_tracks, all_tracks;
  std::vector<Ev> events;  // in file order
};

Decoded export_and_decode(const std::string& db, const std::string& extra = {}) {
  Decoded d;
  const std::string out = test::process_tmp("pf.pftrace");
  const test::CliRun r = test::run_cli("export '" + db + "' --format perfetto -o '" + out + "' --force" + extra);
  EXPECT_EQ(r.code, 0) << r.err;
  const std::string txt = test::process_tmp("pf.txt");
  const int rc = std::system(("protoc --decode_raw < '" + out + "' > '" + txt + "' 2>&1").c_str());
  EXPECT_EQ(rc, 0) << "protoc --decode_raw refused the file: " << test::slurp(txt);
  const Field root = parse_decode_raw(test::slurp(txt));
  bool first = true;
  for (const Field* p : root.all(kPacket)) {
    EXPECT_TRUE(p->message);
    EXPECT_EQ(p->u(kSeqId), 1u);
    EXPECT_EQ(p->u(kSeqFlags), first ? 1u : 2u) << "sequence flags: the first packet clears the state";
    first = false;
    if (const Field* td = p->get(kTrackDescriptor)) {
      const uint64_t uuid = td->u(kUuid);
      EXPECT_TRUE(d.all_tracks.insert(uuid).second) << "track " << uuid << " declared twice";
      if (const Field* th = td->get(kThread)) {
        d.thread_names[uuid] = th->s(kThreadName);
        EXPECT_TRUE(d.process_tracks.count(td->u(kParent))) << "a lane track's parent is its level's track";
      } else if (const Field* pr = td->get(kProcess)) {
        d.process_tracks.insert(uuid);
        EXPECT_EQ(pr->s(kProcessName).rfind('L', 0), 0u) << pr->s(kProcessName);
      }
      continue;
    }
    const Field* te = p->get(kTrackEvent);
    if (!te) {
      ADD_FAILURE() << "a packet with neither a track descriptor nor a track event";
      continue;
    }
    Ev e;
    e.ts = p->u(kTimestamp);
    e.type = te->u(kType);
    e.track = te->u(kTrackUuid);
    e.name = te->s(kEventName);
    EXPECT_TRUE(d.all_tracks.count(e.track)) << "event on undeclared track " << e.track;
    for (const Field* f : te->all(kFlowIds)) e.flows.push_back(fixed64_value(f->value));
    for (const Field* f : te->all(kTerminatingFlowIds)) e.terminating.push_back(fixed64_value(f->value));
    for (const Field* a : te->all(kAnnotations)) {
      if (!a->message) continue;
      const std::string name = a->s(kAnnName);
      e.args[name] = a->get(kAnnUint) ? a->s(kAnnUint) : a->s(kAnnString);
    }
    if (e.args.count("id")) e.id = std::stoull(e.args["id"]);
    d.events.push_back(std::move(e));
  }
  return d;
}

bool have_protoc() { return std::system("protoc --version >/dev/null 2>&1") == 0; }

// Checks one recording's export; returns the number of arrows expected.
size_t check(const std::string& what, const std::string& db) {
  Decoded d = export_and_decode(db);
  auto rec = replay::Recording::open(db);
  EXPECT_TRUE(rec) << rec.error();
  if (!rec) return 0;

  // Lanes and slices.
  std::map<uint64_t, std::vector<const Ev*>> open;  // track -> SLICE_BEGIN stack
  uint64_t begins = 0;
  for (const Ev& e : d.events) {
    if (e.type == kSliceBegin) {
      open[e.track].push_back(&e);
      ++begins;
    } else if (e.type == kSliceEnd) {
      EXPECT_FALSE(open[e.track].empty()) << what << ": SLICE_END with no open slice on its track at " << e.ts;
      if (!open[e.track].empty()) {
        EXPECT_LE(open[e.track].back()->ts, e.ts) << what << ": slice ends before it begins";
        open[e.track].pop_back();
      }
    } else {
      EXPECT_EQ(e.type, kInstant) << what;
    }
    if (!e.id || e.type == kSliceEnd) continue;
    auto ev = rec->event(e.id);
    EXPECT_TRUE(ev && *ev) << what << ": event " << e.id << " not in the recording";
    if (!ev || !*ev) continue;
    const es_record& r = (**ev).rec;
    EXPECT_EQ(e.ts, r.time_ns) << what << " #" << e.id;
    if (d.thread_names.count(e.track)) {
      EXPECT_EQ(d.thread_names.at(e.track), replay::lane_label(replay::lane_of(r)))
          << what << ": #" << e.id << " " << e.name << " on the wrong track";
    }
    if (r.kind == ES_KIND_NESTED_EXIT) {
      EXPECT_EQ(d.thread_names[e.track].find("L2(L1)") != std::string::npos, r.level == 2)
          << what << ": a nested exit is L2 leaving to L1: on L1's view of L2";
    }
    if (e.type == kSliceBegin) {
      EXPECT_EQ(r.kind, ES_KIND_VM_EXIT) << what << ": a slice that is not a VM exit";
    }
  }
  for (const auto& [track, stack] : open) EXPECT_TRUE(stack.empty()) << what << ": slices left open on " << track;
  auto exits = rec->db().query_int("SELECT count(*) FROM events WHERE kind = " + std::to_string(ES_KIND_VM_EXIT));
  EXPECT_TRUE(exits);
  if (exits) {
    EXPECT_EQ(begins, static_cast<uint64_t>(*exits)) << what << ": one slice per VM exit";
  }

  // Flows, as trace_processor's importer binds them: to the slice the event carrying them makes.
  std::map<uint64_t, std::vector<std::pair<uint64_t, uint64_t>>> seen;
  std::map<uint64_t, uint64_t> active;  // flow -> id of its last slice
  std::vector<const Ev*> order;
  for (const Ev& e : d.events) order.push_back(&e);
  std::stable_sort(order.begin(), order.end(), [](const Ev* a, const Ev* b) { return a->ts < b->ts; });
  for (const Ev* e : order) {
    if (!e->flows.empty() || !e->terminating.empty()) {
      EXPECT_TRUE(e->type == kInstant || e->type == kSliceBegin) << what << ": a flow on an event that makes no slice";
    }
    for (uint64_t f : e->flows) {
      auto it = active.find(f);
      if (it != active.end()) seen[f].emplace_back(it->second, e->id);
      active[f] = e->id;
    }
    for (uint64_t f : e->terminating) {
      auto it = active.find(f);
      EXPECT_NE(it, active.end()) << what << ": flow " << f << " terminated before it began";
      if (it == active.end()) continue;
      seen[f].emplace_back(it->second, e->id);
      active.erase(it);
    }
  }
  EXPECT_TRUE(active.empty()) << what << ": " << active.size() << " flows never terminated";
  std::map<uint64_t, std::vector<std::pair<uint64_t, uint64_t>>> want;
  auto chains = replay::load_chains(*rec);
  EXPECT_TRUE(chains) << chains.error();
  size_t arrows = 0;
  if (chains)
    for (const replay::Chain& c : *chains)
      for (size_t i = 1; i < c.events.size(); ++i, ++arrows)
        want[c.id].emplace_back(c.events[i - 1].rec.id, c.events[i].rec.id);
  EXPECT_EQ(seen, want) << what << ": the flows do not link each chain's members in order";
  return arrows;
}

TEST(PerfettoProto, NestedIrqVectoringTracksSlicesFlowsAndSdmFields) {
  if (!have_protoc()) GTEST_SKIP() << "protoc not installed (Debian protobuf-compiler; ./run installs it)";
  const std::string db = record("nested-irq-vectoring");
  EXPECT_EQ(check("nested-irq-vectoring", db), 12u);
  const Decoded d = export_and_decode(db);
  std::set<std::string> lanes;
  for (const auto& [uuid, name] : d.thread_names) lanes.insert(name);
  // The GUI's two lanes of this recording (L1's own work is not recorded as events here).
  EXPECT_EQ(lanes, (std::set<std::string>{"vCPU 0 \u00b7 L2(L0)", "vCPU 0 \u00b7 L2(L1)"}));
  // The chain's EPT violation: L2's delivery of L1's IRQ 0x20 wrote the stack (SDM 27.2.4, Table 28-7).
  bool found = false;
  for (const Ev& e : d.events) {
    if (e.type != kSliceBegin || e.name != "EPT_VIOLATION" || !e.args.count("chain")) continue;
    found = true;
    EXPECT_EQ(e.args.at("idt_vectoring_decoded").rfind("IRQ 0x20", 0), 0u) << e.args.at("idt_vectoring_decoded");
    EXPECT_NE(e.args.at("qualification_decoded").find("write"), std::string::npos)
        << e.args.at("qualification_decoded");
    EXPECT_EQ(e.args.at("level"), "L2(L0)");
  }
  EXPECT_TRUE(found) << "no EPT_VIOLATION slice of the chain";
}

// The scenarios issue #20 named for lost arrows (JSON flows on instants).
TEST(PerfettoProto, EveryArrowOfDoubleFaultAndIrqEptReinject) {
  if (!have_protoc()) GTEST_SKIP() << "protoc not installed (Debian protobuf-compiler; ./run installs it)";
  EXPECT_GT(check("double-fault", record("double-fault")), 0u);
  EXPECT_GT(check("irq-ept-reinject", record("irq-ept-reinject")), 0u);
}

// A recording from a stranger: session strings with a terminal escape and a byte that is not
// UTF-8. Expected: every string in the trace is printable ASCII or our own lane names (a protobuf
// string must be UTF-8, and a viewer shows what it gets), the bytes written as \xNN text.
TEST(PerfettoProto, StringsFromTheFileArePrintable) {
  if (!have_protoc()) GTEST_SKIP() << "protoc not installed (Debian protobuf-compiler; ./run installs it)";
  const std::string db = record("double-fault");
  ASSERT_EQ(
      std::system(("sqlite3 '" + db + "' \"UPDATE sessions SET scenario = X'1b5b324a', host = X'9bff'\"").c_str()), 0);
  const Decoded d = export_and_decode(db);
  bool seen = false;
  for (const Ev& e : d.events) {
    for (const auto& [k, v] : e.args) {
      for (const char c : v)
        EXPECT_TRUE(c >= 0x20 && c < 0x7f) << k << " holds byte " << int(static_cast<unsigned char>(c));
      if (k == "scenario") {
        EXPECT_EQ(v, "\\x1b[2J");
        seen = true;
      }
    }
  }
  EXPECT_TRUE(seen) << "the session's scenario is not in the trace";
}

TEST(PerfettoProto, SameBytesTwiceThroughAPipe) {
  const std::string db = record("irq-ept-reinject");
  const test::CliRun a = test::run_cli("export '" + db + "' --format perfetto");
  const test::CliRun b = test::run_cli("export '" + db + "' --format perfetto");
  EXPECT_EQ(a.code, 0) << a.err;  // a pipe, not a terminal
  EXPECT_FALSE(a.out.empty());
  EXPECT_EQ(a.out, b.out);
}

}  // namespace
}  // namespace es
