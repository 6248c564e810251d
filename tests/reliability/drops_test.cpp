// A forced recorder-queue overflow end to end through the real `exitscope record`: every
// record is either in the file or counted as dropped, and the count is stored in the
// session and shown by `info` and `events` (the GUI's status bar: tests/gui). The test hook
// ES_RECORDER_TEST_QUEUE=1 (probes/recorder/recorder.h) puts the recorder in drop mode with
// a one-record queue, which the model (millions of records a second) overflows at once.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <regex>
#include <string>

#include "probes/recorder/recorder.h"
#include "replay/recording.h"
#include "tests/support/cli_run.h"

using es::test::CliRun;
using es::test::run_cli;

namespace {

uint64_t info_number(const std::string& info, const std::string& pattern) {
  std::smatch m;
  if (!std::regex_search(info, m, std::regex(pattern))) return UINT64_MAX;
  return std::stoull(m[1]);
}

TEST(Drops, ForcedQueueOverflowIsCountedStoredAndShown) {
  const std::string run = "record --scenario timer-irq --arg 0 --max-exits 20000 --no-check --quiet --force -o ";
  const std::string full = es::test::process_tmp("all.db"), lossy = es::test::process_tmp("lossy.db");

  ASSERT_EQ(run_cli(run + full).code, 0);
  const CliRun full_info = run_cli("info --no-console " + full);
  ASSERT_EQ(full_info.code, 0) << full_info.err;
  const uint64_t total = info_number(full_info.out, "events: +([0-9]+)");
  ASSERT_NE(total, UINT64_MAX) << full_info.out;
  EXPECT_NE(full_info.out.find("dropped:    0 by the recorder, 0 by the source"), std::string::npos) << full_info.out;

  ::setenv(es::recorder::kTestQueueEnv, "1", 1);
  const CliRun rec = run_cli(run + lossy);
  ::unsetenv(es::recorder::kTestQueueEnv);
  ASSERT_EQ(rec.code, 0) << rec.err;

  // info: the session is complete and says how many the recorder dropped.
  const CliRun info = run_cli("info --no-console " + lossy);
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("status:     complete"), std::string::npos) << info.out;
  const uint64_t written = info_number(info.out, "events: +([0-9]+)");
  const uint64_t dropped = info_number(info.out, "dropped: +([0-9]+) by the recorder, 0 by the source");
  ASSERT_NE(dropped, UINT64_MAX) << info.out;
  EXPECT_GT(dropped, 0u) << "a one-record queue in drop mode must overflow";
  EXPECT_LT(written, total);
  EXPECT_EQ(written + dropped, total) << "every record of the (deterministic) run is written or counted";

  // The same number in the file, through the replay library.
  auto opened = es::replay::Recording::open(lossy);
  ASSERT_TRUE(opened) << opened.error();
  auto counts = opened->drop_counts();
  ASSERT_TRUE(counts) << counts.error();
  EXPECT_EQ(counts->recorder, dropped);
  EXPECT_EQ(counts->source, 0u);

  // events: a first line warns that the list has gaps, also when filtered.
  const CliRun events = run_cli("events " + lossy + " --kind exit --limit 2");
  ASSERT_EQ(events.code, 0) << events.err;
  const std::string header = "# " + std::to_string(dropped) + " records were dropped while recording (" +
                             std::to_string(dropped) + " by the recorder, 0 by the source): this list has gaps.\n";
  EXPECT_EQ(events.out.substr(0, header.size()), header) << events.out;
  EXPECT_EQ(es::test::count_lines(events.out), 3u) << events.out;
  // ... and no such line for a recording without drops.
  const CliRun clean = run_cli("events " + full + " --limit 2");
  EXPECT_EQ(clean.out.find("dropped"), std::string::npos) << clean.out;
}

}  // namespace
