// The exporters on a recording made with the real Recorder (export_fixture.h): golden files
// for text and Markdown, the 80-column rule, Perfetto JSON structure, options, determinism.
//
// Goldens live in tests/data/export/. After an intended output change, regenerate them with
//   ES_UPDATE_GOLDEN=1 ctest --test-dir BUILD -R export.
// and review the diff (git diff tests/data/export) before committing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "replay/export/export.h"
#include "tests/export/export_fixture.h"
#include "tests/export/mini_json.h"

namespace es {
namespace {

using test::json::Value;

class ExportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { fx_ = test::make_export_recording("export.db"); }

  static std::string run(std::string_view format, exporter::ExportOptions opt = {}) {
    auto rec = replay::Recording::open(fx_.path);
    EXPECT_TRUE(rec) << rec.error();
    if (!rec) return {};
    const exporter::ExportFormat* f = exporter::find_export_format(format);
    EXPECT_NE(f, nullptr) << format;
    if (!f) return {};
    std::string text;
    {
      exporter::Output out(&text);
      auto r = exporter::run_export(*rec, *f, opt, out);
      EXPECT_TRUE(r) << r.error();
    }
    return text;
  }

  static test::ExportFixture fx_;
};
test::ExportFixture ExportTest::fx_;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Compares with tests/data/export/NAME, or rewrites it when ES_UPDATE_GOLDEN=1.
void expect_golden(const std::string& name, const std::string& actual) {
  const std::string path = std::string(ES_GOLDEN_DIR) + "/" + name;
  const char* update = std::getenv("ES_UPDATE_GOLDEN");
  if (update && std::string_view(update) == "1") {
    std::ofstream(path, std::ios::binary) << actual;
    GTEST_SKIP() << "rewrote " << path;
  }
  const std::string expected = read_file(path);
  ASSERT_FALSE(expected.empty()) << "missing golden " << path << "; run with ES_UPDATE_GOLDEN=1 to create it";
  EXPECT_EQ(actual, expected) << "differs from " << path << "; if intended, regenerate with ES_UPDATE_GOLDEN=1";
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string l; std::getline(ss, l);) out.push_back(l);
  return out;
}

void expect_mail_ready(const std::string& text) {
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  int n = 0;
  for (const std::string& l : lines_of(text)) {
    ++n;
    EXPECT_LE(l.size(), 80u) << "line " << n << " is " << l.size() << " columns: " << l;
    for (char c : l) EXPECT_TRUE(c >= 0x20 && c <= 0x7e) << "line " << n << " has a non-ASCII byte: " << l;
    EXPECT_TRUE(l.empty() || l.back() != ' ') << "trailing space on line " << n;
  }
}

TEST_F(ExportTest, TextMatchesGolden) {
  ASSERT_FALSE(fx_.path.empty());
  expect_golden("full.txt", run("text"));
}

TEST_F(ExportTest, TextChainMatchesGolden) {
  exporter::ExportOptions opt;
  opt.chain = fx_.irq_chain;
  expect_golden("irq_chain.txt", run("text", opt));
}

TEST_F(ExportTest, MarkdownMatchesGolden) { expect_golden("full.md", run("markdown")); }

TEST_F(ExportTest, MarkdownChainMatchesGolden) {
  exporter::ExportOptions opt;
  opt.chain = fx_.gp_chain;
  expect_golden("triple_fault_chain.md", run("markdown", opt));
}

TEST_F(ExportTest, PerfettoMatchesGolden) { expect_golden("full.perfetto.json", run("chrome")); }

TEST_F(ExportTest, TextNeverExceedsEightyColumnsAndIsAscii) {
  expect_mail_ready(run("text"));
  for (uint64_t c : {fx_.irq_chain, fx_.pf_chain, fx_.gp_chain, fx_.df_chain}) {
    exporter::ExportOptions opt;
    opt.chain = c;
    expect_mail_ready(run("text", opt));
  }
  exporter::ExportOptions opt;
  opt.vcpu = 1;
  expect_mail_ready(run("text", opt));
}

