// exitscope import of trace.dat files made here, in the test: es-kvm-guest runs a real-mode
// guest through /dev/kvm with the kvm tracepoints on (tests/import/kvm_trace_capture.h), trace-cmd
// extracts the buffer (file version 7, compressed), trace-cmd convert makes the v6 and the
// uncompressed v7 copies. Each is imported into a real SQLite file and read back; what the
// recording says must be what the guest printed it did. Skipped, with the reason, without root,
// /dev/kvm, tracefs or trace-cmd.
#include <event-parse.h>  // libtraceevent
#include <gtest/gtest.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "hv/arch/event_info.h"
#include "hv/arch/exceptions.h"
#include "replay/import/import_file.h"
#include "replay/import/tep_lazy_formats.h"
#include "replay/import/trace_dat.h"
#include "replay/import/tracecmd_shim.h"
#include "replay/recording.h"
#include "tests/import/kvm_trace_capture.h"
#include "tests/support/cli_run.h"

namespace es::test {
namespace {

using arch::EntryIntrInfo;
using arch::InterruptionType;

constexpr unsigned kLoops = 5;
constexpr uint64_t kUd2Rip = 0x101d;  // tests/kvm/kvm_guest.asm: the UD2 of the loop
constexpr uint64_t kKvmExitIo = 2;    // KVM_EXIT_IO (include/uapi/linux/kvm.h)
constexpr uint64_t kKvmExitHlt = 5;   // KVM_EXIT_HLT

// What es-kvm-guest printed: port I/O in order, and its summary.
struct GuestRun {
  std::vector<std::tuple<uint64_t, uint64_t, bool>> pio;  // port, value, write
  unsigned loops = 0, outs = 0, ins = 0;
  bool halted = false;
};

GuestRun parse_guest(const std::string& text) {
  GuestRun g;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    unsigned port = 0, value = 0;
    if (std::sscanf(line.c_str(), "out 0x%x 0x%x", &port, &value) == 2)
      g.pio.emplace_back(port, value, true);
    else if (std::sscanf(line.c_str(), "in 0x%x", &port) == 1)
      g.pio.emplace_back(port, 0x5A, false);  // the runner answers 0x5A
    else if (line == "hlt")
      g.halted = true;
    else
      std::sscanf(line.c_str(), "summary loops %u outs %u ins %u", &g.loops, &g.outs, &g.ins);
  }
  return g;
}

struct Files {
  KvmTraceCapture cap;
  GuestRun guest;
  std::string v7, v7_plain, v6;  // extracted (compressed), uncompressed copy, version 6 copy
};

// One capture per test process (CTest runs every test case as its own process).
const Files& files() {
  static const Files f = [] {
    Files x;
    x.cap.skip = capture_skip_reason();  // before making files: a user without root may skip
    if (!x.cap.skip.empty()) return x;
    const std::string dir = process_tmp("dat");
    std::filesystem::create_directories(dir);
    x.v7 = dir + "/guest_v7.dat";
    x.v7_plain = dir + "/guest_v7_plain.dat";
    x.v6 = dir + "/guest_v6.dat";
    x.cap = capture_kvm_trace(ES_KVM_GUEST_BIN, kLoops, x.v7);
    if (!x.cap.skip.empty() || !x.cap.error.empty()) return x;
    x.guest = parse_guest(x.cap.guest_output);
    if (std::string e = convert_trace_dat(x.v7, x.v7_plain, 7, "none"); !e.empty())
      x.cap.error = e;
    else if (std::string e6 = convert_trace_dat(x.v7, x.v6, 6, ""); !e6.empty())
      x.cap.error = e6;
    return x;
  }();
  return f;
}

class TraceDatImport : public ::testing::Test {
 protected:
  void SetUp() override {
    const Files& f = files();
    if (!f.cap.skip.empty()) GTEST_SKIP() << f.cap.skip;
    ASSERT_EQ(f.cap.error, "");
    ASSERT_EQ(f.guest.loops, kLoops) << f.cap.guest_output;
    ASSERT_TRUE(f.guest.halted) << f.cap.guest_output;
  }
};

struct Recorded {
  import::ImportStats stats;
  std::vector<es_record> events;
  replay::SessionSummary session;
};

Recorded import_into_db(const std::string& dat, const std::string& db_name) {
  Recorded r;
  const std::string db = process_tmp(db_name);
  import::TraceDatOptions opt;
  opt.import.force = true;
  auto st = import::import_file(dat, db, opt);
  EXPECT_TRUE(st) << (st ? "" : st.error());
  if (!st) return r;
  r.stats = *st;
  auto rec = replay::Recording::open(db);
  EXPECT_TRUE(rec) << (rec ? "" : rec.error());
  if (!rec) return r;
  EXPECT_TRUE(replay::query_events(rec->db(), "", {}, [&](const replay::Event& e) {
    r.events.push_back(e.rec);
    return true;
  }));
  auto s = rec->session();
  EXPECT_TRUE(s);
  if (s) r.session = *s;
  return r;
}

std::string this_kernel_release() {
  utsname u{};
  ::uname(&u);
  return u.release;
}

// What the user checks in the recording against what the guest did.
void expect_matches_guest(const Recorded& r, const GuestRun& g) {
  EXPECT_EQ(r.session.source, "import");
  EXPECT_TRUE(r.session.complete);
  EXPECT_EQ(r.session.kernel, this_kernel_release());  // from the file's uname
  EXPECT_EQ(r.stats.unparsed, 0u);
  EXPECT_EQ(r.stats.lost_events, 0u);

  // Every port access, in order, with its value.
  std::vector<std::tuple<uint64_t, uint64_t, bool>> pio;
  for (const es_record& e : r.events)
    if (e.kind == ES_KIND_CONTEXT && e.reason == import::kContextPio)
      pio.emplace_back(e.qualification, e.aux64, e.intr_error == 1);
  EXPECT_EQ(pio, g.pio);

  // KVM injects #UD (vector 6, hardware exception, no error code) once per loop as a new event;
  // one it still holds as injected (the vCPU thread preempted before it ran) is injected again "[reinjected]" (x86.c
  // kvm_inject_exception), which stays in that #UD's chain.
  unsigned ud = 0;
  std::set<uint64_t> ud_chains;
  for (const es_record& e : r.events) {
    if (e.kind != ES_KIND_DECISION) continue;
    const EntryIntrInfo w(e.intr_info);
    EXPECT_TRUE(w.valid());
    EXPECT_EQ(w.vector(), arch::kUD);
    EXPECT_EQ(w.type(), InterruptionType::HardwareException);
    EXPECT_FALSE(w.deliver_error_code());
    if (e.reason == ES_DECISION_INJECT_NEW) {
      ++ud;
      ud_chains.insert(e.origin);
    } else {
      EXPECT_EQ(e.reason, static_cast<uint32_t>(ES_DECISION_INJECT_REINJECTED));
      EXPECT_EQ(ud_chains.count(e.origin), 1u) << "a reinjected #UD outside the chain of the #UD it repeats";
    }
  }
  EXPECT_EQ(ud, g.loops);
  EXPECT_EQ(ud_chains.size(), g.loops);

  // The emulated UD2: its bytes 0f 0b at its RIP, kept in the recording.
  unsigned ud2 = 0;
  for (const es_record& e : r.events) {
    if (e.kind != ES_KIND_CONTEXT || e.reason != import::kContextEmulateInsn || e.rip != kUd2Rip) continue;
    EXPECT_TRUE(e.flags & ES_FLAG_BYTES_VALID);
    ASSERT_EQ(e.aux, 2u);
    EXPECT_EQ(e.bytes[0], 0x0f);
    EXPECT_EQ(e.bytes[1], 0x0b);
    ++ud2;
  }
  EXPECT_GE(ud2, g.loops);

  // KVM_RUN returned to the runner for every port access and for the HLT.
  unsigned io = 0, hlt = 0;
  for (const es_record& e : r.events)
    if (e.kind == ES_KIND_CONTEXT && e.reason == import::kContextUserspaceExit) {
      if (e.qualification == kKvmExitIo) ++io;
      if (e.qualification == kKvmExitHlt) ++hlt;
    }
  EXPECT_EQ(io, g.outs + g.ins);
  EXPECT_EQ(hlt, 1u);
  EXPECT_EQ(g.outs + g.ins, g.pio.size());
}

// The era the importer must report: what this kernel's kvm_entry format says.
bool kernel_entry_has_intr_info() {
  std::ifstream f("/sys/kernel/tracing/events/kvm/kvm_entry/format");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str().find("intr_info;") != std::string::npos;
}

TEST_F(TraceDatImport, Version7CompressedRecordingMatchesTheGuest) {
  const Recorded r = import_into_db(files().v7, "v7.db");
  EXPECT_EQ(r.stats.format, "trace.dat v7");
  EXPECT_EQ(r.stats.file_version, 7u);
  EXPECT_NE(r.stats.uname.find(this_kernel_release()), std::string::npos) << r.stats.uname;
  EXPECT_GE(r.stats.cpus, 1u);
  EXPECT_EQ(r.stats.clock, "local");
  if (kernel_entry_has_intr_info()) {
    EXPECT_NE(r.stats.era.find("6.14+"), std::string::npos) << r.stats.era;
  }
  expect_matches_guest(r, files().guest);
}

TEST_F(TraceDatImport, Version6AndUncompressedVersion7GiveTheSameRecording) {
  const Recorded v7 = import_into_db(files().v7, "v7.db");
  for (const auto& [file, version] : {std::pair{files().v6, 6u}, std::pair{files().v7_plain, 7u}}) {
    SCOPED_TRACE(file);
    const Recorded r = import_into_db(file, "other.db");
    EXPECT_EQ(r.stats.file_version, version);
    EXPECT_EQ(r.stats.format, "trace.dat v" + std::to_string(version));
    expect_matches_guest(r, files().guest);
    ASSERT_EQ(r.events.size(), v7.events.size());
    for (size_t i = 0; i < r.events.size(); ++i) {
      EXPECT_EQ(r.events[i].kind, v7.events[i].kind) << i;
      EXPECT_EQ(r.events[i].time_ns, v7.events[i].time_ns) << i;
      EXPECT_EQ(r.events[i].reason, v7.events[i].reason) << i;
      EXPECT_EQ(r.events[i].rip, v7.events[i].rip) << i;
    }
  }
}

TEST_F(TraceDatImport, CliDetectsTraceDatAndInfoShowsTheSessionFacts) {
  const std::string db = process_tmp("cli.db");
  std::filesystem::remove(db);
  CliRun r = run_cli("import '" + files().v7 + "' -o '" + db + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("(trace.dat v7, "), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "");  // libtracecmd's own messages stay quiet; no progress off a terminal
  r = run_cli("info '" + db + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("trace.dat v7"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("traced host: Linux"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(this_kernel_release()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("kernel era: "), std::string::npos) << r.out;
  // Forced, and the progress line on request.
  r = run_cli("import '" + files().v6 + "' -o '" + db + "' --force --format trace.dat --progress");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("(trace.dat v6, "), std::string::npos) << r.out;
  // Forced text on a trace.dat: told how to read it.
  r = run_cli("import '" + files().v6 + "' -o '" + db + "' --force --format ftrace");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--format trace.dat"), std::string::npos) << r.err;
}

// The same capture as text ('trace-cmd report'): the text importer must tell the same story.
TEST_F(TraceDatImport, TraceCmdReportOfTheFileImportsToTheSameEvents) {
  const std::string txt = process_tmp("report.txt");
  ASSERT_EQ(std::system(("trace-cmd report -i '" + files().v7 + "' >'" + txt + "' 2>/dev/null").c_str()), 0);
  const Recorded dat = import_into_db(files().v7, "dat.db");
  const Recorded text = import_into_db(txt, "text.db");
  EXPECT_EQ(text.stats.format, "trace-cmd");
  EXPECT_EQ(text.stats.unparsed, 0u);
  EXPECT_EQ(text.stats.kvm_events, dat.stats.kvm_events);
  ASSERT_EQ(text.events.size(), dat.events.size());
  for (size_t i = 0; i < dat.events.size(); ++i) {
    SCOPED_TRACE(i);
    const es_record &a = dat.events[i], &b = text.events[i];
    EXPECT_EQ(a.kind, b.kind);
    EXPECT_EQ(a.reason, b.reason);
    EXPECT_EQ(a.rip, b.rip);
    EXPECT_EQ(a.intr_info, b.intr_info);
    // (An other-tracepoint row's qualification is its last line's number: a record index in the
    // trace.dat, a line of the text.)
    if (a.kind != ES_KIND_CONTEXT || a.reason != import::kContextOtherEvent) {
      EXPECT_EQ(a.qualification, b.qualification);
    }
    EXPECT_EQ(a.aux64, b.aux64);
    // The text has microseconds of the absolute time; both are relative to the first event.
    EXPECT_LE(a.time_ns > b.time_ns ? a.time_ns - b.time_ns : b.time_ns - a.time_ns, 1000u);
  }
}

// Two guests at once, pinned to two host CPUs: the per-CPU buffers are merged in time order,
// each thread becomes its own vCPU, each vCPU's port I/O and #UD count are its guest's; the
// guests' exec / exit scheduler events are kept as context.
TEST_F(TraceDatImport, TwoGuestsOnTwoCpusAreMergedInTimeOrder) {
  if (const std::string why = capture_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  const std::string dat = process_tmp("two.dat");
  const KvmTraceCapture cap = capture_kvm_trace(ES_KVM_GUEST_BIN, 4, dat, 0, 2);
  if (!cap.skip.empty()) GTEST_SKIP() << cap.skip;
  ASSERT_EQ(cap.error, "");
  ASSERT_EQ(cap.outputs.size(), 2u);
  const Recorded r = import_into_db(dat, "two.db");
  EXPECT_EQ(r.stats.unparsed, 0u);
  if (std::thread::hardware_concurrency() >= 2) {
    // The trace really spans two CPUs' buffers.
    const std::string txt = process_tmp("two.txt");
    ASSERT_EQ(std::system(("trace-cmd report -i '" + dat + "' >'" + txt + "' 2>/dev/null").c_str()), 0);
    std::ifstream f(txt);
    std::stringstream ss;
    ss << f.rdbuf();
    EXPECT_NE(ss.str().find("[000]"), std::string::npos);
    EXPECT_NE(ss.str().find("[001]"), std::string::npos);
  }
  for (size_t i = 1; i < r.events.size(); ++i) EXPECT_LE(r.events[i - 1].time_ns, r.events[i].time_ns) << i;
  std::map<uint16_t, GuestRun> by_vcpu;
  std::map<uint16_t, std::set<uint64_t>> ud_chains;
  unsigned other = 0;
  for (const es_record& e : r.events) {
    GuestRun& g = by_vcpu[e.vcpu];
    if (e.kind == ES_KIND_CONTEXT && e.reason == import::kContextPio)
      g.pio.emplace_back(e.qualification, e.aux64, e.intr_error == 1);
    // One #UD event per UD2: a chain each. KVM may inject one twice (the vCPU thread preempted before
    // it ran; the second is "[reinjected]", x86.c kvm_inject_exception), so injections are not loops.
    if (e.kind == ES_KIND_DECISION && EntryIntrInfo(e.intr_info).vector() == arch::kUD &&
        ud_chains[e.vcpu].insert(e.origin).second)
      ++g.loops;
    // Lines of other tracepoints in a row are one row, aux64 of them.
    if (e.kind == ES_KIND_CONTEXT && e.reason == import::kContextOtherEvent) other += static_cast<unsigned>(e.aux64);
  }
  ASSERT_EQ(by_vcpu.size(), 2u);
  std::vector<std::pair<unsigned, size_t>> got, want;
  for (const auto& [vcpu, g] : by_vcpu) got.emplace_back(g.loops, g.pio.size());
  for (const std::string& out : cap.outputs) {
    const GuestRun g = parse_guest(out);
    want.emplace_back(g.loops, g.pio.size());
    bool found = false;
    for (const auto& [vcpu, mine] : by_vcpu) found |= mine.pio == g.pio;
    EXPECT_TRUE(found) << "no vCPU has the port I/O of the guest with " << g.loops << " loops";
  }
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  EXPECT_GE(other, 2u);  // at least each guest's sched_process_exit
  EXPECT_EQ(r.stats.other_events, other);
}

// A record whose event id is in no format of the file (here: the first kvm_pio record of the
// uncompressed v6 copy, its common_type overwritten) is counted and listed by record index,
// not dropped silently and not fatal.
TEST_F(TraceDatImport, UndecodableRecordIsCountedAndListedByIndex) {
  std::ifstream in(files().v6, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string bytes = ss.str();
  const size_t fmt = bytes.find("name: kvm_pio\nID: ");
  ASSERT_NE(fmt, std::string::npos);
  const unsigned id = static_cast<unsigned>(std::stoul(bytes.substr(fmt + 18, 8)));
  // Record data starts with common_type (2 bytes), flags, preempt count, common_pid (4 bytes).
  const int pid = files().cap.guest_pid;
  const char key[2] = {static_cast<char>(id & 0xFF), static_cast<char>(id >> 8)};
  const char pid_bytes[4] = {static_cast<char>(pid & 0xFF), static_cast<char>((pid >> 8) & 0xFF),
                             static_cast<char>((pid >> 16) & 0xFF), static_cast<char>((pid >> 24) & 0xFF)};
  size_t at = bytes.rfind("flyrecord");
  ASSERT_NE(at, std::string::npos);
  for (at = bytes.find(std::string(key, 2), at); at != std::string::npos; at = bytes.find(std::string(key, 2), at + 1))
    if (at + 8 <= bytes.size() && bytes.compare(at + 4, 4, std::string(pid_bytes, 4)) == 0) break;
  ASSERT_NE(at, std::string::npos) << "no kvm_pio record of pid " << pid;
  bytes[at] = '\xfe';
  bytes[at + 1] = '\xff';  // event id 0xfffe: not in the file
  const std::string bad = process_tmp("unknown_id.dat");
  std::ofstream(bad, std::ios::binary) << bytes;

  const Recorded r = import_into_db(bad, "unknown_id.db");
  EXPECT_EQ(r.stats.unparsed, 1u);
  ASSERT_EQ(r.stats.unparsed_lines.size(), 1u);
  const Recorded good = import_into_db(files().v6, "good.db");
  EXPECT_EQ(r.stats.lines, good.stats.lines);
  EXPECT_EQ(r.stats.kvm_events + 1, good.stats.kvm_events);
  // The listed index is the record's place among all records: the first kvm_pio of the file.
  std::vector<std::tuple<uint64_t, uint64_t, bool>> pio;
  for (const es_record& e : r.events)
    if (e.kind == ES_KIND_CONTEXT && e.reason == import::kContextPio)
      pio.emplace_back(e.qualification, e.aux64, e.intr_error == 1);
  std::vector<std::tuple<uint64_t, uint64_t, bool>> want(files().guest.pio.begin() + 1, files().guest.pio.end());
  EXPECT_EQ(pio, want);
  const std::string db = process_tmp("unknown_id.db");
  const CliRun info = run_cli("info '" + db + "'");
  EXPECT_NE(info.out.find("1 undecodable (records " + std::to_string(r.stats.unparsed_lines[0]) + ")"),
            std::string::npos)
      << info.out;
}

std::string cut_copy(const std::string& src, size_t size, const std::string& name) {
  std::ifstream in(src, std::ios::binary);
  std::string bytes(size, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  const std::string out = process_tmp(name);
  std::ofstream(out, std::ios::binary) << bytes;
  return out;
}

TEST_F(TraceDatImport, TruncatedFileGetsOneSentenceAndNoRecording) {
  for (const std::string& src : {files().v6, files().v7}) {
    const size_t size = std::filesystem::file_size(src);
    // In the header, in the middle, and short of the end by a page and by one byte (v6: inside
    // the CPU data libtracecmd would map; v7: the option section written after the data).
    for (size_t cut : {size_t{64}, size / 2, size - 4096, size - 1}) {
      SCOPED_TRACE(src + " cut at " + std::to_string(cut));
      const std::string part = cut_copy(src, cut, "cut.dat");
      const std::string db = process_tmp("cut.db");
      std::filesystem::remove(db);
      const CliRun r = run_cli("import '" + part + "' -o '" + db + "'");
      EXPECT_EQ(r.code, 2) << r.out;
      EXPECT_EQ(count_lines(r.err), 1u) << r.err;
      EXPECT_NE(r.err.find("'" + part + "' is truncated"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("copy the whole file again"), std::string::npos) << r.err;
      EXPECT_FALSE(std::filesystem::exists(db));
      EXPECT_FALSE(std::filesystem::exists(db + ".partial"));
    }
  }
}

// A file that keeps libtracecmd reading past the isolating child's deadline (a damaged file can
// make it loop) is refused with one sentence and no recording. Here the deadline is shortened
// to 1 ms with the test override, so a sound file is enough to run over it.
TEST_F(TraceDatImport, ReadThatOutlastsItsDeadlineIsStoppedWithOneSentence) {
  const std::string db = process_tmp("slow.db");
  std::filesystem::remove(db);
  const CliRun r =
      run_cli_env("ES_TRACE_DAT_CHILD_TIMEOUT_MS=1", "import '" + files().v7 + "' -o '" + db + "' --format trace.dat");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("was still reading it after"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("trace-cmd report -i"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(db));
  EXPECT_FALSE(std::filesystem::exists(db + ".partial"));
}

// A file whose header is sound but whose event formats are not: kvm_inj_exception's field
// "exception" renamed while its print format still uses it crashes libtraceevent's format
// parser (tep_parse_event). The import reads the file in a child process first, so the user gets
// one sentence and the process (here: the test) survives.
TEST_F(TraceDatImport, CorruptEventFormatIsAnErrorNotACrash) {
  std::ifstream in(files().v6, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string bytes = ss.str();
  const size_t ev = bytes.find("name: kvm_inj_exception");
  ASSERT_NE(ev, std::string::npos);
  const size_t field = bytes.find("field:u8 exception;", ev);
  ASSERT_NE(field, std::string::npos);
  bytes.replace(field, 19, "field:u8 exceptioX;");
  const std::string bad = process_tmp("bad_format.dat");
  std::ofstream(bad, std::ios::binary) << bytes;
  const std::string db = process_tmp("bad_format.db");
  std::filesystem::remove(db);
  const CliRun r = run_cli("import '" + bad + "' -o '" + db + "'");
  if (r.code == 0) GTEST_SKIP() << "this libtraceevent parses the damaged format without crashing";
  EXPECT_EQ(r.code, 2) << r.out << r.err;  // not 128 + SIGSEGV
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("'" + bad + "' is corrupt"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(db));
  EXPECT_FALSE(std::filesystem::exists(db + ".partial"));
  // The in-memory entry as well.
  auto p = import::parse_trace_dat_bytes(bytes, {}, "bad.dat");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().find("is corrupt"), std::string::npos) << p.error();
}

// The formats a trace.dat carries for systems other than kvm and ftrace are parsed when a record
// of theirs is first looked up, not while the file is opened (replay/import/tep_lazy_formats.c).
// Expected, on the capture (trace-cmd writes the format of every event of this kernel, and the
// capture enables sched_process_exec / exit besides kvm): after the open, formats are kept
// unparsed, sched_process_exec is not known by name while kvm_pio is; looking up its type id
// (tracefs events/sched/sched_process_exec/id, the capture's own kernel) parses it then; and
// the import keeps the guest process's exec and exit as context with no record left
// undecodable, as it did when every format was parsed at open.
TEST_F(TraceDatImport, FormatsOfOtherSystemsAreParsedWhenARecordNeedsThem) {
  es_tracecmd_quiet();
  tracecmd_input* h = es_tracecmd_open(files().v7.c_str());
  ASSERT_NE(h, nullptr);
  tep_handle* tep = es_tracecmd_tep(h);
  ASSERT_NE(tep, nullptr);
  EXPECT_GT(es_tep_lazy_deferred(), 0u);
  EXPECT_NE(tep_find_event_by_name(tep, "kvm", "kvm_pio"), nullptr);
  EXPECT_EQ(tep_find_event_by_name(tep, "sched", "sched_process_exec"), nullptr);
  int id = -1;
  for (const char* root : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"})
    if (std::ifstream in(std::string(root) + "/events/sched/sched_process_exec/id"); in && (in >> id)) break;
  if (id >= 0) {
    const size_t before = es_tep_lazy_deferred();
    tep_event* ev = es_tep_find_event(tep, id);
    ASSERT_NE(ev, nullptr);
    EXPECT_STREQ(ev->name, "sched_process_exec");
    EXPECT_EQ(es_tep_lazy_deferred(), before - 1);
    EXPECT_EQ(tep_find_event_by_name(tep, "sched", "sched_process_exec"), ev);
  }
  es_tracecmd_close(h);
  EXPECT_EQ(es_tep_lazy_deferred(), 0u) << "closing the file forgets its kept formats";

  const Recorded r = import_into_db(files().v7, "lazy.db");
  EXPECT_EQ(r.stats.unparsed, 0u);
  EXPECT_GE(r.stats.other_events, 2u);
  const auto context_non_kvm = std::count_if(r.events.begin(), r.events.end(), [](const es_record& e) {
    return e.kind == ES_KIND_CONTEXT && e.reason == import::kContextOtherEvent;
  });
  EXPECT_EQ(context_non_kvm, 2) << "the guest process's sched_process_exec and sched_process_exit";
}

// The file is read once, in the isolating child, which sends its records and its summary through
// a pipe (issue #18): what arrives must be what a read in this process gives, record for record,
// and every fact of the summary (the session's config_json holds them; records and out_of_order
// are not in it).
TEST_F(TraceDatImport, IsolatedReadSendsTheSameRecordsAndFactsAsAnInProcessRead) {
  for (const std::string& src : {files().v6, files().v7}) {
    SCOPED_TRACE(src);
    import::TraceDatOptions isolated, in_process;
    in_process.isolate = false;
    auto a = import::parse_trace_dat(src, isolated);
    auto b = import::parse_trace_dat(src, in_process);
    ASSERT_TRUE(a) << a.error();
    ASSERT_TRUE(b) << b.error();
    ASSERT_EQ(a->records.size(), b->records.size());
    ASSERT_GT(a->records.size(), 0u);
    EXPECT_EQ(std::memcmp(a->records.data(), b->records.data(), a->records.size() * sizeof(es_record)), 0);
    EXPECT_EQ(a->config_json, b->config_json);
    EXPECT_EQ(a->stats.records, b->stats.records);
    EXPECT_EQ(a->stats.out_of_order, b->stats.out_of_order);
    EXPECT_NE(a->config_json.find("\"file_version\": "), std::string::npos) << a->config_json;
  }
}

// Two in-process reads at once on two threads (the kept formats are one table for the process,
// tep_lazy_formats.c): each gets the records a read alone gets, and nothing is left kept after.
TEST_F(TraceDatImport, TwoInProcessReadsAtOnceGetWhatOneReadGets) {
  import::TraceDatOptions in_process;
  in_process.isolate = false;
  auto alone = import::parse_trace_dat(files().v7, in_process);
  ASSERT_TRUE(alone) << alone.error();
  std::vector<es_record> got[2];
  std::string error[2];
  auto read = [&](int i) {
    for (int round = 0; round < 5; ++round) {
      auto r = import::parse_trace_dat(i == 0 ? files().v7 : files().v6, in_process);
      if (!r) {
        error[i] = r.error();
        return;
      }
      got[i] = std::move(r->records);
    }
  };
  std::thread a(read, 0), b(read, 1);
  a.join();
  b.join();
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(error[i], "") << i;
    ASSERT_EQ(got[i].size(), alone->records.size()) << i;
    EXPECT_EQ(std::memcmp(got[i].data(), alone->records.data(), got[i].size() * sizeof(es_record)), 0) << i;
  }
  EXPECT_EQ(es_tep_lazy_deferred(), 0u);
}

// libtraceevent crashing after the child has already sent records (test override: the child
// raises SIGSEGV once it has sent the first batch): one sentence, no recording, and a recording
// the import was to replace (--force) is left as it was.
TEST_F(TraceDatImport, CrashAfterRecordsWereSentLeavesTheOldRecordingAlone) {
  const std::string db = process_tmp("crash_mid.db");
  std::filesystem::remove(db);
  std::filesystem::remove(db + ".partial");
  std::ofstream(db) << "an older recording";
  const CliRun r = run_cli_env("ES_TRACE_DAT_CHILD_CRASH_AFTER=1",
                               "import '" + files().v7 + "' -o '" + db + "' --force --format trace.dat");
  EXPECT_EQ(r.code, 2) << r.out << r.err;  // not 128 + SIGSEGV: the import process survived
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("is corrupt: libtraceevent / libtracecmd crashed (signal 11)"), std::string::npos) << r.err;
  std::ifstream in(db);
  std::string kept((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(kept, "an older recording");
  EXPECT_FALSE(std::filesystem::exists(db + ".partial"));
}

// The in-memory entry (the fuzz target's): every prefix of a real file is refused or read,
// never a crash, and only the whole file reads.
TEST_F(TraceDatImport, EveryPrefixOfARealFileIsRefusedCleanly) {
  std::ifstream in(files().v7, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  const size_t step = std::max<size_t>(1, bytes.size() / 97);
  for (size_t cut = 0; cut < bytes.size(); cut += step) {
    auto p = import::parse_trace_dat_bytes(std::string_view(bytes).substr(0, cut), {}, "prefix.dat");
    EXPECT_FALSE(p) << "cut at " << cut;
  }
  auto whole = import::parse_trace_dat_bytes(bytes, {}, "whole.dat");
  ASSERT_TRUE(whole) << whole.error();
  EXPECT_EQ(whole->stats.kvm_events + whole->stats.other_events, whole->stats.lines);
  EXPECT_EQ(whole->stats.unparsed, 0u);
}

TEST(TraceDatLayout, HeaderWalkRefusesWhatIsNotATraceDat) {
  auto l = import::read_trace_dat_layout("hello", "x.dat");
  ASSERT_FALSE(l);
  EXPECT_NE(l.error().find("not a trace-cmd trace.dat"), std::string::npos) << l.error();
  l = import::read_trace_dat_layout(std::string_view("\x17\x08\x44tracing9\0\0\x08", 14), "x.dat");
  ASSERT_FALSE(l);
  EXPECT_NE(l.error().find("file version '9'"), std::string::npos) << l.error();
  EXPECT_NE(l.error().find("trace-cmd convert"), std::string::npos) << l.error();
}

}  // namespace
}  // namespace es::test
