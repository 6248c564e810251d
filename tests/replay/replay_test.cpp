// Replay: opening bad files, event filters and decoded formatting, on real SQLite files.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>

#include "probes/recorder/recorder.h"
#include "hv/arch/exit_qualification.h"
#include "replay/chain_steps.h"
#include "replay/format.h"
#include "replay/names.h"
#include "replay/recording.h"
#include "schema/migrations.h"
#include "tests/probes/test_support.h"

namespace es {
namespace {

using arch::BasicExitReason;

void exec_sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

// A finished recording with an IRQ chain that hit an EPT violation and was reinjected.
std::string make_recording(const std::string& name) {
  const std::string path = test::temp_db(name);
  auto rec = recorder::Recorder::open(path, recorder::SessionStart{}, false, {.steps = es::replay::chain_steps()});
  EXPECT_TRUE(rec) << rec.error();
  probes::ProbeBus bus;
  (*rec)->attach(bus);
  test::Emitter em(bus);
  const uint64_t irq = em.raise(test::irq(0x20));
  em.decision(ES_DECISION_INJECT_NEW, test::irq(0x20), irq, irq);
  const uint64_t entry = em.entry(test::irq(0x20), irq, irq);
  const uint64_t ept = em.vm_exit(test::exit_reason(BasicExitReason::EptViolation), 0x182, 0, test::vectoring_irq(0x20),
                                  irq, entry, 0x7000);
  em.decision(ES_DECISION_REQUEUE_FROM_VECTORING, test::irq(0x20), irq, ept);
  em.decision(ES_DECISION_INJECT_REINJECTED, test::irq(0x20), irq, ept);
  em.delivery(test::irq(0x20), irq, ept);
  es_record io{};
  io.kind = ES_KIND_VM_EXIT;
  io.reason = test::exit_reason(BasicExitReason::IoInstruction);
  io.qualification = arch::IoQual::make(0x3f8, 1, false).raw();
  io.vcpu = 1;
  io.level = 2;
  em.emit(io);
  em.run_end(ES_END_GUEST_EXIT);
  EXPECT_TRUE((*rec)->finish({ES_END_GUEST_EXIT, "done"}));
  return path;
}

TEST(RecordingOpenTest, MissingFileIsNamed) {
  const std::string path = test::temp_db("does_not_exist.db");
  auto r = replay::Recording::open(path);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find(path), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("does not exist"), std::string::npos) << r.error();
}

TEST(RecordingOpenTest, TextFileIsNotASqliteDatabase) {
  const std::string path = test::temp_db("notes.db");
  { std::ofstream(path) << "these are my notes, not a recording\n"; }
  auto r = replay::Recording::open(path);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find(path), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("not a SQLite database"), std::string::npos) << r.error();
}

TEST(RecordingOpenTest, EmptyFileIsRefused) {
  const std::string path = test::temp_db("empty.db");
  { std::ofstream out(path); }
  auto r = replay::Recording::open(path);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("empty"), std::string::npos) << r.error();
}

TEST(RecordingOpenTest, ForeignSqliteDatabaseIsNotARecording) {
  const std::string path = test::temp_db("foreign.db");
  exec_sql(path, "CREATE TABLE songs (title TEXT); INSERT INTO songs VALUES ('x');");
  auto r = replay::Recording::open(path);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("not an exitscope recording"), std::string::npos) << r.error();
}

TEST(RecordingOpenTest, NewerSchemaIsRefusedWithVersion) {
  const std::string path = make_recording("newer.db");
  exec_sql(path, "PRAGMA user_version = 7");
  auto r = replay::Recording::open(path);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find(path), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("v7"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("newer"), std::string::npos) << r.error();
  // The recorder refuses to reuse it too (with --force it would replace it instead).
  db::Db db = std::move(db::Db::open(path, SQLITE_OPEN_READWRITE)).value();
  auto m = schema::migrate(db);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().find("newer"), std::string::npos) << m.error();
}