TEST_F(ExportTest, TextHasSessionFactsDecodedEventsAndIndentedChains) {
  const std::string t = run("text");
  for (const char* fact : {"scenario:  export-golden", "policy:    kvm", "sha256:5f1d7c0e9a3b", "source:    hv",
                           "34 recorded, 0 dropped by the recorder, 0 dropped by the source",
                           "complete, ended by triple fault (triple fault on vcpu1)"})
    EXPECT_NE(t.find(fact), std::string::npos) << fact << "\n" << t;
  // The hash is never cut across lines (it is copied from bug reports).
  EXPECT_NE(t.find("sha256:5f1d7c0e9a3b2c4d6e8f00112233445566778899aabbccddeeff001122334455"), std::string::npos);
  const auto lines = lines_of(t);
  auto line_with = [&](const std::string& needle) {
    for (size_t i = 0; i < lines.size(); ++i)
      if (lines[i].find(needle) != std::string::npos) return i;
    return lines.size();
  };
  // The EPT violation is indented under the IRQ's RAISE, with its qualification and
  // IDT-vectoring decoded; the chain ends with its outcome.
  const size_t raise = line_with("RAISE    IRQ 0x20");
  const size_t ept = line_with("#" + std::to_string(fx_.ept_exit) + " ");
  ASSERT_LT(raise, lines.size());
  ASSERT_LT(ept, lines.size());
  EXPECT_EQ(lines[raise].rfind('#', 0), 0u) << lines[raise];
  EXPECT_EQ(lines[ept].rfind("    #", 0), 0u) << lines[ept];
  std::string ept_text;
  for (size_t i = ept; i < lines.size() && (i == ept || lines[i].rfind("            ", 0) == 0); ++i)
    ept_text += lines[i];
  EXPECT_NE(ept_text.find("EPT_VIOLATION"), std::string::npos) << ept_text;
  EXPECT_NE(ept_text.find("[data write, EPT entry not present, gla valid: translation]"), std::string::npos)
      << ept_text;
  EXPECT_NE(ept_text.find("vectoring=IRQ 0x20"), std::string::npos) << ept_text;
  EXPECT_NE(t.find("=> chain " + std::to_string(fx_.irq_chain) + " IRQ 0x20: delivered"), std::string::npos);
  EXPECT_NE(t.find("=> chain " + std::to_string(fx_.gp_chain) + " #GP: triple fault"), std::string::npos) << t;
  EXPECT_NE(t.find("bytes=[f4]"), std::string::npos);
  EXPECT_NE(t.find("REQUEUE_FROM_VECTORING IRQ 0x20"), std::string::npos);
  EXPECT_NE(t.find("cr2=0x7000"), std::string::npos);
}

TEST_F(ExportTest, ChainExportHasTitleAndOnlyItsEvents) {
  exporter::ExportOptions opt;
  opt.chain = fx_.pf_chain;
  const std::string t = run("text", opt);
  const auto lines = lines_of(t);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0], "Chain " + std::to_string(fx_.pf_chain) + ": #PF at L1 vcpu1, 5 events, delivered (#" +
                          std::to_string(fx_.pf_chain + 4) + ")");
  EXPECT_EQ(t.find("EPT_VIOLATION"), std::string::npos) << t;
  EXPECT_EQ(t.find("HLT"), std::string::npos) << t;
  EXPECT_NE(t.find("shown:     chain " + std::to_string(fx_.pf_chain)), std::string::npos);
}

TEST_F(ExportTest, UnknownChainIsAnErrorNamingTheId) {
  auto rec = replay::Recording::open(fx_.path);
  ASSERT_TRUE(rec);
  exporter::ExportOptions opt;
  opt.chain = 4242;
  std::string text;
  exporter::Output out(&text);
  auto r = exporter::run_export(*rec, *exporter::find_export_format("text"), opt, out);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("no chain 4242"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("exitscope chains"), std::string::npos) << r.error();
  out.flush();
  EXPECT_TRUE(text.empty()) << text;
}

TEST_F(ExportTest, WindowAndVcpuFiltersKeepOnlyMatchingEvents) {
  exporter::ExportOptions opt;
  opt.vcpu = 1;
  std::string t = run("text", opt);
  for (const std::string& l : lines_of(t))
    if (!l.empty() && (l[0] == '#' || l.rfind("    #", 0) == 0)) {
      EXPECT_NE(l.find(" v1 "), std::string::npos) << l;
    }
  EXPECT_NE(t.find("#PF"), std::string::npos);

  opt = {};
  opt.from_ns = 500;
  opt.to_ns = 1000;
  t = run("markdown", opt);
  size_t rows = 0;
  for (const std::string& l : lines_of(t)) {
    if (l.size() < 3 || l.rfind("| ", 0) != 0 || !std::isdigit(static_cast<unsigned char>(l[2]))) continue;
    ++rows;
    const size_t a = l.find(" | ") + 3;
    const uint64_t ns = std::stoull(l.substr(a + 2, 9));
    EXPECT_GE(ns, 500u) << l;
    EXPECT_LE(ns, 1000u) << l;
  }
  EXPECT_GT(rows, 0u) << t;
}

