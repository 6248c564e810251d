// `exitscope export` of a chain too long to hold (issue #18): a chain past replay::chain_hold_limit()
// members is read without them (Chain::members_held false: only its first and last member kept)
// and every exporter streams its members from the recording instead. The output must not depend
// on that: the real binary, run with ES_CHAIN_HOLD=2 (every chain of more than two members not
// held) and with the default limit (this chain held whole), writes the same bytes in every format,
// with and without --chain and a time window, and every member of the chain is in it.
//
// The fixture is tests/data/import/livelock.txt's loop made long: KVM injects IRQ 0xec, the
// delivery hits an EPT violation (the exit's IDT-vectoring info, info2 = 0x800000ec, valid: SDM
// Vol. 3C 28.2.4 "Information for VM Exits During Event Delivery"), KVM requeues and reinjects it
// (vmx_complete_interrupts, then kvm_inj_virq "[reinjected]"), and again. Expected members, as the
// importer chains that trace (livelock.txt: 42 lines, "33 events"): the inferred RAISE (#1, at the
// first injection's time), then every kvm_inj_virq (a DECISION), kvm_entry (the VM entry that
// injects) and vectoring kvm_exit, each the line's own event (#line + 2); kvm_page_fault lines are
// no members.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "tests/export/mini_json.h"
#include "tests/support/cli_run.h"

namespace es {
namespace {

constexpr int kCycles = 3000;            // inj_virq, entry, exit, page fault
constexpr uint64_t kLineStepNs = 10000;  // 10 us between lines
constexpr uint64_t kFromNs = 10000000, kToNs = 20000000;

struct Member {
  uint64_t id = 0, time_ns = 0;
};

// Writes the trace; returns the chain's members (id, session time) in id order.
std::vector<Member> write_trace(const std::string& path) {
  std::ofstream f(path);
  std::vector<Member> members{{1, 0}};  // the inferred RAISE, at the first line's time
  auto line = [&, n = uint64_t{0}](const char* event, const std::string& text, bool member) mutable {
    const uint64_t t_ns = n * kLineStepNs;
    const unsigned long long us = 700000110ull + t_ns / 1000;  // livelock.txt's first line: 700.000110
    char ts[32];
    std::snprintf(ts, sizeof ts, "%llu.%06llu", us / 1000000, us % 1000000);
    char head[96];
    std::snprintf(head, sizeof head, "       CPU 0/KVM-5001  [002]  %s: %-21s ", ts, event);
    f << head << text << "\n";
    if (member) members.push_back({n + 2, t_ns});
    ++n;
  };
  const std::string exit_text =
      "vcpu 0 reason EPT_VIOLATION rip 0xffffffff81000100 info1 0x0000000000000182 info2 0x00000000800000ec "
      "intr_info 0x00000000 error_code 0x00000000";
  const std::string pf_text = "vcpu 0 rip 0xffffffff81000100 address 0x0000000000a01ff8 error_code 0x182";
  for (int i = 0; i <= kCycles; ++i) {
    line("kvm_inj_virq:", i == 0 ? "IRQ 0xec" : "IRQ 0xec [reinjected]", true);
    line("kvm_entry:", "vcpu 0, rip 0xffffffff81000100", true);
    if (i == kCycles) break;  // the trace ends with the last injection's entry, as livelock.txt
    line("kvm_exit:", exit_text, true);
    line("kvm_page_fault:", pf_text, false);
  }
  return members;
}

class LongChainExport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string trace = test::process_tmp("long_chain.txt");
    members_ = write_trace(trace);
    db_ = test::process_tmp("long_chain.db");
    std::remove(db_.c_str());
    const test::CliRun r = test::run_cli("import '" + trace + "' -o '" + db_ + "'");
    ASSERT_EQ(r.code, 0) << r.err;
  }
  // The members with a time in [from, to] (the window the export is given).
  static std::set<uint64_t> members_in(uint64_t from, uint64_t to) {
    std::set<uint64_t> ids;
    for (const Member& m : members_)
      if (m.time_ns >= from && m.time_ns <= to) ids.insert(m.id);
    return ids;
  }
  // `export` with ES_CHAIN_HOLD=2 and with the default limit: the same exit status and bytes.
  static std::string export_both(const std::string& format, const std::string& extra) {
    const std::string args = "export '" + db_ + "' --format " + format + " -o -" + extra;
    const test::CliRun held = test::run_cli(args);
    const test::CliRun streamed = test::run_cli_env("ES_CHAIN_HOLD=2", args);
    EXPECT_EQ(held.code, 0) << args << ": " << held.err;
    EXPECT_EQ(streamed.code, 0) << args << ": " << streamed.err;
    EXPECT_TRUE(held.out == streamed.out) << args << ": the output depends on whether the chain is held ("
                                          << held.out.size() << " bytes held, " << streamed.out.size() << " not held)";
    return streamed.out;
  }
  static std::vector<Member> members_;
  static std::string db_;
};
std::vector<Member> LongChainExport::members_;
std::string LongChainExport::db_;

const std::vector<std::string> kOptions = {
    "", " --chain 1", " --from " + std::to_string(kFromNs) + " --to " + std::to_string(kToNs),
    " --chain 1 --from " + std::to_string(kFromNs) + " --to " + std::to_string(kToNs)};

