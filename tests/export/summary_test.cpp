// replay/summary: the chain event text `chains` and the exporters share, and the session facts
// `info` and the exporters' headers print (issue #19). Expected texts are those the two printers
// produced before they shared the code.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "replay/summary.h"

namespace {

using es::replay::SessionFact;
using es::replay::SessionFactsFor;

std::vector<std::pair<std::string, std::string>> pairs(const std::vector<SessionFact>& facts) {
  std::vector<std::pair<std::string, std::string>> v;
  for (const SessionFact& f : facts) v.emplace_back(f.label, f.value);
  return v;
}

// VM-entry interruption info (SDM Vol. 3C 24.8.3): bit 31 valid, [10:8] type 0 = external
// interrupt, [7:0] vector 0x20. A chain whose root record is not in the file says so.
TEST(Summary, ChainEventTextSaysWhenTheRootIsNotRecorded) {
  EXPECT_EQ(es::replay::chain_event_text(5, 0x80000020u, true), "IRQ 0x20");
  EXPECT_EQ(es::replay::chain_event_text(5, 0x80000020u, false), "IRQ 0x20 (root #5 not recorded)");
  es::replay::Chain c;
  c.id = 7;
  c.event_word = 0x80000020u;
  c.root_found = false;
  EXPECT_EQ(es::replay::chain_event_text(c), "IRQ 0x20 (root #7 not recorded)");
}

es::replay::SessionSummary imported_session() {
  es::replay::SessionSummary s;
  s.source = "import";
  s.guest_hash = "sha256:ab";
  s.tool_version = "0.1.0";
  s.host = "imported trace (ftrace)";
  s.kernel = "Linux 6.0+";
  s.started_at = "2026-01-02T03:04:05Z";
  s.ended_at = "2026-01-02T03:04:06Z";
  s.complete = true;
  s.end_reason = ES_END_STOPPED;
  s.end_detail = "end of the imported trace";
  s.event_count = 3;
  s.first_time_ns = 0;
  s.last_time_ns = 1500;
  s.source_dropped = 4;
  s.vcpus = {0, 2};
  s.counts_by_kind = {{ES_KIND_VM_EXIT, 2}, {ES_KIND_NESTED_EXIT, 1}};
  return s;
}

// `info`: every fact, "-" for what the session lacks; the guest path and hash two spaces apart.
TEST(Summary, SessionFactsForInfoNameEveryFact) {
  const auto facts = pairs(es::replay::session_facts(imported_session(), "/tmp/r.db", SessionFactsFor::Info));
  const std::vector<std::pair<std::string, std::string>> want = {
      {"recording", "/tmp/r.db"},
      {"source", "import"},
      {"scenario", "-"},
      {"guest", "-  sha256:ab"},
      {"policy", "-"},
      {"tool", "exitscope 0.1.0"},
      {"host", "imported trace (ftrace)"},
      {"command", "-"},
      {"started", "2026-01-02T03:04:05Z"},
      {"status", "complete (ended 2026-01-02T03:04:06Z)"},
      {"run end", "stopped: end of the imported trace"},
      {"events", "3  (time 0.000000000 .. 0.000001500 s)"},
      {"dropped", "0 by the recorder, 4 by the source"},
      {"VM exits", "2 (1 reflected to L1)"},
      {"vcpus", "0, 2"},
  };
  EXPECT_EQ(facts, want);
}

// The exporters' header: only what the session has, the kernel of an import, one "session" fact;
// an incomplete session says so and has no end.
TEST(Summary, SessionFactsForReportsOnlyWhatTheSessionHas) {
  es::replay::SessionSummary s = imported_session();
  auto facts = pairs(es::replay::session_facts(s, "r.db", SessionFactsFor::Report));
  const std::vector<std::pair<std::string, std::string>> want = {
      {"recording", "r.db"},
      {"source", "import (exitscope 0.1.0)"},
      {"kernel", "Linux 6.0+"},
      {"guest", "sha256:ab"},
      {"events", "3 recorded, 0 dropped by the recorder, 4 dropped by the source"},
      {"session", "complete, ended by stopped (end of the imported trace)"},
      {"time", "0.000000000 s .. 0.000001500 s"},
  };
  EXPECT_EQ(facts, want);
  s.complete = false;
  s.end_reason.reset();
  s.end_detail.clear();
  s.event_count = 0;
  facts = pairs(es::replay::session_facts(s, "r.db", SessionFactsFor::Report));
  ASSERT_EQ(facts.size(), 6u);  // no time extent without events
  EXPECT_EQ(facts[5], (std::pair<std::string, std::string>{
                          "session", "INCOMPLETE (the recorder did not finish; the end of the run may be missing)"}));
}

}  // namespace