TEST_F(ExportTest, MarkdownEscapesPipesInCells) {
  const std::string md = run("markdown");
  EXPECT_NE(md.find("\"tick \\| 1\\n\""), std::string::npos) << md;
  // Every table row has the same number of unescaped separators as its header.
  for (const std::string& l : lines_of(md)) {
    if (l.rfind("| ", 0) != 0 || l.rfind("| session", 0) == 0) continue;
    size_t bars = 0;
    for (size_t i = 0; i < l.size(); ++i) bars += l[i] == '|' && (i == 0 || l[i - 1] != '\\');
    EXPECT_TRUE(bars == 3 || bars == 8) << l;
  }
}

// --- Perfetto ---------------------------------------------------------------------------

struct Trace {
  Value root;
  std::vector<const Value*> events;
};

Trace parse_trace(const std::string& text) {
  Trace t;
  t.root = test::json::parse(text);
  const Value* evs = t.root.find("traceEvents");
  if (evs)
    for (const Value& e : evs->items) t.events.push_back(&e);
  return t;
}

std::string str(const Value& e, std::string_view key) {
  const Value* v = e.find(key);
  return v ? v->text : std::string();
}

TEST_F(ExportTest, PerfettoIsValidTraceEventJson) {
  const std::string json = run("chrome");
  Trace t;
  ASSERT_NO_THROW(t = parse_trace(json));
  ASSERT_NE(t.root.find("traceEvents"), nullptr);
  ASSERT_FALSE(t.events.empty());
  for (const Value* e : t.events) {
    for (const char* key : {"name", "ph", "ts", "pid", "tid"}) EXPECT_NE(e->find(key), nullptr) << key;
    EXPECT_EQ(e->find("ts")->type, Value::Type::Number);
    EXPECT_EQ(e->find("pid")->type, Value::Type::Number);
    const std::string ph = str(*e, "ph");
    EXPECT_TRUE(ph == "X" || ph == "i" || ph == "M") << ph;
    if (ph == "X") {
      ASSERT_NE(e->find("dur"), nullptr);
    }
    // Timestamps in µs with exactly 3 decimals.
    const std::string ts = e->find("ts")->text;
    ASSERT_NE(ts.find('.'), std::string::npos) << ts;
    EXPECT_EQ(ts.size() - ts.find('.'), 4u) << ts;
  }
}