TEST(RecordingOpenTest, GarbageInsideTheFileIsReportedAsCorruptNotACrash) {
  const std::string path = make_recording("corrupt.db");
  {
    // Keep the 100-byte header (so it still looks like SQLite) and overwrite every page after it.
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(0, std::ios::end);
    const auto size = static_cast<size_t>(f.tellg());
    ASSERT_GT(size, 4096u);
    std::string garbage(size - 100, '\0');
    for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>((i * 131 + 7) & 0xff);
    f.seekp(100);
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  auto r = replay::Recording::open(path);
  std::string error;
  if (!r) {
    error = r.error();
  } else {
    auto ev = r->events({});
    ASSERT_FALSE(ev) << "reading a corrupt file must fail";
    error = ev.error();
  }
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_TRUE(error.find("corrupt") != std::string::npos || error.find("not a SQLite database") != std::string::npos)
      << error;
}

TEST(MigrationTest, EmptyFileGetsCurrentSchemaAndOlderStepsAreListed) {
  const std::string path = test::temp_db("migrate.db");
  db::Db db = std::move(db::Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)).value();
  ASSERT_TRUE(schema::migrate(db));
  EXPECT_EQ(*db.query_int("PRAGMA user_version"), schema::kSchemaVersion);
  ASSERT_TRUE(schema::migrate(db)) << "migrating a current file is a no-op";
  EXPECT_EQ(*db.query_int("SELECT count(*) FROM sqlite_schema WHERE name IN ('sessions','vcpus','events','code',"
                          "'chains','annotations')"),
            6);
  // Schema v4: chain membership is events.origin; chain_events (which repeated it) is gone.
  EXPECT_EQ(*db.query_int("SELECT count(*) FROM sqlite_schema WHERE name = 'chain_events'"), 0);
}

TEST(EventFilterTest, FiltersByKindReasonVectorVcpuLevelChainTimeAndLimit) {
  const std::string path = make_recording("filters.db");
  auto rec = replay::Recording::open(path);
  ASSERT_TRUE(rec) << rec.error();
  auto count = [&](const replay::EventFilter& f) {
    auto ev = rec->events(f);
    EXPECT_TRUE(ev) << ev.error();
    return ev ? ev->size() : size_t{0};
  };
  EXPECT_EQ(count({}), 9u);
  replay::EventFilter f;
  f.kind = ES_KIND_VM_EXIT;
  EXPECT_EQ(count(f), 2u);
  f = {};
  ASSERT_TRUE(replay::set_reason(f, "ept_violation"));
  EXPECT_EQ(count(f), 1u);
  f = {};
  ASSERT_TRUE(replay::set_reason(f, "48"));
  EXPECT_EQ(count(f), 1u);
  f = {};
  ASSERT_TRUE(replay::set_reason(f, "INJECT_REINJECTED"));
  EXPECT_EQ(count(f), 1u);
  f = {};
  EXPECT_FALSE(replay::set_reason(f, "NOT_A_REASON"));
  f = {};
  f.vector = 0x20;  // raise, 3 decisions, entry, exit (IDT-vectoring), delivery
  EXPECT_EQ(count(f), 7u);
  f = {};
  f.vcpu = 1;
  EXPECT_EQ(count(f), 1u);
  f = {};
  f.level = 2;
  EXPECT_EQ(count(f), 1u);
  f = {};
  f.chain = 1;
  EXPECT_EQ(count(f), 7u);
  f = {};
  f.from_ns = 200;
  f.to_ns = 400;
  EXPECT_EQ(count(f), 3u);
  f = {};
  f.limit = 4;
  EXPECT_EQ(count(f), 4u);
}

TEST(FormatTest, ExitLineDecodesReasonQualificationAndVectoring) {
  const std::string path = make_recording("format.db");
  auto rec = replay::Recording::open(path);
  ASSERT_TRUE(rec) << rec.error();
  replay::EventFilter f;
  f.kind = ES_KIND_VM_EXIT;
  auto ev = rec->events(f);
  ASSERT_TRUE(ev && ev->size() == 2);
  const std::string ept = replay::format_event((*ev)[0]);
  EXPECT_NE(ept.find("EPT_VIOLATION"), std::string::npos) << ept;
  EXPECT_NE(ept.find("vectoring=IRQ 0x20"), std::string::npos) << ept;
  // Table 28-7: 0x182 = bit 1 data write, bits 5:3 clear (entry not present), bit 7 linear
  // address valid, bit 8 the access was to its translation.
  EXPECT_NE(ept.find("[data write, EPT entry not present, gla valid: translation]"), std::string::npos) << ept;
  EXPECT_NE(ept.find("gpa=0x7000"), std::string::npos) << ept;
  EXPECT_NE(ept.find("origin=#1"), std::string::npos) << ept;
  const std::string io = replay::format_event((*ev)[1]);
  EXPECT_NE(io.find("IO_INSTRUCTION"), std::string::npos) << io;
  EXPECT_NE(io.find("out 0x3f8 size 1"), std::string::npos) << io;
  EXPECT_NE(io.find("L2(L0)"), std::string::npos) << io;
}

