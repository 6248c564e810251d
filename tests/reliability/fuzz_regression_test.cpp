// Inputs the fuzzers (fuzz/) found problems with, each kept under tests/data/fuzz/ and read
// here the way the fuzz target read it. These run in the normal suite and under ASan + UBSan
// (`./run test`), where the original bug is a report again if it comes back.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "replay/browse.h"
#include "replay/chains.h"
#include "replay/format.h"
#include "replay/recording.h"
#include "tests/support/cli_run.h"

namespace {

// fuzz_recording_open: reading events that have neither instruction bytes nor console text
// passed a null pointer to memcpy (undefined behaviour for any size; UBSan: "null pointer
// passed as argument 2"). Input: a seed recording, incomplete, 20 events, 17 of them like that.
TEST(FuzzRegression, EventsWithoutBytesOrTextReadAsZeroBytes) {
  const std::string copy = es::test::process_tmp("events_without_bytes.db");
  std::filesystem::copy_file(std::string(ES_TEST_DATA_DIR) + "/fuzz/recording_open_events_without_bytes.db", copy,
                             std::filesystem::copy_options::overwrite_existing);
  es::replay::set_open_notice_handler({});  // a v1 file: read through a migrated copy
  auto rec = es::replay::Recording::open(copy);
  ASSERT_TRUE(rec) << rec.error();
  uint64_t events = 0, without = 0;
  auto r = rec->for_each_event({}, [&](const es::replay::Event& ev) {
    ++events;
    if (ev.code_id == 0 && ev.rec.kind != ES_KIND_CONSOLE) {
      ++without;
      for (uint8_t b : ev.rec.bytes) EXPECT_EQ(b, 0) << "event #" << ev.rec.id;
    }
    EXPECT_FALSE(es::replay::format_event(ev).empty());
    return true;
  });
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(events, 20u);
  EXPECT_EQ(without, 17u);
  uint64_t chains = 0;
  ASSERT_TRUE(es::replay::for_each_chain(*rec, [&](const es::replay::Chain&) { return ++chains < 1000; }));
}

// fuzz_recording_fields: a recording whose events table lost its constraints holds the text
// 'hello' in events.vcpu, and its session claims 5908722713257574432 events. The GUI's lane
// list walks vCPUs with "min(vcpu) > v"; text compares above every integer and reads back as
// 0, so the walk asked for the same row forever (a hang: libFuzzer's 10 s timeout). Expected
// now: the impossible stored count is not believed (6 rows are counted), and the vCPU walk
// stops at the first value that does not advance, listing vCPU 0 only.
TEST(FuzzRegression, TextVcpuAndImpossibleEventCountDoNotHangTheLaneList) {
  const std::string copy = es::test::process_tmp("text_vcpu.db");
  std::filesystem::copy_file(std::string(ES_TEST_DATA_DIR) + "/fuzz/recording_fields_text_vcpu.db", copy,
                             std::filesystem::copy_options::overwrite_existing);
  auto rec = es::replay::Recording::open(copy);
  ASSERT_TRUE(rec) << rec.error();
  auto span = es::replay::event_span(*rec);
  ASSERT_TRUE(span) << span.error();
  EXPECT_EQ(span->count, 6u);
  for (const uint64_t exact_below : {uint64_t{0}, uint64_t{200'000}}) {  // the index walk, then the exact list
    auto lanes = es::replay::lanes(*rec, *span, exact_below);
    ASSERT_TRUE(lanes) << lanes.error();
    if (exact_below == 0) {
      ASSERT_FALSE(lanes->empty());
      for (const auto& lane : *lanes) EXPECT_EQ(lane.vcpu, 0) << "exact_below " << exact_below;
    }
  }
}

// fuzz_trace_dat: a v7 trace.dat with one changed size field makes libtracecmd ask malloc for
// 0x2022234b22203431 bytes (ASan's allocator aborts on that; glibc returns NULL). The import
// must refuse the file in one sentence naming it, exit 2 and leave no recording behind.
TEST(FuzzRegression, TraceDatWithAnImpossibleSizeIsRefusedInOneSentence) {
  const std::string db = es::test::process_tmp("huge.db");
  std::filesystem::remove(db);
  const std::string dat = std::string(ES_TEST_DATA_DIR) + "/fuzz/trace_dat_huge_allocation.dat";
  const es::test::CliRun r = es::test::run_cli("import '" + dat + "' -o '" + db + "'");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(es::test::count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find(dat), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(db));
  EXPECT_FALSE(std::filesystem::exists(db + ".partial"));
}

// fuzz_trace_dat (2026-12-02): a v7 file whose VERSION option lacks its NUL made libtracecmd's
// strdup read past the option (ASan heap-buffer-overflow in tracecmd_open_fd). The layout walk
// refuses it before libtracecmd sees it, in one sentence naming the option.
TEST(FuzzRegression, TraceDatWithAnUnterminatedStringOptionIsRefusedInOneSentence) {
  const std::string db = es::test::process_tmp("unterminated.db");
  std::filesystem::remove(db);
  const std::string dat = std::string(ES_TEST_DATA_DIR) + "/fuzz/trace_dat_unterminated_version.dat";
  const es::test::CliRun r = es::test::run_cli("import '" + dat + "' -o '" + db + "'");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(es::test::count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("VERSION option is not a NUL-terminated string"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(db));
}

}  // namespace