TEST_F(ExportTest, PerfettoSlicesPairExitsWithEntriesAndNestPerThread) {
  Trace t = parse_trace(run("chrome"));
  std::map<std::pair<double, double>, std::vector<std::pair<double, double>>> by_thread;
  size_t slices = 0;
  bool ept_found = false, tf_found = false, ept_point_found = false;
  double ept_ts = -1, ept_point_ts = -2;
  for (const Value* e : t.events) {
    if (str(*e, "ph") != "X") continue;
    const double ts = e->find("ts")->number(), dur = e->find("dur")->number();
    EXPECT_GE(dur, 0.0);
    by_thread[{e->find("pid")->number(), e->find("tid")->number()}].push_back({ts, ts + dur});
    const Value* args = e->find("args");
    ASSERT_NE(args, nullptr);
    if (str(*args, "kind") != "VM_EXIT" || !args->find("exit_reason")) {  // an event at one instant
      EXPECT_EQ(dur, 0.0) << str(*e, "name");
      // The EPT violation is in the IRQ chain: its flow point sits at the exit.
      if (args->find("id")->number() == static_cast<double>(fx_.ept_exit)) {
        ept_point_found = true;
        ept_point_ts = ts;
        EXPECT_EQ(str(*e, "name"), "exit EPT_VIOLATION");
        EXPECT_EQ(str(*args, "chain"), std::to_string(fx_.irq_chain));
      }
      continue;
    }
    ++slices;
    if (args->find("id")->number() == static_cast<double>(fx_.ept_exit)) {
      ept_ts = ts;
      ept_found = true;
      EXPECT_EQ(str(*e, "name"), "EPT_VIOLATION");
      EXPECT_EQ(str(*args, "idt_vectoring_info"), "0x80000020");
      EXPECT_EQ(str(*args, "idt_vectoring_decoded"), "IRQ 0x20");
      EXPECT_EQ(str(*args, "qualification"), "0x182");
      EXPECT_EQ(str(*args, "qualification_decoded"), "data write, EPT entry not present, gla valid: translation");
      EXPECT_EQ(str(*args, "entry"), "inject=IRQ 0x20 rip=0x100041");  // ends at the reinjection
    }
    if (args->find("id")->number() == static_cast<double>(fx_.tf_exit)) {
      tf_found = true;
      EXPECT_EQ(str(*e, "name"), "TRIPLE_FAULT");
      EXPECT_EQ(str(*args, "ended_by"), "session end");
      EXPECT_GT(dur, 0.0);  // ends at the run end, after the exit
    }
  }
  EXPECT_TRUE(ept_found);
  EXPECT_TRUE(tf_found);
  EXPECT_TRUE(ept_point_found);
  EXPECT_EQ(ept_point_ts, ept_ts);  // at the exit, so inside the exit's slice
  EXPECT_EQ(slices, 5u);            // HLT, EPT_VIOLATION, IO_INSTRUCTION, CPUID (L2), TRIPLE_FAULT
  for (auto& [thread, spans] : by_thread) {
    std::sort(spans.begin(), spans.end());
    std::vector<double> open_ends;
    for (const auto& [b, e] : spans) {
      while (!open_ends.empty() && open_ends.back() <= b) open_ends.pop_back();
      if (!open_ends.empty()) {
        EXPECT_LE(e, open_ends.back()) << "slices overlap on thread " << thread.second;
      }
      open_ends.push_back(e);
    }
  }
}

// Each chain is one v2 flow on its members' slices: bind_id = chain id, the first member only
// "flow_out", the last only "flow_in", the ones between both (what Perfetto's importer and
// Chrome's viewer read as begin / step / end). No v1 flow events ("s" / "t" / "f").
TEST_F(ExportTest, PerfettoFlowsLinkEachChainStartToEnd) {
  Trace t = parse_trace(run("chrome"));
  struct Point {
    bool in, out;
    double ts;
    double id;
  };
  std::map<double, std::vector<Point>> flows;  // bind_id -> its points in file order
  for (const Value* e : t.events) {
    const std::string ph = str(*e, "ph");
    EXPECT_TRUE(ph != "s" && ph != "t" && ph != "f") << "a v1 flow event: " << str(*e, "name");
    if (!e->find("bind_id")) continue;
    EXPECT_EQ(ph, "X") << str(*e, "name");
    EXPECT_EQ(e->find("dur")->number(), 0.0) << str(*e, "name");
    const Value* in = e->find("flow_in");
    const Value* out = e->find("flow_out");
    flows[e->find("bind_id")->number()].push_back(
        {in && in->b, out && out->b, e->find("ts")->number(), e->find("args")->find("id")->number()});
  }
  ASSERT_EQ(flows.size(), 3u);  // IRQ, #PF and #GP chains (the #DF chain has one event)
  EXPECT_TRUE(flows.count(static_cast<double>(fx_.irq_chain)));
  EXPECT_TRUE(flows.count(static_cast<double>(fx_.gp_chain)));
  for (const auto& [id, points] : flows) {
    ASSERT_GE(points.size(), 2u) << id;
    EXPECT_TRUE(!points.front().in && points.front().out) << id;
    EXPECT_TRUE(points.back().in && !points.back().out) << id;
    for (size_t i = 1; i + 1 < points.size(); ++i) EXPECT_TRUE(points[i].in && points[i].out) << id << " point " << i;
    for (size_t i = 1; i < points.size(); ++i) {
      EXPECT_LE(points[i - 1].ts, points[i].ts) << id;
      EXPECT_LT(points[i - 1].id, points[i].id) << id;
    }
  }
  const auto& irq = flows[static_cast<double>(fx_.irq_chain)];
  EXPECT_EQ(irq.size(), 10u);                                     // every member of the IRQ chain
  EXPECT_EQ(irq.front().id, static_cast<double>(fx_.irq_chain));  // from the raise
  // The #GP chain ends at the SHUTDOWN decision after its TRIPLE_FAULT exit.
  EXPECT_EQ(flows[static_cast<double>(fx_.gp_chain)].size(), 5u);
}