// CONTEXT records say what they are: the KVM tracepoints of live and imported recordings, the
// VMCS dump of an internal error, a violation by its rule name.
TEST(FormatTest, ContextAndViolationRecordsAreDecoded) {
  auto text = [](uint32_t reason, auto fill) {
    replay::Event ev;
    ev.rec.kind = ES_KIND_CONTEXT;
    ev.rec.reason = reason;
    fill(ev.rec);
    return replay::describe_event_fields(ev);
  };
  EXPECT_EQ(text(ES_CONTEXT_PIO,
                 [](es_record& r) { r.qualification = 0xe9, r.aux64 = 0x7, r.intr_error = 1, r.instr_len = 1; }),
            "kvm_pio out port=0xe9 val=0x7 size=1");
  EXPECT_EQ(text(ES_CONTEXT_PIO, [](es_record& r) { r.qualification = 0xea, r.aux64 = 0x5a, r.aux = 12; }),
            "kvm_pio in port=0xea val=0x5a line=12");
  EXPECT_EQ(text(ES_CONTEXT_USERSPACE_EXIT, [](es_record& r) { r.qualification = 2; }),
            "kvm_userspace_exit KVM_EXIT_IO");
  EXPECT_EQ(text(ES_CONTEXT_EMULATE_INSN, [](es_record& r) { r.rip = 0x101d, r.intr_error = 1; }),
            "kvm_emulate_insn rip=0x101d failed");
  EXPECT_EQ(text(ES_CONTEXT_MSR, [](es_record& r) { r.qualification = 0x80b, r.intr_error = 1; }),
            "kvm_msr wrmsr 0x80b=0x0");
  EXPECT_EQ(text(ES_CONTEXT_VMCS_FIELD, [](es_record& r) { r.aux = 0x681e, r.aux64 = 0x100040; }),
            "vmcs GuestRip=0x100040");
  replay::Event v;
  v.rec.kind = ES_KIND_VIOLATION;
  v.rec.reason = 3;
  EXPECT_EQ(replay::describe_event_fields(v), "event-lost");
}

TEST(NamesTest, ParsesKindsTimesAndDecisions) {
  EXPECT_EQ(replay::parse_kind("vm_exit"), uint16_t{ES_KIND_VM_EXIT});
  EXPECT_EQ(replay::parse_kind("ES_KIND_DECISION"), uint16_t{ES_KIND_DECISION});
  EXPECT_EQ(replay::parse_kind("3"), uint16_t{ES_KIND_DELIVERY});
  EXPECT_FALSE(replay::parse_kind("banana"));
  EXPECT_FALSE(replay::parse_kind("99"));
  EXPECT_EQ(replay::parse_time_ns("1.5us"), 1500u);
  EXPECT_EQ(replay::parse_time_ns("20ms"), 20000000u);
  EXPECT_EQ(replay::parse_time_ns("2s"), 2000000000u);
  EXPECT_EQ(replay::parse_time_ns("123"), 123u);
  EXPECT_FALSE(replay::parse_time_ns("soon"));
  EXPECT_EQ(replay::parse_decision("drop_from_vectoring"), uint32_t{ES_DECISION_DROP_FROM_VECTORING});
  for (uint32_t d = 0; d < ES_DECISION_COUNT; ++d) EXPECT_FALSE(replay::decision_name(d).empty()) << d;
  for (uint16_t k = 0; k < ES_KIND_COUNT; ++k) EXPECT_FALSE(replay::kind_name(k).empty()) << k;
  EXPECT_EQ(replay::format_time(1234567890123ull), "1234.567890123");
}

}  // namespace
}  // namespace es