bool windowed(const std::string& extra) { return extra.find("--from") != std::string::npos; }

// The ids of the lines that start with `before`, a decimal id, then `after` (no std::regex: GCC
// 12's sanitizer build warns inside it, tests/reliability/CMakeLists.txt); they must be distinct.
std::set<uint64_t> ids_of(const std::string& out, std::string_view before, std::string_view after) {
  std::set<uint64_t> ids;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);) {
    if (l.compare(0, before.size(), before) != 0) continue;
    size_t end = before.size();
    while (end < l.size() && l[end] >= '0' && l[end] <= '9') ++end;
    if (end == before.size() || l.compare(end, after.size(), after) != 0) continue;
    EXPECT_TRUE(ids.insert(std::stoull(l.substr(before.size(), end - before.size()))).second) << "printed twice: " << l;
  }
  return ids;
}

TEST_F(LongChainExport, TextListsEveryMemberHeldOrNot) {
  ASSERT_EQ(members_.size(), 3u * kCycles + 3);
  for (const std::string& extra : kOptions) {
    const std::string out = export_both("text", extra);
    // The root at the margin, the other members indented under it (a line per event).
    std::set<uint64_t> shown = ids_of(out, "    #", " ");
    if (out.rfind("#1 ", 0) == 0 || out.find("\n#1 ") != std::string::npos) shown.insert(1);
    EXPECT_EQ(shown, windowed(extra) ? members_in(kFromNs, kToNs) : members_in(0, UINT64_MAX)) << extra;
    if (extra.find("--chain") != std::string::npos) {  // the title counts them all
      EXPECT_EQ(out.rfind("Chain 1: IRQ 0xec at L1 vcpu0, " + std::to_string(members_.size()) + " events,", 0), 0u)
          << out.substr(0, 200);
    }
  }
}

TEST_F(LongChainExport, MarkdownListsEveryMemberHeldOrNot) {
  for (const std::string& extra : kOptions) {
    const std::string out = export_both("markdown", extra);
    const std::string chains = out.substr(0, out.find("## Other events"));
    EXPECT_EQ(ids_of(chains, "| ", " |"), windowed(extra) ? members_in(kFromNs, kToNs) : members_in(0, UINT64_MAX))
        << extra;
    if (extra.find("--chain") != std::string::npos) {  // the title counts them all
      EXPECT_EQ(out.rfind("# Chain 1: IRQ 0xec at L1 vcpu0, " + std::to_string(members_.size()) + " events,", 0), 0u)
          << out.substr(0, 200);
    }
  }
}

// Chrome trace-event JSON: each member carries the chain's flow (bind_id 1) on one slice, with
// its event id in args.
TEST_F(LongChainExport, ChromeFlowPassesEveryMemberHeldOrNot) {
  for (const std::string& extra : kOptions) {
    const test::json::Value root = test::json::parse(export_both("chrome", extra));
    const test::json::Value* evs = root.find("traceEvents");
    ASSERT_NE(evs, nullptr) << extra;
    std::set<uint64_t> flow;
    for (const test::json::Value& e : evs->items) {
      const test::json::Value* bind = e.find("bind_id");
      if (!bind || bind->text != "1") continue;
      const test::json::Value* args = e.find("args");
      ASSERT_NE(args, nullptr);
      const test::json::Value* id = args->find("id");
      ASSERT_NE(id, nullptr);
      EXPECT_TRUE(flow.insert(std::stoull(id->text)).second) << "member " << id->text << " twice in the flow";
    }
    EXPECT_EQ(flow, windowed(extra) ? members_in(kFromNs, kToNs) : members_in(0, UINT64_MAX)) << extra;
  }
}

// Perfetto's protobuf trace, decoded by `protoc --decode_raw` (perfetto_proto_test.cpp): each
// member is one flow point of the chain, a TrackEvent with flow id 1 in flow_ids (field 47) or,
// the last, terminating_flow_ids (48): fixed64, printed as 0x%016x.
TEST_F(LongChainExport, PerfettoFlowPassesEveryMemberHeldOrNot) {
  for (const std::string& extra : kOptions) {
    const std::string out = export_both("perfetto", extra);
    const std::string bin = test::process_tmp("long_chain.pftrace"), txt = test::process_tmp("long_chain.pf.txt");
    {
      std::ofstream f(bin, std::ios::binary);
      f << out;
    }
    ASSERT_EQ(std::system(("protoc --decode_raw < '" + bin + "' > '" + txt + "'").c_str()), 0) << extra;
    std::istringstream in(test::slurp(txt));
    size_t steps = 0, ends = 0;
    for (std::string l; std::getline(in, l);) {
      const size_t a = l.find_first_not_of(' ');
      if (a == std::string::npos) continue;
      if (l.compare(a, std::string::npos, "47: 0x0000000000000001") == 0) ++steps;
      if (l.compare(a, std::string::npos, "48: 0x0000000000000001") == 0) ++ends;
    }
    const size_t expected = (windowed(extra) ? members_in(kFromNs, kToNs) : members_in(0, UINT64_MAX)).size();
    EXPECT_EQ(ends, 1u) << extra;
    EXPECT_EQ(steps + ends, expected) << extra;
  }
}

}  // namespace
}  // namespace es