TEST_F(ExportTest, PerfettoHasAProcessPerLevelAndAThreadPerVcpu) {
  Trace t = parse_trace(run("chrome"));
  std::map<double, std::string> processes;
  std::map<std::pair<double, double>, std::string> threads;
  std::set<std::pair<double, double>> used;
  for (const Value* e : t.events) {
    const std::string ph = str(*e, "ph");
    const double pid = e->find("pid")->number(), tid = e->find("tid")->number();
    if (ph == "M") {
      if (str(*e, "name") == "process_name") processes[pid] = str(*e->find("args"), "name");
      if (str(*e, "name") == "thread_name") threads[{pid, tid}] = str(*e->find("args"), "name");
    } else {
      used.insert({pid, tid});
    }
  }
  for (const auto& [pid, tid] : used) {
    EXPECT_TRUE(processes.count(pid)) << "no process_name for pid " << pid;
    EXPECT_TRUE(threads.count({pid, tid})) << "no thread_name for " << pid << "/" << tid;
  }
  std::set<std::string> pnames, tnames;
  for (auto& [k, v] : processes) pnames.insert(v);
  for (auto& [k, v] : threads) tnames.insert(v);
  EXPECT_EQ(pnames, (std::set<std::string>{"L1 guest", "L2 guest"}));
  EXPECT_EQ(tnames, (std::set<std::string>{"vCPU 0 (L1)", "vCPU 0 (L2)", "vCPU 1 (L1)"}));
}

// Events at one instant are zero-length slices on their vCPU (flows bind only to slices); the
// run end, on no vCPU, stays a global instant.
TEST_F(ExportTest, PerfettoZeroLengthSlicesForInjectionsDecisionsDeliveriesRaises) {
  Trace t = parse_trace(run("chrome"));
  std::set<std::string> points, instants;
  for (const Value* e : t.events) {
    if (str(*e, "ph") == "X" && e->find("dur")->number() == 0.0) points.insert(str(*e, "name"));
    if (str(*e, "ph") == "i") instants.insert(str(*e, "name"));
  }
  for (const char* n :
       {"raise IRQ 0x20", "inject IRQ 0x20", "REQUEUE_FROM_VECTORING IRQ 0x20", "EPT_MAP", "INJECT_REINJECTED IRQ 0x20",
        "deliver IRQ 0x20", "deliver #PF", "nested exit CPUID", "SHUTDOWN", "exit EPT_VIOLATION", "exit TRIPLE_FAULT"})
    EXPECT_TRUE(points.count(n)) << n;
  EXPECT_EQ(instants, std::set<std::string>{"run end: triple fault"});
}

TEST_F(ExportTest, PerfettoChainOnlyHasThatChain) {
  exporter::ExportOptions opt;
  opt.chain = fx_.irq_chain;
  Trace t = parse_trace(run("chrome", opt));
  for (const Value* e : t.events) {
    const Value* args = e->find("args");
    if (str(*e, "ph") == "M" || !args) continue;
    ASSERT_NE(args->find("chain"), nullptr) << str(*e, "name");
    EXPECT_EQ(args->find("chain")->number(), static_cast<double>(fx_.irq_chain));
  }
}

TEST_F(ExportTest, SameInputSameBytes) {
  for (const char* f : {"text", "markdown", "perfetto", "chrome"}) EXPECT_EQ(run(f), run(f)) << f;
  // A second recording of the same script, at another path, exports identically.
  const test::ExportFixture again = test::make_export_recording("export_again.db");
  auto a = replay::Recording::open(again.path);
  ASSERT_TRUE(a);
  std::string text;
  {
    exporter::Output out(&text);
    ASSERT_TRUE(exporter::run_export(*a, *exporter::find_export_format("chrome"), {}, out));
  }
  std::string mine = run("chrome");
  // Only the file name differs.
  const std::string from = "export.db", to = "export_again.db";
  mine.replace(mine.find(from), from.size(), to);
  EXPECT_EQ(text, mine);
}

// Progress counts every exported event once, also the chain members text and Markdown print
// from memory: the last report is (total, total).
TEST_F(ExportTest, ProgressEndsAtTheTotalForEveryFormat) {
  for (const char* format : {"text", "markdown", "perfetto", "chrome"}) {
    for (const bool windowed : {false, true}) {
      exporter::ExportOptions opt;
      if (windowed) {
        opt.from_ns = 500;
        opt.to_ns = 1000;
      }
      uint64_t last_done = 0, last_total = 0, calls = 0;
      opt.progress = [&](uint64_t done, uint64_t total) {
        EXPECT_GT(done, last_done) << format;
        last_done = done;
        last_total = total;
        ++calls;
      };
      run(format, opt);
      EXPECT_GT(calls, 0u) << format;
      EXPECT_GT(last_total, 0u) << format;
      EXPECT_EQ(last_done, last_total) << format << (windowed ? " windowed" : "");
    }
  }
}

TEST(ExportFormats, TableListsTextMarkdownPerfettoChromeSvgPng) {
  EXPECT_EQ(exporter::format_name_list(), "text, markdown, perfetto, chrome, svg, png");
  // svg / png are rows that forward to the GUI's painter (tests/gui checks the pictures).
  EXPECT_FALSE(exporter::is_planned_format("svg"));
  EXPECT_NE(exporter::find_export_format("svg"), nullptr);
  EXPECT_NE(exporter::find_export_format("png"), nullptr);
  EXPECT_EQ(exporter::find_export_format("pdf"), nullptr);
}

TEST(ExportWrap, NeverExceedsWidthAndKeepsEveryWord) {
  const std::string text =
      "EPT_VIOLATION qual=0x182 [-W- perm --- gla] vectoring=IRQ 0x20 gpa=0x7eff8 "
      "an-unbreakable-token-that-is-much-longer-than-one-line-of-eighty-columns-can-hold-at-all rip=0x1";
  const auto lines = exporter::wrap(text, "    #12 ", "        ", 40);
  std::string joined;
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_LE(lines[i].size(), 40u) << lines[i];
    joined += lines[i].substr(i == 0 ? 8 : 8);
  }
  std::string squeezed;
  for (char c : text)
    if (c != ' ') squeezed += c;
  std::string joined_squeezed;
  for (char c : joined)
    if (c != ' ') joined_squeezed += c;
  EXPECT_EQ(joined_squeezed, squeezed);
  // Bracketed decodes stay together when they fit.
  bool whole = false;
  for (const auto& l : lines) whole = whole || l.find("[-W- perm --- gla]") != std::string::npos;
  EXPECT_TRUE(whole);
}

TEST(ExportWrap, WrapToWritesTheSameLinesAsWrap) {
  const std::string text =
      "EPT_VIOLATION qual=0x182 [-W- perm --- gla] vectoring=IRQ 0x20 gpa=0x7eff8 "
      "an-unbreakable-token-that-is-much-longer-than-one-line-of-eighty-columns-can-hold-at-all rip=0x1";
  for (size_t width : {20u, 40u, 80u, 300u}) {
    std::string expected;
    for (const std::string& l : exporter::wrap(text, "    #12 ", "        ", width)) expected += l + "\n";
    std::string out = "before\n";
    exporter::wrap_to(out, text, "    #12 ", "        ", width);
    EXPECT_EQ(out, "before\n" + expected) << width;
  }
}

// Events outside chains fall between the members of a chain, and a window cuts a chain's root
// off: the text export still prints each chain whole where its first shown member is, every
// event once; Markdown prints the chains first, then every other event once, in id order.
// (The exporters print chain members from memory and read only the other events again.)
TEST(ExportChainsInterleaved, EachEventOnceAndChainsAtTheirFirstShownMember) {
  using arch::BasicExitReason;
  const std::string path = test::temp_db("export_interleaved.db");
  {
    recorder::SessionStart info;
    info.scenario = "export-interleaved";
    info.tool_version = "test";
    auto rec = recorder::Recorder::open(path, info, false, {.steps = es::replay::chain_steps()});
    ASSERT_TRUE(rec) << rec.error();
    probes::ProbeBus bus;
    (*rec)->attach(bus);
    test::Script s(bus);
    s.on(0);
    const uint64_t e0 = s.entry(0, 0, 0, 0x1000);
    const uint64_t a = s.raise(test::irq(0x20), e0);
    const uint64_t hlt = s.vm_exit(test::exit_reason(BasicExitReason::Hlt), 0, 0, 0, e0, 0x1010);
    const uint64_t ainj = s.decision(ES_DECISION_INJECT_NEW, test::irq(0x20), a, a);
    s.on(1);
    const uint64_t b = s.raise(test::hw_exc(arch::kPF, true), 0, 0x2, 0x2000);
    s.on(0);
    const uint64_t aent = s.entry(test::irq(0x20), a, ainj, 0x1010);
    s.vm_exit(test::exit_reason(BasicExitReason::Cpuid), 0, 0, 0, hlt, 0x1020);
    s.on(1);
    const uint64_t bent = s.entry(test::hw_exc(arch::kPF, true), b, b, 0x2000, 0x2);
    s.on(0);
    s.delivery(test::irq(0x20), a, aent, 0x3000);
    s.on(1);
    s.delivery(test::hw_exc(arch::kPF, true), b, bent, 0x4000, 0x7000, 0x2);
    s.on(0);
    s.simple(ES_KIND_RUN_END, ES_END_LIMIT, 0, 100);
    ASSERT_TRUE((*rec)->finish({ES_END_LIMIT, "test"}));
  }
  auto rec = replay::Recording::open(path);
  ASSERT_TRUE(rec) << rec.error();
  auto all = rec->events({});
  ASSERT_TRUE(all);
  auto chains = replay::load_chains(*rec);
  ASSERT_TRUE(chains);
  ASSERT_EQ(chains->size(), 2u);

  auto export_ids = [&](std::string_view format, const exporter::ExportOptions& opt) {
    std::string text;
    {
      exporter::Output out(&text);
      auto r = exporter::run_export(*rec, *exporter::find_export_format(format), opt, out);
      EXPECT_TRUE(r) << r.error();
    }
    // The event ids in output order: text lines "#12 ..." / "    #12 ...", Markdown rows "| 12 | ...".
    std::vector<uint64_t> ids;
    for (const std::string& l : lines_of(text)) {
      size_t at = l.find_first_not_of(' ');
      if (at == std::string::npos) continue;
      if (l[at] == '#' && at + 1 < l.size() && std::isdigit(static_cast<unsigned char>(l[at + 1])))
        ids.push_back(std::stoull(l.substr(at + 1)));
      else if (l.rfind("| ", 0) == 0 && l.size() > 2 && std::isdigit(static_cast<unsigned char>(l[2])))
        ids.push_back(std::stoull(l.substr(2)));
    }
    return std::make_pair(text, ids);
  };

  for (const uint64_t from : {uint64_t{0}, uint64_t{350}}) {  // 350 ns: after chain A's root
    exporter::ExportOptions opt;
    if (from) opt.from_ns = from;
    auto shown = [&](const replay::Event& e) { return e.rec.time_ns >= from; };
    const replay::Chain* by_id[2] = {&(*chains)[0], &(*chains)[1]};
    auto chain_of = [&](uint64_t origin) { return by_id[0]->id == origin ? by_id[0] : by_id[1]; };

    // Text: in id order; a chain's members all at its first shown member.
    std::vector<uint64_t> expected;
    std::set<uint64_t> printed;
    for (const replay::Event& e : *all) {
      if (!shown(e)) continue;
      if (!e.rec.origin) {
        expected.push_back(e.rec.id);
      } else if (printed.insert(e.rec.origin).second) {
        for (const replay::Event& m : chain_of(e.rec.origin)->events)
          if (shown(m)) expected.push_back(m.rec.id);
      }
    }
    const auto [text, text_ids] = export_ids("text", opt);
    EXPECT_EQ(text_ids, expected) << text;
    if (from) {
      EXPECT_NE(text.find("chain " + std::to_string(chains->front().id) + ": IRQ 0x20 (root #"), std::string::npos)
          << text;
    }

    // Markdown: the chains by id, then the other events.
    expected.clear();
    for (const replay::Chain& c : *chains)
      for (const replay::Event& m : c.events)
        if (shown(m)) expected.push_back(m.rec.id);
    for (const replay::Event& e : *all)
      if (shown(e) && !e.rec.origin) expected.push_back(e.rec.id);
    const auto [md, md_ids] = export_ids("markdown", opt);
    EXPECT_EQ(md_ids, expected) << md;
  }
}

}  // namespace
}  // namespace es
